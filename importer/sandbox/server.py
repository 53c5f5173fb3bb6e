"""The sandbox as an aiohttp app, and the ways to run it."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from importer.errors import InputError
from importer.sandbox.batch import BatchEndpoint
from importer.sandbox.contacts import ContactsEndpoints
from importer.sandbox.conversions import STATE_KEY, _Sandbox
from importer.sandbox.fields import FieldsEndpoint
from importer.sandbox.oauth import OAuthProvider
from importer.sandbox.rules import CONVERSIONS_PATH, MAX_BODY_BYTES, RESET_PATH, STATE_PATH, Clock
from importer.sandbox.state import SandboxConfig, SandboxState


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
    provider = OAuthProvider(sandbox, clock)
    provider.add_routes(app)
    ContactsEndpoints(sandbox, provider).add_routes(app)
    FieldsEndpoint(provider, sandbox.config.fields).add_routes(app)
    BatchEndpoint(sandbox, provider).add_routes(app)
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
