"""The Python API: import a file, a pandas DataFrame or dicts from a notebook or a task.

    from importer import import_rows
    report = import_rows(df, "mapping.yaml", out="rd-out/leads", sandbox=True)
    report.succeeded, report.failed, report.failures_frame()

``import_rows`` (and ``import_rows_async``, to await inside an event loop) runs the same run as
``rd-importer import``: the options are the CLI's flags as keyword arguments (``--api-url`` is
``api_url=``), the reports go to ``out`` (default ``rd-import-out/<name>``), and the same ledger
resumes: the same rows into the same ``out`` send only what was not sent. It returns the run's
report (``ImportReport``, a ``RunReport`` that reads its failures back), never prints unless
asked (``progress=True``, or a ``listener``), never exits, and raises the project's exceptions:
``InputError`` for a problem found before anything was sent, ``RunAborted`` (an ``AbortError``
holding the report) when the run stopped before its end (a refused key, Ctrl-C): call again
with the same ``out`` to resume. How a DataFrame's cells become text: ``importer.frames``.

Here: the two ways to call it and how a blocking call runs. ``call``: one call's run, how it
ends (``ImportReport``, ``RunAborted``) and its messages in keyword words; ``options``: the
keyword arguments, checked, as the run's configuration.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import difflib
import functools
import inspect
import sys
import threading
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar, cast

from importer.api.call import ImportReport, RunAborted, _Call, _in_api_words
from importer.api.options import _prepare
from importer.errors import InputError

__all__ = ["ImportReport", "RunAborted", "import_rows", "import_rows_async"]

P = ParamSpec("P")
R = TypeVar("R")

# Names people may reach for, from the CLI or from ImportConfig.
_ALIASES = {"out_dir": "out", "mapping_path": "mapping", "row_range": "rows", "input": "source"}


def _with_options(
    prepare: Callable[P, _Call],
) -> Callable[[Callable[[_Call], R]], Callable[P, R]]:
    """Give a function ``prepare``'s parameters, checked when called: a TypeError names the
    closest known keyword for one it does not know (``rat=``: did you mean ``rate``?)."""
    signature = inspect.signature(prepare)

    def checked(name: str, args: Any, kwargs: Any) -> _Call:
        for keyword in kwargs:
            if keyword not in signature.parameters:
                close = _ALIASES.get(keyword) or next(
                    iter(difflib.get_close_matches(keyword, list(signature.parameters), n=1)),
                    None,
                )
                hint = f" (did you mean {close!r}?)" if close else ""
                raise TypeError(f"{name}() got an unexpected keyword argument {keyword!r}{hint}")
        try:
            signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise TypeError(f"{name}(): {exc}") from None
        try:
            return prepare(*args, **kwargs)
        except InputError as exc:
            raise _in_api_words(exc) from None

    def decorate(run: Callable[[_Call], R]) -> Callable[P, R]:
        wrapper: Callable[..., Any]
        if inspect.iscoroutinefunction(run):

            async def wrapper(*args: Any, **kwargs: Any) -> Any:
                return await run(checked(run.__name__, args, kwargs))

        else:

            def wrapper(*args: Any, **kwargs: Any) -> Any:
                return run(checked(run.__name__, args, kwargs))

        functools.update_wrapper(wrapper, run)
        returns = inspect.signature(run).return_annotation
        wrapper.__signature__ = signature.replace(return_annotation=returns)  # type: ignore[union-attr]
        return cast(Callable[P, R], wrapper)

    return decorate


@_with_options(_prepare)
def import_rows(call: _Call) -> ImportReport:
    """Import ``source`` (a file's path, a pandas DataFrame, or dicts of column: value) with
    ``mapping`` (a path, a dict shaped like the YAML, or a loaded ``Mapping``); return the
    run's report. Blocks until the run ends.

    Keyword arguments are the CLI's flags: ``out`` (the reports folder, default
    ``rd-import-out/<name>``), ``dry_run``, ``sandbox``, ``rate``, ``concurrency``,
    ``api_url`` (else env RDSTATION_API_URL), ``api_key`` (else env RDSTATION_API_KEY),
    ``auth`` (``"oauth"``: the app signed in with ``rd-importer auth login``), ``as_``
    (``--as``: ``"conversions"`` or ``"contacts"``; ``as`` is Python's keyword), ``batch``
    (``--batch``), ``sheet``, ``encoding``, ``delimiter``, ``header_row``,
    ``skip_hidden_rows`` (for files), ``in_flight``,
    ``retry_rejected``, ``keep_sent``, ``resend_changed``, ``limit``, ``rows`` (``(2, 11)`` or
    ``"2-11"``), ``show``; ``name`` names rows given in memory (default ``dataframe`` or
    ``rows``); ``progress=True`` prints what the CLI prints (on stderr), or pass a
    ``listener``. In a notebook it runs in a thread beside the kernel's event loop; in another
    running event loop it refuses to block it: ``await import_rows_async(...)`` there. Ctrl-C
    stops the run as it stops the CLI (``RunAborted``).
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        if not _in_notebook():
            raise RuntimeError(
                "import_rows() cannot run inside a running event loop, which it would block "
                "until the import ends: use `await import_rows_async(...)` with the same "
                "arguments"
            )
    return _run_in_thread(call)


@_with_options(_prepare)
async def import_rows_async(call: _Call) -> ImportReport:
    """``import_rows`` for code inside an event loop: ``await import_rows_async(df, ...)``.
    Cancelling it stops the run as Ctrl-C stops the CLI, then raises CancelledError."""
    return await call.run()


def _signal_name(exc: BaseException) -> str:
    return "Ctrl-C" if isinstance(exc, KeyboardInterrupt) else type(exc).__name__


def _in_notebook() -> bool:
    """In Jupyter the kernel's event loop runs while a cell runs: blocking it is what a cell
    does anyway."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return getattr(shell, "kernel", None) is not None


def _run_in_thread(call: _Call) -> ImportReport:
    """The run in its own event loop and thread, so the caller's thread can take Ctrl-C (or a
    host's signal handler raising) and stop the run the way the CLI does, without installing
    signal handlers of its own in the caller's process."""
    started = threading.Event()
    running: list[tuple[asyncio.AbstractEventLoop, asyncio.Task[Any]]] = []

    async def main() -> ImportReport:
        running.append((asyncio.get_running_loop(), asyncio.current_task()))  # type: ignore[arg-type]
        started.set()
        return await call.run()

    raised: BaseException | None = None
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="rd-importer") as pool:
        future = pool.submit(asyncio.run, main())
        while not future.done():
            try:
                concurrent.futures.wait([future])
            except BaseException as exc:  # Ctrl-C (KeyboardInterrupt), or a host's signal
                raised = raised or exc
                while not started.wait(0.1) and not future.done():
                    pass
                if running:
                    loop, task = running[0]
                    with contextlib.suppress(RuntimeError):  # closed: the run has ended
                        loop.call_soon_threadsafe(call.stop, task, _signal_name(exc))
    try:
        report = future.result()
    except asyncio.CancelledError:  # a dry run stopped by Ctrl-C
        raise raised or KeyboardInterrupt() from None
    # RunAborted says a run stopped by Ctrl-C; one that ended before it noticed still leaves
    # its reports, and the Ctrl-C goes on (what a host's signal raised always does).
    if raised is not None:
        raise raised
    return report
