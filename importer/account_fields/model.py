"""RD Station's list of an account's fields (``GET /platform/contacts/fields``), as a model.

    parse_fields(data) -> AccountFields

RD Station documents each entry as ``{uuid, api_identifier, custom_field, data_type, name:
{default, pt-BR}, label: {default, pt-BR}, presentation_type, validation_rules: {valid_options:
[{value, label}]}}``. The list is read defensively: keys it does not know are ignored (RD Station
adds some), an entry without a usable ``api_identifier`` is left out and named in ``problems``,
and a part that is malformed (names, options) is read as absent, so the run checks less rather
than refuse rows on a guess. A ``data_type`` this module does not know is kept and not checked.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from importer.headers import header_key

STRING: Final = "STRING"
INTEGER: Final = "INTEGER"
BOOLEAN: Final = "BOOLEAN"
STRING_LIST: Final = "STRING[]"
DATA_TYPES: Final = (STRING, INTEGER, BOOLEAN, STRING_LIST)

# The presentations whose valid_options are the only values RD Station takes.
CHOICES: Final = frozenset({"COMBO_BOX", "RADIO_BUTTON", "MULTIPLE_CHOICE", "CHECK_BOX"})

LOCALES: Final = ("default", "pt-BR")


@dataclass(frozen=True, slots=True)
class Option:
    """One of a choice field's options: ``value`` is what a payload sends."""

    value: str
    label: str


@dataclass(frozen=True, slots=True)
class AccountField:
    """One field of the account: a standard one (``email``, ``city``) or a custom ``cf_*``."""

    api_identifier: str
    custom: bool
    data_type: str  # one of DATA_TYPES, or a type RD Station added since (not checked)
    presentation_type: str = ""
    names: tuple[str, ...] = ()  # name and label, default and pt-BR, each once
    options: tuple[Option, ...] = ()
    uuid: str = ""

    @property
    def title(self) -> str:
        """How a message names the field beside its identifier: its first label or name."""
        return self.names[0] if self.names else ""

    @property
    def choices(self) -> tuple[Option, ...]:
        """The options a value must be one of; empty when the field takes any value."""
        return self.options if self.presentation_type in CHOICES else ()


@dataclass
class AccountFields:
    """The account's fields by ``api_identifier``; ``problems`` names the entries left out."""

    fields: dict[str, AccountField] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def __contains__(self, name: object) -> bool:
        return name in self.fields

    def __len__(self) -> int:
        return len(self.fields)

    def get(self, name: str) -> AccountField | None:
        return self.fields.get(name)

    @property
    def custom(self) -> list[AccountField]:
        return [f for f in self.fields.values() if f.custom]

    def summary(self) -> str:
        """``34 fields, 6 custom``."""
        total, custom = len(self.fields), len(self.custom)
        return f"{total} field{'s' if total != 1 else ''}, {custom} custom"

    def custom_for_header(self, header: str) -> AccountField | None:
        """The custom field whose label or name (default or pt-BR) is this header, compared
        without case, accents, spaces or punctuation (as headers are); or whose identifier is
        the header's (``Plano`` and ``cf_plano``). None when none is, or when several are."""
        found = self.customs_for_header(header)
        return found[0] if len(found) == 1 else None

    def customs_for_header(self, header: str) -> list[AccountField]:
        """Every custom field ``custom_for_header`` considers: by label or name, else by
        identifier. Several when the account labels two fields alike."""
        key = header_key(header)
        if not key:
            return []
        found = [f for f in self.custom if key in {header_key(n) for n in f.names}]
        return found or [f for f in self.custom if header_key(f.api_identifier[3:]) == key]


def parse_fields(data: Any) -> AccountFields | None:
    """The fields of RD Station's answer (``{"fields": [...]}``, or the bare list), or None when
    the answer is not a field list at all."""
    entries = data.get("fields") if isinstance(data, dict) else data
    if not isinstance(entries, list):
        return None
    account = AccountFields()
    for index, entry in enumerate(entries, start=1):
        parsed = _field(entry)
        if isinstance(parsed, str):
            account.problems.append(f"entry {index} {parsed}: left out")
        elif parsed.api_identifier in account.fields:
            account.problems.append(
                f"entry {index} repeats {parsed.api_identifier}: the first one is used"
            )
        else:
            account.fields[parsed.api_identifier] = parsed
    return account


def _field(entry: Any) -> AccountField | str:
    """The field of one entry, or what is wrong with it (for the list of problems)."""
    if not isinstance(entry, dict):
        return f"is {type(entry).__name__}, not a field"
    ident = entry.get("api_identifier")
    found_uuid = entry.get("uuid")
    uuid = found_uuid if isinstance(found_uuid, str) else ""
    if not isinstance(ident, str) or not ident.strip():
        return f"({uuid or 'no uuid'}) has no api_identifier"
    ident = ident.strip()
    data_type = entry.get("data_type")
    presentation = entry.get("presentation_type")
    return AccountField(
        api_identifier=ident,
        custom=entry.get("custom_field") is True or ident.startswith("cf_"),
        data_type=data_type.strip().upper() if isinstance(data_type, str) else "",
        presentation_type=presentation.strip().upper() if isinstance(presentation, str) else "",
        names=tuple(dict.fromkeys(_texts(entry.get("label"), entry.get("name")))),
        options=tuple(_options(entry.get("validation_rules"))),
        uuid=uuid,
    )


def _texts(*localised: Any) -> Iterator[str]:
    # {"default": "Plano", "pt-BR": "Plano"}, default first; a bare text is taken too
    for value in localised:
        if isinstance(value, str) and value.strip():
            yield value.strip()
        elif isinstance(value, Mapping):
            for locale in (*LOCALES, *value):
                text = value.get(locale)
                if isinstance(text, str) and text.strip():
                    yield text.strip()


def _options(rules: Any) -> Iterator[Option]:
    options = rules.get("valid_options") if isinstance(rules, dict) else None
    for option in options if isinstance(options, list) else ():
        if isinstance(option, dict):
            value, label = option.get("value"), option.get("label")
        else:  # a bare value, as shape 3's valid_options lists them
            value, label = option, None
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            text = str(value)
            yield Option(text, label if isinstance(label, str) else text)
