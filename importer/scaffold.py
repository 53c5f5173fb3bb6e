"""Write a first mapping for a spreadsheet: `rd-importer mapping init FILE`.

The scaffold reads the header and a sample of rows and recognises columns two ways: by their
header, in Portuguese or English, compared without case, accents, spaces or punctuation
("E-mail", "Endereço de e-mail", "EMAIL ADDRESS"), and by their values (a column full of
e-mail addresses is the email whatever its header; a column of formatted Brazilian phones is a
phone). Every other column is listed as a commented ``cf_`` suggestion, so the user only
deletes or uncomments lines. The text it returns runs as is.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

import phonenumbers

from importer.headers import header_key
from importer.loader import open_table

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
        "nomedaempresa",
        "razaosocial",
        "account",
        "accountname",
    ),
    "job_title": ("cargo", "jobtitle", "title", "funcao", "position", "profissao", "ocupacao"),
    # Pipedrive names address parts "City/town/village/locality of Postal address".
    "city": ("cidade", "city", "municipio", "citytownvillagelocalityofpostaladdress"),
    "state": (
        "estado",
        "uf",
        "state",
        "stateregion",
        "stateprovince",
        "provincia",
        "statecountyofpostaladdress",
    ),
    "country": ("pais", "country", "countryregion", "countryofpostaladdress"),
    "website": ("site", "website", "websiteurl", "homepage", "sitedaempresa", "companywebsite"),
    "tags": ("tags", "tag", "labels", "label", "etiquetas", "etiqueta", "marcadores"),
    "twitter": ("twitter", "twitterhandle", "twitterusername", "twitterurl"),
    "facebook": ("facebook", "facebookurl", "facebookprofile", "perfilfacebook"),
    "linkedin": ("linkedin", "linkedinurl", "linkedinprofile", "linkedinprofileurl"),
}

# Prefixes CRM exports put before every header ("Person - Email - Work", "Lead - Nome").
HEADER_PREFIXES = ("person", "pessoa", "contact", "contato", "lead")

# Headers that likely hold consent: the scaffold suggests a legal_bases block for them.
CONSENT_WORDS = ("aceit", "consent", "optin", "lgpd", "autoriz", "permiss", "concord")

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

YES_NO = frozenset(("sim", "nao", "s", "n", "yes", "no", "y", "true", "false", "1", "0", "x"))
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
    return header_key(value) in YES_NO


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


@dataclass
class Recognised:
    """What the scaffold decided, column by column; rendered by `render_mapping`."""

    stem: str
    fields: dict[str, list[str]] = field(default_factory=dict)  # payload field -> columns
    first_name: str | None = None
    last_name: str | None = None
    tag_separator: str = ","
    consent: str | None = None  # a column that looks like a yes/no consent question
    others: list[str] = field(default_factory=list)  # columns left as cf_ suggestions


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
        consent_words = any(w in header_key(h) for w in CONSENT_WORDS)
        if result.consent is None and consent_words and _share(values[h], looks_like_yes_no) == 1:
            result.consent = h
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
    out = [
        f"# Mapping for {source_name}, written by `rd-importer mapping init`.",
        "# Check it, then: rd-importer validate FILE --mapping THIS_FILE",
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
            # keep: a cell that is not a phone goes as written rather than failing its row.
            out.append(f"  {target}: {{column: {source}, transform: phone_br, on_invalid: keep}}")
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
    out.append("# LGPD: the legal basis on which you may send to these leads.")
    if found.consent:
        out += [
            f"# The column {_q(found.consent)} looks like a consent question:",
            "# legal_bases:",
            "#   - category: communications",
            "#     type: consent",
            f"#     status: {{column: {_q(found.consent)}, transform: bool}}"
            "  # sim -> granted, não -> declined",
        ]
    else:
        out += [
            "# legal_bases:",
            "#   - {category: communications, type: consent, status: granted}",
        ]
    return "\n".join(out) + "\n"


def scaffold_mapping(path: Path, *, sheet: str | None = None, sample_rows: int = 200) -> str:
    """The text of a mapping for the spreadsheet at ``path`` that runs as is.

    Reads the header and the first ``sample_rows`` rows (of ``sheet`` for a workbook). Raises
    `importer.errors.InputError` when the file cannot be read, as the loader does.
    """
    with open_table(path, sheet=sheet, allow_empty=True) as table:
        headers = list(table.headers)
        samples = [row.cells for row in islice(table.rows(), sample_rows) if row.error is None]
    found = recognise(path.stem, headers, samples)
    return render_mapping(found, source_name=path.name)
