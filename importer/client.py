"""The one place that talks HTTP to RD Station: ``POST {api_url}/platform/conversions``.

Every answer becomes a plain value from ``importer.records``:

    Sent(event_uuid)                     2xx: the conversion was recorded
    Failed(kind, http_status, error_type, message, retry_after)
      TRANSIENT      5xx, 408, connection refused / reset / DNS failure / closed, timeout
      RATE_LIMITED   429 from the gateway (the account's budget): pause everyone, retry
      LEAD_LIMITED   429 from RD Station's per-lead limiter: fail the row, try tomorrow
      AUTH_REFUSED   401, 403: the API key is refused: stop the run
      REJECTED       other 4xx: RD Station refused this row, in its own words
      FATAL          TLS certificate not verified, API address redirects or is invalid

No aiohttp exception leaves this module, and the API key (which travels in the URL's query
string) appears in no message: messages are built from the exception's type and the host only,
then passed through ``redact`` as a second guard.

Where a request goes and how it proves who sends it is one small strategy, ``auth``:
``ApiKeyAuth`` (the default: ``/platform/conversions?api_key=KEY``) or ``BearerAuth`` (OAuth:
``/platform/events?event_type=conversion`` with ``Authorization: Bearer TOKEN``). Either way its
secret is what every message is redacted with. The body and every answer are the same.
"""

from __future__ import annotations

import copy
import email.utils
import functools
import ipaddress
import os
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import replace
from types import TracebackType
from typing import Any, Protocol
from urllib.parse import quote, quote_plus, urlsplit

import aiohttp
import orjson
from yarl import URL

from importer.errors import InputError
from importer.records import Failed, FailureKind, Sent

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

_API_KEY_IN_URL = re.compile(r"(api_key=)[^&\s#\"'<>]*", re.IGNORECASE)


def redact(text: str, secret: str) -> str:
    """``text`` with ``secret`` (raw or URL-encoded) and any ``api_key=...`` value masked."""
    if secret:
        for form in _secret_forms(secret):
            text = text.replace(form, REDACTED)
    if "api_key=" in text.lower():
        text = _API_KEY_IN_URL.sub(r"\1" + REDACTED, text)
    return text


@functools.lru_cache(maxsize=8)
def _secret_forms(secret: str) -> tuple[str, ...]:
    # The key as typed, and as each encoder may have written it into a URL's query.
    in_yarl = URL("http://h/").with_query(k=secret).raw_query_string.removeprefix("k=")
    forms = {secret, quote(secret, safe=""), quote_plus(secret), in_yarl}
    return tuple(sorted((f for f in forms if f), key=len, reverse=True))


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
    """

    def __init__(
        self,
        api_url: str,
        api_key: str = "",
        *,
        auth: RequestAuth | None = None,
        timeout: float = 30.0,
        max_connections: int = 8,
    ) -> None:
        self.api_url = check_api_url(api_url)
        self._timeout = timeout
        self._max_connections = max_connections
        self._use(auth if auth is not None else ApiKeyAuth(api_key))
        self._session: aiohttp.ClientSession | None = None

    def _use(self, auth: RequestAuth) -> None:
        self._auth = auth
        self._api_key = auth.secret  # the secret every message is redacted with
        # Built once: yarl parses and encodes here, not on each of thousands of requests.
        self._url = auth.url(self.api_url)
        host = self._url.host or ""
        if ":" in host:
            host = f"[{host}]"
        self.host = f"{host}:{self._url.explicit_port}" if self._url.explicit_port else host
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
                connector=aiohttp.TCPConnector(limit=self._max_connections, ssl=True),
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
        try:
            # No redirects: one would turn the POST into a GET and may send the body elsewhere.
            async with session.post(
                self._url, data=body, headers=self._headers, allow_redirects=False
            ) as resp:
                status, headers = resp.status, resp.headers
                raw = await resp.read()
        except Exception as exc:
            # Not only ClientError: aiohttp also raises ValueError, RuntimeError... whose
            # text may hold the URL, key included. None of them may reach the caller.
            if status is None:
                return self._failure_from_exception(exc, None)
            if 200 <= status < 300:
                # RD Station answered 2xx, so it recorded the conversion; only the rest of the
                # answer was lost. Resending would record it twice: count it as sent.
                return Sent(event_uuid="", http_status=status)
            # The status alone says what kind of failure this is (a 401 still stops the run).
            failed = failure_from_response(status, headers, b"", secret=self._api_key)
            return replace(failed, message=failed.message + " (the answer was cut off)")

        if 200 <= status < 300:
            return _sent(status, raw)
        return failure_from_response(status, headers, raw, secret=self._api_key)

    def _failure_from_exception(self, exc: BaseException, status: int | None) -> Failed:
        kind, error_type, message = _describe_exception(exc, self.host, self._timeout)
        return Failed(
            kind=kind,
            http_status=status,
            error_type=error_type,
            message=redact(message, self._api_key),
        )


def _sent(status: int, raw: bytes) -> Sent:
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        data = None
    uuid = data.get("event_uuid") if isinstance(data, dict) else None
    # A 2xx without an event_uuid is still a recorded conversion: RD Station answers 2xx only
    # when it accepted the event. Calling it a failure would have the row retried or re-imported
    # from failures.csv, a duplicate conversion on the lead's timeline. So: sent, uuid unknown.
    return Sent(event_uuid=uuid if isinstance(uuid, str) else "", http_status=status)


def _describe_exception(
    exc: BaseException, host: str, timeout: float
) -> tuple[FailureKind, str, str]:
    """Kind, error_type and message for a failed request, never from ``str(exc)``.

    ``str()`` of aiohttp's exceptions often holds the full URL, and with it the API key.
    Only the host, the exception's type and OS / TLS reason texts (which hold no URL) are used.
    """
    transient = FailureKind.TRANSIENT
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        reason = _tls_reason(exc.certificate_error)
        return (
            FailureKind.FATAL,
            "TLS_CERTIFICATE",
            f"TLS certificate of {host} could not be verified: {reason}",
        )
    if isinstance(exc, aiohttp.ClientSSLError):
        # A failed handshake other than the certificate (e.g. https to a plain-http port)
        # gets a few retries like any connection error, then fails the row with this reason.
        reason = _tls_reason(getattr(exc, "os_error", exc))
        return transient, "TLS_ERROR", f"TLS handshake with {host} failed: {reason}"
    if isinstance(exc, TimeoutError):
        return transient, "TIMEOUT", f"no answer from {host} within {timeout:g} s"
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return (
            transient,
            "CONNECTION_ERROR",
            f"could not resolve the host {host}{_os_reason(exc.os_error)}",
        )
    if isinstance(exc, aiohttp.ClientConnectorError):
        return (
            transient,
            "CONNECTION_ERROR",
            f"could not connect to {host}{_os_reason(exc.os_error)}",
        )
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return transient, "CONNECTION_ERROR", f"{host} closed the connection before answering"
    if isinstance(exc, OSError):
        return transient, "CONNECTION_ERROR", f"the connection to {host} failed{_os_reason(exc)}"
    if isinstance(exc, aiohttp.ClientPayloadError):
        return transient, "CONNECTION_ERROR", f"the answer from {host} was cut off"
    if isinstance(exc, aiohttp.ClientResponseError):
        # Raised while parsing an answer that is not valid HTTP (no redirects are followed).
        return transient, "CONNECTION_ERROR", f"the answer from {host} was not valid HTTP"
    if isinstance(exc, aiohttp.InvalidURL):
        return (
            FailureKind.FATAL,
            "INVALID_URL",
            "the API address is not a valid URL; check --api-url",
        )
    return (
        transient,
        "CONNECTION_ERROR",
        f"the request to {host} failed ({type(exc).__name__})",
    )


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
    retry_after = _retry_after(headers, now)

    if status == 429:
        failed = _too_many_requests(data, errors, retry_after, body)
    elif status in (401, 403):
        failed = Failed(
            kind=FailureKind.AUTH_REFUSED,
            http_status=status,
            error_type=rd_type or f"HTTP_{status}",
            message=f"RD Station refused the API key ({_status_said(status, errors, body, data)}); "
            "check RDSTATION_API_KEY",
        )
    elif 300 <= status < 400:
        failed = _redirect(status, headers)
    else:
        failed = _other_status(status, errors, body, data, retry_after)
        if rd_type:
            failed = replace(failed, error_type=rd_type)
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
    retry_after: float | None,
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
    wait = f"; it asks to wait {retry_after:g} s" if retry_after is not None else ""
    return Failed(
        kind=FailureKind.RATE_LIMITED,
        http_status=429,
        error_type="RATE_LIMITED",
        message=f"RD Station's request limit for this account was reached "
        f"({_status_said(429, errors, body, data)}){wait}",
        retry_after=retry_after,
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


def _duration(seconds: int) -> str:
    if seconds % 3600 == 0:
        return f"{seconds // 3600} h"
    return f"{seconds} s"


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _clip(text: str) -> str:
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 1] + "…"
