"""failures.xlsx: failures.csv as a workbook, for the people who fix their rows in Excel.

Excel splits a CSV it opens with a double click on its locale's list separator: in Portuguese
(and most of Europe) that is ``;``, so failures.csv shows each row in one cell. A workbook has no
separator to guess. failures.xlsx holds the same rows and columns as failures.csv (the row's own
columns under their original headers, then ``FAILURE_COLUMNS``), and:

- The user's cells are text, exactly as read: leading zeros, long numbers and cells starting with
  ``= + - @`` stay as they are, never a number or a formula, with no ``'`` before them (that is a
  CSV device; the loader leaves an XLSX report's cells as they are). They are formatted as text
  (``@``), so a fix typed into one stays text too (a CEP keeps its leading 0), and Excel is told
  not to flag them as numbers stored as text. The report's own numbers (``row``,
  ``http_status``, ``attempts``, ``source_row``) are numbers, so the filter sorts them as such.
- The header row is frozen, with a filter over the rows; the report's columns are set apart by a
  red fill, and error_message is wide enough to read. Columns are sized from the header and the
  first ``SAMPLE_ROWS`` rows.

openpyxl writes the workbook around the rows: the styles, the column widths, the frozen header,
the filter, the package's parts. The rows' XML is written here, the way openpyxl writes it (each
text an inline string), because openpyxl's write-only sheet costs about 10 µs a cell, lxml or
not: 100,000 failed rows of 19 columns took 19 s appended as plain values (which makes "=1+1" a
formula), 2.6 s here, against 1.4 s for failures.csv (benchmarks/failures_xlsx.py). The rows go
to a temporary file in the reports folder while their number is not known (the filter's range
names it), then into the workbook's zip; both temporary files are 0600 and removed, and the
workbook replaces failures.xlsx in one rename, as every report does.

Excel's limits are kept: a cell holds 32,767 characters, a sheet 1,048,576 rows. A failed row
with a longer cell is left out (openpyxl would cut the cell, and the cut text would be sent once
the row was fixed), and so are rows past the last; ``Written`` says which, for summary.json's
warnings. failures.csv has them all.
"""

from __future__ import annotations

import io
import itertools
import os
import re
import shutil
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Final

from importer.ledger import Failure
from importer.report import EXAMPLE_ROWS, FAILURE_COLUMNS, open_private

MAX_CELL_CHARS: Final = 32_767  # the most an Excel cell holds (UTF-16 code units)
MAX_ROWS: Final = 1_048_576  # the most an Excel sheet holds, header included
SAMPLE_ROWS: Final = 50  # rows that size the columns: a report may have millions
SHEET: Final = "failures"
WIDTHS: Final = {"error_message": 60}  # columns whose width is fixed (in characters)
MIN_WIDTH: Final = 8
MAX_WIDTH: Final = 40

_NUMBERS: Final = frozenset({"row", "http_status", "attempts", "source_row"})
_USER_HEADER_FILL: Final = "D9E1F2"  # light blue-grey: the user's own columns
_ERROR_HEADER_FILL: Final = "F4B6B0"  # red: the report's columns
_ERROR_FILL: Final = "FDE9E7"  # their cells, lighter
# What the text of a <t> element cannot hold as it is: & < > (entities), the control characters
# XML 1.0 forbids and CR (an XML reader turns it into LF), written as Excel's _xHHHH_ escape, and
# a text that looks like such an escape (its _ written _x005F_), so Excel and calamine read back
# exactly the text written.
_SPECIAL: Final = re.compile(r"[&<>\x00-\x08\x0b\x0c\x0e-\x1f\r\ufffe\uffff]|_x[0-9A-Fa-f]{4}_")
_UNSAFE: Final = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\r\ufffe\uffff]|_(?=x[0-9A-Fa-f]{4}_)")
_XML_SPACE: Final = " \t\n\r"
_TEXT: Final = ' t="inlineStr"><is><t>'
_EMPTY_SHEET_DATA: Final = re.compile(rb"<sheetData\s*/>|<sheetData>\s*</sheetData>")
_COPY_CHUNK: Final = 1 << 20


@dataclass
class Written:
    """What failures.xlsx holds, and the failed rows it had to leave out."""

    rows: int = 0
    too_long: int = 0  # rows with a cell over MAX_CELL_CHARS
    too_long_rows: list[int] = field(default_factory=list)  # their numbers ("row"), the first
    past_last_row: int = 0  # rows after the sheet's last

    def warnings(self) -> list[str]:
        """What summary.json says of the rows left out."""
        said = []
        if self.too_long:
            shown = ", ".join(map(str, self.too_long_rows))
            more = ", ..." if self.too_long > len(self.too_long_rows) else ""
            said.append(
                f"failures.xlsx leaves out {self.too_long:,} failed row(s) with a cell longer "
                f"than the {MAX_CELL_CHARS:,} characters an Excel cell holds (row {shown}{more}):"
                " fix those in failures.csv"
            )
        if self.past_last_row:
            said.append(
                f"failures.xlsx holds the first {self.rows:,} of the "
                f"{self.rows + self.too_long + self.past_last_row:,} failed rows (an "
                "Excel sheet holds no more): failures.csv has them all"
            )
        return said


def write_failures_xlsx(
    path: Path, source_headers: Sequence[str], failures: Iterable[Failure]
) -> Written:
    """Write ``failures`` to ``path`` as failures.csv's rows, or remove ``path`` when it would
    hold none (a failures.xlsx left by an earlier run would list rows that are fixed now)."""
    rows = iter(failures)
    sample = list(itertools.islice(rows, SAMPLE_ROWS))
    if not sample:
        path.unlink(missing_ok=True)
        return Written()
    headers = [*source_headers, *FAILURE_COLUMNS]
    width = len(source_headers)
    tmp = path.with_name(f".{path.name}.tmp")
    rows_tmp = path.with_name(f".{path.name}.rows.tmp")
    try:
        sheet = _Sheet(headers, width)
        with open_private(rows_tmp, "w", encoding="utf-8", newline="") as out:
            written = sheet.write_rows(out, itertools.chain(sample, rows))
        if not written.rows:  # every row left out: a sheet of none would only puzzle
            path.unlink(missing_ok=True)
            return written
        template = sheet.template(widths(headers, [_values(f, width) for f in sample]))
        with open_private(tmp, "wb") as handle:
            _assemble(template, sheet.part, rows_tmp, handle, sheet.ignored_errors.encode())
        os.replace(tmp, path)
    finally:
        rows_tmp.unlink(missing_ok=True)
        tmp.unlink(missing_ok=True)
    return written


def widths(headers: Sequence[str], sample: Sequence[Sequence[Any]]) -> list[float]:
    """Each column's width in characters: its header's or its longest first cell's, within
    MIN_WIDTH-MAX_WIDTH (the filter's button takes about three characters of the header)."""
    found = []
    for i, header in enumerate(headers):
        fixed = WIDTHS.get(header) if i >= len(headers) - len(FAILURE_COLUMNS) else None
        if fixed is not None:
            found.append(float(fixed))
            continue
        longest = max(
            (len(str(values[i])) for values in sample if values[i] is not None), default=0
        )
        found.append(float(min(MAX_WIDTH, max(MIN_WIDTH, len(header) + 3, longest + 1))))
    return found


def _values(f: Failure, width: int) -> list[Any]:
    """A failure as failures.csv's cells: the row's own (as many as the header has), then the
    report's; numbers stay numbers, a missing value is None."""
    cells: list[Any] = (list(f.cells) + [""] * width)[:width]
    return [
        *cells,
        f.row,
        f.stage,
        f.http_status,
        f.error_type,
        f.message,
        f.attempts,
        f.source_row,
        f.row_id,
    ]


def _xml_text(text: str) -> str:
    if _SPECIAL.search(text) is None:
        return text
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _UNSAFE.sub(lambda m: f"_x{ord(m.group()):04X}_", text)


def _too_long(text: str) -> bool:
    # Excel counts UTF-16 code units: a character outside the BMP (an emoji) is two.
    return len(text) > MAX_CELL_CHARS // 2 and len(text.encode("utf-16-le")) > 2 * MAX_CELL_CHARS


class _Sheet:
    """The workbook's styles (from openpyxl) and its rows as XML text, column by column."""

    def __init__(self, headers: Sequence[str], width: int) -> None:
        # Imported here, when there are failures: openpyxl takes a quarter of a second to import.
        # No stubs in the project's dependencies.
        import openpyxl  # type: ignore[import-untyped]
        from openpyxl.cell import WriteOnlyCell  # type: ignore[import-untyped]
        from openpyxl.styles import Font, PatternFill  # type: ignore[import-untyped]
        from openpyxl.utils import get_column_letter  # type: ignore[import-untyped]

        self.headers = headers
        self.width = width
        self.book = openpyxl.Workbook(write_only=True)
        self.ws: Any = self.book.create_sheet(SHEET)

        def style(*, bold: bool = False, fill: str | None = None, text: bool = True) -> int:
            cell = WriteOnlyCell(self.ws)
            if bold:
                cell.font = Font(name="Calibri", size=11, bold=True)
            if fill:
                cell.fill = PatternFill("solid", fgColor=fill)
            if text:
                cell.number_format = "@"
            return int(cell.style_id)  # registers the style: styles.xml will hold it

        user_header = style(bold=True, fill=_USER_HEADER_FILL)
        error_header = style(bold=True, fill=_ERROR_HEADER_FILL)
        user_cell = style()
        error_text = style(fill=_ERROR_FILL)
        error_number = style(fill=_ERROR_FILL, text=False)
        self.letters = [get_column_letter(i + 1) for i in range(len(headers))]
        header_styles = [user_header if i < width else error_header for i in range(len(headers))]
        self.header_xml = "".join(
            f'<c r="{letter}1" s="{s}"{_inline(h)}</c>' if h else f'<c r="{letter}1" s="{s}"/>'
            for letter, s, h in zip(self.letters, header_styles, headers, strict=True)
        )
        # Per column, the text around a cell's row number and value.
        self.cells: list[tuple[str, str, str, str]] = []
        for i, (letter, header) in enumerate(zip(self.letters, headers, strict=True)):
            s = user_cell if i < width else error_number if header in _NUMBERS else error_text
            self.cells.append((f'<c r="{letter}', f'" s="{s}"', f'" s="{s}"><v>', f'" s="{s}"/>'))
        self.rows = 0
        self.part = ""

    def write_rows(self, out: IO[str], failures: Iterator[Failure]) -> Written:
        written = Written()
        width, write, cells = self.width, out.write, self.cells
        write(f'<row r="1">{self.header_xml}</row>')
        number = 1
        for f in failures:
            values = _values(f, width)
            texts = [v for v in values if type(v) is str]
            if max(map(len, texts)) > MAX_CELL_CHARS // 2 and any(map(_too_long, texts)):
                written.too_long += 1
                if len(written.too_long_rows) < EXAMPLE_ROWS:
                    written.too_long_rows.append(f.row)
                continue
            if number == MAX_ROWS:
                written.past_last_row += 1
                continue
            number += 1
            n = str(number)
            parts = [f'<row r="{n}">']
            plain = _SPECIAL.search("\n".join(texts)) is None  # one search a row, not a cell
            for (start, styled, numeric, empty), value in zip(cells, values):  # noqa: B905
                if type(value) is str and value:
                    if plain and value[0] not in _XML_SPACE and value[-1] not in _XML_SPACE:
                        parts.append(f"{start}{n}{styled}{_TEXT}{value}</t></is></c>")
                    else:
                        parts.append(f"{start}{n}{styled}{_inline(value)}</c>")
                elif type(value) is int:
                    parts.append(f"{start}{n}{numeric}{value}</v></c>")
                else:
                    parts.append(f"{start}{n}{empty}")
            parts.append("</row>")
            write("".join(parts))
        written.rows = self.rows = number - 1
        return written

    def template(self, column_widths: Sequence[float]) -> bytes:
        """The workbook with an empty sheet, its columns sized, header frozen, filter set."""
        ws = self.ws
        for letter, width in zip(self.letters, column_widths, strict=True):
            ws.column_dimensions[letter].width = width
        ws.freeze_panes = "A2"
        ws.auto_filter.ref = f"A1:{self.letters[-1]}{self.rows + 1}"
        buffer = io.BytesIO()
        self.book.save(buffer)
        self.part = ws.path.lstrip("/")  # the sheet's name in the zip, once saved
        return buffer.getvalue()

    @property
    def ignored_errors(self) -> str:
        """Excel's green "number stored as text" mark on every CEP and phone: not wanted."""
        if not self.rows:
            return ""
        return (
            f'<ignoredErrors><ignoredError sqref="A2:{self.letters[-1]}{self.rows + 1}" '
            'numberStoredAsText="1"/></ignoredErrors>'
        )


def _inline(text: str) -> str:
    """A text cell's type and value, after its style: ``t="inlineStr"><is><t>...</t></is>``."""
    escaped = _xml_text(text)
    if text[0] in _XML_SPACE or text[-1] in _XML_SPACE:  # XML readers strip it, unless told
        return f' t="inlineStr"><is><t xml:space="preserve">{escaped}</t></is>'
    return f"{_TEXT}{escaped}</t></is>"


def _assemble(template: bytes, part: str, rows: Path, out: IO[bytes], ignored: bytes) -> None:
    """Copy openpyxl's workbook into ``out``, its empty sheet filled with the rows' XML and
    ``ignored`` (the ignoredErrors element)."""
    with (
        zipfile.ZipFile(io.BytesIO(template)) as source,
        # The fastest compression: the sheet's XML shrinks 11x at level 1, 15x at level 6 (which
        # takes a second more for 100,000 rows).
        zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as target,
    ):
        for info in source.infolist():
            data = source.read(info)
            if info.filename != part:
                target.writestr(info.filename, data)
                continue
            pieces = _EMPTY_SHEET_DATA.split(data)
            if len(pieces) != 2 or not pieces[1].endswith(b"</worksheet>"):
                raise RuntimeError(f"openpyxl wrote {part} in an unexpected shape")
            head, tail = pieces
            # ignoredErrors comes after pageMargins (the last element openpyxl writes here) in
            # the schema's order, which Excel enforces.
            head += b"<sheetData>"
            tail = b"</sheetData>" + tail[: -len(b"</worksheet>")] + ignored + b"</worksheet>"
            # Streamed into the zip: a million rows never sit in memory. The zip's 64-bit fields
            # only past 2 GiB, as zipfile decides when it knows the size: Excel offers to repair
            # a file that uses them when it need not.
            size = len(head) + rows.stat().st_size + len(tail)
            large = size * 1.05 > zipfile.ZIP64_LIMIT
            with target.open(part, "w", force_zip64=large) as sheet, rows.open("rb") as xml:
                sheet.write(head)
                shutil.copyfileobj(xml, sheet, _COPY_CHUNK)
                sheet.write(tail)
