"""What an entry does to a cell's text: its transforms, then ``pad:``, then ``map:``, as one
function; and ``on_invalid:``, what happens to a value one of them refuses.

A refused value fails the row with a ``RowError`` of stage "mapping" (``on_invalid: fail``),
leaves the field out (``drop``), or goes as written (``keep``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from importer import transforms as tf
from importer.errors import RowError
from importer.mapping.schema import CellEntry

Step = Callable[[Any], Any]
_MISSING = object()
_MEMO_SIZE = 10_000  # a mapped column holds few distinct values; a huge one stops memoising


def show(value: Any) -> str:
    """A cell value as a row's message quotes it: on one line, at most 60 characters."""
    if isinstance(value, bool):
        return "true" if value else "false"
    text = " ".join(str(value).split())
    return repr(text[:57] + "..." if len(text) > 60 else text)


Notes = list[tuple[str, str]]  # (kind, message): what a row's mapping lets pass, to warn of

# how a dropped value is named in its warning, by the transform that could not read it
_NOUNS = {
    "phone_br": "a phone",
    "date": "a date",
    "bool": "a yes/no value",
    "handle": "a profile",
    "digits": "a number",
}


def converter(
    entry: CellEntry,
    label: str,
    *,
    fast: bool = True,
    notes: Notes | None = None,
    name: str = "",
    source: str = "",
) -> Callable[[str], Any] | None:
    """The entry's transforms, pad and map as one function; None when it has none.

    The function returns the value, None for a value dropped by ``on_invalid: drop`` (or
    mapped to null), or raises RowError. ``fast=False`` gives the general form of each step
    (no single-step shortcut, no memo in map), which the tests hold the fast one to.

    ``notes``, when given, receives a (kind, message) for each value ``on_invalid: drop``
    leaves out and each number read as an Excel date serial: ``name`` and ``source`` (the
    field, and "column 'X'") word them. A note never quotes the cell, which may be personal.
    """
    serial: Callable[[], None] | None = None
    if notes is not None and entry.excel_serial:
        serial = functools.partial(
            notes.append,
            (
                f"excel_serial:{name}",
                f"{name}: numbers in {source} were read as Excel date serials "
                "(excel_serial: true): check a few of these rows against the file",
            ),
        )

    steps: list[Step] = []
    names: dict[Step, str] = {}
    for step_name in entry.transforms:
        step = tf.get_transform(
            step_name, date_format=entry.format, excel_serial=entry.excel_serial, on_serial=serial
        )
        steps.append(step)
        names[step] = step_name
    if entry.pad is not None:
        steps.append(pad := tf.make_pad(entry.pad))
        names[pad] = "pad"
    if entry.map is not None:
        steps.append(lookup := map_step(entry, memo=fast))
        names[lookup] = "map"
    if not steps:
        return None
    on_invalid = entry.on_invalid
    dropped: dict[str, tuple[str, str]] = {}
    if notes is not None and on_invalid == "drop":
        for step_name in names.values():
            dropped[step_name] = (f"dropped:{name}", _dropped_message(name, source, step_name))

    def refused(text: str, exc: tf.TransformError, step: Step) -> Any:
        if on_invalid == "drop":
            if notes is not None:
                notes.append(dropped[names[step]])
            return None
        if on_invalid == "keep":
            return text
        raise RowError(f"{label}: {show(text)} {exc}", stage="mapping") from None

    if fast and len(steps) == 1:  # the usual case, without the loop
        only = steps[0]

        def convert_one(text: str) -> Any:
            try:
                return only(text)
            except tf.TransformError as exc:
                return refused(text, exc, only)

        return convert_one

    def convert(text: str) -> Any:
        value: Any = text
        step = steps[0]
        try:
            for step in steps:  # the loop's step, after it, is the one that refused
                value = step(value)
        except tf.TransformError as exc:
            return refused(text, exc, step)
        return value

    return convert


def _dropped_message(name: str, source: str, step: str) -> str:
    """The warning for a value ``on_invalid: drop`` left out, by the step that refused it."""
    if step == "map":
        what = f"a value in {source} that is not in the map"
    elif step == "pad":
        what = f"a value in {source} that is not only digits (pad:)"
    else:
        what = f"{_NOUNS.get(step, 'a value')} in {source} that {step} cannot read"
    return f"{name}: {what} was left out (on_invalid: drop)"


def map_step(entry: CellEntry, *, memo: bool = True) -> Step:
    """``map:`` as a step: exact key first, then without case or accents, then ``default:``.

    After ``bool`` the keys are ``true``/``false``. A value in none of them is refused.
    """
    table = dict(entry.map or {})
    folded = {tf.fold(key): value for key, value in table.items()}
    default = entry.default if entry.split is None else None  # a split's default is the list
    known = ", ".join(key if key.strip() else '""' for key in list(table)[:8])
    reason = f"is not in the map ({known}{', ...' if len(table) > 8 else ''})"

    def find(value: Any) -> Any:
        key = ("true" if value else "false") if isinstance(value, bool) else value
        found = table.get(key, _MISSING)
        if found is _MISSING:
            found = folded.get(tf.fold(key), _MISSING)
            if found is _MISSING:
                if default is None:
                    raise tf.TransformError(reason)
                found = default
        return found

    if not memo:
        return find
    seen: dict[Any, Any] = {}

    def lookup(value: Any) -> Any:
        found = seen.get(value, _MISSING)
        if found is _MISSING:
            found = find(value)
            if len(seen) < _MEMO_SIZE:
                seen[value] = found
        return found

    return lookup
