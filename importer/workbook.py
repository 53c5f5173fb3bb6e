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
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import itertools
import marshal
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from decimal import Decimal
from pathlib import Path, PurePosixPath
from typing import IO, Any, Final

from importer.errors import AbortError, ImporterError, InputError
from importer.numformat import Formatter
from importer.sheetxml import SheetNotes, notes_meanwhile

MAX_UNZIPPED_BYTES: Final = 1 << 30
MAX_ZIP_RATIO: Final = 200  # sheets compress 5-30x; a bomb compresses 1000x
MAX_SHEET_CELLS: Final = 40_000_000  # calamine allocates rows x columns cells of 32 bytes
CHILD_MEMORY: Final = 4 << 30  # the address space the reading child may use, at most
_NO_MEMORY_LIMIT: Final = 1 << 62  # a cgroup "limit" this large (v1's "unlimited") is none
MAX_CELL_CHARS: Final = 1 << 20  # RD Station takes 0.2 MB per request: a bigger cell cannot go
# A sheet's text may be this many times its file's size, and at least MIN_SHEET_TEXT characters.
# Shared strings compress and repeat (a 100-character note in every row is 30 times the file);
# one long text in thousands of cells is thousands of times, and fills the ledger and reports.
MAX_TEXT_PER_BYTE: Final = 64
MIN_SHEET_TEXT: Final = 64 << 20

_OLE_MAGIC: Final = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_FD_FOLDER: Final = "/dev/fd" if os.path.isdir("/dev/fd") else "/proc/self/fd"
_SUFFIXES: Final = {"XLSX": ".xlsx", "XLSM": ".xlsm", "XLSB": ".xlsb", "XLS": ".xls", "ODS": ".ods"}
_ENCRYPTED_MARK: Final = "EncryptedPackage".encode("utf-16-le")
_SCAN_CHUNK: Final = 1 << 20
_BATCH_ROWS: Final = 512
_LENGTH: Final = struct.Struct("<I")
_PIPE_BYTES: Final = 1 << 20
# Any cell or row reference, however it is spelled (quick-xml accepts spaces around "=", single
# quotes and lower case): read only to explain a child that died.
_ANY_REF: Final = re.compile(rb"""\sr\s*=\s*["']\s*([A-Za-z]*)(\d+)""")


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
            _, self.name, self.first_column, hidden, unsaved = first
            # Rows hidden in Excel (by a filter or by hand), by number; formulas with no saved
            # value, as (row, column), in row order. XLSX and XLSM only: see ``sheetxml``.
            self.hidden_rows: frozenset[int] = frozenset(hidden)
            self.unsaved_formulas: list[tuple[int, int]] = unsaved
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


def _too_many_cells_message(path: Path | str, last_row: int, last_column: int) -> str:
    return (
        f"a sheet of {path} spans {last_row:,} rows x {last_column:,} columns "
        f"(up to {column_letter(last_column - 1)}{last_row}), too many cells to load: "
        "delete the stray cells far from the data, or save the data as CSV"
    )


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


def _column_number(letters: bytes) -> int:
    number = 0
    for letter in letters.upper():
        number = number * 26 + letter - 64
    return number


def column_letter(index: int) -> str:
    """The spreadsheet letters of column ``index`` (0 is A)."""
    letters = ""
    index += 1
    while index:
        index, rem = divmod(index - 1, 26)
        letters = chr(65 + rem) + letters
    return letters


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


def _password_protected(path: Path | str) -> InputError:
    return InputError(
        f"{path} is protected with a password: open it in Excel, remove the password "
        "(File > Info > Protect Workbook > Encrypt with Password), save, and import that file"
    )


# --- the child -----------------------------------------------------------------------------------

# Run with -P, so a file in the working folder (an inbox, say) cannot shadow a module; the
# package's own folder is appended for a checkout that is not installed.
_CHILD: Final = (
    "import sys; sys.path.append(sys.argv.pop(1)); "
    "from importer.workbook import serve; serve(sys.argv[1:])"
)


def serve(args: Sequence[str]) -> None:
    """The child: load one sheet and write it to stdout as length-prefixed marshal messages.

    Messages: ``("sheet", name, first_column, hidden_rows, unsaved_formulas)`` (the last two
    from ``sheetxml``), then ``("rows", [[text, ...], ...], broken)`` batches (``broken``: the
    rows, by index, whose cell at the column given was too long and is sent empty), then
    ``("end",)``; or ``("error", message)`` when the sheet cannot be read. ``path`` names the
    file in messages; ``target`` is what to open.
    """
    path, kind, wanted, given, *rest = args
    target = rest[0] if rest else path
    # The parent decides when reading stops: Ctrl-C reaches the terminal's whole process group,
    # and systemd's stop sends SIGTERM to every process of the unit, so a watcher being stopped
    # must not see its reader die and take a good file for an unreadable one.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    _limit_memory()
    out = sys.stdout.buffer

    def send(message: tuple[Any, ...]) -> None:
        body = marshal.dumps(message)
        out.write(_LENGTH.pack(len(body)))
        out.write(body)

    try:
        try:
            for message in _sheet_messages(path, kind, wanted if given == "True" else None, target):
                send(message)
        except InputError as exc:
            send(("error", str(exc)))
        out.flush()
    except BrokenPipeError:  # the parent stopped reading: nothing left to do
        os._exit(0)


def _limit_memory() -> None:
    # A sheet of MAX_SHEET_CELLS cells needs about 3 GiB while calamine builds it (its cells as
    # read, then the rectangle they are moved into). Past child_memory() an allocation fails at
    # once and the child dies, instead of filling the machine (or the container, whose OOM killer
    # might pick the parent) for a sheet that would be refused anyway.
    import resource

    limit = child_memory()
    with contextlib.suppress(ValueError, OSError):
        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        if hard != resource.RLIM_INFINITY:
            limit = min(limit, hard)
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def child_memory(root: Path = Path("/")) -> int:
    """The address space the reading child may use: ``CHILD_MEMORY``, or less when the machine's
    memory or this process's cgroup limit is smaller. ``root`` stands in for / in tests."""
    limits = [CHILD_MEMORY]
    with contextlib.suppress(ValueError, OSError):
        limits.append(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    cgroup = cgroup_memory_limit(root)
    if cgroup is not None:
        limits.append(cgroup)
    return min(limits)


def cgroup_memory_limit(root: Path = Path("/")) -> int | None:
    """The smallest memory limit on this process's cgroup and those above it, or None if unset.

    ``/proc/self/cgroup`` names the process's cgroup: ``0::PATH`` for cgroup v2 (limit in
    ``memory.max`` under /sys/fs/cgroup), ``N:memory:PATH`` for v1 (``memory.limit_in_bytes``
    under /sys/fs/cgroup/memory). Every cgroup from PATH up to the mount's root is read, because
    a parent's limit binds its children; a container that mounts its own cgroup as the root
    (without a cgroup namespace, PATH names the host's view) is found at the top of that walk.
    """
    try:
        text = (root / "proc/self/cgroup").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    limits = []
    for line in text.splitlines():
        hierarchy, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if hierarchy == "0" and not controllers:
            base, name = root / "sys/fs/cgroup", "memory.max"
        elif "memory" in controllers.split(","):
            base, name = root / "sys/fs/cgroup/memory", "memory.limit_in_bytes"
        else:
            continue
        parts = PurePosixPath(path).parts[1:]
        if ".." in parts:  # a cgroup outside this namespace's view: only the root is ours
            parts = ()
        for depth in range(len(parts), -1, -1):
            limit = _memory_limit_file(base.joinpath(*parts[:depth], name))
            if limit is not None:
                limits.append(limit)
    return min(limits, default=None)


def _memory_limit_file(path: Path) -> int | None:
    # v2 writes "max" for no limit; v1 writes the largest page-aligned 63-bit number, and either
    # may hold some other huge number nobody meant as a limit.
    try:
        value = int(path.read_text(encoding="ascii").strip())
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    return value if 0 < value < _NO_MEMORY_LIMIT else None


def _sheet_messages(
    path: str, kind: str, wanted: str | None, target: str | None = None
) -> Iterator[tuple[Any, ...]]:
    import python_calamine

    target = target or path
    with _calamine_errors(path, kind):
        book = python_calamine.CalamineWorkbook.from_path(target)
        name = _choose_sheet(path, book, wanted)
        notes = notes_meanwhile(target, name) if kind in ("XLSX", "XLSM") else lambda: SheetNotes()
        data = book.get_sheet_by_name(name)
        if data.start is None or data.end is None:  # both or neither
            raise InputError(
                f"sheet '{name}' of {path} is empty: choose another sheet with --sheet"
            )
        last_row, last_column = data.end[0] + 1, data.end[1] + 1
        if last_row * last_column > MAX_SHEET_CELLS:
            raise InputError(_too_many_cells_message(path, last_row, last_column))
        first_column = data.start[1]
        sheet_notes = notes()
        yield ("sheet", name, first_column, sheet_notes.hidden, sheet_notes.unsaved_formulas)
        most = max(MIN_SHEET_TEXT, MAX_TEXT_PER_BYTE * os.stat(target).st_size)
        total = 0
        # python-calamine yields the rows above the sheet's first filled one as empty rows, so
        # the position in this stream is the spreadsheet's row number.
        for batch in _text_batches(data.iter_rows(), sheet_notes.formats, first_column):
            size, broken = _bound_cells(batch)
            total += size
            if total > most:
                raise InputError(
                    f"sheet '{name}' of {path} holds more than {most:,} characters of text, more "
                    "than a file of its size should (a long text repeated in many cells?): "
                    "remove the repeated text, or save the data as CSV"
                )
            yield ("rows", batch, broken)
    yield ("end",)


def _bound_cells(batch: list[list[str]]) -> tuple[int, list[tuple[int, int]]]:
    """The characters the batch's cells hold, and the rows with a cell over MAX_CELL_CHARS, as
    (row, its first such column). Those cells are emptied: the row fails, the text goes no
    further (as a CSV's cell over the limit)."""
    size = sum(map(len, itertools.chain.from_iterable(batch)))
    if size <= MAX_CELL_CHARS or max(map(len, itertools.chain.from_iterable(batch))) <= (
        MAX_CELL_CHARS
    ):
        return size, []
    broken = []
    for row, cells in enumerate(batch):
        long = [column for column, cell in enumerate(cells) if len(cell) > MAX_CELL_CHARS]
        if long:
            broken.append((row, long[0]))
            for column in long:
                size -= len(cells[column])
                cells[column] = ""
    return size, broken


def _text_batches(
    raw_rows: Iterator[list[Any]],
    formats: dict[int, list[tuple[int, Formatter]]] | None = None,
    first_column: int = 0,
) -> Iterator[list[list[str]]]:
    # Rows are converted a batch at a time, column by column: a column holds one type of cell
    # (text, numbers, dates), so most columns convert in one C-level ``map`` with no Python call
    # per cell, which halves the cost of reading a large sheet.
    number = 0  # the sheet's row number of the batch's first row, less one
    while batch := list(itertools.islice(raw_rows, _BATCH_ROWS)):
        width = len(batch[0])
        if width and len(set(map(len, batch))) == 1:
            texts = list(map(list, zip(*map(_column_texts, zip(*batch)))))  # noqa: B905
        else:
            texts = [[c if type(c) is str else cell_text(c) for c in raw] for raw in batch]
        if formats:
            _apply_formats(batch, texts, formats, number, first_column)
        number += len(batch)
        yield texts


def _apply_formats(
    batch: list[list[Any]],
    texts: list[list[str]],
    formats: dict[int, list[tuple[int, Formatter]]],
    number: int,
    first_column: int,
) -> None:
    """Show the numbers of cells whose number format is applied as the format shows them."""
    for index, raw in enumerate(batch):
        for column, formatter in formats.get(number + index + 1, ()):
            position = column - first_column
            if 0 <= position < len(raw) and type(raw[position]) in (float, int):
                shown = formatter(raw[position])
                if shown is not None:
                    texts[index][position] = shown


_AS_TEXT: Final[dict[type, Callable[[Any], str]]] = {
    bool: ("false", "true").__getitem__,
    int: str,
    dt.date: dt.date.isoformat,
    dt.datetime: functools.partial(dt.datetime.isoformat, timespec="seconds"),
    dt.time: functools.partial(dt.time.isoformat, timespec="seconds"),
}


def _column_texts(column: tuple[Any, ...]) -> Iterable[str]:
    kinds = set(map(type, column))
    if len(kinds) == 1:
        kind = kinds.pop()
        if kind is str:
            return column
        if kind is float:
            return _float_texts(column)
        convert = _AS_TEXT.get(kind)
        if convert is not None:
            return map(convert, column)
    return [c if type(c) is str else cell_text(c) for c in column]


def _float_texts(column: tuple[float, ...]) -> Iterable[str]:
    # For a float under 1e15 that holds an integer, 15 significant digits print its digits
    # exactly, as ``cell_text`` does; an exponent, nan/inf or -0 take the careful way.
    texts = list(map(_FIFTEEN_DIGITS, column))
    joined = "|".join(texts)
    if "e" in joined or "n" in joined or "-0|" in joined or joined.endswith("-0"):
        return [cell_text(c) for c in column]
    return texts


_FIFTEEN_DIGITS: Final = "%.15g".__mod__


def cell_text(value: object) -> str:
    """A workbook cell as the text a person sees in the formula bar."""
    kind = type(value)
    if kind is float:
        assert isinstance(value, float)
        if value.is_integer() and -1e15 < value < 1e15:
            return str(int(value))
        if value != value or value in (float("inf"), float("-inf")):
            return ""
        text = format(value, ".15g")  # Excel keeps 15 significant digits
        return format(Decimal(text), "f") if "e" in text else text
    if kind is bool:
        return "true" if value else "false"
    if kind is int:
        return str(value)
    if kind is dt.datetime:
        assert isinstance(value, dt.datetime)
        return value.isoformat(timespec="seconds")
    if kind is dt.date:
        assert isinstance(value, dt.date)
        return value.isoformat()
    if kind is dt.time:
        assert isinstance(value, dt.time)
        return value.isoformat(timespec="seconds")
    if kind is dt.timedelta:
        assert isinstance(value, dt.timedelta)
        hours, rest = divmod(round(value.total_seconds()), 3600)
        return f"{hours}:{rest // 60:02}:{rest % 60:02}"
    if value is None:
        return ""
    return str(value)


def _choose_sheet(path: str, book: Any, wanted: str | None) -> str:
    import python_calamine

    names: list[str] = list(book.sheet_names)
    if not names:
        raise InputError(f"{path} has no sheets: save it again from Excel")
    if wanted is None:
        visible: list[str] = [
            m.name
            for m in book.sheets_metadata
            if m.visible == python_calamine.SheetVisibleEnum.Visible
            and m.typ == python_calamine.SheetTypeEnum.WorkSheet
        ]
        return visible[0] if visible else names[0]
    if wanted in names:
        return wanted
    # Excel itself treats sheet names case-insensitively.
    folded = [n for n in names if n.strip().casefold() == wanted.strip().casefold()]
    if len(folded) == 1:
        return folded[0]
    listed = ", ".join(f"'{n}'" for n in names)
    raise InputError(f"{path} has no sheet '{wanted}': its sheets are {listed}; check --sheet")


@contextlib.contextmanager
def _calamine_errors(path: str, kind: str) -> Iterator[None]:
    """Translate python-calamine's exceptions (and its Rust panics) into InputError."""
    import python_calamine

    try:
        yield
    except InputError:
        raise
    except python_calamine.PasswordError:
        raise _password_protected(path) from None
    except Exception as exc:
        raise _unreadable(path, kind, exc) from None
    except BaseException as exc:
        # pyo3 turns a Rust panic into PanicException, which derives from BaseException.
        if type(exc).__name__ == "PanicException":
            raise _unreadable(path, kind, exc) from None
        raise


def _unreadable(path: str, kind: str, exc: BaseException) -> InputError:
    reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
    return InputError(
        f"{path} cannot be read as {kind} ({reason}): "
        "open it in Excel, save it again as XLSX, and retry"
    )
