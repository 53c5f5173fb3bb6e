"""report.html: what it says, that it stays small and inert, and what a browser shows of it.

The browser tests render the page in headless Chromium (Debian's ``chromium``, installed by
.ci/run) and skip with the reason where there is none.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest

from helpers import API_KEY, EXAMPLE_MAPPING, read_summary, write_csv, write_mapping
from importer.html_report import FIXES, GENERIC_FIX, fix_advice, render
from importer.ledger import ChunkRecord, Failure, Ledger, Marks, NewRow
from importer.pacing import RateBudget
from importer.pipeline import ImportConfig, Tuning, run_import
from importer.records import Failed, FailureKind, Sent
from importer.report import FirstFailures, RunReport, console_summary
from importer.retry import RetryPolicy
from importer.sending import PendingRows, RunControl, Sender, Timeline
from importer.stop_rules import StopRules

MAPPING = """\
conversion_identifier: "teste-relatorio"
fields:
  email: "email"
  name: "nome"
"""

# -- the sender's timeline ------------------------------------------------------------------------


def totals(timeline: list[dict]) -> tuple[int, int, int]:
    return tuple(sum(int(b[k]) for b in timeline) for k in ("requests", "rate_limited", "retries"))


def test_the_timeline_counts_per_10_s_bucket_since_sending_started() -> None:
    now = [100.0]
    timeline = Timeline(clock=lambda: now[0])
    timeline.start()
    for at, what in [(0, 0), (9.9, 0), (12, 0), (12, 1), (13, 2), (35, 0)]:
        now[0] = 100 + at
        timeline.count(what)
    now[0] = 147
    timeline.stop()  # the buckets reach the end of sending, empty ones included
    assert timeline.as_list() == [
        {"t": 0.0, "requests": 2, "rate_limited": 0, "retries": 0},
        {"t": 10.0, "requests": 1, "rate_limited": 1, "retries": 1},
        {"t": 20.0, "requests": 0, "rate_limited": 0, "retries": 0},
        {"t": 30.0, "requests": 1, "rate_limited": 0, "retries": 0},
        {"t": 40.0, "requests": 0, "rate_limited": 0, "retries": 0},
    ]


def test_a_long_run_keeps_a_few_hundred_buckets_and_every_count() -> None:
    now = [0.0]
    timeline = Timeline(clock=lambda: now[0])
    for second in range(14 * 3600):  # 14 hours, a request a second, a 429 a minute
        now[0] = second + 0.5
        timeline.count(Timeline.REQUESTS)
        if second % 60 == 0:
            timeline.count(Timeline.RATE_LIMITED)
    buckets = timeline.as_list()
    assert 150 <= len(buckets) <= 300
    assert totals(buckets) == (14 * 3600, 14 * 60, 0)
    assert timeline.width == 320  # 10 s doubled five times
    assert [b["t"] for b in buckets[:3]] == [0, 320, 640]


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    ledger = Ledger(tmp_path / "ledger.sqlite")
    ledger.begin_run(tmp_path / "in.csv", "2026-12-01T00:00:00Z", dry_run=False)
    yield ledger
    ledger.close()


async def test_the_sender_counts_requests_429s_and_retries_on_its_timeline(ledger: Ledger) -> None:
    rows = [
        NewRow(f"k{n}", n, f"body-{n}".encode(), b"[]", f"{n}@x.co", "c", f"i{n}", n)
        for n in (2, 3)
    ]
    ledger.record_chunk(ChunkRecord(new=rows))
    throttled = Failed(FailureKind.RATE_LIMITED, 429, "RATE_LIMITED", "slow down", 0.0)
    transient = Failed(FailureKind.TRANSIENT, 503, "HTTP_503", "RD Station answered 503")
    answers = {b"body-2": [throttled, transient, Sent("u2")], b"body-3": [Sent("u3")]}

    async def transport(body: bytes) -> Sent | Failed:
        return answers[body].pop(0)

    control = RunControl()
    pending = PendingRows(ledger, control)
    pending.reading_ended()
    sender = Sender(
        transport=transport,
        rows=pending,
        marks=Marks(ledger),
        control=control,
        budget=RateBudget(0),
        retry=RetryPolicy(max_attempts=3, wait=False),
        concurrency=1,
        stop_grace=1.0,
        now=lambda: "2026-12-01T00:00:01Z",
        row_done=lambda: None,
        rules=StopRules(api_url="https://api.rd.services", concurrency=1),
    )
    await sender.run()
    stats = sender.stats
    assert (stats.requests, stats.rate_limited_answers, stats.retries) == (4, 1, 1)
    assert totals(stats.timeline.as_list()) == (4, 1, 1)


# -- through a run --------------------------------------------------------------------------------


def leads(tmp_path: Path, count: int, bad_every: int = 0) -> tuple[Path, Path]:
    rows = [
        ["not-an-email" if bad_every and i % bad_every == 0 else f"p{i}@exemplo.com.br", f"P {i}"]
        for i in range(1, count + 1)
    ]
    data = write_csv(tmp_path / "leads.csv", ["email", "nome"], rows)
    return data, write_mapping(tmp_path / "m.yaml", MAPPING)


def run(tmp_path: Path, data: Path, mapping: Path, url: str = "", **kw) -> RunReport:
    kw.setdefault("rate", 0)
    kw.setdefault("api_key", API_KEY)
    return run_import(
        ImportConfig(
            input_path=data,
            mapping_path=mapping,
            out_dir=tmp_path / "out",
            api_url=url or "http://127.0.0.1:9",
            tuning=Tuning(retry_wait=False),
            **kw,
        )
    )


def page_of(out: Path) -> str:
    return (out / "report.html").read_text(encoding="utf-8")


def test_an_import_writes_report_html_and_keeps_its_plan_and_timeline(tmp_path, sandbox) -> None:
    data, mapping = leads(tmp_path, 12, bad_every=5)
    report = run(tmp_path, data, mapping, sandbox.url)
    out = tmp_path / "out"
    summary = read_summary(out)
    assert summary["plan"] == {
        "rows": 10,
        "complete": True,
        "rate": 0,
        "eta_s": None,
        "sandbox": False,
    }
    assert summary["timeline_bucket_s"] == 10
    assert totals(summary["timeline"]) == (summary["requests"], 0, 0) == (10, 0, 0)
    assert report.timeline == summary["timeline"]
    assert (out / "report.html").stat().st_mode & 0o777 == 0o600
    assert not list(out.glob(".*.tmp"))
    page = page_of(out)
    assert "<h1>10 sent, 2 failed</h1>" in page
    assert "VALIDATION_ERROR" in page and FIXES["VALIDATION_ERROR"] in page
    assert f"cp {out}/failures.csv leads-fixed.csv" in page
    assert f"rd-importer import leads-fixed.csv --mapping {mapping} --out {out} --rate 0" in page
    assert page.count("<tr><td class=num>") == 2
    last = console_summary(report, "leads.csv").splitlines()[-1]
    assert last == f"Reports: {out}/ (report.html, successes.csv, failures.csv, summary.json)"


def test_a_run_that_sent_everything_says_there_is_nothing_to_do(tmp_path, sandbox) -> None:
    data, mapping = leads(tmp_path, 3)
    run(tmp_path, data, mapping, sandbox.url)
    page = page_of(tmp_path / "out")
    assert "<h1>All 3 rows sent</h1>" in page
    assert "<p>Nothing: every row was sent.</p>" in page
    assert "Failed rows" not in page


def test_an_aborted_run_writes_its_report_and_says_to_resume(tmp_path, sandbox) -> None:
    data, mapping = leads(tmp_path, 5)
    report = run(tmp_path, data, mapping, sandbox.url, api_key="wrong-key", concurrency=1)
    assert report.aborted
    page = page_of(tmp_path / "out")
    assert '<header class="status bad">' in page
    assert "<h1>Stopped: 0 sent, 0 failed, 5 left to send</h1>" in page
    assert "refused the API key" in page and "wrong-key" not in page
    assert "run the same command to resume" in page
    assert f"rd-importer import {data} --mapping {mapping} --out {tmp_path / 'out'}" in page


def test_a_validate_run_says_nothing_was_sent_and_how_to_send(tmp_path) -> None:
    data, mapping = leads(tmp_path, 6, bad_every=3)
    run(tmp_path, data, mapping, dry_run=True, api_key=None)
    out = tmp_path / "out"
    page = page_of(out)
    assert "<h1>6 rows checked: 4 ready to send, 2 failed</h1>" in page
    assert "Nothing was sent" in page and "No request was sent in this run." in page
    assert f"rd-importer validate leads-fixed.csv --mapping {mapping} --out {out}" in page
    assert f"rd-importer import {data} --mapping {mapping} --out {out}" in page
    assert read_summary(out)["plan"] is None


def test_the_table_shows_the_first_100_failed_rows_and_says_how_many_more(tmp_path) -> None:
    data, mapping = leads(tmp_path, 20_000, bad_every=1)  # every row fails
    run(tmp_path, data, mapping, dry_run=True, api_key=None)
    page = page_of(tmp_path / "out")
    assert page.count("<tr><td class=num>") == 100
    assert "<tr><td class=num>101</td>" in page and "<td class=num>102</td>" not in page
    assert "19,900 more in failures.csv" in page
    assert len(page.encode()) < 100_000


# -- what the page says, from summary.json's document -------------------------------------------


def summary(**changes) -> dict:
    base = {
        "rows": 40,
        "succeeded": 35,
        "failed": 5,
        "skipped": 0,
        "duration_s": 17.2,
        "status": "completed",
        "aborted_reason": None,
        "dry_run": False,
        "input": "sample_data/leads.csv",
        "input_format": "CSV, Windows-1252, ';'-separated",
        "mapping": "mappings/example.yaml",
        "finished_at": "2026-12-01T03:56:45Z",
        "already_sent": 0,
        "left_to_send": 0,
        "would_send": None,
        "in_flight_found": 0,
        "changed_rows": 0,
        "requests": 38,
        "retries": 1,
        "rate_limited_answers": 2,
        "failure_types": {"VALIDATION_ERROR": 3, "MAPPING_ERROR": 1, "DUPLICATE_ROW": 1},
        "warnings": [],
        "plan": {"rows": 35, "complete": True, "rate": 120.0, "eta_s": 17.6, "sandbox": True},
        "timeline_bucket_s": 10.0,
        "timeline": [
            {"t": 0.0, "requests": 21, "rate_limited": 2, "retries": 0},
            {"t": 10.0, "requests": 17, "rate_limited": 0, "retries": 1},
        ],
    }
    return base | changes


def failure(row: int, error_type: str = "VALIDATION_ERROR", message: str = "bad") -> Failure:
    return Failure(row, [], "validation", None, error_type, message, 0, row, None)


HOSTILE = '<script>alert(1)</script><img src=x onerror="alert(2)">&amp;'


class Tags(HTMLParser):
    """Every tag and attribute of a page, and its visible text."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: set[str] = set()
        self.attributes: set[str] = set()
        self.text: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self.attributes |= {name for name, _ in attrs}
        self._skip += tag in ("style", "title", "script")

    def handle_endtag(self, tag: str) -> None:
        self._skip -= tag in ("style", "title", "script")

    def handle_data(self, data: str) -> None:
        if not self._skip and data.strip():
            self.text.append(" ".join(data.split()))


def parsed(page: str) -> Tags:
    tags = Tags()
    tags.feed(page)
    return tags


# The only tags report.html may hold: text, tables and SVG shapes; no link, image or script.
_INERT = (
    "html head meta title style body main header footer h1 h2 h3 p b i code pre "
    "ul ol li div span table thead tbody tr th td svg g text rect line circle"
)
INERT_TAGS = frozenset(_INERT.split())


def test_every_value_from_a_file_or_the_server_is_escaped() -> None:
    s = summary(
        input=f"dir/{HOSTILE}.csv",
        mapping=HOSTILE,
        aborted_reason=HOSTILE,
        failure_types={HOSTILE: 2, "INVALID_FORMAT": 1},
        warnings=[{"message": HOSTILE, "count": 2, "rows": [3, 4]}],
    )
    page = render(s, [failure(2, HOSTILE, HOSTILE), failure(3, "X", HOSTILE)], 2, Path(HOSTILE))
    tags = parsed(page)
    assert tags.tags <= INERT_TAGS, tags.tags - INERT_TAGS
    assert not {a for a in tags.attributes if a.startswith("on") or a in ("src", "href")}
    assert "<script" not in page and "<img" not in page
    assert HOSTILE in " ".join(tags.text)  # shown as the text it is


def test_the_page_loads_nothing_and_runs_nothing() -> None:
    page = render(summary(), [failure(8)], 1, Path("out"))
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', page)
    assert csp and "default-src 'none'" in csp.group(1) and "script-src" not in csp.group(1)
    assert not re.search(r"(src|href)=|url\(|@import|https?://", page)


def test_ten_million_failed_rows_make_a_small_page() -> None:
    types = {f"RD_TYPE_{i}_" + "X" * 200: 1000 for i in range(10_000)}  # a server gone wild
    s = summary(
        failed=10_000_000,
        failure_types=types,
        warnings=[{"message": "w" * 10_000, "count": 5, "rows": list(range(10))}] * 1000,
        timeline=[
            {"t": i * 320.0, "requests": 600, "rate_limited": i % 7, "retries": i % 3}
            for i in range(300)
        ],
        timeline_bucket_s=320.0,
    )
    long = "m" * 100_000  # a message a server made up
    first = FirstFailures(failure(n, "INVALID_FORMAT", long) for n in range(1_000_000))
    assert sum(1 for _ in first) == first.count == 1_000_000
    assert len(first.first) == 100
    page = render(s, first.first, 10_000_000, Path("out"))
    assert len(page.encode()) < 2_000_000
    assert "9,999,900 more in failures.csv" in page
    assert page.count("<tr><td class=num>") == 100
    assert "9,988 other types" in page


@pytest.mark.parametrize(
    ("changes", "says", "command"),
    [
        (
            {"failure_types": {"LEAD_LIMITED": 2}, "failed": 2},
            "Rows that failed on the way (LEAD_LIMITED) are sent by the same command, later:",
            "rd-importer import sample_data/leads.csv --mapping mappings/example.yaml --out out "
            "--sandbox",
        ),
        (
            {"failure_types": {"IN_FLIGHT_UNKNOWN": 1}, "failed": 1},
            "Rows in doubt: look them up in RD Station; to send them again:",
            "--sandbox --in-flight resend",
        ),
        (
            {"aborted_reason": "interrupted (Ctrl-C)", "left_to_send": 4, "failed": 0},
            "run the same command to resume",
            "rd-importer import sample_data/leads.csv --mapping mappings/example.yaml --out out "
            "--sandbox",
        ),
        (
            {"failure_types": {"DUPLICATE_ROW": 1}, "failed": 1},
            "Nothing: every row was sent, and the duplicate rows once.",
            "",
        ),
    ],
)
def test_the_next_command_fits_what_happened(changes, says, command) -> None:
    page = render(summary(**changes), [], 0, Path("out"))
    next_steps = page.split("<h2 id=next>")[1].split("<h2")[0]
    assert says in next_steps
    assert command in next_steps
    if changes.get("failure_types") == {"LEAD_LIMITED": 2}:
        assert "failures.csv" not in next_steps  # nothing to fix in the rows


def test_each_failure_type_has_its_fix_and_others_a_generic_one() -> None:
    ours = "VALIDATION_ERROR MAPPING_ERROR READ_ERROR DUPLICATE_ROW TOO_LARGE LEAD_LIMITED"
    rds = "CANNOT_BE_NULL INVALID_FORMAT INVALID_OPTION TOO_LONG MUST_BE_STRING_ARRAY TAKEN"
    for kind in [*ours.split(), "IN_FLIGHT_UNKNOWN", *rds.split(), "UNABLE_TO_LOAD_CDP_SCHEMA"]:
        assert fix_advice(kind) != GENERIC_FIX, kind
    assert "later" in fix_advice("HTTP_503") and "later" in fix_advice("TIMEOUT")
    assert fix_advice("SOMETHING_NEW") == GENERIC_FIX
    assert "tomorrow" in fix_advice("LEAD_LIMITED")


def test_the_timeline_chart_draws_the_budget_the_429s_and_the_retries() -> None:
    page = render(summary(), [], 0, Path("out"))
    chart = page.split("<h2 id=sending>")[1].split("<h2")[0]
    assert chart.count("<rect class=b ") == 2  # one bar per bucket with requests
    assert chart.count("<rect class=q ") == 1  # the 429s, on the first
    assert chart.count("<circle class=r ") == 1  # the retry, on the second
    assert "<line class=budget " in chart and "budget 120/min" in chart
    assert "budget: --rate 120/min = 20 per 10 s" in chart


# -- in a real browser ----------------------------------------------------------------------------

CHROMIUM = shutil.which("chromium")
needs_browser = pytest.mark.skipif(
    CHROMIUM is None,
    reason="no chromium on PATH, so report.html is not checked in a browser: .ci/run installs "
    "Debian's chromium (apt-get install chromium)",
)


def chromium(tmp_path: Path, page: Path, *options: str) -> subprocess.CompletedProcess[str]:
    """Headless Chromium on ``page``, offline, logging the page's console to stderr."""
    profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"
    assert CHROMIUM is not None
    command = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={profile}",
        "--enable-logging=stderr",
        "--v=1",
        *options,
        page.as_uri(),
    ]
    done = subprocess.run(
        command, capture_output=True, text=True, errors="replace", timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done


def console_errors(stderr: str) -> list[str]:
    """The page's console lines (a page with no script has none: any is a CSP refusal or an
    error) and uncaught exceptions."""
    return [line for line in stderr.splitlines() if ":CONSOLE" in line or "Uncaught" in line]


def sample_report(tmp_path: Path, sandbox) -> Path:
    data = tmp_path / "leads.csv"
    shutil.copy(EXAMPLE_MAPPING.parents[1] / "sample_data" / "leads.csv", data)
    report = run(tmp_path, data, EXAMPLE_MAPPING, sandbox.url)
    assert (report.succeeded, report.failed) == (35, 5)
    return tmp_path / "out" / "report.html"


@pytest.mark.slow
@needs_browser
def test_a_browser_shows_the_counts_the_charts_and_the_failed_rows(tmp_path, sandbox) -> None:
    page = sample_report(tmp_path, sandbox)
    done = chromium(tmp_path, page, "--dump-dom")
    assert console_errors(done.stderr) == []
    dom = parsed(done.stdout)
    text = " ".join(dom.text)
    assert "35 sent, 5 failed" in text
    assert "40 Rows 35 Sent 5 Failed 0 Skipped" in text
    assert "VALIDATION_ERROR 3" in text and "MAPPING_ERROR 1" in text  # the bars' labels
    assert done.stdout.count("<svg ") == 2  # failures by type, requests over time
    rows = re.findall(r'<tr><td class="num">(\d+)</td>', done.stdout)
    assert rows == ["8", "15", "23", "31", "37"]
    assert "script" not in dom.tags

    shot = tmp_path / "report.png"
    done = chromium(tmp_path, page, f"--screenshot={shot}", "--window-size=1100,1800")
    assert console_errors(done.stderr) == []
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000


WIDEST_RIGHT_EDGE = """<script>
let right = 0;
for (const el of document.querySelectorAll("body *")) {
  if (el.parentElement.closest(".scroll")) continue;  // inside the table's own scroll box
  right = Math.max(right, el.getBoundingClientRect().right);
}
document.body.dataset.right = Math.ceil(right);
</script>"""


@pytest.mark.slow
@needs_browser
def test_on_a_phone_nothing_but_the_table_scrolls_sideways(tmp_path) -> None:
    """At 375 px (an iPhone's width), with long words and commands, no element pokes out of the
    page: only the table scrolls, inside its own box."""
    s = summary(
        input="/home/ana/Downloads/" + "planilha_de_leads_da_feira_" * 4 + ".csv",
        aborted_reason="x" * 300,
        warnings=[{"message": "column " + "Z" * 120, "count": 3, "rows": [2, 3, 4]}],
        failure_types={"A_VERY_LONG_ERROR_TYPE_FROM_THE_SERVER_" * 2: 9_999_999},
    )
    page = render(s, [failure(2, "T" * 80, "m" * 500)], 1, Path("/tmp/" + "out" * 40))
    # The page's policy forbids scripts; this copy measures, at 375 px, the widest element.
    measured = re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", page)
    measured = measured.replace("</body>", WIDEST_RIGHT_EDGE + "</body>")
    measured = measured.replace("<style>", "<style>html{width:375px}")
    path = tmp_path / "measured.html"
    path.write_text(measured, encoding="utf-8")
    done = chromium(tmp_path, path, "--dump-dom", "--window-size=800,900")
    right = re.search(r'data-right="(\d+)"', done.stdout)
    assert right, done.stdout[:500]
    assert int(right.group(1)) <= 375

    shot = tmp_path / "phone.png"
    (tmp_path / "page.html").write_text(page, encoding="utf-8")
    done = chromium(
        tmp_path, tmp_path / "page.html", f"--screenshot={shot}", "--window-size=375,900"
    )
    assert console_errors(done.stderr) == []


@pytest.mark.slow
@needs_browser
def test_a_browser_runs_nothing_of_a_hostile_report(tmp_path) -> None:
    s = summary(input=HOSTILE, failure_types={HOSTILE: 1}, aborted_reason=HOSTILE)
    path = tmp_path / "report.html"
    path.write_text(render(s, [failure(2, HOSTILE, HOSTILE)], 1, Path(HOSTILE)), encoding="utf-8")
    done = chromium(tmp_path, path, "--dump-dom")
    assert console_errors(done.stderr) == []
    dom = parsed(done.stdout)
    assert dom.tags <= INERT_TAGS
    assert HOSTILE in " ".join(dom.text)  # shown as the text it is
