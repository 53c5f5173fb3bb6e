"""Import every spreadsheet dropped into a folder: the engine behind ``rd-importer watch``.

    run_watch(config, listener, echo=...) -> WatchResult

A *pass* takes the inbox lock, lists the spreadsheets that have settled (not changed for
``settle`` seconds), oldest first, and imports them one at a time, each into its own reports
folder under ``out_root``. Then each file moves:

    imported to the end (rows sent or failed)  -> INBOX/processed/
    cannot be read at all (InputError)         -> INBOX/rejected/, beside <name>.reason.txt
    aborted (key refused, interrupted)         -> stays in INBOX; the next pass resumes its ledger

``once`` makes one pass; otherwise passes repeat every ``interval`` seconds until SIGTERM or
Ctrl-C. One line per file goes to ``echo`` and to ``out_root/watch.log``; it names the file and
counts rows, never a cell. What else the watcher sees (a file still being written, a busy lock)
goes to the listener's ``info``, so a quiet cron job mails only when a file was imported.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import fcntl
import itertools
import json
import os
import signal
import time
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from importer.errors import ExitStatus, ImporterError, InputError
from importer.mapping import load_mapping
from importer.pipeline import ImportConfig, Listener, RunReport, run_import_async, utc_now
from importer.report import open_private, private_dir
from importer.sending import RunControl

SPREADSHEET_SUFFIXES = frozenset({".csv", ".xlsx", ".xls", ".ods"})
LOCK_NAME = ".rd-importer.lock"
INDEX_NAME = "watch-index.json"
LOG_NAME = "watch.log"
PROCESSED, REJECTED = "processed", "rejected"
LOCK_POLL = 0.25  # seconds between looks at a busy inbox lock (--wait-lock)

Runner = Callable[[ImportConfig, Listener, RunControl], Coroutine[Any, Any, RunReport]]
Outcome = Literal["processed", "rejected", "aborted", "changed"]


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
    handle_signals: bool = False  # SIGINT/SIGTERM stop the watch gracefully (the CLI sets it)
    clock: Callable[[], float] = time.time  # wall clock, compared with the files' mtimes


@dataclass
class FileOutcome:
    """What became of one file. ``reason`` is why it was rejected or aborted."""

    name: str
    outcome: Outcome
    folder: str
    rows: int = 0
    sent: int = 0
    failed: int = 0
    skipped: int = 0
    duration_s: float = 0.0
    moved_to: str | None = None  # relative to the inbox: "processed/leads.csv"
    reason: str | None = None

    @property
    def exit_status(self) -> ExitStatus:
        if self.outcome == "aborted":
            return ExitStatus.ABORTED
        if self.outcome != "processed" or self.failed:
            return ExitStatus.FAILED_ROWS
        return ExitStatus.OK


@dataclass
class WatchResult:
    files: list[FileOutcome] = field(default_factory=list)
    stopped: str | None = None  # "interrupted (SIGTERM)" when a signal ended the watch
    exit_status: ExitStatus = ExitStatus.OK


# -- which files ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Dropped:
    """A spreadsheet in the inbox as it was when listed."""

    path: Path
    size: int
    mtime_ns: int


def is_spreadsheet_name(name: str) -> bool:
    """A name the watcher imports. Partial downloads (``.part``, ``.tmp``, ``.crdownload``) end
    in another suffix; hidden files and Excel's ``~$`` owner files are someone's work in
    progress."""
    if name.startswith((".", "~$")):
        return False
    return Path(name).suffix.lower() in SPREADSHEET_SUFFIXES


def scan_inbox(inbox: Path, *, settle: float, now: float) -> tuple[list[Dropped], list[Dropped]]:
    """The spreadsheets ready to import, oldest first, and those changed within ``settle``
    seconds (still being written). Symbolic links are ignored: a link dropped into the inbox
    must not make the watcher send a file from elsewhere."""
    try:
        entries = list(os.scandir(inbox))
    except OSError as exc:
        raise InputError(f"{inbox}: the inbox cannot be listed ({exc.strerror})") from None
    ready: list[Dropped] = []
    waiting: list[Dropped] = []
    for entry in entries:
        if not is_spreadsheet_name(entry.name):
            continue
        try:
            if not entry.is_file(follow_symlinks=False):
                continue
            st = entry.stat(follow_symlinks=False)
        except OSError:  # removed while we looked
            continue
        dropped = Dropped(Path(entry.path), st.st_size, st.st_mtime_ns)
        (ready if now - st.st_mtime_ns / 1e9 >= settle else waiting).append(dropped)
    ready.sort(key=lambda d: (d.mtime_ns, d.path.name))
    waiting.sort(key=lambda d: d.path.name)
    return ready, waiting


def _looks_the_same(dropped: Dropped) -> bool:
    try:
        st = os.stat(dropped.path, follow_symlinks=False)
    except OSError:
        return False
    return (st.st_size, st.st_mtime_ns) == (dropped.size, dropped.mtime_ns)


# -- the inbox lock ------------------------------------------------------------------------------


class InboxLock:
    """``INBOX/.rd-importer.lock``, flock'd by the watcher working in the inbox and holding its
    pid. The kernel drops a flock when its holder dies, so a killed watcher never leaves a stale
    lock behind; the pid in the file is only there to be named in messages."""

    def __init__(self, inbox: Path):
        self.path = inbox / LOCK_NAME
        self._fd: int | None = None

    def try_acquire(self) -> bool:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise InputError(
                f"{self.path}: cannot create the watcher's lock ({exc.strerror}); the watcher "
                "needs write access to the inbox to move files"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return True

    def holder(self) -> str:
        """'pid 1234' (or 'another process' when the file does not say)."""
        try:
            pid = self.path.read_text(encoding="ascii").strip()
        except (OSError, UnicodeDecodeError):
            pid = ""
        return f"pid {pid}" if pid.isdigit() else "another process"

    def release(self) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            os.close(self._fd)  # closing drops the flock
            self._fd = None


# -- which reports folder ------------------------------------------------------------------------


class FolderIndex:
    """``OUTROOT/watch-index.json``: which inbox file owns which reports folder.

    A file keeps its folder while it stays in the inbox (an aborted import resumes its ledger)
    and after it was rejected (a fixed copy dropped under the same name resumes that ledger too,
    so no row is sent twice). Once a file is processed its name is free: the next file by that
    name is another file (tomorrow's drop) and gets a folder of its own: ``leads-2``, ``leads-3``.
    Files are known by their path, so watchers of two inboxes can share one ``OUTROOT``.
    """

    def __init__(self, out_root: Path, entries: list[dict[str, Any]]):
        self.out_root = out_root
        self.entries = entries

    @classmethod
    @contextlib.contextmanager
    def editing(cls, out_root: Path) -> Iterator[FolderIndex]:
        """Load, change and save the index under an flock, held for milliseconds: a watcher of
        another inbox may share ``out_root`` and must never be handed the same folder."""
        fd = os.open(out_root / f".{INDEX_NAME}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            index = cls.load(out_root)
            yield index
            index.save()
        finally:
            os.close(fd)

    @classmethod
    def load(cls, out_root: Path) -> FolderIndex:
        path = out_root / INDEX_NAME
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            entries = data["files"]
            if not isinstance(entries, list):
                raise TypeError
        except FileNotFoundError:
            return cls(out_root, [])
        except (OSError, ValueError, KeyError, TypeError):
            raise InputError(
                f"{path}: cannot be read; it says which reports folder each inbox file resumes "
                "into: restore it, or move it aside to start every file in a new folder"
            ) from None
        return cls(out_root, entries)

    def folder_for(self, file: Path) -> str:
        """The file's folder under ``out_root`` (created 0700), the one it had if it has one."""
        key = str(file.absolute())
        for entry in self.entries:
            if entry.get("file") == key and entry.get("state") in ("importing", REJECTED):
                entry["state"] = "importing"
                return str(entry["folder"])
        taken = {str(e.get("folder")) for e in self.entries}
        stem = file.stem
        folder = next(
            name
            for n in itertools.count(1)
            if (name := stem if n == 1 else f"{stem}-{n}") not in taken
            and not (self.out_root / name).exists()
        )
        private_dir(self.out_root / folder)  # on disk at once: nothing else takes this name
        self.entries.append(
            {"file": key, "folder": folder, "state": "importing", "since": utc_now()}
        )
        return folder

    def finish(self, file: Path, state: str, moved_to: str) -> None:
        key = str(file.absolute())
        for entry in self.entries:
            if entry.get("file") == key and entry.get("state") == "importing":
                entry.update(state=state, moved_to=moved_to, finished=utc_now())

    def save(self) -> None:
        path = self.out_root / INDEX_NAME
        tmp = path.with_name(f".{path.name}.tmp")
        with open_private(tmp, "w", encoding="utf-8") as handle:
            json.dump({"version": 1, "files": self.entries}, handle, indent=1, ensure_ascii=False)
            handle.write("\n")
        os.replace(tmp, path)


# -- moving and logging --------------------------------------------------------------------------


def move_aside(path: Path, folder: Path) -> Path:
    """Move ``path`` into ``folder`` without replacing a file there: ``leads.csv``, then
    ``leads-2.csv``, ``leads-3.csv``. A hard link and an unlink never overwrite; where the file
    system has no hard links, a look then a rename."""
    try:
        return _move_aside(path, folder)
    except OSError as exc:
        raise InputError(
            f"{path}: cannot be moved into {folder}/ ({exc.strerror}); the watcher needs write "
            "access to the inbox"
        ) from None


def _move_aside(path: Path, folder: Path) -> Path:
    private_dir(folder)
    for n in itertools.count(1):
        target = folder / (path.name if n == 1 else f"{path.stem}-{n}{path.suffix}")
        try:
            os.link(path, target, follow_symlinks=False)
        except FileExistsError:
            continue
        except OSError:
            if os.path.lexists(target):
                continue
            os.rename(path, target)
            return target
        os.unlink(path)
        return target
    raise AssertionError("unreachable")


def log_line(outcome: FileOutcome, when: datetime | None = None) -> str:
    """One line an operator reads in the morning: file, outcome, counts, where things are."""
    stamp = (when or datetime.now().astimezone()).isoformat(timespec="seconds")
    what: str = outcome.outcome
    if outcome.outcome == "aborted":
        what = f"aborted ({outcome.reason})"
    elif outcome.outcome == "changed":
        what = "changed while being imported"
    counts = (
        f"{outcome.rows} rows, {outcome.sent} sent, {outcome.failed} failed, "
        f"{outcome.skipped} skipped, {outcome.duration_s:.1f} s"
    )
    if outcome.outcome == "processed":
        where = f"reports in {outcome.folder}/, file in {outcome.moved_to}"
    elif outcome.outcome == "rejected":
        where = f"reason in {outcome.moved_to}.reason.txt"
    else:
        where = f"stays in the inbox, resumes from {outcome.folder}/"
    return f"{stamp} {outcome.name}: {what}, {counts}; {where}"


def append_log(out_root: Path, line: str) -> None:
    fd = os.open(out_root / LOG_NAME, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, (line + "\n").encode("utf-8"))
    finally:
        os.close(fd)


def check_settings(template: ImportConfig) -> None:
    """Raise InputError when the mapping or a setting is unusable: a problem of the watcher's,
    which must stop it, never reject the files."""
    load_mapping(template.mapping_path)  # the settings checked themselves when built


def _folder_in_use(out_dir: Path) -> bool:
    """Is an ``import`` run (the pipeline's own lock) using this reports folder right now?"""
    try:
        fd = os.open(out_dir / ".lock", os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def _interrupted(report: RunReport) -> bool:
    return report.interrupted


# -- the watcher ---------------------------------------------------------------------------------


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
        self.run_listener = listener
        self.result = WatchResult()
        self.stop_reason: str | None = None
        self.wake = asyncio.Event()
        self.current: asyncio.Task[RunReport] | None = None
        self.control: RunControl | None = None  # the current run's
        self.told: set[tuple[str, int]] = set()  # waiting files already announced
        self.told_lock = False

    async def run(self) -> WatchResult:
        config = self.config
        check_settings(config.template)
        if not config.inbox.is_dir():
            raise InputError(f"{config.inbox}: no such folder; create it or name the inbox")
        try:
            private_dir(config.out_root)
        except OSError as exc:
            raise InputError(
                f"--out {config.out_root}: cannot be created ({exc.strerror})"
            ) from None
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
                self.notice(f"Nothing to import in {config.inbox}.")
            for dropped in ready:
                if self.stop_reason:
                    break
                outcome = await self._import(dropped)
                if outcome is None:
                    continue
                self.result.files.append(outcome)
                line = log_line(outcome)
                append_log(config.out_root, line)
                self.echo(line)
                if outcome.outcome == "aborted":
                    return True
            return False
        finally:
            lock.release()

    async def _take(self, lock: InboxLock) -> bool:
        if lock.try_acquire():
            self.told_lock = False
            return True
        inbox = self.config.inbox
        if not self.config.wait_lock:
            if not self.told_lock:
                later = "skipping it" if self.config.once else "looking again later"
                self.notice(
                    f"{inbox} is being imported by another watcher ({lock.holder()}); {later}."
                )
                self.told_lock = not self.config.once
            return False
        self.notice(f"{inbox} is being imported by another watcher ({lock.holder()}); waiting.")
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
            f"{dropped.path.name}: changed less than {self.config.settle:g} s ago, still being "
            f"written; {later}."
        )

    async def _import(self, dropped: Dropped) -> FileOutcome | None:
        config = self.config
        path, name = dropped.path, dropped.path.name
        if not _looks_the_same(dropped):  # changed (or gone) since it was listed
            if path.exists():
                self.notice(f"{name}: changed since it was listed; it is taken once it settles.")
            return None
        # Saved before sending: a watcher killed during the import finds this folder again.
        with FolderIndex.editing(config.out_root) as index:
            folder = index.folder_for(path)
        out_dir = config.out_root / folder
        if _folder_in_use(out_dir):
            self.notice(
                f"{name}: {out_dir} is in use by another rd-importer run; leaving it for now."
            )
            return None
        file_config = dataclasses.replace(config.template, input_path=path, out_dir=out_dir)
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
        base = FileOutcome(name, "aborted", folder, duration_s=time.monotonic() - started)
        if task.cancelled():
            base.reason = self.stop_reason or "interrupted"
            return base
        exc = task.exception()
        if exc is not None:
            return self._failed_run(dropped, base, exc)
        report = task.result()
        base = dataclasses.replace(
            base,
            rows=report.rows,
            sent=report.succeeded,
            failed=report.failed,
            skipped=report.skipped,
            duration_s=report.duration_s,
        )
        if report.aborted:
            if _interrupted(report):
                self.stop_reason = self.stop_reason or report.aborted
            base.reason = report.aborted
            return base
        if not _looks_the_same(dropped):
            # Rewritten during the import: leave it; the next pass resumes its ledger, sending
            # only the rows that are new.
            base.outcome = "changed"
            return base
        moved = move_aside(path, config.inbox / PROCESSED)
        base.outcome, base.moved_to = "processed", f"{PROCESSED}/{moved.name}"
        with FolderIndex.editing(config.out_root) as index:
            index.finish(path, PROCESSED, base.moved_to)
        return base

    def _failed_run(self, dropped: Dropped, base: FileOutcome, exc: BaseException) -> FileOutcome:
        if isinstance(exc, InputError):
            check_settings(self.config.template)  # the mapping broke meanwhile: stop, keep files
            moved = move_aside(dropped.path, self.config.inbox / REJECTED)
            reason = " ".join(str(exc).split())  # one line, whatever the message held
            with open_private(moved.with_name(moved.name + ".reason.txt"), "w") as handle:
                handle.write(reason + "\n")
            base.outcome, base.moved_to, base.reason = (
                "rejected",
                f"{REJECTED}/{moved.name}",
                reason,
            )
            with FolderIndex.editing(self.config.out_root) as index:
                index.finish(dropped.path, REJECTED, base.moved_to)
            return base
        if isinstance(exc, ImporterError):
            base.reason = str(exc)
            return base
        if isinstance(exc, OSError):
            base.reason = f"{exc.filename or 'a file'}: {exc.strerror or exc}"
            return base
        raise exc


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
