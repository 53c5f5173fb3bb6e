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

The inbox is shared with whoever uploads, so nothing there is trusted. The watcher follows no
link in the folders it writes: ``processed/``, ``rejected/`` and the reports folders must be real
folders of the watcher's user (checked at start and before each file: else ``InputError``, before
anything is touched), and it writes in them through descriptors of the folders it checked, never
replacing an entry but by a rename (``O_NOFOLLOW``, ``O_EXCL``). A file is read only if it is still
the file listed (``loader.ListedFile``). A file that cannot be read is rejected; an unexpected error
in one file is logged and the others go on. File names are escaped (``printable``) wherever shown.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import fcntl
import hashlib
import itertools
import json
import os
import signal
import stat
import time
import traceback
import urllib.parse
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from importer.errors import ExitStatus, ImporterError, InputError, printable
from importer.html_report import _duration, _e, _head, _n
from importer.loader import ChangedFile, FileIdentity, ListedFile
from importer.mapping import load_mapping
from importer.pipeline import ImportConfig, Listener, RunReport, run_import_async, utc_now
from importer.report import Note
from importer.sending import RunControl

# Every format ``import`` reads (the loader reads a text file of any other name as a CSV).
SPREADSHEET_SUFFIXES = frozenset(
    {".csv", ".tsv", ".txt", ".xlsx", ".xlsm", ".xlsb", ".xls", ".ods"}
)
# Spreadsheets the importer cannot read: rejected at once, with what to do instead, rather than
# left in the inbox unexplained.
UNREADABLE_SUFFIXES = {
    ".numbers": (
        "an Apple Numbers spreadsheet, which rd-importer cannot read: in Numbers choose File > "
        "Export To > CSV (or Excel) and drop the exported file into the inbox"
    ),
    ".gsheet": (
        "a Google Sheets shortcut (the data stays in Google Drive): in Google Sheets choose "
        "File > Download > CSV (or Microsoft Excel) and drop the downloaded file into the inbox"
    ),
}
LOCK_NAME = ".rd-importer.lock"
INDEX_NAME = "watch-index.json"
LOG_NAME = "watch.log"
PAGE_NAME = "index.html"
PROCESSED, REJECTED = "processed", "rejected"
LOCK_POLL = 0.25  # seconds between looks at a busy inbox lock (--wait-lock)

Runner = Callable[[ImportConfig, Listener, RunControl], Coroutine[Any, Any, RunReport]]
Outcome = Literal["processed", "identical", "rejected", "aborted", "changed", "error"]
_DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


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
class FileOutcome:
    """What became of one file. ``reason`` is why it was rejected, aborted or changed, or the
    unexpected error that stopped it; ``not_moved`` why it stayed in the inbox all the same."""

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
    not_moved: str | None = None
    reason_unwritten: str | None = None  # why <name>.reason.txt could not be written
    change: str | None = None  # how the file changed while it was imported ("it grew ...")
    same_as: str | None = None  # identical: "leads.csv imported at <when>"
    warnings: list[str] = field(default_factory=list)  # the run's, one line each

    @property
    def exit_status(self) -> ExitStatus:
        if self.outcome in ("aborted", "error"):
            return ExitStatus.ABORTED
        if self.outcome not in ("processed", "identical") or self.failed or self.not_moved:
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
    identity: FileIdentity

    @property
    def mtime_ns(self) -> int:
        return self.identity.mtime_ns


def is_spreadsheet_name(name: str) -> bool:
    """A name the watcher imports. Partial downloads (``.part``, ``.tmp``, ``.crdownload``) end
    in another suffix; hidden files and Excel's ``~$`` owner files are someone's work in
    progress. Spreadsheets the importer cannot read (``UNREADABLE_SUFFIXES``) are listed too, to
    be rejected with what to do."""
    if name.startswith((".", "~$")):
        return False
    suffix = Path(name).suffix.lower()
    return suffix in SPREADSHEET_SUFFIXES or suffix in UNREADABLE_SUFFIXES


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
        dropped = Dropped(Path(entry.path), FileIdentity.of(st))
        (ready if now - st.st_mtime_ns / 1e9 >= settle else waiting).append(dropped)
    ready.sort(key=lambda d: (d.mtime_ns, d.path.name))
    waiting.sort(key=lambda d: d.path.name)
    return ready, waiting


def _looks_the_same(dropped: Dropped) -> bool:
    """Is the name still the file listed: not a link, the same inode, size and times?"""
    try:
        st = os.stat(dropped.path, follow_symlinks=False)
    except OSError:
        return False
    return stat.S_ISREG(st.st_mode) and FileIdentity.of(st) == dropped.identity


def listed_sha256(dropped: Dropped) -> str | None:
    """The sha256 of the file listed, read through a descriptor checked to be that file (not a
    link, the same inode, size and times: what the run's own descriptor checks), or None when
    the name holds another file now, or none."""
    try:
        fd = os.open(dropped.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or FileIdentity.of(st) != dropped.identity:
            return None
        return _sha256(fd)
    finally:
        os.close(fd)


def _sha256_in(folder: int, name: str) -> str | None:
    """The sha256 of ``name`` in ``folder`` (no link followed), or None."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(name, flags, dir_fd=folder)
    except OSError:
        return None
    try:
        return _sha256(fd) if stat.S_ISREG(os.fstat(fd).st_mode) else None
    finally:
        os.close(fd)


def _sha256(fd: int) -> str:
    digest = hashlib.sha256()
    offset = 0
    while chunk := os.pread(fd, 1 << 20, offset):
        digest.update(chunk)
        offset += len(chunk)
    return digest.hexdigest()


def _how_changed(before: int, path: Path) -> str:
    """'it grew from 120 to 180 bytes', for the log: what a partial upload looks like."""
    try:
        st = os.stat(path, follow_symlinks=False)
    except OSError:
        return "it was removed"
    if not stat.S_ISREG(st.st_mode):
        return "it was replaced by something that is not a file"
    if st.st_size > before:
        return f"it grew from {before} to {st.st_size} bytes"
    if st.st_size < before:
        return f"it shrank from {before} to {st.st_size} bytes"
    return "it was rewritten or replaced"


# -- the folders the watcher writes in -----------------------------------------------------------


def open_folder(parent: int, name: str, where: str, *, create: bool = True) -> int:
    """A descriptor of the folder ``name`` in the folder ``parent`` (created 0700 when missing),
    once it is checked to be a real folder, not a link, owned by the watcher's user: someone
    else's folder, or a link to one, could send what the watcher writes anywhere. The watcher
    then writes there through this descriptor, so the folder checked is the folder written."""
    created = False
    if create:
        try:
            os.mkdir(name, 0o700, dir_fd=parent)
            created = True
        except FileExistsError:
            pass
        except OSError as exc:
            raise InputError(f"{where}: cannot be created ({exc.strerror})") from None
    try:
        fd = os.open(name, _DIRECTORY | os.O_NOFOLLOW, dir_fd=parent)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            is_link = stat.S_ISLNK(os.lstat(name, dir_fd=parent).st_mode)
            what = "a symbolic link" if is_link else "a file"
            raise InputError(
                f"{where} is {what}, not a folder: the watcher writes there and follows no "
                "link; remove it, and the watcher creates the folder"
            ) from None
        raise InputError(f"{where}: cannot be opened ({exc.strerror})") from None
    owner, mine = os.fstat(fd).st_uid, os.geteuid()
    if owner != mine:
        os.close(fd)
        raise InputError(
            f"{where} belongs to another user (uid {owner}), not to the watcher's (uid {mine}): "
            "the watcher writes there unattended; give it to the watcher's user, or remove it"
        )
    if created:
        os.fchmod(fd, 0o700)  # mkdir's mode is filtered by the umask
    return fd


def _check_writable(folder: int, where: str, why: str) -> None:
    """Create and remove a file in ``folder``: what a read-only mount, an immutable folder or
    missing permissions refuse, as moving a file there would, after its rows were sent."""
    probe = f".rd-importer-probe-{os.getpid()}"
    with contextlib.suppress(OSError):
        os.unlink(probe, dir_fd=folder)  # left by a killed watcher that had this pid
    try:
        os.close(os.open(probe, _CREATE, 0o600, dir_fd=folder))
        os.unlink(probe, dir_fd=folder)
    except OSError as exc:
        raise InputError(f"{where}: cannot be written ({exc.strerror}); {why}") from None


class _Folders:
    """The inbox and its ``processed/`` and ``rejected/``, opened, checked and found writable:
    at start, and again before each file, so that a file is sent only if it can be moved."""

    def __init__(self, inbox: Path):
        self._fds: list[int] = []
        shown = printable(str(inbox))
        try:
            self.inbox = self._keep(_open_inbox(inbox))
            _check_writable(self.inbox, shown, "the watcher moves each file it imports out of it")
            self.processed = self._keep(open_folder(self.inbox, PROCESSED, f"{shown}/{PROCESSED}"))
            self.rejected = self._keep(open_folder(self.inbox, REJECTED, f"{shown}/{REJECTED}"))
            for fd, name in ((self.processed, PROCESSED), (self.rejected, REJECTED)):
                _check_writable(fd, f"{shown}/{name}", f"the watcher moves files into {name}/")
        except BaseException:
            self.close()
            raise

    def _keep(self, fd: int) -> int:
        self._fds.append(fd)
        return fd

    def close(self) -> None:
        fds, self._fds = self._fds, []
        for fd in fds:
            os.close(fd)


def _open_inbox(inbox: Path) -> int:
    try:
        return os.open(inbox, _DIRECTORY)
    except FileNotFoundError:
        raise InputError(
            f"{printable(str(inbox))}: no such folder; create it or name the inbox"
        ) from None
    except OSError as exc:
        raise InputError(
            f"{printable(str(inbox))}: the inbox cannot be opened ({exc.strerror})"
        ) from None


def _open_out_root(out_root: Path) -> int:
    """``out_root``, created 0700 (its parents too) if missing; it must belong to the watcher's
    user, since the reports and the ledgers in it are written unattended. The path itself is the
    operator's: a link there is followed; inside it, none is."""
    shown = printable(str(out_root))
    try:
        out_root.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):
            out_root.mkdir(mode=0o700)
            out_root.chmod(0o700)  # mkdir's mode is filtered by the umask
        fd = os.open(out_root, _DIRECTORY)
    except OSError as exc:
        raise InputError(f"--out {shown}: cannot be created ({exc.strerror})") from None
    owner, mine = os.fstat(fd).st_uid, os.geteuid()
    if owner != mine:
        os.close(fd)
        raise InputError(
            f"--out {shown} belongs to another user (uid {owner}), not to the watcher's (uid "
            f"{mine}): the reports hold personal data and are written unattended; give the "
            "watcher a folder of its own"
        )
    return fd


def _create_private(folder: int, name: str) -> int:
    """A new file ``name`` in ``folder``, 0600, written through the descriptor returned. A stale
    file by that name (the watcher's own temporary, or anything planted) is removed first:
    unlink never follows a link, and O_EXCL refuses one that appears meanwhile."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(name, dir_fd=folder)
    fd = os.open(name, _CREATE, 0o600, dir_fd=folder)
    os.fchmod(fd, 0o600)
    return fd


def _write_replacing(folder: int, name: str, data: bytes) -> None:
    """Write ``name`` in ``folder`` whole: a temporary file, then a rename, which replaces the
    entry (a link planted under that name included) and never writes through it."""
    tmp = f".{name}.{os.getpid()}.tmp"
    fd = _create_private(folder, tmp)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, name, src_dir_fd=folder, dst_dir_fd=folder)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp, dir_fd=folder)
        raise


# -- the inbox lock ------------------------------------------------------------------------------


class InboxLock:
    """``INBOX/.rd-importer.lock``, flock'd by the watcher working in the inbox and holding its
    pid. The kernel drops a flock when its holder dies, so a killed watcher never leaves a stale
    lock behind; the pid in the file is only there to be named in messages."""

    def __init__(self, inbox: Path):
        self.path = inbox / LOCK_NAME
        self._fd: int | None = None

    def try_acquire(self) -> bool:
        shown = printable(str(self.path))
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise self._not_ours(shown) from None
            raise InputError(
                f"{shown}: cannot create the watcher's lock ({exc.strerror}); the watcher "
                "needs write access to the inbox to move files"
            ) from None
        st = os.fstat(fd)
        # The lock is truncated and written: never through a hard link to another file.
        if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1 or st.st_uid != os.geteuid():
            os.close(fd)
            raise self._not_ours(shown)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return True

    @staticmethod
    def _not_ours(shown: str) -> InputError:
        return InputError(
            f"{shown} is not the watcher's lock (a link, or a file another user made): "
            "remove it, and the watcher creates its own"
        )

    def holder(self) -> str:
        """'pid 1234' (or 'another process' when the file does not say)."""
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
            try:
                pid = os.read(fd, 32).decode("ascii").strip()
            finally:
                os.close(fd)
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
        lock = out_root / f".{INDEX_NAME}.lock"
        fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
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
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            with os.fdopen(fd, "r", encoding="utf-8", errors="surrogateescape") as handle:
                data = json.load(handle)
            entries = data["files"]
            if not isinstance(entries, list):
                raise TypeError
        except FileNotFoundError:
            return cls(out_root, [])
        except (OSError, ValueError, KeyError, TypeError):
            raise InputError(
                f"{printable(str(path))}: cannot be read; it says which reports folder each "
                "inbox file resumes into: restore it, or move it aside to start every file in a "
                "new folder"
            ) from None
        return cls(out_root, entries)

    def folder_for(self, file: Path, *, sha256: str = "", mapping: str = "") -> str:
        """The file's folder under ``out_root`` (created 0700), the one it had if it has one.
        ``sha256`` is the content whose import starts, ``mapping`` the mapping it is read with:
        a later drop identical to it is recognised once it is processed."""
        key = str(file.absolute())
        facts = {"sha256": sha256, "mapping": mapping} if sha256 else {}
        for entry in self.entries:
            if (
                entry.get("file") == key
                and entry.get("state") in ("importing", REJECTED)
                and entry.get("folder")
            ):
                entry.update(state="importing", **facts)
                return str(entry["folder"])
        taken = {str(e.get("folder")) for e in self.entries}
        stem = file.stem
        # lexists: a link (even one to nowhere) takes the name too; it is never used.
        folder = next(
            name
            for n in itertools.count(1)
            if (name := stem if n == 1 else f"{stem}-{n}") not in taken
            and not os.path.lexists(self.out_root / name)
        )
        (self.out_root / folder).mkdir(mode=0o700)  # on disk at once: nothing else takes it
        (self.out_root / folder).chmod(0o700)  # mkdir's mode is filtered by the umask
        self.entries.append(
            {"file": key, "folder": folder, "state": "importing", "since": utc_now(), **facts}
        )
        return folder

    def finish(self, file: Path, state: str, moved_to: str | None, **facts: Any) -> None:
        """The file's import ended: ``state`` is processed or rejected (``moved_to`` None when it
        stays in the inbox: still importing), ``facts`` its counts and outcome, for index.html."""
        key = str(file.absolute())
        for entry in self.entries:
            if entry.get("file") == key and entry.get("state") == "importing":
                entry.update(facts, finished=utc_now())
                if moved_to is not None:
                    entry.update(state=state, moved_to=moved_to)

    def add(self, file: Path, state: str, moved_to: str | None, **facts: Any) -> None:
        """A file that had no run (identical to one processed, or a format never read)."""
        now = utc_now()
        entry = {"file": str(file.absolute()), "folder": None, "state": state, "since": now}
        self.entries.append({**entry, "moved_to": moved_to, "finished": now, **facts})

    def processed_as(self, sha256: str, mapping: str) -> dict[str, Any] | None:
        """The file processed earlier with this content and this mapping, if any."""
        for entry in self.entries:
            if (
                entry.get("state") == PROCESSED
                and entry.get("sha256") == sha256
                and entry.get("mapping") == mapping
            ):
                return entry
        return None

    def save(self) -> None:
        text = json.dumps({"version": 1, "files": self.entries}, indent=1, ensure_ascii=False)
        # A file name that is not UTF-8 is kept byte for byte, as load reads it back.
        data = (text + "\n").encode("utf-8", "surrogateescape")
        folder = os.open(self.out_root, _DIRECTORY)
        try:
            _write_replacing(folder, INDEX_NAME, data)
        finally:
            os.close(folder)

    def check_folders(self) -> None:
        """The folders runs resume into are real folders of the watcher's user."""
        for entry in self.entries:
            if entry.get("state") in ("importing", REJECTED) and entry.get("folder"):
                folder = str(entry.get("folder"))
                if os.path.lexists(self.out_root / folder):
                    check_reports_folder(self.out_root, folder)


def check_reports_folder(out_root: Path, folder: str) -> None:
    """InputError unless ``out_root/folder`` is a real folder (not a link) of the watcher's
    user: the run writes its ledger and reports there."""
    path = out_root / folder
    shown = printable(str(path))
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return  # removed meanwhile: the run creates it again, 0700
    except OSError as exc:
        raise InputError(f"{shown}: cannot be opened ({exc.strerror})") from None
    if not stat.S_ISDIR(st.st_mode):
        what = "a symbolic link" if stat.S_ISLNK(st.st_mode) else "a file"
        raise InputError(
            f"{shown} is {what}, not a folder: the watcher writes reports there and follows no "
            "link; remove it"
        )
    if st.st_uid != os.geteuid():
        raise InputError(
            f"{shown} belongs to another user (uid {st.st_uid}), not to the watcher's (uid "
            f"{os.geteuid()}): the reports hold personal data; give it to the watcher's user, "
            "or remove it"
        )


# -- moving and logging --------------------------------------------------------------------------


def move_aside(path: Path, folder: Path) -> Path:
    """Move ``path`` into ``folder`` (created 0700 if missing, checked as ``open_folder`` does)
    without replacing a file there: ``leads.csv``, then ``leads-2.csv``, ``leads-3.csv``."""
    shown = printable(str(folder))
    source = os.open(path.parent, _DIRECTORY)
    try:
        parent = os.open(folder.parent, _DIRECTORY)
        try:
            target = open_folder(parent, folder.name, shown)
        finally:
            os.close(parent)
        try:
            return folder / _move_into(source, path.name, target)
        except OSError as exc:
            raise InputError(
                f"{printable(str(path))}: cannot be moved into {shown}/ ({exc.strerror}); the "
                "watcher needs write access to the inbox"
            ) from None
        finally:
            os.close(target)
    finally:
        os.close(source)


def _move_into(source: int, name: str, folder: int) -> str:
    """Move ``name`` from the folder ``source`` into ``folder``; the name it took there. A hard
    link and an unlink never replace a file (nor follow a link); where the file system has no
    hard links, a look then a rename."""
    stem, suffix = os.path.splitext(name)
    for n in itertools.count(1):
        target = name if n == 1 else f"{stem}-{n}{suffix}"
        try:
            os.link(name, target, src_dir_fd=source, dst_dir_fd=folder, follow_symlinks=False)
        except FileExistsError:
            continue
        except OSError:
            try:
                os.lstat(target, dir_fd=folder)
                continue
            except FileNotFoundError:
                pass
            os.rename(name, target, src_dir_fd=source, dst_dir_fd=folder)
            return target
        os.unlink(name, dir_fd=source)
        return target
    raise AssertionError("unreachable")


def log_line(outcome: FileOutcome, when: datetime | None = None) -> str:
    """One line an operator reads in the morning: file, outcome, counts, where things are. Names
    and reasons are escaped: whatever a file is called, the line stays one line of plain text."""
    stamp = (when or datetime.now().astimezone()).isoformat(timespec="seconds")
    what: str = outcome.outcome
    if outcome.outcome == "aborted":
        what = f"aborted ({outcome.reason})"
    elif outcome.outcome == "changed" and outcome.reason:
        what = f"changed before it was read ({_why_changed(outcome.reason)})"
    elif outcome.outcome == "changed":
        what = f"changed while being imported ({outcome.change or 'it changed'})"
    elif outcome.outcome == "identical":
        what = f"identical to {outcome.same_as}: nothing sent"
    elif outcome.outcome == "error":
        what = f"unexpected error ({outcome.reason}); please report it"
    elif outcome.outcome == "rejected" and (outcome.not_moved or outcome.reason_unwritten):
        what = f"rejected ({outcome.reason})"
    counts = (
        f"{outcome.rows} rows, {outcome.sent} sent, {outcome.failed} failed, "
        f"{outcome.skipped} skipped, {outcome.duration_s:.1f} s"
    )
    if outcome.not_moved:
        into = PROCESSED if outcome.outcome == "processed" else REJECTED
        where = (
            f"cannot be moved into {into}/ ({outcome.not_moved}): it stays in the inbox, and the "
            f"next run resumes from {outcome.folder}/ (sending no row twice) and moves it"
        )
    elif outcome.outcome == "processed":
        where = f"reports in {outcome.folder}/, file in {outcome.moved_to}"
    elif outcome.outcome == "identical":
        where = f"file in {outcome.moved_to}"
    elif outcome.outcome == "changed" and not outcome.reason and outcome.moved_to:
        where = (
            f"it was in {outcome.moved_to} and cannot be moved back: move it back into the "
            f"inbox, and the next run imports the rows it gained from {outcome.folder}/"
        )
    elif outcome.outcome == "changed" and not outcome.reason:
        where = (
            f"left in the inbox; the next pass imports the rows it gained, resuming from "
            f"{outcome.folder}/"
        )
    elif outcome.outcome == "rejected" and outcome.reason_unwritten:
        where = (
            f"file in {outcome.moved_to}; its reason file cannot be written "
            f"({outcome.reason_unwritten})"
        )
    elif outcome.outcome == "rejected":
        where = f"reason in {outcome.moved_to}.reason.txt"
    elif outcome.folder:
        where = f"stays in the inbox, resumes from {outcome.folder}/"
    else:
        where = "stays in the inbox"
    return printable(f"{stamp} {printable(outcome.name)}: {what}, {counts}; {where}")


def log_lines(outcome: FileOutcome, when: datetime | None = None) -> list[str]:
    """The file's line, then one line for each of its run's warnings."""
    return [log_line(outcome, when)] + [printable(f"    warning: {w}") for w in outcome.warnings]


def warning_text(note: Note) -> str:
    """A run's warning as a log line says it: the message, and which rows when it names some."""
    if not note.rows:
        return note.message
    if note.count == 1:
        return f"{note.message} (row {note.rows[0]})"
    rows = ", ".join(str(row) for row in note.rows)
    more = ", ..." if note.count > len(note.rows) else ""
    return f"{note.message} ({note.count} rows: {rows}{more})"


def _why_changed(reason: str | None) -> str:
    # The loader says "<path> changed after it was listed (it is ...): it was not read".
    if reason and "(" in reason and ")" in reason:
        return reason[reason.index("(") + 1 : reason.rindex(")")]
    return reason or "it changed"


def append_log(out_root: Path, *lines: str) -> None:
    """Append ``lines`` in one write: a watcher of another inbox sharing out_root never puts its
    line between a file's line and its warnings."""
    fd = _open_log(out_root)
    try:
        os.write(fd, "".join(printable(line) + "\n" for line in lines).encode("utf-8"))
    finally:
        os.close(fd)


# -- index.html ----------------------------------------------------------------------------------

_PAGE_CSS = """<style>
td.num,th.num{text-align:right}td.outcome{white-space:nowrap}
.processed,.identical{color:var(--ok)}.rejected,.error{color:var(--bad)}
.importing{color:var(--warn)}
</style>
"""
_STATE_WORDS = {
    PROCESSED: "processed",
    REJECTED: "rejected",
    "identical": "identical to an earlier file: nothing sent",
    "importing": "in the inbox, to be resumed",
}


def write_index_page(out_root: Path, index: FolderIndex) -> None:
    """``out_root/index.html``: every file the watcher took, newest first, with its counts and a
    link to its report. Self-contained (report.html's style, no script), 0600, replaced whole."""
    folder = os.open(out_root, _DIRECTORY)
    try:
        _write_replacing(folder, PAGE_NAME, render_index_page(out_root, index).encode("utf-8"))
    finally:
        os.close(folder)


def render_index_page(out_root: Path, index: FolderIndex) -> str:
    # Newest first; in the order they were added when the clock says the same second.
    order = sorted(
        enumerate(index.entries),
        key=lambda ie: (str(ie[1].get("finished") or ie[1].get("since") or ""), ie[0]),
        reverse=True,
    )
    entries = [entry for _, entry in order]
    rows = "".join(_index_row(out_root, entry) for entry in entries)
    table = (
        "<div class=scroll><table><thead><tr><th>File</th><th>When</th><th>Outcome</th>"
        "<th class=num>Rows</th><th class=num>Sent</th><th class=num>Failed</th>"
        "<th class=num>Skipped</th><th>Report</th></tr></thead>"
        f"<tbody>{rows}</tbody></table></div>\n"
        if entries
        else "<p>No file imported yet.</p>\n"
    )
    head = _head(f"rd-importer watch: {out_root.name}").replace("</head>", _PAGE_CSS + "</head>")
    return (
        f"{head}<p class=kicker>rd-importer watch</p>\n<h1>Files imported into "
        f"<code>{_e(out_root)}</code></h1>\n<p>{len(entries)} file"
        f"{'' if len(entries) == 1 else 's'}, newest first. Each file's own report is in its "
        "folder; watch.log has a line for each file.</p>\n"
        f"{table}<footer>This page holds file names only; the reports it links to hold personal "
        "data.</footer>\n</main>\n</body>\n</html>\n"
    )


def _index_row(out_root: Path, entry: dict[str, Any]) -> str:
    state = str(entry.get("state") or "")
    moved = entry.get("moved_to")
    name = Path(str(moved)).name if moved else Path(str(entry.get("file") or "")).name
    outcome = str(entry.get("outcome") or state)
    words = _STATE_WORDS.get(state, state)
    if outcome not in (state, PROCESSED):
        words = f"{words} ({outcome})"
    when = str(entry.get("finished") or entry.get("since") or "")
    folder = entry.get("folder")
    report = "<span class=muted>none</span>"
    if folder and os.path.isfile(out_root / str(folder) / "report.html"):
        href = urllib.parse.quote(f"{folder}/report.html")
        report = f'<a href="{_e(href)}">{_e(folder)}/report.html</a>'
    elif folder:
        report = f"<code>{_e(folder)}/</code>"
    counts = "".join(
        f"<td class=num>{_n(entry.get(key))}</td>" for key in ("rows", "sent", "failed", "skipped")
    )
    took = (
        f" <span class=muted>({_duration(float(entry['duration_s']))})</span>"
        if entry.get("duration_s")
        else ""
    )
    return (
        f"<tr><td>{_e(printable(name))}</td><td class=num>{_e(when)}</td>"
        f'<td class="outcome {_e(state)}">{_e(words)}{took}</td>{counts}<td>{report}</td></tr>'
    )


def _open_log(out_root: Path) -> int:
    path = out_root / LOG_NAME
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        return os.open(path, flags, 0o600)
    except OSError as exc:
        shown = printable(str(path))
        if exc.errno == errno.ELOOP:
            raise InputError(
                f"{shown} is a symbolic link: the watcher appends to its log and follows no "
                "link; remove it"
            ) from None
        raise InputError(f"{shown}: cannot be written ({exc.strerror})") from None


def check_settings(template: ImportConfig) -> None:
    """Raise InputError when the mapping or a setting is unusable: a problem of the watcher's,
    which must stop it, never reject the files."""
    load_mapping(template.mapping_path)  # the settings checked themselves when built


def _folder_in_use(out_dir: Path, ledger: Path | None = None) -> bool:
    """Is an ``import`` run (the pipeline's own locks) using this reports folder, or the shared
    ``ledger`` (locked by ``.<ledger name>.lock`` beside it), right now?"""
    locks = [out_dir / ".lock"]
    if ledger is not None:
        locks.append(ledger.with_name(f".{ledger.name}.lock"))
    return any(_locked(lock) for lock in locks)


def _locked(lock: Path) -> bool:
    try:
        fd = os.open(lock, os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC)
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
