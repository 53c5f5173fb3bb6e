"""The one place that talks HTTP to RD Station: ``POST {api_url}/platform/conversions``.

Every answer becomes a plain value from ``importer.records``:

    Sent(event_uuid)                     2xx with an event_uuid: the conversion was recorded
    Failed(kind, http_status, error_type, message, retry_after, ..., reached_server)
      TRANSIENT      5xx, 408, connection refused / reset / DNS failure / closed, timeout,
                     an answer longer than RD Station ever sends
      RATE_LIMITED   429 from the gateway (the account's budget): pause everyone, retry
      LEAD_LIMITED   429 from RD Station's per-lead limiter: fail the row, try tomorrow
      AUTH_REFUSED   401, 403: the API key is refused: stop the run
      REJECTED       other 4xx: RD Station refused this row, in its own words
      FATAL          TLS certificate not verified, API address redirects or is invalid, the
                     proxy refuses the tunnel
      UNCERTAIN      2xx without an event_uuid (NO_EVENT_UUID): not RD Station's answer, yet
                     whatever answered may have recorded it

``reached_server`` is False only when the request surely never left for a server (refused,
DNS, TLS handshake, connect timeout, proxy): nothing can have been recorded. A wait a server
asks for is capped at ``MAX_RETRY_AFTER``; an answer is read up to ``MAX_ANSWER_BYTES`` only.
Proxies come from ``HTTPS_PROXY`` / ``HTTP_PROXY`` / ``NO_PROXY`` as curl reads them; loopback
is never proxied.

No aiohttp exception leaves this module, and the API key (which travels in the URL's query
string) appears in no message: messages are built from the exception's type and the host only,
then passed through ``redact`` as a second guard.

Where a request goes and how it proves who sends it is one small strategy, ``auth``:
``ApiKeyAuth`` (the default: ``/platform/conversions?api_key=KEY``) or ``BearerAuth`` (OAuth:
``/platform/events?event_type=conversion`` with ``Authorization: Bearer TOKEN``). Either way its
secret is what every message is redacted with. The body and every answer are the same.
"""

from __future__ import annotations

import contextvars
import copy
import email.utils
import functools
import ipaddress
import os
import re
import ssl
import time
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import replace
from types import TracebackType
from typing import Any, Protocol
from urllib.parse import quote, quote_plus, urlsplit

import aiohttp
import orjson
from yarl import URL

from importer.errors import InputError
from importer.records import MAX_RETRY_AFTER, Failed, FailureKind, Sent

__all__ = [
    "ApiKeyAuth",
    "BearerAuth",
    "ConversionsClient",
    "RequestAuth",
    "check_api_url",
    "conversion_body",
    "encode_conversion",
    "failure_from_response",
    "redact",
]

CONVERSIONS_PATH = "/platform/conversions"
EVENTS_PATH = "/platform/events"  # the OAuth twin of CONVERSIONS_PATH: the same body and answers
REDACTED = "***"
_MAX_MESSAGE = 1000  # a failures.csv cell, not a page: RD's lists of errors can be long
_MAX_SNIPPET = 120
# RD Station's answers are a few hundred bytes (an event_uuid, or a list of errors); reading
# more than this only lets a wrong server fill memory (a 1 GB answer once took 2.6 GB).
MAX_ANSWER_BYTES = 64 * 1024
_MIN_CUT = 8  # forms of the key shorter than this are not also masked cut by one character

_API_KEY_IN_URL = re.compile(r"(api_key=)[^&\s#\"'<>]*", re.IGNORECASE)


def redact(text: str, secret: str) -> str:
    """``text`` with ``secret`` (in any form a server may echo it) and ``api_key=...`` masked."""
    if secret and text:
        text = _secret_pattern(secret).sub(REDACTED, text)
    if "api_key=" in text.lower():
        text = _API_KEY_IN_URL.sub(r"\1" + REDACTED, text)
    return text


@functools.lru_cache(maxsize=8)
def _secret_pattern(secret: str) -> re.Pattern[str]:
    # The key as typed, as each encoder may have written it into a URL's query, every byte as
    # a %XX escape, and as hex; each also cut by one character at either end (an echo clipped
    # by a server or a proxy). Case is ignored: servers echo %2f for %2F, or a whole URL upper
    # cased. Longest first, so a whole form is masked whole, not around a shorter one.
    raw = secret.encode()
    in_yarl = URL("http://h/").with_query(k=secret).raw_query_string.removeprefix("k=")
    every_byte = "".join(f"%{byte:02X}" for byte in raw)
    encoded = (quote(secret, safe=""), quote_plus(secret), in_yarl, every_byte, raw.hex())
    forms: set[str] = set()
    for form in (secret, *encoded):
        forms.add(form)
        if len(form) >= _MIN_CUT:
            forms.update((form[1:], form[:-1]))
    ordered = sorted((f for f in forms if f), key=len, reverse=True)
    return re.compile("|".join(map(re.escape, ordered)), re.IGNORECASE)


def check_api_url(url: str) -> str:
    """Return the API address without its trailing ``/``, or raise ``InputError``.

    Plain http is allowed only to a loopback host (the sandbox): elsewhere the key in the query
    string would cross the network in clear text.
    """
    shown = redact(url.strip(), "")
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname or ""
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number
    except ValueError:
        raise InputError(f"--api-url {shown}: not a valid URL") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not host:
        raise InputError(f"--api-url {shown}: expected an address like https://api.rd.services")
    if parts.username is not None or parts.password is not None:
        raise InputError("--api-url: a user name or password in the address is not supported")
    if parts.query or parts.fragment:
        raise InputError(
            f"--api-url {shown}: give the address without ?query or #fragment "
            "(the API key comes from RDSTATION_API_KEY)"
        )
    if scheme == "http" and not _is_loopback(host):
        raise InputError(
            f"--api-url {shown}: plain http would send the API key in clear text; use https "
            "(http is allowed only for localhost)"
        )
    return f"{scheme}://{parts.netloc}{parts.path}".rstrip("/")


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# The wrapper RD Station expects around a conversion payload, keys sorted: the body is then the
# payload's own sorted JSON with a head and a tail, and a row is encoded once, not twice.
_BODY_HEAD = b'{"event_family":"CDP","event_type":"CONVERSION","payload":'
_BODY_TAIL = b"}"


def encode_conversion(payload: dict[str, Any]) -> tuple[bytes, bytes]:
    """(the payload's JSON with sorted keys, the request body around it). The first is what the
    ledger keys a row by: a mapping whose fields are reordered still finds the rows it sent."""
    encoded = orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)
    return encoded, _BODY_HEAD + encoded + _BODY_TAIL


def conversion_body(payload: dict[str, Any]) -> bytes:
    """The JSON body RD Station expects around one conversion payload."""
    return encode_conversion(payload)[1]


class RequestAuth(Protocol):
    """Where a conversion is posted and how the request proves who sends it."""

    @property
    def secret(self) -> str:
        """What no message may show: it is masked in every one the client builds."""
        ...

    def url(self, api_url: str) -> URL:
        """The endpoint, under ``api_url`` (checked, no trailing ``/``)."""
        ...

    def headers(self) -> dict[str, str]:
        """Headers beside the content type."""
        ...


class ApiKeyAuth:
    """The API key, in the query string of ``/platform/conversions``, as RD Station requires."""

    __slots__ = ("secret",)

    def __init__(self, api_key: str) -> None:
        if not api_key:
            raise InputError("the API key is empty; set RDSTATION_API_KEY")
        self.secret = api_key

    def __repr__(self) -> str:
        return f"ApiKeyAuth({REDACTED!r})"

    def url(self, api_url: str) -> URL:
        return URL(api_url + CONVERSIONS_PATH).with_query(api_key=self.secret)

    def headers(self) -> dict[str, str]:
        return {}


class BearerAuth:
    """An OAuth access token, in the ``Authorization`` header of the events endpoint."""

    __slots__ = ("secret",)

    def __init__(self, access_token: str) -> None:
        # A token is one header value: a line break in one would end the header (and an empty
        # one would only be refused). ``importer.oauth`` checks what the token endpoint answers.
        if not access_token or not access_token.isprintable() or " " in access_token:
            raise InputError("the OAuth access token is not usable; run rd-importer auth login")
        self.secret = access_token

    def __repr__(self) -> str:
        return f"BearerAuth({REDACTED!r})"

    def url(self, api_url: str) -> URL:
        return URL(api_url + EVENTS_PATH).with_query(event_type="conversion")

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.secret}"}


class ConversionsClient:
    """One aiohttp session for a whole run; ``post_conversion`` makes exactly one attempt.

    Use as ``async with ConversionsClient(url, key) as client: ...``. Retrying, pacing and
    deciding what a failure means for the run belong to the caller (``pipeline``). ``auth``
    replaces the API key with another way to sign requests (``BearerAuth``); ``with_auth`` gives
    a twin on the same session with other credentials (an OAuth token renewed mid-run).
    ``proxy`` is the proxy requests go through (``host:port``, no credentials), else None.
    ``tls`` replaces the system's trusted certificates (tests; a TLS-inspecting proxy's CA).
    """

    def __init__(
        self,
        api_url: str,
        api_key: str = "",
        *,
        auth: RequestAuth | None = None,
        timeout: float = 30.0,
        max_connections: int = 8,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.api_url = check_api_url(api_url)
        self._timeout = timeout
        self._max_connections = max_connections
        self._tls = tls
        self._session: aiohttp.ClientSession | None = None
        self._use(auth if auth is not None else ApiKeyAuth(api_key))

    def _use(self, auth: RequestAuth) -> None:
        self._auth = auth
        self._api_key = auth.secret  # the secret every message is redacted with
        # Built once: yarl parses and encodes here, not on each of thousands of requests.
        self._url = auth.url(self.api_url)
        host = self._url.host or ""
        if ":" in host:
            host = f"[{host}]"
        self.host = f"{host}:{self._url.explicit_port}" if self._url.explicit_port else host
        # Read once, not per request (aiohttp's trust_env would also read ~/.netrc each time
        # and send its password for this host as Basic auth).
        self._proxy, self._proxy_headers, self.proxy = _proxy_for(self._url)
        self._headers = {
            "Content-Type": "application/json",
            "Accept": "application/json",
            **auth.headers(),
        }

    def with_auth(self, auth: RequestAuth) -> ConversionsClient:
        """This client with other credentials, on the same session and connections. Only the
        client that opened the session closes it; a twin is dropped, never closed."""
        twin = copy.copy(self)
        twin._use(auth)
        return twin

    def __repr__(self) -> str:
        return f"ConversionsClient(api_url={self.api_url!r}, api_key={REDACTED!r})"

    async def __aenter__(self) -> ConversionsClient:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                # ssl=True: the default context, certificates and host names verified.
                connector=_Connector(
                    limit=self._max_connections, ssl=self._tls if self._tls else True
                ),
                timeout=aiohttp.ClientTimeout(total=self._timeout),
            )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()

    async def post_conversion(self, body: bytes) -> Sent | Failed:
        """Send one conversion body once. Never raises for network or HTTP problems."""
        session = self._session
        if session is None:
            raise RuntimeError("ConversionsClient is not open: use 'async with ConversionsClient'")
        status: int | None = None
        headers: Mapping[str, str] = {}
        progress = _Progress()
        _ATTEMPT.set(progress)  # this task's own context: other workers have theirs
        try:
            # No redirects: one would turn the POST into a GET and may send the body elsewhere.
            async with session.post(
                self._url,
                data=body,
                headers=self._headers,
                allow_redirects=False,
                proxy=self._proxy,
                proxy_headers=self._proxy_headers,
            ) as resp:
                status, headers = resp.status, resp.headers
                raw, whole = await _read_at_most(resp.content, MAX_ANSWER_BYTES)
                if not whole:
                    resp.close()  # drop the connection: reading the rest is the harm
        except Exception as exc:
            # Not only ClientError: aiohttp also raises ValueError, RuntimeError... whose
            # text may hold the URL, key included. None of them may reach the caller.
            if status is None:
                return self._failure_from_exception(exc, progress)
            if 200 <= status < 300:
                # A 2xx came, so the conversion was recorded; only the rest of the answer was
                # lost. Resending would record it twice: count it as sent.
                return Sent(event_uuid="", http_status=status)
            # The status alone says what kind of failure this is (a 401 still stops the run).
            failed = failure_from_response(status, headers, b"", secret=self._api_key)
            return replace(failed, message=failed.message + " (the answer was cut off)")

        if not whole:
            return self._too_long(status, headers, raw)
        if 200 <= status < 300:
            uuid = _event_uuid(raw)
            if uuid is not None:
                return Sent(event_uuid=uuid, http_status=status)
            return self._not_rd_station(status, raw)
        return failure_from_response(status, headers, raw, secret=self._api_key)

    def _not_rd_station(self, status: int, raw: bytes, said: str | None = None) -> Failed:
        # RD Station answers every conversion it records with its event_uuid. A 2xx without one
        # comes from something else at this address (a captive portal, a catch-all proxy), and
        # that something may have kept the request: in doubt, never retried.
        if said is None:
            said = _what_came(redact(raw.decode("utf-8", "replace"), self._api_key))
        return Failed(
            kind=FailureKind.UNCERTAIN,
            http_status=status,
            error_type="NO_EVENT_UUID",
            message=_clip(
                redact(
                    f"{self.host} answered HTTP {status} without the event_uuid RD Station sends "
                    f"({said}); the request reached that server, so it may have been recorded",
                    self._api_key,
                )
            ),
        )

    def _too_long(self, status: int, headers: Mapping[str, str], start: bytes) -> Failed:
        limit = f"more than {MAX_ANSWER_BYTES // 1024} KB"
        if 200 <= status < 300:
            return self._not_rd_station(status, start, said=f"{limit} of answer")
        failed = failure_from_response(status, headers, start, secret=self._api_key)
        if failed.kind is FailureKind.REJECTED:
            # A page that long is not RD Station judging this row: worth another attempt.
            failed = replace(failed, kind=FailureKind.TRANSIENT)
        return replace(
            failed,
            message=_clip(
                f"{failed.message} (the answer was {limit}, far longer than RD Station's; "
                "only its start was read)"
            ),
        )

    def _failure_from_exception(self, exc: BaseException, progress: _Progress) -> Failed:
        # Failed while still connecting: the request never left. (A scripted session makes no
        # connection at all: then, as after connecting, it may have reached the server.)
        connecting = progress.connecting and not progress.connected
        kind, error_type, message, reached = _describe_exception(
            exc, self.host, self._timeout, self.proxy, connecting
        )
        return Failed(
            kind=kind,
            http_status=None,
            error_type=error_type,
            message=redact(message, self._api_key),
            reached_server=reached,
        )


# How far the current task's request got, for reached_server: no server can see a request
# before its connection (TCP, the proxy's tunnel, the TLS handshake) is made, and it is sent as
# soon as it is. Set per request in post_conversion, read by the connector in the same task.
_ATTEMPT: contextvars.ContextVar[_Progress | None] = contextvars.ContextVar(
    "rd_importer_attempt", default=None
)


class _Progress:
    __slots__ = ("connected", "connecting")

    def __init__(self) -> None:
        self.connecting = False
        self.connected = False


class _Connector(aiohttp.TCPConnector):
    """A TCPConnector that notes, for the request being made, when its connection is ready.

    (aiohttp's tracing signals say the same at ~15 µs a request; this costs well under one.)
    """

    async def connect(self, *args: Any, **kwargs: Any) -> Any:
        progress = _ATTEMPT.get()
        if progress is not None:
            progress.connecting = True
        connection = await super().connect(*args, **kwargs)
        if progress is not None:
            progress.connected = True
        return connection


async def _read_at_most(stream: aiohttp.StreamReader, limit: int) -> tuple[bytes, bool]:
    """(the body, True), or (its first ``limit`` bytes, False) when it is longer."""
    chunks: list[bytes] = []
    size = 0
    while size <= limit:
        chunk = await stream.read(limit + 1 - size)
        if not chunk:
            return b"".join(chunks), True
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)[:limit], False


def _event_uuid(raw: bytes) -> str | None:
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    uuid = data.get("event_uuid") if isinstance(data, dict) else None
    # An identifier, not a page: it goes into successes.csv as it came.
    if isinstance(uuid, str) and 0 < len(uuid) <= 200 and uuid.isprintable():
        return uuid
    return None


def _what_came(text: str) -> str:
    """A short description of an answer that is not RD Station's: ``an empty body``, ``a JSON
    body: {"status": "ok"}``, ``a non-JSON body: Welcome to the hotel's Wi-Fi``."""
    if not text.strip():
        return "an empty body"
    if _json_or_none(text.encode()) is not None:
        line = _one_line(text)
        clipped = line if len(line) <= _MAX_SNIPPET else line[: _MAX_SNIPPET - 1] + "…"
        return f"a JSON body: {clipped}"
    return _no_detail(text.encode(), None)


def _proxy_for(url: URL) -> tuple[URL | None, dict[str, str] | None, str | None]:
    """(proxy URL, headers for it, ``host:port`` to show) from the environment for ``url``.

    ``HTTPS_PROXY`` / ``HTTP_PROXY`` (or lower case) less ``NO_PROXY``, read as curl and
    ``requests`` read them. Never for loopback: the sandbox is on this machine, and a proxy
    would reach its own loopback instead. Through a proxy, an https request is a CONNECT tunnel:
    the proxy sees ``host:443``, never the URL and its API key.
    """
    host = url.host or ""
    if _is_loopback(host):
        return None, None, None
    address = urllib.request.getproxies().get(url.scheme)
    if not address or urllib.request.proxy_bypass(host):
        return None, None, None
    variable = f"{url.scheme.upper()}_PROXY"
    if "://" not in address:
        address = "http://" + address  # "proxy:3128", as curl reads it
    try:
        proxy = URL(address)
        port = proxy.port
    except ValueError:
        proxy, port = None, None
    if proxy is None or not proxy.host or port is None:
        raise InputError(f"{variable}: not a proxy address; give one like http://proxy:3128")
    shown = f"{proxy.host}:{port}"
    if proxy.scheme != "http":
        raise InputError(
            f"{variable}={proxy.scheme}://{shown}: only http:// proxies are supported; give "
            f"http://{shown} (requests to RD Station stay encrypted inside the tunnel)"
        )
    # Sent to the proxy only (in CONNECT), never with the request inside the tunnel.
    auth = None
    if proxy.user:
        auth = {"Proxy-Authorization": aiohttp.encode_basic_auth(proxy.user, proxy.password or "")}
    return proxy.with_user(None), auth, shown


def _describe_exception(
    exc: BaseException, host: str, timeout: float, proxy: str | None, connecting: bool
) -> tuple[FailureKind, str, str, bool]:
    """Kind, error_type, message and reached_server for a failed request, never from ``str(exc)``.

    ``str()`` of aiohttp's exceptions often holds the full URL, and with it the API key.
    Only the host, the exception's type and OS / TLS reason texts (which hold no URL) are used.
    ``connecting``: the request was still being connected when it failed.
    """
    transient = FailureKind.TRANSIENT
    via = f" through the proxy {proxy}" if proxy else ""
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        reason = _tls_reason(exc.certificate_error)
        return (
            FailureKind.FATAL,
            "TLS_CERTIFICATE",
            f"TLS certificate of {host} could not be verified: {reason}",
            False,
        )
    if isinstance(exc, aiohttp.ClientSSLError):
        # A failed handshake other than the certificate (e.g. https to a plain-http port)
        # gets a few retries like any connection error, then fails the row with this reason.
        reason = _tls_reason(getattr(exc, "os_error", exc))
        return transient, "TLS_ERROR", f"TLS handshake with {host}{via} failed: {reason}", False
    if isinstance(exc, aiohttp.ClientHttpProxyError):
        # The proxy answered CONNECT with an error: 407 (credentials) and 403 (a destination it
        # does not allow) will answer every row the same; 502/503 may pass.
        status = exc.status
        blocked = status in (403, 407)
        hint = (
            "; give its user and password in HTTPS_PROXY, or exclude the host with NO_PROXY"
            if blocked
            else ""
        )
        return (
            FailureKind.FATAL if blocked else transient,
            "PROXY_REFUSED",
            f"the proxy {proxy} refused the tunnel to {host} (HTTP {status}){hint}",
            False,
        )
    if isinstance(exc, TimeoutError):
        if connecting or isinstance(exc, aiohttp.ConnectionTimeoutError):
            return (
                transient,
                "TIMEOUT",
                f"could not connect to {host}{via} within {timeout:g} s",
                False,
            )
        return transient, "TIMEOUT", f"no answer from {host} within {timeout:g} s", True
    if isinstance(exc, aiohttp.ClientProxyConnectionError):
        return (
            transient,
            "CONNECTION_ERROR",
            f"could not connect to the proxy {proxy}{_os_reason(exc.os_error)}",
            False,
        )
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        # With a proxy, only the proxy's own name is looked up here.
        name = proxy.rpartition(":")[0] if proxy else host
        return (
            transient,
            "CONNECTION_ERROR",
            f"could not resolve the host {name}{_os_reason(exc.os_error)}",
            False,
        )
    if isinstance(exc, aiohttp.ClientConnectorError):
        return (
            transient,
            "CONNECTION_ERROR",
            f"could not connect to {host}{via}{_os_reason(exc.os_error)}",
            False,
        )
    if isinstance(exc, aiohttp.InvalidURL):
        return (
            FailureKind.FATAL,
            "INVALID_URL",
            "the API address is not a valid URL; check --api-url",
            False,
        )
    # From here the request may have gone out (a reset after sending): unless aiohttp said it
    # was still connecting, assume it reached the server.
    reached = not connecting
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        message = f"{host} closed the connection before answering"
    elif isinstance(exc, OSError):
        message = f"the connection to {host} failed{_os_reason(exc)}"
    elif isinstance(exc, aiohttp.ClientPayloadError):
        message = f"the answer from {host} was cut off"
    elif isinstance(exc, aiohttp.ClientResponseError):
        # Raised while parsing an answer that is not valid HTTP (no redirects are followed).
        message = f"the answer from {host} was not valid HTTP"
    else:
        message = f"the request to {host} failed ({type(exc).__name__})"
    return transient, "CONNECTION_ERROR", message, reached


def _os_reason(err: BaseException) -> str:
    # os.strerror(errno) rather than the exception's text: asyncio's says "Connect call failed
    # ('10.0.0.1', 443)"; a resolver error has a negative errno and only its strerror is useful.
    errno = getattr(err, "errno", None)
    strerror = getattr(err, "strerror", None)
    if isinstance(errno, int) and errno > 0:
        reason = os.strerror(errno)
    elif isinstance(strerror, str) and strerror:
        reason = strerror
    elif isinstance(err, ConnectionResetError):
        reason = "connection reset"
    else:
        reason = type(err).__name__
    return f" ({reason[0].lower()}{reason[1:]})"


def _tls_reason(err: BaseException) -> str:
    for attr in ("verify_message", "reason", "strerror"):
        value = getattr(err, attr, None)
        if isinstance(value, str) and value:
            return value
    return type(err).__name__


# --- answers with an HTTP status ------------------------------------------------------------


def failure_from_response(
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    *,
    secret: str = "",
    now: float | None = None,
) -> Failed:
    """Turn a non-2xx answer, in any of RD Station's error shapes, into one ``Failed``.

    ``secret`` is masked in the message (an error page may echo the URL); ``now`` (epoch
    seconds) is the clock for a ``Retry-After`` given as an HTTP date.
    """
    data = _json_or_none(body)
    if data is None and secret:
        # A page that is not JSON is quoted as a short snippet: mask the key before that cut,
        # which could otherwise keep the part of the key in front of it.
        body = redact(body.decode("utf-8", "replace"), secret).encode()
    errors = list(_rd_errors(data)) if data is not None else []
    rd_type = next((t for _, t, _ in errors if t), None)
    asked = _retry_after(headers, now)
    retry_after = None if asked is None else min(asked, MAX_RETRY_AFTER)

    if status == 429:
        failed = _too_many_requests(data, errors, asked, body)
    elif status in (401, 403):
        failed = Failed(
            kind=FailureKind.AUTH_REFUSED,
            http_status=status,
            error_type=rd_type or f"HTTP_{status}",
            message=f"RD Station refused the API key ({_status_said(status, errors, body, data)}); "
            "check RDSTATION_API_KEY",
        )
    elif rd_type == "UNABLE_TO_LOAD_CDP_SCHEMA":
        # The key of an RD Station CRM account: no conversion can be recorded with it.
        failed = Failed(
            kind=FailureKind.FATAL,
            http_status=status,
            error_type=rd_type,
            message="this API key belongs to an RD Station CRM account, not RD Station "
            "Marketing (UNABLE_TO_LOAD_CDP_SCHEMA): create a key in RD Station Marketing "
            '(App Publisher, "Gerar chave de API") and set RDSTATION_API_KEY to it',
        )
    elif 300 <= status < 400:
        failed = _redirect(status, headers)
    else:
        failed = _other_status(status, errors, body, data, retry_after)
        if rd_type:
            failed = replace(failed, error_type=rd_type)
    if failed.retry_after is not None and asked is not None and asked > MAX_RETRY_AFTER:
        failed = replace(failed, retry_after_asked=asked)
    # Redact before clipping: a clip through the middle of the key would leave part of it.
    return replace(failed, message=_clip(redact(failed.message, secret)))


def _other_status(
    status: int,
    errors: list[tuple[str | None, str | None, str]],
    body: bytes,
    data: Any,
    retry_after: float | None,
) -> Failed:

    detail = _join(errors)
    if 400 <= status < 500 and status != 408:
        message = detail or f"RD Station answered HTTP {status} with {_no_detail(body, data)}"
        kind = FailureKind.REJECTED
    else:
        # 5xx, 408 (the server gave up waiting for the request, so nothing was recorded), and
        # anything stranger: worth another attempt.
        told = detail or f"with {_no_detail(body, data)}"
        message = f"RD Station answered HTTP {status}{': ' if detail else ' '}{told}"
        kind = FailureKind.TRANSIENT
    return Failed(
        kind=kind,
        http_status=status,
        error_type=f"HTTP_{status}",
        message=message,
        retry_after=retry_after if kind is FailureKind.TRANSIENT else None,
    )


def _status_said(
    status: int, errors: list[tuple[str | None, str | None, str]], body: bytes, data: Any
) -> str:
    """``HTTP 401: Invalid token.``, or ``HTTP 403 with an empty body``."""
    told = "; ".join(m for _, _, m in errors if m)
    return f"HTTP {status}: {told}" if told else f"HTTP {status} with {_no_detail(body, data)}"


def _too_many_requests(
    data: Any,
    errors: list[tuple[str | None, str | None, str]],
    asked: float | None,
    body: bytes,
) -> Failed:
    said = data.get("error") if isinstance(data, dict) else None
    if isinstance(said, str) and "lead_limiter" in said:
        # The limiter is keyed by the lead's email; the address itself stays out of the message
        # (messages reach logs). "remaining_time" has no documented unit, so no ETA is promised.
        limit = data.get("max")
        per = re.search(r"for (\d+) second", said)
        quota = ""
        if isinstance(limit, int) and per:
            quota = f" ({limit} conversions per {_duration(int(per.group(1)))})"
        return Failed(
            kind=FailureKind.LEAD_LIMITED,
            http_status=429,
            error_type="LEAD_LIMITED",
            message=(
                f"this lead's email hit RD Station's per-lead limit{quota}; the conversion "
                "was not recorded: the row can be resumed tomorrow"
            ),
        )
    wait = ""
    if asked is not None:
        wait = f"; it asks to wait {_seconds_text(asked)}"
        if asked > MAX_RETRY_AFTER:
            wait += f", waiting {MAX_RETRY_AFTER:g} s instead (the longest wait obeyed)"
    return Failed(
        kind=FailureKind.RATE_LIMITED,
        http_status=429,
        error_type="RATE_LIMITED",
        message=f"RD Station's request limit for this account was reached "
        f"({_status_said(429, errors, body, data)}){wait}",
        retry_after=None if asked is None else min(asked, MAX_RETRY_AFTER),
    )


def _redirect(status: int, headers: Mapping[str, str]) -> Failed:
    # Every request would be redirected the same way: the address is wrong, not this row.
    location = _header(headers, "Location")
    where = ""
    if location:
        # A redirect often repeats the query string, and with it the API key: show no query.
        target = urlsplit(location.strip())
        where = f" to {target.scheme}://{target.netloc}{target.path}" if target.netloc else ""
    return Failed(
        kind=FailureKind.FATAL,
        http_status=status,
        error_type=f"HTTP_{status}",
        message=f"the API address answers with a redirect (HTTP {status}{where}); "
        "set --api-url to the address the API really uses",
    )


def _json_or_none(body: bytes) -> Any:
    if not body:
        return None
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return None


def _rd_errors(data: Any) -> Iterable[tuple[str | None, str | None, str]]:
    """(field, error_type, message) for each error in any of RD Station's shapes 1-7."""
    if isinstance(data, list):  # shape 4: a bare list
        yield from _error_list(None, data)
        return
    if not isinstance(data, dict):
        return
    errors = data.get("errors")
    if isinstance(errors, dict):
        if "error_type" in errors or "error_message" in errors:  # shape 1
            yield from _error_list(None, [errors])
        else:  # shape 2, or 5 when a field holds {locale: [...]}
            for field, value in errors.items():
                if isinstance(value, dict) and "error_type" not in value and value:
                    # Shape 5: the same errors once per locale; the first locale is enough.
                    value = next(iter(value.values()))
                yield from _error_list(str(field), value)
    elif isinstance(errors, list):  # shape 3
        yield from _error_list(None, errors)
    elif isinstance(errors, str):
        yield None, None, _one_line(errors)
    else:
        for key in ("error_message", "message", "error", "error_description"):  # shapes 6, 7
            said = data.get(key)
            if isinstance(said, str) and said.strip():
                error_type = data.get("error_type")
                yield None, error_type if isinstance(error_type, str) else None, _one_line(said)
                return


def _error_list(field: str | None, items: Any) -> Iterable[tuple[str | None, str | None, str]]:
    if isinstance(items, dict | str):
        items = [items]
    if not isinstance(items, list):
        return
    for item in items:
        if isinstance(item, str):
            yield field, None, _one_line(item)
            continue
        if not isinstance(item, dict):
            continue
        error_type = item.get("error_type")
        error_type = error_type if isinstance(error_type, str) and error_type else None
        message = item.get("error_message") or item.get("message") or ""
        message = _one_line(str(message)) if message else (error_type or "")
        name = field
        path = item.get("path")
        if name is None and isinstance(path, str) and path:
            name = path.removeprefix("$.body.payload.").removeprefix("$.body.")
        rules = item.get("validation_rules")
        options = rules.get("valid_options") if isinstance(rules, dict) else None
        if isinstance(options, list) and options:
            message += " (valid options: " + ", ".join(str(o) for o in options[:10]) + ")"
        yield name, error_type, message


def _join(errors: list[tuple[str | None, str | None, str]]) -> str:
    parts = []
    for field, error_type, message in errors:
        text = f"{field}: {message}" if field else message
        if error_type and error_type != message:
            text += f" ({error_type})"
        parts.append(text)
    return "; ".join(parts)


def _no_detail(body: bytes, data: Any) -> str:
    """Words for an answer that held no RD Station error: empty, HTML, or unexpected JSON."""
    if not body.strip():
        return "an empty body"
    if data is not None:
        return "a JSON body without an error message"
    text = body[:4096].decode("utf-8", errors="replace")
    title = re.search(r"<title[^>]*>(.*?)</title>", text, re.IGNORECASE | re.DOTALL)
    snippet = title.group(1) if title else re.sub(r"<[^>]*>", " ", text)
    snippet = _one_line(snippet)[:_MAX_SNIPPET]
    return f"a non-JSON body: {snippet}" if snippet else "a non-JSON body"


def _retry_after(headers: Mapping[str, str], now: float | None) -> float | None:
    """The longest wait the server asked for, in seconds, from either header it may send."""
    waits = []
    for name in ("retry-after-quotas", "Retry-After"):
        value = _header(headers, name)
        if value is not None:
            seconds = _seconds(value, now)
            if seconds is not None:
                waits.append(seconds)
    return max(waits) if waits else None


def _seconds(value: str, now: float | None) -> float | None:
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if seconds != seconds or seconds in (float("inf"), float("-inf")):  # NaN or infinite
        return None
    return max(0.0, seconds)


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None:  # a plain dict is case-sensitive; aiohttp's headers are not
        lower = name.lower()
        value = next((v for k, v in headers.items() if k.lower() == lower), None)
    return value


def _seconds_text(seconds: float) -> str:
    """``45 s``, ``999,999,999 s``; a wait past any calendar, ``1.0e+308 s``."""
    if seconds < 1e6:
        return f"{seconds:g} s"
    return f"{seconds:,.0f} s" if seconds < 1e12 else f"{seconds:.1e} s"


def _duration(seconds: int) -> str:
    if seconds % 3600 == 0:
        return f"{seconds // 3600} h"
    return f"{seconds} s"


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _clip(text: str) -> str:
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 1] + "…"
