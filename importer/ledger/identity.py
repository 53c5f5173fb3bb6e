"""What the ledger knows of a row's identity (the same source row under any payload)."""

from __future__ import annotations

import contextlib
import sqlite3

import orjson

from importer.ledger.rows import FAILED_STATES, STATES, Sibling, as_json
from importer.records import IdentityRule


class IdentityQueries:
    """The ledger's identity side (``Ledger`` is one)."""

    _db: sqlite3.Connection
    run_id: int

    def transaction(self) -> contextlib.AbstractContextManager[None]:
        raise NotImplementedError  # Ledger's

    def _use_identity_rule(self, key: list[str] | None) -> None:
        """Identities follow the mapping's ``key``: when it changed since the identities were
        computed, compute them again from each row's cells and its run's headers."""
        rule = as_json(key)
        found = self._db.execute("SELECT value FROM meta WHERE name = 'identity_rule'").fetchone()
        if found is not None and found[0] == rule:
            return
        headers_of = {
            run: orjson.loads(headers)
            for run, headers in self._db.execute("SELECT id, headers FROM runs")
            if headers
        }
        rules = {run: IdentityRule(headers, key) for run, headers in headers_of.items()}
        updates = []
        for rowid, cells, run in self._db.execute("SELECT rowid, cells, seen_run FROM rows"):
            headers = headers_of.get(run)
            if headers is not None and cells is not None:
                by_header = dict(zip(headers, orjson.loads(cells), strict=False))
                updates.append((rules[run](by_header), rowid))
        with self.transaction():
            self._db.executemany("UPDATE rows SET identity = ? WHERE rowid = ?", updates)
            self._db.execute(
                "INSERT OR REPLACE INTO meta (name, value) VALUES ('identity_rule', ?)", (rule,)
            )

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
