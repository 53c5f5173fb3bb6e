"""The network's failures: an exception from aiohttp becomes a kind, a type and a message built
from the host and the exception's type only (its text may hold the URL, and the key in it)."""

from __future__ import annotations

import os
from dataclasses import dataclass

import aiohttp

from importer.records import FailureKind

# (kind, error_type, message, reached_server)
Described = tuple[FailureKind, str, str, bool]
_TRANSIENT = FailureKind.TRANSIENT


@dataclass(frozen=True, slots=True)
class _Request:
    """What a message may name about the failed request: never its URL."""

    host: str
    timeout: float
    proxy: str | None
    connecting: bool  # it was still being connected when it failed

    @property
    def via(self) -> str:
        return f" through the proxy {self.proxy}" if self.proxy else ""


def _describe_exception(
    exc: BaseException, host: str, timeout: float, proxy: str | None, connecting: bool
) -> Described:
    """Kind, error_type, message and reached_server for a failed request, never from ``str(exc)``.

    ``str()`` of aiohttp's exceptions often holds the full URL, and with it the API key.
    Only the host, the exception's type and OS / TLS reason texts (which hold no URL) are used.
    ``connecting``: the request was still being connected when it failed.
    """
    request = _Request(host, timeout, proxy, connecting)
    # In this order: aiohttp's TLS, proxy and DNS errors are also ClientConnectorErrors.
    for describe in (_tls_failure, _proxy_refusal, _timeout, _not_connected, _invalid_url):
        described = describe(exc, request)
        if described is not None:
            return described
    return _after_connecting(exc, request)


def _tls_failure(exc: BaseException, request: _Request) -> Described | None:
    host = request.host
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
        message = f"TLS handshake with {host}{request.via} failed: {reason}"
        return _TRANSIENT, "TLS_ERROR", message, False
    return None


def _proxy_refusal(exc: BaseException, request: _Request) -> Described | None:
    if not isinstance(exc, aiohttp.ClientHttpProxyError):
        return None
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
        FailureKind.FATAL if blocked else _TRANSIENT,
        "PROXY_REFUSED",
        f"the proxy {request.proxy} refused the tunnel to {request.host} (HTTP {status}){hint}",
        False,
    )


def _timeout(exc: BaseException, request: _Request) -> Described | None:
    if not isinstance(exc, TimeoutError):
        return None
    host, timeout = request.host, request.timeout
    if request.connecting or isinstance(exc, aiohttp.ConnectionTimeoutError):
        return (
            _TRANSIENT,
            "TIMEOUT",
            f"could not connect to {host}{request.via} within {timeout:g} s",
            False,
        )
    return _TRANSIENT, "TIMEOUT", f"no answer from {host} within {timeout:g} s", True


def _not_connected(exc: BaseException, request: _Request) -> Described | None:
    """The connection was never made (refused, DNS, the proxy unreachable): nothing was sent."""
    proxy = request.proxy
    if isinstance(exc, aiohttp.ClientProxyConnectionError):
        message = f"could not connect to the proxy {proxy}{_os_reason(exc.os_error)}"
    elif isinstance(exc, aiohttp.ClientConnectorDNSError):
        # With a proxy, only the proxy's own name is looked up here.
        name = proxy.rpartition(":")[0] if proxy else request.host
        message = f"could not resolve the host {name}{_os_reason(exc.os_error)}"
    elif isinstance(exc, aiohttp.ClientConnectorError):
        message = f"could not connect to {request.host}{request.via}{_os_reason(exc.os_error)}"
    else:
        return None
    return _TRANSIENT, "CONNECTION_ERROR", message, False


def _invalid_url(exc: BaseException, request: _Request) -> Described | None:
    if not isinstance(exc, aiohttp.InvalidURL):
        return None
    return (
        FailureKind.FATAL,
        "INVALID_URL",
        "the API address is not a valid URL; check --api-url",
        False,
    )


def _after_connecting(exc: BaseException, request: _Request) -> Described:
    # From here the request may have gone out (a reset after sending): unless aiohttp said it
    # was still connecting, assume it reached the server.
    host = request.host
    reached = not request.connecting
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
    return _TRANSIENT, "CONNECTION_ERROR", message, reached


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
