"""End to end through run_import: real files, the real client, the sandbox on loopback."""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
import time
from pathlib import Path

import openpyxl
import pytest
from aioresponses import aioresponses

from helpers import (
    API_KEY,
    EXAMPLE_MAPPING,
    SAMPLE_XLSX,
    ScriptedResponse,
    read_csv,
    read_summary,
    write_csv,
    write_mapping,
)
from importer import workbook
from importer.errors import InputError
from importer.ledger import Ledger
from importer.pipeline import ImportConfig, Tuning, run_import, run_import_async

SIMPLE_MAPPING = """\
conversion_identifier: "teste-importer"
fields:
  email: "email"
  name: "nome"
  cf_plano: "plano"
"""


RD = "https://rd.test"
ENDPOINT = f"{RD}/platform/conversions?api_key={API_KEY}"


def answer(mocked: aioresponses, status: int, **kwargs) -> None:
    mocked.post(ENDPOINT, status=status, response_class=ScriptedResponse, **kwargs)


def config(tmp_path: Path, input_path: Path, mapping: Path, url: str, **kw) -> ImportConfig:
    kw.setdefault("rate", 0)
    kw.setdefault("concurrency", 4)
    kw.setdefault("tuning", Tuning(retry_wait=False))
    return ImportConfig(
        input_path=input_path,
        mapping_path=mapping,
        out_dir=tmp_path / "out",
        api_url=url,
        api_key=API_KEY,
        **kw,
    )


@pytest.fixture
def simple(tmp_path: Path) -> tuple[Path, Path]:
    rows = [[f"pessoa{i}@exemplo.com.br", f"Pessoa {i}", "Pro"] for i in range(1, 21)]
    data = write_csv(tmp_path / "simple.csv", ["email", "nome", "plano"], rows)
    return data, write_mapping(tmp_path / "simple.yaml", SIMPLE_MAPPING)


def accepted_emails(box) -> list[str]:
    return sorted(e["payload"]["email"] for e in box.snapshot()["accepted"])


def test_every_row_is_sent_once_with_its_uuid_in_successes(tmp_path, sandbox, simple):
    data, mapping = simple
    report = run_import(config(tmp_path, data, mapping, sandbox.url))

    assert (report.rows, report.succeeded, report.failed, report.skipped) == (20, 20, 0, 0)
    assert report.exit_status == 0
    accepted = sandbox.snapshot()["accepted"]
    assert len(accepted) == 20
    successes = read_csv(tmp_path / "out" / "successes.csv")
    assert [s["row"] for s in successes] == [str(n) for n in range(2, 22)]
    by_uuid = {e["event_uuid"]: e["payload"] for e in accepted}
    for line in successes:
        payload = by_uuid[line["event_uuid"]]
        assert payload["email"] == line["email"]
        assert line["conversion_identifier"] == "teste-importer"
        assert line["sent_at"].endswith("Z")
    assert accepted[0]["payload"] == {
        "conversion_identifier": "teste-importer",
        "email": accepted[0]["payload"]["email"],
        "name": accepted[0]["payload"]["name"],
        "cf_plano": "Pro",
    }
    summary = read_summary(tmp_path / "out")
    assert summary["rows"] == summary["succeeded"] + summary["failed"] + summary["skipped"]
    assert read_csv(tmp_path / "out" / "failures.csv") == []


def test_a_second_run_sends_nothing_and_reports_the_whole_file(tmp_path, sandbox, simple):
    data, mapping = simple
    run_import(config(tmp_path, data, mapping, sandbox.url))
    again = run_import(config(tmp_path, data, mapping, sandbox.url))

    assert (again.rows, again.succeeded, again.skipped, again.failed) == (20, 0, 20, 0)
    assert len(sandbox.snapshot()["accepted"]) == 20
    assert len(read_csv(tmp_path / "out" / "successes.csv")) == 20
    assert again.exit_status == 0


def test_fixed_rows_are_sent_on_the_next_run_and_sent_rows_are_not(tmp_path, sandbox):
    mapping = write_mapping(tmp_path / "m.yaml", SIMPLE_MAPPING)
    rows = [["a@exemplo.com", "A", ""], ["not-an-email", "B", ""], ["c@exemplo.com", "C", ""]]
    data = write_csv(tmp_path / "f.csv", ["email", "nome", "plano"], rows)
    first = run_import(config(tmp_path, data, mapping, sandbox.url))
    assert (first.succeeded, first.failed) == (2, 1)
    assert first.exit_status == 1
    failure = read_csv(tmp_path / "out" / "failures.csv")[0]
    assert failure["row"] == "3"
    assert failure["error_stage"] == "validation"
    assert failure["email"] == "not-an-email"

    rows[1][0] = "b@exemplo.com"
    write_csv(data, ["email", "nome", "plano"], rows)
    second = run_import(config(tmp_path, data, mapping, sandbox.url))
    assert (second.succeeded, second.failed, second.skipped) == (1, 0, 2)
    assert accepted_emails(sandbox) == ["a@exemplo.com", "b@exemplo.com", "c@exemplo.com"]
    assert [s["row"] for s in read_csv(tmp_path / "out" / "successes.csv")] == ["2", "3", "4"]


def test_validate_writes_the_reports_and_sends_nothing(tmp_path, sandbox, simple):
    data, mapping = simple
    report = run_import(config(tmp_path, data, mapping, sandbox.url, dry_run=True))
    assert (report.rows, report.succeeded, report.failed) == (20, 20, 0)
    assert sandbox.snapshot()["requests"] == 0
    # successes.csv is the folder's record of what was sent: nothing, yet
    assert read_csv(tmp_path / "out" / "successes.csv") == []
    summary = read_summary(tmp_path / "out")
    assert (summary["dry_run"], summary["would_send"]) == (True, 20)


def test_validate_into_an_import_folder_keeps_its_record(tmp_path, sandbox, simple):
    data, mapping = simple
    run_import(config(tmp_path, data, mapping, sandbox.url))
    sent = read_csv(tmp_path / "out" / "successes.csv")
    checked = run_import(config(tmp_path, data, mapping, sandbox.url, dry_run=True))
    assert (checked.succeeded, checked.skipped) == (0, 20)
    assert read_csv(tmp_path / "out" / "successes.csv") == sent
    assert all(s["event_uuid"] for s in sent) and len(sent) == 20


def test_a_workbook_reader_killed_mid_file_stops_the_run_and_the_rerun_resumes(
    tmp_path, sandbox, monkeypatch
):
    book = openpyxl.Workbook(write_only=True)
    sheet = book.create_sheet("Leads")
    sheet.append(["email", "nome", "plano"])
    for i in range(1, 1201):
        sheet.append([f"pessoa{i}@exemplo.com.br", f"Pessoa {i}", "Pro"])
    data = tmp_path / "leads.xlsx"
    book.save(data)
    mapping = write_mapping(tmp_path / "simple.yaml", SIMPLE_MAPPING)
    dies_after_one_batch = (
        "import os, sys; sys.path.append(sys.argv.pop(1)); import importer.workbook.child as w\n"
        "read = w._sheet_messages\n"
        "def dying(*args):\n"
        "    for message in read(*args):\n"
        "        yield message\n"
        "        if message[0] == 'rows':\n"
        "            sys.stdout.buffer.flush(); os.kill(os.getpid(), 9)\n"
        "w._sheet_messages = dying; w.serve(sys.argv[1:])"
    )
    real_child = workbook._CHILD
    monkeypatch.setattr(workbook, "_CHILD", dies_after_one_batch)

    stopped = run_import(config(tmp_path, data, mapping, sandbox.url))

    assert stopped.aborted == (
        f"the process reading {data} was killed (SIGKILL) while reading its rows"
    )
    assert stopped.exit_status == 3
    # The first batch (the header and 511 rows) was read; like any stop, nothing more is sent.
    assert (stopped.rows, stopped.succeeded, stopped.left_to_send) == (511, 0, 511)
    assert read_summary(tmp_path / "out")["status"] == "aborted"

    monkeypatch.setattr(workbook, "_CHILD", real_child)
    resumed = run_import(config(tmp_path, data, mapping, sandbox.url))

    assert (resumed.exit_status, resumed.rows, resumed.succeeded) == (0, 1200, 1200)
    sent = [e["payload"]["email"] for e in sandbox.snapshot()["accepted"]]
    assert sorted(sent) == sorted(f"pessoa{i}@exemplo.com.br" for i in range(1, 1201))


def test_cancelling_during_a_long_workbook_load_stops_at_once(tmp_path, simple, monkeypatch):
    # Ctrl-C cancels the run's task (asyncio.run does that); a sheet still loading must not
    # keep the user waiting for the rest of the load.
    _, mapping = simple
    book = openpyxl.Workbook()
    book.active.append(["email"])
    book.active.append(["a@exemplo.com.br"])
    data = tmp_path / "leads.xlsx"
    book.save(data)
    monkeypatch.setattr(workbook, "_CHILD", "import time; time.sleep(30)")  # a load that lasts

    async def cancel_after_the_load_began() -> float:
        task = asyncio.create_task(
            run_import_async(config(tmp_path, data, mapping, "http://127.0.0.1:9", dry_run=True))
        )
        await asyncio.sleep(0.5)
        asked = time.monotonic()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return time.monotonic() - asked

    assert asyncio.run(cancel_after_the_load_began()) < 5


def test_the_sample_csv_imports_with_its_bad_rows_in_failures(tmp_path, sandbox, sample_csv):
    report = run_import(config(tmp_path, sample_csv, EXAMPLE_MAPPING, sandbox.url))
    assert report.rows == 40
    assert report.failed >= 4
    assert report.succeeded + report.failed == 40
    assert len(sandbox.snapshot()["accepted"]) == report.succeeded
    failures = read_csv(tmp_path / "out" / "failures.csv")
    header = list(failures[0].keys())
    assert header[:3] == ["Nome", "Sobrenome", "E-mail"]
    assert header[-8:] == [
        "row",
        "error_stage",
        "http_status",
        "error_type",
        "error_message",
        "attempts",
        "source_row",
        "row_id",
    ]
    types = {f["error_type"] for f in failures}
    assert "DUPLICATE_ROW" in types
    # The CEP keeps its leading zero all the way to the report.
    assert all(len(f["CEP"]) == 8 for f in failures)


def test_the_sample_xlsx_sends_the_same_payloads_as_the_csv(tmp_path, make_sandbox, sample_csv):
    csv_box, xlsx_box = make_sandbox(), make_sandbox()
    run_import(config(tmp_path / "a", sample_csv, EXAMPLE_MAPPING, csv_box.url))
    run_import(config(tmp_path / "b", SAMPLE_XLSX, EXAMPLE_MAPPING, xlsx_box.url))

    def payloads(box):
        return sorted(
            tuple(sorted((k, str(v)) for k, v in e["payload"].items()))
            for e in box.snapshot()["accepted"]
        )

    assert payloads(csv_box) == payloads(xlsx_box)


def test_a_refused_key_stops_the_run_and_leaves_the_rest_to_resume(tmp_path, sandbox, simple):
    data, mapping = simple
    bad = dataclasses.replace(
        config(tmp_path, data, mapping, sandbox.url, concurrency=1), api_key="wrong-key"
    )
    report = run_import(bad)
    assert report.exit_status == 3
    assert "refused the API key" in (report.aborted or "")
    assert "wrong-key" not in (report.aborted or "")
    assert report.failed == 0
    assert report.rows == report.succeeded + report.failed + report.skipped
    assert sandbox.snapshot()["accepted"] == []

    resumed = run_import(config(tmp_path, data, mapping, sandbox.url))
    assert (resumed.succeeded, resumed.failed) == (20, 0)
    assert len(sandbox.snapshot()["accepted"]) == 20


def test_5xx_then_success_is_retried_and_counts_attempts(tmp_path, simple):
    _, mapping = simple
    one = write_csv(tmp_path / "one.csv", ["email", "nome", "plano"], [["x@exemplo.com", "X", ""]])
    with aioresponses() as mocked:
        answer(mocked, 500, body=b"<html>oops</html>")
        answer(mocked, 500, body=b"<html>oops</html>")
        answer(mocked, 200, payload={"event_uuid": "5408c5a3-4711-4f2e-8d0b-13407a3e30f3"})
        report = run_import(config(tmp_path, one, mapping, RD))
    assert (report.succeeded, report.retries, report.requests) == (1, 2, 3)
    line = read_csv(tmp_path / "out" / "successes.csv")[0]
    assert line["event_uuid"] == "5408c5a3-4711-4f2e-8d0b-13407a3e30f3"


def test_rows_failing_every_attempt_fail_with_the_last_error(tmp_path, simple):
    _, mapping = simple
    one = write_csv(tmp_path / "one.csv", ["email", "nome", "plano"], [["x@exemplo.com", "X", ""]])
    with aioresponses() as mocked:
        for _ in range(6):
            answer(mocked, 503, body=b"<html>busy</html>")
        report = run_import(config(tmp_path, one, mapping, RD))
    assert (report.succeeded, report.failed, report.requests) == (0, 1, 6)
    failure = read_csv(tmp_path / "out" / "failures.csv")[0]
    assert failure["error_stage"] == "api"
    assert failure["http_status"] == "503"
    assert failure["attempts"] == "6"


def test_rd_station_rejection_fails_the_row_at_once_with_its_message(tmp_path, simple):
    _, mapping = simple
    one = write_csv(tmp_path / "one.csv", ["email", "nome", "plano"], [["x@exemplo.com", "X", ""]])
    body = {"errors": {"cf_plano": [{"error_type": "INVALID", "error_message": "unknown field"}]}}
    with aioresponses() as mocked:
        answer(mocked, 400, payload=body)
        report = run_import(config(tmp_path, one, mapping, RD))
    assert (report.failed, report.requests) == (1, 1)
    failure = read_csv(tmp_path / "out" / "failures.csv")[0]
    assert failure["http_status"] == "400"
    assert failure["error_type"] == "INVALID"
    assert "unknown field" in failure["error_message"]


def test_rows_in_flight_when_a_run_died_are_counted_and_resent(tmp_path, sandbox, simple):
    data, mapping = simple
    run_import(config(tmp_path, data, mapping, sandbox.url))
    db = sqlite3.connect(tmp_path / "out" / "ledger.sqlite")
    db.execute("UPDATE rows SET state = 'in_flight' WHERE row IN (5, 6)")
    db.commit()
    db.close()
    report = run_import(config(tmp_path, data, mapping, sandbox.url))
    assert report.in_flight_found == 2
    assert report.succeeded == 2
    assert len(sandbox.snapshot()["accepted"]) == 22  # the two uncertain rows, sent again


def test_in_flight_skip_reports_them_as_failed_without_sending(tmp_path, sandbox, simple):
    data, mapping = simple
    run_import(config(tmp_path, data, mapping, sandbox.url))
    db = sqlite3.connect(tmp_path / "out" / "ledger.sqlite")
    db.execute("UPDATE rows SET state = 'in_flight' WHERE row = 5")
    db.commit()
    db.close()
    report = run_import(config(tmp_path, data, mapping, sandbox.url, in_flight="skip"))
    assert (report.in_flight_found, report.failed, report.succeeded) == (1, 1, 0)
    assert read_csv(tmp_path / "out" / "failures.csv")[0]["error_type"] == "IN_FLIGHT_UNKNOWN"
    assert len(sandbox.snapshot()["accepted"]) == 20


def test_a_lead_over_its_limit_fails_without_spending_more_requests(tmp_path, make_sandbox):
    box = make_sandbox(lead_limit=2)
    mapping = write_mapping(tmp_path / "m.yaml", SIMPLE_MAPPING)
    rows = [["same@exemplo.com", f"Nome {i}", ""] for i in range(5)]
    data = write_csv(tmp_path / "lead.csv", ["email", "nome", "plano"], rows)
    report = run_import(config(tmp_path, data, mapping, box.url, concurrency=1))
    assert (report.succeeded, report.failed) == (2, 3)
    assert box.snapshot()["requests"] == 3  # the third is refused; the rest are not tried
    types = [f["error_type"] for f in read_csv(tmp_path / "out" / "failures.csv")]
    assert types == ["LEAD_LIMITED"] * 3


def test_a_gateway_429_pauses_and_every_row_still_arrives(tmp_path, make_sandbox, simple):
    box = make_sandbox(rate_limit=8, rate_window=0.5)
    data, mapping = simple
    report = run_import(config(tmp_path, data, mapping, box.url))
    assert report.succeeded == 20
    assert len(box.snapshot()["accepted"]) == 20


def test_a_missing_column_is_an_input_error_before_anything_is_sent(tmp_path, sandbox, simple):
    data, _ = simple
    mapping = write_mapping(
        tmp_path / "bad.yaml", SIMPLE_MAPPING.replace('"nome"', '"Nome Completo"')
    )
    with pytest.raises(InputError, match="Nome Completo"):
        run_import(config(tmp_path, data, mapping, sandbox.url))
    assert sandbox.snapshot()["requests"] == 0


def test_reports_are_private(tmp_path, sandbox, simple):
    data, mapping = simple
    run_import(config(tmp_path, data, mapping, sandbox.url))
    out = tmp_path / "out"
    assert out.stat().st_mode & 0o777 == 0o700
    for name in ("successes.csv", "failures.csv", "summary.json", "ledger.sqlite"):
        assert (out / name).stat().st_mode & 0o777 == 0o600, name


def test_a_row_whose_unanswered_attempt_may_be_recorded_counts_as_in_flight_next_time(
    tmp_path, simple
):
    import aiohttp

    _, mapping = simple
    one = write_csv(tmp_path / "one.csv", ["email", "nome", "plano"], [["x@exemplo.com", "X", ""]])
    with aioresponses() as mocked:
        for _ in range(6):
            mocked.post(ENDPOINT, exception=aiohttp.ServerDisconnectedError())
        first = run_import(config(tmp_path, one, mapping, RD))
    assert (first.failed, first.requests) == (1, 6)
    failure = read_csv(tmp_path / "out" / "failures.csv")[0]
    assert failure["error_message"].endswith(
        "; an attempt got no answer, so RD Station may have recorded it"
    )

    with aioresponses() as mocked:  # nothing scripted: a request would fail the test
        skipped = run_import(config(tmp_path, one, mapping, RD, in_flight="skip"))
    assert (skipped.in_flight_found, skipped.requests, skipped.failed) == (1, 0, 1)
    assert read_csv(tmp_path / "out" / "failures.csv")[0]["error_type"] == "IN_FLIGHT_UNKNOWN"

    with aioresponses() as mocked:  # the skip is remembered: still held without a flag
        held = run_import(config(tmp_path, one, mapping, RD))
    assert (held.in_flight_found, held.requests, held.failed) == (1, 0, 1)

    with aioresponses() as mocked:  # until the user says resend: counted, and sent
        answer(mocked, 200, payload={"event_uuid": "5408c5a3-4711-4f2e-8d0b-13407a3e30f3"})
        resent = run_import(config(tmp_path, one, mapping, RD, in_flight="resend"))
    assert (resent.in_flight_found, resent.requests, resent.succeeded) == (1, 1, 1)


def test_a_full_disk_mid_run_stops_resumably_and_the_rerun_sends_each_row_once(
    tmp_path, sandbox, simple, monkeypatch
):
    data, mapping = simple
    real_mark_sent = Ledger.mark_sent
    marks: list[int] = []

    def filling_up(self, *args, **kwargs):
        marks.append(1)
        if len(marks) > 5:
            raise sqlite3.OperationalError("database or disk is full")
        real_mark_sent(self, *args, **kwargs)

    monkeypatch.setattr(Ledger, "mark_sent", filling_up)
    stopped = run_import(config(tmp_path, data, mapping, sandbox.url, concurrency=4))
    monkeypatch.setattr(Ledger, "mark_sent", real_mark_sent)
    assert stopped.exit_status == 3
    assert "cannot be written (database or disk is full); no more rows are sent" in (
        stopped.aborted or ""
    )
    answered = len(sandbox.snapshot()["accepted"])
    assert 5 < answered < 20  # it stopped taking rows: the rest were never sent

    again = run_import(config(tmp_path, data, mapping, sandbox.url, concurrency=4))
    # The answers that could not be committed were kept in the journal and replayed first:
    # nothing is in doubt, nothing is sent twice, nothing is lost.
    assert (again.exit_status, again.in_flight_found) == (0, 0)
    assert (again.skipped, again.succeeded) == (answered, 20 - answered)
    assert len(read_csv(tmp_path / "out" / "successes.csv")) == 20
    assert sorted(accepted_emails(sandbox)) == sorted(
        f"pessoa{i}@exemplo.com.br" for i in range(1, 21)
    )


def test_a_run_does_not_start_without_room_on_the_disk(tmp_path, sandbox, simple, monkeypatch):
    import shutil as shutil_module

    data, mapping = simple
    usage = shutil_module.disk_usage(tmp_path)
    monkeypatch.setattr(
        "importer.outfolder.shutil.disk_usage", lambda path: usage._replace(free=5_000_000)
    )
    with pytest.raises(InputError, match=r"only 5.0 MB free on its disk, under the 16 MB"):
        run_import(config(tmp_path, data, mapping, sandbox.url))
    assert sandbox.snapshot()["requests"] == 0


def test_a_ledger_that_cannot_be_written_before_sending_is_an_input_error(
    tmp_path, sandbox, simple, monkeypatch
):
    data, mapping = simple

    def full(self, chunk):
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(Ledger, "record_chunk", full)
    with pytest.raises(InputError, match=r"disk is full\).*free some space") as raised:
        run_import(config(tmp_path, data, mapping, sandbox.url))
    assert raised.value.setting == "out_dir"
    assert sandbox.snapshot()["accepted"] == []


def test_a_crm_accounts_key_stops_at_the_first_row_and_fails_none(tmp_path, make_sandbox, simple):
    data, mapping = simple
    box = make_sandbox(api_keys=None)
    report = run_import(
        dataclasses.replace(config(tmp_path, data, mapping, box.url), api_key="crm-key")
    )
    assert report.exit_status == 3
    assert "RD Station CRM account" in (report.aborted or "")
    assert (report.failed, report.succeeded, report.left_to_send) == (0, 0, 20)
    assert box.snapshot()["requests"] <= 4  # the requests in flight at the first answer


def test_a_disk_filling_up_mid_run_stops_it_before_it_is_full(
    tmp_path, make_sandbox, simple, monkeypatch
):
    import shutil as shutil_module

    data, mapping = simple
    box = make_sandbox(latency=0.05)
    usage = shutil_module.disk_usage(tmp_path)
    looks: list[int] = []

    def filling(path):
        looks.append(1)
        return usage._replace(free=1_000_000 if len(looks) > 2 else 10**10)

    monkeypatch.setattr("importer.outfolder.shutil.disk_usage", filling)
    monkeypatch.setattr("importer.outfolder.FREE_SPACE_EVERY", 0.05)
    report = run_import(config(tmp_path, data, mapping, box.url, concurrency=1))
    assert report.exit_status == 3
    assert "only 1.0 MB free on its disk" in (report.aborted or "")
    assert "run the same command to resume" in (report.aborted or "")
    assert 0 < report.succeeded < 20 and report.left_to_send == 20 - report.succeeded
