"""Recognising a column by its header, in Portuguese or English, whatever its case, accents,
spaces or punctuation ("E-mail", "Endereço de e-mail", "EMAIL ADDRESS"), and a CRM export's
record prefix ("Person - Email - Work")."""

from __future__ import annotations

import re
import unicodedata

from importer.headers import header_key

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
