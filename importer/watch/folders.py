"""The folders the watcher writes in, checked before anything is written (real folders of
the watcher's user, no link followed), and the moves between them."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import itertools
import os
import stat
from pathlib import Path

from importer.errors import InputError, printable

PROCESSED, REJECTED = "processed", "rejected"
_DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


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


# -- moving, and the pipeline's locks ------------------------------------------------------------


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
