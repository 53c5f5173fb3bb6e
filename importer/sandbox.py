"""A local stand-in for RD Station's conversions API: the project's main test seam.

``POST /platform/conversions?api_key=KEY`` behaves as ``shared/rdstation-api.md`` describes,
checked in the order a request meets RD Station's gateway and then its application:

1. ``api_key`` missing or refused: 401, shape 1 (``UNAUTHORIZED``). Not counted by the limiter.
2. Gateway limit (``rate_limit`` per ``rate_window`` seconds per key, sliding and exact): 429,
   shape 7, headers ``ratelimit-limit-quotas`` (the limit) and ``retry-after-quotas`` (whole
   seconds until the oldest counted POST leaves the window). Every POST the gateway lets through
   counts, whatever happens to it afterwards; the POSTs it refuses do not.
3. Faults, drawn with one ``random.Random(seed)`` draw per POST: ``drop_ratio`` closes the
   connection with no answer; ``fail_ratio`` answers 500/502/503, as JSON or as a proxy's HTML
   page (shape 8); ``accept_then_drop_ratio`` processes the POST normally (recording it when
   valid) and then closes the connection instead of answering.
4. ``Content-Type`` other than ``application/json``: 415, shape 1 (``UNSUPPORTED_MEDIA_TYPE``).
5. Body over 200,000 bytes: 413 with the gateway's ``{"message": "Request size limit
   exceeded"}`` (RD's own answer is unconfirmed; Kong, whose messages shape 7 carries, says this).
6. Body not a JSON object: 400, shape 1 (``BAD_REQUEST``).
7. ``event_type`` not ``CONVERSION`` or ``event_family`` not ``CDP``: 400, shape 3
   (``INVALID_OPTION`` with ``path`` and ``valid_options``); ``payload`` missing or not an object:
   400, shape 4 (the bare list).
8. Payload fields: every error of the request together, 400 (the status RD's conversion pages
   show for field errors), shape 2 keyed by field. Custom fields (``cf_*``) are reported per
   locale, shape 5, in the same ``errors`` object. Fields that are neither documented nor ``cf_*``
   are refused (``INVALID``): the importer's mapping refuses them too, so one arriving is a bug.
   ``cf_*`` takes a string, number, boolean, null or a list of those; ``custom_fields``, when set,
   is the account's list and other ``cf_*`` are refused. ``null`` clears an optional field.
9. Per-lead limit (``lead_limit`` accepted conversions per email per 24 h, sliding): 429, shape 6.
10. Success: 200 ``{"event_uuid": "<uuid4>"}``, recorded in ``SandboxState.accepted``.

``latency`` (plus up to ``latency_jitter``) seconds delay every answer and drop. Inspection
endpoints, which RD Station does not have, live under ``/_sandbox/``: ``GET /_sandbox/state``
answers the state as JSON (status keys as strings), ``POST /_sandbox/reset`` answers it and then
clears it, the limiters and the fault sequence. Any other path answers 404, shape 1.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import math
import random
import re
import signal
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

import orjson
from aiohttp import web

from importer.errors import InputError

MAX_BODY_BYTES: Final = 200_000
LEAD_WINDOW_SECONDS: Final = 86_400.0
CONVERSIONS_PATH: Final = "/platform/conversions"
STATE_PATH: Final = "/_sandbox/state"
RESET_PATH: Final = "/_sandbox/reset"

Clock = Callable[[], float]

REQUIRED_FIELDS: Final = ("conversion_identifier", "email")
STRING_FIELDS: Final = frozenset(
    {
        "name",
        "job_title",
        "state",
        "city",
        "country",
        "personal_phone",
        "mobile_phone",
        "twitter",
        "facebook",
        "linkedin",
        "website",
        "company_name",
        "company_site",
        "company_address",
        "client_tracking_id",
        "traffic_source",
        "traffic_medium",
        "traffic_campaign",
        "traffic_value",
    }
)
SOCIAL_FIELDS: Final = frozenset({"twitter", "facebook", "linkedin"})
LEGAL_BASIS_TYPES: Final = (
    "pre_existent_contract",
    "consent",
    "legitimate_interest",
    "judicial_process",
    "vital_interest",
    "public_interest",
)
LEGAL_BASIS_STATUSES: Final = ("granted", "declined")
_SOCIAL_RE: Final = re.compile(r"[A-Za-z0-9._-]*")
_EMAIL_RE: Final = re.compile(r"[^@\s]+@[^@\s.]+(?:\.[^@\s.]+)+")
_CF_SCALARS: Final = (str, int, float, bool, type(None))
_LOCALE: Final = "pt-BR"

_PROXY_PAGE: Final = (
    "<html>\r\n<head><title>{status} {reason}</title></head>\r\n<body>\r\n"
    "<center><h1>{status} {reason}</h1></center>\r\n<hr><center>nginx</center>\r\n"
    "</body>\r\n</html>\r\n"
)
# What the 5xx fault answers, one picked at random: (status, JSON body or None for HTML).
_SERVER_ERRORS: Final[tuple[tuple[int, dict[str, Any] | None], ...]] = (
    (500, {"errors": {"error_type": "INTERNAL_SERVER_ERROR", "error_message": "Internal error."}}),
    (502, None),
    (502, {"message": "An invalid response was received from the upstream server"}),
    (503, None),
    (503, {"message": "failure to get a peer from the ring-balancer"}),
)


@dataclass(frozen=True)
class SandboxConfig:
    """How the sandbox behaves. The defaults answer every valid POST at once with 200."""

    api_keys: frozenset[str] | None = None  # None: any non-empty key except refused_keys
    refused_keys: frozenset[str] = frozenset({"revoked-key"})
    rate_limit: int | None = None  # POSTs per rate_window seconds per key, at the gateway
    rate_window: float = 60.0
    lead_limit: int | None = None  # accepted conversions per email per 24 h
    fail_ratio: float = 0.0
    drop_ratio: float = 0.0
    accept_then_drop_ratio: float = 0.0
    latency: float = 0.0
    latency_jitter: float = 0.0
    seed: int | None = None
    custom_fields: frozenset[str] | None = None  # None: any cf_* is accepted

    def __post_init__(self) -> None:
        ratios = (self.fail_ratio, self.drop_ratio, self.accept_then_drop_ratio)
        if any(r < 0 for r in ratios) or sum(ratios) > 1:
            raise InputError("sandbox fault ratios must be >= 0 and add up to at most 1")
        if self.rate_limit is not None and (self.rate_limit < 1 or self.rate_window <= 0):
            raise InputError("sandbox rate_limit must be >= 1 and rate_window > 0")
        if self.lead_limit is not None and self.lead_limit < 1:
            raise InputError("sandbox lead_limit must be >= 1")
        if self.latency < 0 or self.latency_jitter < 0:
            raise InputError("sandbox latency and latency_jitter must be >= 0")


@dataclass
class SandboxState:
    """What the sandbox saw. Written by the server's loop; read it from other threads through
    ``snapshot``.

    ``accepted`` holds one ``{"event_uuid", "payload", "received_at"}`` per recorded conversion
    (``received_at`` ISO 8601, UTC). ``statuses`` counts answers by status, and ``"dropped"`` for
    connections closed without an answer. ``requests`` counts POSTs to the conversions endpoint
    (the inspection endpoints are not counted).
    """

    accepted: list[dict[str, Any]] = field(default_factory=list)
    statuses: collections.Counter[int | str] = field(default_factory=collections.Counter)
    requests: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def snapshot(self) -> dict[str, Any]:
        """A copy safe to read from any thread; status keys become strings, as in the JSON."""
        with self._lock:
            return {
                "requests": self.requests,
                "statuses": {str(k): v for k, v in self.statuses.items()},
                "accepted": list(self.accepted),
            }

    def reset(self) -> None:
        with self._lock:
            self.accepted = []
            self.statuses = collections.Counter()
            self.requests = 0

    def _count_request(self) -> None:
        with self._lock:
            self.requests += 1

    def _count_answer(self, status: int | str) -> None:
        with self._lock:
            self.statuses[status] += 1

    def _record(self, payload: dict[str, Any]) -> str:
        event_uuid = str(uuid.uuid4())
        entry = {
            "event_uuid": event_uuid,
            "payload": payload,
            "received_at": datetime.now(UTC).isoformat(),
        }
        with self._lock:
            self.accepted.append(entry)
        return event_uuid


class WindowLimiter:
    """At most ``limit`` hits per key in any ``window`` seconds: a sliding log, exact.

    A hit at time t stays counted until t + window. Refused hits are not counted.
    """

    def __init__(self, limit: int, window: float, clock: Clock = time.monotonic) -> None:
        self.limit = limit
        self.window = window
        self._clock = clock
        self._hits: dict[str, collections.deque[float]] = {}

    def hit(self, key: str) -> float | None:
        """Count a hit and answer None, or answer the seconds until one would be allowed."""
        now = self._clock()
        hits = self._hits.get(key)
        if hits is None:
            hits = self._hits[key] = collections.deque()
        horizon = now - self.window
        while hits and hits[0] <= horizon:
            hits.popleft()
        if len(hits) >= self.limit:
            return hits[0] - horizon
        hits.append(now)
        return None

    def reset(self) -> None:
        self._hits.clear()


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
            return await self._answer(401, _shape1("UNAUTHORIZED", "api_key is missing."))
        if key in config.refused_keys or (
            config.api_keys is not None and key not in config.api_keys
        ):
            return await self._answer(401, _shape1("UNAUTHORIZED", "Invalid token."))
        if self._gateway is not None:
            wait = self._gateway.hit(key)
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

        status, body = await self._process(request)
        if drop_after:
            return await self._drop(request)
        return await self._answer(status, body)

    async def _process(self, request: web.Request) -> tuple[int, Any]:
        """Validate and record one conversion: (status, JSON body)."""
        if request.content_type != "application/json":
            return 415, _shape1("UNSUPPORTED_MEDIA_TYPE", "Content-Type must be application/json.")
        try:
            raw = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return 413, {"message": "Request size limit exceeded"}
        try:
            event = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return 400, _shape1("BAD_REQUEST", "The request body is not valid JSON.")
        if not isinstance(event, dict):
            return 400, _shape1("BAD_REQUEST", "The request body must be a JSON object.")
        problem = _event_errors(event) or _payload_field_errors(
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
        status, body = self._fault_rng.choice(_SERVER_ERRORS)
        if body is not None:
            return await self._answer(status, body)
        reason = "Bad Gateway" if status == 502 else "Service Temporarily Unavailable"
        page = _PROXY_PAGE.format(status=status, reason=reason)
        return await self._respond(web.Response(status=status, text=page, content_type="text/html"))

    async def _answer(
        self, status: int, body: Any, headers: dict[str, str] | None = None
    ) -> web.Response:
        return await self._respond(_json_response(body, status, headers))

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
        return _json_response(self.state.snapshot())

    async def post_reset(self, request: web.Request) -> web.Response:
        before = self.state.snapshot()
        self.state.reset()
        for limiter in (self._gateway, self._leads):
            if limiter is not None:
                limiter.reset()
        self._seed_random()
        return _json_response(before)

    async def not_found(self, request: web.Request) -> web.Response:
        return _json_response(_shape1("RESOURCE_NOT_FOUND", "Resource not found."), 404)


def _json_response(
    body: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        status=status, body=orjson.dumps(body), content_type="application/json", headers=headers
    )


def _shape1(error_type: str, message: str) -> dict[str, Any]:
    return {"errors": {"error_type": error_type, "error_message": message}}


def _error(error_type: str, message: str) -> dict[str, str]:
    return {"error_type": error_type, "error_message": message}


def _event_errors(event: dict[str, Any]) -> Any:
    """Errors in the envelope: shape 3 for the options, shape 4 for a missing payload."""
    options = []
    for name, valid in (("event_type", "CONVERSION"), ("event_family", "CDP")):
        if event.get(name) != valid:
            options.append(
                {
                    "error_type": "INVALID_OPTION",
                    "error_message": f"{name} must be one of the valid options.",
                    "path": f"$.body.{name}",
                    "validation_rules": {"valid_options": [valid]},
                }
            )
    if options:
        return {"errors": options}
    payload = event.get("payload")
    if payload is None:
        return [{**_error("CANNOT_BE_NULL", "payload cannot be null."), "path": "$.body.payload"}]
    if not isinstance(payload, dict):
        return [{**_error("INVALID", "payload must be an object."), "path": "$.body.payload"}]
    return None


def _payload_field_errors(
    payload: dict[str, Any], custom_fields: frozenset[str] | None
) -> dict[str, Any] | None:
    """Every field error of one payload, shape 2 (shape 5 for cf_*), or None when it is valid."""
    errors: dict[str, Any] = {}
    for name in REQUIRED_FIELDS:
        value = payload.get(name)
        if value is None:
            errors[name] = [_error("CANNOT_BE_NULL", f"{name} cannot be null.")]
        elif not isinstance(value, str):
            errors[name] = [_error("MUST_BE_STRING", f"{name} must be a string.")]
        elif not value.strip():
            errors[name] = [_error("CANNOT_BE_BLANK", f"{name} cannot be blank.")]
    email = payload.get("email")
    if "email" not in errors and isinstance(email, str) and not _EMAIL_RE.fullmatch(email):
        errors["email"] = [_error("INVALID_FORMAT", "email has an invalid format.")]

    for name, value in payload.items():
        if name in STRING_FIELDS:
            if value is None:
                continue
            if not isinstance(value, str):
                errors[name] = [_error("MUST_BE_STRING", f"{name} must be a string.")]
            elif name in SOCIAL_FIELDS and not _SOCIAL_RE.fullmatch(value):
                errors[name] = [
                    _error(
                        "INVALID_FORMAT",
                        f"{name} may hold only letters, digits, '.', '-' and '_'.",
                    )
                ]
        elif name == "tags":
            if value is not None and not (
                isinstance(value, list) and all(isinstance(tag, str) for tag in value)
            ):
                errors[name] = [_error("MUST_BE_STRING_ARRAY", "tags must be an array of strings.")]
        elif name == "available_for_mailing":
            if value is not None and not isinstance(value, bool):
                errors[name] = [
                    _error("MUST_BE_BOOLEAN", "available_for_mailing must be true or false.")
                ]
        elif name == "legal_bases":
            legal = _legal_bases_errors(value)
            if legal:
                errors[name] = legal
        elif name.startswith("cf_"):
            problem = _custom_field_error(name, value, custom_fields)
            if problem is not None:
                errors[name] = {_LOCALE: [problem]}
        elif name not in REQUIRED_FIELDS:
            errors[name] = [_error("INVALID", f"{name} is not a field of a conversion.")]
    return {"errors": errors} if errors else None


def _legal_bases_errors(value: Any) -> list[dict[str, str]]:
    if value is None:
        return []
    if not isinstance(value, list):
        return [_error("INVALID", "legal_bases must be an array of objects.")]
    found = []
    allowed = (
        ("category", ("communications",)),
        ("type", LEGAL_BASIS_TYPES),
        ("status", LEGAL_BASIS_STATUSES),
    )
    for index, basis in enumerate(value):
        if not isinstance(basis, dict):
            found.append(_error("INVALID", f"legal_bases[{index}] must be an object."))
            continue
        for key, options in allowed:
            if basis.get(key) not in options:
                found.append(
                    _error(
                        "INVALID_OPTION",
                        f"legal_bases[{index}].{key} must be one of: {', '.join(options)}.",
                    )
                )
    return found


def _custom_field_error(
    name: str, value: Any, custom_fields: frozenset[str] | None
) -> dict[str, str] | None:
    # RD Station words custom-field errors in the account's locale (shape 5).
    if custom_fields is not None and name not in custom_fields:
        return _error("INVALID", f"O campo personalizado {name} não existe nesta conta.")
    if isinstance(value, _CF_SCALARS):
        return None
    if isinstance(value, list) and all(isinstance(item, _CF_SCALARS) for item in value):
        return None
    return _error("INVALID", f"Valor inválido para o campo personalizado {name}.")


def make_app(
    config: SandboxConfig | None = None, *, clock: Clock = time.monotonic
) -> web.Application:
    """The sandbox as an aiohttp application; its state is ``app[STATE_KEY]``.

    ``clock`` (seconds, monotonic) drives both limiters, so tests can move time by hand.
    """
    sandbox = _Sandbox(config or SandboxConfig(), clock)
    # aiohttp refuses bodies above client_max_size while reading, which gives the 413.
    app = web.Application(client_max_size=MAX_BODY_BYTES)
    app[STATE_KEY] = sandbox.state
    app.router.add_post(CONVERSIONS_PATH, sandbox.post_conversion)
    app.router.add_get(STATE_PATH, sandbox.get_state)
    app.router.add_post(RESET_PATH, sandbox.post_reset)
    app.router.add_route("*", "/{tail:.*}", sandbox.not_found)
    return app


@dataclass
class RunningSandbox:
    """A sandbox serving on ``url`` (no trailing slash), in this process."""

    url: str
    state: SandboxState
    config: SandboxConfig

    def snapshot(self) -> dict[str, Any]:
        return self.state.snapshot()


async def start_sandbox(
    config: SandboxConfig | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    clock: Clock = time.monotonic,
) -> tuple[RunningSandbox, Callable[[], Awaitable[None]]]:
    """Serve the sandbox on host:port (0: a free port) in the running loop.

    Answers the running sandbox and the coroutine function that stops it. A port that cannot be
    bound raises InputError.
    """
    config = config or SandboxConfig()
    app = make_app(config, clock=clock)
    # A short shutdown timeout: answers held back by `latency` must not hold up a test's exit.
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise InputError(
            f"cannot serve the sandbox on {host}:{port} ({exc.strerror or exc}): "
            "choose another port with --port"
        ) from None
    bound_port = runner.addresses[0][1]
    shown_host = f"[{host}]" if ":" in host else host
    sandbox = RunningSandbox(f"http://{shown_host}:{bound_port}", app[STATE_KEY], config)
    return sandbox, runner.cleanup


@contextlib.asynccontextmanager
async def running_sandbox(
    config: SandboxConfig | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    clock: Clock = time.monotonic,
) -> AsyncIterator[RunningSandbox]:
    """``async with running_sandbox(config) as sandbox:`` serves it for the block's duration."""
    sandbox, stop = await start_sandbox(config, host, port, clock=clock)
    try:
        yield sandbox
    finally:
        await stop()


class SandboxThread:
    """The sandbox in a background thread with its own event loop, for synchronous callers.

    ``with SandboxThread(config) as sandbox: ... sandbox.url ... sandbox.snapshot()``.
    ``state`` is the live state (written by the thread); read it through ``snapshot()``.
    """

    def __init__(
        self,
        config: SandboxConfig | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        clock: Clock = time.monotonic,
    ) -> None:
        self.config = config or SandboxConfig()
        self._host = host
        self._port = port
        self._clock = clock
        self._ready = threading.Event()
        self._sandbox: RunningSandbox | None = None
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return self._running().url

    @property
    def state(self) -> SandboxState:
        return self._running().state

    def snapshot(self) -> dict[str, Any]:
        return self._running().state.snapshot()

    def _running(self) -> RunningSandbox:
        if self._sandbox is None:
            raise RuntimeError("the sandbox thread is not running: call start() first")
        return self._sandbox

    def start(self) -> SandboxThread:
        """Start serving; returns once the port is bound (or raises what prevented it)."""
        if self._thread is not None:
            return self
        self._thread = threading.Thread(target=self._run, name="rd-sandbox", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            self._thread.join()
            self._thread = None
            raise self._error
        return self

    def stop(self) -> None:
        """Stop serving and wait for the thread to end. Safe to call twice."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        if self._loop is not None and self._stopping is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)
        thread.join()

    def _run(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        try:
            sandbox, stop = await start_sandbox(
                self.config, self._host, self._port, clock=self._clock
            )
        except BaseException as exc:  # handed to the starting thread, which raises it
            self._error = exc
            self._ready.set()
            return
        self._sandbox = sandbox
        self._ready.set()
        try:
            await self._stopping.wait()
        finally:
            await stop()

    def __enter__(self) -> SandboxThread:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def serve(
    host: str,
    port: int,
    config: SandboxConfig,
    *,
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Serve the sandbox until SIGINT or SIGTERM; ``on_ready(url)`` once it listens.

    Raises InputError when the port cannot be bound. Prints nothing itself.
    """
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve_until_signal(host, port, config, on_ready))


async def _serve_until_signal(
    host: str,
    port: int,
    config: SandboxConfig,
    on_ready: Callable[[str], None] | None,
) -> None:
    sandbox, stop = await start_sandbox(config, host, port)
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    installed = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        # Outside the main thread (or on Windows) signals cannot be hooked; Ctrl-C still ends
        # asyncio.run with KeyboardInterrupt, which serve() swallows.
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signum, stopping.set)
            installed.append(signum)
    try:
        if on_ready is not None:
            on_ready(sandbox.url)
        await stopping.wait()
    finally:
        for signum in installed:
            loop.remove_signal_handler(signum)
        await stop()
