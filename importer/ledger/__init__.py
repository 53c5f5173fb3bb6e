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

    rows.py     the row states and the typed values read from and written to the ledger
    store.py    the SQLite ledger: the reader's chunks, the senders' marks, the runs
    queries.py  what the reports read from it
    marks.py    the senders' marks, committed together once per event-loop turn
    funnel.py   each row's funnel step, beside its conversion (its own states and body)
"""

from importer.ledger.marks import Marks
from importer.ledger.rows import (
    ChunkRecord,
    Counts,
    Entry,
    FailedRow,
    Failure,
    FunnelStep,
    NewRow,
    Pending,
    RowState,
    SeenRow,
    Sibling,
    Success,
)
from importer.ledger.store import Ledger

__all__ = [
    "ChunkRecord",
    "Counts",
    "Entry",
    "FailedRow",
    "Failure",
    "FunnelStep",
    "Ledger",
    "Marks",
    "NewRow",
    "Pending",
    "RowState",
    "SeenRow",
    "Sibling",
    "Success",
]
