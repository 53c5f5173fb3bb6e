"""One import run: reader -> ledger -> paced workers -> ledger -> reports.

    run_import(config) -> RunReport

The reader streams the file, maps and validates each row and records it in the ledger in chunks
(pending, or failed with its reason); it runs ahead of the senders, so the whole file is checked
within seconds while sending starts at once. ``concurrency`` workers take pending rows in file
order; each waits for the shared rate budget, marks its row in flight, sends it, and records
the answer. Retries, pauses on 429 and the decision to stop the run live
here; what an answer means is decided in ``client``.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import fcntl
import functools
import hashlib
import os
import random
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import orjson

from importer.client import ConversionsClient, check_api_url
from importer.errors import AbortError, InputError, RowError
from importer.ledger import RESENDABLE_KINDS, UNCERTAIN, Ledger, Pending
from importer.loader import Table, open_table
from importer.mapping import Mapping, load_mapping
from importer.pacing import RateBudget
from importer.records import Failed, FailureKind, Row, Sent
from importer.report import (
    format_duration,
    private_dir,
    remove_stale_temporaries,
    write_failures,
    write_successes,
    write_summary,
)
from importer.retry import RetryPolicy

DEFAULT_API_URL = "https://api.rd.services"
MAX_BODY_BYTES = 200_000  # RD Station's documented 0.2 MB per request
LEAD_DAILY_LIMIT = 24  # the stricter of the per-lead limits RD Station documents
CHUNK = 500  # rows the reader maps and records per ledger transaction
PLAN_WAIT = 1.0  # seconds sending may wait for the reader, to print the plan first
PROGRESS_EVERY = 0.1  # seconds between progress reports: a terminal redraw costs more than a row


@dataclass
class ImportConfig:
    """Everything one run needs. Defaults are the CLI's defaults."""

    input_path: Path
    mapping_path: Path
    out_dir: Path | None = None
    api_url: str = DEFAULT_API_URL
    api_key: str | None = field(default=None, repr=False)  # a secret: kept out of any repr
    rate: float = 120.0
    concurrency: int = 8
    dry_run: bool = False
    sandbox: bool = False
    sheet: str | None = None
    encoding: str | None = None
    delimiter: str | None = None
    header_row: int = 1
    in_flight: Literal["resend", "skip"] = "resend"
    retry_rejected: bool = False
    max_attempts: int = 6
    retry_max_elapsed: float = 900.0
    retry_wait: bool = True  # False removes backoff waits (tests)
    timeout: float = 30.0
    stop_grace: float = 10.0  # seconds requests in flight get to finish after a stop
    handle_signals: bool = False  # SIGINT/SIGTERM stop the run gracefully (the CLI sets it)

    def resolved_out_dir(self) -> Path:
        return self.out_dir or Path("rd-import-out") / self.input_path.stem


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
    requests: int = 0
    retries: int = 0
    rate_limited_answers: int = 0
    failure_types: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        if self.aborted:
            return 3
        return 1 if self.failed else 0


class Listener:
    """What a run tells whoever is watching it. The CLI draws it; the default says nothing."""

    def info(self, message: str) -> None: ...

    def warning(self, message: str) -> None: ...

    def progress(self, done: int, total: int | None, eta_s: float | None) -> None: ...

    def finished(self) -> None: ...


_stamp: list[Any] = [None, ""]  # (second, its text): a run stamps thousands of rows a second


def utc_now() -> str:
    second = int(time.time())
    if second != _stamp[0]:
        _stamp[:] = [second, datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")]
    return _stamp[1]


def run_import(config: ImportConfig, listener: Listener | None = None) -> RunReport:
    """Run one import (or dry run) to its end; raise InputError before anything is sent."""
    return asyncio.run(run_import_async(config, listener))


async def run_import_async(config: ImportConfig, listener: Listener | None = None) -> RunReport:
    listener = listener or Listener()
    mapping = load_mapping(config.mapping_path)
    if config.concurrency < 1:
        raise InputError(f"--concurrency {config.concurrency}: use 1 or more")
    if config.rate < 0:
        raise InputError(f"--rate {config.rate:g}: use a number of requests per minute, 0 unpaced")
    if not (config.dry_run or config.sandbox):
        check_api_url(config.api_url)
        if not config.api_key:
            raise InputError(
                "no API key: set RDSTATION_API_KEY or pass --api-key-file PATH "
                "(validate and --sandbox need none)"
            )
    with await _open_table(config) as table:
        for warning in mapping.check_columns(table.headers, source=config.input_path.name):
            listener.warning(warning)
        for warning in table.warnings:
            listener.warning(warning)
        listener.info(f"Reading {config.input_path.name}: {table.description}")
        out_dir = private_dir(config.resolved_out_dir())
        with _exclusive(out_dir):
            remove_stale_temporaries(out_dir)  # under the lock: a run writing them owns them
            ledger = Ledger(out_dir / "ledger.sqlite")
            try:
                run = _Run(config, mapping, table, ledger, out_dir, listener)
                if config.sandbox and not config.dry_run:
                    from importer.sandbox import SandboxConfig, running_sandbox

                    async with running_sandbox(SandboxConfig(latency=0.05, seed=1)) as box:
                        listener.info(f"Sandbox: a stand-in for RD Station at {box.url}")
                        return await run.execute(box.url, "sandbox-key")
                return await run.execute(config.api_url, config.api_key or "")
            finally:
                ledger.close()


async def _open_table(config: ImportConfig) -> Table:
    """``open_table`` in a thread: a Ctrl-C while a large workbook loads (seconds) cancels this
    task, and the reading process is killed at once instead of when the load ends."""
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
def _exclusive(out_dir: Path) -> Iterator[None]:
    """One run per output folder: two at once would send the same rows twice."""
    fd = os.open(out_dir / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        os.fchmod(fd, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise InputError(
                f"{out_dir}: another rd-importer run is using this folder; wait for it to end "
                "or choose another --out"
            ) from None
        yield
    finally:
        os.close(fd)


def _row_failure(stage: str, error_type: str, message: str) -> tuple[str, str, str]:
    return stage, error_type, message


# client.conversion_body's wrapper with its keys sorted: the sorted payload's JSON, which keys
# the row in the ledger, is then also the body's middle, and a row is encoded once, not twice.
_BODY_HEAD = b'{"event_family":"CDP","event_type":"CONVERSION","payload":'
_BODY_TAIL = b"}"


def keyed_body(payload: dict[str, Any]) -> tuple[str, bytes]:
    """(ledger key, request body) of a payload: the key hashes the payload's JSON with sorted
    keys, so a mapping whose fields are reordered still finds the rows it sent."""
    encoded = orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)
    key = hashlib.blake2b(encoded, digest_size=16).hexdigest()
    return key, _BODY_HEAD + encoded + _BODY_TAIL


class _Marks:
    """The workers' ledger writes, committed together once per event-loop turn.

    A commit costs more than the few updates a row needs, and unpaced, many workers move in the
    same turn. ``now`` returns only once its write is committed: a request never leaves before
    its row is durably in flight. ``later`` writes behind, at the end of the same turn (so an
    answer is on disk a moment after it arrived), in the order the writes were made.
    """

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger
        self._writes: list[tuple[Callable[..., None], tuple[Any, ...]]] = []
        self._waiters: list[asyncio.Future[None]] = []
        self._scheduled = False
        self._error: Exception | None = None

    def later(self, write: Callable[..., None], *args: Any) -> None:
        if self._error is not None:
            raise self._error
        self._writes.append((write, args))
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._flush_soon)

    async def now(self, write: Callable[..., None], *args: Any) -> None:
        self.later(write, *args)
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        await waiter

    def flush(self) -> None:
        """Commit what is waiting; raise what went wrong in this or an earlier commit."""
        self._flush_soon()
        if self._error is not None:
            raise self._error

    def _flush_soon(self) -> None:
        # Called by the event loop: an error is kept for the writers, not raised into the loop.
        self._scheduled = False
        writes, self._writes = self._writes, []
        waiters, self._waiters = self._waiters, []
        if writes and self._error is None:
            try:
                with self._ledger.transaction():
                    for write, args in writes:
                        write(*args)
            except Exception as exc:
                self._error = exc
        for waiter in waiters:
            if not waiter.done():
                if self._error is None:
                    waiter.set_result(None)
                else:
                    waiter.set_exception(self._error)


class _Run:
    def __init__(
        self,
        config: ImportConfig,
        mapping: Mapping,
        table: Table,
        ledger: Ledger,
        out_dir: Path,
        listener: Listener,
    ):
        self.config = config
        self.mapping = mapping
        self.table = table
        self.ledger = ledger
        self.out_dir = out_dir
        self.listener = listener
        self.report = RunReport(out_dir=out_dir, dry_run=config.dry_run)
        self.reader_done = asyncio.Event()
        self.more_pending = asyncio.Event()
        self.to_send = 0  # rows the reader queued for sending in this run
        self.done = 0  # rows the senders finished (sent or failed)
        self.stopping = False
        self.lead_limited: set[str] = set()
        self.consecutive_unreachable = 0
        self.last_transient: Failed | None = None
        self.budget = RateBudget(config.rate)
        self.retry = RetryPolicy(
            max_attempts=config.max_attempts,
            max_elapsed=config.retry_max_elapsed,
            wait=config.retry_wait,
            rng=random.Random(),
        )
        self.requesting: set[asyncio.Task[Any]] = set()
        self.marks = _Marks(ledger)
        self.buffered: collections.deque[Pending] = collections.deque()  # fetched, not taken
        self.dispatched_to = 0  # the last row fetched from the ledger for the workers
        self.next_progress = 0.0  # monotonic time of the next progress report

    # -- the whole run -------------------------------------------------------------------------

    async def execute(self, api_url: str, api_key: str) -> RunReport:
        started = time.monotonic()
        self.ledger.begin_run(self.config.input_path, utc_now(), dry_run=self.config.dry_run)
        reader = asyncio.create_task(self._read())
        try:
            if self.config.dry_run:
                await reader
                self.listener.info("Dry run: nothing was sent.")
            else:
                with self._signals():
                    await self._send_all(reader, api_url, api_key)
        except BaseException:
            reader.cancel()
            with contextlib.suppress(BaseException):
                await reader
            raise
        finally:
            self.report.duration_s = round(time.monotonic() - started, 3)
            self.listener.finished()
        self._write_reports()
        return self.report

    @contextlib.contextmanager
    def _signals(self) -> Iterator[None]:
        if not self.config.handle_signals:
            yield
            return
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._on_signal, sig)
        try:
            yield
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)

    def _on_signal(self, sig: int) -> None:
        if self.stopping:  # a second Ctrl-C: stop waiting for the requests in flight
            for task in self.requesting:
                task.cancel()
            return
        name = "Ctrl-C" if sig == signal.SIGINT else "SIGTERM"
        self.report.interrupted = True
        self.abort(f"interrupted ({name})")

    def abort(self, reason: str) -> None:
        if not self.stopping:
            self.stopping = True
            self.report.aborted = reason
            self.more_pending.set()

    # -- the reader ----------------------------------------------------------------------------

    async def _read(self) -> None:
        chunk: list[Row] = []
        try:
            try:
                for row in self.table.rows():
                    chunk.append(row)
                    if len(chunk) >= CHUNK:
                        self._record(chunk)
                        chunk = []
                        await asyncio.sleep(0)  # let the senders run between chunks
            except AbortError as exc:  # reading stopped mid-file (a workbook's reader was killed)
                if chunk:
                    self._record(chunk)
                self.abort(str(exc))
                return
            if chunk:
                self._record(chunk)
        finally:
            self.reader_done.set()
            self.more_pending.set()
        over = self.ledger.emails_over(LEAD_DAILY_LIMIT)
        if over:
            self._warn(
                f"{len(over)} email(s) have more than {LEAD_DAILY_LIMIT} rows to send; RD Station "
                f"accepts about {LEAD_DAILY_LIMIT} conversions per lead a day, so the rest will "
                "fail with LEAD_LIMITED and can be resumed tomorrow"
            )

    def _record(self, rows: list[Row]) -> None:
        prepared: list[tuple[Row, bytes, str, bytes, dict[str, Any]]] = []
        failed: list[tuple[str, int, bytes, str, str, str, str | None]] = []
        dumps = orjson.dumps
        prepare = self._prepare
        for row in rows:
            cells = dumps(list(row.cells.values()))
            outcome = prepare(row)
            if isinstance(outcome[0], str):  # (stage, error type, message)
                stage, etype, message = outcome  # type: ignore[misc]
                failed.append((f"row:{row.number}", row.number, cells, stage, etype, message, None))
                continue
            payload, key, body = outcome  # type: ignore[misc]
            prepared.append((row, body, key, cells, payload))

        known = self.ledger.lookup([p[2] for p in prepared])
        new: list[tuple[str, int, bytes, bytes, str, str]] = []
        seen: list[tuple[int, bytes, str]] = []
        resend: list[tuple[str, bytes]] = []
        keys_this_chunk: dict[str, int] = {}
        run = self.ledger.run_id
        for row, body, key, cells, payload in prepared:
            first = keys_this_chunk.get(key)
            state = known.get(key)
            if first is None and state is not None and state[1] == run:
                first = state[2]
            if first is not None:
                failed.append(
                    (
                        f"dup:{row.number}",
                        row.number,
                        cells,
                        "validation",
                        "DUPLICATE_ROW",
                        f"row {row.number} is identical to row {first}: not sent twice",
                        payload.get("conversion_identifier"),
                    )
                )
                continue
            keys_this_chunk[key] = row.number
            if state is None:
                new.append(
                    (
                        key,
                        row.number,
                        body,
                        cells,
                        payload["email"],
                        payload["conversion_identifier"],
                    )
                )
                self.to_send += 1
                continue
            status, _, _, kind = state
            seen.append((row.number, cells, key))
            if status == "pending":
                self.to_send += 1
            elif status == "in_flight" or (status == "failed" and kind == UNCERTAIN):
                self.report.in_flight_found += 1
                if self.config.in_flight == "resend":
                    resend.append((key, body))
                    self.to_send += 1
                else:
                    failed.append(
                        (
                            key,
                            row.number,
                            cells,
                            "api",
                            "IN_FLIGHT_UNKNOWN",
                            "was being sent when an earlier run stopped; it may have been "
                            "recorded, so it was not sent again (--in-flight skip)",
                            payload["conversion_identifier"],
                        )
                    )
            elif status == "failed" and (kind in RESENDABLE_KINDS or self.config.retry_rejected):
                resend.append((key, body))
                self.to_send += 1
        self.ledger.record_chunk(new, seen, resend, failed)
        self.more_pending.set()

    def _prepare(self, row: Row) -> tuple[str, str, str] | tuple[dict[str, Any], str, bytes]:
        """(stage, error type, message) of a row that fails, else (payload, key, body)."""
        if row.error:
            return _row_failure("read", "READ_ERROR", row.error)
        try:
            payload = self.mapping.apply(row)
        except RowError as exc:
            etype = "MAPPING_ERROR" if exc.stage == "mapping" else "VALIDATION_ERROR"
            return _row_failure(exc.stage, etype, exc.message)
        key, body = keyed_body(payload)
        if len(body) > MAX_BODY_BYTES:
            return _row_failure(
                "validation",
                "TOO_LARGE",
                f"the request would be {len(body):,} bytes; RD Station accepts at most "
                f"{MAX_BODY_BYTES:,} (0.2 MB): shorten the longest cells",
            )
        return payload, key, body

    # -- the senders ---------------------------------------------------------------------------

    async def _send_all(self, reader: asyncio.Task[None], api_url: str, api_key: str) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self.reader_done.wait()), PLAN_WAIT)
        self._announce_plan()
        async with ConversionsClient(
            api_url,
            api_key,
            timeout=self.config.timeout,
            max_connections=self.config.concurrency,
        ) as client:
            workers = [
                asyncio.create_task(self._worker(client)) for _ in range(self.config.concurrency)
            ]
            try:
                await self._wait_for_workers(workers)
            finally:
                for task in workers:
                    task.cancel()
                await asyncio.gather(*workers, return_exceptions=True)
                self.marks.flush()
        if not reader.done():  # stopped early: the reader still records, so reports are whole
            if self.stopping:
                reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
        elif reader.exception() is not None:
            raise reader.exception()  # type: ignore[misc]

    async def _next_row(self) -> Pending | None:
        """The next pending row, in file order, for the calling worker; None when none are left.

        Workers take rows from a shared buffer they refill from the ledger themselves: a
        dispatcher task between them and a queue cost a task switch per row.
        """
        buffered = self.buffered
        while not self.stopping:
            if buffered:
                return buffered.popleft()
            batch = self.ledger.next_pending(self.dispatched_to, 256)
            if batch:
                self.dispatched_to = batch[-1].row
                buffered.extend(batch)
                continue
            if self.reader_done.is_set():
                return None
            # Nothing recorded yet past dispatched_to (checked just now): wait for the reader.
            self.more_pending.clear()
            await self.more_pending.wait()
        return None

    async def _wait_for_workers(self, workers: list[asyncio.Task[None]]) -> None:
        pending = set(workers)
        while pending:
            done, pending = await asyncio.wait(pending, timeout=0.2)
            for task in done:
                if not task.cancelled() and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
            if self.stopping:
                # Workers waiting for a row, a slot or a backoff hold no request: stop them
                # now; requests already sent get a grace period to bring their answers home.
                for task in pending:
                    if task not in self.requesting:
                        task.cancel()
                deadline = time.monotonic() + self.config.stop_grace
                while self.requesting and time.monotonic() < deadline:
                    await asyncio.sleep(0.05)
                for task in pending:
                    task.cancel()
                await asyncio.gather(*pending, return_exceptions=True)
                return

    async def _worker(self, client: ConversionsClient) -> None:
        me = asyncio.current_task()
        assert me is not None
        while True:
            item = await self._next_row()
            if item is None or self.stopping:
                return
            await self._send_row(item, client, me)

    async def _send_row(
        self, item: Pending, client: ConversionsClient, me: asyncio.Task[Any]
    ) -> None:
        ledger, marks = self.ledger, self.marks
        if item.email in self.lead_limited:
            self._row_failed(
                item,
                Failed(
                    FailureKind.LEAD_LIMITED,
                    None,
                    "LEAD_LIMITED",
                    "not sent: RD Station refused an earlier row of this email with its per-lead "
                    "limit in this run; run the same command tomorrow to send it",
                ),
                item.attempts,
            )
            return
        attempts = item.attempts
        tries = 0  # attempts that count against the retry policy (429s do not)
        first_at = time.monotonic()
        answered = True  # did the last attempt get an answer? (else it may have been recorded)
        maybe_recorded = False  # did any attempt go unanswered?
        try:
            while True:
                await self.budget.acquire()
                if self.stopping:
                    return
                attempts += 1
                tries += 1
                await marks.now(ledger.mark_in_flight, item.key, attempts)
                if self.stopping:  # stopped while the mark was committed: nothing left
                    marks.later(ledger.mark_pending, item.key)
                    return
                self.report.requests += 1
                self.requesting.add(me)
                answered = False  # cancelled before the answer: the request may be recorded
                try:
                    result = await client.post_conversion(item.body)
                finally:
                    self.requesting.discard(me)
                if isinstance(result, Sent):
                    marks.later(ledger.mark_sent, item.key, result.event_uuid, utc_now(), attempts)
                    self.budget.on_accepted()
                    self.consecutive_unreachable = 0
                    self._row_done()
                    return
                answered = result.http_status is not None
                maybe_recorded = maybe_recorded or not answered
                kind = result.kind
                if kind is FailureKind.RATE_LIMITED:
                    self.report.rate_limited_answers += 1
                    self.budget.on_rate_limited(result.retry_after)
                    marks.later(ledger.mark_pending, item.key)
                    tries -= 1
                    continue
                self.budget.on_accepted()
                if kind is FailureKind.TRANSIENT:
                    elapsed = time.monotonic() - first_at
                    if self.retry.should_retry(tries, elapsed) and not self.stopping:
                        self.report.retries += 1
                        if answered:
                            marks.later(ledger.mark_pending, item.key)
                        await asyncio.sleep(self.retry.delay(tries))
                        continue
                    self._row_failed(item, result, attempts, maybe_recorded=maybe_recorded)
                    self._count_unreachable(result)
                    return
                if kind in (FailureKind.AUTH_REFUSED, FailureKind.FATAL):
                    marks.later(ledger.mark_pending, item.key)  # refused: nothing recorded
                    self.abort(result.message)
                    return
                if kind is FailureKind.LEAD_LIMITED:
                    self.lead_limited.add(item.email)
                self.consecutive_unreachable = 0
                self._row_failed(item, result, attempts)
                return
        except asyncio.CancelledError:
            if answered:
                marks.later(ledger.mark_pending, item.key)
            raise

    def _row_failed(
        self, item: Pending, failed: Failed, attempts: int, *, maybe_recorded: bool = False
    ) -> None:
        # A row whose unanswered attempt may have been recorded is, for the next run, like a row
        # in flight when a run died: counted as such, and not resent under --in-flight skip.
        message = failed.message
        if maybe_recorded:
            message += "; an attempt got no answer, so RD Station may have recorded it"
        self.marks.later(
            functools.partial(
                self.ledger.mark_failed,
                item.key,
                http_status=failed.http_status,
                error_type=failed.error_type,
                message=message,
                attempts=attempts,
                kind=UNCERTAIN if maybe_recorded else failed.kind.value,
            )
        )
        self._row_done()

    def _count_unreachable(self, failed: Failed) -> None:
        """Stop when RD Station has been unreachable for many rows in a row: failing the whole
        file one row at a time would only spend hours of retries."""
        self.consecutive_unreachable += 1
        limit = max(10, 2 * self.config.concurrency)
        if self.consecutive_unreachable >= limit:
            self.abort(
                f"RD Station could not be reached for {limit} rows in a row "
                f"(last: {failed.message}); run the same command later to resume"
            )

    def _row_done(self) -> None:
        self.done += 1
        now = time.monotonic()
        last = self.done >= self.to_send and self.reader_done.is_set()
        if now < self.next_progress and not last:
            return
        self.next_progress = now + PROGRESS_EVERY
        total = self.to_send if self.reader_done.is_set() else None
        remaining = max(0, self.to_send - self.done)
        eta = self.budget.eta_seconds(remaining) if self.config.rate > 0 else None
        self.listener.progress(self.done, total, eta)

    # -- what to tell ---------------------------------------------------------------------------

    def _warn(self, message: str) -> None:
        self.report.warnings.append(message)
        self.listener.warning(message)

    def _announce_plan(self) -> None:
        count = f"{self.to_send:,}" + ("" if self.reader_done.is_set() else "+")
        if self.config.rate > 0 and self.reader_done.is_set():
            seconds = self.budget.eta_seconds(self.to_send)
            ends = datetime.now().astimezone().timestamp() + seconds
            ends_at = datetime.fromtimestamp(ends).strftime("%H:%M")
            self.listener.info(
                f"{count} rows to send at {self.config.rate:g}/min: about "
                f"{format_duration(seconds)}; ends around {ends_at}"
            )
        elif self.config.rate > 0:
            self.listener.info(f"{count} rows to send at {self.config.rate:g}/min (still reading)")
        else:
            self.listener.info(f"{count} rows to send, unpaced")
        self.listener.progress(0, self.to_send if self.reader_done.is_set() else None, None)

    def _write_reports(self) -> None:
        ledger = self.ledger
        counts = ledger.counts()
        report = self.report
        report.rows = counts.rows
        report.failed = counts.failed
        report.already_sent = counts.already_sent
        report.left_to_send = counts.unsent
        if self.config.dry_run:
            report.succeeded = counts.unsent  # rows an import would send
            report.skipped = counts.already_sent
            write_successes(self.out_dir / "successes.csv", ledger.would_send())
        else:
            report.succeeded = counts.succeeded
            report.skipped = counts.already_sent + counts.unsent
            write_successes(self.out_dir / "successes.csv", ledger.successes())
        report.failure_types = ledger.failure_types()
        write_failures(self.out_dir / "failures.csv", self.table.source_headers, ledger.failures())
        write_summary(self.out_dir / "summary.json", summary_dict(self.config, report, self.table))


def summary_dict(config: ImportConfig, report: RunReport, table: Table) -> dict[str, Any]:
    return {
        "rows": report.rows,
        "succeeded": report.succeeded,
        "failed": report.failed,
        "skipped": report.skipped,
        "duration_s": report.duration_s,
        "status": "aborted" if report.aborted else "completed",
        "exit_status": report.exit_code,
        "aborted_reason": report.aborted,
        "dry_run": report.dry_run,
        "input": str(config.input_path),
        "input_format": table.description,
        "mapping": str(config.mapping_path),
        "finished_at": utc_now(),
        "already_sent": report.already_sent,
        "left_to_send": report.left_to_send if not report.dry_run else 0,
        "would_send": report.succeeded if report.dry_run else None,
        "in_flight_found": report.in_flight_found,
        "requests": report.requests,
        "retries": report.retries,
        "rate_limited_answers": report.rate_limited_answers,
        "failure_types": report.failure_types,
        "blank_rows": table.blank_rows,
        "footer_rows": table.footer_rows,
        "warnings": report.warnings,
    }
