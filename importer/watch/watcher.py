"""The watcher: passes over the inbox, each file imported in turn, and the signals that stop
it."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import signal
import time
import traceback
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from importer.errors import ExitStatus, ImporterError, InputError, printable
from importer.loader import ChangedFile, ListedFile
from importer.mapping import load_mapping
from importer.pipeline import ImportConfig, Listener, RunReport, run_import_async
from importer.sending import RunControl
from importer.watch.folders import (
    PROCESSED,
    REJECTED,
    _folder_in_use,
    _Folders,
    _move_into,
    _open_out_root,
    _write_replacing,
    check_reports_folder,
)
from importer.watch.inbox import (
    LOCK_POLL,
    UNREADABLE_SUFFIXES,
    Dropped,
    InboxLock,
    _how_changed,
    _sha256_in,
    listed_sha256,
    scan_inbox,
)
from importer.watch.record import (
    PAGE_NAME,
    FileOutcome,
    FolderIndex,
    _open_log,
    append_log,
    log_lines,
    warning_text,
    write_index_page,
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


@dataclass
class WatchResult:
    files: list[FileOutcome] = field(default_factory=list)
    stopped: str | None = None  # "interrupted (SIGTERM)" when a signal ended the watch
    exit_status: ExitStatus = ExitStatus.OK


def check_settings(template: ImportConfig) -> None:
    """Raise InputError when the mapping or a setting is unusable: a problem of the watcher's,
    which must stop it, never reject the files."""
    load_mapping(template.mapping_path)  # the settings checked themselves when built


def _interrupted(report: RunReport) -> bool:
    return report.interrupted


# -- the watcher ---------------------------------------------------------------------------------


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


class _Watcher:
    def __init__(
        self,
        config: WatchConfig,
        listener: Listener,
        echo: Callable[[str], None],
        runner: Runner,
    ):
        self.config = config
        self.echo = echo  # the per-file lines
        self.notice = listener.info  # what the watcher sees; silent when --quiet
        self.runner = runner
        self.run_listener = _RunListener(listener)
        self.result = WatchResult()
        self.stop_reason: str | None = None
        self.wake = asyncio.Event()
        self.current: asyncio.Task[RunReport] | None = None
        self.control: RunControl | None = None  # the current run's
        self.told: set[tuple[str, int]] = set()  # waiting files already announced
        self.told_lock = False
        self.broke: set[tuple[str, int]] = set()  # files an unexpected error stopped: not again

    async def run(self) -> WatchResult:
        config = self.config
        check_settings(config.template)
        self._check_folders()
        with self._signals():
            while True:
                aborted = await self._pass()
                if config.once or self.stop_reason:
                    break
                wait = config.interval
                if aborted:
                    self.notice(f"Trying again in {wait:g} s.")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), wait)
                if self._stopped():
                    break
        self.result.stopped = self.stop_reason
        self.result.exit_status = self._exit_status()
        return self.result

    def _check_folders(self) -> None:
        """Every folder the watcher writes in is usable, and the log can be written: else
        InputError, before any file is touched."""
        config = self.config
        _Folders(config.inbox).close()
        os.close(_open_out_root(config.out_root))
        os.close(_open_log(config.out_root))
        FolderIndex.load(config.out_root).check_folders()

    def _stopped(self) -> bool:
        """Whether a signal asked to stop: read anew after an await, where it may have come."""
        return self.stop_reason is not None

    def _exit_status(self) -> ExitStatus:
        files = self.result.files
        if self.config.once:
            if self.stop_reason:
                return ExitStatus.ABORTED
            return max((f.exit_status for f in files), default=ExitStatus.OK)
        # Watching: stopped by a signal. 3 only when that stop left a file half imported.
        if files and files[-1].outcome == "aborted" and self._stopped_it(files[-1]):
            return ExitStatus.ABORTED
        return ExitStatus.OK

    def _stopped_it(self, outcome: FileOutcome) -> bool:
        return self.stop_reason is not None and outcome.reason == self.stop_reason

    # -- signals --------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _signals(self) -> Iterator[None]:
        """The watcher owns SIGINT/SIGTERM for its whole life and passes a stop on to the run
        in progress (``_on_signal``)."""
        if not self.config.handle_signals:
            yield
            return
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._on_signal, sig)
        try:
            yield
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)

    def _on_signal(self, sig: int) -> None:
        name = "Ctrl-C" if sig == signal.SIGINT else "SIGTERM"
        self.stop_reason = self.stop_reason or f"interrupted ({name})"
        self.wake.set()
        control = self.control
        if control is None or self.current is None:
            return
        if control.sending:  # requests may be in flight: the run stops gracefully
            control.interrupt(name)
        elif not control.reporting:
            # Reading, or about to send: nothing is in flight, so cancelling loses nothing.
            # Once it is writing its reports it ends by itself.
            self.current.cancel()

    # -- one pass -------------------------------------------------------------------------------

    async def _pass(self) -> bool:
        """Import what is ready. True when a run was aborted."""
        config = self.config
        lock = InboxLock(config.inbox)
        if not await self._take(lock):
            return False
        try:
            ready, waiting = scan_inbox(config.inbox, settle=config.settle, now=config.clock())
            self.told &= {(d.path.name, d.mtime_ns) for d in waiting}
            for dropped in waiting:
                self._tell_waiting(dropped)
            if not ready and not waiting and config.once:
                self.notice(f"Nothing to import in {printable(str(config.inbox))}.")
            for dropped in ready:
                if self.stop_reason:
                    break
                key = (dropped.path.name, dropped.mtime_ns)
                if key in self.broke:
                    continue
                try:
                    outcome = await self._import(dropped)
                except InputError:
                    raise  # the watcher's own settings or folders: stop, touch no other file
                except Exception as exc:
                    outcome = _unexpected(dropped, "", exc)
                if outcome is None:
                    continue
                if outcome.outcome == "error":
                    self.broke.add(key)
                self.result.files.append(outcome)
                self._record(dropped, outcome)
                lines = log_lines(outcome)
                append_log(config.out_root, *lines)
                self.echo(lines[0])  # the run's warnings were said as it ran
                if outcome.outcome == "aborted":
                    return True
            return False
        finally:
            lock.release()

    def _record(self, dropped: Dropped, outcome: FileOutcome) -> None:
        """Keep the file's outcome and counts in the index, and show them in index.html."""
        out_root = self.config.out_root
        facts = {
            "outcome": outcome.outcome,
            "rows": outcome.rows,
            "sent": outcome.sent,
            "failed": outcome.failed,
            "skipped": outcome.skipped,
            "duration_s": round(outcome.duration_s, 1),
        }
        moved = outcome.moved_to if outcome.outcome in (PROCESSED, REJECTED) else None
        state = REJECTED if outcome.outcome == REJECTED else PROCESSED
        with FolderIndex.editing(out_root) as index:
            if outcome.folder:
                index.finish(dropped.path, state, moved, **facts)
            elif outcome.moved_to:  # no run: identical to a file processed, or never readable
                state = "identical" if outcome.outcome == "identical" else state
                index.add(dropped.path, state, outcome.moved_to, **facts)
            try:
                write_index_page(out_root, index)
            except OSError as exc:  # the log and the reports are what count
                self.notice(f"{PAGE_NAME} in {printable(str(out_root))}: not written ({exc})")

    async def _take(self, lock: InboxLock) -> bool:
        if lock.try_acquire():
            self.told_lock = False
            return True
        inbox = self.config.inbox
        if not self.config.wait_lock:
            if not self.told_lock:
                later = "skipping it" if self.config.once else "looking again later"
                self.notice(
                    f"{printable(str(inbox))} is being imported by another watcher "
                    f"({lock.holder()}); {later}."
                )
                self.told_lock = not self.config.once
            return False
        self.notice(
            f"{printable(str(inbox))} is being imported by another watcher ({lock.holder()}); "
            "waiting."
        )
        while not self.stop_reason:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), LOCK_POLL)
            if lock.try_acquire():
                return True
        return False

    def _tell_waiting(self, dropped: Dropped) -> None:
        key = (dropped.path.name, dropped.mtime_ns)
        if key in self.told:
            return
        self.told.add(key)
        later = "the next run takes it" if self.config.once else "it is taken once it settles"
        self.notice(
            f"{printable(dropped.path.name)}: changed less than {self.config.settle:g} s ago, "
            f"still being written; {later}."
        )

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
        self.control = RunControl()
        task = asyncio.create_task(self.runner(file_config, self.run_listener, self.control))
        self.current = task
        try:
            await asyncio.wait({task})
        finally:
            self.current = self.control = None
            if not task.done():  # the watcher itself was cancelled
                task.cancel()
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


def _ignore(_: str) -> None: ...


async def watch_async(
    config: WatchConfig,
    listener: Listener | None = None,
    *,
    echo: Callable[[str], None] = _ignore,
    runner: Runner = run_import_async,
) -> WatchResult:
    """Watch ``config.inbox`` (one pass with ``once``). Raises InputError, before touching any
    file, when the mapping, a setting, the inbox or the output folder is unusable."""
    return await _Watcher(config, listener or Listener(), echo, runner).run()


def run_watch(
    config: WatchConfig,
    listener: Listener | None = None,
    *,
    echo: Callable[[str], None] = _ignore,
    runner: Runner = run_import_async,
) -> WatchResult:
    return asyncio.run(watch_async(config, listener, echo=echo, runner=runner))
