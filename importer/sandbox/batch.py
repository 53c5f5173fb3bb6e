"""The sandbox's batch endpoint: many events in one request, under OAuth.

    POST /platform/events/batch        Authorization: Bearer ACCESS; a JSON array of events,
                                       each the single events endpoint's body
         200 {"event_batch_uuid", "events": [{"event_uuid"}...]} in request order
         401 (shape 1) for a token that is not live, as /platform/events
         413 beyond 0.2 MB (``MAX_BODY_BYTES``); 415 without JSON; 400 for a body that is not a
             non-empty array
         429 from the gateway: the batch costs one hit, or one per event
             (``SandboxConfig.batch_cost``); a batch that could never fit waits a window
         400 when any event is bad, nothing recorded: "indexed" (the default) lists every bad
             event's errors in shape 3 with the event's index in the path
             (``$.body[3].payload.email``); "unindexed" answers the first bad event's errors as
             the single endpoint would, without saying which it is
             (``SandboxConfig.batch_rejects``)
         429 (shape 6) when an event's email is over the per-lead limit (counted per event):
             the whole batch is refused, nothing recorded, and the limit is spent by nothing

RD Station documents the endpoint's path, body, size limit and answer, and nothing of the rest
(``shared/rdstation-api.md``): those are choices, each configurable where a real answer could
differ. Faults (5xx, drops, recorded-then-dropped) are drawn once per batch, as for one POST.
"""

from __future__ import annotations

import math
import uuid
from collections import Counter
from typing import Any, Final

import orjson
from aiohttp import web

from importer.sandbox.conversions import _Sandbox
from importer.sandbox.oauth import OAuthProvider
from importer.sandbox.rules import (
    LEAD_WINDOW_SECONDS,
    event_errors,
    payload_field_errors,
    shape1,
)

BATCH_PATH: Final = "/platform/events/batch"


class BatchEndpoint:
    """The handler of ``POST /platform/events/batch``, sharing the sandbox's limiters, fault
    sequence and record with the single endpoints."""

    def __init__(self, sandbox: _Sandbox, provider: OAuthProvider) -> None:
        self.sandbox = sandbox
        self.provider = provider
        self.config = sandbox.config

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post(BATCH_PATH, self.post_batch)

    async def post_batch(self, request: web.Request) -> web.StreamResponse:
        sandbox, config = self.sandbox, self.config
        sandbox.state._count_request()
        client_id, problem = self.provider.bearer(request)
        if client_id is None:
            return await sandbox._answer(401, problem)
        if request.content_type != "application/json":
            return await sandbox._answer(
                415, shape1("UNSUPPORTED_MEDIA_TYPE", "Content-Type must be application/json.")
            )
        try:
            raw = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return await sandbox._answer(413, {"message": "Request size limit exceeded"})
        try:
            events = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return await sandbox._answer(
                400, shape1("BAD_REQUEST", "The request body is not valid JSON.")
            )
        if not isinstance(events, list) or not events:
            return await sandbox._answer(
                400, shape1("BAD_REQUEST", "The request body must be a non-empty array of events.")
            )

        units = len(events) if config.batch_cost == "per_event" else 1

        async def process() -> tuple[int, Any]:
            return self._process(events)

        return await sandbox.admit(request, "oauth:" + client_id, units=units, process=process)

    def _process(self, events: list[Any]) -> tuple[int, Any]:
        """Validate every event, then the per-lead limit, then record them all: (status, body)."""
        bad: list[tuple[int, Any]] = []
        for index, event in enumerate(events):
            if not isinstance(event, dict):
                problem: Any = shape1("BAD_REQUEST", "An event must be a JSON object.")
            else:
                problem = event_errors(event) or payload_field_errors(
                    event["payload"], self.config.custom_fields
                )
            if problem is not None:
                bad.append((index, problem))
        if bad:
            if self.config.batch_rejects == "unindexed":
                return 400, bad[0][1]
            return 400, {"errors": [e for index, p in bad for e in _indexed(index, p)]}

        leads = self.sandbox._leads
        emails = [event["payload"]["email"].lower() for event in events]
        if leads is not None:
            wanted = Counter(emails)
            over = next((email for email in emails if leads.free(email) < wanted[email]), None)
            if over is not None:
                return 429, {
                    "error": (
                        f"'lead_limiter' rate limit exceeded for {LEAD_WINDOW_SECONDS:.0f} "
                        f"second(s) period for key '{over}'"
                    ),
                    "max": leads.limit,
                    "usage": leads.limit + 1,
                    "remaining_time": math.ceil(LEAD_WINDOW_SECONDS),
                }
            for email in emails:
                leads.hit(email)
        recorded = [{"event_uuid": self.sandbox.state._record(e["payload"])} for e in events]
        return 200, {"event_batch_uuid": str(uuid.uuid4()), "events": recorded}


def _indexed(index: int, problem: Any) -> list[dict[str, Any]]:
    """One event's errors, in any of the single endpoint's shapes, as shape-3 entries whose
    path names the event by its index in the batch."""
    at = f"$.body[{index}]"
    errors = problem.get("errors") if isinstance(problem, dict) else problem
    found: list[dict[str, Any]] = []
    if isinstance(errors, list):  # shapes 3 and 4: each with its path under $.body
        for item in errors:
            path = str(item.get("path") or "$.body").removeprefix("$.body")
            found.append({**item, "path": at + path})
    elif isinstance(errors, dict) and "error_type" in errors:  # shape 1
        found.append({**errors, "path": at})
    elif isinstance(errors, dict):  # shape 2, or 5 ({locale: [...]}) for a custom field
        for field, value in errors.items():
            if isinstance(value, dict):
                value = next(iter(value.values()), [])
            for item in value:
                found.append({**item, "path": f"{at}.payload.{field}"})
    return found
