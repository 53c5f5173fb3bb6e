"""Which files in the inbox: the spreadsheets listed, what each one is (its identity and its
sha256), and the lock one watcher holds on the inbox."""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from importer.errors import InputError, printable
from importer.loader import FileIdentity

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
LOCK_POLL = 0.25  # seconds between looks at a busy inbox lock (--wait-lock)


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
