"""Never lose a row, never send one twice: kills, signals, faults, limits and refused keys.

The real CLI runs in its own process against a sandbox on loopback (a thread of this process, so
it outlives the importer it serves), or run_import runs in this process when retry waits must be
short. Every check compares what the sandbox recorded with what the importer's reports and
ledger say.
"""

from __future__ import annotations

import collections
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest
from aioresponses import CallbackResult, aioresponses

from helpers import API_KEY, ROOT, ScriptedResponse, read_csv, read_summary, write_csv
from importer.pipeline import ImportConfig, Listener, Tuning, run_import
from importer.sandbox import SandboxThread

MAPPING = """\
conversion_identifier: "resiliencia"
fields:
  email: "email"
  name: "nome"
"""
CONCURRENCY = 8
RD = "https://rd.test"
ENDPOINT = f"{RD}/platform/conversions?api_key={API_KEY}"
UUID = "5408c5a3-4711-4f2e-8d0b-13407a3e30f3"


# -- helpers ----------------------------------------------------------------------------------


def email_of(row: int) -> str:
    return f"lead{row}@exemplo.com.br"


def row_of(email: str) -> int:
    return int(email.removeprefix("lead").split("@")[0])


def leads(tmp_path: Path, count: int) -> tuple[Path, Path]:
    """A CSV of ``count`` distinct leads (spreadsheet rows 2..count+1) and its mapping."""
    rows = [[email_of(n), f"Pessoa {n}"] for n in range(2, count + 2)]
    data = write_csv(tmp_path / "leads.csv", ["email", "nome"], rows)
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text(MAPPING, encoding="utf-8")
    return data, mapping


def start_cli(data: Path, mapping: Path, url: str, out: Path, *extra: str) -> subprocess.Popen:
    command = [
        sys.executable, "-m", "importer", "import", str(data), "--mapping", str(mapping),
        "--api-url", url, "--out", str(out), "--rate", "0",
        "--concurrency", str(CONCURRENCY), "-q", *extra,
    ]  # fmt: skip
    env = {**os.environ, "RDSTATION_API_KEY": API_KEY}
    return subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def finish(proc: subprocess.Popen, timeout: float = 60) -> tuple[int, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out + err


def wait_until(check: Callable[[], bool], proc: subprocess.Popen | None = None) -> bool:
    """Poll ``check`` until it holds (True) or ``proc`` ended first (False)."""
    deadline = time.monotonic() + 60
    while not check():
        if proc is not None and proc.poll() is not None:
            return False
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.005)
    return True


def requests_seen(box: SandboxThread) -> int:
    return box.snapshot()["requests"]


def accepted_counts(box: SandboxThread) -> collections.Counter[str]:
    return collections.Counter(e["payload"]["email"] for e in box.snapshot()["accepted"])


def uuids_by_email(box: SandboxThread) -> dict[str, set[str]]:
    found: dict[str, set[str]] = collections.defaultdict(set)
    for event in box.snapshot()["accepted"]:
        found[event["payload"]["email"]].add(event["event_uuid"])
    return found


def ledger(out: Path, sql: str) -> list[tuple]:
    """Read the ledger of a run that has ended (or was killed); none yet reads as empty."""
    path = out / "ledger.sqlite"
    if not path.exists():
        return []
    db = sqlite3.connect(path)
    try:
        return db.execute(sql).fetchall()
    except sqlite3.OperationalError:  # killed before its schema was written
        return []
    finally:
        db.close()


def rows_in_state(out: Path, state: str) -> set[int]:
    return {r for (r,) in ledger(out, f"SELECT row FROM rows WHERE state = '{state}'")}


def assert_reports_whole(out: Path, rows: int) -> dict:
    summary = read_summary(out)
    assert summary["rows"] == rows
    assert summary["rows"] == summary["succeeded"] + summary["failed"] + summary["skipped"]
    return summary


def assert_successes_match_the_sandbox(out: Path, box: SandboxThread, rows: int) -> None:
    """successes.csv lists every row once, each with a uuid the sandbox gave that row."""
    uuids = uuids_by_email(box)
    successes = read_csv(out / "successes.csv")
    assert [int(s["row"]) for s in successes] == list(range(2, rows + 2))
    for line in successes:
        assert line["email"] == email_of(int(line["row"]))
        assert line["event_uuid"] in uuids[line["email"]], line


def reconfigure(box: SandboxThread, **changes: object) -> None:
    # The sandbox reads its (frozen) configuration on every request but has no knob to change
    # it mid-run (refuse the key, answer faster), so the test changes it in place.
    for name, value in changes.items():
        object.__setattr__(box.config, name, value)


def config(tmp_path: Path, data: Path, mapping: Path, url: str, **kw) -> ImportConfig:
    kw.setdefault("rate", 0)
    kw.setdefault("concurrency", CONCURRENCY)
    kw.setdefault("tuning", Tuning(retry_wait=False))
    return ImportConfig(
        input_path=data,
        mapping_path=mapping,
        out_dir=tmp_path / "out",
        api_url=url,
        api_key=API_KEY,
        **kw,
    )


# -- 1. SIGKILL at random moments ---------------------------------------------------------------


@pytest.mark.slow
def test_killed_at_random_moments_every_row_arrives_and_only_rows_in_flight_twice(
    tmp_path, make_sandbox
):
    rows, kills_wanted = 1_500, 4
    box = make_sandbox(latency=0.005, latency_jitter=0.01)
    data, mapping = leads(tmp_path, rows)
    out = tmp_path / "out"
    rng = random.Random(20260405)
    kills = 0
    in_flight_at_kills: set[int] = set()
    in_flight_after_last_kill = 0
    for _ in range(kills_wanted + 5):
        proc = start_cli(data, mapping, box.url, out)
        if kills < kills_wanted:
            if kills == 0:  # anywhere from start-up on, before sending too
                time.sleep(rng.uniform(0.05, 1.0))
                alive = proc.poll() is None
            else:  # somewhere while rows are being sent
                goal = requests_seen(box) + rng.randint(30, 300)
                alive = wait_until(lambda goal=goal: requests_seen(box) >= goal, proc)
            if alive:
                proc.send_signal(signal.SIGKILL)
                proc.communicate(timeout=10)
                kills += 1
                in_flight = rows_in_state(out, "in_flight")
                in_flight_at_kills |= in_flight
                in_flight_after_last_kill = len(in_flight)
                continue
        status, output = finish(proc)
        assert status == 0, output
        break
    else:
        raise AssertionError("the import never finished")
    assert kills == kills_wanted

    counts = accepted_counts(box)
    assert set(counts) == {email_of(n) for n in range(2, rows + 2)}  # no row lost
    twice = {row_of(e) for e, c in counts.items() if c > 1}
    assert sum(counts.values()) - rows <= kills * CONCURRENCY
    assert twice <= in_flight_at_kills  # only rows the ledger held in doubt were sent again
    assert_successes_match_the_sandbox(out, box, rows)
    summary = assert_reports_whole(out, rows)
    assert summary["failed"] == 0
    assert summary["in_flight_found"] == in_flight_after_last_kill
    assert rows_in_state(out, "sent") == set(range(2, rows + 2))


# -- 2. Ctrl-C and SIGTERM -----------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    ("signum", "said"), [(signal.SIGINT, "Ctrl-C"), (signal.SIGTERM, "SIGTERM")]
)
def test_a_signal_lets_requests_in_flight_finish_then_exits_3_and_resumes(
    tmp_path, make_sandbox, signum, said
):
    rows = 200
    box = make_sandbox(latency=0.1)
    data, mapping = leads(tmp_path, rows)
    out = tmp_path / "out"

    proc = start_cli(data, mapping, box.url, out)
    assert wait_until(lambda: requests_seen(box) >= 40, proc)
    before = requests_seen(box)
    signalled = time.monotonic()
    proc.send_signal(signum)
    status, output = finish(proc)
    took = time.monotonic() - signalled

    assert status == 3, output
    assert took < 15, f"{took:.1f} s to stop"
    assert f"Stopped: interrupted ({said})" in output
    assert "Run the same command to resume" in output
    # It stopped taking rows: only requests already on their way reached the sandbox.
    assert requests_seen(box) <= before + 2 * CONCURRENCY
    # Every request that left was brought home: no row is left in doubt.
    assert rows_in_state(out, "in_flight") == set()
    sent = rows_in_state(out, "sent")
    assert len(sent) == sum(accepted_counts(box).values())
    summary = assert_reports_whole(out, rows)
    assert (summary["status"], summary["exit_status"]) == ("aborted", 3)
    assert summary["succeeded"] == len(sent) and summary["left_to_send"] == rows - len(sent)
    assert len(read_csv(out / "successes.csv")) == len(sent)

    reconfigure(box, latency=0.0)
    status, output = finish(start_cli(data, mapping, box.url, out))
    assert status == 0, output
    counts = accepted_counts(box)
    assert len(counts) == rows and max(counts.values()) == 1
    summary = assert_reports_whole(out, rows)
    assert (summary["succeeded"], summary["skipped"]) == (rows - len(sent), len(sent))
    assert summary["in_flight_found"] == 0
    assert_successes_match_the_sandbox(out, box, rows)


@pytest.mark.slow
def test_a_second_ctrl_c_leaves_the_abandoned_requests_in_doubt_not_pending(tmp_path, make_sandbox):
    # The sandbox records each conversion on arrival and answers 5 s later: a second Ctrl-C
    # abandons requests that were recorded. Marking them pending would resend them unannounced
    # (and even with --in-flight skip); they must stay in flight.
    rows = 24
    box = make_sandbox(latency=5.0)
    data, mapping = leads(tmp_path, rows)
    out = tmp_path / "out"

    proc = start_cli(data, mapping, box.url, out)
    assert wait_until(lambda: len(box.snapshot()["accepted"]) >= CONCURRENCY, proc)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    status, output = finish(proc)
    assert status == 3, output

    recorded = {row_of(e) for e in accepted_counts(box)}
    assert recorded <= rows_in_state(out, "sent") | rows_in_state(out, "in_flight")
    doubtful = rows_in_state(out, "in_flight")

    reconfigure(box, latency=0.0)
    status, output = finish(start_cli(data, mapping, box.url, out, "--in-flight", "skip"))
    # The doubtful rows are reported as failed, not sent. (Had the two signals arrived as one,
    # the answers would have come home and none would be in doubt.)
    assert status == (1 if doubtful else 0), output
    counts = accepted_counts(box)
    assert len(counts) == rows and max(counts.values()) == 1
    summary = assert_reports_whole(out, rows)
    assert summary["in_flight_found"] == len(doubtful)
    failures = read_csv(out / "failures.csv")
    assert {int(f["row"]) for f in failures} == doubtful
    assert {f["error_type"] for f in failures} <= {"IN_FLIGHT_UNKNOWN"}


# -- 3. faults on the way -----------------------------------------------------------------------


def faults(box: SandboxThread) -> int:
    statuses = box.snapshot()["statuses"]
    return sum(n for status, n in statuses.items() if status == "dropped" or status.startswith("5"))


def test_ten_percent_5xx_and_dropped_connections_lose_no_row_and_double_none(
    tmp_path, make_sandbox
):
    rows = 2_000
    box = make_sandbox(fail_ratio=0.05, drop_ratio=0.05)  # both refuse before recording
    data, mapping = leads(tmp_path, rows)
    report = run_import(config(tmp_path, data, mapping, box.url))

    counts = accepted_counts(box)
    assert len(counts) == rows and max(counts.values()) == 1
    assert (report.succeeded, report.failed) == (rows, 0)
    assert faults(box) > rows // 20  # the faults did happen...
    assert report.retries == faults(box)  # ...each cost one more request, and nothing else did
    assert report.requests == requests_seen(box) == rows + faults(box)
    assert_successes_match_the_sandbox(tmp_path / "out", box, rows)
    assert_reports_whole(tmp_path / "out", rows)


def test_only_a_connection_dropped_after_the_server_recorded_sends_a_row_twice(
    tmp_path, make_sandbox
):
    rows = 500
    box = make_sandbox(fail_ratio=0.05, accept_then_drop_ratio=0.05)
    data, mapping = leads(tmp_path, rows)
    report = run_import(config(tmp_path, data, mapping, box.url))

    state = box.snapshot()
    counts = accepted_counts(box)
    assert len(counts) == rows and report.succeeded == rows
    recorded_unanswered = len(state["accepted"]) - state["statuses"]["200"]
    assert recorded_unanswered > 0
    # Each conversion recorded but never answered became a duplicate; nothing else did.
    assert sum(counts.values()) - rows == recorded_unanswered
    # The importer can tell which rows those may be: an attempt went unanswered, then a retry.
    twice = {e for e, c in counts.items() if c > 1}
    retried = {e for e, a in ledger(tmp_path / "out", "SELECT email, attempts FROM rows") if a > 1}
    assert twice <= retried
    assert report.retries == faults(box) >= recorded_unanswered
    assert_successes_match_the_sandbox(tmp_path / "out", box, rows)


# -- 4. RD Station's two limits -----------------------------------------------------------------


def test_a_gateway_429_pauses_every_worker_not_only_the_one_that_got_it(tmp_path):
    rows, workers = 40, 4
    data, mapping = leads(tmp_path, rows)
    calls: list[float] = []

    def answer(url, **kwargs) -> CallbackResult:
        calls.append(time.monotonic())
        if len(calls) == 10:
            return CallbackResult(
                status=429,
                payload={"message": "API rate limit exceeded"},
                headers={"retry-after-quotas": "1"},
                response_class=ScriptedResponse,
            )
        uuid = f"00000000-0000-4000-8000-{len(calls):012d}"
        return CallbackResult(payload={"event_uuid": uuid}, response_class=ScriptedResponse)

    with aioresponses() as mocked:
        mocked.post(ENDPOINT, callback=answer, repeat=True)
        report = run_import(config(tmp_path, data, mapping, RD, concurrency=workers))

    assert (report.succeeded, report.rate_limited_answers, report.requests) == (rows, 1, rows + 1)
    refused = calls[9]
    # The other workers' requests already on their way may land; then nobody sends until the
    # server's second is over (a worker pausing alone would let the others send the file).
    during_the_pause = [t for t in calls[10:] if t < refused + 0.8]
    assert len(during_the_pause) <= workers - 1
    assert len(read_csv(tmp_path / "out" / "successes.csv")) == rows


class Warnings(Listener):
    """Records each warning with the number of requests the sandbox had seen by then."""

    def __init__(self, box: SandboxThread):
        self.box = box
        self.said: list[tuple[str, int]] = []

    def warning(self, message: str) -> None:
        self.said.append((message, requests_seen(self.box)))


def test_more_rows_for_one_email_than_the_lead_limit_are_warned_before_sending(
    tmp_path, make_sandbox
):
    box = make_sandbox(lead_limit=24)
    many = [["muitas@exemplo.com", f"Linha {i}"] for i in range(30)]
    others = [[email_of(n), f"Pessoa {n}"] for n in range(32, 52)]
    data = write_csv(tmp_path / "lead.csv", ["email", "nome"], many + others)
    mapping = tmp_path / "m.yaml"
    mapping.write_text(MAPPING, encoding="utf-8")
    listener = Warnings(box)
    report = run_import(config(tmp_path, data, mapping, box.url), listener)

    # The 30 rows also name the lead differently: a warning of its own (test_warnings.py).
    [(warning, requests_then)] = [s for s in listener.said if "more than 24 rows" in s[0]]
    assert requests_then == 0  # before the first request
    assert "1 email(s) have more than 24 rows" in warning and "tomorrow" in warning
    assert all("muitas@" not in said for said, _ in listener.said)  # personal data: never
    assert warning in [w["message"] for w in read_summary(tmp_path / "out")["warnings"]]

    assert accepted_counts(box)["muitas@exemplo.com"] == 24
    assert (report.succeeded, report.failed) == (24 + 20, 6)
    failures = read_csv(tmp_path / "out" / "failures.csv")
    assert [f["error_type"] for f in failures] == ["LEAD_LIMITED"] * 6
    refused = [f for f in failures if f["http_status"] == "429"]
    not_sent = [f for f in failures if f["attempts"] == "0"]
    # The first 429 stops requests for that email; only requests already on their way got one.
    assert 1 <= len(refused) <= CONCURRENCY and len(refused) + len(not_sent) == 6
    assert all(f["http_status"] == "" for f in not_sent)
    assert requests_seen(box) == 24 + 20 + len(refused)
    assert all("tomorrow" in f["error_message"] for f in failures)


# -- 5. the key refused in the middle of a run -------------------------------------------------


@pytest.mark.slow
def test_a_key_refused_mid_run_stops_after_requests_in_flight_and_resume_sends_the_rest(
    tmp_path, make_sandbox
):
    rows = 400
    box = make_sandbox(latency=0.01)
    data, mapping = leads(tmp_path, rows)
    out = tmp_path / "out"

    proc = start_cli(data, mapping, box.url, out)
    assert wait_until(lambda: len(box.snapshot()["accepted"]) >= 100, proc)
    reconfigure(box, api_keys=frozenset())
    status, output = finish(proc)

    assert status == 3, output
    assert "refused the API key" in output and API_KEY not in output
    assert box.snapshot()["statuses"]["401"] <= CONCURRENCY  # only requests already under way
    assert rows_in_state(out, "in_flight") == set()
    sent, pending = rows_in_state(out, "sent"), rows_in_state(out, "pending")
    assert len(sent) == sum(accepted_counts(box).values())
    assert pending and sent | pending == set(range(2, rows + 2))
    summary = assert_reports_whole(out, rows)
    assert (summary["failed"], summary["left_to_send"]) == (0, len(pending))

    reconfigure(box, api_keys=frozenset({API_KEY}))
    status, output = finish(start_cli(data, mapping, box.url, out))
    assert status == 0, output
    counts = accepted_counts(box)
    assert len(counts) == rows and max(counts.values()) == 1
    summary = assert_reports_whole(out, rows)
    assert (summary["succeeded"], summary["skipped"]) == (len(pending), len(sent))
    assert_successes_match_the_sandbox(out, box, rows)


# -- 6. what a failed row records ---------------------------------------------------------------


def test_every_failed_row_records_its_attempts_and_last_http_status(tmp_path):
    emails = ["a@exemplo.com", "b@exemplo.com", "c@exemplo.com", "nao-e-email", "d@exemplo.com"]
    emails += ["e@exemplo.com", "f@exemplo.com"]
    data = write_csv(tmp_path / "f.csv", ["email", "nome"], [[e, "X"] for e in emails])
    mapping = tmp_path / "m.yaml"
    mapping.write_text(MAPPING, encoding="utf-8")
    html = "<html><title>502 Bad Gateway</title></html>"
    field_error = {"errors": {"name": [{"error_type": "TOO_LONG", "error_message": "too long"}]}}
    lead = {"error": "'lead_limiter' rate limit exceeded for 86400 second(s) period for key 'e'"}
    script: list[dict] = [
        # a: five server errors, then a timeout-like 504: fails with the last
        *({"status": s, "body": html} for s in (500, 502, 503, 500, 502)),
        {"status": 504, "body": html},
        # b: a server error, then RD Station rejects the row
        {"status": 503, "body": html},
        {"status": 400, "payload": field_error},
        # c: the gateway's 429 (not counted against retries, but an attempt), then a 422
        {
            "status": 429,
            "payload": {"message": "API rate limit exceeded"},
            "headers": {"Retry-After": "0"},
        },
        {"status": 422, "payload": field_error},
        # d: answered 500, then the connection drops five times: no status for the last
        {"status": 500, "body": html},
        *({"exception": aiohttp.ServerDisconnectedError()} for _ in range(5)),
        # e: the lead limiter
        {"status": 429, "payload": lead},
        # f: sent
        {"status": 200, "payload": {"event_uuid": UUID}},
    ]
    with aioresponses() as mocked:
        for answer in script:
            mocked.post(ENDPOINT, response_class=ScriptedResponse, **answer)
        report = run_import(config(tmp_path, data, mapping, RD, concurrency=1))

    assert (report.succeeded, report.failed, report.requests) == (1, 6, len(script))
    failures = {f["email"]: f for f in read_csv(tmp_path / "out" / "failures.csv")}
    recorded = {
        e: (f["error_stage"], f["attempts"], f["http_status"], f["error_type"])
        for e, f in failures.items()
    }
    assert recorded == {
        "a@exemplo.com": ("api", "6", "504", "HTTP_504"),
        "b@exemplo.com": ("api", "2", "400", "TOO_LONG"),
        "c@exemplo.com": ("api", "2", "422", "TOO_LONG"),
        "nao-e-email": ("validation", "0", "", "VALIDATION_ERROR"),
        "d@exemplo.com": ("api", "6", "", "CONNECTION_ERROR"),
        "e@exemplo.com": ("api", "1", "429", "LEAD_LIMITED"),
    }
