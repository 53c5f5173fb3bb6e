"""The mapping file: loading with line-numbered errors, columns, and each row's payload."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from importer import transforms as tf
from importer.errors import InputError, RowError
from importer.loader import open_table
from importer.mapping import (
    BoundMapping,
    Mapping,
    load_mapping,
    mapping_json_schema,
    mapping_json_schema_text,
    parse_template,
)
from importer.mapping.compile import compile_plan
from importer.records import Row

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "mappings" / "example.yaml"
SCHEMA_FILE = ROOT / "mappings" / "mapping.schema.json"
SAMPLE_HEADERS = [
    "Nome",
    "Sobrenome",
    "E-mail",
    "Celular",
    "Telefone",
    "Empresa",
    "Cargo",
    "Cidade",
    "UF",
    "CEP",
    "Interesses",
    "Plano",
    "Aceita comunicação?",
    "Data de cadastro",
]


def write(tmp_path: Path, text: str, name: str = "mapping.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def load(tmp_path: Path, text: str) -> Mapping:
    return load_mapping(write(tmp_path, text))


def problems(tmp_path: Path, text: str) -> str:
    with pytest.raises(InputError) as caught:
        load(tmp_path, text)
    return str(caught.value)


def bound(mapping: Mapping | BoundMapping) -> BoundMapping:
    """A loaded mapping bound to a file that has every column it reads; a bound one as is."""
    return mapping if isinstance(mapping, BoundMapping) else mapping.bind(mapping.columns)


def apply(mapping: Mapping | BoundMapping, **cells: str) -> dict[str, Any]:
    return bound(mapping).apply(Row(2, cells))


def row_error(mapping: Mapping | BoundMapping, **cells: str) -> RowError:
    with pytest.raises(RowError) as caught:
        bound(mapping).apply(Row(2, cells))
    return caught.value


BASIC = "conversion_identifier: feira-2026\nfields:\n  email: E-mail\n"


# ---------------------------------------------------------------------------------------------
# The shipped example and schema


def example_row(**overrides: str) -> Row:
    cells = dict.fromkeys(SAMPLE_HEADERS, "")
    cells.update(
        {
            "Nome": "maria",
            "Sobrenome": "DA SILVA",
            "E-mail": " Maria.Silva@Exemplo.com.br ",
            "Celular": "(11) 98765-4321",
            "Telefone": "1234",
            "Empresa": "Padaria Pão Quente",
            "Cargo": "Gerente",
            "Cidade": "São Paulo",
            "UF": "sp",
            "CEP": "01310-100",
            "Interesses": "Marketing, Vendas ,,CRM",
            "Plano": "AVANCADO",
            "Aceita comunicação?": "Não",
            "Data de cadastro": "15/03/2026",
        }
    )
    cells.update(overrides)
    return Row(2, cells)


def test_example_mapping_maps_a_sample_row() -> None:
    mapping = load_mapping(EXAMPLE)
    sample = mapping.bind(SAMPLE_HEADERS, "leads.csv")
    assert sample.warnings == []  # the sample has every column the example reads
    assert sample.apply(example_row()) == {
        "conversion_identifier": "feira-2026",
        "email": "maria.silva@exemplo.com.br",
        "name": "Maria da Silva",
        "mobile_phone": "+5511987654321",
        "company_name": "Padaria Pão Quente",
        "job_title": "Gerente",
        "city": "São Paulo",
        "state": "SP",
        "cf_cep": "01310100",
        "tags": ["marketing", "vendas", "crm"],
        "cf_plano": "avancado",
        "cf_data_de_cadastro": "2026-03-15",
        "available_for_mailing": False,
        "legal_bases": [{"category": "communications", "type": "consent", "status": "declined"}],
    }


def test_example_mapping_reads_every_sample_column() -> None:
    mapping = load_mapping(EXAMPLE)
    assert set(SAMPLE_HEADERS) <= set(mapping.columns)


def test_shipped_schema_is_the_generated_one() -> None:
    assert SCHEMA_FILE.read_text(encoding="utf-8") == mapping_json_schema_text(), (
        "regenerate it: python -c 'from importer.mapping import mapping_json_schema_text; "
        'open("mappings/mapping.schema.json", "w").write(mapping_json_schema_text())\''
    )


def test_example_is_valid_against_the_schema() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schema = mapping_json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    document = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    jsonschema.validate(document, schema)


# ---------------------------------------------------------------------------------------------
# Mapping errors: every one, with its line


def test_every_problem_is_reported_at_once_with_its_line(tmp_path: Path) -> None:
    message = problems(
        tmp_path,
        """
        conversion_identifier: feira-2026
        fields:
          email: E-mail
          emial: E-mail
          name: {template: "{Nome} {Sobrenome}"}
          mobile_phone: {column: Celular, transform: phone}
          tags: {column: Interesses, trasform: lower, split: ","}
        legal_bases:
          - {category: communications, type: consent, status: grantd}
        """,
    )
    assert message == (
        "mapping.yaml: 4 problems:\n"
        "  line 4: unknown payload field 'emial' (did you mean 'email'?)\n"
        "  line 6: unknown transform 'phone' (did you mean 'phone_br'?); "
        "known: strip, unquote, lower, upper, title, digits, phone_br, date, bool, handle\n"
        "  line 7: unknown key 'trasform' (did you mean 'transform'?); known: column, split, "
        "transform, format, excel_serial, pad, map, default, required, optional, on_invalid\n"
        "  line 9: 'grantd' is not a legal basis status; allowed: granted, declined"
    )


def test_one_problem_is_one_line(tmp_path: Path) -> None:
    message = problems(
        tmp_path,
        """
        conversion_identifier: feira-2026
        fields:
          email: E-mail
          telefone: Telefone
        """,
    )
    assert message == (
        "mapping.yaml: line 4: unknown payload field 'telefone'; custom fields start with cf_"
    )


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ("nome: Nome", "unknown payload field 'nome' (did you mean 'name'?)"),
        (
            "birthdate: Nascimento",
            "unknown payload field 'birthdate'; custom fields start with cf_",
        ),
        (
            "cf_plano-x: Plano",
            "custom field 'cf_plano-x': write cf_ then RD Station's API "
            "identifier (letters, digits and _)",
        ),
        ("legal_bases: X", "'legal_bases' goes at the top level of the mapping, not under fields:"),
        (
            "name: 5",
            "'name' needs a column header, or {column: ...}, {template: ...} or "
            "{value: ...}, not the number 5",
        ),
        (
            "name: {colum: Nome}",
            "'name' needs a column header, or {column: ...}, {template: ...} "
            "or {value: ...}, not a mapping",
        ),
        (
            "name: {column: Nome, value: x}",
            "an entry takes one of column:, template: or value:, not several",
        ),
        (
            "name: {column: [Nome, 3]}",
            "column must be a column header, or a list of headers, not the number 3",
        ),
        ("name: {column: ''}", "column must name a header, not be empty"),
        ("name: {column: Nome, required: yes}", "required must be true or false, not 'yes'"),
        (
            "name: {column: Nome, on_invalid: skip}",
            "on_invalid must be fail, drop or keep, not 'skip'",
        ),
        (
            "name: {column: Nome, transform: [lower, titel]}",
            "unknown transform 'titel' (did you mean 'title'?); "
            "known: strip, unquote, lower, upper, title, digits, phone_br, date, bool, handle",
        ),
        (
            "name: {column: Nome, transform: [bool, lower]}",
            "transform 'lower' cannot follow bool (bool gives true/false)",
        ),
        (
            "name: {column: Nome, transform: bool}",
            "name takes text, but this entry gives true/false",
        ),
        (
            "state: {value: 12}",
            "state takes text, but this entry gives a number: quote it to make it text",
        ),
        (
            "city: {column: Cidade, split: ','}",
            "city takes text, but this entry gives a list: remove split:",
        ),
        ("tags: Interesses", 'tags takes a list: add split: "," (or give value: [a, b])'),
        (
            "available_for_mailing: Aceita",
            "available_for_mailing takes true or false: add transform: bool "
            "(or map: to true/false)",
        ),
        (
            "available_for_mailing: {value: 'sim'}",
            "available_for_mailing takes true or false: add transform: bool "
            "(or map: to true/false)",
        ),
        (
            "linkedin: {value: 'https://x.com/a'}",
            "linkedin may hold only letters, digits, '.', '-' and '_' "
            "(the handle, not a URL: add transform: handle)",
        ),
        ("cf_d: {column: D, format: dd/mm/yyyy}", "format: applies to transform: date only"),
        (
            "cf_d: {column: D, transform: date, format: mm/yyyy}",
            "date format 'mm/yyyy' has no day (use dd, mm and yyyy)",
        ),
        ("cf_p: {column: P, map: {}}", "map is empty"),
        ("cf_p: {value: ' '}", "value is empty: leave the field out instead"),
        (
            "cf_p: {column: P, map: {Sim: a, sim: b}}",
            "map keys 'Sim' and 'sim' match the same cells",
        ),
        (
            "cf_p: {column: P, required: true, default: x}",
            "required: true and default: contradict: keep one",
        ),
        ("cf_p: {column: P, split: ''}", 'split needs a separator, e.g. ","'),
        (
            "cf_p: {column: P, pad: 0}",
            "pad must be a number of characters from 1 to 50, e.g. 8, not the number 0",
        ),
        (
            "cf_p: {column: P, pad: '8'}",
            "pad must be a number of characters from 1 to 50, e.g. 8, not '8'",
        ),
        (
            "cf_p: {column: P, pad: 51}",
            "pad must be a number of characters from 1 to 50, e.g. 8, not the number 51",
        ),
        (
            "cf_p: {column: P, transform: bool, pad: 2}",
            "pad: cannot follow bool (bool gives true/false)",
        ),
        (
            "cf_p: {column: P, required: true, map: {'': x, a: b}}",
            'required: true and the empty-cell key "" in map contradict: keep one',
        ),
        (
            "tags: {column: P, split: ',', map: {' ': x}}",
            'with split:, map applies to each item, never empty: drop the "" key '
            "(default: [..] is what an empty cell sends)",
        ),
        (
            "tags: {column: P, split: ',', default: lead}",
            "with split:, default must be a list, e.g. [lead]",
        ),
        (
            "cf_p: {template: 'fixo'}",
            "template has no {Column} placeholder: use value: for a constant",
        ),
    ],
)
def test_entry_problems(tmp_path: Path, fields: str, expected: str) -> None:
    text = f"conversion_identifier: c\nfields:\n  email: E-mail\n  {fields}\n"
    assert problems(tmp_path, text) == f"mapping.yaml: line 4: {expected}"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("fields:\n  email: E-mail\n", "line 1: the mapping needs 'conversion_identifier:'"),
        ("conversion_identifier: c\n", "line 1: the mapping needs 'fields:'"),
        (
            "conversion_identifier: ''\nfields:\n  email: E-mail\n",
            "line 1: conversion_identifier must not be empty",
        ),
        (
            "conversion_identifier: c\nfields:\n  name: Nome\n",
            "line 2: fields has no 'email': every conversion needs one",
        ),
        (
            "conversion_identifier: c\nfields: [E-mail]\n",
            "line 2: fields must be a list of payload field: column lines, not a list",
        ),
        (
            "conversion_identifier: c\nfield:\n  email: E-mail\n",
            "2 problems:\n  line 1: the mapping needs 'fields:'\n"
            "  line 2: unknown key 'field' (did you mean 'fields'?); "
            "known: conversion_identifier, fields, legal_bases, funnel, key",
        ),
        (
            "conversion_identifier: c\nfields:\n  email: E-mail\n  email: Email\n",
            "line 4: 'email' is given twice (also on line 3)",
        ),
        (
            "conversion_identifier: c\nfields:\n  email: E-mail\nlegal_bases:\n"
            "  - {type: consentt, status: granted, category: marketing}\n",
            "2 problems:\n  line 5: category must be communications, not 'marketing'\n"
            "  line 5: 'consentt' is not a legal basis type; allowed: "
            "pre_existent_contract, consent, legitimate_interest, judicial_process, "
            "vital_interest, public_interest",
        ),
        (
            "conversion_identifier: c\nfields:\n  email: E-mail\nlegal_bases:\n"
            "  - type: consent\n    status: {column: A, map: {Sim: yes, Não: declined}}\n",
            "line 6: 'yes' is not a legal basis status; allowed: granted, declined",
        ),
        (
            "conversion_identifier: c\nfields:\n  email: E-mail\nlegal_bases:\n"
            "  - type: {column: T, transform: bool}\n    status: granted\n",
            "line 5: legal basis type from a yes/no column needs map: to pre_existent_contract, "
            "consent, legitimate_interest, judicial_process, vital_interest, public_interest",
        ),
        (
            "conversion_identifier: c\nfields:\n  email: E-mail\n"
            "legal_bases:\n  - {type: consent}\n",
            "line 5: this entry needs 'status:'",
        ),
    ],
)
def test_document_problems(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(InputError) as caught:
        load_mapping(write(tmp_path, text))
    assert str(caught.value) == f"mapping.yaml: {expected}"


def test_yaml_syntax_error_names_its_line(tmp_path: Path) -> None:
    message = problems(tmp_path, "conversion_identifier: c\nfields:\n  email: {column: E-mail\n")
    assert message.startswith("mapping.yaml: line 4: not valid YAML: ")
    assert message.endswith("(check the indentation and the quotes)")


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "mapping.yaml is empty: write a mapping (see mappings/example.yaml)"),
        (
            b"# only a comment\n",
            "mapping.yaml is empty: write a mapping (see mappings/example.yaml)",
        ),
        (
            b"- a\n- b\n",
            "mapping.yaml: line 1: a mapping starts with conversion_identifier: and "
            "fields: (see mappings/example.yaml)",
        ),
        (
            "conversion_identifier: ação\n".encode("cp1252"),
            "mapping.yaml is not UTF-8 text: save it as UTF-8",
        ),
    ],
)
def test_unreadable_files(tmp_path: Path, content: bytes, expected: str) -> None:
    path = tmp_path / "mapping.yaml"
    path.write_bytes(content)
    with pytest.raises(InputError) as caught:
        load_mapping(path)
    assert str(caught.value) == expected


_NO_TAG = (
    "is not allowed: a mapping holds plain texts, numbers, true/false, lists and key: value "
    "pairs; remove the tag"
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (  # on a mapping: the tag used to be dropped unread
            "conversion_identifier: c\nfields: !!python/object/apply:os.system\n  email: E-mail\n",
            f"line 2: the YAML tag '!!python/object/apply:os.system' {_NO_TAG}",
        ),
        (  # on a list
            "conversion_identifier: c\nfields:\n  email: E-mail\n"
            "  tags: {value: !!python/name:os.system [a]}\n",
            f"line 4: the YAML tag '!!python/name:os.system' {_NO_TAG}",
        ),
        (
            "conversion_identifier: !!python/object:os.system x\nfields:\n  email: E-mail\n",
            f"line 1: the YAML tag '!!python/object:os.system' {_NO_TAG}",
        ),
        (  # on a key
            "conversion_identifier: c\nfields:\n  !!python/name:os.system email: E-mail\n",
            f"line 3: the YAML tag '!!python/name:os.system' {_NO_TAG}",
        ),
        (  # on the whole document
            "--- !!python/object:argparse.Namespace\nconversion_identifier: c\n"
            "fields: {email: E-mail}\n",
            f"line 1: the YAML tag '!!python/object:argparse.Namespace' {_NO_TAG}",
        ),
        (  # safe, but not plain data either
            "conversion_identifier: !!binary aGVsbG8=\nfields:\n  email: E-mail\n",
            f"line 1: the YAML tag '!!binary' {_NO_TAG}",
        ),
        (
            "conversion_identifier: c\nfields:\n  email: !local E-mail\n",
            f"line 3: the YAML tag '!local' {_NO_TAG}",
        ),
        (
            "conversion_identifier: c\nfields: !!set {email: null}\n",
            f"line 2: the YAML tag '!!set' {_NO_TAG}",
        ),
        (  # a core tag on a value it cannot read: no ValueError escapes
            "conversion_identifier: !!int abc\nfields:\n  email: E-mail\n",
            "line 1: 'abc' is not a whole number",
        ),
        (
            "conversion_identifier: c\nfields:\n  email: E-mail\n"
            "  available_for_mailing: {value: !!bool maybe}\n",
            "line 4: 'maybe' is not true or false",
        ),
    ],
)
def test_a_yaml_tag_that_is_not_plain_data_is_refused_with_its_line(
    tmp_path: Path, text: str, expected: str
) -> None:
    assert problems(tmp_path, text).startswith(f"mapping.yaml: {expected}")


def test_aliases_that_expand_exponentially_are_refused_quickly(tmp_path: Path) -> None:
    levels = ["  a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    levels += [f"  a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    message = problems(tmp_path, BASIC + "  cf_x:\n" + "\n".join(levels) + "\n")
    assert message.startswith("mapping.yaml: line ")
    assert "expands to more than 100,000 values (YAML aliases" in message


def test_a_reused_alias_is_fine(tmp_path: Path) -> None:
    mapping = load(
        tmp_path,
        BASIC + "  cf_a: {column: A, map: &yes_no {Sim: sim, Não: nao}}\n"
        "  cf_b: {column: B, map: *yes_no}\n",
    )
    assert apply(mapping, **{"E-mail": "a@b.com", "A": "SIM", "B": "nao"})["cf_b"] == "nao"


def test_plain_core_tags_are_accepted(tmp_path: Path) -> None:
    mapping = load(
        tmp_path,
        "conversion_identifier: !!str c\nfields: !!map\n  email: !!str E-mail\n"
        "  tags: {value: !!seq [!!str a]}\n  cf_n: {value: !!int 3}\n",
    )
    assert mapping.spec.fields["cf_n"].value == 3  # type: ignore[union-attr]


def test_merge_and_value_keys_are_plain_text(tmp_path: Path) -> None:
    message = problems(tmp_path, BASIC + "  <<: {name: Nome}\n")
    assert "line 4: unknown payload field '<<'" in message
    assert load(tmp_path, "conversion_identifier: =\nfields:\n  email: E\n").spec.fields


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"^mapping file .*nope\.yaml not found: check the "):
        load_mapping(tmp_path / "nope.yaml")


def test_a_bom_is_fine(tmp_path: Path) -> None:
    path = tmp_path / "mapping.yaml"
    path.write_bytes("\ufeffconversion_identifier: c\nfields:\n  email: E-mail\n".encode())
    assert load_mapping(path).columns == ["E-mail"]


def test_yes_and_no_stay_text(tmp_path: Path) -> None:
    mapping = load(
        tmp_path,
        """
        conversion_identifier: c
        fields:
          email: E-mail
          cf_resposta: {column: R, map: {yes: sim, no: nao, on: ligado}}
          cf_data: {value: 2026-03-15}
        """,
    )
    assert apply(mapping, **{"E-mail": "a@b.com", "R": "NO"})["cf_resposta"] == "nao"
    assert apply(mapping, **{"E-mail": "a@b.com", "R": "on"})["cf_data"] == "2026-03-15"


# ---------------------------------------------------------------------------------------------
# Templates: only {Column} substitution


@pytest.mark.parametrize(
    "template",
    [
        "{Nome.__class__}",
        "{0}",
        "{}",
        "{ }",
        "{Nome:>10}",
        "{Nome!r}",
        "{Nome[0]}",
        "{Nome.__init__.__globals__}",
        "{__import__}x{0}",
    ],
)
def test_templates_refuse_format_syntax(tmp_path: Path, template: str) -> None:
    message = problems(
        tmp_path,
        f"conversion_identifier: c\nfields:\n  email: E-mail\n  name: {{template: '{template}'}}\n",
    )
    assert message.startswith("mapping.yaml: line 4: template placeholder '{")
    assert message.endswith(
        "is not a column name: templates only substitute {Column Name} "
        "(no positions, attributes, indexes or format specs)"
    )


@pytest.mark.parametrize(
    ("template", "reason"),
    [
        ("{Nome", "template has a '{' that is never closed (write '{{' for a brace)"),
        ("Nome}", "template has a '}' without '{' (write '}}' for a literal brace)"),
        ("{a{b}", "template placeholder '{a{b}' holds a '{'"),
    ],
)
def test_template_braces(template: str, reason: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_template(template)
    assert str(caught.value) == reason


def test_template_parts() -> None:
    assert parse_template("{{{Nome}}} - {Hora: início} {Nr.}") == [
        ("{", None),
        ("Nome", "Nome"),
        ("} - ", None),
        ("Hora: início", "Hora: início"),
        (" ", None),
        ("Nr.", "Nr."),
    ]


def test_template_output_never_evaluates(tmp_path: Path) -> None:
    mapping = load(
        tmp_path,
        """
        conversion_identifier: c
        fields:
          email: E-mail
          name: {template: "{Nome} {Sobrenome}"}
        """,
    )
    payload = apply(
        mapping, **{"E-mail": "a@b.com", "Nome": "{Sobrenome.__class__}", "Sobrenome": "{0}"}
    )
    assert payload["name"] == "{Sobrenome.__class__} {0}"


@pytest.mark.parametrize(
    ("nome", "sobrenome", "expected"),
    [
        ("Ana", "Souza", "Ana Souza"),
        ("Ana", "", "Ana"),
        ("", "Souza", "Souza"),
        ("  Ana ", " Souza  ", "Ana Souza"),
        ("Ana  Maria", "", "Ana  Maria"),  # a cell's own spaces are its own
    ],
)
def test_template_collapses_what_empty_parts_leave(
    tmp_path: Path, nome: str, sobrenome: str, expected: str
) -> None:
    mapping = load(
        tmp_path,
        """
        conversion_identifier: c
        fields:
          email: E-mail
          name: {template: "{Nome} {Meio} {Sobrenome}"}
        """,
    )
    cells = {"E-mail": "a@b.com", "Nome": nome, "Meio": "", "Sobrenome": sobrenome}
    assert apply(mapping, **cells)["name"] == expected


def test_template_with_every_part_empty_is_left_out(tmp_path: Path) -> None:
    mapping = load(
        tmp_path,
        """
        conversion_identifier: c
        fields:
          email: E-mail
          company_address: {template: "Rua {Rua}, {Número} - {Cidade}"}
        """,
    )
    cells = {"E-mail": "a@b.com", "Rua": "", "Número": " ", "Cidade": ""}
    assert "company_address" not in apply(mapping, **cells)
    cells["Cidade"] = "Recife"
    assert apply(mapping, **cells)["company_address"] == "Rua , - Recife"


TEMPLATES = BASIC + (
    '  name: {template: ["{First Name} {Last Name}", "{Nome} {Sobrenome}"], transform: title}\n'
)


@pytest.mark.parametrize(
    ("headers", "cells", "name"),
    [
        (["E-mail", "First Name", "Last Name"], ["a@b.com", "ana", "SOUZA"], "Ana Souza"),
        (["E-mail", "Nome", "Sobrenome"], ["a@b.com", "ana", ""], "Ana"),
        (["E-mail", "First Name", "Last Name"], ["a@b.com", "", ""], None),
    ],
)
def test_of_several_templates_the_first_that_gives_text_is_used(
    tmp_path: Path, headers: list[str], cells: list[str], name: str | None
) -> None:
    file = load(tmp_path, TEMPLATES).bind(headers, "x.csv")
    assert file.warnings == []  # the file has one template's columns: enough
    payload = file.apply(Row(2, dict(zip(headers, cells, strict=True))))
    assert payload.get("name") == name


def test_several_templates_need_the_columns_of_one(tmp_path: Path) -> None:
    with pytest.raises(InputError) as caught:
        load(tmp_path, TEMPLATES).bind(["E-mail", "First Name", "Sobrenome"], "x.csv")
    assert str(caught.value) == (
        "mapping.yaml: 2 problems:\n"
        "  line 4: column 'Last Name' is not in x.csv\n"
        "  line 4: column 'Nome' is not in x.csv"
    )


def test_each_of_several_templates_is_checked(tmp_path: Path) -> None:
    message = problems(tmp_path, BASIC + '  name: {template: ["{A} {B}", "sem nada", "{0}"]}\n')
    assert message.startswith("mapping.yaml: 2 problems:\n  line 4: template has no {Column}")
    assert "template placeholder '{0}' is not a column name" in message


# ---------------------------------------------------------------------------------------------
# Each row


def test_empty_cells_leave_fields_out(tmp_path: Path) -> None:
    mapping = load(
        tmp_path,
        """
        conversion_identifier: c
        fields:
          email: E-mail
          name: Nome
          mobile_phone: {column: Celular, transform: phone_br}
          tags: {column: Tags, split: ","}
          available_for_mailing: {column: Aceita, transform: bool}
          cf_plano: {column: Plano, map: {Pro: pro}}
        """,
    )
    cells = {
        "E-mail": " A@B.com ",
        "Nome": "   ",
        "Celular": "",
        "Tags": " , ,",
        "Aceita": "",
        "Plano": "",
    }
    assert apply(mapping, **cells) == {"conversion_identifier": "c", "email": "a@b.com"}


def test_column_list_takes_the_first_filled(tmp_path: Path) -> None:
    mapping = load(
        tmp_path,
        """
        conversion_identifier: c
        fields:
          email: {column: ["Email - Work", "Email - Home"]}
        """,
    )
    assert apply(mapping, **{"Email - Work": " ", "Email - Home": "b@c.com"})["email"] == "b@c.com"
    assert apply(mapping, **{"Email - Work": "a@c.com", "Email - Home": "b@c.com"})["email"] == (
        "a@c.com"
    )


def test_conversion_identifier_from_a_column(tmp_path: Path) -> None:
    mapping = load(
        tmp_path,
        """
        conversion_identifier: {column: Origem, default: importacao}
        fields:
          email: E-mail
        """,
    )
    assert apply(mapping, **{"E-mail": "a@b.com", "Origem": " feira "})[
        "conversion_identifier"
    ] == ("feira")
    assert apply(mapping, **{"E-mail": "a@b.com", "Origem": ""})["conversion_identifier"] == (
        "importacao"
    )


def test_empty_conversion_identifier_fails_the_row(tmp_path: Path) -> None:
    mapping = load(tmp_path, "conversion_identifier: {column: Origem}\nfields:\n  email: E-mail\n")
    error = row_error(mapping, **{"E-mail": "a@b.com", "Origem": ""})
    assert (error.stage, error.message) == (
        "validation",
        "conversion_identifier (column 'Origem') is empty: every conversion needs a "
        "conversion identifier",
    )


def test_constants(tmp_path: Path) -> None:
    mapping = load(
        tmp_path,
        """
        conversion_identifier: c
        fields:
          email: E-mail
          available_for_mailing: {value: true}
          tags: {value: [feira, "2026"]}
          cf_score: {value: 10}
          traffic_source: {value: feira}
        """,
    )
    assert apply(mapping, **{"E-mail": "a@b.com"}) == {
        "conversion_identifier": "c",
        "email": "a@b.com",
        "available_for_mailing": True,
        "tags": ["feira", "2026"],
        "cf_score": 10,
        "traffic_source": "feira",
    }


def test_split_then_transform_and_map_each_item(tmp_path: Path) -> None:
    mapping = load(
        tmp_path,
        """
        conversion_identifier: c
        fields:
          email: E-mail
          tags:
            {column: Interesses, split: ";", transform: lower, map: {seo: busca}, on_invalid: keep}
          cf_telefones: {column: Fones, split: "/", transform: phone_br, on_invalid: drop}
        """,
    )
    payload = apply(
        mapping,
        **{
            "E-mail": "a@b.com",
            "Interesses": " SEO; Vendas;; ",
            "Fones": "11987654321 / x / 1133334444",
        },
    )
    # keep: "Vendas" is not in the map and is kept, then lower-cased as RD Station needs tags
    assert payload["tags"] == ["busca", "vendas"]
    assert payload["cf_telefones"] == ["+5511987654321", "+551133334444"]


def test_mailchimp_style_quoted_tags(tmp_path: Path) -> None:
    mapping = load(
        tmp_path,
        BASIC + '  tags: {column: TAGS, split: ",", transform: [unquote, lower]}\n',
    )
    payload = apply(mapping, **{"E-mail": "a@b.com", "TAGS": '"Clientes","Leads quentes",""'})
    assert payload["tags"] == ["clientes", "leads quentes"]


@pytest.mark.parametrize("transform", ["", ", transform: lower"])
def test_a_separator_with_spaces_cuts_the_cell_as_written(tmp_path: Path, transform: str) -> None:
    # trimmed before the cut, "a, b, " would end in "b," (found by the fast-path property test:
    # the one-column shortcut cut the cell as written, the general getter the trimmed text)
    mapping = load(tmp_path, BASIC + f'  tags: {{column: T, split: ", "{transform}}}\n')
    assert apply(mapping, **{"E-mail": "a@b.com", "T": "a, b, "})["tags"] == ["a", "b"]
    assert "tags" not in apply(mapping, **{"E-mail": "a@b.com", "T": ", "})


def test_map_compares_without_case_or_accents_and_defaults(tmp_path: Path) -> None:
    mapping = load(
        tmp_path,
        """
        conversion_identifier: c
        fields:
          email: E-mail
          cf_plano: {column: Plano, map: {Básico: basico, Avançado: avancado}, default: outro}
          cf_sem_default: {column: Plano, map: {Básico: basico}, on_invalid: drop}
        """,
    )

    def plano(value: str) -> tuple[object, object]:
        payload = apply(mapping, **{"E-mail": "a@b.com", "Plano": value})
        return payload.get("cf_plano"), payload.get("cf_sem_default")

    assert plano("básico") == ("basico", "basico")
    assert plano("BASICO") == ("basico", "basico")
    assert plano(" Avançado ") == ("avancado", None)
    assert plano("Premium") == ("outro", None)
    assert plano("") == ("outro", None)


def test_map_can_name_the_empty_cell_apart_from_the_default(tmp_path: Path) -> None:
    mapping = load(
        tmp_path,
        """
        conversion_identifier: c
        fields:
          email: E-mail
          cf_plano: {column: Plano, map: {"": sem_plano, Pro: pro}, default: outro}
          cf_strict: {column: Plano, map: {"": sem_plano, Pro: pro}, on_invalid: drop}
          cf_cep: {column: [CEP, Zip], transform: digits, map: {"": sem_cep, "123": centro}}
        legal_bases:
          - type: consent
            status: {column: Aceita, transform: bool, map: {"": declined, "true": granted}}
        """,
    )

    def payload(**cells: str) -> dict[str, Any]:
        return apply(mapping, **{"E-mail": "a@b.com", "Plano": "", "CEP": "", "Zip": ""} | cells)

    empty = payload(Aceita="")
    assert (empty["cf_plano"], empty["cf_strict"], empty["cf_cep"]) == (
        "sem_plano",
        "sem_plano",
        "sem_cep",
    )
    assert empty["legal_bases"][0]["status"] == "declined"
    assert payload(Aceita="Sim")["legal_bases"][0]["status"] == "granted"
    assert payload(Plano="PRO", Zip="1-2-3", Aceita="")["cf_plano"] == "pro"
    premium = payload(Plano="Premium", Aceita="")
    assert (premium["cf_plano"], "cf_strict" in premium) == ("outro", False)  # default: the rest
    assert payload(CEP="sem número", Aceita="")["cf_cep"] == "sem_cep"  # digits left nothing
    strict = load(tmp_path, BASIC + '  cf_p: {column: P, map: {"": none, Pro: pro}}\n')
    assert apply(strict, **{"E-mail": "a@b.com", "P": " "})["cf_p"] == "none"
    error = row_error(strict, **{"E-mail": "a@b.com", "P": "Premium"})
    assert error.message == """cf_p (column 'P'): 'Premium' is not in the map ("", Pro)"""


def test_pad_after_digits_restores_a_cep_excel_saved_as_a_number(tmp_path: Path) -> None:
    mapping = load(
        tmp_path,
        BASIC
        + "  cf_cep: {column: CEP, transform: digits, pad: 8}\n"
        + "  cf_cod: {column: Cod, pad: 4, map: {'0007': sete}, on_invalid: keep}\n",
    )

    def cep(value: str, cod: str = "") -> dict[str, Any]:
        return apply(mapping, **{"E-mail": "a@b.com", "CEP": value, "Cod": cod})

    assert cep("1310100")["cf_cep"] == "01310100"
    assert cep("1310100.0")["cf_cep"] == "01310100"  # an Excel number cell
    assert cep("01310-100")["cf_cep"] == "01310100"
    assert "cf_cep" not in cep("")
    assert cep("", "7")["cf_cod"] == "sete"  # padded before the map
    assert cep("", "7-A")["cf_cod"] == "7-A"  # refused, kept as written (on_invalid: keep)
    strict = load(tmp_path, BASIC + "  cf_cod: {column: Cod, pad: 4}\n")
    error = row_error(strict, **{"E-mail": "a@b.com", "Cod": "7-A"})
    assert error.message == (
        "cf_cod (column 'Cod'): '7-A' is not only digits, so cannot be padded to 4 "
        "(add transform: digits first)"
    )


def test_map_without_default_fails_the_row_on_an_unknown_value(tmp_path: Path) -> None:
    mapping = load(
        tmp_path,
        "conversion_identifier: c\nfields:\n  email: E-mail\n"
        "  cf_plano: {column: Plano, map: {Pro: pro, Básico: basico}}\n",
    )
    error = row_error(mapping, **{"E-mail": "a@b.com", "Plano": "Premium"})
    assert (error.stage, error.message) == (
        "mapping",
        "cf_plano (column 'Plano'): 'Premium' is not in the map (Pro, Básico)",
    )


def test_bool_then_map(tmp_path: Path) -> None:
    mapping = load(
        tmp_path,
        """
        conversion_identifier: c
        fields:
          email: E-mail
          cf_consentimento: {column: Aceita, transform: bool, map: {true: aceitou, false: recusou}}
        """,
    )
    assert apply(mapping, **{"E-mail": "a@b.com", "Aceita": "NÃO"})["cf_consentimento"] == "recusou"
    assert apply(mapping, **{"E-mail": "a@b.com", "Aceita": "x"})["cf_consentimento"] == "aceitou"


def test_default_and_required(tmp_path: Path) -> None:
    mapping = load(
        tmp_path,
        """
        conversion_identifier: c
        fields:
          email: E-mail
          country: {column: País, default: Brasil}
          cf_cpf: {column: CPF, transform: digits, required: true}
        """,
    )
    payload = apply(mapping, **{"E-mail": "a@b.com", "País": "", "CPF": "123.456.789-09"})
    assert (payload["country"], payload["cf_cpf"]) == ("Brasil", "12345678909")
    error = row_error(mapping, **{"E-mail": "a@b.com", "País": "", "CPF": " "})
    assert (error.stage, error.message) == (
        "mapping",
        "cf_cpf (column 'CPF') is empty, and the mapping requires it",
    )
    error = row_error(mapping, **{"E-mail": "a@b.com", "País": "", "CPF": "n/d"})
    assert error.message == "cf_cpf (column 'CPF') is empty, and the mapping requires it"


@pytest.mark.parametrize(
    ("on_invalid", "expected"),
    [("drop", None), ("keep", "1234")],
)
def test_on_invalid(tmp_path: Path, on_invalid: str, expected: str | None) -> None:
    mapping = load(
        tmp_path,
        "conversion_identifier: c\nfields:\n  email: E-mail\n"
        f"  mobile_phone: {{column: Celular, transform: phone_br, on_invalid: {on_invalid}}}\n",
    )
    assert apply(mapping, **{"E-mail": "a@b.com", "Celular": "1234"}).get("mobile_phone") == (
        expected
    )


@pytest.mark.parametrize(
    ("field", "cell", "message"),
    [
        (
            "mobile_phone: {column: Celular, transform: phone_br}",
            "1234",
            "mobile_phone (column 'Celular'): '1234' is not a phone number",
        ),
        (
            "cf_data: {column: Data, transform: date}",
            "03/15/2026",
            "cf_data (column 'Data'): '03/15/2026' is not a date in the form dd/mm/yyyy: "
            "there is no month 15",
        ),
        (
            "cf_data: {column: Data, transform: date, format: yyyy-mm-dd}",
            "15/03/2026",
            "cf_data (column 'Data'): '15/03/2026' is not a date in the form yyyy-mm-dd",
        ),
        (
            "available_for_mailing: {column: Aceita, transform: bool}",
            "talvez",
            "available_for_mailing (column 'Aceita'): 'talvez' is not yes or no "
            "(sim, não, true, false, 1, 0, x)",
        ),
        (
            "name: {template: '{Nome} {Sobrenome}', transform: [title, bool]}",
            "ana",
            "name (template '{Nome} {Sobrenome}'): 'ana' is not yes or no "
            "(sim, não, true, false, 1, 0, x)",
        ),
    ],
)
def test_transform_failures_name_field_and_column(
    tmp_path: Path, field: str, cell: str, message: str
) -> None:
    if "title, bool" in field:
        # bool ends the chain with true/false, which a text field cannot take: use cf_ instead
        field = field.replace("name:", "cf_nome:")
        message = message.replace("name (", "cf_nome (")
    mapping = load(tmp_path, f"conversion_identifier: c\nfields:\n  email: E-mail\n  {field}\n")
    cells = {
        "E-mail": "a@b.com",
        "Celular": cell,
        "Data": cell,
        "Aceita": cell,
        "Nome": cell,
        "Sobrenome": "",
    }
    error = row_error(mapping, **cells)
    assert (error.stage, error.message) == ("mapping", message)


def test_email_is_validated(tmp_path: Path) -> None:
    mapping = load(tmp_path, BASIC)
    assert apply(mapping, **{"E-mail": " JOAO@Exemplo.COM.br"})["email"] == "joao@exemplo.com.br"
    error = row_error(mapping, **{"E-mail": "joao silva@exemplo.com.br"})
    assert error.stage == "validation"
    assert error.message.startswith(
        "email (column 'E-mail'): 'joao silva@exemplo.com.br' is not a valid email address: "
    )


def test_a_row_without_email_fails_naming_the_column(tmp_path: Path) -> None:
    mapping = load(tmp_path, BASIC + "  name: Nome\n")
    error = row_error(mapping, **{"E-mail": " ", "Nome": "Ana"})
    assert (error.stage, error.message) == (
        "validation",
        "email (column 'E-mail') is empty: every conversion needs an email address",
    )


def test_a_blank_row_says_so(tmp_path: Path) -> None:
    mapping = load(tmp_path, BASIC + "  name: Nome\n  cf_x: {value: 1}\n")
    error = row_error(mapping, **{"E-mail": "", "Nome": "  ", "Outra": "lixo"})
    assert (error.stage, error.message) == (
        "mapping",
        "the row has none of the mapped columns filled (a blank or leftover row)",
    )


def test_a_default_is_checked_like_a_cell(tmp_path: Path) -> None:
    mapping = load(
        tmp_path, "conversion_identifier: c\nfields:\n  email: {column: E, default: X@Y.com}\n"
    )
    assert apply(mapping, E="")["email"] == "x@y.com"


def test_social_handles_are_checked_per_row(tmp_path: Path) -> None:
    mapping = load(tmp_path, BASIC + "  linkedin: LinkedIn\n")
    assert apply(mapping, **{"E-mail": "a@b.com", "LinkedIn": "ana-souza"})["linkedin"] == (
        "ana-souza"
    )
    error = row_error(mapping, **{"E-mail": "a@b.com", "LinkedIn": "linkedin.com/in/ana"})
    assert (error.stage, error.message) == (
        "validation",
        "linkedin (column 'LinkedIn'): 'linkedin.com/in/ana' may hold only letters, digits, "
        "'.', '-' and '_' (the handle, not a URL: add transform: handle)",
    )
    fixed = load(tmp_path, BASIC + "  linkedin: {column: LinkedIn, transform: handle}\n")
    assert apply(fixed, **{"E-mail": "a@b.com", "LinkedIn": "linkedin.com/in/ana"})["linkedin"] == (
        "ana"
    )


def test_legal_bases_per_row(tmp_path: Path) -> None:
    mapping = load(
        tmp_path,
        """
        conversion_identifier: c
        fields:
          email: E-mail
        legal_bases:
          - {type: legitimate_interest, status: granted}
          - type: consent
            status: {column: "Aceita comunicação?", map: {Sim: granted, S: granted, Não: declined}}
          - type: {column: Base, optional: true}
            status: {column: "Aceita comunicação?", transform: bool}
        """,
    )
    file = mapping.bind(["E-mail", "Aceita comunicação?"])
    cells = {"E-mail": "a@b.com", "Aceita comunicação?": "nao"}
    assert apply(file, **cells)["legal_bases"] == [
        {"category": "communications", "type": "legitimate_interest", "status": "granted"},
        {"category": "communications", "type": "consent", "status": "declined"},
    ]
    cells["Aceita comunicação?"] = ""
    assert apply(file, **cells)["legal_bases"] == [
        {"category": "communications", "type": "legitimate_interest", "status": "granted"},
    ]
    cells["Aceita comunicação?"] = "talvez"
    error = row_error(file, **cells)
    assert error.message == (
        "legal_bases[1].status (column 'Aceita comunicação?'): 'talvez' is not in the map "
        "(Sim, S, Não)"
    )


def test_legal_basis_status_from_an_unmapped_column_is_checked(tmp_path: Path) -> None:
    mapping = load(
        tmp_path,
        BASIC + "legal_bases:\n  - {type: consent, status: {column: Status}}\n",
    )
    assert apply(mapping, **{"E-mail": "a@b.com", "Status": "granted"})["legal_bases"] == [
        {"category": "communications", "type": "consent", "status": "granted"}
    ]
    error = row_error(mapping, **{"E-mail": "a@b.com", "Status": "sim"})
    assert (error.stage, error.message) == (
        "validation",
        "legal_bases[0].status (column 'Status'): 'sim' is not a legal basis status "
        "(granted, declined); add a map:",
    )


# ---------------------------------------------------------------------------------------------
# What a row's mapping lets pass reaches the run's warnings


def heard(mapping: Mapping | BoundMapping, **cells: str) -> tuple[dict[str, Any], list[Any]]:
    """The row's payload, and the (kind, message) warnings its mapping gave."""
    notes: list[tuple[str, str]] = []
    payload = bound(mapping).apply(Row(2, cells), lambda kind, text: notes.append((kind, text)))
    return payload, notes


PHONE_DROP = (
    "conversion_identifier: c\nfields:\n  email: E-mail\n"
    "  mobile_phone: {column: Celular, transform: phone_br, on_invalid: drop}\n"
)


def test_a_phone_left_out_is_a_warning_that_quotes_no_cell(tmp_path: Path) -> None:
    mapping = bound(load(tmp_path, PHONE_DROP))
    payload, notes = heard(mapping, **{"E-mail": "a@b.com", "Celular": "não tem"})
    assert "mobile_phone" not in payload
    assert notes == [
        (
            "dropped:mobile_phone",
            "mobile_phone: a phone in column 'Celular' that phone_br cannot read was left out "
            "(on_invalid: drop)",
        )
    ]
    # a phone that reads, an empty cell: nothing to say
    assert heard(mapping, **{"E-mail": "a@b.com", "Celular": "(11) 98765-4321"})[1] == []
    assert heard(mapping, **{"E-mail": "a@b.com", "Celular": ""})[1] == []
    # a row that fails says only why it failed; the next row starts clean
    with pytest.raises(RowError):
        mapping.apply(Row(3, {"E-mail": "nobody", "Celular": "não tem"}), lambda k, t: None)
    assert heard(mapping, **{"E-mail": "a@b.com", "Celular": "(11) 98765-4321"})[1] == []


@pytest.mark.parametrize(
    ("entry", "cell", "message"),
    [
        (
            "cf_c: {column: C, map: {Pro: pro}, on_invalid: drop}",
            "Premium",
            "cf_c: a value in column 'C' that is not in the map was left out (on_invalid: drop)",
        ),
        (
            "cf_c: {column: C, transform: date, on_invalid: drop}",
            "31/02/1985",
            "cf_c: a date in column 'C' that date cannot read was left out (on_invalid: drop)",
        ),
        (
            "cf_c: {column: [C, D], transform: [strip, digits], pad: 3, on_invalid: drop}",
            "1,19877E+10",
            "cf_c: a number in column 'C' or 'D' that digits cannot read was left out "
            "(on_invalid: drop)",
        ),
        (
            "cf_c: {column: C, pad: 8, on_invalid: drop}",
            "0131-0100",
            "cf_c: a value in column 'C' that is not only digits (pad:) was left out "
            "(on_invalid: drop)",
        ),
    ],
)
def test_every_value_drop_leaves_out_is_a_warning(
    tmp_path: Path, entry: str, cell: str, message: str
) -> None:
    mapping = load(tmp_path, f"conversion_identifier: c\nfields:\n  email: E-mail\n  {entry}\n")
    payload, notes = heard(mapping, **{"E-mail": "a@b.com", "C": cell, "D": ""})
    assert "cf_c" not in payload
    assert notes == [("dropped:cf_c", message)]


def test_keep_fail_and_a_map_to_null_say_nothing(tmp_path: Path) -> None:
    mapping = load(
        tmp_path,
        """
        conversion_identifier: c
        fields:
          email: E-mail
          mobile_phone: {column: Celular, transform: phone_br, on_invalid: keep}
          available_for_mailing: {column: Sair, transform: bool, map: {true: false, false: null}}
        """,
    )
    payload, notes = heard(mapping, **{"E-mail": "a@b.com", "Celular": "1234", "Sair": "não"})
    assert payload == {"conversion_identifier": "c", "email": "a@b.com", "mobile_phone": "1234"}
    assert notes == []
    payload, _ = heard(mapping, **{"E-mail": "a@b.com", "Celular": "", "Sair": "sim"})
    assert payload["available_for_mailing"] is False


def test_a_map_to_null_leaves_a_legal_basis_out(tmp_path: Path) -> None:
    mapping = load(
        tmp_path,
        """
        conversion_identifier: c
        fields:
          email: E-mail
        legal_bases:
          - type: consent
            status: {column: Opt Out, map: {"1": declined, "0": null}}
        """,
    )
    assert apply(mapping, **{"E-mail": "a@b.com", "Opt Out": "1"})["legal_bases"] == [
        {"category": "communications", "type": "consent", "status": "declined"}
    ]
    assert "legal_bases" not in apply(mapping, **{"E-mail": "a@b.com", "Opt Out": "0"})


DATE_ENTRY = BASIC + "  cf_d: {column: D, transform: date"


@pytest.mark.parametrize("cell", ["1990", "2026", "1", "46096"])
def test_a_bare_number_is_not_read_as_a_date_unless_the_mapping_says_so(
    tmp_path: Path, cell: str
) -> None:
    mapping = load(tmp_path, DATE_ENTRY + "}\n")
    error = row_error(mapping, **{"E-mail": "a@b.com", "D": cell})
    assert error.message == (
        f"cf_d (column 'D'): '{cell}' is a number, not a date in the form dd/mm/yyyy (if the "
        "column holds Excel date serials, add excel_serial: true to its entry)"
    )


def test_excel_serial_reads_numbers_as_dates_with_a_warning(tmp_path: Path) -> None:
    mapping = load(tmp_path, DATE_ENTRY + ", excel_serial: true}\n")
    payload, notes = heard(mapping, **{"E-mail": "a@b.com", "D": "46096"})
    assert payload["cf_d"] == "2026-03-15"
    assert notes == [
        (
            "excel_serial:cf_d",
            "cf_d: numbers in column 'D' were read as Excel date serials (excel_serial: true): "
            "check a few of these rows against the file",
        )
    ]
    payload, notes = heard(mapping, **{"E-mail": "a@b.com", "D": "15/03/2026"})
    assert (payload["cf_d"], notes) == ("2026-03-15", [])


def test_an_impossible_date_says_it_does_not_exist(tmp_path: Path) -> None:
    mapping = load(tmp_path, DATE_ENTRY + "}\n")
    error = row_error(mapping, **{"E-mail": "a@b.com", "D": "31/02/1985"})
    assert error.message == "cf_d (column 'D'): '31/02/1985' is not a date: February has no day 31"


def test_excel_serial_needs_the_date_transform(tmp_path: Path) -> None:
    message = problems(tmp_path, BASIC + "  cf_d: {column: D, excel_serial: true}\n")
    assert message == "mapping.yaml: line 4: excel_serial: applies to transform: date only"


def test_workbook_date_cells_reach_the_date_transform_as_dates(tmp_path: Path) -> None:
    import datetime as dt

    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["E-mail", "D"])
    sheet.append(["a@b.com", dt.date(2026, 3, 15)])
    sheet.append(["b@b.com", dt.datetime(1985, 2, 28, 10, 30)])
    sheet.append(["c@b.com", "15/03/2026"])
    sheet.append(["d@b.com", 46096])  # a number, not a date cell: refused
    path = tmp_path / "datas.xlsx"
    book.save(path)
    bound_mapping = load(tmp_path, DATE_ENTRY + "}\n").bind(["E-mail", "D"])
    with open_table(path) as table:
        rows = list(table.rows())
    assert [bound_mapping.apply(row)["cf_d"] for row in rows[:3]] == [
        "2026-03-15",
        "1985-02-28",
        "2026-03-15",
    ]
    with pytest.raises(RowError, match="is a number, not a date"):
        bound_mapping.apply(rows[3])


def test_a_dry_run_keeps_each_kind_of_mapping_warning_once_with_its_rows(tmp_path: Path) -> None:
    from helpers import read_summary, write_csv
    from importer.pipeline import ImportConfig, Tuning, run_import

    data = write_csv(
        tmp_path / "leads.csv",
        ["E-mail", "Celular", "D"],
        [
            ["a@b.com", "não tem", "46096"],
            ["b@b.com", "(11) 98765-4321", "15/03/2026"],
            ["c@b.com", "ligar depois", "46097"],
            ["d@b.com", "1234", ""],
        ],
    )
    mapping = write(
        tmp_path,
        PHONE_DROP + "  cf_d: {column: D, transform: date, excel_serial: true}\n",
    )
    report = run_import(
        ImportConfig(
            input_path=data,
            mapping_path=mapping,
            out_dir=tmp_path / "out",
            dry_run=True,
            tuning=Tuning(retry_wait=False),
        )
    )
    assert (report.succeeded, report.failed) == (4, 0)
    notes = {note["message"]: note for note in read_summary(tmp_path / "out")["warnings"]}
    phone = notes[
        "mobile_phone: a phone in column 'Celular' that phone_br cannot read was left out "
        "(on_invalid: drop)"
    ]
    assert (phone["count"], phone["rows"]) == (3, [2, 4, 5])
    serial = next(note for text, note in notes.items() if text.startswith("cf_d: numbers"))
    assert (serial["count"], serial["rows"]) == (2, [2, 4])
    assert "não tem" not in str(notes) and "ligar" not in str(notes)


# ---------------------------------------------------------------------------------------------
# Columns the file lacks


COLUMNS_MAPPING = """
    conversion_identifier: c
    fields:
      email: E-mail
      mobile_phone: {column: Celular, transform: phone_br}
      name: {template: "{Nome} {Sobrenome}"}
      personal_phone: {column: WhatsApp, optional: true}
      company_name: {column: [Empresa, Organização]}
      job_title: {column: [Cargo, Função]}
    legal_bases:
      - {type: consent, status: {column: "Aceita comunicação?", transform: bool}}
"""


def test_columns_lists_every_column_read(tmp_path: Path) -> None:
    mapping = load(tmp_path, COLUMNS_MAPPING)
    assert mapping.columns == [
        "E-mail",
        "Celular",
        "Nome",
        "Sobrenome",
        "WhatsApp",
        "Empresa",
        "Organização",
        "Cargo",
        "Função",
        "Aceita comunicação?",
    ]


def test_bind_lists_every_missing_column_with_suggestions(tmp_path: Path) -> None:
    mapping = load(tmp_path, COLUMNS_MAPPING)
    headers = ["email", "Celulares", "Nome", "Organização", "Aceita-Comunicacao?"]
    with pytest.raises(InputError) as caught:
        mapping.bind(headers, "leads.csv")
    assert str(caught.value) == (
        "mapping.yaml: 6 problems:\n"
        "  line 3: column 'E-mail' is not in leads.csv (did you mean 'email'?)\n"
        "  line 4: column 'Celular' is not in leads.csv (did you mean 'Celulares'?)\n"
        "  line 5: column 'Sobrenome' is not in leads.csv\n"
        "  line 8: column 'Cargo' is not in leads.csv\n"
        "  line 8: column 'Função' is not in leads.csv\n"
        "  line 10: column 'Aceita comunicação?' is not in leads.csv "
        "(did you mean 'Aceita-Comunicacao?'?)"
    )


def test_bind_warns_of_optional_columns_and_prunes(tmp_path: Path) -> None:
    mapping = load(tmp_path, COLUMNS_MAPPING)
    headers = [
        "E-mail",
        "Celular",
        "Nome",
        "Sobrenome",
        "Organização",
        "Função",
        "Aceita comunicação?",
    ]
    file = mapping.bind(headers, "leads.csv")
    assert file.warnings == [
        "line 6: column 'WhatsApp' is not in leads.csv; personal_phone is left out"
    ]
    cells = dict.fromkeys(headers, "")
    cells.update({"E-mail": "a@b.com", "Organização": "ACME", "Função": "CEO"})
    assert apply(file, **cells) == {
        "conversion_identifier": "c",
        "email": "a@b.com",
        "company_name": "ACME",
        "job_title": "CEO",
    }


def test_bind_optional_email_must_still_exist(tmp_path: Path) -> None:
    mapping = load(
        tmp_path, "conversion_identifier: c\nfields:\n  email: {column: E, optional: true}\n"
    )
    with pytest.raises(InputError) as caught:
        mapping.bind(["Nome"])
    assert str(caught.value) == (
        "mapping.yaml: line 3: column 'E' is not in the file, and every conversion needs an email"
    )


def test_bind_warns_of_a_likely_typo_among_candidates(tmp_path: Path) -> None:
    mapping = load(
        tmp_path, "conversion_identifier: c\nfields:\n  email: {column: [E-mail, Email2]}\n"
    )
    assert mapping.bind(["E-mail", "email_2"], "x.csv").warnings == [
        "line 3: column 'Email2' is not in x.csv (did you mean 'email_2'?)"
    ]


def test_bind_suggests_no_other_candidate_of_the_same_entry(tmp_path: Path) -> None:
    mapping = load(
        tmp_path,
        "conversion_identifier: c\nfields:\n  email: {column: [Email, E-mail2]}\n"
        "  tags: {column: [Labels, Label], split: ',', optional: true}\n"
        "  name: {column: [Nome, Nomes], optional: true}\n",
    )
    # "Label" is no typo of "Labels": both are read; "Nomes" still has a better header to offer
    assert mapping.bind(["Email", "Labels", "Nome", "NOME-S"], "x.csv").warnings == [
        "line 5: column 'Nomes' is not in x.csv (did you mean 'NOME-S'?)"
    ]
    assert mapping.bind(["Email", "Label", "Nome-"], "x.csv").warnings == [
        "line 5: none of the columns 'Nome', 'Nomes' is in x.csv (did you mean 'Nome-' for "
        "'Nome'?) (did you mean 'Nome-' for 'Nomes'?); name is left out",
    ]


@pytest.mark.parametrize(
    "sample", sorted(p.name for p in (ROOT / "tests/data/presets").glob("pipedrive_*"))
)
def test_pipedrive_preset_warns_of_no_typo_among_its_candidates(sample: str) -> None:
    mapping = load_mapping(ROOT / "mappings" / "pipedrive.yaml")
    with open_table(ROOT / "tests/data/presets" / sample) as table:
        warnings = mapping.bind(table.headers, sample).warnings
    assert not [w for w in warnings if "did you mean" in w], warnings


# ---------------------------------------------------------------------------------------------
# Headers forgiven where it is safe, diagnosed where not

FORGIVING = """
    conversion_identifier: {column: Origem}
    fields:
      email: E-mail
      name: {template: "{Nome} {Sobrenome}"}
      mobile_phone: {column: [Celular, WhatsApp], transform: phone_br}
    legal_bases:
      - {type: consent, status: {column: "Aceita comunicação?", transform: bool}}
    key: ID
"""
FORGIVING_HEADERS = [
    "ID",
    "origem",
    "nome",
    "sobrenome",
    "E-MAIL",
    "whatsapp",
    "Aceita Comunicacao?",
]


def test_a_header_differing_in_case_accents_or_spaces_is_read_with_a_warning(
    tmp_path: Path,
) -> None:
    mapping = load(tmp_path, FORGIVING)
    headers = FORGIVING_HEADERS
    file = mapping.bind(headers, "leads.csv")
    assert file.warnings == [
        f"line {line}: column '{column}' is read from '{header}' of leads.csv, which differs "
        "only in case, accents or spaces: write it as the file does to silence this"
        for line, column, header in [
            (1, "Origem", "origem"),
            (3, "E-mail", "E-MAIL"),
            (4, "Nome", "nome"),
            (4, "Sobrenome", "sobrenome"),
            (5, "WhatsApp", "whatsapp"),
            (7, "Aceita comunicação?", "Aceita Comunicacao?"),
        ]
    ]
    cells = ["7", "feira", "ana", "souza", "Ana@X.com", "(11) 98765-4321", "sim"]
    assert file.apply(Row(2, dict(zip(headers, cells, strict=True)))) == {
        "conversion_identifier": "feira",
        "email": "ana@x.com",
        "name": "ana souza",
        "mobile_phone": "+5511987654321",
        "legal_bases": [{"category": "communications", "type": "consent", "status": "granted"}],
    }
    assert file.key == ["ID"]
    # the key, which decides which rows count as sent before, is named exactly
    with pytest.raises(InputError, match=r"key column 'ID' is not in leads.csv"):
        mapping.bind(["id", *FORGIVING_HEADERS[1:]], "leads.csv")


def test_two_headers_a_column_could_be_are_not_guessed_between(tmp_path: Path) -> None:
    mapping = load(tmp_path, BASIC + "  name: Nome\n")
    with pytest.raises(InputError) as caught:
        mapping.bind(["E-mail", "NOME", "nome "], "x.csv")
    assert str(caught.value) == (
        "mapping.yaml: line 4: column 'Nome' is not in x.csv (did you mean 'NOME'?)"
    )


def test_a_lower_case_file_imports_with_the_mapping_of_its_capitalised_twin(
    tmp_path: Path,
) -> None:
    from helpers import read_summary
    from importer.pipeline import ImportConfig, Tuning, run_import

    data = tmp_path / "leads.csv"
    data.write_text("nome;sobrenome;e-mail\nAna;Souza;ana@x.com\n", encoding="utf-8")
    mapping = write(
        tmp_path, BASIC.replace("E-mail", "E-Mail") + '  name: {template: "{Nome} {Sobrenome}"}\n'
    )
    report = run_import(
        ImportConfig(
            input_path=data,
            mapping_path=mapping,
            out_dir=tmp_path / "out",
            dry_run=True,
            tuning=Tuning(retry_wait=False),
        )
    )
    assert (report.succeeded, report.failed) == (1, 0)
    messages = [note["message"] for note in read_summary(tmp_path / "out")["warnings"]]
    assert sum("differs only in case, accents or spaces" in m for m in messages) == 3


def _none_found(tmp_path: Path, text: str, **options: Any) -> str:
    from importer.pipeline import ImportConfig, Tuning, run_import

    data = tmp_path / "leads.csv"
    data.write_text(text, encoding="utf-8")
    mapping = write(tmp_path, BASIC + '  name: Nome\n  mobile_phone: {column: "Celular"}\n')
    with pytest.raises(InputError) as caught:
        run_import(
            ImportConfig(
                input_path=data,
                mapping_path=mapping,
                out_dir=tmp_path / "out",
                dry_run=True,
                tuning=Tuning(retry_wait=False),
                **options,
            )
        )
    return str(caught.value)


def test_a_header_on_a_later_row_is_pointed_at(tmp_path: Path) -> None:
    text = "Relatório de leads - março;;\n;;\nNome;E-mail;Celular\nAna;ana@x.com;11987654321\n"
    assert _none_found(tmp_path, text) == (
        "none of the columns mapping.yaml reads is in the header of leads.csv "
        "(row 1: 'Relatório de leads - março'); row 3 holds them: use header_row 3"
    )


def test_a_header_row_past_the_header_is_pointed_back(tmp_path: Path) -> None:
    text = "nome;e-mail;celular\nAna;ana@x.com;11987654321\nBia;bia@x.com;11987654322\n"
    message = _none_found(tmp_path, text, header_row=2)
    assert message.endswith(
        "(row 2: 'Ana', 'ana@x.com', '11987654321'); row 1 holds them: use header_row 1"
    )


def test_a_header_read_as_one_cell_names_the_delimiter(tmp_path: Path) -> None:
    text = "Nome;E-mail;Celular\nAna;ana@x.com;11987654321\n"
    assert _none_found(tmp_path, text, delimiter=",") == (
        "none of the columns mapping.yaml reads is in the header of leads.csv, which was read "
        "as one cell holding them all ('Nome;E-mail;Celular'): the file is ';'-separated: "
        "use delimiter ';'"
    )


def test_a_header_with_nothing_of_the_mapping_is_shown(tmp_path: Path) -> None:
    text = "A;B;C;D;E;F;G;H;I\n1;2;3;4;5;6;7;8;9\n"
    assert _none_found(tmp_path, text) == (
        "none of the columns mapping.yaml reads is in the header of leads.csv (row 1: 'A', "
        "'B', 'C', 'D', 'E', 'F', 'G', 'H', ...): check that the mapping is meant for this "
        "file, or use header_row N if row N holds the column names"
    )


@pytest.mark.parametrize(
    ("text", "args", "flag"),
    [
        ("Leads;;\nNome;E-mail;Celular\nAna;ana@x.com;1\n", [], "use --header-row 2"),
        ("Nome;E-mail;Celular\nAna;ana@x.com;1\n", ["--delimiter", ","], "use --delimiter ';'"),
    ],
)
def test_the_cli_names_the_settings_as_flags(
    tmp_path: Path, text: str, args: list[str], flag: str
) -> None:
    from click.testing import CliRunner

    from importer.cli import cli

    data = tmp_path / "leads.csv"
    data.write_text(text, encoding="utf-8")
    mapping = write(tmp_path, BASIC + '  name: Nome\n  mobile_phone: {column: "Celular"}\n')
    result = CliRunner().invoke(cli, ["validate", str(data), "--mapping", str(mapping), *args])
    assert result.exit_code == 2
    assert result.stderr.startswith("Error: none of the columns mapping.yaml reads")
    assert result.stderr.rstrip().endswith(flag)


# ---------------------------------------------------------------------------------------------
# Properties

# YAML folds line breaks (NEL and friends) inside plain scalars: keep them out of the texts
_CHARS = st.characters(codec="utf-8", exclude_categories=["Cs", "Cc", "Zl", "Zp"])
_HEADER = st.text(
    alphabet=st.characters(
        codec="utf-8", exclude_characters="{}", exclude_categories=["Cs", "Cc", "Zl", "Zp"]
    ),
    min_size=1,
    max_size=12,
).filter(lambda h: h.strip() == h and h.strip() and not h.startswith(("#", "&", "*", "!")))


def _placeholder_ok(header: str) -> bool:
    try:
        parse_template("{" + header + "}")
    except ValueError:
        return False
    return True


_PLACEHOLDER = _HEADER.filter(_placeholder_ok)
_TEXT_FIELDS = ["name", "job_title", "city", "state", "company_name", "website", "country"]
_CELL_ENTRY = st.fixed_dictionaries(
    {"column": _HEADER},
    optional={
        "transform": st.sampled_from(["lower", "upper", "title", "digits", "phone_br", "date"])
        | st.lists(st.sampled_from(["strip", "lower", "upper"]), min_size=1, max_size=3),
        "default": st.text(_CHARS, max_size=5),
        "on_invalid": st.sampled_from(["fail", "drop", "keep"]),
        "optional": st.booleans(),
        "pad": st.integers(1, 50),
        "map": st.dictionaries(
            st.sampled_from(["a", "b", "Sim", "Não", "x1"]), st.text(_CHARS, max_size=4), min_size=1
        ),
    },
)
_ENTRY = (
    _HEADER
    | _CELL_ENTRY
    | st.builds(lambda a, b: {"template": f"{{{a}}} {{{b}}}"}, _PLACEHOLDER, _PLACEHOLDER)
    | st.builds(lambda v: {"value": v}, st.text(_CHARS, min_size=1, max_size=8).filter(str.strip))
)
_MAPPING = st.fixed_dictionaries(
    {
        "conversion_identifier": st.text(_CHARS, min_size=1, max_size=10).filter(str.strip)
        | st.builds(lambda c: {"column": c}, _HEADER),
        "fields": st.builds(
            lambda email, rest: {"email": email, **rest},
            _HEADER,
            st.dictionaries(st.sampled_from(_TEXT_FIELDS), _ENTRY, max_size=5),
        ),
    },
    optional={
        "legal_bases": st.lists(
            st.fixed_dictionaries(
                {
                    "type": st.sampled_from(["consent", "legitimate_interest"]),
                    "status": st.sampled_from(["granted", "declined"])
                    | st.builds(lambda c: {"column": c, "transform": "bool"}, _HEADER),
                }
            ),
            min_size=1,
            max_size=2,
        )
    },
)


def _without_bad_maps(document: dict[str, Any]) -> bool:
    # map keys that fold to the same text are a (tested) mapping error, not a valid mapping
    for entry in document["fields"].values():
        if isinstance(entry, dict) and "map" in entry:
            return len({k.casefold() for k in entry["map"]}) == len(entry["map"])
    return True


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(_MAPPING.filter(_without_bad_maps))
def test_a_valid_mapping_round_trips_through_its_schema_and_yaml(document: dict[str, Any]) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.validate(document, mapping_json_schema())
    path = _tmp_dir() / "mapping.yaml"
    path.write_text(yaml.safe_dump(document, allow_unicode=True), encoding="utf-8")
    mapping = load_mapping(path)
    dumped = mapping.spec.model_dump(mode="json", exclude_unset=True)
    assert dumped == document
    jsonschema.validate(dumped, mapping_json_schema())


_TMP: list[Path] = []


def _tmp_dir() -> Path:
    return _TMP[0]


@pytest.fixture(autouse=True)
def _hypothesis_tmp(tmp_path: Path) -> None:
    _TMP[:] = [tmp_path]


FULL = """
    conversion_identifier: {column: Origem, default: x}
    fields:
      email: E-mail
      name: {template: "{Nome} {Sobrenome}", transform: title}
      mobile_phone: {column: Celular, transform: phone_br}
      personal_phone: {column: Telefone, transform: phone_br, on_invalid: keep}
      linkedin: LinkedIn
      tags: {column: Tags, split: ",", transform: lower}
      available_for_mailing: {column: Aceita, transform: bool}
      cf_data: {column: Data, transform: date}
      cf_plano: {column: Plano, map: {Pro: pro}, default: outro}
      cf_cep: {column: CEP, transform: digits, required: true}
    legal_bases:
      - {type: consent, status: {column: Aceita, transform: bool}}
      - {type: consent, status: {column: Status}}
"""
_FULL_COLUMNS = [
    "Origem",
    "E-mail",
    "Nome",
    "Sobrenome",
    "Celular",
    "Telefone",
    "LinkedIn",
    "Tags",
    "Aceita",
    "Data",
    "Plano",
    "CEP",
    "Status",
]


@settings(max_examples=300, deadline=None)
@given(st.fixed_dictionaries({c: st.text(max_size=20) for c in _FULL_COLUMNS}))
def test_apply_raises_nothing_but_row_errors(cells: dict[str, str]) -> None:
    path = _tmp_dir() / "full.yaml"
    if not path.exists():
        path.write_text(textwrap.dedent(FULL), encoding="utf-8")
    mapping = load_mapping(path)
    try:
        payload = mapping.bind(_FULL_COLUMNS).apply(Row(2, cells))
    except RowError as exc:
        assert exc.stage in ("mapping", "validation")
        assert "\n" not in exc.message
        return
    assert payload["email"] == payload["email"].strip().lower()
    assert all(value not in ("", [], None) for value in payload.values())
    json.dumps(payload)


# ---------------------------------------------------------------------------------------------
# Every shortcut of the compiled mapping (constants and one-column fields filled inline, the
# one-column getters, the single-step converter, the map's memo) gives what the general getter
# gives, for any cell text

_POOL = ["A", "B", "Nome", "E-mail", "Aceita?"]
_TEXT_STEPS = [name for name, info in tf.TRANSFORMS.items() if info.output == "text"]
_MAP_KEYS = ["a", "Sim", "Não", "x1", "1310100", " "]
_SAMPLE_CELLS = [
    "",
    " ",
    "\t",
    "sim",
    " Não ",
    "true",
    "a",
    "x1",
    "a, ",
    " ,a",
    "a, b ,,c",
    "a;b| c",
    "(11) 98765-4321",
    "15/03/2026",
    "31/02/2026",
    "2026-03-15",
    "46096",
    "1990",
    "1310100",
    "a@b.com",
    " Ana@Exemplo.COM ",
    "linkedin.com/in/ana-s",
    "@ana",
    "josé DA silva",
    '"VIP"',
    "\u00a0a\u3000",
]
_PIECES = ["a", "Sim", "não", "1", " ", "\t", "\u00a0", ",", ", ", ";", "|", "@", "x.com", "/"]
_CELL = st.sampled_from(_SAMPLE_CELLS) | st.text(max_size=12)
# mostly a valid address: a row whose email fails shows nothing of its other fields
_EMAIL_CELL = st.integers(0, 4).flatmap(
    lambda n: st.sampled_from(["a@b.com", " Ana@Exemplo.COM ", "x@y.com.br"]) if n else _CELL
)
_COLUMNS = st.sampled_from(_POOL) | st.lists(
    st.sampled_from(_POOL), min_size=2, max_size=3, unique=True
)
_SHORT_TEXT = st.text(_CHARS, min_size=1, max_size=4)


@st.composite
def _column_entry(draw: st.DrawFn, kind: str) -> dict[str, Any]:
    """A valid column entry for a field of ``kind``: text, list, bool, or a legal status.

    A third are bare (one column: the shapes with a getter of their own), a third take one
    transform, a third any mix of the keys the mapping allows together.
    """
    shape = draw(st.sampled_from(["bare", "one step", "mixed"]))
    entry: dict[str, Any] = {
        "column": draw(st.sampled_from(_POOL) if shape != "mixed" else _COLUMNS)
    }
    if kind == "list":
        entry["split"] = draw(st.sampled_from([",", ";", "|", " ", ", ", " | "]))
    if shape == "bare":
        if kind == "bool":
            entry["transform"] = "bool"
        return entry
    if shape == "one step":
        if kind == "bool":
            entry["transform"] = "bool"
        else:
            entry["transform"] = draw(st.sampled_from(_TEXT_STEPS))
        if draw(st.booleans()):
            entry["on_invalid"] = draw(st.sampled_from(["fail", "drop"]))
        return entry
    return _mixed_entry(draw, kind, entry)


def _mixed_entry(draw: st.DrawFn, kind: str, entry: dict[str, Any]) -> dict[str, Any]:
    steps = draw(st.lists(st.sampled_from(_TEXT_STEPS), max_size=2))
    if kind in ("bool", "status") and draw(st.booleans()):
        steps.append("bool")
    if kind == "bool" and "bool" not in steps:
        steps.append("bool")  # the field takes true/false
    if steps:
        entry["transform"] = steps[0] if len(steps) == 1 and draw(st.booleans()) else steps
    if "date" in steps and draw(st.booleans()):
        entry["format"] = "yyyy-mm-dd"
    if "date" in steps and draw(st.booleans()):
        entry["excel_serial"] = True
    if "bool" not in steps and draw(st.booleans()):
        entry["pad"] = draw(st.integers(1, 9))
    if draw(st.booleans()):
        if "bool" in steps:
            keys = ["true", "false"]
        else:
            keys = sorted(draw(st.sets(st.sampled_from(_MAP_KEYS), min_size=1)))
        if kind == "list":  # no empty-cell key with split:
            keys = [key for key in keys if key.strip()]
        values = {"status": st.sampled_from(["granted", "declined"]), "bool": st.booleans()}
        if keys:  # null: the field left out for that value
            value = values.get(kind, _SHORT_TEXT) | st.none()
            entry["map"] = {key: draw(value) for key in keys}
    if kind == "status" and "bool" in steps and "map" not in entry:
        entry["map"] = {"true": "granted", "false": "declined"}  # a status from yes/no
    empty_key = any(not key.strip() for key in entry.get("map", {}))
    choice = draw(st.sampled_from(["none", "default", "required"]))
    if choice == "required" and not empty_key:
        entry["required"] = True
    elif choice == "default" and kind != "status":
        defaults = {"list": st.lists(_SHORT_TEXT, min_size=1, max_size=2), "bool": st.booleans()}
        entry["default"] = draw(defaults.get(kind, _SHORT_TEXT))
    if draw(st.booleans()):
        # a status or a yes/no kept as written would be text where a status or true/false goes
        keep = kind not in ("status", "bool")
        entry["on_invalid"] = draw(
            st.sampled_from(["fail", "drop", "keep"] if keep else ["fail", "drop"])
        )
    if draw(st.booleans()):
        entry["optional"] = True
    return entry


_OTHER_FIELDS = {
    "name": st.sampled_from(_POOL) | _column_entry("text"),
    "city": _column_entry("text")
    | st.builds(lambda a, b: {"template": f"{{{a}}} {{{b}}}"}, *[st.sampled_from(_POOL)] * 2),
    "job_title": st.sampled_from(_POOL) | st.just({"value": "CEO"}),
    "tags": _column_entry("list") | st.just({"value": ["a", "b"]}),
    "available_for_mailing": _column_entry("bool") | st.just({"value": True}),
    "linkedin": st.sampled_from(_POOL)
    | st.builds(
        lambda c, o: {"column": c, "transform": "handle", "on_invalid": o},
        _COLUMNS,
        st.sampled_from(["fail", "drop", "keep"]),
    ),
    "cf_a": _column_entry("text") | _column_entry("list") | _column_entry("bool"),
}


_EMAIL_ENTRY = st.sampled_from(["E-mail", {"column": ["E-mail", "A"]}]) | st.builds(
    lambda t: {"column": "E-mail", "transform": t}, st.sampled_from(["lower", ["strip", "unquote"]])
)
_IDENTIFIER_ENTRY = (
    st.sampled_from(["feira", " feira "])
    | st.builds(lambda c: {"column": c}, _COLUMNS)
    | st.builds(lambda c: {"column": c, "default": "x"}, _COLUMNS)
)


@st.composite
def _fast_path_mapping(draw: st.DrawFn) -> dict[str, Any]:
    """A mapping of an email and up to three other fields (more would fail most rows early)."""
    email = draw(_EMAIL_ENTRY)
    names = draw(st.lists(st.sampled_from(sorted(_OTHER_FIELDS)), max_size=3, unique=True))
    document: dict[str, Any] = {
        "conversion_identifier": draw(_IDENTIFIER_ENTRY),
        "fields": {"email": email, **{name: draw(_OTHER_FIELDS[name]) for name in names}},
    }
    if draw(st.booleans()):
        status = draw(st.just("granted") | _column_entry("status"))
        document["legal_bases"] = [{"type": "consent", "status": status}]
    return document


def _outcome(bound_mapping: BoundMapping, row: Row) -> tuple[Any, ...]:
    heard: list[tuple[str, str]] = []
    try:
        payload = bound_mapping.apply(row, lambda kind, message: heard.append((kind, message)))
    except RowError as exc:
        assert not heard  # a row that fails says only why
        return ("error", exc.stage, exc.message)
    # JSON tells true from 1 and a list from a tuple, where == would not
    return ("payload", json.dumps(payload, sort_keys=True, ensure_ascii=False), heard)


def _assert_paths_agree(
    document: dict[str, Any], rows: list[dict[str, str]], dropped: set[str]
) -> None:
    """Each row through the compiled mapping and through the general getters: one outcome."""
    path = _tmp_dir() / "fast.yaml"
    path.write_text(yaml.safe_dump(document, allow_unicode=True), encoding="utf-8")
    try:
        mapping = load_mapping(path)
    except InputError as exc:
        raise AssertionError(f"the strategy wrote an invalid mapping: {exc}") from None
    headers = [h for h in _POOL if h not in dropped]
    try:
        fast = mapping.bind(headers)
    except InputError:  # a column the mapping needs was dropped: the whole file, then
        headers = list(_POOL)
        fast = mapping.bind(headers)
    general = BoundMapping(compile_plan(mapping.spec, set(headers), fast=False), [])
    for number, cells in enumerate(rows, start=2):  # in order: the map's memo fills up
        row = Row(number, {h: cells[h] for h in headers})
        assert _outcome(fast, row) == _outcome(general, row)


def _cells(separator: str | None) -> st.SearchStrategy[dict[str, str]]:
    """A row: any text, the shapes the transforms read, and texts made of separators."""
    pieces = _PIECES if separator is None else [*_PIECES, *[separator] * 8]
    cell = st.lists(st.sampled_from(pieces), max_size=6).map("".join) | _CELL
    return st.fixed_dictionaries({h: _EMAIL_CELL if h == "E-mail" else cell for h in _POOL})


_ONE_FIELD = st.sampled_from(["text", "list", "bool", "status", "email", "linkedin", "identifier"])


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data(), _ONE_FIELD)
def test_each_shortcut_gives_what_the_general_getter_gives(data: st.DataObject, kind: str) -> None:
    # one entry at a time, so a row fails on nothing else
    document: dict[str, Any] = {"conversion_identifier": "c", "fields": {"email": "E-mail"}}
    entry: Any
    if kind in ("text", "list", "bool"):
        name = {"text": "name", "list": "tags", "bool": "available_for_mailing"}[kind]
        entries = _column_entry(kind)
        if kind == "text":
            entries |= st.sampled_from(_POOL)  # a bare header
        entry = data.draw(entries)
        document["fields"][data.draw(st.sampled_from([name, "cf_a"]))] = entry
    elif kind == "status":
        entry = data.draw(_column_entry("status"))
        document["legal_bases"] = [{"type": "consent", "status": entry}]
    elif kind == "identifier":
        entry = data.draw(_IDENTIFIER_ENTRY)
        document["conversion_identifier"] = entry
    else:
        entry = data.draw(_EMAIL_ENTRY if kind == "email" else _OTHER_FIELDS["linkedin"])
        document["fields"][kind] = entry
    separator = entry.get("split") if isinstance(entry, dict) else None
    rows = data.draw(st.lists(_cells(separator), min_size=1, max_size=4))
    _assert_paths_agree(document, rows, data.draw(st.sets(st.sampled_from(_POOL), max_size=2)))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    _fast_path_mapping(),
    st.lists(_cells(None), min_size=1, max_size=4),
    st.sets(st.sampled_from(_POOL), max_size=2),
)
def test_a_mapping_gives_what_its_general_getters_give(
    document: dict[str, Any], rows: list[dict[str, str]], dropped: set[str]
) -> None:
    # the fields together: inline constants and columns, the blank row, a missing email
    _assert_paths_agree(document, rows, dropped)
