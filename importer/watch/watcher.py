"""The watcher: passes over the inbox, each file imported in turn, and the signals that stop
it."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field

from importer.errors import ExitStatus, InputError, printable
from importer.pipeline import Listener, RunReport, run_import_async
from importer.sending import RunControl, stopping_signals
from importer.watch.files import (
    Runner,
    WatchConfig,
    _FileImports,
    _RunListener,
    _unexpected,
    check_settings,
)
from importer.watch.folders import (
    _Folders,
    _open_out_root,
)
from importer.watch.inbox import (
    LOCK_POLL,
    Dropped,
    InboxLock,
    scan_inbox,
)
from importer.watch.record import (
    FileOutcome,
    FolderIndex,
    _open_log,
    append_log,
    log_lines,
    record_outcome,
)


@dataclass
class WatchResult:
    files: list[FileOutcome] = field(default_factory=list)
    stopped: str | None = None  # "interrupted (SIGTERM)" when a signal ended the watch
    exit_status: ExitStatus = ExitStatus.OK


# -- the watcher ----------------------------------------------------------------------------------


class _Watcher(_FileImports):
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

    def _signals(self) -> contextlib.AbstractContextManager[None]:
        """The watcher owns SIGINT/SIGTERM for its whole life and passes a stop on to the run
        in progress (``_on_signal``)."""
        return stopping_signals(self._on_signal if self.config.handle_signals else None)

    def _on_signal(self, name: str) -> None:
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
                record_outcome(config.out_root, dropped.path, outcome, self.notice)
                lines = log_lines(outcome)
                append_log(config.out_root, *lines)
                self.echo(lines[0])  # the run's warnings were said as it ran
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
