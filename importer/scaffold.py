"""Write a first mapping for a spreadsheet: `rd-importer mapping init FILE`.

The scaffold reads the header and a sample of rows and recognises columns two ways: by their
header, in Portuguese or English, compared without case, accents, spaces or punctuation
("E-mail", "Endereço de e-mail", "EMAIL ADDRESS"), and by their values (a column full of
e-mail addresses is the email whatever its header; a column of formatted Brazilian phones is a
phone). Every other column is listed as a commented ``cf_`` suggestion, so the user only
deletes or uncomments lines. The text it returns runs as is.

Consent is never guessed. A column that says, row by row, whether a lead accepts
communications is mapped to ``available_for_mailing`` and a consent legal basis: a yes/no
question ("Aceita comunicação?": sim -> granted, não -> declined), an opt-out flag
("Unsubscribed from all email", "Email Opt Out": true -> declined and unmailable, false says
nothing), a subscription status ("Subscribed", "Unsubscribed", "Inscrito"...) or the time of an
unsubscription (Mailchimp's UNSUB_TIME). A file with none of them gets no legal basis, and a
comment that says why.

A file whose header is not on row 1 (title rows above it) has its header row found: the first
row of mostly non-empty text cells with a data-like row under it (``header_row_of``).
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any, Literal

import phonenumbers

from importer.headers import header_key
from importer.loader import Table, open_table
from importer.transforms import TransformError, fold, to_bool

# Header spellings, compared as `header_key` leaves them (lower case, no accents, letters and
# digits only), so "E-mail", "e mail" and "EMAIL" are one spelling.
HEADER_NAMES: dict[str, tuple[str, ...]] = {
    "email": (
        "email",
        "emailaddress",
        "enderecodeemail",
        "enderecoemail",
        "correioeletronico",
        "emailprincipal",
        "emaildocontato",
        "mail",
    ),
    "name": (
        "nome",
        "name",
        "fullname",
        "nomecompleto",
        "nomedocontato",
        "contactname",
        "leadname",
        "nomedolead",
        "cliente",
        "contato",
    ),
    "first_name": ("firstname", "primeironome", "givenname", "prenome", "first"),
    "last_name": ("lastname", "sobrenome", "surname", "familyname", "ultimonome", "last"),
    "mobile_phone": (
        "celular",
        "mobile",
        "whatsapp",
        "whats",
        "zap",
        "cel",
        "mobilephone",
        "mobilephonenumber",
        "telefonecelular",
        "numerodecelular",
        "celularwhatsapp",
        "whatsappcelular",
    ),
    "personal_phone": (
        "telefone",
        "phone",
        "phonenumber",
        "fone",
        "tel",
        "telefonefixo",
        "telefonecomercial",
        "telefoneresidencial",
        "businessphone",
        "workphone",
        "homephone",
        "numerodetelefone",
    ),
    "company_name": (
        "empresa",
        "company",
        "companyname",
        "organization",
        "organisation",
        "organizacao",
        "companyaccount",
        "empresaconta",
        "nomedaempresa",
        "razaosocial",
        "account",
        "accountname",
    ),
    "job_title": ("cargo", "jobtitle", "title", "funcao", "position", "profissao", "ocupacao"),
    # Pipedrive names address parts "City/town/village/locality of Postal address".
    # ... and in Portuguese "Cidade/município/vila/localidade de Endereço postal".
    "city": (
        "cidade",
        "city",
        "municipio",
        "citytownvillagelocalityofpostaladdress",
        "cidademunicipiovilalocalidadedeenderecopostal",
    ),
    "state": (
        "estado",
        "uf",
        "state",
        "stateregion",
        "estadoregiao",
        "stateprovince",
        "estadoprovincia",
        "provincia",
        "statecountyofpostaladdress",
        "estadocondadodeenderecopostal",
    ),
    "country": (
        "pais",
        "country",
        "countryregion",
        "paisregiao",
        "countryofpostaladdress",
        "paisdeenderecopostal",
    ),
    "website": (
        "site",
        "website",
        "websiteurl",
        "urldosite",
        "urldowebsite",
        "homepage",
        "sitedaempresa",
        "companywebsite",
    ),
    "tags": ("tags", "tag", "labels", "label", "etiquetas", "etiqueta", "marcadores"),
    "twitter": ("twitter", "twitterhandle", "twitterusername", "twitterurl", "perfiltwitter"),
    "facebook": (
        "facebook",
        "facebookurl",
        "facebookprofile",
        "perfilfacebook",
        "perfildofacebook",
    ),
    "linkedin": (
        "linkedin",
        "linkedinurl",
        "linkedinprofile",
        "linkedinprofileurl",
        "perfillinkedin",
        "perfildolinkedin",
        "urldolinkedin",
    ),
}

# Prefixes CRM exports put before every header ("Person - Email - Work", "Lead - Nome").
HEADER_PREFIXES = ("person", "pessoa", "contact", "contato", "lead")

# Headers of consent questions and of opt-outs (compared as `header_key` leaves them); a
# column counts only when its cells are yes/no too. An opt-out word wins: "Não deseja receber
# e-mails?" is an opt-out, "Deseja receber e-mails?" a question.
CONSENT_WORDS = (
    "aceit",
    "consent",
    "optin",
    "lgpd",
    "autoriz",
    "permi",
    "concord",
    "receb",
    "novidades",
    "newsletter",
    "comunica",
    "inscrev",
    "subscri",
)
OPT_OUT_WORDS = (
    "unsub",
    "optout",
    "optedout",
    "descadastr",
    "cancelou",
    "cancelad",
    "cancelar",
    "recusa",
    "naoreceber",
    "naoenviar",
    "naodeseja",
    "naoquer",
    "donotemail",
    "donotcontact",
    "donotmail",
)
# Subscription statuses (folded): what each says of consent. A column whose every filled cell
# is one of these, with one that grants or declines, is a status column, whatever its header
# (Pipedrive's "Marketing status", a Mailchimp "Status").
STATUSES: dict[str, bool | None] = {
    **dict.fromkeys(("subscribed", "inscrito", "inscrita", "assinante"), True),
    **dict.fromkeys(
        (
            "unsubscribed",
            "descadastrado",
            "descadastrada",
            "cancelou a inscricao",
            "inscricao cancelada",
            "opted out",
        ),
        False,
    ),
    **dict.fromkeys(
        (
            "no consent",
            "sem consentimento",
            "non-subscribed",
            "nao inscrito",
            "pending",
            "pendente",
            "archived",
            "arquivado",
            "cleaned",
            "transactional",
            "transacional",
        ),
        None,
    ),
}
# Headers a status column may have: a value like "Cancelado" elsewhere is a customer's status
STATUS_WORDS = ("status", "marketing", "inscri", "subscri", "newsletter", "email", "consent")
# A column of the time someone unsubscribed (Mailchimp's UNSUB_TIME): filled is an opt-out.
UNSUBSCRIBED_AT = ("unsubtime", "unsubscribedat", "unsubscribedate", "datadedescadastro")
# Columns that name a legal basis per row (HubSpot's, RD Station's): pointed at, not mapped.
LEGAL_BASIS_WORDS = ("legalbasis", "baselegal")

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

EMAIL_SHAPE = re.compile(r"^[^@\s,;]+@[^@\s,;]+\.[^@\s,;]+$")
PHONE_CHARS = re.compile(r"^[\d\s()+\-.]+$")
# Share of a column's non-empty sampled cells that must fit a shape for the shape to decide.
SHAPE_SHARE = 0.8

EDIT_MARK = "# <- edit: the name of this conversion in RD Station"


def slug(header: str) -> str:
    """The custom-field name a header suggests: `Aceita comunicação?` -> `aceita_comunicacao`."""
    folded = unicodedata.normalize("NFKD", header).encode("ascii", "ignore").decode("ascii")
    words = re.sub(r"[^a-z0-9]+", "_", folded.lower()).strip("_")
    return words or "campo"


def _without_prefix(header: str) -> str:
    # "Person - Email - Work" -> "Email - Work": the part after a known record prefix.
    parts = [part.strip() for part in re.split(r"\s+-\s+", header)]
    if len(parts) > 1 and header_key(parts[0]) in HEADER_PREFIXES:
        return " - ".join(parts[1:])
    return header


def recognise_header(header: str) -> str | None:
    """The payload field (or ``first_name``/``last_name``) a header names, if it names one."""
    candidates = [header_key(header)]
    rest = _without_prefix(header)
    if rest != header:
        candidates.append(header_key(rest))
        # "Email - Work", "Phone - Mobile": the kind comes first, the label after it.
        candidates.append(header_key(re.split(r"\s+-\s+", rest)[0]))
    for key in candidates:
        for target, names in HEADER_NAMES.items():
            if key in names:
                if target == "personal_phone" and _labelled_mobile(rest):
                    return "mobile_phone"
                return target
    return None


def _labelled_mobile(rest: str) -> bool:
    # "Phone - Mobile", "Telefone - Celular": a phone column whose label says mobile.
    labels = re.split(r"\s+-\s+", rest)[1:]
    return any(header_key(label) in HEADER_NAMES["mobile_phone"] for label in labels)


def looks_like_email(value: str) -> bool:
    return bool(EMAIL_SHAPE.match(value.strip()))


def looks_like_yes_no(value: str) -> bool:
    """A cell ``transform: bool`` reads (sim, não, true, 0, x...)."""
    try:
        to_bool(value.strip())
    except TransformError:
        return False
    return True


def brazilian_phone_kind(value: str) -> str | None:
    """``mobile_phone`` or ``personal_phone`` for a value shaped as a Brazilian phone, else None.

    Only formatted values count ("(11) 98765-4321", "+55 11 3456-7890"): a bare run of
    11 digits is as likely a CPF as a phone.
    """
    text = value.strip()
    if not PHONE_CHARS.match(text) or not re.search(r"[\s()+\-]", text):
        return None
    digits = re.sub(r"\D", "", text)
    if digits.startswith("0") and len(digits) in (11, 12):
        digits = digits[1:]  # a long-distance prefix: 011 98765-4321
    try:
        number = phonenumbers.parse(digits if not text.startswith("+") else text, "BR")
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    kind = phonenumbers.number_type(number)
    return "mobile_phone" if kind == phonenumbers.PhoneNumberType.MOBILE else "personal_phone"


def _share(values: Sequence[str], test: Callable[[str], bool]) -> float:
    filled = [v for v in values if v.strip()]
    if not filled:
        return 0.0
    return sum(1 for v in filled if test(v)) / len(filled)


def _split_separator(values: Sequence[str]) -> str:
    commas = sum(v.count(",") for v in values)
    semicolons = sum(v.count(";") for v in values)
    pipes = sum(v.count("|") for v in values)
    if semicolons > commas and semicolons >= pipes:
        return ";"
    return "|" if pipes > commas else ","


ConsentKind = Literal["question", "opt_out", "status", "unsubscribed_at"]


@dataclass
class Consent:
    """A column that says, row by row, whether a lead accepts communications."""

    column: str
    kind: ConsentKind
    statuses: dict[str, bool | None] = field(default_factory=dict)  # "status": value -> meaning


@dataclass
class Recognised:
    """What the scaffold decided, column by column; rendered by `render_mapping`."""

    stem: str
    fields: dict[str, list[str]] = field(default_factory=dict)  # payload field -> columns
    first_name: str | None = None
    last_name: str | None = None
    tag_separator: str = ","
    consent: Consent | None = None
    legal_basis: str | None = None  # a column naming a legal basis per row (pointed at)
    others: list[str] = field(default_factory=list)  # columns left as cf_ suggestions
    header_row: int = 1


def consent_of(header: str, values: Sequence[str]) -> Consent | None:
    """The consent column ``header`` is, judging by its header and sampled cells; None if none."""
    key = header_key(header)
    filled = [v.strip() for v in values if v.strip()]
    if key in UNSUBSCRIBED_AT:
        return Consent(header, "unsubscribed_at")
    if not filled:
        return None
    if all(looks_like_yes_no(v) for v in filled):
        if key.startswith("nao") or any(w in key for w in OPT_OUT_WORDS):
            return Consent(header, "opt_out")
        if any(w in key for w in CONSENT_WORDS):
            return Consent(header, "question")
        return None
    distinct = list(dict.fromkeys(filled))
    if not any(w in key for w in STATUS_WORDS) or any(fold(v) not in STATUSES for v in distinct):
        return None
    meanings = {v: STATUSES[fold(v)] for v in distinct}
    if all(m is None for m in meanings.values()):
        return None
    return Consent(header, "status", meanings)


def recognise(stem: str, headers: Sequence[str], samples: Iterable[dict[str, str]]) -> Recognised:
    """Decide which column feeds which payload field, from headers and sampled rows."""
    sampled = list(samples)
    values = {h: [row.get(h, "") for row in sampled] for h in headers}
    result = Recognised(stem=stem)
    claimed: set[str] = set()

    def claim(target: str, header: str) -> None:
        result.fields.setdefault(target, []).append(header)
        claimed.add(header)

    by_header = {h: recognise_header(h) for h in headers}
    email_shaped = {h: _share(values[h], looks_like_email) >= SHAPE_SHARE for h in headers}

    # The email: named columns whose values do not contradict the name, then any column of
    # e-mails, whatever its header ("Contato", "Person - Email - Home").
    for h in headers:
        empty = not any(v.strip() for v in values[h])
        if by_header[h] == "email" and (email_shaped[h] or empty):
            claim("email", h)
    if "email" not in result.fields:
        for h in headers:
            if email_shaped[h]:
                claim("email", h)

    first = [h for h in headers if by_header[h] == "first_name" and h not in claimed]
    last = [h for h in headers if by_header[h] == "last_name" and h not in claimed]
    names = [h for h in headers if by_header[h] == "name" and h not in claimed]
    if names and not first and last:
        # "Nome" + "Sobrenome": Nome is the first name.
        first, names = names[:1], names[1:]
    if names:
        claim("name", names[0])
    elif first and last:
        result.first_name, result.last_name = first[0], last[0]
        claimed.update((first[0], last[0]))
    elif first:
        claim("name", first[0])

    for h in headers:
        target = by_header[h]
        if h in claimed or target in (None, "email", "name", "first_name", "last_name"):
            continue
        if target in ("mobile_phone", "personal_phone", "tags") or target not in result.fields:
            claim(target, h)

    # Phones by shape, for columns whose header said nothing.
    for h in headers:
        if h in claimed or by_header[h] is not None:
            continue
        kinds = [brazilian_phone_kind(v) for v in values[h] if v.strip()]
        if kinds and sum(1 for k in kinds if k) / len(kinds) >= SHAPE_SHARE:
            mobiles = sum(1 for k in kinds if k == "mobile_phone")
            claim("mobile_phone" if mobiles * 2 >= len(kinds) else "personal_phone", h)

    for tag_column in result.fields.get("tags", [])[:1]:
        result.tag_separator = _split_separator(values[tag_column])
    result.fields["tags"] = result.fields.get("tags", [])[:1] or []
    if not result.fields["tags"]:
        del result.fields["tags"]

    for h in headers:
        if h in claimed:
            continue
        if result.consent is None and (consent := consent_of(h, values[h])) is not None:
            result.consent = consent
            continue
        if result.legal_basis is None and any(w in header_key(h) for w in LEGAL_BASIS_WORDS):
            result.legal_basis = h
        result.others.append(h)
    return result


def _q(text: str) -> str:
    # A JSON string is a valid YAML double-quoted scalar; accents stay readable.
    return json.dumps(text, ensure_ascii=False)


def _column(columns: list[str]) -> str:
    if len(columns) == 1:
        return _q(columns[0])
    return "[" + ", ".join(_q(c) for c in columns) + "]"


def render_mapping(found: Recognised, *, source_name: str) -> str:
    """The mapping file's text for what `recognise` decided."""
    flag = f" --header-row {found.header_row}" if found.header_row != 1 else ""
    out = [
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
        if not columns:
            continue
        source = _column(columns)
        if target == "email":
            # trimmed, lower-cased and checked by the mapping whatever the entry says
            out.append(f"  email: {source if len(columns) == 1 else '{column: ' + source + '}'}")
        elif target in ("mobile_phone", "personal_phone"):
            # drop: a cell that is no phone ("não tem") is left out, with a warning in the run's
            # record, rather than sent as typed or failing its row
            out.append(f"  {target}: {{column: {source}, transform: phone_br, on_invalid: drop}}")
        elif target in ("twitter", "facebook", "linkedin"):
            # RD Station takes the handle only; a cell with none leaves the field out.
            out.append(f"  {target}: {{column: {source}, transform: handle, on_invalid: drop}}")
        elif target == "tags":
            sep = _q(found.tag_separator)
            out.append(f"  tags: {{column: {source}, split: {sep}, transform: [strip, lower]}}")
        elif len(columns) > 1:
            out.append(f"  {target}: {{column: {source}}}")
        else:
            out.append(f"  {target}: {source}")
    if found.consent is not None:
        out += _available_for_mailing(found.consent)
    taken = {f"cf_{slug(h)}" for h in found.others}
    if found.others:
        out.append("  # Other columns of the file, as custom fields:")
    seen: set[str] = set()
    for h in found.others:
        name = f"cf_{slug(h)}"
        if name in seen:  # two headers with one slug: number the later ones
            n = 2
            while f"{name}_{n}" in taken or f"{name}_{n}" in seen:
                n += 1
            name = f"{name}_{n}"
        seen.add(name)
        out.append(f"  # {name}: {_q(h)}")
    out.append("")
    out += _legal_bases(found)
    return "\n".join(out) + "\n"


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


def scaffold_mapping(
    path: Path,
    *,
    sheet: str | None = None,
    header_row: int | None = None,
    sample_rows: int = 200,
) -> str:
    """The text of a mapping for the spreadsheet at ``path`` that runs as is.

    Reads the header and the first ``sample_rows`` rows (of ``sheet`` for a workbook). The
    header is on ``header_row``; None finds it (``header_row_of``), for files with title rows
    above it. Raises `importer.errors.InputError` when the file cannot be read, as the loader
    does.
    """
    row = header_row or 1
    table = open_table(path, sheet=sheet, header_row=row, allow_empty=True)
    try:
        if header_row is None and (row := header_row_of(table.first_rows)) != 1:
            table.close()  # title rows above the header: read from it
            table = open_table(path, sheet=sheet, header_row=row, allow_empty=True)
        found = _recognise_table(path.stem, table, sample_rows)
    finally:
        table.close()
    found.header_row = row
    return render_mapping(found, source_name=path.name)


def _recognise_table(stem: str, table: Table, sample_rows: int) -> Recognised:
    headers = list(table.headers)
    samples = [row.cells for row in islice(table.rows(), sample_rows) if row.error is None]
    return recognise(stem, headers, samples)


# How wide a header is against the rows under it (filled cells): a title ("Relatório de
# leads - março") is narrower. Row 1 is the header unless clearly not; a later row must be
# nearly as wide as the data to be taken instead.
HEADER_FILL = 0.5
LATER_HEADER_FILL = 0.8


def header_row_of(rows: Sequence[tuple[int, Sequence[str]]]) -> int:
    """The number of the first row that looks like a header: text that is not data (no e-mail,
    number, date or phone), its cells distinct, a filled row under it, and about as wide as the
    rows under it. Row 1 passes unless it is clearly a title (one cell, or half as wide); a
    later row must be nearly as wide. 1 when none does (the loader's default)."""
    filled = [(number, [c.strip() for c in cells if c.strip()]) for number, cells in rows]
    for index, (number, cells) in enumerate(filled):
        below = [c for _, c in filled[index + 1 :] if c]
        if not cells or not below or len(set(cells)) < len(cells):
            continue
        if any(_looks_like_data(cell) for cell in cells):
            continue
        widest = max(len(c) for c in below)
        if len(cells) == 1 and widest > 1:
            continue  # a title over the table
        needed = HEADER_FILL if number == 1 else LATER_HEADER_FILL
        if len(cells) >= needed * widest and len(below[0]) >= HEADER_FILL * len(cells):
            return number
    return 1


_DATA_SHAPES = re.compile(r"[\d\s.,:/()+\-%R$]+")


def _looks_like_data(cell: str) -> bool:
    """A cell a header would not hold: an e-mail, a number, a date, a phone."""
    return looks_like_email(cell) or _DATA_SHAPES.fullmatch(cell) is not None
