"""How long a server asks to wait: ``Retry-After`` / ``retry-after-quotas``, seconds or a date."""

from __future__ import annotations

import email.utils
import time
from collections.abc import Mapping


def _retry_after(headers: Mapping[str, str], now: float | None) -> float | None:
    """The longest wait the server asked for, in seconds, from either header it may send."""
    waits = []
    for name in ("retry-after-quotas", "Retry-After"):
        value = _header(headers, name)
        if value is not None:
            seconds = _seconds(value, now)
            if seconds is not None:
                waits.append(seconds)
    return max(waits) if waits else None


def _seconds(value: str, now: float | None) -> float | None:
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if seconds != seconds or seconds in (float("inf"), float("-inf")):  # NaN or infinite
        return None
    return max(0.0, seconds)


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None:  # a plain dict is case-sensitive; aiohttp's headers are not
        lower = name.lower()
        value = next((v for k, v in headers.items() if k.lower() == lower), None)
    return value


def _seconds_text(seconds: float) -> str:
    """``45 s``, ``999,999,999 s``; a wait past any calendar, ``1.0e+308 s``."""
    if seconds < 1e6:
        return f"{seconds:g} s"
    return f"{seconds:,.0f} s" if seconds < 1e12 else f"{seconds:.1e} s"


def _duration(seconds: int) -> str:
    if seconds % 3600 == 0:
        return f"{seconds // 3600} h"
    return f"{seconds} s"
