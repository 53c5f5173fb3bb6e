"""Helpers shared by the benchmarks: synthetic lead files, a sandbox in its own process, medians.

Benchmarks are run by hand (`python benchmarks/NAME.py`), never by the test suite: timings on a
shared machine are noisy, so each script runs its cases side by side, several times, and prints
medians and ratios.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
API_KEY = "bench-key"

MAPPING = """\
conversion_identifier: "benchmark"
fields:
  email: "E-mail"
  name: {template: "{Nome} {Sobrenome}"}
  mobile_phone: {column: "Celular", transform: phone_br}
  company_name: "Empresa"
  job_title: "Cargo"
  city: "Cidade"
  state: "UF"
  tags: {column: "Interesses", split: ","}
  cf_cep: "CEP"
  cf_plano: "Plano"
"""

HEADER = "Nome;Sobrenome;E-mail;Celular;Empresa;Cargo;Cidade;UF;CEP;Interesses;Plano\r\n"
FIRST = ["Ana", "João", "Maria", "José", "Lúcia", "Antônio", "Adriana", "Carlos", "Juliana"]
LAST = ["Silva", "Santos", "Oliveira", "Souza", "Conceição", "Ferreira", "Araújo", "Gomes"]


def make_csv(path: Path, rows: int, *, seed: int = 1) -> Path:
    """A Brazilian-Excel style CSV (';', Windows-1252) of ``rows`` distinct leads."""
    rng = random.Random(seed)
    with path.open("w", encoding="cp1252", newline="") as out:
        out.write(HEADER)
        for i in range(rows):
            first, last = rng.choice(FIRST), rng.choice(LAST)
            out.write(
                f"{first};{last};lead{i}@exemplo.com.br;(11) 9{rng.randint(1000, 9999)}-"
                f"{rng.randint(1000, 9999)};Empresa {i % 97};Gerente;São Paulo;SP;"
                f'0{rng.randint(1000000, 9999999)};"vendas, marketing";Pro\r\n'
            )
    return path


def write_mapping(folder: Path) -> Path:
    path = folder / "mapping.yaml"
    path.write_text(MAPPING, encoding="utf-8")
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def sandbox_process(*args: str) -> Iterator[str]:
    """``rd-importer sandbox`` in its own process (so it does not share our GIL); yields its URL."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "importer", "sandbox", "--port", str(port), *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=ROOT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                sandbox_state(url)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def sandbox_state(url: str) -> dict:
    with urllib.request.urlopen(f"{url}/_sandbox/state", timeout=30) as answer:
        return json.load(answer)


def sandbox_reset(url: str) -> None:
    request = urllib.request.Request(f"{url}/_sandbox/reset", method="POST", data=b"")
    with urllib.request.urlopen(request, timeout=30):
        pass


def run_child(code: str, *args: str) -> dict:
    """Run ``code`` in a fresh Python (so its peak RSS is its own); it prints one JSON object."""
    out = subprocess.run(
        [sys.executable, "-c", code, *args], check=True, capture_output=True, text=True, cwd=ROOT
    )
    return json.loads(out.stdout)


def median(values: list[float]) -> float:
    return statistics.median(values)


def machine() -> str:
    cpu = "unknown CPU"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as info:
        for line in info:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return f"{os.cpu_count()} cores, {cpu}, Python {sys.version.split()[0]}"
