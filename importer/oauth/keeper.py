"""A run's OAuth: the access token kept fresh, and the transport that signs each row with it.

    TokenKeeper       the access token; renewed shortly before it expires, or when RD Station
                      refused it, by one task while the others wait for its result. The renewed
                      tokens are saved before they are used: RD Station may retire the refresh
                      token once it is used, and a crash must not leave the file with a dead one.
    OAuthTransport    ``post_conversion(body) -> Sent | Failed`` like ``ConversionsClient``'s, to
                      the events endpoint with ``Authorization: Bearer``; a 401 renews the token
                      once and sends the row again (a 401 recorded nothing)

A sign-in that cannot be used or renewed becomes a ``Failed`` that stops the run, resumably:
``AUTH_REFUSED`` when only a new ``rd-importer auth login`` helps, ``FATAL`` when RD Station's
token endpoint could not be used (unreachable, HTTP 5xx, garbage): run the command again later.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from types import TracebackType
from typing import TypeVar

from importer.client import MAX_ANSWER_BYTES, BearerAuth, ConversionsClient, Reply, check_api_url
from importer.errors import InputError
from importer.oauth.endpoint import TIMEOUT, renew_tokens
from importer.oauth.tokens import LOGIN_AGAIN, SignInError, Tokens, TokenStore
from importer.records import Failed, FailureKind, Sent

_T = TypeVar("_T", Sent, Reply)

RETRY_RENEWAL = 30.0  # seconds before trying again a renewal that failed while the token lives


class TokenKeeper:
    """The access token for a run's workers. ``renewals`` counts the renewals it made."""

    def __init__(
        self,
        store: TokenStore,
        api_url: str,
        *,
        timeout: float = TIMEOUT,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.api_url = check_api_url(api_url)
        self.timeout = timeout
        self.clock = clock
        self.renewals = 0
        self._tokens: Tokens | None = None
        self._lock = asyncio.Lock()
        self._quiet_until = 0.0  # a renewal failed: the token still lives, use it until then

    def current(self) -> Tokens:
        """The sign-in, read from the store the first time. InputError when there is none, or
        when it is for another API address than the run's."""
        if self._tokens is None:
            self._tokens = self._load()
        return self._tokens

    def _load(self) -> Tokens:
        # Checked at every read: a token goes only to the API it was granted for, even when
        # the user signs in elsewhere while a run goes on.
        tokens = self.store.load()
        if tokens.api_url != self.api_url:
            raise InputError(
                f"signed in to {tokens.api_url}, but the run sends to {self.api_url}: run "
                f"`rd-importer auth login --api-url {self.api_url}`, or import with "
                f"--api-url {tokens.api_url}"
            )
        return tokens

    def _usable(self, tokens: Tokens, now: float) -> bool:
        return now < tokens.renew_at or (now < self._quiet_until and now < tokens.expires_at)

    async def access_token(self) -> str:
        """A live access token, renewed first when it is about to expire."""
        tokens = self.current()
        if self._usable(tokens, self.clock()):
            return tokens.access_token
        async with self._lock:  # the first task renews; the others find its result here
            tokens = self.current()
            now = self.clock()
            if self._usable(tokens, now):
                return tokens.access_token
            try:
                tokens = await self._renew(tokens, refused=False)
            except SignInError as exc:
                if exc.refused or now >= tokens.expires_at:
                    raise
                # RD Station's token endpoint is down for now, and the token still lives: keep
                # sending with it, and try the renewal again in a while.
                self._quiet_until = min(now + RETRY_RENEWAL, tokens.expires_at)
            return tokens.access_token

    async def renewed_after(self, refused: str) -> str:
        """A new access token for one RD Station refused; the token another task got meanwhile
        when it already renewed (never one renewal per worker)."""
        async with self._lock:
            tokens = self.current()
            if tokens.access_token != refused:
                return tokens.access_token
            return (await self._renew(tokens, refused=True)).access_token

    async def _renew(self, held: Tokens, *, refused: bool) -> Tokens:
        async with self.store.renewing():
            latest = self._load()
            if latest.access_token != held.access_token and (
                refused or self.clock() < latest.renew_at
            ):
                # Another process renewed this sign-in meanwhile: its tokens are the good ones.
                self._tokens = latest
                return latest
            renewed = await renew_tokens(latest, timeout=self.timeout)
            try:
                self.store.save(renewed)
            except OSError as exc:
                raise SignInError(
                    f"the renewed sign-in could not be saved ({exc.strerror}); fix the folder "
                    f"of the token file, then {LOGIN_AGAIN}",
                    refused=True,
                ) from None
            self.renewals += 1
            self._tokens = renewed
            self._quiet_until = 0.0
            return renewed


class OAuthTransport:
    """Sends each row to the events endpoint with the keeper's access token.

    ``async with OAuthTransport(api_url, keeper) as transport: ... transport.post_conversion``.
    One session for the run; each token gets a twin of its client on that session.
    """

    def __init__(
        self,
        api_url: str,
        keeper: TokenKeeper,
        *,
        timeout: float = 30.0,
        max_connections: int = 8,
    ) -> None:
        self.api_url = api_url
        self.keeper = keeper
        self._timeout = timeout
        self._max_connections = max_connections
        self._owner: ConversionsClient | None = None  # opened the session; closed at the end
        self._clients: dict[str, ConversionsClient] = {}
        self._opening = asyncio.Lock()

    def __repr__(self) -> str:
        return f"OAuthTransport(api_url={self.api_url!r})"

    async def __aenter__(self) -> OAuthTransport:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        self._clients.clear()
        if self._owner is not None:
            owner, self._owner = self._owner, None
            await owner.aclose()

    async def _client_for(self, token: str) -> ConversionsClient:
        client = self._clients.get(token)
        if client is not None:
            return client
        async with self._opening:
            if self._owner is None:
                owner = ConversionsClient(
                    self.api_url,
                    auth=BearerAuth(token),
                    timeout=self._timeout,
                    max_connections=self._max_connections,
                )
                self._owner = await owner.__aenter__()
                client = owner
            else:
                client = self._clients.get(token) or self._owner.with_auth(BearerAuth(token))
            # Only the current token's twin and the one before it (requests still in flight).
            self._clients = {t: c for t, c in list(self._clients.items())[-1:]}
            self._clients[token] = client
            return client

    async def post_conversion(self, body: bytes) -> Sent | Failed:
        """Send one row once (twice when RD Station refused a token that was then renewed).
        Never raises for network, HTTP or sign-in problems."""
        return await self._signed(lambda client: client.post_conversion(body))

    async def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        *,
        query: Mapping[str, str] | None = None,
        max_bytes: int = MAX_ANSWER_BYTES,
    ) -> Reply | Failed:
        """``ConversionsClient.request`` with the keeper's access token, renewed once on a 401
        like ``post_conversion``: the fields list, a contact, its funnel, an event batch."""
        return await self._signed(
            lambda client: client.request(method, path, body, query=query, max_bytes=max_bytes)
        )

    async def _signed(
        self, attempt: Callable[[ConversionsClient], Awaitable[_T | Failed]]
    ) -> _T | Failed:
        keeper = self.keeper
        try:
            token = await keeper.access_token()
            result = await attempt(await self._client_for(token))
            if isinstance(result, Failed) and result.http_status == 401:
                token = await keeper.renewed_after(token)
                result = await attempt(await self._client_for(token))
                if isinstance(result, Failed) and result.http_status == 401:
                    return _refused_token(result, " even right after renewing it")
        except (SignInError, InputError) as exc:
            refused = not isinstance(exc, SignInError) or exc.refused
            return Failed(
                kind=FailureKind.AUTH_REFUSED if refused else FailureKind.FATAL,
                http_status=None,
                error_type="OAUTH_REFUSED" if refused else "OAUTH_UNAVAILABLE",
                message=str(exc),
                reached_server=False,  # nothing left: the sign-in failed before the request
            )
        if isinstance(result, Failed) and result.kind is FailureKind.AUTH_REFUSED:
            return _refused_token(result, "")
        return result


def _refused_token(failed: Failed, when: str) -> Failed:
    # The client's words name the API key; with OAuth it is the app's access token.
    return Failed(
        kind=FailureKind.AUTH_REFUSED,
        http_status=failed.http_status,
        error_type=failed.error_type,
        message=f"RD Station refused the signed-in app's access token (HTTP "
        f"{failed.http_status} {failed.error_type}){when}; {LOGIN_AGAIN}",
    )
