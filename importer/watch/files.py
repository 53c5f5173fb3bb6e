"""One file of the inbox, from its listing to its place in processed/ or rejected/: the settings
every file shares, the run, the checks that it is still the content imported, the record."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import time
import traceback
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from importer.errors import ImporterError, InputError, SettingsError, printable
from importer.loader import ChangedFile, ListedFile
from importer.mapping import load_mapping
from importer.pipeline import ImportConfig, Listener, RunReport
from importer.sending import RunControl
from importer.watch.folders import (
    PROCESSED,
    REJECTED,
    _folder_in_use,
    _Folders,
    _move_into,
    _write_replacing,
    check_reports_folder,
)
from importer.watch.inbox import (
    UNREADABLE_SUFFIXES,
    Dropped,
    _how_changed,
    _sha256_in,
    listed_sha256,
)
from importer.watch.record import (
    FileOutcome,
    FolderIndex,
    warning_text,
)

Runner = Callable[[ImportConfig, Listener, RunControl], Coroutine[Any, Any, RunReport]]


@dataclass
class WatchConfig:
    """What to watch and how. ``template`` holds the import settings shared by every file; its
    ``input_path`` and ``out_dir`` are set per file."""

    inbox: Path
    out_root: Path
    template: ImportConfig
    once: bool = False
    interval: float = 30.0  # seconds between passes
    settle: float = 5.0  # a file changed more recently than this is still being written
    wait_lock: bool = False  # another watcher holds the inbox: wait for it (else skip)
    # Each file its own ledger (drops that are incremental by design). Otherwise every file
    # imported with one mapping into out_root shares one: a row sent from one drop is known in
    # the next, so a cumulative export sends only its new (and, with --resend-changed, edited)
    # rows.
    each_file_new: bool = False
    handle_signals: bool = False  # SIGINT/SIGTERM stop the watch gracefully (the CLI sets it)
    clock: Callable[[], float] = time.time  # wall clock, compared with the files' mtimes


def check_settings(template: ImportConfig) -> None:
    """Raise InputError when the mapping or a setting is unusable: a problem of the watcher's,
    which must stop it, never reject the files."""
    load_mapping(template.mapping_path)  # the settings checked themselves when built


def _interrupted(report: RunReport) -> bool:
    return report.interrupted


class _RunListener(Listener):
    """Passes a run's messages on, escaped."""

    def __init__(self, inner: Listener):
        self.inner = inner

    # A run's messages name the file, and may quote its header: escaped like the watcher's own.
    def info(self, message: str) -> None:
        self.inner.info(printable(message))

    def warning(self, message: str) -> None:
        self.inner.warning(printable(message))

    def progress(self, done: int, total: int | None, eta_s: float | None) -> None:
        self.inner.progress(done, total, eta_s)

    def finished(self) -> None:
        self.inner.finished()


class _FileImports:
    """Importing one file, for the watcher (``_Watcher``), which holds these attributes."""

    config: WatchConfig
    notice: Callable[[str], None]
    runner: Runner
    run_listener: Listener
    stop_reason: str | None
    current: asyncio.Task[RunReport] | None
    control: RunControl | None

    async def _import(self, dropped: Dropped) -> FileOutcome | None:
        config = self.config
        path, name = dropped.path, printable(dropped.path.name)
        # Hashed through a descriptor checked to be the file listed: the content whose import
        # starts, compared again before the file moves.
        digest = listed_sha256(dropped)
        if digest is None:  # changed (or gone) since it was listed
            if os.path.lexists(path):
                self.notice(f"{name}: changed since it was listed; it is taken once it settles.")
            return None
        # Checked again for each file, before it is sent: it must be movable once imported.
        folders = _Folders(config.inbox)
        try:
            unreadable = UNREADABLE_SUFFIXES.get(path.suffix.lower())
            if unreadable is not None:
                reason = f"{path.name} is {unreadable}"
                return self._reject(
                    dropped, FileOutcome(path.name, "rejected", ""), reason, folders
                )
            return await self._import_into(dropped, digest, folders)
        finally:
            folders.close()

    def _ledger(self) -> Path | None:
        """The ledger every file shares (None: each file its own, in its folder)."""
        config = self.config
        if config.each_file_new:
            return None
        return config.out_root / f".ledger-{config.template.mapping_path.stem}.sqlite"

    async def _import_into(
        self, dropped: Dropped, digest: str, folders: _Folders
    ) -> FileOutcome | None:
        config = self.config
        path, name = dropped.path, printable(dropped.path.name)
        mapping = str(config.template.mapping_path.absolute())
        folder = ""
        with FolderIndex.editing(config.out_root) as index:
            earlier = index.processed_as(digest, mapping)
            if earlier is None:
                # Saved before sending: a watcher killed during the import finds it again.
                folder = index.folder_for(path, sha256=digest, mapping=mapping)
        if earlier is not None:
            return self._identical(dropped, earlier, folders)
        check_reports_folder(config.out_root, folder)
        out_dir = config.out_root / folder
        ledger = self._ledger()
        if _folder_in_use(out_dir, ledger):
            self.notice(
                f"{name}: {printable(str(out_dir))} or its ledger is in use by another "
                "rd-importer run; leaving it for now."
            )
            return None
        file_config = dataclasses.replace(
            config.template,
            input_path=ListedFile(path, dropped.identity),  # read only if still this file
            out_dir=out_dir,
            ledger_path=ledger,
            changed=config.template.changed or "keep",  # an edited row stays as sent
        )
        started = time.monotonic()
        task = await self._run(file_config)
        base = FileOutcome(path.name, "aborted", folder, duration_s=time.monotonic() - started)
        if task.cancelled():
            base.reason = self.stop_reason or "interrupted"
            return base
        exc = task.exception()
        if exc is not None:
            return self._failed_run(dropped, base, exc, folders)
        report = task.result()
        base = dataclasses.replace(
            base,
            rows=report.rows,
            sent=report.succeeded,
            failed=report.failed,
            skipped=report.skipped,
            duration_s=report.duration_s,
            warnings=[warning_text(note) for note in report.warnings],
        )
        if report.aborted:
            if _interrupted(report):
                self.stop_reason = self.stop_reason or report.aborted
            base.reason = report.aborted
            return base
        return self._finish(dropped, digest, base, folders)

    def _finish(
        self, dropped: Dropped, digest: str, base: FileOutcome, folders: _Folders
    ) -> FileOutcome:
        """Move an imported file into processed/, only if it is still the content imported: a
        file that changed meanwhile (a stalled upload resumed) stays, and the next pass imports
        the rows it gained (the ledger knows the others)."""
        path = dropped.path
        if listed_sha256(dropped) != digest:
            base.outcome, base.change = "changed", _how_changed(dropped.identity.size, path)
            return base
        base.outcome = "processed"
        try:
            moved = _move_into(folders.inbox, path.name, folders.processed)
        except OSError as move_error:
            # The rows are sent: say so, and leave the file; the next run resumes its ledger,
            # finds every row sent, and moves it.
            base.not_moved = move_error.strerror or type(move_error).__name__
            return base
        base.moved_to = f"{PROCESSED}/{moved}"
        if _sha256_in(folders.processed, moved) != digest:
            # A writer that still held the file open appended after the check: back it goes.
            base.outcome = "changed"
            base.change = "it changed as it was moved into processed/ (still being written?)"
            with contextlib.suppress(OSError):
                back = _move_into(folders.processed, moved, folders.inbox)
                base.moved_to = None
                base.change += f"; it is back in the inbox as {back}"
            return base
        return base

    def _identical(
        self, dropped: Dropped, earlier: dict[str, Any], folders: _Folders
    ) -> FileOutcome:
        """A byte-identical copy of a file processed with this mapping: moved into processed/
        without a run (every row of it was sent, or failed, already)."""
        first = Path(str(earlier.get("moved_to") or earlier.get("file") or "")).name
        when = str(earlier.get("finished") or earlier.get("since") or "an earlier pass")
        base = FileOutcome(dropped.path.name, "identical", "")
        base.same_as = f"{first} imported at {when}"
        try:
            moved = _move_into(folders.inbox, dropped.path.name, folders.processed)
        except OSError as move_error:
            base.not_moved = move_error.strerror or type(move_error).__name__
            return base
        base.moved_to = f"{PROCESSED}/{moved}"
        return base

    def _reject(
        self, dropped: Dropped, base: FileOutcome, reason: str, folders: _Folders
    ) -> FileOutcome:
        """Move the file into rejected/, beside <name>.reason.txt."""
        base.outcome, base.reason = "rejected", reason
        try:
            moved = _move_into(folders.inbox, dropped.path.name, folders.rejected)
        except OSError as move_error:
            base.not_moved = move_error.strerror or type(move_error).__name__
            return base
        base.moved_to = f"{REJECTED}/{moved}"
        try:
            _write_replacing(folders.rejected, f"{moved}.reason.txt", f"{reason}\n".encode())
        except OSError as write_error:  # the log line gives the reason instead
            base.reason_unwritten = write_error.strerror or type(write_error).__name__
        return base

    def _failed_run(
        self, dropped: Dropped, base: FileOutcome, exc: BaseException, folders: _Folders
    ) -> FileOutcome:
        if isinstance(exc, ChangedFile):  # swapped or rewritten after it was listed: not read
            base.outcome, base.reason = "changed", str(exc)
            return base
        if isinstance(exc, SettingsError):
            raise exc  # the watcher's problem, not the file's: stop, keep the files
        if isinstance(exc, InputError):
            check_settings(self.config.template)  # the mapping broke meanwhile: stop, keep files
            reason = printable(" ".join(str(exc).split()))  # one line, whatever it held
            return self._reject(dropped, base, reason, folders)
        if isinstance(exc, ImporterError):
            base.reason = str(exc)
            return base
        if isinstance(exc, OSError):
            base.reason = f"{exc.filename or 'a file'}: {exc.strerror or exc}"
            return base
        if isinstance(exc, Exception):
            return _unexpected(dropped, base.folder, exc, base)
        raise exc

    async def _run(self, file_config: ImportConfig) -> asyncio.Task[RunReport]:
        """Run the import as a task the signal handler can reach (``current``, ``control``)."""
        self.control = RunControl()
        task = asyncio.create_task(self.runner(file_config, self.run_listener, self.control))
        self.current = task
        try:
            await asyncio.wait({task})
        finally:
            self.current = self.control = None
            if not task.done():  # the watcher itself was cancelled
                task.cancel()
        return task


def _unexpected(
    dropped: Dropped, folder: str, exc: Exception, base: FileOutcome | None = None
) -> FileOutcome:
    """A bug met while importing one file: logged by its type and place only (its text may hold
    a cell or the key); the file stays in the inbox, its ledger resumable, and the watcher goes
    on with the other files (this one is not tried again until the watcher restarts)."""
    last = traceback.extract_tb(exc.__traceback__)[-1:]
    where = f" in {Path(last[0].filename).name} line {last[0].lineno}" if last else ""
    outcome = base or FileOutcome(dropped.path.name, "error", folder)
    outcome.outcome, outcome.reason = "error", f"{type(exc).__name__}{where}"
    return outcome
