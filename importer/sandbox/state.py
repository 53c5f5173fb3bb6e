"""How the sandbox behaves, what it saw, and the exact sliding-window limiter."""

from __future__ import annotations

import collections
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from importer.errors import InputError
from importer.sandbox.rules import Clock


@dataclass(frozen=True)
class SandboxConfig:
    """How the sandbox behaves. The defaults answer every valid POST at once with 200."""

    api_keys: frozenset[str] | None = None  # None: any non-empty key except refused_keys
    refused_keys: frozenset[str] = frozenset({"revoked-key"})
    # Keys of an RD Station CRM account (not Marketing): every conversion answers 400
    # UNABLE_TO_LOAD_CDP_SCHEMA, as RD Station's error pages show.
    crm_keys: frozenset[str] = frozenset({"crm-key"})
    rate_limit: int | None = None  # POSTs per rate_window seconds per key, at the gateway
    rate_window: float = 60.0
    lead_limit: int | None = None  # accepted conversions per email per 24 h
    fail_ratio: float = 0.0
    drop_ratio: float = 0.0
    accept_then_drop_ratio: float = 0.0
    latency: float = 0.0
    latency_jitter: float = 0.0
    seed: int | None = None
    custom_fields: frozenset[str] | None = None  # None: any cf_* is accepted
    # OAuth (``importer.sandbox.oauth``). The app's (client_id, client_secret); None: any
    # non-empty pair is an app of this account, so a sign-in works without configuring one.
    oauth_client: tuple[str, str] | None = field(default=None, repr=False)
    redirect_uris: frozenset[str] | None = None  # the app's callback URLs; None: any
    token_lifetime: float = 86_400.0  # seconds an access token lives (RD Station: 24 h)
    code_lifetime: float = 3_600.0  # seconds an authorisation code lives (RD Station: 1 h)
    # Contacts and funnels (``importer.sandbox.contacts``): the account's users, whom a funnel
    # may name as a contact's owner; and how many funnel requests for a converted contact are
    # answered 404 before it exists (RD Station creates it a moment after the conversion).
    users: frozenset[str] = frozenset(
        {
            "vendas@empresa.com.br",
            "marketing@empresa.com.br",
            "ana.souza@empresa.com.br",
            "carlos.lima@empresa.com.br",
        }
    )
    contact_lag: int = 0
    # Every email is taken for an existing contact by the funnel endpoint: the sandbox of
    # `import --sandbox` starts empty on each run, so a resumed run's funnel steps must find
    # the contacts an earlier run's sandbox created.
    every_contact_exists: bool = False
    # The account's fields, as GET /platform/contacts/fields answers them ({"fields": [...]} or
    # the bare list; ``sandbox.fields.load_fields_file``). None: a realistic default account.
    fields: Any = field(default=None, repr=False, compare=False)
    # The batch endpoint (``importer.sandbox.batch``): what a batch costs at the gateway (one
    # hit, or one per event: RD Station does not say), and how it refuses a batch holding bad
    # events ("indexed": 400 naming each bad event's index in the path of its errors;
    # "unindexed": 400 with the first bad event's errors only, as the single endpoint answers).
    batch_cost: str = "per_request"
    batch_rejects: str = "indexed"

    def __post_init__(self) -> None:
        ratios = (self.fail_ratio, self.drop_ratio, self.accept_then_drop_ratio)
        if any(r < 0 for r in ratios) or sum(ratios) > 1:
            raise InputError("sandbox fault ratios must be >= 0 and add up to at most 1")
        if self.rate_limit is not None and (self.rate_limit < 1 or self.rate_window <= 0):
            raise InputError("sandbox rate_limit must be >= 1 and rate_window > 0")
        if self.lead_limit is not None and self.lead_limit < 1:
            raise InputError("sandbox lead_limit must be >= 1")
        if self.latency < 0 or self.latency_jitter < 0:
            raise InputError("sandbox latency and latency_jitter must be >= 0")
        if not (self.token_lifetime > 0 and self.code_lifetime > 0):
            raise InputError("sandbox token_lifetime and code_lifetime must be > 0")
        if self.contact_lag < 0:
            raise InputError("sandbox contact_lag must be >= 0")
        object.__setattr__(self, "users", frozenset(u.lower() for u in self.users))
        if self.batch_cost not in ("per_request", "per_event"):
            raise InputError("sandbox batch_cost must be per_request or per_event")
        if self.batch_rejects not in ("indexed", "unindexed"):
            raise InputError("sandbox batch_rejects must be indexed or unindexed")


@dataclass
class SandboxState:
    """What the sandbox saw. Written by the server's loop; read it from other threads through
    ``snapshot``.

    ``accepted`` holds one ``{"event_uuid", "payload", "received_at"}`` per recorded conversion
    (``received_at`` ISO 8601, UTC). ``statuses`` counts answers by status, and ``"dropped"`` for
    connections closed without an answer. ``requests`` counts POSTs to the conversions endpoint
    and to its OAuth twin, the events endpoint, and the contacts and funnel requests (the
    inspection endpoints are not counted).
    ``oauth`` counts what the auth endpoints did: ``grants`` by grant (``code``,
    ``refresh_token``), ``refused`` by error type, ``revoked`` tokens. Tokens themselves are
    never in the state: a snapshot may be printed. Once the contacts endpoints saw a request
    (``importer.sandbox.contacts``), ``contacts`` and ``funnels`` (by email) and
    ``contact_requests`` (method, email, body) are in the snapshot too.
    """

    accepted: list[dict[str, Any]] = field(default_factory=list)
    statuses: collections.Counter[int | str] = field(default_factory=collections.Counter)
    requests: int = 0
    grants: collections.Counter[str] = field(default_factory=collections.Counter)
    refused: collections.Counter[str] = field(default_factory=collections.Counter)
    revoked: int = 0
    contacts: dict[str, dict[str, Any]] = field(default_factory=dict)  # by email
    funnels: dict[str, dict[str, Any]] = field(default_factory=dict)  # by email
    contact_requests: list[dict[str, Any]] = field(default_factory=list)
    converted: set[str] = field(default_factory=set)  # emails of accepted conversions
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def snapshot(self) -> dict[str, Any]:
        """A copy safe to read from any thread; status keys become strings, as in the JSON."""
        with self._lock:
            return {
                "requests": self.requests,
                "statuses": {str(k): v for k, v in self.statuses.items()},
                "accepted": list(self.accepted),
                "oauth": {
                    "grants": dict(self.grants),
                    "refused": dict(self.refused),
                    "revoked": self.revoked,
                },
            } | self._contacts_snapshot()

    def _contacts_snapshot(self) -> dict[str, Any]:
        """The contacts side, once it saw a request (a snapshot keeps its shape until then)."""
        if not (self.contacts or self.funnels or self.contact_requests):
            return {}
        return {
            "contacts": {k: dict(v) for k, v in self.contacts.items()},
            "funnels": {k: dict(v) for k, v in self.funnels.items()},
            "contact_requests": list(self.contact_requests),
        }

    def reset(self) -> None:
        with self._lock:
            self.accepted = []
            self.statuses = collections.Counter()
            self.requests = 0
            self.grants = collections.Counter()
            self.refused = collections.Counter()
            self.revoked = 0
            self.contacts = {}
            self.funnels = {}
            self.contact_requests = []
            self.converted = set()

    def _count_oauth(self, *, grant: str = "", refused: str = "", revoked: int = 0) -> None:
        with self._lock:
            if grant:
                self.grants[grant] += 1
            if refused:
                self.refused[refused] += 1
            self.revoked += revoked

    def _count_request(self) -> None:
        with self._lock:
            self.requests += 1

    def _count_answer(self, status: int | str) -> None:
        with self._lock:
            self.statuses[status] += 1

    def _record(self, payload: dict[str, Any]) -> str:
        event_uuid = str(uuid.uuid4())
        entry = {
            "event_uuid": event_uuid,
            "payload": payload,
            "received_at": datetime.now(UTC).isoformat(),
        }
        with self._lock:
            self.accepted.append(entry)
            email = payload.get("email")
            if isinstance(email, str):
                self.converted.add(email.lower())
        return event_uuid

    # -- contacts (importer.sandbox.contacts) ----------------------------------------------------

    def _has_contact(self, email: str) -> bool:
        with self._lock:
            return email in self.contacts

    def _was_converted(self, email: str) -> bool:
        with self._lock:
            return email in self.converted

    def _upsert_contact(self, email: str, fields: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            contact = self.contacts.get(email)
            if contact is None:
                contact = self.contacts[email] = {"uuid": str(uuid.uuid4()), "email": email}
            contact.update(fields)
            return dict(contact)

    def _set_funnel(self, email: str, funnel: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            current = self.funnels.setdefault(
                email, {"lifecycle_stage": "Lead", "opportunity": False}
            )
            current.update(funnel)
            return dict(current)

    def _record_contact_request(self, method: str, email: str, body: dict[str, Any]) -> None:
        with self._lock:
            self.contact_requests.append({"method": method, "email": email, "body": body})


class WindowLimiter:
    """At most ``limit`` hits per key in any ``window`` seconds: a sliding log, exact.

    A hit at time t stays counted until t + window. Refused hits are not counted.
    """

    def __init__(self, limit: int, window: float, clock: Clock = time.monotonic) -> None:
        self.limit = limit
        self.window = window
        self._clock = clock
        self._hits: dict[str, collections.deque[float]] = {}

    def hit(self, key: str, units: int = 1) -> float | None:
        """Count a hit (``units`` of them: a batch counted per event) and answer None, or
        answer the seconds until they would be allowed (a window, for more than the limit)."""
        now = self._clock()
        hits = self._hits.get(key)
        if hits is None:
            hits = self._hits[key] = collections.deque()
        horizon = now - self.window
        while hits and hits[0] <= horizon:
            hits.popleft()
        if units > self.limit:
            return self.window
        if len(hits) + units > self.limit:
            return hits[len(hits) + units - self.limit - 1] - horizon
        hits.extend([now] * units)
        return None

    def free(self, key: str) -> int:
        """Hits ``key`` may make now."""
        hits = self._hits.get(key)
        if hits is None:
            return self.limit
        horizon = self._clock() - self.window
        return self.limit - sum(1 for t in hits if t > horizon)

    def reset(self) -> None:
        self._hits.clear()
