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
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import csv
import dataclasses
import difflib
import functools
import inspect
import os
import re
import sys
import tempfile
import threading
from collections.abc import Callable, Iterable
from collections.abc import Mapping as MappingABC
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, ParamSpec, TypeVar, cast

from importer.errors import AbortError, InputError
from importer.loader import _unique
from importer.mapping import Mapping, load_mapping
from importer.pipeline import DEFAULT_API_URL, ImportConfig, Listener, run_import_async
from importer.report import RunReport, unescape_formula
from importer.sending import RunControl

if TYPE_CHECKING:
    import pandas as pd  # type: ignore[import-untyped]

__all__ = ["ImportReport", "RunAborted", "import_rows", "import_rows_async"]

P = ParamSpec("P")
R = TypeVar("R")

_DICT_MAPPING = "the mapping dict"  # how messages name a mapping given as a dict
# The CLI's flags in the messages the library shares with the CLI, said as keywords here.
_FLAG = re.compile(
    r"--(?:(keep-sent|resend-changed|retry-rejected|dry-run|sandbox)\b"
    r"|(mapping|out|sheet|encoding|delimiter|header-row|rows|limit|in-flight|api-url)\b ?)"
)
# Names people may reach for, from the CLI or from ImportConfig.
_ALIASES = {"out_dir": "out", "mapping_path": "mapping", "row_range": "rows", "input": "source"}


@dataclass
class ImportReport(RunReport):
    """The run's report (the counts of summary.json: ``rows``, ``succeeded``, ``failed``,
    ``skipped``...; ``out_dir``, where the reports are), and its failures read back."""

    def failures(self) -> list[dict[str, str]]:
        """The rows ``out_dir`` still holds as failed (its failures.csv, read now), each as the
        row's cells under its column names, then ``row``, ``error_stage``, ``http_status``,
        ``error_type``, ``error_message``, ``attempts``, ``source_row`` and ``row_id``. Every
        value is text, as in the file."""
        names, rows = self._read_failures()
        return [dict(zip(names, row, strict=False)) for row in rows]

    def failures_frame(self) -> pd.DataFrame:
        """``failures()`` as a pandas DataFrame, one column per column of failures.csv."""
        import pandas as pd

        names, rows = self._read_failures()
        return pd.DataFrame(rows, columns=names, dtype=object)

    def _read_failures(self) -> tuple[list[str], list[list[str]]]:
        try:
            handle = (self.out_dir / "failures.csv").open(encoding="utf-8-sig", newline="")
        except FileNotFoundError:
            return [], []
        with handle:
            reader = csv.reader(handle)
            header = [unescape_formula(cell) for cell in next(reader, [])]
            rows = [[unescape_formula(cell) for cell in row] for row in reader]
        # Duplicate column names are read as the loader reads them: 'email', 'email (2)'.
        return _unique(header, "failures.csv", []), rows


class RunAborted(AbortError):
    """The run stopped before its end (a refused key, RD Station unreachable, Ctrl-C); what it
    did is in ``report``. Call again with the same ``out`` to resume."""

    def __init__(self, message: str, report: ImportReport) -> None:
        super().__init__(message)
        self.report = report


# --- one call ----------------------------------------------------------------------------------


class _Call:
    """One call's run: its checked configuration, and how it ends."""

    def __init__(
        self,
        config: ImportConfig,
        listener: Listener | None,
        progress: bool,
        mapping_yaml: str | None,
    ) -> None:
        self.config = config
        self.listener = listener
        self.progress = progress
        self.mapping_yaml = mapping_yaml  # a dict mapping as YAML: its messages' line numbers
        self.control = RunControl()

    async def run(self) -> ImportReport:
        """The run to its end. Cancelled, it stops as Ctrl-C stops the CLI: the requests in
        flight bring their answers and the reports are written, then CancelledError goes on."""
        task = asyncio.ensure_future(run_import_async(self.config, self.listener, self.control))
        try:
            report = await asyncio.shield(task)
        except asyncio.CancelledError:
            if self.config.dry_run:
                task.cancel()  # nothing is in flight: stop at once
            else:
                self.control.interrupt("cancelled")
            with contextlib.suppress(BaseException):
                await task
            raise
        except InputError as exc:
            raise _in_api_words(exc, self.mapping_yaml) from None
        return self._finish(report)

    def stop(self, outer: asyncio.Task[Any], name: str) -> None:
        """From the event loop's thread: a Ctrl-C stops a run that sends gracefully (a second
        one stops waiting for answers), and a dry run at once."""
        if self.config.dry_run:
            outer.cancel()
        else:
            self.control.interrupt(name)

    def _finish(self, run: RunReport) -> ImportReport:
        report = ImportReport(**{f.name: getattr(run, f.name) for f in dataclasses.fields(run)})
        if self.progress:
            from importer.console import err
            from importer.report import console_summary, shown_text

            if report.shown:
                err(shown_text(report.shown) + "\n")
            err(console_summary(report, self.config.input_path.name))
        if report.aborted:
            raise RunAborted(
                f"{report.aborted}. {report.succeeded:,} rows sent, {report.failed:,} failed, "
                f"{report.left_to_send:,} left to send: call again with the same out= to resume",
                report,
            )
        return report


def _in_api_words(exc: InputError, mapping_yaml: str | None = None) -> InputError:
    """The library's message as this API's caller knows the settings (``header_row=``,
    not ``--header-row``), with what to do in keyword arguments."""
    text = _FLAG.sub(_keyword, str(exc))
    if exc.setting == "changed":
        text += (
            ": pass keep_sent=True to leave them as sent and send only rows never sent, or "
            "resend_changed=True to send them again (RD Station updates each lead and "
            "records another conversion)"
        )
    elif exc.setting == "api_key":
        text += " or pass api_key= (dry_run=True and sandbox=True need none)"
    elif exc.setting == "out_dir" and text.startswith("out_dir "):
        text = "out " + text.removeprefix("out_dir ")
    if mapping_yaml is not None and text.startswith(_DICT_MAPPING):
        text += "\n" + _numbered(mapping_yaml)
    return InputError(text, setting=exc.setting)


def _keyword(flag: re.Match[str]) -> str:
    """``--dry-run`` as ``dry_run=True``; ``--header-row 4`` as ``header_row=4``."""
    switch, option = flag.groups()
    return switch.replace("-", "_") + "=True" if switch else option.replace("-", "_") + "="


def _numbered(yaml_text: str) -> str:
    lines = yaml_text.splitlines()
    return "the mapping dict as YAML, which the line numbers count:\n" + "\n".join(
        f"{number:>4}  {line}" for number, line in enumerate(lines, 1)
    )


# --- the options -------------------------------------------------------------------------------


def _prepare(
    source: str | os.PathLike[str] | pd.DataFrame | Iterable[MappingABC[str, Any]],
    mapping: str | os.PathLike[str] | MappingABC[str, Any] | Mapping,
    *,
    out: str | os.PathLike[str] | None = None,
    name: str | None = None,
    dry_run: bool = False,
    sandbox: bool = False,
    rate: float = 120.0,
    concurrency: int = 8,
    api_url: str | None = None,
    api_key: str | None = None,
    sheet: str | None = None,
    encoding: str | None = None,
    delimiter: str | None = None,
    header_row: int | None = None,
    in_flight: Literal["resend", "skip"] | None = None,
    retry_rejected: bool = False,
    keep_sent: bool = False,
    resend_changed: bool = False,
    limit: int | None = None,
    rows: tuple[int, int] | str | None = None,
    show: int = 0,
    progress: bool = False,
    listener: Listener | None = None,
) -> _Call:
    """The options, checked, as one run's configuration (see ``import_rows``)."""
    table, input_path = _source(source, name)
    if table is not None:
        what = "a DataFrame" if _is_frame(source) else "dicts"
        file_options = (("sheet", sheet), ("encoding", encoding), ("delimiter", delimiter))
        ignored = [
            f"{option}= is ignored: the rows are {what}, not a file"
            for option, value in (*file_options, ("header_row", header_row))
            if value is not None
        ]
        table = functools.partial(table, warnings=ignored)
    loaded, mapping_path, mapping_yaml = _mapping(mapping)
    if keep_sent and resend_changed:
        raise InputError("keep_sent and resend_changed exclude each other: choose one")
    if progress and listener is not None:
        raise TypeError("give progress=True or a listener, not both")
    if progress:
        from importer.console import ConsoleListener

        listener = ConsoleListener()
    sends = not (dry_run or sandbox)
    if api_key is None and sends:
        api_key = os.environ.get("RDSTATION_API_KEY", "").strip() or None
    return _Call(
        ImportConfig(
            input_path=input_path,
            mapping_path=mapping_path,
            out_dir=None if out is None else Path(out),
            api_url=api_url or os.environ.get("RDSTATION_API_URL") or DEFAULT_API_URL,
            api_key=api_key if sends else None,
            rate=rate,
            concurrency=concurrency,
            dry_run=dry_run,
            sandbox=sandbox,
            sheet=sheet if table is None else None,
            encoding=encoding if table is None else None,
            delimiter=delimiter if table is None else None,
            header_row=header_row if table is None and header_row is not None else 1,
            in_flight=in_flight,
            retry_rejected=retry_rejected,
            changed="keep" if keep_sent else "resend" if resend_changed else None,
            rows=_row_range(rows),
            limit=limit,
            show=show,
            table=table,
            mapping=loaded,
        ),
        listener,
        progress,
        mapping_yaml,
    )


def _is_frame(source: object) -> bool:
    pandas = sys.modules.get("pandas")  # a DataFrame exists only once pandas is imported
    return pandas is not None and isinstance(source, pandas.DataFrame)


def _source(source: Any, name: str | None) -> tuple[Callable[..., Any] | None, Path]:
    """What to read: (rows in memory, or None for a file; the path that names them)."""
    if isinstance(source, str | os.PathLike):
        if name is not None:
            raise InputError(
                f"name={name!r} names rows given in memory; a file is named by its path",
                setting="name",
            )
        return None, Path(source)
    if _is_frame(source):
        from importer.frames import frame_table

        label = _check_name(name or "dataframe")
        return functools.partial(frame_table, source, label), Path(label)
    pandas = sys.modules.get("pandas")
    if pandas is not None and isinstance(source, pandas.Series):
        raise TypeError("source is a pandas Series: pass a DataFrame (series.to_frame())")
    if isinstance(source, MappingABC | bytes | bytearray) or not isinstance(source, Iterable):
        raise TypeError(
            f"source is a {type(source).__name__}: pass a file's path, a pandas DataFrame, "
            "or rows as dicts of column: value (a list of dicts, or an iterator of them)"
        )
    from importer.frames import dicts_table

    label = _check_name(name or "rows")
    return functools.partial(dicts_table, source, label), Path(label)


def _check_name(name: object) -> str:
    if not isinstance(name, str) or name in ("", ".", "..") or Path(name).name != name:
        raise InputError(
            f"name={name!r}: use a plain name such as 'leads' (it names the reports folder "
            "rd-import-out/<name> and the rows in messages)",
            setting="name",
        )
    return name


def _mapping(mapping: Any) -> tuple[Mapping | None, Path, str | None]:
    """(the mapping when given loaded or as a dict, its path or name, a dict's YAML)."""
    if isinstance(mapping, Mapping):
        return mapping, mapping.path, None
    if isinstance(mapping, str | os.PathLike):
        return None, Path(mapping), None
    if not isinstance(mapping, MappingABC):
        raise TypeError(
            f"mapping is a {type(mapping).__name__}: pass a mapping file's path, a dict shaped "
            "like the YAML, or a Mapping from importer.mapping.load_mapping"
        )
    import yaml

    try:
        text = yaml.safe_dump(
            _plain(mapping), sort_keys=False, allow_unicode=True, default_flow_style=False
        )
    except yaml.YAMLError as exc:
        value = exc.args[1] if len(exc.args) > 1 else None
        raise InputError(
            f"{_DICT_MAPPING} holds a {type(value).__name__}, which a mapping cannot: use text, "
            "numbers, true/false, lists and dicts"
        ) from None
    # Read as a file is, by load_mapping itself: the same checks, the same messages, and line
    # numbers that the YAML shown with them counts.
    with tempfile.TemporaryDirectory(prefix="rd-importer-") as folder:
        path = Path(folder) / "mapping.yaml"
        path.write_text(text, encoding="utf-8")
        try:
            loaded = load_mapping(path)
        except InputError as exc:
            message = str(exc).replace(path.name, _DICT_MAPPING, 1)
            raise InputError(f"{message}\n{_numbered(text)}") from None
    loaded.path = Path(_DICT_MAPPING)  # what bind's messages and summary.json name
    return loaded, loaded.path, text


def _plain(value: Any) -> Any:
    """A dict of the caller's as YAML's plain data: tuples as lists, any mapping as a dict."""
    if isinstance(value, MappingABC):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


def _row_range(rows: tuple[int, int] | str | None) -> tuple[int, int] | None:
    """``rows=(2, 11)`` or ``rows="2-11"`` (``"100-"``: from row 100 on), as ``--rows``."""
    if rows is None or isinstance(rows, tuple | list):
        return None if rows is None else (int(rows[0]), int(rows[1]))
    first, dash, last = str(rows).strip().partition("-")
    try:
        return int(first), int(last) if last.strip() else (1 << 62) if dash else int(first)
    except ValueError:
        raise InputError(
            f"rows {rows!r}: use FIRST-LAST, e.g. '2-11' or (2, 11) (rows as a spreadsheet "
            "numbers them: the header is row 1)",
            setting="rows",
        ) from None


# --- the two ways to call it -------------------------------------------------------------------


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
    ``sheet``, ``encoding``, ``delimiter``, ``header_row`` (for files), ``in_flight``,
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
