"""Workbooks (XLSX, XLSM, XLSB, XLS, ODS): python-calamine, run in a child process.

calamine loads a whole sheet into one rectangle of cells. Two stray cells at A1 and XFD1048576
ask it for 512 GiB, and Rust aborts the process when an allocation fails: no ``except`` can
catch that, nor a damaged file that crashes the parser. So a ``Sheet`` is loaded in a child
process held to ``CHILD_MEMORY`` (less in a smaller machine or container); the child turns
cells into text and sends rows down a pipe in batches, and the parent builds them into rows
meanwhile, so the two halves of the work run on two cores. When the child dies, the parent says
why in one line.

``container_kind`` looks at the file first, in the parent: an encrypted workbook, a zip bomb or
a zip that holds no workbook are refused from the zip's directory alone.

Cells are bounded in the child, before they go up the pipe: a cell over ``MAX_CELL_CHARS`` fails
its row (and is not kept), and a sheet whose text outgrows its file by far (one long shared
string used by thousands of cells) is refused, as a zip bomb is.

This package's ``__init__`` is the parent's side; ``child`` is the process that reads the sheet
(``sheetxml`` and ``numformat`` show its numbers as formatted, and find hidden rows and formulas
with no saved value); ``limits`` holds what both sides share.
"""

from __future__ import annotations

import contextlib
import marshal
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any, Final

from importer.errors import AbortError, ImporterError, InputError
from importer.workbook.child import cell_text, cgroup_memory_limit, child_memory, serve
from importer.workbook.limits import (
    _ANY_REF,
    _ENCRYPTED_MARK,
    _FD_FOLDER,
    _LENGTH,
    _OLE_MAGIC,
    _PIPE_BYTES,
    _SCAN_CHUNK,
    _SUFFIXES,
    CHILD_MEMORY,
    MAX_CELL_CHARS,
    MAX_SHEET_CELLS,
    MAX_TEXT_PER_BYTE,
    MAX_UNZIPPED_BYTES,
    MAX_ZIP_RATIO,
    MIN_SHEET_TEXT,
    _column_number,
    _password_protected,
    _too_many_cells_message,
    column_letter,
)

__all__ = [
    "CHILD_MEMORY",
    "MAX_CELL_CHARS",
    "MAX_SHEET_CELLS",
    "MAX_TEXT_PER_BYTE",
    "MAX_UNZIPPED_BYTES",
    "MAX_ZIP_RATIO",
    "MIN_SHEET_TEXT",
    "BrokenRecord",
    "Opener",
    "Sheet",
    "cell_text",
    "cgroup_memory_limit",
    "child_memory",
    "column_letter",
    "container_kind",
    "serve",
]

# --- the parent ----------------------------------------------------------------------------------


Opener = Callable[[], IO[bytes]]


def container_kind(path: Path | str, head: bytes, open_file: Opener | None = None) -> str:
    """Which workbook ``path`` is (XLSX, XLSM, XLSB, XLS, ODS), or an ``InputError`` why not.
    ``open_file`` opens the file to read (the loader's own descriptor); ``path`` names it."""
    opener = open_file or _opener_of(path)
    if head.startswith(_OLE_MAGIC):
        if _holds(opener, _ENCRYPTED_MARK):
            raise _password_protected(path)
        return "XLS"
    return _check_zip(path, opener)


def _opener_of(path: Path | str) -> Opener:
    def opener() -> IO[bytes]:
        return open(path, "rb")  # the caller closes it

    return opener


class BrokenRecord(list[str]):
    """The cells that could be read of a record that could not, and why: one failed row."""

    def __init__(self, cells: Iterable[str], error: str) -> None:
        super().__init__(cells)
        self.error = error


class Sheet:
    """One sheet being read by a child process: its name, and one pass over its rows as text."""

    def __init__(
        self,
        path: Path | str,
        kind: str,
        wanted: str | None,
        on_start: Callable[[Callable[[], None]], None] | None = None,
        *,
        fd: int | None = None,
    ) -> None:
        """Start the child; ``on_start`` receives ``kill``, for whoever may have to cancel.
        With ``fd`` (the loader's descriptor of the file) the child reads that open file, not
        whatever ``path`` names by then; ``path`` only names it in messages."""
        self.path = path
        self.kind = kind
        self._killed = False
        self._fd = fd
        self._link_folder: str | None = None
        self._errors = tempfile.TemporaryFile()  # noqa: SIM115 (closed by close())
        env = {k: v for k, v in os.environ.items() if k != "RDSTATION_API_KEY"}
        env["RUST_BACKTRACE"] = "0"
        root = str(Path(__file__).resolve().parent.parent)
        try:
            target = str(path) if fd is None else self._link_to(fd)
            args = [root, str(path), kind, wanted or "", str(wanted is not None), target]
            self._child: subprocess.Popen[bytes] | None = subprocess.Popen(
                [sys.executable, "-P", "-c", _CHILD, *args],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=self._errors,
                env=env,
                pass_fds=() if fd is None else (fd,),
            )
        except OSError as exc:
            self._errors.close()
            self._remove_link()
            raise InputError(
                f"{path} cannot be read: the process that reads workbooks did not start "
                f"({exc.strerror}); retry, or save the data as CSV"
            ) from None
        assert self._child.stdout is not None
        self._pipe: IO[bytes] = self._child.stdout
        if on_start is not None:
            on_start(self.kill)
        with contextlib.suppress(AttributeError, OSError):
            import fcntl

            fcntl.fcntl(self._pipe.fileno(), fcntl.F_SETPIPE_SZ, _PIPE_BYTES)
        try:
            first = self._receive()
            if first[0] == "error":
                raise InputError(first[1])
            _, self.name, self.first_column, hidden, unsaved, hidden_columns = first
            # Rows hidden in Excel (by a filter or by hand), by number; formulas with no saved
            # value, as (row, column), in row order. XLSX and XLSM only: see ``sheetxml``.
            self.hidden_rows: frozenset[int] = frozenset(hidden)
            self.unsaved_formulas: list[tuple[int, int]] = unsaved
            self.hidden_columns: list[int] = hidden_columns  # 0-based, of the whole sheet
        except BaseException:
            self.close()
            raise

    def records(self) -> Iterator[list[str]]:
        """The sheet's rows from its first, as lists of text; an empty row is an empty list."""
        try:
            while True:
                message = self._receive(reading=True)
                if message[0] == "rows":
                    if len(message) > 2 and message[2]:
                        yield from _with_broken(message[1], message[2], self.first_column)
                    else:
                        yield from message[1]
                elif message[0] == "error":
                    raise InputError(message[1])
                else:
                    return
        finally:
            self.close()

    def _link_to(self, fd: int) -> str:
        # calamine picks its parser by the file name's suffix and, given a name without one
        # (/dev/fd/N), reports any damage as "Cannot detect file format". So the child opens a
        # link named like the kind found, in a folder of ours, to its own copy of descriptor N.
        descriptor = f"{_FD_FOLDER}/{fd}"
        try:
            self._link_folder = tempfile.mkdtemp(prefix="rd-importer-")
            link = os.path.join(self._link_folder, "workbook" + _SUFFIXES.get(self.kind, ""))
            os.symlink(descriptor, link)
        except OSError:  # no temporary folder: the file is read all the same, its damage unnamed
            self._remove_link()
            return descriptor
        return link

    def _remove_link(self) -> None:
        folder, self._link_folder = self._link_folder, None
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)

    def kill(self) -> None:
        """Stop the child now, from any thread: whoever waits on it gets an error at once."""
        child = self._child
        if child is not None:
            self._killed = True
            with contextlib.suppress(ProcessLookupError):
                child.kill()

    def close(self) -> None:
        """Stop the child if it is still reading, and release the pipe."""
        child, self._child = self._child, None
        if child is None:
            return
        if child.poll() is None:
            child.kill()
        child.wait()
        self._pipe.close()
        self._errors.close()
        self._remove_link()

    def _opener(self) -> Opener:
        fd = self._fd
        if fd is None:
            return _opener_of(self.path)

        def reopen() -> IO[bytes]:
            return os.fdopen(os.dup(fd), "rb")  # the caller closes it

        return reopen

    def _receive(self, *, reading: bool = False) -> tuple[Any, ...]:
        header = self._pipe.read(_LENGTH.size)
        if len(header) == _LENGTH.size:
            (size,) = _LENGTH.unpack(header)
            body = self._pipe.read(size)
            if len(body) == size:
                message: tuple[Any, ...] = marshal.loads(body)
                return message
        raise self._died(reading)

    def _died(self, reading: bool) -> ImporterError:
        child = self._child
        assert child is not None
        code = child.wait()
        if self._killed:
            return InputError(f"reading {self.path} was stopped")
        if reading and code < 0:
            # Killed from outside once the sheet was loaded (an operator, the OOM killer): the
            # file is fine, and the rows read so far may have been sent; a rerun resumes.
            return AbortError(
                f"the process reading {self.path} was killed ({_signal_name(-code)}) while "
                "reading its rows"
            )
        self._errors.seek(0)
        said = self._errors.read(4096).decode("utf-8", "replace").strip().splitlines()
        if code == -signal.SIGABRT and self.kind in ("XLSX", "XLSM"):
            # Rust aborts when an allocation fails: find out whether far cells asked for it.
            too_big = _too_many_cells(self.path, self._opener())
            if too_big:
                return InputError(too_big)
        if code < 0:
            how = f"it stopped on {_signal_name(-code)}"
        else:
            how = f"it exited with status {code}"
        if said:
            how += f": {said[-1][:200]}"
        # Mostly memory: a sheet spanning far cells, or one long text repeated in many cells
        # (calamine copies a shared string into each cell that uses it).
        return InputError(
            f"{self.path} cannot be read as {self.kind} ({how}): open it in Excel, delete any "
            "cells far from the data and any long text repeated in many cells, save it again, "
            "and retry, or save the data as CSV"
        )


def _with_broken(
    batch: list[list[str]], broken: list[tuple[int, int]], first_column: int
) -> Iterator[list[str]]:
    """The batch's rows, those with a cell over ``MAX_CELL_CHARS`` (given as row and column
    indices; the child sent the cell empty) as ``BrokenRecord``s saying which cell."""
    columns = dict(broken)
    for index, cells in enumerate(batch):
        column = columns.get(index)
        if column is None:
            yield cells
        else:
            yield BrokenRecord(
                cells,
                f"the cell in column {column_letter(first_column + column)} of this row is "
                f"longer than {MAX_CELL_CHARS:,} characters (more than RD Station accepts): "
                "shorten it",
            )


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _too_many_cells(path: Path | str, open_file: Opener) -> str | None:
    """Why a workbook's sheet is too big to load, read from its references, or None."""
    with (
        contextlib.suppress(Exception),
        open_file() as raw,
        zipfile.ZipFile(raw) as archive,
    ):
        for info in archive.infolist():
            name = info.filename
            if not (name.startswith("xl/worksheets/") and name.endswith(".xml")):
                continue
            last_row, last_column = _sheet_extent(archive, info)
            if last_row * last_column > MAX_SHEET_CELLS:
                return _too_many_cells_message(path, last_row, last_column)
    return None


def _sheet_extent(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> tuple[int, int]:
    last_row = last_column = 1
    with archive.open(info) as part:
        for piece in _whole_elements(part):
            for letters, digits in _ANY_REF.findall(piece):
                last_row = max(last_row, int(digits))
                last_column = max(last_column, _column_number(letters))
    return last_row, last_column


def _whole_elements(part: IO[bytes]) -> Iterator[bytes]:
    """The XML in chunks cut before a ``<``, so no reference straddles two of them."""
    tail = b""
    while chunk := part.read(_SCAN_CHUNK):
        data = tail + chunk
        cut = max(data.rfind(b"<"), 0)
        yield data[:cut]
        tail = data[cut:]
    yield tail


def _check_zip(path: Path | str, open_file: Opener) -> str:
    """Read the zip's directory only: refuse a bomb or a zip that is no workbook."""
    try:
        with open_file() as raw, zipfile.ZipFile(raw) as archive:
            infos = archive.infolist()
    except OSError as exc:
        raise InputError(f"{path} cannot be read ({exc.strerror}): check the file") from None
    except Exception as exc:
        # BadZipFile, and whatever else one damaged byte makes zipfile raise: a "version needed
        # to extract" it does not know (NotImplementedError), a name that is not the UTF-8 it
        # claims (UnicodeDecodeError), a size that does not fit (struct.error, ValueError).
        raise InputError(
            f"{path} is a damaged zip/XLSX file ({_zip_damage(exc)}): save it again from Excel"
        ) from None
    names = {i.filename for i in infos}
    total = sum(i.file_size for i in infos)
    if total > MAX_UNZIPPED_BYTES:
        raise InputError(
            f"{path} would unpack to {total / (1 << 30):,.1f} GiB, over the "
            f"{MAX_UNZIPPED_BYTES >> 30} GiB limit (a zip bomb?): split the data or save it as CSV"
        )
    for info in infos:
        if info.file_size > (16 << 20) and info.file_size > MAX_ZIP_RATIO * max(
            info.compress_size, 1
        ):
            raise InputError(
                f"{path} holds a part that unpacks {info.file_size // info.compress_size:,}"
                " times its packed size (a zip bomb?): it was refused; "
                "save the data again from Excel or as CSV"
            )
    if "xl/workbook.xml" in names:
        return "XLSM" if str(path).lower().endswith(".xlsm") else "XLSX"
    if "xl/workbook.bin" in names:
        return "XLSB"
    if "content.xml" in names and "mimetype" in names:
        return "ODS"
    raise InputError(
        f"{path} is a zip archive, not an XLSX workbook (it holds no xl/workbook.xml): "
        "unzip it and import the spreadsheet inside, or save the data as XLSX or CSV"
    )


def _zip_damage(exc: Exception) -> str:
    if isinstance(exc, zipfile.BadZipFile | NotImplementedError):
        return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
    if isinstance(exc, UnicodeDecodeError):
        return "a name in its directory is not valid UTF-8"
    return type(exc).__name__


def _holds(open_file: Opener, marker: bytes) -> bool:
    tail = b""
    with open_file() as raw:
        while chunk := raw.read(_SCAN_CHUNK):
            if marker in tail + chunk:
                return True
            tail = chunk[-len(marker) :]
    return False


# --- the child -----------------------------------------------------------------------------------

# Run with -P, so a file in the working folder (an inbox, say) cannot shadow a module; the
# package's own folder is appended for a checkout that is not installed.
_CHILD: Final = (
    "import sys; sys.path.append(sys.argv.pop(1)); "
    "from importer.workbook.child import serve; serve(sys.argv[1:])"
)
