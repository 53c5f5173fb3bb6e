"""RD Station's error shapes (1-7, as rdstation-api.md numbers them) as (field, type, message)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import orjson

_MAX_MESSAGE = 1000  # a failures.csv cell, not a page: RD's lists of errors can be long
_MAX_SNIPPET = 120


def _json_or_none(body: bytes) -> Any:
    if not body:
        return None
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return None


def _rd_errors(data: Any) -> Iterable[tuple[str | None, str | None, str]]:
    """(field, error_type, message) for each error in any of RD Station's shapes 1-7."""
    if isinstance(data, list):  # shape 4: a bare list
        yield from _error_list(None, data)
        return
    if not isinstance(data, dict):
        return
    errors = data.get("errors")
    if isinstance(errors, dict):
        if "error_type" in errors or "error_message" in errors:  # shape 1
            yield from _error_list(None, [errors])
        else:  # shape 2, or 5 when a field holds {locale: [...]}
            for field, value in errors.items():
                if isinstance(value, dict) and "error_type" not in value and value:
                    # Shape 5: the same errors once per locale; the first locale is enough.
                    value = next(iter(value.values()))
                yield from _error_list(str(field), value)
    elif isinstance(errors, list):  # shape 3
        yield from _error_list(None, errors)
    elif isinstance(errors, str):
        yield None, None, _one_line(errors)
    else:
        for key in ("error_message", "message", "error", "error_description"):  # shapes 6, 7
            said = data.get(key)
            if isinstance(said, str) and said.strip():
                error_type = data.get("error_type")
                yield None, error_type if isinstance(error_type, str) else None, _one_line(said)
                return


def _error_list(field: str | None, items: Any) -> Iterable[tuple[str | None, str | None, str]]:
    if isinstance(items, dict | str):
        items = [items]
    if not isinstance(items, list):
        return
    for item in items:
        if isinstance(item, str):
            yield field, None, _one_line(item)
            continue
        if not isinstance(item, dict):
            continue
        error_type = item.get("error_type")
        error_type = error_type if isinstance(error_type, str) and error_type else None
        message = item.get("error_message") or item.get("message") or ""
        message = _one_line(str(message)) if message else (error_type or "")
        name = field
        path = item.get("path")
        if name is None and isinstance(path, str) and path:
            name = path.removeprefix("$.body.payload.").removeprefix("$.body.")
        rules = item.get("validation_rules")
        options = rules.get("valid_options") if isinstance(rules, dict) else None
        if isinstance(options, list) and options:
            message += " (valid options: " + ", ".join(str(o) for o in options[:10]) + ")"
        yield name, error_type, message


def _join(errors: list[tuple[str | None, str | None, str]]) -> str:
    parts = []
    for field, error_type, message in errors:
        text = f"{field}: {message}" if field else message
        if error_type and error_type != message:
            text += f" ({error_type})"
        parts.append(text)
    return "; ".join(parts)


def _no_detail(body: bytes, data: Any) -> str:
    """Words for an answer that held no RD Station error: empty, HTML, or unexpected JSON."""
    if not body.strip():
        return "an empty body"
    if data is not None:
        return "a JSON body without an error message"
    text = body[:4096].decode("utf-8", errors="replace")
    title = re.search(r"<title[^>]*>(.*?)</title>", text, re.IGNORECASE | re.DOTALL)
    snippet = title.group(1) if title else re.sub(r"<[^>]*>", " ", text)
    snippet = _one_line(snippet)[:_MAX_SNIPPET]
    return f"a non-JSON body: {snippet}" if snippet else "a non-JSON body"


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _clip(text: str) -> str:
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 1] + "…"
