"""RetryPolicy: full-jitter delays within their bounds, caps on attempts and on time."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from importer.errors import InputError
from importer.retry import RetryPolicy


@given(
    attempt=st.integers(min_value=1, max_value=10_000),
    base=st.floats(min_value=0, max_value=100),
    cap=st.floats(min_value=0, max_value=3600),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_every_delay_lies_between_zero_and_the_capped_exponential(
    attempt: int, base: float, cap: float, seed: int
) -> None:
    policy = RetryPolicy(base=base, cap=cap, rng=random.Random(seed))
    ceiling = min(cap, base * 2.0 ** min(attempt - 1, 64))
    assert 0.0 <= policy.delay(attempt) <= ceiling


@pytest.mark.parametrize(("attempt", "ceiling"), [(1, 1.0), (2, 2.0), (4, 8.0), (7, 60.0)])
def test_delays_spread_over_the_whole_jitter_range(attempt: int, ceiling: float) -> None:
    policy = RetryPolicy(base=1.0, cap=60.0, rng=random.Random(7))
    delays = [policy.delay(attempt) for _ in range(2000)]
    assert max(delays) <= ceiling
    # Full jitter: the draws cover the range, not a band around the exponential.
    assert min(delays) < 0.05 * ceiling
    assert max(delays) > 0.95 * ceiling
    assert sum(delays) / len(delays) == pytest.approx(ceiling / 2, rel=0.1)


def test_a_seeded_policy_repeats_its_delays() -> None:
    first = RetryPolicy(rng=random.Random(1))
    second = RetryPolicy(rng=random.Random(1))
    assert [first.delay(n) for n in range(1, 7)] == [second.delay(n) for n in range(1, 7)]


def test_without_waits_every_delay_is_zero_and_the_decisions_stay() -> None:
    policy = RetryPolicy(wait=False)
    assert [policy.delay(n) for n in range(1, 10)] == [0.0] * 9
    assert policy.should_retry(5, 0.0)
    assert not policy.should_retry(6, 0.0)


def test_attempts_are_capped() -> None:
    policy = RetryPolicy(max_attempts=6)
    assert all(policy.should_retry(n, 0.0) for n in range(1, 6))
    assert not policy.should_retry(6, 0.0)
    assert not policy.should_retry(7, 0.0)


def test_time_is_capped() -> None:
    policy = RetryPolicy(max_attempts=100, max_elapsed=900.0)
    assert policy.should_retry(1, 899.9)
    assert not policy.should_retry(1, 900.0)
    assert not policy.should_retry(1, 5000.0)


def test_defaults_try_six_times_within_fifteen_minutes() -> None:
    policy = RetryPolicy()
    assert (policy.max_attempts, policy.base, policy.cap, policy.max_elapsed) == (
        6,
        1.0,
        60.0,
        900.0,
    )


def test_a_runaway_attempt_count_stays_at_the_cap() -> None:
    policy = RetryPolicy(cap=60.0, rng=random.Random(2))
    assert 0.0 <= policy.delay(10**9) <= 60.0
    assert 0.0 <= policy.delay(0) <= 1.0  # treated as the first attempt


@pytest.mark.parametrize(
    ("kwargs", "setting"),
    [
        ({"max_attempts": 0}, "attempts"),
        ({"base": -1.0}, "base"),
        ({"cap": math.nan}, "cap"),
        ({"max_elapsed": math.inf}, "max_elapsed"),
    ],
)
def test_unusable_settings_are_refused(kwargs: dict[str, float], setting: str) -> None:
    with pytest.raises(InputError, match=setting):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]
