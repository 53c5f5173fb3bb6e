"""Durable per-row record of an import: what was read, sent, failed; the source of every report.

The ledger is a SQLite database in WAL mode under the run's output folder. Every row of the input
gets an entry before anything is sent, keyed by its content: the hash of the payload it produces
(rows that never produced a payload are keyed by their row number). A row moves through

    pending -> in_flight -> sent | failed        (failed rows RD Station did not reject come back
                                                  to pending on the next run)

and each move is committed before the next step: a row is marked in flight *before* its request
leaves, and sent only once the answer is in. So a process killed at any moment leaves at most the
rows that were in flight in doubt, and a re-run knows exactly which rows those are.

WAL with synchronous=NORMAL survives the process being killed (what this ledger must survive);
only a power cut can lose the last commits, and then the worst case is a row sent twice. A dry
run on a ledger no import has used yet writes with synchronous=OFF (see ``begin_run``).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson

from importer.errors import InputError

SCHEMA = """
CREATE TABLE IF NOT EXISTS rows (
    key TEXT PRIMARY KEY,
    row INTEGER NOT NULL,
    state TEXT NOT NULL,            -- pending | in_flight | sent | failed
    seen_run INTEGER NOT NULL,      -- the last run whose input held this row
    sent_run INTEGER,               -- the run that sent it
    body BLOB,                      -- the request body, while it may still be sent
    cells BLOB,                     -- the row's cells as a JSON list, for failures.csv
    email TEXT,
    conversion_identifier TEXT,
    event_uuid TEXT,
    sent_at TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    error_stage TEXT,
    http_status INTEGER,
    error_type TEXT,
    error_message TEXT,
    failure_kind TEXT
);
CREATE INDEX IF NOT EXISTS rows_by_run ON rows (seen_run, row);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY,
    started_at TEXT NOT NULL,
    input TEXT NOT NULL,
    dry_run INTEGER NOT NULL
);
"""

# Failures that a later run sends again: the cause was on the way, not in the row.
RESENDABLE_KINDS = ("transient", "rate_limited", "lead_limited", "fatal", "auth_refused")
# A row that failed after an attempt that got no answer: RD Station may have recorded it, so a
# later run treats it like a row that was in flight when a run died (--in-flight decides).
UNCERTAIN = "uncertain"


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


class Ledger:
    """One output folder's ledger. Not thread-safe: the pipeline uses it from its event loop."""

    def __init__(self, path: Path):
        self.path = path
        try:
            # Created 0600 before SQLite opens it: SQLite gives its -wal and -shm files the
            # database file's mode, so the whole ledger stays private.
            os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
            os.chmod(path, 0o600)
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA busy_timeout=5000")
            # A checkpoint fsyncs: at SQLite's default (every 4 MB of WAL) they set the pace of
            # recording a large file (400,000 rows write ~250 MB). Fewer, larger checkpoints
            # halve that; a bigger page cache saves re-reading the key index, which content
            # keys fill in random order.
            self._db.execute("PRAGMA wal_autocheckpoint=10000")  # pages: 40 MB of WAL
            self._db.execute("PRAGMA cache_size=-16000")  # KiB
            self._db.executescript(SCHEMA)
        except (sqlite3.DatabaseError, OSError) as exc:
            raise InputError(
                f"{path}: the ledger cannot be opened ({exc}); use another --out folder"
            ) from None
        self.run_id = 0

    def close(self) -> None:
        self._db.close()

    def begin_run(self, input_path: Path, started_at: str, *, dry_run: bool) -> int:
        if dry_run and self._db.execute("SELECT 1 FROM runs WHERE dry_run = 0").fetchone() is None:
            # Only dry runs ever wrote here: the ledger holds nothing the input file does not
            # re-derive (no row was sent or in flight), so it need not survive a power cut, only
            # the process being killed, which synchronous=OFF still survives. Not waiting for
            # the disk at each WAL checkpoint makes validate ~15% faster on large files. Any
            # other ledger keeps NORMAL: a dry run rewrites its rows too (seen_run, resends),
            # and a damaged ledger could forget which rows were sent.
            self._db.execute("PRAGMA synchronous=OFF")
        cur = self._db.execute(
            "INSERT INTO runs (started_at, input, dry_run) VALUES (?, ?, ?)",
            (started_at, str(input_path), int(dry_run)),
        )
        self.run_id = int(cur.lastrowid or 0)
        return self.run_id

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """Commit everything done inside as one transaction (or nothing, on an error).

        A commit costs more than the few updates a worker makes per row: the pipeline groups the
        marks of every worker that moved in the same event-loop turn into one.
        """
        db = self._db
        db.execute("BEGIN")
        try:
            yield
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    # -- the reader's side: record what the file holds, in chunks --------------------------------

    def lookup(self, keys: list[str]) -> dict[str, tuple[str, int, int, str | None]]:
        """Known keys -> (state, seen_run, row, failure_kind)."""
        found: dict[str, tuple[str, int, int, str | None]] = {}
        for start in range(0, len(keys), 900):  # SQLite's default limit on bound parameters
            part = keys[start : start + 900]
            marks = ",".join("?" * len(part))
            for key, state, seen_run, row, kind in self._db.execute(
                f"SELECT key, state, seen_run, row, failure_kind FROM rows WHERE key IN ({marks})",
                part,
            ):
                found[key] = (state, seen_run, row, kind)
        return found

    def record_chunk(
        self,
        new: Iterable[tuple[str, int, bytes, bytes, str, str]],
        seen: Iterable[tuple[int, bytes, str]],
        resend: Iterable[tuple[str, bytes]],
        failed: Iterable[tuple[str, int, bytes, str, str, str, str | None]],
    ) -> None:
        """Write one chunk of the reader's decisions in a single transaction.

        new:    (key, row, body, cells, email, conversion_identifier) -> pending
        seen:   (row, cells, key) known rows whose state stays as it is
        resend: (key, body) to put back to pending (their row and cells are in ``seen`` too)
        failed: (key, row, cells, stage, error_type, message, conversion_identifier) rows that
                fail before sending; replaces whatever the key held
        """
        run = self.run_id
        db = self._db
        with self.transaction():
            db.executemany(
                "INSERT INTO rows (key, row, state, seen_run, body, cells, email,"
                " conversion_identifier) VALUES (?, ?, 'pending', ?, ?, ?, ?, ?)",
                [(k, r, run, b, c, e, ci) for k, r, b, c, e, ci in new],
            )
            db.executemany(
                "UPDATE rows SET seen_run = ?, row = ?, cells = ? WHERE key = ?",
                [(run, r, c, k) for r, c, k in seen],
            )
            db.executemany(
                "UPDATE rows SET state = 'pending', body = ?, attempts = 0, error_stage = NULL,"
                " http_status = NULL, error_type = NULL, error_message = NULL,"
                " failure_kind = NULL WHERE key = ?",
                [(b, k) for k, b in resend],
            )
            db.executemany(
                "INSERT OR REPLACE INTO rows (key, row, state, seen_run, cells, error_stage,"
                " error_type, error_message, conversion_identifier, email, failure_kind)"
                " VALUES (?, ?, 'failed', ?, ?, ?, ?, ?, ?, NULL, ?)",
                # A row left unsent under --in-flight skip stays uncertain: a later run decides
                # again with its own --in-flight.
                [
                    (k, r, run, c, st, et, m, ci, UNCERTAIN if et == "IN_FLIGHT_UNKNOWN" else None)
                    for k, r, c, st, et, m, ci in failed
                ],
            )

    # -- the senders' side ---------------------------------------------------------------------

    def next_pending(self, after_row: int, limit: int) -> list[Pending]:
        """Rows of this run still to send, in file order, after ``after_row``."""
        return [
            Pending(key, row, body, email or "", attempts)
            for key, row, body, email, attempts in self._db.execute(
                "SELECT key, row, body, email, attempts FROM rows"
                " WHERE seen_run = ? AND state = 'pending' AND row > ? ORDER BY row LIMIT ?",
                (self.run_id, after_row, limit),
            )
        ]

    def mark_in_flight(self, key: str, attempts: int) -> None:
        self._db.execute(
            "UPDATE rows SET state = 'in_flight', attempts = ? WHERE key = ?", (attempts, key)
        )

    def mark_sent(self, key: str, event_uuid: str, sent_at: str, attempts: int) -> None:
        # The error columns need no clearing: a row is only sent from pending, and a row comes
        # back to pending with them cleared (record_chunk's resend) or never set (mark_pending).
        self._db.execute(
            "UPDATE rows SET state = 'sent', sent_run = ?, event_uuid = ?, sent_at = ?,"
            " attempts = ?, body = NULL WHERE key = ?",
            (self.run_id, event_uuid, sent_at, attempts, key),
        )

    def mark_failed(
        self,
        key: str,
        *,
        http_status: int | None,
        error_type: str,
        message: str,
        attempts: int,
        kind: str,
    ) -> None:
        self._db.execute(
            "UPDATE rows SET state = 'failed', error_stage = 'api', http_status = ?,"
            " error_type = ?, error_message = ?, attempts = ?, failure_kind = ? WHERE key = ?",
            (http_status, error_type, message, attempts, kind, key),
        )

    def mark_pending(self, key: str) -> None:
        """A row that was about to be sent but was not (the run stopped before its request)."""
        self._db.execute(
            "UPDATE rows SET state = 'pending' WHERE key = ? AND state = 'in_flight'", (key,)
        )

    # -- reports -------------------------------------------------------------------------------

    def counts(self) -> Counts:
        run = self.run_id
        row = self._db.execute(
            "SELECT count(*),"
            " coalesce(sum(state = 'sent' AND sent_run = ?), 0),"
            " coalesce(sum(state = 'failed'), 0),"
            " coalesce(sum(state = 'sent' AND sent_run IS NOT ? ), 0),"
            " coalesce(sum(state IN ('pending', 'in_flight')), 0)"
            " FROM rows WHERE seen_run = ?",
            (run, run, run),
        ).fetchone()
        return Counts(*row)

    def successes(self) -> Iterator[tuple[int, str, str, str, str]]:
        """(row, email, conversion_identifier, event_uuid, sent_at) of this run's file, by row."""
        yield from self._db.execute(
            "SELECT row, email, conversion_identifier, event_uuid, sent_at FROM rows"
            " WHERE seen_run = ? AND state = 'sent' ORDER BY row",
            (self.run_id,),
        )

    def would_send(self) -> Iterator[tuple[int, str, str, str, str]]:
        """For a dry run: the rows an import would send, in the shape of ``successes``."""
        yield from self._db.execute(
            "SELECT row, email, conversion_identifier, '', '' FROM rows"
            " WHERE seen_run = ? AND state IN ('pending', 'in_flight') ORDER BY row",
            (self.run_id,),
        )

    def failures(self) -> Iterator[tuple[int, list[str], str, int | None, str, str, int]]:
        """(row, cells, error_stage, http_status, error_type, error_message, attempts), by row."""
        for row, cells, stage, status, etype, message, attempts in self._db.execute(
            "SELECT row, cells, error_stage, http_status, error_type, error_message, attempts"
            " FROM rows WHERE seen_run = ? AND state = 'failed' ORDER BY row",
            (self.run_id,),
        ):
            yield row, orjson.loads(cells) if cells else [], stage, status, etype, message, attempts

    def failure_types(self) -> dict[str, int]:
        return dict(
            self._db.execute(
                "SELECT error_type, count(*) FROM rows WHERE seen_run = ? AND state = 'failed'"
                " GROUP BY error_type ORDER BY count(*) DESC",
                (self.run_id,),
            ).fetchall()
        )

    def emails_over(self, limit: int) -> list[tuple[str, int]]:
        """Emails with more rows still to send than ``limit`` (RD's per-lead daily limit)."""
        return self._db.execute(
            "SELECT email, count(*) FROM rows WHERE seen_run = ? AND state = 'pending'"
            " GROUP BY email HAVING count(*) > ? ORDER BY count(*) DESC",
            (self.run_id, limit),
        ).fetchall()
