"""What an entry does to a cell's text: its transforms, then ``pad:``, then ``map:``, as one
function; and ``on_invalid:``, what happens to a value one of them refuses.

A refused value fails the row with a ``RowError`` of stage "mapping" (``on_invalid: fail``),
leaves the field out (``drop``), or goes as written (``keep``).
"""

from __future__ import annotations

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


def converter(entry: CellEntry, label: str, *, fast: bool = True) -> Callable[[str], Any] | None:
    """The entry's transforms, pad and map as one function; None when it has none.

    The function returns the value, None for a value dropped by ``on_invalid: drop``, or
    raises RowError. ``fast=False`` gives the general form of each step (no single-step
    shortcut, no memo in map), which the tests hold the fast one to.
    """
    steps: list[Step] = [
        tf.get_transform(step, date_format=entry.format) for step in entry.transforms
    ]
    if entry.pad is not None:
        steps.append(tf.make_pad(entry.pad))
    if entry.map is not None:
        steps.append(map_step(entry, memo=fast))
    if not steps:
        return None
    on_invalid = entry.on_invalid

    def refused(text: str, exc: tf.TransformError) -> Any:
        if on_invalid == "drop":
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
                return refused(text, exc)

        return convert_one

    def convert(text: str) -> Any:
        value: Any = text
        try:
            for step in steps:
                value = step(value)
        except tf.TransformError as exc:
            return refused(text, exc)
        return value

    return convert


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
