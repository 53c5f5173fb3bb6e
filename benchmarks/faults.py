"""Rows lost and rows sent twice under faults, kills and Ctrl-C: the figures issue 5 asks for.

    python benchmarks/faults.py [--runs 3] [--fault-rows 2000] [--kill-rows 3000] [--kills 3]

Every case runs the real CLI (``python -m importer import ... --rate 0 --concurrency 8``, with its
real retry waits) against ``rd-importer sandbox`` in its own process, and counts against what the
sandbox recorded: a row lost is one the sandbox never recorded, a row sent twice one it recorded
more than once. Medians over ``--runs`` runs.

1. No faults (the baseline); then 10% of requests fail: 5% answered 5xx and 5% dropped
   connections, all before the server records (rows sent twice should be 0); then half of the
   drops after the server recorded (each is a duplicate the client cannot tell from a drop
   before recording).
2. SIGKILL at seeded random moments while rows are being sent, started again until it exits 0.
3. SIGINT with 8 requests in flight (each answered after ``--latency-sigint`` seconds): time
   from the signal to the process's exit.
"""

from __future__ import annotations

import argparse
import collections
import os
import random
import shutil
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
    sandbox_reset,
    sandbox_state,
    write_mapping,
)

CONCURRENCY = 8


def start_import(csv_path: Path, mapping: Path, url: str, out: Path) -> subprocess.Popen:
    command = [
        sys.executable, "-m", "importer", "import", str(csv_path), "--mapping", str(mapping),
        "--api-url", url, "--out", str(out), "--rate", "0",
        "--concurrency", str(CONCURRENCY), "-q",
    ]  # fmt: skip
    env = {**os.environ, "RDSTATION_API_KEY": API_KEY}
    return subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )


def lost_and_twice(url: str, rows: int) -> tuple[int, int]:
    counts = collections.Counter(e["payload"]["email"] for e in sandbox_state(url)["accepted"])
    return rows - len(counts), sum(counts.values()) - len(counts)


def fresh(url: str, out: Path) -> None:
    shutil.rmtree(out, ignore_errors=True)
    sandbox_reset(url)


def faulty_run(csv_path: Path, mapping: Path, url: str, out: Path, rows: int) -> list[float]:
    fresh(url, out)
    started = time.perf_counter()
    proc = start_import(csv_path, mapping, url, out)
    _, err = proc.communicate()
    took = time.perf_counter() - started
    if proc.returncode not in (0, 1):
        raise SystemExit(f"the import exited {proc.returncode}: {err}")
    lost, twice = lost_and_twice(url, rows)
    return [lost, twice, took]


def killed_run(
    csv_path: Path, mapping: Path, url: str, out: Path, rows: int, kills: int, rng: random.Random
) -> list[float]:
    fresh(url, out)
    done = 0
    for _ in range(kills + 10):
        proc = start_import(csv_path, mapping, url, out)
        if done < kills:
            goal = sandbox_state(url)["requests"] + rng.randint(50, rows // (kills + 1))
            while proc.poll() is None and sandbox_state(url)["requests"] < goal:
                time.sleep(0.01)
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                done += 1
                continue
        _, err = proc.communicate()
        if proc.returncode == 0:
            break
        raise SystemExit(f"the import exited {proc.returncode}: {err}")
    lost, twice = lost_and_twice(url, rows)
    return [lost, twice, done]


def interrupted_run(csv_path: Path, mapping: Path, url: str, out: Path) -> float:
    fresh(url, out)
    proc = start_import(csv_path, mapping, url, out)
    while proc.poll() is None and sandbox_state(url)["requests"] < 3 * CONCURRENCY:
        time.sleep(0.01)
    signalled = time.perf_counter()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate()
    took = time.perf_counter() - signalled
    if proc.returncode != 3:
        raise SystemExit(f"the import exited {proc.returncode}, not 3: {err}")
    return took


def medians(results: list[list[float]]) -> list[float]:
    return [median(list(column)) for column in zip(*results, strict=True)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--fault-rows", type=int, default=2000)
    parser.add_argument("--kill-rows", type=int, default=3000)
    parser.add_argument("--kills", type=int, default=3)
    parser.add_argument("--latency", type=float, default=0.02, help="seconds per answer")
    parser.add_argument("--latency-sigint", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=5)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    print(f"machine: {machine()}")
    print(f"--rate 0 --concurrency {CONCURRENCY}, real retry waits, medians of {args.runs} runs")

    common = ("--key", API_KEY, "--seed", str(args.seed), "--latency", str(args.latency))
    faults = {
        "no faults (for comparison)": (),
        "5% 5xx + 5% drops before recording": ("--fail-ratio", "0.05", "--drop-ratio", "0.05"),
        "5% 5xx + 2.5% drops before + 2.5% after recording": (
            "--fail-ratio", "0.05", "--drop-ratio", "0.025", "--accept-then-drop-ratio", "0.025",
        ),
    }  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        mapping = write_mapping(folder)
        out = folder / "out"

        csv_path = make_csv(folder / "faults.csv", args.fault_rows)
        for name, flags in faults.items():
            with sandbox_process(*common, *flags) as url:
                runs = [
                    faulty_run(csv_path, mapping, url, out, args.fault_rows)
                    for _ in range(args.runs)
                ]
            lost, twice, took = medians(runs)
            print(
                f"{args.fault_rows:,} rows, {name}: rows lost {lost:g}, rows sent twice "
                f"{twice:g}, time {took:.1f} s (runs: {[round(r[2], 1) for r in runs]})"
            )

        csv_path = make_csv(folder / "kills.csv", args.kill_rows)
        with sandbox_process(*common) as url:
            runs = [
                killed_run(csv_path, mapping, url, out, args.kill_rows, args.kills, rng)
                for _ in range(args.runs)
            ]
        lost, twice, kills = medians(runs)
        print(
            f"{args.kill_rows:,} rows, SIGKILL {kills:g} times while sending, then resumed: "
            f"rows lost {lost:g}, rows sent twice {twice:g} (at most {kills * CONCURRENCY:g}; "
            f"runs: {[int(r[1]) for r in runs]})"
        )

        slow = ("--key", API_KEY, "--latency", str(args.latency_sigint))
        with sandbox_process(*slow) as url:
            times = [interrupted_run(csv_path, mapping, url, out) for _ in range(args.runs)]
        print(
            f"SIGINT with {CONCURRENCY} requests in flight ({args.latency_sigint:g} s per "
            f"answer): exit 3 after {median(times):.2f} s (runs: {[round(t, 2) for t in times]})"
        )


if __name__ == "__main__":
    main()
