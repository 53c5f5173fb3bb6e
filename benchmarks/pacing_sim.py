"""How fully and how cleanly RateBudget uses a rate-limited server's budget (simulated time).

    python benchmarks/pacing_sim.py [--seeds 5] [--minutes 60]

Workers pace through one RateBudget at ``--rate`` N against a simulated gateway that accepts a
given number of requests in any 60-second window (``tests/pacing_sim.py``): exactly N, 70% of N,
and N shared with another integration of the account spending 30% of it at random times. A
request answered 429 is sent again. Time is virtual, so an hour's run takes about a second and
does not depend on the machine. Each line prints medians over the seeds:

    achieved   accepted requests / what the server allowed us over the same span
    429 share  answers of 429 / requests sent
    429s       answers of 429 in the run
    max/60s    most requests the importer sent in any 60-second window (must be <= N)
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The harness lives with the tests; put it first so that this script's own name does not
# shadow it, and the repository root after it for the importer package.
sys.path[:0] = [str(ROOT / "tests"), str(ROOT)]

from pacing_sim import simulate  # noqa: E402

SCENARIOS = [
    # (label, allowed share of N, share of N another integration spends)
    ("server allows 100%", 1.0, 0.0),
    ("server allows 70%", 0.7, 0.0),
    ("shared: others take 30%", 1.0, 0.3),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=5, help="runs per scenario (default 5)")
    parser.add_argument("--minutes", type=float, default=60, help="rows = N per minute * this")
    args = parser.parse_args()

    head = ("rate", "scenario", "achieved", "429 share", "429s", "max/60s")
    print("{:>5}  {:<24} {:>9} {:>10} {:>6} {:>8}".format(*head))
    started = time.perf_counter()
    for rate in (120, 500):
        for label, share, others in SCENARIOS:
            results = [
                simulate(
                    rate=rate,
                    allowed=int(rate * share),
                    others=rate * others,
                    rows=int(rate * args.minutes),
                    workers=32,
                    seed=seed,
                )
                for seed in range(args.seeds)
            ]
            achieved = statistics.median(r.achieved_share for r in results)
            rejected = statistics.median(r.rejected_share for r in results)
            count = statistics.median(r.rejected for r in results)
            most = max(r.most_in_any_window() for r in results)
            print(
                f"{rate:>5}  {label:<24} {achieved:>9.1%} {rejected:>10.2%} {count:>6g} {most:>8}"
            )
    print(
        f"medians over {args.seeds} seeds, {args.minutes:g} min of rows at N each; "
        f"latency 50-250 ms each way; simulated in {time.perf_counter() - started:.0f} s"
    )


if __name__ == "__main__":
    main()
