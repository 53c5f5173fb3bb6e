"""Durable per-row record of an import: what was read, sent, failed; the source of every report.

The ledger is a SQLite database in WAL mode under the run's output folder. Every row of the input
gets an entry before anything is sent, keyed by its content: the hash of the payload it produces
(rows that never produced a payload are keyed by their row number). A row moves through

    pending -> in_flight -> sent
                         -> failed          RD Station refused it, or the cause was on the way
                         -> in_doubt        an attempt got no answer: it may have been recorded

and each move is committed before the next step: a row is marked in flight *before* its request
leaves, and sent only once the answer is in. So a process killed at any moment leaves at most the
rows that were in flight in doubt, and a re-run knows exactly which rows those are. What a later
run does with each state is ``intake.RESUME_RULES``.

WAL with synchronous=NORMAL survives the process being killed (what this ledger must survive);
only a power cut can lose the last commits, and then the worst case is a row sent twice. A dry
run on a ledger no import has used yet writes with synchronous=OFF (see ``begin_run``).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import os
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from importer.errors import InputError
from importer.records import Failed, FailureKind

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


class RowState(enum.Enum):
    PENDING = "pending"  # to send
    IN_FLIGHT = "in_flight"  # its request left; no answer recorded yet
    SENT = "sent"  # RD Station answered with an event_uuid
    FAILED = "failed"  # refused before or at sending; the failure kind says whether it is final
    IN_DOUBT = "in_doubt"  # may have been recorded (unanswered attempt, or left unsent for that)


_FAILED_STATES = "('failed', 'in_doubt')"
_STATES = {state.value: state for state in RowState}
_KINDS = {kind.value: kind for kind in FailureKind}


@dataclass(frozen=True, slots=True)
class Entry:
    """What the ledger knows of one key."""

    state: RowState
    row: int
    seen_run: int  # the last run whose input held it
    kind: FailureKind | None  # why it failed at the API (FAILED rows only)


@dataclass(slots=True)
class NewRow:
    """A row never seen before, to send."""

    key: str
    row: int
    body: bytes
    cells: bytes
    email: str
    conversion_id: str


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
    state: RowState = RowState.FAILED


@dataclass(slots=True)
class ChunkRecord:
    """One chunk of the reader's decisions, written in one transaction."""

    new: list[NewRow]
    seen: list[SeenRow]
    resend: list[tuple[str, bytes]]  # (key, body): back to pending (their row is in ``seen``)
    failed: list[FailedRow]


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


@dataclass(frozen=True, slots=True)
class Failure:
    row: int
    cells: list[str]
    stage: str
    http_status: int | None
    error_type: str
    message: str
    attempts: int


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
        states, kinds = _STATES, _KINDS
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

    def counts(self) -> Counts:
        run = self.run_id
        row = self._db.execute(
            "SELECT count(*),"
            " coalesce(sum(state = 'sent' AND sent_run = ?), 0),"
            f" coalesce(sum(state IN {_FAILED_STATES}), 0),"
            " coalesce(sum(state = 'sent' AND sent_run IS NOT ? ), 0),"
            " coalesce(sum(state IN ('pending', 'in_flight')), 0)"
            " FROM rows WHERE seen_run = ?",
            (run, run, run),
        ).fetchone()
        return Counts(*row)

    def successes(self) -> Iterator[Success]:
        """The sent rows of this run's file, by row."""
        for fields in self._db.execute(
            "SELECT row, email, conversion_identifier, event_uuid, sent_at FROM rows"
            " WHERE seen_run = ? AND state = 'sent' ORDER BY row",
            (self.run_id,),
        ):
            yield Success(*fields)

    def would_send(self) -> Iterator[Success]:
        """For a dry run: the rows an import would send, as successes with no uuid or time."""
        for fields in self._db.execute(
            "SELECT row, email, conversion_identifier, '', '' FROM rows"
            " WHERE seen_run = ? AND state IN ('pending', 'in_flight') ORDER BY row",
            (self.run_id,),
        ):
            yield Success(*fields)

    def failures(self) -> Iterator[Failure]:
        """The failed rows (in doubt included) of this run's file, by row."""
        for row, cells, stage, status, etype, message, attempts in self._db.execute(
            "SELECT row, cells, error_stage, http_status, error_type, error_message, attempts"
            f" FROM rows WHERE seen_run = ? AND state IN {_FAILED_STATES} ORDER BY row",
            (self.run_id,),
        ):
            yield Failure(
                row, orjson.loads(cells) if cells else [], stage, status, etype, message, attempts
            )

    def failure_types(self) -> dict[str, int]:
        return dict(
            self._db.execute(
                "SELECT error_type, count(*) FROM rows"
                f" WHERE seen_run = ? AND state IN {_FAILED_STATES}"
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


class Marks:
    """The senders' ledger writes, committed together once per event-loop turn.

    A commit costs more than the few updates a row needs, and unpaced, many workers move in the
    same turn. ``now`` returns only once its write is committed: a request never leaves before
    its row is durably in flight. ``later`` writes behind, at the end of the same turn (so an
    answer is on disk a moment after it arrived), in the order the writes were made.
    """

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger
        self._writes: list[tuple[Callable[..., None], tuple[Any, ...]]] = []
        self._waiters: list[asyncio.Future[None]] = []
        self._scheduled = False
        self._error: Exception | None = None

    async def in_flight(self, key: str, attempts: int) -> None:
        """Mark a row in flight; returns once that is committed, so its request may leave."""
        await self._now(self._ledger.mark_in_flight, key, attempts)

    def sent(self, key: str, event_uuid: str, sent_at: str, attempts: int) -> None:
        self._later(self._ledger.mark_sent, key, event_uuid, sent_at, attempts)

    def failed(self, key: str, failed: Failed, attempts: int, *, in_doubt: bool) -> None:
        self._later(self._mark_failed, key, failed, attempts, in_doubt)

    def pending(self, key: str) -> None:
        self._later(self._ledger.mark_pending, key)

    def flush(self) -> None:
        """Commit what is waiting; raise what went wrong in this or an earlier commit."""
        self._flush_soon()
        if self._error is not None:
            raise self._error

    def _mark_failed(self, key: str, failed: Failed, attempts: int, in_doubt: bool) -> None:
        self._ledger.mark_failed(key, failed, attempts, in_doubt=in_doubt)

    def _later(self, write: Callable[..., None], *args: Any) -> None:
        if self._error is not None:
            raise self._error
        self._writes.append((write, args))
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._flush_soon)

    async def _now(self, write: Callable[..., None], *args: Any) -> None:
        self._later(write, *args)
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        await waiter

    def _flush_soon(self) -> None:
        # Called by the event loop: an error is kept for the writers, not raised into the loop.
        self._scheduled = False
        writes, self._writes = self._writes, []
        waiters, self._waiters = self._waiters, []
        if writes and self._error is None:
            try:
                with self._ledger.transaction():
                    for write, args in writes:
                        write(*args)
            except Exception as exc:
                self._error = exc
        for waiter in waiters:
            if not waiter.done():
                if self._error is None:
                    waiter.set_result(None)
                else:
                    waiter.set_exception(self._error)
