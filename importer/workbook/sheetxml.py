"""What an XLSX says of a sheet beyond its values, read in the workbook child beside calamine.

python-calamine gives values only. The sheet's XML also holds what a person relies on to read
them: each cell's number format (``s="N"`` names a style of styles.xml, whose ``numFmtId``
names a format), which rows are hidden (``<row hidden="1">``, by a filter or by hand), and which
formulas have no saved value (a file written by a program that does not calculate, opened by
nobody since: calamine sees an empty cell).

The sheet can be large (200,000 rows are 100 MB of XML), so it is read once, streamed in
chunks that end before a cell, and looked at closely only where it must be: the rows that say
``hidden``, the cells that hold a formula, the cells whose style has a format worth applying
(``numformat``). A chunk with none of those costs one decompression and three searches.
"""

from __future__ import annotations

import contextlib
import itertools
import operator
import posixpath
import re
import threading
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import IO, Final
from xml.etree import ElementTree

from importer.workbook.numformat import BUILTIN_FORMATS, Formatter, compile_format

_MAIN: Final = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
_RELS: Final = "{http://schemas.openxmlformats.org/package/2006/relationships}"
_DOC_RELS: Final = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}"
_CHUNK: Final = 1 << 20
_CELL: Final = re.compile(rb"<c\b([^>]*?)(?:/>|>(.*?)</c>)", re.DOTALL)
_ROW: Final = re.compile(rb"<row\b([^>]*)>")
_REF: Final = re.compile(rb"""\br\s*=\s*["']([A-Za-z]{1,3})(\d+)["']""")
_ROW_NUMBER: Final = re.compile(rb"""\br\s*=\s*["'](\d+)["']""")
_HIDDEN: Final = re.compile(rb"""\bhidden\s*=\s*["'](?:1|true)["']""")
_COLUMN_SPAN: Final = re.compile(rb"<col\b([^>]*)>")  # <cols><col min="2" max="3" hidden="1"/>
_MIN: Final = re.compile(rb"""\bmin\s*=\s*["'](\d+)["']""")
_MAX: Final = re.compile(rb"""\bmax\s*=\s*["'](\d+)["']""")
_TYPE: Final = re.compile(rb"""\bt\s*=\s*["'](\w+)["']""")
_VALUE: Final = re.compile(rb"<v\b[^>]*>\s*[^<\s]", re.DOTALL)
EXAMPLES: Final = 5  # cells named for formulas with no saved value


@dataclass
class SheetNotes:
    """What the sheet's XML says beyond its values, by 1-based row number and 0-based column."""

    formats: dict[int, list[tuple[int, Formatter]]] = field(default_factory=dict)
    hidden: list[int] = field(default_factory=list)
    hidden_columns: list[int] = field(default_factory=list)
    unsaved_formulas: list[tuple[int, int]] = field(default_factory=list)  # (row, column)


def notes_meanwhile(target: str, sheet_name: str) -> Callable[[], SheetNotes]:
    """Start ``read_notes`` in a thread; the function returned waits for its notes.

    calamine lets go of the GIL while it loads a sheet (2 s for 200,000 rows of 10 cells), and
    the scan costs about 0.5 s of one core on such a sheet: beside the load, on a second core,
    it adds little to the time a person waits.
    """
    found: list[SheetNotes] = []
    thread = threading.Thread(
        target=lambda: found.append(read_notes(target, sheet_name)), daemon=True
    )
    thread.start()

    def wait() -> SheetNotes:
        thread.join()
        return found[0] if found else SheetNotes()

    return wait


def read_notes(target: str, sheet_name: str) -> SheetNotes:
    """The notes of sheet ``sheet_name`` of the XLSX at ``target``; empty notes when its XML
    is not where or what the standard says (calamine read its values all the same)."""
    notes = SheetNotes()
    with contextlib.suppress(Exception), zipfile.ZipFile(target) as archive:
        part = _sheet_part(archive, sheet_name)
        if part is None:
            return notes
        styles = _formatted_styles(archive)
        with archive.open(part) as xml:
            _scan(xml, styles, notes)
    return notes


def _sheet_part(archive: zipfile.ZipFile, name: str) -> str | None:
    """The zip member that holds sheet ``name``: workbook.xml's r:id, through its rels."""
    book = ElementTree.fromstring(archive.read("xl/workbook.xml"))
    rel_id = next(
        (s.get(f"{_DOC_RELS}id") for s in book.iter(f"{_MAIN}sheet") if s.get("name") == name),
        None,
    )
    rels = ElementTree.fromstring(archive.read("xl/_rels/workbook.xml.rels"))
    for rel in rels.iter(f"{_RELS}Relationship"):
        if rel.get("Id") == rel_id:
            target = rel.get("Target", "")
            if target.startswith("/"):
                return target.lstrip("/")
            return posixpath.normpath(posixpath.join("xl", target))
    return None


def _formatted_styles(archive: zipfile.ZipFile) -> dict[bytes, Formatter]:
    """The cell styles (``s`` values) whose number format is applied, and its function."""
    try:
        root = ElementTree.fromstring(archive.read("xl/styles.xml"))
    except KeyError:
        return {}
    codes: dict[int, str] = dict(BUILTIN_FORMATS)
    for fmt in root.iter(f"{_MAIN}numFmt"):
        with contextlib.suppress(TypeError, ValueError):
            codes[int(fmt.get("numFmtId", ""))] = fmt.get("formatCode", "")
    compiled: dict[int, Formatter | None] = {}
    styles: dict[bytes, Formatter] = {}
    cell_xfs = root.find(f"{_MAIN}cellXfs")
    for index, xf in enumerate([] if cell_xfs is None else cell_xfs.iter(f"{_MAIN}xf")):
        if index == 0:
            continue  # the default style, of cells with no "s": never a format worth applying
        try:
            number = int(xf.get("numFmtId", "0"))
        except ValueError:
            continue
        if number not in compiled:
            compiled[number] = compile_format(codes[number]) if number in codes else None
        formatter = compiled[number]
        if formatter is not None:
            styles[str(index).encode()] = formatter
    return styles


def _chunks(xml: IO[bytes]) -> Iterator[bytes]:
    """The XML in chunks that end before a ``<c`` or ``<row``: no cell straddles two."""
    tail = b""
    while chunk := xml.read(_CHUNK):
        data = tail + chunk
        cut = max(data.rfind(b"<c"), data.rfind(b"<row"))
        if cut <= 0:
            tail = data
            continue
        yield data[:cut]
        tail = data[cut:]
    yield tail


def _scan(xml: IO[bytes], styles: dict[bytes, Formatter], notes: SheetNotes) -> None:
    styled = _Styled(styles) if styles else None
    for index, chunk in enumerate(_chunks(xml)):
        if index == 0 and b"<cols" in chunk:  # the column spans come before the sheet's data
            _hidden_columns(chunk, notes)
        if b"idden" in chunk:  # twice as fast to search as "hidden", whose h is common
            for attributes in _ROW.findall(chunk):
                if _HIDDEN.search(attributes):
                    number = _ROW_NUMBER.search(attributes)
                    if number is not None:
                        notes.hidden.append(int(number.group(1)))
        if b"<f" in chunk:
            _unsaved_formulas(chunk, notes)
        if styled is not None:
            styled.find(chunk, notes.formats)


class _Styled:
    """Finds the cells whose style has a format worth applying (a million in a large sheet)."""

    def __init__(self, styles: dict[bytes, Formatter]) -> None:
        ids = b"|".join(styles)
        # Excel, LibreOffice, openpyxl and XlsxWriter write r first and s next: one findall
        # gives (letters, row, style) with no Python work per cell.
        self.usual = re.compile(rb'<c r="([A-Z]{1,3})(\d+)" s="(' + ids + rb')"')
        self.count = re.compile(rb' s="(?:' + ids + rb')"')  # did the usual way find them all?
        # Any order, spaces or quotes: the slower way, for a chunk the usual way did not read.
        self.any = re.compile(rb"""<c\b[^>]*?\bs\s*=\s*["'](""" + ids + rb""")["'][^>]*>""")
        self.pairs = _Pairs(styles)

    def find(self, chunk: bytes, formats: dict[int, list[tuple[int, Formatter]]]) -> None:
        found = self.usual.findall(chunk)
        if len(found) != len(self.count.findall(chunk)):
            found = []
            for match in self.any.finditer(chunk):
                ref = _REF.search(match.group())
                if ref is not None:
                    found.append((ref.group(1), ref.group(2), match.group(1)))
        pairs = self.pairs
        # A row's cells come together: one dict entry per row, one lookup per cell.
        for row, group in itertools.groupby(found, _ROW_OF):
            cells = [pairs[letters, style] for letters, _, style in group]
            number = int(row)
            if number in formats:  # a row cut by a chunk's end, or written twice
                formats[number].extend(cells)
            else:
                formats[number] = cells


_ROW_OF: Final = operator.itemgetter(1)


class _Pairs(dict[tuple[bytes, bytes], tuple[int, Formatter]]):
    """(column letters, style) to (column index, its format's function), made once each."""

    def __init__(self, styles: dict[bytes, Formatter]) -> None:
        super().__init__()
        self.styles = styles

    def __missing__(self, key: tuple[bytes, bytes]) -> tuple[int, Formatter]:
        value = self[key] = (_column_index(key[0]), self.styles[key[1]])
        return value


def _hidden_columns(chunk: bytes, notes: SheetNotes) -> None:
    end = chunk.find(b"</cols>")
    for attributes in _COLUMN_SPAN.findall(chunk[: end if end >= 0 else len(chunk)]):
        if not _HIDDEN.search(attributes):
            continue
        low, high = _MIN.search(attributes), _MAX.search(attributes)
        if low is None:
            continue
        first = int(low.group(1))
        last = int(high.group(1)) if high is not None else first
        # A span may run to column XFD (16,384) to hide "everything to the right": only the
        # first columns of it can hold data a reader looks at.
        notes.hidden_columns.extend(range(first - 1, min(last, first + 200)))


def _unsaved_formulas(chunk: bytes, notes: SheetNotes) -> None:
    for attributes, body in _CELL.findall(chunk):
        if b"<f" not in body or _VALUE.search(body):
            continue
        kind = _TYPE.search(attributes)
        if kind is not None and kind.group(1) == b"str":
            continue  # a formula whose saved value is the empty text, as ="" gives
        ref = _REF.search(attributes)
        if ref is not None:
            notes.unsaved_formulas.append((int(ref.group(2)), _column_index(ref.group(1))))


def _column_index(letters: bytes) -> int:
    number = 0
    for letter in letters.upper():
        number = number * 26 + letter - 64
    return number - 1
