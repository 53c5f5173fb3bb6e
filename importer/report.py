"""The run's reports: successes.csv, failures.csv and summary.json, rebuilt from the ledger.

Each report is written to a temporary file beside it and renamed into place, so a run stopped
while writing leaves the previous complete report, never half of one. Reports hold personal data:
they are created readable by their owner only (0600). CSVs are UTF-8 with a BOM, so Excel shows
accents right, and a cell a spreadsheet would run as a formula is written as text.
"""

from __future__ import annotations

import contextlib
import csv
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import orjson

from importer.loader import escape_formula

SUCCESS_COLUMNS = ["row", "email", "conversion_identifier", "event_uuid", "sent_at"]
FAILURE_COLUMNS = ["row", "error_stage", "http_status", "error_type", "error_message", "attempts"]


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


def open_private(path: Path, mode: str = "w", **kwargs: Any):
    """Open ``path`` for writing, created 0600 whatever the umask."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    return os.fdopen(fd, mode, **kwargs)


def _replace_atomically(path: Path, write) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open_private(tmp, "w", encoding="utf-8-sig", newline="") as handle:
        write(handle)
    os.replace(tmp, path)


REPORT_NAMES = ("successes.csv", "failures.csv", "summary.json")


def remove_stale_temporaries(folder: Path) -> None:
    """Remove the reports' temporary files (``.successes.csv.tmp``, ...) that a run killed while
    writing them left in ``folder``: they hold personal data, and nothing will use them."""
    for name in REPORT_NAMES:
        with contextlib.suppress(FileNotFoundError, IsADirectoryError):
            os.unlink(folder / f".{name}.tmp")  # never follows a link: removes the link


def write_successes(path: Path, rows: Iterable[Sequence[Any]]) -> None:
    def write(handle) -> None:
        out = csv.writer(handle)
        out.writerow(SUCCESS_COLUMNS)
        for row in rows:
            out.writerow([escape_formula(str(v)) if isinstance(v, str) else v for v in row])

    _replace_atomically(path, write)


def write_failures(
    path: Path,
    source_headers: Sequence[str],
    rows: Iterable[tuple[int, list[str], str, int | None, str, str, int]],
) -> None:
    width = len(source_headers)

    def write(handle) -> None:
        out = csv.writer(handle)
        out.writerow([escape_formula(h) for h in source_headers] + FAILURE_COLUMNS)
        for number, cells, stage, status, etype, message, attempts in rows:
            # Cells past the header's width (the row failed for them: an unquoted delimiter)
            # follow the report's columns, under no header: the row comes back whole, and read
            # back unfixed it fails again for the same reason instead of being sent shifted.
            extra = cells[width:]
            cells = (list(cells) + [""] * width)[:width]
            status_text = "" if status is None else status
            # The error's type and words may be the server's own: escaped like the cells.
            out.writerow(
                [escape_formula(c) for c in cells]
                + [number, stage, status_text, escape_formula(etype), escape_formula(message)]
                + [attempts]
                + [escape_formula(c) for c in extra]
            )

    _replace_atomically(path, write)


def write_summary(path: Path, summary: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open_private(tmp, "wb") as handle:
        handle.write(orjson.dumps(summary, option=orjson.OPT_INDENT_2) + b"\n")
    os.replace(tmp, path)


def format_duration(seconds: float) -> str:
    """'3 s', '12 min', '1 h 44 min'."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"
