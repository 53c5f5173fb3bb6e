"""import_rows on a pandas DataFrame next to the same rows from a CSV file: rows/s of each.

Run by hand: ``python benchmarks/dataframe_rows.py [--rows N] [--runs N]``. Each measurement
is a dry run (``validate``: read, map, validate, record in the ledger, write the reports) in a
fresh process, into a fresh reports folder; the two sources alternate, and the script prints
the medians and their ratio. Two cases:

- text: the CSV read by pandas with every column as text (``dtype=str``), so the frame holds
  exactly the CSV's cells;
- typed: the same rows plus an integer column, a float column with empty cells (NaN) and a
  datetime column, as pandas holds them, beside a CSV of the text a person sees in them.

The frame reaches the child as a pickle, loaded before the clock starts: what is timed is the
import, not building the frame. A third column times the CSV with pandas imported (unused):
pandas' hundred thousand objects make each of Python's full garbage collections slower, a cost
the DataFrame run pays whatever the API does.
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import MAPPING, machine, make_csv, median, run_child

TYPED_FIELDS = """\
  cf_idade: "Idade"
  cf_pontos: "Pontos"
  cf_cadastro: {column: "Cadastro", transform: date}
"""

CSV_CHILD = """
import json, sys, time
if sys.argv[4:] == ["pandas"]:
    import pandas
from pathlib import Path
from importer.pipeline import ImportConfig, run_import
source, mapping, out = map(Path, sys.argv[1:4])
start = time.perf_counter()
report = run_import(ImportConfig(input_path=source, mapping_path=mapping, out_dir=out,
                                 dry_run=True))
print(json.dumps({"seconds": time.perf_counter() - start, "ready": report.succeeded}))
"""

FRAME_CHILD = """
import json, sys, time
from pathlib import Path
import pandas as pd
from importer import import_rows
source, mapping, out = map(Path, sys.argv[1:4])
frame = pd.read_pickle(source)
start = time.perf_counter()
report = import_rows(frame, mapping, out=out, dry_run=True)
print(json.dumps({"seconds": time.perf_counter() - start, "ready": report.succeeded}))
"""


def make_cases(folder: Path, rows: int) -> dict[str, tuple[Path, Path, Path]]:
    """{case: (csv, pickled frame, mapping)}."""
    import numpy as np
    import pandas as pd

    from importer.frames import frame_table

    text_csv = make_csv(folder / "text.csv", rows)
    frame = pd.read_csv(text_csv, sep=";", encoding="cp1252", dtype=str, keep_default_na=False)
    text_frame = folder / "text.pkl"
    frame.to_pickle(text_frame)
    text_mapping = folder / "text.yaml"
    text_mapping.write_text(MAPPING, encoding="utf-8")

    rng = np.random.default_rng(1)
    typed = frame.copy()
    typed["Idade"] = rng.integers(18, 80, rows)
    typed["Pontos"] = np.where(rng.random(rows) < 0.3, np.nan, rng.integers(0, 1000, rows))
    typed["Cadastro"] = pd.Timestamp("2020-01-01") + pd.to_timedelta(
        rng.integers(0, 2000, rows), unit="D"
    )
    typed_frame = folder / "typed.pkl"
    typed.to_pickle(typed_frame)
    typed_csv = folder / "typed.csv"
    with (
        frame_table(typed, "typed") as table,
        typed_csv.open("w", encoding="cp1252", newline="") as out,
    ):
        writer = csv.writer(out, delimiter=";")
        writer.writerow(table.headers)
        writer.writerows(row.cells.values() for row in table.rows())
    typed_mapping = folder / "typed.yaml"
    typed_mapping.write_text(MAPPING + TYPED_FIELDS, encoding="utf-8")
    return {
        "text": (text_csv, text_frame, text_mapping),
        "typed": (typed_csv, typed_frame, typed_mapping),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    print(f"{args.rows:,} rows, dry runs in fresh processes, medians of {args.runs}; {machine()}")
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        for case, (csv_path, frame_path, mapping) in make_cases(folder, args.rows).items():
            seconds: dict[str, list[float]] = {"csv": [], "frame": [], "csv+pandas": []}
            for run in range(args.runs):
                for source, child, path, extra in (
                    ("csv", CSV_CHILD, csv_path, []),
                    ("frame", FRAME_CHILD, frame_path, []),
                    ("csv+pandas", CSV_CHILD, csv_path, ["pandas"]),
                ):
                    out = folder / f"out-{case}-{source}-{run}"
                    result = run_child(child, str(path), str(mapping), str(out), *extra)
                    assert result["ready"] == args.rows, result
                    seconds[source].append(result["seconds"])
            csv_s, frame_s = median(seconds["csv"]), median(seconds["frame"])
            loaded_s = median(seconds["csv+pandas"])
            print(
                f"{case:>5}: CSV file {csv_s:5.2f} s ({args.rows / csv_s:>6,.0f} rows/s)  "
                f"DataFrame {frame_s:5.2f} s ({args.rows / frame_s:>6,.0f} rows/s)  "
                f"DataFrame/CSV speed {csv_s / frame_s:4.2f}x  "
                f"(CSV with pandas imported {loaded_s:5.2f} s: {loaded_s / frame_s:4.2f}x)"
            )


if __name__ == "__main__":
    main()
