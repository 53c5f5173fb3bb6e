"""The one place that talks HTTP to RD Station: ``POST {api_url}/platform/conversions``.

Every answer becomes a plain value from ``importer.records``:

    Sent(event_uuid)                     2xx with an event_uuid: the conversion was recorded
    Failed(kind, http_status, error_type, message, retry_after, ..., reached_server)
      TRANSIENT      5xx, 408, connection refused / reset / DNS failure / closed, timeout,
                     an answer longer than RD Station ever sends
      RATE_LIMITED   429 from the gateway (the account's budget): pause everyone, retry
      LEAD_LIMITED   429 from RD Station's per-lead limiter: fail the row, try tomorrow
      AUTH_REFUSED   401, 403: the API key is refused: stop the run
      REJECTED       other 4xx: RD Station refused this row, in its own words
      FATAL          TLS certificate not verified, API address redirects or is invalid, the
                     proxy refuses the tunnel
      UNCERTAIN      2xx without an event_uuid (NO_EVENT_UUID): not RD Station's answer, yet
                     whatever answered may have recorded it

``reached_server`` is False only when the request surely never left for a server (refused,
DNS, TLS handshake, connect timeout, proxy): nothing can have been recorded. A wait a server
asks for is capped at ``MAX_RETRY_AFTER``; an answer is read up to ``MAX_ANSWER_BYTES`` only.
Proxies come from ``HTTPS_PROXY`` / ``HTTP_PROXY`` / ``NO_PROXY`` as curl reads them; loopback
is never proxied.

No aiohttp exception leaves this module, and the API key (which travels in the URL's query
string) appears in no message: messages are built from the exception's type and the host only,
then passed through ``redact`` as a second guard.

Where a request goes and how it proves who sends it is one small strategy, ``auth``:
``ApiKeyAuth`` (the default: ``/platform/conversions?api_key=KEY``) or ``BearerAuth`` (OAuth:
``/platform/events?event_type=conversion`` with ``Authorization: Bearer TOKEN``). Either way its
secret is what every message is redacted with. The body and every answer are the same.

Where each part lives:

    session        ConversionsClient: the session, one attempt, how far a request got;
                   ``request`` for any other endpoint (fields, contacts, funnel, batches)
    auth           ApiKeyAuth, BearerAuth: the endpoint and the credentials
    body           encode_conversion, conversion_body
    answers        failure_from_response: an HTTP status and RD Station's words, as one Failed
    error_shapes   RD Station's error shapes read into (field, type, message)
    retry_after    the wait a server asks for
    network        an exception (refused, DNS, TLS, timeout, proxy...) as one Failed
    proxies        the proxy for a request, from the environment
    redaction      redact, check_api_url
"""

from importer.client.answers import failure_from_response
from importer.client.auth import ApiKeyAuth, BearerAuth, RequestAuth
from importer.client.body import conversion_body, encode_conversion
from importer.client.redaction import check_api_url, redact
from importer.client.session import MAX_ANSWER_BYTES, ConversionsClient, Reply

__all__ = [
    "MAX_ANSWER_BYTES",
    "ApiKeyAuth",
    "BearerAuth",
    "ConversionsClient",
    "Reply",
    "RequestAuth",
    "check_api_url",
    "conversion_body",
    "encode_conversion",
    "failure_from_response",
    "redact",
]
