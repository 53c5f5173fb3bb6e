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
from urllib.parse import quote, quote_plus

import aiohttp
import orjson
import pytest
from aiohttp import web
from aiohttp.client_reqrep import ConnectionKey
from aioresponses import aioresponses
from yarl import URL

from helpers import ScriptedResponse, self_signed_tls
from importer.client import (
    MAX_ANSWER_BYTES,
    BearerAuth,
    ConversionsClient,
    Reply,
    check_api_url,
    conversion_body,
    failure_from_response,
    redact,
)
from importer.errors import InputError
from importer.records import MAX_RETRY_AFTER, Failed, FailureKind, Sent
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
    ("status", "raw", "came"),
    [
        (200, b'{"status": "ok"}', 'a JSON body: {"status": "ok"}'),
        (200, b"", "an empty body"),
        (204, b" \r\n", "an empty body"),
        (200, b"OK", "a non-JSON body: OK"),
        (200, b'["x"]', 'a JSON body: ["x"]'),
        (200, b'{"event_uuid": null}', 'a JSON body: {"event_uuid": null}'),
        (200, b'{"event_uuid": 7}', 'a JSON body: {"event_uuid": 7}'),
        (200, b'{"event_uuid": ""}', 'a JSON body: {"event_uuid": ""}'),
        (201, b'{"event_uuid": "a\\nb"}', 'a JSON body: {"event_uuid": "a\\nb"}'),
        (
            200,
            b"<html><head><title>Hotel Wi-Fi: log in</title></head><body>...</body></html>",
            "a non-JSON body: Hotel Wi-Fi: log in",
        ),
        (
            200,
            f'{{"echo": "/platform/conversions?api_key={KEY}", "also": "{KEY.upper()}"}}'.encode(),
            'a JSON body: {"echo": "/platform/conversions?api_key=***", "also": "***"}',
        ),
        (200, b'{"pad": "' + b"x" * 500 + b'"}', 'a JSON body: {"pad": "' + "x" * 110 + "…"),
    ],
)
async def test_2xx_without_an_event_uuid_is_in_doubt_not_sent(
    status: int, raw: bytes, came: str
) -> None:
    # Not RD Station's answer (a captive portal, a catch-all proxy): counting it as sent would
    # mark rows sent that no one recorded; retrying could record them twice. In doubt.
    result = await post_once(answer(status, raw=raw))
    assert result == Failed(
        FailureKind.UNCERTAIN,
        status,
        "NO_EVENT_UUID",
        f"api.rd.services answered HTTP {status} without the event_uuid RD Station sends "
        f"({came}); the request reached that server, so it may have been recorded",
    )
    assert result.reached_server and result.maybe_recorded and not result.kind.retry_now


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
    ("exc", "error_type", "message", "reached"),
    [
        (
            aiohttp.ServerDisconnectedError(),
            "CONNECTION_ERROR",
            "api.rd.services closed the connection before answering",
            True,
        ),
        (
            aiohttp.ClientOSError(104, "Connection reset by peer"),
            "CONNECTION_ERROR",
            "the connection to api.rd.services failed (connection reset by peer)",
            True,
        ),
        (
            aiohttp.ClientConnectionResetError("Cannot write to closing transport"),
            "CONNECTION_ERROR",
            "the connection to api.rd.services failed (connection reset)",
            True,
        ),
        (
            ConnectionResetError(104, "Connection reset by peer"),
            "CONNECTION_ERROR",
            "the connection to api.rd.services failed (connection reset by peer)",
            True,
        ),
        (TimeoutError(), "TIMEOUT", "no answer from api.rd.services within 30 s", True),
        (
            aiohttp.SocketTimeoutError(f"Timeout on reading data from {KEYED_URL}"),
            "TIMEOUT",
            "no answer from api.rd.services within 30 s",
            True,
        ),
        (
            aiohttp.ConnectionTimeoutError(f"Connection timeout to host {KEYED_URL}"),
            "TIMEOUT",
            "could not connect to api.rd.services within 30 s",
            False,
        ),
        (
            aiohttp.ClientConnectorDNSError(_CONN_KEY, OSError(-2, "Name or service not known")),
            "CONNECTION_ERROR",
            "could not resolve the host api.rd.services (name or service not known)",
            False,
        ),
        (
            aiohttp.ClientConnectorError(_CONN_KEY, ConnectionRefusedError(111, "refused")),
            "CONNECTION_ERROR",
            "could not connect to api.rd.services (connection refused)",
            False,
        ),
        (
            aiohttp.ClientPayloadError(f"Response payload is not completed for {KEYED_URL}"),
            "CONNECTION_ERROR",
            "the answer from api.rd.services was cut off",
            True,
        ),
        (
            aiohttp.ClientResponseError(_REQUEST_INFO, (), status=0, message=str(KEYED_URL)),
            "CONNECTION_ERROR",
            "the answer from api.rd.services was not valid HTTP",
            True,
        ),
        (
            aiohttp.ClientConnectorSSLError(_CONN_KEY, ssl.SSLError(1, "WRONG_VERSION_NUMBER")),
            "TLS_ERROR",
            "TLS handshake with api.rd.services failed: WRONG_VERSION_NUMBER",
            False,
        ),
    ],
)
async def test_network_failures_are_transient_and_keyless(
    exc: BaseException, error_type: str, message: str, reached: bool
) -> None:
    # reached_server: False only where the request surely never left (connecting failed);
    # otherwise it may have been recorded.
    result = await post_once(raising(exc))
    assert result == Failed(
        FailureKind.TRANSIENT, None, error_type, message, reached_server=reached
    )
    assert result.kind.retry_now
    assert result.maybe_recorded is reached


async def test_invalid_url_is_fatal_and_keyless() -> None:
    exc = aiohttp.InvalidURL(KEYED_URL)
    assert KEY in str(exc)
    result = await post_once(raising(exc))
    assert result == Failed(
        FailureKind.FATAL,
        None,
        "INVALID_URL",
        "the API address is not a valid URL; check --api-url",
        reached_server=False,
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
        reached_server=False,
    )
    assert not result.maybe_recorded
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
    assert not result.reached_server
    assert_no_key(result, result.message)


async def test_https_to_a_plain_http_port_is_a_tls_error(tmp_path: Path) -> None:
    app = web.Application()
    async with serve(app) as url:
        https_url = url.replace("http://", "https://")
        async with ConversionsClient(https_url, KEY) as client:
            result = await client.post_conversion(BODY)
    assert isinstance(result, Failed)
    assert (result.kind, result.error_type) == (FailureKind.TRANSIENT, "TLS_ERROR")
    assert not result.reached_server  # the handshake failed: no request went out
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


# --- the network lies (issue 18) --------------------------------------------------------------


@pytest.mark.parametrize(
    "echo",
    [
        KEY.upper(),
        KEY.lower(),
        KEY.encode().hex(),
        KEY.encode().hex().upper(),
        "".join(f"%{b:02x}" for b in KEY.encode()),  # every byte escaped, lower case
        "".join(f"%{b:02X}" for b in KEY.encode()),
        KEY[:-1],  # cut by one character at either end
        KEY[1:],
        KEY.upper()[:-1],
        KEY.encode().hex()[1:],
    ],
)
def test_redact_catches_the_key_as_servers_echo_it(echo: str) -> None:
    masked = redact(f"GET /x?token={echo}&x=1 said: {echo}.", KEY)
    assert masked == "GET /x?token=***&x=1 said: ***."


def test_redact_catches_lower_case_percent_escapes_of_an_odd_key() -> None:
    odd_key = "SECRET/+ &=?%x-123"
    for echo in (quote(odd_key, safe="").lower(), quote_plus(odd_key).lower(), odd_key.upper()):
        assert redact(f"<{echo}>", odd_key) == "<***>", echo


def test_redact_cuts_only_keys_long_enough_to_cut() -> None:
    # A seven-character secret cut by one would be six common characters: not masked alone.
    assert redact("abcdef and abcdefg", "abcdefg") == "abcdef and ***"


@pytest.mark.parametrize(
    ("headers", "asked", "told"),
    [
        ({"Retry-After": "999999999"}, 999999999.0, "999,999,999 s"),
        ({"Retry-After": "1e308"}, 1e308, "1.0e+308 s"),
        ({"Retry-After": "Fri, 31 Dec 9999 23:59:59 GMT"}, None, None),
        ({"retry-after-quotas": "301"}, 301.0, "301 s"),
    ],
)
def test_an_absurd_retry_after_is_capped_and_what_was_asked_kept(
    headers: dict[str, str], asked: float | None, told: str | None
) -> None:
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC).timestamp()
    if asked is None:  # the date: seconds from now to 9999
        asked = dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=dt.UTC).timestamp() - now
        told = f"{asked:,.0f} s"
    failed = failure_from_response(429, headers, orjson.dumps(GATEWAY), now=now)
    assert (failed.kind, failed.retry_after, failed.retry_after_asked) == (
        FailureKind.RATE_LIMITED,
        MAX_RETRY_AFTER,
        asked,
    )
    assert failed.message == (
        f"{RATE_MSG}exceeded); it asks to wait {told}, waiting 300 s instead (the longest wait "
        "obeyed)"
    )
    transient = failure_from_response(503, headers, b"", now=now)
    assert (transient.retry_after, transient.retry_after_asked) == (MAX_RETRY_AFTER, asked)


@pytest.mark.parametrize("value", ["300", "0", "-5", "nan", "inf", "soon"])
def test_a_sane_or_unusable_retry_after_is_not_marked_as_capped(value: str) -> None:
    failed = failure_from_response(429, {"Retry-After": value}, orjson.dumps(GATEWAY))
    assert failed.retry_after_asked is None
    assert failed.retry_after in (300.0, 0.0, None)


# Answers longer than MAX_ANSWER_BYTES: served by a raw server that writes until the client
# hangs up, counting what it managed to write; the client must read a bounded start only.

_GIB = 1 << 30
_SERVE_AT_MOST = 64 << 20  # stop here even if the client keeps reading: a failing test ends


@contextlib.asynccontextmanager
async def endless_answer(head: bytes, *, chunked: bool) -> AsyncIterator[tuple[str, list[int]]]:
    written = [0]

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        piece = b"<p>" + b"x" * (64 * 1024 - 7) + b"</p>"
        frame = f"{len(piece):x}\r\n".encode() + piece + b"\r\n" if chunked else piece
        writer.write(head)
        with contextlib.suppress(ConnectionError):
            while written[0] < _SERVE_AT_MOST:
                writer.write(frame)
                await writer.drain()
                written[0] += len(frame)
        writer.close()

    async with raw_server(handle) as url:
        yield url, written


@pytest.mark.parametrize(
    ("head", "chunked", "kind", "error_type", "message"),
    [
        (
            f"HTTP/1.1 200 OK\r\nContent-Length: {_GIB}\r\n\r\n".encode(),
            False,
            FailureKind.UNCERTAIN,
            "NO_EVENT_UUID",
            "{host} answered HTTP 200 without the event_uuid RD Station sends (more than 64 KB "
            "of answer); the request reached that server, so it may have been recorded",
        ),
        (
            b"HTTP/1.1 500 Oops\r\nContent-Type: text/html\r\nTransfer-Encoding: chunked\r\n\r\n",
            True,
            FailureKind.TRANSIENT,
            "HTTP_500",
            "RD Station answered HTTP 500 with a non-JSON body: " + "x" * 120 + " (the answer "
            "was more than 64 KB, far longer than RD Station's; only its start was read)",
        ),
        (
            f"HTTP/1.1 404 Not Found\r\nContent-Length: {_GIB}\r\n\r\n".encode(),
            False,
            FailureKind.TRANSIENT,  # not RD Station judging the row: worth another attempt
            "HTTP_404",
            "RD Station answered HTTP 404 with a non-JSON body: " + "x" * 120 + " (the answer "
            "was more than 64 KB, far longer than RD Station's; only its start was read)",
        ),
        (
            f"HTTP/1.1 401 Unauthorized\r\nContent-Length: {_GIB}\r\n\r\n".encode(),
            False,
            FailureKind.AUTH_REFUSED,  # still stops the run: every row would get it
            "HTTP_401",
            "RD Station refused the API key (HTTP 401 with a non-JSON body: " + "x" * 120 + "); "
            "check RDSTATION_API_KEY (the answer was more than 64 KB, far longer than RD "
            "Station's; only its start was read)",
        ),
    ],
)
async def test_a_huge_answer_is_read_only_up_to_a_bound(
    head: bytes, chunked: bool, kind: FailureKind, error_type: str, message: str
) -> None:
    async with endless_answer(head, chunked=chunked) as (url, written):
        async with ConversionsClient(url, KEY, timeout=20) as client:
            result = await client.post_conversion(BODY)
        await asyncio.sleep(0.05)  # let the server notice the hang-up
    host = url.removeprefix("http://")
    assert isinstance(result, Failed)
    assert (result.kind, result.error_type) == (kind, error_type)
    assert result.message == message.format(host=host)
    assert result.reached_server
    # What the kernel's socket buffers took before the client hung up, not a gigabyte.
    assert written[0] < 32 << 20


async def test_an_answer_of_exactly_the_bound_is_read_whole() -> None:
    uuid = "u" * 36
    body = orjson.dumps({"event_uuid": uuid, "pad": "x" * (MAX_ANSWER_BYTES - 70)})
    body += b" " * (MAX_ANSWER_BYTES - len(body))
    assert len(body) == MAX_ANSWER_BYTES
    assert await post_once(answer(200, raw=body)) == Sent(uuid, 200)


# reached_server: real failures on 127.0.0.1, each at the stage it happens.


async def test_a_tls_handshake_that_never_ends_is_a_connect_timeout_not_in_doubt() -> None:
    done = asyncio.Event()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1)  # the ClientHello arrives; no answer ever leaves
        await done.wait()
        writer.close()
        await writer.wait_closed()

    async with raw_server(silent) as url:
        https_url = url.replace("http://", "https://")
        async with ConversionsClient(https_url, KEY, timeout=0.3) as client:
            result = await client.post_conversion(BODY)
        done.set()
        await asyncio.sleep(0.05)
    assert result == Failed(
        FailureKind.TRANSIENT,
        None,
        "TIMEOUT",
        f"could not connect to {https_url[8:]} within 0.3 s",
        reached_server=False,
    )
    assert not result.maybe_recorded


async def test_a_server_that_reads_the_request_and_never_answers_leaves_it_in_doubt() -> None:
    got, done = asyncio.Event(), asyncio.Event()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        got.set()
        await done.wait()
        writer.close()
        await writer.wait_closed()

    async with raw_server(silent) as url:
        async with ConversionsClient(url, KEY, timeout=1) as client:
            result = await client.post_conversion(BODY)
        done.set()
        await asyncio.sleep(0.05)
    assert got.is_set()
    assert isinstance(result, Failed)
    assert (result.error_type, result.reached_server, result.maybe_recorded) == (
        "TIMEOUT",
        True,
        True,
    )
    assert result.message == f"no answer from {url[7:]} within 1 s"


async def test_a_reset_after_the_request_was_sent_leaves_it_in_doubt() -> None:
    async def reset(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        writer.transport.abort()

    async with raw_server(reset) as url, ConversionsClient(url, KEY) as client:
        result = await client.post_conversion(BODY)
    assert isinstance(result, Failed)
    assert (result.kind, result.http_status, result.reached_server) == (
        FailureKind.TRANSIENT,
        None,
        True,
    )


async def test_every_http_answer_reached_the_server() -> None:
    for status, body in [(400, SHAPE_2), (429, GATEWAY), (500, None), (401, None)]:
        result = await post_once(answer(status, body))
        assert isinstance(result, Failed)
        assert result.reached_server
        assert not result.maybe_recorded  # an error answer says it was not recorded


# Proxies: HTTPS_PROXY and friends, read once per client; loopback never proxied.

_PROXY_VARIABLES = ("HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY", "ALL_PROXY")


@pytest.fixture
def environ(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """The proxy variables cleared, lower and upper case: a developer's own must not leak in."""
    for name in _PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    return monkeypatch


def trusted_tls(folder: Path, name: str) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """(a client context trusting a test CA, a server context with its certificate for name)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.UTC)

    def certificate(subject: str, key: Any, issuer: str, signer: Any, ca: bool) -> Any:
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if ca:
            builder = builder.add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                critical=True,
            )
        else:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.DNSName(subject)]), critical=False
            )
        return builder.sign(signer, hashes.SHA256())

    ca_key, leaf_key = (
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP256R1()),
    )
    ca = certificate("test CA", ca_key, "test CA", ca_key, True)
    leaf = certificate(name, leaf_key, "test CA", ca_key, False)
    pem = serialization.Encoding.PEM
    (folder / "ca.pem").write_bytes(ca.public_bytes(pem))
    (folder / "leaf.pem").write_bytes(leaf.public_bytes(pem))
    (folder / "leaf.key").write_bytes(
        leaf_key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    client = ssl.create_default_context(cafile=folder / "ca.pem")
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(folder / "leaf.pem", folder / "leaf.key")
    return client, server


@contextlib.asynccontextmanager
async def connect_proxy(
    upstream_port: int | None, *, answer_connect: bytes = b"HTTP/1.1 200 Connection established"
) -> AsyncIterator[tuple[str, list[bytes], bytearray]]:
    """A CONNECT proxy on 127.0.0.1 that tunnels every request to ``upstream_port`` on loopback
    (whatever host it was asked for: no test reaches the internet). Yields its URL, the request
    heads it saw and every byte it relayed from the client through the tunnel."""
    heads: list[bytes] = []
    relayed = bytearray()

    async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter, keep: bool) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await source.read(65536):
                if keep:
                    relayed.extend(data)
                sink.write(data)
                await sink.drain()
        sink.close()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        heads.append(await reader.readuntil(b"\r\n\r\n"))
        writer.write(answer_connect + b"\r\n\r\n")
        if upstream_port is None or not answer_connect.startswith(b"HTTP/1.1 200"):
            await writer.drain()
            writer.close()
            return
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", upstream_port)
        await asyncio.gather(pipe(reader, up_writer, True), pipe(up_reader, writer, False))

    async with raw_server(handle) as url:
        yield url, heads, relayed


async def test_https_goes_through_the_proxy_which_sees_only_connect_host_port(
    environ: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    client_tls, server_tls = trusted_tls(tmp_path, "api.rd.services")
    seen: list[str | None] = []

    async def conversions(request: web.Request) -> web.Response:
        seen.append(request.query.get("api_key"))
        return web.json_response({"event_uuid": "through-the-tunnel"})

    app = web.Application()
    app.router.add_post("/platform/conversions", conversions)
    async with serve(app, server_tls) as server_url:
        port = int(server_url.rsplit(":", 1)[1])
        async with connect_proxy(port) as (proxy_url, heads, relayed):
            environ.setenv("HTTPS_PROXY", proxy_url)
            async with ConversionsClient(RD, KEY, tls=client_tls) as client:
                assert client.proxy == proxy_url.removeprefix("http://")
                result = await client.post_conversion(BODY)
    assert result == Sent("through-the-tunnel", 200)
    assert seen == [KEY]  # RD Station (here, its stand-in) got the key...
    assert len(heads) == 1  # ...and the proxy saw one CONNECT line, host and port only
    request_line, *header_lines = heads[0].decode().split("\r\n")
    assert request_line == "CONNECT api.rd.services:443 HTTP/1.1"
    assert "Host: api.rd.services" in header_lines
    for text in (heads[0], bytes(relayed)):
        assert KEY.encode() not in text
        assert b"api_key" not in text
        assert b"/platform/conversions" not in text
    assert len(relayed) > len(BODY)  # the request did cross it, encrypted


async def test_proxy_credentials_reach_the_proxy_and_no_message(
    environ: pytest.MonkeyPatch,
) -> None:
    async with connect_proxy(
        None, answer_connect=b"HTTP/1.1 407 Proxy Authentication Required"
    ) as (
        proxy_url,
        heads,
        _,
    ):
        environ.setenv("https_proxy", proxy_url.replace("http://", "http://ana:s3cr%3At@"))
        async with ConversionsClient(RD, KEY) as client:
            result = await client.post_conversion(BODY)
    shown = proxy_url.removeprefix("http://")
    assert b"Proxy-Authorization: Basic YW5hOnMzY3I6dA==" in heads[0]  # ana:s3cr:t
    assert result == Failed(
        FailureKind.FATAL,
        None,
        "PROXY_REFUSED",
        f"the proxy {shown} refused the tunnel to api.rd.services (HTTP 407); give its user and "
        "password in HTTPS_PROXY, or exclude the host with NO_PROXY",
        reached_server=False,
    )
    assert "s3cr" not in repr(client) + repr(vars(client))


async def test_a_proxy_that_is_down_is_named_and_nothing_reached_rd_station(
    environ: pytest.MonkeyPatch,
) -> None:
    port = free_port()
    environ.setenv("HTTPS_PROXY", f"127.0.0.1:{port}")  # no scheme, as people write it
    async with ConversionsClient(RD, KEY) as client:
        result = await client.post_conversion(BODY)
    assert result == Failed(
        FailureKind.TRANSIENT,
        None,
        "CONNECTION_ERROR",
        f"could not connect to the proxy 127.0.0.1:{port} (connection refused)",
        reached_server=False,
    )


@pytest.mark.parametrize(
    ("variables", "proxied"),
    [
        ({}, False),
        ({"HTTPS_PROXY": "http://proxy.corp:3128"}, True),
        ({"https_proxy": "http://proxy.corp:3128"}, True),
        ({"HTTP_PROXY": "http://proxy.corp:3128"}, False),  # http's proxy, not https's
        ({"HTTPS_PROXY": "http://proxy.corp:3128", "NO_PROXY": "api.rd.services"}, False),
        ({"HTTPS_PROXY": "http://proxy.corp:3128", "no_proxy": ".rd.services"}, False),
        ({"HTTPS_PROXY": "http://proxy.corp:3128", "NO_PROXY": "*"}, False),
        ({"HTTPS_PROXY": "http://proxy.corp:3128", "NO_PROXY": "example.com"}, True),
    ],
)
def test_which_requests_use_a_proxy(
    environ: pytest.MonkeyPatch, variables: dict[str, str], proxied: bool
) -> None:
    for name, value in variables.items():
        environ.setenv(name, value)
    client = ConversionsClient(RD, KEY)
    assert client.proxy == ("proxy.corp:3128" if proxied else None)


@pytest.mark.parametrize("url", ["http://127.0.0.1:9", "http://localhost:9", "http://[::1]:9"])
def test_loopback_is_never_proxied(environ: pytest.MonkeyPatch, url: str) -> None:
    # The sandbox lives there, and a proxy would reach its own loopback instead: without this,
    # HTTP_PROXY would also carry the key in clear text (http is allowed only to loopback).
    environ.setenv("HTTP_PROXY", "http://proxy.corp:3128")
    environ.setenv("HTTPS_PROXY", "http://proxy.corp:3128")
    assert ConversionsClient(url, KEY).proxy is None


async def test_the_sandbox_still_answers_with_a_proxy_set(environ: pytest.MonkeyPatch) -> None:
    environ.setenv("HTTP_PROXY", f"http://127.0.0.1:{free_port()}")  # nothing listens there
    async with (
        running_sandbox(SandboxConfig()) as sandbox,
        ConversionsClient(sandbox.url, KEY) as c,
    ):
        assert isinstance(await c.post_conversion(_payload()), Sent)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            "https://user:pw@proxy.corp:3128",
            "HTTPS_PROXY=https://proxy.corp:3128: only http:// proxies are supported; give "
            "http://proxy.corp:3128 (requests to RD Station stay encrypted inside the tunnel)",
        ),
        (
            "socks5://proxy.corp:1080",
            "HTTPS_PROXY=socks5://proxy.corp:1080: only http:// proxies are supported; give "
            "http://proxy.corp:1080 (requests to RD Station stay encrypted inside the tunnel)",
        ),
        ("http://:3128", "HTTPS_PROXY: not a proxy address; give one like http://proxy:3128"),
        (
            "http://proxy.corp:port",
            "HTTPS_PROXY: not a proxy address; give one like http://proxy:3128",
        ),
    ],
)
def test_a_proxy_address_that_cannot_work_is_refused_before_sending(
    environ: pytest.MonkeyPatch, value: str, message: str
) -> None:
    environ.setenv("HTTPS_PROXY", value)
    with pytest.raises(InputError) as caught:
        ConversionsClient(RD, KEY)
    assert str(caught.value) == message


def test_rd_stations_third_429_shape_is_the_accounts_budget() -> None:
    body = {
        "errors": {"error_type": "RATE_LIMIT_EXCEDDED", "error_message": "API usage limit exceeded"}
    }
    failed = failure_from_response(429, {}, orjson.dumps(body))
    assert (failed.kind, failed.http_status) == (FailureKind.RATE_LIMITED, 429)
    assert "API usage limit exceeded" in failed.message
    assert failed.kind.retry_now


def test_a_crm_accounts_key_stops_the_run_with_what_to_do() -> None:
    body = {"errors": {"error_type": "UNABLE_TO_LOAD_CDP_SCHEMA", "error_message": "x"}}
    failed = failure_from_response(400, {}, orjson.dumps(body))
    assert (failed.kind, failed.error_type) == (FailureKind.FATAL, "UNABLE_TO_LOAD_CDP_SCHEMA")
    assert "RD Station CRM account, not RD Station Marketing" in failed.message


# -- any other endpoint: ConversionsClient.request ---------------------------------------------


async def test_request_signs_other_endpoints_as_the_conversions_and_reads_their_answers() -> None:
    with aioresponses() as m:
        m.get(
            re.compile(r"^https://api\.example/platform/contacts/fields\?api_key=KEY$"),
            status=200,
            body=b'{"fields": []}',
            response_class=ScriptedResponse,
        )
        m.patch(
            re.compile(r"^https://api\.example/platform/contacts/email:a@b\.co\?api_key=KEY$"),
            status=400,
            payload={"errors": [{"error_type": "CONFLICTING_FIELD", "error_message": "email"}]},
            response_class=ScriptedResponse,
        )
        async with ConversionsClient("https://api.example", "KEY") as client:
            reply = await client.request("GET", "/platform/contacts/fields")
            failed = await client.request("PATCH", "/platform/contacts/email:a@b.co", b"{}")
    assert isinstance(reply, Reply) and reply.whole and reply.json() == {"fields": []}
    assert isinstance(failed, Failed) and failed.kind is FailureKind.REJECTED
    assert failed.error_type == "CONFLICTING_FIELD" and "KEY" not in failed.message


async def test_request_marks_a_long_2xx_answer_partial_and_keeps_bearer_tokens_in_headers() -> None:
    seen: list[Any] = []

    async def fields(request: web.Request) -> web.Response:
        seen.append((request.rel_url, request.headers.get("Authorization")))
        return web.Response(body=b"x" * 100_000)

    app = web.Application()
    app.router.add_get("/platform/contacts/fields", fields)
    async with serve(app) as url, ConversionsClient(url, auth=BearerAuth("TOKEN")) as client:
        reply = await client.request("GET", "/platform/contacts/fields", max_bytes=10)
    assert isinstance(reply, Reply) and not reply.whole and reply.body == b"x" * 10
    assert seen == [(URL("/platform/contacts/fields"), "Bearer TOKEN")]
