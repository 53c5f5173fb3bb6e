"""Sending: the worker pool, the retry loop, and what stops a run.

    Sender(transport, ...).run()     concurrency workers take pending rows in file order; each
                                     waits for the rate budget, marks its row in flight (durably),
                                     sends it through ``transport`` and records the answer
    RunControl                       whether the run is stopping and why; signals
    stop_rules.StopRules             when the answers of many rows say the trouble is not the
                                     rows (unreachable, silent, a wrong address, not RD Station)

``transport`` is any ``async (body) -> Sent | Failed``: the run passes its client's
``post_conversion``, tests a plain function. What a failure means for the row is its kind's
business (``FailureKind.retry_now``); what an answer means is the client's.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import signal
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field

from importer.ledger import Ledger, Marks, Pending
from importer.pacing import RateBudget
from importer.records import Failed, FailureKind, Sent
from importer.retry import RetryPolicy
from importer.stop_rules import StopRules

Transport = Callable[[bytes], Awaitable[Sent | Failed]]
FETCH = 256  # pending rows the workers take from the ledger at a time


class RunControl:
    """Whether the run is stopping and why, shared by the reader, the workers and whoever stops
    it: a signal handler (``signals()``, for the CLI) or a ``watch`` that owns the signals and
    calls ``interrupt``."""

    def __init__(self, *, handle_signals: bool = False) -> None:
        self.handle_signals = handle_signals
        self.stopping = False
        self.reason: str | None = None
        self.interrupted = False  # stopped by SIGINT/SIGTERM
        self.sending = False  # requests may be in flight: a stop must let them finish
        self.reporting = False  # sending is over; the run is writing its reports
        self.requesting: set[asyncio.Task[object]] = set()  # workers waiting on an answer
        self._on_stop: list[Callable[[], None]] = []

    def stopped(self) -> bool:
        """``stopping``, read anew (after an await, where it may have changed)."""
        return self.stopping

    def abort(self, reason: str) -> None:
        """Stop taking rows; requests in flight get a grace period to bring their answers."""
        if not self.stopping:
            self.stopping = True
            self.reason = reason
            for wake in self._on_stop:
                wake()

    def interrupt(self, name: str) -> None:
        """A Ctrl-C or SIGTERM: the first stops the run gracefully, a second stops waiting for
        the requests in flight."""
        if self.stopping:
            for task in self.requesting:
                task.cancel()
            return
        self.interrupted = True
        self.abort(f"interrupted ({name})")

    def on_stop(self, wake: Callable[[], None]) -> None:
        self._on_stop.append(wake)

    def signals(self) -> contextlib.AbstractContextManager[None]:
        """SIGINT/SIGTERM stop the run gracefully while inside, when ``handle_signals``."""
        return stopping_signals(self.interrupt if self.handle_signals else None)


@contextlib.contextmanager
def stopping_signals(on_stop: Callable[[str], None] | None) -> Iterator[None]:
    """While inside, SIGINT and SIGTERM call ``on_stop("Ctrl-C")`` / ``on_stop("SIGTERM")`` on the
    event loop instead of raising; ``None``: the signals are left as they are."""
    if on_stop is None:
        yield
        return
    loop = asyncio.get_running_loop()
    names = {signal.SIGINT: "Ctrl-C", signal.SIGTERM: "SIGTERM"}
    for sig, name in names.items():
        loop.add_signal_handler(sig, on_stop, name)
    try:
        yield
    finally:
        for sig in names:
            loop.remove_signal_handler(sig)


class PendingRows:
    """The rows still to send, in file order, fetched from the ledger as the reader records
    them. Workers take rows from a shared buffer they refill themselves: a dispatcher task
    between them and a queue cost a task switch per row."""

    def __init__(self, ledger: Ledger, control: RunControl) -> None:
        self._ledger = ledger
        self._control = control
        self._buffered: collections.deque[Pending] = collections.deque()
        self._fetched_to = 0  # the last row fetched
        self.reader_done = asyncio.Event()
        self._more = asyncio.Event()
        control.on_stop(self._more.set)

    def recorded(self) -> None:
        """The reader recorded more rows."""
        self._more.set()

    def reading_ended(self) -> None:
        self.reader_done.set()
        self._more.set()

    async def next(self) -> Pending | None:
        """The next row to send; None when none are left or the run is stopping."""
        buffered = self._buffered
        while not self._control.stopping:
            if buffered:
                return buffered.popleft()
            batch = self._ledger.next_pending(self._fetched_to, FETCH)
            if batch:
                self._fetched_to = batch[-1].row
                buffered.extend(batch)
                continue
            if self.reader_done.is_set():
                return None
            # Nothing recorded yet past what was fetched (checked just now): wait for the reader.
            self._more.clear()
            await self._more.wait()
        return None

    def ready(self) -> Pending | None:
        """The next row to send if one is recorded already, else None, without waiting (a
        batch takes what is there rather than wait for the reader)."""
        buffered = self._buffered
        if not buffered and not self._control.stopping:
            batch = self._ledger.next_pending(self._fetched_to, FETCH)
            if batch:
                self._fetched_to = batch[-1].row
                buffered.extend(batch)
        return buffered.popleft() if buffered and not self._control.stopping else None


TIMELINE_BUCKET_S = 10.0  # the timeline's first bucket width
TIMELINE_BUCKETS = 300  # at most this many buckets: past it, they are widened


class Timeline:
    """Requests, 429 answers and retries per time bucket since sending started: what
    report.html draws against the budget and summary.json keeps as ``timeline``.

    Buckets start ``width`` seconds wide; when a run outlasts ``limit`` of them, neighbours are
    merged and the width doubles, so a 14-hour run keeps between limit/2 and limit buckets
    (never a list that grows with the run).
    """

    REQUESTS, RATE_LIMITED, RETRIES = 0, 1, 2

    def __init__(
        self,
        *,
        width: float = TIMELINE_BUCKET_S,
        limit: int = TIMELINE_BUCKETS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.width = width
        self.limit = max(2, limit)
        self.clock = clock
        self.started: float | None = None
        self.buckets: list[list[int]] = []  # [requests, rate_limited, retries] per bucket

    def start(self) -> None:
        """Sending starts now (the first count starts it too)."""
        if self.started is None:
            self.started = self.clock()

    def count(self, what: int) -> None:
        self._bucket()[what] += 1

    def stop(self) -> None:
        """Sending ended now: the buckets reach this moment, even with nothing in the last."""
        if self.started is not None:
            self._bucket()

    def _bucket(self) -> list[int]:
        now = self.clock()
        if self.started is None:
            self.started = now
        elapsed = now - self.started
        index = int(elapsed // self.width)
        while index >= self.limit:
            self._widen()
            index = int(elapsed // self.width)
        buckets = self.buckets
        while len(buckets) <= index:
            buckets.append([0, 0, 0])
        return buckets[index]

    def _widen(self) -> None:
        old = self.buckets
        self.buckets = [
            [sum(n) for n in zip(*old[i : i + 2], strict=False)] for i in range(0, len(old), 2)
        ]
        self.width *= 2

    def as_list(self) -> list[dict[str, float | int]]:
        """summary.json's ``timeline``: each bucket's start (seconds since sending started)
        and its counts; buckets with nothing in them are kept, so a pause shows."""
        return [
            {"t": round(i * self.width, 3), "requests": r, "rate_limited": q, "retries": x}
            for i, (r, q, x) in enumerate(self.buckets)
        ]


@dataclass(slots=True)
class SendStats:
    requests: int = 0
    retries: int = 0
    rate_limited_answers: int = 0
    timeline: Timeline = field(default_factory=Timeline)

    def request(self) -> None:
        self.requests += 1
        self.timeline.count(Timeline.REQUESTS)

    def rate_limited(self) -> None:
        self.rate_limited_answers += 1
        self.timeline.count(Timeline.RATE_LIMITED)

    def retry(self) -> None:
        self.retries += 1
        self.timeline.count(Timeline.RETRIES)


LEAD_LIMITED_EARLIER = Failed(
    FailureKind.LEAD_LIMITED,
    None,
    "LEAD_LIMITED",
    "not sent: RD Station refused an earlier row of this email with its per-lead limit in this "
    "run; run the same command tomorrow to send it",
)
MAYBE_RECORDED = "; an attempt got no answer, so RD Station may have recorded it"


class Sender:
    """The worker pool: ``concurrency`` workers send the pending rows until none are left or
    the run stops. ``row_done`` is called once per row that ends (sent or failed)."""

    def __init__(
        self,
        *,
        transport: Transport,
        rows: PendingRows,
        marks: Marks,
        control: RunControl,
        budget: RateBudget,
        retry: RetryPolicy,
        concurrency: int,
        stop_grace: float,
        now: Callable[[], str],
        row_done: Callable[[], None],
        rules: StopRules,
        warn: Callable[[str, str], None] = lambda kind, message: None,
    ) -> None:
        self.transport = transport
        self.rows = rows
        self.marks = marks
        self.control = control
        self.budget = budget
        self.retry = retry
        self.concurrency = concurrency
        self.stop_grace = stop_grace
        self.now = now
        self.row_done = row_done
        self.rules = rules
        self.warn = warn  # (kind, message): said once per kind, kept in the report
        self.stats = SendStats()
        self.lead_limited: set[str] = set()  # emails RD Station's per-lead limit refused

    async def run(self) -> None:
        self.stats.timeline.start()
        workers = [asyncio.create_task(self._worker()) for _ in range(self.concurrency)]
        self.control.sending = True
        try:
            await self._wait_for(workers)
        finally:
            self.stats.timeline.stop()
            self.control.sending = False
            for task in workers:
                task.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            for key in self.rules.rows_to_send_again:  # a wrong address, not the rows
                self.marks.send_again(str(key))
            self.marks.flush()

    async def _wait_for(self, workers: list[asyncio.Task[None]]) -> None:
        control = self.control
        pending = set(workers)
        while pending:
            done, pending = await asyncio.wait(pending, timeout=0.2)
            for task in done:
                if not task.cancelled() and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
            if control.stopping:
                # Workers waiting for a row, a slot or a backoff hold no request: stop them
                # now; requests already sent get a grace period to bring their answers home.
                for task in pending:
                    if task not in control.requesting:
                        task.cancel()
                deadline = time.monotonic() + self.stop_grace
                while control.requesting and time.monotonic() < deadline:
                    await asyncio.sleep(0.05)
                for task in pending:
                    task.cancel()
                await asyncio.gather(*pending, return_exceptions=True)
                return

    async def _worker(self) -> None:
        while True:
            item = await self.rows.next()
            if item is None or self.control.stopping:
                return
            if item.email in self.lead_limited:
                self._failed(item, LEAD_LIMITED_EARLIER, item.attempts)
                continue
            await self._send(item)

    async def _send(self, item: Pending) -> None:
        """Send one row until it is sent, fails, or the run stops; retries live here."""
        me = asyncio.current_task()
        assert me is not None
        control, marks, budget, stats = self.control, self.marks, self.budget, self.stats
        attempts = item.attempts
        tries = 0  # attempts that count against the retry policy (429s do not)
        first_at = time.monotonic()
        answered = True  # did the last attempt get an answer? (else it may have been recorded)
        maybe_recorded = False  # did any attempt go unanswered?
        try:
            while True:
                await budget.acquire()
                if control.stopping:
                    return
                attempts += 1
                tries += 1
                if not await marks.in_flight(item.key, attempts):
                    return  # the ledger cannot be written: the run is stopping, nothing sent
                if control.stopped():  # stopped while the mark was committed: nothing left
                    marks.pending(item.key)
                    return
                stats.request()
                control.requesting.add(me)
                answered = False  # cancelled before the answer: the request may be recorded
                try:
                    result = await self.transport(item.body)
                finally:
                    control.requesting.discard(me)
                if isinstance(result, Sent):
                    marks.sent(item.key, result.event_uuid, self.now(), attempts)
                    budget.on_accepted()
                    self.rules.on_sent()
                    self.row_done()
                    return
                answered = result.http_status is not None
                maybe_recorded = maybe_recorded or result.maybe_recorded
                self._note_long_wait(result)
                limited = result.kind is FailureKind.RATE_LIMITED
                retry = limited or (
                    result.kind.retry_now
                    and not control.stopped()
                    and self.retry.should_retry(tries, time.monotonic() - first_at)
                )
                reason = self.rules.on_failed(result, last_attempt=not retry, row=item.key)
                if reason is not None:
                    control.abort(reason)
                if limited:
                    stats.rate_limited()
                    budget.on_rate_limited(result.retry_after)
                    marks.pending(item.key)
                    tries -= 1
                    continue
                budget.on_accepted()
                if retry and not control.stopped():
                    stats.retry()
                    if answered or not result.reached_server:
                        marks.pending(item.key)
                    await asyncio.sleep(max(self.retry.delay(tries), result.retry_after or 0))
                    continue
                self._give_up(item, result, attempts, maybe_recorded)
                return
        except asyncio.CancelledError:
            if answered:
                marks.pending(item.key)
            raise

    def _note_long_wait(self, result: Failed) -> None:
        if result.retry_after_asked is not None:
            self.warn(
                "long_wait",
                f"the server asked to wait {result.retry_after_asked:,.0f} s; "
                f"waiting {result.retry_after:,.0f} s at most instead",
            )

    def _give_up(self, item: Pending, result: Failed, attempts: int, maybe_recorded: bool) -> None:
        """The row's last attempt failed: what that means for the row."""
        kind = result.kind
        if kind in (FailureKind.AUTH_REFUSED, FailureKind.FATAL) or (
            self.control.stopping and not maybe_recorded and kind.retry_now
        ):
            self.marks.pending(item.key)  # refused, or stopped with nothing recorded: to send
            return
        if kind is FailureKind.LEAD_LIMITED:
            self.lead_limited.add(item.email)
        self._failed(item, result, attempts, maybe_recorded=maybe_recorded)

    def _failed(
        self, item: Pending, failed: Failed, attempts: int, *, maybe_recorded: bool = False
    ) -> None:
        # A row whose unanswered attempt may have been recorded is, for the next run, like a row
        # in flight when a run died: in doubt, and not resent under --in-flight skip.
        if maybe_recorded:
            failed = Failed(
                failed.kind, failed.http_status, failed.error_type, failed.message + MAYBE_RECORDED
            )
        self.marks.failed(item.key, failed, attempts, in_doubt=maybe_recorded)
        self.row_done()
