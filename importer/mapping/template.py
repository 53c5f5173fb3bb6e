"""Templates: ``{template: "{Nome} {Sobrenome}"}``, text with ``{Column}`` placeholders.

Only plain substitution: ``{{``/``}}`` is a literal brace, and ``{0}``, ``{A.b}``, ``{A[0]}``,
``{A!r}``, ``{A:>10}`` are mapping errors (``str.format`` would read attributes of the cells).
In a row, the spaces left by empty parts collapse, the result is trimmed, and a template whose
every placeholder is empty gives "" (the field is left out).
"""

from __future__ import annotations

import re
from collections.abc import Callable

Part = tuple[str, str | None]  # (literal text, None) or (column, column)

_GAP = "\ue000"  # a private-use character marks where an empty cell was
_AROUND_GAPS = re.compile(" *(?:\ue000 *)+")


def parse_template(template: str) -> list[Part]:
    """``"{Nome} {Sobrenome}"`` as (literal, None) and (column, column) parts.

    Raises ValueError naming what is wrong: only ``{Column Name}`` substitution exists.
    """
    parts: list[Part] = []
    literal: list[str] = []
    i = 0
    while i < len(template):
        char = template[i]
        if char in "{}" and template[i + 1 : i + 2] == char:
            literal.append(char)
            i += 2
            continue
        if char == "}":
            raise ValueError("template has a '}' without '{' (write '}}' for a literal brace)")
        if char != "{":
            literal.append(char)
            i += 1
            continue
        end = template.find("}", i + 1)
        if end < 0:
            raise ValueError("template has a '{' that is never closed (write '{{' for a brace)")
        name = _placeholder(template[i + 1 : end])
        if literal:
            parts.append(("".join(literal), None))
            literal = []
        parts.append((name, name))
        i = end + 1
    if literal:
        parts.append(("".join(literal), None))
    return parts


def _placeholder(name: str) -> str:
    """The column a placeholder names; ValueError for anything but plain substitution."""
    if "{" in name:
        raise ValueError(f"template placeholder '{{{name}}}' holds a '{{'")
    if not name.strip() or name.isdigit() or re.search(r"[.\[!:]\S|[\[\]]", name):
        raise ValueError(
            f"template placeholder '{{{name}}}' is not a column name: templates only "
            "substitute {Column Name} (no positions, attributes, indexes or format specs)"
        )
    return name


def template_reader(template: str | list[str]) -> Callable[[dict[str, str]], str]:
    """Fills a (checked) template from a row's cells: its trimmed text, "" when all are empty.
    Of several templates, the first that gives text (``["{First Name} {Last Name}", "{Nome}
    {Sobrenome}"]``: one file's language or the other's)."""
    if isinstance(template, list):
        readers = [template_reader(one) for one in template]

        def read_first(cells: dict[str, str]) -> str:
            for read in readers:
                if text := read(cells):
                    return text
            return ""

        return read_first
    parts = parse_template(template)

    def read_template(cells: dict[str, str]) -> str:
        out: list[str] = []
        filled = gaps = False
        for text, column in parts:
            if column is None:
                out.append(text)
            elif value := (cells.get(column) or "").strip():
                filled = True
                out.append(value)
            else:
                gaps = True
                out.append(_GAP)
        if not filled:
            return ""
        joined = "".join(out)
        # only the spaces around empty parts collapse: a cell's own text is kept as it is
        return (_AROUND_GAPS.sub(" ", joined) if gaps else joined).strip()

    return read_template
