"""Shared fixtures: a sandbox on loopback and the sample files. Plain helpers live in helpers.py."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import API_KEY, SAMPLE_CSV
from importer.sandbox import SandboxConfig, SandboxThread


@pytest.fixture
def sandbox() -> Iterator[SandboxThread]:
    with SandboxThread(SandboxConfig(api_keys=frozenset({API_KEY}), seed=1)) as box:
        yield box


@pytest.fixture
def make_sandbox() -> Iterator:
    boxes: list[SandboxThread] = []

    def make(**kwargs) -> SandboxThread:
        kwargs.setdefault("api_keys", frozenset({API_KEY}))
        kwargs.setdefault("seed", 1)
        box = SandboxThread(SandboxConfig(**kwargs)).start()
        boxes.append(box)
        return box

    yield make
    for box in boxes:
        box.stop()


@pytest.fixture
def sample_csv(tmp_path: Path) -> Path:
    path = tmp_path / "leads.csv"
    shutil.copy(SAMPLE_CSV, path)
    return path
