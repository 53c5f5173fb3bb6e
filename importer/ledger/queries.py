"""What the reports read from the ledger: counts, successes, failures, of this run's file."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

import orjson

from importer.ledger.rows import FAILED_STATES, Counts, Failure, Success


class ReportQueries:
    """The ledger's read side for the reports (``Ledger`` is one)."""

    _db: sqlite3.Connection
    run_id: int

    def counts(self) -> Counts:
        run = self.run_id
        row = self._db.execute(
            "SELECT count(*),"
            " coalesce(sum(state = 'sent' AND sent_run = ?), 0),"
            f" coalesce(sum(state IN {FAILED_STATES}), 0),"
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
            f" FROM rows WHERE seen_run = ? AND state IN {FAILED_STATES} ORDER BY row",
            (self.run_id,),
        ):
            yield Failure(
                row, orjson.loads(cells) if cells else [], stage, status, etype, message, attempts
            )

    def failure_types(self) -> dict[str, int]:
        return dict(
            self._db.execute(
                "SELECT error_type, count(*) FROM rows"
                f" WHERE seen_run = ? AND state IN {FAILED_STATES}"
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
