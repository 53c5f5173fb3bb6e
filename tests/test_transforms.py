"""Each transform on the formats people and Excel actually produce."""

from __future__ import annotations

import phonenumbers
import pytest
from hypothesis import given
from hypothesis import strategies as st

from importer import transforms as tf
from importer.transforms import TransformError


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("strip", "  Ana  ", "Ana"),
        ("unquote", '"Clientes"', "Clientes"),
        ("unquote", "' leads quentes '", "leads quentes"),
        ("unquote", "\u201cVIP\u201d", "VIP"),
        ("unquote", '"a', '"a'),
        ("unquote", '"', '"'),
        ("lower", "ANA Souza", "ana souza"),
        ("upper", "sp", "SP"),
        ("title", "MARIA DA SILVA", "Maria da Silva"),
        ("title", "joão dos santos e souza", "João dos Santos e Souza"),
        ("title", "ana   das   dores", "Ana das Dores"),
        ("title", "de souza", "De Souza"),  # the first word is always capitalized
        ("title", "maria-clara DE oliveira", "Maria-Clara de Oliveira"),
        ("digits", "01310-100", "01310100"),
        ("digits", "123.456.789-09", "12345678909"),
        ("digits", "1310100.0", "1310100"),  # an Excel number cell
        ("digits", "abc", ""),
    ],
)
def test_text_transforms(name: str, value: str, expected: str) -> None:
    assert tf.get_transform(name)(value) == expected


@pytest.mark.parametrize(
    ("width", "value", "expected"),
    [
        (8, "1310100", "01310100"),  # the CEP whose leading zero Excel dropped
        (8, "01310100", "01310100"),
        (8, "7", "00000007"),
        (5, "1234567", "1234567"),  # longer: kept, never cut
    ],
)
def test_pad_puts_back_leading_zeros(width: int, value: str, expected: str) -> None:
    assert tf.make_pad(width)(value) == expected


@pytest.mark.parametrize("value", ["01310-100", "1310100.0", "12a", "\u0661\u0662"])
def test_pad_refuses_anything_but_digits(value: str) -> None:
    with pytest.raises(TransformError, match=r"^is not only digits, so cannot be padded to 8 "):
        tf.make_pad(8)(value)


@pytest.mark.parametrize(
    "value",
    [
        "(11) 98765-4321",
        "011 98765-4321",
        "+55 11 98765 4321",
        "+55 (11) 98765-4321",
        "11987654321",
        "5511987654321",
        "5511987654321.0",
        "5.511987654321E+12",
        "11 9 8765 4321",
        "11.98765.4321",
    ],
)
def test_phone_br_reads_every_common_way_to_write_a_mobile(value: str) -> None:
    assert tf.phone_br(value) == "+5511987654321"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("(11) 3333-4444", "+551133334444"),
        ("(21) 2555-0101", "+552125550101"),
        ("1133334444", "+551133334444"),
        ("0800 123 4567", "+558001234567"),  # toll free: the slow path
        ("+1 650 253 0000", "+16502530000"),  # another country's number, written with +
        ("(55) 99123-4567", "+5555991234567"),  # area code 55 (Rio Grande do Sul)
    ],
)
def test_phone_br_landlines_and_others(value: str, expected: str) -> None:
    assert tf.phone_br(value) == expected


@pytest.mark.parametrize(
    "value", ["1234", "98765-4321", "(00) 98765-4321", "n/a", "+", "telefone", "11 98765-43210000"]
)
def test_phone_br_refuses_what_is_not_a_phone(value: str) -> None:
    with pytest.raises(TransformError, match=r"^is not a phone number$"):
        tf.phone_br(value)


def _slow(national: str) -> str | None:
    try:
        number = phonenumbers.parse(national, "BR")
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


@given(
    st.text(alphabet="0123456789", min_size=10, max_size=13),
    st.sampled_from(["", "0", "55", "+55"]),
)
def test_phone_fast_path_agrees_with_phonenumbers(digits: str, prefix: str) -> None:
    text = prefix + digits
    try:
        ours = tf.phone_br(text)
    except TransformError:
        ours = None
    reference = _slow("+" + text[1:] if prefix == "+55" else text)
    if reference is None and not prefix.startswith("+") and text.startswith("55"):
        reference = _slow("+" + text)
    assert ours == reference


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("15/03/2026", "2026-03-15"),
        ("5/3/2026", "2026-03-05"),
        ("15-03-2026", "2026-03-15"),
        ("15.03.2026", "2026-03-15"),
        ("15/03/2026 10:30", "2026-03-15"),
        ("2026-03-15", "2026-03-15"),  # ISO, as Excel date cells arrive
        ("2026-03-15 00:00:00", "2026-03-15"),
        ("2026-03-15T08:00:00", "2026-03-15"),
        ("29/02/2024", "2024-02-29"),
    ],
)
def test_date_default_is_day_first(value: str, expected: str) -> None:
    assert tf.make_date()(value) == expected


@pytest.mark.parametrize("value", ["ontem", "15/03/26", "15/03", "2026/03/15"])
def test_date_never_guesses(value: str) -> None:
    with pytest.raises(TransformError, match=r"^is not a date in the form dd/mm/yyyy$"):
        tf.make_date()(value)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("31/02/1985", "is not a date: February has no day 31"),
        ("31/04/2026", "is not a date: April has no day 31"),
        ("29/02/2025", "is not a date: February 2025 has no day 29"),
        ("00/03/2026", "is not a date: there is no day 0"),
        ("03/15/2026", "is not a date in the form dd/mm/yyyy: there is no month 15"),
        ("2026-02-30", "is not a date: February has no day 30"),
        ("2026-13-01", "is not a date in the form yyyy-mm-dd: there is no month 13"),
    ],
)
def test_an_impossible_date_says_it_does_not_exist(value: str, reason: str) -> None:
    with pytest.raises(TransformError) as caught:
        tf.make_date()(value)
    assert str(caught.value) == reason


def test_an_impossible_date_in_another_format_says_it_does_not_exist() -> None:
    with pytest.raises(TransformError, match=r"^is not a date: that month has no such day$"):
        tf.make_date("yyyy/mm/dd")("2026/02/31")


@pytest.mark.parametrize("value", ["1990", "2026", "1", "46096", "46096.5", "46096,5", "0"])
def test_date_refuses_a_bare_number(value: str) -> None:
    # 1990 read as an Excel serial is 1905-06-12, 2026 is 1905-07-18, 1 is 1899-12-31
    with pytest.raises(TransformError) as caught:
        tf.make_date()(value)
    assert str(caught.value) == (
        "is a number, not a date in the form dd/mm/yyyy (if the column holds Excel date "
        "serials, add excel_serial: true to its entry)"
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [("46096", "2026-03-15"), ("46096.5", "2026-03-15"), ("61", "1900-03-01")],
)
def test_date_reads_a_serial_only_when_told_and_says_so(value: str, expected: str) -> None:
    heard: list[None] = []
    date = tf.get_transform("date", excel_serial=True, on_serial=lambda: heard.append(None))
    assert date(value) == expected
    assert date("15/03/2026") == "2026-03-15"  # dates as text still read, without a word
    assert len(heard) == 1


@pytest.mark.parametrize("value", ["1", "60", "2958466"])
def test_date_serials_outside_excels_calendar_are_refused(value: str) -> None:
    with pytest.raises(TransformError, match=r"^is not an Excel date serial \(61 is 1900-03-01"):
        tf.make_date(excel_serial=True)(value)


@pytest.mark.parametrize(
    ("fmt", "value", "expected"),
    [
        ("yyyy/mm/dd", "2026/03/15", "2026-03-15"),
        ("dd/mm/yy", "15/03/26", "2026-03-15"),
        ("mm/dd/yyyy", "03/15/2026", "2026-03-15"),  # month-first only when the mapping says so
        ("%d %b %Y", "15 Mar 2026", "2026-03-15"),
        ("yyyymmdd", "20260315", "2026-03-15"),
        ("yyyymmdd", "2026-03-15", "2026-03-15"),  # ISO passes whatever the format
    ],
)
def test_date_with_format(fmt: str, value: str, expected: str) -> None:
    assert tf.make_date(fmt)(value) == expected


def test_date_with_format_names_it_in_the_reason() -> None:
    with pytest.raises(TransformError, match=r"^is not a date in the form yyyy/mm/dd$"):
        tf.make_date("yyyy/mm/dd")("15/03/2026")


@pytest.mark.parametrize(
    ("fmt", "reason"),
    [
        ("mm/yyyy", "date format 'mm/yyyy' has no day (use dd, mm and yyyy)"),
        ("dd/yyyy", "date format 'dd/yyyy' has no month (use dd, mm and yyyy)"),
        ("dd/mm", "date format 'dd/mm' has no year (use dd, mm and yyyy)"),
    ],
)
def test_bad_date_formats(fmt: str, reason: str) -> None:
    with pytest.raises(ValueError) as caught:
        tf.strptime_format(fmt)
    assert str(caught.value) == reason


@pytest.mark.parametrize(
    "value", ["sim", "SIM", "Sim", "s", "S", "yes", "Y", "true", "TRUE", "1", "1.0", "x", "X"]
)
def test_bool_true(value: str) -> None:
    assert tf.to_bool(value) is True


@pytest.mark.parametrize(
    "value", ["não", "NÃO", "nao", "Nao", "n", "N", "no", "false", "False", "0", "0.0"]
)
def test_bool_false(value: str) -> None:
    assert tf.to_bool(value) is False


@pytest.mark.parametrize("value", ["talvez", "2", "sim!", "-"])
def test_bool_refuses_other_words(value: str) -> None:
    with pytest.raises(TransformError, match=r"^is not yes or no \(sim, não"):
        tf.to_bool(value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("maria.s", "maria.s"),
        ("@maria_s", "maria_s"),
        ("https://www.linkedin.com/in/maria-silva-123/", "maria-silva-123"),
        ("br.linkedin.com/in/joao-souza", "joao-souza"),
        ("https://www.linkedin.com/company/acme-ltda/about/", "acme-ltda"),
        ("https://www.linkedin.com/pub/maria-silva/1/2/3", "maria-silva"),
        ("twitter.com/maria", "maria"),
        ("https://x.com/@maria?lang=pt", "maria"),
        ("https://twitter.com/#!/maria", "maria"),
        ("http://www.facebook.com/maria.silva.77", "maria.silva.77"),
        ("https://www.facebook.com/profile.php?id=100001234", "100001234"),
        ("facebook.com/people/Maria-Silva/100001234/", "100001234"),
        ("https://m.facebook.com/pg/acme/about", "acme"),
    ],
)
def test_handle_takes_the_handle_out_of_a_profile_url(value: str, expected: str) -> None:
    assert tf.get_transform("handle")(value) == expected


@pytest.mark.parametrize(
    "value",
    ["https://www.linkedin.com/", "linkedin.com/in/jo%C3%A3o", "Maria Silva", "http://[", "@"],
)
def test_handle_refuses_what_holds_no_handle(value: str) -> None:
    with pytest.raises(
        TransformError, match=r"^is not a profile handle or a profile URL with one$"
    ):
        tf.get_transform("handle")(value)


@pytest.mark.parametrize("name", ["digits", "phone_br"])
@pytest.mark.parametrize(
    ("value", "shown"), [("1,19877E+10", 6), ("1.19877E+10", 6), ("5,51199E+12", 6), ("1E+10", 1)]
)
def test_a_number_excel_shortened_is_refused_not_filled_with_zeros(
    name: str, value: str, shown: int
) -> None:
    # A General column too narrow for 11987654321 is saved as 1,19877E+10; 11987700000 would
    # be somebody else's phone.
    with pytest.raises(TransformError) as error:
        tf.get_transform(name)(value)
    assert str(error.value) == (
        f"is a number Excel shortened to {shown} digits: format the column as Text in Excel "
        "and export the file again"
    )


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("digits", "5.511987654321E+12", "5511987654321"),  # every digit shown: exact
        ("digits", "1,23E+2", "123"),
        ("phone_br", "1,1987654321E+10", "+5511987654321"),
    ],
)
def test_a_number_in_scientific_notation_with_every_digit_is_read(
    name: str, value: str, expected: str
) -> None:
    assert tf.get_transform(name)(value) == expected


def test_every_transform_has_a_function() -> None:
    for name in tf.TRANSFORMS:
        assert callable(tf.get_transform(name))


@given(st.text(max_size=30))
def test_transforms_raise_only_transform_errors(value: str) -> None:
    for name in tf.TRANSFORMS:
        try:
            result = tf.get_transform(name)(value)
        except TransformError:
            continue
        assert isinstance(result, str | bool)
