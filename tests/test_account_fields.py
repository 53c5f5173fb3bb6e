"""Issue 13: the account's custom fields, checked before a single request (``--auth oauth``).

Unit tests of the pieces (RD Station's field list read defensively, "did you mean", each type
check), then the public surface: the CLI and ``run_import`` against the sandbox on loopback,
serving a field list given as a file, with a sign-in saved in a temporary config folder.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from helpers import ROOT, read_csv, read_summary, write_csv, write_mapping
from importer import account_fields as af
from importer import oauth
from importer.cli import cli
from importer.client import Reply
from importer.errors import InputError
from importer.mapping import Mapping, load_mapping
from importer.pipeline import ImportConfig, Tuning, run_import
from importer.records import Failed, FailureKind
from importer.sandbox import SandboxConfig, SandboxThread, running_sandbox
from importer.sandbox.fields import DEFAULT_FIELDS, FIELDS_PATH, fields_answer, load_fields_file


def rd_field(
    ident: str,
    label: str,
    data_type: str = "STRING",
    presentation: str = "TEXT_INPUT",
    options: list[tuple[str, str]] | None = None,
    pt_br: str | None = None,
) -> dict[str, Any]:
    """One entry as RD Station lists it."""
    entry: dict[str, Any] = {
        "uuid": f"uuid-{ident}",
        "api_identifier": ident,
        "custom_field": ident.startswith("cf_"),
        "data_type": data_type,
        "name": {"default": label, "pt-BR": pt_br or label},
        "label": {"default": label, "pt-BR": pt_br or label},
        "presentation_type": presentation,
        "validation_rules": {},
    }
    if options is not None:
        entry["validation_rules"] = {
            "valid_options": [{"value": v, "label": t} for v, t in options]
        }
    return entry


ACCOUNT = {
    "fields": [
        rd_field("name", "Name", pt_br="Nome"),
        rd_field("email", "Email", presentation="EMAIL_INPUT"),
        rd_field("city", "City", pt_br="Cidade"),
        rd_field("tags", "Tags", data_type="STRING[]"),
        rd_field(
            "cf_plano_contratado",
            "Plano contratado",
            presentation="COMBO_BOX",
            options=[("basico", "Básico"), ("pro", "Pro"), ("avancado", "Avançado")],
        ),
        rd_field("cf_funcionarios", "Número de funcionários", "INTEGER", "NUMBER_INPUT"),
        rd_field("cf_cliente", "Já é cliente?", "BOOLEAN", "CHECK_BOX"),
        rd_field(
            "cf_canais",
            "Canais",
            "STRING[]",
            "MULTIPLE_CHOICE",
            options=[("email", "E-mail"), ("whatsapp", "WhatsApp"), ("telefone", "Telefone")],
        ),
        rd_field(
            "cf_regiao",
            "Região",
            presentation="RADIO_BUTTON",
            options=[("norte", "Norte"), ("sul", "Sul"), ("sudeste", "Sudeste")],
        ),
        rd_field("cf_origem_do_lead", "Origem do lead", pt_br="Origem do lead"),
    ]
}


def account() -> af.AccountFields:
    parsed = af.parse_fields(ACCOUNT)
    assert parsed is not None
    return parsed


# --- reading RD Station's list ---------------------------------------------------------------


def test_the_list_is_read_with_its_types_names_and_options_and_extra_keys_ignored() -> None:
    data = json.loads(json.dumps(ACCOUNT))
    data["fields"][4]["something_new"] = {"rd": "adds keys"}
    data["links"] = {"next": None}
    fields = af.parse_fields(data)
    assert fields is not None and fields.problems == []
    assert fields.summary() == "10 fields, 6 custom"
    plano = fields.get("cf_plano_contratado")
    assert plano is not None
    assert (plano.custom, plano.data_type, plano.title) == (True, "STRING", "Plano contratado")
    assert [o.value for o in plano.choices] == ["basico", "pro", "avancado"]
    assert fields.get("city").names == ("City", "Cidade")  # type: ignore[union-attr]
    assert af.parse_fields(ACCOUNT["fields"]) is not None  # the bare list too


def test_malformed_entries_are_left_out_and_named() -> None:
    fields = af.parse_fields(
        {
            "fields": [
                rd_field("cf_ok", "Ok"),
                "cf_text",
                {"uuid": "u-7", "label": {"default": "No identifier"}},
                rd_field("cf_ok", "Again"),
                {"api_identifier": "cf_odd", "data_type": 7, "label": 3, "validation_rules": []},
            ]
        }
    )
    assert fields is not None
    assert list(fields.fields) == ["cf_ok", "cf_odd"]
    assert fields.problems == [
        "entry 2 is str, not a field: left out",
        "entry 3 (u-7) has no api_identifier: left out",
        "entry 4 repeats cf_ok: the first one is used",
    ]
    odd = fields.get("cf_odd")
    assert odd is not None and (odd.data_type, odd.names, odd.options) == ("", (), ())
    assert af.value_check(odd) is None  # a type it does not know: not checked


@pytest.mark.parametrize("data", [None, "fields", {"errors": []}, {"fields": {}}, 3])
def test_an_answer_that_is_not_a_field_list_is_none(data: Any) -> None:
    assert af.parse_fields(data) is None


def test_a_header_matches_a_custom_field_by_label_or_name_without_case_or_accents() -> None:
    fields = account()
    assert fields.custom_for_header("PLANO CONTRATADO").api_identifier == "cf_plano_contratado"  # type: ignore[union-attr]
    assert fields.custom_for_header("numero de funcionarios").api_identifier == "cf_funcionarios"  # type: ignore[union-attr]
    assert fields.custom_for_header("Regiao").api_identifier == "cf_regiao"  # type: ignore[union-attr]
    assert fields.custom_for_header("Funcionarios").api_identifier == "cf_funcionarios"  # type: ignore[union-attr]
    assert fields.custom_for_header("Cidade") is None  # a standard field: not a cf_
    assert fields.custom_for_header("Plano") is None


# --- did you mean ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "columns", "meant"),
    [
        ("cf_plano_contrado", [], "cf_plano_contratado"),  # a typo of the identifier
        ("cf_origem_lead", [], "cf_origem_do_lead"),
        ("cf_regiao_do_pais", [], "cf_regiao"),
        ("cf_numero_de_funcionarios", [], "cf_funcionarios"),  # the field's label
        ("cf_x", ["Já é cliente?"], "cf_cliente"),  # the column the mapping reads is its label
        ("cf_aniversario", [], None),
    ],
)
def test_the_closest_field_by_identifier_label_or_column(
    name: str, columns: list[str], meant: str | None
) -> None:
    found = af.closest_field(name, columns, account())
    assert (found.api_identifier if found else None) == meant


# --- each type ---------------------------------------------------------------------------------


def check(ident: str, value: Any) -> tuple[str, str] | None:
    known = account().get(ident)
    assert known is not None
    value_fits = af.value_check(known)
    assert value_fits is not None
    return value_fits(value)


def test_an_integer_field_takes_a_whole_number_and_says_what_came() -> None:
    for fits in (42, "42", " -7 ", "+3"):
        assert check("cf_funcionarios", fits) is None
    assert check("cf_funcionarios", "12,5") == (
        "INVALID_DATA_TYPE",
        "'12,5' is not a whole number, which this field takes (INTEGER)",
    )
    assert check("cf_funcionarios", True)[0] == "INVALID_DATA_TYPE"  # type: ignore[index]
    assert check("cf_funcionarios", ["1"])[1].startswith("a list is not")  # type: ignore[index]


def test_a_boolean_field_takes_true_or_false_after_the_transforms() -> None:
    assert check("cf_cliente", True) is None and check("cf_cliente", False) is None
    assert check("cf_cliente", "sim") == (
        "MUST_BE_BOOLEAN",
        "'sim' is not true or false, which this field takes (BOOLEAN): add transform: bool to "
        "the mapping, or a map: to true/false",
    )


def test_a_list_field_takes_a_list_and_checks_each_item_against_its_options() -> None:
    assert check("cf_canais", ["email", "whatsapp"]) is None
    assert check("cf_canais", "email")[0] == "MUST_BE_STRING_ARRAY"  # type: ignore[index]
    assert check("cf_canais", ["email", ["x"]])[0] == "MUST_BE_STRING_ARRAY"  # type: ignore[index]
    assert check("cf_canais", ["email", "WhatsApp"]) == (
        "INVALID_OPTION",
        "'WhatsApp' is not one of the field's options (did you mean 'whatsapp'?); valid: "
        "'email', 'whatsapp', 'telefone' (add a map: to the mapping)",
    )


def test_a_choice_field_takes_one_of_its_values_and_names_a_few_and_the_closest() -> None:
    assert check("cf_plano_contratado", "pro") is None
    assert check("cf_plano_contratado", "Avançado")[1].startswith(  # type: ignore[index]
        "'Avançado' is not one of the field's options (did you mean 'avancado'?)"
    )
    assert check("cf_regiao", "Nordeste") == (
        "INVALID_OPTION",
        "'Nordeste' is not one of the field's options (did you mean 'norte'?); valid: "
        "'norte', 'sul', 'sudeste' (add a map: to the mapping)",
    )
    many = rd_field(
        "cf_uf",
        "UF",
        presentation="COMBO_BOX",
        options=[(u, u) for u in ["AC", "AL", "AP", "AM", "BA", "CE"]],
    )
    uf = af.parse_fields([many]).get("cf_uf")  # type: ignore[union-attr]
    assert uf is not None
    assert af.value_check(uf)("XX")[1] == (  # type: ignore[misc]
        "'XX' is not one of the field's options; valid: 'AC', 'AL', 'AP', 'AM', 'BA' and 1 more "
        "(add a map: to the mapping)"
    )
    assert check("cf_plano_contratado", ["pro"])[0] == "MUST_BE_STRING"  # type: ignore[index]


def test_a_text_field_without_options_takes_any_text() -> None:
    known = account().get("cf_origem_do_lead")
    assert known is not None
    assert af.value_check(known)("anything") is None  # type: ignore[misc]


# --- fetching ----------------------------------------------------------------------------------


class Answers:
    """A transport that gives its answers in order and counts the requests."""

    def __init__(self, *answers: Reply | Failed) -> None:
        self.answers = list(answers)
        self.asked: list[tuple[str, str, int]] = []

    async def request(self, method: str, path: str, body: bytes | None = None, *,
                      query: Any = None, max_bytes: int = 0) -> Reply | Failed:  # fmt: skip
        self.asked.append((method, path, max_bytes))
        return self.answers.pop(0)


def fetch(transport: Answers) -> af.AccountFields:
    return asyncio.run(af.fetch_fields(transport, waits=(0, 0)))


def test_fetch_asks_once_with_a_bound_and_retries_a_busy_endpoint() -> None:
    body = json.dumps(ACCOUNT).encode()
    transport = Answers(Reply(200, body))
    assert fetch(transport).summary() == "10 fields, 6 custom"
    assert transport.asked == [("GET", FIELDS_PATH, af.MAX_FIELDS_BYTES)]
    busy = Failed(FailureKind.TRANSIENT, 503, "HTTP_503", "RD Station answered HTTP 503")
    transport = Answers(busy, busy, Reply(200, body))
    assert len(fetch(transport)) == 10 and len(transport.asked) == 3


@pytest.mark.parametrize(
    ("answer", "says"),
    [
        (
            Failed(
                FailureKind.AUTH_REFUSED,
                401,
                "UNAUTHORIZED",
                "RD Station refused the "
                "signed-in app's access token (HTTP 401 UNAUTHORIZED); run `rd-importer "
                "auth login` again",
            ),
            "RD Station's list of the account's fields (/platform/contacts/fields) could not be "
            "read: RD Station refused the signed-in app's access token (HTTP 401 UNAUTHORIZED); "
            "run `rd-importer auth login` again",
        ),
        (
            Failed(
                FailureKind.AUTH_REFUSED,
                None,
                "OAUTH_REFUSED",
                "not signed in: run `rd-importer auth login`",
                reached_server=False,
            ),
            "not signed in: run `rd-importer auth login`",
        ),
        (
            Failed(
                FailureKind.TRANSIENT,
                None,
                "CONNECTION_ERROR",
                "could not connect to api.rd.services (connection refused)",
                reached_server=False,
            ),
            "RD Station's list of the account's fields (/platform/contacts/fields) could not be "
            "read: could not connect to api.rd.services (connection refused); nothing was "
            "sent: run the command again later",
        ),
        (
            Reply(200, b"<html>a captive portal</html>"),
            "RD Station's list of the account's fields (/platform/contacts/fields) answered 29 "
            "bytes that are not JSON, not a field list: check --api-url, then run the command "
            "again",
        ),
        (
            Reply(200, b'{"errors": {"error_type": "X"}}'),
            "RD Station's list of the account's fields (/platform/contacts/fields) answered a "
            "JSON object without a fields list (keys: errors), not a field list: check "
            "--api-url, then run the command again",
        ),
        (
            Reply(200, b'{"fields": [', whole=False),
            "RD Station's list of the account's fields (/platform/contacts/fields) was longer "
            "than 4 MB or cut off: check --api-url, then run the command again",
        ),
    ],
)
def test_fetch_failures_are_one_line_saying_what_to_do(answer: Reply | Failed, says: str) -> None:
    transport = Answers(answer, answer, answer)
    with pytest.raises(af.FieldsError) as caught:
        fetch(transport)
    assert str(caught.value) == says


# --- through the command line, against the sandbox ---------------------------------------------


@pytest.fixture
def config_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh config folder, and no RDSTATION_* setting from the machine running the tests."""
    for name in list(os.environ):
        if name.startswith("RDSTATION_"):
            monkeypatch.delenv(name)
    home = tmp_path / "config"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home))
    return home


@pytest.fixture
def box(config_home: Path):
    """A sandbox serving ``ACCOUNT``'s fields, signed in to (the token file of config_home)."""
    with SandboxThread(SandboxConfig(seed=1, fields=ACCOUNT)) as running:
        oauth.TokenFile().save(asyncio.run(oauth.sign_in_headless(running.url)).load())
        yield running


HEADER = ["E-mail", "Nome", "Plano", "Funcionários", "Cliente?", "Canais", "Região"]
ROWS = [
    ["ana@exemplo.com.br", "Ana", "Pro", "12", "sim", "email, whatsapp", "Sul"],
    ["bia@exemplo.com.br", "Bia", "Básico", "3", "não", "telefone", "Norte"],
    ["caio@exemplo.com.br", "Caio", "Premium", "40", "sim", "email", "Sudeste"],
    ["duda@exemplo.com.br", "Duda", "Avançado", "7", "", "", "Sul"],
    ["edu@exemplo.com.br", "Edu", "", "", "não", "whatsapp", ""],
]
GOOD_MAPPING = """\
conversion_identifier: "feira"
fields:
  email: "E-mail"
  name: "Nome"
  cf_plano_contratado:
    {column: "Plano", map: {Básico: basico, Pro: pro, Avançado: avancado}, on_invalid: keep}
  cf_funcionarios: "Funcionários"
  cf_cliente: {column: "Cliente?", transform: bool}
  cf_canais: {column: "Canais", split: ","}
  cf_regiao: {column: "Região", transform: lower}
"""
TWO_UNKNOWN = """\
conversion_identifier: "feira"
fields:
  email: "E-mail"
  name: "Nome"
  cf_plano_contrado: "Plano"
  cf_funcionarios: "Funcionários"
  cf_segmento_de_mercado: "Região"
"""


def import_args(data: Path, mapping: Path, out: Path, url: str, *more: str) -> list[str]:
    return ["import", str(data), "--mapping", str(mapping), "--out", str(out), "--api-url", url,
            "--rate", "0", "--auth", "oauth", *more]  # fmt: skip


def test_two_unknown_custom_fields_stop_the_run_before_anything_is_sent(
    box: SandboxThread, tmp_path: Path
) -> None:
    data = write_csv(tmp_path / "leads.csv", HEADER, ROWS)
    mapping = write_mapping(tmp_path / "map.yaml", TWO_UNKNOWN)
    result = CliRunner().invoke(cli, import_args(data, mapping, tmp_path / "out", box.url))
    assert result.exit_code == 2, result.output
    assert result.stderr.splitlines()[-3:] == [
        "Error: map.yaml: 2 custom fields are not in your RD Station account:",
        "  line 5: cf_plano_contrado is not a field of your RD Station account (did you mean "
        '`cf_plano_contratado` ("Plano contratado")?): fix the name, or create the field in RD '
        "Station",
        "  line 7: cf_segmento_de_mercado is not a field of your RD Station account (did you "
        'mean `cf_regiao` ("Região")?): fix the name, or create the field in RD Station',
    ]
    assert "RD Station account: 10 fields, 6 custom" in result.stderr
    snapshot = box.snapshot()
    assert snapshot["accepted"] == [] and snapshot["requests"] == 0  # nothing at all
    assert not (tmp_path / "out" / "summary.json").exists()


def test_a_cell_that_is_not_among_the_options_fails_its_row_and_the_others_are_sent(
    box: SandboxThread, tmp_path: Path
) -> None:
    data = write_csv(tmp_path / "leads.csv", HEADER, ROWS)
    mapping = write_mapping(tmp_path / "map.yaml", GOOD_MAPPING)
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, import_args(data, mapping, out, box.url))
    assert result.exit_code == 1, result.output
    assert result.stdout.startswith("Imported leads.csv: 4 rows sent, 1 failed, 0 skipped (of 5)")
    assert "RD Station account: 10 fields, 6 custom" in result.stderr
    sent = sorted(a["payload"]["email"] for a in box.snapshot()["accepted"])
    assert sent == ["ana@exemplo.com.br", "bia@exemplo.com.br", "duda@exemplo.com.br",
                    "edu@exemplo.com.br"]  # fmt: skip
    assert box.snapshot()["requests"] == 4  # the failed row was never sent
    [failed] = read_csv(out / "failures.csv")
    assert (failed["row"], failed["error_stage"], failed["error_type"]) == (
        "4", "validation", "INVALID_OPTION",
    )  # fmt: skip
    assert failed["error_message"] == (
        "cf_plano_contratado (column 'Plano'): 'Premium' is not one of the field's options; "
        "valid: 'basico', 'pro', 'avancado' (add a map: to the mapping)"
    )
    assert read_summary(out)["failed"] == 1


def test_every_cell_that_does_not_fit_is_named_in_its_row(
    box: SandboxThread, tmp_path: Path
) -> None:
    data = write_csv(
        tmp_path / "leads.csv",
        HEADER,
        [["ana@exemplo.com.br", "Ana", "Pro", "doze", "talvez", "fax", "Sul"]],
    )
    mapping = write_mapping(
        tmp_path / "map.yaml", GOOD_MAPPING.replace("transform: bool}", "on_invalid: keep}")
    )
    report = run_import(
        ImportConfig(input_path=data, mapping_path=mapping, out_dir=tmp_path / "out",
                     api_url=box.url, auth="oauth", rate=0, tuning=Tuning(retry_wait=False))
    )  # fmt: skip
    assert (report.succeeded, report.failed) == (0, 1)
    [failed] = read_csv(tmp_path / "out" / "failures.csv")
    assert failed["error_type"] == "INVALID_DATA_TYPE"  # the first one's
    assert failed["error_message"] == (
        "cf_funcionarios (column 'Funcionários'): 'doze' is not a whole number, which this "
        "field takes (INTEGER); cf_cliente (column 'Cliente?'): 'talvez' is not true or false, "
        "which this field takes (BOOLEAN): add transform: bool to the mapping, or a map: to "
        "true/false; cf_canais (column 'Canais'): 'fax' is not one of the field's options; "
        "valid: 'email', 'whatsapp', 'telefone' (add a map: to the mapping)"
    )
    assert box.snapshot()["requests"] == 0


def test_validate_with_oauth_checks_the_same_and_sends_nothing(
    box: SandboxThread, tmp_path: Path
) -> None:
    data = write_csv(tmp_path / "leads.csv", HEADER, ROWS)
    mapping = write_mapping(tmp_path / "map.yaml", GOOD_MAPPING)
    args = ["validate", str(data), "--mapping", str(mapping), "--out", str(tmp_path / "out"),
            "--auth", "oauth", "--api-url", box.url]  # fmt: skip
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1, result.output
    assert result.stdout.startswith("Checked leads.csv: 5 rows, 4 ready to send, 1 failed")
    assert read_csv(tmp_path / "out" / "failures.csv")[0]["error_type"] == "INVALID_OPTION"
    unknown = write_mapping(tmp_path / "unknown.yaml", TWO_UNKNOWN)
    result = CliRunner().invoke(cli, [*args[:3], str(unknown), *args[4:]])
    assert result.exit_code == 2
    assert "unknown.yaml: 2 custom fields are not in your RD Station account" in result.stderr
    assert box.snapshot()["requests"] == 0


def test_the_api_key_path_reads_no_fields_and_checks_no_cells(
    box: SandboxThread, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = write_csv(tmp_path / "leads.csv", HEADER, ROWS)
    mapping = write_mapping(tmp_path / "map.yaml", TWO_UNKNOWN)
    monkeypatch.setenv("RDSTATION_API_KEY", "k")
    args = import_args(data, mapping, tmp_path / "out", box.url)
    result = CliRunner().invoke(cli, [*args[:-2], "--auth", "apikey"])
    assert result.exit_code == 0, result.output
    assert "RD Station account" not in result.stderr
    assert box.snapshot()["requests"] == 5


def test_a_field_list_that_cannot_be_read_stops_the_run_resumably(
    config_home: Path, tmp_path: Path
) -> None:
    data = write_csv(tmp_path / "leads.csv", HEADER, ROWS)
    mapping = write_mapping(tmp_path / "map.yaml", GOOD_MAPPING)
    with SandboxThread(SandboxConfig(seed=1, fields={"errors": "none here"})) as broken:
        oauth.TokenFile().save(asyncio.run(oauth.sign_in_headless(broken.url)).load())
        result = CliRunner().invoke(cli, import_args(data, mapping, tmp_path / "out", broken.url))
        assert broken.snapshot()["requests"] == 0
    assert result.exit_code == 3, result.output
    assert result.stdout.splitlines()[:2] == [
        "Stopped: RD Station's list of the account's fields (/platform/contacts/fields) "
        "answered a JSON object without a fields list (keys: errors), not a field list: check "
        "--api-url, then run the command again.",
        "0 rows sent, 0 failed, 5 left to send. Run the same command to resume.",
    ]
    assert "Traceback" not in result.output


# --- the sandbox ---------------------------------------------------------------------------------


async def test_the_sandbox_lists_fields_only_to_a_bearer_token() -> None:
    import aiohttp

    async with (
        running_sandbox(SandboxConfig(fields=ACCOUNT)) as sandbox,
        aiohttp.ClientSession() as http,
    ):
        async with http.get(sandbox.url + FIELDS_PATH) as answer:
            assert answer.status == 401
            assert (await answer.json())["errors"]["error_type"] == "UNAUTHORIZED"
        tokens = (await oauth.sign_in_headless(sandbox.url)).load()
        headers = {"Authorization": f"Bearer {tokens.access_token}"}
        async with http.get(sandbox.url + FIELDS_PATH, headers=headers) as answer:
            assert answer.status == 200
            assert await answer.json() == ACCOUNT
        assert sandbox.snapshot()["requests"] == 0  # reading it costs no budget


def bundled_custom_fields() -> set[str]:
    names = set()
    for path in (ROOT / "mappings").glob("*.yaml"):
        names |= {n for n in (yaml.safe_load(path.read_text("utf-8")).get("fields") or {})
                  if n.startswith("cf_")}  # fmt: skip
    return names


def test_the_default_account_has_every_custom_field_of_the_bundled_mappings() -> None:
    default = af.parse_fields({"fields": list(DEFAULT_FIELDS)})
    assert default is not None and default.problems == []
    assert bundled_custom_fields() <= set(default.fields)
    assert {"cf_cep", "cf_plano", "cf_data_de_cadastro"} <= set(default.fields)
    types = {(f.data_type, f.presentation_type) for f in default.custom}
    for kind in [("STRING", "COMBO_BOX"), ("STRING", "RADIO_BUTTON"), ("INTEGER", "NUMBER_INPUT"),
                 ("BOOLEAN", "CHECK_BOX"), ("STRING[]", "MULTIPLE_CHOICE")]:  # fmt: skip
        assert kind in types
    assert {"name", "email", "job_title", "personal_phone", "mobile_phone", "city", "state",
            "country", "twitter", "facebook", "linkedin", "website", "bio", "birthdate",
            "tags"} <= set(default.fields)  # fmt: skip


def test_the_quick_start_runs_with_oauth_as_with_the_api_key(
    config_home: Path, tmp_path: Path
) -> None:
    args = ["import", str(ROOT / "sample_data" / "leads.csv"), "--mapping",
            str(ROOT / "mappings" / "example.yaml"), "--sandbox", "--rate", "0"]  # fmt: skip
    with_key = CliRunner().invoke(cli, [*args, "--out", str(tmp_path / "key")])
    with_oauth = CliRunner().invoke(
        cli, [*args, "--out", str(tmp_path / "oauth"), "--auth", "oauth"]
    )
    assert with_oauth.exit_code == with_key.exit_code == 1
    assert "RD Station account: 23 fields, 8 custom" in with_oauth.stderr
    counts = [result.stdout.split(" in ")[0] for result in (with_key, with_oauth)]
    assert counts == ["Imported leads.csv: 35 rows sent, 5 failed, 0 skipped (of 40)"] * 2


def test_a_fields_file_is_rd_stations_answer_or_the_bare_list(tmp_path: Path) -> None:
    path = tmp_path / "fields.json"
    path.write_text(json.dumps(ACCOUNT), encoding="utf-8")
    assert fields_answer(load_fields_file(path)) == ACCOUNT
    path.write_text(json.dumps(ACCOUNT["fields"]), encoding="utf-8")
    assert fields_answer(load_fields_file(path)) == ACCOUNT
    assert fields_answer(None) == {"fields": list(DEFAULT_FIELDS)}


def test_the_sandbox_command_refuses_a_fields_file_that_is_not_a_list(tmp_path: Path) -> None:
    bad = tmp_path / "fields.json"
    bad.write_text('{"campos": []}', encoding="utf-8")
    result = CliRunner().invoke(cli, ["sandbox", "--fields", str(bad), "--port", "0"])
    assert result.exit_code == 2
    assert result.stderr == (
        f'Error: --fields {bad}: write {{"fields": [...]}} as RD Station answers '
        "/platform/contacts/fields, or the bare list of fields\n"
    )
    bad.write_text("[{", encoding="utf-8")
    result = CliRunner().invoke(cli, ["sandbox", "--fields", str(bad), "--port", "0"])
    assert result.exit_code == 2 and "is not JSON" in result.stderr


# --- mapping init --auth oauth -------------------------------------------------------------------


def test_mapping_init_maps_a_header_to_the_custom_field_labelled_like_it(
    box: SandboxThread, tmp_path: Path
) -> None:
    data = write_csv(
        tmp_path / "leads.csv",
        ["E-mail", "Nome", "Plano contratado", "Numero de Funcionarios", "Já é cliente?", "Canais",
         "Observação"],
        [["ana@exemplo.com.br", "Ana", "Pro", "12", "sim", "email, whatsapp", "x"],
         ["bia@exemplo.com.br", "Bia", "Básico", "3", "não", "telefone", "y"]],
    )  # fmt: skip
    output = tmp_path / "map.yaml"
    args = ["mapping", "init", str(data), "-o", str(output), "--auth", "oauth",
            "--api-url", box.url]  # fmt: skip
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert result.stderr.startswith("RD Station account: 10 fields, 6 custom\n")
    text = output.read_text("utf-8")
    assert "  # Custom fields of your RD Station account, matched by their label:\n" in text
    assert (
        '  cf_plano_contratado: {column: "Plano contratado", map: {"Pro": "pro", "Básico": '
        '"basico"}}  # options: basico, pro, avancado\n' in text
    )
    assert '  cf_funcionarios: "Numero de Funcionarios"\n' in text
    assert '  cf_cliente: {column: "Já é cliente?", transform: bool}\n' in text
    assert (
        '  cf_canais: {column: "Canais", split: ","}  # options: email, whatsapp, telefone\n'
        in text
    )
    assert '  # cf_observacao: "Observação"\n' in text  # not in the account: a suggestion
    load_mapping(output)  # it runs as is
    imported = CliRunner().invoke(cli, import_args(data, output, tmp_path / "out", box.url))
    assert imported.exit_code == 0, imported.output
    assert len(box.snapshot()["accepted"]) == 2


def test_mapping_init_with_oauth_needs_the_sign_in_or_its_sandbox(
    config_home: Path, tmp_path: Path
) -> None:
    data = write_csv(
        tmp_path / "leads.csv", ["E-mail", "Plano", "CEP"], [["a@b.com.br", "Pro", "1"]]
    )
    result = CliRunner().invoke(cli, ["mapping", "init", str(data), "--auth", "oauth"])
    assert result.exit_code == 2
    assert result.stderr == "Error: not signed in: run `rd-importer auth login`\n"
    result = CliRunner().invoke(cli, ["mapping", "init", str(data), "--auth", "oauth", "--sandbox"])
    assert result.exit_code == 0, result.output
    assert '  cf_plano: {column: "Plano", map: {"Pro": "pro"}}' in result.stdout
    assert '  cf_cep: "CEP"\n' in result.stdout
    assert not config_home.exists()  # the sandbox's sign-in lived in memory


def mapping_of(tmp_path: Path, *fields: str) -> Mapping:
    text = "conversion_identifier: x\nfields:\n  email: E\n" + "".join(f"  {f}\n" for f in fields)
    return load_mapping(write_mapping(tmp_path / "m.yaml", text))


def test_the_checks_cost_nothing_when_no_mapped_field_has_a_rule(tmp_path: Path) -> None:
    plain = mapping_of(tmp_path, "cf_origem_do_lead: O", "city: C")
    assert af.cell_check(plain, account(), ["E", "O", "C"]) is None  # a row costs nothing more
    af.check_mapping(plain, account())  # every cf_ exists: nothing raised
    split = mapping_of(tmp_path, 'cf_origem_do_lead: {column: O, split: ","}')
    check_row = af.cell_check(split, account(), ["E", "O"])
    assert check_row is not None
    assert check_row({"cf_origem_do_lead": ["a", "b"]}) == af.CellProblem(
        "MUST_BE_STRING",
        "cf_origem_do_lead (column 'O'): a list is not one text, which this field takes "
        "(STRING): remove split: from the mapping",
    )


def test_one_unknown_field_is_one_line_and_a_mapping_given_in_python_has_no_lines(
    tmp_path: Path,
) -> None:
    with pytest.raises(InputError) as caught:
        af.check_mapping(mapping_of(tmp_path, "cf_origem: O"), account())
    assert str(caught.value) == (
        "m.yaml: line 4: cf_origem is not a field of your RD Station account (did you mean "
        '`cf_origem_do_lead` ("Origem do lead")?): fix the name, or create the field in RD '
        "Station"
    )
    given = Mapping(Path("<mapping>"), mapping_of(tmp_path, "cf_zzz: O").spec)
    with pytest.raises(InputError) as caught:
        af.check_mapping(given, af.parse_fields([rd_field("cf_a", "A")]))  # type: ignore[arg-type]
    assert str(caught.value) == (
        "<mapping>: cf_zzz is not a field of your RD Station account (its custom fields: "
        "cf_a): fix the name, or create the field in RD Station"
    )
    with pytest.raises(InputError, match="which has no custom fields: create it in RD Station"):
        af.check_mapping(given, af.parse_fields([rd_field("city", "City")]))  # type: ignore[arg-type]


def test_watch_stops_on_an_unknown_custom_field_and_keeps_the_file(
    box: SandboxThread, tmp_path: Path
) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    dropped = write_csv(inbox / "leads.csv", HEADER, ROWS)
    past = time.time() - 600  # settled: not being written
    os.utime(dropped, (past, past))
    mapping = write_mapping(tmp_path / "map.yaml", TWO_UNKNOWN)
    result = CliRunner().invoke(
        cli,
        ["watch", str(inbox), "--mapping", str(mapping), "--out", str(tmp_path / "out"),
         "--once", "--api-url", box.url, "--auth", "oauth", "--rate", "0"],
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    assert "2 custom fields are not in your RD Station account" in result.stderr
    # The mapping is at fault, not the file: it stays for the next run, not in rejected/.
    assert dropped.exists()
    assert not any((inbox / "rejected").glob("*")) and not any((inbox / "processed").glob("*"))
    assert box.snapshot()["accepted"] == []


# --- found in review ---------------------------------------------------------------------------


def test_an_integer_field_refuses_the_digits_of_other_scripts() -> None:
    # Python's \d takes "１２" (full-width) and "٤٢" (Arabic-Indic): RD Station reads neither.
    for other in ("１２", "٤٢"):
        assert check("cf_funcionarios", other)[0] == "INVALID_DATA_TYPE"  # type: ignore[index]


def test_a_value_the_mapping_writes_that_its_field_refuses_stops_the_run_at_its_line(
    tmp_path: Path,
) -> None:
    fits = mapping_of(
        tmp_path,
        "cf_regiao: {value: sul}",
        "cf_cliente: {column: C, map: {Sim: true, Não: false}}",
        "cf_funcionarios: {column: F, map: {dez: 10, doze: '12'}, default: 0}",
        'cf_canais: {column: K, split: ",", map: {Mail: email, Zap: whatsapp}}',
        'cf_plano_contratado: {column: P, map: {"": basico, Pro: pro}}',
    )
    af.check_mapping(fits, account())  # each written value fits: nothing raised
    unfit = mapping_of(
        tmp_path,
        "cf_regiao: {value: Sul}",
        'cf_cliente: {column: C, map: {Sim: "true"}}',
        "cf_funcionarios: {column: F, default: muitos}",
        'cf_canais: {column: K, split: ",", map: {Mail: E-mail}}',
    )
    with pytest.raises(InputError) as caught:
        af.check_mapping(unfit, account())
    assert str(caught.value).splitlines() == [
        "m.yaml: 4 values do not fit your RD Station account's fields:",
        "  line 4: cf_regiao value: 'Sul' is not one of the field's options (did you mean "
        "'sul'?); valid: 'norte', 'sul', 'sudeste': fix the mapping",
        "  line 5: cf_cliente map: 'Sim' -> 'true' is not true or false, which this field takes "
        "(BOOLEAN): write true without quotes",
        "  line 6: cf_funcionarios default: 'muitos' is not a whole number, which this field "
        "takes (INTEGER): fix the mapping",
        "  line 7: cf_canais map: 'Mail' -> 'E-mail' is not one of the field's options (did you "
        "mean 'email'?); valid: 'email', 'whatsapp', 'telefone': fix the mapping",
    ]


def test_a_mapping_the_account_refuses_leaves_no_out_folder_behind(
    box: SandboxThread, tmp_path: Path
) -> None:
    data = write_csv(tmp_path / "leads.csv", HEADER, ROWS)
    mapping = write_mapping(tmp_path / "map.yaml", TWO_UNKNOWN)
    for command in ("import", "validate"):
        args = import_args(data, mapping, tmp_path / "out", box.url)
        if command == "validate":
            args = [a for a in args if a not in ("--rate", "0")]
        args[0] = command
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 2, result.output
        assert not (tmp_path / "out").exists()  # no ledger, no lock: as a mapping typo leaves


def test_mapping_init_maps_a_yes_no_field_with_options_through_bool_alone(
    config_home: Path, tmp_path: Path
) -> None:
    # RD Station lists a yes/no field's radio buttons as options "true"/"false": a map: to
    # those texts would run after transform: bool (and send a text): every row would fail.
    yes_no = rd_field(
        "cf_ativo", "Ativo", "BOOLEAN", "RADIO_BUTTON", options=[("true", "Sim"), ("false", "Não")]
    )
    with SandboxThread(SandboxConfig(seed=1, fields=[*ACCOUNT["fields"], yes_no])) as running:
        oauth.TokenFile().save(asyncio.run(oauth.sign_in_headless(running.url)).load())
        data = write_csv(
            tmp_path / "leads.csv",
            ["E-mail", "Ativo"],
            [["ana@exemplo.com.br", "Sim"], ["bia@exemplo.com.br", "Não"]],
        )
        output = tmp_path / "map.yaml"
        args = ["mapping", "init", str(data), "-o", str(output), "--auth", "oauth",
                "--api-url", running.url]  # fmt: skip
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 0, result.output
        text = output.read_text("utf-8")
        assert '  cf_ativo: {column: "Ativo", transform: bool}  # options: true, false\n' in text
        args = ["validate", str(data), "--mapping", str(output), "--out", str(tmp_path / "out"),
                "--auth", "oauth", "--api-url", running.url]  # fmt: skip
        checked = CliRunner().invoke(cli, args)
        assert checked.exit_code == 0, checked.output
        assert read_summary(tmp_path / "out")["would_send"] == 2


def test_a_choice_field_checks_a_yes_or_no_as_the_payload_writes_it() -> None:
    # transform: bool on a combo box sent true unchecked: RD Station refuses it (INVALID_OPTION).
    assert check("cf_regiao", True)[0] == "INVALID_OPTION"  # type: ignore[index]
    assert check("cf_canais", [False])[0] == "INVALID_OPTION"  # type: ignore[index]
    yes_no = rd_field("cf_sn", "SN", presentation="RADIO_BUTTON", options=[("true", "Sim")])
    sn = af.parse_fields([yes_no]).get("cf_sn")  # type: ignore[union-attr]
    assert sn is not None and af.value_check(sn)(True) is None  # type: ignore[misc]


@pytest.mark.parametrize("command", ["validate", "mapping init"])
def test_sandbox_without_oauth_is_refused_not_ignored(
    command: str, config_home: Path, tmp_path: Path
) -> None:
    # --sandbox alone read no fields and checked nothing, silently.
    data = write_csv(tmp_path / "leads.csv", ["E-mail"], [["a@b.com.br"]])
    args = [*command.split(), str(data), "--sandbox", "--out", str(tmp_path / "out")]
    if command == "mapping init":
        args = args[:-2]
    else:
        args += [
            "--mapping",
            str(
                write_mapping(
                    tmp_path / "m.yaml", "conversion_identifier: x\nfields:\n  email: E-mail\n"
                )
            ),
        ]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2, result.output
    assert result.stderr == (
        "Error: --sandbox stands in for your account's fields, which only --auth oauth reads: "
        "add --auth oauth\n"
    )
    assert not (tmp_path / "out").exists()


def test_mapping_init_offers_each_field_a_header_labels_when_two_are_labelled_alike(
    tmp_path: Path,
) -> None:
    # It suggested one cf_ from the header, under "create the field in RD Station first".
    from importer.scaffold import scaffold_mapping

    alike = [rd_field("cf_regiao", "Região"), rd_field("cf_regiao_vendas", "Regiao")]
    data = write_csv(tmp_path / "leads.csv", ["E-mail", "Região"], [["a@b.com.br", "Sul"]])
    text = scaffold_mapping(data, account=af.parse_fields(alike))
    assert (
        '  # "Região" labels 2 fields of your RD Station account: uncomment the one to send it '
        'to\n  # cf_regiao: "Região"\n  # cf_regiao_vendas: "Região"\n'
    ) in text
    assert "Other columns" not in text
    load_mapping(write_mapping(tmp_path / "m.yaml", text))
