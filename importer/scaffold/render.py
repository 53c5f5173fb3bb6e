"""Writing the mapping's YAML for what `recognise` decided: a text that runs as is, with every
other column as a commented ``cf_`` suggestion and consent (or why there is none) spelled out."""

from __future__ import annotations

import json
from typing import Any

from importer.scaffold.columns import Recognised
from importer.scaffold.consent import Consent
from importer.scaffold.header_names import slug

# The payload fields written as plain columns, in the order the scaffold writes them.
FIELD_ORDER = (
    "email",
    "name",
    "mobile_phone",
    "personal_phone",
    "company_name",
    "job_title",
    "city",
    "state",
    "country",
    "website",
    "twitter",
    "facebook",
    "linkedin",
    "tags",
)

EDIT_MARK = "# <- edit: the name of this conversion in RD Station"


def _q(text: str) -> str:
    # A JSON string is a valid YAML double-quoted scalar; accents stay readable.
    return json.dumps(text, ensure_ascii=False)


def _column(columns: list[str]) -> str:
    if len(columns) == 1:
        return _q(columns[0])
    return "[" + ", ".join(_q(c) for c in columns) + "]"


def render_mapping(found: Recognised, *, source_name: str) -> str:
    """The mapping file's text for what `recognise` decided."""
    out = _preamble(found, source_name)
    if "email" not in found.fields:
        out.append(
            '  email: "E-mail"  # <- edit: no column of e-mail addresses was found; '
            "name the column that holds them"
        )
    for target in FIELD_ORDER:
        columns = found.fields.get(target)
        if target == "name" and not columns and found.first_name and found.last_name:
            template = "{" + found.first_name + "} {" + found.last_name + "}"
            out.append(f"  name: {{template: {_q(template)}}}")
            continue
        if columns:
            out.append(_field_line(target, columns, found))
    if found.consent is not None:
        out += _available_for_mailing(found.consent)
    out += _account_fields(found)
    out += _ambiguous_fields(found)
    out += _custom_fields(found.others)
    out.append("")
    out += _legal_bases(found)
    return "\n".join(out) + "\n"


def _preamble(found: Recognised, source_name: str) -> list[str]:
    """The comments that say how to use the file, the conversion's name, ``fields:``."""
    flag = f" --header-row {found.header_row}" if found.header_row != 1 else ""
    return [
        f"# Mapping for {source_name}, written by `rd-importer mapping init`.",
        *(
            [
                f"# Its header is row {found.header_row}: give --header-row {found.header_row} to"
                " validate and import it."
            ]
            if flag
            else []
        ),
        f"# Check it, then: rd-importer validate FILE --mapping THIS_FILE{flag}",
        "# Uncomment a `cf_` line to send that column as a custom field (create the field in RD",
        "# Station first, with that API identifier); delete the lines you do not need.",
        "",
        f"conversion_identifier: {_q(found.stem)}  {EDIT_MARK}",
        "fields:",
    ]


def _field_line(target: str, columns: list[str], found: Recognised) -> str:
    """The line of one payload field fed by ``columns``."""
    source = _column(columns)
    if target == "email":
        # trimmed, lower-cased and checked by the mapping whatever the entry says
        return f"  email: {source if len(columns) == 1 else '{column: ' + source + '}'}"
    if target in ("mobile_phone", "personal_phone"):
        # drop: a cell that is no phone ("não tem") is left out, with a warning in the run's
        # record, rather than sent as typed or failing its row
        return f"  {target}: {{column: {source}, transform: phone_br, on_invalid: drop}}"
    if target in ("twitter", "facebook", "linkedin"):
        # RD Station takes the handle only; a cell with none leaves the field out.
        return f"  {target}: {{column: {source}, transform: handle, on_invalid: drop}}"
    if target == "tags":
        sep = _q(found.tag_separator)
        return f"  tags: {{column: {source}, split: {sep}, transform: [strip, lower]}}"
    if len(columns) > 1:
        return f"  {target}: {{column: {source}}}"
    return f"  {target}: {source}"


def _account_fields(found: Recognised) -> list[str]:
    """The columns named like one of the account's custom fields, mapped to it as its type
    needs: a yes/no field through ``bool``, a list split, a choice field's options named."""
    if not found.custom:
        return []
    out = ["  # Custom fields of your RD Station account, matched by their label:"]
    for name, (header, known, options) in found.custom.items():
        keys = [f"column: {_q(header)}"]
        if known.data_type == "BOOLEAN":
            keys.append("transform: bool")
        elif known.data_type == "STRING[]":
            keys.append('split: ","')
        if options:
            pairs = ", ".join(f"{_q(cell)}: {_q(value)}" for cell, value in options.items())
            keys.append(f"map: {{{pairs}}}")  # option values quoted: "1", "no", "a, b"
        line = f"  {name}: " + (_q(header) if len(keys) == 1 else "{" + ", ".join(keys) + "}")
        if known.choices:
            values = [option.value for option in known.choices]
            shown = ", ".join(values[:6]) + (" ..." if len(values) > 6 else "")
            line += f"  # options: {shown}"
        out.append(line)
    return out


def _ambiguous_fields(found: Recognised) -> list[str]:
    """A column whose header labels several of the account's fields: each, commented, for the
    user to keep one (a guess could send every row's value to the wrong field)."""
    out = []
    for header, names in found.ambiguous.items():
        out.append(
            f"  # {_q(header)} labels {len(names)} fields of your RD Station account: "
            "uncomment the one to send it to"
        )
        out += [f"  # {name}: {_q(header)}" for name in names]
    return out


def _custom_fields(others: list[str]) -> list[str]:
    """The other columns, as commented ``cf_`` lines, each name once."""
    out = []
    taken = {f"cf_{slug(h)}" for h in others}
    if others:
        out.append("  # Other columns of the file, as custom fields:")
    seen: set[str] = set()
    for h in others:
        name = f"cf_{slug(h)}"
        if name in seen:  # two headers with one slug: number the later ones
            n = 2
            while f"{name}_{n}" in taken or f"{name}_{n}" in seen:
                n += 1
            name = f"{name}_{n}"
        seen.add(name)
        out.append(f"  # {name}: {_q(h)}")
    return out


def _available_for_mailing(consent: Consent) -> list[str]:
    """The ``available_for_mailing`` lines of a consent column: an opt-out is sent as one; a
    row that opted out of nothing is left as RD Station has it."""
    column = _q(consent.column)
    if consent.kind == "question":
        note = "answers, row by row, whether the lead accepts communications"
        entry = f"{{column: {column}, transform: bool}}"
    elif consent.kind == "opt_out":
        note = "is an opt-out: true -> not mailable; false says nothing"
        entry = f"{{column: {column}, transform: bool, map: {{true: false, false: null}}}}"
    elif consent.kind == "unsubscribed_at":
        note = "holds when the lead unsubscribed: filled -> not mailable"
        entry = f'{{column: {column}, map: {{"": null}}, default: false}}'
    else:
        note = "is a subscription status: subscribed -> mailable, unsubscribed -> not"
        entry = f"{{column: {column}, map: {_yaml_map(consent.statuses)}, on_invalid: drop}}"
    return [f"  # {column} {note}", f"  available_for_mailing: {entry}"]


def _legal_bases(found: Recognised) -> list[str]:
    """The ``legal_bases`` lines: consent per row from the consent column, or, without one, a
    comment that says why none is sent."""
    consent = found.consent
    pointer = []
    if found.legal_basis is not None:
        pointer = [
            f"# The column {_q(found.legal_basis)} names a legal basis per row: to send it, see",
            "# how mappings/hubspot.yaml and mappings/rdstation.yaml map theirs.",
        ]
    if consent is None:
        return [
            "# LGPD: no legal basis is sent. No column of this file says, row by row, whether each",
            '# lead accepts communications (a consent question such as "Aceita comunicação?", an',
            '# opt-out such as "Unsubscribed from all email", a subscription status), and one',
            "# basis for everyone would be a guess: RD Station keeps what it knows of each lead.",
            "# If you hold a basis for all of them (consent given elsewhere, a contract), add",
            "# legal_bases: with the type you rely on (see mappings/example.yaml).",
            *pointer,
        ]
    column = _q(consent.column)
    if consent.kind == "question":
        status = f"{{column: {column}, transform: bool}}  # sim -> granted, não -> declined"
        why = "granted or declined as the lead answered; an empty cell sends none"
    elif consent.kind == "opt_out":
        status = f"{{column: {column}, transform: bool, map: {{true: declined, false: null}}}}"
        why = "declined where the lead opted out; other rows send none"
    elif consent.kind == "unsubscribed_at":
        status = f'{{column: {column}, map: {{"": null}}, default: declined}}'
        why = "declined where the lead unsubscribed; other rows send none"
    else:
        statuses = {
            value: None if meaning is None else ("granted" if meaning else "declined")
            for value, meaning in consent.statuses.items()
        }
        status = f"{{column: {column}, map: {_yaml_map(statuses)}, on_invalid: drop}}"
        why = "granted or declined by the status; other statuses send none"
    return [
        f"# LGPD: the legal basis for communications, row by row from {column}:",
        f"# {why}.",
        *pointer,
        "legal_bases:",
        "  - category: communications",
        "    type: consent",
        f"    status: {status}",
    ]


def _yaml_map(table: dict[str, Any]) -> str:
    def value(v: Any) -> str:
        if v is None:
            return "null"
        if isinstance(v, bool):
            return "true" if v else "false"
        return str(v)

    return "{" + ", ".join(f"{_q(k)}: {value(v)}" for k, v in table.items()) + "}"
