"""Issue 14: event batches under OAuth (``import --auth oauth --batch N``).

Every run here is the real importer (``run_import`` or the CLI) against the sandbox on loopback,
signed in through the sandbox's own OAuth flow into a temporary config folder. What the sandbox
recorded (its ``accepted`` list, one entry per conversion) is the truth a run is checked
against: every row arrives, none twice. Runs that must see the budget learnt get a short window
(the pacer's and the sandbox's, scaled together, as ``benchmarks/pacing_live.py`` does), and
their assertions are about what was learnt and sent, not about time.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import math
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import importer.pipeline as pipeline
from helpers import ROOT, read_csv, read_summary, write_csv, write_mapping
from importer import oauth
from importer.batches import (
    MAX_BATCH_BYTES,
    BatchCost,
    budget_units,
    indexed_errors,
    per_event_rows,
)
from importer.cli import cli
from importer.config import Listener, Tuning
from importer.pacing import RateBudget
from importer.pipeline import ImportConfig, run_import
from importer.sandbox import SandboxConfig, SandboxThread, WindowLimiter

MAPPING = """\
conversion_identifier: "lote-teste"
fields:
  email: "email"
  name: "nome"
  cf_inexistente: "extra"
"""


@pytest.fixture
def config_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in list(os.environ):
        if name.startswith("RDSTATION_"):
            monkeypatch.delenv(name)
    home = tmp_path / "config"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home))
    return home


def leads(path: Path, n: int, *, bad: tuple[int, ...] = (), name: str = "") -> Path:
    """``n`` leads; the rows numbered in ``bad`` (as a spreadsheet numbers them) fill a custom
    field the sandbox refuses when given ``custom_fields`` without it (see ``ACCOUNT``)."""
    rows = [
        [f"pessoa{i}@exemplo.com.br", name or f"Pessoa {i}", "x" if i + 1 in bad else ""]
        for i in range(1, n + 1)
    ]
    return write_csv(path, ["email", "nome", "extra"], rows)


# The account's field list names cf_inexistente, so the run's check of the mapping lets it
# through; a sandbox given ``custom_fields`` without it then refuses the rows that fill it (a
# field deleted in RD Station after the list was read): RD Station's refusal, inside a batch.
ACCOUNT = [
    {"uuid": "u-1", "api_identifier": "cf_inexistente", "custom_field": True,
     "data_type": "STRING", "name": {"default": "Extra"}, "label": {"default": "Extra"},
     "presentation_type": "TEXT_INPUT"},
]  # fmt: skip


@contextlib.contextmanager
def signed_in_sandbox(**config: Any) -> Iterator[SandboxThread]:
    """A sandbox, and a sign-in to it saved in the token file."""
    config.setdefault("seed", 1)
    config.setdefault("fields", ACCOUNT)
    with SandboxThread(SandboxConfig(**config)) as box:
        oauth.TokenFile().save(asyncio.run(oauth.sign_in_headless(box.url)).load())
        yield box


class Said(Listener):
    def __init__(self) -> None:
        self.lines: list[str] = []

    def info(self, message: str) -> None:
        self.lines.append(message)

    def warning(self, message: str) -> None:
        self.lines.append(message)


def batched(
    box: SandboxThread,
    data: Path,
    out: Path,
    batch: int,
    listener: Listener | None = None,
    **more: Any,
) -> pipeline.RunReport:
    mapping = write_mapping(data.parent / "map.yaml", MAPPING)
    more.setdefault("rate", 0)
    more.setdefault("concurrency", 4)
    more.setdefault("tuning", Tuning(retry_wait=False))
    config = ImportConfig(
        input_path=data, mapping_path=mapping, out_dir=out, api_url=box.url, auth="oauth",
        batch=batch, **more,
    )  # fmt: skip
    return run_import(config, listener)


def accepted_by_email(box: SandboxThread) -> collections.Counter[str]:
    return collections.Counter(e["payload"]["email"] for e in box.snapshot()["accepted"])


def uuids_by_email(box: SandboxThread) -> dict[str, str]:
    return {e["payload"]["email"]: e["event_uuid"] for e in box.snapshot()["accepted"]}


@pytest.fixture
def short_window(monkeypatch: pytest.MonkeyPatch) -> Any:
    """The pacer's window shortened (the CLI's is always a minute), as the benchmarks do."""

    def use(window: float) -> None:
        class Windowed(RateBudget):
            def __init__(self, per_minute: float, **kwargs: Any) -> None:
                super().__init__(per_minute, window=window, **kwargs)

        monkeypatch.setattr(pipeline, "RateBudget", Windowed)

    return use


# --- a batched run ------------------------------------------------------------------------------


def test_a_batched_run_sends_every_row_with_its_own_event_uuid(
    config_home: Path, tmp_path: Path
) -> None:
    data, out = leads(tmp_path / "leads.csv", 250), tmp_path / "out"
    with signed_in_sandbox() as box:
        report = batched(box, data, out, 100)
        recorded = uuids_by_email(box)
        assert box.snapshot()["requests"] == 3  # 100 + 100 + 50
    assert report.succeeded == 250 and report.failed == 0
    successes = read_csv(out / "successes.csv")
    assert [r["row"] for r in successes] == [str(n) for n in range(2, 252)]
    assert {r["email"]: r["event_uuid"] for r in successes} == recorded
    summary = read_summary(out)
    assert summary["requests"] == 3
    assert summary["batches"] == {
        "size": 100, "requests": 3, "batches": 3, "rows_per_batch": 83.3,
        "split_batches": 0, "split_requests": 0, "rows_failed_alone": 0,
    }  # fmt: skip
    assert summary["batch_cost"] is None  # unpaced, no 429: nothing to learn from


def test_the_built_in_sandbox_takes_batches_out_of_the_box(
    config_home: Path, tmp_path: Path
) -> None:
    data = leads(tmp_path / "leads.csv", 120)
    mapping = write_mapping(tmp_path / "map.yaml", MAPPING.replace("cf_inexistente", "cf_plano"))
    out = tmp_path / "out"
    result = CliRunner().invoke(
        cli,
        ["import", str(data), "--mapping", str(mapping), "--out", str(out), "--sandbox",
         "--auth", "oauth", "--batch", "100", "--rate", "0"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("Imported leads.csv: 120 rows sent, 0 failed, 0 skipped")
    assert lines[1].startswith("Batches of 100: 2 requests")
    assert "In batches of up to 100 rows" in result.stderr
    assert len(read_csv(out / "successes.csv")) == 120


@pytest.mark.parametrize(
    "args, says",
    [
        (["--batch", "100"], "Error: --batch 100 needs --auth oauth: RD Station takes event "
         "batches only from an app signed in with `rd-importer auth login`; add --auth oauth, "
         "or leave --batch out to send one row a request with the API key"),
        (["--batch", "501", "--auth", "oauth"], "Error: --batch 501: use 1 to 500 rows a request"),
        (["--batch", "0", "--auth", "oauth"], "Invalid value for '--batch'"),
    ],
)  # fmt: skip
def test_batch_bounds_and_batch_without_oauth_exit_2_with_one_line(
    config_home: Path, tmp_path: Path, args: list[str], says: str
) -> None:
    data = leads(tmp_path / "leads.csv", 3)
    mapping = write_mapping(tmp_path / "map.yaml", MAPPING)
    result = CliRunner().invoke(
        cli, ["import", str(data), "--mapping", str(mapping), "--sandbox", *args]
    )
    assert result.exit_code == 2
    assert says in result.stderr
    if says.startswith("Error:"):
        assert result.stderr.strip() == says


def test_the_python_api_takes_batch_like_the_flag(config_home: Path, tmp_path: Path) -> None:
    from importer import import_rows

    rows = [{"email": f"p{i}@exemplo.com.br", "nome": f"P {i}"} for i in range(30)]
    mapping = {"conversion_identifier": "api", "fields": {"email": "email", "name": "nome"}}
    report = import_rows(
        rows, mapping, out=tmp_path / "out", sandbox=True, auth="oauth", batch=10, rate=0
    )
    assert report.succeeded == 30
    summary = read_summary(tmp_path / "out")
    assert summary["requests"] == 3 and summary["batches"]["size"] == 10


# --- refused batches ----------------------------------------------------------------------------


@pytest.mark.parametrize("rejects", ["indexed", "unindexed"])
def test_bad_rows_inside_batches_fail_alone_with_rd_stations_message(
    config_home: Path, tmp_path: Path, rejects: str
) -> None:
    bad = (7, 30, 31, 95)
    data, out = leads(tmp_path / "leads.csv", 100, bad=bad), tmp_path / "out"
    with signed_in_sandbox(custom_fields=frozenset({"cf_plano"}), batch_rejects=rejects) as box:
        report = batched(box, data, out, 25)
        sent = accepted_by_email(box)
    assert report.succeeded == 96 and report.failed == 4
    assert set(sent.values()) == {1} and len(sent) == 96
    failures = read_csv(out / "failures.csv")
    assert [int(f["row"]) for f in failures] == list(bad)
    for failure in failures:
        assert failure["error_message"] == (
            "cf_inexistente: O campo personalizado cf_inexistente não existe nesta conta. (INVALID)"
        ), failure
        assert failure["http_status"] == "400" and failure["error_type"] == "INVALID"
    summary = read_summary(out)
    batches = summary["batches"]
    assert batches["rows_failed_alone"] == 4
    # A row's attempts are the requests it was in: its batch's, then its parts' (25, 13, 7...).
    attempts = [int(f["attempts"]) for f in failures]
    assert attempts == ([1, 1, 1, 1] if rejects == "indexed" else [6, 6, 6, 5]), attempts
    if rejects == "indexed":
        # Batches 1, 2 and 4 named their bad rows: each resent once without them.
        assert (batches["split_batches"], batches["split_requests"]) == (3, 3)
        assert summary["requests"] == 4 + 3
    else:
        # Blind halving: 25 -> 13 + 12 -> ... until each bad row is alone.
        assert batches["split_batches"] > 3 and batches["split_requests"] > 6
        assert summary["requests"] == 4 + batches["split_requests"]


def test_the_console_says_what_splitting_cost(config_home: Path, tmp_path: Path) -> None:
    data, out = leads(tmp_path / "leads.csv", 20, bad=(5,)), tmp_path / "out"
    mapping = write_mapping(tmp_path / "map.yaml", MAPPING)
    with signed_in_sandbox(custom_fields=frozenset(), batch_rejects="unindexed") as box:
        result = CliRunner().invoke(
            cli,
            ["import", str(data), "--mapping", str(mapping), "--out", str(out), "--api-url",
             box.url, "--auth", "oauth", "--batch", "20", "--rate", "0"],
        )  # fmt: skip
    assert result.exit_code == 1, result.output
    line = result.stdout.splitlines()[1]
    assert line.startswith("Batches of 20: ")
    assert "1 refused batches split to find their bad rows" not in line  # several splits
    assert "refused batches split to find their bad rows (" in line


def test_the_per_lead_limit_inside_a_batch_fails_only_that_leads_rows(
    config_home: Path, tmp_path: Path
) -> None:
    rows = [[f"p{i}@exemplo.com.br", f"P {i}", ""] for i in range(20)]
    for at in (4, 9, 15):
        rows[at][0] = "repete@exemplo.com.br"
    data = write_csv(tmp_path / "leads.csv", ["email", "nome", "extra"], rows)
    out = tmp_path / "out"
    with signed_in_sandbox(lead_limit=1) as box:
        report = batched(box, data, out, 20, concurrency=1)
        sent = accepted_by_email(box)
    assert sent["repete@exemplo.com.br"] == 1
    assert len(sent) == 18 and set(sent.values()) == {1}
    assert report.succeeded == 18 and report.failed == 2
    failures = read_csv(out / "failures.csv")
    assert [int(f["row"]) for f in failures] == [11, 17]
    assert {f["error_type"] for f in failures} == {"LEAD_LIMITED"}


# --- the budget, learnt -------------------------------------------------------------------------


def test_a_batch_counted_per_event_is_learnt_and_paced_as_single_posts(
    config_home: Path, tmp_path: Path, short_window: Any
) -> None:
    short_window(0.5)
    data, out, said = leads(tmp_path / "leads.csv", 240), tmp_path / "out", Said()
    with signed_in_sandbox(rate_limit=60, rate_window=0.5, batch_cost="per_event") as box:
        report = batched(box, data, out, 20, said, rate=60)
        sent = accepted_by_email(box)
    assert report.succeeded == 240 and len(sent) == 240 and set(sent.values()) == {1}
    summary = read_summary(out)
    assert summary["batch_cost"] == "per_event"
    learnt = [line for line in said.lines if line.startswith("Batches: RD Station counts")]
    assert learnt == [
        "Batches: RD Station counts each event of a batch against the request budget "
        "(batch_cost: per_event); batches now go at the pace of single posts, 20 rows each, "
        "never faster"
    ]
    # The 429 that taught it (one batch is sent alone to find out): none per batch after.
    assert summary["rate_limited_answers"] <= 3, summary["rate_limited_answers"]


def test_a_batch_counted_once_is_learnt(
    config_home: Path, tmp_path: Path, short_window: Any
) -> None:
    short_window(0.5)
    data, out, said = leads(tmp_path / "leads.csv", 600), tmp_path / "out", Said()
    with signed_in_sandbox(rate_limit=60, rate_window=0.5, batch_cost="per_request") as box:
        report = batched(box, data, out, 20, said, rate=60)
    assert report.succeeded == 600
    summary = read_summary(out)
    assert summary["batch_cost"] == "per_request"
    assert summary["rate_limited_answers"] == 0
    assert summary["requests"] == 30
    assert sum(line.startswith("Batches: RD Station counts a batch once") for line in said.lines)
    assert sum(line.startswith("Batches: RD Station counts") for line in said.lines) == 1


# --- faults, kills and the ledger ---------------------------------------------------------------


def test_5xx_and_cut_connections_mid_batch_lose_no_row_and_send_none_twice(
    config_home: Path, tmp_path: Path
) -> None:
    data, out = leads(tmp_path / "leads.csv", 400), tmp_path / "out"
    with signed_in_sandbox(fail_ratio=0.1, drop_ratio=0.1, seed=7) as box:
        report = batched(box, data, out, 20, tuning=Tuning(retry_wait=False, max_attempts=20))
        sent, recorded = accepted_by_email(box), uuids_by_email(box)
        statuses = box.snapshot()["statuses"]
    assert statuses["dropped"] > 0
    assert sum(v for k, v in statuses.items() if k.startswith("5")) > 0
    assert report.succeeded == 400
    assert len(sent) == 400 and set(sent.values()) == {1}
    assert {r["email"]: r["event_uuid"] for r in read_csv(out / "successes.csv")} == recorded


def test_a_batch_with_no_answer_leaves_its_rows_in_doubt(config_home: Path, tmp_path: Path) -> None:
    data, out = leads(tmp_path / "leads.csv", 30), tmp_path / "out"
    with signed_in_sandbox(accept_then_drop_ratio=1.0) as box:
        report = batched(box, data, out, 10, tuning=Tuning(retry_wait=False, max_attempts=1))
        assert len(box.snapshot()["accepted"]) == 30  # recorded, then the answers were lost
    assert report.succeeded == 0 and report.failed == 30
    failures = read_csv(out / "failures.csv")
    assert all("RD Station may have recorded it" in f["error_message"] for f in failures)
    in_doubt = ledger_rows(out, "in_doubt")
    assert len(in_doubt) == 30


def test_a_split_batch_keeps_its_rows_in_doubt_when_an_attempt_got_no_answer(
    config_home: Path, tmp_path: Path
) -> None:
    # Seed 92: the first request is recorded, then its answer is lost (a cut connection); the
    # retry then finds each lead over its limit of 1 (the first attempt spent it), so the batch
    # is split until each row fails alone. They were recorded: in doubt, as a single row would
    # be, not "not recorded: resume tomorrow" (a resume would send them twice).
    data, out = leads(tmp_path / "leads.csv", 4), tmp_path / "out"
    with signed_in_sandbox(lead_limit=1, accept_then_drop_ratio=0.5, seed=92) as box:
        report = batched(
            box, data, out, 4, concurrency=1, tuning=Tuning(retry_wait=False, max_attempts=5)
        )
        assert len(box.snapshot()["accepted"]) == 4
        assert box.snapshot()["statuses"]["dropped"] == 1
    assert report.succeeded == 0 and report.failed == 4
    assert ledger_rows(out, "in_doubt") == {2, 3, 4, 5}
    failures = read_csv(out / "failures.csv")
    assert all("RD Station may have recorded it" in f["error_message"] for f in failures)


@pytest.mark.parametrize(
    "events",
    [
        "short",  # fewer events than sent
        "long",  # more
        "not json",
        "too long",  # a 2xx longer than any batch answer (a portal's page): read in part
    ],
)
def test_a_2xx_without_one_event_uuid_per_row_leaves_the_batch_in_doubt(
    config_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, events: str
) -> None:
    from aiohttp import web

    from importer.sandbox.batch import BatchEndpoint

    process = BatchEndpoint._process

    def answer(self: BatchEndpoint, sent: list[Any]) -> tuple[int, Any]:
        status, body = process(self, sent)
        if events == "short":
            body["events"] = body["events"][:-1]
        elif events == "long":
            body["events"].append({"event_uuid": "e-extra"})
        return status, body

    async def page(self: BatchEndpoint, request: web.Request) -> web.StreamResponse:
        self.sandbox.state._count_request()
        await request.read()
        size = 200_000 if events == "too long" else 20
        return web.Response(status=200, text="<html>" + "x" * size, content_type="text/html")

    monkeypatch.setattr(BatchEndpoint, "_process", answer)
    if events in ("not json", "too long"):
        monkeypatch.setattr(BatchEndpoint, "post_batch", page)
    data, out = leads(tmp_path / "leads.csv", 10), tmp_path / "out"
    with signed_in_sandbox() as box:
        report = batched(box, data, out, 10)
        requests = box.snapshot()["requests"]
    assert requests == 1  # never resent
    assert report.succeeded == 0 and report.failed == 10
    assert ledger_rows(out, "in_doubt") == set(range(2, 12))
    failures = read_csv(out / "failures.csv")
    assert {f["error_type"] for f in failures} == {"NO_EVENT_UUID"}
    said = {
        "short": "with 9 events for 10 sent, not one event_uuid per event",
        "long": "with 11 events for 10 sent, not one event_uuid per event",
        "not json": "with no list of events, not one event_uuid per event",
        "too long": "with an answer far longer than RD Station's (only its start was read), ",
    }[events]
    assert all(said in f["error_message"] for f in failures), failures[0]["error_message"]
    assert not read_csv(out / "successes.csv")


def test_a_2xx_cut_off_counts_the_batch_sent_and_says_so(
    config_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aiohttp import web

    from importer.sandbox.batch import BatchEndpoint

    async def cut(self: BatchEndpoint, request: web.Request) -> web.StreamResponse:
        self.sandbox.state._count_request()
        self._process(await request.json())  # recorded
        answer = web.StreamResponse(status=200)
        answer.content_length, answer.content_type = 5_000, "application/json"
        await answer.prepare(request)
        await answer.write(b'{"event_batch_uuid": "b-1", "ev')
        assert request.transport is not None
        request.transport.abort()
        return answer

    monkeypatch.setattr(BatchEndpoint, "post_batch", cut)
    data, out = leads(tmp_path / "leads.csv", 10), tmp_path / "out"
    with signed_in_sandbox() as box:
        report = batched(box, data, out, 10)
        assert box.snapshot()["requests"] == 1 and len(box.snapshot()["accepted"]) == 10
    assert report.succeeded == 10  # recorded: never sent again
    assert {r["event_uuid"] for r in read_csv(out / "successes.csv")} == {""}
    warnings = read_summary(out)["warnings"]
    assert [w["message"] for w in warnings] == [
        "RD Station accepted a batch of 10 rows (HTTP 200) but its answer was cut off: they "
        "count as sent (sending them again would record them twice), with no event_uuid in "
        "successes.csv"
    ]


def ledger_rows(out: Path, state: str) -> set[int]:
    with contextlib.closing(sqlite3.connect(out / "ledger.sqlite")) as db:
        return {r for (r,) in db.execute("SELECT row FROM rows WHERE state = ?", (state,))}


def test_a_kill_mid_batch_leaves_the_batchs_rows_in_flight_and_resume_follows_in_flight(
    config_home: Path, tmp_path: Path
) -> None:
    data, out = leads(tmp_path / "leads.csv", 60), tmp_path / "out"
    mapping = write_mapping(tmp_path / "map.yaml", MAPPING)
    command = [sys.executable, "-m", "importer", "import", str(data), "--mapping", str(mapping),
               "--out", str(out), "--auth", "oauth", "--batch", "10", "--rate", "0",
               "--concurrency", "2", "-q"]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with signed_in_sandbox(latency=30) as slow:
        proc = subprocess.Popen(
            [*command, "--api-url", slow.url], cwd=ROOT, env=env,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 30
            while len(_in_flight(out)) < 20 and time.monotonic() < deadline:
                time.sleep(0.05)
            # Both batches are in flight: the sandbox records before it answers, slowly.
            while len(slow.snapshot()["accepted"]) < 20 and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
        in_flight = _in_flight(out)
        first = accepted_by_email(slow)
    assert in_flight == set(range(2, 22))  # two whole batches, marked before they left
    assert sum(first.values()) == 20
    with signed_in_sandbox() as box:
        resumed = subprocess.run(
            [*command, "--api-url", box.url, "--in-flight", "skip"], cwd=ROOT, env=env,
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        second = accepted_by_email(box)
    assert resumed.returncode == 1, resumed.stderr  # the 20 in doubt are held, not sent
    assert not (first.keys() & second.keys())  # none sent twice
    assert len(first) + len(second) == 60  # none lost
    summary = read_summary(out)
    assert summary["in_flight_found"] == 20
    assert summary["succeeded"] == 40


def _in_flight(out: Path) -> set[int]:
    try:
        return ledger_rows(out, "in_flight")
    except sqlite3.Error:
        return set()


def test_the_body_size_cap_cuts_batches(config_home: Path, tmp_path: Path) -> None:
    data = leads(tmp_path / "leads.csv", 150, name="N" * 3_000)
    out = tmp_path / "out"
    with signed_in_sandbox() as box:
        report = batched(box, data, out, 100)
        statuses = box.snapshot()["statuses"]
    assert report.succeeded == 150
    assert statuses == {"200": statuses["200"]}  # never a 413
    batches = read_summary(out)["batches"]
    assert batches["requests"] >= 3
    assert batches["rows_per_batch"] * 3_050 <= MAX_BATCH_BYTES


def test_a_row_too_big_for_a_batch_of_one_goes_as_a_single_post(
    config_home: Path, tmp_path: Path
) -> None:
    # A body of 199,999 or 200,000 bytes is within the 0.2 MB a single post takes; in a batch
    # of one, the array's brackets put it past the limit (a 413). It goes as a single post.
    probe = tmp_path / "probe"
    with signed_in_sandbox() as box:
        batched(box, leads(tmp_path / "one.csv", 1, name="N"), probe, 10)
    with contextlib.closing(sqlite3.connect(probe / "ledger.sqlite")) as db:
        ((overhead,),) = db.execute("SELECT length(body) - 1 FROM rows").fetchall()
    rows = [
        [f"pessoa{i}@exemplo.com.br", "N" * (size - overhead), ""]
        for i, size in enumerate([200_000, 199_999, 100, 199_000], start=1)
    ]
    data, out = write_csv(tmp_path / "leads.csv", ["email", "nome", "extra"], rows), tmp_path / "o"
    with signed_in_sandbox() as box:
        report = batched(box, data, out, 10, concurrency=1)
        sent, statuses = accepted_by_email(box), box.snapshot()["statuses"]
    assert report.succeeded == 4, read_csv(out / "failures.csv")[0]["error_message"]
    assert len(sent) == 4 and set(sent.values()) == {1}
    assert "413" not in statuses
    summary = read_summary(out)
    assert summary["requests"] == 3 and summary["batches"]["requests"] == 1


# --- the pieces ---------------------------------------------------------------------------------


def test_a_refusal_that_names_events_by_index_gives_each_its_own_message() -> None:
    message = (
        "$.body[3].payload.email: email has an invalid format. (INVALID_FORMAT); "
        "$.body[3].payload.linkedin: bad (INVALID_FORMAT); $.body[7].event_type: event_type "
        "must be one of the valid options. (valid options: CONVERSION) (INVALID_OPTION)"
    )
    assert indexed_errors(message, 10) == {
        3: ("email: email has an invalid format. (INVALID_FORMAT); linkedin: bad "
            "(INVALID_FORMAT)", "INVALID_FORMAT"),
        7: ("event_type: event_type must be one of the valid options. (valid options: "
            "CONVERSION) (INVALID_OPTION)", "INVALID_OPTION"),
    }  # fmt: skip
    assert indexed_errors(message, 5) == {}  # an index outside the batch: trust none
    assert indexed_errors("email: email has an invalid format.", 5) == {}
    assert indexed_errors("$.body[1].payload.email: a; $.body[2].payload.name: cut…", 5) == {
        1: ("email: a", None)
    }


def test_per_event_batches_fill_a_window_as_single_posts_would() -> None:
    assert per_event_rows(100, 120) == 60
    assert per_event_rows(40, 120) == 40
    assert per_event_rows(100, 500) == 100
    assert per_event_rows(100, 1) == 1
    assert per_event_rows(100, math.inf) == 100


async def test_the_pacer_makes_room_for_every_unit_of_a_request() -> None:
    now = [0.0]

    async def sleep(seconds: float) -> None:
        now[0] += seconds

    budget = RateBudget(120, clock=lambda: now[0], sleep=sleep)
    await budget.acquire(60)
    await budget.acquire(60)
    second = now[0]
    await budget.acquire(60)  # the window holds 120: the third waits for the first to leave
    assert second < 60 and now[0] >= 60
    budget.spend(100)  # found to have cost more: paid for by the next send
    before = now[0]
    await budget.acquire(1)
    assert now[0] - before >= 40


async def test_a_429_after_a_batch_was_proven_to_count_once_is_only_a_429() -> None:
    # Seven batches of 100 accepted within a minute at 120 a minute: RD Station counts a batch
    # once. A 429 then (another integration spending the budget) must not turn the rule to
    # per_event: that charged the 693 events at once (a pause of nearly six minutes) and sent
    # the rest of the run at the pace of single posts.
    now = [0.0]

    async def sleep(seconds: float) -> None:
        now[0] += seconds

    budget = RateBudget(120, clock=lambda: now[0], sleep=sleep)
    cost = BatchCost(budget, clock=lambda: now[0])
    for _ in range(7):
        await budget.acquire(cost.units(100))
        cost.sent(100)
        now[0] += 0.1
        learnt = cost.accepted(100)
    assert learnt == cost.learnt == "per_request"
    await budget.acquire(cost.units(100))
    assert cost.rate_limited(100, cost.sent(100)) == (False, None)
    budget.on_rate_limited(None)
    assert cost.learnt == "per_request" and cost.units(100) == 1
    before = now[0]
    await budget.acquire(cost.units(100))
    assert now[0] - before < 5  # the budget's own backoff, not minutes


def test_the_sandbox_gateway_counts_a_batch_per_event_when_told() -> None:
    now = [0.0]
    limiter = WindowLimiter(10, 60, clock=lambda: now[0])
    assert limiter.hit("k", 6) is None
    assert limiter.hit("k", 6) == pytest.approx(60)
    assert limiter.free("k") == 4
    assert limiter.hit("k", 11) == 60  # never fits
    now[0] = 61
    assert limiter.hit("k", 10) is None


def test_the_eta_counts_rows_in_the_requests_they_take() -> None:
    assert budget_units(250, None, 100) == 3  # a batch counted once: three requests
    assert budget_units(250, None, None) == 250  # single posts
    assert budget_units(0, None, 100) == 0


def test_watch_sends_batches_too(config_home: Path, tmp_path: Path) -> None:
    inbox, out = tmp_path / "inbox", tmp_path / "watch-out"
    inbox.mkdir()
    leads(inbox / "drop.csv", 30)
    mapping = write_mapping(tmp_path / "map.yaml", MAPPING)
    with signed_in_sandbox() as box:
        result = CliRunner().invoke(
            cli,
            ["watch", str(inbox), "--mapping", str(mapping), "--out", str(out), "--once",
             "--settle", "0", "--rate", "0", "--auth", "oauth", "--batch", "10",
             "--api-url", box.url],
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        assert box.snapshot()["requests"] == 3
        assert len(accepted_by_email(box)) == 30


def test_the_batches_line_counts_in_words_that_agree() -> None:
    from importer.report import batches_line

    one = {"size": 10, "requests": 1, "rows_per_batch": 1.0, "split_batches": 1,
           "split_requests": 1}  # fmt: skip
    assert batches_line(one, None) == (
        "Batches of 10: 1 request, 1 row each on average; 1 refused batch split to find its "
        "bad rows (1 extra request); what a batch costs was not learnt."
    )
    # Every row sent by an earlier run: no batch, no average of nothing.
    none = {**one, "requests": 0, "rows_per_batch": None, "split_batches": 0}
    assert (
        batches_line(none, None) == "Batches of 10: 0 requests; what a batch costs was not learnt."
    )
