"""RateBudget: spacing, the window ceiling, the 429 pause, adapting to a stingier server.

Everything runs on a virtual-time event loop (``pacing_sim``): real asyncio tasks and locks,
a clock that jumps to the next timer. Hours pass in a second, and nothing depends on how busy
the machine is.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import random

import pytest

from importer.errors import InputError
from importer.pacing import GUARD_SHARE, RateBudget
from importer.records import MAX_RETRY_AFTER
from pacing_sim import SimResult, VirtualTimeLoop, most_in_any_window, run_virtual, simulate

INTERVAL_120 = 60 * (1 + GUARD_SHARE) / 120  # the spacing at --rate 120


async def _grant_times(
    budget: RateBudget, loop: VirtualTimeLoop, waiters: int, each: int
) -> list[float]:
    times: list[float] = []

    async def waiter() -> None:
        for _ in range(each):
            await budget.acquire()
            times.append(loop.time())

    await asyncio.gather(*(waiter() for _ in range(waiters)))
    return times


# -- pacing ---------------------------------------------------------------------------------------


def test_sends_are_spaced_evenly_from_the_very_first_one() -> None:
    async def main(loop: VirtualTimeLoop) -> list[float]:
        return await _grant_times(RateBudget(120, clock=loop.time), loop, waiters=32, each=5)

    times = run_virtual(main)
    assert len(times) == 160
    assert times[0] == 0
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert min(gaps) == pytest.approx(INTERVAL_120)
    assert max(gaps) == pytest.approx(INTERVAL_120)
    assert most_in_any_window(times, 1.0) == 2  # no burst at the start


@pytest.fixture(scope="module")
def hour_at_full_allowance() -> SimResult:
    # 64 workers wait on one budget for an hour against a server allowing exactly --rate.
    return simulate(rate=120, allowed=120, rows=120 * 60, workers=64, seed=1)


def test_no_window_ever_holds_more_than_the_rate(hour_at_full_allowance: SimResult) -> None:
    assert hour_at_full_allowance.most_in_any_window() <= 120


def test_long_run_reaches_99_percent_of_the_rate(hour_at_full_allowance: SimResult) -> None:
    result = hour_at_full_allowance
    per_minute = result.requests / ((result.sends[-1] - result.sends[0]) / 60)
    assert per_minute >= 0.99 * 120
    assert result.achieved_share >= 0.99


def test_a_server_allowing_exactly_the_rate_answers_at_most_two_429(
    hour_at_full_allowance: SimResult,
) -> None:
    assert hour_at_full_allowance.rejected <= 2


def test_the_top_plan_rate_keeps_its_ceiling_and_pace() -> None:
    result = simulate(rate=500, allowed=500, rows=500 * 15, workers=64, seed=2)
    assert result.most_in_any_window() <= 500
    assert result.achieved_share >= 0.99
    assert result.rejected <= 2


def test_late_wake_ups_neither_drift_below_the_rate_nor_burst_past_it() -> None:
    rng = random.Random(3)

    async def oversleep(seconds: float) -> None:
        # A loaded machine: every wake-up comes up to 0.4 s late.
        await asyncio.sleep(seconds + rng.uniform(0.0, 0.4))

    async def main(loop: VirtualTimeLoop) -> list[float]:
        budget = RateBudget(120, clock=loop.time, sleep=oversleep)
        return await _grant_times(budget, loop, waiters=16, each=120 * 30 // 16)

    times = run_virtual(main)
    assert most_in_any_window(times, 60.0) <= 120
    per_minute = len(times) / ((times[-1] - times[0]) / 60)
    assert per_minute >= 0.99 * 120


def test_an_idle_spell_does_not_earn_a_burst() -> None:
    async def main(loop: VirtualTimeLoop) -> list[float]:
        budget = RateBudget(120, clock=loop.time)
        await budget.acquire()
        await asyncio.sleep(600)  # every worker busy elsewhere for ten minutes
        return await _grant_times(budget, loop, waiters=20, each=1)

    times = run_virtual(main)
    assert times[0] == 600
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert min(gaps) == pytest.approx(INTERVAL_120)


# -- 429 ------------------------------------------------------------------------------------------


def test_a_429_pauses_every_waiter_until_retry_after() -> None:
    async def main(loop: VirtualTimeLoop) -> tuple[list[float], float, float]:
        budget = RateBudget(120, clock=loop.time)
        times: list[float] = []
        stop = False

        async def waiter() -> None:
            while not stop:
                await budget.acquire()
                times.append(loop.time())
                budget.on_accepted()

        workers = [asyncio.ensure_future(waiter()) for _ in range(16)]
        await asyncio.sleep(90)
        before = budget.current_rate
        budget.on_rate_limited(20.0)
        after = budget.current_rate
        await asyncio.sleep(40)
        stop = True
        await asyncio.gather(*workers)
        return times, before, after

    times, before, after = run_virtual(main)
    assert not [t for t in times if 90 < t < 110]
    assert min(t for t in times if t > 90) == 110
    assert after < before


def test_a_429_without_retry_after_still_pauses_and_slows_down() -> None:
    async def main(loop: VirtualTimeLoop) -> tuple[float, float, float]:
        budget = RateBudget(120, clock=loop.time)
        await _grant_times(budget, loop, waiters=4, each=10)
        before = budget.current_rate
        said_no_at = loop.time()
        budget.on_rate_limited(None)
        await budget.acquire()
        return before, budget.current_rate, loop.time() - said_no_at

    before, after, waited = run_virtual(main)
    assert after <= before * 0.5  # no accepted answer measured: halved, no more
    assert waited > 0


def test_a_burst_of_429_from_requests_in_flight_counts_once() -> None:
    async def main(loop: VirtualTimeLoop) -> tuple[float, float, float]:
        budget = RateBudget(120, clock=loop.time)
        for _ in range(100):  # the server accepted 100 in this window
            await budget.acquire()
            budget.on_accepted()
        in_flight = asyncio.Event()
        answered = asyncio.Event()
        first_cut: list[float] = []
        sent = 0

        async def request() -> None:
            nonlocal sent
            await budget.acquire()  # eight requests leave before any answer comes back
            sent += 1
            await in_flight.wait()
            budget.on_rate_limited(None)
            first_cut.append(budget.current_rate)
            await answered.wait()

        tasks = [asyncio.ensure_future(request()) for _ in range(8)]
        while sent < 8:
            await asyncio.sleep(0.1)
        in_flight.set()
        await asyncio.sleep(0)
        answered.set()
        await asyncio.gather(*tasks)
        after_burst = budget.current_rate

        # A request sent after that burst and answered 429 is news: it counts again.
        async def later_request() -> None:
            await budget.acquire()
            budget.on_rate_limited(None)

        await later_request()
        return first_cut[0], after_burst, budget.current_rate

    after_one, after_burst, after_later = run_virtual(main)
    assert after_one < 120
    assert after_burst == after_one
    assert after_later < after_burst


def test_429s_reported_from_elsewhere_count_once_per_burst() -> None:
    now = [0.0]
    budget = RateBudget(120, clock=lambda: now[0])
    budget.on_rate_limited(1.0)
    cut = budget.current_rate
    for step in range(8):  # the rest of the burst, spread over the next second and a half
        now[0] = 0.2 * step
        budget.on_rate_limited(1.0)
    assert budget.current_rate == cut
    now[0] = 10.0  # well after the pause: a new signal
    budget.on_rate_limited(1.0)
    assert budget.current_rate < cut


def test_the_pace_recovers_slowly_and_never_passes_the_rate() -> None:
    now = [0.0]
    budget = RateBudget(120, clock=lambda: now[0])
    budget.on_rate_limited(None)
    low = budget.current_rate
    for _ in range(10):
        now[0] += 0.5
        budget.on_accepted()
    assert low < budget.current_rate < low + 1  # slowly
    for _ in range(5000):
        now[0] += 0.5
        budget.on_accepted()
    assert budget.current_rate == pytest.approx(120 / (1 + GUARD_SHARE))


@pytest.mark.parametrize("rate", [120, 500])
def test_adapts_to_a_server_allowing_70_percent_of_the_rate(rate: int) -> None:
    allowed = int(rate * 0.7)
    result = simulate(rate=rate, allowed=allowed, rows=rate * 45, workers=32, seed=4)
    assert result.achieved_share >= 0.85  # of what the server allows
    assert result.rejected_share <= 0.02
    assert len(result.accepted_at) == rate * 45  # every row sent in the end


def test_adapts_when_the_server_counts_its_429s_and_says_when_to_come_back() -> None:
    result = simulate(
        rate=120, allowed=84, rows=120 * 45, seed=5, count_rejected=True, retry_after=True
    )
    assert result.achieved_share >= 0.85
    assert result.rejected_share <= 0.02


def test_adapts_to_another_integration_spending_a_third_of_the_budget() -> None:
    result = simulate(rate=120, allowed=120, others=40, rows=120 * 45, seed=6)
    assert result.achieved_share >= 0.85
    assert result.rejected_share <= 0.02


# -- unpaced, estimates, settings -----------------------------------------------------------------


async def _no_sleep(seconds: float) -> None:
    raise AssertionError(f"unpaced acquire slept {seconds} s")


@pytest.mark.parametrize("rate", [0, -1])
def test_unpaced_acquire_returns_at_once(rate: float) -> None:
    budget = RateBudget(rate, clock=lambda: 0.0, sleep=_no_sleep)

    async def main() -> None:
        for _ in range(10_000):
            await budget.acquire()
            budget.on_accepted()

    asyncio.run(main())
    assert budget.current_rate == math.inf
    assert budget.eta_seconds(10_000) == 0.0


def test_unpaced_still_pauses_on_429() -> None:
    async def main(loop: VirtualTimeLoop) -> float:
        budget = RateBudget(0, clock=loop.time)
        await budget.acquire()
        budget.on_rate_limited(5.0)
        await budget.acquire()
        return loop.time()

    assert run_virtual(main) == 5.0


def test_eta_follows_the_pace_and_the_pause() -> None:
    now = [0.0]
    budget = RateBudget(120, clock=lambda: now[0])
    assert budget.eta_seconds(0) == 0.0
    assert budget.eta_seconds(120) == pytest.approx(60 * (1 + GUARD_SHARE))
    budget.on_rate_limited(30.0)
    slower = 120 * 60 / budget.current_rate
    assert budget.eta_seconds(120) == pytest.approx(30 + slower)
    assert slower > 60 * (1 + GUARD_SHARE)


@pytest.mark.parametrize("rate", [math.nan, math.inf])
def test_a_rate_that_is_not_a_number_is_refused(rate: float) -> None:
    with pytest.raises(InputError, match="--rate"):
        RateBudget(rate)


# -- a server that answers 429 and says nothing useful (issue 18) ---------------------------------


async def _storm(
    budget: RateBudget,
    loop: VirtualTimeLoop,
    retry_after: float | None,
    *,
    workers: int = 8,
    storm_ends: float = math.inf,
    rows: int = 20,
    until: float = 300.0,
) -> tuple[list[float], list[float]]:
    """Workers send ``rows`` rows through ``budget``; every request before ``storm_ends`` gets a
    429 carrying ``retry_after``. (request times, accepted times) until done or ``until``."""
    requests: list[float] = []
    accepted: list[float] = []
    left = [rows]

    async def worker() -> None:
        while left[0] > 0 and loop.time() < until:
            await budget.acquire()
            requests.append(loop.time())
            await asyncio.sleep(0.01)  # the round trip
            if loop.time() < storm_ends:
                budget.on_rate_limited(retry_after)
                continue
            budget.on_accepted()
            accepted.append(loop.time())
            left[0] -= 1

    await asyncio.gather(*(worker() for _ in range(workers)))
    return requests, accepted


@pytest.mark.parametrize("retry_after", [None, 0.0, -5.0, math.nan, math.inf])
def test_unpaced_a_429_without_a_usable_wait_backs_off_exponentially(
    retry_after: float | None,
) -> None:
    # Unpaced, an HTML 429 or Retry-After 0 once let 8 workers make 26,000+ requests a minute.
    async def main(loop: VirtualTimeLoop) -> list[float]:
        budget = RateBudget(0, clock=loop.time)
        requests, _ = await _storm(budget, loop, retry_after, until=600.0)
        return requests

    requests = run_virtual(main)
    first_minute = [t for t in requests if t < 60]
    # 8 in flight at each try, the pause doubling 1, 2, 4 ... 32 s: about 7 tries in a minute.
    assert len(first_minute) <= 8 * 7
    # Capped at the window: one try a minute from then on, never slower.
    tenth_minute = [t for t in requests if 540 <= t < 600]
    assert 8 <= len(tenth_minute) <= 16
    assert len(requests) <= 8 * 16


def test_unpaced_backoff_ends_with_the_storm_and_starts_over_after_an_accepted_answer() -> None:
    async def main(loop: VirtualTimeLoop) -> tuple[list[float], list[float], float]:
        budget = RateBudget(0, clock=loop.time, sleep=asyncio.sleep)
        requests, accepted = await _storm(budget, loop, 0.0, storm_ends=20.0, rows=1000)
        # Recovered: sending is unpaced again, and the next 429 pauses a second, not a minute.
        start = loop.time()
        await budget.acquire()
        assert loop.time() == start
        budget.on_rate_limited(None)
        await budget.acquire()
        return requests, accepted, loop.time() - start

    requests, accepted, pause = run_virtual(main)
    assert len(accepted) >= 1000  # (the last round trips overshoot by a few)
    assert accepted[-1] - accepted[0] < 5  # once accepted, as fast as the round trips allow
    assert len([t for t in requests if t < 20]) <= 8 * 5
    assert pause == pytest.approx(1.0)


@pytest.mark.parametrize("retry_after", [None, 0.0])
def test_paced_a_429_without_a_usable_wait_slows_down_too(retry_after: float | None) -> None:
    async def main(loop: VirtualTimeLoop) -> tuple[list[float], float]:
        budget = RateBudget(120, clock=loop.time)
        requests, _ = await _storm(budget, loop, retry_after, until=600.0)
        return requests, budget.current_rate

    requests, rate = run_virtual(main)
    assert len(requests) <= 60  # 120 a minute would be 1,200 in these ten minutes
    assert rate <= 120 * 0.05


@pytest.mark.parametrize("rate", [0, 120])
def test_an_absurd_retry_after_pauses_no_longer_than_the_cap(rate: float) -> None:
    async def main(loop: VirtualTimeLoop) -> float:
        budget = RateBudget(rate, clock=loop.time)
        await budget.acquire()
        budget.on_rate_limited(1e308)
        await budget.acquire()
        return loop.time()

    assert run_virtual(main) == pytest.approx(MAX_RETRY_AFTER)


def test_a_retry_after_longer_than_the_backoff_is_obeyed() -> None:
    async def main(loop: VirtualTimeLoop) -> float:
        budget = RateBudget(0, clock=loop.time)
        await budget.acquire()
        budget.on_rate_limited(42.0)
        await budget.acquire()
        return loop.time()

    assert run_virtual(main) == pytest.approx(42.0)
