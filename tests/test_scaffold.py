"""`mapping init`: the scaffold recognises columns and writes a mapping that runs as is."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import openpyxl
import pytest
import yaml

from helpers import API_KEY
from importer.errors import InputError, RowError
from importer.loader import open_table
from importer.mapping import load_mapping
from importer.payload import InvalidEmail, normalize_email
from importer.pipeline import ImportConfig, Tuning, run_import
from importer.records import Row
from importer.sandbox import SandboxThread
from importer.scaffold import (
    Consent,
    brazilian_phone_kind,
    header_key,
    header_row_of,
    recognise,
    recognise_header,
    render_mapping,
    scaffold_mapping,
    slug,
)

PRESET_DATA = Path(__file__).parent / "data" / "presets"


# -- header recognition -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "target"),
    [
        ("E-mail", "email"),
        ("EMAIL", "email"),
        ("Email Address", "email"),
        ("Endereço de e-mail", "email"),
        ("endereco de E-MAIL", "email"),
        (" Nome ", "name"),
        ("Full Name", "name"),
        ("Nome completo", "name"),
        ("First Name", "first_name"),
        ("Sobrenome", "last_name"),
        ("Last Name", "last_name"),
        ("Celular", "mobile_phone"),
        ("WhatsApp", "mobile_phone"),
        ("Mobile Phone Number", "mobile_phone"),
        ("Telefone", "personal_phone"),
        ("Phone Number", "personal_phone"),
        ("Empresa", "company_name"),
        ("Organization", "company_name"),
        ("Company / Account", "company_name"),
        ("Cargo", "job_title"),
        ("Job Title", "job_title"),
        ("Cidade", "city"),
        ("UF", "state"),
        ("State/Region", "state"),
        ("Estado", "state"),
        ("País", "country"),
        ("Pais", "country"),
        ("Country/Region", "country"),
        ("Site", "website"),
        ("Website URL", "website"),
        ("Etiquetas", "tags"),
        ("Labels", "tags"),
        ("LinkedIn URL", "linkedin"),
        ("Twitter Username", "twitter"),
        ("Facebook", "facebook"),
        # CRM prefixes and labels
        ("Person - Email - Home", "email"),
        ("Person - Name", "name"),
        ("Person - Phone - Work", "personal_phone"),
        ("Person - Phone - Mobile", "mobile_phone"),
        ("Person - Labels", "tags"),
        ("Person - City/town/village/locality of Postal address", "city"),
        # Portuguese CRM labels
        ("Estado/Região", "state"),
        ("País/Região", "country"),
        ("URL do site", "website"),
        ("Perfil LinkedIn", "linkedin"),
        ("Perfil do LinkedIn", "linkedin"),
        ("Número de celular", "mobile_phone"),
        ("Número de telefone", "personal_phone"),
        ("Nome da empresa", "company_name"),
        ("Empresa/Conta", "company_name"),
        ("Estado/Província", "state"),
        ("Pessoa - E-mail - Trabalho", "email"),
        ("Pessoa - Telefone - Celular", "mobile_phone"),
        ("Pessoa - Cidade/município/vila/localidade de Endereço postal", "city"),
        ("Pessoa - País de Endereço postal", "country"),
        ("Endereço de e-mail", "email"),
    ],
)
def test_recognises_usual_headers_whatever_their_case_accents_and_spacing(
    header: str, target: str
) -> None:
    assert recognise_header(header) == target


@pytest.mark.parametrize(
    "header",
    [
        "Data de nascimento",
        "CPF",
        "Lead Owner",
        "OPTIN_TIME",
        "",
        "Unsubscribed from all email",
        "Recusa de email",
        "Proprietário do lead",
    ],
)
def test_leaves_other_headers_alone(header: str) -> None:
    assert recognise_header(header) is None


def test_header_key_and_slug_fold_accents_case_and_punctuation() -> None:
    assert header_key("Endereço de E-mail") == "enderecodeemail"
    assert slug("Aceita comunicação?") == "aceita_comunicacao"
    assert slug("Lead Scoring - Perfil") == "lead_scoring_perfil"
    assert slug("???") == "campo"


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        ("(11) 98765-4321", "mobile_phone"),
        ("+55 21 99876-5432", "mobile_phone"),
        ("011 97777-6666", "mobile_phone"),
        ("(11) 3456-7890", "personal_phone"),
        ("+55 (61) 3321-6543", "personal_phone"),
        ("12345678909", None),  # bare digits: as likely a CPF
        ("123.456.789-09", None),
        ("01310-100", None),
        ("ligar depois", None),
    ],
)
def test_phone_shape(value: str, kind: str | None) -> None:
    assert brazilian_phone_kind(value) == kind


# -- recognition from values ----------------------------------------------------------------------


def rows(headers: list[str], *values: list[str]) -> list[dict[str, str]]:
    return [dict(zip(headers, v, strict=True)) for v in values]


def test_a_column_of_emails_is_the_email_whatever_its_header() -> None:
    headers = ["Contato", "Quem", "Obs"]
    sample = rows(
        headers,
        ["ana@example.com.br", "Ana", ""],
        ["", "João", "sem email"],
        ["joao@example.com", "João", ""],
    )
    found = recognise("lista", headers, sample)
    assert found.fields["email"] == ["Contato"]
    assert "Obs" in found.others


def test_a_named_email_column_wins_over_other_columns_of_emails() -> None:
    headers = ["Dono do Lead", "Email"]
    sample = rows(headers, ["vendas@example.com", "ana@example.com"])
    assert recognise("x", headers, sample).fields["email"] == ["Email"]


def test_an_email_header_whose_cells_are_not_emails_is_not_trusted() -> None:
    headers = ["Email", "Endereço eletrônico"]
    sample = rows(headers, ["sim", "ana@example.com"], ["não", "bia@example.com"])
    assert recognise("x", headers, sample).fields["email"] == ["Endereço eletrônico"]


def test_phones_are_found_by_shape_and_told_apart() -> None:
    headers = ["Email", "Contato 1", "Contato 2", "Documento"]
    sample = rows(
        headers,
        ["a@example.com", "(11) 98765-4321", "(11) 3456-7890", "12345678909"],
        ["b@example.com", "(21) 99876-5432", "(21) 2233-4455", "98765432100"],
    )
    found = recognise("x", headers, sample)
    assert found.fields["mobile_phone"] == ["Contato 1"]
    assert found.fields["personal_phone"] == ["Contato 2"]
    assert found.others == ["Documento"]


def test_profile_columns_get_the_handle_transform() -> None:
    headers = ["Email", "LinkedIn", "Twitter"]
    sample = rows(headers, ["a@example.com", "https://www.linkedin.com/in/ana", "@ana"])
    text = render_mapping(recognise("x", headers, sample), source_name="x.csv")
    assert '  linkedin: {column: "LinkedIn", transform: handle, on_invalid: drop}' in text
    assert '  twitter: {column: "Twitter", transform: handle, on_invalid: drop}' in text


def test_nome_and_sobrenome_become_a_template() -> None:
    headers = ["Nome", "Sobrenome", "E-mail"]
    found = recognise("x", headers, rows(headers, ["Ana", "Souza", "ana@example.com"]))
    assert (found.first_name, found.last_name) == ("Nome", "Sobrenome")
    text = render_mapping(found, source_name="x.csv")
    assert yaml.safe_load(text)["fields"]["name"]["template"] == "{Nome} {Sobrenome}"


def test_a_full_name_column_wins_over_first_and_last() -> None:
    headers = ["Person - Name", "Person - First name", "Person - Last name", "Email"]
    found = recognise("x", headers, rows(headers, ["Ana Souza", "Ana", "Souza", "a@example.com"]))
    assert found.fields["name"] == ["Person - Name"]


@pytest.mark.parametrize(
    ("cells", "separator"),
    [(["vendas, marketing", "rh"], ","), (["vendas; marketing", "rh; ti"], ";"), (["rh"], ",")],
)
def test_tag_separator_follows_the_cells(cells: list[str], separator: str) -> None:
    sample = [{"Email": "a@example.com", "Tags": c} for c in cells]
    found = recognise("x", ["Email", "Tags"], sample)
    assert found.fields["tags"] == ["Tags"]
    assert found.tag_separator == separator


def test_every_other_column_is_a_commented_custom_field_suggestion() -> None:
    headers = ["E-mail", "Data de nascimento", "CPF", "cpf"]
    found = recognise("x", headers, rows(headers, ["a@example.com", "01/02/1990", "1", "2"]))
    text = render_mapping(found, source_name="x.csv")
    assert '  # cf_data_de_nascimento: "Data de nascimento"' in text
    assert '  # cf_cpf: "CPF"' in text
    assert '  # cf_cpf_2: "cpf"' in text
    assert "cf_" not in str(yaml.safe_load(text)["fields"])


def test_conversion_identifier_is_the_stem_marked_to_be_edited() -> None:
    found = recognise("feira-2026", ["Email"], [{"Email": "a@example.com"}])
    text = render_mapping(found, source_name="feira-2026.csv")
    line = next(ln for ln in text.splitlines() if ln.startswith("conversion_identifier:"))
    assert line.endswith("# <- edit: the name of this conversion in RD Station")
    assert yaml.safe_load(text)["conversion_identifier"] == "feira-2026"


def test_a_yes_no_consent_column_becomes_the_legal_basis_row_by_row() -> None:
    headers = ["Email", "Aceita comunicação?"]
    found = recognise("x", headers, rows(headers, ["a@example.com", "Sim"], ["b@e.com", "não"]))
    assert found.consent == Consent("Aceita comunicação?", "question")
    document = yaml.safe_load(render_mapping(found, source_name="x"))
    column = {"column": "Aceita comunicação?", "transform": "bool"}
    assert document["fields"]["available_for_mailing"] == column
    assert document["legal_bases"] == [
        {"category": "communications", "type": "consent", "status": column}
    ]


def test_headers_with_quotes_and_colons_stay_valid_yaml() -> None:
    headers = ['E-mail: "principal"', "Cidade #"]
    found = recognise("x", headers, rows(headers, ["a@example.com", "Recife"]))
    fields = yaml.safe_load(render_mapping(found, source_name="x"))["fields"]
    assert fields["email"] == 'E-mail: "principal"'
    assert fields["city"] == "Cidade #"


def test_no_email_column_leaves_a_line_to_edit() -> None:
    found = recognise("x", ["Nome"], [{"Nome": "Ana"}])
    text = render_mapping(found, source_name="x.csv")
    assert "no column of e-mail addresses was found" in text


# -- the whole thing on real files --------------------------------------------------------------

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_DATA = ROOT / "sample_data"
FILES = sorted(PRESET_DATA.glob("*.csv")) + sorted(SAMPLE_DATA.glob("*.*"))


def run_mapping(mapping_path: Path, path: Path) -> tuple[dict[int, dict], dict[int, str]]:
    mapping = load_mapping(mapping_path)
    payloads: dict[int, dict] = {}
    failures: dict[int, str] = {}
    with open_table(path) as table:
        bound = mapping.bind(table.headers)
        for row in table.rows():
            try:
                payloads[row.number] = bound.apply(row)
            except RowError as exc:
                failures[row.number] = exc.message
    return payloads, failures


def map_with_scaffold(path: Path, tmp_path: Path) -> tuple[str, dict[int, dict], dict[int, str]]:
    text = scaffold_mapping(path)
    mapping_path = tmp_path / "mapping.yaml"
    mapping_path.write_text(text, encoding="utf-8")
    with open_table(path) as table:
        assert load_mapping(mapping_path).bind(table.headers).warnings == []
    return text, *run_mapping(mapping_path, path)


def rows_without_an_address(path: Path) -> set[int]:
    """The rows that are bad on purpose: no cell holds a valid email address."""

    def is_address(cell: str) -> bool:
        try:
            normalize_email(cell)
        except InvalidEmail:
            return False
        return True

    with open_table(path) as table:
        return {
            row.number
            for row in table.rows()
            if not any(is_address(cell) for cell in row.cells.values() if "@" in cell)
        }


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_the_scaffold_of_every_sample_runs_as_is(path: Path, tmp_path: Path) -> None:
    _, payloads, failures = map_with_scaffold(path, tmp_path)
    assert set(failures) == rows_without_an_address(path), failures
    assert all("email" in message for message in failures.values())
    assert payloads
    for payload in payloads.values():
        assert payload["conversion_identifier"] == path.stem
        assert "@" in payload["email"]
        assert payload.get("name")


def test_a_brazilian_event_list_is_understood(tmp_path: Path) -> None:
    text, payloads, _ = map_with_scaffold(PRESET_DATA / "feira_negocios_2025.csv", tmp_path)
    ana = payloads[2]
    assert ana == {
        "conversion_identifier": "feira_negocios_2025",
        "email": "ana.souza@example.com.br",  # from the column "Contato"
        "name": "Ana Beatriz Souza",
        "mobile_phone": "+5511987654321",
        "personal_phone": "+551134567890",
        "company_name": "Padaria Pão Quente",
        "job_title": "Gerente de Compras",
        "city": "São Paulo",
        "state": "SP",
        "available_for_mailing": True,  # "Aceita comunicação?" Sim
        "legal_bases": [{"category": "communications", "type": "consent", "status": "granted"}],
    }
    joao = payloads[3]  # Não
    assert joao["available_for_mailing"] is False
    assert joao["legal_bases"][0]["status"] == "declined"
    assert "cf_aceita_comunicacao" not in text  # mapped, not a custom field
    assert '  # cf_cep: "CEP"' in text


def test_uncommenting_the_suggestions_gives_a_mapping_that_runs(tmp_path: Path) -> None:
    text = scaffold_mapping(PRESET_DATA / "feira_negocios_2025.csv")
    text = text.replace("  # cf_", "  cf_").replace("# legal_bases:", "legal_bases:")
    text = text.replace("#   - ", "  - ").replace("#     ", "    ")
    mapping_path = tmp_path / "mapping.yaml"
    mapping_path.write_text(text, encoding="utf-8")
    mapping = load_mapping(mapping_path)
    with open_table(PRESET_DATA / "feira_negocios_2025.csv") as table:
        bound = mapping.bind(table.headers)
        rows = list(table.rows())
    first, second = bound.apply(rows[0]), bound.apply(rows[1])
    assert first["cf_cep"] == "00310-100"
    assert first["legal_bases"][0]["status"] == "granted"  # Sim
    assert second["legal_bases"][0]["status"] == "declined"  # Não


def test_a_workbook_is_read_from_the_sheet_asked_for(tmp_path: Path) -> None:
    book = openpyxl.Workbook()
    first = book.active
    assert first is not None
    first.title = "Resumo"
    first.append(["Total", 2])
    leads = book.create_sheet("Leads")
    leads.append(["Nome", "E-mail", "Celular"])
    leads.append(["Ana Souza", "ana@example.com.br", "(11) 98765-4321"])
    leads.append(["João Silva", "joao@example.com", 21998765432])
    path = tmp_path / "inscritos.xlsx"
    book.save(path)
    text = scaffold_mapping(path, sheet="Leads")
    fields = yaml.safe_load(text)["fields"]
    assert fields["email"] == "E-mail"
    assert fields["mobile_phone"]["column"] == "Celular"
    assert yaml.safe_load(text)["conversion_identifier"] == "inscritos"


def test_only_the_sample_is_read(tmp_path: Path) -> None:
    path = tmp_path / "big.csv"
    lines = ["Quem;Contato"] + [f"Pessoa {i};p{i}@example.com" for i in range(50)]
    lines += [f"Pessoa {i};ligar depois" for i in range(200)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    in_sample = yaml.safe_load(scaffold_mapping(path, sample_rows=50))["fields"]
    assert in_sample["email"] == "Contato"
    # over 250 rows the column is mostly not emails: the user is asked to name one
    assert yaml.safe_load(scaffold_mapping(path, sample_rows=250))["fields"]["email"] == "E-mail"


def test_an_unreadable_file_is_an_input_error(tmp_path: Path) -> None:
    path = tmp_path / "leads.xlsx"
    path.write_text("not a workbook", encoding="utf-8")
    with pytest.raises(InputError):
        scaffold_mapping(path)


def test_a_scaffolded_mapping_imports_into_the_sandbox(
    tmp_path: Path, sandbox: SandboxThread
) -> None:
    source = PRESET_DATA / "feira_negocios_2025.csv"
    mapping_path = tmp_path / "mapping.yaml"
    mapping_path.write_text(scaffold_mapping(source), encoding="utf-8")
    report = run_import(
        ImportConfig(
            input_path=source,
            mapping_path=mapping_path,
            out_dir=tmp_path / "out",
            api_url=sandbox.url,
            api_key=API_KEY,
            rate=0,
            tuning=Tuning(retry_wait=False),
        )
    )
    assert (report.rows, report.succeeded, report.failed) == (12, 12, 0)
    accepted = sandbox.snapshot()["accepted"]
    assert {e["payload"]["conversion_identifier"] for e in accepted} == {"feira_negocios_2025"}


# -- consent, never guessed -----------------------------------------------------------------------

YES_NO = [["a@example.com", "Sim"], ["b@example.com", "não"], ["c@example.com", ""]]
TRUE_FALSE = [["a@example.com", "true"], ["b@example.com", "false"], ["c@example.com", ""]]
ONE_ZERO = [["a@example.com", "1"], ["b@example.com", "0"], ["c@example.com", ""]]
GRANTED, DECLINED = "granted", "declined"


@pytest.mark.parametrize(
    ("header", "cells", "kind", "expected"),
    [
        # a question: yes is consent granted, no declined
        ("Aceita comunicação?", YES_NO, "question", [(True, GRANTED), (False, DECLINED)]),
        ("Aceita receber e-mails?", YES_NO, "question", [(True, GRANTED), (False, DECLINED)]),
        ("Receber novidades?", YES_NO, "question", [(True, GRANTED), (False, DECLINED)]),
        ("Opt-in", TRUE_FALSE, "question", [(True, GRANTED), (False, DECLINED)]),
        ("LGPD", YES_NO, "question", [(True, GRANTED), (False, DECLINED)]),
        # an opt-out: true is declined; false grants nothing
        ("Unsubscribed from all email", TRUE_FALSE, "opt_out", [(False, DECLINED), (None, None)]),
        ("Email Opt Out", ONE_ZERO, "opt_out", [(False, DECLINED), (None, None)]),
        ("Recusa de email", ONE_ZERO, "opt_out", [(False, DECLINED), (None, None)]),
        (
            "Cancelou a inscrição de todos os e-mails",
            TRUE_FALSE,
            "opt_out",
            [(False, DECLINED), (None, None)],
        ),
        ("Não deseja receber e-mails?", YES_NO, "opt_out", [(False, DECLINED), (None, None)]),
        # a subscription status
        (
            "Person - Marketing status",
            [
                ["a@example.com", "Subscribed"],
                ["b@example.com", "Unsubscribed"],
                ["c@x.com", "No consent"],
            ],
            "status",
            [(True, GRANTED), (False, DECLINED)],
        ),
        (
            "Status de marketing",
            [["a@example.com", "Inscrito"], ["b@example.com", "Cancelou a inscrição"]],
            "status",
            [(True, GRANTED), (False, DECLINED)],
        ),
        # Mailchimp's unsubscribed file
        (
            "UNSUB_TIME",
            [["a@example.com", ""], ["b@example.com", "2024-04-01 17:45:12"]],
            "unsubscribed_at",
            [(None, None), (False, DECLINED)],
        ),
    ],
)
def test_consent_and_opt_out_columns_are_mapped_row_by_row(
    tmp_path: Path,
    header: str,
    cells: list[list[str]],
    kind: str,
    expected: list[tuple[bool | None, str | None]],
) -> None:
    headers = ["E-mail", header]
    found = recognise("x", headers, rows(headers, *cells))
    assert found.consent is not None and found.consent.kind == kind
    path = tmp_path / "m.yaml"
    path.write_text(render_mapping(found, source_name="x.csv"), encoding="utf-8")
    bound = load_mapping(path).bind(headers)
    for number, (cell_row, (mailing, status)) in enumerate(zip(cells, expected, strict=False)):
        payload = bound.apply(Row(number + 2, dict(zip(headers, cell_row, strict=True))))
        assert payload.get("available_for_mailing") == mailing, cell_row
        statuses = [b["status"] for b in payload.get("legal_bases", [])]
        assert statuses == ([status] if status else []), cell_row


@pytest.mark.parametrize(
    ("header", "cells"),
    [
        ("Aceita comunicação?", ["talvez", "sim"]),  # not every cell a yes/no
        ("Lead Status", ["Open", "Closed"]),
        ("Situação", ["Cancelado", "Ativo"]),  # a customer's status, not a subscription
        ("Marketing contact status", ["Marketing contact", "Non-marketing contact"]),  # billing
        ("Ativo", ["sim", "não"]),  # yes/no, but not about communications
    ],
)
def test_other_columns_are_no_consent(header: str, cells: list[str]) -> None:
    headers = ["E-mail", header]
    sample = rows(headers, *[[f"{i}@example.com", c] for i, c in enumerate(cells)])
    assert recognise("x", headers, sample).consent is None


def test_without_a_consent_column_no_legal_basis_is_sent_and_the_mapping_says_why(
    tmp_path: Path,
) -> None:
    headers = ["E-mail", "Nome"]
    text = render_mapping(
        recognise("x", headers, rows(headers, ["a@example.com", "Ana"])), source_name="x.csv"
    )
    document = yaml.safe_load(text)
    assert "legal_bases" not in document
    assert "available_for_mailing" not in document["fields"]
    assert "granted" not in text  # not even as a suggestion to uncomment
    assert "# LGPD: no legal basis is sent. No column of this file says, row by row" in text


def test_phones_that_are_no_phones_are_left_out_with_a_warning(tmp_path: Path) -> None:
    headers = ["E-mail", "Celular"]
    found = recognise("x", headers, rows(headers, ["a@example.com", "(11) 98765-4321"]))
    text = render_mapping(found, source_name="x.csv")
    assert '  mobile_phone: {column: "Celular", transform: phone_br, on_invalid: drop}' in text
    path = tmp_path / "m.yaml"
    path.write_text(text, encoding="utf-8")
    warned: list[str] = []
    payload = (
        load_mapping(path)
        .bind(headers)
        .apply(
            Row(2, {"E-mail": "a@example.com", "Celular": "não tem"}),
            lambda kind, message: warned.append(message),
        )
    )
    assert "mobile_phone" not in payload
    assert warned == [
        "mobile_phone: a phone in column 'Celular' that phone_br cannot read was left out "
        "(on_invalid: drop)"
    ]


# -- the header row ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("first_rows", "header_row"),
    [
        ([["Nome", "E-mail"], ["Ana", "a@x.com"]], 1),
        ([["Relatório de leads"], [], ["Nome", "E-mail", "Celular"], ["Ana", "a@x.com", "1"]], 3),
        (
            [
                ["Leads", "março 2026"],
                ["Nome", "E-mail", "Celular", "UF", "Cidade"],
                ["Ana", "a@x.com", "1", "SP", "São Paulo"],
            ],
            2,
        ),
        ([["Nome", "Cidade"], ["Ana", "SP", "x"]], 1),  # data wider than a header: still it
        ([["Leads"], ["Nome", "E-mail"], ["Ana", "a@x.com"]], 2),
        ([["Exportado em", "15/03/2026"], ["Nome", "E-mail"], ["Ana", "a@x.com"]], 2),
        ([["Ana", "a@x.com"], ["Bia", "b@x.com"]], 1),  # no header at all: the default
        ([["Nome", "Nome"], ["Nome", "E-mail"], ["Ana", "a@x.com"]], 2),  # repeated: no header
        ([["Nome", "E-mail"]], 1),
    ],
)
def test_the_header_row_is_the_first_that_looks_like_one(
    first_rows: list[list[str]], header_row: int
) -> None:
    assert header_row_of(list(enumerate(first_rows, start=1))) == header_row


def test_title_rows_above_the_header_are_skipped_and_the_flag_is_named(tmp_path: Path) -> None:
    path = tmp_path / "inscritos.csv"
    path.write_text(
        "Lista de inscritos - Feira 2026;;\nExportado em 15/03/2026;;\n;;\n"
        "Nome;E-mail;Celular\nAna Souza;ana@example.com;(11) 98765-4321\n"
        "Bia Lima;bia@example.com;(21) 99876-5432\n",
        encoding="utf-8",
    )
    text = scaffold_mapping(path)
    assert "# Its header is row 4: give --header-row 4 to validate and import it." in text
    assert "rd-importer validate FILE --mapping THIS_FILE --header-row 4" in text
    assert yaml.safe_load(text)["fields"]["email"] == "E-mail"
    mapping_path = tmp_path / "m.yaml"
    mapping_path.write_text(text, encoding="utf-8")
    report = run_import(
        ImportConfig(
            input_path=path,
            mapping_path=mapping_path,
            out_dir=tmp_path / "out",
            header_row=4,
            dry_run=True,
            tuning=Tuning(retry_wait=False),
        )
    )
    assert (report.succeeded, report.failed) == (2, 0)


def test_a_workbook_with_title_rows_is_read_from_its_header(tmp_path: Path) -> None:
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["Relatório de leads"])
    sheet.append([])
    sheet.append(["Nome", "E-mail", "Celular"])
    sheet.append(["Ana Souza", "ana@example.com.br", "(11) 98765-4321"])
    path = tmp_path / "relatorio.xlsx"
    book.save(path)
    fields = yaml.safe_load(scaffold_mapping(path))["fields"]
    assert (fields["email"], fields["name"]) == ("E-mail", "Nome")


def test_mapping_init_takes_header_row(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from importer.cli import cli

    path = tmp_path / "leads.csv"
    # row 1 looks like a header too: only the flag can say the header is row 2
    path.write_text("Campo;Valor\nNome;E-mail\nAna;ana@example.com\n", encoding="utf-8")
    result = CliRunner().invoke(cli, ["mapping", "init", str(path), "--header-row", "2"])
    assert result.exit_code == 0, result.output
    assert yaml.safe_load(result.stdout)["fields"]["email"] == "E-mail"
    assert "--header-row 2" in result.stdout
    found = CliRunner().invoke(cli, ["mapping", "init", str(path)])
    assert "--header-row" not in found.stdout and "cf_valor" in found.stdout


# -- the figure: the share of the presets' exports whose scaffold gets consent right -------------

# For each export: the column that says, row by row, whether a lead accepts communications, and
# how to read one of its cells: (available_for_mailing, consent status) the row must be sent
# with. None: the file has no such column, and its mapping must send no consent at all.
_OPTED_OUT = (False, "declined")
_NOTHING = (None, None)
CONSENT_TRUTH: dict[str, tuple[str, Any] | None] = {
    "feira_negocios_2025.csv": (
        "Aceita comunicação?",
        lambda v: (True, "granted") if v.lower() == "sim" else (False, "declined"),
    ),
    "hubspot_contacts.csv": (
        "Unsubscribed from all email",
        lambda v: _OPTED_OUT if v == "true" else _NOTHING,
    ),
    "hubspot_contatos_portugues.csv": (
        "Cancelou a inscrição de todos os e-mails",
        lambda v: _OPTED_OUT if v == "true" else _NOTHING,
    ),
    "hubspot_contacts_default_columns.csv": None,
    "mailchimp_subscribed_members_export_3f9c2a.csv": None,
    "mailchimp_membros_inscritos_export_7d1e0b.csv": None,
    "mailchimp_unsubscribed_members_export_3f9c2a.csv": ("UNSUB_TIME", lambda v: _OPTED_OUT),
    "mailchimp_membros_descadastrados_export_7d1e0b.csv": ("UNSUB_TIME", lambda v: _OPTED_OUT),
    "pipedrive_people_export.csv": (
        "Person - Marketing status",
        lambda v: {"Subscribed": (True, "granted"), "Unsubscribed": _OPTED_OUT}.get(v, _NOTHING),
    ),
    "pipedrive_pessoas_portugues.csv": (
        "Pessoa - Status de marketing",
        lambda v: {"Inscrito": (True, "granted"), "Cancelou a inscrição": _OPTED_OUT}.get(
            v, _NOTHING
        ),
    ),
    "pipedrive_people_export_older_columns.csv": None,
    "rdstation_leads_export.csv": None,  # a legal basis column, but no consent per row
    "rdstation_leads_export_few_columns.csv": None,
    "salesforce_leads_report.csv": (
        "Email Opt Out",
        lambda v: _OPTED_OUT if v == "1" else _NOTHING,
    ),
    "salesforce_leads_report_utf8.csv": None,
    "salesforce_relatorio_leads_portugues.csv": (
        "Recusa de email",
        lambda v: _OPTED_OUT if v == "1" else _NOTHING,
    ),
}


def consent_right(path: Path, tmp_path: Path) -> bool:
    """Whether the scaffold of ``path`` sends each row the consent its file says, and none
    where the file says nothing."""
    truth = CONSENT_TRUTH[path.name]
    mapping_path = tmp_path / f"{path.stem}.yaml"
    mapping_path.write_text(scaffold_mapping(path), encoding="utf-8")
    mapping = load_mapping(mapping_path)
    with open_table(path) as table:
        bound = mapping.bind(table.headers)
        for row in table.rows():
            try:
                payload = bound.apply(row)
            except RowError:
                continue  # no email: nothing is sent
            sent = (
                payload.get("available_for_mailing"),
                next((b["status"] for b in payload.get("legal_bases", [])), None),
            )
            if truth is None:
                expected: tuple[bool | None, str | None] = _NOTHING
            else:
                column, read = truth
                value = row.cells[column].strip()
                expected = read(value) if value else _NOTHING
            if sent != expected or len(payload.get("legal_bases", [])) > 1:
                return False
    return True


def test_the_scaffold_gets_consent_right_on_every_preset_export(tmp_path: Path) -> None:
    exports = sorted(PRESET_DATA.glob("*.csv"))
    assert {p.name for p in exports} == set(CONSENT_TRUTH)  # every export is judged
    right = [p.name for p in exports if consent_right(p, tmp_path)]
    share = len(right) / len(exports)
    print(f"consent right in {len(right)} of {len(exports)} exports ({share:.0%})")
    assert share == 1.0, sorted(set(CONSENT_TRUTH) - set(right))
