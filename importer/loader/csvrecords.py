"""A CSV's records, as lists of text: a record that cannot be read fails its own row only."""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator
from typing import IO, Final

from importer import workbook

MAX_CELL_CHARS: Final = workbook.MAX_CELL_CHARS  # one limit for CSV and workbook cells
MAX_LINE_CHARS: Final = 2 << 20
MAX_LINES_PER_RECORD: Final = 1000  # a quoted cell spanning more lines is a quote never closed


# The cells that could be read of a record that could not, and why: one failed row.
_Broken = workbook.BrokenRecord


class _LineTooLong(Exception):
    pass


class _RecordTooLong(Exception):
    pass


def _csv_records(text: IO[str], delimiter: str) -> Iterator[list[str]]:
    """Yield each record's cells, or a ``_Broken`` for a record that cannot be read.

    After a broken record, reading resumes at the line after the record's first line: the
    lines the csv module swallowed looking for a closing quote are read again on their own.
    """
    readline = text.readline
    source = iter(lambda: readline(MAX_LINE_CHARS), "")
    replay: list[str] = []  # lines to read again, last line first
    pending: list[str] = []  # the lines of the record being read
    csv.field_size_limit(MAX_CELL_CHARS)
    while True:
        reader = csv.reader(
            _feed(replay, source, pending, readline), delimiter=delimiter, strict=True
        )
        clear = pending.clear
        try:
            for cells in reader:
                clear()
                yield cells
            return
        except _LineTooLong:
            error = (
                f"a line of this row is longer than {MAX_LINE_CHARS:,} characters; "
                "it was not read: shorten it in the file"
            )
            yield _Broken([], error)
            pending.clear()
            continue
        except _RecordTooLong:
            error = (
                f'a quote (") opened in this row is not closed within {MAX_LINES_PER_RECORD:,} '
                "lines; the lines after it were read as rows of their own: fix the quote"
            )
        except csv.Error as exc:
            error = _csv_error_reason(str(exc))
        first = pending[0] if pending else ""
        replay.extend(reversed(pending[1:]))
        pending.clear()
        yield _Broken(_lenient_cells(first, delimiter), error)


def _feed(
    replay: list[str], source: Iterator[str], pending: list[str], readline: Callable[[int], str]
) -> Iterator[str]:
    append = pending.append
    while replay:
        line = replay.pop()
        append(line)
        if len(pending) > MAX_LINES_PER_RECORD:
            raise _RecordTooLong
        yield line
    for line in source:
        if len(line) == MAX_LINE_CHARS and line[-1] not in "\r\n":
            while (rest := readline(MAX_LINE_CHARS)) and rest[-1] not in "\r\n":
                pass
            raise _LineTooLong
        append(line)
        if len(pending) > MAX_LINES_PER_RECORD:
            raise _RecordTooLong
        yield line


def _csv_error_reason(message: str) -> str:
    if "field larger than field limit" in message:
        return (
            f"a cell of this row is longer than {MAX_CELL_CHARS:,} characters "
            "(more than RD Station accepts): shorten it"
        )
    if "unexpected end of data" in message:
        return 'a quote (") opened in this row is never closed: fix the quote'
    if "expected after" in message:
        return (
            'a quoted cell of this row has text after its closing quote (a stray ")": '
            'fix the quotes (a " inside a quoted cell is written "")'
        )
    return f"this row cannot be read as CSV ({message}): fix it in the file"


def _lenient_cells(line: str, delimiter: str) -> list[str]:
    line = line.rstrip("\r\n")
    if not line:
        return []
    try:
        return next(csv.reader([line], delimiter=delimiter), [])
    except csv.Error:
        return [line]
