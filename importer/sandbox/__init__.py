"""A local stand-in for RD Station's conversions API: the project's main test seam.

``POST /platform/conversions?api_key=KEY`` behaves as ``shared/rdstation-api.md`` describes,
checked in the order a request meets RD Station's gateway and then its application:

1. ``api_key`` missing or refused: 401, shape 1 (``UNAUTHORIZED``). Not counted by the limiter.
2. Gateway limit (``rate_limit`` per ``rate_window`` seconds per key, sliding and exact): 429,
   shape 7, headers ``ratelimit-limit-quotas`` (the limit) and ``retry-after-quotas`` (whole
   seconds until the oldest counted POST leaves the window). Every POST the gateway lets through
   counts, whatever happens to it afterwards; the POSTs it refuses do not.
3. Faults, drawn with one ``random.Random(seed)`` draw per POST: ``drop_ratio`` closes the
   connection with no answer; ``fail_ratio`` answers 500/502/503, as JSON or as a proxy's HTML
   page (shape 8); ``accept_then_drop_ratio`` processes the POST normally (recording it when
   valid) and then closes the connection instead of answering.
4. ``Content-Type`` other than ``application/json``: 415, shape 1 (``UNSUPPORTED_MEDIA_TYPE``).
5. Body over 200,000 bytes: 413 with the gateway's ``{"message": "Request size limit
   exceeded"}`` (RD's own answer is unconfirmed; Kong, whose messages shape 7 carries, says this).
6. Body not a JSON object: 400, shape 1 (``BAD_REQUEST``).
7. ``event_type`` not ``CONVERSION`` or ``event_family`` not ``CDP``: 400, shape 3
   (``INVALID_OPTION`` with ``path`` and ``valid_options``); ``payload`` missing or not an object:
   400, shape 4 (the bare list).
8. Payload fields: every error of the request together, 400 (the status RD's conversion pages
   show for field errors), shape 2 keyed by field. Custom fields (``cf_*``) are reported per
   locale, shape 5, in the same ``errors`` object. Fields that are neither documented nor ``cf_*``
   are refused (``INVALID``): the importer's mapping refuses them too, so one arriving is a bug.
   ``cf_*`` takes a string, number, boolean, null or a list of those; ``custom_fields``, when set,
   is the account's list and other ``cf_*`` are refused. ``null`` clears an optional field.
9. Per-lead limit (``lead_limit`` accepted conversions per email per 24 h, sliding): 429, shape 6.
10. Success: 200 ``{"event_uuid": "<uuid4>"}``, recorded in ``SandboxState.accepted``.

OAuth (``oauth``): ``/auth/dialog`` answers with a redirect carrying a code, ``/auth/token``
serves both grants, ``/auth/revoke`` revokes, and ``POST /platform/events?event_type=conversion``
with ``Authorization: Bearer`` does all of the above (from 2 on) as the conversions endpoint
does. ``token_lifetime`` shortens the access tokens' life; ``POST /_sandbox/revoke-tokens``
revokes every token, as removing the app from the account does.

``latency`` (plus up to ``latency_jitter``) seconds delay every answer and drop. Inspection
endpoints, which RD Station does not have, live under ``/_sandbox/``: ``GET /_sandbox/state``
answers the state as JSON (status keys as strings), ``POST /_sandbox/reset`` answers it and then
clears it, the limiters and the fault sequence. Any other path answers 404, shape 1.

The package: ``state`` (configuration, what it saw, the sliding-window limiter), ``rules``
(RD Station's validation of a body, in its error shapes), ``conversions`` (the request
handlers), ``oauth`` (the auth endpoints and the events endpoint), ``server`` (the app, and
ways to run it: in a loop, a thread, or the CLI).
"""

from importer.sandbox.conversions import STATE_KEY
from importer.sandbox.rules import MAX_BODY_BYTES
from importer.sandbox.server import (
    RunningSandbox,
    SandboxThread,
    make_app,
    running_sandbox,
    serve,
    start_sandbox,
)
from importer.sandbox.state import SandboxConfig, SandboxState, WindowLimiter

__all__ = [
    "MAX_BODY_BYTES",
    "STATE_KEY",
    "RunningSandbox",
    "SandboxConfig",
    "SandboxState",
    "SandboxThread",
    "WindowLimiter",
    "make_app",
    "running_sandbox",
    "serve",
    "start_sandbox",
]
