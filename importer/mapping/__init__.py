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
  ``{A[0]}``, ``{A!r}``, ``{A:>10}`` are mapping errors. Several templates are tried in order,
  the first that gives text used, and the file needs the columns of one of them:
  ``{template: ["{First Name} {Last Name}", "{Nome} {Sobrenome}"]}`` (one export's language
  or another's).
- ``{value: ...}``: a constant (text, number, true/false, or a list of texts).

A column or template entry takes these keys too, applied in this order:

- ``split: ","``: the cell becomes a list; items trimmed, empty items dropped; what follows
  applies to each item.
- ``transform: NAME`` or ``transform: [NAME, ...]``: see ``importer.transforms`` (strip,
  unquote, lower, upper, title, digits, phone_br, date, bool, handle). ``format: "yyyy-mm-dd"``
  sets the ``date`` format (``dd``, ``mm``, ``yyyy``, ``yy``, or ``strptime`` codes); the
  default is ``dd/mm/yyyy``. ``date`` refuses a bare number (``1990`` is a year as likely as
  the Excel serial of 1905-06-12) unless the entry says ``excel_serial: true``; a workbook's
  date cells arrive as dates, not serials, either way.
- ``pad: 8``: left-pads a value of digits with zeros to that many characters, for the codes
  whose leading zeros Excel dropped (CEP ``1310100`` -> ``01310100``; a longer value is kept).
  A value with anything but digits is refused (``on_invalid`` applies): put ``transform:
  digits`` first, ``{column: CEP, transform: digits, pad: 8}``.
- ``map: {cell value: payload value}``: keys compare without case or accents (``Não`` matches
  ``nao``); after ``bool`` the keys are ``true``/``false``. A value missing from the map takes
  ``default:`` when there is one, else ``on_invalid`` applies. The key ``""`` is the empty cell:
  ``map: {"": declined, Sim: granted}`` sends ``declined`` for an empty cell, where ``default:``
  would also cover every value missing from the map. A value mapped to ``null`` leaves the
  field out for that cell: ``map: {"1": declined, "0": null}``. (A column the file lacks,
  under ``optional: true``, still leaves the field out.)
- ``default: VALUE``: the value when the cell is empty (and for values missing from ``map``);
  an empty-cell key in ``map`` comes first.
- ``required: true``: an empty cell fails the row (otherwise an empty cell leaves the field out
  of the payload, so an import never blanks what RD Station already has).
- ``on_invalid: fail | drop | keep``: what a value a transform or the map refuses does: fail the
  row (the default), leave the field out with a warning in the run's record, or send the
  value as written.
- ``optional: true``: the file may lack the column(s); the field is then left out. Without it a
  missing column stops the run before anything is sent.

``legal_bases`` is a list of ``{category: communications, type: T, status: S}``. ``type`` and
``status`` are constants or column entries (``{column: ..., map: ...}``); a ``status`` column
through ``bool`` needs no map (true is ``granted``, false ``declined``). An entry whose cell is
empty is left out of that row's payload.

YAML details: only ``true``/``false`` are booleans (``yes``, ``no``, ``on``, ``off`` stay text,
so ``map: {no: declined}`` means the word "no"), dates stay text, a key given twice is an
error, and a mapping is plain data: a tag other than YAML's core ones is an error naming its
line (see ``yamltext``).

Errors: :func:`load_mapping` reports every problem of the file at once, each with its line;
:meth:`Mapping.bind` every column the spreadsheet lacks; :meth:`BoundMapping.apply` raises
:class:`~importer.errors.RowError` for one bad row, and tells its ``warn`` callback of what it
let pass (a value ``drop`` left out, a number read as a date serial).

Where each rule lives:

- ``schema``: the document's models (keys and types) and its JSON Schema.
- ``yamltext``: reading the YAML with each key's line; booleans, dates and tags.
- ``template``: what a template may hold, and how a row fills it.
- ``checks``: the rules across keys and fields (contradictions, types RD Station takes).
- ``problems``: pydantic's errors in the mapping's words; all problems in one message.
- ``columns``: the mapping's columns against a file's headers; "did you mean".
- ``convert``: transforms, pad, map and on_invalid on a cell's text.
- ``validation``: RD Station's per-row rules (email, social handles, legal bases).
- ``compile``: one getter per field, with shortcuts for the common shapes.
- ``bound``: :class:`BoundMapping`, which maps a row to its payload.
- ``load``: :func:`load_mapping` and :class:`Mapping`.
"""

from __future__ import annotations

from importer.mapping.bound import BoundMapping
from importer.mapping.load import Mapping, load_mapping
from importer.mapping.schema import (
    ColumnEntry,
    FieldEntry,
    IdentifierEntry,
    LegalBasis,
    MappingFile,
    TemplateEntry,
    ValueEntry,
    mapping_json_schema,
    mapping_json_schema_text,
)
from importer.mapping.template import parse_template

__all__ = [
    "BoundMapping",
    "ColumnEntry",
    "FieldEntry",
    "IdentifierEntry",
    "LegalBasis",
    "Mapping",
    "MappingFile",
    "TemplateEntry",
    "ValueEntry",
    "load_mapping",
    "mapping_json_schema",
    "mapping_json_schema_text",
    "parse_template",
]
