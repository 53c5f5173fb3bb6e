"""Row intake, pure and free of I/O: what each row of the file becomes, and what a run does with it.

    prepare(row, mapping)                  -> Prepared | Rejected
    plan_chunk(outcomes, known, policy)    -> ChunkPlan (new / already sent / resend / failed)

A row that maps and validates becomes ``Prepared``: its ledger key (a hash of its payload), the
request body, its email and conversion identifier, and its cells as the ledger keeps them for
failures.csv. Otherwise it is ``Rejected`` with the stage and reason. A chunk of them, plus what
the ledger knows of their keys, plus the resume policy (``--in-flight``, ``--retry-rejected``)
becomes a plan, which the ledger writes in one transaction. What a row's earlier state means for
this run is ``RESUME_RULES``, the one table of the resume rules.
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass, field
from typing import Final, Literal

import orjson

from importer.client import encode_conversion
from importer.errors import RowError
from importer.ledger import ChunkRecord, Entry, FailedRow, NewRow, RowState, SeenRow
from importer.mapping import BoundMapping
from importer.records import FailureKind, Row

MAX_BODY_BYTES: Final = 200_000  # RD Station's documented 0.2 MB per request

InFlight = Literal["resend", "skip"]


@dataclass(slots=True)
class Prepared:
    """A row ready to send."""

    key: str
    body: bytes
    email: str
    conversion_id: str
    cells: bytes  # the row's cells as a JSON list
    row: int


@dataclass(slots=True)
class Rejected:
    """A row that cannot be sent; ``stage`` is ``read``, ``mapping`` or ``validation``."""

    stage: str
    error_type: str
    message: str
    cells: bytes
    row: int


def payload_key(encoded_payload: bytes) -> str:
    """The ledger key of a payload's sorted JSON."""
    return hashlib.blake2b(encoded_payload, digest_size=16).hexdigest()


def prepare(row: Row, mapping: BoundMapping) -> Prepared | Rejected:
    """Map and validate one row."""
    cells = orjson.dumps(list(row.cells.values()))
    if row.error:
        return Rejected("read", "READ_ERROR", row.error, cells, row.number)
    try:
        payload = mapping.apply(row)
    except RowError as exc:
        etype = "MAPPING_ERROR" if exc.stage == "mapping" else "VALIDATION_ERROR"
        return Rejected(exc.stage, etype, exc.message, cells, row.number)
    encoded, body = encode_conversion(payload)
    if len(body) > MAX_BODY_BYTES:
        return Rejected(
            "validation",
            "TOO_LARGE",
            f"the request would be {len(body):,} bytes; RD Station accepts at most "
            f"{MAX_BODY_BYTES:,} (0.2 MB): shorten the longest cells",
            cells,
            row.number,
        )
    return Prepared(
        payload_key(encoded),
        body,
        payload["email"],
        payload["conversion_identifier"],
        cells,
        row.number,
    )


# -- the resume rules ------------------------------------------------------------------------------


class Action(enum.Enum):
    SEND = "send"  # new, or still pending from an earlier run: send it
    ALREADY_SENT = "already_sent"  # an earlier run sent it: skip
    RESEND = "resend"  # back to pending and send again
    KEEP_FAILED = "keep_failed"  # RD Station refused it: it stays failed
    IN_DOUBT = "in_doubt"  # it may have been recorded: --in-flight decides
    HOLD = "hold"  # in doubt and --in-flight skip: not sent, stays in doubt


class Cause(enum.Enum):
    """Why a failed row failed, as far as resuming cares (``FailureKind.resend_next_run``)."""

    ON_THE_WAY = "on_the_way"  # network, budget, key, a lead's daily limit: not the row's fault
    IN_THE_ROW = "in_the_row"  # RD Station refused the row


# state of the key in the ledger, cause  -> action (before the policy)
RESUME_RULES: Final[dict[tuple[RowState, Cause | None], Action]] = {
    (RowState.PENDING, None): Action.SEND,
    (RowState.SENT, None): Action.ALREADY_SENT,
    (RowState.IN_FLIGHT, None): Action.IN_DOUBT,  # a run died while its request was out
    (RowState.IN_DOUBT, None): Action.IN_DOUBT,  # unanswered, or held by --in-flight skip
    (RowState.FAILED, Cause.ON_THE_WAY): Action.RESEND,
    (RowState.FAILED, Cause.IN_THE_ROW): Action.KEEP_FAILED,
}


@dataclass(frozen=True, slots=True)
class ResumePolicy:
    in_flight: InFlight = "resend"  # what to do with rows that may have been recorded
    retry_rejected: bool = False  # send again rows RD Station refused in an earlier run


def cause_of(kind: FailureKind | None) -> Cause:
    return Cause.ON_THE_WAY if kind is not None and kind.resend_next_run else Cause.IN_THE_ROW


def resume_action(entry: Entry, policy: ResumePolicy) -> Action:
    """What this run does with a row the ledger already knows."""
    cause = cause_of(entry.kind) if entry.state is RowState.FAILED else None
    action = RESUME_RULES[entry.state, cause]
    if action is Action.IN_DOUBT:
        return Action.RESEND if policy.in_flight == "resend" else Action.HOLD
    if action is Action.KEEP_FAILED and policy.retry_rejected:
        return Action.RESEND
    return action


HOLD_MESSAGE: Final = (
    "was being sent when an earlier run stopped; it may have been recorded, so it was not sent "
    "again (--in-flight skip)"
)


# -- planning a chunk ------------------------------------------------------------------------------


@dataclass(slots=True)
class ChunkPlan:
    """What one chunk of rows means for this run: the ledger's writes plus the counts."""

    record: ChunkRecord = field(default_factory=lambda: ChunkRecord([], [], [], []))
    to_send: int = 0  # rows this run will send (new, still pending, resent)
    in_doubt_found: int = 0  # rows an earlier run may have recorded


def plan_chunk(
    outcomes: list[Prepared | Rejected],
    known: dict[str, Entry],
    policy: ResumePolicy,
    run_id: int,
) -> ChunkPlan:
    """Plan a chunk of rows given what the ledger knows (``known``, by key) of this run's rows.

    A row identical to an earlier row of the same file (same payload, so the same key) fails
    as ``DUPLICATE_ROW``: sending it would record the same conversion twice.
    """
    plan = ChunkPlan()
    record = plan.record
    first_of_key: dict[str, int] = {}
    for outcome in outcomes:
        if isinstance(outcome, Rejected):
            record.failed.append(_rejected(outcome))
            continue
        key, number = outcome.key, outcome.row
        entry = known.get(key)
        first = first_of_key.get(key)
        if first is None and entry is not None and entry.seen_run == run_id:
            first = entry.row
        if first is not None:
            record.failed.append(_duplicate(outcome, first))
            continue
        first_of_key[key] = number
        if entry is None:
            record.new.append(
                NewRow(
                    key, number, outcome.body, outcome.cells, outcome.email, outcome.conversion_id
                )
            )
            plan.to_send += 1
            continue
        record.seen.append(SeenRow(key, number, outcome.cells))
        if entry.state in (RowState.IN_FLIGHT, RowState.IN_DOUBT):
            plan.in_doubt_found += 1
        action = resume_action(entry, policy)
        if action is Action.SEND:
            plan.to_send += 1
        elif action is Action.RESEND:
            record.resend.append((key, outcome.body))
            plan.to_send += 1
        elif action is Action.HOLD:
            record.failed.append(_held(outcome))
    return plan


def _rejected(row: Rejected) -> FailedRow:
    return FailedRow(
        f"row:{row.row}", row.row, row.cells, row.stage, row.error_type, row.message, None
    )


def _held(row: Prepared) -> FailedRow:
    """A row in doubt left unsent (--in-flight skip): it stays in doubt for the next run."""
    return FailedRow(
        row.key,
        row.row,
        row.cells,
        "api",
        "IN_FLIGHT_UNKNOWN",
        HOLD_MESSAGE,
        row.conversion_id,
        RowState.IN_DOUBT,
    )


def _duplicate(row: Prepared, first: int) -> FailedRow:
    return FailedRow(
        f"dup:{row.row}",
        row.row,
        row.cells,
        "validation",
        "DUPLICATE_ROW",
        f"row {row.row} is identical to row {first}: not sent twice",
        row.conversion_id,
    )
