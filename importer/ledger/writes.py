"""The senders' marks on single rows, as ``Marks`` batches and journals them."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path
from typing import Any

from importer.ledger.journal import forget_journal, read_journal
from importer.ledger.rows import KINDS, RowState
from importer.records import Failed, FailureKind


class RowMarks:
    """The ledger's senders' side (``Ledger`` is one)."""

    _db: sqlite3.Connection
    run_id: int
    path: Path

    def transaction(self) -> contextlib.AbstractContextManager[None]:
        raise NotImplementedError  # Ledger's

    def apply(self, write: dict[str, Any]) -> None:
        """One of the senders' marks (``Marks``), as they are batched and journaled."""
        op, key = write["op"], write["key"]
        if op == "in_flight":
            self.mark_in_flight(key, write["attempts"])
        elif op == "sent":
            run = write.get("run", self.run_id)
            self.mark_sent(key, write["event_uuid"], write["sent_at"], write["attempts"], run=run)
        elif op == "failed":
            failed = Failed(
                KINDS.get(write["kind"], FailureKind.TRANSIENT),
                write["http_status"],
                write["error_type"],
                write["message"],
            )
            self.mark_failed(key, failed, write["attempts"], in_doubt=write["in_doubt"])
        elif op == "pending":
            self.mark_pending(key)
        elif op == "unfailed":
            self.mark_unfailed(key)

    def _replay_journal(self) -> None:
        """The answers a run could not commit (its disk was full) go in first."""
        entries = read_journal(self.path)
        if entries:
            with self.transaction():
                for entry in entries:
                    self.apply(entry)
        forget_journal(self.path)

    def mark_in_flight(self, key: str, attempts: int) -> None:
        self._db.execute(
            "UPDATE rows SET state = 'in_flight', attempts = ? WHERE key = ?", (attempts, key)
        )

    def mark_sent(
        self, key: str, event_uuid: str, sent_at: str, attempts: int, *, run: int | None = None
    ) -> None:
        # The error columns need no clearing: a row is only sent from pending, and a row comes
        # back to pending with them cleared (record_chunk's resend) or never set (mark_pending).
        # The body stays: a later run with another mapping shows what changed.
        self._db.execute(
            "UPDATE rows SET state = 'sent', sent_run = ?, event_uuid = ?, sent_at = ?,"
            " attempts = ? WHERE key = ?",
            (self.run_id if run is None else run, event_uuid, sent_at, attempts, key),
        )

    def mark_failed(self, key: str, failed: Failed, attempts: int, *, in_doubt: bool) -> None:
        """The row's last attempt failed; ``in_doubt`` when an attempt went unanswered."""
        self._db.execute(
            "UPDATE rows SET state = ?, error_stage = 'api', http_status = ?,"
            " error_type = ?, error_message = ?, attempts = ?, failure_kind = ? WHERE key = ?",
            (
                (RowState.IN_DOUBT if in_doubt else RowState.FAILED).value,
                failed.http_status,
                failed.error_type,
                failed.message,
                attempts,
                failed.kind.value,
                key,
            ),
        )

    def mark_unfailed(self, key: str) -> None:
        self._db.execute(
            "UPDATE rows SET state = 'pending', error_stage = NULL, http_status = NULL,"
            " error_type = NULL, error_message = NULL, failure_kind = NULL"
            " WHERE key = ? AND state IN ('failed', 'in_flight')",
            (key,),
        )

    def mark_pending(self, key: str) -> None:
        """A row that was about to be sent but was not (the run stopped before its request)."""
        self._db.execute(
            "UPDATE rows SET state = 'pending' WHERE key = ? AND state = 'in_flight'", (key,)
        )
