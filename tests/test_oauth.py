"""Issue 13, part 1: signing in with OAuth once, and importing with the app's token.

The sandbox is the other side of every test here (its dialog redirects at once: it has no login
page). The command line runs in click's runner with ``XDG_CONFIG_HOME`` in the test's folder,
except where every byte a process writes is checked for secrets: there it is a real process.
Token endpoints that fail are small servers on 127.0.0.1 run by the test.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import http.server
import io
import json
import os
import socket
import stat
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import aiohttp
import pytest
from click.testing import CliRunner

from helpers import ROOT, read_csv, read_summary, write_csv, write_mapping
from importer import oauth
from importer.cli import cli
from importer.client import conversion_body
from importer.errors import InputError
from importer.oauth import login as login_module
from importer.oauth.keeper import OAuthTransport, TokenKeeper
from importer.pipeline import ImportConfig, Tuning, run_import
from importer.records import Failed, FailureKind, Sent
from importer.sandbox import SandboxConfig, SandboxThread, running_sandbox

CLIENT_ID = "app-7f3c21"
# Distinctive, and with characters every URL encoder writes differently.
CLIENT_SECRET = "cs-SECRET-51b8/e+9=Q%x"
CLIENT_ENV = {"RDSTATION_CLIENT_ID": CLIENT_ID, "RDSTATION_CLIENT_SECRET": CLIENT_SECRET}

MAPPING = """\
conversion_identifier: "oauth-teste"
fields:
  email: "email"
  name: "nome"
"""


# --- fixtures and helpers ---------------------------------------------------------------------


@pytest.fixture
def config_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh config folder, and no RDSTATION_* setting from the machine running the tests."""
    for name in list(os.environ):
        if name.startswith("RDSTATION_") or name in ("BROWSER", "DISPLAY", "WAYLAND_DISPLAY"):
            monkeypatch.delenv(name)
    home = tmp_path / "config"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home))
    return home


def token_path(home: Path) -> Path:
    return home / "rd-importer" / "oauth.json"


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    return leads(tmp_path / "leads.csv", 3), write_mapping(tmp_path / "map.yaml", MAPPING)


def leads(path: Path, n: int) -> Path:
    rows = [[f"pessoa{i}@exemplo.com.br", f"Pessoa {i}"] for i in range(1, n + 1)]
    return write_csv(path, ["email", "nome"], rows)


def import_args(files: tuple[Path, Path], out: Path, url: str, *more: str) -> list[str]:
    data, mapping = files
    return ["import", str(data), "--mapping", str(mapping), "--out", str(out), "--api-url", url,
            "--rate", "0", "--concurrency", "2", "--auth", "oauth", *more]  # fmt: skip


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


def follow_dialog(url: str) -> str:
    """Where the authorisation dialog sends the browser: its redirect, read, not followed."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirects)
    try:
        opener.open(url, timeout=10)
    except urllib.error.HTTPError as answer:
        assert answer.code == 302, answer.code
        return str(answer.headers["Location"])
    raise AssertionError("the dialog did not redirect")


def post(url: str, data: bytes = b"", headers: dict[str, str] | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=data, headers=headers or {}, method="POST")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=10) as answer:
            return answer.status, json.loads(answer.read() or b"{}")
    except urllib.error.HTTPError as answer:
        return answer.code, json.loads(answer.read() or b"{}")


@pytest.fixture
def dialogs(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every authorisation URL a sign-in built (and printed), as the user would see it."""
    seen: list[str] = []
    real = login_module.authorisation_url

    def spy(*args: str) -> str:
        seen.append(real(*args))
        return seen[-1]

    monkeypatch.setattr(login_module, "authorisation_url", spy)
    return seen


class PastesTheRedirect(io.RawIOBase):
    """stdin of ``auth login --no-browser``, typed by a user who opened the URL the command
    printed and copied the address the browser was sent to. ``edit`` spoils the first ones."""

    def __init__(self, dialogs: list[str], *edits: Callable[[str], str]) -> None:
        self.dialogs = dialogs
        self.edits = list(edits)
        self.pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray) -> int:
        if not self.pending:
            if not self.dialogs:
                return 0
            address = follow_dialog(self.dialogs[-1])
            if self.edits:
                address = self.edits.pop(0)(address)
            self.pending = (address + "\n").encode()
        size = min(len(buffer), len(self.pending))
        buffer[:size], self.pending = self.pending[:size], self.pending[size:]
        return size


def pasting(dialogs: list[str], *edits: Callable[[str], str]) -> io.BufferedReader:
    return io.BufferedReader(PastesTheRedirect(dialogs, *edits))


def sign_in_to(url: str) -> oauth.Tokens:
    """A sign-in to the sandbox at ``url``, saved in the token file."""
    tokens = asyncio.run(oauth.sign_in_headless(url)).load()
    oauth.TokenFile().save(tokens)
    return tokens


def expire(tokens: oauth.Tokens, **changes: object) -> oauth.Tokens:
    """The same sign-in, its access token expired by the importer's clock (the server may still
    take it), saved in the token file."""
    tokens = dataclasses.replace(tokens, expires_at=time.time() - 1, **changes)
    oauth.TokenFile().save(tokens)
    return tokens


@contextlib.contextmanager
def stub_server(status: int, body: str, content_type: str = "text/html") -> Iterator[str]:
    """Answers every request with ``status`` and ``body``, where ``{secret}`` becomes the
    request's client secret, ``{body}`` its whole body and ``{authorization}`` its
    Authorization header (as a careless error page would echo them)."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            try:
                secret = json.loads(raw).get("client_secret", "")
            except ValueError:
                secret = ""
            data = (
                body.replace("{secret}", secret)
                .replace("{body}", raw.decode("utf-8", "replace"))
                .replace("{authorization}", self.headers.get("Authorization", ""))
                .encode()
            )
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST  # the account's fields, read before the rows are sent

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


# --- the whole flow, as a user meets it ---------------------------------------------------------


def test_the_whole_flow_from_a_fresh_config_folder(
    runner: CliRunner, config_home: Path, dialogs: list[str], tmp_path: Path
) -> None:
    """login (pasting the redirect), status, an import whose token expires several times while
    it runs, logout. RD Station's short-lived tokens: 0.8 s here, 24 h there."""
    data = leads(tmp_path / "leads.csv", 40)
    mapping = write_mapping(tmp_path / "map.yaml", MAPPING)
    config = SandboxConfig(
        oauth_client=(CLIENT_ID, CLIENT_SECRET), token_lifetime=0.8, latency=0.1, seed=1
    )
    with SandboxThread(config) as box:
        login = runner.invoke(
            cli,
            ["auth", "login", "--no-browser", "--api-url", box.url],
            input=pasting(dialogs),
            env=CLIENT_ENV,
        )
        assert login.exit_code == 0, login.output
        assert len(dialogs) == 1 and dialogs[0].startswith(f"{box.url}/auth/dialog?client_id=")
        assert "redirect_uri=http%3A%2F%2Flocalhost%3A53682%2Fcallback" in dialogs[0]
        assert dialogs[0] in login.stderr  # printed for the user to open
        path = token_path(config_home)
        assert login.stdout.startswith(
            f"Signed in: app {CLIENT_ID} on {box.url}. The tokens are in {path}"
        )
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700

        status = runner.invoke(cli, ["auth", "status"])
        assert status.exit_code == 0, status.output
        assert status.stdout.startswith(f"Signed in: app {CLIENT_ID} on {box.url}, since ")

        out = tmp_path / "out"
        imported = runner.invoke(cli, import_args((data, mapping), out, box.url))
        assert imported.exit_code == 0, imported.output
        assert imported.stdout.startswith("Imported leads.csv: 40 rows sent, 0 failed")
        snapshot = box.snapshot()
        assert len(snapshot["accepted"]) == 40
        # Renewed before expiring. (A request slower than the 80 ms margin of such short tokens
        # may meet a 401 on a loaded machine: it is then renewed and sent again, also fine.)
        assert snapshot["statuses"]["200"] == 40 and set(snapshot["statuses"]) <= {"200", "401"}
        renewals = snapshot["oauth"]["grants"]["refresh_token"]
        assert renewals >= 2  # the run lasts over 2 s: the 0.8 s token is renewed as it goes
        assert sorted(p.name for p in path.parent.iterdir()) == ["oauth.json", "oauth.json.lock"]
        assert stat.S_IMODE(path.stat().st_mode) == 0o600

        again = runner.invoke(cli, import_args((data, mapping), out, box.url))
        assert again.exit_code == 0, again.output  # the saved refresh token is the live one
        assert "40 skipped" in again.stdout

        logout = runner.invoke(cli, ["auth", "logout"])
        assert logout.exit_code == 0, logout.output
        assert (
            logout.stdout
            == f"Signed out: RD Station revoked the app's tokens, and {path} is deleted.\n"
        )
        assert list(path.parent.iterdir()) == []
        assert box.snapshot()["oauth"]["revoked"] == 2

        after = runner.invoke(cli, ["auth", "status"])
        assert (after.exit_code, after.stdout) == (
            1,
            "Not signed in: run `rd-importer auth login`.\n",
        )
    everything = login.output + status.output + imported.output + again.output + logout.output
    assert CLIENT_SECRET not in everything


def test_login_catches_the_redirect_on_loopback_like_a_browser(
    runner: CliRunner, config_home: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """No --no-browser: the command listens on the callback URL; the 'browser' follows the
    dialog's redirect to it. The client id and secret come from a 0600 file here."""
    port = free_port()
    callback = f"http://127.0.0.1:{port}/callback"
    seen: dict[str, object] = {}

    def browser(url: str) -> bool:
        def visit() -> None:  # what a browser does: follow the redirect, show the page
            opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
            with opener.open(url, timeout=10) as page:
                seen.update(url=page.url, status=page.status, text=page.read().decode())

        threading.Thread(target=visit).start()
        return True

    monkeypatch.setattr(oauth, "open_in_browser", browser)
    client_file = tmp_path / "rd-app.env"
    client_file.write_text(
        f"# from the app's page\nRDSTATION_CLIENT_ID={CLIENT_ID}\n"
        f"RDSTATION_CLIENT_SECRET='{CLIENT_SECRET}'\n"
    )
    client_file.chmod(0o600)
    config = SandboxConfig(
        oauth_client=(CLIENT_ID, CLIENT_SECRET), redirect_uris=frozenset({callback})
    )
    with SandboxThread(config) as box:
        result = runner.invoke(
            cli,
            ["auth", "login", "--api-url", box.url, "--redirect-uri", callback,
             "--client-file", str(client_file)],
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        assert "Your browser was opened at" in result.stderr
        assert f"Waiting for RD Station to send the browser back to {callback}" in result.stderr
        assert result.stdout.startswith(f"Signed in: app {CLIENT_ID} on {box.url}.")
        assert box.snapshot()["oauth"]["grants"] == {"code": 1}
    assert seen["status"] == 200 and "signed in" in str(seen["text"])
    assert str(seen["url"]).startswith(callback + "?code=")
    assert oauth.TokenFile().load().client_id == CLIENT_ID


def test_a_pasted_address_of_another_sign_in_is_refused_and_asked_again(
    runner: CliRunner, config_home: Path, dialogs: list[str]
) -> None:
    def other_state(address: str) -> str:
        return address.replace("state=", "state=x")

    with SandboxThread(SandboxConfig()) as box:
        result = runner.invoke(
            cli,
            ["auth", "login", "--no-browser", "--api-url", box.url],
            input=pasting(dialogs, other_state),
            env=CLIENT_ENV,
        )
    assert result.exit_code == 0, result.output
    assert "its state does not match" in result.stderr
    assert "Paste it again:" in result.stderr


def test_login_gives_up_after_its_timeout_with_one_line(
    runner: CliRunner, config_home: Path
) -> None:
    callback = f"http://127.0.0.1:{free_port()}/callback"
    started = time.monotonic()
    result = runner.invoke(
        cli, ["auth", "login", "--redirect-uri", callback, "--timeout", "1"], env=CLIENT_ENV
    )
    assert result.exit_code == 3, result.output
    assert "Open this address in a browser" in result.stderr  # no browser here: it says so
    assert result.stderr.splitlines()[-1] == (
        f"Error: no sign-in came back to {callback} within 1 s: open the authorisation URL in "
        "a browser on this computer and allow the app (or add --no-browser to paste the "
        "address instead), then run the command again"
    )
    assert time.monotonic() - started < 10
    assert not token_path(config_home).exists()


# --- the callback server --------------------------------------------------------------------


async def test_the_callback_server_answers_400_without_the_right_state_and_keeps_waiting() -> None:
    port = free_port()
    callback = f"http://127.0.0.1:{port}/callback"
    async with (
        oauth.CallbackServer(callback, "the-state") as server,
        aiohttp.ClientSession() as browser,
    ):
        waiting = asyncio.create_task(server.code(10))
        for method, url, status in [
            ("GET", f"{callback}?code=c1&state=another", 400),
            ("GET", f"{callback}?code=c1", 400),
            ("GET", f"{callback}?state=the-state", 400),
            ("GET", f"http://127.0.0.1:{port}/elsewhere?code=c1&state=the-state", 404),
            ("POST", f"{callback}?code=c1&state=the-state", 405),
        ]:
            async with browser.request(method, url) as answer:
                assert answer.status == status, (method, url)
        assert not waiting.done()
        async with browser.get(f"{callback}?code=the-code&state=the-state") as answer:
            assert answer.status == 200
        assert await waiting == "the-code"
        async with browser.get(f"{callback}?code=later&state=the-state") as answer:
            assert answer.status == 410  # one shot


async def test_the_callback_server_gives_up_after_its_timeout() -> None:
    callback = f"http://127.0.0.1:{free_port()}/callback"
    async with oauth.CallbackServer(callback, "s") as server:
        with pytest.raises(oauth.SignInError, match=r"no sign-in came back to .* within 0.2 s"):
            await server.code(0.2)


def test_a_callback_url_off_this_computer_is_refused_unless_pasted() -> None:
    for uri in ("http://192.0.2.1:53682/callback", "https://localhost:53682/callback",
                "http://localhost/callback", "http://example.com:53682/callback"):  # fmt: skip
        with pytest.raises(InputError, match="only on this computer"):
            oauth.CallbackServer(uri, "s")


def test_a_taken_callback_port_is_one_line_and_exit_2(runner: CliRunner, config_home: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        callback = f"http://127.0.0.1:{taken.getsockname()[1]}/callback"
        result = runner.invoke(cli, ["auth", "login", "--redirect-uri", callback], env=CLIENT_ENV)
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith(f"Error: --redirect-uri {callback}: cannot listen on port")


# --- client id and secret: never on the command line ----------------------------------------


def test_the_client_secret_is_not_a_command_line_option(
    runner: CliRunner, config_home: Path
) -> None:
    result = runner.invoke(cli, ["auth", "login", "--client-secret", CLIENT_SECRET])
    assert result.exit_code == 2
    assert "never taken on the command line" in result.stderr
    assert CLIENT_SECRET not in result.output


def test_without_client_credentials_login_says_where_to_put_them(
    runner: CliRunner, config_home: Path
) -> None:
    result = runner.invoke(cli, ["auth", "login"], env={"RDSTATION_CLIENT_ID": CLIENT_ID})
    assert result.exit_code == 2
    assert result.stderr.startswith("Error: RDSTATION_CLIENT_SECRET not set (looked in ")


def test_a_client_file_others_can_read_is_refused(
    runner: CliRunner, config_home: Path, tmp_path: Path
) -> None:
    client_file = tmp_path / "app.env"
    client_file.write_text(f"RDSTATION_CLIENT_ID={CLIENT_ID}\nRDSTATION_CLIENT_SECRET=x\n")
    client_file.chmod(0o644)
    result = runner.invoke(cli, ["auth", "login", "--client-file", str(client_file)])
    assert result.exit_code == 2
    assert "can be read or changed by other users" in result.stderr


def test_a_wrong_client_secret_is_refused_by_rd_station_with_what_to_check(
    runner: CliRunner, config_home: Path, dialogs: list[str]
) -> None:
    config = SandboxConfig(oauth_client=(CLIENT_ID, "the-real-secret"))
    with SandboxThread(config) as box:
        result = runner.invoke(
            cli,
            ["auth", "login", "--no-browser", "--api-url", box.url],
            input=pasting(dialogs),
            env=CLIENT_ENV,
        )
    assert result.exit_code == 3, result.output
    assert result.stderr.splitlines()[-1] == (
        "Error: RD Station refused to grant the sign-in (ACCESS_DENIED: Wrong credentials "
        "provided.): check RDSTATION_CLIENT_ID and RDSTATION_CLIENT_SECRET against the app's "
        "page in RD Station"
    )
    assert CLIENT_SECRET not in result.output


# --- the token file ----------------------------------------------------------------------------


def test_without_a_sign_in_an_oauth_import_exits_2_before_reading(
    runner: CliRunner, config_home: Path, files: tuple[Path, Path], tmp_path: Path
) -> None:
    result = runner.invoke(cli, import_args(files, tmp_path / "out", "https://api.rd.services"))
    assert result.exit_code == 2
    assert result.stderr == "Error: not signed in: run `rd-importer auth login`\n"
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o620])
def test_a_token_file_others_can_read_is_refused(
    runner: CliRunner, config_home: Path, files: tuple[Path, Path], tmp_path: Path, mode: int
) -> None:
    with SandboxThread(SandboxConfig()) as box:
        sign_in_to(box.url)
        path = token_path(config_home)
        path.chmod(mode)
        result = runner.invoke(cli, import_args(files, tmp_path / "out", box.url))
        status = runner.invoke(cli, ["auth", "status"])
        assert box.snapshot()["requests"] == 0
    for refused in (result, status):
        assert refused.exit_code == 2
        assert refused.stderr.startswith(f"Error: {path} can be read or changed by other users")
        assert f"run 'chmod 600 {path}'" in refused.stderr


def test_a_sign_in_to_another_api_address_is_refused(
    runner: CliRunner, config_home: Path, files: tuple[Path, Path], tmp_path: Path
) -> None:
    with SandboxThread(SandboxConfig()) as box:
        sign_in_to(box.url)
        result = runner.invoke(cli, import_args(files, tmp_path / "out", "https://api.rd.services"))
    assert result.exit_code == 2
    assert result.stderr == (
        f"Error: signed in to {box.url}, but the run sends to https://api.rd.services: run "
        "`rd-importer auth login --api-url https://api.rd.services`, or import with "
        f"--api-url {box.url}\n"
    )


def test_a_token_file_that_is_not_a_sign_in_is_refused(
    runner: CliRunner, config_home: Path, files: tuple[Path, Path], tmp_path: Path
) -> None:
    path = token_path(config_home)
    path.parent.mkdir(parents=True)
    path.write_text('{"version": 1, "access_token": "x"}')
    path.chmod(0o600)
    result = runner.invoke(cli, import_args(files, tmp_path / "out", "https://api.rd.services"))
    assert result.exit_code == 2
    assert result.stderr == (
        f"Error: {path}: not a sign-in rd-importer can use; run `rd-importer auth login` again\n"
    )


# --- renewing: one renewal for every worker --------------------------------------------------


def bodies(n: int) -> list[bytes]:
    return [
        conversion_body({"conversion_identifier": "t", "email": f"p{i}@exemplo.com.br"})
        for i in range(n)
    ]


async def test_eight_workers_on_an_expired_token_renew_it_once() -> None:
    async with running_sandbox(SandboxConfig(seed=1)) as box:
        store = await oauth.sign_in_headless(box.url)
        store.save(dataclasses.replace(store.load(), expires_at=time.time() - 1))
        keeper = TokenKeeper(store, box.url)
        async with OAuthTransport(box.url, keeper, max_connections=8) as transport:
            results = await asyncio.gather(*map(transport.post_conversion, bodies(8)))
        assert all(isinstance(r, Sent) and r.event_uuid for r in results), results
        assert keeper.renewals == 1
        assert box.snapshot()["oauth"]["grants"] == {"code": 1, "refresh_token": 1}


async def test_eight_workers_refused_with_401_at_once_renew_once_and_send_again() -> None:
    """The token looked alive to the importer, but RD Station refused it (revoked): each of
    the 8 requests gets a 401, one renewal follows, and each row is sent again once."""
    async with running_sandbox(SandboxConfig(seed=1)) as box:
        store = await oauth.sign_in_headless(box.url)
        revoked = store.load().access_token
        async with aiohttp.ClientSession() as http:
            await http.post(f"{box.url}/auth/revoke", data={"token": revoked})
        keeper = TokenKeeper(store, box.url)
        async with OAuthTransport(box.url, keeper, max_connections=8) as transport:
            results = await asyncio.gather(*map(transport.post_conversion, bodies(8)))
        assert all(isinstance(r, Sent) for r in results), results
        assert keeper.renewals == 1
        snapshot = box.snapshot()
        assert snapshot["oauth"]["grants"] == {"code": 1, "refresh_token": 1}
        assert snapshot["statuses"] == {"401": 8, "200": 8}
        assert len(snapshot["accepted"]) == 8


async def test_the_renewed_tokens_are_saved_before_they_are_used(config_home: Path) -> None:
    async with running_sandbox(SandboxConfig(seed=1)) as box:
        store = oauth.TokenFile()
        store.save(
            dataclasses.replace((await oauth.sign_in_headless(box.url)).load(), expires_at=0)
        )
        keeper = TokenKeeper(store, box.url)
        sent_with: list[str] = []
        async with OAuthTransport(box.url, keeper) as transport:
            real = transport._client_for

            async def spy(token: str):
                sent_with.append(token)
                assert store.load().access_token == token  # on disk before it is used
                return await real(token)

            transport._client_for = spy
            assert isinstance(await transport.post_conversion(bodies(1)[0]), Sent)
        saved = store.load()
        assert sent_with == [saved.access_token]
        assert saved.expires_at > time.time()


async def test_a_renewal_that_fails_while_the_token_lives_keeps_sending(tmp_path: Path) -> None:
    """RD Station's token endpoint is down a few minutes before the token expires: rows keep
    going with the token; once it has expired, the run stops (resumably)."""
    now = [time.time()]
    async with running_sandbox(SandboxConfig(seed=1)) as box:
        tokens = (await oauth.sign_in_headless(box.url)).load()
        with stub_server(503, "<title>503 Service Unavailable</title>") as down:
            store = oauth.MemoryTokens(
                dataclasses.replace(tokens, token_url=f"{down}/auth/token", expires_at=now[0] + 60)
            )
            keeper = TokenKeeper(store, box.url, clock=lambda: now[0])
            async with OAuthTransport(box.url, keeper) as transport:
                assert isinstance(await transport.post_conversion(bodies(1)[0]), Sent)
                now[0] += 59.5  # 0.5 s left: due for renewal, which fails
                assert isinstance(await transport.post_conversion(bodies(2)[1]), Sent)
                now[0] += 1  # expired
                stopped = await transport.post_conversion(bodies(3)[2])
    assert isinstance(stopped, Failed) and stopped.kind is FailureKind.FATAL
    assert stopped.message == (
        f"{down}/auth/token answered HTTP 503 (a non-JSON body: 503 Service Unavailable); "
        "try again later"
    )
    assert keeper.renewals == 0


# --- a renewal RD Station refuses, and token endpoints that fail ----------------------------


def test_a_refused_renewal_stops_the_run_resumably_and_a_new_sign_in_resumes_it(
    runner: CliRunner, config_home: Path, files: tuple[Path, Path], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    with SandboxThread(SandboxConfig(seed=1)) as box:
        sign_in_to(box.url)
        assert post(f"{box.url}/_sandbox/revoke-tokens") == (200, {"revoked": 2})  # app removed
        stopped = runner.invoke(cli, import_args(files, out, box.url))
        assert stopped.exit_code == 3, stopped.output
        assert stopped.stdout.splitlines()[:2] == [
            "Stopped: RD Station refused to renew the sign-in (INVALID_REFRESH_TOKEN: The "
            "provided refresh token is invalid or was revoked.): the app was removed from the "
            "account or its access revoked; run `rd-importer auth login` again.",
            "0 rows sent, 0 failed, 3 left to send. Run the same command to resume.",
        ]
        assert read_summary(out)["aborted_reason"].startswith("RD Station refused to renew")
        assert "Traceback" not in stopped.output

        sign_in_to(box.url)
        resumed = runner.invoke(cli, import_args(files, out, box.url))
        assert resumed.exit_code == 0, resumed.output
        assert len(box.snapshot()["accepted"]) == 3
    assert len(read_csv(out / "successes.csv")) == 3


TOKEN_ENDPOINT_FAILURES = {
    "HTTP 503 page": (
        lambda: stub_server(503, "<html><title>503 Service Unavailable</title></html>"),
        "{url}/auth/token answered HTTP 503 (a non-JSON body: 503 Service Unavailable); "
        "try again later",
    ),
    "HTTP 200 garbage echoing the secret": (
        lambda: stub_server(200, "ok {secret} ok", "text/plain"),
        "{url}/auth/token answered HTTP 200 without the tokens RD Station sends (a non-JSON "
        "body: ok *** ok); check RDSTATION_AUTH_TOKEN_URL, or try again later",
    ),
    "HTTP 200 JSON without tokens": (
        lambda: stub_server(200, '{"access_token": "a b"}', "application/json"),
        "{url}/auth/token answered HTTP 200 without the tokens RD Station sends (a JSON body "
        "without the tokens); check RDSTATION_AUTH_TOKEN_URL, or try again later",
    ),
    "HTTP 429 from the gateway": (
        lambda: stub_server(429, '{"message": "API rate limit exceeded"}', "application/json"),
        "{url}/auth/token answered HTTP 429 (API rate limit exceeded); try again later",
    ),
    "unreachable": (
        lambda: contextlib.nullcontext(f"http://127.0.0.1:{free_port()}"),
        "could not connect to {url}/auth/token (connection refused); try again later",
    ),
}


@pytest.mark.parametrize("name", list(TOKEN_ENDPOINT_FAILURES))
def test_a_token_endpoint_that_fails_stops_the_run_with_one_line(
    runner: CliRunner, config_home: Path, files: tuple[Path, Path], tmp_path: Path, name: str
) -> None:
    broken, says = TOKEN_ENDPOINT_FAILURES[name]
    out = tmp_path / "out"
    with SandboxThread(SandboxConfig(seed=1)) as box, broken() as url:
        expire(sign_in_to(box.url), token_url=f"{url}/auth/token")
        result = runner.invoke(cli, import_args(files, out, box.url))
        assert box.snapshot()["requests"] == 0
    assert result.exit_code == 3, result.output
    assert result.stdout.splitlines()[0] == f"Stopped: {says.format(url=url)}."
    assert "Traceback" not in result.output and CLIENT_SECRET not in result.output
    assert read_summary(out)["left_to_send"] == 3


@pytest.mark.parametrize("name", [n for n in TOKEN_ENDPOINT_FAILURES if "JSON" not in n])
def test_a_token_endpoint_that_fails_at_login_is_one_line_and_exit_3(
    runner: CliRunner, config_home: Path, dialogs: list[str], name: str
) -> None:
    broken, says = TOKEN_ENDPOINT_FAILURES[name]
    with SandboxThread(SandboxConfig()) as box, broken() as url:
        result = runner.invoke(
            cli,
            ["auth", "login", "--no-browser", "--api-url", box.url],
            input=pasting(dialogs),
            env={**CLIENT_ENV, "RDSTATION_AUTH_TOKEN_URL": f"{url}/auth/token"},
        )
    assert result.exit_code == 3, result.output
    assert result.stderr.splitlines()[-1] == f"Error: {says.format(url=url)}"
    assert CLIENT_SECRET not in result.output
    assert not token_path(config_home).exists()


def test_logout_when_rd_station_cannot_be_reached_still_deletes_and_says_so(
    runner: CliRunner, config_home: Path
) -> None:
    with SandboxThread(SandboxConfig()) as box:
        tokens = sign_in_to(box.url)
    oauth.TokenFile().save(
        dataclasses.replace(tokens, revoke_url=f"http://127.0.0.1:{free_port()}/auth/revoke")
    )
    result = runner.invoke(cli, ["auth", "logout"])
    assert result.exit_code == 1
    assert result.stdout == f"Signed out here: {token_path(config_home)} is deleted.\n"
    assert result.stderr.startswith("Warning: RD Station could not be told (could not connect to ")
    assert "the app's tokens may still be valid. To revoke them, remove the app" in result.stderr
    assert not token_path(config_home).exists()


# --- imports that need no sign-in -----------------------------------------------------------


def test_the_built_in_sandbox_signs_itself_in(
    runner: CliRunner, config_home: Path, files: tuple[Path, Path], tmp_path: Path
) -> None:
    data, mapping = files
    result = runner.invoke(
        cli,
        ["import", str(data), "--mapping", str(mapping), "--out", str(tmp_path / "out"),
         "--sandbox", "--auth", "oauth", "--rate", "0"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("Imported leads.csv: 3 rows sent")
    assert not config_home.exists()  # nothing saved: the sign-in lived as long as the run


def test_validate_with_oauth_needs_the_sign_in_or_the_sandbox(
    runner: CliRunner, config_home: Path, files: tuple[Path, Path], tmp_path: Path
) -> None:
    # It reads the account's fields (tests/test_account_fields.py), as the import would.
    data, mapping = files
    args = ["validate", str(data), "--mapping", str(mapping), "--out", str(tmp_path / "o"),
            "--auth", "oauth"]  # fmt: skip
    result = runner.invoke(cli, args)
    assert result.exit_code == 2, result.output
    assert result.stderr == "Error: not signed in: run `rd-importer auth login`\n"
    result = runner.invoke(cli, [*args, "--sandbox"])
    assert result.exit_code == 0, result.output


def test_an_api_key_file_beside_auth_oauth_is_a_usage_error(
    runner: CliRunner, config_home: Path, files: tuple[Path, Path], tmp_path: Path
) -> None:
    key_file = tmp_path / "key"
    key_file.write_text("k")
    args = import_args(
        files, tmp_path / "out", "https://api.rd.services", "--api-key-file", str(key_file)
    )
    result = runner.invoke(cli, args)
    assert result.exit_code == 2
    assert "--api-key-file goes with --auth apikey" in result.stderr


def test_watch_imports_with_oauth(runner: CliRunner, config_home: Path, tmp_path: Path) -> None:
    inbox, out = tmp_path / "inbox", tmp_path / "watch-out"
    inbox.mkdir()
    leads(inbox / "drop.csv", 2)
    mapping = write_mapping(tmp_path / "map.yaml", MAPPING)
    args = ["watch", str(inbox), "--mapping", str(mapping), "--out", str(out), "--once",
            "--settle", "0", "--rate", "0", "--auth", "oauth"]  # fmt: skip
    not_signed_in = runner.invoke(cli, [*args, "--api-url", "https://api.rd.services"])
    assert not_signed_in.exit_code == 2
    assert "not signed in" in not_signed_in.stderr
    with SandboxThread(SandboxConfig(seed=1)) as box:
        sign_in_to(box.url)
        result = runner.invoke(cli, [*args, "--api-url", box.url])
        assert result.exit_code == 0, result.output
        assert len(box.snapshot()["accepted"]) == 2


def test_a_folder_started_with_the_api_key_is_resumed_with_oauth(
    runner: CliRunner, config_home: Path, files: tuple[Path, Path], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    with SandboxThread(SandboxConfig(seed=1)) as box:
        args = import_args(files, out, box.url)
        first = runner.invoke(
            cli, [*args[:-2], "--auth", "apikey", "--limit", "1"], env={"RDSTATION_API_KEY": "k"}
        )
        assert first.exit_code == 0, first.output
        sign_in_to(box.url)
        rest = runner.invoke(cli, args)
        assert rest.exit_code == 0, rest.output
        assert "2 rows sent, 0 failed, 1 skipped" in rest.stdout
        assert len(box.snapshot()["accepted"]) == 3


def test_run_import_takes_auth_from_python(
    config_home: Path, files: tuple[Path, Path], tmp_path: Path
) -> None:
    data, mapping = files
    with SandboxThread(SandboxConfig(seed=1)) as box:
        sign_in_to(box.url)
        report = run_import(
            ImportConfig(input_path=data, mapping_path=mapping, out_dir=tmp_path / "out",
                         api_url=box.url, auth="oauth", rate=0, tuning=Tuning(retry_wait=False))
        )  # fmt: skip
        assert (report.succeeded, report.failed) == (3, 0)
        assert box.snapshot()["requests"] == 3


# --- the sandbox's OAuth endpoints, as RD Station documents them -----------------------------


@contextlib.asynccontextmanager
async def oauth_sandbox(**config: object):
    """A sandbox on a clock the test moves, an HTTP client, and the sandbox's URL."""
    now = [1000.0]
    settings = SandboxConfig(oauth_client=(CLIENT_ID, CLIENT_SECRET), seed=1, **config)
    async with (
        running_sandbox(settings, clock=lambda: now[0]) as box,
        aiohttp.ClientSession() as http,
    ):
        yield box, http, now


async def _code(http: aiohttp.ClientSession, url: str, state: str = "s1") -> str:
    dialog = f"{url}/auth/dialog?client_id={CLIENT_ID}&redirect_uri=http://localhost:53682/callback&state={state}"
    async with http.get(dialog, allow_redirects=False) as answer:
        assert answer.status == 302
        location = answer.headers["Location"]
    assert location.startswith("http://localhost:53682/callback?code=")
    assert location.endswith(f"&state={state}")
    return location.split("code=")[1].split("&")[0]


async def _token(
    http: aiohttp.ClientSession, url: str, grant: str, **body: str
) -> tuple[int, dict]:
    body = {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, **body}
    async with http.post(f"{url}/auth/token?token_by={grant}", json=body) as answer:
        return answer.status, await answer.json()


async def _event(
    http: aiohttp.ClientSession, url: str, token: str, payload: dict
) -> tuple[int, dict]:
    async with http.post(
        f"{url}/platform/events?event_type=conversion",
        data=conversion_body(payload),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    ) as answer:
        return answer.status, await answer.json()


def shape1(error_type: str, message: str) -> dict:
    return {"errors": {"error_type": error_type, "error_message": message}}


VALID = {"conversion_identifier": "c", "email": "ana@exemplo.com.br"}
INVALID_TOKEN = shape1("UNAUTHORIZED", "Invalid token.")
WRONG_CREDENTIALS = shape1("ACCESS_DENIED", "Wrong credentials provided.")
EXPIRED_CODE_GRANT = shape1("EXPIRED_CODE_GRANT", "The authorization code grant has expired.")
INVALID_REFRESH_TOKEN = shape1(
    "INVALID_REFRESH_TOKEN", "The provided refresh token is invalid or was revoked."
)


async def test_sandbox_codes_are_single_use_and_expire() -> None:
    async with oauth_sandbox(code_lifetime=60) as (box, http, now):
        code = await _code(http, box.url)
        status, granted = await _token(http, box.url, "code", code=code)
        assert status == 200 and set(granted) == {"access_token", "expires_in", "refresh_token"}
        assert granted["expires_in"] == 86400
        assert await _token(http, box.url, "code", code=code) == (401, EXPIRED_CODE_GRANT)
        late = await _code(http, box.url)
        now[0] += 61
        assert (await _token(http, box.url, "code", code=late))[0] == 401
        wrong = await _token(
            http, box.url, "code", code=await _code(http, box.url), client_secret="x"
        )
        assert wrong == (401, WRONG_CREDENTIALS)
        assert box.snapshot()["oauth"]["refused"] == {"EXPIRED_CODE_GRANT": 2, "ACCESS_DENIED": 1}


async def test_sandbox_dialog_refuses_another_app_and_an_unregistered_callback() -> None:
    registered = frozenset({"http://localhost:53682/callback"})
    async with oauth_sandbox(redirect_uris=registered) as (box, http, _):
        for query in (
            "client_id=other&redirect_uri=http://localhost:53682/callback",
            f"client_id={CLIENT_ID}&redirect_uri=http://localhost:9999/callback",
        ):
            async with http.get(f"{box.url}/auth/dialog?{query}", allow_redirects=False) as answer:
                assert answer.status == 400


async def test_sandbox_events_take_a_live_bearer_token_and_answer_as_conversions_do() -> None:
    async with oauth_sandbox(token_lifetime=10) as (box, http, now):
        _, granted = await _token(http, box.url, "code", code=await _code(http, box.url))
        token = granted["access_token"]
        status, sent = await _event(http, box.url, token, VALID)
        assert status == 200 and sent["event_uuid"]
        bad = {"conversion_identifier": "c", "email": "nope", "tags": "Um"}
        by_key = await http.post(
            f"{box.url}/platform/conversions?api_key=k",
            data=conversion_body(bad),
            headers={"Content-Type": "application/json"},
        )
        assert await _event(http, box.url, token, bad) == (by_key.status, await by_key.json())
        assert by_key.status == 400
        assert await _event(http, box.url, "not-a-token", VALID) == (401, INVALID_TOKEN)
        now[0] += 10
        assert await _event(http, box.url, token, VALID) == (401, INVALID_TOKEN)  # expired


async def test_sandbox_refresh_gives_a_new_refresh_token_and_retires_the_old() -> None:
    async with oauth_sandbox() as (box, http, _):
        _, first = await _token(http, box.url, "code", code=await _code(http, box.url))
        status, second = await _token(
            http, box.url, "refresh_token", refresh_token=first["refresh_token"]
        )
        assert status == 200 and second["refresh_token"] != first["refresh_token"]
        assert (await _event(http, box.url, second["access_token"], VALID))[0] == 200
        again = await _token(http, box.url, "refresh_token", refresh_token=first["refresh_token"])
        assert again == (401, INVALID_REFRESH_TOKEN)
        assert box.snapshot()["oauth"]["grants"] == {"code": 1, "refresh_token": 1}


async def test_sandbox_revokes_tokens_one_by_one_or_all_as_removing_the_app_does() -> None:
    async with oauth_sandbox() as (box, http, _):
        _, granted = await _token(http, box.url, "code", code=await _code(http, box.url))
        revoke = {"token": granted["access_token"], "token_type_hint": "access_token"}
        async with http.post(f"{box.url}/auth/revoke", data=revoke) as answer:
            assert answer.status == 200
        assert await _event(http, box.url, granted["access_token"], VALID) == (401, INVALID_TOKEN)
        async with http.post(f"{box.url}/_sandbox/revoke-tokens") as answer:
            assert await answer.json() == {"revoked": 1}  # the refresh token was left
        status, _ = await _token(
            http, box.url, "refresh_token", refresh_token=granted["refresh_token"]
        )
        assert status == 401
        assert box.snapshot()["oauth"]["revoked"] == 2


# --- secrets: in no output, report, ledger, traceback or command line ------------------------

_CHILD = """\
import socket, sys
sys.argv[0] = "rd-importer"
_getaddrinfo = socket.getaddrinfo
def _loopback_only(host, *args, **kwargs):
    name = host.decode() if isinstance(host, bytes) else host
    if name not in (None, "127.0.0.1", "localhost", "::1"):
        sys.stderr.write(f"NETWORK-GUARD refused {name}\\n")
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    return _getaddrinfo(host, *args, **kwargs)
socket.getaddrinfo = _loopback_only
import functools, importer.cli, importer.pipeline
importer.cli.ImportConfig = functools.partial(
    importer.pipeline.ImportConfig,
    tuning=importer.pipeline.Tuning(retry_wait=False, max_attempts=2),
)
importer.cli.main()
"""


@dataclasses.dataclass
class Child:
    code: int
    output: bytes
    command_lines: list[bytes]


def run_child(
    args: list[str], cwd: Path, env: dict[str, str], answer: Callable[[str], str] | None = None
) -> Child:
    """``rd-importer ARGS`` in a real process; ``answer(line)`` types a reply to a line of its
    stderr that wants one. Its command line is read from /proc while it runs."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("RDSTATION_")}
    full_env.update(PYTHONPATH=str(ROOT), PYTHONDONTWRITEBYTECODE="1", **env)
    pipe = subprocess.PIPE
    proc = subprocess.Popen(
        [sys.executable, "-c", _CHILD, *args], cwd=cwd, env=full_env, stdin=pipe, stdout=pipe,
        stderr=pipe,
    )  # fmt: skip
    assert proc.stdin and proc.stdout and proc.stderr
    command_lines = [Path(f"/proc/{proc.pid}/cmdline").read_bytes()]
    stderr = b""
    if answer is not None:
        for raw in proc.stderr:
            stderr += raw
            reply = answer(raw.decode())
            if reply:
                proc.stdin.write(reply.encode() + b"\n")
                proc.stdin.flush()
                break
    stdout, rest = proc.communicate(timeout=60)  # closes stdin: the end of what was typed
    return Child(proc.returncode, stdout + stderr + rest, command_lines)


def secret_pieces(*secrets: str, size: int = 8) -> set[bytes]:
    from urllib.parse import quote, quote_plus

    pieces = set()
    for secret in secrets:
        for form in {secret, quote(secret, safe=""), quote_plus(secret)}:
            pieces.update(form[i : i + size].encode() for i in range(len(form) - size + 1))
    return pieces


def test_no_secret_reaches_any_output_file_or_command_line(
    tmp_path: Path, config_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """login (pasting), an import that renews its token, one whose token endpoint echoes the
    request (secret and refresh token) in a 500 page, one whose API echoes the Authorization
    header in its error pages, logout: every byte printed or written, checked."""
    from importer.sandbox import oauth as sandbox_oauth

    issued: list[str] = []
    real_issue = sandbox_oauth.OAuthProvider._issue

    def recording(self: sandbox_oauth.OAuthProvider, client_id: str) -> dict:
        granted = real_issue(self, client_id)
        issued.extend((granted["access_token"], granted["refresh_token"]))
        return granted

    monkeypatch.setattr(sandbox_oauth.OAuthProvider, "_issue", recording)
    env = {"XDG_CONFIG_HOME": str(config_home)}  # the test's own token file is the children's
    data = leads(tmp_path / "leads.csv", 30)
    mapping = write_mapping(tmp_path / "map.yaml", MAPPING)
    children: list[Child] = []

    def paste_redirect(line: str) -> str:
        line = line.strip()
        return follow_dialog(line) if line.startswith("http") and "/auth/dialog?" in line else ""

    config = SandboxConfig(
        oauth_client=(CLIENT_ID, CLIENT_SECRET), token_lifetime=0.8, latency=0.05, seed=1
    )
    with SandboxThread(config) as box:
        login = run_child(
            ["auth", "login", "--no-browser", "--api-url", box.url],
            tmp_path,
            {**env, **CLIENT_ENV},
            answer=paste_redirect,
        )
        children.append(login)
        assert login.code == 0, login.output
        renewing = run_child(import_args((data, mapping), tmp_path / "o1", box.url), tmp_path, env)
        children.append(renewing)
        assert renewing.code == 0, renewing.output
        assert box.snapshot()["oauth"]["grants"]["refresh_token"] >= 1
        signed_in = oauth.TokenFile().load()

        with stub_server(500, "<html><title>Error {secret}</title><p>{body}</p></html>") as echo:
            expire(signed_in, token_url=f"{echo}/auth/token")
            refused = run_child(
                import_args((data, mapping), tmp_path / "o2", box.url), tmp_path, env
            )
        children.append(refused)
        assert refused.code == 3 and b"answered HTTP 500" in refused.output, refused.output

        with stub_server(500, "<html><title>Error for {authorization}</title></html>") as api:
            echoed_token = "at-SECRET-4471x9q"
            issued.append(echoed_token)
            oauth.TokenFile().save(
                dataclasses.replace(
                    signed_in,
                    api_url=api,
                    access_token=echoed_token,
                    expires_at=time.time() + 3600,  # sent as it is, not renewed first
                )
            )
            echoed = run_child(import_args((data, mapping), tmp_path / "o3", api), tmp_path, env)
        children.append(echoed)
        assert echoed.code == 3 and b"answered HTTP 500" in echoed.output, echoed.output

        oauth.TokenFile().save(signed_in)
        logout = run_child(["auth", "logout"], tmp_path, env)
        children.append(logout)
        assert logout.code == 0, logout.output
        assert box.snapshot()["oauth"]["revoked"] == 2

    pieces = secret_pieces(CLIENT_SECRET, *issued)
    for child in children:
        assert b"Traceback" not in child.output and b"NETWORK-GUARD" not in child.output
        assert not [p for p in pieces if p in child.output], child.output
        assert not [p for p in pieces if any(p in line for line in child.command_lines)]
    checked = 0
    for folder in ("o1", "o2", "o3"):
        for path in (tmp_path / folder).rglob("*"):
            if path.is_file():
                checked += 1
                assert not [p for p in pieces if p in path.read_bytes()], path
    assert checked >= 9
