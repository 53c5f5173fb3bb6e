"""The CSV reports' shapes: successes.csv and failures.csv columns, formula escaping (a cell a
spreadsheet would run as a formula is written as text, and read back as it was), payloads.jsonl.
UTF-8 with a BOM, so Excel shows accents right."""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import IO, Final

from importer.ledger import Failure, Success
from importer.private_files import open_private, replace_atomically

SUCCESS_COLUMNS: Final = (
    "row",
    "email",
    "conversion_identifier",
    "event_uuid",
    "sent_at",
    "source_row",  # the row's number in the file it first came from
    "sent_in",  # the file whose run sent it
)
# failures.csv: the row's own columns, then these. The loader recognises a failures.csv by them
# (and by the first six alone: what earlier releases wrote), and reads source_row and row_id
# back, so a fixed row keeps its number and is known as the row that failed.


FAILURE_COLUMNS: Final = (
    "row",
    "error_stage",
    "http_status",
    "error_type",
    "error_message",
    "attempts",
    "source_row",
    "row_id",
)
# Payload fields whose values a message may show: none of them holds personal data.


_ESCAPABLE = re.compile(r"'*[=+\-@\t\r]")


_ESCAPED = re.compile(r"'+[=+\-@\t\r]")


def escape_formula(cell: str) -> str:
    """Prefix ``'`` to a cell a spreadsheet program would run as a formula.

    Cells already starting with ``'`` before such a character get one more, so that
    ``unescape_formula(escape_formula(x)) == x`` for every text.
    """
    if cell and cell[0] in "'=+-@\t\r" and _ESCAPABLE.match(cell):
        return "'" + cell
    return cell


def unescape_formula(cell: str) -> str:
    """Undo ``escape_formula``: drop the ``'`` the reports put before ``= + - @`` tab or CR."""
    if cell[:1] == "'" and _ESCAPED.match(cell):
        return cell[1:]
    return cell


def write_successes(path: Path, rows: Iterable[Success]) -> None:
    def write(handle: IO[str]) -> None:
        out = csv.writer(handle)
        out.writerow(SUCCESS_COLUMNS)
        for s in rows:
            out.writerow(
                [
                    s.row,
                    escape_formula(s.email),
                    escape_formula(s.conversion_id),
                    escape_formula(s.event_uuid),
                    escape_formula(s.sent_at),
                    "" if s.source_row is None else s.source_row,
                    escape_formula(s.sent_in),
                ]
            )

    replace_atomically(path, write)


def write_failures(path: Path, source_headers: Sequence[str], rows: Iterable[Failure]) -> None:
    width = len(source_headers)

    def write(handle: IO[str]) -> None:
        out = csv.writer(handle)
        out.writerow([escape_formula(h) for h in source_headers] + list(FAILURE_COLUMNS))
        for f in rows:
            # Cells past the header's width (the row failed for them: an unquoted delimiter)
            # follow the report's columns, under no header: the row comes back whole, and read
            # back unfixed it fails again for the same reason instead of being sent shifted.
            extra = f.cells[width:]
            cells = (list(f.cells) + [""] * width)[:width]
            status_text = "" if f.http_status is None else f.http_status
            # The error's type and words may be the server's own: escaped like the cells.
            out.writerow(
                [escape_formula(c) for c in cells]
                + [f.row, f.stage, status_text, escape_formula(f.error_type)]
                + [escape_formula(f.message), f.attempts]
                + ["" if f.source_row is None else f.source_row, f.row_id or ""]
                + [escape_formula(c) for c in extra]
            )

    replace_atomically(path, write)


def write_payloads(path: Path, rows: Iterable[tuple[int, bytes]]) -> None:
    """payloads.jsonl: one line per row a dry run would send, its exact request body."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open_private(tmp, "wb") as handle:
        for row, body in rows:
            handle.write(b'{"row":%d,"request":%s}\n' % (row, body))
    os.replace(tmp, path)
