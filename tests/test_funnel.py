"""Issue 13: the mapping's funnel: section, set after each conversion as its own ledger step.

Every run here goes through ``run_import`` or the CLI against the sandbox on loopback, signed in
with OAuth in a temporary config folder; the sandbox's snapshot says exactly what was sent.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from helpers import ROOT, read_csv, read_summary, write_csv, write_mapping
from importer import oauth
from importer.cli import cli
from importer.errors import InputError
from importer.ledger import Ledger
from importer.mapping import load_mapping
from importer.pipeline import ImportConfig, Listener, RunControl, Tuning, run_import
from importer.sandbox import SandboxConfig, SandboxThread

MAPPING = """\
conversion_identifier: migracao
fields:
  email: email
  name: nome
funnel:
  lifecycle_stage:
    column: estagio
    map: {lead: Lead, qualificado: Qualified Lead, cliente: Client}
  opportunity: {column: oportunidade, transform: bool}
  contact_owner_email: dono
"""
HEADER = ["email", "nome", "estagio", "oportunidade", "dono"]
ROWS = [
    ["ana@exemplo.com.br", "Ana", "lead", "não", "vendas@empresa.com.br"],
    ["bia@exemplo.com.br", "Bia", "Cliente", "sim", "ana.souza@empresa.com.br"],
    ["caio@exemplo.com.br", "Caio", "qualificado", "", ""],
]
FAST = Tuning(retry_wait=False, funnel_not_found_wait=0.01)


@pytest.fixture(autouse=True)
def config_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in list(os.environ):
        if name.startswith("RDSTATION_"):
            monkeypatch.delenv(name)
    home = tmp_path / "config"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home))
    return home


def sign_in_to(url: str) -> None:
    import asyncio

    oauth.TokenFile().save(asyncio.run(oauth.sign_in_headless(url)).load())


def files(
    tmp_path: Path, rows: list[list[str]] = ROWS, mapping: str = MAPPING
) -> tuple[Path, Path]:
    return write_csv(tmp_path / "leads.csv", HEADER, rows), write_mapping(
        tmp_path / "m.yaml", mapping
    )


def config(data: Path, mapping: Path, out: Path, url: str, **more: object) -> ImportConfig:
    return ImportConfig(input_path=data, mapping_path=mapping, out_dir=out, api_url=url,
                        auth="oauth", rate=0, concurrency=2, tuning=FAST, **more)  # type: ignore[arg-type]  # fmt: skip


def puts(snapshot: dict) -> list[tuple[str, dict]]:
    requests = snapshot.get("contact_requests", [])
    return [(r["email"], r["body"]) for r in requests if r["method"] == "PUT"]


def counts_add_up(summary: dict) -> None:
    assert summary["rows"] == summary["succeeded"] + summary["failed"] + summary["skipped"]


# --- the funnel, set after each conversion ----------------------------------------------------


def test_the_funnel_is_set_after_each_conversion_with_only_the_keys_the_row_has(
    tmp_path: Path,
) -> None:
    data, mapping = files(tmp_path)
    out = tmp_path / "out"
    with SandboxThread(SandboxConfig(seed=1)) as box:
        sign_in_to(box.url)
        report = run_import(config(data, mapping, out, box.url))
        snapshot = box.snapshot()
    assert (report.succeeded, report.failed, report.exit_status) == (3, 0, 0)
    assert len(snapshot["accepted"]) == 3
    assert sorted(puts(snapshot)) == [
        ("ana@exemplo.com.br", {"contact_owner_email": "vendas@empresa.com.br",
                                "lifecycle_stage": "Lead", "opportunity": False}),
        ("bia@exemplo.com.br", {"contact_owner_email": "ana.souza@empresa.com.br",
                                "lifecycle_stage": "Client", "opportunity": True}),
        ("caio@exemplo.com.br", {"lifecycle_stage": "Qualified Lead"}),  # empty cells: left out
    ]  # fmt: skip
    assert snapshot["funnels"]["caio@exemplo.com.br"]["lifecycle_stage"] == "Qualified Lead"
    summary = read_summary(out)
    assert summary["funnel"] == {
        "steps": 3,
        "sent": 3,
        "already_sent": 0,
        "failed": 0,
        "pending": 0,
        "waiting": 0,
    }
    assert summary["requests"] == 6  # three conversions, three funnels
    counts_add_up(summary)


def test_an_unknown_owner_fails_the_row_at_the_funnel_step_and_no_conversion_is_sent_again(
    tmp_path: Path,
) -> None:
    rows = [ROWS[0], ["bia@exemplo.com.br", "Bia", "cliente", "sim", "ninguem@empresa.com.br"]]
    data, mapping = files(tmp_path, rows)
    out = tmp_path / "out"
    with SandboxThread(SandboxConfig(seed=1)) as box:
        sign_in_to(box.url)
        report = run_import(config(data, mapping, out, box.url))
        assert (report.succeeded, report.failed, report.exit_status) == (1, 1, 1)
        failures = read_csv(out / "failures.csv")
        successes = read_csv(out / "successes.csv")
        assert [f["error_stage"] for f in failures] == ["funnel"]
        failed = failures[0]
        assert (failed["http_status"], failed["error_type"]) == ("400", "INVALID_USER")
        uuid = next(s["event_uuid"] for s in successes if s["email"] == "bia@exemplo.com.br")
        assert (
            f"the conversion was recorded (event_uuid {uuid}); only the funnel step failed"
            in (failed["error_message"])
        )
        assert (
            "The user ninguem@empresa.com.br was not found in your account."
            in (failed["error_message"])
        )
        assert len(successes) == 2  # its conversion WAS recorded: the record keeps it
        counts_add_up(read_summary(out))

        # The same file again: the refused step stays failed, nothing is sent.
        again = run_import(config(data, mapping, out, box.url))
        assert (again.succeeded, again.failed, again.skipped) == (0, 1, 1)
        assert box.snapshot()["requests"] == 4

        # failures.csv, the owner fixed, into the same folder: only the funnel step is sent.
        fixed = tmp_path / "fixed.csv"
        text = (out / "failures.csv").read_text(encoding="utf-8-sig")
        fixed.write_text(text.replace("ninguem@", "marketing@"), encoding="utf-8")
        third = run_import(config(fixed, mapping, out, box.url))
        snapshot = box.snapshot()
    assert (third.succeeded, third.failed, third.exit_status) == (1, 0, 0)
    assert len(snapshot["accepted"]) == 2  # never a conversion again
    assert puts(snapshot)[-1] == ("bia@exemplo.com.br", {
        "contact_owner_email": "marketing@empresa.com.br", "lifecycle_stage": "Client",
        "opportunity": True})  # fmt: skip
    assert read_csv(out / "failures.csv") == []


def test_new_funnel_values_of_a_row_done_earlier_set_its_funnel_again_and_say_so(
    tmp_path: Path,
) -> None:
    """A stage changed in the CRM since the import: the funnel is set again, never the
    conversion, and the run says which row; a dry run in between does not hide it."""
    data, mapping = files(tmp_path)
    out = tmp_path / "out"
    with SandboxThread(SandboxConfig(seed=1)) as box:
        sign_in_to(box.url)
        run_import(config(data, mapping, out, box.url))
        rows = [ROWS[0], [*ROWS[1][:2], "qualificado", *ROWS[1][3:]], ROWS[2]]
        files(tmp_path, rows)
        checked = run_import(config(data, mapping, out, box.url, dry_run=True))
        assert [w.kind for w in checked.warnings] == ["funnel_changed"]
        again = run_import(config(data, mapping, out, box.url))
        snapshot = box.snapshot()
    assert len(snapshot["accepted"]) == 3  # no conversion sent again
    assert puts(snapshot)[-1] == ("bia@exemplo.com.br", {
        "contact_owner_email": "ana.souza@empresa.com.br", "lifecycle_stage": "Qualified Lead",
        "opportunity": True})  # fmt: skip
    assert (again.succeeded, again.skipped, again.exit_status) == (1, 2, 0)
    said = [w for w in again.warnings if w.kind == "funnel_changed"]
    assert len(said) == 1 and said[0].rows == [3]
    assert said[0].message.startswith("row 3 of leads.csv: its funnel: values differ from those")
    counts_add_up(read_summary(out))


def test_a_dry_run_does_not_say_conversions_were_recorded(tmp_path: Path) -> None:
    data, mapping = files(tmp_path)
    out = tmp_path / "out"
    args = ["import", str(data), "--mapping", str(mapping), "--out", str(out), "--sandbox",
            "--auth", "oauth", "--rate", "0", "--dry-run"]  # fmt: skip
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "were recorded" not in result.stdout
    assert "Funnel steps: 3 to set (each after its row's conversion), 0 set earlier" in (
        result.stdout
    )
    assert read_summary(out)["funnel"]["waiting"] == 3


def test_the_steps_of_rows_whose_conversion_failed_are_waiting_not_said_recorded(
    tmp_path: Path,
) -> None:
    """A conversion RD Station refused (here its per-lead limit) leaves its funnel step
    waiting: the console must not claim its conversion was recorded."""
    rows = [ROWS[0], [ROWS[0][0], "Ana Souza", "cliente", "sim", ""]]
    data, mapping = files(tmp_path, rows)
    out = tmp_path / "out"
    args = ["import", str(data), "--mapping", str(mapping), "--out", str(out), "--auth",
            "oauth", "--rate", "0", "--concurrency", "1"]  # fmt: skip
    with SandboxThread(SandboxConfig(seed=1, lead_limit=1)) as box:
        sign_in_to(box.url)
        result = CliRunner().invoke(cli, [*args, "--api-url", box.url])
    assert result.exit_code == 1, result.output
    summary = read_summary(out)
    assert summary["funnel"] == {"steps": 2, "sent": 1, "already_sent": 0, "failed": 0,
                                 "pending": 0, "waiting": 1}  # fmt: skip
    assert "Funnel steps" not in result.stdout  # the failed row says what happened to it
    counts_add_up(summary)


def test_rows_of_one_email_with_different_funnels_are_said(tmp_path: Path) -> None:
    rows = [*ROWS, [ROWS[0][0], "Ana Souza", "cliente", "", ""]]
    data, mapping = files(tmp_path, rows)
    with SandboxThread(SandboxConfig(seed=1)) as box:
        sign_in_to(box.url)
        report = run_import(config(data, mapping, tmp_path / "out", box.url))
    [said] = [w for w in report.warnings if w.kind == "funnel_conflict"]
    assert said.message.startswith(
        "rows 2, 5 of leads.csv have the same email and different funnel: values"
    )


def test_a_row_sending_the_same_conversion_with_another_funnel_is_not_called_identical(
    tmp_path: Path,
) -> None:
    rows = [ROWS[0], [*ROWS[0][:2], "cliente", *ROWS[0][3:]]]
    data, mapping = files(tmp_path, rows)
    with SandboxThread(SandboxConfig(seed=1)) as box:
        sign_in_to(box.url)
        report = run_import(config(data, mapping, tmp_path / "out", box.url))
    assert (report.succeeded, report.failed) == (1, 1)
    [failed] = read_csv(tmp_path / "out" / "failures.csv")
    assert failed["error_type"] == "DUPLICATE_ROW"
    assert failed["error_message"] == (
        "row 3 sends the same conversion as row 2 with other funnel: values: not sent twice; "
        "keep the contact's funnel in one row (row 2's is set)"
    )


class StopOnceConverted(Listener):
    """Stops the run as soon as every conversion is sent: between the two steps."""

    def __init__(self, control: RunControl) -> None:
        self.control = control

    def progress(self, done: int, total: int | None, eta_s: float | None) -> None:
        if total is not None and done == total and done > 0:
            self.control.abort("stopped between the steps (test)")


def test_a_stop_between_the_steps_then_resume_sends_only_the_funnel(tmp_path: Path) -> None:
    data, mapping = files(tmp_path)
    out = tmp_path / "out"
    with SandboxThread(SandboxConfig(seed=1)) as box:
        sign_in_to(box.url)
        control = RunControl()
        first = config(data, mapping, out, box.url)
        stopped = run_import(first, StopOnceConverted(control), control)
        assert stopped.exit_status == 3
        assert (len(box.snapshot()["accepted"]), puts(box.snapshot())) == (3, [])
        summary = read_summary(out)
        assert summary["funnel"]["pending"] == 3
        assert (summary["succeeded"], summary["skipped"]) == (0, 3)  # left to send
        page = (out / "report.html").read_text(encoding="utf-8")
        assert "Funnel steps: 3 pending. The rows whose funnel step failed or is pending" in page
        counts_add_up(summary)

        resumed = run_import(config(data, mapping, out, box.url))
        snapshot = box.snapshot()
    assert (resumed.succeeded, resumed.failed, resumed.exit_status) == (3, 0, 0)
    assert len(snapshot["accepted"]) == 3  # the conversions were not sent again
    assert len(puts(snapshot)) == 3
    assert read_summary(out)["funnel"]["sent"] == 3


def test_a_contact_not_there_yet_is_asked_again_until_it_exists(tmp_path: Path) -> None:
    data, mapping = files(tmp_path)
    out = tmp_path / "out"
    with SandboxThread(SandboxConfig(seed=1, contact_lag=2)) as box:
        sign_in_to(box.url)
        report = run_import(config(data, mapping, out, box.url))
        snapshot = box.snapshot()
    assert (report.succeeded, report.failed) == (3, 0)
    assert snapshot["statuses"]["404"] == 6  # two per contact, then it exists
    assert len(puts(snapshot)) == 3
    assert report.retries == 6


def test_a_contact_that_never_appears_fails_its_funnel_step_and_the_next_run_sends_it(
    tmp_path: Path,
) -> None:
    data, mapping = files(tmp_path, ROWS[:1])
    rows = [[f"p{i}@exemplo.com.br", "P", "lead", "", ""] for i in range(25)]
    many = write_csv(tmp_path / "many.csv", HEADER, rows)
    with SandboxThread(SandboxConfig(seed=1, contact_lag=100)) as box:
        sign_in_to(box.url)
        # Steps that all end on 404 are not "RD Station unreachable" nor "a wrong address".
        report = run_import(config(many, mapping, tmp_path / "many", box.url))
        assert (report.failed, report.aborted) == (25, None)
    out = tmp_path / "out"
    with SandboxThread(SandboxConfig(seed=1, contact_lag=100)) as box:
        sign_in_to(box.url)
        report = run_import(config(data, mapping, out, box.url))
        assert (report.succeeded, report.failed) == (0, 1)
        (failed,) = read_csv(out / "failures.csv")
        assert (failed["error_stage"], failed["error_type"]) == ("funnel", "CONTACT_NOT_FOUND_YET")
        assert "run the same command again: only the funnel step is sent" in failed["error_message"]
    with SandboxThread(SandboxConfig(seed=1, every_contact_exists=True)) as box:
        sign_in_to(box.url)
        again = run_import(config(data, mapping, out, box.url))
        snapshot = box.snapshot()
    assert (again.succeeded, again.failed) == (1, 0)
    assert (snapshot["accepted"], len(puts(snapshot))) == ([], 1)


def test_a_funnel_cell_that_does_not_fit_fails_its_row_before_anything_is_sent(
    tmp_path: Path,
) -> None:
    rows = [ROWS[0], ["bia@exemplo.com.br", "Bia", "Prospect", "sim", ""],
            ["caio@exemplo.com.br", "Caio", "lead", "talvez", ""],
            ["dani@exemplo.com.br", "Dani", "lead", "", "Sofia Lopes"]]  # fmt: skip
    data, mapping = files(tmp_path, rows)
    out = tmp_path / "out"
    with SandboxThread(SandboxConfig(seed=1)) as box:
        sign_in_to(box.url)
        report = run_import(config(data, mapping, out, box.url))
        snapshot = box.snapshot()
    assert (report.succeeded, report.failed) == (1, 3)
    assert [a["payload"]["email"] for a in snapshot["accepted"]] == ["ana@exemplo.com.br"]
    failures = {f["email"]: f for f in read_csv(out / "failures.csv")}
    assert {f["error_stage"] for f in failures.values()} == {"validation", "mapping"}
    assert (
        "'Prospect' is not in the map (lead, qualificado, cliente)"
        in (failures["bia@exemplo.com.br"]["error_message"])
    )
    assert failures["caio@exemplo.com.br"]["error_stage"] == "mapping"  # "talvez": not a yes/no
    assert (
        "funnel.contact_owner_email (column 'dono'): 'Sofia Lopes' is not an e-mail"
        in (failures["dani@exemplo.com.br"]["error_message"])
    )


def test_a_stage_written_otherwise_is_refused_without_a_map(tmp_path: Path) -> None:
    text = MAPPING.replace(
        "    column: estagio\n    map: {lead: Lead, qualificado: Qualified Lead, cliente: Client}",
        "    column: estagio",
    )
    data, mapping = files(tmp_path, [ROWS[0]], text)
    with SandboxThread(SandboxConfig(seed=1)) as box:
        sign_in_to(box.url)
        report = run_import(config(data, mapping, tmp_path / "out", box.url))
        assert box.snapshot()["requests"] == 0
    assert report.failed == 1
    (failed,) = read_csv(tmp_path / "out" / "failures.csv")
    assert failed["error_stage"] == "validation"
    assert failed["error_message"] == (
        "funnel.lifecycle_stage (column 'estagio'): 'lead' is not a lifecycle stage of RD "
        "Station (Lead, Qualified Lead, Client); add it to the entry's map:"
    )


def test_a_folder_imported_before_the_mapping_had_a_funnel_gets_only_the_funnel_steps(
    tmp_path: Path,
) -> None:
    without = MAPPING[: MAPPING.index("funnel:")]
    data, plain = files(tmp_path, mapping=without)
    mapping = write_mapping(tmp_path / "with-funnel.yaml", MAPPING)
    out = tmp_path / "out"
    with SandboxThread(SandboxConfig(seed=1)) as box:
        sign_in_to(box.url)
        run_import(config(data, plain, out, box.url))
        assert read_summary(out)["funnel"] is None
        report = run_import(config(data, mapping, out, box.url))
        snapshot = box.snapshot()
    assert (report.succeeded, report.skipped) == (3, 0)
    assert (len(snapshot["accepted"]), len(puts(snapshot))) == (3, 3)


def test_a_ledger_of_an_earlier_release_gains_the_funnel_table_when_opened(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    Ledger(path).close()
    with sqlite3.connect(path) as db:
        db.execute("DROP TABLE funnel")  # what an earlier release wrote
    ledger = Ledger(path)
    try:
        ledger.begin_run(tmp_path / "x.csv", "2026-01-01T00:00:00Z", dry_run=False)
        assert ledger.funnel_to_send() == 0 and ledger.funnel_counts() is None
    finally:
        ledger.close()


# --- the mapping ------------------------------------------------------------------------------


def test_funnel_problems_are_reported_all_at_once_with_their_lines(tmp_path: Path) -> None:
    text = """\
conversion_identifier: x
fields:
  email: email
funnel:
  lifecycle_stage: {column: estagio, map: {lead: Lead, cliente: Cliente}}
  opportunity: {column: oportunidade}
  contact_owner_email: {value: "not an email"}
  colour: blue
"""
    with pytest.raises(InputError) as caught:
        load_mapping(write_mapping(tmp_path / "m.yaml", text))
    assert str(caught.value) == (
        "m.yaml: 4 problems:\n"
        "  line 5: 'Cliente' is not a lifecycle stage of RD Station; use one of Lead, Qualified "
        "Lead, Client, written exactly so\n"
        "  line 6: funnel.opportunity takes true or false: add transform: bool (or map: to "
        "true/false)\n"
        "  line 7: funnel.contact_owner_email: 'not an email' is not an e-mail address (the "
        "owner's)\n"
        "  line 8: unknown key 'colour'; known: lifecycle_stage, opportunity, "
        "contact_owner_email, with_apikey"
    )


def test_a_funnel_column_the_file_lacks_is_named_with_its_line(tmp_path: Path) -> None:
    data, mapping = files(tmp_path, mapping=MAPPING.replace("column: estagio", "column: stage"))
    with pytest.raises(InputError, match=r"m.yaml: line 6: column 'stage' is not in leads.csv"):
        run_import(config(data, mapping, tmp_path / "out", "http://127.0.0.1:9", sandbox=True))


def test_a_funnel_under_the_api_key_is_refused_in_one_line_with_exit_2(tmp_path: Path) -> None:
    data, mapping = files(tmp_path)
    result = CliRunner().invoke(
        cli, ["import", str(data), "--mapping", str(mapping), "--out", str(tmp_path / "out"),
              "--sandbox", "--rate", "0"])  # fmt: skip
    assert result.exit_code == 2
    assert result.stderr == (
        "Error: m.yaml: line 5: funnel: needs --auth oauth (RD Station sets a contact's funnel "
        "only for a signed-in app: `rd-importer auth login`); or, to send conversions with the "
        "API key, remove the section or add `with_apikey: skip` to it\n"
    )
    assert not (tmp_path / "out" / "successes.csv").exists()


def test_with_apikey_skip_the_funnel_is_left_out_with_a_note(tmp_path: Path) -> None:
    data, mapping = files(tmp_path, mapping=MAPPING + "  with_apikey: skip\n")
    result = CliRunner().invoke(
        cli, ["import", str(data), "--mapping", str(mapping), "--out", str(tmp_path / "out"),
              "--sandbox", "--rate", "0"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert (
        "Warning: m.yaml: line 5: funnel: is left out: RD Station sets a contact's funnel stage "
        "and owner only for an app signed in with OAuth (--auth oauth)"
    ) in result.stderr
    assert read_summary(tmp_path / "out")["funnel"] is None


def test_the_built_in_sandbox_sets_the_funnel_with_auth_oauth(tmp_path: Path) -> None:
    data, mapping = files(tmp_path)
    out = tmp_path / "out"
    args = ["import", str(data), "--mapping", str(mapping), "--out", str(out), "--sandbox",
            "--auth", "oauth", "--rate", "0"]  # fmt: skip
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "Setting the funnel of 3 contact(s)" in result.stderr
    assert read_summary(out)["funnel"]["sent"] == 3
    # A resume finds its contacts in the new sandbox, and sends nothing.
    again = CliRunner().invoke(cli, args)
    assert again.exit_code == 0 and read_summary(out)["requests"] == 0


def test_the_console_says_the_conversions_of_rows_failed_at_the_funnel_were_recorded(
    tmp_path: Path,
) -> None:
    data = write_csv(
        tmp_path / "leads.csv",
        ["E-mail", "Dono"],
        [["ana@exemplo.com.br", "ninguem@fora.com"], ["bia@exemplo.com.br", ""]],
    )
    mapping = write_mapping(
        tmp_path / "m.yaml",
        'conversion_identifier: "x"\nfields:\n  email: "E-mail"\n'
        'funnel:\n  lifecycle_stage: {value: "Lead"}\n  contact_owner_email: "Dono"\n',
    )
    args = ["import", str(data), "--mapping", str(mapping), "--out", str(tmp_path / "out"),
            "--sandbox", "--auth", "oauth", "--rate", "0"]  # fmt: skip
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1, result.output
    assert "Imported leads.csv: 1 rows sent, 1 failed, 0 skipped (of 2)" in result.stdout
    assert (
        "Funnel steps: 1 sent, 1 failed; the conversions of the rows whose funnel step failed "
        "or is pending were recorded, and importing again sends only that step"
    ) in result.stdout


# --- the presets ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("preset", "sample", "stages"),
    [
        ("hubspot", "hubspot_contacts.csv", {"Lead", "Qualified Lead", "Client"}),
        ("hubspot", "hubspot_contatos_portugues.csv", {"Lead", "Client"}),
        ("salesforce", "salesforce_leads_report.csv", {"Lead"}),
        ("salesforce", "salesforce_relatorio_leads_portugues.csv", {"Lead"}),
    ],
)
def test_presets_map_their_lifecycle_stage_and_owner(
    tmp_path: Path, preset: str, sample: str, stages: set[str]
) -> None:
    text = (ROOT / "mappings" / f"{preset}.yaml").read_text(encoding="utf-8")
    owner = "Sofia Lopes" if "Sofia Lopes" in (ROOT / "tests/data/presets" / sample).read_text(
        encoding="utf-8", errors="replace") else "Ricardo Mendes"  # fmt: skip
    mapping = write_mapping(
        tmp_path / f"{preset}.yaml",
        text.replace('"Owner Name": owner@yourcompany.com.br', f'"{owner}": vendas@empresa.com.br'),
    )
    data = ROOT / "tests" / "data" / "presets" / sample
    with SandboxThread(SandboxConfig(seed=1)) as box:
        sign_in_to(box.url)
        run_import(config(data, mapping, tmp_path / "out", box.url))
        sent = puts(box.snapshot())
    assert {body.get("lifecycle_stage") for _, body in sent} - {None} == stages
    owners = {body.get("contact_owner_email") for _, body in sent}
    assert "vendas@empresa.com.br" in owners and owners <= {"vendas@empresa.com.br", None}
    dropped = [w["message"] for w in read_summary(tmp_path / "out")["warnings"]
               if w["message"].startswith("funnel.contact_owner_email:")]  # fmt: skip
    for message in dropped:  # an owner the map does not list yet: what to do about it
        assert message.endswith(
            "add each owner as it is written there, with the e-mail of their RD Station user, "
            "to funnel.contact_owner_email's map:"
        )
    assert dropped or sample.endswith("portugues.csv")  # one owner in those: none left out


def test_pipedrive_preset_reads_deals_for_stage_and_opportunity(tmp_path: Path) -> None:
    mapping = ROOT / "mappings" / "pipedrive.yaml"
    data = write_csv(
        tmp_path / "people.csv",
        ["Person - Name", "Person - Email - Work", "Person - Won deals", "Person - Open deals"],
        [["Ana", "ana@exemplo.com.br", "2", "0"], ["Bia", "bia@exemplo.com.br", "0", "1"],
         ["Caio", "caio@exemplo.com.br", "", ""]],
    )  # fmt: skip
    with SandboxThread(SandboxConfig(seed=1)) as box:
        sign_in_to(box.url)
        run_import(config(data, mapping, tmp_path / "out", box.url))
        sent = sorted(puts(box.snapshot()))
    assert sent == [
        ("ana@exemplo.com.br", {"lifecycle_stage": "Client", "opportunity": False}),
        ("bia@exemplo.com.br", {"opportunity": True}),
    ]


def test_a_kill_during_the_funnel_steps_then_resume_sends_only_the_funnel(tmp_path: Path) -> None:
    """A real SIGKILL while the run waits to ask again for contacts RD Station has not created
    yet: the conversions are recorded, the funnel steps are not; the resume sends the steps."""
    data, mapping = files(tmp_path)
    out = tmp_path / "out"
    command = [sys.executable, "-m", "importer", "import", str(data), "--mapping", str(mapping),
               "--out", str(out), "--auth", "oauth", "--rate", "0", "-q"]  # fmt: skip
    with SandboxThread(SandboxConfig(seed=1, contact_lag=100)) as box:
        sign_in_to(box.url)
        proc = subprocess.Popen([*command, "--api-url", box.url], cwd=ROOT,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
        try:
            deadline = time.monotonic() + 60
            while box.snapshot()["statuses"].get("404", 0) < 3:  # each step asked once
                assert proc.poll() is None and time.monotonic() < deadline
                time.sleep(0.01)
            proc.send_signal(signal.SIGKILL)  # now waiting 2 s before asking again
        finally:
            proc.communicate(timeout=30)
        assert len(box.snapshot()["accepted"]) == 3
    with SandboxThread(SandboxConfig(seed=1, every_contact_exists=True)) as box:
        sign_in_to(box.url)
        resumed = subprocess.run([*command, "--api-url", box.url], cwd=ROOT, capture_output=True)
        snapshot = box.snapshot()
    assert resumed.returncode == 0, resumed.stderr
    assert snapshot["accepted"] == []  # no conversion sent again
    assert len(puts(snapshot)) == 3
