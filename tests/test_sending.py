"""The sender over a scripted transport: a plain async function answers, no HTTP involved."""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Iterator
from pathlib import Path

import pytest

from importer.ledger import ChunkRecord, Ledger, Marks, NewRow, RowState
from importer.pacing import RateBudget
from importer.records import Failed, FailureKind, Sent
from importer.retry import RetryPolicy
from importer.sending import PendingRows, RunControl, Sender
from importer.stop_rules import StopRules

TRANSIENT = Failed(FailureKind.TRANSIENT, 503, "HTTP_503", "RD Station answered 503")
UNANSWERED = Failed(FailureKind.TRANSIENT, None, "TIMEOUT", "no answer in 30 s")
REFUSED = Failed(
    FailureKind.TRANSIENT, None, "CONNECTION_REFUSED", "connection refused", reached_server=False
)
NOT_FOUND = Failed(FailureKind.REJECTED, 404, "RESOURCE_NOT_FOUND", "Resource not found.")
THROTTLED = Failed(FailureKind.RATE_LIMITED, 429, "RATE_LIMITED", "slow down", 0.0)
REFUSED_KEY = Failed(
    FailureKind.AUTH_REFUSED, 401, "UNAUTHORIZED", "RD Station refused the API key"
)
REJECTED = Failed(FailureKind.REJECTED, 400, "INVALID_FORMAT", "linkedin: invalid")
LEAD_LIMIT = Failed(FailureKind.LEAD_LIMITED, 429, "LEAD_LIMITED", "this lead is at its limit")


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    ledger = Ledger(tmp_path / "ledger.sqlite")
    ledger.begin_run(tmp_path / "in.csv", "2026-12-01T00:00:00Z", dry_run=False)
    yield ledger
    ledger.close()


def record(ledger: Ledger, *emails: str) -> None:
    rows = [
        NewRow(f"k{n}", n, f"body-{n}".encode(), b"[]", email, "c", f"id{n}", n)
        for n, email in enumerate(emails, start=2)
    ]
    ledger.record_chunk(ChunkRecord(new=rows))


class Script:
    """Answers each body with the next answer scripted for it (the last one repeats)."""

    def __init__(self, **answers: list[Sent | Failed]) -> None:
        self.answers = {
            f"body-{k.removeprefix('row')}".encode(): list(v) for k, v in answers.items()
        }
        self.calls: collections.Counter[bytes] = collections.Counter()

    async def __call__(self, body: bytes) -> Sent | Failed:
        self.calls[body] += 1
        queue = self.answers.get(body) or [Sent(f"uuid-{body.decode()}")]
        return queue.pop(0) if len(queue) > 1 else queue[0]


async def send_all(ledger: Ledger, transport, *, concurrency: int = 2, max_attempts: int = 3):
    control = RunControl()
    rows = PendingRows(ledger, control)
    rows.reading_ended()
    done: list[int] = []
    sender = Sender(
        transport=transport,
        rows=rows,
        marks=Marks(ledger),
        control=control,
        budget=RateBudget(0),
        retry=RetryPolicy(max_attempts=max_attempts, wait=False),
        concurrency=concurrency,
        stop_grace=1.0,
        now=lambda: "2026-12-01T00:00:01Z",
        row_done=lambda: done.append(1),
        rules=StopRules(api_url="https://api.rd.services", concurrency=concurrency),
    )
    await sender.run()
    return sender, control, len(done)


def states(ledger: Ledger) -> dict[int, str]:
    return {
        row: state for row, state in ledger._db.execute("SELECT row, state FROM rows ORDER BY row")
    }


async def test_every_row_is_sent_once_and_recorded(ledger: Ledger) -> None:
    record(ledger, "a@x.co", "b@x.co", "c@x.co")
    script = Script()
    sender, control, done = await send_all(ledger, script)
    assert states(ledger) == {2: "sent", 3: "sent", 4: "sent"}
    assert sorted(script.calls.values()) == [1, 1, 1]
    assert (done, sender.stats.requests, control.stopping) == (3, 3, False)
    assert [s.event_uuid for s in ledger.successes()] == [
        "uuid-body-2",
        "uuid-body-3",
        "uuid-body-4",
    ]


async def test_transient_failures_are_retried_and_429s_do_not_count_as_tries(
    ledger: Ledger,
) -> None:
    record(ledger, "a@x.co")
    script = Script(row2=[TRANSIENT, THROTTLED, THROTTLED, TRANSIENT, Sent("u")])
    sender, _, _ = await send_all(ledger, script, max_attempts=3)
    assert states(ledger) == {2: "sent"}
    assert (sender.stats.requests, sender.stats.retries, sender.stats.rate_limited_answers) == (
        5,
        2,
        2,
    )


async def test_a_row_out_of_tries_fails_and_an_unanswered_try_leaves_it_in_doubt(
    ledger: Ledger,
) -> None:
    record(ledger, "a@x.co", "b@x.co")
    script = Script(row2=[TRANSIENT], row3=[UNANSWERED, TRANSIENT])
    await send_all(ledger, script, max_attempts=2)
    assert states(ledger) == {2: RowState.FAILED.value, 3: RowState.IN_DOUBT.value}
    failures = {f.row: f.message for f in ledger.failures()}
    assert failures[3].endswith("so RD Station may have recorded it")


async def test_a_refused_key_stops_the_run_and_leaves_its_row_to_send(ledger: Ledger) -> None:
    record(ledger, "a@x.co", "b@x.co", "c@x.co")
    script = Script(row2=[REFUSED_KEY], row3=[REFUSED_KEY], row4=[REFUSED_KEY])
    _, control, _ = await send_all(ledger, script, concurrency=1)
    assert (control.stopping, control.reason) == (True, "RD Station refused the API key")
    assert set(states(ledger).values()) == {"pending"}
    assert sum(script.calls.values()) == 1


async def test_a_lead_at_its_limit_fails_its_later_rows_without_a_request(ledger: Ledger) -> None:
    record(ledger, "a@x.co", "a@x.co", "b@x.co")
    script = Script(row2=[LEAD_LIMIT])
    await send_all(ledger, script, concurrency=1)
    assert states(ledger) == {2: "failed", 3: "failed", 4: "sent"}
    assert script.calls[b"body-3"] == 0
    assert [f.error_type for f in ledger.failures()] == ["LEAD_LIMITED", "LEAD_LIMITED"]


async def test_a_rejected_row_fails_once_and_the_others_go_on(ledger: Ledger) -> None:
    record(ledger, "a@x.co", "b@x.co")
    script = Script(row2=[REJECTED])
    await send_all(ledger, script)
    assert states(ledger) == {2: "failed", 3: "sent"}
    assert script.calls[b"body-2"] == 1


async def test_many_unreachable_rows_in_a_row_stop_the_run(ledger: Ledger) -> None:
    record(ledger, *(f"r{n}@x.co" for n in range(30)))
    script = Script(**{f"row{n}": [REFUSED] for n in range(2, 32)})
    _, control, _ = await send_all(ledger, script, concurrency=1, max_attempts=1)
    reason = control.reason or ""
    assert "could not be reached for 10 rows in a row" in reason
    # no request reached a server: the rows that failed before the stop are failed (resent by
    # the next run), the one that stopped it and the rest are left to send; none is in doubt
    assert list(states(ledger).values()).count("pending") == 21
    assert "in_doubt" not in states(ledger).values()


async def test_a_server_that_never_answers_stops_the_run_within_a_few_attempts(
    ledger: Ledger,
) -> None:
    record(ledger, *(f"r{n}@x.co" for n in range(10)))
    script = Script(**{f"row{n}": [UNANSWERED] for n in range(2, 12)})
    sender, control, _ = await send_all(ledger, script, concurrency=1, max_attempts=6)
    assert "did not answer 3 requests in a row" in (control.reason or "")
    assert sender.stats.requests == 3
    assert list(states(ledger).values()).count("in_doubt") == 1  # the one sent, unanswered


async def test_identical_404s_mean_a_wrong_address_and_leave_the_rows_to_send(
    ledger: Ledger,
) -> None:
    record(ledger, *(f"r{n}@x.co" for n in range(8)))
    script = Script(**{f"row{n}": [NOT_FOUND] for n in range(2, 10)})
    sender, control, _ = await send_all(ledger, script, concurrency=1)
    assert "--api-url" in (control.reason or "")
    assert sender.stats.requests == 5
    assert set(states(ledger).values()) == {"pending"}


async def test_a_second_interrupt_stops_waiting_for_requests_in_flight(ledger: Ledger) -> None:
    record(ledger, "a@x.co")
    started = asyncio.Event()

    async def hanging(body: bytes) -> Sent | Failed:
        started.set()
        await asyncio.sleep(60)
        return Sent("never")

    async def interrupt_twice(control: RunControl) -> None:
        await started.wait()
        control.interrupt("Ctrl-C")
        control.interrupt("Ctrl-C")

    control = RunControl()
    rows = PendingRows(ledger, control)
    rows.reading_ended()
    sender = Sender(
        transport=hanging,
        rows=rows,
        marks=Marks(ledger),
        control=control,
        budget=RateBudget(0),
        retry=RetryPolicy(wait=False),
        concurrency=1,
        stop_grace=30.0,
        now=lambda: "",
        row_done=lambda: None,
        rules=StopRules(api_url="https://api.rd.services", concurrency=1),
    )
    await asyncio.wait_for(asyncio.gather(sender.run(), interrupt_twice(control)), 5)
    assert (control.interrupted, control.reason) == (True, "interrupted (Ctrl-C)")
    assert states(ledger) == {2: "in_flight"}  # its request left: the next run decides
