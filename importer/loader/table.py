"""The ``Table``: an open spreadsheet's header and one pass over its rows, numbered as a
spreadsheet shows them; rows given in memory as a ``Table``; what a workbook's sheet says of
its rows beyond their cells (hidden rows, formulas with no saved value)."""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Final

from importer import workbook
from importer.csv_reports import FAILURE_COLUMNS, unescape_formula
from importer.errors import ImporterError, InputError, printable
from importer.loader.csvrecords import _Broken
from importer.loader.header import FIRST_ROWS, _Header, _make_header
from importer.records import Row

# Salesforce's report footer, in English, Portuguese and Spanish
_FOOTER_STARTS = (
    "Grand Totals",
    "Total geral",
    "Totais gerais",
    "Totales generales",
    "Confidential Information",
    "Informações confidenciais",
    "Información confidencial",
    "Copyright (c)",
    "Copyright ©",
)
_FOOTER = re.compile(
    r"(?:Grand Totals|Total geral|Totais gerais|Totales generales)"
    r" \(\d[\d.,]* (?:records?|registros?)\)"
    r"|(?:Confidential Information - Do Not Distribute|Informações confidenciais - Não distribuir"
    r"|Información confidencial - No distribuir)"
    r"|Copyright (?:\(c\)|©) \d{4}(?:-\d{4})? salesforce\.com.*",
    re.IGNORECASE,
)


class Table:
    """An open spreadsheet: its header, what was detected, and one pass over its rows."""

    def __init__(
        self,
        path: Path,
        *,
        records: Iterator[list[str]],
        header: _Header,
        header_row: int,
        description: str,
        warnings: list[str],
        close: Callable[[], None],
        sheet: str | None = None,
        shown: str | None = None,
    ) -> None:
        self.path = path
        self.shown = printable(str(path)) if shown is None else shown  # the path, for messages
        self.sheet = sheet  # the worksheet's name; None for a CSV
        self.headers = header.names
        self.source_headers = header.source
        self.description = description
        self.warnings = warnings
        self.blank_rows = 0
        self.footer_rows = 0
        # Columns Excel hides, by header: their letter (a person looking at the sheet does not
        # see what they hold). XLSX and XLSM only.
        self.hidden_columns: dict[str, str] = {}
        self.marks = _Marks(self.shown if sheet is None else f"sheet '{sheet}' of {self.shown}")
        # The records of rows 1 to FIRST_ROWS as read, by number (title rows, the header, the
        # rows after it): which row holds the columns a mapping looks for, when the header does
        # not. Read now, before the rows are, and handed back to them.
        after = list(itertools.islice(records, max(0, FIRST_ROWS - header_row)))
        self.first_rows: list[tuple[int, list[str]]] = [
            *header.above,
            (header_row, header.cells),
            *enumerate(after, start=header_row + 1),
        ]
        self._records = itertools.chain(after, records)
        self._header = header
        self._header_row = header_row
        self._close = close
        self._read = False
        self._stream: Iterator[Row] = self._rows()

    def rows(self) -> Iterator[Row]:
        """Stream the data rows once, numbered as a spreadsheet shows them."""
        if self._read:
            raise RuntimeError("Table.rows() reads the file once; open it again to re-read")
        self._read = True
        return self._stream

    def _require_rows(self, where: str, advice: str) -> None:
        """Raise ``InputError`` (and close) when no data row follows the header."""
        stream = self._rows()
        try:
            first = next(stream)
        except StopIteration:
            self.close()
            skipped = self.marks.skipped_count
            if skipped:
                raise InputError(
                    f"{where}: every row under the header is hidden in Excel, and "
                    f"--skip-hidden-rows left all {skipped:,} out: nothing to import; show the "
                    "rows in Excel (clear the filter), or import without --skip-hidden-rows"
                ) from None
            raise InputError(
                f"{where} has a header but no rows under it: nothing to import; {advice}"
            ) from None
        except BaseException:
            self.close()
            raise
        self._stream = itertools.chain((first,), stream)

    def _rows(self) -> Iterator[Row]:
        try:
            yield from self._each_row()
        except ImporterError:
            raise
        except Exception as exc:  # a library choking on the file: about the file, not a bug
            raise _unreadable(self.shown, exc) from None

    def _each_row(self) -> Iterator[Row]:
        headers = self.headers
        width = self._header.width
        unescape = self._header.is_report
        number = self._header_row
        hidden = self.marks.skipped_rows()
        for cells in self._records:
            number += 1
            if number in hidden and self.marks.skip(number):
                continue
            if type(cells) is not list:
                error = cells.error  # type: ignore[attr-defined]
                yield Row(number, _fit(headers, cells, width, unescape), error)
                continue
            count = len(cells)
            if count != width:
                if not any(cells):
                    self.blank_rows += 1
                    continue
                if count > width:
                    if any(cells[width:]):
                        error = self._header.too_wide(cells)
                        yield Row(number, _fit(headers, cells, width, unescape), error)
                        continue
                else:
                    cells += [""] * (width - count)
            first = cells[0]
            if not first or first.isspace():
                if not "".join(cells).strip():
                    self.blank_rows += 1
                    continue
            elif first.startswith(_FOOTER_STARTS) and _is_footer(cells):
                self.footer_rows += 1
                continue
            if unescape:
                yield self._report_row(number, cells)
            else:
                yield Row(number, dict(zip(headers, cells)))  # noqa: B905

    def _report_row(self, number: int, cells: list[str]) -> Row:
        """A row of our failures report: its cells (unescaped, from a CSV); the number and
        identity the row had where it first came from, when the report says them."""
        headers = self.headers
        values = map(unescape_formula, cells) if self._header.escaped else cells
        row = Row(number, dict(zip(headers, values)))  # noqa: B905
        if self._header.report_width == len(FAILURE_COLUMNS):
            source_row, row_id = cells[len(headers) + 6 : len(headers) + 8]
            row.source_row = int(source_row) if source_row.isdigit() else None
            row.row_id = row_id.strip() or None
        return row

    def row_warnings(self, number: int) -> list[tuple[str, str]]:
        """What the sheet says of row ``number`` that its cells do not, as (kind, message): a
        row hidden in Excel, a formula with no saved value. Rows with some: ``marks.rows``."""
        return self.marks.row_warnings(number)

    def hidden_columns_read(self, columns: Iterable[str]) -> list[str]:
        """A warning when the mapping reads ``columns`` that Excel hides."""
        hidden = self.hidden_columns
        named = [f"{hidden[c]} ({c!r})" for c in dict.fromkeys(columns) if c in hidden]
        if not named:
            return []
        return [
            f"the mapping reads columns hidden in Excel in {self.marks.where}: "
            f"{', '.join(named)}; they are imported like the others, though a person looking "
            "at the sheet does not see them: check that they hold what the mapping expects"
        ]

    def read_warnings(self) -> list[str]:
        """Warnings known once the rows were read (hidden rows left out)."""
        return self.marks.read_warnings()

    def close(self) -> None:
        """Release the file."""
        self._close()

    def __enter__(self) -> Table:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _fit(headers: list[str], cells: list[str], width: int, unescape: bool) -> dict[str, str]:
    """A failed row's cells by column. Cells past the header's ``width`` are kept, so that
    failures.csv gives the row back whole: under keys no header name can take (names are
    trimmed; these start with a space). A failures report's own columns, read back, are not;
    its cells lose the formula escaping it gave them, as a good row's do."""
    if unescape:
        cells = [unescape_formula(c) for c in cells]
    fitted = dict(zip(headers, cells))  # noqa: B905
    for h in headers[len(cells) :]:
        fitted[h] = ""
    extra = cells[width:]
    while extra and not extra[-1]:
        extra.pop()  # Excel's trailing ;;;
    for position, cell in enumerate(extra, width + 1):
        fitted[f" {position}"] = cell
    return fitted


def _is_footer(cells: list[str]) -> bool:
    return not any(cells[1:]) and _FOOTER.fullmatch(cells[0].strip()) is not None


# --- rows given in memory ------------------------------------------------------------------------


def table_from_records(
    where: str,
    header_cells: list[str],
    records: Iterable[list[str]],
    *,
    description: str,
    warnings: Sequence[str] = (),
    advice: str = "give it rows",
) -> Table:
    """A ``Table`` over rows that are not in a file (the Python API's DataFrame or dicts),
    read as a file's would be: ``header_cells`` as its header row (names trimmed, an empty one
    named after its column letter, duplicates renamed, each with a warning), ``records`` as its
    rows, lists of text numbered from 2 (blank rows skipped, a record from
    ``unreadable_record`` failing its row). ``where`` names the rows in messages (``DataFrame
    'leads'``). InputError when the header is empty, or no row follows it (``advice`` says what
    to do)."""
    header = _make_header(list(header_cells), where, None)
    if header is None:
        raise InputError(f"{where} has no named columns: nothing to import")
    table = Table(
        Path(where),
        records=iter(records),
        header=header,
        header_row=1,
        description=description,
        warnings=[*warnings, *header.warnings],
        close=lambda: None,
    )
    table._require_rows(where, advice)
    return table


def unreadable_record(cells: list[str], reason: str) -> list[str]:
    """A record of ``table_from_records`` that fails its row with ``reason`` (stage read)."""
    return _Broken(cells, reason)


_EXAMPLES: Final = 10  # rows named in a warning about many


class _Marks:
    """What a workbook's sheet says of its rows beyond their cells: rows hidden in Excel, and
    formulas with no saved value (``importer.workbook.sheetxml``). CSV and rows in memory have
    none."""

    def __init__(self, where: str) -> None:
        self.where = where
        self.rows: frozenset[int] = frozenset()  # the rows with a warning of their own
        self._hidden: frozenset[int] = frozenset()
        self._skip = False
        self._skipped: list[int] = []  # the first hidden rows left out
        self._skipped_count = 0
        self._unsaved: dict[int, list[int]] = {}  # row: the columns of its unsaved formulas

    def note(
        self,
        hidden: frozenset[int],
        unsaved: list[tuple[int, int]],
        header_row: int,
        *,
        skip: bool,
    ) -> None:
        self._hidden = frozenset(n for n in hidden if n > header_row)
        self._skip = skip
        for row, column in unsaved:
            if row > header_row:
                self._unsaved.setdefault(row, []).append(column)
        self.rows = frozenset(self._unsaved) | (frozenset() if skip else self._hidden)

    def skipped_rows(self) -> frozenset[int]:
        """The rows to leave out (hidden ones, with --skip-hidden-rows)."""
        return self._hidden if self._skip else frozenset()

    @property
    def skipped_count(self) -> int:
        """Hidden rows left out so far (with --skip-hidden-rows)."""
        return self._skipped_count

    def skip(self, number: int) -> bool:
        self._skipped_count += 1
        if len(self._skipped) < _EXAMPLES:
            self._skipped.append(number)
        return True

    def row_warnings(self, number: int) -> list[tuple[str, str]]:
        said = []
        if number in self._hidden and not self._skip:
            said.append(
                (
                    "hidden_row",
                    f"rows hidden in Excel (by a filter or by hand) in {self.where} are imported "
                    "like the others: check that they should be, or leave them out with "
                    "--skip-hidden-rows",
                )
            )
        columns = self._unsaved.get(number)
        if columns:
            letters = ", ".join(workbook.column_letter(c) for c in columns[:5])
            said.append(
                (
                    "unsaved_formula",
                    f"formulas with no saved value in {self.where} (column {letters} of row "
                    f"{number}, first) are read as empty cells: open the file in Excel, let it "
                    "calculate, save it, and import it again",
                )
            )
        return said

    def read_warnings(self) -> list[str]:
        if not self._skipped_count:
            return []
        rows = ", ".join(map(str, self._skipped))
        more = ", ..." if self._skipped_count > len(self._skipped) else ""
        return [
            f"{self._skipped_count:,} row(s) hidden in Excel in {self.where} were left out "
            f"(--skip-hidden-rows): rows {rows}{more}"
        ]


def _unreadable(shown: str, exc: Exception) -> InputError:
    # Only the exception's type: its text is a library's, and may quote the file's bytes.
    return InputError(
        f"{shown} cannot be read ({type(exc).__name__}): it is damaged or not what its name "
        "says; save it again as CSV or XLSX"
    )
