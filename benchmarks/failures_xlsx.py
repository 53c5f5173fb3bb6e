"""failures.xlsx: the time and peak memory to write it, beside failures.csv for the same rows.

    python benchmarks/failures_xlsx.py [--rows 100000] [--runs 3] [--openpyxl]

A dry run of a CSV of ROWS leads (11 columns) with a mapping that fails every row (its email is
the Nome column) leaves a ledger of ROWS failures, built once and kept in the temp folder. Then,
each in a fresh process (so its peak RSS is its own), taking turns run after run:

- query: the ledger's ``failures()`` read through and nothing written (what each report pays
  to read the rows: write_reports reads them once for each file);
- csv:   ``report.write_failures`` (failures.csv);
- xlsx:  ``xlsx_report.write_failures_xlsx`` (failures.xlsx);
- with --openpyxl, once: openpyxl's own write-only sheet, each value appended as it is (the
  fastest openpyxl can do, and wrong: "=1+1" becomes a formula), for scale.

Prints medians: seconds, seconds past the query, peak RSS, file size.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import machine, make_csv, run_child

FAILING_MAPPING = """\
conversion_identifier: "benchmark"
fields:
  email: "Nome"
  name: "Sobrenome"
  city: "Cidade"
"""

CHILD = """
import json, resource, sys, time
from pathlib import Path
from importer.ledger import Ledger
from importer.loader import open_table

kind, folder, source = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
with open_table(source) as table:
    headers = table.source_headers
ledger = Ledger(folder / "out" / "ledger.sqlite")
ledger.run_id = 1  # the dry run that recorded the failures
target = folder / f"bench-{kind}.{'csv' if kind == 'csv' else 'xlsx'}"
start = time.perf_counter()
rows = None
if kind == "query":
    rows = sum(1 for _ in ledger.failures())
elif kind == "csv":
    from importer.report import write_failures
    write_failures(target, headers, ledger.failures())
elif kind == "xlsx":
    from importer.xlsx_report import write_failures_xlsx
    write_failures_xlsx(target, headers, ledger.failures())
elif kind == "openpyxl":
    import openpyxl
    from importer.report import FAILURE_COLUMNS
    book = openpyxl.Workbook(write_only=True)
    sheet = book.create_sheet("failures")
    sheet.append([*headers, *FAILURE_COLUMNS])
    for f in ledger.failures():
        cells = (list(f.cells) + [""] * len(headers))[: len(headers)]
        sheet.append([*cells, f.row, f.stage, f.http_status, f.error_type, f.message,
                      f.attempts, f.source_row, f.row_id])
    book.save(target)
seconds = time.perf_counter() - start
ledger.close()
size = target.stat().st_size if target.exists() else 0
peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"seconds": seconds, "peak_mb": peak_mb, "size_mb": size / 1e6, "rows": rows}))
"""


def build_ledger(folder: Path, rows: int) -> Path:
    """A folder whose ledger holds ``rows`` failures (a dry run, once)."""
    source = folder / "leads.csv"
    if (folder / "out" / "ledger.sqlite").exists():
        return source
    from importer.pipeline import ImportConfig, run_import

    folder.mkdir(parents=True, exist_ok=True)
    make_csv(source, rows)
    mapping = folder / "failing.yaml"
    mapping.write_text(FAILING_MAPPING, encoding="utf-8")
    print(f"recording {rows:,} failed rows in {folder} (a dry run, once)...", flush=True)
    report = run_import(ImportConfig(source, mapping, out_dir=folder / "out", dry_run=True))
    assert report.failed == rows, report
    return source


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--openpyxl", action="store_true", help="also openpyxl alone, once")
    args = parser.parse_args()
    folder = Path(tempfile.gettempdir()) / f"rd-importer-bench-failures-{args.rows}"
    source = build_ledger(folder, args.rows)
    kinds = ["query", "csv", "xlsx"]
    runs: dict[str, list[dict]] = {kind: [] for kind in kinds}
    for _ in range(args.runs):  # taking turns, so a slow spell of the machine hits them all
        for kind in kinds:
            runs[kind].append(run_child(CHILD, kind, str(folder), str(source)))
    if args.openpyxl:
        runs["openpyxl"] = [run_child(CHILD, "openpyxl", str(folder), str(source))]
    assert {r["rows"] for r in runs["query"]} == {args.rows}, runs["query"]
    print(f"{args.rows:,} failed rows of 11 columns (+8 report columns); {machine()}")
    query = statistics.median(r["seconds"] for r in runs["query"])
    for kind, results in runs.items():
        seconds = statistics.median(r["seconds"] for r in results)
        peak = statistics.median(r["peak_mb"] for r in results)
        size = statistics.median(r["size_mb"] for r in results)
        past = f"{seconds - query:6.2f} s past the query" if kind != "query" else " " * 24
        written = f", file {size:5.1f} MB" if size else ""
        print(
            f"{kind:<9} {seconds:6.2f} s ({past}), peak RSS {peak:6.1f} MB{written} "
            f"(median of {len(results)})"
        )


if __name__ == "__main__":
    main()
