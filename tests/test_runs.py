"""Runs that build on each other in one output folder: a changed mapping, the fix-and-re-import
loop, the folder's record. Nothing is sent twice without being asked, no fix is lost."""

from __future__ import annotations

import shutil

import pytest
from click.testing import CliRunner

from helpers import API_KEY, read_csv, read_summary, write_csv, write_mapping
from importer.cli import cli
from importer.errors import InputError
from importer.pipeline import ImportConfig, Tuning, run_import

MAPPING = """\
conversion_identifier: "{identifier}"
fields:
  email: "email"
  name: "nome"
"""


def mapping(tmp_path, identifier="feira-2025", name="m.yaml"):
    return write_mapping(tmp_path / name, MAPPING.format(identifier=identifier))


def people(count, start=1):
    return [[f"pessoa{i}@exemplo.com.br", f"Pessoa {i}"] for i in range(start, start + count)]


def config(tmp_path, data, mapping_path, url, **kw):
    kw.setdefault("rate", 0)
    kw.setdefault("concurrency", 4)
    kw.setdefault("tuning", Tuning(retry_wait=False))
    kw.setdefault("out_dir", tmp_path / "out")
    return ImportConfig(
        input_path=data, mapping_path=mapping_path, api_url=url, api_key=API_KEY, **kw
    )


def accepted(box) -> list[str]:
    return [e["payload"]["conversion_identifier"] for e in box.snapshot()["accepted"]]


def test_a_changed_mapping_stops_before_sending_and_says_what_changed(tmp_path, sandbox):
    data = write_csv(tmp_path / "leads.csv", ["email", "nome"], people(20))
    run_import(config(tmp_path, data, mapping(tmp_path), sandbox.url))
    changed = mapping(tmp_path, "feira-2026", "m2.yaml")

    with pytest.raises(InputError) as stopped:
        run_import(config(tmp_path, data, changed, sandbox.url))
    assert stopped.value.setting == "changed"
    assert str(stopped.value).startswith("20 row(s) of leads.csv were sent by an earlier run into ")
    assert 'conversion_identifier "feira-2025" -> "feira-2026"' in str(stopped.value)
    assert "pessoa" not in str(stopped.value)  # no personal data in the message
    assert len(accepted(sandbox)) == 20

    checked = run_import(config(tmp_path, data, changed, sandbox.url, dry_run=True))
    assert (checked.changed_rows, checked.succeeded, checked.skipped) == (20, 0, 20)
    assert read_summary(tmp_path / "out")["changed_rows"] == 20

    kept = run_import(config(tmp_path, data, changed, sandbox.url, changed="keep"))
    assert (kept.succeeded, kept.skipped, kept.changed_rows) == (0, 20, 20)
    assert len(accepted(sandbox)) == 20

    resent = run_import(config(tmp_path, data, changed, sandbox.url, changed="resend"))
    assert (resent.succeeded, resent.changed_rows) == (20, 20)
    assert accepted(sandbox).count("feira-2026") == 20
    again = run_import(config(tmp_path, data, changed, sandbox.url))  # all sent as they are now
    assert (again.succeeded, again.skipped, again.changed_rows) == (0, 20, 0)


def test_keep_sent_sends_the_rows_never_sent_with_the_new_mapping(tmp_path, sandbox):
    first = write_csv(tmp_path / "leads.csv", ["email", "nome"], people(10))
    run_import(config(tmp_path, first, mapping(tmp_path), sandbox.url))
    grown = write_csv(tmp_path / "leads.csv", ["email", "nome"], people(15))
    changed = mapping(tmp_path, "feira-2026", "m2.yaml")
    report = run_import(config(tmp_path, grown, changed, sandbox.url, changed="keep"))
    assert (report.succeeded, report.skipped, report.changed_rows) == (5, 10, 10)
    assert accepted(sandbox) == ["feira-2025"] * 10 + ["feira-2026"] * 5
    assert len(read_csv(tmp_path / "out" / "successes.csv")) == 15


def test_the_cli_names_both_ways_on(tmp_path, sandbox, monkeypatch):
    monkeypatch.setenv("RDSTATION_API_KEY", API_KEY)
    data = write_csv(tmp_path / "leads.csv", ["email", "nome"], people(3))
    base = ["import", str(data), "--out", str(tmp_path / "out"), "--api-url", sandbox.url]
    runner = CliRunner()
    first = runner.invoke(cli, [*base, "--mapping", str(mapping(tmp_path)), "--rate", "0"])
    assert first.exit_code == 0, first.output
    changed = str(mapping(tmp_path, "feira-2026", "m2.yaml"))
    stopped = runner.invoke(cli, [*base, "--mapping", changed, "--rate", "0"])
    assert stopped.exit_code == 2
    assert "--keep-sent" in stopped.stderr and "--resend-changed" in stopped.stderr
    both = runner.invoke(cli, [*base, "--mapping", changed, "--keep-sent", "--resend-changed"])
    assert both.exit_code == 2 and "exclude each other" in both.output
    kept = runner.invoke(cli, [*base, "--mapping", changed, "--keep-sent", "--rate", "0"])
    assert kept.exit_code == 0 and len(accepted(sandbox)) == 3


def test_a_report_of_the_output_folder_is_never_read_and_overwritten(tmp_path, sandbox):
    rows = [*people(3), ["not-an-email", "Bad"]]
    data = write_csv(tmp_path / "leads.csv", ["email", "nome"], rows)
    run_import(config(tmp_path, data, mapping(tmp_path), sandbox.url))
    failures = tmp_path / "out" / "failures.csv"
    before = failures.read_bytes()
    for dry_run in (False, True):
        with pytest.raises(InputError, match=r"is a report of .*copy it"):
            run_import(config(tmp_path, failures, mapping(tmp_path), sandbox.url, dry_run=dry_run))
    assert failures.read_bytes() == before


def test_fixed_rows_keep_their_numbers_and_the_record_accumulates(tmp_path, sandbox):
    rows = people(6)
    rows[1][0] = "not-an-email"  # row 3
    rows[4][0] = "also bad"  # row 6
    data = write_csv(tmp_path / "leads.csv", ["email", "nome"], rows)
    m = mapping(tmp_path)
    first = run_import(config(tmp_path, data, m, sandbox.url))
    assert (first.succeeded, first.failed) == (4, 2)
    out = tmp_path / "out"
    failed = read_csv(out / "failures.csv")
    assert [(f["row"], f["source_row"]) for f in failed] == [("3", "3"), ("6", "6")]

    fixed = tmp_path / "fixed.csv"
    shutil.copy(out / "failures.csv", fixed)
    text = fixed.read_text(encoding="utf-8-sig").replace("not-an-email", "ana@exemplo.com.br")
    fixed.write_text(text, encoding="utf-8-sig")
    second = run_import(config(tmp_path, fixed, m, sandbox.url))
    assert (second.rows, second.succeeded, second.failed) == (2, 1, 1)

    successes = read_csv(out / "successes.csv")
    assert [s["source_row"] for s in successes] == ["2", "3", "4", "5", "7"]  # the record stays
    assert {s["sent_in"] for s in successes} == {"leads.csv", "fixed.csv"}
    still = read_csv(out / "failures.csv")
    assert [(f["row"], f["source_row"], f["nome"]) for f in still] == [("3", "6", "Pessoa 5")]
    assert len(list((out / "runs").iterdir())) == 2
    assert read_summary(out)["folder"] == {"sent": 5, "failed": 1, "left_to_send": 0}

    # the next round: the row still bad keeps its first number, and then it is fixed too
    again = tmp_path / "fixed2.csv"
    shutil.copy(out / "failures.csv", again)
    again.write_text(
        again.read_text(encoding="utf-8-sig").replace("also bad", "bia@exemplo.com.br"),
        encoding="utf-8-sig",
    )
    third = run_import(config(tmp_path, again, m, sandbox.url))
    assert (third.succeeded, third.failed) == (1, 0)
    assert read_csv(out / "failures.csv") == []
    assert len(read_csv(out / "successes.csv")) == 6
    assert len(sandbox.snapshot()["accepted"]) == 6


def test_a_row_fixed_in_place_leaves_the_failures(tmp_path, sandbox):
    rows = people(3)
    rows[1][0] = "not-an-email"
    data = write_csv(tmp_path / "leads.csv", ["email", "nome"], rows)
    m = mapping(tmp_path)
    run_import(config(tmp_path, data, m, sandbox.url))
    rows[1][0] = "ana@exemplo.com.br"
    write_csv(data, ["email", "nome"], rows)
    second = run_import(config(tmp_path, data, m, sandbox.url))
    assert (second.succeeded, second.failed, second.skipped) == (1, 0, 2)
    assert read_csv(tmp_path / "out" / "failures.csv") == []


def test_a_rehearsal_sends_only_its_rows_and_the_full_run_skips_them(tmp_path, sandbox):
    data = write_csv(tmp_path / "leads.csv", ["email", "nome"], people(20))
    m = mapping(tmp_path)
    rehearsal = run_import(config(tmp_path, data, m, sandbox.url, limit=3))
    assert (rehearsal.rows, rehearsal.succeeded) == (3, 3)
    some = run_import(config(tmp_path, data, m, sandbox.url, rows=(10, 11)))
    assert (some.rows, some.succeeded) == (2, 2)
    full = run_import(config(tmp_path, data, m, sandbox.url))
    assert (full.rows, full.succeeded, full.skipped) == (20, 15, 5)
    assert len(sandbox.snapshot()["accepted"]) == 20


def test_validate_show_prints_the_exact_requests_and_writes_payloads_jsonl(tmp_path):
    import json

    data = write_csv(tmp_path / "leads.csv", ["email", "nome"], [*people(3), ["bad", "X"]])
    out = tmp_path / "out"
    args = ["validate", str(data), "--mapping", str(mapping(tmp_path)), "--out", str(out)]
    result = CliRunner().invoke(cli, [*args, "--show", "1", "--rows", "2-5"])
    assert result.exit_code == 1, result.output  # the bad row
    shown, _, summary = result.stdout.partition("\n\nChecked ")
    assert summary.startswith("leads.csv: 4 rows, 3 ready to send, 1 failed")
    assert shown.startswith("Row 2: email=pessoa1@exemplo.com.br | nome=Pessoa 1\n{\n")
    assert json.loads(shown.split("\n", 1)[1]) == {
        "event_family": "CDP",
        "event_type": "CONVERSION",
        "payload": {
            "conversion_identifier": "feira-2025",
            "email": "pessoa1@exemplo.com.br",
            "name": "Pessoa 1",
        },
    }
    assert "Row 3" not in shown
    lines = (out / "payloads.jsonl").read_text().splitlines()
    assert [json.loads(line)["row"] for line in lines] == [2, 3, 4]
    assert json.loads(lines[2])["request"]["payload"]["email"] == "pessoa3@exemplo.com.br"
    assert (out / "payloads.jsonl").stat().st_mode & 0o777 == 0o600


def test_a_key_column_knows_an_edited_row_as_the_row_sent_before(tmp_path, sandbox):
    keyed = MAPPING + 'key: "id"\n'
    m = write_mapping(tmp_path / "k.yaml", keyed.format(identifier="crm"))
    header = ["id", "email", "nome"]
    rows = [[f"00{i}", f"p{i}@exemplo.com.br", f"Pessoa {i}"] for i in range(1, 6)]
    data = write_csv(tmp_path / "crm.csv", header, rows)
    run_import(config(tmp_path, data, m, sandbox.url))
    rows[1][2] = "Pessoa Dois"  # an edit in the CRM
    rows.append(["006", "p6@exemplo.com.br", "Pessoa 6"])
    write_csv(data, header, rows)
    with pytest.raises(InputError, match=r"^1 row\(s\) of crm.csv .*row 3: name changed"):
        run_import(config(tmp_path, data, m, sandbox.url))
    kept = run_import(config(tmp_path, data, m, sandbox.url, changed="keep"))
    assert (kept.succeeded, kept.skipped, kept.changed_rows) == (1, 5, 1)
    bad = write_mapping(tmp_path / "bad.yaml", MAPPING.format(identifier="x") + 'key: "ID"\n')
    with pytest.raises(InputError, match=r"bad.yaml: line 5: key column 'ID' is not in crm.csv"):
        run_import(config(tmp_path, data, bad, sandbox.url))


def test_folders_sharing_a_ledger_know_what_the_other_sent(tmp_path, sandbox):
    shared = tmp_path / "memory" / "ledger.sqlite"
    m = mapping(tmp_path)
    night1 = write_csv(tmp_path / "night1.csv", ["email", "nome"], people(5))
    night2 = write_csv(tmp_path / "night2.csv", ["email", "nome"], people(7))
    first = run_import(
        config(tmp_path, night1, m, sandbox.url, out_dir=tmp_path / "n1", ledger_path=shared)
    )
    second = run_import(
        config(tmp_path, night2, m, sandbox.url, out_dir=tmp_path / "n2", ledger_path=shared)
    )
    assert (first.succeeded, second.succeeded, second.skipped) == (5, 2, 5)
    record = read_csv(tmp_path / "n2" / "successes.csv")
    assert [r["sent_in"] for r in record] == ["night1.csv"] * 5 + ["night2.csv"] * 2
    assert len(read_csv(tmp_path / "n1" / "successes.csv")) == 5
    assert not (tmp_path / "n2" / "ledger.sqlite").exists()
