"""The SQLite ledger of one output folder (see the package's docstring for the states)."""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path

from importer.errors import InputError
from importer.ledger.funnel import FUNNEL_SCHEMA, FunnelQueries
from importer.ledger.identity import IdentityQueries
from importer.ledger.queries import ReportQueries
from importer.ledger.rows import (
    KINDS,
    STATES,
    ChunkRecord,
    Entry,
    Pending,
    as_json,
)
from importer.ledger.writes import RowMarks

SCHEMA = (
    """
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
    identity TEXT,                  -- records.IdentityRule: the same source row, any payload
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
    + FUNNEL_SCHEMA
)
# What ledgers written by earlier releases lack; each statement is tried once and may fail
# because the ledger has it already.
_ADDED_COLUMNS = (
    "ALTER TABLE rows ADD COLUMN identity TEXT",
    "ALTER TABLE rows ADD COLUMN source_row INTEGER",
    "ALTER TABLE runs ADD COLUMN out_dir TEXT",
    "ALTER TABLE runs ADD COLUMN headers TEXT",
)
_UPGRADES = (
    # Earlier releases kept rows in doubt as failed rows of kind "uncertain", and rows held by
    # --in-flight skip as such rows with the error type IN_FLIGHT_UNKNOWN.
    "UPDATE rows SET state = 'held' WHERE error_type = 'IN_FLIGHT_UNKNOWN'"
    " AND state IN ('failed', 'in_doubt')",
    "UPDATE rows SET state = 'in_doubt' WHERE state = 'failed' AND failure_kind = 'uncertain'",
)


class Ledger(ReportQueries, IdentityQueries, RowMarks, FunnelQueries):
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
            (started_at, str(input_path), int(dry_run), str(out_dir or ""), as_json(headers)),
        )
        self.run_id = int(cur.lastrowid or 0)
        # Duplicates are found anew by each run in its own file.
        self._db.execute("DELETE FROM rows WHERE key LIKE 'dup:%'")
        self._use_identity_rule(list(key) if key else None)
        if self.has_earlier_rows():
            # Rows are looked up by identity only against earlier runs' rows: a ledger's first
            # run (a whole file, often) does not pay for the index; the second builds it once.
            self._db.execute("CREATE INDEX IF NOT EXISTS rows_by_identity ON rows (identity)")
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

    def record_chunk(self, chunk: ChunkRecord) -> list[str]:
        """Write one chunk of the reader's decisions in a single transaction; the keys of the
        rows whose funnel an earlier run set with other values (``record_funnel``)."""
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
            if chunk.funnel:
                return self.record_funnel(chunk.funnel)
        return []

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

    # -- reports -------------------------------------------------------------------------------
