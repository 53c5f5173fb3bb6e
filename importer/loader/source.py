"""The input file, opened once: every read of it goes through one descriptor; a file the
watcher listed is read only if it is still the file listed."""

from __future__ import annotations

import codecs
import errno
import io
import os
import stat
from dataclasses import dataclass
from pathlib import Path, PosixPath
from typing import IO, Final

from importer import workbook
from importer.errors import InputError, printable

_HEAD_BYTES = 64 * 1024
_BINARY_SIGNATURES = (
    (b"%PDF-", "a PDF document"),
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"Rar!", "a RAR archive"),
    (b"7z\xbc\xaf", "a 7-Zip archive"),
)


@dataclass(frozen=True, slots=True)
class FileIdentity:
    """Which file a name held when it was listed: its inode, size and times."""

    device: int
    inode: int
    size: int
    mtime_ns: int
    ctime_ns: int

    @classmethod
    def of(cls, st: os.stat_result) -> FileIdentity:
        return cls(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


class ListedFile(PosixPath):
    """A file listed in a folder others can write to (the watcher's inbox), with ``listed``,
    what it was then. ``open_table`` opens it without following a symbolic link and reads it only
    if it is still that file: a name swapped for a link or another file is never read."""

    listed: FileIdentity | None = None  # paths derived from this one (its parent) carry none

    def __new__(cls, path: Path | str, listed: FileIdentity) -> ListedFile:
        self = super().__new__(cls, path)
        self.listed = listed
        return self


class ChangedFile(InputError):
    """A ``ListedFile`` is not the file that was listed any more; it was not read."""


class _Source:
    """The input file, opened once.

    Every read of it (the first bytes, the encoding scan, the delimiter sample, the rows, the
    workbook reader's process) goes through this one descriptor, each at its own offset: all of
    them read the file opened first, whatever happens to its name meanwhile.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.shown = shown = printable(str(path))
        listed = getattr(path, "listed", None)
        # O_NONBLOCK: opening a FIFO would wait for a writer. Only regular files are read.
        flags = os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | (os.O_NOFOLLOW if listed else 0)
        try:
            fd = os.open(path, flags)
        except FileNotFoundError:
            if listed:
                raise ChangedFile(
                    f"{shown} was removed after it was listed: it was not read"
                ) from None
            raise InputError(f"{shown}: no such file; check the path") from None
        except OSError as exc:
            if listed and exc.errno == errno.ELOOP:
                raise ChangedFile(
                    f"{shown} changed after it was listed (it is a symbolic link now): "
                    "it was not read"
                ) from None
            raise InputError(f"{shown} cannot be read ({exc.strerror}): check the file") from None
        self.fd = fd
        try:
            st = os.fstat(fd)
            if stat.S_ISDIR(st.st_mode):
                raise InputError(f"{shown} is a folder, not a spreadsheet file: give the file")
            if not stat.S_ISREG(st.st_mode):
                raise InputError(
                    f"{shown} is not a regular file (a pipe or a device?): save the data to a "
                    "file and give that file"
                )
            if listed and FileIdentity.of(st) != listed:
                raise ChangedFile(
                    f"{shown} changed after it was listed (it is another file now): it was not read"
                )
        except BaseException:
            self.close()
            raise

    def head(self) -> bytes:
        """The first bytes, or InputError when there are none."""
        try:
            head = os.pread(self.fd, _HEAD_BYTES, 0)
        except OSError as exc:
            raise InputError(
                f"{self.shown} cannot be read ({exc.strerror}): check the file"
            ) from None
        if not head or head in (codecs.BOM_UTF8, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE):
            raise InputError(f"{self.shown} is empty: export the spreadsheet again")
        return head

    def reader(self) -> io.BufferedReader:
        """The file from its start, as a binary file object of its own."""
        return io.BufferedReader(_PositionalReader(self.fd), buffer_size=_READ_BUFFER)

    def text(self, encoding: str, errors: str) -> io.TextIOWrapper:
        return io.TextIOWrapper(self.reader(), encoding=encoding, errors=errors, newline="")

    def closing(self, reader: IO[str] | workbook.Sheet) -> _Closing:
        """A ``close`` for the table: the reader, then the file."""
        return _Closing(reader, self)

    def close(self) -> None:
        fd, self.fd = self.fd, -1
        if fd >= 0:
            os.close(fd)


_READ_BUFFER: Final = 64 * 1024


class _Closing:
    def __init__(self, reader: IO[str] | workbook.Sheet, source: _Source) -> None:
        self.reader = reader
        self.source = source

    def __call__(self) -> None:
        try:
            self.reader.close()
        finally:
            self.source.close()


class _PositionalReader(io.RawIOBase):
    """Reads a descriptor at an offset of its own (``pread``), so two readers of one open file
    never move each other's place; closing it leaves the descriptor open."""

    def __init__(self, fd: int) -> None:
        super().__init__()
        self._fd = fd
        self._offset = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        size = os.preadv(self._fd, [buffer], self._offset)
        self._offset += size
        return size

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_CUR:
            offset += self._offset
        elif whence == io.SEEK_END:
            offset += os.fstat(self._fd).st_size
        if offset < 0:
            raise ValueError("negative seek position")
        self._offset = offset
        return offset

    def tell(self) -> int:
        return self._offset


def _what_text_is(head: bytes) -> str:
    lowered = head[:1024].lstrip().lower()
    if lowered.startswith((b"<!doctype html", b"<html")) or b"<table" in lowered:
        return "it is an HTML page"
    if lowered.startswith(b"<?xml"):
        return "it is an XML file"
    for signature, what in _BINARY_SIGNATURES:
        if head.startswith(signature):
            return f"it is {what}"
    if b"\0" in head:
        return "it is a binary file"
    return "it looks like text"
