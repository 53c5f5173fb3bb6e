"""StopRules: which runs of answers stop the whole run, and what they say. Table-driven.

Each case feeds a sequence of attempt outcomes, in the order their answers arrive, and names the
first outcome that must stop the run (or none) and the reason's exact text.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from dataclasses import dataclass

import pytest

from importer.records import Failed, FailureKind
from importer.retry import RetryPolicy
from importer.stop_rules import NOT_RD_AFTER, RATE_LIMITED_FOR, SAME_MISS, StopRules
from pacing_sim import VirtualTimeLoop, run_virtual

API = "https://api.rd.services"
HOST = "api.rd.services"

T = FailureKind


@dataclass(frozen=True)
class Tick:
    """Not an outcome: the clock moves on this many seconds."""

    seconds: float


SENT = "sent"
TIMEOUT = Failed(T.TRANSIENT, None, "TIMEOUT", f"no answer from {HOST} within 30 s")
CONNECT_TIMEOUT = Failed(
    T.TRANSIENT,
    None,
    "TIMEOUT",
    f"could not connect to {HOST} within 30 s",
    reached_server=False,
)
REFUSED = Failed(
    T.TRANSIENT,
    None,
    "CONNECTION_ERROR",
    f"could not connect to {HOST} (connection refused)",
    reached_server=False,
)
E500 = Failed(T.TRANSIENT, 500, "HTTP_500", "RD Station answered HTTP 500 with an empty body")
NOT_FOUND = Failed(
    T.REJECTED, 404, "HTTP_404", "RD Station answered HTTP 404 with a non-JSON body: Not Found"
)
NOT_FOUND_OTHER = Failed(
    T.REJECTED, 404, "RESOURCE_NOT_FOUND", "RD Station answered HTTP 404: no such contact"
)
NOT_ALLOWED = Failed(T.REJECTED, 405, "HTTP_405", "RD Station answered HTTP 405 with an empty body")
INVALID = Failed(T.REJECTED, 400, "INVALID_FORMAT", "email: invalid (INVALID_FORMAT)")
LEAD = Failed(T.LEAD_LIMITED, 429, "LEAD_LIMITED", "this lead's email hit the per-lead limit")
NO_UUID = Failed(
    T.UNCERTAIN,
    200,
    "NO_EVENT_UUID",
    f"{HOST} answered HTTP 200 without the event_uuid RD Station sends (a non-JSON body: "
    "Hotel Wi-Fi); the request reached that server, so it may have been recorded",
)
LIMITED = Failed(
    T.RATE_LIMITED, 429, "RATE_LIMITED", "RD Station's request limit for this account was reached"
)
AUTH = Failed(T.AUTH_REFUSED, 401, "UNAUTHORIZED", "RD Station refused the API key; check it")
FATAL = Failed(T.FATAL, None, "TLS_CERTIFICATE", f"TLS certificate of {HOST} could not be ...")

Outcome = str | Failed | Tick | tuple[Failed, bool]  # (failed, last_attempt); bare: last


def _unreachable(limit: int, failed: Failed) -> str:
    return (
        f"RD Station could not be reached for {limit} rows in a row (last: {failed.message}); "
        "run the same command later to resume"
    )


def _silent(count: int, failed: Failed = TIMEOUT) -> str:
    return (
        f"{API} did not answer {count} requests in a row (last: {failed.message}); run the "
        "same command later to resume"
    )


def _wrong(status: int, count: int, failed: Failed) -> str:
    return (
        f"{API} answered HTTP {status} to {count} rows in a row (last: {failed.message}): the "
        "address is wrong, not the rows; check --api-url (RD Station's is "
        "https://api.rd.services): those rows are left to send"
    )


NOT_RD_FIRST = (
    f"the first answers are not RD Station's: {NO_UUID.message}; check --api-url (RD Station's "
    "is https://api.rd.services): rows that got such an answer are in doubt, the rest are left "
    "to send"
)
NOT_RD_LATER = (
    f"{API} stopped answering as RD Station does: 3 answers since the last good one came "
    f"without an event_uuid (last: {NO_UUID.message}); a captive portal or a proxy may be in "
    "the way: run the same command later to resume (those rows are in doubt)"
)
LIMITED_LONG = (
    "RD Station has answered every request with 429 (the account's request limit) for 10 "
    f"minutes (last: {LIMITED.message}); another integration may be spending the budget, or "
    "a daily cap was reached: run the same command later to resume"
)


def retried(failed: Failed, times: int) -> list[Outcome]:
    """``times`` attempts of one row that will be tried again."""
    return [(failed, False)] * times


CASES: list[tuple[str, int, Sequence[Outcome], int | None, str | None]] = [
    # (name, concurrency, outcomes, index of the outcome that stops the run, reason)
    ("all sent", 8, [SENT] * 100, None, None),
    ("rows rejected one by one are the rows' business", 8, [INVALID] * 100, None, None),
    ("lead limits are the rows' business", 8, [LEAD] * 100, None, None),
    ("a refused key stops at once", 8, [SENT, SENT, AUTH], 2, AUTH.message),
    ("a fatal failure stops at once", 8, [FATAL], 0, FATAL.message),
    # Unreachable: rows in a row that failed transiently after all their attempts.
    ("16 rows unreachable, 8 workers", 8, [REFUSED] * 16, 15, _unreachable(16, REFUSED)),
    ("10 rows at least, 1 worker", 1, [E500] * 10, 9, _unreachable(10, E500)),
    ("30 workers: 60 rows", 30, [REFUSED] * 59, None, None),
    ("a row sent starts the count again", 8, [REFUSED] * 15 + [SENT] + [REFUSED] * 15, None, None),
    ("a row rejected starts it again", 8, [REFUSED] * 15 + [INVALID] + [REFUSED] * 15, None, None),
    ("retried attempts are not rows", 8, retried(REFUSED, 200), None, None),
    (
        "429s neither count nor start again",
        8,
        [REFUSED] * 10 + [LIMITED] * 3 + [REFUSED] * 6,
        18,
        _unreachable(16, REFUSED),
    ),
    (
        "rows failed after retries among retried attempts",
        8,
        [*retried(REFUSED, 5), REFUSED] * 15 + retried(REFUSED, 5) + [E500],
        15 * 6 + 5,
        _unreachable(16, E500),
    ),
    # Silent: attempts in a row that timed out, across workers.
    ("16 timeouts, 8 workers", 8, retried(TIMEOUT, 16), 15, _silent(16)),
    ("3 timeouts at least, 1 worker", 1, retried(TIMEOUT, 3), 2, _silent(3)),
    (
        "connect timeouts count too",
        2,
        retried(CONNECT_TIMEOUT, 4),
        3,
        _silent(4, CONNECT_TIMEOUT),
    ),
    (
        "an answer starts the count again",
        8,
        [*retried(TIMEOUT, 15), (E500, False), *retried(TIMEOUT, 15)],
        None,
        None,
    ),
    (
        "a 429 is an answer too",
        8,
        [*retried(TIMEOUT, 15), LIMITED, *retried(TIMEOUT, 15)],
        None,
        None,
    ),
    ("a sent row too", 8, [*retried(TIMEOUT, 15), SENT, *retried(TIMEOUT, 15)], None, None),
    (
        "refusals between neither count nor start again",
        8,
        retried(TIMEOUT, 8) + retried(REFUSED, 5) + retried(TIMEOUT, 8),
        20,
        _silent(16),
    ),
    # Wrong address: identical 404 / 405 answers in a row.
    ("5 identical 404s", 8, [NOT_FOUND] * 5, 4, _wrong(404, 5, NOT_FOUND)),
    ("5 identical 405s", 8, [NOT_ALLOWED] * 5, 4, _wrong(405, 5, NOT_ALLOWED)),
    ("after rows were sent too", 8, [SENT] * 3 + [NOT_FOUND] * 5, 7, _wrong(404, 5, NOT_FOUND)),
    ("4 are not enough", 8, [NOT_FOUND] * 4 + [SENT] + [NOT_FOUND] * 4, None, None),
    ("404s that differ are rows'", 8, [NOT_FOUND, NOT_FOUND_OTHER] * 10, None, None),
    ("404 and 405 differ", 8, [NOT_FOUND, NOT_ALLOWED] * 10, None, None),
    ("any other answer between", 8, [NOT_FOUND] * 4 + [LIMITED] + [NOT_FOUND] * 4, None, None),
    (
        "a different 404 starts a new run",
        8,
        [NOT_FOUND_OTHER] * 3 + [NOT_FOUND] * 5,
        7,
        _wrong(404, 5, NOT_FOUND),
    ),
    # Not RD Station: 2xx without an event_uuid.
    ("the very first answer", 8, [NO_UUID], 0, NOT_RD_FIRST),
    ("first after errors", 8, [INVALID, E500, NO_UUID], 2, NOT_RD_FIRST),
    ("once RD Station answered, one is counted", 8, [SENT, NO_UUID, SENT, NO_UUID], None, None),
    ("two since the last good one", 8, [SENT, NO_UUID, INVALID, NO_UUID, SENT], None, None),
    (
        "three since the last good one",
        8,
        [SENT, NO_UUID, INVALID, NO_UUID, REFUSED, NO_UUID],
        5,
        NOT_RD_LATER,
    ),
    # Refused for long: nothing but 429s for ten minutes.
    (
        "429s for ten minutes",
        8,
        [LIMITED, Tick(300), LIMITED, Tick(299.5), LIMITED, Tick(0.5), LIMITED],
        6,
        LIMITED_LONG,
    ),
    (
        "timeouts between 429s are no answer",
        8,
        [LIMITED, Tick(300), (TIMEOUT, False), Tick(300), LIMITED],
        4,
        LIMITED_LONG,
    ),
    ("an accepted answer between", 8, [LIMITED, Tick(300), SENT, Tick(300), LIMITED], None, None),
    (
        "a rejected row is an answer too",
        8,
        [LIMITED, Tick(300), INVALID, Tick(300), LIMITED, Tick(599), LIMITED],
        None,
        None,
    ),
]


def feed(rules: StopRules, outcomes: Sequence[Outcome], now: list[float]) -> list[str | None]:
    reasons: list[str | None] = []
    for number, outcome in enumerate(outcomes):
        if isinstance(outcome, Tick):
            now[0] += outcome.seconds
            reasons.append(None)
        elif outcome == SENT:
            rules.on_sent()
            reasons.append(None)
        else:
            failed, last = outcome if isinstance(outcome, tuple) else (outcome, True)
            assert isinstance(failed, Failed)
            reasons.append(rules.on_failed(failed, last_attempt=last, row=f"row-{number}"))
    return reasons


@pytest.mark.parametrize(
    ("concurrency", "outcomes", "stops_at", "reason"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_stop_rules(
    concurrency: int, outcomes: Sequence[Outcome], stops_at: int | None, reason: str | None
) -> None:
    now = [0.0]
    rules = StopRules(api_url=API, concurrency=concurrency, clock=lambda: now[0])
    reasons = feed(rules, outcomes, now)
    first = next((i for i, r in enumerate(reasons) if r is not None), None)
    assert first == stops_at
    if stops_at is not None:
        assert reasons[stops_at] == reason
        assert "\n" not in (reason or "")


def test_the_rows_of_a_wrong_address_are_to_be_sent_again() -> None:
    rules = StopRules(api_url=API, concurrency=8)
    reasons = feed(rules, [INVALID, SENT, *[NOT_FOUND] * SAME_MISS], [0.0])
    last = reasons[-1]
    assert last is not None
    assert rules.rows_to_send_again == tuple(f"row-{n}" for n in range(2, 2 + SAME_MISS))
    # Requests in flight come home with the same answer after the stop: theirs too.
    assert rules.on_failed(NOT_FOUND, last_attempt=True, row="late") == last.replace(
        "to 5 rows", "to 6 rows"
    )
    assert rules.rows_to_send_again[-1] == "late"


@pytest.mark.parametrize(
    "outcomes",
    [[REFUSED] * 16, retried(TIMEOUT, 16), [NO_UUID], [SENT] + [NO_UUID] * NOT_RD_AFTER, [AUTH]],
)
def test_other_rules_leave_no_rows_to_send_again(outcomes: Sequence[Outcome]) -> None:
    rules = StopRules(api_url=API, concurrency=8)
    assert feed(rules, outcomes, [0.0])[-1] is not None
    assert rules.rows_to_send_again == ()


def test_the_rate_limit_rule_is_ten_minutes() -> None:
    assert RATE_LIMITED_FOR == 600


def test_a_never_answering_server_stops_the_run_within_two_minutes() -> None:
    """The sender's loop with the default settings (8 workers, 30 s timeout, RetryPolicy()),
    against a server that takes requests and never answers: once 413 s, now about a minute."""

    async def main(loop: VirtualTimeLoop) -> float:
        rules = StopRules(api_url=API, concurrency=8, clock=loop.time)
        retry = RetryPolicy(rng=random.Random(7))
        stopped = asyncio.Event()
        stopped_at: list[float] = []
        rows = iter(range(1000))

        async def worker() -> None:
            for row in rows:
                tries, first_at = 0, loop.time()
                while True:
                    await asyncio.sleep(30)  # the timeout
                    tries += 1
                    last = not retry.should_retry(tries, loop.time() - first_at)
                    if rules.on_failed(TIMEOUT, last_attempt=last, row=row):
                        stopped_at.append(loop.time())
                        stopped.set()
                        return
                    if last:
                        break
                    await asyncio.sleep(retry.delay(tries))

        workers = [asyncio.ensure_future(worker()) for _ in range(8)]
        await stopped.wait()
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        return stopped_at[0]

    assert 60 <= run_virtual(main) < 120
