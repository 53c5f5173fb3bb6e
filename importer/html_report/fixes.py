"""What to do about the rows that failed with each type, in a line or two."""

from __future__ import annotations

from typing import Final

_ON_THE_WAY = (
    "The row itself may be fine: RD Station could not be reached or had a problem of its own. "
    "Run the same command later: these rows are sent again, rows already sent are skipped."
)
_RD_RULES = {
    ("CANNOT_BE_NULL", "CANNOT_BE_BLANK"): (
        "RD Station requires a value for this field: fill the cell (or map the field from "
        "another column)."
    ),
    ("INVALID_FORMAT", "INVALID"): (
        "RD Station did not accept the value's format (an email, a phone, a URL, a date): fix "
        "the cell the message names."
    ),
    ("INVALID_OPTION", "MUST_BE_VALID_OPTION", "INCLUSION", "EXCLUSION"): (
        "The value is not one of the options this field has in RD Station: use one of them, or "
        "translate the cells with map: in the mapping."
    ),
    ("TOO_LONG", "TOO_SHORT", "MUST_BE_LESS_THAN_OR_EQUAL"): (
        "The value is too long, too short or too large for RD Station: fix the cell."
    ),
    ("MUST_BE_BOOLEAN", "MUST_BE_STRING", "MUST_BE_STRING_ARRAY", "INVALID_DATA_TYPE"): (
        "The value has the wrong type for its field: fix the field in the mapping (split: for a "
        "list, transform: bool for yes/no), then run the same command with --retry-rejected."
    ),
    ("VALUES_MUST_BE_LOWERCASE",): (
        "RD Station wants tags in lower case: add transform: lower to the tags field of the "
        "mapping, then run the same command with --retry-rejected."
    ),
    ("TAKEN",): "Another lead in RD Station already has this value: fix the cell or leave it.",
    ("UNABLE_TO_LOAD_CDP_SCHEMA",): (
        "The API key is an RD Station CRM account's: use the key of an RD Station Marketing "
        "account, then run the same command with --retry-rejected."
    ),
    ("BAD_REQUEST", "RESOURCE_NOT_FOUND"): (
        "RD Station refused the request; the message says why (a custom field that does not "
        "exist there?). Fix the cause, then run the same command with --retry-rejected."
    ),
}
FIXES: Final[dict[str, str]] = {
    "VALIDATION_ERROR": (
        "A cell does not hold a value its field accepts (an email without its domain, an empty "
        "email): fix the cell the message names."
    ),
    "MAPPING_ERROR": (
        "The mapping could not turn a cell into its field (a phone with too few digits, a date "
        "it cannot read, a value its map: does not list): fix the cell, or the mapping when many "
        "rows fail the same way."
    ),
    "READ_ERROR": (
        "The line could not be read as a row (a quote opened and never closed): fix the quotes "
        "in the file, or the row in a copy of failures.csv, and import it again."
    ),
    "DUPLICATE_ROW": (
        "The row is identical to an earlier row of the file, which was sent: nothing to fix, "
        "unless the two rows should have differed."
    ),
    "TOO_LARGE": "The request would exceed RD Station's 0.2 MB limit: shorten the longest cells.",
    "LEAD_LIMITED": (
        "RD Station takes only about 24 conversions a day per lead (email): nothing to fix. Run "
        "the same command tomorrow and these rows are sent."
    ),
    "RATE_LIMITED": (
        "The account's request budget was spent (other integrations share it): run the same "
        "command later, or with a lower --rate."
    ),
    "IN_FLIGHT_UNKNOWN": (
        "An earlier run stopped while these rows were being sent, so RD Station may have "
        "recorded them. Look them up in RD Station; to send them again, run the same command "
        "with --in-flight resend."
    ),
    "TIMEOUT": _ON_THE_WAY,
    "CONNECTION_ERROR": _ON_THE_WAY,
    "TLS_ERROR": _ON_THE_WAY,
} | {kind: text for kinds, text in _RD_RULES.items() for kind in kinds}
GENERIC_FIX: Final = (
    "The message says why. A cell's problem: fix it in a copy of failures.csv and import the "
    "copy into the same folder. A cause in RD Station (a custom field not created yet): fix it "
    "there, then run the same command with --retry-rejected."
)
# Failures the same command sends again later (the cause was on the way, not in the row).
_RETRIED_LATER: Final = frozenset(
    {"LEAD_LIMITED", "RATE_LIMITED", "TIMEOUT", "CONNECTION_ERROR", "TLS_ERROR"}
)


def fix_advice(error_type: str) -> str:
    """What to do about rows that failed with ``error_type`` (ours or RD Station's)."""
    if error_type in FIXES:
        return FIXES[error_type]
    if error_type.startswith("HTTP_5"):
        return _ON_THE_WAY
    return GENERIC_FIX
