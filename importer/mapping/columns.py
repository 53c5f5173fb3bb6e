"""A mapping's columns against one file's headers: which are missing, and what that does.

A column the file lacks stops the run before anything is sent, unless its entry is
``optional: true`` (then the field is left out, with a warning; a template reads it as empty)
or it is one of several candidates ``column: [A, B]`` and another is there. The email is never
optional. Each missing column offers the header it is likely a misspelling of.
"""

from __future__ import annotations

import difflib

from importer.headers import header_key
from importer.mapping.schema import (
    ColumnEntry,
    MappingFile,
    TemplateEntry,
    entry_columns,
    reads_columns,
    references,
)
from importer.mapping.yamltext import Lines, Problems, line_of


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
        candidates = isinstance(entry, ColumnEntry) and len(entry.columns) > 1
        # a suggestion of another column the entry reads already misleads (Pipedrive's
        # "Person - Label" is not a typo of "Person - Labels"): only other headers are offered
        others: dict[str, str] = {}
        for key, header in keyed:
            if header not in needed:
                others.setdefault(key, header)
        for column in missing:
            text = f"column '{column}' is not in {source}{_header_hint(column, others)}"
            if candidates and len(missing) < len(needed):
                if "did you mean" in text:  # another candidate is there; this one a typo?
                    warnings.append(f"line {line}: {text}")
            elif not optional:
                problems.append((line, text))
            elif name == "email":
                problems.append((line, f"{text}, and every conversion needs an email"))
            elif isinstance(entry, TemplateEntry):
                warnings.append(f"line {line}: {text}; the template reads it as empty")
            else:
                warnings.append(f"line {line}: {text}; {name} is left out")
    return problems, warnings


def _header_hint(column: str, keyed: dict[str, str]) -> str:
    """ " (did you mean 'X'?)" for a header differing only in case, accents or spaces, or
    close to it; ``keyed`` is the file's headers by :func:`header_key`."""
    key = header_key(column)
    found = keyed.get(key)
    if found is None:
        close = difflib.get_close_matches(key, list(keyed), n=1, cutoff=0.85)
        found = keyed[close[0]] if close else None
    return f" (did you mean '{found}'?)" if found is not None else ""
