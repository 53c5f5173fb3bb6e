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

from importer.errors import printable
from importer.loader.csvrecords import MAX_CELL_CHARS, MAX_LINE_CHARS, MAX_LINES_PER_RECORD
from importer.loader.encodings import check_text_options
from importer.loader.header import FIRST_ROWS, _unique
from importer.loader.opening import open_table
from importer.loader.source import ChangedFile, FileIdentity, ListedFile
from importer.loader.table import Table, table_from_records, unreadable_record

__all__ = [
    "FIRST_ROWS",
    "MAX_CELL_CHARS",
    "MAX_LINES_PER_RECORD",
    "MAX_LINE_CHARS",
    "ChangedFile",
    "FileIdentity",
    "ListedFile",
    "Table",
    "_unique",
    "check_text_options",
    "open_table",
    "printable",
    "table_from_records",
    "unreadable_record",
]
