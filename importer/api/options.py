"""The keyword arguments of ``import_rows``, checked, as one run's configuration: the source
(a file, a DataFrame, dicts), the mapping (a path, a dict, a ``Mapping``), the rows."""

from __future__ import annotations

import functools
import os
import sys
import tempfile
from collections.abc import Callable, Iterable
from collections.abc import Mapping as MappingABC
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from importer.api.call import _DICT_MAPPING, _Call, _numbered
from importer.errors import InputError
from importer.mapping import Mapping, load_mapping
from importer.pipeline import DEFAULT_API_URL, ImportConfig, Listener

if TYPE_CHECKING:
    import pandas as pd  # type: ignore[import-untyped]


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
    auth: Literal["apikey", "oauth"] = "apikey",
    as_: Literal["conversions", "contacts"] = "conversions",
    batch: int | None = None,
    sheet: str | None = None,
    encoding: str | None = None,
    delimiter: str | None = None,
    header_row: int | None = None,
    skip_hidden_rows: bool = False,
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
    table = _ignoring_file_options(
        table, source, sheet, encoding, delimiter, header_row, skip_hidden_rows or None
    )
    loaded, mapping_path, mapping_yaml = _mapping(mapping)
    if auth == "oauth" and api_key is not None:
        raise InputError(
            "api_key= goes with auth='apikey'; auth='oauth' signs requests with the app signed "
            "in by `rd-importer auth login`"
        )
    if keep_sent and resend_changed:
        raise InputError("keep_sent and resend_changed exclude each other: choose one")
    listener = _listener(progress, listener)
    sends = not (dry_run or sandbox)
    in_file = table is None
    config = ImportConfig(
        input_path=input_path,
        mapping_path=mapping_path,
        out_dir=None if out is None else Path(out),
        api_url=api_url or os.environ.get("RDSTATION_API_URL") or DEFAULT_API_URL,
        api_key=_api_key(api_key) if sends and auth == "apikey" else None,
        auth=auth,
        send_as=as_,
        batch=batch,
        rate=rate,
        concurrency=concurrency,
        dry_run=dry_run,
        sandbox=sandbox,
        sheet=sheet if in_file else None,
        encoding=encoding if in_file else None,
        delimiter=delimiter if in_file else None,
        header_row=header_row if in_file and header_row is not None else 1,
        skip_hidden_rows=skip_hidden_rows and in_file,
        in_flight=in_flight,
        retry_rejected=retry_rejected,
        changed="keep" if keep_sent else "resend" if resend_changed else None,
        rows=_row_range(rows),
        limit=limit,
        show=show,
        table=table,
        mapping=loaded,
    )
    return _Call(config, listener, progress, mapping_yaml)


def _ignoring_file_options(
    table: Callable[..., Any] | None, source: object, *options: object
) -> Callable[..., Any] | None:
    """Rows in memory, told to warn of each file option given (sheet=, encoding=, delimiter=,
    header_row=, skip_hidden_rows=, in that order): none applies to them."""
    if table is None:
        return None
    what = "a DataFrame" if _is_frame(source) else "dicts"
    names = ("sheet", "encoding", "delimiter", "header_row", "skip_hidden_rows")
    ignored = [
        f"{option}= is ignored: the rows are {what}, not a file"
        for option, value in zip(names, options, strict=True)
        if value is not None
    ]
    return functools.partial(table, warnings=ignored)


def _listener(progress: bool, listener: Listener | None) -> Listener | None:
    if progress and listener is not None:
        raise TypeError("give progress=True or a listener, not both")
    if progress:
        from importer.console import ConsoleListener

        return ConsoleListener()
    return listener


def _api_key(given: str | None) -> str | None:
    """The key given, else RDSTATION_API_KEY's (for a run that sends)."""
    if given is None:
        return os.environ.get("RDSTATION_API_KEY", "").strip() or None
    return given


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
