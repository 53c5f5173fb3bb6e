"""Named cell transforms, chained per field by the mapping's ``transform:`` key.

Each transform takes a non-empty, trimmed cell text and returns the new value, or raises
:class:`TransformError` whose text completes the sentence "<value> ..." ("is not a phone
number"). The mapping decides what a failure does to the row (``on_invalid``).

=========  ==========================================================  ===================
name       what it does                                                example
=========  ==========================================================  ===================
strip      trims spaces (cells are trimmed already; useful after map)  ``" a "`` -> ``"a"``
unquote    takes off one pair of surrounding quotes                    ``'"a"'`` -> ``"a"``
lower      lower case                                                  ``"ANA"`` -> ``"ana"``
upper      upper case                                                  ``"sp"`` -> ``"SP"``
title      names, Brazilian style: da/de/do/das/dos/e stay lower       ``"MARIA DA SILVA"``
                                                                       -> ``"Maria da Silva"``
digits     keeps the digits only (an Excel number's ``.0`` dropped;    ``"01310-100"``
           a number Excel shortened, ``1,19877E+10``, is refused)      -> ``"01310100"``
phone_br   a Brazilian phone as people write it, to E.164              ``"(11) 98765-4321"``
                                                                       -> ``"+5511987654321"``
date       ``dd/mm/yyyy`` (or ``format:``) and ISO dates, to           ``"15/03/2026"``
           ``YYYY-MM-DD``; never month-first; a bare number only       -> ``"2026-03-15"``
           under ``excel_serial: true``
bool       sim/não/s/n/yes/no/y/true/false/1/0/x, any case, accents    ``"Não"`` -> ``false``
           optional, to true/false
handle     a twitter/facebook/linkedin profile URL or ``@name``, to    ``"linkedin.com/in/``
           the handle RD Station takes                                 ``ana-s"`` -> ``"ana-s"``
=========  ==========================================================  ===================

The mapping's ``pad: N`` option follows the transforms: a value of digits is left-padded with
zeros to N characters (``"1310100"`` -> ``"01310100"``, the CEP whose zero Excel dropped); a
longer one is kept; anything but digits is refused (``on_invalid`` applies): put ``digits``
before it.

``phone_br`` reads every common form: ``(11) 98765-4321``, ``011 98765-4321``,
``+55 11 98765 4321``, ``11987654321``, ``5511987654321``, and Excel numbers such as
``5511987654321.0`` or ``5.511987654321E+12``. A number written with ``+`` and another country's
code is kept when it is valid there. The common forms take a fast path built on phonenumbers' own
metadata for Brazil; everything else goes through ``phonenumbers.parse``.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Literal

import phonenumbers

from importer.payload import SOCIAL_HANDLE

TransformFunc = Callable[[str], str | bool]
Kind = Literal["text", "bool"]
# (format, excel_serial, on_serial) -> the date transform so configured
DateOptions = Callable[[str | None, bool, Callable[[], None] | None], TransformFunc]


class TransformError(ValueError):
    """The value cannot be transformed; ``str()`` completes "<value> ..."."""


@dataclass(frozen=True, slots=True)
class TransformInfo:
    """One entry of :data:`TRANSFORMS`, the only list of transform names."""

    name: str
    function: TransformFunc
    output: Kind
    validates: bool  # can refuse a value (then on_invalid applies)
    description: str
    # the transform for the mapping's ``format:`` and ``excel_serial:``, with a function told of
    # each number read as an Excel date serial; None when it takes no options
    with_options: DateOptions | None = None


def strip(value: str) -> str:
    return value.strip()


_QUOTE_PAIRS = {'"': '"', "'": "'", "\u201c": "\u201d"}


def unquote(value: str) -> str:
    """Takes off one pair of surrounding quotes: Mailchimp writes tags as "a","b"."""
    text = value.strip()
    if len(text) >= 2 and _QUOTE_PAIRS.get(text[0]) == text[-1]:
        return text[1:-1].strip()
    return text


def lower(value: str) -> str:
    return value.lower()


def upper(value: str) -> str:
    return value.upper()


_NAME_PARTICLES = frozenset({"da", "de", "do", "das", "dos", "e"})


def _capitalize_word(word: str) -> str:
    return "-".join(part[:1].upper() + part[1:] for part in word.split("-"))


def title(value: str) -> str:
    words = value.lower().split()
    for i, word in enumerate(words):
        if i and word in _NAME_PARTICLES:
            continue
        words[i] = _capitalize_word(word) if "-" in word else word[:1].upper() + word[1:]
    return " ".join(words)


_EXCEL_INTEGER = re.compile(r"(\d+)\.0*")
_EXCEL_SCIENTIFIC = re.compile(r"\d(?:[.,]\d+)?[eE]\+?\d{1,2}")


def _excel_integer(value: str) -> str:
    """An integer that Excel turned into ``123.0`` or ``1.23E+10`` back to its digits.

    Excel saves a General cell too narrow for its number as the text it shows: ``1,19877E+10``
    for 11987654321. The digits it dropped are gone, and filling them with zeros would send
    somebody else's phone: such a value is refused.
    """
    if "." not in value and "E" not in value and "e" not in value:
        return value
    if (match := _EXCEL_INTEGER.fullmatch(value)) is not None:
        return match.group(1)
    if _EXCEL_SCIENTIFIC.fullmatch(value) is not None:
        try:
            number = Decimal(value.replace(",", "."))
        except InvalidOperation:
            return value
        if number == number.to_integral_value():
            text = str(int(number))
            shown = len(re.split(r"[eE]", value)[0].replace(",", "").replace(".", "").lstrip("0"))
            if shown < len(text):
                raise TransformError(
                    f"is a number Excel shortened to {shown} digits: format the column as Text "
                    "in Excel and export the file again"
                )
            return text
    return value


_NOT_DIGITS = re.compile(r"\D+")


def digits(value: str) -> str:
    return _NOT_DIGITS.sub("", _excel_integer(value))


def _br_mobile_or_fixed() -> re.Pattern[str]:
    """Brazil's mobile and fixed-line national numbers, from the metadata phonenumbers ships."""
    br = phonenumbers.PhoneMetadata.metadata_for_region("BR")
    kinds = (br.mobile, br.fixed_line) if br is not None else ()
    patterns = [k.national_number_pattern for k in kinds if k is not None]
    if len(patterns) != 2 or not all(patterns):
        raise RuntimeError("phonenumbers has no metadata for Brazil: reinstall phonenumbers")
    return re.compile("|".join(f"(?:{pattern})" for pattern in patterns))


_BR_MOBILE_OR_FIXED = _br_mobile_or_fixed()
_PHONE_SEPARATORS = re.compile(r"[\s().\-/]+")
_NOT_A_PHONE = "is not a phone number"


def _national_br(compact: str) -> str | None:
    """The national number of a compact all-digits Brazilian phone, when its form is plain."""
    size = len(compact)
    if compact[0] == "0":
        national = compact[1:] if size in (11, 12) else None
    elif compact.startswith("55") and size in (12, 13):
        national = compact[2:]
    else:
        national = compact if size in (10, 11) else None
    if national is None:
        return None
    return national if _BR_MOBILE_OR_FIXED.fullmatch(national) else None


def phone_br(value: str) -> str:
    text = _excel_integer(value.strip())
    # str.replace is several times faster than a regex here, and covers how people write
    compact = text.replace(" ", "").replace("-", "").replace("(", "").replace(")", "")
    if not compact.isdigit():
        compact = _PHONE_SEPARATORS.sub("", compact)
    if compact.isdigit() and compact.isascii():
        national = _national_br(compact)
        if national is not None:
            return "+55" + national
        if compact.startswith("55") and len(compact) in (12, 13):
            text = "+" + compact
    elif compact[:3] == "+55" and compact[1:].isdigit() and compact.isascii():
        national = _national_br(compact[1:])
        if national is not None:
            return "+55" + national
    return _phone_slow(text)


def _phone_slow(text: str) -> str:
    try:
        number = phonenumbers.parse(text, "BR")
        valid = phonenumbers.is_valid_number(number)
    except Exception:  # NumberParseException, or anything odd input provokes
        raise TransformError(_NOT_A_PHONE) from None
    if not valid:
        raise TransformError(_NOT_A_PHONE)
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


DEFAULT_DATE_FORMAT = "dd/mm/yyyy"
_DATE_TOKENS = (("yyyy", "%Y"), ("yy", "%y"), ("dd", "%d"), ("mm", "%m"))
_ISO_DATE = re.compile(r"(\d{4})-(\d{2})-(\d{2})(?:[ T]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?")
_DAY_FIRST = re.compile(r"(\d{1,2})([/.-])(\d{1,2})\2(\d{4})(?:\s+\d{1,2}:\d{2}(?::\d{2})?)?")
_BARE_NUMBER = re.compile(r"(\d+)(?:[.,]\d+)?")
_EXCEL_EPOCH = dt.date(1899, 12, 30)  # Excel's day 0, counting its phantom 29/02/1900
_FIRST_SERIAL = 61  # 1900-03-01: below it Excel counts a 29/02/1900 that never was
_LAST_SERIAL = 2_958_465  # 9999-12-31, Excel's last date
_MONTHS: tuple[str, ...] = ("January", "February", "March", "April", "May", "June", "July")
_MONTHS += ("August", "September", "October", "November", "December")


def strptime_format(fmt: str) -> str:
    """The ``strptime`` form of a date format: ``dd/mm/yyyy`` style, or ``%d/%m/%Y`` as is.

    Raises ValueError with a readable reason when the format lacks a day, month or year.
    """
    if "%" in fmt:
        pattern = fmt
    else:
        pattern = fmt.lower()
        for token, code in _DATE_TOKENS:
            pattern = pattern.replace(token, code)
    for codes, what in ((("%d",), "day"), (("%m", "%b", "%B"), "month"), (("%Y", "%y"), "year")):
        if not any(code in pattern for code in codes):
            raise ValueError(f"date format {fmt!r} has no {what} (use dd, mm and yyyy)")
    try:
        dt.datetime.strptime(dt.date(2001, 2, 3).strftime(pattern), pattern)
    except ValueError:
        raise ValueError(f"date format {fmt!r} cannot be read back (use dd, mm and yyyy)") from None
    return pattern


def _no_such_date(year: int, month: int, day: int, form: str) -> str:
    """Why a day, month and year that fit the form name no date: "February has no day 31"."""
    if not 1 <= month <= 12:  # 03/15/2026: most likely month-first
        return f"is not a date in the form {form}: there is no month {month}"
    if day < 1:
        return f"is not a date: there is no day {day}"
    if month == 2 and day == 29:
        return f"is not a date: February {year} has no day 29"
    return f"is not a date: {_MONTHS[month - 1]} has no day {day}"


def excel_serial_date(value: str) -> str | None:
    """The ISO date of an Excel date serial (``46096`` -> ``2026-03-15``; a fraction is the
    time of day), None for a value that is not one; TransformError for a number out of
    Excel's range of dates."""
    match = _BARE_NUMBER.fullmatch(value)
    if match is None:
        return None
    serial = int(match.group(1))
    if not _FIRST_SERIAL <= serial <= _LAST_SERIAL:
        raise TransformError(
            f"is not an Excel date serial ({_FIRST_SERIAL} is 1900-03-01, "
            f"{_LAST_SERIAL:,} is 9999-12-31)"
        )
    return (_EXCEL_EPOCH + dt.timedelta(days=serial)).isoformat()


def make_date(
    fmt: str | None = None,
    excel_serial: bool = False,
    on_serial: Callable[[], None] | None = None,
) -> Callable[[str], str]:
    """The ``date`` transform for one format (default ``dd/mm/yyyy``).

    A bare number (``1990``, ``46096``) is refused: it is as likely a year, a code or a count
    as the Excel date serial it would be read as (1990 is 1905-06-12). ``excel_serial`` reads
    it as one, and ``on_serial`` hears of every number so read, for the run's warnings. A
    real Excel date cell arrives as an ISO date, never as its serial (``importer.workbook``).
    """
    pattern = None if fmt is None or fmt.lower() == DEFAULT_DATE_FORMAT else strptime_format(fmt)
    form = fmt or DEFAULT_DATE_FORMAT
    reason = f"is not a date in the form {form}"
    bare = (
        f"is a number, not a date in the form {form} (if the column holds Excel date "
        "serials, add excel_serial: true to its entry)"
    )

    def to_iso(year: int, month: int, day: int, form: str = DEFAULT_DATE_FORMAT) -> str:
        try:
            return dt.date(year, month, day).isoformat()
        except ValueError:
            raise TransformError(_no_such_date(year, month, day, form)) from None

    def date(value: str) -> str:
        if pattern is None and (match := _DAY_FIRST.fullmatch(value)) is not None:
            day, _, month, year = match.groups()
            return to_iso(int(year), int(month), int(day))
        if (match := _ISO_DATE.fullmatch(value)) is not None:
            year, month, day = (int(part) for part in match.groups())
            return to_iso(year, month, day, "yyyy-mm-dd")
        if pattern is not None:
            try:
                return dt.datetime.strptime(value, pattern).date().isoformat()
            except ValueError as exc:
                if "out of range" in str(exc):  # the form fits; the day is not in that month
                    raise TransformError("is not a date: that month has no such day") from None
        if _BARE_NUMBER.fullmatch(value) is not None:
            if not excel_serial:
                raise TransformError(bare)
            iso = excel_serial_date(value)
            if iso is not None:
                if on_serial is not None:
                    on_serial()
                return iso
        raise TransformError(reason)

    return date


MAX_PAD = 50


def make_pad(width: int) -> Callable[[str], str]:
    """The mapping's ``pad:`` option: left-pads a text of digits with zeros to ``width``.

    Excel drops a code's leading zeros when its column is numeric (CEP ``01310100`` becomes
    ``1310100``); the zeros come back here. A longer value is left as it is; a value with
    anything but digits is refused, so a code is never padded around a dash or a letter.
    """
    reason = f"is not only digits, so cannot be padded to {width} (add transform: digits first)"

    def pad(value: str) -> str:
        if not (value.isdigit() and value.isascii()):
            raise TransformError(reason)
        return value.zfill(width)

    return pad


def fold(text: str) -> str:
    """Lower case without accents: how ``map:`` keys, bool words and headers are compared."""
    decomposed = unicodedata.normalize("NFKD", text.strip().casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


# Path segments that come before the handle in profile URLs: linkedin.com/in/NAME,
# linkedin.com/company/NAME, facebook.com/pg/NAME, twitter.com/intent/user/NAME...
_BEFORE_HANDLE = frozenset(
    {"in", "pub", "company", "school", "showcase", "pg", "pages", "groups", "intent", "user"}
)


def handle(value: str) -> str:
    """A social profile's handle, from the handle itself, ``@handle`` or the profile's URL."""
    text = value.strip()
    if "/" in text or text.lower().startswith(("http:", "https:", "www.")):
        try:
            url = urllib.parse.urlsplit(text if "//" in text else "//" + text)
        except ValueError:  # "http://[": a bracket that opens no IPv6 address
            raise TransformError("is not a profile handle or a profile URL with one") from None
        parts = [p for p in urllib.parse.unquote(url.path).split("/") if p]
        if not parts and url.fragment.startswith("!/"):  # twitter.com/#!/NAME, of old
            parts = [p for p in url.fragment[2:].split("/") if p]
        ids = urllib.parse.parse_qs(url.query).get("id")
        if parts and parts[-1].lower() == "profile.php" and ids:  # facebook.com/profile.php?id=N
            parts = ids[:1]
        elif parts and parts[0].lower() == "people":  # facebook.com/people/Name-Surname/N
            parts = parts[-1:]
        while len(parts) > 1 and parts[0].lower() in _BEFORE_HANDLE:
            del parts[0]
        text = parts[0] if parts else ""
    text = text.removeprefix("@")
    if SOCIAL_HANDLE.fullmatch(text) is None:
        raise TransformError("is not a profile handle or a profile URL with one")
    return text


_TRUE = frozenset({"sim", "s", "yes", "y", "true", "verdadeiro", "v", "1", "1.0", "x"})
_FALSE = frozenset({"nao", "não", "n", "no", "false", "falso", "f", "0", "0.0"})
_BOOLS: dict[str, bool] = {**dict.fromkeys(_TRUE, True), **dict.fromkeys(_FALSE, False)}


def to_bool(value: str) -> bool:
    found = _BOOLS.get(value.lower())
    if found is None:
        found = _BOOLS.get(fold(value))
        if found is None:
            raise TransformError("is not yes or no (sim, não, true, false, 1, 0, x)")
    return found


TRANSFORMS: dict[str, TransformInfo] = {
    info.name: info
    for info in (
        TransformInfo("strip", strip, "text", False, "trims surrounding spaces"),
        TransformInfo(
            "unquote", unquote, "text", False, "takes off one pair of surrounding quotes"
        ),
        TransformInfo("lower", lower, "text", False, "lower case"),
        TransformInfo("upper", upper, "text", False, "upper case"),
        TransformInfo(
            "title", title, "text", False, "capitalized names; da/de/do/das/dos/e stay lower"
        ),
        TransformInfo("digits", digits, "text", True, "keeps the digits only"),
        TransformInfo(
            "phone_br", phone_br, "text", True, "a Brazilian phone to E.164 (+5511987654321)"
        ),
        TransformInfo(
            "date", make_date(), "text", True, "dd/mm/yyyy (or format:) to YYYY-MM-DD", make_date
        ),
        TransformInfo(
            "bool", to_bool, "bool", True, "sim/não/yes/no/true/false/1/0/x to true/false"
        ),
        TransformInfo("handle", handle, "text", True, "a profile URL or @name to the bare handle"),
    )
}

if TYPE_CHECKING:
    TransformName = str
else:
    # the mapping's ``transform:`` values: the names above, so pydantic and the JSON Schema
    # refuse any other (Literal of a tuple is the Literal of its items)
    TransformName = Literal[tuple(TRANSFORMS)]


def get_transform(
    name: str,
    *,
    date_format: str | None = None,
    excel_serial: bool = False,
    on_serial: Callable[[], None] | None = None,
) -> TransformFunc:
    """The function for a transform name (a key of :data:`TRANSFORMS`); ``date_format`` and
    ``excel_serial`` are the mapping's ``format:`` and ``excel_serial:``, and ``on_serial`` is
    told of each number read as an Excel date serial, for the transforms that take them."""
    info = TRANSFORMS[name]
    if info.with_options is not None and (date_format is not None or excel_serial):
        return info.with_options(date_format, excel_serial, on_serial)
    return info.function
