"""The mapping's ``funnel:`` section: the contact's lifecycle stage, opportunity and owner, which
RD Station sets apart from the conversion (``PUT /platform/contacts/email:EMAIL/funnels/default``,
OAuth only)::

    funnel:
      lifecycle_stage: {column: "Lifecycle Stage", map: {lead: Lead, customer: Client}}
      opportunity: {column: "Open deal", transform: bool}
      contact_owner_email: "Owner e-mail"
      with_apikey: skip          # presets: left out under --auth apikey, with a note

Each key is an entry like any field's (a header, ``column``, ``template``, ``value``, with
``map``/``transform``/``default``/``optional``...). RD Station takes exactly ``Lead``,
``Qualified Lead`` or ``Client``: any other spelling ("lead", "Cliente") is a ``map:`` the user
writes, never a guess of ours. ``opportunity`` is true or false; the owner an e-mail address.

    funnel_problems(data, lines) -> problems    at load, with the mapping's lines
    compile_funnel(section, present) -> FunnelGetter | None
    FunnelGetter.apply(cells, warn) -> {key: value}   or RowError (stage "validation")
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from pydantic import TypeAdapter, ValidationError

from importer import payload as rd
from importer.errors import RowError
from importer.mapping.checks import _Checker
from importer.mapping.compile import Cells, Getter, compile_entry, label_of
from importer.mapping.convert import Notes, show
from importer.mapping.problems import describe
from importer.mapping.schema import (
    FUNNEL_KEYS,
    FieldEntry,
    FunnelSection,
    KeyPath,
    ValueEntry,
)
from importer.mapping.validation import Check
from importer.mapping.yamltext import Lines, Problems, line_of

LIFECYCLE_STAGES: Final = ("Lead", "Qualified Lead", "Client")
_FIELD: TypeAdapter[Any] = TypeAdapter(FieldEntry)
_STAGES_TEXT: Final = ", ".join(LIFECYCLE_STAGES)


def funnel_problems(data: dict[str, Any], lines: Lines) -> Problems:
    """What is wrong with the ``funnel:`` section (pydantic reports the malformed parts)."""
    section = data.get("funnel")
    if not isinstance(section, dict):
        return []
    checker = _Checker(lines)
    if not any(section.get(name) is not None for name in FUNNEL_KEYS):
        checker.add(
            ("funnel",),
            "funnel: sets nothing: give lifecycle_stage, opportunity or contact_owner_email",
        )
    for name in FUNNEL_KEYS:
        raw = section.get(name)
        if raw is None:
            continue
        path: KeyPath = ("funnel", name)
        try:
            entry = _FIELD.validate_python(raw)
        except ValidationError:
            continue
        kinds = checker.entry(name, entry, path)
        _check_values(checker, name, entry, kinds, path)
    return checker.problems


def _constants(entry: Any) -> list[tuple[str, Any]]:
    """(key, value) of each value the mapping itself writes: value:, map:'s values, default:."""
    if isinstance(entry, ValueEntry):
        return [("value", entry.value)]
    if isinstance(entry, str):
        return []
    found = [("map", v) for v in (entry.map or {}).values() if v is not None]
    if entry.default is not None:
        found.append(("default", entry.default))
    return found


def _check_values(checker: _Checker, name: str, entry: Any, kinds: set[str], path: KeyPath) -> None:
    label = f"funnel.{name}"
    if name == "opportunity":
        if kinds - {"bool"}:
            checker.add(
                path, f"{label} takes true or false: add transform: bool (or map: to true/false)"
            )
        return
    if kinds - {"text"}:
        checker.add(path, f"{label} takes text, but this entry gives {describe_kinds(kinds)}")
        return
    for key, value in _constants(entry):
        where = (*path, key) if not isinstance(entry, ValueEntry) else (*path, "value")
        if name == "lifecycle_stage" and value not in LIFECYCLE_STAGES:
            checker.add(
                where,
                f"{describe(value)} is not a lifecycle stage of RD Station; use one of "
                f"{_STAGES_TEXT}, written exactly so",
            )
        elif name == "contact_owner_email" and isinstance(value, str):
            try:
                rd.normalize_email(value)
            except rd.InvalidEmail:
                checker.add(
                    where, f"{label}: {describe(value)} is not an e-mail address (the owner's)"
                )


def describe_kinds(kinds: set[str]) -> str:
    return " or ".join(sorted(k if k != "bool" else "true/false" for k in kinds - {"text"}))


# -- per row ---------------------------------------------------------------------------------------


def _stage_check(value: Any, label: str) -> Any:
    if value not in LIFECYCLE_STAGES:
        raise RowError(
            f"{label}: {show(value)} is not a lifecycle stage of RD Station ({_STAGES_TEXT}); "
            "add it to the entry's map:",
            stage="validation",
        )
    return value


def _opportunity_check(value: Any, label: str) -> Any:
    if not isinstance(value, bool):
        raise RowError(
            f"{label}: {show(value)} is not true or false; add transform: bool or a map:",
            stage="validation",
        )
    return value


def _owner_check(value: Any, label: str) -> Any:
    try:
        return rd.normalize_email(value)
    except (rd.InvalidEmail, TypeError, AttributeError):
        raise RowError(
            f"{label}: {show(value)} is not an e-mail address; the owner is named by the "
            "e-mail of a user of the RD Station account (map: names to e-mails)",
            stage="validation",
        ) from None


_CHECKS: Final[dict[str, Check]] = {
    "lifecycle_stage": _stage_check,
    "opportunity": _opportunity_check,
    "contact_owner_email": _owner_check,
}


OWNER_DROPPED: Final = "dropped:funnel.contact_owner_email"
OWNER_ADVICE: Final = (
    "; to set those contacts' owner, add each owner as it is written there, with the e-mail"
    " of their RD Station user, to funnel.contact_owner_email's map:"
)


class FunnelGetter:
    """The funnel section compiled for one file's headers."""

    def __init__(self, getters: list[tuple[str, Getter]], notes: Notes) -> None:
        self._getters = getters
        self._notes = notes

    def apply(self, cells: Cells, warn: Callable[[str, str], None] | None = None) -> dict[str, Any]:
        """The row's funnel (only the keys it sets; empty: no funnel step), or RowError."""
        funnel: dict[str, Any] = {}
        try:
            for name, get in self._getters:
                value = get(cells)
                if value is not None:
                    funnel[name] = value
        finally:
            notes, self._notes[:] = list(self._notes), []
        if warn is not None:
            for kind, message in dict.fromkeys(notes):
                if kind == OWNER_DROPPED and "not in the map" in message:
                    message += OWNER_ADVICE  # the presets' owner map: names to fill in
                warn(kind, message)
        return funnel


def compile_funnel(section: FunnelSection | None, present: set[str]) -> FunnelGetter | None:
    """The getter of ``section`` for a file whose headers are ``present``; None for none, or
    when every entry reads only optional columns the file lacks."""
    if section is None:
        return None
    notes: Notes = []
    getters: list[tuple[str, Getter]] = []
    for name in FUNNEL_KEYS:
        entry = getattr(section, name)
        if entry is None:
            continue
        getter = compile_entry(f"funnel.{name}", entry, present, _CHECKS[name], False, notes)
        if getter is not None:
            getters.append((name, _checked_constant(getter, entry, name, present)))
    return FunnelGetter(getters, notes) if getters else None


def _checked_constant(getter: Getter, entry: Any, name: str, present: set[str]) -> Getter:
    """A ``value:`` was checked at load; an owner's constant is still normalised (lower case)."""
    if isinstance(entry, ValueEntry) and name == "contact_owner_email":
        value = _owner_check(entry.value, label_of(name, entry, present))
        return lambda cells: value
    return getter


def funnel_line(lines: Lines) -> int:
    """The mapping's line of ``funnel:``."""
    return line_of(lines, ("funnel",)) if lines else 0
