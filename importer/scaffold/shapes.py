"""Recognising a column by its values: e-mail addresses, formatted Brazilian phones, yes/no
cells, and the separator of a column of tags."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

import phonenumbers

from importer.transforms import TransformError, to_bool

EMAIL_SHAPE = re.compile(r"^[^@\s,;]+@[^@\s,;]+\.[^@\s,;]+$")
PHONE_CHARS = re.compile(r"^[\d\s()+\-.]+$")
# Share of a column's non-empty sampled cells that must fit a shape for the shape to decide.
SHAPE_SHARE = 0.8


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
