"""Excel number formats, applied to a number as a person sees it in the cell.

calamine gives a cell's stored value (``1310100``, ``0.15``, ``1234.5``); the XLSX also keeps
the format that shows it (``00000-000``, ``0%``, ``"R$" #,##0.00``). ``compile_format`` turns a
format code into a function from the number to the text shown (``01310-100``, ``15%``,
``R$ 1.234,50``), or None for a format that is not applied, so the cell keeps its stored digits.

Applied: digit placeholders ``0 # ?`` with literals among them (``00000-000``,
``000\\.000\\.000-00``, ``(00) 00000-0000``), decimals, thousands separators, ``%``, a
currency or other text in quotes, ``\\x`` or ``[$R$-416]``, and the sections for negative
numbers and zero. Colours are dropped, and so are ``_x`` and ``*x`` (alignment, not content).
Not applied (None): dates and times (calamine reads date cells as dates already), scientific
``E+``, fractions, text ``@``, conditions ``[>100]``, and anything else not understood.

Separators are those of a Brazilian Excel (``1.234,50``, ``15,5%``): the code stores them the
English way, whatever the language of the Excel that shows it, and these files come from Brazil.
A format that names an English-language (or Chinese, Japanese, Korean) locale, as
``[$$-409]``, shows ``1,234.50``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import ROUND_HALF_UP, Decimal
from typing import Final

Formatter = Callable[[float], str | None]

# Excel's built-in formats by id (ids without a code in styles.xml): those worth applying. The
# dates (14-22, 45-47) are read as dates by calamine; 11 and 48 are scientific, 49 is text.
BUILTIN_FORMATS: Final = {
    1: "0",
    2: "0.00",
    3: "#,##0",
    4: "#,##0.00",
    9: "0%",
    10: "0.00%",
    37: "#,##0 ;(#,##0)",
    38: "#,##0 ;[Red](#,##0)",
    39: "#,##0.00;(#,##0.00)",
    40: "#,##0.00;[Red](#,##0.00)",
}

# Locales whose primary language writes 1,234.50 (LCID & 0x3FF): Chinese, English, Japanese,
# Korean.
_DOT_DECIMAL_LANGUAGES: Final = frozenset({0x04, 0x09, 0x11, 0x12})

_TOKEN: Final = re.compile(
    r'"(?P<quoted>[^"]*)"?'  # text in quotes
    r"|\\(?P<escaped>.)"  # one character, escaped
    r"|\[(?P<bracket>[^\]]*)\]"  # a colour, a locale, a condition
    r"|(?P<pad>[_*].?)"  # alignment: a character's width, a fill
    r"|(?P<digit>[0#?])"
    r"|(?P<other>.)",
    re.DOTALL,
)
_COLOURS: Final = re.compile(r"(?i)(black|blue|cyan|green|magenta|red|white|yellow|color\d+)")
_LOCALE: Final = re.compile(r"\$(?P<symbol>[^-]*)(?:-(?P<lcid>[0-9A-Fa-f]+))?")
# Letters that make a format a date, a time, scientific or something else not applied.
_NOT_APPLIED: Final = frozenset("yYmMdDhHsSeEgGbBnN@/")
# Characters Excel shows as they are, without quotes.
_PLAIN: Final = frozenset("$-+()/:!^&'~{}<>= ")
_PLACEHOLDERS: Final = ("0", "#", "?")


class _Unsupported(Exception):
    """The format is not applied: the cell keeps its stored digits."""


class _Section:
    """One section of a format code: the text before the number, the number's pattern, after."""

    def __init__(self, code: str) -> None:
        self.prefix: list[str] = []  # literals before the first digit placeholder
        self.integer: list[str] = []  # placeholders and literals of the integer part
        self.decimals: list[str] = []  # placeholders after the point
        self.suffix: list[str] = []  # literals after the last placeholder
        self.grouped = False  # a thousands separator between placeholders
        self.scale = 0  # commas after the last placeholder: each divides by 1,000
        self.percent = 0
        self.lcid: int | None = None
        self.literal_only = True  # no placeholder at all ("-" for zero, say)
        self._parse(code)

    def _parse(self, code: str) -> None:
        part = "integer"  # where the next token goes once a placeholder was seen
        for match in _TOKEN.finditer(code):
            kind, text = match.lastgroup, match.group()
            if kind == "pad":
                continue
            if kind == "digit":
                if part == "suffix":
                    raise _Unsupported  # digits after the text that followed the number
                self.literal_only = False
                (self.decimals if part == "decimals" else self.integer).append(text)
                continue
            literal = self._literal(kind, match)
            if literal is None:
                continue
            if kind == "other" and text == "." and part == "integer":
                self.literal_only = False  # ".00" has no integer placeholder
                part = "decimals"
            elif kind == "other" and text == "," and not self.literal_only:
                pass  # grouping or scaling: read from the whole code below
            elif self.literal_only:
                self.prefix.append(literal)
                self.percent += literal == "%" and kind == "other"
            elif part == "integer" and not (kind == "other" and text == "%"):
                self.integer.append(literal)
            else:
                self.percent += literal == "%" and kind == "other"
                self.suffix.append(literal)
                part = "suffix"
        # Text after the integer's last placeholder (no decimals) follows the number.
        while self.integer and self.integer[-1] not in _PLACEHOLDERS:
            self.suffix.insert(0, self.integer.pop())
        self.grouped = bool(_integer_commas(code))
        self.scale = _trailing_commas(code)

    def _literal(self, kind: str | None, match: re.Match[str]) -> str | None:
        if kind == "quoted":
            return match.group("quoted")
        if kind == "escaped":
            return match.group("escaped")
        if kind == "bracket":
            inside = match.group("bracket")
            if _COLOURS.fullmatch(inside):
                return None
            locale = _LOCALE.fullmatch(inside)
            if locale is None:
                raise _Unsupported  # a condition, an elapsed time
            if locale.group("lcid"):
                self.lcid = int(locale.group("lcid"), 16)
            return locale.group("symbol") or None
        text = match.group()
        if text in _NOT_APPLIED:
            raise _Unsupported
        if text in _PLAIN or text in ",.%":
            return text
        raise _Unsupported

    def _add_literal(self, text: str, part: str) -> None:
        if self.literal_only:
            self.prefix.append(text)
        elif part == "integer":
            self.integer.append(text)
        else:
            self.suffix.append(text)

    def render(self, number: Decimal, separators: tuple[str, str]) -> str:
        if self.literal_only:
            return "".join(self.prefix)
        thousands, point = separators
        number = number * (100**self.percent) / (1000**self.scale)
        places = len(self.decimals)
        rounded = number.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
        whole, _, fraction = f"{rounded:f}".partition(".")
        text = "".join(self.prefix) + self._integer_text(whole.lstrip("0"), thousands)
        if places:
            text += self._decimal_text(fraction, point)
        return text + "".join(self.suffix)

    def _integer_text(self, digits: str, thousands: str) -> str:
        if not self.integer:
            return digits
        placeholders = [t for t in self.integer if t in _PLACEHOLDERS]
        if self.grouped and len(placeholders) == len(self.integer):
            width = placeholders.count("0")
            digits = digits.rjust(width, "0") if width else digits
            return f"{int(digits or 0):,}".replace(",", thousands) if digits else ""
        out: list[str] = []
        remaining = digits
        first_placeholder = next(i for i, t in enumerate(self.integer) if t in _PLACEHOLDERS)
        for index in range(len(self.integer) - 1, -1, -1):
            token = self.integer[index]
            if token not in _PLACEHOLDERS:
                out.append(token)
                continue
            if index == first_placeholder:
                out.append(remaining or {"0": "0", "#": "", "?": " "}[token])
                remaining = ""
            elif remaining:
                out.append(remaining[-1])
                remaining = remaining[:-1]
            else:
                out.append({"0": "0", "#": "", "?": " "}[token])
        return "".join(reversed(out))

    def _decimal_text(self, fraction: str, point: str) -> str:
        shown = list(fraction)
        # Trailing "#" drop their zeros; "?" show them as spaces.
        for index in range(len(self.decimals) - 1, -1, -1):
            if shown[index] != "0" or self.decimals[index] == "0":
                break
            shown[index] = "" if self.decimals[index] == "#" else " "
        text = "".join(shown).rstrip()
        return point + text if text else ""


def _integer_commas(code: str) -> str:
    """The commas that sit between two digit placeholders (grouping), outside quotes."""
    bare = re.sub(r'"[^"]*"|\\.|\[[^\]]*\]', "", code)
    return "".join(re.findall(r"(?<=[0#?]),(?=[0#?])", bare.split(".")[0]))


def _trailing_commas(code: str) -> int:
    bare = re.sub(r'"[^"]*"|\\.|\[[^\]]*\]', "", code)
    match = re.search(r"[0#?](,+)(?![0#?,])", bare)
    return len(match.group(1)) if match else 0


def _sections(code: str) -> list[str]:
    """The code split on its ``;`` outside quotes and escapes."""
    sections: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    for char in code:
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == ";" and not quoted:
            sections.append("".join(current))
            current = []
            continue
        current.append(char)
    sections.append("".join(current))
    return sections


def compile_format(code: str) -> Formatter | None:
    """A function from a number to the text the format ``code`` shows, or None when the format
    is not applied (General, dates, scientific, text, conditions: see the module's notes)."""
    if not code or code.strip().lower() == "general":
        return None
    try:
        parts = [_Section(s) for s in _sections(code)[:3]]
    except (_Unsupported, StopIteration):
        return None
    if parts[0].literal_only:
        return None
    lcid = next((p.lcid for p in parts if p.lcid is not None), None)
    if lcid is not None and (lcid & 0x3FF) in _DOT_DECIMAL_LANGUAGES:
        separators = (",", ".")
    else:
        separators = (".", ",")
    positive = parts[0]
    negative = parts[1] if len(parts) > 1 else None
    zero = parts[2] if len(parts) > 2 else None

    fast = _fast_path(positive, separators)
    positive_only = 0 if zero is not None else -1  # zero has a section of its own: not fast

    def shown(value: float) -> str | None:
        """The text shown, or None for a number the format cannot show (nan, inf, 1e300)."""
        if fast is not None and value > positive_only and value < 1e15:
            text = fast(value)
            if text is not None:
                return text
        try:
            number = Decimal(repr(value))  # a float's shortest repr: 0.15, not 0.1499999...
            return _render(number, positive, negative, zero, separators)
        except ArithmeticError:  # decimal's InvalidOperation (too many digits), nan, inf
            return None

    return shown


def _render(
    number: Decimal,
    positive: _Section,
    negative: _Section | None,
    zero: _Section | None,
    separators: tuple[str, str],
) -> str:
    if not number.is_finite():
        raise ArithmeticError(number)
    if zero is not None and number == 0:
        text = zero.render(number, separators)
    elif number < 0 and negative is not None:
        text = negative.render(-number, separators)  # the section says how: (1.234), say
    elif number < 0:
        text = positive.render(-number, separators)
        if any(c.isdigit() and c != "0" for c in text):
            text = "-" + text
    else:
        text = positive.render(number, separators)
    return text.strip()


def _fast_path(section: _Section, separators: tuple[str, str]) -> Formatter | None:
    """The common formats without ``Decimal`` (a sheet can hold a million formatted cells):
    zero padding with literals (``00000-000``), and ``#,##0.00``-like numbers, percentages and
    currencies. None for the rest, and the function returned gives None for a value it would
    round at a tie (``2.675``), which the careful way shows as Excel does."""
    prefix, suffix = "".join(section.prefix), "".join(section.suffix)
    integer = section.integer
    if not integer or any(t in ("#", "?") for t in section.decimals):
        return None
    only_zeros = "#" not in integer and "?" not in integer
    plain_number = section.decimals or section.percent or section.scale or section.grouped
    if only_zeros and not plain_number:
        width = integer.count("0")
        template = "".join("%s" if t == "0" else t.replace("%", "%%") for t in integer)

        def padded(value: float) -> str | None:
            if value != int(value):
                return None
            digits = str(int(value)).rjust(width, "0")
            if len(digits) != width:
                return None
            return (prefix + template % tuple(digits) + suffix).strip()

        return padded
    if integer[-1] != "0" or any(t != "#" for t in integer[:-1]):
        return None  # "#,##0" and "0" only: other integer patterns take the careful way
    places = len(section.decimals)
    spec = ("," if section.grouped else "") + f".{places}f"
    shift = 2 * section.percent - 3 * section.scale
    factor = 10.0**shift
    swap = str.maketrans({",": separators[0], ".": separators[1]})

    def plain(value: float) -> str | None:
        text = repr(value)
        if "e" in text:
            return None
        fraction = text.partition(".")[2]
        cut = places + shift  # the digits of the stored value that are shown
        if cut < 0 or (len(fraction) > cut and fraction[cut:] == "5"):
            return None  # a tie: rounded half away from zero by the careful way
        return (prefix + format(value * factor, spec).translate(swap) + suffix).strip()

    return plain
