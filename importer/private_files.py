"""Files that hold personal data: folders created 0700, files 0600 whatever the umask, each
written beside itself and renamed into place (a run stopped while writing leaves the previous
complete file, never half of one)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import orjson

# The reports a run rewrites, whose temporaries a killed run may leave behind.
TEMPORARY_REPORTS = (
    "report.html",
    "successes.csv",
    "failures.csv",
    "failures.xlsx",
    "summary.json",
    "payloads.jsonl",
)


def private_dir(path: Path) -> Path:
    """Create ``path`` (and parents) as 0700 where the importer creates it."""
    if not path.exists():
        if not path.parent.exists():
            # Parents too: one left 0777 by umask 000 would let anyone swap the reports folder
            # for a link to a folder of theirs.
            with contextlib.suppress(FileExistsError):
                private_dir(path.parent)
        path.mkdir(mode=0o700)
        path.chmod(0o700)  # mkdir's mode is filtered by the umask
    return path


def open_private(path: Path, mode: str = "w", **kwargs: Any) -> IO[Any]:
    """Open ``path`` for writing, created 0600 whatever the umask."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    return os.fdopen(fd, mode, **kwargs)


def replace_atomically(path: Path, write: Callable[[IO[str]], None]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open_private(tmp, "w", encoding="utf-8-sig", newline="") as handle:
        write(handle)
    os.replace(tmp, path)


def remove_stale_temporaries(folder: Path) -> None:
    """Remove the reports' temporary files (``.successes.csv.tmp``, ...) that a run killed while
    writing them left in ``folder``: they hold personal data, and nothing will use them."""
    for name in TEMPORARY_REPORTS:
        with contextlib.suppress(FileNotFoundError, IsADirectoryError):
            os.unlink(folder / f".{name}.tmp")  # never follows a link: removes the link


def write_summary(path: Path, summary: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open_private(tmp, "wb") as handle:
        handle.write(orjson.dumps(summary, option=orjson.OPT_INDENT_2) + b"\n")
    os.replace(tmp, path)
