"""rd-importer watch: real inboxes in tmp_path, the real pipeline, the sandbox on loopback.

The in-process tests call run_watch; the last ones start real `python -m importer watch`
processes to race two watchers on one inbox, kill one mid-import and stop one with SIGTERM.
"""

from __future__ import annotations

import collections
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from helpers import API_KEY, ROOT, read_csv, read_summary, write_csv, write_mapping
from importer.cli import cli
from importer.errors import InputError
from importer.pipeline import ImportConfig, Listener, Tuning, run_import_async
from importer.watch import (
    LOG_NAME,
    FolderIndex,
    InboxLock,
    WatchConfig,
    WatchResult,
    is_spreadsheet_name,
    move_aside,
    run_watch,
    scan_inbox,
)

MAPPING = """\
conversion_identifier: "watch-test"
fields:
  email: "email"
  name: "nome"
"""


def emails(prefix: str, n: int) -> list[str]:
    return [f"{prefix}{i}@exemplo.com.br" for i in range(1, n + 1)]


def drop(inbox: Path, name: str, addresses: list[str], age: float | None = 300) -> Path:
    """A CSV in the inbox, last modified ``age`` seconds ago (None: now)."""
    path = write_csv(inbox / name, ["email", "nome"], [[a, f"Pessoa {a[:3]}"] for a in addresses])
    if age is not None:
        past = time.time() - age
        os.utime(path, (past, past))
    return path


def accepted(box) -> list[str]:
    return [e["payload"]["email"] for e in box.snapshot()["accepted"]]


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


class Recorder(Listener):
    def __init__(self, lines: list[str]):
        self.lines = lines

    def info(self, message: str) -> None:
        self.lines.append(message)


class Watch:
    """An inbox, an output root and a mapping in tmp_path, and run_watch with test settings."""

    def __init__(self, tmp_path: Path, url: str):
        self.inbox = tmp_path / "inbox"
        self.inbox.mkdir(parents=True)
        self.out = tmp_path / "out"
        self.mapping = write_mapping(tmp_path / "mapping.yaml", MAPPING)
        self.url = url
        self.echoed: list[str] = []

    def run(self, *, key: str = API_KEY, runner=None, changed=None, **kw) -> WatchResult:
        kw.setdefault("once", True)
        kw.setdefault("settle", 30)
        template = ImportConfig(
            input_path=self.inbox,
            mapping_path=self.mapping,
            api_url=self.url,
            api_key=key,
            rate=0,
            concurrency=4,
            changed=changed,
            tuning=Tuning(retry_wait=False),
        )
        config = WatchConfig(self.inbox, self.out, template, **kw)
        extra = {"runner": runner} if runner else {}
        return run_watch(config, Recorder(self.echoed), echo=self.echoed.append, **extra)

    def log(self) -> list[str]:
        return (self.out / LOG_NAME).read_text(encoding="utf-8").splitlines()

    def left(self) -> set[str]:
        return {p.name for p in self.inbox.iterdir() if p.is_file()} - {".rd-importer.lock"}


@pytest.fixture
def watch(tmp_path: Path, sandbox) -> Watch:
    return Watch(tmp_path, sandbox.url)


# -- one pass, in process ------------------------------------------------------------------------


def test_once_imports_settled_spreadsheets_oldest_first_and_leaves_the_rest(watch, sandbox):
    inbox = watch.inbox
    drop(inbox, "a.csv", emails("a", 5), age=300)
    drop(inbox, "b.csv", [*emails("b", 3), "not-an-email"], age=200)
    (inbox / "broken.csv").write_bytes(b"\x00\x01\x02\xff\xfe PK\x03\x04 not a spreadsheet \x00")
    os.utime(inbox / "broken.csv", (time.time() - 250,) * 2)
    drop(inbox, "half.csv.part", emails("p", 2))
    drop(inbox, ".hidden.csv", emails("h", 2))
    drop(inbox, "~$a.xlsx", [])
    drop(inbox, "notes.pdf", emails("n", 2))
    drop(inbox, "fresh.csv", emails("f", 2), age=None)  # still within the settle time
    wrong = write_csv(inbox / "wrong.csv", ["correio", "nome"], [["w1@exemplo.com.br", "W"]])
    os.utime(wrong, (time.time() - 100,) * 2)  # a file without the mapping's columns

    result = watch.run()

    assert result.exit_status == 1  # a bad row and a rejected file
    assert sorted(accepted(sandbox)) == sorted(emails("a", 5) + emails("b", 3))
    assert watch.left() == {"half.csv.part", ".hidden.csv", "~$a.xlsx", "notes.pdf", "fresh.csv"}
    assert {p.name for p in (inbox / "processed").iterdir()} == {"a.csv", "b.csv"}
    rejected = inbox / "rejected"
    assert {p.name for p in rejected.iterdir()} == {
        "broken.csv",
        "broken.csv.reason.txt",
        "wrong.csv",
        "wrong.csv.reason.txt",
    }
    reason = (rejected / "broken.csv.reason.txt").read_text(encoding="utf-8")
    assert reason.endswith("\n") and reason.count("\n") == 1 and len(reason) > 10
    assert "'email'" in (rejected / "wrong.csv.reason.txt").read_text(encoding="utf-8")

    assert (
        read_summary(watch.out / "a")["succeeded"],
        read_summary(watch.out / "a")["failed"],
    ) == (
        5,
        0,
    )
    summary_b = read_summary(watch.out / "b")
    assert (summary_b["rows"], summary_b["succeeded"], summary_b["failed"]) == (4, 3, 1)
    assert [f["row"] for f in read_csv(watch.out / "b" / "failures.csv")] == ["5"]

    log = watch.log()
    assert [line.split(" ")[1] for line in log] == ["a.csv:", "broken.csv:", "b.csv:", "wrong.csv:"]
    assert "processed, 5 rows, 5 sent, 0 failed, 0 skipped" in log[0]
    assert "rejected" in log[1] and "rejected/broken.csv.reason.txt" in log[1]
    assert "processed, 4 rows, 3 sent, 1 failed, 0 skipped" in log[2]
    assert "reports in b/" in log[2] and "processed/b.csv" in log[2]
    assert "@" not in "\n".join(log)  # no email, nothing from a cell
    assert all(line in watch.echoed for line in log)
    assert any(line.startswith("fresh.csv: changed less than 30 s ago") for line in watch.echoed)

    assert mode(watch.out / LOG_NAME) == 0o600
    for folder in (watch.out, watch.out / "a", inbox / "processed", rejected):
        assert mode(folder) == 0o700

    # Again: the settling file still waits, nothing is sent twice.
    assert watch.run().exit_status == 0
    assert len(accepted(sandbox)) == 8

    past = time.time() - 60
    os.utime(inbox / "fresh.csv", (past, past))
    assert watch.run().exit_status == 0
    assert sorted(accepted(sandbox)) == sorted(emails("a", 5) + emails("b", 3) + emails("f", 2))
    assert "fresh.csv" not in watch.left()
    assert len(watch.log()) == 5


def test_a_file_with_a_stem_seen_before_gets_its_own_folder_and_name(watch, sandbox):
    drop(watch.inbox, "leads.csv", emails("one", 2))
    assert watch.run().exit_status == 0
    drop(watch.inbox, "leads.csv", emails("two", 2), age=200)  # tomorrow's file, same name
    drop(watch.inbox, "leads.CSV", emails("three", 2), age=100)  # same stem, suffix in capitals

    assert watch.run().exit_status == 0

    def sent_from(folder: str) -> list[str]:
        return [s["email"] for s in read_csv(watch.out / folder / "successes.csv")]

    assert sent_from("leads") == emails("one", 2)
    assert sent_from("leads-2") == emails("two", 2)
    assert sent_from("leads-3") == emails("three", 2)
    processed = watch.inbox / "processed"
    assert "one1@" in (processed / "leads.csv").read_text()
    assert "two1@" in (processed / "leads-2.csv").read_text()
    assert (processed / "leads.CSV").exists()
    assert sorted(accepted(sandbox)) == sorted(
        emails("one", 2) + emails("two", 2) + emails("three", 2)
    )
    index = FolderIndex.load(watch.out).entries
    assert [(Path(e["file"]).name, e["folder"], e["state"]) for e in index] == [
        ("leads.csv", "leads", "processed"),
        ("leads.csv", "leads-2", "processed"),
        ("leads.CSV", "leads-3", "processed"),
    ]


def test_an_aborted_file_stays_stops_the_pass_and_resumes_into_its_folder(watch, sandbox):
    drop(watch.inbox, "a.csv", emails("a", 3), age=300)
    drop(watch.inbox, "b.csv", emails("b", 3), age=200)

    result = watch.run(key="revoked-key")  # RD Station refuses the key: the run aborts

    assert result.exit_status == 3
    assert watch.left() == {"a.csv", "b.csv"}
    assert accepted(sandbox) == []
    [line] = watch.log()  # b.csv was not tried: the same key would be refused again
    assert "a.csv: aborted (" in line and "stays in the inbox, resumes from a/" in line

    result = watch.run()

    assert result.exit_status == 0
    assert watch.left() == set()
    assert sorted(accepted(sandbox)) == sorted(emails("a", 3) + emails("b", 3))
    assert sorted(p.name for p in watch.out.iterdir() if p.is_dir()) == ["a", "b"]


def test_a_file_rewritten_during_its_import_stays_and_only_its_new_rows_follow(watch, sandbox):
    path = drop(watch.inbox, "a.csv", emails("a", 3))

    async def rewriting_runner(config, listener, control):
        report = await run_import_async(config, listener, control)
        with path.open("a", encoding="utf-8") as handle:  # the partner appends meanwhile
            handle.write("late1@exemplo.com.br,Tarde\r\n")
        return report

    result = watch.run(runner=rewriting_runner)

    assert result.exit_status == 1
    assert result.files[0].outcome == "changed"
    assert watch.left() == {"a.csv"}
    assert "a.csv: changed while being imported" in watch.log()[0]

    past = time.time() - 60
    os.utime(path, (past, past))
    assert watch.run().exit_status == 0
    assert sorted(accepted(sandbox)) == sorted([*emails("a", 3), "late1@exemplo.com.br"])
    summary = read_summary(watch.out / "a")  # the same folder, resumed
    assert (summary["rows"], summary["succeeded"], summary["skipped"]) == (4, 1, 3)


def test_a_bad_mapping_stops_the_watcher_before_any_file_moves(watch, sandbox):
    drop(watch.inbox, "a.csv", emails("a", 2))
    write_mapping(watch.mapping, 'conversion_identifier: "x"\nfields:\n  emial: "email"\n')

    with pytest.raises(InputError):
        watch.run()

    assert watch.left() == {"a.csv"}
    assert not (watch.inbox / "rejected").exists()
    assert accepted(sandbox) == []


def test_a_missing_api_key_stops_the_watcher_before_any_file_moves(watch):
    drop(watch.inbox, "a.csv", emails("a", 2))
    with pytest.raises(InputError, match="no API key"):
        watch.run(key="")
    assert watch.left() == {"a.csv"}


def test_a_second_watcher_skips_a_held_inbox_or_waits_for_it(watch, sandbox):
    drop(watch.inbox, "a.csv", emails("a", 2))
    lock = InboxLock(watch.inbox)
    assert lock.try_acquire()

    assert watch.run().exit_status == 0
    assert watch.left() == {"a.csv"}
    assert any(f"another watcher (pid {os.getpid()}); skipping it" in m for m in watch.echoed)

    threading.Timer(0.3, lock.release).start()
    assert watch.run(wait_lock=True).exit_status == 0
    assert watch.left() == set()
    assert sorted(accepted(sandbox)) == emails("a", 2)


def test_the_cli_is_silent_when_quiet_and_there_is_nothing_to_do(tmp_path, monkeypatch):
    monkeypatch.delenv("RDSTATION_API_KEY", raising=False)
    watch = Watch(tmp_path, "http://127.0.0.1:9")
    args = ["watch", str(watch.inbox), "--mapping", str(watch.mapping), "--out", str(watch.out)]

    quiet = CliRunner().invoke(cli, [*args, "--once", "--quiet", "--sandbox"])
    assert (quiet.exit_code, quiet.output) == (0, "")

    drop(watch.inbox, "a.csv", emails("a", 1))
    no_key = CliRunner().invoke(cli, [*args, "--once"])
    assert no_key.exit_code == 2
    assert no_key.output.startswith("Error: no API key")
    assert watch.left() == {"a.csv"}


def test_the_cli_reads_every_file_with_the_given_text_settings(tmp_path, sandbox, monkeypatch):
    # A partner's nightly file: a title line above the header, ';' and Windows-1252.
    monkeypatch.delenv("RDSTATION_API_KEY", raising=False)
    watch = Watch(tmp_path, sandbox.url)
    path = watch.inbox / "parceiro.csv"
    path.write_bytes("Exportado em 26/11\nemail;nome\njoão@exemplo.com.br;João\n".encode("cp1252"))
    past = time.time() - 300
    os.utime(path, (past, past))
    args = ["watch", str(watch.inbox), "--mapping", str(watch.mapping), "--out", str(watch.out)]
    flags = ["--encoding", "cp1252", "--delimiter", ";", "--header-row", "2", "--in-flight", "skip"]

    result = CliRunner().invoke(cli, [*args, *flags, "--once", "--quiet", "--sandbox"])

    assert result.exit_code == 0, result.output
    assert watch.left() == set()
    summary = read_summary(watch.out / "parceiro")
    assert (summary["rows"], summary["succeeded"]) == (1, 1)
    assert read_csv(watch.out / "parceiro" / "successes.csv")[0]["row"] == "3"


@pytest.mark.parametrize(
    ("flag", "message"),
    [
        (
            ["--encoding", "klingon"],
            "Error: --encoding 'klingon' is not an encoding Python knows: "
            "try utf-8, cp1252, latin-1 or utf-16",
        ),
        (
            ["--delimiter", ";;"],
            "Error: --delimiter ';;' must be one character such as ',' ';' '|' or 'tab'",
        ),
    ],
)
def test_a_bad_text_setting_stops_the_watcher_and_rejects_no_file(tmp_path, flag, message):
    watch = Watch(tmp_path, "http://127.0.0.1:9")
    drop(watch.inbox, "a.csv", emails("a", 1))
    args = ["watch", str(watch.inbox), "--mapping", str(watch.mapping), "--out", str(watch.out)]

    result = CliRunner().invoke(cli, [*args, *flag, "--once", "--sandbox"])

    assert (result.exit_code, result.output.strip()) == (2, message)
    assert watch.left() == {"a.csv"}
    assert not (watch.inbox / "rejected").exists()


# -- the small pieces ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "taken"),
    [
        ("leads.csv", True),
        ("LEADS.XLSX", True),
        ("a.xls", True),
        ("a.ods", True),
        ("a.csv.part", False),
        ("a.xlsx.tmp", False),
        ("a.csv.crdownload", False),
        (".a.csv", False),
        ("~$a.xlsx", False),
        ("a.txt", True),
        ("a.tsv", True),
        ("a.xlsm", True),
        ("a.xlsb", True),
        ("a.numbers", True),
        ("a.pdf", False),
        ("csv", False),
    ],
)
def test_which_names_are_imported(name: str, taken: bool):
    assert is_spreadsheet_name(name) is taken


def test_scan_lists_settled_files_oldest_first_and_ignores_links_and_folders(tmp_path):
    now = time.time()
    for name, age in [("new.csv", 1), ("old.csv", 100), ("mid.csv", 50)]:
        (tmp_path / name).write_text("email\n")
        os.utime(tmp_path / name, (now - age, now - age))
    (tmp_path / "link.csv").symlink_to(tmp_path / "old.csv")
    (tmp_path / "dir.csv").mkdir()

    ready, waiting = scan_inbox(tmp_path, settle=5, now=now)

    assert [d.path.name for d in ready] == ["old.csv", "mid.csv"]
    assert [d.path.name for d in waiting] == ["new.csv"]


def test_move_aside_never_replaces_a_file(tmp_path):
    target = tmp_path / "processed"
    for n in range(3):
        (tmp_path / "a.csv").write_text(f"version {n}")
        move_aside(tmp_path / "a.csv", target)
    assert sorted(p.name for p in target.iterdir()) == ["a-2.csv", "a-3.csv", "a.csv"]
    assert (target / "a-3.csv").read_text() == "version 2"


def test_the_index_never_hands_out_a_folder_that_exists(tmp_path):
    (tmp_path / "leads").mkdir()  # left by an import the index does not know
    inbox = tmp_path / "inbox"
    with FolderIndex.editing(tmp_path) as index:
        assert index.folder_for(inbox / "leads.csv") == "leads-2"
        assert index.folder_for(inbox / "leads.csv") == "leads-2"  # still importing: the same
        assert index.folder_for(inbox / "leads.xlsx") == "leads-3"
        assert index.folder_for(tmp_path / "other-inbox" / "leads.csv") == "leads-4"
    assert (tmp_path / "leads-4").is_dir()
    assert len(FolderIndex.load(tmp_path).entries) == 3


def test_two_inboxes_share_one_output_root_without_sharing_folders(tmp_path, sandbox):
    first, second = Watch(tmp_path / "1", sandbox.url), Watch(tmp_path / "2", sandbox.url)
    second.out = first.out
    drop(first.inbox, "leads.csv", emails("one", 2))
    drop(second.inbox, "leads.csv", emails("two", 2))
    assert first.run(key="revoked-key").exit_status == 3  # stays in its inbox, owns leads/

    assert second.run().exit_status == 0
    assert first.run().exit_status == 0

    assert [s["email"] for s in read_csv(first.out / "leads" / "successes.csv")] == emails("one", 2)
    assert [s["email"] for s in read_csv(first.out / "leads-2" / "successes.csv")] == emails(
        "two", 2
    )


def test_a_damaged_index_stops_the_watcher(tmp_path):
    (tmp_path / "watch-index.json").write_text("{not json")
    with pytest.raises(InputError, match=r"watch-index\.json"):
        FolderIndex.load(tmp_path)


# -- real processes ------------------------------------------------------------------------------


@pytest.fixture
def start_watcher() -> Iterator:
    """Starts `python -m importer watch` processes; kills any still running at the end."""
    procs: list[subprocess.Popen] = []

    def start(inbox: Path, out: Path, mapping: Path, url: str, *flags: str) -> subprocess.Popen:
        env = {**os.environ, "RDSTATION_API_KEY": API_KEY, "PYTHONPATH": str(ROOT)}
        env.pop("RDSTATION_API_URL", None)
        args = [sys.executable, "-m", "importer", "watch", str(inbox), "--mapping", str(mapping)]
        args += ["--out", str(out), "--api-url", url, "--settle", "0", "--rate", "0", *flags]
        proc = subprocess.Popen(
            args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


def wait_until(condition, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.02)


@pytest.mark.slow
def test_two_watchers_started_at_once_send_each_row_once(tmp_path, make_sandbox, start_watcher):
    box = make_sandbox(latency=0.02)
    watch = Watch(tmp_path, box.url)
    sent = []
    for n in range(3):
        sent += emails(f"f{n}-", 10)
        drop(watch.inbox, f"f{n}.csv", emails(f"f{n}-", 10), age=300 - n)

    procs = [start_watcher(watch.inbox, watch.out, watch.mapping, box.url, "--once") for _ in "ab"]
    outputs = [p.communicate(timeout=60) for p in procs]

    assert [p.returncode for p in procs] == [0, 0], outputs
    assert sorted(accepted(box)) == sorted(sent)
    assert watch.left() == set()
    assert len(watch.log()) == 3


@pytest.mark.slow
def test_a_watcher_killed_mid_import_and_started_again_sends_every_row(
    tmp_path, make_sandbox, start_watcher
):
    box = make_sandbox(latency=0.1)
    watch = Watch(tmp_path, box.url)
    sent = emails("k", 60)
    drop(watch.inbox, "big.csv", sent)
    flags = ("--once", "--concurrency", "4")

    first = start_watcher(watch.inbox, watch.out, watch.mapping, box.url, *flags)
    wait_until(lambda: len(accepted(box)) >= 8)
    first.send_signal(signal.SIGKILL)
    first.communicate(timeout=10)
    assert watch.left() == {"big.csv"}

    second = start_watcher(watch.inbox, watch.out, watch.mapping, box.url, *flags)
    _, err = second.communicate(timeout=60)

    assert second.returncode == 0, err
    counts = collections.Counter(accepted(box))
    assert set(counts) == set(sent)
    assert sum(c - 1 for c in counts.values()) <= 4  # at most --concurrency were in flight
    assert watch.left() == set()
    summary = read_summary(watch.out / "big")
    assert summary["rows"] == 60 and summary["failed"] == 0
    assert [line.split(" ")[1] for line in watch.log()] == ["big.csv:"]


@pytest.mark.slow
def test_sigterm_stops_a_watching_watcher_gracefully(tmp_path, make_sandbox, start_watcher):
    box = make_sandbox(latency=0.1)
    watch = Watch(tmp_path, box.url)

    idle = start_watcher(watch.inbox, watch.out, watch.mapping, box.url, "--interval", "0.2")
    wait_until(lambda: (watch.inbox / ".rd-importer.lock").exists())
    idle.send_signal(signal.SIGTERM)
    _, err = idle.communicate(timeout=10)
    assert idle.returncode == 0, err  # nothing was being imported

    drop(watch.inbox, "big.csv", emails("t", 60))
    busy = start_watcher(
        watch.inbox, watch.out, watch.mapping, box.url, "--interval", "0.2", "--concurrency", "2"
    )
    wait_until(lambda: len(accepted(box)) >= 4)
    busy.send_signal(signal.SIGTERM)
    _, err = busy.communicate(timeout=20)

    assert busy.returncode == 3, err
    assert "Stopped: interrupted (SIGTERM)" in err
    assert watch.left() == {"big.csv"}
    [line] = watch.log()
    assert "big.csv: aborted (interrupted (SIGTERM))" in line
    counts = collections.Counter(accepted(box))
    assert max(counts.values()) == 1 and len(counts) < 60
    assert read_summary(watch.out / "big")["succeeded"] == len(counts)


# -- issue 18: the drop folder is shared with whoever uploads -----------------------------------


def test_a_link_planted_in_rejected_never_redirects_the_reason(watch, tmp_path):
    # The uploader plants rejected/report.csv.reason.txt -> a file of the watcher's, then drops
    # a PDF as report.csv. The reason goes beside the file; the link's target is untouched.
    victim = tmp_path / "victim.conf"
    victim.write_text("precious\n")
    rejected = watch.inbox / "rejected"
    rejected.mkdir(mode=0o700)
    (rejected / "report.csv.reason.txt").symlink_to(victim)
    (watch.inbox / "report.csv").write_bytes(b"%PDF-1.4 not a spreadsheet")
    os.utime(watch.inbox / "report.csv", (time.time() - 300,) * 2)

    assert watch.run().exit_status == 1

    assert victim.read_text() == "precious\n"
    reason = rejected / "report.csv.reason.txt"
    assert not reason.is_symlink() and "a PDF document" in reason.read_text()
    assert (rejected / "report.csv").read_bytes().startswith(b"%PDF")


@pytest.mark.parametrize("folder", ["processed", "rejected"])
def test_a_processed_or_rejected_that_is_a_link_stops_the_watcher_before_anything(
    watch, sandbox, tmp_path, folder
):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (watch.inbox / folder).symlink_to(elsewhere, target_is_directory=True)
    drop(watch.inbox, "a.csv", emails("a", 2))

    with pytest.raises(InputError) as error:
        watch.run()

    assert str(error.value) == (
        f"{watch.inbox}/{folder} is a symbolic link, not a folder: the watcher writes there and "
        "follows no link; remove it, and the watcher creates the folder"
    )
    assert watch.left() == {"a.csv"} and accepted(sandbox) == []
    assert list(elsewhere.iterdir()) == []


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a folder to another user needs root")
def test_a_rejected_folder_of_another_user_stops_the_watcher_before_anything(watch, sandbox):
    rejected = watch.inbox / "rejected"
    rejected.mkdir()
    os.chown(rejected, 65534, 65534)
    drop(watch.inbox, "a.csv", emails("a", 2))

    with pytest.raises(InputError) as error:
        watch.run()

    assert str(error.value) == (
        f"{rejected} belongs to another user (uid 65534), not to the watcher's (uid 0): the "
        "watcher writes there unattended; give it to the watcher's user, or remove it"
    )
    assert watch.left() == {"a.csv"} and accepted(sandbox) == []


def test_a_link_planted_as_the_lock_or_the_log_is_never_followed(watch, tmp_path):
    victim = tmp_path / "victim.conf"
    victim.write_text("precious\n")
    (watch.inbox / ".rd-importer.lock").symlink_to(victim)
    with pytest.raises(InputError, match=r"\.rd-importer\.lock is not the watcher's lock"):
        watch.run()
    assert victim.read_text() == "precious\n"

    (watch.inbox / ".rd-importer.lock").unlink()
    (watch.out / LOG_NAME).unlink()  # created empty by the run that stopped
    (watch.out / LOG_NAME).symlink_to(victim)
    drop(watch.inbox, "a.csv", emails("a", 1))
    with pytest.raises(InputError, match=r"watch\.log is a symbolic link"):
        watch.run()
    assert victim.read_text() == "precious\n"


def _link_as_long_as(size: int, target: str) -> str:
    """``target`` spelled with ``./`` (and one ``/``) in front, so that the link is ``size``
    bytes long: a link whose size and time are the file's passes a look at its size and time."""
    missing = size - len(target)
    assert missing >= 0
    prefix = ".//" if missing % 2 else ""
    return prefix + "./" * ((missing - len(prefix)) // 2) + target


def test_a_file_swapped_for_a_link_after_listing_is_not_imported(watch, sandbox, tmp_path):
    # Right before b.csv is read, it is replaced by a link to a file outside the inbox with the
    # same size and time: the rows of that file must never be sent.
    write_csv(tmp_path / "outside.csv", ["email", "nome"], [["fora@exemplo.com.br", "F"]])
    drop(watch.inbox, "a.csv", emails("a", 2), age=300)
    b = drop(watch.inbox, "b.csv", emails("b", 1), age=200)

    async def swapping_runner(config, listener, control):
        if config.input_path.name == "b.csv":  # listed and checked: now it is swapped
            listed = b.lstat()
            b.unlink()
            b.symlink_to(_link_as_long_as(listed.st_size, "../outside.csv"))
            os.utime(b, ns=(listed.st_atime_ns, listed.st_mtime_ns), follow_symlinks=False)
            assert (b.lstat().st_size, b.lstat().st_mtime_ns) == (
                listed.st_size,
                listed.st_mtime_ns,
            )
        return await run_import_async(config, listener, control)

    result = watch.run(runner=swapping_runner)

    assert "fora@exemplo.com.br" not in accepted(sandbox)
    assert sorted(accepted(sandbox)) == emails("a", 2)
    assert [f.outcome for f in result.files] == ["processed", "changed"]
    assert "b.csv: changed before it was read (it is a symbolic link now)" in watch.log()[1]
    assert b.is_symlink()  # left where it is


def test_a_file_replaced_after_listing_is_not_read_in_its_place(watch, sandbox, tmp_path):
    drop(watch.inbox, "a.csv", emails("a", 1), age=300)
    b = drop(watch.inbox, "b.csv", emails("b", 1), age=200)
    other = drop(tmp_path, "other.csv", emails("c", 1), age=200)

    async def replacing_runner(config, listener, control):
        if config.input_path.name == "b.csv":
            listed = b.stat()
            os.utime(other, ns=(listed.st_atime_ns, listed.st_mtime_ns))
            other.replace(b)  # another file, same size and time
        return await run_import_async(config, listener, control)

    result = watch.run(runner=replacing_runner)

    assert accepted(sandbox) == emails("a", 1)
    assert [f.outcome for f in result.files] == ["processed", "changed"]
    assert "b.csv: changed before it was read (it is another file now)" in watch.log()[1]
    assert "b.csv" in watch.left()


def _damaged_xlsx(path: Path) -> Path:
    import openpyxl

    book = openpyxl.Workbook()
    book.active.append(["email", "nome"])
    book.active.append(["x@exemplo.com.br", "X"])
    book.save(path)
    raw = bytearray(path.read_bytes())
    raw[raw.rfind(b"PK\x01\x02") + 6] = 0xFF  # "version needed to extract": 25.5
    path.write_bytes(bytes(raw))
    return path


def test_a_damaged_xlsx_is_rejected_and_the_files_behind_it_are_imported(watch, sandbox):
    bad = _damaged_xlsx(watch.inbox / "damaged.xlsx")
    os.utime(bad, (time.time() - 300,) * 2)
    drop(watch.inbox, "good.csv", emails("g", 2), age=200)

    result = watch.run()

    assert result.exit_status == 1
    assert sorted(accepted(sandbox)) == emails("g", 2)
    assert [f.outcome for f in result.files] == ["rejected", "processed"]
    reason = (watch.inbox / "rejected" / "damaged.xlsx.reason.txt").read_text()
    assert "is a damaged zip/XLSX file (zip file version 25.5)" in reason
    assert [line.split(" ")[1] for line in watch.log()] == ["damaged.xlsx:", "good.csv:"]


def test_an_unexpected_error_in_one_file_is_logged_and_the_others_go_on(watch, sandbox):
    drop(watch.inbox, "a.csv", emails("a", 1), age=300)
    drop(watch.inbox, "b.csv", emails("b", 1), age=200)

    async def buggy_runner(config, listener, control):
        if config.input_path.name == "a.csv":
            raise TypeError("a bug, with personal data: ana@exemplo.com.br")
        return await run_import_async(config, listener, control)

    result = watch.run(runner=buggy_runner)

    assert result.exit_status == 3
    assert accepted(sandbox) == emails("b", 1)
    assert watch.left() == {"a.csv"}
    first, second = watch.log()
    assert "a.csv: unexpected error (TypeError in test_watch.py line" in first
    assert "please report it" in first and "stays in the inbox, resumes from a/" in first
    assert "@" not in first
    assert "b.csv: processed" in second


def _unwritable(folder: Path, request) -> None:
    """Make ``folder`` unwritable: chmod for a user, the immutable flag for root."""
    if os.geteuid() != 0:
        folder.chmod(0o500)
        request.addfinalizer(lambda: folder.chmod(0o700))
        return
    done = subprocess.run(["chattr", "+i", str(folder)], capture_output=True, check=False)
    if done.returncode != 0:
        pytest.skip("root cannot make a folder unwritable here (no chattr +i)")
    request.addfinalizer(lambda: subprocess.run(["chattr", "-i", str(folder)], check=False))


def test_an_unwritable_processed_folder_stops_the_watcher_before_sending(watch, sandbox, request):
    processed = watch.inbox / "processed"
    processed.mkdir(mode=0o700)
    _unwritable(processed, request)
    drop(watch.inbox, "a.csv", emails("a", 2))

    with pytest.raises(InputError) as error:
        watch.run()

    assert str(error.value).startswith(f"{processed}: cannot be written (")
    assert accepted(sandbox) == []
    assert watch.left() == {"a.csv"}


def test_a_move_that_fails_after_sending_is_logged_and_the_next_file_goes_on(
    watch, sandbox, monkeypatch
):
    import importer.watch.files as watch_module  # where the watcher looks the move up

    drop(watch.inbox, "a.csv", emails("a", 2), age=300)
    drop(watch.inbox, "b.csv", emails("b", 1), age=200)
    real_move = watch_module._move_into
    calls = []

    def failing_once(*args):
        calls.append(args)
        if len(calls) == 1:
            raise PermissionError(13, "Permission denied")
        return real_move(*args)

    monkeypatch.setattr(watch_module, "_move_into", failing_once)

    result = watch.run()

    assert result.exit_status == 1
    assert sorted(accepted(sandbox)) == sorted(emails("a", 2) + emails("b", 1))
    assert watch.left() == {"a.csv"}
    first, second = watch.log()
    assert "a.csv: processed, 2 rows, 2 sent" in first
    assert "cannot be moved into processed/ (Permission denied): it stays in the inbox" in first
    assert "b.csv: processed" in second and "file in processed/b.csv" in second

    monkeypatch.setattr(watch_module, "_move_into", real_move)
    assert watch.run().exit_status == 0  # the next run sends nothing again and moves it
    assert len(accepted(sandbox)) == 3
    assert watch.left() == set()


def test_file_names_are_escaped_in_the_log_and_the_messages(watch, sandbox):
    forged = "a.csv: processed, 1 rows; all fine\n2026-01-01T00:00:00+00:00 x"
    name = f"{forged}\x1b[2J.csv"
    drop(watch.inbox, name, emails("a", 1), age=300)
    drop(watch.inbox, "fresh\x1b[31m.csv", emails("f", 1), age=None)
    (watch.inbox / "bad\x1b]0;title\x07.xlsx").write_text("not a workbook")
    os.utime(watch.inbox / "bad\x1b]0;title\x07.xlsx", (time.time() - 200,) * 2)

    watch.run()

    log = (watch.out / LOG_NAME).read_text(encoding="utf-8")
    assert len(log.splitlines()) == 2
    assert "\x1b" not in log and "\x07" not in log
    assert "\\n2026-01-01T00:00:00+00:00 x\\x1b[2J.csv: processed" in log
    assert all("\x1b" not in m and "\n" not in m for m in watch.echoed)
    assert any(m.startswith("fresh\\x1b[31m.csv: changed less than") for m in watch.echoed)
    reason = (watch.inbox / "rejected" / "bad\x1b]0;title\x07.xlsx.reason.txt").read_text()
    assert "\x1b" not in reason and "bad\\x1b]0;title\\x07.xlsx" in reason


# -- drops that build on each other (issue 16), warnings, formats, index.html ------------------


def cumulative(inbox: Path, name: str, rows: list[tuple[str, str]], age: float = 300) -> Path:
    """A partner's nightly export: the whole list each time, ``(email, nome)`` rows."""
    path = write_csv(inbox / name, ["email", "nome"], [list(row) for row in rows])
    past = time.time() - age
    os.utime(path, (past, past))
    return path


def names_sent(box) -> list[tuple[str, str]]:
    return [(e["payload"]["email"], e["payload"]["name"]) for e in box.snapshot()["accepted"]]


NIGHT_1 = [("a1@exemplo.com.br", "Ana"), ("b1@exemplo.com.br", "Bia"), ("c1@exemplo.com.br", "Cid")]
# The next night: the same list, Bia's name edited by the partner, and one new lead.
NIGHT_2 = [NIGHT_1[0], ("b1@exemplo.com.br", "Beatriz"), NIGHT_1[2], ("d1@exemplo.com.br", "Davi")]


def keyed(watch: Watch) -> None:
    """Rows known by their email: an edited name is the same row with a changed payload."""
    write_mapping(watch.mapping, MAPPING + 'key: "email"\n')


def test_a_cumulative_drop_sends_only_its_new_rows_and_says_where_the_others_went(watch, sandbox):
    keyed(watch)
    cumulative(watch.inbox, "leads.csv", NIGHT_1)
    assert watch.run().exit_status == 0
    cumulative(watch.inbox, "leads.csv", NIGHT_2)

    result = watch.run()

    assert result.exit_status == 0
    assert sorted(names_sent(sandbox)) == sorted([*NIGHT_1, ("d1@exemplo.com.br", "Davi")])
    [second] = result.files
    assert (second.rows, second.sent, second.skipped) == (4, 1, 3)
    assert "leads.csv: processed, 4 rows, 1 sent, 0 failed, 3 skipped" in watch.log()[-1]
    # The second drop's record says when and from which file the old rows were sent.
    record = {r["email"]: r for r in read_csv(watch.out / "leads-2" / "successes.csv")}
    assert record["a1@exemplo.com.br"]["sent_in"] == "leads.csv"
    assert record["a1@exemplo.com.br"]["sent_at"]
    assert (watch.out / ".ledger-mapping.sqlite").exists()
    assert mode(watch.out / ".ledger-mapping.sqlite") == 0o600


def test_resend_changed_sends_the_edited_rows_of_a_cumulative_drop_too(watch, sandbox):
    keyed(watch)
    cumulative(watch.inbox, "leads.csv", NIGHT_1)
    assert watch.run(changed="resend").exit_status == 0
    cumulative(watch.inbox, "leads.csv", NIGHT_2)

    result = watch.run(changed="resend")

    assert result.exit_status == 0
    assert sorted(names_sent(sandbox)) == sorted(
        [*NIGHT_1, ("b1@exemplo.com.br", "Beatriz"), ("d1@exemplo.com.br", "Davi")]
    )


def test_each_file_new_gives_each_drop_its_own_ledger(watch, sandbox):
    cumulative(watch.inbox, "leads.csv", NIGHT_1)
    assert watch.run(each_file_new=True).exit_status == 0
    cumulative(watch.inbox, "leads.csv", NIGHT_2)

    assert watch.run(each_file_new=True).exit_status == 0

    assert sorted(names_sent(sandbox)) == sorted([*NIGHT_1, *NIGHT_2])
    assert (watch.out / "leads-2" / "ledger.sqlite").exists()
    assert not (watch.out / ".ledger-mapping.sqlite").exists()


def test_a_busy_shared_ledger_leaves_the_file_for_now(watch, sandbox):
    import fcntl

    cumulative(watch.inbox, "leads.csv", NIGHT_1)
    watch.out.mkdir()
    # The pipeline locks a shared ledger with ".<ledger name>.lock" beside it.
    fd = os.open(watch.out / "..ledger-mapping.sqlite.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # an import run using the shared ledger
        result = watch.run()
    finally:
        os.close(fd)

    assert result.files == [] and accepted(sandbox) == []
    assert watch.left() == {"leads.csv"}
    assert any("leads.csv: " in line and "in use by another" in line for line in watch.echoed)
    assert watch.run().exit_status == 0
    assert len(accepted(sandbox)) == 3


def test_a_byte_identical_drop_is_recognised_and_sends_nothing(watch, sandbox):
    first = cumulative(watch.inbox, "leads.csv", NIGHT_1)
    content = first.read_bytes()
    assert watch.run().exit_status == 0
    again = watch.inbox / "copy of leads.csv"
    again.write_bytes(content)
    os.utime(again, (time.time() - 300,) * 2)

    result = watch.run()

    assert result.exit_status == 0
    [outcome] = result.files
    assert outcome.outcome == "identical"
    assert len(accepted(sandbox)) == 3
    line = watch.log()[-1]
    assert "copy of leads.csv: identical to leads.csv imported at 20" in line
    assert "nothing sent" in line and "file in processed/copy of leads.csv" in line
    assert watch.left() == set()
    assert not (watch.out / "copy of leads").exists()  # no run, no reports folder


def test_a_file_that_grows_during_its_import_is_left_and_its_new_rows_follow(watch, sandbox):
    # A stalled upload: the writer paused longer than --settle, then wrote the rest.
    path = cumulative(watch.inbox, "leads.csv", NIGHT_1)

    async def appending_runner(config, listener, control):
        report = await run_import_async(config, listener, control)
        with path.open("a", encoding="utf-8") as handle:
            handle.write("d1@exemplo.com.br,Davi\r\n")
        return report

    result = watch.run(runner=appending_runner)

    assert result.files[0].outcome == "changed"
    assert watch.left() == {"leads.csv"}
    assert not (watch.inbox / "processed" / "leads.csv").exists()
    line = watch.log()[-1]
    assert "leads.csv: changed while being imported (it grew from " in line
    assert "left in the inbox; the next pass imports the rows it gained" in line

    os.utime(path, (time.time() - 300,) * 2)
    assert watch.run().exit_status == 0
    assert sorted(names_sent(sandbox)) == sorted([*NIGHT_1, ("d1@exemplo.com.br", "Davi")])
    assert (watch.inbox / "processed" / "leads.csv").exists()


def test_a_file_written_to_as_it_is_moved_goes_back_to_the_inbox(watch, sandbox, monkeypatch):
    import importer.watch.files as watch_module  # where the watcher looks the move up

    cumulative(watch.inbox, "leads.csv", NIGHT_1)
    real_move = watch_module._move_into
    moves: list[str] = []

    def move_then_append(source: int, name: str, folder: int) -> str:
        moved = real_move(source, name, folder)
        moves.append(moved)
        if len(moves) == 1:  # a writer that held the file open appends after the move
            fd = os.open(moved, os.O_WRONLY | os.O_APPEND, dir_fd=folder)
            os.write(fd, b"d1@exemplo.com.br,Davi\r\n")
            os.close(fd)
        return moved

    monkeypatch.setattr(watch_module, "_move_into", move_then_append)
    result = watch.run()

    assert result.files[0].outcome == "changed"
    assert watch.left() == {"leads.csv"}
    assert list((watch.inbox / "processed").iterdir()) == []
    line = watch.log()[-1]
    assert "it changed as it was moved into processed/" in line
    assert "it is back in the inbox as leads.csv" in line

    os.utime(watch.inbox / "leads.csv", (time.time() - 300,) * 2)
    assert watch.run().exit_status == 0
    assert sorted(names_sent(sandbox)) == sorted([*NIGHT_1, ("d1@exemplo.com.br", "Davi")])


def test_a_runs_warnings_reach_the_log_under_its_line(watch, sandbox):
    # The same email twice with different names: RD Station keeps the later (a warning).
    rows = [("a1@exemplo.com.br", "Ana"), ("a1@exemplo.com.br", "Ana Maria")]
    cumulative(watch.inbox, "leads.csv", rows)

    assert watch.run().exit_status == 0

    file_line, *warnings = watch.log()
    assert "leads.csv: processed" in file_line
    assert warnings and all(w.startswith("    warning: ") for w in warnings)
    assert any("rows 2, 3" in w or "2, 3" in w for w in warnings), warnings
    assert file_line in watch.echoed and not any(w in watch.echoed for w in warnings)


def test_every_format_import_reads_is_taken_and_a_numbers_file_is_rejected_with_advice(
    watch, sandbox
):
    tsv = watch.inbox / "export.tsv"
    tsv.write_text("email\tnome\r\nt1@exemplo.com.br\tTina\r\n", encoding="utf-8")
    numbers = watch.inbox / "planilha.numbers"
    numbers.write_bytes(b"PK\x03\x04 an Apple Numbers package")
    for path in (tsv, numbers):
        os.utime(path, (time.time() - 300,) * 2)

    result = watch.run()

    assert result.exit_status == 1  # a file rejected
    assert accepted(sandbox) == ["t1@exemplo.com.br"]
    assert watch.left() == set()
    reason = (watch.inbox / "rejected" / "planilha.numbers.reason.txt").read_text()
    assert "an Apple Numbers spreadsheet" in reason and "Export To > CSV" in reason
    assert any("planilha.numbers: rejected" in line for line in watch.log())


def test_the_index_page_lists_each_file_with_its_counts_and_report(watch, sandbox):
    cumulative(watch.inbox, "leads.csv", NIGHT_1, age=300)
    drop(watch.inbox, "<b>&co.csv", [*emails("b", 1), "not-an-email"], age=200)
    bad = write_csv(watch.inbox / "wrong.csv", ["correio"], [["w1@exemplo.com.br"]])
    os.utime(bad, (time.time() - 100,) * 2)

    watch.run()

    page_path = watch.out / "index.html"
    assert mode(page_path) == 0o600
    page = page_path.read_text(encoding="utf-8")
    assert "<script" not in page and "http" not in page.replace("http-equiv", "")
    assert "&lt;b&gt;&amp;co.csv" in page and "<b>&co" not in page
    assert '<a href="leads/report.html">' in page
    assert '<a href="%3Cb%3E%26co/report.html">' in page
    assert "<td class=num>3</td>" in page  # leads.csv: 3 rows, 3 sent
    assert "wrong.csv" in page and "rejected" in page
    assert "exemplo" not in page  # names and counts only, never a cell
    assert page.index("wrong.csv") < page.index("leads.csv")  # newest first


def test_the_cli_takes_the_watch_memory_flags(tmp_path, sandbox, monkeypatch):
    monkeypatch.delenv("RDSTATION_API_KEY", raising=False)
    watch = Watch(tmp_path, sandbox.url)
    args = ["watch", str(watch.inbox), "--mapping", str(watch.mapping), "--out", str(watch.out)]

    both = CliRunner().invoke(
        cli, [*args, "--once", "--sandbox", "--keep-sent", "--resend-changed"]
    )
    assert both.exit_code == 2 and "exclude each other" in both.output

    cumulative(watch.inbox, "leads.csv", NIGHT_1)
    first = CliRunner().invoke(cli, [*args, "--once", "--quiet", "--sandbox", "--each-file-new"])
    assert first.exit_code == 0, first.output
    assert (watch.out / "leads" / "ledger.sqlite").exists()
    cumulative(watch.inbox, "leads.csv", NIGHT_2)
    again = CliRunner().invoke(cli, [*args, "--once", "--quiet", "--sandbox", "--resend-changed"])
    assert again.exit_code == 0, again.output
    assert read_summary(watch.out / "leads-2")["rows"] == 4
