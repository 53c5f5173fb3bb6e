"""Pacing in real time: the real importer against a rate-limited sandbox in its own process.

    python benchmarks/pacing_live.py [--rate 600] [--window 10] [--windows 5] [--runs 3]
                                     [--concurrency 8] [--latency 0.05]

RD Station's gateway allows N POSTs in any 60-second window. To keep a run to a minute, the
window is scaled down with the rate: ``--rate 600`` per minute with a 10-second window is 100 per
window, the same pace per second as 600/min, and a run of ``--windows`` windows' worth of rows
sees the limiter roll over as often as a 5-minute run at 60 s would. The importer is the real one
(``run_import``: reader, ledger, workers, client, reports) in a fresh process; only its
``RateBudget`` gets the short window (``ImportConfig`` has no such setting: the CLI's is always a
minute). The sandbox (``rd-importer sandbox --rate-limit A --rate-window W``) counts exactly,
sliding, as RD's gateway does, and answers after ``--latency`` seconds. Two servers:

    exact   allows exactly the importer's rate (goal: >= 95% of it, at most 2 answers 429)
    70%     allows 70% of it, as when another integration shares the account's budget
            (goal: >= 85% of what it allows, at most 10% of requests answered 429)

Each run's figures come from the sandbox's own record: ``achieved`` is accepted requests over the
most the server could have accepted from the first accepted arrival to the last (the measure of
``pacing_sim.py``: K requests spaced exactly window/A apart score 1), ``429 share`` is answers 429
over requests. Every row must be sent in the end. Prints each run and the medians.

Caveat: the pacer's few absolute constants (a 2 s grace to group 429s of unknown origin, a 1 s
unpaced backoff) do not scale with the window, so a short window is slightly harsher on the 429
count than a real minute.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
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


def child(argv: list[str]) -> None:
    url, csv_path, mapping, out, per_window, window, concurrency = argv
    import importer.pipeline as pipeline
    from importer.pacing import RateBudget

    class WindowedBudget(RateBudget):
        def __init__(self, per_window: float, **kwargs: object) -> None:
            super().__init__(per_window, window=float(window), **kwargs)  # type: ignore[arg-type]

    pipeline.RateBudget = WindowedBudget  # type: ignore[misc]
    config = pipeline.ImportConfig(
        input_path=Path(csv_path),
        mapping_path=Path(mapping),
        out_dir=Path(out),
        api_url=url,
        api_key=API_KEY,
        rate=float(per_window),
        concurrency=int(concurrency),
    )
    report = pipeline.run_import(config)
    print(report.rows, report.succeeded, report.requests, report.rate_limited_answers)


def achieved_share(arrivals: list[float], allowed: int, window: float) -> float:
    """Accepted requests over the most the server could accept from the first to the last."""
    if len(arrivals) < 2:
        return 0.0
    span = arrivals[-1] - arrivals[0]
    return len(arrivals) / (allowed * span / window + 1)


def most_in_any_window(times: list[float], window: float) -> int:
    most = start = 0
    for end, t in enumerate(times):
        while times[start] <= t - window:
            start += 1
        most = max(most, end - start + 1)
    return most


def one_run(
    url: str, csv_path: Path, mapping: Path, out: Path, per_window: int, args: argparse.Namespace
) -> dict[str, float]:
    sandbox_reset(url)
    started = time.perf_counter()
    result = subprocess.run(
        [
            sys.executable,
            __file__,
            "--child",
            url,
            str(csv_path),
            str(mapping),
            str(out),
            str(per_window),
            str(args.window),
            str(args.concurrency),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
    )
    elapsed = time.perf_counter() - started
    rows, succeeded, requests, limited = map(int, result.stdout.split()[-4:])
    state = sandbox_state(url)
    arrivals = sorted(
        datetime.fromisoformat(entry["received_at"]).timestamp() for entry in state["accepted"]
    )
    answered_429 = state["statuses"].get("429", 0)
    return {
        "rows": rows,
        "sent": succeeded,
        "requests": state["requests"],
        "429s": answered_429,
        "429_share": answered_429 / state["requests"] if state["requests"] else 0.0,
        "importer_429s": limited,
        "importer_requests": requests,
        "arrivals": arrivals,  # type: ignore[dict-item]
        "seconds": elapsed,
    }


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=600, help="importer's rate per minute")
    parser.add_argument("--window", type=float, default=10, help="server's window, seconds")
    parser.add_argument("--windows", type=float, default=5, help="rows = a window's worth * this")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--latency", type=float, default=0.05, help="sandbox answer delay, s")
    args = parser.parse_args()
    per_window = round(args.rate * args.window / 60)
    cases = [("exact", per_window), ("70%", round(per_window * 0.7))]
    print(f"machine: {machine()}")
    print(
        f"importer at {args.rate:g}/min = {per_window} per {args.window:g} s window, "
        f"concurrency {args.concurrency}; sandbox latency {args.latency:g} s; "
        f"{args.runs} runs per case"
    )
    summary = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        mapping = write_mapping(folder)
        for label, allowed in cases:
            rows = round(per_window * args.windows)
            csv_path = make_csv(folder / f"leads-{allowed}.csv", rows)
            server = [
                "--rate-limit",
                str(allowed),
                "--rate-window",
                str(args.window),
                "--latency",
                str(args.latency),
            ]
            shares, limited, limited_shares, most = [], [], [], []
            with sandbox_process(*server) as url:
                for run in range(args.runs):
                    result = one_run(
                        url,
                        csv_path,
                        mapping,
                        folder / f"out-{run}-{len(summary)}",
                        per_window,
                        args,
                    )
                    arrivals = result["arrivals"]
                    share = achieved_share(arrivals, allowed, args.window)  # type: ignore[arg-type]
                    peak = most_in_any_window(arrivals, args.window)  # type: ignore[arg-type]
                    assert result["sent"] == result["rows"] == len(arrivals), result
                    shares.append(share)
                    limited.append(result["429s"])
                    limited_shares.append(result["429_share"])
                    most.append(peak)
                    print(
                        f"  {label:>5} run {run + 1}: {int(result['rows'])} rows in "
                        f"{result['seconds']:.0f} s, achieved {share:.1%} of {allowed}/window, "
                        f"{int(result['429s'])} answers 429 of {int(result['requests'])} "
                        f"({result['429_share']:.1%}), most accepted in a window {peak}"
                    )
            summary.append((label, allowed, shares, limited, limited_shares, most))
    print()
    print(f"{'server allows':<22} {'achieved':>9} {'429s':>6} {'429 share':>10}  goal")
    goals = {"exact": ">= 95%, <= 2 answers 429", "70%": ">= 85%, <= 10% answered 429"}
    for label, allowed, shares, limited, limited_shares, _ in summary:
        name = f"{label} ({allowed}/{args.window:g} s)"
        print(
            f"{name:<22} {median(shares):>9.1%} {statistics.median(limited):>6g} "
            f"{median(limited_shares):>10.1%}  {goals[label]}"
        )
    print(f"medians over {args.runs} runs per case")


if __name__ == "__main__":
    main()
