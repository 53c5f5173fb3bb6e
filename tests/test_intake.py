"""Row intake: what a row becomes, and the resume rules, table-driven over every case."""

from __future__ import annotations

import itertools

import orjson
import pytest

from importer.client import encode_conversion
from importer.intake import (
    RESUME_RULES,
    Action,
    Prepared,
    Rejected,
    ResumePolicy,
    payload_key,
    plan_chunk,
    prepare,
    resume_action,
)
from importer.ledger import Entry, RowState
from importer.records import FailureKind, Row

RUN = 7

# Every state a key can be in, with every failure kind a FAILED row can carry (None: it failed
# before sending, or an old ledger said nothing).
ENTRY_CASES = [
    (RowState.PENDING, None),
    (RowState.IN_FLIGHT, None),
    (RowState.IN_DOUBT, None),
    (RowState.HELD, None),
    (RowState.SENT, None),
    (RowState.FAILED, None),
    *((RowState.FAILED, kind) for kind in FailureKind),
]
POLICIES = [
    ResumePolicy(in_flight, retry_rejected)
    for in_flight, retry_rejected in itertools.product((None, "resend", "skip"), (False, True))
]


def expected(state: RowState, kind: FailureKind | None, policy: ResumePolicy) -> Action:
    """The README's resume rules, written out plainly, one case at a time."""
    if state is RowState.PENDING:
        return Action.SEND
    if state is RowState.SENT:
        return Action.ALREADY_SENT
    if state in (RowState.IN_FLIGHT, RowState.IN_DOUBT):  # resent unless the user says skip
        return Action.HOLD if policy.in_flight == "skip" else Action.RESEND
    if state is RowState.HELD:  # a skip is remembered until the user says resend
        return Action.RESEND if policy.in_flight == "resend" else Action.HOLD
    # failed: the cause on the way (network, budget, key, lead limit) is resent; a refusal of
    # the row itself only with --retry-rejected
    on_the_way = kind in (
        FailureKind.TRANSIENT,
        FailureKind.RATE_LIMITED,
        FailureKind.LEAD_LIMITED,
        FailureKind.AUTH_REFUSED,
        FailureKind.FATAL,
    )
    return Action.RESEND if on_the_way or policy.retry_rejected else Action.KEEP_FAILED


@pytest.mark.parametrize("policy", POLICIES, ids=repr)
@pytest.mark.parametrize(("state", "kind"), ENTRY_CASES, ids=str)
def test_resume_rules_cover_every_state_kind_and_policy(
    state: RowState, kind: FailureKind | None, policy: ResumePolicy
) -> None:
    entry = Entry(state, row=5, seen_run=RUN - 1, kind=kind)
    assert resume_action(entry, policy) is expected(state, kind, policy)


def test_the_table_has_a_rule_for_every_state() -> None:
    assert {state for state, _ in RESUME_RULES} == set(RowState)


def _prepared(row: int, email: str = "ana@example.com", identity: str = "") -> Prepared:
    payload = {"conversion_identifier": "c", "email": email}
    encoded, body = encode_conversion(payload)
    return Prepared(payload_key(encoded), body, email, "c", b'["x"]', row, identity or email, row)


@pytest.mark.parametrize("policy", POLICIES, ids=repr)
@pytest.mark.parametrize(("state", "kind"), ENTRY_CASES, ids=str)
def test_a_chunk_plan_records_what_each_action_needs(
    state: RowState, kind: FailureKind | None, policy: ResumePolicy
) -> None:
    row = _prepared(3)
    plan = plan_chunk([row], {row.key: Entry(state, 9, RUN - 1, kind)}, {}, policy, RUN)
    record = plan.record
    action = expected(state, kind, policy)
    assert not record.new
    assert [(s.key, s.row) for s in record.seen] == [(row.key, 3)]
    assert plan.to_send == (1 if action in (Action.SEND, Action.RESEND) else 0)
    assert record.resend == ([(row.key, row.body)] if action is Action.RESEND else [])
    held = [(f.key, f.error_type, f.state) for f in record.failed]
    assert held == (
        [(row.key, "IN_FLIGHT_UNKNOWN", RowState.HELD)] if action is Action.HOLD else []
    )
    assert plan.in_doubt_found == (state in (RowState.IN_FLIGHT, RowState.IN_DOUBT, RowState.HELD))


def test_new_rows_rejected_rows_and_duplicates() -> None:
    first, again, other = _prepared(2), _prepared(3), _prepared(4, "bia@example.com")
    bad = Rejected("validation", "VALIDATION_ERROR", "no email", b"[]", 5, "id5", 5)
    plan = plan_chunk([first, again, other, bad], {}, {}, ResumePolicy(), RUN)
    assert [n.row for n in plan.record.new] == [2, 4]
    assert [(f.key, f.error_type) for f in plan.record.failed] == [
        ("dup:3", "DUPLICATE_ROW"),
        ("rej:id5:5", "VALIDATION_ERROR"),
    ]
    assert plan.record.failed[0].message == "row 3 is identical to row 2: not sent twice"
    assert plan.to_send == 2


def test_a_duplicate_of_a_row_in_an_earlier_chunk_of_the_same_run() -> None:
    row = _prepared(900)
    known = {row.key: Entry(RowState.PENDING, 2, RUN, None)}
    plan = plan_chunk([row], known, {}, ResumePolicy(), RUN)
    assert [(f.key, f.message) for f in plan.record.failed] == [
        ("dup:900", "row 900 is identical to row 2: not sent twice")
    ]
    assert plan.to_send == 0


class _Mapping:
    key = None

    def __init__(self, payload: dict | Exception) -> None:
        self.payload = payload

    def apply(self, row: Row, warn: object = None) -> dict:
        if isinstance(self.payload, Exception):
            raise self.payload
        return self.payload


def test_prepare_keys_a_row_by_its_payload_whatever_the_field_order() -> None:
    payload = {"email": "ana@example.com", "conversion_identifier": "c", "tags": ["x"]}
    row = Row(2, {"E-mail": "ana@example.com"})
    one = prepare(row, _Mapping(payload))  # type: ignore[arg-type]
    two = prepare(row, _Mapping(dict(reversed(payload.items()))))  # type: ignore[arg-type]
    other = prepare(row, _Mapping({**payload, "name": "Ana"}))  # type: ignore[arg-type]
    assert isinstance(one, Prepared) and isinstance(two, Prepared) and isinstance(other, Prepared)
    assert one.key == two.key != other.key
    assert orjson.loads(one.body) == {
        "event_type": "CONVERSION",
        "event_family": "CDP",
        "payload": payload,
    }
    assert (one.email, one.conversion_id, orjson.loads(one.cells)) == (
        "ana@example.com",
        "c",
        ["ana@example.com"],
    )


def test_prepare_rejects_unreadable_unmappable_and_too_large_rows() -> None:
    from importer.errors import RowError

    ok = {"email": "a@b.co", "conversion_identifier": "c"}
    unreadable = prepare(Row(2, {"a": "x"}, error="a quote never closed"), _Mapping(ok))  # type: ignore[arg-type]
    assert (unreadable.stage, unreadable.error_type) == ("read", "READ_ERROR")  # type: ignore[union-attr]
    mapping_error = prepare(Row(3, {}), _Mapping(RowError("bad", stage="mapping")))  # type: ignore[arg-type]
    assert (mapping_error.stage, mapping_error.error_type) == ("mapping", "MAPPING_ERROR")  # type: ignore[union-attr]
    huge = prepare(Row(4, {}), _Mapping({**ok, "name": "x" * 200_001}))  # type: ignore[arg-type]
    assert isinstance(huge, Rejected) and huge.error_type == "TOO_LARGE"
