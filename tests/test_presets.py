"""The shipped presets: each loads, fits every sample export of its tool, and maps every row.

The samples under tests/data/presets/ are small fakes shaped like the real exports (headers,
encoding, delimiter, quoting, multi-value cells, footers), two column choices per tool, and the
exports of the same tools set to Portuguese (``*_portugues.csv``, Mailchimp's ``membros_*``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import openpyxl
import pytest

from helpers import API_KEY, read_csv, read_summary, write_csv
from importer.errors import RowError
from importer.loader import open_table
from importer.mapping import load_mapping
from importer.pipeline import ImportConfig, Tuning, run_import
from importer.sandbox import SandboxThread

ROOT = Path(__file__).resolve().parent.parent
MAPPINGS = ROOT / "mappings"
DATA = Path(__file__).parent / "data" / "presets"

# preset -> its sample exports -> the row numbers that are bad on purpose (no email at all)
SAMPLES: dict[str, dict[str, set[int]]] = {
    "hubspot": {
        "hubspot_contacts.csv": {16},
        "hubspot_contacts_default_columns.csv": set(),
        "hubspot_contatos_portugues.csv": {14},
    },
    "mailchimp": {
        "mailchimp_subscribed_members_export_3f9c2a.csv": set(),
        "mailchimp_unsubscribed_members_export_3f9c2a.csv": set(),
        "mailchimp_membros_inscritos_export_7d1e0b.csv": set(),
        "mailchimp_membros_descadastrados_export_7d1e0b.csv": set(),
    },
    "rdstation": {
        "rdstation_leads_export.csv": set(),
        "rdstation_leads_export_few_columns.csv": set(),
    },
    "pipedrive": {
        "pipedrive_people_export.csv": {16},
        "pipedrive_people_export_older_columns.csv": set(),
        "pipedrive_pessoas_portugues.csv": {14},
    },
    "salesforce": {
        "salesforce_leads_report.csv": set(),
        "salesforce_leads_report_utf8.csv": set(),
        "salesforce_relatorio_leads_portugues.csv": set(),
    },
}
CASES = [(preset, sample) for preset, samples in SAMPLES.items() for sample in samples]


def map_file(preset: str, path: Path) -> tuple[dict[int, dict[str, Any]], dict[int, RowError]]:
    """Every row of ``path`` through ``preset``: payloads and failures by row number."""
    mapping = load_mapping(MAPPINGS / f"{preset}.yaml")
    payloads: dict[int, dict[str, Any]] = {}
    failures: dict[int, RowError] = {}
    with open_table(path) as table:
        bound = mapping.bind(table.headers)
        for row in table.rows():
            assert row.error is None, f"{path.name} row {row.number}: {row.error}"
            try:
                payloads[row.number] = bound.apply(row)
            except RowError as exc:
                failures[row.number] = exc
    return payloads, failures


@pytest.fixture(scope="module")
def hubspot_xlsx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """HubSpot's XLSX export: the CSV's cells on the first sheet, as HubSpot writes them."""
    with open_table(DATA / "hubspot_contacts.csv") as table:
        headers = list(table.headers)
        cells = [list(row.cells.values()) for row in table.rows()]
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "All contacts"
    sheet.append(headers)
    for values in cells:
        # Record ID is a number in HubSpot's workbook, the rest text
        sheet.append([int(values[0]), *values[1:]])
    path = tmp_path_factory.mktemp("hubspot") / "hubspot-crm-exports-all-contacts.xlsx"
    book.save(path)
    return path


@pytest.mark.parametrize("preset", sorted(SAMPLES))
def test_every_preset_loads_and_says_where_its_schema_is(preset: str) -> None:
    path = MAPPINGS / f"{preset}.yaml"
    assert path.read_text(encoding="utf-8").startswith(
        "# yaml-language-server: $schema=./mapping.schema.json\n"
    )
    load_mapping(path)


@pytest.mark.parametrize(("preset", "sample"), CASES)
def test_every_sample_row_maps_to_a_valid_payload(preset: str, sample: str) -> None:
    payloads, failures = map_file(preset, DATA / sample)
    assert set(failures) == SAMPLES[preset][sample], {n: e.message for n, e in failures.items()}
    assert len(payloads) >= 5
    for payload in payloads.values():
        assert payload["email"].endswith(("@example.com", "@example.com.br"))
        assert payload["name"].strip() == payload["name"] and " " in payload["name"]
    for failure in failures.values():
        assert "email" in failure.message.lower()


def test_hubspot_xlsx_export_maps_like_its_csv(hubspot_xlsx: Path) -> None:
    from_xlsx, xlsx_failures = map_file("hubspot", hubspot_xlsx)
    from_csv, csv_failures = map_file("hubspot", DATA / "hubspot_contacts.csv")
    assert from_xlsx == from_csv
    assert set(xlsx_failures) == set(csv_failures) == {16}


def test_hubspot_carries_names_phones_company_and_legal_basis() -> None:
    payloads, _ = map_file("hubspot", DATA / "hubspot_contacts.csv")
    ana = payloads[2]
    assert ana["name"] == "Ana Beatriz Souza"
    assert ana["mobile_phone"] == "+5511987654321"
    assert ana["personal_phone"] == "+551134567890"
    assert (ana["company_name"], ana["job_title"]) == ("Padaria Pão Quente", "Gerente de Compras")
    assert (ana["city"], ana["state"], ana["country"]) == ("São Paulo", "SP", "Brasil")
    assert ana["legal_bases"] == [
        {"category": "communications", "type": "consent", "status": "granted"}
    ]
    assert payloads[3]["legal_bases"][0]["type"] == "legitimate_interest"
    assert payloads[4]["legal_bases"][0]["type"] == "pre_existent_contract"
    assert "legal_bases" not in payloads[5]  # none recorded: none sent
    assert "legal_bases" not in payloads[8]  # "Not applicable": none sent
    # a foreign number written with its country code stays that country's
    assert payloads[4]["personal_phone"] == "+14155550100"


DECLINED = {"category": "communications", "type": "consent", "status": "declined"}


@pytest.mark.parametrize("sample", ["hubspot_contacts.csv", "hubspot_contatos_portugues.csv"])
def test_hubspot_unsubscribed_contacts_are_sent_as_opted_out_never_granted(sample: str) -> None:
    payloads, _ = map_file("hubspot", DATA / sample)
    with open_table(DATA / sample) as table:
        column = next(h for h in table.headers if h.startswith(("Unsubscribed", "Cancelou")))
        unsubscribed = {row.number for row in table.rows() if row.cells[column] == "true"}
    assert len(unsubscribed) >= 2
    for number, payload in payloads.items():
        if number in unsubscribed:
            # whatever basis HubSpot recorded ("Freely given consent" for Carlos)
            assert payload["available_for_mailing"] is False, number
            assert payload["legal_bases"] == [DECLINED], number
        else:
            assert "available_for_mailing" not in payload, number
            assert all(b["status"] == "granted" for b in payload.get("legal_bases", [])), number


def test_hubspot_export_without_the_unsubscribe_column_sends_no_legal_basis(
    tmp_path: Path,
) -> None:
    with open_table(DATA / "hubspot_contacts.csv") as table:
        headers = [h for h in table.headers if h != "Unsubscribed from all email"]
        rows = [[row.cells[h] for h in headers] for row in table.rows()]
    trimmed = write_csv(tmp_path / "contacts.csv", headers, rows)
    mapping = load_mapping(MAPPINGS / "hubspot.yaml")
    with open_table(trimmed) as table:
        bound = mapping.bind(table.headers, "contacts.csv")
        payloads = [bound.apply(row) for row in table.rows() if row.cells["Email"]]
    assert not [p for p in payloads if "legal_bases" in p]  # who unsubscribed cannot be told
    [warning] = [w for w in bound.warnings if "legal_bases[0] is left out" in w]
    assert warning.endswith(
        ": none of the columns 'Unsubscribed from all email', 'Cancelou a inscrição de "
        "todos os e-mails' is in contacts.csv; legal_bases[0] is left out"
    )


@pytest.mark.parametrize(("preset", "sample"), CASES)
def test_no_preset_grants_consent_to_anyone_who_opted_out(preset: str, sample: str) -> None:
    """Across every sample: a row with an opt-out in it is never sent consent granted nor
    available_for_mailing true."""
    opt_outs = {"true", "1", "unsubscribed", "cancelou a inscrição"}
    payloads, _ = map_file(preset, DATA / sample)
    with open_table(DATA / sample) as table:
        for row in table.rows():
            opted_out = any(
                value.strip().lower() in opt_outs
                for header, value in row.cells.items()
                if any(w in header.lower() for w in ("unsub", "opt out", "recusa", "cancelou"))
                or header.endswith(("Marketing status", "Status de marketing"))
            ) or bool(row.cells.get("UNSUB_TIME"))
            payload = payloads.get(row.number)
            if not opted_out or payload is None:
                continue
            assert payload.get("available_for_mailing") is False, (sample, row.number)
            assert [b["status"] for b in payload["legal_bases"]] == ["declined"], row.number


def test_hubspot_view_without_optional_columns_leaves_those_fields_out() -> None:
    payloads, _ = map_file("hubspot", DATA / "hubspot_contacts_default_columns.csv")
    assert not {"mobile_phone", "company_name", "city"} & set(payloads[2])


def test_mailchimp_tags_lose_their_quotes() -> None:
    subscribed, _ = map_file("mailchimp", DATA / "mailchimp_subscribed_members_export_3f9c2a.csv")
    assert subscribed[2]["tags"] == ["clientes", "newsletter"]
    assert subscribed[5]["tags"] == ["webinar 2024", "leads quentes", "newsletter"]


def test_mailchimp_consent_and_merge_fields_follow_the_file() -> None:
    subscribed, _ = map_file("mailchimp", DATA / "mailchimp_subscribed_members_export_3f9c2a.csv")
    assert len(subscribed[2]["tags"]) == 2
    assert "tags" not in subscribed[4]
    assert subscribed[2]["company_name"] == "Padaria Pão Quente"
    assert subscribed[2]["legal_bases"][0]["status"] == "granted"
    assert "personal_phone" not in subscribed[6]  # "ligar depois" is no phone: left out
    unsubscribed, _ = map_file(
        "mailchimp", DATA / "mailchimp_unsubscribed_members_export_3f9c2a.csv"
    )
    assert {p["legal_bases"][0]["status"] for p in unsubscribed.values()} == {"declined"}
    assert all("company_name" not in p for p in unsubscribed.values())


def test_rdstation_utf16_export_with_repeated_columns() -> None:
    payloads, _ = map_file("rdstation", DATA / "rdstation_leads_export.csv")
    ana = payloads[2]
    assert (ana["name"], ana["company_name"], ana["country"]) == (
        "Ana Beatriz Souza",
        "Padaria Pão Quente",
        "Brasil",
    )
    assert ana["mobile_phone"] == "+5511987654321"
    assert ana["tags"] == ["cliente", "webinar-2024"]
    assert ana["legal_bases"][0] == {
        "category": "communications",
        "type": "consent",
        "status": "granted",
    }
    assert payloads[3]["legal_bases"][0]["type"] == "legitimate_interest"
    assert "legal_bases" not in payloads[4]  # none recorded: none sent
    assert payloads[5]["legal_bases"][0]["type"] == "pre_existent_contract"
    assert "mobile_phone" not in payloads[5]  # "(11) 9876", a typo, not a phone: left out
    # Profile URLs and @names become the handles RD Station takes; a cell with none is left out.
    assert (ana["facebook"], ana["twitter"], ana["linkedin"]) == (
        "ana.beatriz.souza",
        "anabsouza",
        "ana-beatriz-souza-12ab34",
    )
    assert payloads[3]["twitter"] == "joaopedro"
    assert "linkedin" not in payloads[3]  # "Ver perfil"


def test_pipedrive_takes_the_first_email_and_phone_by_label() -> None:
    payloads, _ = map_file("pipedrive", DATA / "pipedrive_people_export.csv")
    assert payloads[2]["email"] == "ana.souza@example.com.br"  # only under Home
    assert payloads[3]["email"] == "joao.silva@example.com"  # under Work
    assert payloads[3]["tags"] == ["lead quente", "vip"]
    assert payloads[2]["city"] == "São Paulo"
    assert payloads[2]["legal_bases"][0] == {
        "category": "communications",
        "type": "consent",
        "status": "granted",
    }
    assert "legal_bases" not in payloads[3]  # "No consent": never asked, nothing sent
    assert payloads[4]["legal_bases"][0]["status"] == "declined"  # Unsubscribed
    older, _ = map_file("pipedrive", DATA / "pipedrive_people_export_older_columns.csv")
    assert older[3]["tags"] == ["lead quente"]


def test_salesforce_report_footer_is_not_data() -> None:
    payloads, _ = map_file("salesforce", DATA / "salesforce_leads_report.csv")
    assert len(payloads) == 14
    bruno = payloads[15]
    assert bruno["name"] == "Bruno Carvalho"
    assert (bruno["company_name"], bruno["city"]) == ("Porto Seguro Café", "Vitória")  # latin-1
    # Email Opt Out = 0 says nothing of consent: nothing is sent; 1 is an opt-out
    assert "available_for_mailing" not in bruno and "legal_bases" not in bruno
    assert payloads[4]["available_for_mailing"] is False
    assert payloads[4]["legal_bases"] == [DECLINED]


# -- end to end: each preset imported into the sandbox --------------------------------------------


@pytest.mark.parametrize(("preset", "sample"), CASES)
def test_every_preset_imports_its_samples_into_the_sandbox(
    preset: str, sample: str, tmp_path: Path, sandbox: SandboxThread
) -> None:
    expected, _ = map_file(preset, DATA / sample)
    report = run_import(
        ImportConfig(
            input_path=DATA / sample,
            mapping_path=MAPPINGS / f"{preset}.yaml",
            out_dir=tmp_path / "out",
            api_url=sandbox.url,
            api_key=API_KEY,
            rate=0,
            concurrency=4,
            tuning=Tuning(retry_wait=False),
        )
    )
    bad = SAMPLES[preset][sample]
    assert (report.failed, report.succeeded) == (len(bad), len(expected)), report.failure_types
    accepted = {e["payload"]["email"]: e["payload"] for e in sandbox.snapshot()["accepted"]}
    assert accepted == {p["email"]: p for p in expected.values()}
    failures = read_csv(tmp_path / "out" / "failures.csv")
    assert {int(line["row"]) for line in failures} == bad


# -- the exports in Portuguese ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("preset", "sample"),
    [
        ("hubspot", "hubspot_contatos_portugues.csv"),
        ("pipedrive", "pipedrive_pessoas_portugues.csv"),
        ("salesforce", "salesforce_relatorio_leads_portugues.csv"),
        ("mailchimp", "mailchimp_membros_inscritos_export_7d1e0b.csv"),
    ],
)
def test_a_portuguese_export_carries_what_the_english_one_does(preset: str, sample: str) -> None:
    mapping = load_mapping(MAPPINGS / f"{preset}.yaml")
    with open_table(DATA / sample) as table:
        warnings = mapping.bind(table.headers, sample).warnings
    # every column the export has is read: only columns of views that lack them are missing
    assert not [w for w in warnings if "did you mean" in w], warnings
    payloads, _ = map_file(preset, DATA / sample)
    ana = payloads[2]
    assert (ana["email"], ana["name"]) == ("ana.souza@example.com.br", "Ana Beatriz Souza")
    if preset != "mailchimp":
        assert ana["mobile_phone"] == "+5511987654321"
        assert ana["city"] == "São Paulo"
        assert ana["job_title"] == "Gerente de Compras"
    assert ana["company_name"] == "Padaria Pão Quente"


def test_portuguese_hubspot_labels_and_bases() -> None:
    payloads, _ = map_file("hubspot", DATA / "hubspot_contatos_portugues.csv")
    ana = payloads[2]
    assert (ana["state"], ana["country"], ana["website"]) == (
        "São Paulo",
        "Brasil",
        "https://www.padaria.com.br",
    )
    assert ana["legal_bases"] == [
        {"category": "communications", "type": "consent", "status": "granted"}
    ]
    assert payloads[3]["legal_bases"][0]["type"] == "legitimate_interest"
    assert "legal_bases" not in payloads[8]  # "Não aplicável"


def test_portuguese_pipedrive_marketing_status() -> None:
    payloads, _ = map_file("pipedrive", DATA / "pipedrive_pessoas_portugues.csv")
    assert payloads[2]["legal_bases"][0]["status"] == "granted"  # Inscrito
    assert payloads[2]["available_for_mailing"] is True
    assert "legal_bases" not in payloads[3]  # Sem consentimento
    assert payloads[4]["legal_bases"] == [DECLINED]  # Cancelou a inscrição
    assert payloads[4]["available_for_mailing"] is False
    assert "legal_bases" not in payloads[13]  # Arquivado
    assert payloads[3]["tags"] == ["lead quente", "vip"]


@pytest.mark.parametrize(
    "footer",
    [
        ["Total geral (12 registros)", "", "Informações confidenciais - Não distribuir"],
        ["Totales generales (3 registros)", "Información confidencial - No distribuir"],
        ["Total geral (1 registro)"],
        ["Copyright (c) 2000-2026 salesforce.com, inc. Todos os direitos reservados."],
        ["Copyright (c) 2000-2026 salesforce.com, inc. Todos los derechos reservados."],
    ],
)
def test_salesforce_footer_in_portuguese_and_spanish_is_not_data(
    footer: list[str], tmp_path: Path
) -> None:
    lines = ['"First Name","Last Name","Email"', '"Ana","Souza","ana@example.com"', ""]
    lines += [f'"{line}"' if line else "" for line in footer]
    path = tmp_path / "report.csv"
    path.write_text("\r\n".join(lines) + "\r\n", encoding="utf-8")
    payloads, failures = map_file("salesforce", path)
    assert (list(payloads), failures) == ([2], {})


def test_salesforce_portuguese_report_stops_at_its_footer() -> None:
    payloads, failures = map_file("salesforce", DATA / "salesforce_relatorio_leads_portugues.csv")
    assert (len(payloads), failures) == (12, {})
    assert payloads[4]["available_for_mailing"] is False  # Recusa de email = 1
    assert "available_for_mailing" not in payloads[2]


def test_a_phone_a_preset_cannot_read_is_left_out_and_counted(tmp_path: Path) -> None:
    sample = DATA / "mailchimp_membros_inscritos_export_7d1e0b.csv"
    run_import(
        ImportConfig(
            input_path=sample,
            mapping_path=MAPPINGS / "mailchimp.yaml",
            out_dir=tmp_path / "out",
            dry_run=True,
            tuning=Tuning(retry_wait=False),
        )
    )
    [note] = [n for n in read_summary(tmp_path / "out")["warnings"] if "phone_br" in n["message"]]
    assert note == {
        "message": "personal_phone: a phone in column 'Telefone' that phone_br cannot read was "
        "left out (on_invalid: drop)",
        "count": 1,
        "rows": [7],
    }
