"""The run's report: what happened (``RunReport``), and the files and words that say it.

    successes.csv, failures.csv      rebuilt from the ledger at the end of every run
    failures.xlsx                    failures.csv for Excel (``importer.xlsx_report``)
    summary.json                     ``summary_dict``: the counts and how the run ended
    report.html                      ``html_report``: the same for a person, from summary.json
                                     and the first rows of failures.csv
    the console's last lines         ``console_summary``

Each file is written to a temporary file beside it and renamed into place, so a run stopped
while writing leaves the previous complete report, never half of one. Reports hold personal data:
they are created readable by their owner only (0600). CSVs are UTF-8 with a BOM, so Excel shows
accents right, and a cell a spreadsheet would run as a formula is written as text
(``escape_formula``; the loader undoes it when a failures.csv is imported again).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import orjson

from importer.csv_reports import FAILURE_COLUMNS as FAILURE_COLUMNS
from importer.csv_reports import SUCCESS_COLUMNS as SUCCESS_COLUMNS
from importer.csv_reports import escape_formula as escape_formula
from importer.csv_reports import unescape_formula as unescape_formula
from importer.csv_reports import write_failures, write_payloads, write_successes
from importer.errors import ExitStatus, printable
from importer.ledger import Failure, Ledger
from importer.private_files import TEMPORARY_REPORTS, write_summary
from importer.private_files import open_private as open_private
from importer.private_files import private_dir as private_dir
from importer.private_files import remove_stale_temporaries as remove_stale_temporaries

_SHOWN_FIELDS: Final = frozenset(
    {
        "conversion_identifier",
        "tags",
        "available_for_mailing",
        "legal_bases",
        "traffic_source",
        "traffic_medium",
        "traffic_campaign",
        "traffic_value",
    }
)
# The console's last line names them; report.html first: it is the one to open.
REPORT_FILES: Final = "report.html, successes.csv, failures.csv, summary.json"
REPORT_NAMES: Final = (*TEMPORARY_REPORTS, "ledger.sqlite")  # what a run never reads back


@dataclass
class Note:
    """A warning as summary.json keeps it: how many rows it concerns, and the first of them."""

    message: str
    kind: str = ""  # warnings of one kind about many rows are one note
    count: int = 1
    rows: list[int] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"message": self.message, "count": self.count, "rows": self.rows}


EXAMPLE_ROWS: Final = 10  # rows a note names; the count says how many there are
SHOWN_FAILURES: Final = 100  # failed rows report.html lists; failures.csv has them all


@dataclass(frozen=True)
class Shown:
    """One row's cells beside the exact request body they became."""

    row: int
    cells: dict[str, str]
    request: dict[str, Any]


@dataclass(frozen=True)
class Plan:
    """What a run announced before its first request (``_Run._announce_plan``), kept to set
    beside what happened."""

    rows: int  # rows to send
    complete: bool  # the whole file was read; else ``rows`` counts the rows read so far
    rate: float  # --rate: requests per minute; 0 unpaced
    eta_s: float | None  # the duration announced; None when unpaced or still reading
    sandbox: bool = False  # sent to the built-in sandbox, not to RD Station

    def as_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "complete": self.complete,
            "rate": self.rate,
            "eta_s": None if self.eta_s is None else round(self.eta_s, 3),
            "sandbox": self.sandbox,
        }


@dataclass
class RunReport:
    """What happened, as summary.json says it."""

    rows: int = 0
    succeeded: int = 0
    failed: int = 0
    skipped: int = 0
    duration_s: float = 0.0
    out_dir: Path = Path(".")
    dry_run: bool = False
    aborted: str | None = None
    interrupted: bool = False  # stopped by SIGINT/SIGTERM (a kind of abort)
    already_sent: int = 0
    left_to_send: int = 0
    in_flight_found: int = 0
    changed_rows: int = 0  # rows sent earlier whose payload is now another
    changed_example: str | None = None
    folder: dict[str, int] = field(default_factory=dict)  # the reports folder's state
    requests: int = 0
    retries: int = 0
    rate_limited_answers: int = 0
    failure_types: dict[str, int] = field(default_factory=dict)
    not_attempted: int = 0  # rows left to send because the run stopped (a refused key...)
    warnings: list[Note] = field(default_factory=list)
    shown: list[Shown] = field(default_factory=list)  # payloads asked for (validate --show)
    plan: Plan | None = None  # what the run announced before sending (None: nothing to send)
    # Requests, 429 answers and retries per bucket of ``timeline_bucket_s`` seconds since
    # sending started (``sending.Timeline.as_list``); empty when nothing was sent.
    timeline: list[dict[str, float | int]] = field(default_factory=list)
    timeline_bucket_s: float = 0.0
    # The funnel steps of this run's rows (``importer.funnel``): steps, sent, already_sent,
    # failed, pending, waiting (ledger.funnel's funnel_counts); None when no row has one.
    funnel: dict[str, int] | None = None
    # Event batches (importer.batches): what a batch was learnt to cost (None: not learnt),
    # and what batching did (None: the run sent single posts).
    batch_cost: str | None = None
    batches: dict[str, Any] | None = None

    def warn(self, message: str, *, kind: str = "", row: int | None = None) -> bool:
        """Keep a warning; True when it is new (the first of its kind), to be said at once."""
        if kind:
            for note in self.warnings:
                if note.kind == kind:
                    note.count += 1
                    if row is not None and len(note.rows) < EXAMPLE_ROWS:
                        note.rows.append(row)
                    return False
        self.warnings.append(Note(message, kind, 1, [] if row is None else [row]))
        return True

    @property
    def exit_status(self) -> ExitStatus:
        if self.aborted:
            return ExitStatus.ABORTED
        return ExitStatus.FAILED_ROWS if self.failed else ExitStatus.OK


def write_reports(
    out_dir: Path,
    ledger: Ledger,
    report: RunReport,
    source_headers: Sequence[str],
    summary: Callable[[], dict[str, Any]],
) -> None:
    """Fill ``report``'s counts from the ledger and write the reports: the folder's record
    (successes.csv: every row it ever sent; failures.csv: what is still failed), this run's
    summary.json, and a copy of it under runs/ that later runs leave alone."""
    counts = ledger.counts()
    report.rows = counts.rows
    report.failed = counts.failed
    report.already_sent = counts.already_sent
    report.left_to_send = counts.unsent
    if report.dry_run:
        report.succeeded = counts.unsent  # rows an import would send
        report.skipped = counts.already_sent
    else:
        report.succeeded = counts.succeeded
        report.not_attempted = counts.unsent
        report.skipped = counts.already_sent + counts.unsent
    report.failure_types = ledger.failure_types()
    report.folder = ledger.folder_counts()
    # A dry run sends nothing, so the record it writes is the one it found.
    write_successes(out_dir / "successes.csv", ledger.successes())
    failures = FirstFailures(ledger.failures())  # report.html shows the first, not millions
    write_failures(out_dir / "failures.csv", source_headers, failures)
    from importer.xlsx_report import write_failures_xlsx  # here: it imports this module

    workbook = write_failures_xlsx(out_dir / "failures.xlsx", source_headers, ledger.failures())
    for warning in workbook.warnings():
        report.warn(warning)
    if report.dry_run:
        write_payloads(out_dir / "payloads.jsonl", ledger.would_send())
    document = summary()
    write_summary(out_dir / "summary.json", document)
    # Imported here: html_report builds on this module's helpers.
    from importer.html_report import write_html_report

    write_html_report(out_dir / "report.html", document, failures.first, failures.count, out_dir)
    runs = private_dir(out_dir / "runs")
    stamp = str(document["finished_at"]).replace(":", "").replace("-", "")
    write_summary(runs / f"{stamp}-run{ledger.run_id}.json", document)


class FirstFailures:
    """The failed rows as they stream into failures.csv, keeping the first ``keep`` and
    counting them all: one pass over the ledger, whatever their number."""

    def __init__(self, rows: Iterable[Failure], keep: int = SHOWN_FAILURES) -> None:
        self._rows = rows
        self._keep = keep
        self.first: list[Failure] = []
        self.count = 0

    def __iter__(self) -> Iterator[Failure]:
        for failure in self._rows:
            if self.count < self._keep:
                self.first.append(failure)
            self.count += 1
            yield failure


def summary_dict(
    report: RunReport,
    *,
    input_path: Path,
    mapping_path: Path,
    input_format: str,
    blank_rows: int,
    footer_rows: int,
    finished_at: str,
) -> dict[str, Any]:
    return {
        "rows": report.rows,
        "succeeded": report.succeeded,
        "failed": report.failed,
        "skipped": report.skipped,
        "duration_s": report.duration_s,
        "status": "aborted" if report.aborted else "completed",
        "exit_status": int(report.exit_status),
        "aborted_reason": report.aborted,
        "dry_run": report.dry_run,
        "input": str(input_path),
        "input_format": input_format,
        "mapping": str(mapping_path),
        "finished_at": finished_at,
        "already_sent": report.already_sent,
        "left_to_send": report.left_to_send if not report.dry_run else 0,
        "would_send": report.succeeded if report.dry_run else None,
        "in_flight_found": report.in_flight_found,
        "changed_rows": report.changed_rows,
        "folder": report.folder,
        "requests": report.requests,
        "retries": report.retries,
        "rate_limited_answers": report.rate_limited_answers,
        "failure_types": report.failure_types,
        "blank_rows": blank_rows,
        "footer_rows": footer_rows,
        "not_attempted": report.not_attempted,
        "warnings": [note.as_dict() for note in report.warnings],
        "plan": None if report.plan is None else report.plan.as_dict(),
        "timeline_bucket_s": report.timeline_bucket_s,
        "timeline": report.timeline,
        "funnel": report.funnel,
        **(
            {"batch_cost": report.batch_cost, "batches": report.batches}
            if report.batches is not None
            else {}
        ),
    }


def console_summary(report: RunReport, input_name: str) -> str:
    """The lines the console prints when a run ends; names and reasons escaped (a file's name
    must not drive the terminal)."""
    input_name = printable(input_name)
    aborted = printable(report.aborted or "")
    lines: list[str] = []
    if report.dry_run:
        if report.aborted:
            lines.append(f"Stopped: {aborted}. The rows below were checked before it.")
        lines.append(
            f"Checked {input_name}: {report.rows:,} rows, {report.succeeded:,} ready to send, "
            f"{report.failed:,} failed, {report.skipped:,} already sent "
            f"({format_duration(report.duration_s)}). Nothing was sent."
        )
    elif report.aborted:
        lines.append(f"Stopped: {aborted}.")
        lines.append(
            f"{report.succeeded:,} rows sent, {report.failed:,} failed, "
            f"{report.left_to_send:,} left to send. Run the same command to resume."
        )
    else:
        lines.append(
            f"Imported {input_name}: {report.succeeded:,} rows sent, "
            f"{report.failed:,} failed, {report.skipped:,} skipped (of {report.rows:,}) in "
            f"{format_duration(report.duration_s)}."
        )
    if report.in_flight_found:
        lines.append(
            f"{report.in_flight_found:,} rows were in flight when an earlier run stopped "
            "(they may have been recorded by RD Station)."
        )
    if report.batches is not None:
        lines.append(batches_line(report.batches, report.batch_cost))
    if report.failure_types:
        kinds = ", ".join(f"{k} {v:,}" for k, v in report.failure_types.items())
        lines.append(f"Failures by type: {kinds}")
    funnel = report.funnel or {}
    to_set = funnel.get("pending", 0) + funnel.get("waiting", 0)
    if report.dry_run and to_set:
        # Nothing was sent: the steps are what an import would send.
        lines.append(
            f"Funnel steps: {to_set:,} to set (each after its row's conversion), "
            f"{funnel.get('already_sent', 0):,} set earlier"
        )
    elif funnel.get("failed") or funnel.get("pending"):
        # Counted as failed (or left to send), yet RD Station recorded their conversions.
        said = [f"{funnel[k]:,} {k}" for k in ("sent", "failed", "pending") if funnel.get(k)]
        lines.append(
            f"Funnel steps: {', '.join(said)}; the conversions of the rows whose funnel step "
            "failed or is pending were recorded, and importing again sends only that step"
        )
    last = f"Reports: {printable(str(report.out_dir))}/ ({REPORT_FILES})"
    if report.warnings:
        count = len(report.warnings)
        last += f"; {count} warning{'s' if count > 1 else ''}, listed in summary.json"
    lines.append(last)
    return "\n".join(lines)


def batches_line(batches: dict[str, Any], cost: str | None) -> str:
    """'Batches of 100: 103 requests, 97.1 rows each on average; 3 refused batches split to
    find their bad rows (12 extra requests); RD Station counted a batch once (per_request).'"""

    def many(count: float, word: str) -> str:
        return f"{count:,g} {word}{'' if count == 1 else 's'}"

    requests, split = batches["requests"], batches["split_batches"]
    line = f"Batches of {batches['size']:,}: {many(requests, 'request')}"
    if batches["rows_per_batch"]:  # none when no batch was sent (all sent before, or stopped)
        line += f", {many(batches['rows_per_batch'], 'row')} each on average"
    if split:
        line += (
            f"; {split:,} refused {'batch' if split == 1 else 'batches'} split to find "
            f"{'its' if split == 1 else 'their'} bad rows "
            f"({many(batches['split_requests'], 'extra request')})"
        )
    said = {
        "per_request": "RD Station counted a batch once (per_request)",
        "per_event": "RD Station counted each event (per_event)",
    }
    return line + "; " + said.get(cost or "", "what a batch costs was not learnt") + "."


def format_duration(seconds: float) -> str:
    """'3 s', '12 min', '1 h 44 min'."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"


# -- files ---------------------------------------------------------------------------------------


def describe_change(row: int, before_body: bytes | None, after_body: bytes) -> str:
    """'row 2: conversion_identifier "feira-2025" -> "feira-2026"; name changed'. Values are
    shown only for fields that hold no personal data."""
    if before_body is None:
        return f"row {row}: the payload sent then is not in this ledger"
    before = orjson.loads(before_body)["payload"]
    after = orjson.loads(after_body)["payload"]
    parts = []
    for name in sorted(before.keys() | after.keys()):
        old, new = before.get(name), after.get(name)
        if old == new:
            continue
        if name in _SHOWN_FIELDS:
            parts.append(f"{name} {_shown(old)} -> {_shown(new)}")
        elif old is None:
            parts.append(f"{name} added")
        elif new is None:
            parts.append(f"{name} left out")
        else:
            parts.append(f"{name} changed")
    return f"row {row}: " + "; ".join(parts)


def _shown(value: Any) -> str:
    return "(none)" if value is None else orjson.dumps(value).decode()


def shown_rows(ledger: Ledger, headers: Sequence[str], first: int, report: RunReport) -> None:
    """Keep for validate --show the payloads of the first rows and of the rows warned about."""
    noted = [row for note in report.warnings for row in note.rows]
    report.shown = [
        Shown(row, dict(zip(headers, orjson.loads(cells), strict=False)), orjson.loads(body))
        for row, cells, body in ledger.payload_rows(first, noted)
    ]


def shown_text(shown: Sequence[Shown]) -> str:
    """validate --show: each row's cells, then the request they become, as JSON."""
    parts = []
    for item in shown:
        cells = " | ".join(f"{h}={v}" for h, v in item.cells.items() if v)
        request = orjson.dumps(item.request, option=orjson.OPT_INDENT_2).decode()
        parts.append(f"Row {item.row}: {cells}\n{request}")
    return "\n\n".join(parts)
