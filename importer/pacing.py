"""The requests-per-minute budget every worker shares, and how it slows down on 429.

RD Station's gateway lets an account make N POSTs in any 60-second window (120, or 500 on the
top plan), and other integrations of the same account spend the same budget, so the server may
allow less than ``--rate``. A :class:`RateBudget` turns that into send slots:

Pacing
    Slot k sits on an ideal timeline, ``k * interval`` after the first send: the first minute
    is as smooth as every later one (no burst that spends the minute in a second, then stalls),
    and a worker that wakes a little late does not push every later slot back (no drift). A
    wake-up later than ``credit`` restarts the timeline at now rather than catching up in a
    burst. N slots span the window plus a 1/120 guard, so jitter on the way to the server does
    not put N+1 arrivals in the server's window: the pace is 99.2% of N. On top of the
    timeline, a log of the last sends keeps any window to the allowance (N at most), counted
    as the server counts it, whatever happens.

Adapting (AIMD, as TCP does)
    A 429 says the server's window is full, and the answers it accepted during the last window
    measure what it allows us now (other integrations may spend the rest). The allowance drops
    to that (never by more than half on one signal: the measure is low right after a pause),
    the pace to 3% below it, and every waiter pauses until the server's ``Retry-After``, or
    else a short backoff; the window log then holds sends until the server's window, mirrored
    by ours, has room. Accepted answers raise the pace slowly, 2% a window, a little faster for
    each window without a 429 (as TCP CUBIC probes), up to N.
    Requests already in flight when the 429 arrives get 429 too: the same signal, not news.
    ``acquire`` tags each grant in the caller's context, so a 429 reported by the task whose
    slot was granted before the last signal changes nothing; reported from elsewhere, 429s
    within a short grace after the pause count as the same burst.

Always slowing down
    A 429 always pauses for at least a backoff that doubles with each 429 in a row (capped at
    the window), paced or not, whatever the server says: a ``Retry-After`` of 0, -5 or NaN, or
    an HTML page without one, must not let workers send again at once (unpaced, that once made
    tens of thousands of requests a minute). A longer ``Retry-After`` is obeyed up to
    ``MAX_RETRY_AFTER``. Any accepted answer resets the doubling.

Call ``acquire()`` before every request (retries included), then from the same task report its
answer: ``on_rate_limited`` for the gateway's 429 (``FailureKind.RATE_LIMITED``), ``on_accepted``
for any other answer. ``per_minute`` counts requests per ``window`` (a minute by default); ``0``
or less is unpaced: ``acquire`` returns at once and only a 429's pause holds it.

Units (event batches, ``importer.batches``)
    What the budget counts is a unit of what the server counts. A request that the server
    counts as several (a batch of events, when RD Station counts each event) acquires and
    reports that many units at once: ``acquire(units)``, ``on_accepted(units)``, and
    ``spend(units)`` for units already sent that are found, after the fact, to have counted more.
    One unit is a request, as before.
"""

from __future__ import annotations

import asyncio
import contextvars
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable

from importer.errors import InputError
from importer.records import MAX_RETRY_AFTER

GUARD_SHARE = 1 / 120  # of the window, added to the span of N slots (0.5 s a minute)
SAFETY_MARGIN = 0.03  # how far below the server's measured allowance the pace drops on a 429
MAX_CUT = 0.5  # never more than halve the pace on one 429: the measure may be low
RECOVERY_SHARE = 0.02  # of the pace, regained per window's worth of accepted requests...
MAX_QUIET_WINDOWS = 10.0  # ...times one more per window without a 429, up to this many
MIN_SHARE = 0.01  # the pace never drops below this share of --rate (nor below 1 per window)
STALE_GRACE = 2.0  # seconds after a pause during which 429s of unknown origin are one burst
UNPACED_BACKOFF = 1.0  # seconds, doubled per 429 in a row, when unpaced and no Retry-After

# (id of the budget, number of the grant) of the last slot the current task acquired: how a
# 429 is matched to the request that got it without changing what acquire() returns.
_last_grant: contextvars.ContextVar[tuple[int, int] | None] = contextvars.ContextVar(
    "rate_budget_last_grant", default=None
)


class RateBudget:
    """Send slots at ``per_minute`` per ``window`` for every worker, slowing down on 429."""

    def __init__(
        self,
        per_minute: float,
        *,
        window: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if not math.isfinite(per_minute):
            raise InputError(
                f"--rate {per_minute!r} is not a number of requests per minute; "
                "give one such as 120, or 0 to send unpaced"
            )
        if not (math.isfinite(window) and window > 0):
            raise InputError(
                f"the rate window must be a positive number of seconds, not {window!r}"
            )
        self._window = window
        self._clock = clock
        self._sleep = sleep
        self._unpaced = per_minute <= 0
        self._ceiling = max(0.0, float(per_minute))
        self._pause_until = -math.inf
        self._signal_at = -math.inf  # when the last 429 that counted arrived
        self._strikes = 0  # 429s that counted since the last accepted answer
        self._grants = 0
        self._signal_grant = 0  # grants numbered from here on were made after the last signal
        if self._unpaced:
            return
        self._span = window * (1 + GUARD_SHARE)
        self._floor = min(self._ceiling, max(1.0, self._ceiling * MIN_SHARE))
        self._set_rate(self._ceiling)
        self._next = -math.inf  # the ideal time of the next slot
        # The last sends, newest last: as many as any window may ever hold.
        self._recent_sends: deque[float] = deque(maxlen=max(1, math.floor(per_minute)))
        self._accepted: deque[float] = deque()  # accepted answers within the last window
        self._lock = asyncio.Lock()  # one waiter at a time owns the next slot; FIFO

    @property
    def window(self) -> float:
        """Seconds of the window the budget counts in (a minute, unless shortened)."""
        return self._window

    @property
    def allowance(self) -> float:
        """Units any window may hold now: the most one request may cost; inf when unpaced."""
        return math.inf if self._unpaced else float(self._cap)

    @property
    def current_rate(self) -> float:
        """Requests per window (per minute by default) at the present pace; inf when unpaced."""
        if self._unpaced:
            return math.inf
        return self._window / self._interval

    def eta_seconds(self, remaining: int) -> float:
        """Seconds the budget needs for ``remaining`` more requests at the present pace.

        Unpaced, only a 429's pause counts: the server's speed sets the rest.
        """
        pause = max(0.0, self._pause_until - self._clock())
        if remaining <= 0:
            return 0.0
        if self._unpaced:
            return pause
        return pause + remaining * self._interval

    async def acquire(self, units: int = 1) -> None:
        """Wait for the next send slot; returns when the caller may send one request that
        costs ``units`` (more than the allowance counts as the allowance)."""
        if self._unpaced:
            if self._pause_until != -math.inf:
                while (left := self._pause_until - self._clock()) > 0:
                    await self._sleep(left)
            # Tagged like a paced grant: the 429s of requests sent before a pause are one signal.
            _last_grant.set((id(self), self._grants))
            self._grants += 1
            return
        async with self._lock:
            # Re-read the clock after every sleep: a 429 may have paused everyone meanwhile.
            while True:
                now = self._clock()
                slot = self._slot(now, units)
                if slot <= now:
                    break
                await self._sleep(slot - now)
            self._take(now, slot, units)
            _last_grant.set((id(self), self._grants))
            self._grants += 1

    def spend(self, units: int) -> None:
        """``units`` already sent now count too (a batch found to cost one unit per event):
        the window log and the timeline take them as if sent now."""
        if self._unpaced or units <= 0:
            return
        now = self._clock()
        self._take(now, max(self._next, now), units)

    def on_accepted(self, units: int = 1) -> None:
        """A request passed the gateway (any answer but its 429): regain pace slowly.
        ``units``: what it cost (a batch counted per event)."""
        self._strikes = 0
        if self._unpaced:
            return
        now = self._clock()
        self._accepted.extend([now] * max(1, units))
        self._forget_accepted_before(now - self._window)
        if self._rate < self._ceiling:
            # Over one window's worth of accepted answers the pace grows by RECOVERY_SHARE of
            # itself, times one more for every window without a 429: careful just after the
            # server said no, quicker once it has stayed quiet (as TCP CUBIC probes).
            quiet = min((now - self._signal_at) / self._window, MAX_QUIET_WINDOWS)
            regained = RECOVERY_SHARE * (1 + quiet) * max(1, units)
            self._set_rate(min(self._ceiling, self._rate + regained))

    def on_rate_limited(self, retry_after: float | None) -> None:
        """The gateway answered 429: pause every waiter, and slow down once per burst.

        ``retry_after`` is what the server asked, if anything: obeyed up to ``MAX_RETRY_AFTER``,
        and never taken as leave to skip the backoff (0, negative or NaN is no wait at all).
        """
        now = self._clock()
        asked = 0.0
        if retry_after is not None and math.isfinite(retry_after) and retry_after > 0:
            asked = min(retry_after, MAX_RETRY_AFTER)
        if not self._is_new_signal(now):
            self._pause_until = max(self._pause_until, now + asked)
            return
        self._strikes += 1
        self._signal_at = now
        self._signal_grant = self._grants
        if not self._unpaced:
            self._slow_down(now)
        self._pause_until = max(self._pause_until, now + max(asked, self._backoff(now)))

    # -- inside ---------------------------------------------------------------------------------

    def _set_rate(self, rate: float) -> None:
        self._rate = rate
        self._interval = self._span / rate
        # How late a slot may be taken and still count on the timeline: enough for a slow
        # wake-up, too little to let an idle spell turn into a burst.
        self._credit = min(self._interval, self._window / 60)
        # The sends allowed in one window: the server's allowance as last measured, which the
        # pace stays SAFETY_MARGIN below; --rate at most. (The epsilon undoes float rounding.)
        allowance = math.floor(rate / (1 - SAFETY_MARGIN) + 1e-9)
        self._cap = max(1, min(math.floor(self._ceiling), allowance))

    def _slot(self, now: float, units: int = 1) -> float:
        slot = self._next
        if now - slot > self._credit:
            slot = now
        slot = max(slot, self._pause_until)
        # No more sends in any window than the allowance: the server counts its window the
        # same way, and this also keeps a catching-up timeline from bursting. A request of
        # several units needs room for all of them.
        recent, need = self._recent_sends, max(1, min(units, self._cap))
        if len(recent) + need > self._cap:
            # Several units wait the guard too: the time between the slot and the request
            # leaving (the ledger marks each of its rows) is longer and varies more.
            guard = self._span - self._window if need > 1 else 0.0
            slot = max(slot, recent[-(self._cap - need + 1)] + self._window + guard)
        return slot

    def _take(self, now: float, slot: float, units: int) -> None:
        """``units`` sent now, from ``slot`` on the timeline."""
        units = max(1, units)
        self._recent_sends.extend([now] * min(units, self._cap))
        self._next = slot + units * self._interval

    def _is_new_signal(self, now: float) -> bool:
        grant = _last_grant.get()
        if grant is not None and grant[0] == id(self):
            return grant[1] >= self._signal_grant
        return now >= max(self._pause_until, self._signal_at) + STALE_GRACE

    def _slow_down(self, now: float) -> None:
        self._forget_accepted_before(now - self._window)
        allowed = max(float(len(self._accepted)), self._rate * MAX_CUT)
        self._set_rate(max(self._floor, min(self._rate, allowed) * (1 - SAFETY_MARGIN)))

    def _backoff(self, now: float) -> float:
        """The least pause after a 429 that counts, whatever the server said."""
        doubling = 2.0 ** min(self._strikes - 1, 16)
        if self._unpaced:
            return min(self._window, UNPACED_BACKOFF * doubling)
        # Room in the server's window comes back as our own sends leave it, which the cap on
        # sends per window already waits for; a repeated 429 without an accepted answer between
        # means others spend the budget: back off more each time.
        return min(self._window, self._interval * doubling)

    def _forget_accepted_before(self, horizon: float) -> None:
        accepted = self._accepted
        while accepted and accepted[0] <= horizon:
            accepted.popleft()
