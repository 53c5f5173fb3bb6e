"""The request handlers of the conversions endpoint and the inspection endpoints."""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Awaitable, Callable
from typing import Any, Final

import orjson
from aiohttp import web

from importer.sandbox.rules import (
    LEAD_WINDOW_SECONDS,
    PROXY_PAGE,
    SERVER_ERRORS,
    Clock,
    event_errors,
    json_response,
    payload_field_errors,
    shape1,
)
from importer.sandbox.state import SandboxConfig, SandboxState, WindowLimiter

STATE_KEY: Final = web.AppKey("sandbox_state", SandboxState)


class _Sandbox:
    """The request handlers, with the configuration, state, limiters and fault sequence."""

    def __init__(self, config: SandboxConfig, clock: Clock) -> None:
        self.config = config
        self.state = SandboxState()
        self._gateway = (
            WindowLimiter(config.rate_limit, config.rate_window, clock)
            if config.rate_limit is not None
            else None
        )
        self._leads = (
            WindowLimiter(config.lead_limit, LEAD_WINDOW_SECONDS, clock)
            if config.lead_limit is not None
            else None
        )
        self._faulty = (config.drop_ratio + config.fail_ratio + config.accept_then_drop_ratio) > 0
        self._seed_random()

    def _seed_random(self) -> None:
        # Jitter draws its own numbers so that latency settings do not shift the fault sequence.
        self._fault_rng = random.Random(self.config.seed)
        self._jitter_rng = random.Random(self.config.seed)

    async def post_conversion(self, request: web.Request) -> web.StreamResponse:
        self.state._count_request()
        config = self.config
        key = request.query.get("api_key", "")
        if not key:
            return await self._answer(401, shape1("UNAUTHORIZED", "api_key is missing."))
        if key in config.refused_keys or (
            config.api_keys is not None and key not in config.api_keys
        ):
            return await self._answer(401, shape1("UNAUTHORIZED", "Invalid token."))
        if key in config.crm_keys:
            return await self._answer(
                400, shape1("UNABLE_TO_LOAD_CDP_SCHEMA", "Unable to load CDP schema.")
            )
        return await self.admit(request, key)

    async def admit(
        self,
        request: web.Request,
        key: str,
        *,
        units: int = 1,
        process: Callable[[], Awaitable[tuple[int, Any]]] | None = None,
    ) -> web.StreamResponse:
        """A POST whose credentials were accepted, for ``key`` (the API key, or the OAuth app's
        client id): the gateway's limit (``units`` hits: a batch counted per event), the faults,
        then RD Station's checks and recording (``process``; by default one conversion's).
        The events and batch endpoints (``oauth``, ``batch``) share it with the conversions."""
        config = self.config
        if self._gateway is not None:
            wait = self._gateway.hit(key, units)
            if wait is not None:
                headers = {
                    "ratelimit-limit-quotas": str(self._gateway.limit),
                    "retry-after-quotas": str(max(1, math.ceil(wait))),
                }
                return await self._answer(429, {"message": "API rate limit exceeded"}, headers)

        drop_after = False
        if self._faulty:
            draw = self._fault_rng.random()
            if draw < config.drop_ratio:
                return await self._drop(request)
            draw -= config.drop_ratio
            if draw < config.fail_ratio:
                return await self._server_error()
            drop_after = draw - config.fail_ratio < config.accept_then_drop_ratio

        status, body = await (process() if process is not None else self._process(request))
        if drop_after:
            return await self._drop(request)
        return await self._answer(status, body)

    async def _process(self, request: web.Request) -> tuple[int, Any]:
        """Validate and record one conversion: (status, JSON body)."""
        if request.content_type != "application/json":
            return 415, shape1("UNSUPPORTED_MEDIA_TYPE", "Content-Type must be application/json.")
        try:
            raw = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return 413, {"message": "Request size limit exceeded"}
        try:
            event = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return 400, shape1("BAD_REQUEST", "The request body is not valid JSON.")
        if not isinstance(event, dict):
            return 400, shape1("BAD_REQUEST", "The request body must be a JSON object.")
        problem = event_errors(event) or payload_field_errors(
            event["payload"], self.config.custom_fields
        )
        if problem is not None:
            return 400, problem
        payload = event["payload"]
        if self._leads is not None:
            email = payload["email"].lower()
            wait = self._leads.hit(email)
            if wait is not None:
                return 429, {
                    "error": (
                        f"'lead_limiter' rate limit exceeded for {LEAD_WINDOW_SECONDS:.0f} "
                        f"second(s) period for key '{email}'"
                    ),
                    "max": self._leads.limit,
                    "usage": self._leads.limit + 1,
                    "remaining_time": math.ceil(wait),
                }
        return 200, {"event_uuid": self.state._record(payload)}

    async def _server_error(self) -> web.Response:
        status, body = self._fault_rng.choice(SERVER_ERRORS)
        if body is not None:
            return await self._answer(status, body)
        reason = "Bad Gateway" if status == 502 else "Service Temporarily Unavailable"
        page = PROXY_PAGE.format(status=status, reason=reason)
        return await self._respond(web.Response(status=status, text=page, content_type="text/html"))

    async def _answer(
        self, status: int, body: Any, headers: dict[str, str] | None = None
    ) -> web.Response:
        return await self._respond(json_response(body, status, headers))

    async def _respond(self, response: web.Response) -> web.Response:
        await self._delay()
        self.state._count_answer(response.status)
        return response

    async def _drop(self, request: web.Request) -> web.Response:
        await self._delay()
        self.state._count_answer("dropped")
        if request.transport is not None:
            request.transport.abort()
        # Nothing reaches the client: aiohttp sees the closed transport and writes nothing.
        return web.Response(status=500)

    async def _delay(self) -> None:
        config = self.config
        if config.latency or config.latency_jitter:
            jitter = (
                self._jitter_rng.uniform(0, config.latency_jitter) if config.latency_jitter else 0
            )
            await asyncio.sleep(config.latency + jitter)

    async def get_state(self, request: web.Request) -> web.Response:
        return json_response(self.state.snapshot())

    async def post_reset(self, request: web.Request) -> web.Response:
        before = self.state.snapshot()
        self.state.reset()
        for limiter in (self._gateway, self._leads):
            if limiter is not None:
                limiter.reset()
        self._seed_random()
        return json_response(before)

    async def not_found(self, request: web.Request) -> web.Response:
        return json_response(shape1("RESOURCE_NOT_FOUND", "Resource not found."), 404)
