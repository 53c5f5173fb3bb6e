"""The SQLite ledger of one output folder (see the package's docstring for the states)."""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from importer.errors import InputError
from importer.ledger.queries import ReportQueries
from importer.ledger.rows import KINDS, STATES, ChunkRecord, Entry, Pending, RowState
from importer.records import Failed

SCHEMA = """
CREATE TABLE IF NOT EXISTS rows (
    key TEXT PRIMARY KEY,
    row INTEGER NOT NULL,
    state TEXT NOT NULL,            -- RowState's values
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
    failure_kind TEXT               -- FailureKind's values, for rows failed at the API
);
CREATE INDEX IF NOT EXISTS rows_by_run ON rows (seen_run, row);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY,
    started_at TEXT NOT NULL,
    input TEXT NOT NULL,
    dry_run INTEGER NOT NULL
);
"""
# Ledgers written before the in_doubt state kept such rows as failed rows of kind "uncertain".
_UPGRADE = (
    "UPDATE rows SET state = 'in_doubt' WHERE state = 'failed' AND failure_kind = 'uncertain'"
)


class Ledger(ReportQueries):
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
            self._db.execute(_UPGRADE)
        except (sqlite3.DatabaseError, OSError) as exc:
            raise InputError(
                f"{path}: the ledger cannot be opened ({exc}); use another output folder",
                setting="out_dir",
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
        """Commit everything done inside as one transaction (or nothing, on an error)."""
        db = self._db
        db.execute("BEGIN")
        try:
            yield
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    # -- the reader's side: record what the file holds, in chunks --------------------------------

    def lookup(self, keys: list[str]) -> dict[str, Entry]:
        """What the ledger knows of each of ``keys`` (unknown keys are left out)."""
        found: dict[str, Entry] = {}
        states, kinds = STATES, KINDS
        for start in range(0, len(keys), 900):  # SQLite's default limit on bound parameters
            part = keys[start : start + 900]
            marks = ",".join("?" * len(part))
            for key, state, seen_run, row, kind in self._db.execute(
                f"SELECT key, state, seen_run, row, failure_kind FROM rows WHERE key IN ({marks})",
                part,
            ):
                found[key] = Entry(states[state], row, seen_run, kinds.get(kind))
        return found

    def record_chunk(self, chunk: ChunkRecord) -> None:
        """Write one chunk of the reader's decisions in a single transaction."""
        run = self.run_id
        db = self._db
        with self.transaction():
            db.executemany(
                "INSERT INTO rows (key, row, state, seen_run, body, cells, email,"
                " conversion_identifier) VALUES (?, ?, 'pending', ?, ?, ?, ?, ?)",
                [(n.key, n.row, run, n.body, n.cells, n.email, n.conversion_id) for n in chunk.new],
            )
            db.executemany(
                "UPDATE rows SET seen_run = ?, row = ?, cells = ? WHERE key = ?",
                [(run, s.row, s.cells, s.key) for s in chunk.seen],
            )
            db.executemany(
                "UPDATE rows SET state = 'pending', body = ?, attempts = 0, error_stage = NULL,"
                " http_status = NULL, error_type = NULL, error_message = NULL,"
                " failure_kind = NULL WHERE key = ?",
                [(body, key) for key, body in chunk.resend],
            )
            db.executemany(
                "INSERT OR REPLACE INTO rows (key, row, state, seen_run, cells, error_stage,"
                " error_type, error_message, conversion_identifier, email)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, NULL)",
                [
                    (
                        f.key,
                        f.row,
                        f.state.value,
                        run,
                        f.cells,
                        f.stage,
                        f.error_type,
                        f.message,
                        f.conversion_id,
                    )
                    for f in chunk.failed
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

    def mark_pending(self, key: str) -> None:
        """A row that was about to be sent but was not (the run stopped before its request)."""
        self._db.execute(
            "UPDATE rows SET state = 'pending' WHERE key = ? AND state = 'in_flight'", (key,)
        )

    # -- reports -------------------------------------------------------------------------------
