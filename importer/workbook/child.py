"""The child process that reads a workbook's sheet with python-calamine and streams its rows
up a pipe as text (``serve``); run by ``importer.workbook.Sheet``."""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import itertools
import marshal
import os
import signal
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from decimal import Decimal
from pathlib import Path, PurePosixPath
from typing import Any, Final

from importer.errors import InputError
from importer.workbook.limits import (
    _BATCH_ROWS,
    _LENGTH,
    _NO_MEMORY_LIMIT,
    CHILD_MEMORY,
    MAX_CELL_CHARS,
    MAX_SHEET_CELLS,
    MAX_TEXT_PER_BYTE,
    MIN_SHEET_TEXT,
    _password_protected,
    _too_many_cells_message,
)
from importer.workbook.numformat import Formatter
from importer.workbook.sheetxml import SheetNotes, notes_meanwhile


def serve(args: Sequence[str]) -> None:
    """The child: load one sheet and write it to stdout as length-prefixed marshal messages.

    Messages: ``("sheet", name, first_column, hidden_rows, unsaved_formulas, hidden_columns)``
    (the last three
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
        yield (
            "sheet",
            name,
            first_column,
            sheet_notes.hidden,
            sheet_notes.unsaved_formulas,
            sheet_notes.hidden_columns,
        )
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
    """Show the numbers of cells whose number format is applied as the format shows them.
    The rows' formats are let go once used: the sheet's are read at once, before its rows."""
    take = formats.pop
    for index, raw in enumerate(batch):
        cells = take(number + index + 1, None)
        if cells is None:
            continue
        row, width = texts[index], len(raw)
        for column, formatter in cells:
            position = column - first_column
            if 0 <= position < width:
                value = raw[position]
                if type(value) is float or type(value) is int:
                    shown = formatter(value)
                    if shown is not None:
                        row[position] = shown


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
