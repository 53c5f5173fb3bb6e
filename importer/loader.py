"""Read a spreadsheet (CSV, XLSX, XLSM, XLSB, XLS, ODS) as one stream of rows of text.

``open_table(path)`` looks at the file's bytes (not only its name), refuses what is not a
spreadsheet with an ``InputError``, reads the header and returns a ``Table``; ``Table.rows()``
then streams ``Row`` values once, at flat memory for CSV.

Decisions worth knowing:

- Every cell is text exactly as a person sees it; nothing is trimmed here (the mapping trims).
  Header names used as keys are trimmed of surrounding spaces; ``source_headers`` keep them.
- A header cell left empty between named ones is named after its column letter (``Column C``);
  empty header cells at the right end are dropped. A value in a column that has no header fails
  its row (for a CSV that usually means an unquoted delimiter shifted the cells), while empty
  cells there are ignored (Excel's trailing ``;;;``).
- A record that cannot be read (a quote never closed, a stray quote, a cell over
  ``MAX_CELL_CHARS``) becomes one failed row; reading starts again on the line after that row's
  first line, so one bad quote cannot swallow the rows after it.
- One of our own failures reports read back loses its report columns; a ``failures.csv`` also
  loses the formula escaping the CSV reports apply (``report.unescape_formula``), while a
  ``failures.xlsx`` holds its cells as they are (a cell there may really start with ``'=``).
- A row that fails because it has cells past the header's last column keeps them, under keys
  that start with a space (header names are trimmed, so none does): failures.csv gives the row
  back whole.
- Workbooks are read by python-calamine in a child process (``importer.workbook``), which loads
  the whole sheet into memory (about 1 KB per row of 10 cells) and streams its rows as text.
- The file is opened once, and every read (the first bytes, the encoding scan, the rows, the
  workbook reader's process) goes through that one descriptor: a name swapped for another file
  meanwhile changes nothing. A ``ListedFile`` (a file the watcher listed in an inbox others can
  write to) is opened without following a link, and read only if it is still the file listed.
- File names in messages go through ``printable``: a name cannot end a line or drive a terminal.
"""

from __future__ import annotations

import codecs
import csv
import errno
import io
import itertools
import os
import re
import stat
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PosixPath
from types import TracebackType
from typing import IO, Final

from importer import workbook
from importer.errors import ImporterError, InputError, printable
from importer.records import Row
from importer.report import FAILURE_COLUMNS, unescape_formula

MAX_CELL_CHARS: Final = workbook.MAX_CELL_CHARS  # one limit for CSV and workbook cells
MAX_LINE_CHARS: Final = 2 << 20
MAX_LINES_PER_RECORD: Final = 1000  # a quoted cell spanning more lines is a quote never closed
FIRST_ROWS: Final = 10  # rows a Table keeps as read, from row 1 (Table.first_rows)

_HEAD_BYTES = 64 * 1024
_SCAN_CHUNK = 1 << 20
_SAMPLE_CHARS = 64 * 1024
_SAMPLE_RECORDS = 200
_DELIMITERS = (",", ";", "\t", "|")
_WORKBOOK_SUFFIXES = frozenset({".xlsx", ".xlsm", ".xlsb", ".xls", ".ods"})
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")
_BINARY_SIGNATURES = (
    (b"%PDF-", "a PDF document"),
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"Rar!", "a RAR archive"),
    (b"7z\xbc\xaf", "a 7-Zip archive"),
)
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


def open_table(
    path: Path | str,
    *,
    encoding: str | None = None,
    delimiter: str | None = None,
    sheet: str | None = None,
    header_row: int = 1,
    allow_empty: bool = False,
    on_reader: Callable[[Callable[[], None]], None] | None = None,
    skip_hidden_rows: bool = False,
) -> Table:
    """Open a spreadsheet and read its header; raise ``InputError`` when it cannot be used.

    A header with no row under it (blank rows and export footers do not count) is such an
    error, unless ``allow_empty``. ``skip_hidden_rows`` leaves out the rows an XLSX hides (by a
    filter or by hand); else they are read, and ``Table.row_warnings`` says so. For a workbook,
    ``on_reader`` receives a function that stops the process reading it, so another thread
    can cancel a long load. Whatever fails while the file is read (a damaged zip that a library
    chokes on, say) is an ``InputError`` naming the file.
    """
    path = path if isinstance(path, Path) else Path(path)  # a ListedFile stays one
    if header_row < 1:
        raise InputError(f"--header-row must be 1 or more, not {header_row}")
    source = _Source(path)
    try:
        table = _open(source, encoding, delimiter, sheet, header_row, on_reader, skip_hidden_rows)
        if not allow_empty:
            table._require_rows(
                table.shown if table.sheet is None else f"sheet '{table.sheet}' of {table.shown}",
                "export the data again with its rows"
                if table.sheet is None
                else "choose another sheet with --sheet, or export the data again with its rows",
            )
        return table
    except ImporterError:
        source.close()
        raise
    except Exception as exc:
        source.close()
        raise _unreadable(source.shown, exc) from None
    except BaseException:
        source.close()
        raise


def _open(
    source: _Source,
    encoding: str | None,
    delimiter: str | None,
    sheet: str | None,
    header_row: int,
    on_reader: Callable[[Callable[[], None]], None] | None,
    skip_hidden_rows: bool,
) -> Table:
    path, shown = source.path, source.shown
    head = source.head()
    if head.startswith(_ZIP_MAGICS) or head.startswith(_OLE_MAGIC):
        warnings = [
            f"{flag} is ignored: {shown} is a workbook, not a CSV"
            for flag, value in (("--encoding", encoding), ("--delimiter", delimiter))
            if value is not None
        ]
        return _open_workbook(
            source, head, sheet, header_row, warnings, on_reader, skip_hidden_rows
        )
    if path.suffix.lower() in _WORKBOOK_SUFFIXES:
        raise InputError(
            f"{shown} is named like a workbook but is not one ({_what_text_is(head)}): "
            "if it is a CSV, rename it to .csv; otherwise open it in Excel and save it as XLSX"
        )
    for signature, what in _BINARY_SIGNATURES:
        if head.startswith(signature):
            raise InputError(
                f"{shown} is {what}, not a spreadsheet: export the data as CSV or XLSX"
            )
    warnings = [f"--sheet is ignored: {shown} is a CSV file"] if sheet is not None else []
    return _open_csv(source, head, encoding, delimiter, header_row, warnings)


def _unreadable(shown: str, exc: Exception) -> InputError:
    # Only the exception's type: its text is a library's, and may quote the file's bytes.
    return InputError(
        f"{shown} cannot be read ({type(exc).__name__}): it is damaged or not what its name "
        "says; save it again as CSV or XLSX"
    )


# --- CSV -----------------------------------------------------------------------------------------


def _open_csv(
    source: _Source,
    head: bytes,
    encoding: str | None,
    delimiter: str | None,
    header_row: int,
    warnings: list[str],
) -> Table:
    codec, encoding_label = _choose_encoding(source, head, encoding)
    hinted = _excel_sep_line(source, codec)
    if delimiter is not None:
        delimiter = _check_delimiter(delimiter)
    elif hinted is not None:
        delimiter = hinted
    else:
        delimiter = _detect_delimiter(source, codec, header_row)
    text = source.text(codec, _ERRORS)
    try:
        if hinted is not None:
            text.readline()  # Excel hides its sep= line: the row after it is row 1
        records = _csv_records(text, delimiter)
        header = _read_header(records, header_row, where=source.shown)
    except BaseException:
        text.close()
        raise
    shown = "tab" if delimiter == "\t" else f"'{delimiter}'"
    description = f"CSV, {encoding_label}, {shown}-separated"
    if hinted is not None:
        description += " (its first line says sep=)"
    if header.is_report:
        description += ", a failures report: its report columns are left out"
    return Table(
        source.path,
        records=records,
        header=header,
        header_row=header_row,
        description=description,
        warnings=warnings + header.warnings,
        close=source.closing(text),
        shown=source.shown,
    )


_ERRORS = "rd-importer-latin1"


def _latin1_fallback(exc: UnicodeError) -> tuple[str, int]:
    # Windows-1252 leaves five bytes undefined; Latin-1 reads them as the C1 controls they are.
    if not isinstance(exc, UnicodeDecodeError):
        raise exc
    return exc.object[exc.start : exc.end].decode("latin-1"), exc.end


codecs.register_error(_ERRORS, _latin1_fallback)


def check_text_options(encoding: str | None, delimiter: str | None) -> None:
    """Raise ``InputError`` when ``--encoding`` or ``--delimiter`` is unusable for any file."""
    if encoding is not None:
        _codec(encoding)
    if delimiter is not None:
        _check_delimiter(delimiter)


# Codecs Python knows that read no file's text: they turn bytes into other bytes (base64, zlib,
# hex, ...; Python marks those), text into other text (rot13), or domain names into others.
_NOT_FILE_ENCODINGS: Final = frozenset(
    {"idna", "punycode", "undefined", "unicode-escape", "raw-unicode-escape"}
)


def _codec(given: str) -> str:
    try:
        info = codecs.lookup(given)
    except LookupError:
        raise InputError(
            f"--encoding {given!r} is not an encoding Python knows: "
            "try utf-8, cp1252, latin-1 or utf-16"
        ) from None
    if not getattr(info, "_is_text_encoding", True) or info.name in _NOT_FILE_ENCODINGS:
        raise InputError(
            f"--encoding {given!r} is not a text encoding (it turns bytes into other bytes or "
            "names into other names): try utf-8, cp1252, latin-1 or utf-16"
        )
    return info.name


def _choose_encoding(source: _Source, head: bytes, given: str | None) -> tuple[str, str]:
    if given is not None:
        codec = _codec(given)
        if codec == "utf-8" and head.startswith(codecs.BOM_UTF8):
            codec = "utf-8-sig"
        _scan_text(source, codec, given)
        return codec, given
    if head.startswith(codecs.BOM_UTF8):
        codec, label = "utf-8-sig", "UTF-8 with BOM"
    elif head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        codec, label = "utf-16", "UTF-16"
    else:
        codec, label = _guess_utf16_without_bom(head), "UTF-16"
    if codec:
        _scan_text(source, codec, label)
        return codec, label
    try:
        _scan_text(source, "utf-8", "UTF-8", detecting=True)
    except _NotThisEncoding:
        # Every byte is a character in Windows-1252 (with the Latin-1 fallback): only NULs matter.
        _scan_text(source, "cp1252", "Windows-1252")
        return "cp1252", "Windows-1252"
    return "utf-8", "UTF-8"


def _guess_utf16_without_bom(head: bytes) -> str:
    sample = head[:4096]
    half = len(sample) // 2
    if half < 2:
        return ""
    even_nuls = sample[0::2].count(0)
    odd_nuls = sample[1::2].count(0)
    if odd_nuls > 0.4 * half and even_nuls < 0.05 * half:
        return "utf-16-le"
    if even_nuls > 0.4 * half and odd_nuls < 0.05 * half:
        return "utf-16-be"
    return ""


class _NotThisEncoding(Exception):
    pass


def _scan_text(source: _Source, codec: str, label: str, *, detecting: bool = False) -> None:
    """Decode the whole file once, cheaply: invalid bytes anywhere or a NUL refuse it now."""
    decoder = codecs.getincrementaldecoder(codec)(_ERRORS if codec == "cp1252" else "strict")
    ascii_safe = "a\n".encode(codec) == b"a\n"
    offset = 0
    path = source.shown
    try:
        with source.reader() as raw:
            while chunk := raw.read(_SCAN_CHUNK):
                if ascii_safe and chunk.isascii() and not decoder.getstate()[0]:
                    nul = chunk.find(0)
                else:
                    nul = decoder.decode(chunk).find("\0")
                    if nul >= 0 and ascii_safe:
                        nul = chunk.find(0)
                if nul >= 0:
                    raise InputError(
                        f"{path} looks like a binary file, not a CSV (it holds NUL bytes, "
                        f"the first at byte {offset + nul:,}): export the data as CSV or XLSX"
                    )
                offset += len(chunk)
            decoder.decode(b"", final=True)
    except UnicodeDecodeError as exc:
        if detecting:
            raise _NotThisEncoding from None
        raise InputError(
            f"{path} is not valid {label} text (near byte {offset + exc.start:,}): "
            "leave out --encoding to let the importer detect it, or give the right one"
        ) from None
    except OSError as exc:
        raise InputError(f"{path} cannot be read ({exc.strerror}): check the file") from None


def _check_delimiter(given: str) -> str:
    if given.lower() in ("tab", "\\t"):
        return "\t"
    if len(given) != 1 or given in '"\r\n':
        raise InputError(
            f"--delimiter {given!r} must be one character such as ',' ';' '|' or 'tab'"
        )
    return given


_SEP_LINE = re.compile(r"sep=([^\"\r\n])(?:\r\n|\r|\n)?")


def _excel_sep_line(source: _Source, codec: str) -> str | None:
    """The delimiter named by a first line ``sep=;``, which tells Excel how to split the file."""
    with source.text(codec, _ERRORS) as text:
        found = _SEP_LINE.fullmatch(text.readline(16))
    return found.group(1) if found else None


def _detect_delimiter(source: _Source, codec: str, header_row: int) -> str:
    """Pick the delimiter that splits the header and the rows after it most consistently."""
    with source.text(codec, _ERRORS) as text:
        sample = text.read(_SAMPLE_CHARS)
        complete = not text.read(1)
    if not complete:
        end = max(sample.rfind("\n"), sample.rfind("\r"))
        sample = sample[: end + 1] if end > 0 else sample
    best, best_score = ",", (0, 0.0, 0)
    for delimiter in _DELIMITERS:
        try:
            records = list(
                itertools.islice(
                    csv.reader(io.StringIO(sample), delimiter=delimiter),
                    header_row - 1,
                    header_row + _SAMPLE_RECORDS,
                )
            )
        except csv.Error:
            continue
        if not complete and len(records) > 2:
            records.pop()  # it may be cut in the middle of a quoted line break
        records = [r for r in records if any(r)]
        if not records:
            continue
        width = len(records[0])
        rest = records[1:]
        fitting = sum(1 for r in rest if len(r) == width or not any(r[width:]))
        score = (int(width > 1), fitting / len(rest) if rest else 1.0, width)
        if score > best_score:
            best, best_score = delimiter, score
    return best


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


# --- header --------------------------------------------------------------------------------------


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


# --- workbooks -----------------------------------------------------------------------------------


def _open_workbook(
    source: _Source,
    head: bytes,
    sheet: str | None,
    header_row: int,
    warnings: list[str],
    on_reader: Callable[[Callable[[], None]], None] | None,
    skip_hidden_rows: bool,
) -> Table:
    shown = source.shown
    kind = workbook.container_kind(shown, head, source.reader)
    data = workbook.Sheet(shown, kind, sheet, on_start=on_reader, fd=source.fd)
    where = f"sheet '{data.name}' of {shown}"
    try:
        records = data.records()
        header = _read_header(records, header_row, where=where, first_column=data.first_column)
    except BaseException:
        data.close()
        raise
    table = Table(
        source.path,
        records=records,
        header=header,
        header_row=header_row,
        description=f"{kind}, sheet '{data.name}'",
        warnings=warnings + header.warnings,
        close=source.closing(data),
        sheet=data.name,
        shown=shown,
    )
    table.marks.note(data.hidden_rows, data.unsaved_formulas, header_row, skip=skip_hidden_rows)
    return table


_EXAMPLES: Final = 10  # rows named in a warning about many


class _Marks:
    """What a workbook's sheet says of its rows beyond their cells: rows hidden in Excel, and
    formulas with no saved value (``importer.sheetxml``). CSV and rows in memory have none."""

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


# --- opening -------------------------------------------------------------------------------------


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
