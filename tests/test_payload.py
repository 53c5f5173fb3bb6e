"""RD Station's payload rules, and the email fast path held to email-validator."""

from __future__ import annotations

import email_validator
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from importer import payload as rd
from importer.payload import InvalidEmail, Problem


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Maria@Exemplo.com.br", "maria@exemplo.com.br"),
        ("  joao.silva+rd@gmail.com ", "joao.silva+rd@gmail.com"),
        ("ANA_1@SUB.EXAMPLE.ORG", "ana_1@sub.example.org"),
        ("josé@exemplo.com.br", "josé@exemplo.com.br"),  # unicode local part: the slow path
        ("ana@exámple.com", "ana@exámple.com"),  # internationalized domain
    ],
)
def test_normalize_email(raw: str, expected: str) -> None:
    assert rd.normalize_email(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "joao@",
        "@exemplo.com",
        "joao",
        "joao@exemplo",
        "jo ao@exemplo.com",
        "a..b@exemplo.com",
        "ana@exemplo.test",
        "ana@localhost",
        "ana@-exemplo.com",
        "ana@exemplo.123",
    ],
)
def test_invalid_emails(raw: str) -> None:
    with pytest.raises(InvalidEmail):
        rd.normalize_email(raw)


_EMAILISH = st.text(alphabet="abcXY09._+-@%!é ", min_size=1, max_size=30)


@given(_EMAILISH)
@example("a@b.co")
@example("a-@b--c.com")
@example("a@b.local")
@example("a@x.y.onion")
@example("a" * 65 + "@b.com")
def test_fast_path_accepts_only_what_email_validator_accepts(text: str) -> None:
    address = text.strip().lower()
    if rd._fast_email(address):
        info = email_validator.validate_email(address, check_deliverability=False)
        assert info.normalized.lower() == address


@given(st.emails())
def test_generated_addresses_normalize_like_email_validator(address: str) -> None:
    try:
        expected = email_validator.validate_email(address, check_deliverability=False)
    except email_validator.EmailNotValidError:
        with pytest.raises(InvalidEmail):
            rd.normalize_email(address)
    else:
        assert rd.normalize_email(address) == expected.normalized.lower()


@pytest.mark.parametrize(
    ("name", "value", "error_type"),
    [
        ("name", "Ana", None),
        ("name", 12, "MUST_BE_STRING"),
        ("linkedin", "ana-souza_1.b", None),
        ("linkedin", "https://linkedin.com/in/ana", "INVALID_FORMAT"),
        ("twitter", "ana souza", "INVALID_FORMAT"),
        ("facebook", "joão", "INVALID_FORMAT"),
        ("tags", ["a", "b"], None),
        ("tags", "a", "MUST_BE_STRING_ARRAY"),
        ("tags", ["a", 1], "MUST_BE_STRING_ARRAY"),
        ("available_for_mailing", True, None),
        ("available_for_mailing", "true", "MUST_BE_BOOLEAN"),
        ("cf_plano", "pro", None),
        ("cf_score", 12, None),
        ("cf_opcoes", ["a"], None),
        ("cf_x", {"a": 1}, "INVALID"),
    ],
)
def test_check_value(name: str, value: object, error_type: str | None) -> None:
    problem = rd.check_value(name, value)
    assert (problem.error_type if problem else None) == error_type


def test_known_fields() -> None:
    assert rd.is_known_field("email")
    assert rd.is_known_field("cf_plano_2")
    assert not rd.is_known_field("cf_")
    assert not rd.is_known_field("cf_plano-x")
    assert not rd.is_known_field("birthdate")  # not a conversion field


def test_payload_problems_names_rd_error_types() -> None:
    problems = rd.payload_problems(
        {
            "conversion_identifier": " ",
            "tags": "x",
            "email": "joao@",
            "available_for_mailing": "sim",
            "legal_bases": [
                {"category": "communications", "type": "consent", "status": "granted"},
                {"category": "communications", "type": "consent", "status": "maybe"},
                {"category": "communications", "type": "consent"},
            ],
        }
    )
    assert [(p.field, p.error_type) for p in problems] == [
        ("conversion_identifier", "CANNOT_BE_BLANK"),
        ("tags", "MUST_BE_STRING_ARRAY"),
        ("email", "INVALID_FORMAT"),
        ("available_for_mailing", "MUST_BE_BOOLEAN"),
        ("legal_bases[1].status", "INVALID_OPTION"),
        ("legal_bases[2].status", "CANNOT_BE_NULL"),
    ]


def test_payload_problems_missing_required() -> None:
    assert rd.payload_problems({}) == [
        Problem("conversion_identifier", "CANNOT_BE_NULL", "conversion_identifier cannot be null"),
        Problem("email", "CANNOT_BE_NULL", "email cannot be null"),
    ]


def test_a_valid_payload_has_no_problems() -> None:
    payload = {
        "conversion_identifier": "feira",
        "email": "ana@exemplo.com.br",
        "name": "Ana",
        "tags": ["a"],
        "available_for_mailing": False,
        "cf_plano": "pro",
        "legal_bases": [{"category": "communications", "type": "consent", "status": "declined"}],
    }
    assert rd.payload_problems(payload) == []


def test_tags_in_capitals_are_refused_by_rd_station_and_lower_cased_by_the_mapping(
    tmp_path,
) -> None:
    from importer.mapping import load_mapping
    from importer.records import Row

    assert rd.check_value("tags", ["VIP", "feira"]) == rd.Problem(
        "tags", "VALUES_MUST_BE_LOWERCASE", "must be in lower case"
    )
    mapping = tmp_path / "m.yaml"
    mapping.write_text(
        'conversion_identifier: c\nfields:\n  email: E\n  tags: {column: T, split: ","}\n'
        "  cf_x: {value: 1}\n",
        encoding="utf-8",
    )
    bound = load_mapping(mapping).bind(["E", "T"])
    payload = bound.apply(Row(2, {"E": "a@b.co", "T": "VIP, Feira,vip"}))
    assert payload["tags"] == ["vip", "feira"]
    assert rd.payload_problems(payload) == []


def test_a_cell_far_longer_than_any_address_is_refused_before_the_full_check() -> None:
    with pytest.raises(InvalidEmail, match="8,012 characters long; an email address has at most"):
        rd.normalize_email("a" * 8000 + "@example.com")
    with pytest.raises(InvalidEmail) as same_as_validator:  # under the bound: the validator's words
        rd.normalize_email("a" * 300 + "@example.com")
    assert "too long" in str(same_as_validator.value)
