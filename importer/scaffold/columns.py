"""Deciding which column feeds which payload field, from the headers and sampled rows: the
email first, then the name, the columns whose header names a field, phones by their shape,
one column of tags, consent, and the rest as custom-field suggestions."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from importer.headers import header_key
from importer.scaffold.consent import LEGAL_BASIS_WORDS, Consent, consent_of
from importer.scaffold.header_names import recognise_header
from importer.scaffold.shapes import (
    SHAPE_SHARE,
    _share,
    _split_separator,
    brazilian_phone_kind,
    looks_like_email,
)

if TYPE_CHECKING:
    from importer.account_fields import AccountField


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
    # the account's custom fields matched by a column's header (mapping init --auth oauth)
    # (its column, the field, {sampled value: the option it is}) by field name
    custom: dict[str, tuple[str, AccountField, dict[str, str]]] = field(default_factory=dict)
    # a column whose header labels several of the account's fields: their names, to choose from
    ambiguous: dict[str, list[str]] = field(default_factory=dict)
    header_row: int = 1


@dataclass
class _Columns:
    """The columns being decided: their sampled cells, what each header names, which are taken."""

    headers: Sequence[str]
    values: dict[str, list[str]]
    by_header: dict[str, str | None]
    result: Recognised
    claimed: set[str] = field(default_factory=set)

    def claim(self, target: str, header: str) -> None:
        self.result.fields.setdefault(target, []).append(header)
        self.claimed.add(header)

    def unclaimed(self, target: str) -> list[str]:
        """The columns not yet taken whose header names ``target``."""
        return [h for h in self.headers if self.by_header[h] == target and h not in self.claimed]


def recognise(stem: str, headers: Sequence[str], samples: Iterable[dict[str, str]]) -> Recognised:
    """Decide which column feeds which payload field, from headers and sampled rows."""
    sampled = list(samples)
    columns = _Columns(
        headers=headers,
        values={h: [row.get(h, "") for row in sampled] for h in headers},
        by_header={h: recognise_header(h) for h in headers},
        result=Recognised(stem=stem),
    )
    _claim_email(columns)
    _claim_name(columns)
    _claim_named_fields(columns)
    _claim_phones_by_shape(columns)
    _keep_one_tags_column(columns)
    _leave_the_rest(columns)
    return columns.result


def _claim_email(columns: _Columns) -> None:
    # The email: named columns whose values do not contradict the name, then any column of
    # e-mails, whatever its header ("Contato", "Person - Email - Home").
    headers, values = columns.headers, columns.values
    email_shaped = {h: _share(values[h], looks_like_email) >= SHAPE_SHARE for h in headers}
    for h in headers:
        empty = not any(v.strip() for v in values[h])
        if columns.by_header[h] == "email" and (email_shaped[h] or empty):
            columns.claim("email", h)
    if "email" not in columns.result.fields:
        for h in headers:
            if email_shaped[h]:
                columns.claim("email", h)


def _claim_name(columns: _Columns) -> None:
    first = columns.unclaimed("first_name")
    last = columns.unclaimed("last_name")
    names = columns.unclaimed("name")
    if names and not first and last:
        # "Nome" + "Sobrenome": Nome is the first name.
        first, names = names[:1], names[1:]
    if names:
        columns.claim("name", names[0])
    elif first and last:
        columns.result.first_name, columns.result.last_name = first[0], last[0]
        columns.claimed.update((first[0], last[0]))
    elif first:
        columns.claim("name", first[0])


def _claim_named_fields(columns: _Columns) -> None:
    # The first column that names a field feeds it; every phone and tags column is kept.
    for h in columns.headers:
        target = columns.by_header[h]
        if h in columns.claimed or target in (None, "email", "name", "first_name", "last_name"):
            continue
        if (
            target in ("mobile_phone", "personal_phone", "tags")
            or target not in columns.result.fields
        ):
            columns.claim(target, h)


def _claim_phones_by_shape(columns: _Columns) -> None:
    # Phones by shape, for columns whose header said nothing.
    for h in columns.headers:
        if h in columns.claimed or columns.by_header[h] is not None:
            continue
        kinds = [brazilian_phone_kind(v) for v in columns.values[h] if v.strip()]
        if kinds and sum(1 for k in kinds if k) / len(kinds) >= SHAPE_SHARE:
            mobiles = sum(1 for k in kinds if k == "mobile_phone")
            columns.claim("mobile_phone" if mobiles * 2 >= len(kinds) else "personal_phone", h)


def _keep_one_tags_column(columns: _Columns) -> None:
    result = columns.result
    for tag_column in result.fields.get("tags", [])[:1]:
        result.tag_separator = _split_separator(columns.values[tag_column])
    result.fields["tags"] = result.fields.get("tags", [])[:1] or []
    if not result.fields["tags"]:
        del result.fields["tags"]


def _leave_the_rest(columns: _Columns) -> None:
    # The first consent column, then custom-field suggestions (a legal basis column among them).
    result = columns.result
    for h in columns.headers:
        if h in columns.claimed:
            continue
        if result.consent is None and (consent := consent_of(h, columns.values[h])) is not None:
            result.consent = consent
            continue
        if result.legal_basis is None and any(w in header_key(h) for w in LEGAL_BASIS_WORDS):
            result.legal_basis = h
        result.others.append(h)
