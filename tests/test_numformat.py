"""Excel number formats applied as a person sees the cell (``importer.workbook.numformat``)."""

from __future__ import annotations

import random

import pytest

from importer.workbook import numformat
from importer.workbook.numformat import BUILTIN_FORMATS, compile_format

ACCOUNTING_BRL = '_-"R$"\\ * #,##0.00_-;\\-"R$"\\ * #,##0.00_-;_-"R$"\\ * "-"??_-;_-@_-'


@pytest.mark.parametrize(
    ("code", "value", "shown"),
    [
        ("00000-000", 1310100, "01310-100"),  # a CEP: the leading zero a person sees
        ("00000000000", 1234567890, "01234567890"),
        ("000", 7, "007"),
        ("000\\.000\\.000\\-00", 12345678909, "123.456.789-09"),  # a CPF
        ("(00) 00000-0000", 11987654321, "(11) 98765-4321"),
        ("00000", 1234567, "1234567"),  # more digits than placeholders: all of them shown
        ("0%", 0.15, "15%"),
        ("0.00%", 0.155, "15,50%"),
        ("#,##0", 1234567, "1.234.567"),
        ("#,##0.00", 1234.5, "1.234,50"),
        ('"R$" #,##0.00', 1234.5, "R$ 1.234,50"),
        ("[$R$-416] #,##0.00", 1234.5, "R$ 1.234,50"),
        ("[$R$-416]\\ #,##0.00;[Red]\\-[$R$-416]\\ #,##0.00", -1234.5, "-R$ 1.234,50"),
        (ACCOUNTING_BRL, 1234567.891, "R$ 1.234.567,89"),
        (ACCOUNTING_BRL, 0, "R$ -"),
        ("[$$-409]#,##0.00", 1234.5, "$1,234.50"),  # an English locale, its separators
        ("#,##0 ;(#,##0)", -1234, "(1.234)"),
        ("0.00", 7.5, "7,50"),
        ("0", 7.5, "8"),  # rounded half away from zero, as Excel shows it
        ("0.00", 2.675, "2,68"),  # the decimal digits typed, not the float's binary ones
        ("0.0#", 1.5, "1,5"),
        ("#,##0,", 1234567, "1.235"),  # a trailing comma shows thousands
        ("00000-000", -1310100, "-01310-100"),
        ("0.00", 1e300, None),  # more digits than can be shown: left as stored
        ("0.00", float("nan"), None),
    ],
)
def test_number_formats_show_what_excel_shows(code, value, shown):
    formatter = compile_format(code)
    assert formatter is not None
    assert formatter(value) == shown


@pytest.mark.parametrize(
    "code",
    ["General", "", "dd/mm/yyyy", "hh:mm", "0.00E+00", "@", "[>100]0;0", "# ?/?", "[h]:mm"],
)
def test_formats_not_applied_leave_the_stored_digits(code):
    assert compile_format(code) is None


def test_every_builtin_format_listed_is_applied():
    assert all(compile_format(code) is not None for code in BUILTIN_FORMATS.values())


@pytest.mark.parametrize(
    "code",
    [
        "00000-000",
        "000",
        "0",
        "0.00",
        "#,##0",
        "#,##0.00",
        "0%",
        "0.00%",
        '"R$" #,##0.00',
        "#,##0,",
    ],
)
def test_the_fast_way_shows_what_the_careful_way_shows(code, monkeypatch):
    fast = compile_format(code)
    monkeypatch.setattr(numformat, "_fast_path", lambda section, separators: None)
    careful = compile_format(code)
    assert fast is not None and careful is not None
    rng = random.Random(17)
    values = [0.155, 0.285, 2.675, 1.005, 1234.5, 1310100.0, 0.5, 1.5, 2.5, 999.995, 1e14]
    values += [
        round(rng.uniform(0, 10 ** rng.randint(0, 9)), rng.randint(0, 4)) for _ in range(3000)
    ]
    values += [float(rng.randint(0, 99_999_999)) for _ in range(1000)]
    for value in values:
        assert fast(value) == careful(value), (code, value)
