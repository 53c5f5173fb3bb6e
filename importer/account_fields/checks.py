"""The mapping and each row's cells against the account's fields.

    check_mapping(mapping, account, headers)   SettingsError (exit 2) naming each cf_* the account
                                               lacks, with its line and the closest field
    cell_check(mapping, account, headers)      a row's check (payload -> CellProblem | None), or
                                               None when no mapped field needs one

A custom field the account lacks would be refused (or dropped) by RD Station row after row, the
budget spent: the run stops before reading a row. A cell that does not fit its field (text for
a number, a value that is not one of a combo box's options) fails its own row at validation,
before sending; the other rows go on.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from importer.account_fields.model import (
    BOOLEAN,
    INTEGER,
    STRING,
    STRING_LIST,
    AccountField,
    AccountFields,
    Option,
)
from importer.errors import SettingsError
from importer.headers import header_key
from importer.mapping import Mapping
from importer.mapping.columns import forgiven, renamed
from importer.mapping.compile import label_of
from importer.mapping.convert import show
from importer.mapping.schema import CellEntry, ColumnEntry, MappingFile, ValueEntry
from importer.transforms import fold

SHOWN_OPTIONS = 5  # options a message lists before "and N more"
_INTEGER = re.compile(r"[+-]?[0-9]+")  # not \d, which takes "１２"


# -- the mapping --------------------------------------------------------------------------------


def check_mapping(mapping: Mapping, account: AccountFields) -> None:
    """SettingsError (exit 2) listing every custom field of the mapping the account lacks, each
    with its line in the mapping file and the closest field of the account, then every value
    the mapping itself writes (``value:``, ``default:``, a ``map:``'s) that its field would
    refuse; nothing when all exist and fit."""
    unknown: list[tuple[int, str]] = []
    unfit: list[tuple[int, str]] = []
    for name, entry in mapping.spec.fields.items():
        if not name.startswith("cf_"):
            continue
        known = account.get(name)
        if known is None:
            unknown.append((mapping.line_of("fields", name), _unknown(name, entry, account)))
        else:
            unfit += _unfit_constants(mapping, name, entry, known)
    problems = unknown + unfit
    if not problems:
        return
    where = mapping.path.name
    if len(problems) == 1:
        line, message = problems[0]
        raise SettingsError(f"{where}: {f'line {line}: ' if line else ''}{message}")
    listed = "\n".join(f"  {f'line {line}: ' if line else ''}{m}" for line, m in problems)
    said = (
        "custom fields are not in your RD Station account"
        if not unfit
        else "values do not fit your RD Station account's fields"
        if not unknown
        else "custom fields are not in your RD Station account or do not fit it"
    )
    raise SettingsError(f"{where}: {len(problems)} {said}:\n{listed}")


# What a row's message advises; a value the mapping writes is fixed where it is written.
_ADVICE = (
    " (add a map: to the mapping)",
    ": add transform: bool to the mapping, or a map: to true/false",
    ': add split: "," to the mapping (or the separator the cells use)',
    ": remove split: from the mapping",
)


def _unfit_constants(
    mapping: Mapping, name: str, entry: Any, known: AccountField
) -> list[tuple[int, str]]:
    """A value the mapping writes for ``name`` that its field refuses would fail every row that
    sends it, each with a row's advice: said once, at its line, before a row is read. A map's
    values are checked as sent: one item each when the cells are split (a list field's)."""
    fits = value_check(known)
    if fits is None or isinstance(entry, str):
        return []
    written: list[tuple[str, Any, Any]] = []  # (key, how the message names it, value as sent)
    if isinstance(entry, ValueEntry):
        written.append(("value", "value:", entry.value))
    elif isinstance(entry, CellEntry):
        if entry.default is not None:
            written.append(("default", "default:", entry.default))
        split = entry.split is not None
        if split and known.data_type != STRING_LIST:
            pass  # a list for a field that is not one: each row says so (cell_check)
        else:
            for key, value in (entry.map or {}).items():
                if value is not None and key != entry.empty_cell_key:
                    written.append(("map", f"map: {key!r} ->", [value] if split else value))
                elif value is not None:  # an empty cell's value: sent as is, never split
                    written.append(("map", f"map: {key!r} ->", value))
    found = []
    for key, said, value in written:
        problem = fits(value)
        if problem is None:
            continue
        text = problem[1]
        for advice in _ADVICE:
            text = text.removesuffix(advice)
        quoted = isinstance(value, str) and fold(value) in ("true", "false")
        todo = f"write {fold(value)} without quotes" if quoted else "fix the mapping"
        line = mapping.line_of("fields", name, key) or mapping.line_of("fields", name)
        found.append((line, f"{name} {said} {text}: {todo}"))
    return found


def _unknown(name: str, entry: Any, account: AccountFields) -> str:
    said = f"{name} is not a field of your RD Station account"
    close = closest_field(name, _columns(entry), account)
    if close is not None:
        titled = f' ("{close.title}")' if close.title else ""
        return (
            f"{said} (did you mean `{close.api_identifier}`{titled}?): fix the name, or "
            "create the field in RD Station"
        )
    custom = [f.api_identifier for f in account.custom]
    if not custom:
        return f"{said}, which has no custom fields: create it in RD Station first"
    shown = ", ".join(custom[:SHOWN_OPTIONS]) + (
        f" and {len(custom) - SHOWN_OPTIONS} more" if len(custom) > SHOWN_OPTIONS else ""
    )
    return f"{said} (its custom fields: {shown}): fix the name, or create the field in RD Station"


def _columns(entry: Any) -> list[str]:
    if isinstance(entry, str):
        return [entry]
    if isinstance(entry, ColumnEntry):
        return list(entry.columns)
    return []


def closest_field(
    name: str, columns: Sequence[str], account: AccountFields, cutoff: float = 0.6
) -> AccountField | None:
    """The custom field ``name`` most likely meant: by identifier (``cf_plano_contrado`` ->
    ``cf_plano_contratado``), or by label or name, compared with the identifier or with the
    column the mapping reads (``cf_plan: "Plano"`` -> the field labelled "Plano")."""
    wanted = header_key(name.removeprefix("cf_"))
    column_keys = {header_key(c) for c in columns} - {""}
    best: tuple[float, AccountField] | None = None
    for candidate in account.custom:
        if column_keys & {header_key(n) for n in candidate.names}:
            score = 1.0  # the field labelled as the column the mapping reads
        else:
            keys = [header_key(candidate.api_identifier.removeprefix("cf_"))]
            keys += [header_key(n) for n in candidate.names]
            score = max(difflib.SequenceMatcher(None, wanted, k).ratio() for k in keys if k)
        if score >= cutoff and (best is None or score > best[0]):
            best = (score, candidate)
    return best[1] if best else None


# -- the cells ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CellProblem:
    """Why a row's cells do not fit the account's fields: for failures.csv."""

    error_type: str  # RD Station's own words where it has them (INVALID_OPTION, MUST_BE_...)
    message: str


CellCheck = Callable[[dict[str, Any]], CellProblem | None]
_ValueCheck = Callable[[Any], tuple[str, str] | None]  # value -> (error type, what is wrong)


def cell_check(
    mapping: Mapping, account: AccountFields, headers: Sequence[str]
) -> CellCheck | None:
    """The check of a row's payload against the account's fields, or None when no mapped field
    has a rule to check (then a row costs nothing more)."""
    spec: MappingFile = renamed(mapping.spec, forgiven(mapping.spec, list(headers)))
    present = set(headers)
    checks: list[tuple[str, str, _ValueCheck]] = []
    for name, entry in spec.fields.items():
        known = account.get(name) if name.startswith("cf_") else None
        check = value_check(known) if known is not None else None
        if known is not None and known.data_type == STRING and not known.choices:
            # A text field refuses only a list, which only these entries can give.
            check = check if _may_give_a_list(entry) else None
        if check is not None:
            checks.append((name, label_of(name, entry, present), check))
    if not checks:
        return None

    def check_row(payload: dict[str, Any]) -> CellProblem | None:
        found: list[tuple[str, str]] = []
        for name, label, value_fits in checks:
            value = payload.get(name)
            if value is not None and (problem := value_fits(value)) is not None:
                found.append((problem[0], f"{label}: {problem[1]}"))
        if not found:
            return None
        return CellProblem(found[0][0], "; ".join(message for _, message in found))

    return check_row


def _may_give_a_list(entry: Any) -> bool:
    if isinstance(entry, ValueEntry):
        return isinstance(entry.value, list)
    if isinstance(entry, CellEntry):
        return entry.split is not None or isinstance(entry.default, list)
    return False  # a bare column header: its trimmed text


def value_check(known: AccountField) -> _ValueCheck | None:
    """The check of one field's value: its type, then its options; None when it has neither
    (a text field, or a type RD Station added that this importer does not know)."""
    kind, options = known.data_type, known.choices
    if kind == INTEGER:
        return _integer
    if kind == BOOLEAN:
        return _boolean
    if kind == STRING_LIST:
        return _string_list(known, options)
    if kind == STRING:
        return _string(known, options)
    return None


def _integer(value: Any) -> tuple[str, str] | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return None
    if isinstance(value, str) and _INTEGER.fullmatch(value.strip()):
        return None
    came = "a list" if isinstance(value, list) else show(value)
    return "INVALID_DATA_TYPE", f"{came} is not a whole number, which this field takes (INTEGER)"


def _boolean(value: Any) -> tuple[str, str] | None:
    if isinstance(value, bool):
        return None
    came = "a list" if isinstance(value, list) else show(value)
    return "MUST_BE_BOOLEAN", (
        f"{came} is not true or false, which this field takes (BOOLEAN): add transform: bool "
        "to the mapping, or a map: to true/false"
    )


def _string(known: AccountField, options: tuple[Option, ...]) -> _ValueCheck:
    allowed = frozenset(option.value for option in options)  # a row's test: one set lookup

    def check(value: Any) -> tuple[str, str] | None:
        if value.__class__ is str and value in allowed:
            return None
        if isinstance(value, list | dict):
            return "MUST_BE_STRING", (
                "a list is not one text, which this field takes (STRING): remove split: from "
                "the mapping"
            )
        return _option(_text(value), options) if options else None

    return check


def _string_list(known: AccountField, options: tuple[Option, ...]) -> _ValueCheck:
    allowed = frozenset(option.value for option in options)

    def check(value: Any) -> tuple[str, str] | None:
        if options and value.__class__ is list:
            try:
                if allowed.issuperset(value):
                    return None  # every item one of the options
            except TypeError:
                pass  # a list or dict in the list: said below
        if not isinstance(value, list):
            return "MUST_BE_STRING_ARRAY", (
                f"{show(value)} is not a list, which this field takes (STRING[]): add split: "
                '"," to the mapping (or the separator the cells use)'
            )
        for item in value:
            if isinstance(item, list | dict):
                return "MUST_BE_STRING_ARRAY", "a list in a list: each item must be one text"
            if options and (problem := _option(_text(item), options)) is not None:
                return problem
        return None

    return check


def _text(value: Any) -> str:
    # As the payload's JSON writes it: transform: bool gives True, which a choice field with the
    # options "true" and "false" takes, and any other refuses.
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


def _option(value: str, options: tuple[Option, ...]) -> tuple[str, str] | None:
    if any(value == option.value for option in options):  # a row's check tried a set first
        return None
    close = closest_option(value, options)
    hint = f" (did you mean {close.value!r}?)" if close is not None else ""
    values = [option.value for option in options]
    listed = ", ".join(repr(v) for v in values[:SHOWN_OPTIONS])
    more = f" and {len(values) - SHOWN_OPTIONS} more" if len(values) > SHOWN_OPTIONS else ""
    return "INVALID_OPTION", (
        f"{show(value)} is not one of the field's options{hint}; valid: {listed}{more} "
        "(add a map: to the mapping)"
    )


def closest_option(value: str, options: Sequence[Option]) -> Option | None:
    """The option a cell most likely meant: the same but for case and accents, its label, or
    the closest spelling of either."""
    folded = fold(value)
    for option in options:
        if folded in (fold(option.value), fold(option.label)):
            return option
    by_text = {fold(option.value): option for option in options}
    by_text.update({fold(o.label): o for o in options if fold(o.label) not in by_text})
    found = difflib.get_close_matches(folded, list(by_text), n=1, cutoff=0.6)
    return by_text[found[0]] if found else None
