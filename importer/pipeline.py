"""One import run, wired: config -> table -> (reader: intake -> ledger) + (sender) -> reports.

    run_import(config) -> RunReport

The reader streams the file; ``intake`` maps and validates each row and plans it against what
the ledger knows; the plan is recorded in chunks (pending, or failed with its reason). The reader
runs ahead of the senders, so the whole file is checked within seconds while sending starts at
once. ``sending`` sends the pending rows; ``report`` writes what happened. Problems found before
anything was sent raise ``InputError``; a disk or ledger failure after sending began stops the run
resumably (``AbortError``).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import functools
import math
import os
import shutil
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from importer import intake, oauth
from importer.client import ConversionsClient, check_api_url
from importer.errors import AbortError, InputError
from importer.intake import Changed, InFlight, ResumePolicy
from importer.ledger import Ledger, Marks
from importer.ledger.journal import Journal
from importer.loader import Table, check_text_options, open_table
from importer.mapping import BoundMapping, Mapping, load_mapping
from importer.pacing import RateBudget
from importer.records import Row
from importer.report import (
    REPORT_NAMES,
    Plan,
    RunReport,
    describe_change,
    format_duration,
    private_dir,
    remove_stale_temporaries,
    shown_rows,
    summary_dict,
    write_reports,
)
from importer.retry import RetryPolicy
from importer.sending import PendingRows, RunControl, Sender
from importer.stop_rules import StopRules

__all__ = ["ImportConfig", "Listener", "RunControl", "RunReport", "Tuning", "run_import"]

DEFAULT_API_URL = "https://api.rd.services"
AuthMethod = Literal["apikey", "oauth"]
LEAD_DAILY_LIMIT = 24  # the stricter of the per-lead limits RD Station documents
CHUNK = 500  # rows the reader maps and records per ledger transaction
PLAN_WAIT = 1.0  # seconds sending may wait for the reader, to print the plan first
FREE_SPACE_EVERY = 2.0  # seconds between looks at the free space while sending
PROGRESS_EVERY = 0.1  # seconds between progress reports: a terminal redraw costs more than a row


@dataclass(frozen=True)
class Tuning:
    """Knobs no user needs: the retry policy's limits, waits and timeouts (tests shorten them)."""

    max_attempts: int = 6
    retry_max_elapsed: float = 900.0
    retry_wait: bool = True  # False removes backoff waits
    timeout: float = 30.0  # seconds for one request
    stop_grace: float = 10.0  # seconds requests in flight get to finish after a stop
    min_free_bytes: int = 16_000_000  # a run does not start, and stops, under this free space


@dataclass(frozen=True)
class ImportConfig:
    """Everything one run needs, checked when built (``InputError``). Defaults are the CLI's."""

    input_path: Path
    mapping_path: Path
    out_dir: Path | None = None
    api_url: str = DEFAULT_API_URL
    api_key: str | None = field(default=None, repr=False)  # a secret: kept out of any repr
    auth: AuthMethod = "apikey"  # oauth: the app signed in with `rd-importer auth login`
    rate: float = 120.0
    concurrency: int = 8
    dry_run: bool = False
    sandbox: bool = False
    sheet: str | None = None
    encoding: str | None = None
    delimiter: str | None = None
    header_row: int = 1
    skip_hidden_rows: bool = False  # leave out the rows an Excel sheet hides
    in_flight: InFlight | None = None  # None: resend, but keep holding what skip held
    retry_rejected: bool = False
    changed: Changed | None = None  # rows sent earlier whose payload changed: keep / resend
    rows: tuple[int, int] | None = None  # only these rows (first, last: as a spreadsheet shows)
    limit: int | None = None  # only the first N data rows (a rehearsal)
    show: int = 0  # a dry run keeps the payloads of its first N rows for the report
    # The ledger, when not the reports folder's own: watch shares one across the files it
    # imports, so a row sent from one drop is known in the next.
    ledger_path: Path | None = None
    tuning: Tuning = Tuning()
    # The Python API's rows in memory (a DataFrame, dicts), read instead of a file: input_path
    # then only names them. And its mapping, given loaded or as a dict.
    table: Callable[[], Table] | None = field(default=None, compare=False, repr=False)
    mapping: Mapping | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise InputError(
                f"concurrency {self.concurrency}: use 1 or more", setting="concurrency"
            )
        if not (math.isfinite(self.rate) and self.rate >= 0):
            raise InputError(
                f"rate {self.rate:g}: use a number of requests per minute, 0 unpaced",
                setting="rate",
            )
        if self.changed not in (None, "keep", "resend"):
            raise InputError(f"changed {self.changed!r}: use keep or resend", setting="changed")
        if self.in_flight not in (None, "resend", "skip"):
            raise InputError(
                f"in_flight {self.in_flight!r}: use resend or skip", setting="in_flight"
            )
        if self.rows is not None and not (1 <= self.rows[0] <= self.rows[1]):
            raise InputError(
                f"rows {self.rows[0]}-{self.rows[1]}: use FIRST-LAST, 2 or more", setting="rows"
            )
        if self.limit is not None and self.limit < 1:
            raise InputError(f"limit {self.limit}: use 1 or more", setting="limit")
        if self.header_row < 1:
            raise InputError(f"header_row {self.header_row}: use 1 or more", setting="header_row")
        check_text_options(self.encoding, self.delimiter)
        if self.auth not in ("apikey", "oauth"):
            raise InputError(f"auth {self.auth!r}: use apikey or oauth", setting="auth")
        if self.sends:
            check_api_url(self.api_url)
            if self.auth == "oauth":
                oauth.check_signed_in(self.api_url)  # not signed in: exit 2, nothing read
            elif not self.api_key:
                raise InputError("no API key: set RDSTATION_API_KEY", setting="api_key")

    @property
    def sends(self) -> bool:
        """Whether this run sends to RD Station (a dry run and the sandbox need no key, and no
        sign-in: a run signs itself in to its own sandbox)."""
        return not (self.dry_run or self.sandbox)

    @property
    def resume_policy(self) -> ResumePolicy:
        return ResumePolicy(self.in_flight, self.retry_rejected, self.changed)

    @property
    def selection(self) -> tuple[int, int] | None:
        """The rows this run reads (both ends included), or None for every row."""
        first, last = self.rows or (1, 1 << 62)
        if self.limit is not None:
            last = min(last, max(first, self.header_row + 1) + self.limit - 1)
        return None if self.rows is None and self.limit is None else (first, last)

    def resolved_out_dir(self) -> Path:
        return self.out_dir or Path("rd-import-out") / self.input_path.stem


class Listener:
    """What a run tells whoever is watching it. The CLI draws it; the default says nothing."""

    def info(self, message: str) -> None: ...

    def warning(self, message: str) -> None: ...

    def progress(self, done: int, total: int | None, eta_s: float | None) -> None: ...

    def finished(self) -> None: ...


_stamp: tuple[int, str] = (-1, "")  # (second, its text): a run stamps thousands of rows a second


def utc_now() -> str:
    global _stamp
    second = int(time.time())
    if second != _stamp[0]:
        _stamp = (second, datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
    return _stamp[1]


def run_import(
    config: ImportConfig, listener: Listener | None = None, control: RunControl | None = None
) -> RunReport:
    """Run one import (or dry run) to its end; raise InputError before anything is sent."""
    return asyncio.run(run_import_async(config, listener, control))


async def run_import_async(
    config: ImportConfig, listener: Listener | None = None, control: RunControl | None = None
) -> RunReport:
    """``control`` lets the caller stop the run (``watch`` does, on its signals)."""
    listener = listener or Listener()
    out_dir = config.resolved_out_dir()
    _refuse_reading_a_report(config, out_dir)
    mapping = config.mapping if config.mapping is not None else load_mapping(config.mapping_path)
    with await _open_table(config) as table:
        bound = mapping.bind(
            table.headers,
            source=config.input_path.name,
            first_rows=table.first_rows,
            header_row=config.header_row,
        )
        early = [*bound.warnings, *table.warnings]  # kept in the report once the run begins
        for warning in early:
            listener.warning(warning)
        listener.info(f"Reading {config.input_path.name}: {table.description}")
        run: _Run | None = None
        try:
            with contextlib.ExitStack() as locks:
                locks.enter_context(_exclusive(private_dir(out_dir)))
                remove_stale_temporaries(out_dir)  # under the lock: a run writing them owns them
                ledger_path = config.ledger_path or out_dir / "ledger.sqlite"
                if ledger_path.parent != out_dir:  # shared by several report folders (watch)
                    locks.enter_context(_exclusive(private_dir(ledger_path.parent), ledger_path))
                ledger = Ledger(ledger_path)
                try:
                    run = _Run(config, bound, table, ledger, out_dir, listener, control, early)
                    if not (config.sandbox and not config.dry_run):
                        return await run.execute(config.api_url, config.api_key or "")
                    from importer.sandbox import SandboxConfig, running_sandbox

                    async with running_sandbox(SandboxConfig(latency=0.05, seed=1)) as box:
                        listener.info(f"Sandbox: a stand-in for RD Station at {box.url}")
                        if config.auth == "oauth":
                            run.tokens = await oauth.sign_in_headless(box.url)
                        return await run.execute(box.url, "sandbox-key")
                finally:
                    ledger.close()
        except (OSError, sqlite3.Error) as exc:
            raise _disk_error(exc, out_dir, sent=run is not None and run.requests() > 0) from None


def _refuse_reading_a_report(config: ImportConfig, out_dir: Path) -> None:
    """A run rewrites its reports at its end: one that reads one of them would write over what
    the user typed into it (the fixes in a failures.csv). Stop before reading."""
    for read, what, given in (
        (config.input_path, "input", config.table),
        (config.mapping_path, "mapping", config.mapping),
    ):
        if given is not None:
            continue  # given in memory: no file is read, which the run could write over
        for name in REPORT_NAMES:
            with contextlib.suppress(OSError):
                if read.samefile(out_dir / name):
                    raise InputError(
                        f"{read}: this {what} is a report of {out_dir}, which the run rewrites "
                        f"when it ends: copy it (for example to {read.stem}-fixed{read.suffix}), "
                        "fix the copy, and import that into the same output folder"
                    )


def _disk_error(
    exc: OSError | sqlite3.Error, out_dir: Path, *, sent: bool
) -> InputError | AbortError:
    """The one boundary for the disk errors of the reports folder, the ledger and the reports:
    before anything was sent they are an input problem (exit 2); after, the run stops resumably
    (exit 3)."""
    if isinstance(exc, OSError) and exc.strerror:
        what = f"{exc.filename or out_dir}: {exc.strerror}"
        full = exc.errno in (errno.ENOSPC, errno.EDQUOT)
    else:
        what = f"{out_dir}: the ledger cannot be written ({exc})"
        full = "full" in str(exc)
    todo = "free some space" if full else "fix the folder or its permissions"
    if not sent:
        return InputError(f"{what}; {todo}, or choose another output folder", setting="out_dir")
    return AbortError(f"{what}; {todo}, then run the same command to resume")


async def _open_table(config: ImportConfig) -> Table:
    """``open_table`` in a thread: a Ctrl-C while a large workbook loads (seconds) cancels this
    task, and the reading process is killed at once instead of when the load ends. Rows given
    in memory need neither."""
    if config.table is not None:
        return config.table()
    readers: list[Callable[[], None]] = []
    opening = asyncio.get_running_loop().run_in_executor(
        None,
        functools.partial(
            open_table,
            config.input_path,
            encoding=config.encoding,
            delimiter=config.delimiter,
            sheet=config.sheet,
            header_row=config.header_row,
            on_reader=readers.append,
            skip_hidden_rows=config.skip_hidden_rows,
        ),
    )
    try:
        # Wake up often: the kernel may hand a Ctrl-C to the thread that reads, and Python runs
        # signal handlers only when the main thread runs.
        while not opening.done():
            await asyncio.wait({opening}, timeout=0.2)
        return opening.result()
    except asyncio.CancelledError:
        for kill in readers:
            kill()
        with contextlib.suppress(BaseException):
            (await opening).close()
        raise


@contextlib.contextmanager
def _exclusive(out_dir: Path, ledger: Path | None = None) -> Iterator[None]:
    """One run per output folder (or per shared ledger): two at once would send the same rows
    twice."""
    lock = out_dir / ".lock" if ledger is None else ledger.with_name(f".{ledger.name}.lock")
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        os.fchmod(fd, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise InputError(
                f"{out_dir}: another rd-importer run is using this folder; wait for it to end "
                "or choose another output folder",
                setting="out_dir",
            ) from None
        yield
    finally:
        os.close(fd)


async def _cancelled(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


class _Run:
    """One run's moving parts: the reader recording the file, the sender, the progress."""

    def __init__(
        self,
        config: ImportConfig,
        mapping: BoundMapping,
        table: Table,
        ledger: Ledger,
        out_dir: Path,
        listener: Listener,
        control: RunControl | None,
        warnings: Sequence[str] = (),
    ):
        self.config = config
        self.mapping = mapping
        self.table = table
        self.ledger = ledger
        self.out_dir = out_dir
        self.listener = listener
        self.report = RunReport(out_dir=out_dir, dry_run=config.dry_run)
        for warning in warnings:  # said already
            self.report.warn(warning)
        self.control = control or RunControl()
        self.rows = PendingRows(ledger, self.control)
        self.budget = RateBudget(config.rate)
        self.sender: Sender | None = None
        self.tokens: oauth.TokenStore | None = None  # --auth oauth: else the token file
        self.had_sent = False  # the ledger held sent rows before this run
        self.had_rows = False  # ... any rows of earlier runs
        self.to_send = 0  # rows the reader planned to send in this run
        self.done = 0  # rows the senders finished (sent or failed)
        self.next_progress = 0.0  # monotonic time of the next progress report

    def _changed_error(self) -> InputError:
        report = self.report
        return InputError(
            f"{report.changed_rows:,} row(s) of {self.config.input_path.name} were sent by an "
            f"earlier run into {self.out_dir} and would now be sent with another payload "
            f"({report.changed_example}). Nothing was sent: decide what becomes of them",
            setting="changed",
        )

    def requests(self) -> int:
        return self.sender.stats.requests if self.sender else 0

    async def execute(self, api_url: str, api_key: str) -> RunReport:
        started = time.monotonic()
        config, ledger = self.config, self.ledger
        self.had_sent = ledger.has_sent_rows()
        ledger.begin_run(
            config.input_path,
            utc_now(),
            dry_run=config.dry_run,
            out_dir=self.out_dir,
            headers=self.table.headers,
            key=self.mapping.key,
        )
        self.had_rows = ledger.has_earlier_rows()
        reader = asyncio.create_task(self._read())
        try:
            if self.config.dry_run:
                await reader
                self.listener.info("Dry run: nothing was sent.")
            else:
                with self.control.signals():
                    await self._send(reader, api_url, api_key)
        except BaseException:
            reader.cancel()
            with contextlib.suppress(BaseException):
                await reader
            raise
        finally:
            self.control.reporting = True
            self.report.duration_s = round(time.monotonic() - started, 3)
            self.listener.finished()
        self._finish()
        return self.report

    # -- the reader ----------------------------------------------------------------------------

    async def _read(self) -> None:
        chunk: list[Row] = []
        selection = self.config.selection
        first, last = selection or (0, 1 << 62)
        marked = self.table.marks.rows  # rows hidden in Excel, formulas with no saved value
        try:
            try:
                for row in self.table.rows():
                    if row.number < first:
                        continue
                    if row.number > last:
                        break
                    if row.number in marked:
                        for kind, message in self.table.row_warnings(row.number):
                            self._warn(message, kind=kind, row=row.number)
                    chunk.append(row)
                    if len(chunk) >= CHUNK:
                        self._record(chunk)
                        chunk = []
                        await asyncio.sleep(0)  # let the senders run between chunks
            except AbortError as exc:  # reading stopped mid-file (a workbook's reader was killed)
                if chunk:
                    self._record(chunk)
                self.control.abort(str(exc))
                return
            if chunk:
                self._record(chunk)
            if selection is None:
                self.ledger.forget_gone_failures()  # the whole file was read
        finally:
            self.rows.reading_ended()
        for message in self.table.read_warnings():
            self._warn(message)
        self._warn_conflicts()
        over = self.ledger.emails_over(LEAD_DAILY_LIMIT)
        if over:
            self._warn(
                f"{len(over)} email(s) have more than {LEAD_DAILY_LIMIT} rows to send; RD Station "
                f"accepts about {LEAD_DAILY_LIMIT} conversions per lead a day, so the rest will "
                "fail with LEAD_LIMITED and can be resumed tomorrow"
            )

    def _record(self, rows: list[Row]) -> None:
        prepare, mapping, key, ledger = intake.prepare, self.mapping, self.mapping.key, self.ledger
        outcomes = [prepare(row, mapping, key, self._warner(row.number)) for row in rows]
        prepared = [o for o in outcomes if isinstance(o, intake.Prepared)]
        known = ledger.lookup([o.key for o in prepared])
        siblings = (
            ledger.siblings([o.identity for o in prepared if o.key not in known])
            if self.had_rows
            else {}
        )
        plan = intake.plan_chunk(
            outcomes, known, siblings, self.config.resume_policy, ledger.run_id
        )
        ledger.record_chunk(plan.record)
        self.to_send += plan.to_send
        report = self.report
        report.in_flight_found += plan.in_doubt_found
        report.changed_rows += plan.changed
        if plan.example is not None and report.changed_example is None:
            example = plan.example
            report.changed_example = describe_change(example.row, example.before, example.after)
        self.rows.recorded()

    # -- sending -------------------------------------------------------------------------------

    async def _send(self, reader: asyncio.Task[None], api_url: str, api_key: str) -> None:
        config, tuning = self.config, self.config.tuning
        if self.had_sent and config.changed is None:
            # Rows an earlier run sent may now have another payload: the whole file is checked
            # before the first request, so the run can stop with nothing sent.
            await asyncio.shield(self.rows.reader_done.wait())
            if self.report.changed_rows:
                raise self._changed_error()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self.rows.reader_done.wait()), PLAN_WAIT)
        self._check_free_space(before_sending=True)
        journal = self._reserve_journal()
        marks = Marks(self.ledger, journal, on_broken=self.control.abort)
        self._announce_plan()
        watching_disk = asyncio.create_task(self._watch_free_space())
        async with contextlib.AsyncExitStack() as stack:
            stack.callback(journal.close)
            stack.push_async_callback(_cancelled, watching_disk)
            client: ConversionsClient | oauth.OAuthTransport
            if config.auth == "oauth":
                keeper = oauth.TokenKeeper(self.tokens or oauth.TokenFile(), api_url)
                client = oauth.OAuthTransport(
                    api_url, keeper, timeout=tuning.timeout, max_connections=config.concurrency
                )
            else:
                client = ConversionsClient(
                    api_url, api_key, timeout=tuning.timeout, max_connections=config.concurrency
                )
            await stack.enter_async_context(client)
            self.sender = Sender(
                transport=client.post_conversion,
                rows=self.rows,
                marks=marks,
                control=self.control,
                budget=self.budget,
                retry=RetryPolicy(
                    max_attempts=tuning.max_attempts,
                    max_elapsed=tuning.retry_max_elapsed,
                    wait=tuning.retry_wait,
                ),
                concurrency=config.concurrency,
                stop_grace=tuning.stop_grace,
                now=utc_now,
                row_done=self._row_done,
                rules=StopRules(api_url=api_url, concurrency=config.concurrency),
                warn=lambda kind, message: self._warn(message, kind=kind),
            )
            await self.sender.run()
        if marks.lost:
            self.control.abort(
                f"{self.ledger.path} cannot be written and {marks.lost} answer(s) could not be "
                "kept: those rows may be sent again on resume unless you run it with "
                "--in-flight skip"
            )
        if not reader.done():  # stopped early: the reader still records, so reports are whole
            if self.control.stopping:
                reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
        elif reader.exception() is not None:
            raise reader.exception()  # type: ignore[misc]

    # -- the disk ----------------------------------------------------------------------------

    def _free_bytes(self) -> int:
        return shutil.disk_usage(self.ledger.path.parent).free

    def _check_free_space(self, *, before_sending: bool) -> bool:
        """Whether the ledger's disk keeps the margin; before sending, InputError when not."""
        free, margin = self._free_bytes(), self.config.tuning.min_free_bytes
        if free >= margin:
            return True
        where = self.ledger.path.parent
        message = (
            f"{where}: only {free / 1e6:,.1f} MB free on its disk, under the "
            f"{margin / 1e6:,.0f} MB a run keeps in reserve: free some space"
        )
        if before_sending:
            raise InputError(message + ", or choose another output folder", setting="out_dir")
        self.control.abort(message + ", then run the same command to resume")
        return False

    def _reserve_journal(self) -> Journal:
        try:
            return Journal(self.ledger.path).reserve()
        except OSError as exc:
            raise InputError(
                f"{self.ledger.path.parent}: no room to reserve space for the answers "
                f"({exc.strerror}); free some space, or choose another output folder",
                setting="out_dir",
            ) from None

    async def _watch_free_space(self) -> None:
        """Stop taking rows before the disk fills, rather than when it has."""
        while not self.control.stopping:
            await asyncio.sleep(FREE_SPACE_EVERY)
            if not self._check_free_space(before_sending=False):
                return

    # -- what to tell ---------------------------------------------------------------------------

    def _row_done(self) -> None:
        self.done += 1
        now = time.monotonic()
        reader_done = self.rows.reader_done.is_set()
        last = self.done >= self.to_send and reader_done
        if now < self.next_progress and not last:
            return
        self.next_progress = now + PROGRESS_EVERY
        total = self.to_send if reader_done else None
        remaining = max(0, self.to_send - self.done)
        eta = self.budget.eta_seconds(remaining) if self.config.rate > 0 else None
        self.listener.progress(self.done, total, eta)

    def _warn_conflicts(self) -> None:
        """Rows of one email that say different things of the lead (consent declined in one,
        granted in another): RD Station keeps what it receives last, which nobody chose."""
        for rows in self.ledger.rows_sharing_an_email():
            fields = intake.conflicting_fields([body for _, body in rows])
            if fields:
                numbers = ", ".join(str(row) for row, _ in rows[:5])
                self._warn(
                    f"rows {numbers} have the same email and different {', '.join(fields)}: "
                    "RD Station keeps the values of the row it receives last",
                    kind="conflict",
                    row=rows[0][0],
                )

    def _warner(self, row: int) -> Callable[[str, str], None]:
        """What a row's mapping lets pass (a value dropped...), into the run's warnings."""
        return lambda kind, message: self._warn(message, kind=kind, row=row)

    def _warn(self, message: str, *, kind: str = "", row: int | None = None) -> None:
        if self.report.warn(message, kind=kind, row=row):
            self.listener.warning(message)

    def _announce_plan(self) -> None:
        rate, reader_done = self.config.rate, self.rows.reader_done.is_set()
        count = f"{self.to_send:,}" + ("" if reader_done else "+")
        eta = self.budget.eta_seconds(self.to_send) if rate > 0 and reader_done else None
        # Kept for report.html, to set beside what happened.
        self.report.plan = Plan(self.to_send, reader_done, rate, eta, self.config.sandbox)
        if eta is not None:
            ends = datetime.now().astimezone().timestamp() + eta
            ends_at = datetime.fromtimestamp(ends).strftime("%H:%M")
            self.listener.info(
                f"{count} rows to send at {rate:g}/min: about "
                f"{format_duration(eta)}; ends around {ends_at}"
            )
        elif rate > 0:
            self.listener.info(f"{count} rows to send at {rate:g}/min (still reading)")
        else:
            self.listener.info(f"{count} rows to send, unpaced")
        self.listener.progress(0, self.to_send if reader_done else None, None)

    def _finish(self) -> None:
        report, control = self.report, self.control
        report.aborted = control.reason
        report.interrupted = control.interrupted
        if self.sender is not None:
            stats = self.sender.stats
            report.requests = stats.requests
            report.retries = stats.retries
            report.rate_limited_answers = stats.rate_limited_answers
            report.timeline = stats.timeline.as_list()
            report.timeline_bucket_s = stats.timeline.width
        config, table = self.config, self.table
        write_reports(
            self.out_dir,
            self.ledger,
            report,
            table.source_headers,
            lambda: summary_dict(
                report,
                input_path=config.input_path,
                mapping_path=config.mapping_path,
                input_format=table.description,
                blank_rows=table.blank_rows,
                footer_rows=table.footer_rows,
                finished_at=utc_now(),
            ),
        )
        if config.show:
            shown_rows(self.ledger, table.headers, config.show, report)
