"""The sandbox's contacts side: a contact's upsert and its funnel, as ``shared/rdstation-api.md``
("OAuth": Contacts, Funnel) describes them. Both take ``Authorization: Bearer`` (the OAuth
provider's ``bearer``) and pass the gateway's limit like every request of the account.

    PATCH /platform/contacts/email:EMAIL
         Upserts the contact without recording a conversion; answers 200 with the contact
         (``uuid``, ``email`` and its fields). The email belongs in the path: one in the body too
         is 400 ``CONFLICTING_FIELD``. Fields a contact does not have (a conversion's
         ``conversion_identifier``, ``traffic_*``, ``company_*``, ``available_for_mailing``...)
         are 400 ``INVALID``; the types are checked as for a conversion's payload. The
         per-lead limit (``lead_limit``, 24 per contact a day at RD Station) counts upserts
         with the lead's conversions: over it, 429 shape 6 (``lead_limiter``).
    PUT  /platform/contacts/email:EMAIL/funnels/default
         ``{"lifecycle_stage": "Lead" | "Qualified Lead" | "Client", "opportunity": bool,
         "contact_owner_email": "user@account"}`` (any of them); 200 with the contact's funnel.
         404 (``RESOURCE_NOT_FOUND``) while the contact does not exist: a contact exists once
         a conversion of its email was accepted or a PATCH created it, and, as RD Station takes
         a moment to create a converted contact, only after ``contact_lag`` funnel requests
         for it were answered 404 (default 0: at once); ``every_contact_exists`` takes any
         email for a contact (the sandbox of ``import --sandbox``, empty on each run). An
         owner who is not among ``users`` is 400 ``INVALID_USER`` "The user ... was not found
         in your account."; a stage or an opportunity RD Station does not take is 400 (shape
         3, with ``valid_options``).

What each request carried is kept in ``SandboxState``: ``contacts`` (by email), ``funnels`` (by
email) and ``contact_requests`` (method, email and body of each accepted request), so tests can
check exactly what was sent.
"""

from __future__ import annotations

import math
from typing import Any, Final

import orjson
from aiohttp import web

from importer.sandbox.conversions import _Sandbox
from importer.sandbox.oauth import OAuthProvider
from importer.sandbox.rules import LEAD_WINDOW_SECONDS, payload_field_errors, shape1

CONTACT_PATH: Final = "/platform/contacts/email:{email:.+}"
FUNNEL_PATH: Final = "/platform/contacts/email:{email:.+}/funnels/default"
LIFECYCLE_STAGES: Final = ("Lead", "Qualified Lead", "Client")
FUNNEL_KEYS: Final = ("lifecycle_stage", "opportunity", "contact_owner_email")
# What a contact has beyond its email (RD Station's contacts API); custom fields cf_* too.
CONTACT_FIELDS: Final = frozenset(
    {
        "name",
        "job_title",
        "bio",
        "website",
        "personal_phone",
        "mobile_phone",
        "city",
        "state",
        "country",
        "twitter",
        "facebook",
        "linkedin",
        "tags",
        "legal_bases",
        "birthdate",
        "extra_emails",
    }
)


class ContactsEndpoints:
    """The handlers of the contact upsert and the funnel endpoint."""

    def __init__(self, sandbox: _Sandbox, oauth: OAuthProvider) -> None:
        self.sandbox = sandbox
        self.oauth = oauth
        self.config = sandbox.config
        self.state = sandbox.state
        self._misses: dict[str, int] = {}  # email: funnel requests answered 404 since converted

    def add_routes(self, app: web.Application) -> None:
        app.router.add_put(FUNNEL_PATH, self.put_funnel)
        app.router.add_patch(CONTACT_PATH, self.patch_contact)

    async def _admitted(self, request: web.Request) -> tuple[dict[str, Any] | None, Any]:
        """(the JSON body, None) of a request the bearer token and the gateway let through,
        else (None, the answer already given)."""
        self.state._count_request()
        sandbox = self.sandbox
        client_id, problem = self.oauth.bearer(request)
        if client_id is None:
            return None, await sandbox._answer(401, problem)
        gateway = sandbox._gateway
        if gateway is not None:
            wait = gateway.hit("oauth:" + client_id)
            if wait is not None:
                headers = {
                    "ratelimit-limit-quotas": str(gateway.limit),
                    "retry-after-quotas": str(max(1, math.ceil(wait))),
                }
                return None, await sandbox._answer(
                    429, {"message": "API rate limit exceeded"}, headers
                )
        if request.content_type != "application/json":
            return None, await sandbox._answer(
                415, shape1("UNSUPPORTED_MEDIA_TYPE", "Content-Type must be application/json.")
            )
        try:
            body = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            body = None
        if not isinstance(body, dict):
            return None, await sandbox._answer(
                400, shape1("BAD_REQUEST", "The request body must be a JSON object.")
            )
        return body, None

    async def patch_contact(self, request: web.Request) -> web.StreamResponse:
        body, answered = await self._admitted(request)
        if body is None:
            return answered  # type: ignore[no-any-return]
        email = request.match_info["email"].lower()
        errors: dict[str, Any] = {}
        if "email" in body:
            errors["email"] = [
                {
                    "error_type": "CONFLICTING_FIELD",
                    "error_message": "email is given in the URL; it cannot be in the body too.",
                }
            ]
        for name in body:
            if name != "email" and name not in CONTACT_FIELDS and not name.startswith("cf_"):
                errors[name] = [
                    {"error_type": "INVALID", "error_message": f"{name} is not a contact field."}
                ]
        # The types, as a conversion's payload takes them (its required fields given here).
        typed = {k: v for k, v in body.items() if k not in errors and k != "birthdate"}
        typed |= {"email": email, "conversion_identifier": "-"}
        found = payload_field_errors(typed, self.config.custom_fields)
        if found is not None:
            errors |= {k: v for k, v in found["errors"].items() if k not in ("email",)}
        if errors:
            return await self.sandbox._answer(400, {"errors": errors})
        leads = self.sandbox._leads  # one limiter per lead: its conversions and its updates
        wait = leads.hit(email) if leads is not None else None
        if leads is not None and wait is not None:
            return await self.sandbox._answer(
                429,
                {
                    "error": (
                        f"'lead_limiter' rate limit exceeded for {LEAD_WINDOW_SECONDS:.0f} "
                        f"second(s) period for key '{email}'"
                    ),
                    "max": leads.limit,
                    "usage": leads.limit + 1,
                    "remaining_time": math.ceil(wait),
                },
            )
        contact = self.state._upsert_contact(email, body)
        self.state._record_contact_request("PATCH", email, body)
        return await self.sandbox._answer(200, contact)

    async def put_funnel(self, request: web.Request) -> web.StreamResponse:
        body, answered = await self._admitted(request)
        if body is None:
            return answered  # type: ignore[no-any-return]
        email = request.match_info["email"].lower()
        if not self._exists(email):
            return await self.sandbox._answer(
                404, shape1("RESOURCE_NOT_FOUND", "The contact was not found.")
            )
        problem = _funnel_errors(body, self.config.users)
        if problem is not None:
            return await self.sandbox._answer(400, problem)
        funnel = self.state._set_funnel(email, body)
        self.state._record_contact_request("PUT", email, body)
        return await self.sandbox._answer(200, funnel)

    def _exists(self, email: str) -> bool:
        if self.config.every_contact_exists or self.state._has_contact(email):
            return True
        if not self.state._was_converted(email):
            return False
        missed = self._misses.get(email, 0)
        if missed < self.config.contact_lag:
            self._misses[email] = missed + 1
            return False
        return True


def _funnel_errors(body: dict[str, Any], users: frozenset[str]) -> dict[str, Any] | None:
    errors: list[dict[str, Any]] = []
    for name in body:
        if name not in FUNNEL_KEYS:
            errors.append(
                {
                    "error_type": "INVALID",
                    "error_message": f"{name} is not a field of the funnel.",
                    "path": f"$.{name}",
                }
            )
    stage = body.get("lifecycle_stage")
    if "lifecycle_stage" in body and stage not in LIFECYCLE_STAGES:
        errors.append(
            {
                "error_type": "INVALID_OPTION",
                "error_message": "lifecycle_stage must be one of the valid options.",
                "path": "$.lifecycle_stage",
                "validation_rules": {"valid_options": list(LIFECYCLE_STAGES)},
            }
        )
    if "opportunity" in body and not isinstance(body["opportunity"], bool):
        errors.append(
            {
                "error_type": "MUST_BE_BOOLEAN",
                "error_message": "opportunity must be true or false.",
                "path": "$.opportunity",
            }
        )
    if errors:
        return {"errors": errors}
    owner = body.get("contact_owner_email")
    if "contact_owner_email" in body and (not isinstance(owner, str) or owner.lower() not in users):
        return shape1("INVALID_USER", f"The user {owner} was not found in your account.")
    return None
