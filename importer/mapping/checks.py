"""The rules pydantic cannot check: field names, templates, keys that contradict each other,
and what each entry can give the payload against what RD Station takes for the field.

Each rule adds a (line, message) problem; :func:`check` runs them on every part of the
document that pydantic accepted (it reports the malformed parts itself).
"""

from __future__ import annotations

from typing import Any

from pydantic import TypeAdapter, ValidationError

from importer import payload as rd
from importer import transforms as tf
from importer.mapping.problems import describe, did_you_mean
from importer.mapping.schema import (
    CellEntry,
    ColumnEntry,
    FieldEntry,
    IdentifierEntry,
    KeyPath,
    LegalBasis,
    TemplateEntry,
    ValueEntry,
)
from importer.mapping.template import parse_template
from importer.mapping.yamltext import Lines, Problems, line_of

_IDENTIFIER: TypeAdapter[Any] = TypeAdapter(IdentifierEntry)
_FIELD: TypeAdapter[Any] = TypeAdapter(FieldEntry)
_BASIS = TypeAdapter(LegalBasis)


def check(data: dict[str, Any], lines: Lines) -> Problems:
    """Semantic checks of every well-formed part (pydantic reports the malformed ones)."""
    checker = _Checker(lines)
    if "conversion_identifier" in data:
        path: KeyPath = ("conversion_identifier",)
        try:
            ident = _IDENTIFIER.validate_python(data["conversion_identifier"])
        except ValidationError:
            pass
        else:
            if isinstance(ident, str) and not ident.strip():
                checker.add(path, "conversion_identifier must not be empty")
            kinds = checker.entry("conversion_identifier", ident, path)
            checker.payload_kinds("conversion_identifier", kinds, path)
    fields = data.get("fields")
    if isinstance(fields, dict):
        for name, raw in fields.items():
            path = ("fields", name)
            if not checker.field_name(name, path):
                continue
            try:
                entry = _FIELD.validate_python(raw)
            except ValidationError:
                continue
            checker.payload_kinds(name, checker.entry(name, entry, path), path)
        if "email" not in fields:
            checker.add(("fields",), "fields has no 'email': every conversion needs one")
    bases = data.get("legal_bases")
    for index, raw in enumerate(bases if isinstance(bases, list) else []):
        try:
            basis = _BASIS.validate_python(raw)
        except ValidationError:
            continue
        for part in ("type", "status"):
            checker.legal_part(part, getattr(basis, part), ("legal_bases", index, part))
    return checker.problems


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    return "list" if isinstance(value, list) else "text"


_NEEDS_TEXT_HINTS = {
    "bool": "this entry gives true/false",
    "number": "this entry gives a number: quote it to make it text",
    "list": "this entry gives a list: remove split:",
}


class _Checker:
    """Semantic checks of one mapping, collecting (line, message) problems.

    An entry's checks return the kinds of value it can give ("text", "bool", "number",
    "list"), which :meth:`payload_kinds` holds against the field's type.
    """

    def __init__(self, lines: Lines) -> None:
        self.lines = lines
        self.problems: Problems = []

    def add(self, path: KeyPath, message: str) -> None:
        self.problems.append((line_of(self.lines, path), message))

    def field_name(self, name: str, path: KeyPath) -> bool:
        if rd.is_known_field(name) and name != rd.LEGAL_BASES_FIELD:
            return True
        if name in (rd.LEGAL_BASES_FIELD, "conversion_identifier"):
            self.add(path, f"'{name}' goes at the top level of the mapping, not under fields:")
        elif name.startswith("cf_"):
            self.add(
                path,
                f"custom field '{name}': write cf_ then RD Station's API identifier "
                "(letters, digits and _)",
            )
        else:
            known = rd.KNOWN_FIELDS - {rd.LEGAL_BASES_FIELD}
            hint = did_you_mean(name, known) or "; custom fields start with cf_"
            self.add(path, f"unknown payload field '{name}'{hint}")
        return False

    def entry(self, name: str, entry: Any, path: KeyPath) -> set[str]:
        """Checks one entry; returns the kinds of value it can give."""
        if isinstance(entry, str):
            return {"text"}
        if isinstance(entry, ValueEntry):
            if entry.value in ("", []) or (
                isinstance(entry.value, str) and not entry.value.strip()
            ):
                self.add((*path, "value"), "value is empty: leave the field out instead")
            problem = rd.check_value(name, entry.value)
            if problem is not None and problem.error_type == "INVALID_FORMAT":
                self.add((*path, "value"), f"{name} {problem.message}")
            return {_kind(entry.value)}
        return self.cell_entry(name, entry, path)

    def cell_entry(self, name: str, entry: ColumnEntry | TemplateEntry, path: KeyPath) -> set[str]:
        self.source(entry, path)
        self.contradictions(entry, path)
        kinds = {self.steps(entry, path)}
        if entry.map is not None:
            kinds = self.map(entry, kinds, path)
        if entry.split:
            if kinds - {"text"}:
                self.add((*path, "split"), f"{name}: a list holds texts only")
            if entry.default is not None and not isinstance(entry.default, list):
                self.add((*path, "default"), "with split:, default must be a list, e.g. [lead]")
            return {"list"}
        if entry.default is not None:
            kinds.add(_kind(entry.default))
        return kinds

    def source(self, entry: ColumnEntry | TemplateEntry, path: KeyPath) -> None:
        """The column names or the template an entry reads."""
        if isinstance(entry, ColumnEntry):
            if not entry.columns or any(not c.strip() for c in entry.columns):
                self.add((*path, "column"), "column must name a header, not be empty")
            return
        if not entry.templates:
            self.add((*path, "template"), "template must be a text with {Column} placeholders")
        for index, template in enumerate(entry.templates):
            where = (
                (*path, "template")
                if isinstance(entry.template, str)
                else (*path, "template", index)
            )
            try:
                parts = parse_template(template)
            except ValueError as exc:
                self.add(where, str(exc))
                continue
            if not any(column for _, column in parts):
                self.add(where, "template has no {Column} placeholder: use value: for a constant")

    def contradictions(self, entry: CellEntry, path: KeyPath) -> None:
        """Keys that make no sense together: required with a default, split with ""..."""
        if entry.split is not None and not entry.split:
            self.add((*path, "split"), 'split needs a separator, e.g. ","')
        if entry.required and entry.default is not None:
            self.add((*path, "required"), "required: true and default: contradict: keep one")
        if entry.empty_cell_key is None:
            return
        if entry.required:
            self.add(
                (*path, "map"),
                'required: true and the empty-cell key "" in map contradict: keep one',
            )
        if entry.split is not None:
            self.add(
                (*path, "map"),
                'with split:, map applies to each item, never empty: drop the "" key '
                "(default: [..] is what an empty cell sends)",
            )

    def steps(self, entry: CellEntry, path: KeyPath) -> str:
        """The transforms, pad and format in their order; returns the kind they give."""
        kind = "text"
        for step in entry.transforms:
            if kind != "text":
                self.add(
                    (*path, "transform"),
                    f"transform '{step}' cannot follow bool (bool gives true/false)",
                )
                kind = "text"  # reported once: no second complaint about the field's type
                break
            kind = tf.TRANSFORMS[step].output
        if entry.pad is not None and kind != "text":
            self.add((*path, "pad"), "pad: cannot follow bool (bool gives true/false)")
        if entry.excel_serial and "date" not in entry.transforms:
            self.add((*path, "excel_serial"), "excel_serial: applies to transform: date only")
        if entry.format is not None:
            if "date" not in entry.transforms:
                self.add((*path, "format"), "format: applies to transform: date only")
            else:
                try:
                    tf.strptime_format(entry.format)
                except ValueError as exc:
                    self.add((*path, "format"), str(exc))
        return kind

    def map(self, entry: CellEntry, kinds: set[str], path: KeyPath) -> set[str]:
        """The map's keys; returns the kinds of value the entry gives through it."""
        table = entry.map or {}
        if not table:
            self.add((*path, "map"), "map is empty")
        folded: dict[str, str] = {}
        for key in table:
            other = folded.setdefault(tf.fold(key), key)
            if other != key:
                self.add((*path, "map"), f"map keys '{other}' and '{key}' match the same cells")
        mapped = {_kind(v) for v in table.values() if v is not None}  # null: left out
        if entry.on_invalid == "keep" and entry.default is None:
            mapped |= kinds  # a value missing from the map goes as it was
        return mapped

    def payload_kinds(self, name: str, kinds: set[str], path: KeyPath) -> None:
        """The entry's possible values against RD Station's type for the field."""
        if name in rd.STRING_FIELDS:
            for kind in sorted(kinds - {"text"}):
                self.add(path, f"{name} takes text, but {_NEEDS_TEXT_HINTS[kind]}")
        elif name in rd.STRING_LIST_FIELDS and kinds - {"list"}:
            self.add(path, f'{name} takes a list: add split: "," (or give value: [a, b])')
        elif name in rd.BOOLEAN_FIELDS and kinds - {"bool"}:
            self.add(
                path, f"{name} takes true or false: add transform: bool (or map: to true/false)"
            )

    def legal_part(self, part: str, entry: Any, path: KeyPath) -> None:
        if isinstance(entry, str):
            return
        allowed = rd.LEGAL_BASIS_TYPES if part == "type" else rd.LEGAL_BASIS_STATUSES
        kinds = self.cell_entry(part, entry, path)
        if entry.split is not None:
            self.add((*path, "split"), f"legal basis {part} takes one value: remove split:")
        values = [v for v in (entry.map or {}).values() if v is not None]
        if entry.default is not None:
            values.append(entry.default)
        for value in values:
            if value not in allowed:
                self.add(
                    (*path, "map" if entry.map else "default"),
                    f"{describe(value)} is not a legal basis {part}; allowed: {', '.join(allowed)}",
                )
        if "bool" in kinds and (part == "type" or entry.map is not None):
            self.add(
                (*path, "transform"),
                f"legal basis {part} from a yes/no column needs map: to {', '.join(allowed)}",
            )
