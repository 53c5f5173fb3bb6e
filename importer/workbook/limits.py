"""The limits a workbook is read within, and what is said when one is passed: shared by the
parent (``importer.workbook``) and the child that reads the sheet (``importer.workbook.child``)."""

from __future__ import annotations

import os
import re
import struct
from pathlib import Path
from typing import Final

from importer.errors import InputError

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


def _too_many_cells_message(path: Path | str, last_row: int, last_column: int) -> str:
    return (
        f"a sheet of {path} spans {last_row:,} rows x {last_column:,} columns "
        f"(up to {column_letter(last_column - 1)}{last_row}), too many cells to load: "
        "delete the stray cells far from the data, or save the data as CSV"
    )


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


def _password_protected(path: Path | str) -> InputError:
    return InputError(
        f"{path} is protected with a password: open it in Excel, remove the password "
        "(File > Info > Protect Workbook > Encrypt with Password), save, and import that file"
    )
