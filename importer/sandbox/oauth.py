"""The sandbox's OAuth side: RD Station's authorisation dialog, token and revoke endpoints, and
the events endpoint (the OAuth twin of the conversions endpoint), as ``shared/rdstation-api.md``
describes them.

    GET  /auth/dialog?client_id=ID&redirect_uri=URI&state=S
         302 to ``URI?code=CODE&state=S``. A stand-in: there is no login page, the account's
         owner is taken to allow the app. 400 (shape 1) for a client id that is not the app's, or
         a redirect URI that is not one of ``redirect_uris``.
    POST /auth/token?token_by=code           JSON {client_id, client_secret, code}
    POST /auth/token?token_by=refresh_token  JSON {client_id, client_secret, refresh_token}
         200 {access_token, expires_in, refresh_token}. A code is single use and lives
         ``code_lifetime`` seconds; an access token ``token_lifetime``; a refresh token until it
         is used (each refresh returns a new one: the old one stops working) or revoked.
         401, shape 1: ACCESS_DENIED (wrong client id or secret, unknown code),
         EXPIRED_CODE_GRANT (a code used already or too old), INVALID_REFRESH_TOKEN.
    POST /auth/revoke                        form token, token_type_hint -> 200 {}
    POST /platform/events?event_type=conversion   Authorization: Bearer ACCESS
         401, shape 1 ("Invalid token.") for a token that is unknown, expired or revoked; then
         exactly what ``/platform/conversions`` does (gateway limit, faults, RD Station's checks,
         per-lead limit, recording), keyed by the app's client id.
    POST /_sandbox/revoke-tokens             revokes every token, as when the account's owner
                                             removes the app; answers {"revoked": N}

Token lifetimes follow the sandbox's clock, so a test can shorten them (``token_lifetime``) or
move time by hand. Tokens never enter ``SandboxState``: only counts do.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any, Final

import orjson
from aiohttp import web
from yarl import URL

from importer.sandbox.conversions import _Sandbox
from importer.sandbox.rules import Clock, json_response, shape1

DIALOG_PATH: Final = "/auth/dialog"
TOKEN_PATH: Final = "/auth/token"
REVOKE_PATH: Final = "/auth/revoke"
EVENTS_PATH: Final = "/platform/events"
REVOKE_ALL_PATH: Final = "/_sandbox/revoke-tokens"

_WRONG_CREDENTIALS: Final = shape1("ACCESS_DENIED", "Wrong credentials provided.")
_EXPIRED_CODE: Final = shape1("EXPIRED_CODE_GRANT", "The authorization code grant has expired.")
_INVALID_REFRESH: Final = shape1(
    "INVALID_REFRESH_TOKEN", "The provided refresh token is invalid or was revoked."
)


@dataclass
class _Code:
    client_id: str
    expires_at: float
    used: bool = False


class OAuthProvider:
    """The handlers of the auth endpoints and of the events endpoint, with the tokens issued."""

    def __init__(self, sandbox: _Sandbox, clock: Clock) -> None:
        self.sandbox = sandbox
        self.config = sandbox.config
        self.state = sandbox.state
        self.clock = clock
        self._codes: dict[str, _Code] = {}
        self._access: dict[str, tuple[str, float]] = {}  # token: (client id, expires at)
        self._refresh: dict[str, str] = {}  # token: client id

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get(DIALOG_PATH, self.get_dialog)
        app.router.add_post(TOKEN_PATH, self.post_token)
        app.router.add_post(REVOKE_PATH, self.post_revoke)
        app.router.add_post(EVENTS_PATH, self.post_event)
        app.router.add_post(REVOKE_ALL_PATH, self.post_revoke_all)

    # -- who is asking ----------------------------------------------------------------------------

    def _is_app(self, client_id: str) -> bool:
        app = self.config.oauth_client
        return bool(client_id) and (app is None or secrets.compare_digest(client_id, app[0]))

    def _is_app_secret(self, client_id: str, client_secret: str) -> bool:
        app = self.config.oauth_client
        if app is None:
            return bool(client_id and client_secret)
        return secrets.compare_digest(client_id, app[0]) and secrets.compare_digest(
            client_secret, app[1]
        )

    def bearer(self, request: web.Request) -> tuple[str | None, dict[str, Any] | None]:
        """(the app's client id, None) for a request with a live access token, else (None, the
        401 body). Other endpoints that take OAuth use it as the events endpoint does."""
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None, shape1("UNAUTHORIZED", "Invalid token.")
        grant = self._access.get(token.strip())
        if grant is None:
            return None, shape1("UNAUTHORIZED", "Invalid token.")
        client_id, expires_at = grant
        if self.clock() >= expires_at:
            del self._access[token.strip()]
            return None, shape1("UNAUTHORIZED", "Invalid token.")
        return client_id, None

    # -- the endpoints ---------------------------------------------------------------------------

    async def get_dialog(self, request: web.Request) -> web.Response:
        query = request.query
        client_id, redirect_uri = query.get("client_id", ""), query.get("redirect_uri", "")
        if not self._is_app(client_id):
            return json_response(shape1("ACCESS_DENIED", "Unknown client_id."), 400)
        target = URL(redirect_uri) if redirect_uri else None
        if target is None or target.scheme not in ("http", "https") or not target.host:
            return json_response(shape1("BAD_REQUEST", "redirect_uri must be an URL."), 400)
        allowed = self.config.redirect_uris
        if allowed is not None and redirect_uri not in allowed:
            return json_response(
                shape1("ACCESS_DENIED", "redirect_uri does not match the app's callback URL."),
                400,
            )
        code = secrets.token_urlsafe(24)
        self._codes[code] = _Code(client_id, self.clock() + self.config.code_lifetime)
        back = {"code": code}
        if "state" in query:
            back["state"] = query["state"]
        return web.Response(status=302, headers={"Location": str(target.update_query(back))})

    async def post_token(self, request: web.Request) -> web.Response:
        try:
            body = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            body = None
        if not isinstance(body, dict):
            return json_response(shape1("BAD_REQUEST", "The body must be a JSON object."), 400)
        client_id, client_secret = _text(body, "client_id"), _text(body, "client_secret")
        if not self._is_app_secret(client_id, client_secret):
            return self._refuse(_WRONG_CREDENTIALS)
        token_by = request.query.get("token_by") or (
            "code" if "code" in body else "refresh_token" if "refresh_token" in body else ""
        )
        if token_by == "code":
            code = self._codes.get(_text(body, "code"))
            if code is None or code.client_id != client_id:
                return self._refuse(_WRONG_CREDENTIALS)
            if code.used or self.clock() >= code.expires_at:
                return self._refuse(_EXPIRED_CODE)
            code.used = True
        elif token_by == "refresh_token":
            refresh = _text(body, "refresh_token")
            if self._refresh.get(refresh) != client_id:
                return self._refuse(_INVALID_REFRESH)
            del self._refresh[refresh]  # the one returned replaces it
        else:
            return json_response(
                {
                    "errors": [
                        {
                            "error_type": "INVALID_OPTION",
                            "error_message": "token_by must be one of the valid options.",
                            "path": "$.query.token_by",
                            "validation_rules": {"valid_options": ["code", "refresh_token"]},
                        }
                    ]
                },
                400,
            )
        self.state._count_oauth(grant=token_by)
        return json_response(self._issue(client_id))

    def _issue(self, client_id: str) -> dict[str, Any]:
        lifetime = float(self.config.token_lifetime)
        access, refresh = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        self._access[access] = (client_id, self.clock() + lifetime)
        self._refresh[refresh] = client_id
        return {
            "access_token": access,
            "expires_in": int(lifetime) if lifetime.is_integer() else lifetime,
            "refresh_token": refresh,
        }

    def _refuse(self, body: dict[str, Any]) -> web.Response:
        self.state._count_oauth(refused=body["errors"]["error_type"])
        return json_response(body, 401)

    async def post_revoke(self, request: web.Request) -> web.Response:
        form = await request.post()
        token = form.get("token")
        if not isinstance(token, str) or not token:
            return json_response(shape1("BAD_REQUEST", "token is missing."), 400)
        # The hint is only a hint (RFC 7009): the token is looked for among both kinds.
        found = self._access.pop(token, None) is not None
        found = self._refresh.pop(token, None) is not None or found
        self.state._count_oauth(revoked=int(found))
        return json_response({})

    async def post_event(self, request: web.Request) -> web.StreamResponse:
        self.state._count_request()
        sandbox = self.sandbox
        client_id, problem = self.bearer(request)
        if client_id is None:
            return await sandbox._answer(401, problem)
        event_type = request.query.get("event_type")
        if event_type is not None and event_type.lower() != "conversion":
            return await sandbox._answer(
                400,
                {
                    "errors": [
                        {
                            "error_type": "INVALID_OPTION",
                            "error_message": "event_type must be one of the valid options.",
                            "path": "$.query.event_type",
                            "validation_rules": {"valid_options": ["conversion"]},
                        }
                    ]
                },
            )
        return await sandbox.admit(request, "oauth:" + client_id)

    async def post_revoke_all(self, request: web.Request) -> web.Response:
        revoked = len(self._access) + len(self._refresh)
        self._access.clear()
        self._refresh.clear()
        self.state._count_oauth(revoked=revoked)
        return json_response({"revoked": revoked})


def _text(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    return value if isinstance(value, str) else ""
