"""The importer's own cost per row: unpaced import vs a bare aiohttp loop, side by side.

    python benchmarks/unpaced_ratio.py [--rows 5000] [--runs 5] [--concurrency 32]

Both post the same bodies to the same sandbox (its own process, answering at once). The bare loop
posts prebuilt bodies and does nothing else; the importer reads the CSV, maps, validates, keeps its
ledger, writes its reports. Each measurement runs in a fresh child process, alternating, and the
script prints the medians and the ratio importer/bare of rows per second (goal: >= 0.6).
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
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


async def bare_loop(url: str, bodies: list[bytes], concurrency: int) -> float:
    import aiohttp

    endpoint = f"{url}/platform/conversions?api_key={API_KEY}"
    headers = {"Content-Type": "application/json"}
    queue = iter(bodies)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            for body in queue:
                async with session.post(endpoint, data=body, headers=headers) as answer:
                    await answer.read()

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - started


def prebuilt_bodies(csv_path: Path, mapping_path: Path) -> list[bytes]:
    from importer.loader import open_table

    from importer.client import conversion_body
    from importer.mapping import load_mapping

    mapping = load_mapping(mapping_path)
    with open_table(csv_path) as table:
        bound = mapping.bind(table.headers)
        return [conversion_body(bound.apply(row)) for row in table.rows()]


def child(argv: list[str]) -> None:
    mode, url, csv_path, mapping_path, out, concurrency = argv
    if mode == "bare":
        bodies = prebuilt_bodies(Path(csv_path), Path(mapping_path))
        print(asyncio.run(bare_loop(url, bodies, int(concurrency))))
        return
    from importer.pipeline import ImportConfig, run_import

    config = ImportConfig(
        input_path=Path(csv_path),
        mapping_path=Path(mapping_path),
        out_dir=Path(out),
        api_url=url,
        api_key=API_KEY,
        rate=0,
        concurrency=int(concurrency),
    )
    started = time.perf_counter()
    report = run_import(config)
    elapsed = time.perf_counter() - started
    assert report.failed == 0 and report.succeeded > 0, report
    print(elapsed)


def measure(mode: str, url: str, csv_path: Path, mapping: Path, out: Path, conc: int) -> float:
    shutil.rmtree(out, ignore_errors=True)
    sandbox_reset(url)
    result = subprocess.run(
        [
            sys.executable,
            __file__,
            "--child",
            mode,
            url,
            str(csv_path),
            str(mapping),
            str(out),
            str(conc),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
    )
    return float(result.stdout.strip().splitlines()[-1])


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, sandbox_process() as url:
        folder = Path(tmp)
        csv_path = make_csv(folder / "leads.csv", args.rows)
        mapping = write_mapping(folder)
        bare, importer = [], []
        for _ in range(args.runs):
            bare.append(
                args.rows / measure("bare", url, csv_path, mapping, folder / "o", args.concurrency)
            )
            importer.append(
                args.rows
                / measure("importer", url, csv_path, mapping, folder / "o", args.concurrency)
            )
        received = sandbox_state(url)["requests"]
    print(f"machine: {machine()}")
    print(f"{args.rows:,} rows, concurrency {args.concurrency}, {args.runs} runs each, alternating")
    print(
        f"bare aiohttp loop: median {median(bare):,.0f} rows/s  (runs: "
        + ", ".join(f"{v:,.0f}" for v in bare)
        + ")"
    )
    print(
        f"rd-importer:       median {median(importer):,.0f} rows/s  (runs: "
        + ", ".join(f"{v:,.0f}" for v in importer)
        + ")"
    )
    print(f"ratio importer/bare: {median(importer) / median(bare):.2f} (goal >= 0.6, aim 0.75)")
    print(f"(last importer run: the sandbox received {received:,} requests)")


if __name__ == "__main__":
    main()
