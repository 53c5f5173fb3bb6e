"""RD Station's checks of a request body, answered in its own error shapes (the numbers are
those of ``shared/rdstation-api.md``)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Final

import orjson
from aiohttp import web

MAX_BODY_BYTES: Final = 200_000
LEAD_WINDOW_SECONDS: Final = 86_400.0
CONVERSIONS_PATH: Final = "/platform/conversions"
STATE_PATH: Final = "/_sandbox/state"
RESET_PATH: Final = "/_sandbox/reset"

Clock = Callable[[], float]

REQUIRED_FIELDS: Final = ("conversion_identifier", "email")
STRING_FIELDS: Final = frozenset(
    {
        "name",
        "job_title",
        "state",
        "city",
        "country",
        "personal_phone",
        "mobile_phone",
        "twitter",
        "facebook",
        "linkedin",
        "website",
        "company_name",
        "company_site",
        "company_address",
        "client_tracking_id",
        "traffic_source",
        "traffic_medium",
        "traffic_campaign",
        "traffic_value",
    }
)
SOCIAL_FIELDS: Final = frozenset({"twitter", "facebook", "linkedin"})
LEGAL_BASIS_TYPES: Final = (
    "pre_existent_contract",
    "consent",
    "legitimate_interest",
    "judicial_process",
    "vital_interest",
    "public_interest",
)
LEGAL_BASIS_STATUSES: Final = ("granted", "declined")
_SOCIAL_RE: Final = re.compile(r"[A-Za-z0-9._-]*")
_EMAIL_RE: Final = re.compile(r"[^@\s]+@[^@\s.]+(?:\.[^@\s.]+)+")
_CF_SCALARS: Final = (str, int, float, bool, type(None))
_LOCALE: Final = "pt-BR"

PROXY_PAGE: Final = (
    "<html>\r\n<head><title>{status} {reason}</title></head>\r\n<body>\r\n"
    "<center><h1>{status} {reason}</h1></center>\r\n<hr><center>nginx</center>\r\n"
    "</body>\r\n</html>\r\n"
)
# What the 5xx fault answers, one picked at random: (status, JSON body or None for HTML).
SERVER_ERRORS: Final[tuple[tuple[int, dict[str, Any] | None], ...]] = (
    (500, {"errors": {"error_type": "INTERNAL_SERVER_ERROR", "error_message": "Internal error."}}),
    (502, None),
    (502, {"message": "An invalid response was received from the upstream server"}),
    (503, None),
    (503, {"message": "failure to get a peer from the ring-balancer"}),
)


def json_response(
    body: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        status=status, body=orjson.dumps(body), content_type="application/json", headers=headers
    )


def shape1(error_type: str, message: str) -> dict[str, Any]:
    return {"errors": {"error_type": error_type, "error_message": message}}


def _error(error_type: str, message: str) -> dict[str, str]:
    return {"error_type": error_type, "error_message": message}


def event_errors(event: dict[str, Any]) -> Any:
    """Errors in the envelope: shape 3 for the options, shape 4 for a missing payload."""
    options = []
    for name, valid in (("event_type", "CONVERSION"), ("event_family", "CDP")):
        if event.get(name) != valid:
            options.append(
                {
                    "error_type": "INVALID_OPTION",
                    "error_message": f"{name} must be one of the valid options.",
                    "path": f"$.body.{name}",
                    "validation_rules": {"valid_options": [valid]},
                }
            )
    if options:
        return {"errors": options}
    payload = event.get("payload")
    if payload is None:
        return [{**_error("CANNOT_BE_NULL", "payload cannot be null."), "path": "$.body.payload"}]
    if not isinstance(payload, dict):
        return [{**_error("INVALID", "payload must be an object."), "path": "$.body.payload"}]
    return None


def payload_field_errors(
    payload: dict[str, Any], custom_fields: frozenset[str] | None
) -> dict[str, Any] | None:
    """Every field error of one payload, shape 2 (shape 5 for cf_*), or None when it is valid."""
    errors: dict[str, Any] = {}
    for name in REQUIRED_FIELDS:
        value = payload.get(name)
        if value is None:
            errors[name] = [_error("CANNOT_BE_NULL", f"{name} cannot be null.")]
        elif not isinstance(value, str):
            errors[name] = [_error("MUST_BE_STRING", f"{name} must be a string.")]
        elif not value.strip():
            errors[name] = [_error("CANNOT_BE_BLANK", f"{name} cannot be blank.")]
    email = payload.get("email")
    if "email" not in errors and isinstance(email, str) and not _EMAIL_RE.fullmatch(email):
        errors["email"] = [_error("INVALID_FORMAT", "email has an invalid format.")]

    for name, value in payload.items():
        if name in STRING_FIELDS:
            if value is None:
                continue
            if not isinstance(value, str):
                errors[name] = [_error("MUST_BE_STRING", f"{name} must be a string.")]
            elif name in SOCIAL_FIELDS and not _SOCIAL_RE.fullmatch(value):
                errors[name] = [
                    _error(
                        "INVALID_FORMAT",
                        f"{name} may hold only letters, digits, '.', '-' and '_'.",
                    )
                ]
        elif name == "tags":
            if value is not None and not (
                isinstance(value, list) and all(isinstance(tag, str) for tag in value)
            ):
                errors[name] = [_error("MUST_BE_STRING_ARRAY", "tags must be an array of strings.")]
            elif value and any(tag != tag.lower() for tag in value):
                errors[name] = [_error("VALUES_MUST_BE_LOWERCASE", "tags must be lowercase.")]
        elif name == "available_for_mailing":
            if value is not None and not isinstance(value, bool):
                errors[name] = [
                    _error("MUST_BE_BOOLEAN", "available_for_mailing must be true or false.")
                ]
        elif name == "legal_bases":
            legal = _legal_bases_errors(value)
            if legal:
                errors[name] = legal
        elif name.startswith("cf_"):
            problem = _custom_field_error(name, value, custom_fields)
            if problem is not None:
                errors[name] = {_LOCALE: [problem]}
        elif name not in REQUIRED_FIELDS:
            errors[name] = [_error("INVALID", f"{name} is not a field of a conversion.")]
    return {"errors": errors} if errors else None


def _legal_bases_errors(value: Any) -> list[dict[str, str]]:
    if value is None:
        return []
    if not isinstance(value, list):
        return [_error("INVALID", "legal_bases must be an array of objects.")]
    found = []
    allowed = (
        ("category", ("communications",)),
        ("type", LEGAL_BASIS_TYPES),
        ("status", LEGAL_BASIS_STATUSES),
    )
    for index, basis in enumerate(value):
        if not isinstance(basis, dict):
            found.append(_error("INVALID", f"legal_bases[{index}] must be an object."))
            continue
        for key, options in allowed:
            if basis.get(key) not in options:
                found.append(
                    _error(
                        "INVALID_OPTION",
                        f"legal_bases[{index}].{key} must be one of: {', '.join(options)}.",
                    )
                )
    return found


def _custom_field_error(
    name: str, value: Any, custom_fields: frozenset[str] | None
) -> dict[str, str] | None:
    # RD Station words custom-field errors in the account's locale (shape 5).
    if custom_fields is not None and name not in custom_fields:
        return _error("INVALID", f"O campo personalizado {name} não existe nesta conta.")
    if isinstance(value, _CF_SCALARS):
        return None
    if isinstance(value, list) and all(isinstance(item, _CF_SCALARS) for item in value):
        return None
    return _error("INVALID", f"Valor inválido para o campo personalizado {name}.")
