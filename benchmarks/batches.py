"""Event batches (issue 14): single posts vs ``--batch 100`` under both counting rules, and
batched runs with bad rows and with failing requests.

    python benchmarks/batches.py [--rows 10000] [--window 2] [--runs 3] [--latency 0.02]
                                 [--concurrency 8] [--only CASE ...]

At 120 requests a minute, 10,000 single posts take 84 minutes. To keep a run to minutes, the
window is scaled down as ``pacing_live.py`` does it: 120 per ``--window`` seconds (2 s: 30 times
shorter than RD Station's minute, the same number of requests per window), for the importer's
pacer and the sandbox's gateway alike. Fixed costs (starting Python, reading 10,000 rows, the
reports) do not shrink with the window, so the wall-time ratio understates what a real minute
gives; ``sending`` (first to last recorded conversion, from the sandbox's record) is printed
beside it. Each import is the real one (``run_import`` with ``--auth oauth``, signed in to the
sandbox) in a fresh process; the sandbox runs in this process's own thread, configured per case:

    single           one POST /platform/events per row (what --batch replaces)
    per_request      --batch 100, the gateway counting a batch once
    per_event        --batch 100, the gateway counting each event of a batch
    bad_indexed      --batch 100, 1% of rows refused by RD Station, the refusal naming them
    bad_unindexed    the same, the refusal not saying which event was bad (blind halving)
    failing          --batch 100, 5% of requests failing: 2.5% 5xx, 2.5% connections cut
                     before the sandbox records anything

Goals: per_request at least 50x faster than single; per_event no slower than single with at
most 2% of requests answered 429; bad and failing runs: 0 rows lost, 0 sent twice, and the extra
requests splitting cost. ``rows lost`` counts good rows the sandbox never recorded; ``twice``
counts rows it recorded more than once.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import ROOT, machine, median

MAPPING = """\
conversion_identifier: "benchmark-lotes"
fields:
  email: "E-mail"
  name: {template: "{Nome} {Sobrenome}"}
  company_name: "Empresa"
  job_title: "Cargo"
  city: "Cidade"
  state: "UF"
  tags: {column: "Interesses", split: ","}
  cf_plano: "Plano"
  cf_inexistente: "Extra"
"""
FIRST = ["Ana", "João", "Maria", "José", "Lúcia", "Antônio", "Adriana", "Carlos", "Juliana"]
LAST = ["Silva", "Santos", "Oliveira", "Souza", "Conceição", "Ferreira", "Araújo", "Gomes"]
RATE = 120  # requests per window, as RD Station's 120 a minute


def make_csv(path: Path, rows: int, bad_share: float, seed: int = 1) -> tuple[Path, set[str]]:
    """``rows`` distinct leads; a ``bad_share`` of them fill the column mapped to a custom field
    the sandbox's account lacks (RD Station refuses them; the importer cannot know)."""
    rng = random.Random(seed)
    bad = set(rng.sample(range(rows), round(rows * bad_share)))
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write("Nome;Sobrenome;E-mail;Empresa;Cargo;Cidade;UF;Interesses;Plano;Extra\n")
        for i in range(rows):
            out.write(
                f"{rng.choice(FIRST)};{rng.choice(LAST)};lead{i}@exemplo.com.br;Empresa {i % 97};"
                f'Gerente;São Paulo;SP;"vendas, marketing";pro;{"x" if i in bad else ""}\n'
            )
    return path, {f"lead{i}@exemplo.com.br" for i in bad}


def child(argv: list[str]) -> None:
    """One import in this fresh process: sign in to the sandbox, run, print its figures."""
    url, csv_path, out, window, concurrency, batch = argv
    os.environ["XDG_CONFIG_HOME"] = str(Path(out).parent / f"config-{Path(out).name}")
    import importer.pipeline as pipeline
    from importer import oauth
    from importer.config import Tuning
    from importer.pacing import RateBudget

    class WindowedBudget(RateBudget):
        def __init__(self, per_window: float, **kwargs: Any) -> None:
            super().__init__(per_window, window=float(window), **kwargs)

    vars(pipeline)["RateBudget"] = WindowedBudget  # what run_import builds its pacer from
    oauth.TokenFile().save(asyncio.run(oauth.sign_in_headless(url)).load())
    mapping = Path(out).parent / "mapping.yaml"
    mapping.write_text(MAPPING, encoding="utf-8")
    config = pipeline.ImportConfig(
        input_path=Path(csv_path),
        mapping_path=mapping,
        out_dir=Path(out),
        api_url=url,
        auth="oauth",
        batch=int(batch) or None,
        rate=float(RATE),
        concurrency=int(concurrency),
        # The retry policy's own waits are seconds long: with a window 30 times shorter, they
        # would weigh 30 times more than in a real run (429 pauses follow the pacer, scaled).
        tuning=Tuning(retry_wait=False, max_attempts=12),
    )
    started = time.perf_counter()
    report = pipeline.run_import(config)
    summary = json.loads((Path(out) / "summary.json").read_text(encoding="utf-8"))
    print(
        json.dumps(
            {
                "import_s": time.perf_counter() - started,
                "succeeded": report.succeeded,
                "failed": report.failed,
                "requests": report.requests,
                "rate_limited": report.rate_limited_answers,
                "batch_cost": summary.get("batch_cost"),
                "batches": summary.get("batches"),
            }
        )
    )


CASES: dict[str, dict[str, Any]] = {
    "single": {"batch": 0, "sandbox": {}},
    "per_request": {"batch": 100, "sandbox": {"batch_cost": "per_request"}},
    "per_event": {"batch": 100, "sandbox": {"batch_cost": "per_event"}},
    "bad_indexed": {"batch": 100, "bad": 0.01, "sandbox": {"batch_rejects": "indexed"}},
    "bad_unindexed": {"batch": 100, "bad": 0.01, "sandbox": {"batch_rejects": "unindexed"}},
    "failing": {"batch": 100, "sandbox": {"fail_ratio": 0.025, "drop_ratio": 0.025}},
}


def one_run(name: str, run: int, folder: Path, args: argparse.Namespace) -> dict[str, Any]:
    from importer.sandbox import SandboxConfig, SandboxThread
    from importer.sandbox.fields import DEFAULT_FIELDS, _field

    case = CASES[name]
    csv_path, bad = make_csv(folder / f"{name}.csv", args.rows, case.get("bad", 0.0))
    config = SandboxConfig(
        rate_limit=RATE,
        rate_window=args.window,
        latency=args.latency,
        seed=run + 1,
        custom_fields=frozenset({"cf_plano"}),
        # The account lists cf_inexistente, so the run's check of the mapping lets it through;
        # the sandbox then refuses the rows that fill it (a field deleted after the list was
        # read), as tests/test_batches.py does: RD Station's refusal, inside a batch.
        fields=[*DEFAULT_FIELDS, _field("cf_inexistente", "Extra", "Extra")],
        **case["sandbox"],
    )
    out = folder / f"out-{name}-{run}"
    with SandboxThread(config) as box:
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, __file__, "--child", box.url, str(csv_path), str(out),
             str(args.window), str(args.concurrency), str(case["batch"])],
            capture_output=True, text=True, cwd=ROOT, check=False,
        )  # fmt: skip
        wall = time.perf_counter() - started
        state = box.snapshot()
    if done.returncode not in (0, 1) or not done.stdout.strip():
        raise SystemExit(f"{name}: the import exited {done.returncode}: {done.stderr[-2000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    recorded = Counter(entry["payload"]["email"] for entry in state["accepted"])
    arrivals = sorted(
        datetime.fromisoformat(entry["received_at"]).timestamp() for entry in state["accepted"]
    )
    good = {f"lead{i}@exemplo.com.br" for i in range(args.rows)} - bad
    limited = state["statuses"].get("429", 0)
    return {
        "wall_s": wall,
        "sending_s": arrivals[-1] - arrivals[0] if len(arrivals) > 1 else 0.0,
        "requests": state["requests"],
        "429s": limited,
        "429_share": limited / state["requests"] if state["requests"] else 0.0,
        "lost": len(good - recorded.keys()),
        "twice": sum(1 for n in recorded.values() if n > 1),
        "bad_recorded": len(bad & recorded.keys()),
        "failed": result["failed"],
        "batch_cost": result["batch_cost"],
        "split_requests": (result["batches"] or {}).get("split_requests", 0),
        "split_batches": (result["batches"] or {}).get("split_batches", 0),
        "dropped": state["statuses"].get("dropped", 0),
        "5xx": sum(v for k, v in state["statuses"].items() if k.startswith("5")),
    }


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--window", type=float, default=2.0, help="seconds per 120 requests")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--latency", type=float, default=0.02, help="sandbox answer delay, s")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--only", nargs="*", choices=list(CASES), default=list(CASES))
    args = parser.parse_args()
    print(f"machine: {machine()}")
    print(
        f"{args.rows:,} rows; {RATE} requests per {args.window:g} s window ({60 / args.window:g}x "
        f"a real minute) for the pacer and the sandbox; latency {args.latency:g} s; "
        f"concurrency {args.concurrency}; {args.runs} runs per case"
    )
    results: dict[str, list[dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for run in range(args.runs):  # the cases in turn, so the machine's moods fall on all
            for name in args.only:
                result = one_run(name, run, Path(tmp), args)
                results.setdefault(name, []).append(result)
                print(
                    f"  {name:<13} run {run + 1}: wall {result['wall_s']:.1f} s, sending "
                    f"{result['sending_s']:.1f} s, {result['requests']} requests, "
                    f"{result['429s']} answered 429 ({result['429_share']:.1%}), lost "
                    f"{result['lost']}, twice {result['twice']}, failed {result['failed']}, "
                    f"split {result['split_batches']} batches (+{result['split_requests']} "
                    f"requests), 5xx {result['5xx']}, dropped {result['dropped']}, "
                    f"batch_cost {result['batch_cost']}",
                    flush=True,
                )

    def med(name: str, key: str) -> float:
        return median([r[key] for r in results[name]])

    print()
    print(
        f"{'case':<14} {'wall s':>8} {'sending s':>10} {'requests':>9} {'429 share':>10} "
        f"{'lost':>5} {'twice':>6} {'failed':>7} {'split +req':>11}  batch_cost"
    )
    for name in results:
        costs = Counter(str(r["batch_cost"]) for r in results[name]).most_common(1)[0][0]
        print(
            f"{name:<14} {med(name, 'wall_s'):>8.1f} {med(name, 'sending_s'):>10.1f} "
            f"{med(name, 'requests'):>9g} {med(name, '429_share'):>10.1%} "
            f"{med(name, 'lost'):>5g} {med(name, 'twice'):>6g} {med(name, 'failed'):>7g} "
            f"{med(name, 'split_requests'):>11g}  {costs}"
        )
    if "single" in results:
        for name in ("per_request", "per_event"):
            if name in results:
                wall = med("single", "wall_s") / med(name, "wall_s")
                sending = med("single", "sending_s") / max(med(name, "sending_s"), 1e-9)
                print(f"single / {name}: wall {wall:.1f}x, sending {sending:.1f}x")
    print(f"medians over {args.runs} runs per case; spread of wall times:")
    for name in results:
        walls = [r["wall_s"] for r in results[name]]
        spread = statistics.pstdev(walls) if len(walls) > 1 else 0.0
        print(f"  {name:<13} {', '.join(f'{w:.1f}' for w in walls)} (sd {spread:.1f})")


if __name__ == "__main__":
    main()
