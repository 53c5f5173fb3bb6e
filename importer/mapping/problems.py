"""A mapping's problems in the user's words: each with its line, all reported at once.

pydantic's validation errors become one sentence per place ("unknown key 'colum' (did you
mean 'column'?); known: ..."); :func:`raise_problems` turns the collected (line, message)
pairs into the one ``InputError`` the user sees.
"""

from __future__ import annotations

import difflib
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from importer import payload as rd
from importer import transforms as tf
from importer.errors import InputError
from importer.mapping.schema import (
    CellEntry,
    FunnelSection,
    KeyPath,
    LegalBasis,
    MappingFile,
    ValueEntry,
)
from importer.mapping.yamltext import Lines, Problems, key_text, line_of

_EXPECTS = {
    "conversion_identifier": "text, or a column entry such as {column: Origem}",
    "fields": "a list of payload field: column lines",
    "legal_bases": "a list of {category, type, status} entries",
    "column": "a column header, or a list of headers",
    "template": "text with {Column} placeholders, or a list of such texts",
    "value": "text, a number, true/false or a list of texts",
    "default": "text, a number, true/false or a list of texts",
    "split": 'the separator text, e.g. ","',
    "transform": "a transform name, or a list of names",
    "format": "a date format such as dd/mm/yyyy",
    "excel_serial": "true or false",
    "pad": f"a number of characters from 1 to {tf.MAX_PAD}, e.g. 8",
    "map": "cell value: payload value pairs",
    "required": "true or false",
    "optional": "true or false",
    "on_invalid": "fail, drop or keep",
    "category": "communications",
    "funnel": "lifecycle_stage, opportunity and contact_owner_email entries",
    "with_apikey": "refuse or skip",
}
_ENTRY_KEYS = {
    "column-entry": ["column", *CellEntry.model_fields],
    "template-entry": ["template", *CellEntry.model_fields],
    "value-entry": list(ValueEntry.model_fields),
}
_ENTRY_HELP = "a column header, or {column: ...}, {template: ...} or {value: ...}"


def raise_problems(name: str, problems: Problems) -> None:
    """InputError listing every problem of the file ``name`` by line; nothing when none."""
    if not problems:
        return
    ordered = sorted(dict.fromkeys(problems), key=lambda p: p[0])
    if len(ordered) == 1:
        line, message = ordered[0]
        raise InputError(f"{name}: line {line}: {message}")
    listed = "\n".join(f"  line {line}: {message}" for line, message in ordered)
    raise InputError(f"{name}: {len(ordered)} problems:\n{listed}")


def describe(value: Any) -> str:
    """A value as a message names what was written: ``true/false``, ``the number 3``..."""
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return f"the number {value}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return "empty" if value is None else repr(value)


def did_you_mean(word: str, choices: list[str] | frozenset[str]) -> str:
    """ " (did you mean 'X'?)" for the closest of ``choices``, "" when none is close."""
    found = difflib.get_close_matches(word, sorted(choices), n=1, cutoff=0.6)
    return f" (did you mean '{found[0]}'?)" if found else ""


def pydantic_problems(exc: ValidationError, data: Any, lines: Lines) -> Problems:
    """One (line, message) per place pydantic found wrong."""
    found: dict[KeyPath, tuple[int, str]] = {}
    for error in exc.errors():
        path, tag = _data_path(data, error["loc"])
        if path not in found:  # one message per place: a union reports each member's complaint
            found[path] = (line_of(lines, path), _message(error, path, tag))
    # A union's members complain at several depths ("not text" about the whole list, "not
    # text" about its third item): the deepest one says what to fix.
    return [
        problem
        for path, problem in found.items()
        if not any(len(other) > len(path) and other[: len(path)] == path for other in found)
    ]


def _data_path(data: Any, loc: tuple[str | int, ...]) -> tuple[KeyPath, str | None]:
    """The part of pydantic's location that exists in the data, and the last entry tag seen."""
    path: list[str | int] = []
    tag = None
    node = data
    for part in loc:
        if isinstance(part, str) and part in _ENTRY_KEYS:
            tag = part
        elif _holds(node, part):
            node = node[part]
            path.append(part)
        elif isinstance(node, dict) and isinstance(part, str):
            path.append(part)  # a missing key: name it
            break
        # else: pydantic's name of a union member ("str", "list[str]"): not in the data
    return tuple(path), tag


def _holds(node: Any, part: str | int) -> bool:
    if isinstance(node, dict):
        return part in node
    return isinstance(node, list) and isinstance(part, int) and part < len(node)


def _message(error: ErrorDetails, path: KeyPath, tag: str | None) -> str:
    key = next((p for p in reversed(path) if isinstance(p, str)), "")
    kind = error["type"]
    value = error.get("input")
    if kind == "missing":
        where = "the mapping" if len(path) == 1 else "this entry"
        return f"{where} needs '{key}:'"
    if kind == "extra_forbidden":
        if len(path) == 1:
            allowed = list(MappingFile.model_fields)
        elif tag in _ENTRY_KEYS:
            allowed = _ENTRY_KEYS[tag]
        elif len(path) == 2 and path[0] == "funnel":
            allowed = list(FunnelSection.model_fields)
        else:
            allowed = list(LegalBasis.model_fields)
        return f"unknown key '{key}'{did_you_mean(key, allowed)}; known: {', '.join(allowed)}"
    if kind == "union_tag_invalid":
        return "an entry takes one of column:, template: or value:, not several"
    if kind == "union_tag_not_found":
        return f"'{key}' needs {_ENTRY_HELP}, not {describe(value)}"
    if kind == "literal_error" and key == "transform":
        name = key_text(value)
        hint = did_you_mean(name, list(tf.TRANSFORMS))
        return f"unknown transform '{name}'{hint}; known: {', '.join(tf.TRANSFORMS)}"
    if kind == "literal_error" and key in ("type", "status"):
        allowed = list(rd.LEGAL_BASIS_TYPES if key == "type" else rd.LEGAL_BASIS_STATUSES)
        return f"{describe(value)} is not a legal basis {key}; allowed: {', '.join(allowed)}"
    if key in _EXPECTS:
        return f"{key} must be {_EXPECTS[key]}, not {describe(value)}"
    return f"{key or 'the mapping'}: {error['msg']}"
