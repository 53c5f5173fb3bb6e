"""RD Station's rules that only a row's value can settle: a valid email, a social handle in
the characters RD Station takes, a legal basis type or status it knows.

Each check takes the field's value and label and returns the value to send, or raises a
``RowError`` of stage "validation". Constants were checked when the mapping was loaded.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from importer import payload as rd
from importer.errors import RowError
from importer.mapping.convert import show

Check = Callable[[Any, str], Any]  # (value, label) -> value to send


def payload_check(name: str) -> Check | None:
    """The per-row rule of RD Station's for the field ``name``; None when it has none."""
    if name == "email":
        return _check_email
    if name not in rd.SOCIAL_FIELDS:
        return None

    def check(value: Any, label: str) -> Any:
        problem = rd.check_value(name, value)
        if problem is not None:
            raise RowError(f"{label}: {show(value)} {problem.message}", stage="validation")
        return value

    return check


def _check_email(value: Any, label: str) -> str:
    try:
        return rd.normalize_email(value)
    except rd.InvalidEmail as exc:
        raise RowError(
            f"{label}: {show(value)} is not a valid email address: {exc}", stage="validation"
        ) from None


def legal_check(part: str) -> Check:
    """A legal basis ``type`` or ``status`` from a column: one RD Station knows; a status
    through ``bool`` is ``granted`` (true) or ``declined`` (false)."""
    allowed = rd.LEGAL_BASIS_TYPES if part == "type" else rd.LEGAL_BASIS_STATUSES

    def check(value: Any, label: str) -> Any:
        if part == "status" and isinstance(value, bool):
            return "granted" if value else "declined"
        if value not in allowed:
            raise RowError(
                f"{label}: {show(value)} is not a legal basis {part} "
                f"({', '.join(allowed)}); add a map:",
                stage="validation",
            )
        return value

    return check
