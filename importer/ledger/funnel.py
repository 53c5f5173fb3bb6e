"""Each row's funnel step, beside its conversion: the ``funnel`` table.

A row whose mapping has a ``funnel:`` section is two requests: its conversion (the ``rows``
table) and then its funnel (``PUT .../funnels/default``). The funnel step keeps its own state
and body here, keyed by the row's key, so a resume that finds a row's conversion sent and its
funnel step not done sends the funnel step alone: the conversion is never sent again for it.

    pending -> in_flight -> sent
                         -> failed     kind rejected: RD Station refused it (INVALID_USER);
                                       any other kind: sent again by the next run

Unlike a conversion, a funnel step is idempotent (it sets the funnel to the same values), so a
step in flight when a run died, or one answered without certainty, is simply sent again. A step
is sent only once its row's conversion is ``sent``. A step that a later run reads with another
body (the stage changed, the owner fixed) is sent again whatever its state; one set earlier
keeps its ``sent_run`` while pending again, so that the run which sends it (after a dry run
too) still knows, and says, that it changes a funnel RD Station has. Ledgers written
before this table existed get it, empty, when they open (``CREATE TABLE IF NOT EXISTS``).
"""

from __future__ import annotations

import contextlib
import itertools
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from importer.ledger.rows import Pending
from importer.records import FailureKind

FUNNEL_SCHEMA = """
CREATE TABLE IF NOT EXISTS funnel (
    key TEXT PRIMARY KEY,           -- the row's key in rows
    email TEXT NOT NULL,
    body BLOB NOT NULL,             -- the request, as importer.funnel sends it
    state TEXT NOT NULL,            -- pending, in_flight, sent, failed
    seen_run INTEGER NOT NULL,      -- the last run whose file held the row with this step
    sent_run INTEGER,
    sent_at TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    http_status INTEGER,
    error_type TEXT,
    error_message TEXT,
    failure_kind TEXT
);
"""

# The steps of this run whose conversion is sent and which are still to send.
_TO_SEND = (
    "FROM funnel JOIN rows ON rows.key = funnel.key WHERE funnel.seen_run = ?"
    " AND funnel.state IN ('pending', 'in_flight') AND rows.state = 'sent'"
)


class FunnelQueries:
    """The ledger's funnel side (``Ledger`` is one)."""

    _db: sqlite3.Connection
    run_id: int
    path: Path

    def transaction(self) -> contextlib.AbstractContextManager[None]:
        raise NotImplementedError  # Ledger's

    def record_funnel(self, steps: Sequence[Any]) -> list[str]:
        """The reader's funnel steps (``FunnelStep``), inside its chunk's transaction: new
        ones pending; known ones kept when done (sent, or refused by RD Station with the same
        body), else back to pending. Returns the keys of the steps an earlier run set with
        another body: their funnel is set again (the caller says so)."""
        db, run = self._db, self.run_id
        known: dict[str, tuple[bytes, str, str | None, int | None]] = {}
        keys = [step.key for step in steps]
        for start in range(0, len(keys), 900):
            part = keys[start : start + 900]
            for key, body, state, kind, sent_run in db.execute(
                "SELECT key, body, state, failure_kind, sent_run FROM funnel"
                f" WHERE key IN ({','.join('?' * len(part))})",
                part,
            ):
                known[key] = (body, state, kind, sent_run)
        kept, fresh, changed = [], [], []
        for step in steps:
            found = known.get(step.key)
            if found is not None and found[0] == step.body:
                body, state, kind, _ = found
                if state == "sent" or (
                    state == "failed"
                    and kind == FailureKind.REJECTED.value
                    and not step.retry_rejected
                ):
                    kept.append((run, step.key))
                    continue
            if found is not None and found[3] is not None:
                # Set earlier (sent_run), and now with values not set yet (read so by this run,
                # or by a dry run or a stopped run before it).
                changed.append(step.key)
            fresh.append((step.key, step.email, step.body, run))
        db.executemany("UPDATE funnel SET seen_run = ? WHERE key = ?", kept)
        # An upsert, not a replace: sent_run and sent_at say the funnel was set before.
        db.executemany(
            "INSERT INTO funnel (key, email, body, state, seen_run)"
            " VALUES (?, ?, ?, 'pending', ?) ON CONFLICT (key) DO UPDATE SET"
            " email = excluded.email, body = excluded.body, state = 'pending',"
            " seen_run = excluded.seen_run, attempts = 0, http_status = NULL,"
            " error_type = NULL, error_message = NULL, failure_kind = NULL",
            fresh,
        )
        return changed

    def next_funnel(self, after_row: int, limit: int) -> list[Pending]:
        """This run's funnel steps to send (their conversion is sent), by row."""
        return [
            Pending(key, row, body, email, attempts)
            for key, row, body, email, attempts in self._db.execute(
                "SELECT funnel.key, rows.row, funnel.body, funnel.email, funnel.attempts "
                f"{_TO_SEND} AND rows.row > ? ORDER BY rows.row LIMIT ?",
                (self.run_id, after_row, limit),
            )
        ]

    def funnel_to_send(self) -> int:
        return int(self._db.execute(f"SELECT count(*) {_TO_SEND}", (self.run_id,)).fetchone()[0])

    def apply_funnel(self, write: dict[str, Any]) -> None:
        """One of the funnel sender's marks (the ops ``Marks`` makes)."""
        op, key, db = write["op"], write["key"], self._db
        if op == "in_flight":
            db.execute(
                "UPDATE funnel SET state = 'in_flight', attempts = ? WHERE key = ?",
                (write["attempts"], key),
            )
        elif op == "sent":
            db.execute(
                "UPDATE funnel SET state = 'sent', sent_run = ?, sent_at = ?, attempts = ?,"
                " http_status = NULL, error_type = NULL, error_message = NULL,"
                " failure_kind = NULL WHERE key = ?",
                (write.get("run", self.run_id), write["sent_at"], write["attempts"], key),
            )
        elif op == "failed":
            db.execute(
                "UPDATE funnel SET state = 'failed', http_status = ?, error_type = ?,"
                " error_message = ?, attempts = ?, failure_kind = ? WHERE key = ?",
                (
                    write["http_status"],
                    write["error_type"],
                    write["message"],
                    write["attempts"],
                    write["kind"],
                    key,
                ),
            )
        elif op in ("pending", "unfailed"):
            db.execute(
                "UPDATE funnel SET state = 'pending' WHERE key = ? AND state != 'sent'", (key,)
            )

    def funnel_conflicts(self, limit: int = 10_000) -> list[list[int]]:
        """The rows of this run sharing an email with different funnel steps (at most
        ``limit`` emails), by row: which one RD Station keeps depends on the order the
        requests arrive in, which the workers do not keep."""
        found = self._db.execute(
            "SELECT funnel.email, rows.row FROM funnel JOIN rows ON rows.key = funnel.key"
            " WHERE funnel.seen_run = ? AND funnel.email IN (SELECT email FROM funnel"
            " WHERE seen_run = ? GROUP BY email HAVING count(DISTINCT body) > 1 LIMIT ?)"
            " ORDER BY funnel.email, rows.row",
            (self.run_id, self.run_id, limit),
        )
        return [[row for _, row in group] for _, group in itertools.groupby(found, lambda r: r[0])]

    def funnel_counts(self) -> dict[str, int] | None:
        """summary.json's ``funnel``: this run's rows' funnel steps by what became of them;
        None when no row of this run has one. ``pending`` steps wait with their conversion
        recorded (importing again sends only them); ``waiting`` ones wait for a conversion
        that is not recorded (the row failed, or is left to send): their row says why."""
        total, sent, earlier, failed, pending, waiting = self._db.execute(
            "SELECT count(*), coalesce(sum(funnel.state = 'sent' AND funnel.sent_run = ?), 0),"
            " coalesce(sum(funnel.state = 'sent' AND funnel.sent_run IS NOT ?), 0),"
            " coalesce(sum(funnel.state = 'failed' AND rows.state = 'sent'), 0),"
            " coalesce(sum(funnel.state != 'sent' AND rows.state = 'sent'"
            " AND funnel.state != 'failed'), 0),"
            " coalesce(sum(funnel.state != 'sent' AND rows.state IS NOT 'sent'), 0)"
            " FROM funnel LEFT JOIN rows ON rows.key = funnel.key WHERE funnel.seen_run = ?",
            (self.run_id, self.run_id, self.run_id),
        ).fetchone()
        if not total:
            return None
        return {
            "steps": total,
            "sent": sent,
            "already_sent": earlier,
            "failed": failed,
            "pending": pending,
            "waiting": waiting,
        }


class FunnelMarksTarget:
    """The ledger as ``Marks`` sees it, writing to the funnel table: the funnel's sender
    reuses the conversions' marks (batched commits, in-flight before the request leaves)."""

    def __init__(self, ledger: Any) -> None:
        self._ledger = ledger
        self.path: Path = ledger.path

    @property
    def run_id(self) -> int:
        return int(self._ledger.run_id)

    def transaction(self) -> contextlib.AbstractContextManager[None]:
        return self._ledger.transaction()  # type: ignore[no-any-return]

    def apply(self, write: dict[str, Any]) -> None:
        self._ledger.apply_funnel(write)


def funnel_failures_sql(rows_condition: str) -> str:
    """The failures query's part for rows whose conversion is sent and whose funnel step
    failed, in the columns of ``ReportQueries.failures``; ``rows_condition`` selects the runs."""
    return (
        "SELECT rows.row, rows.cells, 'funnel', funnel.http_status, funnel.error_type,"
        " funnel.error_message, funnel.attempts, rows.source_row, rows.identity,"
        " rows.event_uuid, rows.key, funnel.failure_kind"
        " FROM rows JOIN funnel ON funnel.key = rows.key"
        f" WHERE rows.state = 'sent' AND funnel.state = 'failed' AND ({rows_condition})"
    )


def funnel_message(key: str, event_uuid: str | None, message: str | None, kind: str | None) -> str:
    """A funnel failure's message: what WAS recorded, that only the funnel step failed, and
    how to send it alone."""
    what = (
        f"the contact was updated (uuid {event_uuid or 'not given'})"
        if key.startswith("contact:")
        else f"the conversion was recorded (event_uuid {event_uuid or 'not given'})"
    )
    then = (
        "fix the cells and import this file again into the same folder"
        if kind == FailureKind.REJECTED.value
        else "run the same command again"
    )
    return (
        f"{what}; only the funnel step failed: {message or 'no reason given'}; {then}: only "
        "the funnel step is sent"
    )
