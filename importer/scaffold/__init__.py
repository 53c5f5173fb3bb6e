"""Write a first mapping for a spreadsheet: `rd-importer mapping init FILE`.

The scaffold reads the header and a sample of rows and recognises columns two ways: by their
header, in Portuguese or English, compared without case, accents, spaces or punctuation
("E-mail", "Endereço de e-mail", "EMAIL ADDRESS"), and by their values (a column full of
e-mail addresses is the email whatever its header; a column of formatted Brazilian phones is a
phone). Every other column is listed as a commented ``cf_`` suggestion, so the user only
deletes or uncomments lines. The text it returns runs as is. Given the account's fields
(``mapping init --auth oauth``), a column whose header is a custom field's label or name is
mapped to that field instead (``match_account``).

Consent is never guessed. A column that says, row by row, whether a lead accepts
communications is mapped to ``available_for_mailing`` and a consent legal basis: a yes/no
question ("Aceita comunicação?": sim -> granted, não -> declined), an opt-out flag
("Unsubscribed from all email", "Email Opt Out": true -> declined and unmailable, false says
nothing), a subscription status ("Subscribed", "Unsubscribed", "Inscrito"...) or the time of an
unsubscription (Mailchimp's UNSUB_TIME). A file with none of them gets no legal basis, and a
comment that says why.

A file whose header is not on row 1 (title rows above it) has its header row found: the first
row of mostly non-empty text cells with a data-like row under it (``header_row_of``).

Where each rule lives: ``header_names`` (a column by its header), ``shapes`` (a column by its
values), ``consent`` (consent and opt-out columns), ``columns`` (which column feeds which
field), ``render`` (the YAML), ``header_row`` (the header below title rows).
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import islice
from pathlib import Path

from importer.account_fields import AccountFields, closest_option
from importer.headers import header_key
from importer.loader import Table, open_table
from importer.scaffold.columns import Recognised, recognise
from importer.scaffold.consent import (
    CONSENT_WORDS,
    LEGAL_BASIS_WORDS,
    OPT_OUT_WORDS,
    STATUS_WORDS,
    STATUSES,
    UNSUBSCRIBED_AT,
    Consent,
    ConsentKind,
    consent_of,
)
from importer.scaffold.header_names import HEADER_NAMES, HEADER_PREFIXES, recognise_header, slug
from importer.scaffold.header_row import HEADER_FILL, LATER_HEADER_FILL, header_row_of
from importer.scaffold.render import EDIT_MARK, FIELD_ORDER, render_mapping
from importer.scaffold.shapes import (
    EMAIL_SHAPE,
    PHONE_CHARS,
    SHAPE_SHARE,
    brazilian_phone_kind,
    looks_like_email,
    looks_like_yes_no,
)
from importer.transforms import fold

__all__ = [
    "CONSENT_WORDS",
    "EDIT_MARK",
    "EMAIL_SHAPE",
    "FIELD_ORDER",
    "HEADER_FILL",
    "HEADER_NAMES",
    "HEADER_PREFIXES",
    "LATER_HEADER_FILL",
    "LEGAL_BASIS_WORDS",
    "OPT_OUT_WORDS",
    "PHONE_CHARS",
    "SHAPE_SHARE",
    "STATUSES",
    "STATUS_WORDS",
    "UNSUBSCRIBED_AT",
    "Consent",
    "ConsentKind",
    "Recognised",
    "brazilian_phone_kind",
    "consent_of",
    "header_key",
    "header_row_of",
    "looks_like_email",
    "looks_like_yes_no",
    "match_account",
    "recognise",
    "recognise_header",
    "render_mapping",
    "scaffold_mapping",
    "slug",
]


def scaffold_mapping(
    path: Path,
    *,
    sheet: str | None = None,
    header_row: int | None = None,
    sample_rows: int = 200,
    account: AccountFields | None = None,
) -> str:
    """The text of a mapping for the spreadsheet at ``path`` that runs as is.

    Reads the header and the first ``sample_rows`` rows (of ``sheet`` for a workbook). The
    header is on ``header_row``; None finds it (``header_row_of``), for files with title rows
    above it. Raises `importer.errors.InputError` when the file cannot be read, as the loader
    does. ``account`` (``mapping init --auth oauth``): a column left over whose header is the
    label or name of one of the account's custom fields is mapped to that field.
    """
    row = header_row or 1
    table = open_table(path, sheet=sheet, header_row=row, allow_empty=True)
    try:
        if header_row is None and (row := header_row_of(table.first_rows)) != 1:
            table.close()  # title rows above the header: read from it
            table = open_table(path, sheet=sheet, header_row=row, allow_empty=True)
        found = _recognise_table(path.stem, table, sample_rows, account)
    finally:
        table.close()
    found.header_row = row
    return render_mapping(found, source_name=path.name)


def match_account(
    found: Recognised, account: AccountFields, samples: Sequence[dict[str, str]] = ()
) -> None:
    """Map each column left over to the account's custom field labelled like its header
    ("Plano" -> ``cf_plano``); the standard fields keep what the headers and values decided.
    A choice field gets a ``map:`` from the sampled values that are its options, as they are or
    but for case, accents or being the option's label ("Básico" -> ``basico``), when any
    needs one: a value of the column missing from the map then fails its row, as RD Station
    would refuse it."""
    for header in list(found.others):
        matches = account.customs_for_header(header)
        if len(matches) > 1:  # two fields labelled alike: which one is the user's to say
            found.ambiguous[header] = [f.api_identifier for f in matches]
            found.others.remove(header)
            continue
        known = matches[0] if matches else None
        if known is None or known.api_identifier in found.custom:
            continue
        options: dict[str, str] = {}
        # A yes/no field's options are true and false: transform: bool gives them (a map to
        # the text "true" would run after it, and send a text the field refuses).
        if known.choices and known.data_type != "BOOLEAN":
            split = known.data_type == "STRING[]"
            for cells in samples:
                cell = cells.get(header, "")
                for value in cell.split(",") if split else [cell]:
                    value = value.strip()
                    close = closest_option(value, known.choices) if value else None
                    if close is not None and fold(value) in (fold(close.value), fold(close.label)):
                        options.setdefault(value, close.value)
        if all(value == option for value, option in options.items()):
            options = {}  # the cells are the options already: no map needed
        found.custom[known.api_identifier] = (header, known, options)
        found.others.remove(header)


def _recognise_table(
    stem: str, table: Table, sample_rows: int, account: AccountFields | None = None
) -> Recognised:
    headers = list(table.headers)
    samples = [row.cells for row in islice(table.rows(), sample_rows) if row.error is None]
    found = recognise(stem, headers, samples)
    if account is not None:
        match_account(found, account, samples)
    return found
