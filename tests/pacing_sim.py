"""Virtual-time simulation of workers pacing through a RateBudget against a rate-limited server.

Time is virtual: :class:`VirtualTimeLoop` is a real asyncio event loop (real tasks, locks and
sleeps) whose clock jumps straight to the next timer instead of waiting for it, so an hour of
pacing runs in about a second and a run with the same seed is always the same run.

Used by ``tests/test_pacing.py`` and ``benchmarks/pacing_sim.py``.
"""

from __future__ import annotations

import asyncio
import random
import selectors
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from importer.pacing import RateBudget

T = TypeVar("T")


class SimulationStalled(RuntimeError):
    """Every task waits and no timer is set: the simulated program can never go on."""


class _JumpingSelector(selectors.DefaultSelector):
    """Instead of blocking until the next timer is due, move the loop's clock to it."""

    def __init__(self, loop: VirtualTimeLoop) -> None:
        super().__init__()
        self._loop = loop

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        if timeout is None:
            raise SimulationStalled("every task waits on something that no timer will bring")
        if timeout > 0:
            self._loop.advance(timeout)
        return super().select(0)


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """An event loop whose ``time()`` only moves when every task waits on a timer."""

    def __init__(self) -> None:
        self._virtual_now = 0.0
        super().__init__(selector=_JumpingSelector(self))

    def time(self) -> float:
        return self._virtual_now

    def advance(self, seconds: float) -> None:
        self._virtual_now += seconds


def run_virtual(main: Callable[[VirtualTimeLoop], Awaitable[T]]) -> T:
    """Run ``main(loop)`` to its end on a fresh virtual-time loop, then close the loop."""
    loop = VirtualTimeLoop()
    try:
        return loop.run_until_complete(main(loop))
    finally:
        pending = asyncio.all_tasks(loop)
        for task in pending:
            task.cancel()
        if pending:
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.close()


class SlidingWindowServer:
    """A gateway that accepts at most ``limit`` requests in any ``window`` seconds.

    ``count_rejected``: whether a request it answered 429 also takes room in the window (some
    gateways count every request they see). ``retry_after``: send the seconds until room frees,
    as a ``Retry-After`` header would, instead of nothing (RD Station documents none).
    """

    def __init__(
        self,
        limit: int,
        *,
        window: float = 60.0,
        count_rejected: bool = False,
        retry_after: bool = False,
    ) -> None:
        self.limit = limit
        self.window = window
        self.count_rejected = count_rejected
        self.send_retry_after = retry_after
        self._counted: deque[float] = deque()
        self.accepted_at: list[float] = []
        self.rejected = 0

    def receive(self, now: float, *, ours: bool = True) -> tuple[bool, float | None]:
        """A request arrives at ``now``: (accepted, retry_after seconds or None).

        ``ours=False``: another integration of the same account; it takes room in the window
        but is left out of ``accepted_at`` and ``rejected``.
        """
        counted = self._counted
        while counted and counted[0] <= now - self.window:
            counted.popleft()
        if len(counted) < self.limit:
            counted.append(now)
            if ours:
                self.accepted_at.append(now)
            return True, None
        if ours:
            self.rejected += 1
        if self.count_rejected:
            counted.append(now)
        wait = counted[0] + self.window - now if self.send_retry_after else None
        return False, wait


@dataclass
class SimResult:
    rate: float  # --rate
    allowed: float  # what the server accepts from us per window (its limit less the others')
    window: float
    sends: list[float] = field(default_factory=list)  # when the budget granted each slot
    accepted_at: list[float] = field(default_factory=list)  # arrivals the server accepted
    rejected: int = 0  # answers of 429
    final_rate: float = 0.0

    @property
    def requests(self) -> int:
        return len(self.sends)

    @property
    def rejected_share(self) -> float:
        return self.rejected / self.requests if self.requests else 0.0

    @property
    def achieved_share(self) -> float:
        """Accepted requests over the most the server could have accepted in the same span.

        The span runs from the first accepted arrival to the last, plus one server interval:
        K requests perfectly spaced at window/allowed score exactly 1.
        """
        if len(self.accepted_at) < 2:
            return 0.0
        span = self.accepted_at[-1] - self.accepted_at[0]
        return len(self.accepted_at) / (self.allowed * span / self.window + 1)

    def most_in_any_window(self, window: float | None = None) -> int:
        """The largest number of sends in any half-open window ``[t, t + window)``."""
        return most_in_any_window(self.sends, self.window if window is None else window)


def most_in_any_window(times: Sequence[float], window: float) -> int:
    """The largest number of ``times`` (sorted) in any half-open window ``[t, t + window)``."""
    most = 0
    start = 0
    for end, t in enumerate(times):
        while times[start] <= t - window:
            start += 1
        most = max(most, end - start + 1)
    return most


def simulate(
    *,
    rate: float,
    allowed: int,
    rows: int,
    workers: int = 16,
    seed: int = 0,
    window: float = 60.0,
    latency: tuple[float, float] = (0.05, 0.25),
    count_rejected: bool = False,
    retry_after: bool = False,
    others: float = 0.0,
) -> SimResult:
    """Send ``rows`` rows through ``workers`` workers sharing one budget at ``rate``.

    Each worker, for each row: ``await budget.acquire()``, the request travels for a random
    one-way ``latency`` to a :class:`SlidingWindowServer` allowing ``allowed`` per window, the
    answer travels back, the worker reports it. A row answered 429 is sent again (never
    dropped), so every row ends accepted. ``others``: another integration of the account spends
    that many of the server's ``allowed`` per window, at random (Poisson) times.
    """
    server = SlidingWindowServer(
        allowed, window=window, count_rejected=count_rejected, retry_after=retry_after
    )
    result = SimResult(rate=rate, allowed=allowed - others, window=window)
    rng = random.Random(seed)
    others_rng = random.Random(seed + 1)

    async def main(loop: VirtualTimeLoop) -> SimResult:
        budget = RateBudget(rate, window=window, clock=loop.time)
        todo = rows

        async def worker() -> None:
            nonlocal todo
            while todo > 0:
                todo -= 1
                while True:
                    await budget.acquire()
                    result.sends.append(loop.time())
                    await asyncio.sleep(rng.uniform(*latency))
                    accepted, wait = server.receive(loop.time())
                    await asyncio.sleep(rng.uniform(*latency))
                    if accepted:
                        budget.on_accepted()
                        break
                    budget.on_rate_limited(wait)

        async def other_integration() -> None:
            while True:
                await asyncio.sleep(others_rng.expovariate(others / window))
                server.receive(loop.time(), ours=False)

        other = asyncio.ensure_future(other_integration()) if others > 0 else None
        await asyncio.gather(*(worker() for _ in range(workers)))
        if other is not None:
            other.cancel()
        result.accepted_at = server.accepted_at
        result.rejected = server.rejected
        result.final_rate = budget.current_rate
        return result

    return run_virtual(main)
