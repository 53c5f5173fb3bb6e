"""HTTP to RD Station's auth endpoints: follow the dialog, exchange a code, renew, revoke.

Beside ``importer.client`` (the conversions), the one other place that talks HTTP to RD
Station, and held to the same rules: no aiohttp exception leaves it (``SignInError`` does), no
message is built from ``str(exc)``, every text an endpoint sent back is stripped of the secrets
before it is quoted, and no redirect is followed (the client secret must not go elsewhere).

    exchange_code(...)   POST {token}?token_by=code          JSON client_id, client_secret, code
    renew_tokens(...)    POST {token}?token_by=refresh_token JSON client_id, client_secret,
                                                             refresh_token
    revoke_tokens(...)   POST {revoke}, form token + token_type_hint, for each token
    dialog_redirect(...) GET {dialog}?...: where it redirects (a stand-in that needs no login)

``SignInError(refused=True)``: RD Station answered with an error of its own (ACCESS_DENIED,
EXPIRED_CODE_GRANT, INVALID_REFRESH_TOKEN...). ``refused=False``: unreachable, a timeout, HTTP
5xx, a redirect, or an answer that is not RD Station's.
"""

from __future__ import annotations

import dataclasses
import os
import re
import time
from collections.abc import Iterable
from typing import Any

import aiohttp
import orjson
from yarl import URL

from importer.client import redact
from importer.oauth.tokens import (
    LOGIN_AGAIN,
    AuthEndpoints,
    ClientCredentials,
    SignInError,
    Tokens,
    token_text,
)

TIMEOUT = 30.0
MAX_ANSWER = 64 * 1024  # a token answer is a few hundred bytes


async def exchange_code(
    endpoints: AuthEndpoints,
    client: ClientCredentials,
    code: str,
    api_url: str,
    *,
    timeout: float = TIMEOUT,
) -> Tokens:
    """The tokens for an authorisation code, with everything a later renewal needs."""
    body = {"client_id": client.client_id, "client_secret": client.client_secret, "code": code}
    granted = await _grant(endpoints.token, "code", body, timeout, secrets=(code,))
    return Tokens(
        api_url=api_url,
        client_id=client.client_id,
        client_secret=client.client_secret,
        access_token=granted["access_token"],
        refresh_token=granted["refresh_token"],
        expires_at=granted["expires_at"],
        lifetime=granted["lifetime"],
        token_url=endpoints.token,
        revoke_url=endpoints.revoke,
        signed_in_at=time.time(),
    )


async def renew_tokens(tokens: Tokens, *, timeout: float = TIMEOUT) -> Tokens:
    """New tokens for ``tokens``' refresh token. RD Station may answer with a new refresh token:
    the caller saves the result before using it."""
    body = {
        "client_id": tokens.client_id,
        "client_secret": tokens.client_secret,
        "refresh_token": tokens.refresh_token,
    }
    granted = await _grant(tokens.token_url, "refresh_token", body, timeout, secrets=tokens.secrets)
    return dataclasses.replace(
        tokens,
        access_token=granted["access_token"],
        refresh_token=granted["refresh_token"],
        expires_at=granted["expires_at"],
        lifetime=granted["lifetime"],
    )


async def revoke_tokens(tokens: Tokens, *, timeout: float = TIMEOUT) -> str | None:
    """Revoke the refresh token, then the access token. None when RD Station took both, else
    what went wrong, in one line."""
    where = tokens.revoke_url
    for token, hint in (
        (tokens.refresh_token, "refresh_token"),
        (tokens.access_token, "access_token"),
    ):
        try:
            status, raw = await _post(
                where,
                form={"token": token, "token_type_hint": hint},
                headers={"Authorization": f"Bearer {tokens.access_token}"},
                timeout=timeout,
            )
        except SignInError as exc:
            return str(exc)
        if not 200 <= status < 300:
            return _clean(f"{where} answered HTTP {status}{_said(raw)}", tokens.secrets)
    return None


async def dialog_redirect(url: str, *, timeout: float = TIMEOUT) -> str:
    """Where the authorisation dialog at ``url`` redirects, without following it: the sandbox
    (a stand-in with no login page) redirects at once, with a code."""
    shown = url.split("?", 1)[0]
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session,
            session.get(URL(url, encoded=True), allow_redirects=False) as resp,
        ):
            status, location = resp.status, resp.headers.get("Location", "")
    except Exception as exc:
        raise SignInError(_unreachable(exc, shown, timeout), refused=False) from None
    if status not in (301, 302, 303, 307, 308) or not location:
        raise SignInError(
            f"{shown} answered HTTP {status}, not the redirect to the callback it should send",
            refused=False,
        )
    return location


# --- one request -------------------------------------------------------------------------------


async def _grant(
    url: str, grant: str, body: dict[str, str], timeout: float, *, secrets: Iterable[str]
) -> dict[str, Any]:
    hidden = (body["client_secret"], *secrets)
    status, raw = await _post(url, query={"token_by": grant}, json=body, timeout=timeout)
    what = "renew the sign-in" if grant == "refresh_token" else "grant the sign-in"
    data = _json(raw)
    if 200 <= status < 300:
        access = token_text(data.get("access_token")) if isinstance(data, dict) else None
        refresh = token_text(data.get("refresh_token")) if isinstance(data, dict) else None
        lifetime = data.get("expires_in") if isinstance(data, dict) else None
        if (
            access is None
            or refresh is None
            or isinstance(lifetime, bool)
            or not isinstance(lifetime, int | float)
            or not 0 < lifetime < 10 * 365 * 86_400
        ):
            raise SignInError(
                f"{url} answered HTTP {status} without the tokens RD Station sends "
                f"({_what_came(raw, data, hidden)}); check RDSTATION_AUTH_TOKEN_URL, or try "
                "again later",
                refused=False,
            )
        return {
            "access_token": access,
            "refresh_token": refresh,
            "lifetime": float(lifetime),
            "expires_at": time.time() + float(lifetime),
        }
    error_type, message = _rd_error(data)
    # 408 and 429 are about the moment (a slow request, a busy gateway), not the sign-in.
    if 400 <= status < 500 and status not in (408, 429) and (error_type or message):
        said = ": ".join(part for part in (error_type, message) if part)
        raise SignInError(
            _clean(f"RD Station refused to {what} ({said}){_todo(error_type, grant)}", hidden),
            refused=True,
        )
    if 300 <= status < 400:
        raise SignInError(
            f"{url} answers with a redirect (HTTP {status}); set RDSTATION_AUTH_TOKEN_URL to "
            "the address RD Station's token endpoint really uses",
            refused=False,
        )
    raise SignInError(
        _clean(
            f"{url} answered HTTP {status} ({_what_came(raw, data, hidden)}); try again later",
            hidden,
        ),
        refused=False,
    )


def _todo(error_type: str, grant: str) -> str:
    if error_type == "ACCESS_DENIED":
        return (
            ": check RDSTATION_CLIENT_ID and RDSTATION_CLIENT_SECRET against the app's page in "
            "RD Station"
            if grant == "code"
            else f": the app's id or secret changed; {LOGIN_AGAIN}"
        )
    if grant == "refresh_token":
        return f": the app was removed from the account or its access revoked; {LOGIN_AGAIN}"
    return f"; {LOGIN_AGAIN}"


async def _post(
    url: str,
    *,
    query: dict[str, str] | None = None,
    json: dict[str, str] | None = None,
    form: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
    timeout: float,
) -> tuple[int, bytes]:
    shown = url  # the endpoint's address holds no secret: those travel in the body
    try:
        async with (
            aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=True),
                timeout=aiohttp.ClientTimeout(total=timeout),
            ) as session,
            session.post(
                URL(url).with_query(query or {}),
                data=orjson.dumps(json) if json is not None else form,
                headers={
                    "Accept": "application/json",
                    **({"Content-Type": "application/json"} if json is not None else {}),
                    **(headers or {}),
                },
                allow_redirects=False,
            ) as resp,
        ):
            return resp.status, await _read_at_most(resp.content, MAX_ANSWER)
    except Exception as exc:
        # Not only ClientError: whatever aiohttp raises may quote the request. None leaves.
        raise SignInError(_unreachable(exc, shown, timeout), refused=False) from None


async def _read_at_most(stream: aiohttp.StreamReader, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while size < limit:
        chunk = await stream.read(limit - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def _unreachable(exc: BaseException, where: str, timeout: float) -> str:
    """One line for a request that got no answer, from the exception's type only."""
    if isinstance(exc, TimeoutError):
        said = f"no answer from {where} within {timeout:g} s"
    elif isinstance(exc, aiohttp.ClientConnectorCertificateError):
        said = f"the TLS certificate of {where} could not be verified"
    elif isinstance(exc, aiohttp.ClientConnectorDNSError):
        said = f"could not resolve the host of {where}"
    elif isinstance(exc, aiohttp.ClientConnectorError):
        said = f"could not connect to {where}{_os_reason(exc.os_error)}"
    elif isinstance(exc, aiohttp.ServerDisconnectedError):
        said = f"{where} closed the connection before answering"
    elif isinstance(exc, aiohttp.ClientResponseError | aiohttp.ClientPayloadError):
        said = f"the answer from {where} was not valid HTTP"
    else:
        said = f"the request to {where} failed ({type(exc).__name__})"
    return f"{said}; try again later"


def _os_reason(err: BaseException) -> str:
    code = getattr(err, "errno", None)
    if isinstance(code, int) and code > 0:
        reason = os.strerror(code)
        return f" ({reason[0].lower()}{reason[1:]})"
    return ""


# --- what an answer said -----------------------------------------------------------------------


def _json(raw: bytes) -> Any:
    try:
        return orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError:
        return None


def _rd_error(data: Any) -> tuple[str, str]:
    """(error_type, error_message) in RD Station's shapes: ``{"errors": {...}}``, ``{"errors":
    [...]}``, a bare ``{"error_type", "error_message"}``, or OAuth's ``{"error",
    "error_description"}``."""
    if isinstance(data, dict) and "errors" in data:
        data = data["errors"]
    if isinstance(data, list):
        data = next((item for item in data if isinstance(item, dict)), None)
    if not isinstance(data, dict):
        return "", ""
    error_type = data.get("error_type") or data.get("error")
    message = data.get("error_message") or data.get("error_description") or data.get("message")
    return (
        _one_line(error_type) if isinstance(error_type, str) else "",
        _one_line(message) if isinstance(message, str) else "",
    )


def _said(raw: bytes) -> str:
    error_type, message = _rd_error(_json(raw))
    said = ": ".join(part for part in (error_type, message) if part)
    return f" ({said})" if said else ""


def _what_came(raw: bytes, data: Any, hidden: Iterable[str]) -> str:
    if not raw.strip():
        return "an empty body"
    if data is not None:
        error_type, message = _rd_error(data)
        said = ": ".join(part for part in (error_type, message) if part)
        return _clean(said, hidden) if said else "a JSON body without the tokens"
    # Secrets are masked before the text is cut: a cut through one would keep part of it.
    text = _clean(raw[:4096].decode("utf-8", "replace"), hidden)
    title = re.search(r"<title[^>]*>(.*?)</title>", text, re.IGNORECASE | re.DOTALL)
    snippet = _one_line(title.group(1) if title else re.sub(r"<[^>]*>", " ", text))[:120]
    return f"a non-JSON body: {snippet}" if snippet else "a non-JSON body"


def _clean(text: str, hidden: Iterable[str]) -> str:
    for secret in hidden:
        text = redact(text, secret)
    return _one_line(text)[:1000]


def _one_line(text: str) -> str:
    return " ".join(text.split())
