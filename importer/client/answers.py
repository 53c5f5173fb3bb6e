"""RD Station's answers with an HTTP status: each becomes one ``Failed`` of the right kind."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

from importer.client.error_shapes import (
    _clip,
    _join,
    _json_or_none,
    _no_detail,
    _rd_errors,
)
from importer.client.redaction import redact
from importer.client.retry_after import _duration, _header, _retry_after, _seconds_text
from importer.records import MAX_RETRY_AFTER, Failed, FailureKind


def failure_from_response(
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    *,
    secret: str = "",
    now: float | None = None,
) -> Failed:
    """Turn a non-2xx answer, in any of RD Station's error shapes, into one ``Failed``.

    ``secret`` is masked in the message (an error page may echo the URL); ``now`` (epoch
    seconds) is the clock for a ``Retry-After`` given as an HTTP date.
    """
    data = _json_or_none(body)
    if data is None and secret:
        # A page that is not JSON is quoted as a short snippet: mask the key before that cut,
        # which could otherwise keep the part of the key in front of it.
        body = redact(body.decode("utf-8", "replace"), secret).encode()
    errors = list(_rd_errors(data)) if data is not None else []
    rd_type = next((t for _, t, _ in errors if t), None)
    asked = _retry_after(headers, now)
    retry_after = None if asked is None else min(asked, MAX_RETRY_AFTER)

    if status == 429:
        failed = _too_many_requests(data, errors, asked, body)
    elif status in (401, 403):
        failed = Failed(
            kind=FailureKind.AUTH_REFUSED,
            http_status=status,
            error_type=rd_type or f"HTTP_{status}",
            message=f"RD Station refused the API key ({_status_said(status, errors, body, data)}); "
            "check RDSTATION_API_KEY",
        )
    elif rd_type == "UNABLE_TO_LOAD_CDP_SCHEMA":
        # The key of an RD Station CRM account: no conversion can be recorded with it.
        failed = Failed(
            kind=FailureKind.FATAL,
            http_status=status,
            error_type=rd_type,
            message="this API key belongs to an RD Station CRM account, not RD Station "
            "Marketing (UNABLE_TO_LOAD_CDP_SCHEMA): create a key in RD Station Marketing "
            '(App Publisher, "Gerar chave de API") and set RDSTATION_API_KEY to it',
        )
    elif 300 <= status < 400:
        failed = _redirect(status, headers)
    else:
        failed = _other_status(status, errors, body, data, retry_after)
        if rd_type:
            failed = replace(failed, error_type=rd_type)
    if failed.retry_after is not None and asked is not None and asked > MAX_RETRY_AFTER:
        failed = replace(failed, retry_after_asked=asked)
    # Redact before clipping: a clip through the middle of the key would leave part of it.
    return replace(failed, message=_clip(redact(failed.message, secret)))


def _other_status(
    status: int,
    errors: list[tuple[str | None, str | None, str]],
    body: bytes,
    data: Any,
    retry_after: float | None,
) -> Failed:

    detail = _join(errors)
    if 400 <= status < 500 and status != 408:
        message = detail or f"RD Station answered HTTP {status} with {_no_detail(body, data)}"
        kind = FailureKind.REJECTED
    else:
        # 5xx, 408 (the server gave up waiting for the request, so nothing was recorded), and
        # anything stranger: worth another attempt.
        told = detail or f"with {_no_detail(body, data)}"
        message = f"RD Station answered HTTP {status}{': ' if detail else ' '}{told}"
        kind = FailureKind.TRANSIENT
    return Failed(
        kind=kind,
        http_status=status,
        error_type=f"HTTP_{status}",
        message=message,
        retry_after=retry_after if kind is FailureKind.TRANSIENT else None,
    )


def _status_said(
    status: int, errors: list[tuple[str | None, str | None, str]], body: bytes, data: Any
) -> str:
    """``HTTP 401: Invalid token.``, or ``HTTP 403 with an empty body``."""
    told = "; ".join(m for _, _, m in errors if m)
    return f"HTTP {status}: {told}" if told else f"HTTP {status} with {_no_detail(body, data)}"


def _too_many_requests(
    data: Any,
    errors: list[tuple[str | None, str | None, str]],
    asked: float | None,
    body: bytes,
) -> Failed:
    said = data.get("error") if isinstance(data, dict) else None
    if isinstance(said, str) and "lead_limiter" in said:
        # The limiter is keyed by the lead's email; the address itself stays out of the message
        # (messages reach logs). "remaining_time" has no documented unit, so no ETA is promised.
        limit = data.get("max")
        per = re.search(r"for (\d+) second", said)
        quota = ""
        if isinstance(limit, int) and per:
            quota = f" ({limit} conversions per {_duration(int(per.group(1)))})"
        return Failed(
            kind=FailureKind.LEAD_LIMITED,
            http_status=429,
            error_type="LEAD_LIMITED",
            message=(
                f"this lead's email hit RD Station's per-lead limit{quota}; the conversion "
                "was not recorded: the row can be resumed tomorrow"
            ),
        )
    wait = ""
    if asked is not None:
        wait = f"; it asks to wait {_seconds_text(asked)}"
        if asked > MAX_RETRY_AFTER:
            wait += f", waiting {MAX_RETRY_AFTER:g} s instead (the longest wait obeyed)"
    return Failed(
        kind=FailureKind.RATE_LIMITED,
        http_status=429,
        error_type="RATE_LIMITED",
        message=f"RD Station's request limit for this account was reached "
        f"({_status_said(429, errors, body, data)}){wait}",
        retry_after=None if asked is None else min(asked, MAX_RETRY_AFTER),
    )


def _redirect(status: int, headers: Mapping[str, str]) -> Failed:
    # Every request would be redirected the same way: the address is wrong, not this row.
    location = _header(headers, "Location")
    where = ""
    if location:
        # A redirect often repeats the query string, and with it the API key: show no query.
        target = urlsplit(location.strip())
        where = f" to {target.scheme}://{target.netloc}{target.path}" if target.netloc else ""
    return Failed(
        kind=FailureKind.FATAL,
        http_status=status,
        error_type=f"HTTP_{status}",
        message=f"the API address answers with a redirect (HTTP {status}{where}); "
        "set --api-url to the address the API really uses",
    )
