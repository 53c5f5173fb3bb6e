"""The header row: its names (trimmed, made unique, empty ones named after their column),
and whether the file is one of our failures reports."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Final

from importer import workbook
from importer.csv_reports import FAILURE_COLUMNS, unescape_formula
from importer.errors import InputError
from importer.loader.csvrecords import _Broken

FIRST_ROWS: Final = 10  # rows a Table keeps as read, from row 1 (Table.first_rows)


class _Header:
    """The header row turned into unique keys, plus what the rows need to know about it."""

    def __init__(
        self,
        names: list[str],
        source: list[str],
        width: int,
        report_width: int,
        first_column: int | None,
    ) -> None:
        self.names = names
        self.source = source
        self.width = width  # cells a row may fill: the header's, report columns included
        self.report_width = report_width  # our failures.csv's own columns at the end, or 0
        self.is_report = report_width > 0
        # Only a CSV report escapes formulas; a workbook's cells are text already.
        self.escaped = self.is_report and first_column is None
        self.first_column = first_column  # None for a CSV; a sheet's data may start past column A
        self.warnings: list[str] = []
        self.cells: list[str] = []  # the header row as read
        self.above: list[tuple[int, list[str]]] = []  # rows above it (--header-row): the first

    def too_wide(self, cells: list[str]) -> str:
        last = max(i for i, c in enumerate(cells) if c)
        if self.first_column is None:
            return (
                f"this row has {len(cells)} cells but the header has {self.width} columns "
                "(a delimiter inside a cell without quotes?): fix the row"
            )
        return (
            f"this row has a value in column {workbook.column_letter(self.first_column + last)}, "
            "which has no header: give that column a header or clear the cell"
        )


def _read_header(
    records: Iterator[list[str]],
    header_row: int,
    where: str,
    first_column: int | None = None,
) -> _Header:
    number = 0
    above: list[tuple[int, list[str]]] = []
    for cells in records:
        number += 1
        if number < header_row:
            if number <= FIRST_ROWS:
                above.append((number, cells))
            continue
        if isinstance(cells, _Broken):
            raise InputError(f"the header (row {number}) of {where} cannot be read: {cells.error}")
        header = _make_header(cells, where, first_column)
        if header is None:
            hint = _first_filled_row(records, number)
            advice = (
                f"its first filled row is {hint}: use --header-row {hint}"
                if hint
                else "put the column names on that row, or point --header-row at them"
            )
            raise InputError(f"the header row {number} of {where} is empty: {advice}")
        header.cells, header.above = cells, above
        return header
    if number == 0:
        raise InputError(f"{where} holds no rows: it needs a header row with the column names")
    raise InputError(
        f"{where} has only {number} rows, so row {header_row} cannot be its header: "
        "check --header-row"
    )


def _first_filled_row(records: Iterator[list[str]], number: int) -> int | None:
    for cells in itertools.islice(records, 50):
        number += 1
        if "".join(cells).strip():
            return number
    return None


def _report_width(keys: list[str]) -> int:
    """How many of the header's last columns are our failures.csv's own (0: not a report).
    Earlier releases wrote the first six of them."""
    for width in (len(FAILURE_COLUMNS), 6):
        if len(keys) > width and tuple(keys[-width:]) == FAILURE_COLUMNS[:width]:
            return width
    return 0


def _make_header(cells: list[str], where: str, first_column: int | None) -> _Header | None:
    source = list(cells)
    while source and not source[-1].strip():
        source.pop()
    if not source:
        return None
    keys = [c.replace("\ufeff", "").strip() for c in source]
    width = len(source)
    report_width = _report_width(keys)
    if report_width:
        del source[-report_width:]
        keys = keys[:-report_width]
        if first_column is None:  # a CSV report: its header is escaped like its cells
            keys = [unescape_formula(k) for k in keys]
            source = [unescape_formula(s) for s in source]
    warnings: list[str] = []
    for i, key in enumerate(keys):
        if not key:
            letter = workbook.column_letter((first_column or 0) + i)
            keys[i] = f"Column {letter}"
            warnings.append(
                f"column {letter} of {where} has no header: its cells are read as '{keys[i]}'"
            )
    names = _unique(keys, where, warnings)
    header = _Header(names, source, width, report_width, first_column)
    header.warnings = warnings
    return header


_RENAMES_SHOWN: Final = 3  # renamed columns named in a warning; the rest are counted
_REPEATS_SHOWN: Final = 5  # repeated names given a warning of their own; the rest are counted


def _unique(keys: list[str], where: str, warnings: list[str]) -> list[str]:
    reserved = set(keys)
    used: set[str] = set()
    next_number: dict[str, int] = {}  # where the search for a free "key (n)" goes on
    renamed: dict[str, list[str]] = {}
    names = []
    for key in keys:
        name = key
        if key in used:
            # Numbers only go up: the names taken or reserved never free one below.
            n = next_number.get(key, 2)
            while f"{key} ({n})" in reserved or f"{key} ({n})" in used:
                n += 1
            next_number[key] = n + 1
            name = f"{key} ({n})"
            renamed.setdefault(key, []).append(name)
        used.add(name)
        names.append(name)
    for key, others in itertools.islice(renamed.items(), _REPEATS_SHOWN):
        shown = ", ".join(f"'{o}'" for o in others[:_RENAMES_SHOWN])
        if len(others) > _RENAMES_SHOWN:
            shown += f" and {len(others) - _RENAMES_SHOWN:,} more"
        warnings.append(
            f"column '{key}' appears {len(others) + 1:,} times in the header of {where}: "
            f"the first keeps the name, the others are read as {shown}"
        )
    if len(renamed) > _REPEATS_SHOWN:
        warnings.append(
            f"{len(renamed) - _REPEATS_SHOWN:,} more column names appear more than once in the "
            f"header of {where}; each repeat is read as the name followed by its number, as above"
        )
    return names
