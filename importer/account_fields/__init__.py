"""The account's fields, read from RD Station before a run with ``--auth oauth`` reads a row.

With the API key, a mapping that names a custom field the account lacks (a typo, a field not
created yet) is found out one refused row at a time, after the budget was spent. With OAuth,
RD Station lists the account's fields (``GET /platform/contacts/fields``), so the run checks
first:

- every ``cf_*`` of the mapping must be a field of the account: else the run stops (exit 2)
  before anything is read or sent, naming every such field at once with its line in the mapping
  and the closest field of the account ("did you mean `cf_plano_contratado`?");
- each row's custom-field values must fit their field: a whole number for ``INTEGER``, true or
  false for ``BOOLEAN`` (after the mapping's transforms), a list of texts for ``STRING[]``, and
  for combo boxes, radio buttons and multiple choices one of the field's options. A cell that
  does not fit fails its row (``error_stage=validation``, the column named), before sending.

``mapping init --auth oauth`` uses the same list to map a header to the custom field labelled
like it ("Plano" -> ``cf_plano``).

    model     AccountField, AccountFields, parse_fields (RD Station's answer, read defensively)
    fetch     fetch_fields(transport): the one request, FieldsError (exit 3) when it fails;
              account_of (a sign-in's), read_account (for mapping init, or its sandbox)
    checks    check_mapping (exit 2), cell_check (a row's check, for ``intake.prepare``)
"""

from importer.account_fields.checks import (
    CellCheck,
    CellProblem,
    cell_check,
    check_mapping,
    closest_field,
    closest_option,
    value_check,
)
from importer.account_fields.fetch import (
    FIELDS_PATH,
    MAX_FIELDS_BYTES,
    WAITS,
    FieldsError,
    account_of,
    fetch_fields,
    read_account,
)
from importer.account_fields.model import (
    BOOLEAN,
    CHOICES,
    DATA_TYPES,
    INTEGER,
    STRING,
    STRING_LIST,
    AccountField,
    AccountFields,
    Option,
    parse_fields,
)

__all__ = [
    "BOOLEAN",
    "CHOICES",
    "DATA_TYPES",
    "FIELDS_PATH",
    "INTEGER",
    "MAX_FIELDS_BYTES",
    "STRING",
    "STRING_LIST",
    "WAITS",
    "AccountField",
    "AccountFields",
    "CellCheck",
    "CellProblem",
    "FieldsError",
    "Option",
    "account_of",
    "cell_check",
    "check_mapping",
    "closest_field",
    "closest_option",
    "fetch_fields",
    "parse_fields",
    "read_account",
    "value_check",
]
