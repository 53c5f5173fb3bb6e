"""The session and one attempt: ``ConversionsClient.post_conversion`` turns a request into
``Sent`` or ``Failed``, noting how far the request got (``reached_server``)."""

from __future__ import annotations

import contextvars
import copy
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, replace
from types import TracebackType
from typing import Any

import aiohttp
import orjson
from yarl import URL

from importer.client.answers import failure_from_response
from importer.client.auth import ApiKeyAuth, RequestAuth
from importer.client.error_shapes import _MAX_SNIPPET, _clip, _json_or_none, _no_detail, _one_line
from importer.client.network import _describe_exception
from importer.client.proxies import _proxy_for
from importer.client.redaction import REDACTED, check_api_url, redact
from importer.records import Failed, FailureKind, Sent


@dataclass(frozen=True, slots=True)
class Reply:
    """A 2xx answer from ``ConversionsClient.request``: its status and body. ``whole`` is False
    when the answer was cut off or too long (what was asked was done; the answer is partial)."""

    status: int
    body: bytes
    whole: bool = True

    def json(self) -> Any:
        """The body as JSON, or None when it is not JSON."""
        try:
            return orjson.loads(self.body)
        except orjson.JSONDecodeError:
            return None


# RD Station's answers are a few hundred bytes (an event_uuid, or a list of errors); reading
# more than this only lets a wrong server fill memory (a 1 GB answer once took 2.6 GB).
MAX_ANSWER_BYTES = 64 * 1024


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
        self._get_headers = {"Accept": "application/json", **auth.headers()}

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
        answer = await self._exchange("POST", self._url, self._headers, body, MAX_ANSWER_BYTES)
        if isinstance(answer, Failed):
            return answer
        status, headers, raw, whole = answer
        if raw is None:
            # A 2xx came, so the conversion was recorded; only the rest of the answer was
            # lost. Resending would record it twice: count it as sent.
            return Sent(event_uuid="", http_status=status)
        if not whole:
            return self._too_long(status, headers, raw)
        if 200 <= status < 300:
            uuid = _event_uuid(raw)
            if uuid is not None:
                return Sent(event_uuid=uuid, http_status=status)
            return self._not_rd_station(status, raw)
        return failure_from_response(status, headers, raw, secret=self._api_key)

    async def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        *,
        query: Mapping[str, str] | None = None,
        max_bytes: int = MAX_ANSWER_BYTES,
    ) -> Reply | Failed:
        """One request to any endpoint under the API address (``path`` starts with ``/``),
        signed like the conversions: the fields list, a contact, its funnel, an event batch.

        A 2xx is a ``Reply`` (``whole`` False when the answer was cut off or longer than
        ``max_bytes``: what the endpoint did is done, only its answer is partial); any other
        status, and every network problem, the same ``Failed`` a conversion gets. Never raises
        for network or HTTP problems.
        """
        url = self._auth.signed_url(self.api_url, path, query)
        headers = self._headers if body is not None else self._get_headers
        answer = await self._exchange(method, url, headers, body, max_bytes)
        if isinstance(answer, Failed):
            return answer
        status, headers_in, raw, whole = answer
        if 200 <= status < 300:
            return Reply(status, raw or b"", whole and raw is not None)
        if not whole and raw is not None:
            return self._too_long(status, headers_in, raw)
        return failure_from_response(status, headers_in, raw or b"", secret=self._api_key)

    async def _exchange(
        self,
        method: str,
        url: URL,
        headers: Mapping[str, str],
        body: bytes | None,
        max_bytes: int,
    ) -> tuple[int, Mapping[str, str], bytes | None, bool] | Failed:
        """(status, headers, the answer, whether it came whole), or the Failed of a request
        that got no status. ``None`` for the answer: a status came, then the rest was lost
        (a non-2xx then gets its message marked as cut off)."""
        session = self._session
        if session is None:
            raise RuntimeError("ConversionsClient is not open: use 'async with ConversionsClient'")
        status: int | None = None
        answer_headers: Mapping[str, str] = {}
        progress = _Progress()
        _ATTEMPT.set(progress)  # this task's own context: other workers have theirs
        try:
            # No redirects: one would turn the POST into a GET and may send the body elsewhere.
            async with session.request(
                method,
                url,
                data=body,
                headers=headers,
                allow_redirects=False,
                proxy=self._proxy,
                proxy_headers=self._proxy_headers,
            ) as resp:
                status, answer_headers = resp.status, resp.headers
                raw, whole = await _read_at_most(resp.content, max_bytes)
                if not whole:
                    resp.close()  # drop the connection: reading the rest is the harm
        except Exception as exc:
            # Not only ClientError: aiohttp also raises ValueError, RuntimeError... whose
            # text may hold the URL, key included. None of them may reach the caller.
            if status is None:
                return self._failure_from_exception(exc, progress)
            if 200 <= status < 300:
                return status, answer_headers, None, False
            # The status alone says what kind of failure this is (a 401 still stops the run).
            failed = failure_from_response(status, answer_headers, b"", secret=self._api_key)
            return replace(failed, message=failed.message + " (the answer was cut off)")
        return status, answer_headers, raw, whole

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
