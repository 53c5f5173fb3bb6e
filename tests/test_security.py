"""Issue 8: the API key never leaks, reports are private and safe to open, hostile input is refused.

Every run that sends, or reads a hostile file, is the real command line in a real ``python``
process (so every byte it prints, tracebacks and log records included, is seen, and its peak
memory is measured), against servers on 127.0.0.1 run by the test. The child gets a small
prelude (``_PRELUDE``): a resolver guard that answers NXDOMAIN for any host that is not loopback
(nothing can reach the internet, and ``*.invalid`` gets a real aiohttp DNS failure) and retries
without backoff waits. A test adds to the prelude only to inject a fault that no server can
produce (an exception inside aiohttp, a bug inside the pipeline). Runs refused before anything
is read or sent (settings, mappings) use click's runner in this process.
"""

from __future__ import annotations

import contextlib
import csv
import http.server
import json
import os
import random
import signal
import socket
import ssl
import stat
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, quote_plus, urlsplit

import pytest
from click.testing import CliRunner
from yarl import URL

from helpers import ROOT, read_csv, self_signed_tls, write_csv, write_mapping
from importer.cli import cli
from importer.mapping import load_mapping
from importer.pipeline import ImportConfig
from importer.records import Row
from importer.sandbox import SandboxConfig, SandboxThread
from importer.watch import WatchConfig

# Distinctive, and with characters every URL encoder writes differently.
KEY = "sk-SECRET-9d1f/7c+e2=a84b%Q"

MAPPING = """\
conversion_identifier: "seguranca"
fields:
  email: "email"
  name: "nome"
"""

_PRELUDE = """\
import socket, sys
sys.argv[0] = "rd-importer"
_getaddrinfo = socket.getaddrinfo
def _loopback_only(host, *args, **kwargs):
    name = host.decode() if isinstance(host, bytes) else host
    if name not in (None, "127.0.0.1", "localhost", "::1"):
        if not str(name).endswith(".invalid"):
            sys.stderr.write(f"NETWORK-GUARD refused {name}\\n")
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    return _getaddrinfo(host, *args, **kwargs)
socket.getaddrinfo = _loopback_only
import atexit, os
def _write_peak_memory():  # VmHWM: this program's own peak, not the forking parent's
    with open("/proc/self/status") as status:
        peak = next((line.split()[1] for line in status if line.startswith("VmHWM:")), "0")
    with open(os.environ["RD_TEST_PEAK_FILE"], "w") as out:
        out.write(peak)
atexit.register(_write_peak_memory)
import functools, importer.cli, importer.pipeline
importer.cli.ImportConfig = functools.partial(
    importer.pipeline.ImportConfig,
    tuning=importer.pipeline.Tuning(retry_wait=False, max_attempts=2{config}),
)
"""


# --- the key in every form it could be written ------------------------------------------------


def key_forms(key: str = KEY) -> set[str]:
    in_yarl = URL("http://h/").with_query(k=key).raw_query_string.removeprefix("k=")
    return {key, quote(key, safe=""), quote_plus(key), quote(key), in_yarl}


def key_pieces(key: str = KEY, size: int = 8) -> set[bytes]:
    """Every ``size``-character window of the key in each of its forms."""
    pieces = set()
    for form in key_forms(key):
        for start in range(len(form) - size + 1):
            pieces.add(form[start : start + size].encode())
    return pieces


PIECES = key_pieces()


def leaks(data: bytes) -> list[bytes]:
    return sorted(p for p in PIECES if p in data)


def assert_no_key(run: Run, *folders: Path) -> None:
    assert not leaks(run.stdout), run.text
    assert not leaks(run.stderr), run.text
    assert b"Traceback" not in run.stdout + run.stderr, run.text
    assert b"NETWORK-GUARD" not in run.stderr, run.text
    checked = 0
    for folder in folders:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                checked += 1
                found = leaks(path.read_bytes())
                assert not found, f"{path} holds {found}"
    assert checked or not folders, "no file was written: the path was not exercised"


# --- running the real command line ------------------------------------------------------------


@dataclass
class Run:
    code: int
    stdout: bytes
    stderr: bytes
    max_rss_mb: float

    @property
    def text(self) -> str:
        return (self.stdout + self.stderr).decode("utf-8", "replace")

    @property
    def error_lines(self) -> list[str]:
        return self.stderr.decode("utf-8", "replace").strip().splitlines()


def run_cli(
    *args: str | Path,
    cwd: Path,
    key: str | None = KEY,
    config: str = "",
    inject: str = "",
    umask: int = -1,
    watch_during: Callable[[], None] | None = None,
    kill_when: Callable[[], bool] | None = None,
    timeout: float = 120,
) -> Run:
    """``rd-importer ARGS`` in a child process; its exit status, output and peak memory.

    ``watch_during`` is called every 20 ms while it runs; ``kill_when`` too, and the child gets
    SIGKILL once it returns true."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RDSTATION_")}
    env["PYTHONPATH"] = str(ROOT)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    if key is not None:
        env["RDSTATION_API_KEY"] = key
    code = _PRELUDE.replace("{config}", config) + inject + "\nimporter.cli.main()\n"
    out, err, peak = cwd / ".stdout", cwd / ".stderr", cwd / ".peak"
    env["RD_TEST_PEAK_FILE"] = str(peak)
    with out.open("wb") as stdout, err.open("wb") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-c", code, *map(str, args)],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            umask=umask,
        )
    deadline = time.monotonic() + timeout
    while proc.poll() is None:
        if time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            pytest.fail(f"rd-importer {' '.join(map(str, args))} ran past {timeout} s")
        if watch_during is not None:
            watch_during()
        if kill_when is not None and kill_when():
            proc.kill()
            kill_when = None
        time.sleep(0.02)
    peak_kb = int(peak.read_text()) if peak.exists() else 0  # none after a SIGKILL
    run = Run(proc.returncode, out.read_bytes(), err.read_bytes(), peak_kb / 1024)
    for path in (out, err, peak):
        path.unlink(missing_ok=True)
    return run


def invoke(*args: str | Path, key: str | None = KEY) -> Run:
    """``rd-importer ARGS`` in this process (click's runner): for runs that end before sending,
    where a child process would only add its start-up time."""
    env = {name: None for name in os.environ if name.startswith("RDSTATION_")}
    env["RDSTATION_API_KEY"] = key
    result = CliRunner().invoke(cli, [str(a) for a in args], env=env)
    assert isinstance(result.exception, SystemExit | None), result.exception
    return Run(result.exit_code, result.stdout_bytes, result.stderr_bytes, 0.0)


def leads_csv(path: Path, n: int = 3) -> Path:
    rows = [[f"pessoa{i}@exemplo.com.br", f"Pessoa {i}"] for i in range(1, n + 1)]
    return write_csv(path, ["email", "nome"], rows)


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    return leads_csv(tmp_path / "leads.csv"), write_mapping(tmp_path / "map.yaml", MAPPING)


def import_args(
    files: tuple[Path, Path], out: Path, url: str, *more: str | Path
) -> list[str | Path]:
    data, mapping = files
    return ["import", data, "--mapping", mapping, "--out", out, "--api-url", url, "--rate", "0",
            "--concurrency", "2", *more]  # fmt: skip


# --- servers on 127.0.0.1 --------------------------------------------------------------------


class _Echo(http.server.BaseHTTPRequestHandler):
    """Answers every request with the server's status, a body that repeats the URL and the key
    it was sent (as a careless proxy or error page would), and any extra headers."""

    status = 500
    content_type = "text/html"
    body = "<html><title>Error at {path}</title><body>{path} key {key}</body></html>"
    headers_out: dict[str, str] = {}  # noqa: RUF012

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        key = parse_qs(urlsplit(self.path).query).get("api_key", [""])[0]
        raw = self.body.format(path=self.path, key=key, url=f"http://{self.headers['Host']}")
        data = raw.encode()
        self.send_response(self.status)
        self.send_header("Content-Type", self.content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in self.headers_out.items():
            self.send_header(name, value.format(path=self.path, key=key))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:  # the test's own stderr stays quiet
        pass


@contextlib.contextmanager
def echo_server(
    status: int,
    body: str = _Echo.body,
    content_type: str = "text/html",
    headers: dict[str, str] | None = None,
    tls: ssl.SSLContext | None = None,
) -> Iterator[str]:
    handler = type(
        "Handler",
        (_Echo,),
        {"status": status, "body": body, "content_type": content_type,
         "headers_out": headers or {}},
    )  # fmt: skip
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    scheme = "https" if tls else "http"
    try:
        yield f"{scheme}://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@contextlib.contextmanager
def hanging_server() -> Iterator[tuple[str, threading.Event]]:
    """Takes connections and never answers; ``connected`` is set once the first one arrives."""
    connected, stop = threading.Event(), threading.Event()
    held: list[socket.socket] = []
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        sock.settimeout(0.05)

        def serve() -> None:
            while not stop.is_set():
                try:
                    held.append(sock.accept()[0])
                except TimeoutError:
                    continue
                connected.set()

        thread = threading.Thread(target=serve)
        thread.start()
        try:
            yield f"http://127.0.0.1:{sock.getsockname()[1]}", connected
        finally:
            stop.set()
            thread.join()
            for conn in held:
                conn.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- 1. the key never appears -----------------------------------------------------------------

_RAISE_IN_AIOHTTP = """
import aiohttp
async def _request(self, method, url, *args, **kwargs):
    raise {exc}(f"failed to send to {{url}} with api_key in it")
aiohttp.ClientSession._request = _request
"""

_BUG_IN_PIPELINE = """
def _announce_plan(self):
    raise RuntimeError(f"bug while planning {{self.config!r}} key={{self.config.api_key}}")
importer.pipeline._Run._announce_plan = _announce_plan
"""


@dataclass
class Scenario:
    """One way for a run to go wrong: the server (or fault) and what the run must say."""

    url: str
    code: int
    says: str
    config: str = ""
    inject: str = ""


Enter = Callable[[contextlib.AbstractContextManager[Any]], Any]
_JSON_500 = '{{"errors": {{"error_type": "INTERNAL", "error_message": "failed for {key}"}}}}'
# The client quotes 120 characters of a page that is not JSON: this title puts the key across
# that cut, with no "api_key=" in front of it.
_LONG_TITLE = "<html><title>" + "Erro no gateway: " * 6 + "token {key}</title></html>"
_JSON_401 = '{{"errors": {{"error_type": "UNAUTHORIZED", "error_message": "bad token {key}"}}}}'


def _refused(enter: Enter, tmp_path: Path) -> Scenario:
    port = free_port()
    return Scenario(f"http://127.0.0.1:{port}", 1, f"could not connect to 127.0.0.1:{port}")


def _sandbox(enter: Enter, **config: Any) -> str:
    return enter(SandboxThread(SandboxConfig(**config))).url


FAILURES: dict[str, Callable[[Enter, Path], Scenario]] = {
    "5xx proxy page echoing the URL": lambda enter, _: Scenario(
        enter(echo_server(502)), 1, "RD Station answered HTTP 502"
    ),
    "5xx JSON echoing the key": lambda enter, _: Scenario(
        enter(echo_server(500, _JSON_500, "application/json")), 1, "failed for ***"
    ),
    "5xx from the sandbox": lambda enter, _: Scenario(
        _sandbox(enter, api_keys=frozenset({KEY}), fail_ratio=1.0),
        1,
        "RD Station answered HTTP 5",
    ),
    "connection refused": _refused,
    "DNS failure": lambda enter, _: Scenario(
        "https://nonexistent.invalid", 1, "could not resolve the host nonexistent.invalid"
    ),
    # a server that never answers stops the run after a few attempts in a row (resumable)
    "timeout": lambda enter, _: Scenario(
        enter(hanging_server())[0], 3, "no answer from 127.0.0.1", config=", timeout=0.5"
    ),
    "TLS certificate not trusted": lambda enter, tmp_path: Scenario(
        enter(echo_server(200, tls=self_signed_tls(tmp_path))),
        3,
        "TLS certificate of 127.0.0.1",
    ),
    "aiohttp raises its own error holding the URL": lambda enter, _: Scenario(
        enter(echo_server(200)),
        1,
        "failed (ClientConnectionError)",
        inject=_RAISE_IN_AIOHTTP.format(exc="aiohttp.ClientConnectionError"),
    ),
    "aiohttp raises an unexpected error holding the URL": lambda enter, _: Scenario(
        enter(echo_server(200)),
        1,
        "failed (ValueError)",
        inject=_RAISE_IN_AIOHTTP.format(exc="ValueError"),
    ),
    "401 echoing the key": lambda enter, _: Scenario(
        enter(echo_server(401, _JSON_401, "application/json")),
        3,
        "RD Station refused the API key",
    ),
    "401 from the sandbox": lambda enter, _: Scenario(
        _sandbox(enter, api_keys=frozenset({"another-key"})), 3, "RD Station refused the API key"
    ),
    "502 page whose title is clipped inside the key": lambda enter, _: Scenario(
        enter(echo_server(502, _LONG_TITLE)), 1, "token ***"
    ),
    "404 page echoing the URL": lambda enter, _: Scenario(
        enter(echo_server(404)), 1, "RD Station answered HTTP 404"
    ),
    "redirect repeating the query": lambda enter, _: Scenario(
        enter(echo_server(301, "", headers={"Location": "https://rd.example{path}"})),
        3,
        "redirect (HTTP 301 to https://rd.example/platform/conversions)",
    ),
    "a bug inside the pipeline": lambda enter, _: Scenario(
        enter(echo_server(200)),
        3,
        "Stopped: unexpected error (RuntimeError",
        inject=_BUG_IN_PIPELINE,
    ),
}


@pytest.mark.parametrize("name", list(FAILURES))
def test_the_key_is_in_no_output_and_no_file_whatever_fails(
    tmp_path: Path, files: tuple[Path, Path], name: str
) -> None:
    out = tmp_path / "out"
    ledger_leaks: list[str] = []

    def scan_ledger() -> None:  # the -wal and -shm exist only while the run does
        for part in ("ledger.sqlite-wal", "ledger.sqlite-shm"):
            with contextlib.suppress(FileNotFoundError):
                ledger_leaks.extend(f"{part}: {p!r}" for p in leaks((out / part).read_bytes()))

    with contextlib.ExitStack() as stack:
        case = FAILURES[name](stack.enter_context, tmp_path)
        run = run_cli(
            *import_args(files, out, case.url),
            cwd=tmp_path,
            config=case.config,
            inject=case.inject,
            watch_during=scan_ledger,
        )
    assert run.code == case.code, run.text
    told = run.text
    if (out / "failures.csv").exists():
        told += (out / "failures.csv").read_text(encoding="utf-8-sig")
    if (out / "summary.json").exists():
        told += (out / "summary.json").read_text(encoding="utf-8")
    assert case.says in told, told
    assert_no_key(run, out)
    assert not ledger_leaks


def test_the_key_is_not_in_a_ledger_left_by_a_killed_run(
    tmp_path: Path, files: tuple[Path, Path]
) -> None:
    """SIGKILL while a request hangs: the -wal and -shm stay on disk, and hold no key either."""
    out = tmp_path / "out"
    with hanging_server() as (url, connected):
        run = run_cli(
            *import_args(files, out, url),
            cwd=tmp_path,
            config=", timeout=60",
            kill_when=connected.is_set,
        )
    assert run.code == -signal.SIGKILL
    assert {"ledger.sqlite", "ledger.sqlite-wal", "ledger.sqlite-shm"} <= {
        p.name for p in out.iterdir()
    }
    assert_no_key(run, out)


def test_a_bug_stops_the_run_with_one_line_and_resumes_cleanly(
    tmp_path: Path, files: tuple[Path, Path], sandbox_for_key: SandboxThread
) -> None:
    out = tmp_path / "out"
    run = run_cli(
        *import_args(files, out, sandbox_for_key.url), cwd=tmp_path, inject=_BUG_IN_PIPELINE
    )
    assert run.code == 3, run.text
    assert [line for line in run.error_lines if "unexpected" in line] == [run.error_lines[-1]]
    assert "RuntimeError" in run.error_lines[-1]
    assert_no_key(run, out)

    again = run_cli(*import_args(files, out, sandbox_for_key.url), cwd=tmp_path)
    assert again.code == 0, again.text
    assert len(sandbox_for_key.snapshot()["accepted"]) == 3


def test_the_configs_never_show_the_key_in_their_repr(tmp_path: Path) -> None:
    config = ImportConfig(input_path=tmp_path / "x.csv", mapping_path=tmp_path / "m.yaml",
                          api_key=KEY)  # fmt: skip
    assert not leaks(repr(config).encode())
    watching = WatchConfig(inbox=tmp_path, out_root=tmp_path / "out", template=config)
    assert not leaks(repr(watching).encode())
    assert config.api_key == KEY


@pytest.fixture
def sandbox_for_key() -> Iterator[SandboxThread]:
    with SandboxThread(SandboxConfig(api_keys=frozenset({KEY}), seed=1)) as box:
        yield box


def test_the_key_stays_out_of_watch_log_and_every_file_of_a_watch(tmp_path: Path) -> None:
    inbox, out = tmp_path / "inbox", tmp_path / "watch-out"
    inbox.mkdir()
    leads_csv(inbox / "refused.csv")
    mapping = write_mapping(tmp_path / "map.yaml", MAPPING)
    json_401 = '{{"errors": {{"error_type": "UNAUTHORIZED", "error_message": "bad {key} {path}"}}}}'
    with echo_server(401, json_401, "application/json") as url:
        run = run_cli(
            "watch", inbox, "--mapping", mapping, "--out", out, "--once", "--settle", "0",
            "--api-url", url, "--rate", "0", cwd=tmp_path,
        )  # fmt: skip
    assert run.code == 3, run.text
    log = (out / "watch.log").read_text(encoding="utf-8")
    assert "refused.csv: aborted (RD Station refused the API key" in log
    assert_no_key(run, out, inbox)

    leads_csv(inbox / "answered-404.csv")
    (inbox / "refused.csv").unlink()
    with echo_server(404) as url:
        run = run_cli(
            "watch", inbox, "--mapping", mapping, "--out", out, "--once", "--settle", "0",
            "--api-url", url, "--rate", "0", cwd=tmp_path,
        )  # fmt: skip
    assert run.code == 1, run.text
    assert "answered-404.csv: processed" in (out / "watch.log").read_text(encoding="utf-8")
    assert_no_key(run, out, inbox)


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("http://example.com", "plain http would send the API key in clear text"),
        ("http://10.0.0.1:8080", "plain http would send the API key in clear text"),
        (f"https://api.rd.services/?api_key={quote(KEY, safe='')}", "without ?query"),
    ],
)
def test_an_unsafe_api_url_is_refused_before_connecting(
    tmp_path: Path, files: tuple[Path, Path], url: str, says: str
) -> None:
    out = tmp_path / "out"
    run = run_cli(*import_args(files, out, url), cwd=tmp_path)  # guarded: it must not resolve
    assert run.code == 2, run.text
    assert len(run.error_lines) == 1 and says in run.error_lines[0], run.text
    assert_no_key(run)
    assert not out.exists()  # refused before anything was read, written or resolved


def test_the_key_is_not_a_command_line_option(tmp_path: Path, files: tuple[Path, Path]) -> None:
    data, mapping = files
    run = invoke("import", data, "--mapping", mapping, "--api-key", KEY, key=None)
    assert run.code == 2, run.text
    assert "the API key is never taken on the command line" in run.error_lines[-1]
    assert_no_key(run)


# --- 2. --api-key-file ------------------------------------------------------------------------


def test_api_key_file_private_is_used_without_a_warning(
    tmp_path: Path, files: tuple[Path, Path], sandbox_for_key: SandboxThread
) -> None:
    key_file = tmp_path / "rd.key"
    key_file.write_text(KEY + "\n", encoding="utf-8")
    key_file.chmod(0o600)
    out = tmp_path / "out"
    run = run_cli(
        *import_args(files, out, sandbox_for_key.url, "--api-key-file", str(key_file)),
        cwd=tmp_path,
        key=None,
    )
    assert run.code == 0, run.text
    assert "Warning" not in run.text
    assert len(sandbox_for_key.snapshot()["accepted"]) == 3
    assert_no_key(run, out)


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604])
def test_api_key_file_readable_by_others_warns_and_still_works(
    tmp_path: Path, files: tuple[Path, Path], sandbox_for_key: SandboxThread, mode: int
) -> None:
    key_file = tmp_path / "rd.key"
    key_file.write_text(KEY, encoding="utf-8")
    key_file.chmod(mode)
    run = run_cli(
        *import_args(files, tmp_path / "out", sandbox_for_key.url, "--api-key-file",
                     str(key_file)),
        cwd=tmp_path,
        key="not-this-one",  # the file wins over the environment
    )  # fmt: skip
    assert run.code == 0, run.text
    warning = (
        f"Warning: {key_file} can be read or changed by other users; run 'chmod 600 {key_file}'"
    )
    assert warning in run.error_lines
    assert_no_key(run, tmp_path / "out")


@pytest.mark.parametrize(
    ("content", "says"), [(None, "No such file"), ("", "the file is empty"), ("\n  \n", "empty")]
)
def test_api_key_file_missing_or_empty_exits_2(
    tmp_path: Path, files: tuple[Path, Path], content: str | None, says: str
) -> None:
    key_file = tmp_path / "rd.key"
    if content is not None:
        key_file.write_text(content, encoding="utf-8")
        key_file.chmod(0o600)
    out = tmp_path / "out"
    run = invoke(*import_args(files, out, "https://127.0.0.1:9", "--api-key-file", key_file))
    assert run.code == 2, run.text
    assert len(run.error_lines) == 1 and says in run.error_lines[0], run.text
    assert not out.exists()


# --- 3. permissions ---------------------------------------------------------------------------


def _modes(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): stat.S_IMODE(p.lstat().st_mode) for p in root.rglob("*")} | {
        ".": stat.S_IMODE(root.lstat().st_mode)
    }


def test_reports_and_ledger_are_0600_in_0700_folders_even_with_umask_000(
    tmp_path: Path, files: tuple[Path, Path]
) -> None:
    data, mapping = files
    leads_csv(data, 6)
    seen_while_running: dict[str, int] = {}
    out = tmp_path / "rd-import-out"

    def look() -> None:
        folder = out / "leads"
        for name in ("ledger.sqlite-wal", "ledger.sqlite-shm", "ledger.sqlite"):
            with contextlib.suppress(FileNotFoundError):
                seen_while_running[name] = stat.S_IMODE((folder / name).stat().st_mode)

    # The default --out (./rd-import-out/<stem>/): the importer creates both folders.
    with SandboxThread(SandboxConfig(api_keys=frozenset({KEY}), latency=0.2)) as box:
        run = run_cli(
            "import", data, "--mapping", mapping, "--api-url", box.url, "--rate", "0",
            "--concurrency", "1", cwd=tmp_path, umask=0, watch_during=look,
        )  # fmt: skip
    assert run.code == 0, run.text
    assert seen_while_running.keys() >= {"ledger.sqlite-wal", "ledger.sqlite-shm"}
    assert set(seen_while_running.values()) == {0o600}, seen_while_running
    modes = _modes(out)
    assert {n for n in modes} >= {
        ".", "leads", "leads/successes.csv", "leads/failures.csv", "leads/summary.json",
        "leads/ledger.sqlite",
    }  # fmt: skip
    for name, mode in modes.items():
        expected = 0o700 if (out / name).is_dir() else 0o600
        assert mode == expected, f"{name} is {mode:o}"


def test_nested_out_folders_are_0700_and_loosened_reports_are_tightened(
    tmp_path: Path, files: tuple[Path, Path], sandbox_for_key: SandboxThread
) -> None:
    out = tmp_path / "a" / "b" / "out"
    args = import_args(files, out, sandbox_for_key.url)
    assert run_cli(*args, cwd=tmp_path, umask=0).code == 0
    for folder in (tmp_path / "a", tmp_path / "a" / "b", out):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder
    # The files holding personal data, as a careless copy or an older version may leave them.
    loosened = ["successes.csv", "failures.csv", "summary.json", "ledger.sqlite"]
    for name in loosened:
        (out / name).chmod(0o666)
    assert run_cli(*args, cwd=tmp_path, umask=0).code == 0
    modes = _modes(out)
    for name in loosened:
        assert modes[name] == 0o600, f"{name} is {modes[name]:o}"


def test_watch_files_are_0600_in_0700_folders_even_with_umask_000(
    tmp_path: Path, sandbox_for_key: SandboxThread
) -> None:
    inbox, out = tmp_path / "inbox", tmp_path / "watch-out"
    inbox.mkdir()
    leads_csv(inbox / "good.csv")
    (inbox / "bad.xlsx").write_text("not a workbook", encoding="utf-8")
    mapping = write_mapping(tmp_path / "map.yaml", MAPPING)
    run = run_cli(
        "watch", inbox, "--mapping", mapping, "--out", out, "--once", "--settle", "0",
        "--api-url", sandbox_for_key.url, "--rate", "0", cwd=tmp_path, umask=0,
    )  # fmt: skip
    assert run.code == 1, run.text
    modes = _modes(out)
    # The ledger every file imported with map.yaml shares (watch remembers across drops).
    assert {"watch.log", "good/successes.csv", ".ledger-map.sqlite"} <= modes.keys()
    for name, mode in modes.items():
        assert mode == (0o700 if (out / name).is_dir() else 0o600), f"{name} is {mode:o}"
    # In the inbox: the moved files keep the mode their owner gave them; the rest is ours.
    created = _modes(inbox)
    moved = {".", "processed/good.csv", "rejected/bad.xlsx"}
    assert moved | {"processed", "rejected/bad.xlsx.reason.txt"} <= created.keys()
    for name, mode in created.items():
        if name not in moved:
            assert mode == (0o700 if (inbox / name).is_dir() else 0o600), f"{name} is {mode:o}"


# --- 4. formula cells -------------------------------------------------------------------------

FORMULA_MAPPING = """\
conversion_identifier: {column: "origem"}
fields:
  email: "email"
  name: "nome"
  cf_link: "link"
  cf_fone: "fone"
  cf_saldo: "saldo"
  cf_soma: "soma"
  cf_tab: "tab"
"""
FORMULA_HEADER = ["email", "nome", "origem", "link", "fone", "saldo", "soma", "tab"]
FORMULAS = ['=HYPERLINK("http://x")', "+55 11 98765-4321", "-5", "@SUM(A1)", "\tcom tab"]


def test_formula_cells_show_as_text_and_round_trip_through_failures_csv(tmp_path: Path) -> None:
    data = write_csv(
        tmp_path / "formulas.csv",
        FORMULA_HEADER,
        [
            ["ana@exemplo.com.br", "Ana", "=1+1", *FORMULAS],
            ["nao-e-email", "Bia", "=1+1", *FORMULAS],
            ["caio@exemplo.com.br", "Caio", "feira", "texto", "'=já escapado", "5", "a@b", "x"],
        ],
    )
    mapping = write_mapping(tmp_path / "map.yaml", FORMULA_MAPPING)
    expected = load_mapping(mapping).bind(FORMULA_HEADER)
    out = tmp_path / "out"
    with SandboxThread(SandboxConfig(api_keys=frozenset({KEY}))) as box:
        run = run_cli(*import_args((data, mapping), out, box.url), cwd=tmp_path)
        assert run.code == 1, run.text
        sent = {e["payload"]["email"]: e["payload"] for e in box.snapshot()["accepted"]}
    # What was sent is the mapping of the cells as read: no quote added, nothing changed.
    with data.open(encoding="utf-8", newline="") as handle:
        original = list(csv.reader(handle))
    for number, cells in ((2, original[1]), (4, original[3])):
        mapped = expected.apply(Row(number, dict(zip(FORMULA_HEADER, cells, strict=True))))
        assert sent[mapped["email"]] == mapped
    assert sent["ana@exemplo.com.br"]["cf_link"] == '=HYPERLINK("http://x")'

    for name in ("successes.csv", "failures.csv"):
        assert (out / name).read_bytes().startswith(b"\xef\xbb\xbf"), name  # UTF-8 BOM
    json.loads((out / "summary.json").read_text(encoding="utf-8"))
    successes = {r["email"]: r for r in read_csv(out / "successes.csv")}
    assert successes["ana@exemplo.com.br"]["conversion_identifier"] == "'=1+1"
    assert successes["caio@exemplo.com.br"]["conversion_identifier"] == "feira"

    with (out / "failures.csv").open(encoding="utf-8-sig", newline="") as handle:
        failures = list(csv.reader(handle))
    assert failures[0][:8] == FORMULA_HEADER
    (bad,) = failures[1:]
    assert bad[:8] == ["nao-e-email", "Bia", "'=1+1", *("'" + f for f in FORMULAS)]

    # Fix the email in place (as a person would in Excel) and import the file again.
    bad[0] = "bia@exemplo.com.br"
    fixed = tmp_path / "failures-fixed.csv"
    with fixed.open("w", encoding="utf-8-sig", newline="") as handle:
        csv.writer(handle).writerows([failures[0], bad])
    with SandboxThread(SandboxConfig(api_keys=frozenset({KEY}))) as box:
        run = run_cli(*import_args((fixed, mapping), tmp_path / "out2", box.url), cwd=tmp_path)
        assert run.code == 0, run.text
        (event,) = box.snapshot()["accepted"]
    cells = ["bia@exemplo.com.br", "Bia", "=1+1", *FORMULAS]
    assert event["payload"] == expected.apply(Row(3, dict(zip(FORMULA_HEADER, cells, strict=True))))
    assert event["payload"]["conversion_identifier"] == "=1+1"
    assert event["payload"]["cf_soma"] == "@SUM(A1)"


def test_rd_stations_own_words_are_escaped_in_failures_csv(
    tmp_path: Path, files: tuple[Path, Path]
) -> None:
    """The error columns come from the server's answer: a hostile or broken proxy chooses them."""
    said = (
        '{{"errors": {{"error_type": "@SUM(1)", "error_message": "=HYPERLINK(\\"http://x\\")"}}}}'
    )
    out = tmp_path / "out"
    with echo_server(400, said, "application/json") as url:
        run = run_cli(*import_args(files, out, url), cwd=tmp_path)
    assert run.code == 1, run.text
    failures = read_csv(out / "failures.csv")
    assert {(f["error_type"], f["error_message"]) for f in failures} == {
        ("'@SUM(1)", '\'=HYPERLINK("http://x") (@SUM(1))')
    }


# --- 5. hostile input -------------------------------------------------------------------------

MAX_RSS_MB = 200  # measured: 52-59 MB for each of these, 51 MB for --help


def _deflated_zero_bomb(path: Path, size: int = 64 << 20) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("xl/workbook.xml", "<workbook/>")
        with archive.open("xl/worksheets/sheet1.xml", "w") as part:
            zeros = b"0" * (1 << 20)
            for _ in range(size >> 20):
                part.write(zeros)
    return path


def _forged_size_bomb(path: Path) -> Path:
    """A small sheet whose zip directory declares it unpacks to 4 GiB."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("xl/workbook.xml", "<workbook/>")
        archive.writestr("xl/worksheets/sheet1.xml", "<worksheet/>")
    raw = bytearray(path.read_bytes())
    entry = raw.rfind(b"PK\x01\x02")  # the last central directory entry: the sheet
    raw[entry + 24 : entry + 28] = (0xFFFF_FFFE).to_bytes(4, "little")  # uncompressed size
    path.write_bytes(bytes(raw))
    return path


def _password_protected_xlsx(path: Path) -> Path:
    """The shape Excel gives an encrypted workbook: an OLE compound file whose directory
    holds an ``EncryptedPackage`` stream (minimal bytes: the header and one directory entry)."""
    header = bytearray(512)
    header[:8] = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
    header[24:34] = bytes.fromhex("3e000300feff09000600")
    entry = bytearray(128)
    name = "EncryptedPackage".encode("utf-16-le") + b"\0\0"
    entry[: len(name)] = name
    entry[64:66] = len(name).to_bytes(2, "little")
    entry[66] = 2  # a stream
    path.write_bytes(bytes(header) + bytes(entry) * 4)
    return path


def _written(data: bytes) -> Callable[[Path], Path]:
    def write(path: Path) -> Path:
        path.write_bytes(data)
        return path

    return write


HOSTILE = {
    "zip bomb of deflated zeros": (
        "bomb.xlsx", _deflated_zero_bomb, "times its packed size (a zip bomb?)"),
    "zip that declares 4 GiB": ("forged.xlsx", _forged_size_bomb, "GiB limit (a zip bomb?)"),
    "text file named .xlsx": (
        "text.xlsx",
        _written(b"email,nome\na@b.com,A\n"),
        "named like a workbook but is not one",
    ),
    "ELF binary named .csv": (
        "program.csv",
        _written(b"\x7fELF\x02\x01\x01\0" + random.Random(8).randbytes(8192)),
        "looks like a binary file, not a CSV",
    ),
    "random bytes named .csv": (
        "noise.csv",
        _written(random.Random(9).randbytes(256 << 10)),
        "not a CSV",
    ),
    "CSV with NUL bytes": (
        "nul.csv",
        _written(b"email,nome\na@exemplo.com.br,An\0a\n"),
        "holds NUL bytes",
    ),
    "password-protected workbook": (
        "locked.xlsx",
        _password_protected_xlsx,
        "is protected with a password",
    ),
}  # fmt: skip


@pytest.mark.parametrize("name", list(HOSTILE))
def test_a_hostile_file_is_refused_with_one_line_and_bounded_memory(
    tmp_path: Path, name: str
) -> None:
    filename, make, says = HOSTILE[name]
    path = make(tmp_path / filename)
    mapping = write_mapping(tmp_path / "map.yaml", MAPPING)
    out = tmp_path / "out"
    run = run_cli(
        "import", path, "--mapping", mapping, "--out", out, "--api-url", "https://127.0.0.1:9",
        cwd=tmp_path, timeout=60,
    )  # fmt: skip
    assert run.code == 2, run.text
    assert len(run.error_lines) == 1, run.text
    assert run.error_lines[0].startswith("Error: ") and says in run.error_lines[0], run.text
    assert b"Traceback" not in run.stderr
    assert run.max_rss_mb < MAX_RSS_MB
    assert not out.exists()


def test_a_50_mb_cell_fails_its_row_while_the_others_are_sent(tmp_path: Path) -> None:
    data = tmp_path / "huge.csv"
    with data.open("w", encoding="utf-8", newline="") as handle:
        handle.write("email,nome\nana@exemplo.com.br,Ana\nbia@exemplo.com.br,")
        chunk = "x" * (1 << 20)
        for _ in range(50):
            handle.write(chunk)
        handle.write("\ncaio@exemplo.com.br,Caio\n")
    mapping = write_mapping(tmp_path / "map.yaml", MAPPING)
    out = tmp_path / "out"
    with SandboxThread(SandboxConfig(api_keys=frozenset({KEY}))) as box:
        run = run_cli(*import_args((data, mapping), out, box.url), cwd=tmp_path, timeout=90)
        sent = sorted(e["payload"]["email"] for e in box.snapshot()["accepted"])
    assert run.code == 1, run.text
    assert sent == ["ana@exemplo.com.br", "caio@exemplo.com.br"]
    (failure,) = read_csv(out / "failures.csv")
    assert (failure["row"], failure["error_stage"]) == ("3", "read")
    assert "longer than" in failure["error_message"]
    assert (out / "failures.csv").stat().st_size < 10_000  # the cell is not copied into it
    assert run.max_rss_mb < MAX_RSS_MB
    assert b"Traceback" not in run.stderr


# --- 6. a payload over RD Station's 0.2 MB -----------------------------------------------------


def test_a_row_over_the_body_limit_fails_unsent(tmp_path: Path) -> None:
    data = write_csv(
        tmp_path / "big.csv",
        ["email", "nome", "notas"],
        [
            ["ana@exemplo.com.br", "Ana", "curta"],
            ["bia@exemplo.com.br", "Bia", "n" * 250_000],
            ["caio@exemplo.com.br", "Caio", "curta"],
        ],
    )
    mapping = write_mapping(tmp_path / "map.yaml", MAPPING + '  cf_notas: "notas"\n')
    out = tmp_path / "out"
    with SandboxThread(SandboxConfig(api_keys=frozenset({KEY}))) as box:
        run = run_cli(*import_args((data, mapping), out, box.url), cwd=tmp_path)
        snapshot = box.snapshot()
    assert run.code == 1, run.text
    assert snapshot["requests"] == 2
    assert sorted(e["payload"]["email"] for e in snapshot["accepted"]) == [
        "ana@exemplo.com.br",
        "caio@exemplo.com.br",
    ]
    csv.field_size_limit(max(csv.field_size_limit(), 1 << 20))  # failures.csv keeps the cell
    (failure,) = read_csv(out / "failures.csv")
    assert (failure["row"], failure["error_type"], failure["http_status"]) == ("3", "TOO_LARGE", "")
    assert "0.2 MB" in failure["error_message"]


# --- 7. the mapping cannot run code -----------------------------------------------------------


EVIL_YAML = {
    "on a list": 'conversion_identifier: !!python/object/apply:os.system ["touch {marker}"]\n',
    "on a mapping": (
        "conversion_identifier: !!python/object/apply:os.system {{args: ['touch {marker}']}}\n"
    ),
    "on a text": 'conversion_identifier: !!python/object/apply:os.system "touch {marker}"\n',
    "a name": 'conversion_identifier: !!python/name:os.system "touch {marker}"\n',
}


@pytest.mark.parametrize("where", list(EVIL_YAML))
def test_a_yaml_python_tag_never_runs_and_the_mapping_is_refused(
    tmp_path: Path, files: tuple[Path, Path], where: str
) -> None:
    data, _ = files
    marker = tmp_path / "pwned"
    text = EVIL_YAML[where].format(marker=marker) + 'fields:\n  email: "email"\n'
    mapping = write_mapping(tmp_path / "evil.yaml", text)
    out = tmp_path / "out"
    for command in (["validate"], ["import", "--dry-run"]):
        run = invoke(*command, data, "--mapping", mapping, "--out", out)
        assert run.code == 2, run.text
        assert len(run.error_lines) == 1, run.text
        assert run.error_lines[0].startswith("Error: evil.yaml: line 1: "), run.text
    assert not marker.exists()
    assert not out.exists()


def test_a_yaml_python_tag_on_a_valid_mapping_is_refused_by_name(
    tmp_path: Path, files: tuple[Path, Path]
) -> None:
    data, _ = files
    mapping = write_mapping(
        tmp_path / "evil.yaml",
        'conversion_identifier: "x"\nfields: !!python/object/apply:os.system\n  email: "email"\n',
    )
    run = invoke("validate", data, "--mapping", mapping, "--out", tmp_path / "out")
    assert run.code == 2, run.text
    assert "python/object/apply" in run.text


@pytest.mark.parametrize(
    "template", ["{nome.__class__}", "{nome.__class__.__mro__}", "{nome[0]}", "{0}", "{nome!r}"]
)
def test_a_template_cannot_reach_attributes(
    tmp_path: Path, files: tuple[Path, Path], template: str
) -> None:
    data, _ = files
    mapping = write_mapping(
        tmp_path / "attr.yaml",
        'conversion_identifier: "x"\nfields:\n  email: "email"\n'
        f'  name: {{template: "{template}"}}\n',
    )
    run = invoke("validate", data, "--mapping", mapping, "--out", tmp_path / "out")
    assert run.code == 2, run.text
    assert "attr.yaml" in run.text and "is not a column name" in run.text, run.text
    assert "<class" not in run.text and "Traceback" not in run.text


# --- 8. issue 18: odd input ends in one clear line, and the row comes back whole ------------


def test_api_key_file_that_never_ends_or_blocks_is_refused_at_once(tmp_path: Path) -> None:
    fifo = tmp_path / "key.fifo"
    os.mkfifo(fifo)
    big = tmp_path / "big.key"
    big.write_bytes(b"k" * 5000)
    data, mapping = leads_csv(tmp_path / "leads.csv"), write_mapping(tmp_path / "m.yaml", MAPPING)
    for key_file, says in [
        ("/dev/zero", "--api-key-file /dev/zero is a pipe or a device, not a file"),
        (fifo, f"--api-key-file {fifo} is a pipe or a device, not a file"),
        (big, f"--api-key-file {big} holds more than 4,096 bytes"),
    ]:
        run = run_cli(
            "import", data, "--mapping", mapping, "--out", tmp_path / "out",
            "--api-key-file", key_file, cwd=tmp_path, key=None, timeout=30,
        )  # fmt: skip
        assert run.code == 2, run.text
        assert run.error_lines == [run.error_lines[0]] and says in run.error_lines[0], run.text
        assert run.max_rss_mb < MAX_RSS_MB


@pytest.mark.parametrize("encoding", ["rot13", "base64", "hex", "zlib", "idna"])
def test_an_encoding_that_reads_no_text_is_one_line_and_exit_2(
    tmp_path: Path, files: tuple[Path, Path], encoding: str
) -> None:
    data, mapping = files
    run = invoke("validate", data, "--mapping", mapping, "--encoding", encoding)
    assert run.code == 2, run.text
    assert run.error_lines == [
        f"Error: --encoding {encoding!r} is not a text encoding (it turns bytes into other bytes "
        "or names into other names): try utf-8, cp1252, latin-1 or utf-16"
    ]


def test_a_damaged_xlsx_is_one_line_and_exit_2(tmp_path: Path) -> None:
    path = tmp_path / "leads.xlsx"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("xl/workbook.xml", "<workbook/>")
    raw = bytearray(path.read_bytes())
    raw[raw.rfind(b"PK\x01\x02") + 6] = 0xFF  # "version needed to extract": 25.5
    path.write_bytes(bytes(raw))
    mapping = write_mapping(tmp_path / "map.yaml", MAPPING)
    run = invoke("validate", path, "--mapping", mapping, "--out", tmp_path / "out")
    assert run.code == 2, run.text
    assert run.error_lines == [
        f"Error: {path} is a damaged zip/XLSX file (zip file version 25.5): save it again "
        "from Excel"
    ]


def test_an_input_name_is_escaped_in_every_message(tmp_path: Path) -> None:
    mapping = write_mapping(tmp_path / "map.yaml", MAPPING)
    empty = tmp_path / "a\nb\x1b[2J.csv"
    empty.write_bytes(b"")
    run = invoke("validate", empty, "--mapping", mapping, "--out", tmp_path / "out")
    assert run.code == 2
    assert run.error_lines == [f"Error: {tmp_path}/a\\nb\\x1b[2J.csv is empty: export the "
                               "spreadsheet again"]  # fmt: skip

    good = leads_csv(tmp_path / "leads\x1b]0;x\x07.csv")
    run = invoke("validate", good, "--mapping", mapping, "--out", tmp_path / "out2")
    assert run.code == 0, run.text
    assert b"\x1b" not in run.stdout + run.stderr and b"\x07" not in run.stdout + run.stderr
    assert "Reading leads\\x1b]0;x\\x07.csv: CSV" in run.text
    assert "Checked leads\\x1b]0;x\\x07.csv: 3 rows" in run.text


def test_cells_past_the_header_come_back_in_failures_csv_and_fail_again_unfixed(
    tmp_path: Path,
) -> None:
    data = tmp_path / "leads.csv"
    data.write_text(
        "email,nome\nana@exemplo.com.br,Ana\nbia@exemplo.com.br,Bia,Souza, Jr,=extra\n",
        encoding="utf-8",
    )
    mapping = write_mapping(tmp_path / "map.yaml", MAPPING)
    run = invoke("validate", data, "--mapping", mapping, "--out", tmp_path / "out")
    assert run.code == 1, run.text
    with (tmp_path / "out" / "failures.csv").open(encoding="utf-8-sig", newline="") as handle:
        header, row = list(csv.reader(handle))
    assert header == ["email", "nome", "row", "error_stage", "http_status", "error_type",
                      "error_message", "attempts", "source_row", "row_id"]  # fmt: skip
    assert row[:2] == ["bia@exemplo.com.br", "Bia"]
    assert row[2:4] == ["3", "read"]
    assert row[10:] == ["Souza", " Jr", "'=extra"]  # every cell, after the report's columns

    # Read back as it is, the row fails again for the same reason, with the same cells.
    again = invoke("validate", tmp_path / "out" / "failures.csv", "--mapping", mapping,
                   "--out", tmp_path / "again")  # fmt: skip
    assert again.code == 1, again.text
    with (tmp_path / "again" / "failures.csv").open(encoding="utf-8-sig", newline="") as handle:
        _, row_again = list(csv.reader(handle))
    assert row_again[:2] == row[:2] and row_again[10:] == row[10:]
    assert "this row has" in row_again[6]


def test_report_temporaries_left_by_a_killed_run_are_removed_when_the_next_starts(
    tmp_path: Path, files: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    import importer.pipeline as pipeline

    out = tmp_path / "out"
    out.mkdir(mode=0o700)
    for name in (".successes.csv.tmp", ".failures.csv.tmp", ".summary.json.tmp"):
        (out / name).write_text("ana@exemplo.com.br\n")
    (out / ".notes.tmp").write_text("not ours to remove\n")
    seen: list[set[str]] = []

    async def looking(self, api_url: str, api_key: str) -> pipeline.RunReport:
        seen.append({p.name for p in out.iterdir()})
        return self.report

    monkeypatch.setattr(pipeline._Run, "execute", looking)
    data, mapping = files
    pipeline.run_import(ImportConfig(data, mapping, out_dir=out, dry_run=True))
    assert ".notes.tmp" in seen[0]
    assert not {n for n in seen[0] if n.endswith(".csv.tmp") or n.endswith(".json.tmp")}
