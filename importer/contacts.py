"""``--as contacts``: each row upserts its contact (``PATCH /platform/contacts/email:EMAIL``)
instead of recording a conversion, for migrations that must not fire the automations a
conversion triggers. OAuth only.

The mapping, the ledger, resume, pacing and the reports work as for conversions; only the
request differs:

- the email goes in the path (URL-quoted), never in the body: RD Station answers
  ``CONFLICTING_FIELD`` when both carry it;
- the fields the contacts API does not take (``conversion_identifier`` and the other
  conversion-only ones, ``CONVERSION_ONLY``) are left out of the body, said once as a warning;
- RD Station answers the contact; its ``uuid`` is kept where a conversion keeps its event_uuid
  (successes.csv's ``event_uuid`` column), and ``conversion_identifier`` is left empty there.

What the ledger keeps for such a row is ``{"email": ..., "payload": {...}}`` (the payload the
body is), under a key of its own (``contact:`` + the hash): a row sent as a conversion is not
"already sent" for ``--as contacts``, nor the other way round. A ledger holding both kinds is
one record of the folder: successes.csv lists the rows sent either way.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Awaitable, Callable
from typing import Any, Final, Protocol
from urllib.parse import quote

import orjson

from importer.client import Reply
from importer.intake import CONTACT_KEY
from importer.records import Failed, FailureKind, Sent

# Fields of a conversion payload that a contact does not have: RD Station's contacts API
# documents none of them (the conversion's name and its traffic source belong to the event).
CONVERSION_ONLY: Final = frozenset(
    {
        "conversion_identifier",
        "client_tracking_id",
        "traffic_source",
        "traffic_medium",
        "traffic_campaign",
        "traffic_value",
        "company_name",
        "company_site",
        "company_address",
        "available_for_mailing",
    }
)
CONTACT_DAILY_LIMIT: Final = 24  # updates per contact per 24 h (RD Station's contacts API)
KEY_PREFIX: Final = CONTACT_KEY  # the ledger key of a row sent as a contact starts so


def contact_path(email: str) -> str:
    """``/platform/contacts/email:EMAIL``, the address quoted (``+`` and ``/`` included)."""
    return f"/platform/contacts/email:{quote(email, safe='@')}"


def as_contact(body: bytes) -> tuple[bytes, str, list[str]]:
    """A conversion's request body as a contact's ledger body: (body, key, fields left out)."""
    document = orjson.loads(body)
    payload: dict[str, Any] = document["payload"]
    email = payload.pop("email")
    dropped = sorted(name for name in payload if name in CONVERSION_ONLY)
    for name in dropped:
        del payload[name]
    contact = orjson.dumps({"email": email, "payload": payload}, option=orjson.OPT_SORT_KEYS)
    # Keyed by what is sent: two rows that differ only in a field left out are one contact.
    return contact, KEY_PREFIX + hashlib.blake2b(contact, digest_size=16).hexdigest(), dropped


def prepared_as_contact(prepared: Any, warn: Callable[[str, str], None] | None) -> Any:
    """intake's ``Prepared`` for ``--as contacts``; ``warn(kind, message)`` hears the fields
    left out (said once a run: the kind is the same for every row)."""
    body, key, dropped = as_contact(prepared.body)
    shown = [name for name in dropped if name != "conversion_identifier"]
    if shown and warn is not None:
        warn(
            "contact_fields",
            f"--as contacts: {', '.join(shown)} "
            + ("is a conversion field" if len(shown) == 1 else "are conversion fields")
            + " the contacts API does not take; left out of every contact",
        )
    return dataclasses.replace(prepared, body=body, key=key, conversion_id="")


class Requester(Protocol):
    def request(
        self, method: str, path: str, body: bytes | None = None
    ) -> Awaitable[Reply | Failed]: ...


def contact_transport(client: Requester) -> Callable[[bytes], Awaitable[Sent | Failed]]:
    """The sender's transport for ``--as contacts``: one PATCH per ledger body."""

    async def upsert(body: bytes) -> Sent | Failed:
        document = orjson.loads(body)
        answer = await client.request(
            "PATCH", contact_path(document["email"]), orjson.dumps(document["payload"])
        )
        if isinstance(answer, Failed):
            return lead_limited_as(
                answer,
                "updates",
                "the contact was not updated: run the same command tomorrow to send it",
            )
        found = answer.json()
        uuid = found.get("uuid") if isinstance(found, dict) else None
        # An upsert answered 2xx is done; a missing uuid only leaves successes.csv's cell empty.
        return Sent(event_uuid=uuid if isinstance(uuid, str) else "", http_status=answer.status)

    return upsert


def lead_limited_as(failed: Failed, counted: str, outcome: str) -> Failed:
    """RD Station's per-lead limit told in words of the request it refused: the client's
    message speaks of conversions, wrong for a contact upsert or a funnel step."""
    if failed.kind is not FailureKind.LEAD_LIMITED:
        return failed
    return dataclasses.replace(
        failed,
        message=(
            f"this contact's email hit RD Station's per-lead limit (about {CONTACT_DAILY_LIMIT} "
            f"{counted} a day); {outcome}"
        ),
    )


def refused_with_apikey() -> str:
    return (
        "--as contacts needs --auth oauth: RD Station upserts contacts only for a signed-in "
        "app (`rd-importer auth login`); with the API key, import conversions"
    )


__all__ = [
    "CONVERSION_ONLY",
    "KEY_PREFIX",
    "as_contact",
    "contact_path",
    "contact_transport",
    "lead_limited_as",
    "prepared_as_contact",
    "refused_with_apikey",
]
