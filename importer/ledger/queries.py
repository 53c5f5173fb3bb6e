"""What the reports read from the ledger: counts, successes, failures, of this run's file."""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path

import orjson

from importer.ledger.funnel import funnel_failures_sql, funnel_message
from importer.ledger.rows import FAILED_STATES, Counts, Failure, Success

# The runs that wrote the same reports folder as run ? (an SQL subquery).
_RUNS_OF_THIS_FOLDER = "SELECT id FROM runs WHERE out_dir = (SELECT out_dir FROM runs WHERE id = ?)"


class ReportQueries:
    """The ledger's read side for the reports (``Ledger`` is one)."""

    _db: sqlite3.Connection
    run_id: int

    def counts(self) -> Counts:
        """This run's rows by outcome. A row with a funnel step (``ledger.funnel``) counts as
        succeeded only once both its steps are done, one of them by this run; as failed when
        its funnel step failed (its conversion stays recorded: successes.csv keeps it); as
        unsent while its funnel step is left to send."""
        run = self.run_id
        done = "coalesce(funnel.state, 'sent') = 'sent'"
        row = self._db.execute(
            "SELECT count(*),"
            f" coalesce(sum(rows.state = 'sent' AND {done}"
            " AND (rows.sent_run = ? OR funnel.sent_run = ?)), 0),"
            f" coalesce(sum(rows.state IN {FAILED_STATES}"
            " OR (rows.state = 'sent' AND funnel.state = 'failed')), 0),"
            f" coalesce(sum(rows.state = 'sent' AND {done}"
            " AND rows.sent_run IS NOT ? AND funnel.sent_run IS NOT ?), 0),"
            " coalesce(sum(rows.state IN ('pending', 'in_flight') OR (rows.state = 'sent'"
            " AND funnel.state IN ('pending', 'in_flight'))), 0)"
            " FROM rows LEFT JOIN funnel ON funnel.key = rows.key AND funnel.seen_run = ?"
            " WHERE rows.seen_run = ?",
            (run, run, run, run, run, run),
        ).fetchone()
        return Counts(*row)

    def successes(self) -> Iterator[Success]:
        """Every row sent from this run's reports folder, and the rows of this run's file that
        an earlier run (of any folder sharing the ledger) sent: the folder's record."""
        for fields in self._db.execute(
            "SELECT rows.row, email, conversion_identifier, event_uuid, sent_at, source_row,"
            " sender.input FROM rows JOIN runs AS sender ON sender.id = rows.sent_run"
            " WHERE state = 'sent' AND (seen_run = ? OR sent_run IN"
            f" ({_RUNS_OF_THIS_FOLDER})) ORDER BY coalesce(source_row, rows.row), sent_run",
            (self.run_id, self.run_id),
        ):
            row, email, conversion_id, event_uuid, sent_at, source_row, sent_in = fields
            yield Success(
                row, email, conversion_id, event_uuid, sent_at, source_row, Path(sent_in).name
            )

    def failures(self) -> Iterator[Failure]:
        """What is still failed in this run's reports folder: the failed rows (in doubt and held
        included) of its runs that read a table with this run's columns, by row; and the rows
        whose conversion is recorded and whose funnel step failed (stage ``funnel``)."""
        runs = (
            f"seen_run = ? OR seen_run IN ({_RUNS_OF_THIS_FOLDER} AND headers IS"
            " (SELECT headers FROM runs WHERE id = ?))"
        )
        funnel_runs = runs.replace("seen_run", "rows.seen_run", 2)
        for (
            row,
            cells,
            stage,
            status,
            etype,
            message,
            attempts,
            source_row,
            identity,
            event_uuid,
            key,
            kind,
        ) in self._db.execute(
            "SELECT * FROM (SELECT row, cells, error_stage, http_status, error_type,"
            " error_message, attempts, source_row, identity, NULL AS event_uuid, NULL AS key,"
            " NULL AS kind"
            f" FROM rows WHERE state IN {FAILED_STATES} AND ({runs})"
            f" UNION ALL {funnel_failures_sql(funnel_runs)})"
            " ORDER BY coalesce(source_row, row)",
            (self.run_id,) * 6,
        ):
            if stage == "funnel":
                message = funnel_message(key, event_uuid, message, kind)
            yield Failure(
                row,
                orjson.loads(cells) if cells else [],
                stage,
                status,
                etype,
                message,
                attempts,
                source_row,
                identity,
            )

    def folder_counts(self) -> dict[str, int]:
        """The state of this run's reports folder, over all its runs."""
        sent, failed, unsent = self._db.execute(
            "SELECT coalesce(sum(state = 'sent'), 0),"
            f" coalesce(sum(state IN {FAILED_STATES}), 0),"
            " coalesce(sum(state IN ('pending', 'in_flight')), 0)"
            f" FROM rows WHERE seen_run = ? OR seen_run IN ({_RUNS_OF_THIS_FOLDER})",
            (self.run_id, self.run_id),
        ).fetchone()
        return {"sent": sent, "failed": failed, "left_to_send": unsent}

    def failure_types(self) -> dict[str, int]:
        return dict(
            self._db.execute(
                "SELECT error_type, count(*) FROM (SELECT error_type FROM rows"
                f" WHERE seen_run = ? AND state IN {FAILED_STATES} UNION ALL"
                " SELECT funnel.error_type FROM funnel JOIN rows ON rows.key = funnel.key"
                " WHERE funnel.seen_run = ? AND funnel.state = 'failed' AND rows.state = 'sent')"
                " GROUP BY error_type ORDER BY count(*) DESC",
                (self.run_id, self.run_id),
            ).fetchall()
        )

    def would_send(self) -> Iterator[tuple[int, bytes]]:
        """For a dry run: (row, request body) of each row an import would send, by row."""
        yield from self._db.execute(
            "SELECT row, body FROM rows WHERE seen_run = ? AND state IN ('pending', 'in_flight')"
            " ORDER BY row",
            (self.run_id,),
        )

    def payload_rows(self, first: int, also: Sequence[int]) -> list[tuple[int, bytes, bytes]]:
        """(row, cells, body) of this run's first ``first`` rows that have a body, and of the
        rows numbered in ``also``; by row."""
        found = self._db.execute(
            "SELECT row, cells, body FROM rows WHERE seen_run = ? AND body IS NOT NULL"
            " ORDER BY row LIMIT ?",
            (self.run_id, first),
        ).fetchall()
        wanted = sorted(set(also) - {row for row, _, _ in found})
        for start in range(0, len(wanted), 900):
            part = wanted[start : start + 900]
            found += self._db.execute(
                "SELECT row, cells, body FROM rows WHERE seen_run = ? AND body IS NOT NULL"
                f" AND row IN ({','.join('?' * len(part))})",
                (self.run_id, *part),
            ).fetchall()
        return sorted(found)

    def rows_sharing_an_email(self, limit: int = 10_000) -> Iterator[list[tuple[int, bytes]]]:
        """For each email of this run whose rows differ (at most ``limit`` emails): its
        (row, body) pairs, by row. One pass over the run's rows."""
        shared = self._db.execute(  # cheap first: most files have no email twice
            "SELECT 1 FROM rows WHERE seen_run = ? AND body IS NOT NULL"
            " GROUP BY email HAVING count(*) > 1 LIMIT 1",
            (self.run_id,),
        ).fetchone()
        if shared is None:
            return
        found = self._db.execute(
            "SELECT email, row, body FROM rows WHERE seen_run = ? AND body IS NOT NULL"
            " AND email IN (SELECT email FROM rows WHERE seen_run = ? AND body IS NOT NULL"
            " GROUP BY email HAVING count(DISTINCT body) > 1 LIMIT ?) ORDER BY email, row",
            (self.run_id, self.run_id, limit),
        )
        for _, group in itertools.groupby(found, key=lambda r: r[0]):
            yield [(row, body) for _, row, body in group]

    def emails_over(self, limit: int) -> list[tuple[str, int]]:
        """Emails with more rows still to send than ``limit`` (RD's per-lead daily limit)."""
        return self._db.execute(
            "SELECT email, count(*) FROM rows WHERE seen_run = ? AND state = 'pending'"
            " GROUP BY email HAVING count(*) > ? ORDER BY count(*) DESC",
            (self.run_id, limit),
        ).fetchall()
