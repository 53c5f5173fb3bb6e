"""CSV reading speed and memory of the loader alone: rows/s and peak RSS at 20k vs 400k rows.

Run by hand: ``python benchmarks/loader_read.py [--runs N]``. Each run reads the whole file
through ``open_table(...).rows()`` in a fresh process, so its peak RSS is its own; the script
prints medians. Flat memory means the 400k-row peak is close to the 20k-row one.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import make_csv, run_child

CHILD = """
import json, resource, sys, time
from pathlib import Path
from importer.loader import open_table
start = time.perf_counter()
rows = 0
with open_table(Path(sys.argv[1])) as table:
    for row in table.rows():
        rows += 1
elapsed = time.perf_counter() - start
print(json.dumps({"rows": rows, "seconds": elapsed, "description": table.description,
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        for count in (20_000, 400_000):
            path = make_csv(Path(folder) / f"leads-{count}.csv", count)
            results = [run_child(CHILD, str(path)) for _ in range(args.runs)]
            seconds = statistics.median(r["seconds"] for r in results)
            peak = statistics.median(r["peak_mb"] for r in results)
            size = path.stat().st_size / 1e6
            print(
                f"{count:>7,} rows ({size:5.1f} MB, {results[0]['description']}): "
                f"{seconds:6.3f} s, {count / seconds:>9,.0f} rows/s, peak RSS {peak:5.1f} MB "
                f"(median of {args.runs})"
            )


if __name__ == "__main__":
    main()
