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
import functools
import sqlite3
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from importer import account_fields, batches, contacts, funnel, oauth
from importer.client import ConversionsClient
from importer.config import DEFAULT_API_URL, ImportConfig, Listener, Tuning
from importer.ledger import Ledger, Marks
from importer.loader import Table, open_table
from importer.mapping import BoundMapping, Mapping, load_mapping
from importer.outfolder import DiskGuard, disk_error, exclusive, refuse_reading_a_report
from importer.pacing import RateBudget
from importer.reading import Reader
from importer.records import Failed, Sent
from importer.report import (
    Plan,
    RunReport,
    format_duration,
    private_dir,
    remove_stale_temporaries,
    shown_rows,
    summary_dict,
    write_reports,
)
from importer.sending import PendingRows, RunControl, Sender, SendStats
from importer.stop_rules import StopRules

__all__ = [
    "DEFAULT_API_URL",
    "ImportConfig",
    "Listener",
    "RunControl",
    "RunReport",
    "Tuning",
    "run_import",
    "run_import_async",
]

PLAN_WAIT = 1.0  # seconds sending may wait for the reader, to print the plan first
PROGRESS_EVERY = 0.1  # seconds between progress reports: a terminal redraw costs more than a row


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
    refuse_reading_a_report(config, out_dir)
    mapping = config.mapping if config.mapping is not None else load_mapping(config.mapping_path)
    with await _open_table(config) as table:
        bound = mapping.bind(
            table.headers,
            source=config.input_path.name,
            first_rows=table.first_rows,
            header_row=config.header_row,
        )
        notes = funnel.check_auth(mapping, bound, config.auth)  # funnel: under the API key
        # Said now, and kept in the report once the run begins.
        early = [
            *bound.warnings,
            *table.warnings,
            *table.hidden_columns_read(bound.columns_read),
            *notes,
        ]
        for warning in early:
            listener.warning(warning)
        listener.info(f"Reading {config.input_path.name}: {table.description}")
        run: _Run | None = None
        try:
            async with contextlib.AsyncExitStack() as stack:
                api_url, api_key = config.api_url, config.api_key or ""
                tokens: oauth.TokenStore | None = None  # --auth oauth: else the token file
                # A dry run with OAuth still asks its sandbox for the account's fields.
                if config.sandbox and (not config.dry_run or config.auth == "oauth"):
                    from importer.sandbox import SandboxConfig, running_sandbox

                    box = await stack.enter_async_context(
                        running_sandbox(
                            SandboxConfig(latency=0.05, seed=1, every_contact_exists=True)
                        )
                    )
                    listener.info(f"Sandbox: a stand-in for RD Station at {box.url}")
                    api_url, api_key = box.url, "sandbox-key"
                    if config.auth == "oauth":
                        tokens = await oauth.sign_in_headless(box.url)
                # Before the out folder is opened: a mapping the account refuses (exit 2)
                # leaves no folder or ledger behind, as the mapping's own checks do.
                account = None
                if config.auth == "oauth":
                    account = await _read_account(
                        config, mapping, table.headers, api_url, tokens, listener
                    )
                    early += account.warnings
                stack.enter_context(exclusive(private_dir(out_dir)))
                remove_stale_temporaries(out_dir)  # under the lock: a run writing them owns them
                ledger_path = config.ledger_path or out_dir / "ledger.sqlite"
                if ledger_path.parent != out_dir:  # shared by several report folders (watch)
                    stack.enter_context(exclusive(private_dir(ledger_path.parent), ledger_path))
                ledger = Ledger(ledger_path)
                stack.callback(ledger.close)
                run = _Run(config, bound, table, ledger, out_dir, listener, control, early)
                run.tokens = tokens
                if account is not None:
                    run.use_account(account)
                return await run.execute(api_url, api_key)
        except (OSError, sqlite3.Error) as exc:
            raise disk_error(exc, out_dir, sent=run is not None and run.requests() > 0) from None


@dataclass
class _Account:
    """What ``_read_account`` found: the check of each row's cells, or why none is possible."""

    check_cells: account_fields.CellCheck | None = None
    unreadable: str = ""  # the list could not be read: the run stops before sending
    warnings: list[str] = field(default_factory=list)  # said already


async def _read_account(
    config: ImportConfig,
    mapping: Mapping,
    headers: Sequence[str],
    api_url: str,
    tokens: oauth.TokenStore | None,
    listener: Listener,
) -> _Account:
    """--auth oauth: the account's fields, read before the out folder is opened. A custom field
    of the mapping the account lacks, or a value it writes that its field refuses, stops the
    run (InputError); each row's custom fields are then checked against the account's as the
    reader maps it. A list that cannot be read (the sign-in refused, RD Station unreachable)
    stops the run before sending, resumably, as a token refused at the first row does: the
    file is still read, and reported."""
    waits = account_fields.WAITS if config.tuning.retry_wait else ()
    try:
        account = await account_fields.account_of(
            api_url, tokens or oauth.TokenFile(), timeout=config.tuning.timeout, waits=waits
        )
    except account_fields.FieldsError as exc:
        return _Account(unreadable=str(exc))
    found = _Account()
    if account.problems:  # the fields it could read are checked; these are not
        shown = "; ".join(account.problems[:3])
        more = f" (and {len(account.problems) - 3} more)" if len(account.problems) > 3 else ""
        found.warnings.append(f"RD Station's list of the account's fields: {shown}{more}")
        listener.warning(found.warnings[-1])
    listener.info(f"RD Station account: {account.summary()}")
    account_fields.check_mapping(mapping, account)
    found.check_cells = account_fields.cell_check(mapping, account, headers)
    return found


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
            skip_hidden_rows=config.skip_hidden_rows,
            on_reader=readers.append,
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
        self.funnel_stats: SendStats | None = None  # the funnel steps' phase (importer.funnel)
        self.reader = Reader(
            config, mapping, table, ledger, self.rows, self.report, self.control, self._warn
        )
        self.tokens: oauth.TokenStore | None = None  # --auth oauth: else the token file
        self.had_sent = False  # the ledger held sent rows before this run
        self.done = 0  # rows the senders finished (sent or failed)
        self.next_progress = 0.0  # monotonic time of the next progress report

    def use_account(self, account: _Account) -> None:
        """--auth oauth: check each row's cells as the reader maps it, or stop before sending
        when the account's fields could not be read (``_read_account``)."""
        if account.unreadable:
            self.control.abort(account.unreadable)
        self.reader.check_cells = account.check_cells

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
        reader = asyncio.create_task(self.reader.read())
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

    # -- sending -------------------------------------------------------------------------------

    async def _send(self, reader: asyncio.Task[None], api_url: str, api_key: str) -> None:
        config, tuning = self.config, self.config.tuning
        if self.had_sent and config.changed is None:
            # Rows an earlier run sent may now have another payload: the whole file is checked
            # before the first request, so the run can stop with nothing sent.
            await asyncio.shield(self.rows.reader_done.wait())
            if self.report.changed_rows:
                raise self.reader.changed_error(self.out_dir)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self.rows.reader_done.wait()), PLAN_WAIT)
        disk = DiskGuard(self.ledger.path, config.tuning.min_free_bytes, self.control.abort)
        disk.check_before_sending()
        journal = disk.reserve_journal()
        marks = Marks(self.ledger, journal, on_broken=self.control.abort)
        self._announce_plan()
        watching_disk = asyncio.create_task(disk.watch())
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
            transport: Callable[[bytes], Awaitable[Sent | Failed]] = client.post_conversion
            if config.send_as == "contacts":
                transport = contacts.contact_transport(client)
            sender = batches.make_sender(config.batch, client.request, self.listener.info)
            self.sender = sender(
                transport=transport,
                rows=self.rows,
                marks=marks,
                control=self.control,
                budget=self.budget,
                retry=tuning.retry_policy(),
                concurrency=config.concurrency,
                stop_grace=tuning.stop_grace,
                now=utc_now,
                row_done=self._row_done,
                rules=StopRules(api_url=api_url, concurrency=config.concurrency),
                warn=lambda kind, message: self._warn(message, kind=kind),
            )
            await self.sender.run()
            if not self.control.stopping and self.ledger.funnel_to_send():
                await self._send_funnel(client, api_url)
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

    async def _send_funnel(self, client: object, api_url: str) -> None:
        """The funnel steps of the rows whose conversion is recorded (``importer.funnel``)."""
        config, tuning = self.config, self.config.tuning
        count = self.ledger.funnel_to_send()
        self.listener.info(f"Setting the funnel of {count:,} contact(s)")
        self.funnel_stats = await funnel.send_funnel_steps(
            ledger=self.ledger,
            client=client,
            control=self.control,
            budget=self.budget,
            retry=tuning.retry_policy(),
            concurrency=config.concurrency,
            stop_grace=tuning.stop_grace,
            now=utc_now,
            api_url=api_url,
            wait=tuning.funnel_not_found_wait,
            warn=lambda kind, message: self._warn(message, kind=kind),
        )

    # -- what to tell ---------------------------------------------------------------------------

    def _row_done(self) -> None:
        self.done += 1
        now = time.monotonic()
        reader_done = self.rows.reader_done.is_set()
        last = self.done >= self.reader.to_send and reader_done
        if now < self.next_progress and not last:
            return
        self.next_progress = now + PROGRESS_EVERY
        total = self.reader.to_send if reader_done else None
        remaining = max(0, self.reader.to_send - self.done)
        units = batches.budget_units(remaining, self.sender, self.config.batch)
        eta = self.budget.eta_seconds(units) if self.config.rate > 0 else None
        self.listener.progress(self.done, total, eta)

    def _warn(self, message: str, *, kind: str = "", row: int | None = None) -> None:
        if self.report.warn(message, kind=kind, row=row):
            self.listener.warning(message)

    def _announce_plan(self) -> None:
        rate, reader_done = self.config.rate, self.rows.reader_done.is_set()
        count = f"{self.reader.to_send:,}" + ("" if reader_done else "+")
        units = batches.budget_units(self.reader.to_send, None, self.config.batch)
        eta = self.budget.eta_seconds(units) if rate > 0 and reader_done else None
        # Kept for report.html, to set beside what happened.
        self.report.plan = Plan(self.reader.to_send, reader_done, rate, eta, self.config.sandbox)
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
        if self.config.batch:
            single = self.budget.eta_seconds(self.reader.to_send) if eta is not None else None
            self.listener.info(batches.plan_note(self.config.batch, rate, single))
        self.listener.progress(0, self.reader.to_send if reader_done else None, None)

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
            report.batch_cost, report.batches = batches.report_of(self.sender)
        if self.funnel_stats is not None:  # the funnel phase's requests count as requests
            report.requests += self.funnel_stats.requests
            report.retries += self.funnel_stats.retries
            report.rate_limited_answers += self.funnel_stats.rate_limited_answers
        report.funnel = self.ledger.funnel_counts()
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
