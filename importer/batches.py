"""Event batches under OAuth (``import --auth oauth --batch N``): many conversions a request.

    BatchSender(..., post=transport.request, size=N)   the Sender's worker pool, each worker
                                                        sending a batch of rows per request
    BatchCost(budget)                                   what a batch costs against the budget,
                                                        learnt from RD Station's answers
    batch_body(rows) / indexed_errors(message, n)       the request body; a refusal's bad rows

RD Station's batch endpoint (``POST /platform/events/batch``, OAuth only) takes a JSON array of
the single endpoint's bodies, at most 0.2 MB, and answers ``{"event_batch_uuid", "events":
[{"event_uuid"}...]}`` in request order. What it does not document (``shared/rdstation-api.md``):
a maximum count, what one bad event does to the batch, how the per-lead limit applies inside
one, and whether a batch counts as one request or one per event against the 120/min budget.
So nothing here depends on those answers; each is found out from the answers themselves.

A batch
    Rows are taken in file order, at most ``size`` of them and at most ``MAX_BATCH_BYTES`` of
    body, measured on the encoded bytes (a row too big for a batch even alone goes as a single
    post, which takes a body up to 0.2 MB: the array's brackets must not cost it its place).
    Every row of the batch is marked in flight, durably, before the request leaves, and
    settled from the answer: a batch with no answer leaves its rows in flight (in doubt),
    exactly as a single row with no answer, so a kill at any moment is resumed by the same
    ``--in-flight`` rules, per row. The Sender's retry policy, pacing, stop rules, signals and
    statistics apply to the batch as to one request.

A refused batch (400, 413, 422, or the per-lead 429)
    It is split in halves, then halves again, until the bad rows fail alone with RD Station's
    own message and every good row is sent. When the refusal names the bad events by index
    (``$.body[3].payload.email: ...``, as the sandbox answers by default), those rows fail at
    once with their part of the message, and the rest goes again as one batch: no blind
    splitting. ``BatchStats`` counts the extra requests either way (summary.json ``batches``).

The budget, learnt (``BatchCost``)
    A run starts assuming a batch counts once (``per_request``): that is the large win. While
    that is unproven, a batch that would take the window's events past the allowance goes only
    when no other such batch is in flight (``probe``), so if the assumption is wrong, one batch
    is refused, not every batch sent before its 429 came back. A 429 that arrives while this
    run's requests in the last window are at most half the allowance, but their events (this
    one's included) exceed it, can only be the server counting events: from then on a batch
    costs one unit per event (the window's events already sent are charged at once), batches
    shrink so that whole ones fill a window (``per_event_rows``), and the run goes no faster
    than single posts would, with no more 429s. Conversely, more than ``PROOF`` times the
    allowance in events accepted within one window, without a 429, shows a batch counts once
    (``per_request``; a server counting events could not have taken that many, so a later
    429 is the budget's business, others spending it, as for single posts: turning to
    ``per_event`` then would charge the window's thousands of events at once, a pause of
    minutes, and make the rest of the run as slow as single posts). Either
    finding is said once, on the console and in summary.json (``batch_cost``); a run that
    learnt neither (too short, or unpaced) says null. Caveat: another integration spending
    the whole budget at the very start looks like per-event counting; the run is then only as
    slow as single posts.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import re
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal, Protocol

from importer.client import MAX_ANSWER_BYTES, Reply
from importer.ledger import Pending
from importer.pacing import RateBudget
from importer.records import Failed, FailureKind
from importer.sending import LEAD_LIMITED_EARLIER, Sender

BATCH_PATH: Final = "/platform/events/batch"
MAX_BATCH: Final = 500  # rows a request at most (--batch); the body's size cuts most before
MAX_BATCH_BYTES: Final = 200_000  # RD Station's 0.2 MB, on the encoded body
PROOF: Final = 5.0  # events within a window, times the allowance, that prove per_request
# Refusals that may be about some rows of the batch: split it. (404/405 is the address, 401/403
# the sign-in, 415 the client: splitting would only repeat them.)
SPLIT_STATUSES: Final = frozenset({400, 413, 422})

BatchRule = Literal["per_request", "per_event"]
PER_REQUEST: Final = "per_request"
PER_EVENT: Final = "per_event"


class BatchPost(Protocol):
    def __call__(
        self, method: str, path: str, body: bytes | None = None, *, max_bytes: int = ...
    ) -> Awaitable[Reply | Failed]: ...


def batch_body(rows: Sequence[Pending]) -> bytes:
    """The batch's body: the JSON array of the rows' own bodies, as the ledger keeps them."""
    return b"[" + b",".join(item.body for item in rows) + b"]"


# "$.body[3].payload.email: email has an invalid format. (INVALID_FORMAT)", as the client joins
# a shape-3 error whose path names the event by its index in the batch.
_INDEXED = re.compile(r"\$\.body\[(\d+)\]\.?(?:payload\.)?")
_TYPE_AT_END = re.compile(r"\(([A-Z][A-Z_]+)\)$")


def indexed_errors(message: str, count: int) -> dict[int, tuple[str, str | None]]:
    """{index: (that event's message, its error type)} for the events a refusal names by index;
    empty when it names none, or names one outside the batch (then nothing is trusted). An
    event whose part was cut off (a message clipped at its end) is left out: it goes again
    with the good rows and gets its own answer."""
    found = list(_INDEXED.finditer(message))
    named: dict[int, list[str]] = {}
    for at, match in enumerate(found):
        index = int(match.group(1))
        if index >= count:
            return {}
        end = found[at + 1].start() if at + 1 < len(found) else len(message)
        part = message[match.end() : end].strip().removesuffix(";").strip()
        if at + 1 == len(found) and part.endswith("…"):
            continue
        named.setdefault(index, []).append(part)
    out: dict[int, tuple[str, str | None]] = {}
    for index, parts in named.items():
        said = "; ".join(parts)
        kind = _TYPE_AT_END.search(parts[0])
        out[index] = (said, kind.group(1) if kind else None)
    return out


def per_event_rows(size: int, allowance: float) -> int:
    """Rows a batch may hold when each event counts: whole batches that fill a window (100 of
    an allowance of 120 would send 100 a window, less than single posts; 60 sends 120)."""
    if not math.isfinite(allowance):
        return size
    allowance = max(1, int(allowance))
    per_window = math.ceil(allowance / size)
    return max(1, min(size, allowance // per_window))


class BatchCost:
    """What a batch costs against the budget: learnt from the answers (see the module)."""

    def __init__(self, budget: RateBudget, clock: Callable[[], float] = time.monotonic) -> None:
        self.budget = budget
        self.clock = clock
        self.learnt: BatchRule | None = None
        self.learnt_at = -math.inf
        self._sent: deque[tuple[float, int]] = deque()  # (when, events) counted by the server
        self._accepted: deque[tuple[float, int]] = deque()
        self._probing = asyncio.Lock()  # held by the one batch in flight that may prove the rule
        self._leaving = 0  # events of batches past ``probe`` whose request is not yet sent

    async def probe(self, events: int) -> bool:
        """Wait, when a batch of ``events`` about to leave would prove the rule (the window's
        events, with it, exceed the allowance), until no other such batch is in flight: then a
        per-event server refuses one batch, not every batch sent before its 429 came back. The
        batch counts as leaving from now (``sent``). True: the caller holds the probe and gives
        it back with ``probed``."""
        if not self._unproven(events):
            self._leaving += events
            return False
        await self._probing.acquire()
        if self._unproven(events):
            self._leaving += events
            return True
        self._probing.release()  # learnt while waiting
        self._leaving += events
        return False

    def probed(self, held: bool) -> None:
        if held:
            self._probing.release()

    def _unproven(self, events: int) -> bool:
        allowance = self.budget.allowance
        if self.learnt is not None or not math.isfinite(allowance):
            return False
        self._forget(self.clock())
        return sum(n for _, n in self._sent) + self._leaving + events > allowance

    def units(self, events: int) -> int:
        """What a batch of ``events`` costs the budget."""
        return events if self.learnt == PER_EVENT else 1

    def most_rows(self, size: int) -> int:
        """Rows a batch may hold now."""
        if self.learnt == PER_EVENT:
            return per_event_rows(size, self.budget.allowance)
        return size

    def sent(self, events: int) -> float:
        """A batch leaves now (after ``probe``); returns when, to give back with its 429."""
        self._leaving = max(0, self._leaving - events)
        now = self.clock()
        self._sent.append((now, events))
        return now

    def accepted(self, events: int) -> BatchRule | None:
        """A batch was recorded; the rule when this answer proves it."""
        now = self.clock()
        self._accepted.append((now, events))
        self._forget(now)
        allowance = self.budget.allowance
        if (
            self.learnt is None
            and math.isfinite(allowance)
            and sum(n for _, n in self._accepted) > PROOF * allowance
        ):
            self.learnt, self.learnt_at = PER_REQUEST, now
            return PER_REQUEST
        return None

    def rate_limited(self, events: int, sent_at: float) -> tuple[bool, BatchRule | None]:
        """The gateway refused a batch sent at ``sent_at``: (whether counting explains it, so
        the pacer must not slow down for it; the rule when this answer proves it)."""
        with contextlib.suppress(ValueError):
            self._sent.remove((sent_at, events))  # refused: the server did not count it
        if self.learnt == PER_EVENT:
            return sent_at < self.learnt_at, None  # in flight when the rule was learnt
        if self.learnt == PER_REQUEST:
            return False, None  # proven: not the counting (see the module)
        allowance = self.budget.allowance
        if not math.isfinite(allowance):
            return False, None
        now = self.clock()
        self._forget(now)
        requests = len(self._sent) + 1
        window_events = sum(n for _, n in self._sent)
        if requests * 2 <= allowance and window_events + events > allowance:
            self.learnt, self.learnt_at = PER_EVENT, now
            # What the server counted and the pacer did not: every event past the first of
            # each batch it accepted within the window (those still in flight pay when their
            # answer comes, if it is not a 429 too).
            accepted = self._accepted
            self.budget.spend(sum(n for _, n in accepted) - len(accepted))
            return True, PER_EVENT
        return False, None

    def _forget(self, now: float) -> None:
        horizon = now - self.budget.window
        for log in (self._sent, self._accepted):
            while log and log[0][0] <= horizon:
                log.popleft()


@dataclass(slots=True)
class BatchStats:
    """What batching did, for summary.json's ``batches`` and the console."""

    size: int
    requests: int = 0  # batch requests, every attempt
    batches: int = 0  # batches made from the file (first attempts, before any split)
    rows: int = 0  # rows in those batches
    split: int = 0  # refused batches split (blind, or by the indexes the refusal named)
    split_requests: int = 0  # requests spent on the parts of split batches (first attempts)
    failed_alone: int = 0  # rows that failed alone with RD Station's message after a split

    def as_dict(self) -> dict[str, Any]:
        return {
            "size": self.size,
            "requests": self.requests,
            "batches": self.batches,
            "rows_per_batch": round(self.rows / self.batches, 1) if self.batches else None,
            "split_batches": self.split,
            "split_requests": self.split_requests,
            "rows_failed_alone": self.failed_alone,
        }


class BatchSender(Sender):
    """``Sender`` whose workers send batches of rows (``post``: the OAuth transport's
    ``request``). ``say`` is told, once, what the budget counts."""

    def __init__(
        self,
        *,
        post: BatchPost,
        size: int,
        say: Callable[[str], None] = lambda message: None,
        max_bytes: int = MAX_BATCH_BYTES,
        **sender: Any,
    ) -> None:
        super().__init__(**sender)
        self.post = post
        self.size = size
        self.say = say
        self.max_bytes = max_bytes
        self.cost = BatchCost(self.budget)
        self.batch_stats = BatchStats(size)

    def budget_units(self, rows: int) -> int:
        """What ``rows`` still to send cost the budget, for the ETA: one unit per row when
        each event counts, else one per batch (of the size batches have had so far)."""
        if rows <= 0:
            return 0
        if self.cost.learnt == PER_EVENT:
            return rows
        stats = self.batch_stats
        per_batch = stats.rows / stats.batches if stats.batches else self.size
        return math.ceil(rows / max(1.0, per_batch))

    # -- the workers -----------------------------------------------------------------------------

    async def _worker(self) -> None:
        carry: Pending | None = None  # the row that did not fit the last batch: the next one's
        while True:
            first = carry or await self.rows.next()
            carry = None
            if first is None or self.control.stopping:
                return
            batch, carry = self._fill(first)
            batch = [item for item in batch if not self._limited_earlier(item)]
            if len(batch) == 1 and len(batch_body(batch)) > self.max_bytes:
                # Within the 0.2 MB of a single post, but not once in an array: it goes as a
                # single post (a batch of it alone would only be refused, 413).
                await self._send(batch[0])
                continue
            if batch:
                self.batch_stats.batches += 1
                self.batch_stats.rows += len(batch)
                await self._send_batch(batch)

    def _fill(self, first: Pending) -> tuple[list[Pending], Pending | None]:
        """A batch from ``first`` and the rows recorded after it: (the batch, the row that
        would have made its body too big)."""
        batch, size = [first], len(first.body) + 2
        most = self.cost.most_rows(self.size)
        while len(batch) < most:
            item = self.rows.ready()
            if item is None:
                break
            grown = size + 1 + len(item.body)
            if grown > self.max_bytes:
                return batch, item
            batch.append(item)
            size = grown
        return batch, None

    def _limited_earlier(self, item: Pending) -> bool:
        if item.email in self.lead_limited:
            self._failed(item, LEAD_LIMITED_EARLIER, item.attempts)
            return True
        return False

    async def _send_batch(self, batch: list[Pending]) -> None:
        """Send a batch, and the parts a refusal splits it into, in file order."""
        # (rows, made by a split, whether an attempt of the batch they came from went
        # unanswered: those rows may be recorded, and stay in doubt if they fail in a part).
        parts: deque[tuple[list[Pending], bool, bool]] = deque([(batch, False, False)])
        # Each row's attempts so far, its parts' included: a row split out of a batch was in
        # every request its batch made.
        attempts = {item.key: item.attempts for item in batch}
        while parts and not self.control.stopping:
            part, derived, in_doubt = parts.popleft()
            more, refused, unanswered = await self._attempt(part, derived, in_doubt, attempts)
            parts.extendleft((piece, derived or refused, unanswered) for piece in reversed(more))

    async def _attempt(
        self,
        part: list[Pending],
        derived: bool,
        in_doubt: bool = False,
        attempts: dict[str, int] | None = None,
    ) -> tuple[list[list[Pending]], bool, bool]:
        """Send one batch until it is settled or the run stops (retries live here, as in
        ``Sender._send``): (the parts to send instead, whether a refusal split it, whether
        an attempt went unanswered). ``in_doubt``: an attempt of the batch it was split from
        went unanswered; ``attempts``: each row's attempts so far, counted on."""
        me = asyncio.current_task()
        assert me is not None
        control, marks, budget, stats, cost = (
            self.control,
            self.marks,
            self.budget,
            self.stats,
            self.cost,
        )
        if attempts is None:
            attempts = {item.key: item.attempts for item in part}
        body = batch_body(part)
        answer_bytes = MAX_ANSWER_BYTES + 100 * len(part)  # an event_uuid each
        tries = 0  # attempts that count against the retry policy (429s do not)
        first_at = time.monotonic()
        answered = True  # did the last attempt get an answer? (else it may have been recorded)
        maybe_recorded = in_doubt
        try:
            while True:
                probing = False
                try:
                    if len(part) > cost.most_rows(self.size):
                        # Each event counts: the budget cannot take this batch whole.
                        return _cut(part, cost.most_rows(self.size)), False, maybe_recorded
                    units = cost.units(len(part))
                    await budget.acquire(units)
                    probing = await cost.probe(len(part))
                    while (more := cost.units(len(part)) - units) > 0:  # learnt while waiting
                        if len(part) > cost.most_rows(self.size):
                            return _cut(part, cost.most_rows(self.size)), False, maybe_recorded
                        await budget.acquire(more)
                        units += more
                    if control.stopping:
                        return [], False, maybe_recorded
                    tries += 1
                    for item in part:
                        attempts[item.key] += 1
                    marked = await asyncio.gather(
                        *(marks.in_flight(item.key, attempts[item.key]) for item in part)
                    )
                    if not all(marked):  # the ledger cannot be written: nothing sent
                        return [], False, maybe_recorded
                    if control.stopped():  # stopped while the marks were committed
                        self._all_pending(part)
                        return [], False, maybe_recorded
                    stats.request()
                    self.batch_stats.requests += 1
                    if derived and tries == 1:
                        self.batch_stats.split_requests += 1
                    sent_at = cost.sent(len(part))
                    control.requesting.add(me)
                    answered = False  # cancelled before the answer: the batch may be recorded
                    try:
                        result = await self.post("POST", BATCH_PATH, body, max_bytes=answer_bytes)
                    finally:
                        control.requesting.discard(me)
                    if isinstance(result, Reply):
                        answered = True
                        self._settle(part, result, attempts, units)
                        return [], False, maybe_recorded
                    answered = result.http_status is not None
                    maybe_recorded = maybe_recorded or result.maybe_recorded
                    self._note_long_wait(result)
                    kind = result.kind
                    if kind is FailureKind.RATE_LIMITED:
                        stats.rate_limited()
                        explained, learnt = cost.rate_limited(len(part), sent_at)
                        if learnt is not None:
                            self._learnt(learnt)
                        if not explained:
                            budget.on_rate_limited(result.retry_after)
                        reason = self.rules.on_failed(result, last_attempt=False, row=part[0].key)
                        if reason is not None:
                            control.abort(reason)
                        self._all_pending(part)
                        tries -= 1
                        continue
                    budget.on_accepted(units)
                    if len(part) > 1 and (
                        kind is FailureKind.LEAD_LIMITED
                        or (kind is FailureKind.REJECTED and result.http_status in SPLIT_STATUSES)
                    ):
                        reason = self.rules.on_failed(result, last_attempt=True, row=part[0].key)
                        if reason is not None:
                            control.abort(reason)
                        self._all_pending(part)
                        split = self._split(part, result, attempts, maybe_recorded)
                        return split, True, maybe_recorded
                    retry = (
                        kind.retry_now
                        and not control.stopped()
                        and self.retry.should_retry(tries, time.monotonic() - first_at)
                    )
                    # A wrong address is told by identical answers row after row: one per row.
                    rows = part if result.http_status in (404, 405) else part[:1]
                    for item in rows:
                        reason = self.rules.on_failed(result, last_attempt=not retry, row=item.key)
                        if reason is not None:
                            control.abort(reason)
                    if retry and not control.stopped():
                        stats.retry()
                        if answered or not result.reached_server:
                            self._all_pending(part)
                        await asyncio.sleep(max(self.retry.delay(tries), result.retry_after or 0))
                        continue
                    if derived and kind in (FailureKind.REJECTED, FailureKind.LEAD_LIMITED):
                        self.batch_stats.failed_alone += len(part)
                    for item in part:
                        self._give_up(item, result, attempts[item.key], maybe_recorded)
                    return [], False, maybe_recorded
                finally:
                    cost.probed(probing)
        except asyncio.CancelledError:
            if answered:
                self._all_pending(part)
            raise

    def _all_pending(self, part: Sequence[Pending]) -> None:
        for item in part:
            self.marks.pending(item.key)

    def _settle(
        self, part: list[Pending], reply: Reply, attempts: dict[str, int], units: int
    ) -> None:
        """A 2xx: each row its event_uuid, in request order."""
        if self.cost.units(len(part)) > units:  # in flight when per_event was learnt
            self.budget.spend(self.cost.units(len(part)) - units)
        self.budget.on_accepted(units)
        data = reply.json() if reply.whole else None
        events = data.get("events") if isinstance(data, dict) else None
        uuids: list[str] | None = None
        said = "no list of events"  # what came instead of one event_uuid per event
        if isinstance(events, list):
            said = f"{len(events):,} events for {len(part):,} sent"
            if len(events) == len(part):
                said = "an event without its event_uuid"
        if not reply.whole and not reply.body:
            # A 2xx came, so the batch was recorded; only the rest of the answer was lost.
            # Resending would record it twice: sent, without the uuids (as a single post),
            # and said, since successes.csv then lacks what a user may look them up by.
            uuids = [""] * len(part)
            self.warn(
                "batch_answer_cut_off",
                f"RD Station accepted a batch of {len(part):,} rows (HTTP {reply.status}) but "
                "its answer was cut off: they count as sent (sending them again would record "
                "them twice), with no event_uuid in successes.csv",
            )
        elif not reply.whole:
            # Longer than any batch answer (a portal's page, a catch-all proxy): not RD
            # Station's, so not proof of anything; in doubt, as a single post's would be.
            said = "an answer far longer than RD Station's (only its start was read)"
        elif isinstance(events, list) and len(events) == len(part):
            got = [e.get("event_uuid") if isinstance(e, dict) else None for e in events]
            if all(isinstance(u, str) and u for u in got):
                uuids = [str(u) for u in got]
        if uuids is None:
            failed = Failed(
                FailureKind.UNCERTAIN,
                reply.status,
                "NO_EVENT_UUID",
                f"the batch endpoint answered HTTP {reply.status} with {said}, not one "
                "event_uuid per event as RD Station answers; the batch reached that server, so "
                "it may have been recorded",
            )
            reason = self.rules.on_failed(failed, last_attempt=True, row=part[0].key)
            if reason is not None:
                self.control.abort(reason)
            for item in part:
                self._give_up(item, failed, attempts[item.key], True)
            return
        now = self.now()
        for item, event_uuid in zip(part, uuids, strict=True):
            self.marks.sent(item.key, event_uuid, now, attempts[item.key])
            self.row_done()
        self.rules.on_sent()
        learnt = self.cost.accepted(len(part))
        if learnt is not None:
            self._learnt(learnt)

    def _split(
        self, part: list[Pending], result: Failed, attempts: dict[str, int], maybe_recorded: bool
    ) -> list[list[Pending]]:
        """A refused batch: its bad rows fail when the refusal names them, else halves."""
        self.batch_stats.split += 1
        named = {}
        if result.kind is FailureKind.REJECTED:
            named = indexed_errors(result.message, len(part))
        if not named:
            return _halves(part)
        for index, (message, error_type) in named.items():
            failed = Failed(
                result.kind, result.http_status, error_type or result.error_type, message
            )
            self.batch_stats.failed_alone += 1
            self._failed(
                part[index], failed, attempts[part[index].key], maybe_recorded=maybe_recorded
            )
        rest = [item for index, item in enumerate(part) if index not in named]
        return [rest] if rest else []

    def _learnt(self, rule: BatchRule) -> None:
        window = self.budget.window
        per = "a minute" if window == 60 else f"{window:g} s"
        if rule == PER_EVENT:
            self.say(
                "Batches: RD Station counts each event of a batch against the request budget "
                f"(batch_cost: per_event); batches now go at the pace of single posts, "
                f"{per_event_rows(self.size, self.budget.allowance)} rows each, "
                "never faster"
            )
        else:
            self.say(
                "Batches: RD Station counts a batch once against the request budget "
                f"(batch_cost: per_request): it took more than {PROOF:g} times the allowance "
                f"in events within {per} without a 429"
            )


def _halves(part: list[Pending]) -> list[list[Pending]]:
    middle = (len(part) + 1) // 2
    return [part[:middle], part[middle:]]


def _cut(part: list[Pending], most: int) -> list[list[Pending]]:
    """``part`` in pieces of ``most`` rows (the last shorter), in order."""
    return [part[at : at + most] for at in range(0, len(part), most)]


def make_sender(
    batch: int | None, post: BatchPost, say: Callable[[str], None]
) -> Callable[..., Sender]:
    """The sender class for a run: ``Sender``, or with ``batch`` a ``BatchSender`` of that
    size posting through ``post``."""
    if not batch:
        return Sender

    def batch_sender(**sender: Any) -> Sender:
        return BatchSender(post=post, size=batch, say=say, **sender)

    return batch_sender


def budget_units(rows: int, sender: Sender | None, batch: int | None) -> int:
    """What ``rows`` still to send cost the budget (for the ETA): rows, or batches of them."""
    if isinstance(sender, BatchSender):
        return sender.budget_units(rows)
    if batch:
        return math.ceil(max(0, rows) / batch)
    return rows


def report_of(sender: Sender | None) -> tuple[str | None, dict[str, Any] | None]:
    """(summary.json's ``batch_cost``, its ``batches``); (None, None) without batches."""
    if not isinstance(sender, BatchSender):
        return None, None
    return sender.cost.learnt, sender.batch_stats.as_dict()


def plan_note(batch: int, rate: float, eta_per_event: float | None) -> str:
    """The plan's second line with batches: what the ETA assumes, and the other case."""
    if eta_per_event is None:
        return f"In batches of up to {batch} rows (RD Station's budget is learnt as they go)"
    from importer.report import format_duration

    return (
        f"In batches of up to {batch} rows: that time holds if RD Station counts a batch once; "
        f"if it counts each event, the run learns it from the first 429 and takes about "
        f"{format_duration(eta_per_event)} at {rate:g}/min, as single posts would"
    )
