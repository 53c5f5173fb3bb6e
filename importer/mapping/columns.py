"""A mapping's columns against one file's headers: which are missing, and what that does.

A column the file lacks, but has under a header that differs only in case, accents or
surrounding spaces (``nome`` for ``Nome``), is read from that header, with a warning
(:func:`forgiven`); two headers that differ only so are both exact, or neither is used.

Any other column the file lacks stops the run before anything is sent, unless its entry is
``optional: true`` (then the field is left out, with a warning; a template reads it as empty)
or it is one of several candidates ``column: [A, B]`` and another is there. The email is never
optional. Each missing column offers the header it is likely a misspelling of.

A file that has none of the mapping's columns is more likely read wrong than mapped wrong:
:func:`none_found` shows the header read, and which row holds the columns (``header_row``)
or which delimiter splits the one header cell that holds them all (``delimiter``).
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from typing import Any

from importer.errors import InputError
from importer.headers import header_key
from importer.mapping.schema import (
    FUNNEL_KEYS,
    ColumnEntry,
    MappingFile,
    TemplateEntry,
    columns_read,
    entry_columns,
    reads_columns,
    references,
    template_columns,
)
from importer.mapping.template import parse_template
from importer.mapping.yamltext import Lines, Problems, line_of
from importer.transforms import fold

Rows = Sequence[tuple[int, Sequence[str]]]  # (row number, cells as read): a file's first rows


def missing_columns(
    spec: MappingFile, lines: Lines, headers: list[str], source: str
) -> tuple[Problems, list[str]]:
    """(problems, warnings) of the columns ``headers`` lack; ``source`` names the file."""
    present = set(headers)
    keyed = [(header_key(header), header) for header in headers]
    problems: Problems = []
    warnings: list[str] = []
    for path, name, entry in references(spec):
        if not reads_columns(path, entry):
            continue
        needed = list(dict.fromkeys(entry_columns(entry)))
        missing = [c for c in needed if c not in present]
        if not missing:
            continue
        line = line_of(lines, path) if lines else 0
        optional = isinstance(entry, ColumnEntry | TemplateEntry) and entry.optional
        # of candidates (columns, or templates), one the file has is enough
        if isinstance(entry, ColumnEntry) and len(entry.columns) > 1:
            candidates = len(missing) < len(needed)
        elif isinstance(entry, TemplateEntry) and len(entry.templates) > 1:
            candidates = any(
                all(c in present for c in template_columns(t)) for t in entry.templates
            )
        else:
            candidates = False
        # a suggestion of another column the entry reads already misleads (Pipedrive's
        # "Person - Label" is not a typo of "Person - Labels"): only other headers are offered
        others: dict[str, str] = {}
        for key, header in keyed:
            if header not in needed:
                others.setdefault(key, header)
        texts = [f"column '{c}' is not in {source}{_header_hint(c, others)}" for c in missing]
        if candidates:  # another candidate is there; is this one a typo?
            warnings += [f"line {line}: {text}" for text in texts if "did you mean" in text]
        elif not optional or name == "email":
            needs = ", and every conversion needs an email" if optional else ""
            problems += [(line, text + needs) for text in texts]
        else:
            # an optional entry whose columns are missing (an export without them, the other
            # language's candidates) is one warning
            if isinstance(entry, TemplateEntry) and len(missing) < len(needed):
                outcome = f"the template reads {'it' if len(missing) == 1 else 'them'} as empty"
            else:  # a legal basis goes whole or not at all; a funnel key alone
                whole = name if name.startswith("funnel.") else name.split(".")[0]
                outcome = f"{whole} is left out"
            if len(texts) == 1:
                warnings.append(f"line {line}: {texts[0]}; {outcome}")
            else:
                listed = ", ".join(f"'{c}'" for c in missing)
                hints = "".join(
                    f" (did you mean '{found}' for '{c}'?)"
                    for c in missing
                    if (found := _close_header(c, others)) is not None
                )
                warnings.append(
                    f"line {line}: none of the columns {listed} is in {source}{hints}; {outcome}"
                )
    return problems, warnings


def _header_hint(column: str, keyed: dict[str, str]) -> str:
    """ " (did you mean 'X'?)" for a header differing only in case, accents or spaces, or
    close to it; ``keyed`` is the file's headers by :func:`header_key`."""
    found = _close_header(column, keyed)
    return f" (did you mean '{found}'?)" if found is not None else ""


def _close_header(column: str, keyed: dict[str, str]) -> str | None:
    key = header_key(column)
    found = keyed.get(key)
    if found is None:
        close = difflib.get_close_matches(key, list(keyed), n=1, cutoff=0.85)
        found = keyed[close[0]] if close else None
    return found


# ---------------------------------------------------------------------------------------------
# Headers forgiven: case, accents, surrounding spaces


def forgiven(spec: MappingFile, headers: Sequence[str]) -> dict[str, str]:
    """{column: header} for each column the file lacks but has under a header that differs
    only in case, accents or surrounding spaces. A column two such headers match is not
    forgiven: which one was meant is not safe to guess. Nor are the ``key:`` columns: they
    decide which rows count as sent before, and are named exactly."""
    present = set(headers)
    by_fold: dict[str, list[str]] = {}
    for header in headers:
        by_fold.setdefault(fold(header), []).append(header)
    found: dict[str, str] = {}
    for column in columns_read(spec):
        if column in present or column in found:
            continue
        matches = by_fold.get(fold(column), [])
        if len(matches) == 1:
            found[column] = matches[0]
    return found


def renamed(spec: MappingFile, renames: dict[str, str]) -> MappingFile:
    """``spec`` reading each column of ``renames`` from its header instead."""
    if not renames:
        return spec

    def entry(path_kind: str, value: Any) -> Any:
        if isinstance(value, str):
            return renames.get(value, value) if path_kind in ("fields", "funnel") else value
        if isinstance(value, ColumnEntry):
            columns = [renames.get(c, c) for c in value.columns]
            column = columns[0] if isinstance(value.column, str) else columns
            return value.model_copy(update={"column": column})
        if isinstance(value, TemplateEntry):
            templates = [_renamed_template(t, renames) for t in value.templates]
            template = templates[0] if isinstance(value.template, str) else templates
            return value.model_copy(update={"template": template})
        return value

    return spec.model_copy(
        update={
            "conversion_identifier": entry("identifier", spec.conversion_identifier),
            "fields": {name: entry("fields", value) for name, value in spec.fields.items()},
            "legal_bases": [
                basis.model_copy(
                    update={
                        "type": entry("legal", basis.type),
                        "status": entry("legal", basis.status),
                    }
                )
                for basis in spec.legal_bases
            ],
            "funnel": spec.funnel
            and spec.funnel.model_copy(
                update={
                    name: entry("funnel", getattr(spec.funnel, name))
                    for name in FUNNEL_KEYS
                    if getattr(spec.funnel, name) is not None
                }
            ),
        }
    )


def _renamed_template(template: str, renames: dict[str, str]) -> str:
    out = []
    for text, column in parse_template(template):
        if column is None:
            out.append(text.replace("{", "{{").replace("}", "}}"))
            continue
        new = renames.get(column, column)
        try:
            parse_template("{" + new + "}")
        except ValueError:  # a header no placeholder can name: the column stays missing
            new = column
        out.append("{" + new + "}")
    return "".join(out)


def forgiven_warnings(
    spec: MappingFile, lines: Lines, renames: dict[str, str], source: str
) -> list[str]:
    """One warning per forgiven column, at the first line that reads it."""
    warnings = []
    for column, header in renames.items():
        line = _first_line(spec, lines, column)
        where = f"line {line}: " if line else ""
        warnings.append(
            f"{where}column '{column}' is read from '{header}' of {source}, which differs only "
            "in case, accents or spaces: write it as the file does to silence this"
        )
    return warnings


def _first_line(spec: MappingFile, lines: Lines, column: str) -> int:
    if not lines:
        return 0
    for path, _, entry in references(spec):
        if reads_columns(path, entry) and column in entry_columns(entry):
            return line_of(lines, path)
    return 0


# ---------------------------------------------------------------------------------------------
# None of the columns found: the file read wrong, most likely

_SHOWN_CELLS = 8
_DELIMITERS = {";": "';'", ",": "','", "\t": "tab", "|": "'|'"}


def none_found(
    spec: MappingFile,
    headers: Sequence[str],
    source: str,
    mapping_name: str,
    rows: Rows,
    header_row: int,
) -> InputError | None:
    """The error for a file that has none of the mapping's columns, with what was read and
    the setting that would read it right; None when some column is there, or when the
    mapping reads one column and nothing better than its own message can be said."""
    wanted = columns_read(spec)
    if not wanted or any(column in headers for column in wanted):
        return None
    head = f"none of the columns {mapping_name} reads is in the header of {source}"
    shown = _shown(headers)
    for cell in headers:
        for delimiter, name in _DELIMITERS.items():
            if delimiter in cell and _holds(spec, cell.split(delimiter)):
                return InputError(
                    f"{head}, which was read as one cell holding them all ({shown}): the file is "
                    f"{name}-separated: use delimiter {name}",
                    setting="delimiter",
                )
    for number, cells in rows:
        if number != header_row and _holds(spec, cells):
            return InputError(
                f"{head} (row {header_row}: {shown}); row {number} holds them: "
                f"use header_row {number}",
                setting="header_row",
            )
    if len(wanted) < 2:
        return None
    return InputError(
        f"{head} (row {header_row}: {shown}): check that the mapping is meant for this file, "
        "or use header_row N if row N holds the column names",
        setting="header_row",
    )


def _holds(spec: MappingFile, cells: Sequence[str]) -> bool:
    """True when a row with these cells as its header has every column the mapping needs."""
    headers = [cell.strip() for cell in cells if cell.strip()]
    if not headers:
        return False
    spec = renamed(spec, forgiven(spec, headers))
    if not any(column in headers for column in columns_read(spec)):
        return False
    problems, _ = missing_columns(spec, {}, headers, "")
    return not problems


def _shown(cells: Sequence[str]) -> str:
    """A header as a message shows it: its first cells, each cut short."""
    shown = [f"'{c[:37] + '...' if len(c) > 40 else c}'" for c in cells[:_SHOWN_CELLS]]
    return ", ".join(shown) + (", ..." if len(cells) > _SHOWN_CELLS else "")
