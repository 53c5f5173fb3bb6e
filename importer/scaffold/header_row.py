"""Finding the header row of a file with title rows above its header."""

from __future__ import annotations

import re
from collections.abc import Sequence

from importer.scaffold.shapes import looks_like_email

# How wide a header is against the rows under it (filled cells): a title ("Relatório de
# leads - março") is narrower. Row 1 is the header unless clearly not; a later row must be
# nearly as wide as the data to be taken instead.
HEADER_FILL = 0.5
LATER_HEADER_FILL = 0.8


def header_row_of(rows: Sequence[tuple[int, Sequence[str]]]) -> int:
    """The number of the first row that looks like a header: text that is not data (no e-mail,
    number, date or phone), its cells distinct, a filled row under it, and about as wide as the
    rows under it. Row 1 passes unless it is clearly a title (one cell, or half as wide); a
    later row must be nearly as wide. 1 when none does (the loader's default)."""
    filled = [(number, [c.strip() for c in cells if c.strip()]) for number, cells in rows]
    for index, (number, cells) in enumerate(filled):
        below = [c for _, c in filled[index + 1 :] if c]
        if not cells or not below or len(set(cells)) < len(cells):
            continue
        if any(_looks_like_data(cell) for cell in cells):
            continue
        widest = max(len(c) for c in below)
        if len(cells) == 1 and widest > 1:
            continue  # a title over the table
        needed = HEADER_FILL if number == 1 else LATER_HEADER_FILL
        if len(cells) >= needed * widest and len(below[0]) >= HEADER_FILL * len(cells):
            return number
    return 1


_DATA_SHAPES = re.compile(r"[\d\s.,:/()+\-%R$]+")


def _looks_like_data(cell: str) -> bool:
    """A cell a header would not hold: an e-mail, a number, a date, a phone."""
    return looks_like_email(cell) or _DATA_SHAPES.fullmatch(cell) is not None
