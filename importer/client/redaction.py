"""Redaction and the API address: no message shows a secret; plain http goes to loopback only."""

from __future__ import annotations

import functools
import ipaddress
import re
from urllib.parse import quote, quote_plus, urlsplit

from yarl import URL

from importer.errors import InputError

REDACTED = "***"
_MIN_CUT = 8  # forms of the key shorter than this are not also masked cut by one character

_API_KEY_IN_URL = re.compile(r"(api_key=)[^&\s#\"'<>]*", re.IGNORECASE)


def redact(text: str, secret: str) -> str:
    """``text`` with ``secret`` (in any form a server may echo it) and ``api_key=...`` masked."""
    if secret and text:
        text = _secret_pattern(secret).sub(REDACTED, text)
    if "api_key=" in text.lower():
        text = _API_KEY_IN_URL.sub(r"\1" + REDACTED, text)
    return text


@functools.lru_cache(maxsize=8)
def _secret_pattern(secret: str) -> re.Pattern[str]:
    # The key as typed, as each encoder may have written it into a URL's query, every byte as
    # a %XX escape, and as hex; each also cut by one character at either end (an echo clipped
    # by a server or a proxy). Case is ignored: servers echo %2f for %2F, or a whole URL upper
    # cased. Longest first, so a whole form is masked whole, not around a shorter one.
    raw = secret.encode()
    in_yarl = URL("http://h/").with_query(k=secret).raw_query_string.removeprefix("k=")
    every_byte = "".join(f"%{byte:02X}" for byte in raw)
    encoded = (quote(secret, safe=""), quote_plus(secret), in_yarl, every_byte, raw.hex())
    forms: set[str] = set()
    for form in (secret, *encoded):
        forms.add(form)
        if len(form) >= _MIN_CUT:
            forms.update((form[1:], form[:-1]))
    ordered = sorted((f for f in forms if f), key=len, reverse=True)
    return re.compile("|".join(map(re.escape, ordered)), re.IGNORECASE)


def check_api_url(url: str) -> str:
    """Return the API address without its trailing ``/``, or raise ``InputError``.

    Plain http is allowed only to a loopback host (the sandbox): elsewhere the key in the query
    string would cross the network in clear text.
    """
    return check_address(
        url.strip(),
        "--api-url",
        shown=redact(url.strip(), ""),
        example="https://api.rd.services",
        carried="the API key",
        query_hint=" (the API key comes from RDSTATION_API_KEY)",
    )


def check_address(
    url: str, label: str, *, shown: str, example: str, carried: str, query_hint: str = ""
) -> str:
    """``url`` without its trailing ``/``, or ``InputError`` naming ``label``: http or https, no
    user name, no query or fragment, and plain http only to this computer (``carried``, what
    would cross the network in clear text, says why)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number
    except ValueError:
        raise InputError(f"{label} {shown}: not a valid URL") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not host:
        raise InputError(f"{label} {shown}: expected an address like {example}")
    if parts.username is not None or parts.password is not None:
        raise InputError(f"{label}: a user name or password in the address is not supported")
    if parts.query or parts.fragment:
        raise InputError(
            f"{label} {shown}: give the address without ?query or #fragment{query_hint}"
        )
    if scheme == "http" and not is_loopback(host):
        raise InputError(
            f"{label} {shown}: plain http would send {carried} in clear text; use https "
            "(http is allowed only for localhost)"
        )
    return f"{scheme}://{parts.netloc}{parts.path}".rstrip("/")


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
