"""Plain values passed between the stages: rows from the loader, answers from the client."""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import orjson


@dataclass(slots=True)  # not frozen: a frozen dataclass costs ~1 µs a row to build
class Row:
    """One data row of a spreadsheet.

    ``number`` is the row as a spreadsheet shows it (the header is row 1, the first data row 2).
    ``cells`` maps each column's unique header name (``Table.headers``) to the cell as text,
    in column order. ``error`` is set when the loader could not read the record (a quote never
    closed): such a row fails with ``error_stage=read``.
    """

    number: int
    cells: dict[str, str]
    error: str | None = None
    # Set when the row comes from one of our failures.csv: its number in the file it first came
    # from, and its identity there (so a fixed row is known as the row that failed).
    source_row: int | None = None
    row_id: str | None = None


class IdentityRule:
    """A row's identity across runs, whatever the mapping makes of it: the mapping's ``key``
    columns (stripped, not case-folded: CRM record ids can differ only in case), else every
    non-empty cell by its header (so reordered or added empty columns keep it). Built once for a
    table's headers: a row costs one pass over its cells."""

    def __init__(self, headers: Sequence[str], key: Sequence[str] | None = None) -> None:
        self.key = list(key) if key else None
        self.order = sorted(headers)

    def __call__(self, cells: dict[str, str]) -> str:
        parts: object
        if self.key:
            parts = [cells.get(column, "").strip() for column in self.key]
        else:
            parts = [(h, text) for h in self.order if (text := cells.get(h))]
        return hashlib.blake2b(orjson.dumps(parts), digest_size=12).hexdigest()


class FailureKind(enum.Enum):
    """What a failed request means for the row and for the run."""

    TRANSIENT = "transient"  # 5xx, connection error, timeout: retry with backoff
    RATE_LIMITED = "rate_limited"  # the account's per-minute budget is spent: pause all, retry
    LEAD_LIMITED = "lead_limited"  # this email can take no more conversions today: fail the row
    AUTH_REFUSED = "auth_refused"  # 401/403: the API key is refused: stop the run
    REJECTED = "rejected"  # other 4xx: RD Station refused this row: fail it, do not retry
    FATAL = "fatal"  # no request can succeed (TLS certificate refused): stop the run, resumable
    # A 2xx that is not RD Station's answer (no event_uuid): whatever answered may have recorded
    # it, so the row is in doubt, never retried. The value is the ledger's word for "in doubt".
    UNCERTAIN = "uncertain"

    @property
    def retry_now(self) -> bool:
        """Try the row again within this run (after a backoff, or once the budget allows)."""
        return self in _RETRY_NOW

    @property
    def resend_next_run(self) -> bool:
        """A row that failed so is sent again by the next run: the cause was on the way (the
        network, the budget, the key, a lead's daily limit), not in the row. (A row that may
        have been recorded is in doubt instead: ``intake.RESUME_RULES`` decides.)"""
        return self not in (FailureKind.REJECTED, FailureKind.UNCERTAIN)


# The longest wait any answer can impose, in seconds: RD Station's windows are a minute, so a
# server asking for more (999999999, a date in 9999) is wrong, and obeying it would hang the run.
MAX_RETRY_AFTER = 300.0
_RETRY_NOW = frozenset({FailureKind.TRANSIENT, FailureKind.RATE_LIMITED})


@dataclass(frozen=True, slots=True)
class Sent:
    """RD Station accepted the conversion."""

    event_uuid: str
    http_status: int = 200


@dataclass(frozen=True, slots=True)
class Failed:
    """One request did not record a conversion.

    ``message`` is one readable line (RD Station's own words where it gave any) and never holds
    the API key. ``retry_after`` is seconds to wait when the server said so, at most
    ``MAX_RETRY_AFTER``; ``retry_after_asked`` is the server's own figure when it asked for more.
    ``reached_server`` is False only when the request surely never reached a server (refused,
    DNS, TLS handshake, connect timeout, proxy refused the tunnel): then nothing can have been
    recorded.
    """

    kind: FailureKind
    http_status: int | None
    error_type: str
    message: str
    retry_after: float | None = None
    retry_after_asked: float | None = None
    reached_server: bool = True  # when unsure, assume it did: a resend could then duplicate

    @property
    def maybe_recorded(self) -> bool:
        """Whether the conversion may have been recorded anyway: the request reached a server
        and no answer says it was not (none came, or a 2xx without RD Station's event_uuid)."""
        return self.reached_server and (
            self.http_status is None or self.kind is FailureKind.UNCERTAIN
        )
