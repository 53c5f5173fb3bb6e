"""The mapping file: which spreadsheet column becomes which field of RD Station's payload.

The format (YAML; ``mappings/mapping.schema.json`` is its JSON Schema, for editors)::

    # yaml-language-server: $schema=mapping.schema.json
    conversion_identifier: "feira-2026"     # a constant, or {column: "Origem"}
    fields:                                 # payload field: where its value comes from
      email: "E-mail"                       # a bare text is a column header
      name: {template: "{Nome} {Sobrenome}", transform: title}
      mobile_phone: {column: "Celular", transform: phone_br, on_invalid: drop}
      personal_phone: {column: ["Telefone", "Fone"], transform: phone_br, optional: true}
      tags: {column: "Interesses", split: ",", transform: lower}
      cf_plano: {column: "Plano", map: {Ouro: gold, Prata: silver}, default: basic}
      available_for_mailing: {value: true} # a constant
    legal_bases:
      - {category: communications, type: consent, status: granted}
      - type: consent
        status: {column: "Aceita comunicação?", transform: bool}   # true/false -> granted/declined

Field names: RD Station's documented payload fields (``importer.payload.KNOWN_FIELDS``) and
custom fields ``cf_<api_identifier>``. ``email`` is required; ``conversion_identifier`` and
``legal_bases`` live at the top level.

A field's entry is one of:

- ``"Header"``: the cell of that column, trimmed.
- ``{column: "Header"}`` or ``{column: ["A", "B"]}``: the first non-empty of those columns.
- ``{template: "{Nome} {Sobrenome}"}``: text with ``{Column}`` placeholders (``{{``/``}}`` for a
  literal brace); spaces left by empty parts collapse, the result is trimmed, and the field is
  left out when every placeholder is empty. Only plain substitution: ``{0}``, ``{A.b}``,
  ``{A[0]}``, ``{A!r}``, ``{A:>10}`` are mapping errors.
- ``{value: ...}``: a constant (text, number, true/false, or a list of texts).

A column or template entry takes these keys too, applied in this order:

- ``split: ","``: the cell becomes a list; items trimmed, empty items dropped; what follows
  applies to each item.
- ``transform: NAME`` or ``transform: [NAME, ...]``: see ``importer.transforms`` (strip,
  unquote, lower, upper, title, digits, phone_br, date, bool, handle). ``format: "yyyy-mm-dd"``
  sets the ``date`` format (``dd``, ``mm``, ``yyyy``, ``yy``, or ``strptime`` codes); the
  default is ``dd/mm/yyyy``.
- ``pad: 8``: left-pads a value of digits with zeros to that many characters, for the codes
  whose leading zeros Excel dropped (CEP ``1310100`` -> ``01310100``; a longer value is kept).
  A value with anything but digits is refused (``on_invalid`` applies): put ``transform:
  digits`` first, ``{column: CEP, transform: digits, pad: 8}``.
- ``map: {cell value: payload value}``: keys compare without case or accents (``Não`` matches
  ``nao``); after ``bool`` the keys are ``true``/``false``. A value missing from the map takes
  ``default:`` when there is one, else ``on_invalid`` applies. The key ``""`` is the empty cell:
  ``map: {"": declined, Sim: granted}`` sends ``declined`` for an empty cell, where ``default:``
  would also cover every value missing from the map. (A column the file lacks, under
  ``optional: true``, still leaves the field out.)
- ``default: VALUE``: the value when the cell is empty (and for values missing from ``map``);
  an empty-cell key in ``map`` comes first.
- ``required: true``: an empty cell fails the row (otherwise an empty cell leaves the field out
  of the payload, so an import never blanks what RD Station already has).
- ``on_invalid: fail | drop | keep``: what a value a transform or the map refuses does: fail the
  row (the default), leave the field out, or send the value as written.
- ``optional: true``: the file may lack the column(s); the field is then left out. Without it a
  missing column stops the run before anything is sent.

``legal_bases`` is a list of ``{category: communications, type: T, status: S}``. ``type`` and
``status`` are constants or column entries (``{column: ..., map: ...}``); a ``status`` column
through ``bool`` needs no map (true is ``granted``, false ``declined``). An entry whose cell is
empty is left out of that row's payload.

YAML details: only ``true``/``false`` are booleans (``yes``, ``no``, ``on``, ``off`` stay text,
so ``map: {no: declined}`` means the word "no"), dates stay text, a key given twice is an
error, and a mapping is plain data: a tag other than YAML's core ``!!str``, ``!!int``,
``!!float``, ``!!bool``, ``!!null``, ``!!seq`` and ``!!map`` (``!!python/...``, ``!!binary``,
``!!set``, a local ``!tag``), on a text, a list or a mapping, is an error naming its line.

Errors: :func:`load_mapping` reports every problem of the file at once, each with its line;
:meth:`Mapping.check_columns` every column the spreadsheet lacks; :meth:`Mapping.apply` raises
:class:`~importer.errors.RowError` for one bad row.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, TypeAdapter, ValidationError

from importer import payload as rd
from importer import transforms as tf
from importer.errors import InputError, RowError
from importer.headers import header_key
from importer.records import Row

Scalar = str | int | float | bool
Constant = Scalar | list[str]
OnInvalid = Literal["fail", "drop", "keep"]


# ---------------------------------------------------------------------------------------------
# The document's models (their JSON Schema is the shipped mapping.schema.json)


class _Model(BaseModel):
    # strict: YAML already gives real types; "12" must not quietly become 12
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class _CellEntry(_Model):
    split: str | None = Field(None, description="Separator that makes the cell a list.")
    transform: tf.TransformName | list[tf.TransformName] | None = Field(
        None, description="A transform name, or a list applied in order."
    )
    format: str | None = Field(None, description="Date format for transform: date (dd/mm/yyyy).")
    pad: int | None = Field(
        None,
        ge=1,
        le=tf.MAX_PAD,
        description="Left-pads a value of digits with zeros to this many characters "
        "(after transform, before map): 8 makes 1310100 the CEP 01310100.",
    )
    map: dict[str, Scalar] | None = Field(
        None, description="Cell value to payload value; compared without case or accents."
    )
    default: Constant | None = Field(
        None, description="Value when the cell is empty, or not in map."
    )
    required: bool = Field(False, description="An empty cell fails the row.")
    optional: bool = Field(False, description="The file may lack the column(s).")
    on_invalid: OnInvalid = Field(
        "fail",
        description="A value a transform or map refuses: fail the row, drop the field, "
        "or keep it as written.",
    )

    @property
    def transforms(self) -> list[str]:
        if self.transform is None:
            return []
        return [self.transform] if isinstance(self.transform, str) else list(self.transform)


class ColumnEntry(_CellEntry):
    column: str | list[str] = Field(description="A column header, or headers tried in order.")

    @property
    def columns(self) -> list[str]:
        return [self.column] if isinstance(self.column, str) else list(self.column)


class TemplateEntry(_CellEntry):
    template: str = Field(description="Text with {Column} placeholders.")


class ValueEntry(_Model):
    value: Constant = Field(description="A constant sent in every row.")


_TAGS = {
    "column": "column-entry",
    "template": "template-entry",
    "value": "value-entry",
}


def _entry_tag(text_tag: str) -> Callable[[Any], str | None]:
    def tag(entry: Any) -> str | None:
        if isinstance(entry, str):
            return text_tag
        if isinstance(entry, dict):
            present = [_TAGS[key] for key in _TAGS if key in entry]
            if len(present) > 1:
                return "several"
            return present[0] if present else None
        for cls, name in ((ColumnEntry, "column-entry"), (TemplateEntry, "template-entry")):
            if isinstance(entry, cls):
                return name
        return "value-entry" if isinstance(entry, ValueEntry) else None

    return tag


_EntryChoices = (
    Annotated[ColumnEntry, Tag("column-entry")]
    | Annotated[TemplateEntry, Tag("template-entry")]
    | Annotated[ValueEntry, Tag("value-entry")]
)
FieldEntry = Annotated[
    Annotated[str, Tag("header-text")] | _EntryChoices,
    Discriminator(_entry_tag("header-text")),
]
IdentifierEntry = Annotated[
    Annotated[str, Tag("constant-text")] | _EntryChoices,
    Discriminator(_entry_tag("constant-text")),
]


def _legal_tag(entry: Any) -> str | None:
    return "constant-text" if isinstance(entry, str) else "column-entry"


_LegalColumn = Annotated[ColumnEntry, Tag("column-entry")]
LegalTypeEntry = Annotated[
    Annotated[rd.LegalType, Tag("constant-text")] | _LegalColumn, Discriminator(_legal_tag)
]
LegalStatusEntry = Annotated[
    Annotated[rd.LegalStatus, Tag("constant-text")] | _LegalColumn, Discriminator(_legal_tag)
]


class LegalBasis(_Model):
    category: Literal["communications"] = "communications"
    type: LegalTypeEntry
    status: LegalStatusEntry


class MappingFile(_Model):
    """The whole mapping document."""

    conversion_identifier: IdentifierEntry = Field(
        description="The conversion's name: a constant, or a column entry."
    )
    fields: dict[str, FieldEntry] = Field(
        description="Payload field (RD Station's name, or cf_<api_identifier>): its source.",
        json_schema_extra={
            "propertyNames": {
                "anyOf": [
                    {"enum": sorted(rd.KNOWN_FIELDS - {rd.LEGAL_BASES_FIELD})},
                    {"pattern": rd.CUSTOM_FIELD.pattern},
                ]
            }
        },
    )
    legal_bases: list[LegalBasis] = Field(
        default_factory=list, description="LGPD legal bases sent with every row."
    )


def mapping_json_schema() -> dict[str, Any]:
    """The JSON Schema of the mapping format (shipped as ``mappings/mapping.schema.json``)."""
    schema = MappingFile.model_json_schema()
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "rd-importer mapping",
        **{key: value for key, value in schema.items() if key != "title"},
    }


def mapping_json_schema_text() -> str:
    return json.dumps(mapping_json_schema(), indent=2, ensure_ascii=False) + "\n"


# ---------------------------------------------------------------------------------------------
# Reading YAML with line numbers


class _LineLoader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 booleans (yes/no/on/off stay text) and dates kept as text."""


_BOOL_TAG = "tag:yaml.org,2002:bool"
_TIMESTAMP_TAG = "tag:yaml.org,2002:timestamp"
_LineLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in (_BOOL_TAG, _TIMESTAMP_TAG)]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_LineLoader.add_implicit_resolver(
    _BOOL_TAG, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
# "<<" and "=" resolve to YAML 1.1's merge and value tags, which nothing here constructs: as
# keys or values they are plain text
_LineLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if not tag.endswith((":merge", ":value"))]
    for first, resolvers in _LineLoader.yaml_implicit_resolvers.items()
}

_CORE = "tag:yaml.org,2002:"
_MAX_VALUES = 100_000  # a real mapping holds a few hundred
# A mapping is plain data: any other tag (python/..., binary, set, a local !tag) is refused
# by name, whether it sits on a text, a list or a mapping, before anything is constructed.
_PLAIN_TAGS: dict[type[yaml.Node], frozenset[str]] = {
    yaml.ScalarNode: frozenset(_CORE + name for name in ("str", "int", "float", "bool", "null")),
    yaml.SequenceNode: frozenset({_CORE + "seq"}),
    yaml.MappingNode: frozenset({_CORE + "map"}),
}


def _tag_problem(node: yaml.Node) -> str | None:
    """Why the node's tag is refused, None for a plain one."""
    if node.tag in _PLAIN_TAGS[type(node)]:
        return None
    shown = "!!" + node.tag.removeprefix(_CORE) if node.tag.startswith(_CORE) else node.tag
    return (
        f"the YAML tag '{shown}' is not allowed: a mapping holds plain texts, numbers, "
        "true/false, lists and key: value pairs; remove the tag"
    )


KeyPath = tuple[str | int, ...]
Problems = list[tuple[int, str]]


def _key_text(key: Any) -> str:
    if isinstance(key, bool):
        return "true" if key else "false"
    return "null" if key is None else str(key)


def _read_yaml(text: str, name: str) -> tuple[Any, dict[KeyPath, int], Problems]:
    """The document as plain Python values, each path's line, and problems YAML hides."""
    loader = _LineLoader(text)
    lines: dict[KeyPath, int] = {}
    problems: Problems = []
    refused: Problems = []  # tags that are not plain data: reported alone, before any other check
    built = 0

    def build(node: yaml.Node, path: KeyPath) -> Any:
        nonlocal built
        built += 1
        if built > _MAX_VALUES:  # aliases of aliases ("billion laughs") expand exponentially
            raise InputError(
                f"{name}: line {node.start_mark.line + 1}: the mapping expands to more than "
                f"{_MAX_VALUES:,} values (YAML aliases repeated inside each other?): "
                "write the entries out"
            )
        tag_problem = _tag_problem(node)
        if tag_problem is not None:
            refused.append((node.start_mark.line + 1, tag_problem))
            if isinstance(node, yaml.ScalarNode):
                return node.value  # never constructed: the load fails on the problem anyway
        if isinstance(node, yaml.MappingNode):
            out: dict[str, Any] = {}
            for key_node, value_node in node.value:
                line = key_node.start_mark.line + 1
                if not isinstance(key_node, yaml.ScalarNode):
                    problems.append((line, "a key must be plain text"))
                    continue
                key = _key_text(build(key_node, path))
                if key in out:
                    first = lines[(*path, key)]
                    problems.append((line, f"'{key}' is given twice (also on line {first})"))
                    continue
                lines[(*path, key)] = line
                out[key] = build(value_node, (*path, key))
            return out
        if isinstance(node, yaml.SequenceNode):
            items = []
            for index, item in enumerate(node.value):
                lines[(*path, index)] = item.start_mark.line + 1
                items.append(build(item, (*path, index)))
            return items
        try:
            return loader.construct_object(node)
        except (ValueError, KeyError):  # "!!int abc": PyYAML's int() or its bool table refuses
            refused.append((node.start_mark.line + 1, f"{node.value!r} is not {_tag_name(node)}"))
            return node.value

    try:
        root = loader.get_single_node()
        if root is None:
            raise InputError(f"{name} is empty: write a mapping (see mappings/example.yaml)")
        lines[()] = root.start_mark.line + 1
        data = build(root, ())
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}" if mark is not None else "somewhere"
        raise InputError(
            f"{name}: {where}: not valid YAML: {exc.problem or exc.context} "
            "(check the indentation and the quotes)"
        ) from None
    except yaml.YAMLError as exc:
        raise InputError(f"{name}: not valid YAML: {exc}") from None
    finally:
        loader.dispose()
    _raise_problems(name, refused)
    return data, lines, problems


def _tag_name(node: yaml.Node) -> str:
    kinds = {"int": "a whole number", "float": "a number", "bool": "true or false"}
    return kinds.get(node.tag.removeprefix(_CORE), "a value")


def _line_of(lines: dict[KeyPath, int], path: KeyPath) -> int:
    while path not in lines:
        path = path[:-1]
    return lines[path]


# ---------------------------------------------------------------------------------------------
# Turning pydantic's errors into the mapping's words

_EXPECTS = {
    "conversion_identifier": "text, or a column entry such as {column: Origem}",
    "fields": "a list of payload field: column lines",
    "legal_bases": "a list of {category, type, status} entries",
    "column": "a column header, or a list of headers",
    "template": "text with {Column} placeholders",
    "value": "text, a number, true/false or a list of texts",
    "default": "text, a number, true/false or a list of texts",
    "split": 'the separator text, e.g. ","',
    "transform": "a transform name, or a list of names",
    "format": "a date format such as dd/mm/yyyy",
    "pad": f"a number of characters from 1 to {tf.MAX_PAD}, e.g. 8",
    "map": "cell value: payload value pairs",
    "required": "true or false",
    "optional": "true or false",
    "on_invalid": "fail, drop or keep",
    "category": "communications",
}
_ENTRY_KEYS = {
    "column-entry": ["column", *_CellEntry.model_fields],
    "template-entry": ["template", *_CellEntry.model_fields],
    "value-entry": list(ValueEntry.model_fields),
}
_ENTRY_HELP = "a column header, or {column: ...}, {template: ...} or {value: ...}"


def _describe(value: Any) -> str:
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return f"the number {value}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return "empty" if value is None else repr(value)


def _did_you_mean(word: str, choices: list[str] | frozenset[str]) -> str:
    found = difflib.get_close_matches(word, sorted(choices), n=1, cutoff=0.6)
    return f" (did you mean '{found[0]}'?)" if found else ""


def _data_path(data: Any, loc: tuple[str | int, ...]) -> tuple[KeyPath, str | None]:
    """The part of pydantic's location that exists in the data, and the last entry tag seen."""
    path: list[str | int] = []
    tag = None
    node = data
    for part in loc:
        if isinstance(part, str) and part in _ENTRY_KEYS:
            tag = part
        elif (isinstance(node, dict) and part in node) or (
            isinstance(node, list) and isinstance(part, int) and part < len(node)
        ):
            node = node[part]
            path.append(part)
        elif isinstance(node, dict) and isinstance(part, str):
            path.append(part)  # a missing key: name it
            break
        # else: pydantic's name of a union member ("str", "list[str]"): not in the data
    return tuple(path), tag


def _pydantic_problems(exc: ValidationError, data: Any, lines: dict[KeyPath, int]) -> Problems:
    found: dict[KeyPath, tuple[int, str]] = {}
    for error in exc.errors():
        path, tag = _data_path(data, error["loc"])
        if path in found:
            continue  # one message per place: a union reports each member's complaint
        key = next((p for p in reversed(path) if isinstance(p, str)), "")
        kind = error["type"]
        value = error.get("input")
        line = _line_of(lines, path)
        if kind == "missing":
            where = "the mapping" if len(path) == 1 else "this entry"
            message = f"{where} needs '{key}:'"
        elif kind == "extra_forbidden":
            if len(path) == 1:
                allowed = list(MappingFile.model_fields)
            elif tag in _ENTRY_KEYS:
                allowed = _ENTRY_KEYS[tag]
            else:
                allowed = list(LegalBasis.model_fields)
            message = (
                f"unknown key '{key}'{_did_you_mean(key, allowed)}; known: {', '.join(allowed)}"
            )
        elif kind == "union_tag_invalid":
            message = "an entry takes one of column:, template: or value:, not several"
        elif kind == "union_tag_not_found":
            message = f"'{key}' needs {_ENTRY_HELP}, not {_describe(value)}"
        elif kind == "literal_error" and key == "transform":
            known = ", ".join(tf.TRANSFORMS)
            name = _key_text(value)
            message = f"unknown transform '{name}'{_did_you_mean(name, list(tf.TRANSFORMS))}"
            message += f"; known: {known}"
        elif kind == "literal_error" and key in ("type", "status"):
            allowed = rd.LEGAL_BASIS_TYPES if key == "type" else rd.LEGAL_BASIS_STATUSES
            message = (
                f"{_describe(value)} is not a legal basis {key}; allowed: {', '.join(allowed)}"
            )
        elif key in _EXPECTS:
            message = f"{key} must be {_EXPECTS[key]}, not {_describe(value)}"
        else:
            message = f"{key or 'the mapping'}: {error['msg']}"
        found[path] = (line, message)
    # A union's members complain at several depths ("not text" about the whole list, "not
    # text" about its third item): the deepest one says what to fix.
    return [
        problem
        for path, problem in found.items()
        if not any(len(other) > len(path) and other[: len(path)] == path for other in found)
    ]


# ---------------------------------------------------------------------------------------------
# Checks pydantic cannot make: field names, templates, what each entry gives the payload


def parse_template(template: str) -> list[tuple[str, str | None]]:
    """``"{Nome} {Sobrenome}"`` as (literal, None) and (column, column) parts.

    Raises ValueError naming what is wrong: only ``{Column Name}`` substitution exists.
    """
    parts: list[tuple[str, str | None]] = []
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
        name = template[i + 1 : end]
        if "{" in name:
            raise ValueError(f"template placeholder '{{{name}}}' holds a '{{'")
        if not name.strip() or name.isdigit() or re.search(r"[.\[!:]\S|[\[\]]", name):
            raise ValueError(
                f"template placeholder '{{{name}}}' is not a column name: templates only "
                "substitute {Column Name} (no positions, attributes, indexes or format specs)"
            )
        if literal:
            parts.append(("".join(literal), None))
            literal = []
        parts.append((name, name))
        i = end + 1
    if literal:
        parts.append(("".join(literal), None))
    return parts


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
    """Semantic checks of one mapping, collecting (line, message) problems."""

    def __init__(self, lines: dict[KeyPath, int]) -> None:
        self.lines = lines
        self.problems: Problems = []

    def add(self, path: KeyPath, message: str) -> None:
        self.problems.append((_line_of(self.lines, path), message))

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
            hint = _did_you_mean(name, known) or "; custom fields start with cf_"
            self.add(path, f"unknown payload field '{name}'{hint}")
        return False

    def entry(self, name: str, entry: Any, path: KeyPath) -> set[str]:
        """Checks one entry; returns the kinds of value it can give ("text", "bool", ...)."""
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
        if isinstance(entry, ColumnEntry):
            if not entry.columns or any(not c.strip() for c in entry.columns):
                self.add((*path, "column"), "column must name a header, not be empty")
        else:
            try:
                parts = parse_template(entry.template)
            except ValueError as exc:
                self.add((*path, "template"), str(exc))
            else:
                if not any(column for _, column in parts):
                    self.add(
                        (*path, "template"),
                        "template has no {Column} placeholder: use value: for a constant",
                    )
        if entry.split is not None and not entry.split:
            self.add((*path, "split"), 'split needs a separator, e.g. ","')
        if entry.required and entry.default is not None:
            self.add((*path, "required"), "required: true and default: contradict: keep one")
        if _empty_cell_key(entry) is not None:
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
        if entry.format is not None:
            if "date" not in entry.transforms:
                self.add((*path, "format"), "format: applies to transform: date only")
            else:
                try:
                    tf.strptime_format(entry.format)
                except ValueError as exc:
                    self.add((*path, "format"), str(exc))
        kinds = {kind}
        if entry.map is not None:
            if not entry.map:
                self.add((*path, "map"), "map is empty")
            folded: dict[str, str] = {}
            for key in entry.map:
                other = folded.setdefault(tf.fold(key), key)
                if other != key:
                    self.add((*path, "map"), f"map keys '{other}' and '{key}' match the same cells")
            kinds = {_kind(v) for v in entry.map.values()}
            if entry.on_invalid == "keep" and entry.default is None:
                kinds.add(kind)
        if entry.split:
            if kinds - {"text"}:
                self.add((*path, "split"), f"{name}: a list holds texts only")
            if entry.default is not None and not isinstance(entry.default, list):
                self.add((*path, "default"), "with split:, default must be a list, e.g. [lead]")
            return {"list"}
        if entry.default is not None:
            kinds.add(_kind(entry.default))
        return kinds

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
        values = list((entry.map or {}).values())
        if entry.default is not None:
            values.append(entry.default)
        for value in values:
            if value not in allowed:
                self.add(
                    (*path, "map" if entry.map else "default"),
                    f"{_describe(value)} is not a legal basis {part}; "
                    f"allowed: {', '.join(allowed)}",
                )
        if "bool" in kinds and (part == "type" or entry.map is not None):
            self.add(
                (*path, "transform"),
                f"legal basis {part} from a yes/no column needs map: to {', '.join(allowed)}",
            )


_IDENTIFIER = TypeAdapter(IdentifierEntry)
_FIELD = TypeAdapter(FieldEntry)
_BASIS = TypeAdapter(LegalBasis)


def _check(data: dict[str, Any], lines: dict[KeyPath, int]) -> Problems:
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


def _raise_problems(name: str, problems: Problems) -> None:
    if not problems:
        return
    ordered = sorted(dict.fromkeys(problems), key=lambda p: p[0])
    if len(ordered) == 1:
        line, message = ordered[0]
        raise InputError(f"{name}: line {line}: {message}")
    listed = "\n".join(f"  line {line}: {message}" for line, message in ordered)
    raise InputError(f"{name}: {len(ordered)} problems:\n{listed}")


def load_mapping(path: Path) -> Mapping:
    """Reads and checks a mapping file; InputError lists every problem with its line."""
    path = Path(path)
    name = path.name
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise InputError(f"mapping file {path} not found: check the --mapping path") from None
    except UnicodeDecodeError:
        raise InputError(f"{name} is not UTF-8 text: save it as UTF-8") from None
    except OSError as exc:
        raise InputError(f"mapping file {path} cannot be read: {exc.strerror}") from None
    data, lines, problems = _read_yaml(text, name)
    if not isinstance(data, dict):
        raise InputError(
            f"{name}: line 1: a mapping starts with conversion_identifier: and fields: "
            "(see mappings/example.yaml)"
        )
    try:
        spec = MappingFile.model_validate(data)
    except ValidationError as exc:
        problems += _pydantic_problems(exc, data, lines)
    problems += _check(data, lines)
    _raise_problems(name, problems)
    return Mapping(path, spec, lines)


# ---------------------------------------------------------------------------------------------
# The compiled mapping

Cells = dict[str, str]
Getter = Callable[[Cells], Any]
_GAP = "\ue000"  # a private-use character marks where an empty cell was
_AROUND_GAPS = re.compile(" *(?:\ue000 *)+")
_MISSING = object()


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    text = " ".join(str(value).split())
    return repr(text[:57] + "..." if len(text) > 60 else text)


def _reader(entry: ColumnEntry | TemplateEntry, present: set[str] | None) -> Callable[[Cells], str]:
    """Reads an entry's trimmed text from a row's cells ("" when empty)."""
    if isinstance(entry, ColumnEntry):
        columns = [c for c in entry.columns if present is None or c in present]
        if len(columns) == 1:
            column = columns[0]

            def read_one(cells: Cells) -> str:
                value = cells.get(column)
                return value.strip() if value else ""

            return read_one

        def read_first(cells: Cells) -> str:
            for column in columns:
                value = cells.get(column)
                if value and (value := value.strip()):
                    return value
            return ""

        return read_first

    parts = parse_template(entry.template)

    def read_template(cells: Cells) -> str:
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


def _map_step(entry: _CellEntry) -> Callable[[Any], Any]:
    table = dict(entry.map or {})
    folded = {tf.fold(key): value for key, value in table.items()}
    default = entry.default if entry.split is None else None  # a split's default is the list
    known = ", ".join(key if key.strip() else '""' for key in list(table)[:8])
    reason = f"is not in the map ({known}{', ...' if len(table) > 8 else ''})"

    memo: dict[Any, Any] = {}  # a mapped column holds few distinct values

    def lookup(value: Any) -> Any:
        found = memo.get(value, _MISSING)
        if found is not _MISSING:
            return found
        key = ("true" if value else "false") if isinstance(value, bool) else value
        found = table.get(key, _MISSING)
        if found is _MISSING:
            found = folded.get(tf.fold(key), _MISSING)
            if found is _MISSING:
                if default is None:
                    raise tf.TransformError(reason)
                found = default
        if len(memo) < 10_000:
            memo[value] = found
        return found

    return lookup


def _empty_cell_key(entry: _CellEntry) -> str | None:
    """The map's key for an empty cell ("", or only spaces), None when it has none."""
    return next((key for key in entry.map or {} if not key.strip()), None)


def _converter(entry: _CellEntry, label: str, name: str) -> Callable[[str], Any] | None:
    """The entry's transforms and map as one function; None when there are none."""
    steps = [tf.get_transform(step, date_format=entry.format) for step in entry.transforms]
    if entry.pad is not None:
        steps.append(tf.make_pad(entry.pad))
    if entry.map is not None:
        steps.append(_map_step(entry))
    if not steps:
        return None
    on_invalid = entry.on_invalid

    def refused(text: str, exc: tf.TransformError) -> Any:
        if on_invalid == "drop":
            return None
        if on_invalid == "keep":
            return text
        raise RowError(f"{label}: {_show(text)} {exc}", stage="mapping", field=name) from None

    if len(steps) == 1:  # the usual case, without the loop
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


def _label(name: str, entry: Any, present: set[str] | None = None) -> str:
    """How a message names a field: with its column(s) or template."""
    if isinstance(entry, str) and name != "conversion_identifier":
        return f"{name} (column {entry!r})"
    if isinstance(entry, ColumnEntry):
        columns = [c for c in entry.columns if present is None or c in present]
        return f"{name} (column {' or '.join(repr(c) for c in columns)})"
    if isinstance(entry, TemplateEntry):
        return f"{name} (template {entry.template!r})"
    return name


def _compile_entry(
    name: str, entry: Any, present: set[str] | None, check: Callable[[Any, str], Any] | None
) -> Getter | None:
    """A function from a row's cells to the field's value, None for "leave it out"."""
    if isinstance(entry, ValueEntry):
        constant = entry.value
        return lambda cells: constant
    if isinstance(entry, str):
        entry = ColumnEntry(column=entry)
    if (
        isinstance(entry, ColumnEntry)
        and present is not None
        and not any(c in present for c in entry.columns)
    ):
        return None  # an optional column the file lacks
    label = _label(name, entry, present)
    read = _reader(entry, present)
    convert = _converter(entry, label, name)
    separator, default, required = entry.split, entry.default, entry.required
    empty_key = _empty_cell_key(entry)
    if empty_key is not None and entry.map is not None:
        # the value an empty cell sends comes first, as if it were the default
        default = entry.map[empty_key]
    columns = [c for c in _entry_columns(entry) if present is None or c in present]
    if isinstance(entry, ColumnEntry) and len(columns) == 1 and default is None and not required:
        if separator is not None:
            if convert is None and check is None:
                return _split_getter(columns[0], separator)
        elif check is None:
            return _simple_getter(columns[0], convert)
        elif convert is None:
            return _checked_getter(columns[0], check, label)

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
                raise RowError(
                    f"{label} is empty, and the mapping requires it", stage="mapping", field=name
                )
            return None
        return value if check is None else check(value, label)

    return get


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


def _plain_column(entry: Any, present: set[str] | None) -> str | None:
    """The column of an entry that is just one column's trimmed text, else None."""
    if isinstance(entry, str):
        return entry if present is None or entry in present else None
    if (
        isinstance(entry, ColumnEntry)
        and entry.split is None
        and entry.transform is None
        and entry.pad is None
        and entry.map is None
        and entry.default is None
        and not entry.required
    ):
        columns = [c for c in entry.columns if present is None or c in present]
        return columns[0] if len(columns) == 1 else None
    return None


def _checked_getter(column: str, check: Callable[[Any, str], Any], label: str) -> Getter:
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


def _check_email(value: Any, label: str) -> str:
    try:
        return rd.normalize_email(value)
    except rd.InvalidEmail as exc:
        raise RowError(
            f"{label}: {_show(value)} is not a valid email address: {exc}",
            stage="validation",
            field="email",
        ) from None


def _payload_check(name: str) -> Callable[[Any, str], Any] | None:
    """The per-row rule of RD Station's that the load-time checks could not settle."""
    if name == "email":
        return _check_email
    if name not in rd.SOCIAL_FIELDS:
        return None

    def check(value: Any, label: str) -> Any:
        problem = rd.check_value(name, value)
        if problem is not None:
            raise RowError(
                f"{label}: {_show(value)} {problem.message}", stage="validation", field=name
            )
        return value

    return check


def _legal_check(part: str, index: int) -> Callable[[Any, str], Any]:
    allowed = rd.LEGAL_BASIS_TYPES if part == "type" else rd.LEGAL_BASIS_STATUSES
    field = f"legal_bases[{index}].{part}"

    def check(value: Any, label: str) -> Any:
        if part == "status" and isinstance(value, bool):
            return "granted" if value else "declined"
        if value not in allowed:
            raise RowError(
                f"{label}: {_show(value)} is not a legal basis {part} "
                f"({', '.join(allowed)}); add a map:",
                stage="validation",
                field=field,
            )
        return value

    return check


def _entry_columns(entry: Any) -> Iterator[str]:
    if isinstance(entry, str):
        yield entry
    elif isinstance(entry, ColumnEntry):
        yield from entry.columns
    elif isinstance(entry, TemplateEntry):
        yield from (column for _, column in parse_template(entry.template) if column)


class Mapping:
    """A checked mapping file, compiled into one small function per payload field."""

    def __init__(self, path: Path, spec: MappingFile, lines: dict[KeyPath, int] | None = None):
        self.path = path
        self.spec = spec
        self._lines = lines or {}
        self._compile(None)

    def _references(self) -> Iterator[tuple[KeyPath, str, Any]]:
        """(path, payload name, entry) of every entry that may read columns."""
        yield ("conversion_identifier",), "conversion_identifier", self.spec.conversion_identifier
        for name, entry in self.spec.fields.items():
            yield ("fields", name), name, entry
        for index, basis in enumerate(self.spec.legal_bases):
            for part in ("type", "status"):
                yield (
                    ("legal_bases", index, part),
                    f"legal_bases[{index}].{part}",
                    getattr(basis, part),
                )

    @property
    def columns(self) -> list[str]:
        """Every column the mapping reads, in the order the mapping names them."""
        out: dict[str, None] = {}
        for path, _, entry in self._references():
            if path[0] == "conversion_identifier" and isinstance(entry, str):
                continue  # a constant
            if path[0] == "legal_bases" and isinstance(entry, str):
                continue
            out.update(dict.fromkeys(_entry_columns(entry)))
        return list(out)

    def check_columns(self, headers: list[str], source: str = "the file") -> list[str]:
        """Raises InputError naming every needed column ``headers`` lack; returns warnings.

        ``source`` names the spreadsheet in messages (e.g. ``leads.csv``).
        """
        present = set(headers)
        keyed = [(header_key(header), header) for header in headers]
        problems: Problems = []
        warnings: list[str] = []
        for path, name, entry in self._references():
            if isinstance(entry, str) and path[0] != "fields":
                continue  # a constant
            needed = list(dict.fromkeys(_entry_columns(entry)))
            missing = [c for c in needed if c not in present]
            if not missing:
                continue
            line = _line_of(self._lines, path) if self._lines else 0
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
        _raise_problems(self.path.name, problems)
        self._compile(present)
        return warnings

    def _compile(self, present: set[str] | None) -> None:
        # Most fields are a constant or one column's trimmed text: apply handles those inline,
        # without a function call each; the rest get a compiled getter.
        constants: dict[str, Any] = {}
        plain: list[tuple[str, str]] = []
        plan: list[tuple[str, Getter]] = []
        ident = self.spec.conversion_identifier
        if isinstance(ident, str):
            constants["conversion_identifier"] = ident.strip()
        else:
            getter = _compile_entry("conversion_identifier", ident, present, None)
            if getter is not None:
                plan.append(("conversion_identifier", getter))
        for name, entry in self.spec.fields.items():
            check = _payload_check(name)
            column = _plain_column(entry, present) if check is None else None
            if isinstance(entry, ValueEntry):
                constants[name] = entry.value
            elif column is not None:
                plain.append((name, column))
            elif (getter := _compile_entry(name, entry, present, check)) is not None:
                plan.append((name, getter))
        legal: list[tuple[Any, Any]] = []
        for index, basis in enumerate(self.spec.legal_bases):
            pair = []
            for part in ("type", "status"):
                value = getattr(basis, part)
                if isinstance(value, str):
                    pair.append(value)
                else:
                    getter = _compile_entry(
                        f"legal_bases[{index}].{part}", value, present, _legal_check(part, index)
                    )
                    pair.append(getter if getter is not None else _absent)
            legal.append((pair[0], pair[1]))
        self._constants = constants
        self._plain = plain
        self._plan = plan
        self._legal = legal
        self._labels = {
            name: _label(name, entry, present)
            for name, entry in [("conversion_identifier", ident), *self.spec.fields.items()]
        }
        self._read_columns = [c for c in self.columns if present is None or c in present]

    def apply(self, row: Row) -> dict[str, Any]:
        """The row's payload (the inner ``payload`` object), or RowError saying what is wrong."""
        cells = row.cells
        try:
            payload: dict[str, Any] = self._constants.copy()
            for name, column in self._plain:
                value = cells.get(column)
                if value and (value := value.strip()):
                    payload[name] = value
            for name, get in self._plan:
                value = get(cells)
                if value is not None:
                    payload[name] = value
            if self._legal:
                bases = self._legal_bases(cells)
                if bases:
                    payload["legal_bases"] = bases
            if "email" not in payload or "conversion_identifier" not in payload:
                raise self._missing_required(payload)
            return payload
        except RowError:
            columns = self._read_columns
            if columns and not any((cells.get(column) or "").strip() for column in columns):
                raise RowError(
                    "the row has none of the mapped columns filled (a blank or leftover row)",
                    stage="mapping",
                ) from None
            raise

    def _legal_bases(self, cells: Cells) -> list[dict[str, str]]:
        bases = []
        for kind, status in self._legal:
            kind_value = kind if isinstance(kind, str) else kind(cells)
            status_value = status if isinstance(status, str) else status(cells)
            if kind_value is not None and status_value is not None:
                bases.append(
                    {"category": "communications", "type": kind_value, "status": status_value}
                )
        return bases

    def _missing_required(self, payload: dict[str, Any]) -> RowError:
        name = "email" if "email" not in payload else "conversion_identifier"
        what = "an email address" if name == "email" else "a conversion identifier"
        return RowError(
            f"{self._labels[name]} is empty: every conversion needs {what}",
            stage="validation",
            field=name,
        )


def _absent(cells: Cells) -> None:
    return None


def _header_hint(column: str, folded: dict[str, str]) -> str:
    """ " (did you mean 'X'?)" for a header differing only in case, accents or spaces."""
    key = header_key(column)
    found = folded.get(key)
    if found is None:
        close = difflib.get_close_matches(key, list(folded), n=1, cutoff=0.85)
        found = folded[close[0]] if close else None
    return f" (did you mean '{found}'?)" if found is not None else ""
