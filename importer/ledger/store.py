"""The SQLite ledger of one output folder (see the package's docstring for the states)."""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson

from importer.errors import InputError
from importer.ledger.journal import forget_journal, read_journal
from importer.ledger.queries import ReportQueries
from importer.ledger.rows import (
    FAILED_STATES,
    KINDS,
    STATES,
    ChunkRecord,
    Entry,
    Pending,
    RowState,
    Sibling,
)
from importer.records import Failed, FailureKind, row_identity


def _json(value: object) -> str:
    return orjson.dumps(value).decode()


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
    failure_kind TEXT,              -- FailureKind's values, for rows failed at the API
    identity TEXT,                  -- records.row_identity: the same source row, any payload
    source_row INTEGER              -- its number in the file it first came from
);
CREATE INDEX IF NOT EXISTS rows_by_run ON rows (seen_run, row);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY,
    started_at TEXT NOT NULL,
    input TEXT NOT NULL,
    dry_run INTEGER NOT NULL,
    out_dir TEXT,                   -- the reports folder the run wrote
    headers TEXT                    -- the input's column names, as JSON
);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT);
"""
# What ledgers written by earlier releases lack; each statement is tried once and may fail
# because the ledger has it already.
_ADDED_COLUMNS = (
    "ALTER TABLE rows ADD COLUMN identity TEXT",
    "ALTER TABLE rows ADD COLUMN source_row INTEGER",
    "ALTER TABLE runs ADD COLUMN out_dir TEXT",
    "ALTER TABLE runs ADD COLUMN headers TEXT",
)
_UPGRADES = (
    "CREATE INDEX IF NOT EXISTS rows_by_identity ON rows (identity)",
    # Earlier releases kept rows in doubt as failed rows of kind "uncertain", and rows held by
    # --in-flight skip as such rows with the error type IN_FLIGHT_UNKNOWN.
    "UPDATE rows SET state = 'held' WHERE error_type = 'IN_FLIGHT_UNKNOWN'"
    " AND state IN ('failed', 'in_doubt')",
    "UPDATE rows SET state = 'in_doubt' WHERE state = 'failed' AND failure_kind = 'uncertain'",
)


class Ledger(ReportQueries):
    """One output folder's ledger. Not thread-safe: the pipeline uses it from its event loop."""

    def __init__(self, path: Path):
        self.path = path
        self.run_id = 0
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
            columns = {row[1] for row in self._db.execute("PRAGMA table_info(rows)")}
            if "identity" not in columns:
                for statement in _ADDED_COLUMNS:
                    with contextlib.suppress(sqlite3.OperationalError):
                        self._db.execute(statement)
            for statement in _UPGRADES:
                self._db.execute(statement)
            self._replay_journal()
        except (sqlite3.DatabaseError, OSError) as exc:
            raise InputError(
                f"{path}: the ledger cannot be opened ({exc}); use another output folder",
                setting="out_dir",
            ) from None
        self.run_id = 0

    def close(self) -> None:
        self._db.close()

    def begin_run(
        self,
        input_path: Path,
        started_at: str,
        *,
        dry_run: bool,
        out_dir: Path | None = None,
        headers: Sequence[str] = (),
        key: Sequence[str] | None = None,
    ) -> int:
        """Start a run; ``key`` is the mapping's identity columns (None: every cell)."""
        if dry_run and self._db.execute("SELECT 1 FROM runs WHERE dry_run = 0").fetchone() is None:
            # Only dry runs ever wrote here: the ledger holds nothing the input file does not
            # re-derive (no row was sent or in flight), so it need not survive a power cut, only
            # the process being killed, which synchronous=OFF still survives. Not waiting for
            # the disk at each WAL checkpoint makes validate ~15% faster on large files. Any
            # other ledger keeps NORMAL: a dry run rewrites its rows too (seen_run, resends),
            # and a damaged ledger could forget which rows were sent.
            self._db.execute("PRAGMA synchronous=OFF")
        cur = self._db.execute(
            "INSERT INTO runs (started_at, input, dry_run, out_dir, headers)"
            " VALUES (?, ?, ?, ?, ?)",
            (started_at, str(input_path), int(dry_run), str(out_dir or ""), _json(headers)),
        )
        self.run_id = int(cur.lastrowid or 0)
        # Duplicates are found anew by each run in its own file.
        self._db.execute("DELETE FROM rows WHERE key LIKE 'dup:%'")
        self._use_identity_rule(list(key) if key else None)
        return self.run_id

    def _use_identity_rule(self, key: list[str] | None) -> None:
        """Identities follow the mapping's ``key``: when it changed since the identities were
        computed, compute them again from each row's cells and its run's headers."""
        rule = _json(key)
        found = self._db.execute("SELECT value FROM meta WHERE name = 'identity_rule'").fetchone()
        if found is not None and found[0] == rule:
            return
        headers_of = {
            run: orjson.loads(headers)
            for run, headers in self._db.execute("SELECT id, headers FROM runs")
            if headers
        }
        updates = []
        for rowid, cells, run in self._db.execute("SELECT rowid, cells, seen_run FROM rows"):
            headers = headers_of.get(run)
            if headers is not None and cells is not None:
                by_header = dict(zip(headers, orjson.loads(cells), strict=False))
                updates.append((row_identity(by_header, key), rowid))
        with self.transaction():
            self._db.executemany("UPDATE rows SET identity = ? WHERE rowid = ?", updates)
            self._db.execute(
                "INSERT OR REPLACE INTO meta (name, value) VALUES ('identity_rule', ?)", (rule,)
            )

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

    def siblings(self, identities: list[str]) -> dict[str, list[Sibling]]:
        """The rows recorded with each of ``identities``, by identity."""
        found: dict[str, list[Sibling]] = {}
        for start in range(0, len(identities), 900):
            part = identities[start : start + 900]
            marks = ",".join("?" * len(part))
            for identity, key, state, seen_run, source_row, body in self._db.execute(
                "SELECT identity, key, state, seen_run, source_row, body FROM rows"
                f" WHERE identity IN ({marks})",
                part,
            ):
                found.setdefault(identity, []).append(
                    Sibling(key, STATES[state], seen_run, source_row, body)
                )
        return found

    def record_chunk(self, chunk: ChunkRecord) -> None:
        """Write one chunk of the reader's decisions in a single transaction."""
        run = self.run_id
        db = self._db
        with self.transaction():
            if chunk.superseded:
                db.executemany("DELETE FROM rows WHERE key = ?", [(k,) for k in chunk.superseded])
            db.executemany(
                "INSERT INTO rows (key, row, state, seen_run, body, cells, email,"
                " conversion_identifier, identity, source_row)"
                " VALUES (?, ?, 'pending', ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        n.key,
                        n.row,
                        run,
                        n.body,
                        n.cells,
                        n.email,
                        n.conversion_id,
                        n.identity,
                        n.source_row,
                    )
                    for n in chunk.new
                ],
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
                " error_type, error_message, conversion_identifier, email, identity, source_row)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, ?, ?)",
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
                        f.identity,
                        f.source_row,
                    )
                    for f in chunk.failed
                ],
            )

    def has_sent_rows(self) -> bool:
        return (
            self._db.execute("SELECT 1 FROM rows WHERE state = 'sent' LIMIT 1").fetchone()
            is not None
        )

    def has_earlier_rows(self) -> bool:
        """Whether rows of runs before this one are recorded (else no row can have siblings)."""
        found = self._db.execute(
            "SELECT 1 FROM rows WHERE seen_run != ? LIMIT 1", (self.run_id,)
        ).fetchone()
        return found is not None

    def forget_gone_failures(self) -> None:
        """After reading a whole file: the failures earlier runs of this folder recorded for
        that same file and that it no longer holds (fixed in place, or removed) are gone."""
        self._db.execute(
            f"DELETE FROM rows WHERE state IN {FAILED_STATES} AND seen_run IN"
            " (SELECT id FROM runs WHERE input = (SELECT input FROM runs WHERE id = ?)"
            " AND coalesce(out_dir, '') IN ((SELECT out_dir FROM runs WHERE id = ?), '')"
            " AND id != ?)",
            (self.run_id, self.run_id, self.run_id),
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

    # -- reports -------------------------------------------------------------------------------
