"""One call's run: its checked configuration, how it ends (``ImportReport``, ``RunAborted``),
and the library's messages said in this API's keyword arguments."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import dataclasses
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from importer.errors import AbortError, InputError
from importer.loader import _unique
from importer.pipeline import ImportConfig, Listener, run_import_async
from importer.report import RunReport, unescape_formula
from importer.sending import RunControl

if TYPE_CHECKING:
    import pandas as pd  # type: ignore[import-untyped]

_DICT_MAPPING = "the mapping dict"  # how messages name a mapping given as a dict
# The CLI's flags in the messages the library shares with the CLI, said as keywords here.
_FLAG = re.compile(
    r"--(?:(keep-sent|resend-changed|retry-rejected|dry-run|sandbox)\b"
    r"|(mapping|out|sheet|encoding|delimiter|header-row|rows|limit|in-flight|api-url)\b ?)"
)


@dataclass
class ImportReport(RunReport):
    """The run's report (the counts of summary.json: ``rows``, ``succeeded``, ``failed``,
    ``skipped``...; ``out_dir``, where the reports are), and its failures read back."""

    def failures(self) -> list[dict[str, str]]:
        """The rows ``out_dir`` still holds as failed (its failures.csv, read now), each as the
        row's cells under its column names, then ``row``, ``error_stage``, ``http_status``,
        ``error_type``, ``error_message``, ``attempts``, ``source_row`` and ``row_id``. Every
        value is text, as in the file."""
        names, rows = self._read_failures()
        return [dict(zip(names, row, strict=False)) for row in rows]

    def failures_frame(self) -> pd.DataFrame:
        """``failures()`` as a pandas DataFrame, one column per column of failures.csv."""
        import pandas as pd

        names, rows = self._read_failures()
        return pd.DataFrame(rows, columns=names, dtype=object)

    def _read_failures(self) -> tuple[list[str], list[list[str]]]:
        try:
            handle = (self.out_dir / "failures.csv").open(encoding="utf-8-sig", newline="")
        except FileNotFoundError:
            return [], []
        with handle:
            reader = csv.reader(handle)
            header = [unescape_formula(cell) for cell in next(reader, [])]
            rows = [[unescape_formula(cell) for cell in row] for row in reader]
        # Duplicate column names are read as the loader reads them: 'email', 'email (2)'.
        return _unique(header, "failures.csv", []), rows


class RunAborted(AbortError):
    """The run stopped before its end (a refused key, RD Station unreachable, Ctrl-C); what it
    did is in ``report``. Call again with the same ``out`` to resume."""

    def __init__(self, message: str, report: ImportReport) -> None:
        super().__init__(message)
        self.report = report


class _Call:
    """One call's run: its checked configuration, and how it ends."""

    def __init__(
        self,
        config: ImportConfig,
        listener: Listener | None,
        progress: bool,
        mapping_yaml: str | None,
    ) -> None:
        self.config = config
        self.listener = listener
        self.progress = progress
        self.mapping_yaml = mapping_yaml  # a dict mapping as YAML: its messages' line numbers
        self.control = RunControl()

    async def run(self) -> ImportReport:
        """The run to its end. Cancelled, it stops as Ctrl-C stops the CLI: the requests in
        flight bring their answers and the reports are written, then CancelledError goes on."""
        task = asyncio.ensure_future(run_import_async(self.config, self.listener, self.control))
        try:
            report = await asyncio.shield(task)
        except asyncio.CancelledError:
            if self.config.dry_run:
                task.cancel()  # nothing is in flight: stop at once
            else:
                self.control.interrupt("cancelled")
            with contextlib.suppress(BaseException):
                await task
            raise
        except InputError as exc:
            raise _in_api_words(exc, self.mapping_yaml) from None
        return self._finish(report)

    def stop(self, outer: asyncio.Task[Any], name: str) -> None:
        """From the event loop's thread: a Ctrl-C stops a run that sends gracefully (a second
        one stops waiting for answers), and a dry run at once."""
        if self.config.dry_run:
            outer.cancel()
        else:
            self.control.interrupt(name)

    def _finish(self, run: RunReport) -> ImportReport:
        report = ImportReport(**{f.name: getattr(run, f.name) for f in dataclasses.fields(run)})
        if self.progress:
            from importer.console import err
            from importer.report import console_summary, shown_text

            if report.shown:
                err(shown_text(report.shown) + "\n")
            err(console_summary(report, self.config.input_path.name))
        if report.aborted:
            raise RunAborted(
                f"{report.aborted}. {report.succeeded:,} rows sent, {report.failed:,} failed, "
                f"{report.left_to_send:,} left to send: call again with the same out= to resume",
                report,
            )
        return report


def _in_api_words(exc: InputError, mapping_yaml: str | None = None) -> InputError:
    """The library's message as this API's caller knows the settings (``header_row=``,
    not ``--header-row``), with what to do in keyword arguments."""
    text = _FLAG.sub(_keyword, str(exc))
    if exc.setting == "changed":
        text += (
            ": pass keep_sent=True to leave them as sent and send only rows never sent, or "
            "resend_changed=True to send them again (RD Station updates each lead and "
            "records another conversion)"
        )
    elif exc.setting == "api_key":
        text += " or pass api_key= (dry_run=True and sandbox=True need none)"
    elif exc.setting == "out_dir" and text.startswith("out_dir "):
        text = "out " + text.removeprefix("out_dir ")
    if mapping_yaml is not None and text.startswith(_DICT_MAPPING):
        text += "\n" + _numbered(mapping_yaml)
    return InputError(text, setting=exc.setting)


def _keyword(flag: re.Match[str]) -> str:
    """``--dry-run`` as ``dry_run=True``; ``--header-row 4`` as ``header_row=4``."""
    switch, option = flag.groups()
    return switch.replace("-", "_") + "=True" if switch else option.replace("-", "_") + "="


def _numbered(yaml_text: str) -> str:
    lines = yaml_text.splitlines()
    return "the mapping dict as YAML, which the line numbers count:\n" + "\n".join(
        f"{number:>4}  {line}" for number, line in enumerate(lines, 1)
    )
