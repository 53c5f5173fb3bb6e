"""Signing in once: the authorisation URL, catching RD Station's redirect, and signing out.

    sign_in(...)          print the authorisation URL (and open the browser), catch the
                          redirect on a one-shot loopback server, or read the address the user
                          pastes (no browser here), check its ``state``, exchange the code, save
    CallbackServer        the loopback server: GET on the callback path only; a request without
                          the right ``state`` or without a code gets 400 and it keeps waiting
    sign_in_headless(...) the same against a stand-in whose dialog redirects at once (the
                          sandbox): the run of ``import --sandbox --auth oauth`` signs itself in
    sign_out(...)         revoke both tokens at RD Station, delete the file

Nothing here prints: ``say`` is given the lines for the user.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import os
import secrets
import sys
import webbrowser
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from urllib.parse import parse_qs, urlencode, urlsplit

from aiohttp import web

from importer.client import check_api_url
from importer.errors import InputError
from importer.oauth.endpoint import TIMEOUT, dialog_redirect, exchange_code, revoke_tokens
from importer.oauth.tokens import (
    AuthEndpoints,
    ClientCredentials,
    MemoryTokens,
    SignInError,
    Tokens,
    TokenStore,
    is_loopback,
)

CALLBACK_PORT = 53682  # fixed, so the callback URL registered with the app stays the same
DEFAULT_REDIRECT_URI = f"http://localhost:{CALLBACK_PORT}/callback"
WAIT = 300.0  # seconds to wait for the browser to come back
PASTE_TRIES = 3
SANDBOX_CLIENT = ClientCredentials("rd-importer-sandbox", "sandbox-secret")


def client_credentials(
    client_file: Path | None = None, environ: Mapping[str, str] | None = None
) -> ClientCredentials:
    """The app's client id and secret: from ``client_file`` (lines ``RDSTATION_CLIENT_ID=...``
    and ``RDSTATION_CLIENT_SECRET=...``, ``#`` comments: a systemd EnvironmentFile works), else
    the environment. Never from the command line."""
    values = dict(os.environ if environ is None else environ)
    where = "RDSTATION_CLIENT_ID and RDSTATION_CLIENT_SECRET"
    if client_file is not None:
        values = _read_client_file(client_file)
        where = str(client_file)
    client_id = values.get("RDSTATION_CLIENT_ID", "").strip()
    client_secret = values.get("RDSTATION_CLIENT_SECRET", "").strip()
    if not (client_id and client_secret):
        missing = " and ".join(
            name
            for name, value in (
                ("RDSTATION_CLIENT_ID", client_id),
                ("RDSTATION_CLIENT_SECRET", client_secret),
            )
            if not value
        )
        raise InputError(
            f"{missing} not set (looked in {where}): copy the client id and secret from your "
            "private app's page in RD Station into the environment, or into a file readable "
            "by you only passed with --client-file"
        )
    return ClientCredentials(client_id, client_secret)


def _read_client_file(path: Path) -> dict[str, str]:
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise InputError(f"--client-file {path}: {exc.strerror}") from None
    if mode & 0o077:
        raise InputError(
            f"--client-file {path} can be read or changed by other users, and it holds the "
            f"app's secret: run 'chmod 600 {path}'"
        )
    values = {}
    for line in text.splitlines():
        name, equals, value = line.strip().removeprefix("export ").partition("=")
        if equals and not name.startswith("#"):
            values[name.strip()] = value.strip().strip("'\"")
    return values


def authorisation_url(dialog: str, client_id: str, redirect_uri: str, state: str) -> str:
    query = urlencode({"client_id": client_id, "redirect_uri": redirect_uri, "state": state})
    return f"{dialog}?{query}"


def code_from_redirect(address: str, state: str) -> str:
    """The code in the address RD Station sent the browser to, or InputError saying why not.
    ``address`` may be the whole URL or only its query."""
    text = address.strip()
    query = urlsplit(text).query if "?" in text else text
    values = {name: items[0] for name, items in parse_qs(query).items() if items}
    if not secrets.compare_digest(values.get("state", "").encode(), state.encode()):
        raise InputError(
            "that address is not the answer to this sign-in (its state does not match): "
            "use the address the browser was sent to after this authorisation URL"
        )
    if "error" in values:
        raise SignInError(
            f"RD Station did not authorise the app ({values['error'][:100]})", refused=True
        )
    code = values.get("code", "")
    if not code:
        raise InputError("that address holds no code: paste the whole address, with ?code=")
    return code


def check_redirect_uri(uri: str, *, listen: bool) -> tuple[str, int, str]:
    """(host, port, path) of the callback URL; InputError when the loopback server could not
    listen there (``listen``) or it is no URL at all."""
    try:
        parts = urlsplit(uri)
        port = parts.port
    except ValueError:
        raise InputError(f"--redirect-uri {uri}: not a valid URL") from None
    host = parts.hostname or ""
    if parts.scheme not in ("http", "https") or not host:
        raise InputError(f"--redirect-uri {uri}: expected an address like {DEFAULT_REDIRECT_URI}")
    if listen and (parts.scheme != "http" or not is_loopback(host) or not port):
        raise InputError(
            f"--redirect-uri {uri}: rd-importer can catch RD Station's redirect only on this "
            f"computer, at an address like {DEFAULT_REDIRECT_URI} (http, localhost or "
            "127.0.0.1, a port); register one in the app, or add --no-browser to paste the "
            "address the browser is sent to instead"
        )
    return host, port or 0, parts.path or "/"


def browser_available() -> bool:
    """Whether ``webbrowser`` can show a page here: never over SSH without a display."""
    if os.environ.get("BROWSER"):
        return True
    if sys.platform in ("darwin", "win32"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


class CallbackServer:
    """A one-shot HTTP server on loopback that waits for RD Station's redirect."""

    def __init__(self, redirect_uri: str, state: str) -> None:
        self.redirect_uri = redirect_uri
        self.host, self.port, self.path = check_redirect_uri(redirect_uri, listen=True)
        self._state = state.encode()
        self._answer: asyncio.Future[str] | None = None
        self._runner: web.AppRunner | None = None

    async def __aenter__(self) -> CallbackServer:
        self._answer = asyncio.get_running_loop().create_future()
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._on_request)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await runner.setup()
        self._runner = runner
        # Loopback only. "localhost" may resolve to either address: listen on both.
        hosts = ["127.0.0.1", "::1"] if self.host.lower() == "localhost" else [self.host]
        bound = 0
        for index, host in enumerate(hosts):
            try:
                await web.TCPSite(runner, host.strip("[]"), self.port).start()
                bound += 1
            except OSError as exc:
                if index == 0:
                    await runner.cleanup()
                    raise InputError(
                        f"--redirect-uri {self.redirect_uri}: cannot listen on port "
                        f"{self.port} ({exc.strerror or type(exc).__name__}); close the "
                        "program using it, or register another callback URL in the app and "
                        "pass it with --redirect-uri"
                    ) from None
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def code(self, timeout: float) -> str:
        """The code, once a request with the right state brought one; SignInError after
        ``timeout`` seconds."""
        assert self._answer is not None, "use 'async with CallbackServer(...)'"
        try:
            return await asyncio.wait_for(asyncio.shield(self._answer), timeout)
        except TimeoutError:
            raise SignInError(
                f"no sign-in came back to {self.redirect_uri} within {timeout:g} s: open the "
                "authorisation URL in a browser on this computer and allow the app (or add "
                "--no-browser to paste the address instead), then run the command again",
                refused=False,
            ) from None

    async def _on_request(self, request: web.Request) -> web.Response:
        answer = self._answer
        if request.path != self.path:
            return _page(404, "Not found.")
        if request.method != "GET":
            return _page(405, "Only the browser's GET is expected here.")
        if answer is None or answer.done():
            return _page(410, "rd-importer already received an answer for this sign-in.")
        query = request.query
        if not secrets.compare_digest(query.get("state", "").encode(), self._state):
            # Not this sign-in's answer (an old tab, another program): keep waiting for it.
            return _page(400, "This is not the sign-in rd-importer is waiting for.")
        if "error" in query:
            answer.set_exception(
                SignInError(
                    f"RD Station did not authorise the app ({query['error'][:100]})",
                    refused=True,
                )
            )
            return _page(400, "RD Station did not authorise the app. See the terminal.")
        code = query.get("code", "")
        if not code:
            return _page(400, "The address holds no code: start again from the terminal.")
        answer.set_result(code)
        return _page(200, "rd-importer is signed in. You can close this tab.")


def _page(status: int, text: str) -> web.Response:
    body = (
        "<!doctype html><html><head><meta charset='utf-8'><title>rd-importer</title></head>"
        f"<body><p>{html.escape(text)}</p></body></html>"
    )
    return web.Response(status=status, text=body, content_type="text/html")


async def sign_in(
    client: ClientCredentials,
    *,
    api_url: str,
    store: TokenStore,
    say: Callable[[str], None],
    redirect_uri: str = DEFAULT_REDIRECT_URI,
    endpoints: AuthEndpoints | None = None,
    paste: Callable[[], str | None] | None = None,
    open_browser: Callable[[str], bool] | None = None,
    timeout: float = WAIT,
    request_timeout: float = TIMEOUT,
) -> Tokens:
    """Sign the app in and save the tokens in ``store``.

    ``paste`` (``--no-browser``): reads a line the user pasted (None at the end of input)
    instead of listening for the redirect. ``open_browser(url)`` shows the URL in a browser,
    and says whether it could; None: only print it.
    """
    api_url = check_api_url(api_url)
    endpoints = endpoints or AuthEndpoints.for_api(api_url)
    check_redirect_uri(redirect_uri, listen=paste is None)
    state = secrets.token_urlsafe(32)
    url = authorisation_url(endpoints.dialog, client.client_id, redirect_uri, state)
    if paste is not None:
        say(
            f"Open this address in a browser, sign in to RD Station and allow the app:\n\n  {url}\n"
        )
        say(
            f"RD Station then sends the browser to {redirect_uri}?code=... (the page may not "
            "load: that is expected). Copy that whole address from the address bar and paste "
            "it here:"
        )
        code = _pasted_code(paste, state, say)
    else:
        async with CallbackServer(redirect_uri, state) as server:
            opened = open_browser(url) if open_browser is not None else False
            lead = "Your browser was opened at" if opened else "Open this address in a browser"
            say(f"{lead} (sign in to RD Station and allow the app):\n\n  {url}\n")
            say(f"Waiting for RD Station to send the browser back to {redirect_uri} ...")
            code = await server.code(timeout)
    tokens = await exchange_code(endpoints, client, code, api_url, timeout=request_timeout)
    try:
        store.save(tokens)
    except OSError as exc:
        raise InputError(
            f"{getattr(store, 'path', 'the token file')}: the sign-in could not be saved "
            f"({exc.strerror}); fix the folder (or XDG_CONFIG_HOME) and sign in again"
        ) from None
    return tokens


def _pasted_code(paste: Callable[[], str | None], state: str, say: Callable[[str], None]) -> str:
    # Read in the loop's thread on purpose: nothing else runs meanwhile, and a read in another
    # thread would keep the process alive after a Ctrl-C until the user pressed Enter.
    for attempt in range(PASTE_TRIES):
        line = paste()
        if line is None:
            raise InputError("no address was pasted: run `rd-importer auth login` again")
        if not line.strip():
            continue
        try:
            return code_from_redirect(line, state)
        except InputError as exc:
            if attempt == PASTE_TRIES - 1:
                raise
            say(f"{exc}. Paste it again:")
    raise InputError("no address was pasted: run `rd-importer auth login` again")


def open_in_browser(url: str) -> bool:
    """Show ``url`` in the user's browser when there is one; False when there is none."""
    if not browser_available():
        return False
    with contextlib.suppress(Exception):  # webbrowser raises its own errors for broken setups
        return webbrowser.open(url, new=2)
    return False


async def sign_in_headless(api_url: str, *, timeout: float = TIMEOUT) -> MemoryTokens:
    """Sign in to a stand-in whose dialog redirects at once (the sandbox), in memory only."""
    endpoints = AuthEndpoints.for_api(api_url, environ={})
    state = secrets.token_urlsafe(16)
    redirect_uri = "http://127.0.0.1/callback"  # never visited: the redirect is only read
    url = authorisation_url(endpoints.dialog, SANDBOX_CLIENT.client_id, redirect_uri, state)
    code = code_from_redirect(await dialog_redirect(url, timeout=timeout), state)
    tokens = await exchange_code(endpoints, SANDBOX_CLIENT, code, api_url, timeout=timeout)
    return MemoryTokens(tokens)


async def sign_out(tokens: Tokens, *, timeout: float = TIMEOUT) -> str | None:
    """Revoke both tokens at RD Station; None when it took both, else what went wrong."""
    return await revoke_tokens(tokens, timeout=timeout)
