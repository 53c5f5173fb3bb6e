"""Where the answers go when the ledger cannot take them: a small file reserved beforehand.

A full disk (or a ledger that suddenly cannot be written) must not lose the answers of the
requests already sent: a row RD Station answered, whose mark is lost, would be in doubt on the
next run and sent again. So before the first request the run reserves ``JOURNAL_BYTES`` beside
the ledger (allocated, so writing into it needs no new space); when a commit fails, the marks it
held and every answer after it are written there instead, and the ledger replays them the next
time it opens, before anything else.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

import orjson

JOURNAL_BYTES = 256 * 1024  # a failed batch holds at most a few marks per worker


def journal_path(ledger: Path) -> Path:
    return ledger.with_name(f".{ledger.name}.answers")


class Journal:
    """The reserved file, open for writing while a run sends."""

    def __init__(self, ledger: Path) -> None:
        self.path = journal_path(ledger)
        self._fd: int | None = None
        self._used = 0

    def reserve(self) -> Journal:
        """Allocate the file now, while there is room; OSError when there is none."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            os.fchmod(fd, 0o600)
            os.posix_fallocate(fd, 0, JOURNAL_BYTES)
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        self._used = 0
        return self

    def append(self, entries: list[dict[str, Any]]) -> bool:
        """Write ``entries`` durably into the reserved space; False when they do not fit or the
        file cannot be written (then they are lost to this run: it says so)."""
        if self._fd is None:
            return False
        data = b"".join(orjson.dumps(entry) + b"\n" for entry in entries)
        if self._used + len(data) > JOURNAL_BYTES:
            return False
        try:
            os.pwrite(self._fd, data, self._used)
            os.fsync(self._fd)
        except OSError:
            return False
        self._used += len(data)
        return True

    def close(self) -> None:
        """Release the file; an unused one is removed (its space goes back)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
            if self._used == 0:
                with contextlib.suppress(OSError):
                    self.path.unlink()


def read_journal(ledger: Path) -> list[dict[str, Any]]:
    """The entries a stopped run left, complete lines only (a line cut by a crash is dropped)."""
    try:
        data = journal_path(ledger).read_bytes()
    except FileNotFoundError:
        return []
    entries = []
    for line in data.split(b"\n"):
        line = line.strip(b"\0 ")
        if not line:
            continue
        try:
            entry = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if isinstance(entry, dict) and isinstance(entry.get("op"), str):
            entries.append(entry)
    return entries


def forget_journal(ledger: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        journal_path(ledger).unlink()
