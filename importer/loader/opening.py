"""``open_table``: which kind of file this is, and the Table over it (CSV or workbook)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from importer import workbook
from importer.errors import ImporterError, InputError
from importer.loader.csvrecords import _csv_records
from importer.loader.encodings import (
    _ERRORS,
    _check_delimiter,
    _choose_encoding,
    _detect_delimiter,
    _excel_sep_line,
)
from importer.loader.header import _read_header
from importer.loader.source import _BINARY_SIGNATURES, _Source, _what_text_is
from importer.loader.table import Table, _unreadable

_WORKBOOK_SUFFIXES = frozenset({".xlsx", ".xlsm", ".xlsb", ".xls", ".ods"})
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")


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
    names = table.headers
    table.hidden_columns = {
        names[index]: workbook.column_letter(column)
        for column in data.hidden_columns
        if 0 <= (index := column - data.first_column) < len(names)
    }
    return table
