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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final, Literal

import orjson

from importer.client import encode_conversion
from importer.errors import RowError
from importer.ledger import ChunkRecord, Entry, FailedRow, FunnelStep, RowState, SeenRow, Sibling
from importer.ledger.rows import MAYBE_SENT
from importer.mapping import BoundMapping
from importer.mapping.bound import Warn
from importer.records import FailureKind, IdentityRule, Row

CONTACT_KEY: Final = "contact:"  # importer.contacts.KEY_PREFIX: a row sent as a contact
if TYPE_CHECKING:
    from importer.account_fields import CellCheck

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
    identity: str  # records.IdentityRule: the same source row under any mapping
    source_row: int  # its number in the file it first came from
    from_report: bool = False  # read from one of our failures.csv
    funnel: bytes | None = None  # its funnel step's request (``importer.funnel``), if any


@dataclass(slots=True)
class Rejected:
    """A row that cannot be sent; ``stage`` is ``read``, ``mapping`` or ``validation``."""

    stage: str
    error_type: str
    message: str
    cells: bytes
    row: int
    identity: str
    source_row: int


def payload_key(encoded_payload: bytes) -> str:
    """The ledger key of a payload's sorted JSON."""
    return hashlib.blake2b(encoded_payload, digest_size=16).hexdigest()


def prepare(
    row: Row,
    mapping: BoundMapping,
    identity_of: Callable[[dict[str, str]], str] | None = None,
    warn: Warn | None = None,
    check_cells: CellCheck | None = None,
) -> Prepared | Rejected:
    """Map and validate one row; ``identity_of`` is the run's ``IdentityRule`` (by default, by
    the mapping's key or every cell); ``warn(kind, message)`` hears what the mapping let pass
    (``BoundMapping.apply``); ``check_cells`` checks the payload's custom fields against the
    account's (``account_fields.cell_check``, with ``--auth oauth``). A row of our failures.csv
    keeps the identity it had there, unless the mapping names a key."""
    cells = orjson.dumps(list(row.cells.values()))
    if row.row_id and not mapping.key:
        identity = row.row_id
    else:
        identity = (identity_of or IdentityRule(list(row.cells), mapping.key))(row.cells)
    source_row = row.source_row or row.number
    if row.error:
        return Rejected("read", "READ_ERROR", row.error, cells, row.number, identity, source_row)
    try:
        payload = mapping.apply(row, warn)
    except RowError as exc:
        etype = "MAPPING_ERROR" if exc.stage == "mapping" else "VALIDATION_ERROR"
        return Rejected(exc.stage, etype, exc.message, cells, row.number, identity, source_row)
    if check_cells is not None and (problem := check_cells(payload)) is not None:
        etype, message = problem.error_type, problem.message
        return Rejected("validation", etype, message, cells, row.number, identity, source_row)
    encoded, body = encode_conversion(payload)
    if len(body) > MAX_BODY_BYTES:
        return Rejected(
            "validation",
            "TOO_LARGE",
            f"the request would be {len(body):,} bytes; RD Station accepts at most "
            f"{MAX_BODY_BYTES:,} (0.2 MB): shorten the longest cells",
            cells,
            row.number,
            identity,
            source_row,
        )
    return Prepared(
        payload_key(encoded),
        body,
        payload["email"],
        payload["conversion_identifier"],
        cells,
        row.number,
        identity,
        source_row,
        row.row_id is not None,
    )


# Fields in which rows of one lead differ by design: each row is its own conversion.
_PER_CONVERSION = frozenset(
    {"conversion_identifier", "tags", "traffic_source", "traffic_medium", "traffic_campaign"}
    | {"traffic_value", "client_tracking_id"}
)


def conflicting_fields(bodies: Sequence[bytes]) -> list[str]:
    """The lead's fields that the bodies of one email's rows set to different values."""
    payloads = [orjson.loads(body)["payload"] for body in bodies]
    names = set().union(*payloads) - _PER_CONVERSION
    return sorted(n for n in names if len({orjson.dumps(p.get(n)) for p in payloads}) > 1)


# -- the resume rules ------------------------------------------------------------------------------


class Action(enum.Enum):
    SEND = "send"  # new, or still pending from an earlier run: send it
    ALREADY_SENT = "already_sent"  # an earlier run sent it: skip
    RESEND = "resend"  # back to pending and send again
    KEEP_FAILED = "keep_failed"  # RD Station refused it: it stays failed
    IN_DOUBT = "in_doubt"  # it may have been recorded: resent unless --in-flight skip
    HELD = "held"  # left unsent by an earlier --in-flight skip: held unless --in-flight resend
    HOLD = "hold"  # not sent, held in doubt until --in-flight resend


class Cause(enum.Enum):
    """Why a failed row failed, as far as resuming cares (``FailureKind.resend_next_run``)."""

    ON_THE_WAY = "on_the_way"  # network, budget, key, a lead's daily limit: not the row's fault
    IN_THE_ROW = "in_the_row"  # RD Station refused the row


# state of the key in the ledger, cause  -> action (before the policy)
RESUME_RULES: Final[dict[tuple[RowState, Cause | None], Action]] = {
    (RowState.PENDING, None): Action.SEND,
    (RowState.SENT, None): Action.ALREADY_SENT,
    (RowState.IN_FLIGHT, None): Action.IN_DOUBT,  # a run died while its request was out
    (RowState.IN_DOUBT, None): Action.IN_DOUBT,  # an attempt went unanswered
    (RowState.HELD, None): Action.HELD,  # the user chose --in-flight skip for it
    (RowState.FAILED, Cause.ON_THE_WAY): Action.RESEND,
    (RowState.FAILED, Cause.IN_THE_ROW): Action.KEEP_FAILED,
}

Changed = Literal["keep", "resend"]


@dataclass(frozen=True, slots=True)
class ResumePolicy:
    # Rows that may have been recorded: "resend", "skip", or None (resend, but keep holding
    # the rows an earlier --in-flight skip held).
    in_flight: InFlight | None = None
    retry_rejected: bool = False  # send again rows RD Station refused in an earlier run
    # Rows sent earlier that now produce another payload: "keep" them as sent, "resend" them,
    # or None: count them, and the run stops before sending (a dry run only counts).
    changed: Changed | None = None


def cause_of(kind: FailureKind | None) -> Cause:
    return Cause.ON_THE_WAY if kind is not None and kind.resend_next_run else Cause.IN_THE_ROW


def resume_action(entry: Entry, policy: ResumePolicy) -> Action:
    """What this run does with a row the ledger already knows."""
    cause = cause_of(entry.kind) if entry.state is RowState.FAILED else None
    action = RESUME_RULES[entry.state, cause]
    if action is Action.IN_DOUBT:
        return Action.HOLD if policy.in_flight == "skip" else Action.RESEND
    if action is Action.HELD:
        return Action.RESEND if policy.in_flight == "resend" else Action.HOLD
    if action is Action.KEEP_FAILED and policy.retry_rejected:
        return Action.RESEND
    return action


HOLD_MESSAGE: Final = (
    "was being sent when an earlier run stopped; it may have been recorded, so it was not sent "
    "again (--in-flight skip; --in-flight resend sends it)"
)


# -- planning a chunk ------------------------------------------------------------------------------


@dataclass(slots=True)
class ChangedRow:
    """A row an earlier run sent with another payload (the first one found, for the message)."""

    row: int
    before: bytes | None  # the body sent then, when the ledger has it
    after: bytes


@dataclass(slots=True)
class ChunkPlan:
    """What one chunk of rows means for this run: the ledger's writes plus the counts."""

    record: ChunkRecord = field(default_factory=ChunkRecord)
    to_send: int = 0  # rows this run will send (new, still pending, resent)
    in_doubt_found: int = 0  # rows an earlier run may have recorded
    changed: int = 0  # rows sent earlier whose payload is now another (by policy: see counts)
    example: ChangedRow | None = None


def plan_chunk(
    outcomes: list[Prepared | Rejected],
    known: dict[str, Entry],
    siblings: dict[str, list[Sibling]],
    policy: ResumePolicy,
    run_id: int,
) -> ChunkPlan:
    """Plan a chunk of rows given what the ledger knows of their keys (``known``) and of their
    identities (``siblings``: the rows of the same source recorded under another payload).

    A row identical to an earlier row of the same file (same payload, so the same key) fails
    as ``DUPLICATE_ROW``: sending it would record the same conversion twice.
    """
    plan = ChunkPlan()
    record = plan.record
    first_of_key: dict[str, int] = {}
    funnel_of_key: dict[str, bytes | None] = {}  # the first row's funnel step, by key
    claimed: set[str] = set()  # sibling keys matched to a row of this chunk
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
            other = funnel_of_key.get(key, outcome.funnel) != outcome.funnel
            record.failed.append(_duplicate(outcome, first, other_funnel=other))
            continue
        first_of_key[key] = number
        funnel_of_key[key] = outcome.funnel
        if outcome.funnel is not None:
            record.funnel.append(
                FunnelStep(key, outcome.email, outcome.funnel, policy.retry_rejected)
            )
        if entry is None:
            found = siblings.get(outcome.identity) if siblings else None
            if found:
                _plan_unknown(plan, outcome, found, claimed, policy, run_id)
            else:  # never seen in any form: new (most rows of a first run)
                record.new.append(outcome)
                plan.to_send += 1
            continue
        record.seen.append(SeenRow(key, number, outcome.cells))
        if entry.state in (RowState.IN_FLIGHT, RowState.IN_DOUBT, RowState.HELD):
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


def _plan_unknown(
    plan: ChunkPlan,
    row: Prepared,
    siblings: Sequence[Sibling],
    claimed: set[str],
    policy: ResumePolicy,
    run_id: int,
) -> None:
    """A payload the ledger does not know: a new row, a fixed one, or one sent earlier under
    another payload (a changed mapping, or a row edited in a cumulative export)."""
    # A row sent as a contact is no sibling of a conversion (--as contacts), nor the reverse.
    kind = row.key.startswith(CONTACT_KEY)
    earlier = [
        s
        for s in siblings
        if s.seen_run != run_id
        and s.key not in claimed
        and (s.key.startswith(CONTACT_KEY) == kind or s.key[:4] in ("rej:", "dup:"))
    ]
    if row.from_report:  # a row of our failures.csv: the failure it fixes is at its source row
        fixed = [
            s.key for s in earlier if s.state not in MAYBE_SENT and s.source_row == row.source_row
        ]
        if fixed:
            plan.record.superseded.extend(fixed)
            plan.record.new.append(row)
            plan.to_send += 1
            return
    sent = next((s for s in earlier if s.state in MAYBE_SENT), None)
    if sent is None:
        # Never sent in any form: the rows it replaces (failed, or pending under the old
        # mapping) go, so failures.csv lists only what is still failed.
        plan.record.superseded.extend(s.key for s in earlier)
        plan.record.new.append(row)
        plan.to_send += 1
        return
    claimed.add(sent.key)
    plan.changed += 1
    if plan.example is None:
        plan.example = ChangedRow(row.row, sent.body, row.body)
    if policy.changed == "resend":
        plan.record.new.append(row)
        plan.to_send += 1
    else:  # kept as sent (or, undecided, counted as such until the run stops)
        plan.record.seen.append(SeenRow(sent.key, row.row, row.cells))
        if row.funnel is not None:  # the funnel step goes with the conversion that was sent
            step = plan.record.funnel.pop()
            plan.record.funnel.append(
                FunnelStep(sent.key, step.email, step.body, step.retry_rejected)
            )


def _rejected(row: Rejected) -> FailedRow:
    return FailedRow(
        f"rej:{row.identity}:{row.source_row}",
        row.row,
        row.cells,
        row.stage,
        row.error_type,
        row.message,
        None,
        row.identity,
        row.source_row,
    )


def _held(row: Prepared) -> FailedRow:
    """A row in doubt left unsent (--in-flight skip): held until --in-flight resend."""
    return FailedRow(
        row.key,
        row.row,
        row.cells,
        "api",
        "IN_FLIGHT_UNKNOWN",
        HOLD_MESSAGE,
        row.conversion_id,
        row.identity,
        row.source_row,
        RowState.HELD,
    )


def _duplicate(row: Prepared, first: int, *, other_funnel: bool = False) -> FailedRow:
    message = f"row {row.row} is identical to row {first}: not sent twice"
    if other_funnel:  # the same request, but not the same row: "identical" would be untrue
        what = "contact" if row.key.startswith(CONTACT_KEY) else "conversion"
        message = (
            f"row {row.row} sends the same {what} as row {first} with other funnel: values: "
            f"not sent twice; keep the contact's funnel in one row (row {first}'s is set)"
        )
    return FailedRow(
        f"dup:{row.row}",
        row.row,
        row.cells,
        "validation",
        "DUPLICATE_ROW",
        message,
        row.conversion_id,
        row.identity,
        row.source_row,
    )
