"""A partner's nightly cumulative export: what `watch` sends each night, and what a night costs.

    python benchmarks/nightly_drops.py [--rows 10000] [--growth 500] [--edited 0.01] [--nights 7]

Night 1 drops `leads.csv` with ROWS rows; each later night drops the whole list again plus GROWTH
new rows, with EDITED of the old rows edited (a new job title), as most CRMs and forms export.
`rd-importer watch --once` runs each night against a sandbox in its own process, unpaced, with
the mapping's `key: "ID"` (the CRM's record id), once under the default (--keep-sent) and once
under --resend-changed. Printed per night: rows sent (from the sandbox's own count) and the
seconds `watch --once` took. Goal: the new rows only under --keep-sent, the new plus the edited
under --resend-changed, and a night over rows already sent costing seconds, not requests.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import API_KEY, ROOT, machine, sandbox_process, sandbox_state

MAPPING = """\
conversion_identifier: "parceiro-noturno"
key: "ID"
fields:
  email: "E-mail"
  name: "Nome"
  job_title: "Cargo"
"""
TITLES = ["Analista", "Gerente", "Diretora", "Coordenador", "Estagiária", "Consultor"]


def write_night(path: Path, people: list[list[str]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as handle:
        handle.write("ID,Nome,E-mail,Cargo\r\n")
        for row in people:
            handle.write(",".join(row) + "\r\n")


def nights(rows: int, growth: int, edited: float, count: int, seed: int = 7):
    rng = random.Random(seed)
    people = [
        [f"{i:07d}", f"Pessoa {i}", f"pessoa{i}@exemplo.com.br", rng.choice(TITLES)]
        for i in range(rows)
    ]
    for night in range(count):
        if night:
            for row in rng.sample(people, int(len(people) * edited)):
                row[3] = rng.choice([t for t in TITLES if t != row[3]])
            start = len(people)
            people += [
                [f"{i:07d}", f"Pessoa {i}", f"pessoa{i}@exemplo.com.br", rng.choice(TITLES)]
                for i in range(start, start + growth)
            ]
        yield [list(row) for row in people]


def run(args: argparse.Namespace, flag: str | None) -> list[tuple[int, int, float]]:
    work = Path(tempfile.mkdtemp(prefix="nightly-"))
    inbox, out = work / "inbox", work / "out"
    inbox.mkdir()
    mapping = work / "m.yaml"
    mapping.write_text(MAPPING, encoding="utf-8")
    results = []
    with sandbox_process() as url:
        sent_before = 0
        for night, people in enumerate(
            nights(args.rows, args.growth, args.edited, args.nights), start=1
        ):
            write_night(inbox / "leads.csv", people)
            old = time.time() - 3600  # settled long ago
            os.utime(inbox / "leads.csv", (old, old))
            command = [sys.executable, "-m", "importer", "watch", str(inbox), "--mapping"]
            command += [str(mapping), "--out", str(out), "--once", "--rate", "0", "-q"]
            command += ["--api-url", url] + ([flag] if flag else [])
            started = time.perf_counter()
            done = subprocess.run(
                command,
                cwd=ROOT,
                env=dict(os.environ, RDSTATION_API_KEY=API_KEY),
                capture_output=True,
                text=True,
            )
            seconds = time.perf_counter() - started
            if done.returncode not in (0, 1):
                raise RuntimeError(f"night {night}: exit {done.returncode}: {done.stderr}")
            sent_now = len(sandbox_state(url)["accepted"])
            results.append((night, sent_now - sent_before, seconds))
            sent_before = sent_now
    shutil.rmtree(work)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--growth", type=int, default=500)
    parser.add_argument("--edited", type=float, default=0.01)
    parser.add_argument("--nights", type=int, default=7)
    args = parser.parse_args()
    print(machine())
    edited = int(args.rows * args.edited)
    print(f"{args.rows:,} rows, +{args.growth} a night, ~{edited} old rows edited a night")
    for flag in (None, "--resend-changed"):
        print(f"\nwatch --once {flag or '(default: --keep-sent)'}")
        print("night  rows sent  seconds")
        for night, sent, seconds in run(args, flag):
            print(f"{night:5d}  {sent:9,d}  {seconds:7.1f}")


if __name__ == "__main__":
    main()
