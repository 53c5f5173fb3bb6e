"""The shipped presets: each loads, fits every sample export of its tool, and maps every row.

The samples under tests/data/presets/ are small fakes shaped like the real exports (headers,
encoding, delimiter, quoting, multi-value cells, footers), two column choices per tool.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import openpyxl
import pytest

from helpers import API_KEY, read_csv
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
    "hubspot": {"hubspot_contacts.csv": {16}, "hubspot_contacts_default_columns.csv": set()},
    "mailchimp": {
        "mailchimp_subscribed_members_export_3f9c2a.csv": set(),
        "mailchimp_unsubscribed_members_export_3f9c2a.csv": set(),
    },
    "rdstation": {
        "rdstation_leads_export.csv": set(),
        "rdstation_leads_export_few_columns.csv": set(),
    },
    "pipedrive": {
        "pipedrive_people_export.csv": {16},
        "pipedrive_people_export_older_columns.csv": set(),
    },
    "salesforce": {
        "salesforce_leads_report.csv": set(),
        "salesforce_leads_report_utf8.csv": set(),
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
    assert payloads[5]["mobile_phone"] == "(11) 9876"  # a typo, not a phone: kept as written
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
    assert bruno["available_for_mailing"] is True
    assert payloads[4]["available_for_mailing"] is False  # Email Opt Out = 1


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
