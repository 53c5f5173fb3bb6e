"""Rows given in memory, a pandas DataFrame or dicts, as a ``Table`` read like a file's.

    frame_table(df, "leads")          the DataFrame's columns are the header row
    dicts_table(rows, "leads")        the rows' keys are the header row

Every cell reaches the mapping as the text a person would see, as the workbook loader renders
a cell (``workbook.cell_text``): an empty cell (None, NaN, NaT, ``pd.NA``) is ``""``; an
integral float is its digits (``1``, not ``1.0``: pandas makes an integer column float when it
has an empty cell); other floats keep 15 significant digits, as Excel shows them; booleans are
``true``/``false``; a date is ``2026-02-02`` and a date with a time ``2026-02-02T10:30:00``
(a DataFrame's datetime column shows its times only when one of them has one, as pandas
prints it); a Decimal is its exact digits; text is kept as it is, leading zeros included.
Rows are numbered as in a spreadsheet: the header is row 1, the first row 2.

A DataFrame is converted a column at a time and a chunk of rows at a time, in numpy where the
column's type allows: a 100,000-row frame costs a fraction of reading the same rows from a CSV,
and memory holds one chunk's text, not the frame's again. pandas and numpy are imported here,
and this module only when a DataFrame is given.
"""

from __future__ import annotations

import datetime as dt
import numbers
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any, cast

from importer import workbook
from importer.errors import InputError
from importer.loader import Table, table_from_records, unreadable_record

if TYPE_CHECKING:
    import pandas as pd  # type: ignore[import-untyped]

CHUNK = 8192  # rows converted at once: numpy's per-call cost is paid per chunk, not per cell
_EXACT_INTEGERS = 2.0**53  # a float below this that holds an integer holds it exactly


# --- one value ---------------------------------------------------------------------------------


def value_text(value: object) -> str:
    """One cell as the text a person sees (see the module's docstring)."""
    kind = type(value)
    if kind is str:
        return value  # type: ignore[return-value]
    if value is None:
        return ""
    if kind is float:
        return _float_text(value)  # type: ignore[arg-type]
    if kind is bool:
        return "true" if value else "false"
    if kind is int:
        return str(value)
    return _other_text(value)


def _float_text(value: float) -> str:
    if value.is_integer() and -_EXACT_INTEGERS < value < _EXACT_INTEGERS:
        return str(int(value))  # -0.0 too: "0"
    return workbook.cell_text(value)  # 15 significant digits; NaN and infinities: ""


def _short_float_text(text: str) -> str:
    """numpy's shortest text of a float32 or float16 (``0.1``, ``1.0``, ``1e-07``, ``nan``)."""
    if text in ("nan", "inf", "-inf"):
        return ""
    if "e" in text:
        return format(Decimal(text), "f")
    return text.removesuffix(".0")


def _other_text(value: Any) -> str:
    name = type(value).__name__
    if name in ("NAType", "NaTType"):  # pandas' empty cells
        return ""
    if isinstance(value, bool) or name == "bool_":
        return "true" if value else "false"
    if isinstance(value, float):  # numpy's float64 is a float
        return _float_text(float(value))
    if isinstance(value, numbers.Integral):  # numpy's integers
        return str(int(value))
    if isinstance(value, Decimal):
        return format(value, "f") if value.is_finite() else ""
    if isinstance(value, numbers.Real):  # numpy's float32 and float16: their shortest text
        return _short_float_text(str(value))
    if isinstance(value, dt.datetime):  # pandas' Timestamp too
        return _datetime_text(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, dt.time):
        return value.isoformat(timespec="auto" if value.microsecond else "seconds")
    if isinstance(value, dt.timedelta):
        return workbook.cell_text(dt.timedelta(seconds=value.total_seconds()))
    if name == "datetime64":  # a numpy datetime in an object column
        return "" if value != value else _datetime_text(value.astype("datetime64[us]").item())
    if isinstance(value, list | tuple):  # a list of tags: map it with split: ","
        return ", ".join(map(value_text, value))
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, float | complex) and value != value:
        return ""
    return str(value)


def _datetime_text(value: dt.datetime) -> str:
    if (
        value.tzinfo is None
        and not (value.hour or value.minute or value.second or value.microsecond)
        and not getattr(value, "nanosecond", 0)
    ):
        return value.date().isoformat()
    return value.isoformat(timespec="auto" if value.microsecond else "seconds")


# --- a DataFrame -------------------------------------------------------------------------------


def frame_table(frame: pd.DataFrame, name: str, warnings: Sequence[str] = ()) -> Table:
    """A DataFrame as a ``Table``: its columns are the header (its index is not read)."""
    import pandas as pd

    where = f"DataFrame '{name}'"
    columns = frame.columns
    if isinstance(columns, pd.MultiIndex):
        raise InputError(
            f"{where} has {columns.nlevels} levels of column names (a MultiIndex), where a "
            "spreadsheet has one header row: flatten them, e.g. "
            "df.columns = [' '.join(map(str, c)) for c in df.columns]"
        )
    _check_names(list(columns), where)
    notes = list(warnings)
    if any(n is not None for n in frame.index.names):
        shown = ", ".join(repr(n) for n in frame.index.names if n is not None)
        notes.append(
            f"the index of {where} ({shown}) is not read, only its columns: "
            "call df.reset_index() to import it as a column"
        )
    converters = [_column_texts(frame.iloc[:, i]) for i in range(len(columns))]
    count = len(frame)

    def records() -> Iterator[list[str]]:
        for start in range(0, count, CHUNK):
            stop = min(start + CHUNK, count)
            yield from map(list, zip(*(c(start, stop) for c in converters), strict=True))

    return table_from_records(
        where,
        list(columns),
        records() if converters else iter(()),
        description=f"pandas DataFrame, {count:,} rows x {len(columns)} columns",
        warnings=notes,
        advice="pass a DataFrame with rows",
    )


Convert = Callable[[int, int], list[str]]


def _column_texts(column: pd.Series) -> Convert:
    """The function that turns rows [start, stop) of one column into their texts."""
    import numpy as np
    import pandas as pd

    dtype = column.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        categories = pd.Series(column.cat.categories)
        texts = _column_texts(categories)(0, len(categories))
        lookup = np.array([*texts, ""], dtype=object)  # code -1 (empty) takes the last
        codes = column.cat.codes.to_numpy()
        return lambda start, stop: lookup[codes[start:stop]].tolist()
    if isinstance(dtype, pd.StringDtype):
        strings = column.to_numpy(dtype=object, na_value="")
        return lambda start, stop: strings[start:stop].tolist()
    if not isinstance(dtype, np.dtype):  # nullable Int64, boolean, Arrow types...: cell by cell
        objects = column.to_numpy(dtype=object)
        return lambda start, stop: list(map(value_text, objects[start:stop].tolist()))
    values = column.to_numpy()
    if dtype.kind == "b":
        return lambda start, stop: list(map(_BOOLS.__getitem__, values[start:stop].tolist()))
    if dtype.kind in "iu":
        return lambda start, stop: list(map(str, values[start:stop].tolist()))
    if dtype == np.float64:
        return lambda start, stop: _float64_texts(values[start:stop])
    if dtype.kind == "M":
        return _datetime_texts(values)
    if dtype.kind == "O":
        return lambda start, stop: [
            v if type(v) is str else value_text(v) for v in values[start:stop].tolist()
        ]
    if dtype.kind in "fc":  # float32, float16: numpy's scalars print their shortest text
        return lambda start, stop: [value_text(v) for v in values[start:stop]]
    objects = column.astype(object).to_numpy()  # timedelta64 (pandas' Timedelta)...
    return lambda start, stop: list(map(value_text, objects[start:stop].tolist()))


_BOOLS = ("false", "true")


def _float64_texts(values: Any) -> list[str]:
    """``%.15g`` prints most floats as a person sees them (1 for 1.0, 0.1 for 0.1), in C; the
    cells it would print otherwise (NaN, an exponent, -0) take ``_float_text``."""
    import numpy as np

    texts = list(map("%.15g".__mod__, values.tolist()))
    empty = np.isnan(values)
    for i in np.flatnonzero(empty).tolist():
        texts[i] = ""
    size = np.abs(values)
    odd = ~(size < 1e15) | ((size < 1e-4) & (values != 0)) | ((values == 0) & np.signbit(values))
    for i in np.flatnonzero(odd & ~empty).tolist():
        texts[i] = _float_text(float(values[i]))
    return texts


def _datetime_texts(values: Any) -> Convert:
    """A datetime column shows a time only when one of its cells has one, as pandas prints
    it: to the second, or to the fraction its most precise cell needs."""
    import numpy as np

    missing = np.isnat(values)
    unit, _ = np.datetime_data(values.dtype)
    ticks = values[~missing].view("i8")
    per_second = {"s": 1, "ms": 10**3, "us": 10**6, "ns": 10**9}.get(unit)
    shown: str = unit  # a unit coarser than the second (D, M, Y) shows as it is
    if per_second is not None:
        if not (ticks % (86400 * per_second)).any():
            shown = "D"
        elif not (ticks % per_second).any():
            shown = "s"
        else:
            for finer, step in (("ms", per_second // 10**3), ("us", per_second // 10**6)):
                if step >= 1 and not (ticks % step).any():
                    shown = finer
                    break

    def convert(start: int, stop: int) -> list[str]:
        texts = np.datetime_as_string(values[start:stop], unit=cast(Any, shown)).astype(object)
        texts[missing[start:stop]] = ""
        return texts.tolist()  # type: ignore[no-any-return]

    return convert


def _check_names(names: list[Any], where: str) -> None:
    """Column names must be text: the mapping names columns by their header's text."""
    odd = [(i, n) for i, n in enumerate(names) if not isinstance(n, str)]
    if not odd:
        return
    shown = ", ".join(f"column {i + 1} is {n!r}" for i, n in odd[:5])
    more = f" (and {len(odd) - 5} more)" if len(odd) > 5 else ""
    raise InputError(
        f"{where} has column names that are not text ({shown}{more}): the mapping finds columns "
        "by their header text, so name them, e.g. df.columns = df.columns.astype(str), or "
        "read the file with its header row"
    )


# --- dicts -------------------------------------------------------------------------------------


def dicts_table(rows: Iterable[Any], name: str, warnings: Sequence[str] = ()) -> Table:
    """Dicts of column: value as a ``Table``. The header is every key of a list (or other
    sequence) in the order first seen; of an iterator (read once, as it goes), the keys of its
    first row, and a later row with a value under another key fails."""
    where = f"rows '{name}'"
    items: Iterable[Any]
    if isinstance(rows, Sequence):
        keys = list(dict.fromkeys(k for row in rows if isinstance(row, Mapping) for k in row))
        items = rows
        if rows and not keys and not isinstance(rows[0], Mapping):
            _not_dicts(where, rows[0])
    else:
        iterator = iter(rows)
        first = next(iterator, _NONE)
        if first is _NONE:
            first = {}
        elif not isinstance(first, Mapping):
            _not_dicts(where, first)
        keys = list(first)
        items = _chain(first, iterator)
    if not keys:
        raise InputError(f"{where} holds no rows (or only empty dicts): nothing to import")
    _check_names(keys, where)
    index = dict.fromkeys(keys)

    def records() -> Iterator[list[str]]:
        for item in items:
            if not isinstance(item, Mapping):
                yield unreadable_record(
                    [], f"this row is a {type(item).__name__}, not a dict of column: value"
                )
                continue
            cells = [value_text(item.get(k)) for k in keys]
            if len(item) > len(keys) or not item.keys() <= index.keys():
                extra = [k for k in item if k not in index and value_text(item[k])]
                if extra:
                    yield unreadable_record(cells, _extra_keys(extra))
                    continue
            yield cells

    count = f"{len(rows):,} " if isinstance(rows, Sequence) else ""
    return table_from_records(
        where,
        keys,
        records(),
        description=f"{count}rows of dicts",
        warnings=warnings,
        advice="pass rows",
    )


_NONE: Any = object()


def _chain(first: Any, rest: Iterator[Any]) -> Iterator[Any]:
    yield first
    yield from rest


def _not_dicts(where: str, item: Any) -> None:
    raise InputError(
        f"{where}: a row is a {type(item).__name__}, not a dict of column: value; pass dicts "
        "(e.g. csv.DictReader's rows), or a pandas DataFrame for rows of values"
    )


def _extra_keys(extra: list[Any]) -> str:
    shown = ", ".join(repr(k) for k in extra[:3])
    return (
        f"this row has a value under {shown}, which is not a column (the columns of rows "
        "given one at a time are the first row's keys): give every row the same keys, or "
        "pass a list of the rows"
    )
