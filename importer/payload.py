"""RD Station's own rules for a conversion payload (the inner ``payload`` object).

Everything here comes from ``shared/rdstation-api.md``: which field names exist, which take
text, ``tags`` a list of texts, ``available_for_mailing`` a boolean, ``legal_bases`` from a fixed
set of values, and the charset of the social-network handles. The mapping checks a mapping file
against these rules before anything is sent and checks each row's values with them; the sandbox
has checks of its own, independent of these, so a mistake here cannot hide from it;
:func:`payload_problems` names RD Station's error types for the tests that hold the two together.

Email addresses are validated with email-validator (no DNS) behind a fast path: the common plain
ASCII address is accepted by a strict regex that only accepts what email-validator accepts (a
property test holds the two together), so a large file validates at ~100,000 rows/s.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import Literal, NamedTuple, get_args

import email_validator

REQUIRED_FIELDS: tuple[str, ...] = ("conversion_identifier", "email")
STRING_FIELDS: frozenset[str] = frozenset(
    {
        "conversion_identifier",
        "email",
        "name",
        "job_title",
        "state",
        "city",
        "country",
        "personal_phone",
        "mobile_phone",
        "twitter",
        "facebook",
        "linkedin",
        "website",
        "company_name",
        "company_site",
        "company_address",
        "client_tracking_id",
        "traffic_source",
        "traffic_medium",
        "traffic_campaign",
        "traffic_value",
    }
)
SOCIAL_FIELDS: frozenset[str] = frozenset({"twitter", "facebook", "linkedin"})
STRING_LIST_FIELDS: frozenset[str] = frozenset({"tags"})
BOOLEAN_FIELDS: frozenset[str] = frozenset({"available_for_mailing"})
LEGAL_BASES_FIELD = "legal_bases"
KNOWN_FIELDS: frozenset[str] = (
    STRING_FIELDS | STRING_LIST_FIELDS | BOOLEAN_FIELDS | frozenset({LEGAL_BASES_FIELD})
)

LEGAL_BASIS_CATEGORIES: tuple[str, ...] = ("communications",)
LegalType = Literal[
    "pre_existent_contract",
    "consent",
    "legitimate_interest",
    "judicial_process",
    "vital_interest",
    "public_interest",
]
LegalStatus = Literal["granted", "declined"]
LEGAL_BASIS_TYPES: tuple[str, ...] = get_args(LegalType)
LEGAL_BASIS_STATUSES: tuple[str, ...] = get_args(LegalStatus)

CUSTOM_FIELD = re.compile(r"cf_[A-Za-z0-9_]+")
SOCIAL_HANDLE = re.compile(r"[A-Za-z0-9._-]+")  # what twitter/facebook/linkedin accept


class Problem(NamedTuple):
    """One value RD Station would refuse: its field, RD's error type and a readable reason."""

    field: str
    error_type: str
    message: str


class InvalidEmail(ValueError):
    """The text is not an email address; ``str()`` says why in one line."""


def is_custom_field(name: str) -> bool:
    return CUSTOM_FIELD.fullmatch(name) is not None


def is_known_field(name: str) -> bool:
    """A documented payload field or a custom field ``cf_<api_identifier>``."""
    return name in KNOWN_FIELDS or is_custom_field(name)


def check_value(name: str, value: object) -> Problem | None:
    """RD Station's type rule for one field's value, ``None`` when the value is acceptable.

    ``email`` is checked for its type only here; :func:`normalize_email` checks the address.
    ``legal_bases`` is checked by :func:`legal_basis_problem`, one entry at a time.
    """
    if name in STRING_FIELDS:
        if not isinstance(value, str):
            return Problem(name, "MUST_BE_STRING", "must be text")
        if name in SOCIAL_FIELDS and SOCIAL_HANDLE.fullmatch(value) is None:
            return Problem(
                name,
                "INVALID_FORMAT",
                "may hold only letters, digits, '.', '-' and '_' "
                "(the handle, not a URL: add transform: handle)",
            )
        return None
    if name in STRING_LIST_FIELDS:
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            return Problem(name, "MUST_BE_STRING_ARRAY", "must be a list of texts")
        if any(item != item.lower() for item in value):
            return Problem(name, "VALUES_MUST_BE_LOWERCASE", "must be in lower case")
        return None
    if name in BOOLEAN_FIELDS:
        if not isinstance(value, bool):
            return Problem(name, "MUST_BE_BOOLEAN", "must be true or false")
        return None
    if is_custom_field(name):
        if isinstance(value, list):
            if not all(isinstance(item, str) for item in value):
                return Problem(name, "MUST_BE_STRING_ARRAY", "must be a list of texts")
            return None
        if not isinstance(value, str | int | float | bool):
            return Problem(name, "INVALID", "must be text, a number, true/false or a list of texts")
        return None
    return None


def legal_basis_problem(index: int, basis: object) -> Problem | None:
    """RD Station's rule for one entry of ``legal_bases``."""
    field = f"{LEGAL_BASES_FIELD}[{index}]"
    if not isinstance(basis, Mapping):
        return Problem(field, "INVALID", "must be an object with category, type and status")
    for key, allowed in (
        ("category", LEGAL_BASIS_CATEGORIES),
        ("type", LEGAL_BASIS_TYPES),
        ("status", LEGAL_BASIS_STATUSES),
    ):
        value = basis.get(key)
        if value is None:
            return Problem(f"{field}.{key}", "CANNOT_BE_NULL", f"{key} cannot be null")
        if value not in allowed:
            return Problem(
                f"{field}.{key}",
                "INVALID_OPTION",
                f"{value!r} is not one of {', '.join(allowed)}",
            )
    return None


def lowercase_tags(tags: list[str]) -> list[str]:
    """RD Station refuses a tag with a capital letter (``VALUES_MUST_BE_LOWERCASE``) and keeps
    tags in lower case: "VIP" and "vip" are one tag there, so they are one here too."""
    return list(dict.fromkeys(tag.lower() for tag in tags))


def payload_problems(payload: Mapping[str, object]) -> list[Problem]:
    """Every rule of RD Station's that ``payload`` breaks, as RD Station would name them.

    Unknown field names are not reported: whether RD Station refuses or drops them is
    unconfirmed, and the mapping never produces them.
    """
    problems: list[Problem] = []
    for name in REQUIRED_FIELDS:
        value = payload.get(name)
        if value is None:
            problems.append(Problem(name, "CANNOT_BE_NULL", f"{name} cannot be null"))
        elif isinstance(value, str) and not value.strip():
            problems.append(Problem(name, "CANNOT_BE_BLANK", f"{name} cannot be blank"))
    for name, value in payload.items():
        if name == LEGAL_BASES_FIELD:
            if not isinstance(value, list):
                problems.append(Problem(name, "INVALID", "must be a list"))
                continue
            problems.extend(
                p for i, b in enumerate(value) if (p := legal_basis_problem(i, b)) is not None
            )
            continue
        if value is None and name in REQUIRED_FIELDS:
            continue
        problem = check_value(name, value)
        if problem is not None:
            problems.append(problem)
        elif name == "email" and isinstance(value, str) and value.strip():
            try:
                normalize_email(value)
            except InvalidEmail as exc:
                problems.append(Problem(name, "INVALID_FORMAT", str(exc)))
    return problems


# Only what email-validator certainly accepts: dot-atom local part of common characters, ASCII
# domain labels without "--" (IDNA rules on those), an alphabetic top-level domain.
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_FAST_EMAIL = re.compile(
    rf"[a-z0-9_+-]+(?:\.[a-z0-9_+-]+)*@(?:{_LABEL}\.)+[a-z]{{2,63}}",
)
_SPECIAL_USE = frozenset(email_validator.SPECIAL_USE_DOMAIN_NAMES)
# Every special-use name is one label today, so looking at the top-level domain is enough.
_SPECIAL_USE_IS_TLD = all("." not in name for name in _SPECIAL_USE)


def _fast_email(address: str) -> bool:
    if len(address) > 254 or _FAST_EMAIL.fullmatch(address) is None or "--" in address:
        return False
    local, _, domain = address.rpartition("@")
    if len(local) > 64:
        return False
    if _SPECIAL_USE_IS_TLD:
        return domain.rpartition(".")[2] not in _SPECIAL_USE
    return not any(domain == name or domain.endswith("." + name) for name in _SPECIAL_USE)


# Longer than any address can be, even before normalising (254 at most, as email-validator says).
_NO_EMAIL_IS_LONGER = 1000


@functools.lru_cache(maxsize=4096)
def _slow_email(address: str) -> str:
    try:
        info = email_validator.validate_email(address, check_deliverability=False)
    except email_validator.EmailNotValidError as exc:
        raise InvalidEmail(str(exc)) from None
    except Exception as exc:  # a validator bug on odd input must not escape as a crash
        raise InvalidEmail(f"it could not be checked ({type(exc).__name__})") from None
    return info.normalized.lower()


def normalize_email(text: str) -> str:
    """The address trimmed and lower-cased, or :class:`InvalidEmail` saying why it is not one."""
    address = text.strip().lower()
    if _fast_email(address):
        return address
    if len(address) > _NO_EMAIL_IS_LONGER:
        # The full check parses all of it first (5 ms on 8,000 characters): a cell this long is
        # a paste gone wrong, not an address.
        raise InvalidEmail(
            f"it is {len(address):,} characters long; an email address has at most 254"
        )
    return _slow_email(address)
