"""The request body: the wrapper RD Station expects around one conversion payload."""

from __future__ import annotations

from typing import Any

import orjson

# The wrapper RD Station expects around a conversion payload, keys sorted: the body is then the
# payload's own sorted JSON with a head and a tail, and a row is encoded once, not twice.
_BODY_HEAD = b'{"event_family":"CDP","event_type":"CONVERSION","payload":'
_BODY_TAIL = b"}"


def encode_conversion(payload: dict[str, Any]) -> tuple[bytes, bytes]:
    """(the payload's JSON with sorted keys, the request body around it). The first is what the
    ledger keys a row by: a mapping whose fields are reordered still finds the rows it sent."""
    encoded = orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)
    return encoded, _BODY_HEAD + encoded + _BODY_TAIL


def conversion_body(payload: dict[str, Any]) -> bytes:
    """The JSON body RD Station expects around one conversion payload."""
    return encode_conversion(payload)[1]
