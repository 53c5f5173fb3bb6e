"""A mapping compiled for one file's headers: one small function per payload field.

The general getter reads the entry's column(s) or template, splits, converts (``convert``),
falls back to the default or fails a required field, and runs RD Station's per-row check
(``validation``). Most fields need a sliver of that, and a row's cost is mostly its fields'
getters, so the common shapes get a getter of their own (``_simple_getter``, ``_split_getter``,
``_checked_getter``), and constants and one-column plain fields none at all: ``Plan`` lists
them for ``BoundMapping.apply`` to fill inline. ``fast=False`` compiles every field through the
general path instead; the tests hold each shortcut to it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from importer.errors import RowError
from importer.mapping.convert import Notes, converter
from importer.mapping.schema import (
    CellEntry,
    ColumnEntry,
    MappingFile,
    TemplateEntry,
    ValueEntry,
    columns_read,
    entry_columns,
)
from importer.mapping.template import template_reader
from importer.mapping.validation import Check, legal_check, payload_check

Cells = dict[str, str]
Getter = Callable[[Cells], Any]  # a row's cells -> the field's value, None to leave it out


@dataclass
class Plan:
    """What ``BoundMapping.apply`` runs for each row."""

    constants: dict[str, Any] = field(default_factory=dict)  # sent in every row
    plain: list[tuple[str, str]] = field(default_factory=list)  # (field, column): trimmed text
    getters: list[tuple[str, Getter]] = field(default_factory=list)  # every other field
    legal: list[tuple[str | Getter, str | Getter]] = field(default_factory=list)  # type, status
    labels: dict[str, str] = field(default_factory=dict)  # how messages name each field
    read_columns: list[str] = field(default_factory=list)  # every column the file has and is read
    # what the getters let pass in the row being mapped (a value dropped, a date serial read):
    # filled by the getters, emptied by ``BoundMapping.apply`` after each row
    notes: Notes = field(default_factory=list)


def compile_plan(spec: MappingFile, present: set[str], *, fast: bool = True) -> Plan:
    """The plan of ``spec`` for a file whose headers are ``present`` (checked already: a column
    missing here belongs to an optional entry, which is left out)."""
    ident = spec.conversion_identifier
    named = [("conversion_identifier", ident), *spec.fields.items()]
    plan = Plan(
        labels={name: label_of(name, entry, present) for name, entry in named},
        read_columns=[c for c in columns_read(spec) if c in present],
    )
    if isinstance(ident, str):  # a constant here, not a column
        constant = ident.strip()
        if fast:
            plan.constants["conversion_identifier"] = constant
        else:
            plan.getters.append(("conversion_identifier", lambda cells: constant))
    elif (
        getter := compile_entry("conversion_identifier", ident, present, None, fast, plan.notes)
    ) is not None:
        plan.getters.append(("conversion_identifier", getter))
    for name, entry in spec.fields.items():
        check = payload_check(name)
        column = plain_column(entry, present) if fast and check is None else None
        if fast and isinstance(entry, ValueEntry):
            plan.constants[name] = entry.value
        elif column is not None:
            plan.plain.append((name, column))
        elif (getter := compile_entry(name, entry, present, check, fast, plan.notes)) is not None:
            plan.getters.append((name, getter))
    for index, basis in enumerate(spec.legal_bases):
        parts: list[str | Getter] = []
        for part in ("type", "status"):
            value = getattr(basis, part)
            if isinstance(value, str):
                parts.append(value)
            else:
                name = f"legal_bases[{index}].{part}"
                getter = compile_entry(name, value, present, legal_check(part), fast, plan.notes)
                parts.append(getter if getter is not None else _absent)
        plan.legal.append((parts[0], parts[1]))
    return plan


def _absent(cells: Cells) -> None:
    return None


def label_of(name: str, entry: Any, present: set[str]) -> str:
    """How a message names a field: with its column(s) or template."""
    if isinstance(entry, str) and name == "conversion_identifier":
        return name
    source = source_of(entry, present)
    return f"{name} ({source})" if source else name


def source_of(entry: Any, present: set[str]) -> str:
    """Where an entry reads: "column 'A'", "column 'A' or 'B'", "template '...'"; "" for none."""
    if isinstance(entry, str):
        return f"column {entry!r}"
    if isinstance(entry, ColumnEntry):
        columns = [c for c in entry.columns if c in present]
        return f"column {' or '.join(repr(c) for c in columns)}"
    if isinstance(entry, TemplateEntry):
        return f"template {' or '.join(repr(t) for t in entry.templates)}"
    return ""


def plain_column(entry: Any, present: set[str]) -> str | None:
    """The column of an entry that is just one column's trimmed text, else None."""
    if isinstance(entry, str):
        return entry if entry in present else None
    if (
        isinstance(entry, ColumnEntry)
        and entry.split is None
        and entry.transform is None
        and entry.pad is None
        and entry.map is None
        and not entry.excel_serial
        and entry.default is None
        and not entry.required
    ):
        columns = [c for c in entry.columns if c in present]
        return columns[0] if len(columns) == 1 else None
    return None


def compile_entry(
    name: str,
    entry: Any,
    present: set[str],
    check: Check | None,
    fast: bool = True,
    notes: Notes | None = None,
) -> Getter | None:
    """The getter of one entry; None when it reads only columns the file lacks (optional).
    ``notes`` receives what the getter lets pass in a row (see ``convert.converter``)."""
    if isinstance(entry, ValueEntry):
        constant = entry.value
        return lambda cells: constant
    if isinstance(entry, str):
        entry = ColumnEntry(column=entry)
    columns = [c for c in entry_columns(entry) if c in present]
    if isinstance(entry, ColumnEntry) and not columns:
        return None  # an optional column the file lacks
    label = label_of(name, entry, present)
    source = source_of(entry, present)
    convert = converter(entry, label, fast=fast, notes=notes, name=name, source=source)
    if fast and isinstance(entry, ColumnEntry) and len(columns) == 1:
        getter = _one_column_getter(entry, columns[0], convert, check, label)
        if getter is not None:
            return getter
    return _general_getter(entry, _reader(entry, present, fast), convert, check, label)


def _empty_value(entry: CellEntry) -> Any:
    """What an empty cell sends: the map's empty-cell key first, then ``default:``."""
    key = entry.empty_cell_key
    return entry.map[key] if key is not None and entry.map is not None else entry.default


def _general_getter(
    entry: CellEntry,
    read: Callable[[Cells], str],
    convert: Callable[[str], Any] | None,
    check: Check | None,
    label: str,
) -> Getter:
    separator, required, default = entry.split, entry.required, _empty_value(entry)

    def get(cells: Cells) -> Any:
        value: Any = read(cells)
        if value:
            if separator is not None:
                items = (item.strip() for item in value.split(separator))
                if convert is None:
                    value = [item for item in items if item]
                else:
                    value = [c for item in items if item and (c := convert(item)) not in ("", None)]
            elif convert is not None:
                value = convert(value)
                if value is None:
                    return None  # on_invalid: drop
        if value == "" or value == []:
            if default is not None:
                return default if check is None else check(default, label)
            if required:
                raise RowError(f"{label} is empty, and the mapping requires it", stage="mapping")
            return None
        return value if check is None else check(value, label)

    return get


def _reader(
    entry: ColumnEntry | TemplateEntry, present: set[str], fast: bool
) -> Callable[[Cells], str]:
    """Reads an entry's text from a row's cells: trimmed, or "" when empty.

    A cell to split is read as written (its items are trimmed): trimmed first, ``a, b, `` cut
    by ``", "`` would keep the last comma (``b,``).
    """
    if isinstance(entry, TemplateEntry):
        return template_reader(entry.template)
    columns = [c for c in entry.columns if c in present]
    as_written = entry.split is not None
    if fast and len(columns) == 1 and not as_written:
        column = columns[0]

        def read_one(cells: Cells) -> str:
            value = cells.get(column)
            return value.strip() if value else ""

        return read_one

    def read_first(cells: Cells) -> str:
        for column in columns:
            value = cells.get(column)
            if value and (text := value.strip()):
                return value if as_written else text
        return ""

    return read_first


# ---------------------------------------------------------------------------------------------
# The shortcuts: each gives what the general getter gives for its shape of entry


def _one_column_getter(
    entry: ColumnEntry,
    column: str,
    convert: Callable[[str], Any] | None,
    check: Check | None,
    label: str,
) -> Getter | None:
    """A shortcut for a one-column entry with no default, not required; None for none."""
    if _empty_value(entry) is not None or entry.required:
        return None
    if entry.split is not None:
        return _split_getter(column, entry.split) if convert is None and check is None else None
    if check is None:
        return _simple_getter(column, convert)
    return _checked_getter(column, check, label) if convert is None else None


def _simple_getter(column: str, convert: Callable[[str], Any] | None) -> Getter:
    """The getter of most fields (one column, at most a transform), without the general path:
    a few tenths of a microsecond per field is much of a row's cost."""
    if convert is None:

        def get_cell(cells: Cells) -> str | None:
            value = cells.get(column)
            if value and (value := value.strip()):
                return value
            return None

        return get_cell

    def get_converted(cells: Cells) -> Any:
        value = cells.get(column)
        if value and (value := value.strip()):
            value = convert(value)
            return None if value == "" else value
        return None

    return get_converted


def _checked_getter(column: str, check: Check, label: str) -> Getter:
    """A one-column field with a per-row check and nothing else (``email: "E-mail"``)."""

    def get_checked(cells: Cells) -> Any:
        value = cells.get(column)
        if value and (value := value.strip()):
            return check(value, label)
        return None

    return get_checked


def _split_getter(column: str, separator: str) -> Getter:
    """A one-column list field without transforms (``tags: {column: X, split: ","}``)."""

    def get_items(cells: Cells) -> list[str] | None:
        value = cells.get(column)
        if value:
            items = [item for part in value.split(separator) if (item := part.strip())]
            if items:
                return items
        return None

    return get_items
