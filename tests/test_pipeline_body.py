"""The pipeline encodes a row once for its ledger key and its request body."""

from __future__ import annotations

import orjson

from importer.client import conversion_body
from importer.pipeline import keyed_body


def test_keyed_body_is_the_client_body_and_keys_ignore_field_order() -> None:
    payload = {
        "email": "ana@example.com.br",
        "conversion_identifier": "feira-2026",
        "name": "Conceição",
        "tags": ["a", "b"],
        "legal_bases": [{"category": "communications", "type": "consent", "status": "granted"}],
    }
    key, body = keyed_body(payload)
    assert orjson.loads(body) == orjson.loads(conversion_body(payload))
    assert keyed_body(dict(reversed(payload.items())))[0] == key
    assert keyed_body({**payload, "name": "Ana"})[0] != key
