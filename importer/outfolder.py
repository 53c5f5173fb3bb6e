"""The output folder a run writes: one run at a time, never a report read back as the input,
room on the disk, and the disk's errors in one place."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import os
import shutil
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

from importer.config import ImportConfig
from importer.errors import AbortError, InputError
from importer.ledger.journal import Journal
from importer.report import REPORT_NAMES


def refuse_reading_a_report(config: ImportConfig, out_dir: Path) -> None:
    """A run rewrites its reports at its end: one that reads one of them would write over what
    the user typed into it (the fixes in a failures.csv). Stop before reading."""
    for read, what, given in (
        (config.input_path, "input", config.table),
        (config.mapping_path, "mapping", config.mapping),
    ):
        if given is not None:
            continue  # given in memory: no file is read, which the run could write over
        for name in REPORT_NAMES:
            with contextlib.suppress(OSError):
                if read.samefile(out_dir / name):
                    raise InputError(
                        f"{read}: this {what} is a report of {out_dir}, which the run rewrites "
                        f"when it ends: copy it (for example to {read.stem}-fixed{read.suffix}), "
                        "fix the copy, and import that into the same output folder"
                    )


def disk_error(
    exc: OSError | sqlite3.Error, out_dir: Path, *, sent: bool
) -> InputError | AbortError:
    """The one boundary for the disk errors of the reports folder, the ledger and the reports:
    before anything was sent they are an input problem (exit 2); after, the run stops resumably
    (exit 3)."""
    if isinstance(exc, OSError) and exc.strerror:
        what = f"{exc.filename or out_dir}: {exc.strerror}"
        full = exc.errno in (errno.ENOSPC, errno.EDQUOT)
    else:
        what = f"{out_dir}: the ledger cannot be written ({exc})"
        full = "full" in str(exc)
    todo = "free some space" if full else "fix the folder or its permissions"
    if not sent:
        return InputError(f"{what}; {todo}, or choose another output folder", setting="out_dir")
    return AbortError(f"{what}; {todo}, then run the same command to resume")


@contextlib.contextmanager
def exclusive(out_dir: Path, ledger: Path | None = None) -> Iterator[None]:
    """One run per output folder (or per shared ledger): two at once would send the same rows
    twice."""
    lock = out_dir / ".lock" if ledger is None else ledger.with_name(f".{ledger.name}.lock")
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        os.fchmod(fd, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise InputError(
                f"{out_dir}: another rd-importer run is using this folder; wait for it to end "
                "or choose another output folder",
                setting="out_dir",
            ) from None
        yield
    finally:
        os.close(fd)


FREE_SPACE_EVERY = 2.0  # seconds between looks at the free space while sending


class DiskGuard:
    """The free space beside the ledger: a run does not start under ``margin``, stops taking
    rows when it gets there, and reserves the journal its answers go to if the disk fills."""

    def __init__(self, ledger: Path, margin: int, stop: Callable[[str], None]) -> None:
        self.ledger = ledger
        self.margin = margin
        self.stop = stop

    def check_before_sending(self) -> None:
        problem = free_space_problem(self.ledger.parent, self.margin)
        if problem is not None:
            raise InputError(problem + ", or choose another output folder", setting="out_dir")

    def reserve_journal(self) -> Journal:
        try:
            return Journal(self.ledger).reserve()
        except OSError as exc:
            raise InputError(
                f"{self.ledger.parent}: no room to reserve space for the answers "
                f"({exc.strerror}); free some space, or choose another output folder",
                setting="out_dir",
            ) from None

    async def watch(self) -> None:
        """Stop taking rows before the disk fills, rather than when it has."""
        while True:
            await asyncio.sleep(FREE_SPACE_EVERY)
            problem = free_space_problem(self.ledger.parent, self.margin)
            if problem is not None:
                self.stop(problem + ", then run the same command to resume")
                return


def free_space_problem(folder: Path, margin: int) -> str | None:
    """What to say when ``folder``'s disk has less than ``margin`` bytes free, else None."""
    free = shutil.disk_usage(folder).free
    if free >= margin:
        return None
    return (
        f"{folder}: only {free / 1e6:,.1f} MB free on its disk, under the "
        f"{margin / 1e6:,.0f} MB a run keeps in reserve: free some space"
    )
