"""The ledger's durability setting: relaxed only for a dry run on a ledger no import has used."""

from __future__ import annotations

from pathlib import Path

from importer.ledger import Ledger

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
