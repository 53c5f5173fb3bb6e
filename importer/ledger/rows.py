"""The row states and the typed values the ledger reads and writes."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Protocol

import orjson

from importer.records import FailureKind


class RowState(enum.Enum):
    PENDING = "pending"  # to send
    IN_FLIGHT = "in_flight"  # its request left; no answer recorded yet
    SENT = "sent"  # RD Station answered with an event_uuid
    FAILED = "failed"  # refused before or at sending; the failure kind says whether it is final
    IN_DOUBT = "in_doubt"  # an attempt got no answer: it may have been recorded
    HELD = "held"  # in doubt and left unsent by --in-flight skip, until --in-flight resend


# The states failures.csv lists, and those whose row may be recorded at RD Station, as SQL.
FAILED_STATES = "('failed', 'in_doubt', 'held')"
MAYBE_SENT = (RowState.SENT, RowState.IN_FLIGHT, RowState.IN_DOUBT, RowState.HELD)
STATES = {state.value: state for state in RowState}
KINDS = {kind.value: kind for kind in FailureKind}


def as_json(value: object) -> str:
    return orjson.dumps(value).decode()


@dataclass(frozen=True, slots=True)
class Entry:
    """What the ledger knows of one key."""

    state: RowState
    row: int
    seen_run: int  # the last run whose input held it
    kind: FailureKind | None  # why it failed at the API (FAILED rows only)


@dataclass(frozen=True, slots=True)
class Sibling:
    """A row recorded under another payload with the same identity (the same source row)."""

    key: str
    state: RowState
    seen_run: int
    source_row: int | None
    body: bytes | None  # its request body, when the ledger still has it


class NewRowLike(Protocol):
    """What the ledger reads of a new row (``NewRow``, or intake's ``Prepared`` as it is)."""

    @property
    def key(self) -> str: ...
    @property
    def row(self) -> int: ...
    @property
    def body(self) -> bytes: ...
    @property
    def cells(self) -> bytes: ...
    @property
    def email(self) -> str: ...
    @property
    def conversion_id(self) -> str: ...
    @property
    def identity(self) -> str: ...
    @property
    def source_row(self) -> int: ...


@dataclass(slots=True)
class NewRow:
    """A row never seen before, to send."""

    key: str
    row: int
    body: bytes
    cells: bytes
    email: str
    conversion_id: str
    identity: str
    source_row: int


@dataclass(slots=True)
class SeenRow:
    """A known row found again: its number and cells are updated, its state kept."""

    key: str
    row: int
    cells: bytes


@dataclass(slots=True)
class FailedRow:
    """A row that fails before sending (or is held in doubt): replaces what the key held."""

    key: str
    row: int
    cells: bytes
    stage: str
    error_type: str
    message: str
    conversion_id: str | None
    identity: str
    source_row: int
    state: RowState = RowState.FAILED


@dataclass(frozen=True, slots=True)
class FunnelStep:
    """A row's funnel step (``ledger.funnel``), recorded beside its conversion's key."""

    key: str  # the row's key in ``rows``
    email: str
    body: bytes  # the request, as ``importer.funnel`` sends it
    retry_rejected: bool = False  # a step RD Station refused is sent again (--retry-rejected)


@dataclass(slots=True)
class ChunkRecord:
    """One chunk of the reader's decisions, written in one transaction."""

    new: list[NewRowLike] = field(default_factory=list)
    seen: list[SeenRow] = field(default_factory=list)
    resend: list[tuple[str, bytes]] = field(default_factory=list)  # (key, body): to pending
    failed: list[FailedRow] = field(default_factory=list)
    superseded: list[str] = field(default_factory=list)  # keys a fixed or remapped row replaces
    funnel: list[FunnelStep] = field(default_factory=list)  # the rows' funnel steps


@dataclass(frozen=True, slots=True)
class Pending:
    """A row waiting to be sent."""

    key: str
    row: int
    body: bytes
    email: str
    attempts: int


@dataclass(frozen=True, slots=True)
class Counts:
    rows: int
    succeeded: int
    failed: int
    already_sent: int
    unsent: int


@dataclass(frozen=True, slots=True)
class Success:
    row: int
    email: str
    conversion_id: str
    event_uuid: str
    sent_at: str
    source_row: int | None
    sent_in: str  # the name of the file whose run sent it


@dataclass(frozen=True, slots=True)
class Failure:
    row: int
    cells: list[str]
    stage: str
    http_status: int | None
    error_type: str
    message: str
    attempts: int
    source_row: int | None
    row_id: str | None  # the row's identity, so a fixed copy is known as this row
