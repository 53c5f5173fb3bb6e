"""The mapping document's shape: pydantic models, and the JSON Schema made from them.

The models say which keys an entry takes and of which types; ``checks`` holds the rules that
span keys (``required`` with ``default``, a transform after ``bool``...). The JSON Schema is
shipped as ``mappings/mapping.schema.json`` for editors.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, JsonValue, Tag

from importer import payload as rd
from importer import transforms as tf
from importer.mapping.template import parse_template

Scalar = str | int | float | bool
Constant = Scalar | list[str]
OnInvalid = Literal["fail", "drop", "keep"]


class _Model(BaseModel):
    # strict: YAML already gives real types; "12" must not quietly become 12
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class CellEntry(_Model):
    """What a column or template entry does with the cell's text (every key but its source)."""

    split: str | None = Field(None, description="Separator that makes the cell a list.")
    transform: tf.TransformName | list[tf.TransformName] | None = Field(
        None, description="A transform name, or a list applied in order."
    )
    format: str | None = Field(None, description="Date format for transform: date (dd/mm/yyyy).")
    excel_serial: bool = Field(
        False,
        description="transform: date reads a bare number as an Excel date serial "
        "(46096 is 2026-03-15), with a warning; without it a bare number is refused.",
    )
    pad: int | None = Field(
        None,
        ge=1,
        le=tf.MAX_PAD,
        description="Left-pads a value of digits with zeros to this many characters "
        "(after transform, before map): 8 makes 1310100 the CEP 01310100.",
    )
    map: dict[str, Scalar | None] | None = Field(
        None,
        description="Cell value to payload value; compared without case or accents. A value "
        "mapped to null leaves the field out.",
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

    @property
    def empty_cell_key(self) -> str | None:
        """The map's key for an empty cell ("", or only spaces), None when it has none."""
        return next((key for key in self.map or {} if not key.strip()), None)


class ColumnEntry(CellEntry):
    column: str | list[str] = Field(description="A column header, or headers tried in order.")

    @property
    def columns(self) -> list[str]:
        return [self.column] if isinstance(self.column, str) else list(self.column)


class TemplateEntry(CellEntry):
    template: str | list[str] = Field(
        description="Text with {Column} placeholders, or several such texts tried in order: "
        "the first that gives text."
    )

    @property
    def templates(self) -> list[str]:
        return [self.template] if isinstance(self.template, str) else list(self.template)


class ValueEntry(_Model):
    value: Constant = Field(description="A constant sent in every row.")


# Which model a raw entry is, named by the key it holds: pydantic then reports the problems of
# that model only, instead of one per member of the union.
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


_FIELD_NAMES: list[JsonValue] = [*sorted(rd.KNOWN_FIELDS - {rd.LEGAL_BASES_FIELD})]


class FunnelSection(_Model):
    """The contact's funnel, set after its conversion (OAuth only; ``importer.mapping.funnel``
    holds its rules)."""

    lifecycle_stage: FieldEntry | None = Field(
        None, description='"Lead", "Qualified Lead" or "Client" (map: other values to these).'
    )
    opportunity: FieldEntry | None = Field(
        None, description="true or false: transform: bool, or map: to true/false."
    )
    contact_owner_email: FieldEntry | None = Field(
        None, description="The e-mail of the account's user who owns the contact."
    )
    with_apikey: Literal["refuse", "skip"] = Field(
        "refuse",
        description="Under --auth apikey (which cannot set a funnel): refuse the run, or skip "
        "this section with a note (the presets skip it).",
    )


class MappingFile(_Model):
    """The whole mapping document."""

    conversion_identifier: IdentifierEntry = Field(
        description="The conversion's name: a constant, or a column entry."
    )
    fields: dict[str, FieldEntry] = Field(
        description="Payload field (RD Station's name, or cf_<api_identifier>): its source.",
        json_schema_extra={
            "propertyNames": {
                "anyOf": [{"enum": _FIELD_NAMES}, {"pattern": rd.CUSTOM_FIELD.pattern}]
            }
        },
    )
    legal_bases: list[LegalBasis] = Field(
        default_factory=list, description="LGPD legal bases sent with every row."
    )
    funnel: FunnelSection | None = Field(
        default=None,
        description="The contact's funnel stage, opportunity and owner, set after its "
        "conversion is accepted (needs --auth oauth).",
    )
    key: str | list[str] | None = Field(
        default=None,
        description="The column (or columns) that identify a row across runs, such as a CRM "
        "record id: a row sent earlier is known by it even when its payload changed. Default: "
        "every filled cell of the row.",
    )

    @property
    def key_columns(self) -> list[str] | None:
        if self.key is None:
            return None
        return [self.key] if isinstance(self.key, str) else list(self.key)


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
# Where a document reads columns

KeyPath = tuple[str | int, ...]  # where a value sits in the document: ("fields", "email")


def references(spec: MappingFile) -> Iterator[tuple[KeyPath, str, Any]]:
    """(path, payload name, entry) of every entry that may read columns."""
    yield ("conversion_identifier",), "conversion_identifier", spec.conversion_identifier
    for name, entry in spec.fields.items():
        yield ("fields", name), name, entry
    for index, basis in enumerate(spec.legal_bases):
        for part in ("type", "status"):
            yield (
                ("legal_bases", index, part),
                f"legal_bases[{index}].{part}",
                getattr(basis, part),
            )
    if spec.funnel is not None:
        for name in FUNNEL_KEYS:
            entry = getattr(spec.funnel, name)
            if entry is not None:
                yield ("funnel", name), f"funnel.{name}", entry


FUNNEL_KEYS: tuple[str, ...] = ("lifecycle_stage", "opportunity", "contact_owner_email")


def reads_columns(path: KeyPath, entry: Any) -> bool:
    """False for a constant: a bare text outside ``fields`` (an identifier, a legal basis)."""
    return not (isinstance(entry, str) and path[0] not in ("fields", "funnel"))


def columns_read(spec: MappingFile) -> list[str]:
    """Every column the mapping reads, in the order the mapping names them."""
    out: dict[str, None] = {}
    for path, _, entry in references(spec):
        if reads_columns(path, entry):
            out.update(dict.fromkeys(entry_columns(entry)))
    return list(out)


def entry_columns(entry: Any) -> Iterator[str]:
    """The columns one entry reads, in its order (a bare text is a column here)."""
    if isinstance(entry, str):
        yield entry
    elif isinstance(entry, ColumnEntry):
        yield from entry.columns
    elif isinstance(entry, TemplateEntry):
        for template in entry.templates:
            yield from template_columns(template)


def template_columns(template: str) -> Iterator[str]:
    """The columns one (checked) template reads, in its order."""
    return (column for _, column in parse_template(template) if column)
