"""Reading the account's field list from RD Station, once, before a run reads its rows.

    await fetch_fields(transport) -> AccountFields     (FieldsError: exit 3, one line)

``transport`` is anything with ``request(method, path, *, max_bytes)`` answering ``Reply |
Failed`` (``OAuthTransport``; the API key cannot list fields). A refused sign-in says to sign in
again; RD Station unreachable or down says to run the command again later; an answer that is not
a field list says what came. A busy or failing endpoint is asked again a few times first.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping
from typing import Final, Protocol

from importer.account_fields.model import AccountFields, parse_fields
from importer.client import Reply, check_api_url
from importer.errors import ImporterError
from importer.oauth import (
    OAuthTransport,
    TokenFile,
    TokenKeeper,
    TokenStore,
    check_signed_in,
    sign_in_headless,
)
from importer.oauth.tokens import LOGIN_AGAIN
from importer.records import Failed, FailureKind

FIELDS_PATH: Final = "/platform/contacts/fields"
# An account's list is a few hundred bytes per field: 4 MB holds thousands of them, and a wrong
# server cannot fill memory.
MAX_FIELDS_BYTES: Final = 4 * 1024 * 1024
ATTEMPTS: Final = 3
WAITS: Final = (1.0, 2.0)  # seconds before the 2nd and 3rd attempt (a 5xx, a timeout, a 429)
MAX_WAIT: Final = 10.0  # a Retry-After longer than this is not waited for
_KEY: Final = re.compile(r"[A-Za-z_]{1,40}")  # a key worth naming (not a token echoed back)


class FieldsError(ImporterError):
    """The account's fields could not be read: nothing was read or sent (exit 3)."""


class Requester(Protocol):
    async def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        *,
        query: Mapping[str, str] | None = None,
        max_bytes: int = ...,
    ) -> Reply | Failed: ...


async def account_of(
    api_url: str, store: TokenStore, *, timeout: float = 30.0, waits: tuple[float, ...] = WAITS
) -> AccountFields:
    """The fields of the account signed in ``store`` for ``api_url``, on a transport of its own
    (renewing the access token as a run does)."""
    keeper = TokenKeeper(store, api_url)
    async with OAuthTransport(api_url, keeper, timeout=timeout, max_connections=1) as transport:
        return await fetch_fields(transport, waits=waits)


def read_account(api_url: str, *, sandbox: bool = False) -> AccountFields:
    """The account's fields for a command that sends nothing (``mapping init --auth oauth``):
    the sign-in's (InputError, exit 2, when there is none), or with ``sandbox`` those of a
    sandbox started for the purpose and signed in to headlessly."""
    if not sandbox:
        check_api_url(api_url)
        check_signed_in(api_url)
    return asyncio.run(_read_account(api_url, sandbox))


async def _read_account(api_url: str, sandbox: bool) -> AccountFields:
    if not sandbox:
        return await account_of(api_url, TokenFile())
    from importer.sandbox import SandboxConfig, running_sandbox

    async with running_sandbox(SandboxConfig()) as box:
        return await account_of(box.url, await sign_in_headless(box.url))


async def fetch_fields(
    transport: Requester, *, waits: tuple[float, ...] = WAITS, where: str = "RD Station"
) -> AccountFields:
    """The account's fields, or FieldsError saying in one line why they could not be read."""
    attempt = 0
    while True:
        answer = await transport.request("GET", FIELDS_PATH, max_bytes=MAX_FIELDS_BYTES)
        if isinstance(answer, Reply) or not answer.kind.retry_now or attempt >= len(waits):
            break
        wait = waits[attempt] if answer.retry_after is None else answer.retry_after
        if wait > MAX_WAIT:
            break
        attempt += 1
        await asyncio.sleep(wait)
    what = f"{where}'s list of the account's fields ({FIELDS_PATH})"
    if isinstance(answer, Failed):
        raise FieldsError(_failed(answer, what))
    if not answer.whole:
        raise FieldsError(
            f"{what} was longer than {MAX_FIELDS_BYTES // (1024 * 1024)} MB or cut off: "
            "check --api-url, then run the command again"
        )
    data = answer.json()
    account = parse_fields(data)
    if account is None:
        raise FieldsError(
            f"{what} answered {_what_came(answer.body, data)}, not a field list: check "
            "--api-url, then run the command again"
        )
    return account


def _failed(failed: Failed, what: str) -> str:
    message = failed.message.rstrip(".")
    if failed.error_type in ("OAUTH_REFUSED", "OAUTH_UNAVAILABLE"):
        # The sign-in failed before the request was made (its renewal refused, the token
        # endpoint down): its own words say what happened and what to do, whatever was asked.
        return message
    if failed.kind is FailureKind.AUTH_REFUSED:
        # The transport's words already say to sign in again when that is what helps.
        todo = "" if LOGIN_AGAIN in message else f"; {LOGIN_AGAIN}"
        return f"{what} could not be read: {message}{todo}"
    if failed.kind is FailureKind.REJECTED:
        return f"{what} could not be read: {message}; check --api-url and the sign-in"
    return f"{what} could not be read: {message}; nothing was sent: run the command again later"


def _what_came(body: bytes, data: object) -> str:
    # What came, described rather than quoted: a careless server may echo the request's
    # Authorization header, and the access token must not reach a message.
    if not body.strip():
        return "nothing"
    if data is None:
        return f"{len(body):,} bytes that are not JSON"
    if isinstance(data, dict):
        named = sorted(k for k in data if _KEY.fullmatch(k))[:5]
        keys = ", ".join(named) or "no keys"
        return f"a JSON object without a fields list (keys: {keys})"
    return f"JSON {type(data).__name__}"
