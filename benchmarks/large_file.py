"""Large files: validate throughput and flat memory, and how soon the first request leaves.

    python benchmarks/large_file.py [--runs 3] [--small 20000] [--large 400000] [--first 300000]
                                    [--million]

1. `validate` (a dry run: read, map, validate, ledger, reports) on a small and a large CSV, each in
   a fresh process: rows per second and peak RSS (goal: large peak <= 1.5x small peak, < 400 MB;
   throughput aim 100,000 rows/s on one core).
2. `rd-importer import` of a large CSV against a sandbox in its own process: seconds from the
   command's start to the first request arriving (goal: < 3 s), then the import is stopped.
3. With --million: `validate` on 1,000,000 rows, peak RSS (it must fit a 2 GB machine).
"""

from __future__ import annotations

import argparse
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import (
    API_KEY,
    ROOT,
    machine,
    make_csv,
    median,
    sandbox_process,
    sandbox_state,
    write_mapping,
)


def child_validate(csv_path: str, mapping: str, out: str) -> None:
    from importer.pipeline import ImportConfig, run_import

    started = time.perf_counter()
    report = run_import(
        ImportConfig(Path(csv_path), Path(mapping), out_dir=Path(out), dry_run=True)
    )
    elapsed = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    assert report.rows > 0 and report.failed == 0, report
    print(f"{report.rows} {elapsed} {peak_mb}")


def validate(csv_path: Path, mapping: Path, out: Path) -> tuple[int, float, float]:
    result = subprocess.run(
        [sys.executable, __file__, "--child", str(csv_path), str(mapping), str(out)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
    )
    rows, elapsed, peak = result.stdout.split()
    return int(rows), float(elapsed), float(peak)


def first_request(csv_path: Path, mapping: Path, out: Path) -> float:
    with sandbox_process() as url:
        env = dict(os.environ, RDSTATION_API_KEY=API_KEY)
        started = time.perf_counter()
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "importer",
                "import",
                str(csv_path),
                "--mapping",
                str(mapping),
                "--api-url",
                url,
                "--out",
                str(out),
                "-q",
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            while sandbox_state(url)["requests"] == 0:
                if proc.poll() is not None:
                    raise RuntimeError(f"the import ended with {proc.returncode} before sending")
                time.sleep(0.02)
            return time.perf_counter() - started
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(60)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child_validate(*sys.argv[2:5])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--small", type=int, default=20_000)
    parser.add_argument("--large", type=int, default=400_000)
    parser.add_argument("--first", type=int, default=300_000)
    parser.add_argument("--million", action="store_true")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        mapping = write_mapping(folder)
        small = make_csv(folder / "small.csv", args.small)
        large = make_csv(folder / "large.csv", args.large)
        results: dict[str, list[tuple[int, float, float]]] = {"small": [], "large": []}
        for run in range(args.runs):
            for name, path in (("small", small), ("large", large)):
                results[name].append(validate(path, mapping, folder / f"out-{name}-{run}"))
        for name in ("small", "large"):
            rows = results[name][0][0]
            rate = median([r / e for r, e, _ in results[name]])
            peak = median([p for _, _, p in results[name]])
            print(f"validate {rows:>9,} rows: median {rate:>9,.0f} rows/s, peak RSS {peak:,.0f} MB")
        ratio = median([p for *_, p in results["large"]]) / median(
            [p for *_, p in results["small"]]
        )
        print(f"peak RSS large/small: {ratio:.2f} (goal <= 1.5)")

        first = make_csv(folder / "first.csv", args.first) if args.first != args.large else large
        waits = [first_request(first, mapping, folder / f"out-first-{i}") for i in range(args.runs)]
        print(
            f"first request on {args.first:,} rows: median {median(waits):.2f} s from start "
            "(goal < 3 s); runs: " + ", ".join(f"{w:.2f}" for w in waits)
        )
        if args.million:
            million = make_csv(folder / "million.csv", 1_000_000)
            rows, elapsed, peak = validate(million, mapping, folder / "out-million")
            print(f"validate {rows:,} rows: {rows / elapsed:,.0f} rows/s, peak RSS {peak:,.0f} MB")


if __name__ == "__main__":
    main()
