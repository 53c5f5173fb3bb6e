"""importer.client: every answer and failure becomes Sent/Failed, and the key never shows."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import re
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web
from aiohttp.client_reqrep import ConnectionKey
from aioresponses import aioresponses
from yarl import URL

from helpers import ScriptedResponse, self_signed_tls
from importer.client import (
    ConversionsClient,
    check_api_url,
    conversion_body,
    failure_from_response,
    redact,
)
from importer.errors import InputError
from importer.records import Failed, FailureKind, Sent
from importer.sandbox import SandboxConfig, running_sandbox

KEY = "k3y-Sup3rSecret-0123456789abcdef"
RD = "https://api.rd.services"
ENDPOINT = re.compile(r"^https://api\.rd\.services/platform/conversions\?api_key=.*$")
KEYED_URL = URL(f"{RD}/platform/conversions").with_query(api_key=KEY)
BODY = conversion_body({"conversion_identifier": "feira-2026", "email": "ana@example.com.br"})


def assert_no_key(*things: object, key: str = KEY) -> None:
    for thing in things:
        for text in (str(thing), repr(thing)):
            assert key not in text
            assert "Sup3rSecret" not in text  # no piece of it either


async def post_once(mocked: Callable[[aioresponses], None], **client_kw: Any) -> Sent | Failed:
    with aioresponses() as m:
        mocked(m)
        async with ConversionsClient(RD, KEY, **client_kw) as client:
            result = await client.post_conversion(BODY)
    assert_no_key(result, getattr(result, "message", ""))
    return result


def answer(status: int, body: Any = None, *, raw: bytes | None = None, **headers: str):
    """An aioresponses script of one answer; ``body`` as JSON or ``raw`` bytes."""
    payload = raw if raw is not None else (b"" if body is None else orjson.dumps(body))

    def script(m: aioresponses) -> None:
        m.post(
            ENDPOINT,
            status=status,
            body=payload,
            headers=headers or None,
            response_class=ScriptedResponse,
        )

    return script


def raising(exc: BaseException):
    def script(m: aioresponses) -> None:
        m.post(ENDPOINT, exception=exc)

    return script


# --- the address, the body, redaction ---------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "normalised"),
    [
        ("https://api.rd.services", "https://api.rd.services"),
        ("https://api.rd.services/", "https://api.rd.services"),
        (" HTTPS://api.rd.services/v2/ ", "https://api.rd.services/v2"),
        ("http://127.0.0.1:8080/", "http://127.0.0.1:8080"),
        ("http://127.5.6.7:1", "http://127.5.6.7:1"),
        ("http://localhost:9000", "http://localhost:9000"),
        ("http://LOCALHOST", "http://LOCALHOST"),
        ("http://[::1]:8080", "http://[::1]:8080"),
    ],
)
def test_check_api_url_accepts_https_and_loopback_http(given: str, normalised: str) -> None:
    assert check_api_url(given) == normalised


@pytest.mark.parametrize(
    ("given", "message"),
    [
        (
            "http://example.com",
            "--api-url http://example.com: plain http would send the API key in clear text; "
            "use https (http is allowed only for localhost)",
        ),
        (
            "http://10.0.0.5:8080/",
            "--api-url http://10.0.0.5:8080/: plain http would send the API key in clear text; "
            "use https (http is allowed only for localhost)",
        ),
        (
            "http://localhost.evil.com",
            "--api-url http://localhost.evil.com: plain http would send the API key in clear "
            "text; use https (http is allowed only for localhost)",
        ),
        (
            "ftp://api.rd.services",
            "--api-url ftp://api.rd.services: expected an address like https://api.rd.services",
        ),
        (
            "api.rd.services",
            "--api-url api.rd.services: expected an address like https://api.rd.services",
        ),
        ("https://host:port", "--api-url https://host:port: not a valid URL"),
        (
            f"https://api.rd.services/?api_key={KEY}",
            "--api-url https://api.rd.services/?api_key=***: give the address without ?query or "
            "#fragment (the API key comes from RDSTATION_API_KEY)",
        ),
        (
            "https://user:pw@api.rd.services",
            "--api-url: a user name or password in the address is not supported",
        ),
    ],
)
def test_check_api_url_refuses_clear_text_and_malformed(given: str, message: str) -> None:
    with pytest.raises(InputError) as caught:
        check_api_url(given)
    assert str(caught.value) == message
    assert_no_key(caught.value)


def test_client_refuses_plain_http_to_another_host_before_connecting() -> None:
    with pytest.raises(InputError, match="plain http would send the API key"):
        ConversionsClient("http://api.rd.services", KEY)


def test_conversion_body_wraps_the_payload() -> None:
    payload = {"conversion_identifier": "Conversão", "email": "a@b.com", "tags": ["x"]}
    assert orjson.loads(conversion_body(payload)) == {
        "event_type": "CONVERSION",
        "event_family": "CDP",
        "payload": payload,
    }


@pytest.mark.parametrize(
    ("text", "secret", "expected"),
    [
        ("GET https://h/p?api_key=abc&x=1", "", "GET https://h/p?api_key=***&x=1"),
        ("url: https://h/p?API_KEY=abc", "", "url: https://h/p?API_KEY=***"),
        ("the key is k/+ y", "k/+ y", "the key is ***"),
        ("encoded k%2F%2B%20y and k%2F%2B+y", "k/+ y", "encoded *** and ***"),
        ("nothing here", KEY, "nothing here"),
    ],
)
def test_redact(text: str, secret: str, expected: str) -> None:
    assert redact(text, secret) == expected


def test_redact_catches_the_key_however_a_url_encodes_it() -> None:
    odd_key = "SECRET/+ &=?%x"
    url = URL("https://h/platform/conversions").with_query(api_key=odd_key)
    query_value = url.raw_query_string.removeprefix("api_key=")
    for text in (str(url), url.human_repr(), f"token {query_value}", f"token {odd_key}"):
        assert "SECRET" not in redact(text, odd_key)


def test_client_repr_hides_the_key() -> None:
    client = ConversionsClient(RD, KEY)
    assert repr(client) == "ConversionsClient(api_url='https://api.rd.services', api_key='***')"
    assert_no_key(client, vars(client).get("api_url"))


# --- RD Station's error shapes ----------------------------------------------------------------

SHAPE_2 = {
    "errors": {
        "email": [{"error_type": "CANNOT_BE_NULL", "error_message": "email cannot be null."}],
        "linkedin": [{"error_type": "INVALID_FORMAT", "error_message": "linkedin is invalid."}],
    }
}
SHAPE_3 = {
    "errors": [
        {
            "error_type": "INVALID_OPTION",
            "error_message": "Must be one of the valid options.",
            "path": "$.body.event_type",
            "validation_rules": {"valid_options": ["CONVERSION", "OPPORTUNITY"]},
        }
    ]
}
SHAPE_4 = [
    {
        "error_type": "CANNOT_BE_NULL",
        "error_message": "payload cannot be null.",
        "path": "$.body.payload",
    }
]
SHAPE_5 = {
    "errors": {
        "cf_plano": {
            "pt-BR": [{"error_type": "INVALID", "error_message": "Valor inválido."}],
            "en-US": [{"error_type": "INVALID", "error_message": "Invalid value."}],
        }
    }
}
LEAD_LIMITER = {
    "error": "'lead_limiter' rate limit exceeded for 86400 second(s) period for key "
    "'ana@example.com.br'",
    "max": 24,
    "usage": 25,
    "remaining_time": 43067,
}
GATEWAY = {"message": "API rate limit exceeded"}
HTML_502 = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n</body>\r\n</html>\r\n"
)
RATE_MSG = "RD Station's request limit for this account was reached (HTTP 429: API rate limit "
LEAD_MSG = (
    "this lead's email hit RD Station's per-lead limit (24 conversions per 24 h); the conversion "
    "was not recorded: the row can be resumed tomorrow"
)


@pytest.mark.parametrize(
    ("status", "body", "kind", "error_type", "message"),
    [
        (
            400,
            {"errors": {"error_type": "BAD_REQUEST", "error_message": "Malformed JSON."}},
            FailureKind.REJECTED,
            "BAD_REQUEST",
            "Malformed JSON. (BAD_REQUEST)",
        ),
        (
            400,
            SHAPE_2,
            FailureKind.REJECTED,
            "CANNOT_BE_NULL",
            "email: email cannot be null. (CANNOT_BE_NULL); "
            "linkedin: linkedin is invalid. (INVALID_FORMAT)",
        ),
        (
            400,
            SHAPE_3,
            FailureKind.REJECTED,
            "INVALID_OPTION",
            "event_type: Must be one of the valid options. (valid options: CONVERSION, "
            "OPPORTUNITY) (INVALID_OPTION)",
        ),
        (
            400,
            SHAPE_4,
            FailureKind.REJECTED,
            "CANNOT_BE_NULL",
            "payload: payload cannot be null. (CANNOT_BE_NULL)",
        ),
        (
            422,
            SHAPE_5,
            FailureKind.REJECTED,
            "INVALID",
            "cf_plano: Valor inválido. (INVALID)",
        ),
        (
            404,
            {"errors": {"error_type": "RESOURCE_NOT_FOUND", "error_message": "Not found."}},
            FailureKind.REJECTED,
            "RESOURCE_NOT_FOUND",
            "Not found. (RESOURCE_NOT_FOUND)",
        ),
        (
            415,
            {
                "errors": {
                    "error_type": "UNSUPPORTED_MEDIA_TYPE",
                    "error_message": "Content-Type must be application/json.",
                }
            },
            FailureKind.REJECTED,
            "UNSUPPORTED_MEDIA_TYPE",
            "Content-Type must be application/json. (UNSUPPORTED_MEDIA_TYPE)",
        ),
        (
            413,
            {"message": "Request size limit exceeded"},
            FailureKind.REJECTED,
            "HTTP_413",
            "Request size limit exceeded",
        ),
        (
            401,
            {"errors": {"error_type": "UNAUTHORIZED", "error_message": "Invalid token."}},
            FailureKind.AUTH_REFUSED,
            "UNAUTHORIZED",
            "RD Station refused the API key (HTTP 401: Invalid token.); check RDSTATION_API_KEY",
        ),
        (
            403,
            None,
            FailureKind.AUTH_REFUSED,
            "HTTP_403",
            "RD Station refused the API key (HTTP 403 with an empty body); check RDSTATION_API_KEY",
        ),
        (
            429,
            LEAD_LIMITER,
            FailureKind.LEAD_LIMITED,
            "LEAD_LIMITED",
            LEAD_MSG,
        ),
        (429, GATEWAY, FailureKind.RATE_LIMITED, "RATE_LIMITED", RATE_MSG + "exceeded)"),
        (
            429,
            None,
            FailureKind.RATE_LIMITED,
            "RATE_LIMITED",
            "RD Station's request limit for this account was reached (HTTP 429 with an empty body)",
        ),
        (
            500,
            {"errors": {"error_type": "INTERNAL_ERROR", "error_message": "Something broke."}},
            FailureKind.TRANSIENT,
            "INTERNAL_ERROR",
            "RD Station answered HTTP 500: Something broke. (INTERNAL_ERROR)",
        ),
        (
            503,
            None,
            FailureKind.TRANSIENT,
            "HTTP_503",
            "RD Station answered HTTP 503 with an empty body",
        ),
        (
            408,
            None,
            FailureKind.TRANSIENT,
            "HTTP_408",
            "RD Station answered HTTP 408 with an empty body",
        ),
        (
            400,
            {"unexpected": True},
            FailureKind.REJECTED,
            "HTTP_400",
            "RD Station answered HTTP 400 with a JSON body without an error message",
        ),
    ],
)
async def test_post_conversion_turns_each_shape_into_one_line(
    status: int, body: Any, kind: FailureKind, error_type: str, message: str
) -> None:
    result = await post_once(answer(status, body))
    assert result == Failed(kind, status, error_type, message)
    assert "\n" not in result.message
    assert "ana@example.com.br" not in result.message  # the lead limiter's email stays out


@pytest.mark.parametrize(
    ("status", "raw", "kind", "message"),
    [
        (
            502,
            HTML_502,
            FailureKind.TRANSIENT,
            "RD Station answered HTTP 502 with a non-JSON body: 502 Bad Gateway",
        ),
        (
            500,
            b"Internal Server Error",
            FailureKind.TRANSIENT,
            "RD Station answered HTTP 500 with a non-JSON body: Internal Server Error",
        ),
        (
            400,
            b"<p>bad\n request</p>",
            FailureKind.REJECTED,
            "RD Station answered HTTP 400 with a non-JSON body: bad request",
        ),
        (404, b"   ", FailureKind.REJECTED, "RD Station answered HTTP 404 with an empty body"),
        (
            404,
            f"no route for /platform/conversions?api_key={KEY}".encode(),
            FailureKind.REJECTED,
            "RD Station answered HTTP 404 with a non-JSON body: no route for "
            "/platform/conversions?api_key=***",
        ),
        (
            400,
            f"echo {KEY} and {KEY}".encode() * 200,  # the clip must not cut the key in two
            FailureKind.REJECTED,
            None,
        ),
    ],
)
async def test_post_conversion_reads_bodies_that_are_not_json(
    status: int, raw: bytes, kind: FailureKind, message: str | None
) -> None:
    result = await post_once(answer(status, raw=raw))
    assert isinstance(result, Failed)
    assert (result.kind, result.http_status, result.error_type) == (kind, status, f"HTTP_{status}")
    if message is not None:
        assert result.message == message
    assert len(result.message) <= 1000


def test_failure_from_response_keeps_the_key_out_even_when_clipped() -> None:
    body = (b"x" * 995 + KEY.encode()) * 2
    failed = failure_from_response(500, {}, body, secret=KEY)
    assert_no_key(failed, failed.message)
    assert KEY[:4] not in failed.message


@pytest.mark.parametrize(
    ("headers", "retry_after", "suffix"),
    [
        ({}, None, ""),
        ({"retry-after-quotas": "12"}, 12.0, "; it asks to wait 12 s"),
        ({"Retry-After": "30"}, 30.0, "; it asks to wait 30 s"),
        ({"RETRY-AFTER-QUOTAS": "5", "retry-after": "7"}, 7.0, "; it asks to wait 7 s"),
        ({"Retry-After": "Thu, 01 Jan 2026 00:00:45 GMT"}, 45.0, "; it asks to wait 45 s"),
        ({"Retry-After": "Wed, 31 Dec 2025 23:00:00 GMT"}, 0.0, "; it asks to wait 0 s"),
        ({"Retry-After": "soon", "ratelimit-limit-quotas": "120"}, None, ""),
    ],
)
def test_gateway_429_takes_its_wait_from_the_headers(
    headers: dict[str, str], retry_after: float | None, suffix: str
) -> None:
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC).timestamp()
    failed = failure_from_response(429, headers, orjson.dumps(GATEWAY), now=now)
    assert failed == Failed(
        FailureKind.RATE_LIMITED, 429, "RATE_LIMITED", RATE_MSG + "exceeded)" + suffix, retry_after
    )
    assert failed.kind.retry_now


async def test_gateway_429_through_the_client_keeps_retry_after() -> None:
    result = await post_once(answer(429, GATEWAY, **{"retry-after-quotas": "9"}))
    assert isinstance(result, Failed)
    assert (result.kind, result.retry_after) == (FailureKind.RATE_LIMITED, 9.0)


async def test_lead_limiter_with_headers_is_still_the_lead_limit() -> None:
    result = await post_once(answer(429, LEAD_LIMITER, **{"Retry-After": "60"}))
    assert result == Failed(FailureKind.LEAD_LIMITED, 429, "LEAD_LIMITED", LEAD_MSG)
    assert not result.kind.retry_now


def test_lead_limiter_without_its_numbers_still_says_so() -> None:
    failed = failure_from_response(429, {}, b'{"error": "\'lead_limiter\' rate limit exceeded"}')
    assert failed.kind is FailureKind.LEAD_LIMITED
    assert failed.message == (
        "this lead's email hit RD Station's per-lead limit; the conversion was not recorded: "
        "the row can be resumed tomorrow"
    )


async def test_503_keeps_retry_after() -> None:
    result = await post_once(answer(503, None, **{"Retry-After": "3"}))
    assert isinstance(result, Failed)
    assert (result.kind, result.retry_after) == (FailureKind.TRANSIENT, 3.0)


async def test_redirect_is_fatal_and_its_location_loses_the_query() -> None:
    location = f"https://other.example/platform/conversions?api_key={KEY}"
    result = await post_once(answer(301, None, Location=location))
    assert result == Failed(
        FailureKind.FATAL,
        301,
        "HTTP_301",
        "the API address answers with a redirect (HTTP 301 to "
        "https://other.example/platform/conversions); set --api-url to the address the API "
        "really uses",
    )


# --- success --------------------------------------------------------------------------------


async def test_success_sends_the_body_to_the_keyed_url_as_json() -> None:
    with aioresponses() as m:
        m.post(
            ENDPOINT,
            status=200,
            payload={"event_uuid": "5408c5a3-4711"},
            response_class=ScriptedResponse,
        )
        async with ConversionsClient(RD + "/", KEY) as client:
            result = await client.post_conversion(BODY)
        ((method, url), calls) = next(iter(m.requests.items()))
    assert result == Sent("5408c5a3-4711", 200)
    assert (method, url) == ("POST", KEYED_URL)
    assert calls[0].kwargs["data"] == BODY
    assert calls[0].kwargs["headers"]["Content-Type"] == "application/json"
    assert calls[0].kwargs["allow_redirects"] is False


@pytest.mark.parametrize(
    "raw",
    [b'{"status": "ok"}', b"", b"OK", b'["x"]', b'{"event_uuid": null}', b'{"event_uuid": 7}'],
)
async def test_2xx_without_an_event_uuid_counts_as_sent(raw: bytes) -> None:
    # RD Station recorded it: a retry, or a re-import from failures.csv, would duplicate it.
    assert await post_once(answer(200, raw=raw)) == Sent("", 200)


async def test_201_with_uuid_is_sent() -> None:
    assert await post_once(answer(201, {"event_uuid": "u-1"})) == Sent("u-1", 201)


async def test_a_sequence_500_500_200_on_one_session() -> None:
    with aioresponses() as m:
        m.post(ENDPOINT, status=500, body=b"", response_class=ScriptedResponse)
        m.post(ENDPOINT, status=502, body=HTML_502, response_class=ScriptedResponse)
        m.post(
            ENDPOINT, status=200, payload={"event_uuid": "third"}, response_class=ScriptedResponse
        )
        async with ConversionsClient(RD, KEY) as client:
            results = [await client.post_conversion(BODY) for _ in range(3)]
    assert [getattr(r, "kind", None) for r in results[:2]] == [FailureKind.TRANSIENT] * 2
    assert results[2] == Sent("third", 200)
    assert_no_key(*results)


async def test_post_before_opening_is_a_programming_error() -> None:
    client = ConversionsClient(RD, KEY)
    with pytest.raises(RuntimeError, match="async with") as caught:
        await client.post_conversion(BODY)
    assert_no_key(caught.value)


# --- network failures, scripted ---------------------------------------------------------------

_CONN_KEY = ConnectionKey("api.rd.services", 443, True, True, None, None, None)
_REQUEST_INFO = aiohttp.RequestInfo(KEYED_URL, "POST", None, KEYED_URL)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("exc", "error_type", "message"),
    [
        (
            aiohttp.ServerDisconnectedError(),
            "CONNECTION_ERROR",
            "api.rd.services closed the connection before answering",
        ),
        (
            aiohttp.ClientOSError(104, "Connection reset by peer"),
            "CONNECTION_ERROR",
            "the connection to api.rd.services failed (connection reset by peer)",
        ),
        (
            aiohttp.ClientConnectionResetError("Cannot write to closing transport"),
            "CONNECTION_ERROR",
            "the connection to api.rd.services failed (connection reset)",
        ),
        (
            ConnectionResetError(104, "Connection reset by peer"),
            "CONNECTION_ERROR",
            "the connection to api.rd.services failed (connection reset by peer)",
        ),
        (TimeoutError(), "TIMEOUT", "no answer from api.rd.services within 30 s"),
        (
            aiohttp.SocketTimeoutError(f"Timeout on reading data from {KEYED_URL}"),
            "TIMEOUT",
            "no answer from api.rd.services within 30 s",
        ),
        (
            aiohttp.ClientConnectorDNSError(_CONN_KEY, OSError(-2, "Name or service not known")),
            "CONNECTION_ERROR",
            "could not resolve the host api.rd.services (name or service not known)",
        ),
        (
            aiohttp.ClientConnectorError(_CONN_KEY, ConnectionRefusedError(111, "refused")),
            "CONNECTION_ERROR",
            "could not connect to api.rd.services (connection refused)",
        ),
        (
            aiohttp.ClientPayloadError(f"Response payload is not completed for {KEYED_URL}"),
            "CONNECTION_ERROR",
            "the answer from api.rd.services was cut off",
        ),
        (
            aiohttp.ClientResponseError(_REQUEST_INFO, (), status=0, message=str(KEYED_URL)),
            "CONNECTION_ERROR",
            "the answer from api.rd.services was not valid HTTP",
        ),
        (
            aiohttp.ClientConnectorSSLError(_CONN_KEY, ssl.SSLError(1, "WRONG_VERSION_NUMBER")),
            "TLS_ERROR",
            "TLS handshake with api.rd.services failed: WRONG_VERSION_NUMBER",
        ),
    ],
)
async def test_network_failures_are_transient_and_keyless(
    exc: BaseException, error_type: str, message: str
) -> None:
    result = await post_once(raising(exc))
    assert result == Failed(FailureKind.TRANSIENT, None, error_type, message)
    assert result.kind.retry_now


async def test_invalid_url_is_fatal_and_keyless() -> None:
    exc = aiohttp.InvalidURL(KEYED_URL)
    assert KEY in str(exc)
    result = await post_once(raising(exc))
    assert result == Failed(
        FailureKind.FATAL,
        None,
        "INVALID_URL",
        "the API address is not a valid URL; check --api-url",
    )


async def test_timeout_message_names_the_configured_timeout() -> None:
    result = await post_once(raising(TimeoutError()), timeout=2.5)
    assert isinstance(result, Failed)
    assert result.message == "no answer from api.rd.services within 2.5 s"


# --- real servers on 127.0.0.1 ------------------------------------------------------------------


@contextlib.asynccontextmanager
async def serve(
    app: web.Application, ssl_context: ssl.SSLContext | None = None
) -> AsyncIterator[str]:
    """Serve ``app`` on a free 127.0.0.1 port; yields its base URL."""
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    site = web.SockSite(runner, sock, ssl_context=ssl_context)
    await site.start()
    scheme = "https" if ssl_context else "http"
    try:
        yield f"{scheme}://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def raw_server(
    handle: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
) -> AsyncIterator[str]:
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        server.close()
        await server.wait_closed()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_local_server_receives_the_key_in_the_query_and_json_body() -> None:
    seen: list[tuple[str | None, str | None, bytes]] = []

    async def conversions(request: web.Request) -> web.Response:
        seen.append((request.query.get("api_key"), request.content_type, await request.read()))
        return web.json_response({"event_uuid": f"uuid-{len(seen)}"})

    app = web.Application()
    app.router.add_post("/platform/conversions", conversions)
    async with serve(app) as url, ConversionsClient(url, KEY, max_connections=2) as client:
        results = await asyncio.gather(*(client.post_conversion(BODY) for _ in range(5)))
    assert sorted(r.event_uuid for r in results if isinstance(r, Sent)) == [
        f"uuid-{i}" for i in range(1, 6)
    ]
    assert seen == [(KEY, "application/json", BODY)] * 5


async def test_connection_refused() -> None:
    port = free_port()  # bound then released: nothing listens there now
    async with ConversionsClient(f"http://127.0.0.1:{port}", KEY) as client:
        result = await client.post_conversion(BODY)
    assert result == Failed(
        FailureKind.TRANSIENT,
        None,
        "CONNECTION_ERROR",
        f"could not connect to 127.0.0.1:{port} (connection refused)",
    )
    assert_no_key(result, result.message)


async def test_server_that_closes_the_socket_without_answering() -> None:
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.close()
        await writer.wait_closed()

    async with raw_server(hang_up) as url, ConversionsClient(url, KEY) as client:
        result = await client.post_conversion(BODY)
    host = url.removeprefix("http://")
    assert result == Failed(
        FailureKind.TRANSIENT,
        None,
        "CONNECTION_ERROR",
        f"{host} closed the connection before answering",
    )
    assert_no_key(result, result.message)


async def test_server_that_answers_200_then_cuts_the_body_counts_as_sent() -> None:
    async def cut_short(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{"event_uu')
        await writer.drain()
        writer.close()
        await writer.wait_closed()

    async with raw_server(cut_short) as url, ConversionsClient(url, KEY) as client:
        assert await client.post_conversion(BODY) == Sent("", 200)


async def test_server_that_answers_401_then_cuts_the_body_still_refuses_the_key() -> None:
    async def cut_short(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b'HTTP/1.1 401 Unauthorized\r\nContent-Length: 100\r\n\r\n{"err')
        await writer.drain()
        writer.close()
        await writer.wait_closed()

    async with raw_server(cut_short) as url, ConversionsClient(url, KEY) as client:
        result = await client.post_conversion(BODY)
    assert result == Failed(
        FailureKind.AUTH_REFUSED,
        401,
        "HTTP_401",
        "RD Station refused the API key (HTTP 401 with an empty body); check RDSTATION_API_KEY "
        "(the answer was cut off)",
    )
    assert_no_key(result, result.message)


async def test_slow_server_times_out_and_cancellation_still_propagates() -> None:
    release = asyncio.Event()

    async def slow(request: web.Request) -> web.Response:
        await release.wait()
        return web.json_response({"event_uuid": "late"})

    app = web.Application()
    app.router.add_post("/platform/conversions", slow)
    async with serve(app) as url:
        async with ConversionsClient(url, KEY, timeout=0.2) as client:
            result = await client.post_conversion(BODY)
            host = url.removeprefix("http://")
            assert result == Failed(
                FailureKind.TRANSIENT, None, "TIMEOUT", f"no answer from {host} within 0.2 s"
            )
            assert_no_key(result, result.message)
        async with ConversionsClient(url, KEY, timeout=60) as client:
            task = asyncio.create_task(client.post_conversion(BODY))
            await asyncio.sleep(0.05)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        release.set()


async def test_self_signed_tls_certificate_is_refused_as_fatal(tmp_path: Path) -> None:
    context = self_signed_tls(tmp_path)

    async def conversions(request: web.Request) -> web.Response:
        return web.json_response({"event_uuid": "over-tls"})

    app = web.Application()
    app.router.add_post("/platform/conversions", conversions)
    async with serve(app, context) as url:
        # The server itself works: only verification stands in the way.
        async with (
            aiohttp.ClientSession() as unverified,
            unverified.post(url + "/platform/conversions", ssl=False) as resp,
        ):
            assert resp.status == 200
        async with ConversionsClient(url, KEY) as client:
            result = await client.post_conversion(BODY)
    host = url.removeprefix("https://")
    assert isinstance(result, Failed)
    assert (result.kind, result.http_status, result.error_type) == (
        FailureKind.FATAL,
        None,
        "TLS_CERTIFICATE",
    )
    assert re.fullmatch(
        rf"TLS certificate of {re.escape(host)} could not be verified: self[- ]signed certificate",
        result.message,
    )
    assert not result.kind.retry_now
    assert_no_key(result, result.message)


async def test_https_to_a_plain_http_port_is_a_tls_error(tmp_path: Path) -> None:
    app = web.Application()
    async with serve(app) as url:
        https_url = url.replace("http://", "https://")
        async with ConversionsClient(https_url, KEY) as client:
            result = await client.post_conversion(BODY)
    assert isinstance(result, Failed)
    assert (result.kind, result.error_type) == (FailureKind.TRANSIENT, "TLS_ERROR")
    assert result.message.startswith(f"TLS handshake with {https_url[8:]} failed: ")
    assert_no_key(result, result.message)


# --- against the project's sandbox ------------------------------------------------------------


def _payload(email: str = "ana@example.com.br", **more: Any) -> bytes:
    return conversion_body({"conversion_identifier": "feira-2026", "email": email, **more})


async def test_sandbox_accepts_rejects_and_limits() -> None:
    config = SandboxConfig(lead_limit=1)
    async with running_sandbox(config) as sandbox, ConversionsClient(sandbox.url, KEY) as client:
        sent = await client.post_conversion(_payload())
        bad = await client.post_conversion(_payload("not-an-email", linkedin="a b"))
        limited = await client.post_conversion(_payload())
        huge = await client.post_conversion(_payload(name="x" * 210_000))
        accepted = sandbox.snapshot()["accepted"]
    assert isinstance(sent, Sent)
    assert [a["event_uuid"] for a in accepted] == [sent.event_uuid]
    assert accepted[0]["payload"]["email"] == "ana@example.com.br"
    assert isinstance(bad, Failed)
    assert (bad.kind, bad.http_status) == (FailureKind.REJECTED, 400)
    assert bad.message.startswith("email: ")
    assert "linkedin: " in bad.message
    assert limited == Failed(
        FailureKind.LEAD_LIMITED,
        429,
        "LEAD_LIMITED",
        LEAD_MSG.replace("(24 conversions", "(1 conversions"),
    )
    assert isinstance(huge, Failed)
    assert (huge.kind, huge.http_status) == (FailureKind.REJECTED, 413)
    assert_no_key(sent, bad, limited, huge, bad.message, huge.message)


async def test_sandbox_refused_key_rate_limit_and_faults() -> None:
    async with running_sandbox(SandboxConfig(rate_limit=1, rate_window=60)) as sandbox:
        async with ConversionsClient(sandbox.url, "revoked-key") as client:
            refused = await client.post_conversion(_payload())
        async with ConversionsClient(sandbox.url, KEY) as client:
            first = await client.post_conversion(_payload())
            throttled = await client.post_conversion(_payload())
    assert refused == Failed(
        FailureKind.AUTH_REFUSED,
        401,
        "UNAUTHORIZED",
        refused.message,
    )
    assert refused.message.startswith("RD Station refused the API key (HTTP 401: ")
    assert "revoked-key" not in refused.message
    assert isinstance(first, Sent)
    assert isinstance(throttled, Failed)
    assert throttled.kind is FailureKind.RATE_LIMITED
    assert throttled.retry_after is not None and 0 < throttled.retry_after <= 60

    for config, error_type in [
        (SandboxConfig(fail_ratio=1.0, seed=1), None),
        (SandboxConfig(drop_ratio=1.0), "CONNECTION_ERROR"),
        (SandboxConfig(accept_then_drop_ratio=1.0), "CONNECTION_ERROR"),
    ]:
        async with running_sandbox(config) as sandbox, ConversionsClient(sandbox.url, KEY) as c:
            result = await c.post_conversion(_payload())
        assert isinstance(result, Failed)
        assert result.kind is FailureKind.TRANSIENT
        assert error_type is None or result.error_type == error_type
        assert_no_key(result, result.message)
