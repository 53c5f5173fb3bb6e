"""The ledger's durability setting: relaxed only for a dry run on a ledger no import has used."""

from __future__ import annotations

from pathlib import Path

from importer.ledger import Ledger, RowState
from importer.records import FailureKind

OFF, NORMAL = 0, 1


def _synchronous(ledger: Ledger) -> int:
    return ledger._db.execute("PRAGMA synchronous").fetchone()[0]  # a per-connection setting


def test_a_dry_run_skips_fsyncs_only_until_an_import_has_used_the_ledger(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    for dry_run, expected in ((True, OFF), (True, OFF), (False, NORMAL), (True, NORMAL)):
        ledger = Ledger(path)
        try:
            ledger.begin_run(tmp_path / "leads.csv", "2026-11-27T00:00:00Z", dry_run=dry_run)
            assert _synchronous(ledger) == expected
        finally:
            ledger.close()


def test_rows_an_older_ledger_kept_as_uncertain_failures_open_as_in_doubt(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    ledger = Ledger(path)
    ledger.begin_run(tmp_path / "leads.csv", "2026-11-27T00:00:00Z", dry_run=False)
    ledger._db.executemany(  # as the ledger of an earlier release wrote them
        "INSERT INTO rows (key, row, state, seen_run, failure_kind) VALUES (?, ?, ?, 1, ?)",
        [("a", 2, "failed", "uncertain"), ("b", 3, "failed", "transient"), ("c", 4, "sent", None)],
    )
    ledger.close()
    ledger = Ledger(path)
    try:
        found = ledger.lookup(["a", "b", "c"])
        assert {key: entry.state for key, entry in found.items()} == {
            "a": RowState.IN_DOUBT,
            "b": RowState.FAILED,
            "c": RowState.SENT,
        }
        assert found["b"].kind is FailureKind.TRANSIENT
    finally:
        ledger.close()
