"""XLSX reading: calamine through ``open_table`` vs openpyxl's read-only streaming.

Run by hand: ``python benchmarks/xlsx_read.py [--rows 200000] [--runs 3]``. The sheet (10
columns: text, phone numbers, floats, dates, booleans) is written once with openpyxl and kept
in the temp folder for later runs. Each read is a fresh process, so its peak RSS is its own;
calamine's side also reports the peak of the child process that loads the sheet.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import run_child

CALAMINE = """
import json, resource, sys, time
from pathlib import Path
from importer.loader import open_table
usage = resource.getrusage(resource.RUSAGE_SELF)
cpu0 = usage.ru_utime + usage.ru_stime
start = time.perf_counter()
rows = 0
with open_table(Path(sys.argv[1])) as table:
    opened = time.perf_counter() - start
    for row in table.rows():
        rows += 1
me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"rows": rows, "seconds": time.perf_counter() - start, "open": opened,
                  "peak_mb": me.ru_maxrss / 1024, "child_mb": kids.ru_maxrss / 1024,
                  "cpu": me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime - cpu0}))
"""

OPENPYXL = """
import json, resource, sys, time
import openpyxl
usage = resource.getrusage(resource.RUSAGE_SELF)
cpu0 = usage.ru_utime + usage.ru_stime
start = time.perf_counter()
book = openpyxl.load_workbook(sys.argv[1], read_only=True, data_only=True)
sheet = book.worksheets[0]
rows = 0
values = sheet.iter_rows(values_only=True)
header = [str(v) for v in next(values)]
for raw in values:
    # the least work that still turns every cell into text
    cells = dict(zip(header, ["" if v is None else str(v) for v in raw]))
    rows += 1
book.close()
print(json.dumps({"rows": rows, "seconds": time.perf_counter() - start, "open": 0.0,
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "child_mb": 0, "cpu": sum(resource.getrusage(resource.RUSAGE_SELF)[:2]) - cpu0}))
"""


def make_sheet(path: Path, rows: int) -> Path:
    import datetime as dt

    import openpyxl

    book = openpyxl.Workbook(write_only=True)
    sheet = book.create_sheet("Leads")
    sheet.append(
        ["Nome", "Email", "Celular", "CEP", "Cidade", "Valor", "Data", "Ativo", "Obs", "Tag"]
    )
    day = dt.date(2024, 1, 1)
    for i in range(rows):
        sheet.append(
            [
                f"Pessoa {i}",
                f"p{i}@exemplo.com.br",
                11987654321 + i,
                f"{i:08d}",
                "São Paulo",
                i * 1.5,
                day + dt.timedelta(days=i % 300),
                i % 2 == 0,
                "obs",
                "vendas",
            ]
        )
    book.save(path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--skip-openpyxl", action="store_true")
    args = parser.parse_args()
    path = Path(tempfile.gettempdir()) / f"rd-importer-bench-{args.rows}.xlsx"
    if not path.exists():
        print(f"writing {path} ({args.rows:,} rows) with openpyxl...", flush=True)
        make_sheet(path, args.rows)
    engines = [("calamine (open_table)", CALAMINE)]
    if not args.skip_openpyxl:
        engines.append(("openpyxl read_only", OPENPYXL))
    medians = {}
    # The engines take turns, run after run, so a slow spell of the machine hits both.
    runs: dict[str, list[dict]] = {name: [] for name, _ in engines}
    for _ in range(args.runs):
        for name, code in engines:
            runs[name].append(run_child(code, str(path)))
    for name, _ in engines:
        results = runs[name]
        seconds = statistics.median(r["seconds"] for r in results)
        opened = statistics.median(r["open"] for r in results)
        peak = statistics.median(r["peak_mb"] for r in results)
        child = statistics.median(r["child_mb"] for r in results)
        cpu = statistics.median(r["cpu"] for r in results)
        medians[name] = seconds
        reader = f" + reading child {child:6.1f} MB" if child else ""
        print(
            f"{name:<22} {results[0]['rows']:,} rows: {seconds:6.2f} s "
            f"({results[0]['rows'] / seconds:,.0f} rows/s; open {opened:.2f} s), "
            f"CPU {cpu:.2f} s, peak RSS {peak:6.1f} MB{reader} (median of {args.runs})"
        )
    if len(medians) == 2:
        ratio = medians["openpyxl read_only"] / medians["calamine (open_table)"]
        print(f"calamine is {ratio:.1f}x faster than openpyxl read_only")


if __name__ == "__main__":
    main()
