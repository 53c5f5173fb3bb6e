"""Issue 13: ``--as contacts``, each row upserting its contact instead of recording a conversion;
and the sandbox's contacts and funnel endpoints as RD Station documents them."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import aiohttp
import pytest
from click.testing import CliRunner

from helpers import read_csv, read_summary, write_csv, write_mapping
from importer import import_rows, oauth
from importer.cli import cli
from importer.contacts import as_contact, contact_path
from importer.errors import InputError
from importer.pipeline import ImportConfig, Tuning, run_import
from importer.sandbox import SandboxConfig, SandboxThread, running_sandbox

MAPPING = """\
conversion_identifier: migracao
fields:
  email: email
  name: nome
  company_name: empresa
  traffic_source: {value: crm}
  tags: {column: tags, split: ","}
legal_bases:
  - {category: communications, type: consent, status: granted}
"""
HEADER = ["email", "nome", "empresa", "tags"]
ROWS = [
    ["ana+crm@exemplo.com.br", "Ana", "Padaria", "vip"],
    ["bia@exemplo.com.br", "Bia", "", "a, b"],
]


@pytest.fixture(autouse=True)
def config_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in list(os.environ):
        if name.startswith("RDSTATION_"):
            monkeypatch.delenv(name)
    home = tmp_path / "config"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home))
    return home


def sign_in_to(url: str) -> None:
    oauth.TokenFile().save(asyncio.run(oauth.sign_in_headless(url)).load())


def files(tmp_path: Path, mapping: str = MAPPING) -> tuple[Path, Path]:
    data = write_csv(tmp_path / "leads.csv", HEADER, ROWS)
    return data, write_mapping(tmp_path / "m.yaml", mapping)


def config(data: Path, mapping: Path, out: Path, url: str, **more: object) -> ImportConfig:
    settings: dict = {"send_as": "contacts", "concurrency": 2, **more}
    return ImportConfig(input_path=data, mapping_path=mapping, out_dir=out, api_url=url,
                        auth="oauth", rate=0, tuning=Tuning(retry_wait=False),
                        **settings)  # fmt: skip


def test_contacts_are_patched_without_email_in_the_body_and_successes_hold_their_uuid(
    tmp_path: Path,
) -> None:
    data, mapping = files(tmp_path)
    out = tmp_path / "out"
    with SandboxThread(SandboxConfig(seed=1)) as box:
        sign_in_to(box.url)
        report = run_import(config(data, mapping, out, box.url))
        snapshot = box.snapshot()
    assert (report.succeeded, report.failed, report.exit_status) == (2, 0, 0)
    assert snapshot["accepted"] == []  # no conversion recorded: no automation fired
    requests = sorted((r["method"], r["email"], r["body"]) for r in snapshot["contact_requests"])
    basis = [{"category": "communications", "type": "consent", "status": "granted"}]
    assert requests == [
        ("PATCH", "ana+crm@exemplo.com.br", {"legal_bases": basis, "name": "Ana", "tags": ["vip"]}),
        ("PATCH", "bia@exemplo.com.br", {"legal_bases": basis, "name": "Bia", "tags": ["a", "b"]}),
    ]
    successes = {s["email"]: s for s in read_csv(out / "successes.csv")}
    for email, contact in snapshot["contacts"].items():
        assert successes[email]["event_uuid"] == contact["uuid"]
        assert successes[email]["conversion_identifier"] == ""
    warnings = [w["message"] for w in read_summary(out)["warnings"]]
    assert (
        "--as contacts: company_name, traffic_source are conversion fields the contacts API "
        "does not take; left out of every contact"
    ) in warnings


def test_a_conversions_run_and_a_contacts_run_of_one_file_do_not_mistake_each_other(
    tmp_path: Path,
) -> None:
    data, mapping = files(tmp_path)
    out = tmp_path / "out"
    with SandboxThread(SandboxConfig(seed=1)) as box:
        sign_in_to(box.url)
        converted = run_import(config(data, mapping, out, box.url, send_as="conversions"))
        assert converted.succeeded == 2
        upserted = run_import(config(data, mapping, out, box.url))
        assert (upserted.succeeded, upserted.skipped) == (2, 0)  # not "already sent"
        again = run_import(config(data, mapping, out, box.url))
        assert (again.succeeded, again.skipped) == (0, 2)  # but a contact is sent once
        snapshot = box.snapshot()
    assert (len(snapshot["accepted"]), len(snapshot["contact_requests"])) == (2, 2)


def test_contacts_take_the_funnel_step_too(tmp_path: Path) -> None:
    funnel = (
        "funnel:\n  lifecycle_stage: {value: Client}\n"
        "  contact_owner_email: {value: vendas@empresa.com.br}\n"
    )
    data, mapping = files(tmp_path, MAPPING + funnel)
    out = tmp_path / "out"
    with SandboxThread(SandboxConfig(seed=1)) as box:
        sign_in_to(box.url)
        report = run_import(config(data, mapping, out, box.url))
        snapshot = box.snapshot()
    assert (report.succeeded, report.failed) == (2, 0)
    methods = [r["method"] for r in snapshot["contact_requests"]]
    assert sorted(methods) == ["PATCH", "PATCH", "PUT", "PUT"]
    assert methods.index("PUT") > max(i for i, m in enumerate(methods) if m == "PATCH")
    assert snapshot["funnels"]["bia@exemplo.com.br"]["lifecycle_stage"] == "Client"


def test_the_per_lead_limit_fails_a_contact_in_words_of_contacts(tmp_path: Path) -> None:
    """RD Station takes about 24 updates per contact a day: over it, the row fails as
    LEAD_LIMITED, to resume tomorrow, and says the contact (not a conversion) was not updated."""
    data = write_csv(tmp_path / "leads.csv", HEADER, [ROWS[1], [ROWS[1][0], "Bia Lima", "", ""]])
    mapping = write_mapping(tmp_path / "m.yaml", MAPPING)
    out = tmp_path / "out"
    with SandboxThread(SandboxConfig(seed=1, lead_limit=1)) as box:
        sign_in_to(box.url)
        report = run_import(config(data, mapping, out, box.url, concurrency=1))
        snapshot = box.snapshot()
    assert (report.succeeded, report.failed, report.exit_status) == (1, 1, 1)
    assert len(snapshot["contact_requests"]) == 1
    [failed] = read_csv(out / "failures.csv")
    assert (failed["row"], failed["error_type"]) == ("3", "LEAD_LIMITED")
    assert "the contact was not updated" in failed["error_message"]
    assert "conversion" not in failed["error_message"]


def test_more_rows_of_one_contact_than_a_day_takes_are_said_in_words_of_contacts(
    tmp_path: Path,
) -> None:
    rows = [[ROWS[1][0], f"Bia {n}", "", ""] for n in range(25)]
    data = write_csv(tmp_path / "leads.csv", HEADER, rows)
    mapping = write_mapping(tmp_path / "m.yaml", MAPPING)
    with SandboxThread(SandboxConfig(seed=1)) as box:
        sign_in_to(box.url)
        report = run_import(config(data, mapping, tmp_path / "out", box.url, dry_run=True))
    [said] = [w.message for w in report.warnings if "rows to send" in w.message]
    assert "about 24 updates per contact a day" in said and "conversion" not in said


def test_as_contacts_with_the_api_key_is_refused_in_one_line_with_exit_2(tmp_path: Path) -> None:
    data, mapping = files(tmp_path)
    result = CliRunner().invoke(
        cli, ["import", str(data), "--mapping", str(mapping), "--out", str(tmp_path / "o"),
              "--sandbox", "--as", "contacts"])  # fmt: skip
    assert result.exit_code == 2
    assert result.stderr == (
        "Error: --as contacts needs --auth oauth: RD Station upserts contacts only for a "
        "signed-in app (`rd-importer auth login`); with the API key, import conversions\n"
    )
    with pytest.raises(InputError, match="--as contacts needs --auth oauth"):
        ImportConfig(input_path=data, mapping_path=mapping, send_as="contacts", sandbox=True)


def test_the_cli_and_the_python_api_take_as_contacts(tmp_path: Path) -> None:
    data, mapping = files(tmp_path)
    result = CliRunner().invoke(
        cli, ["import", str(data), "--mapping", str(mapping), "--out", str(tmp_path / "cli"),
              "--sandbox", "--auth", "oauth", "--as", "contacts", "--rate", "0"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert [s["conversion_identifier"] for s in read_csv(tmp_path / "cli" / "successes.csv")] == [
        "",
        "",
    ]
    report = import_rows(data, mapping, out=tmp_path / "py", sandbox=True, auth="oauth",
                         as_="contacts", rate=0)  # fmt: skip
    assert (report.succeeded, report.failed) == (2, 0)


def test_watch_takes_as_contacts(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    data, mapping = files(tmp_path)
    data.rename(inbox / "leads.csv")
    result = CliRunner().invoke(
        cli, ["watch", str(inbox), "--mapping", str(mapping), "--out", str(tmp_path / "out"),
              "--once", "--sandbox", "--auth", "oauth", "--as", "contacts",
              "--rate", "0"])  # fmt: skip
    assert result.exit_code == 0, result.output


# --- pieces -----------------------------------------------------------------------------------


def test_the_email_is_quoted_in_the_path_and_left_out_of_the_body() -> None:
    path = contact_path("ana+crm@exemplo.com.br")
    assert path == "/platform/contacts/email:ana%2Bcrm@exemplo.com.br"
    body = (
        b'{"event_family":"CDP","event_type":"CONVERSION","payload":{"conversion_identifier":"x",'
        b'"email":"a@b.co","name":"A","traffic_medium":"m"}}'
    )
    contact, key, dropped = as_contact(body)
    assert contact == b'{"email":"a@b.co","payload":{"name":"A"}}'
    assert key.startswith("contact:") and dropped == ["conversion_identifier", "traffic_medium"]


# --- the sandbox's endpoints ------------------------------------------------------------------


async def _sandbox_answers(**config: object) -> dict[str, tuple[int, object]]:
    async with running_sandbox(SandboxConfig(seed=1, **config)) as box:  # type: ignore[arg-type]
        token = (await oauth.sign_in_headless(box.url)).load().access_token
        bearer = {"Authorization": f"Bearer {token}"}
        out: dict[str, tuple[int, object]] = {}
        async with aiohttp.ClientSession() as http:

            async def call(name: str, method: str, path: str, body: object, **kw: object) -> None:
                headers = kw.get("headers", bearer)
                async with http.request(method, box.url + path, json=body, headers=headers) as r:  # type: ignore[arg-type]
                    out[name] = (r.status, await r.json())

            contact = "/platform/contacts/email:ana@exemplo.com.br"
            await call("no token", "PATCH", contact, {"name": "Ana"}, headers={})
            await call("email twice", "PATCH", contact, {"email": "ana@exemplo.com.br"})
            await call("conversion field", "PATCH", contact, {"traffic_source": "x"})
            await call("funnel first", "PUT", contact + "/funnels/default", {"opportunity": True})
            await call("upsert", "PATCH", contact, {"name": "Ana", "tags": ["vip"]})
            funnel = contact + "/funnels/default"
            await call("stage", "PUT", funnel, {"lifecycle_stage": "Cliente"})
            await call("owner", "PUT", funnel, {"contact_owner_email": "x@y.com"})
            await call("funnel", "PUT", funnel, {"lifecycle_stage": "Client", "opportunity": True})
        out["snapshot"] = (0, box.snapshot())
        return out


def test_the_sandbox_contacts_and_funnel_answer_as_rd_station_documents() -> None:
    answers = asyncio.run(_sandbox_answers())
    assert answers["no token"][0] == 401
    status, body = answers["email twice"]
    assert status == 400 and body["errors"]["email"][0]["error_type"] == "CONFLICTING_FIELD"  # type: ignore[index]
    status, body = answers["conversion field"]
    assert status == 400 and body["errors"]["traffic_source"][0]["error_type"] == "INVALID"  # type: ignore[index]
    assert answers["funnel first"][0] == 404  # no such contact yet
    status, body = answers["upsert"]
    assert status == 200 and body["email"] == "ana@exemplo.com.br" and body["uuid"]  # type: ignore[index]
    status, body = answers["stage"]
    assert status == 400 and body["errors"][0]["validation_rules"]["valid_options"] == [  # type: ignore[index]
        "Lead",
        "Qualified Lead",
        "Client",
    ]
    assert answers["owner"] == (
        400,
        {
            "errors": {
                "error_type": "INVALID_USER",
                "error_message": "The user x@y.com was not found in your account.",
            }
        },
    )
    assert answers["funnel"] == (200, {"lifecycle_stage": "Client", "opportunity": True})
    snapshot = answers["snapshot"][1]
    assert snapshot["contacts"]["ana@exemplo.com.br"]["tags"] == ["vip"]  # type: ignore[index]
    assert [r["method"] for r in snapshot["contact_requests"]] == ["PATCH", "PUT"]  # type: ignore[index]
