"""The sandbox, driven over real HTTP on 127.0.0.1 with aiohttp's client."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest

from importer.errors import InputError
from importer.sandbox import (
    MAX_BODY_BYTES,
    RunningSandbox,
    SandboxConfig,
    SandboxThread,
    WindowLimiter,
    running_sandbox,
    start_sandbox,
)

VALID = {"conversion_identifier": "feira-2026", "email": "ana@example.com"}


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def event(payload: dict[str, Any] | None = None, **envelope: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"event_type": "CONVERSION", "event_family": "CDP"}
    body["payload"] = VALID if payload is None else payload
    body.update(envelope)
    return body


class Answer:
    def __init__(self, status: int, headers: Any, text: str) -> None:
        self.status = status
        self.headers = headers
        self.text = text

    @property
    def json(self) -> Any:
        return json.loads(self.text)


async def post(
    session: aiohttp.ClientSession,
    sandbox: RunningSandbox,
    body: Any = None,
    *,
    key: str | None = "test-key",
    data: bytes | None = None,
    content_type: str = "application/json",
) -> Answer:
    params = {} if key is None else {"api_key": key}
    if data is None:
        data = orjson.dumps(event() if body is None else body)
    async with session.post(
        f"{sandbox.url}/platform/conversions",
        params=params,
        data=data,
        headers={"Content-Type": content_type},
    ) as response:
        return Answer(response.status, response.headers, await response.text())


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


@pytest.fixture
async def sandbox() -> AsyncIterator[RunningSandbox]:
    async with running_sandbox() as running:
        yield running


# --- success and the request errors -----------------------------------------------------------


async def test_a_valid_conversion_is_answered_with_an_event_uuid_and_recorded(session, sandbox):
    answer = await post(session, sandbox)

    assert answer.status == 200
    event_uuid = answer.json["event_uuid"]
    assert uuid.UUID(event_uuid).version == 4
    [accepted] = sandbox.state.accepted
    assert accepted["event_uuid"] == event_uuid
    assert accepted["payload"] == VALID
    assert accepted["received_at"].endswith("+00:00")
    assert sandbox.state.statuses == {200: 1}
    assert sandbox.state.requests == 1


async def test_every_accepted_post_is_a_new_conversion(session, sandbox):
    first = await post(session, sandbox)
    second = await post(session, sandbox)

    assert first.json["event_uuid"] != second.json["event_uuid"]
    assert len(sandbox.state.accepted) == 2


async def test_a_missing_api_key_is_unauthorized_in_shape_1(session, sandbox):
    answer = await post(session, sandbox, key=None)

    assert answer.status == 401
    assert answer.json["errors"]["error_type"] == "UNAUTHORIZED"
    assert sandbox.state.accepted == []


@pytest.mark.parametrize(
    ("config", "key"),
    [
        (SandboxConfig(), "revoked-key"),
        (SandboxConfig(api_keys=frozenset({"good-key"})), "other-key"),
    ],
)
async def test_a_refused_api_key_is_unauthorized_in_shape_1(session, config, key):
    async with running_sandbox(config) as sandbox:
        answer = await post(session, sandbox, key=key)

    assert answer.status == 401
    assert answer.json == {
        "errors": {"error_type": "UNAUTHORIZED", "error_message": "Invalid token."}
    }


async def test_a_listed_api_key_is_accepted(session):
    async with running_sandbox(SandboxConfig(api_keys=frozenset({"good-key"}))) as sandbox:
        assert (await post(session, sandbox, key="good-key")).status == 200


async def test_a_body_that_is_not_declared_json_is_unsupported_media_type(session, sandbox):
    answer = await post(session, sandbox, content_type="text/plain")

    assert answer.status == 415
    assert answer.json["errors"]["error_type"] == "UNSUPPORTED_MEDIA_TYPE"


async def test_json_with_a_charset_is_accepted(session, sandbox):
    answer = await post(session, sandbox, content_type="application/json; charset=utf-8")

    assert answer.status == 200


def padded_event(size: int) -> bytes:
    """A valid event whose encoded body is exactly ``size`` bytes."""
    base = orjson.dumps(event({**VALID, "cf_notes": ""}))
    return orjson.dumps(event({**VALID, "cf_notes": "x" * (size - len(base))}))


async def test_a_body_at_the_limit_is_accepted(session, sandbox):
    data = padded_event(MAX_BODY_BYTES)
    assert len(data) == MAX_BODY_BYTES

    assert (await post(session, sandbox, data=data)).status == 200


async def test_a_body_over_the_limit_is_too_large(session, sandbox):
    answer = await post(session, sandbox, data=padded_event(MAX_BODY_BYTES + 1))

    assert answer.status == 413
    assert answer.json == {"message": "Request size limit exceeded"}
    assert sandbox.state.accepted == []


@pytest.mark.parametrize("data", [b"{not json", b"", b'["a list"]'])
async def test_a_body_that_is_not_a_json_object_is_a_bad_request(session, sandbox, data):
    answer = await post(session, sandbox, data=data)

    assert answer.status == 400
    assert answer.json["errors"]["error_type"] == "BAD_REQUEST"


async def test_a_wrong_event_type_and_family_are_invalid_options_in_shape_3(session, sandbox):
    answer = await post(session, sandbox, event(event_type="SALE", event_family="X"))

    assert answer.status == 400
    errors = answer.json["errors"]
    assert [(e["error_type"], e["path"], e["validation_rules"]) for e in errors] == [
        ("INVALID_OPTION", "$.body.event_type", {"valid_options": ["CONVERSION"]}),
        ("INVALID_OPTION", "$.body.event_family", {"valid_options": ["CDP"]}),
    ]


async def test_a_missing_payload_is_a_bare_error_list_in_shape_4(session, sandbox):
    answer = await post(session, sandbox, {"event_type": "CONVERSION", "event_family": "CDP"})

    assert answer.status == 400
    [error] = answer.json
    assert error["error_type"] == "CANNOT_BE_NULL"
    assert error["path"] == "$.body.payload"


async def test_an_unknown_path_is_resource_not_found(session, sandbox):
    async with session.get(f"{sandbox.url}/platform/contacts") as response:
        assert response.status == 404
        body = await response.json()

    assert body["errors"]["error_type"] == "RESOURCE_NOT_FOUND"


# --- payload validation (shapes 2 and 5) ---------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "field", "error_type"),
    [
        ({"email": None}, "email", "CANNOT_BE_NULL"),
        ({"conversion_identifier": None}, "conversion_identifier", "CANNOT_BE_NULL"),
        ({"conversion_identifier": "  "}, "conversion_identifier", "CANNOT_BE_BLANK"),
        ({"email": ""}, "email", "CANNOT_BE_BLANK"),
        ({"email": "ana.example.com"}, "email", "INVALID_FORMAT"),
        ({"email": "ana@example"}, "email", "INVALID_FORMAT"),
        ({"email": 12}, "email", "MUST_BE_STRING"),
        ({"name": 12}, "name", "MUST_BE_STRING"),
        ({"mobile_phone": 11987654321}, "mobile_phone", "MUST_BE_STRING"),
        ({"linkedin": "ana maria"}, "linkedin", "INVALID_FORMAT"),
        ({"twitter": "@ana"}, "twitter", "INVALID_FORMAT"),
        ({"facebook": "ana/x"}, "facebook", "INVALID_FORMAT"),
        ({"tags": "a,b"}, "tags", "MUST_BE_STRING_ARRAY"),
        ({"tags": ["a", 1]}, "tags", "MUST_BE_STRING_ARRAY"),
        ({"tags": ["feira", "VIP"]}, "tags", "VALUES_MUST_BE_LOWERCASE"),
        ({"available_for_mailing": "true"}, "available_for_mailing", "MUST_BE_BOOLEAN"),
        ({"legal_bases": "consent"}, "legal_bases", "INVALID"),
        ({"birthdate": "1990-01-01"}, "birthdate", "INVALID"),
    ],
)
async def test_a_field_error_is_answered_400_in_shape_2(
    session, sandbox, changes, field, error_type
):
    payload = {key: value for key, value in {**VALID, **changes}.items() if value is not None}

    answer = await post(session, sandbox, event(payload))

    assert answer.status == 400
    [error] = answer.json["errors"][field]
    assert error["error_type"] == error_type
    assert error["error_message"]
    assert list(answer.json["errors"]) == [field]
    assert sandbox.state.accepted == []


async def test_every_field_error_of_one_request_is_answered_together(session, sandbox):
    payload = {"name": 1, "linkedin": "a b", "tags": "x", "cf_plano": {"nested": True}}

    answer = await post(session, sandbox, event(payload))

    errors = answer.json["errors"]
    assert answer.status == 400
    assert set(errors) == {"conversion_identifier", "email", "name", "linkedin", "tags", "cf_plano"}
    assert errors["email"][0]["error_type"] == "CANNOT_BE_NULL"
    assert errors["cf_plano"]["pt-BR"][0]["error_type"] == "INVALID"


async def test_a_custom_field_of_the_wrong_type_is_answered_per_locale_in_shape_5(session, sandbox):
    answer = await post(session, sandbox, event({**VALID, "cf_plano": {"a": 1}}))

    assert answer.status == 400
    [error] = answer.json["errors"]["cf_plano"]["pt-BR"]
    assert error["error_type"] == "INVALID"


async def test_a_custom_field_the_account_lacks_is_refused_when_fields_are_configured(session):
    config = SandboxConfig(custom_fields=frozenset({"cf_plano"}))
    async with running_sandbox(config) as sandbox:
        known = await post(session, sandbox, event({**VALID, "cf_plano": "ouro"}))
        unknown = await post(session, sandbox, event({**VALID, "cf_cor": "azul"}))

    assert known.status == 200
    assert unknown.status == 400
    assert unknown.json["errors"]["cf_cor"]["pt-BR"][0]["error_type"] == "INVALID"


async def test_every_documented_field_of_the_right_type_is_accepted(session, sandbox):
    payload = {
        **VALID,
        "name": "Ana Maria",
        "job_title": "Gerente",
        "state": "SP",
        "city": "São Paulo",
        "country": "Brasil",
        "personal_phone": "+55 11 3333-4444",
        "mobile_phone": "+55 11 98765-4321",
        "twitter": "ana_maria",
        "facebook": "ana.maria",
        "linkedin": "ana-maria-1",
        "website": "https://ana.example.com",
        "company_name": "ACME",
        "company_site": "acme.example.com",
        "company_address": "Rua A, 1",
        "client_tracking_id": "abc",
        "traffic_source": "google",
        "traffic_medium": "cpc",
        "traffic_campaign": "feira",
        "traffic_value": "x",
        "tags": ["feira", "vip"],
        "available_for_mailing": False,
        "legal_bases": [{"category": "communications", "type": "consent", "status": "granted"}],
        "cf_plano": "ouro",
        "cf_idade": 42,
        "cf_cliente": True,
        "cf_interesses": ["a", "b"],
        "cf_vazio": None,
    }

    answer = await post(session, sandbox, event(payload))

    assert answer.status == 200, answer.text
    assert sandbox.state.accepted[0]["payload"] == payload


async def test_legal_bases_outside_the_allowed_values_are_invalid_options(session, sandbox):
    bases = [
        {"category": "communications", "type": "consent", "status": "granted"},
        {"category": "marketing", "type": "whim", "status": "granted"},
    ]

    answer = await post(session, sandbox, event({**VALID, "legal_bases": bases}))

    errors = answer.json["errors"]["legal_bases"]
    assert answer.status == 400
    assert [e["error_type"] for e in errors] == ["INVALID_OPTION", "INVALID_OPTION"]
    assert "legal_bases[1].category" in errors[0]["error_message"]
    assert "legal_bases[1].type" in errors[1]["error_message"]


# --- the gateway's window limiter (shape 7) --------------------------------------------------


def test_the_window_limiter_allows_exactly_limit_hits_in_any_window():
    clock = FakeClock()
    limiter = WindowLimiter(3, 60.0, clock)

    assert [limiter.hit("k") for _ in range(3)] == [None, None, None]
    assert limiter.hit("k") == 60.0
    assert limiter.hit("other") is None
    clock.now += 59.5
    assert limiter.hit("k") == 0.5
    clock.now += 0.5
    assert limiter.hit("k") is None


def test_the_window_limiter_slides_rather_than_resetting_per_fixed_window():
    clock = FakeClock()
    limiter = WindowLimiter(3, 60.0, clock)
    limiter.hit("k")
    clock.now += 30
    limiter.hit("k")
    limiter.hit("k")

    clock.now += 30  # the first hit leaves the window; the two at +30 stay until +90
    assert limiter.hit("k") is None
    assert limiter.hit("k") == 30.0


async def test_the_gateway_allows_n_posts_per_window_then_answers_429_in_shape_7(session):
    clock = FakeClock()
    config = SandboxConfig(rate_limit=3, rate_window=60.0)
    async with running_sandbox(config, clock=clock) as sandbox:
        allowed = [(await post(session, sandbox)).status for _ in range(3)]
        refused = await post(session, sandbox)
        clock.now += 59.2
        still_refused = await post(session, sandbox)
        clock.now += 0.8
        allowed_again = await post(session, sandbox)

    assert allowed == [200, 200, 200]
    assert refused.status == 429
    assert refused.json == {"message": "API rate limit exceeded"}
    assert refused.headers["ratelimit-limit-quotas"] == "3"
    assert refused.headers["retry-after-quotas"] == "60"
    assert "Retry-After" not in refused.headers
    assert still_refused.headers["retry-after-quotas"] == "1"
    assert allowed_again.status == 200
    assert sandbox.state.statuses == {200: 4, 429: 2}
    assert len(sandbox.state.accepted) == 4


async def test_the_gateway_counts_failed_posts_but_not_unauthorized_ones(session):
    config = SandboxConfig(rate_limit=2)
    async with running_sandbox(config, clock=FakeClock()) as sandbox:
        unauthorized = await post(session, sandbox, key="revoked-key")
        invalid = await post(session, sandbox, event({"email": "x"}))
        valid = await post(session, sandbox)
        refused = await post(session, sandbox)

    assert [a.status for a in (unauthorized, invalid, valid, refused)] == [401, 400, 200, 429]


async def test_the_gateway_limits_each_api_key_on_its_own(session):
    async with running_sandbox(SandboxConfig(rate_limit=1), clock=FakeClock()) as sandbox:
        first = await post(session, sandbox, key="key-a")
        other_key = await post(session, sandbox, key="key-b")
        second = await post(session, sandbox, key="key-a")

    assert [first.status, other_key.status, second.status] == [200, 200, 429]


# --- the per-lead limiter (shape 6) ---------------------------------------------------------


async def test_the_lead_limiter_refuses_a_lead_over_its_daily_limit_in_shape_6(session):
    clock = FakeClock()
    async with running_sandbox(SandboxConfig(lead_limit=2), clock=clock) as sandbox:
        statuses = [(await post(session, sandbox)).status for _ in range(2)]
        shouting = event({**VALID, "email": "ANA@example.com"})
        refused = await post(session, sandbox, shouting)
        other_lead = await post(session, sandbox, event({**VALID, "email": "bia@example.com"}))
        clock.now += 86_400
        next_day = await post(session, sandbox)

    assert statuses == [200, 200]
    assert refused.status == 429
    assert refused.json == {
        "error": "'lead_limiter' rate limit exceeded for 86400 second(s) period for key "
        "'ana@example.com'",
        "max": 2,
        "usage": 3,
        "remaining_time": 86400,
    }
    assert other_lead.status == 200
    assert next_day.status == 200
    assert len(sandbox.state.accepted) == 4


# --- faults ----------------------------------------------------------------------------------


async def outcome(session: aiohttp.ClientSession, sandbox: RunningSandbox) -> int | str:
    try:
        return (await post(session, sandbox)).status
    except aiohttp.ClientError:
        return "no answer"


async def test_a_dropped_connection_gets_no_answer_and_records_nothing(session):
    async with running_sandbox(SandboxConfig(drop_ratio=1.0)) as sandbox:
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await post(session, sandbox)

    assert sandbox.state.statuses == {"dropped": 1}
    assert sandbox.state.accepted == []


async def test_accept_then_drop_records_the_conversion_but_never_answers(session):
    async with running_sandbox(SandboxConfig(accept_then_drop_ratio=1.0)) as sandbox:
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await post(session, sandbox)

    assert sandbox.state.statuses == {"dropped": 1}
    assert [a["payload"] for a in sandbox.state.accepted] == [VALID]


async def test_server_errors_come_as_json_and_as_a_proxys_html_page(session):
    async with running_sandbox(SandboxConfig(fail_ratio=1.0, seed=7)) as sandbox:
        answers = [await post(session, sandbox) for _ in range(30)]

    assert {a.status for a in answers} == {500, 502, 503}
    content_types = {a.headers["Content-Type"].split(";")[0] for a in answers}
    assert content_types == {"application/json", "text/html"}
    html = next(a for a in answers if a.text.startswith("<html>"))
    assert f"<h1>{html.status} " in html.text
    assert sandbox.state.accepted == []


async def test_faults_are_reproducible_with_a_seed_and_shared_as_configured(session):
    config = SandboxConfig(fail_ratio=0.2, drop_ratio=0.1, accept_then_drop_ratio=0.1, seed=42)
    runs = []
    for _ in range(2):
        async with running_sandbox(config) as sandbox:
            outcomes = [await outcome(session, sandbox) for _ in range(200)]
        runs.append((outcomes, sandbox.state.statuses, len(sandbox.state.accepted)))

    assert runs[0][0] == runs[1][0]
    outcomes, statuses, accepted = runs[0]
    faults = statuses["dropped"] + statuses[500] + statuses[502] + statuses[503]
    assert 40 <= faults <= 120  # 40% of 200 expected; the seed fixes the draw
    assert outcomes.count("no answer") == statuses["dropped"]
    recorded_unanswered = accepted - statuses[200]
    assert 0 < recorded_unanswered < statuses["dropped"]  # both kinds of drop happened


async def test_latency_delays_every_answer(session):
    async with running_sandbox(SandboxConfig(latency=0.05)) as sandbox:
        started = time.monotonic()
        answer = await post(session, sandbox)

    assert answer.status == 200
    assert time.monotonic() - started >= 0.05


# --- inspection endpoints ------------------------------------------------------------------


async def test_the_state_endpoint_shows_what_arrived(session, sandbox):
    await post(session, sandbox)
    await post(session, sandbox, key=None)

    async with session.get(f"{sandbox.url}/_sandbox/state") as response:
        state = await response.json()

    assert state["requests"] == 2
    assert state["statuses"] == {"200": 1, "401": 1}
    assert [a["payload"] for a in state["accepted"]] == [VALID]


async def test_reset_answers_the_state_and_clears_it_and_the_limiters(session):
    async with running_sandbox(SandboxConfig(rate_limit=1), clock=FakeClock()) as sandbox:
        await post(session, sandbox)
        assert (await post(session, sandbox)).status == 429

        async with session.post(f"{sandbox.url}/_sandbox/reset") as response:
            before = await response.json()
        after_reset = sandbox.state.snapshot()
        allowed = await post(session, sandbox)

    assert before["statuses"] == {"200": 1, "429": 1}
    assert after_reset == {
        "requests": 0,
        "statuses": {},
        "accepted": [],
        "oauth": {"grants": {}, "refused": {}, "revoked": 0},
    }
    assert allowed.status == 200


# --- running it ------------------------------------------------------------------------------


def test_the_sandbox_thread_serves_synchronous_callers_until_stopped():
    with SandboxThread() as sandbox:
        request = urllib.request.Request(
            f"{sandbox.url}/platform/conversions?api_key=k",
            data=orjson.dumps(event()),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200
        snapshot = sandbox.snapshot()
        url = sandbox.url

    assert snapshot["statuses"] == {"200": 1}
    assert [a["payload"] for a in snapshot["accepted"]] == [VALID]
    sandbox.stop()  # a second stop is harmless
    with pytest.raises(OSError), urllib.request.urlopen(f"{url}/_sandbox/state", timeout=5):
        pass


def test_a_port_in_use_is_an_input_error_for_the_thread():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(InputError, match=f"127.0.0.1:{port}.*--port"):
            SandboxThread(port=port).start()


async def test_a_port_in_use_is_an_input_error(sandbox):
    port = int(sandbox.url.rsplit(":", 1)[1])

    with pytest.raises(InputError, match="choose another port"):
        await start_sandbox(port=port)


@pytest.mark.parametrize(
    "settings",
    [{"fail_ratio": 0.7, "drop_ratio": 0.5}, {"rate_limit": 0}, {"latency": -1.0}],
)
def test_impossible_settings_are_input_errors(settings):
    with pytest.raises(InputError, match="sandbox"):
        SandboxConfig(**settings)


SERVE_SCRIPT = """
import sys
from importer.sandbox import SandboxConfig, serve
serve("127.0.0.1", 0, SandboxConfig(), on_ready=lambda url: print(url, flush=True))
print("stopped", flush=True)
"""


def test_serve_runs_until_sigterm():
    process = subprocess.Popen(
        [sys.executable, "-c", SERVE_SCRIPT], stdout=subprocess.PIPE, text=True
    )
    try:
        url = process.stdout.readline().strip()
        with urllib.request.urlopen(f"{url}/_sandbox/state", timeout=10) as response:
            assert json.load(response)["requests"] == 0
        process.terminate()
        out, _ = process.communicate(timeout=20)
    finally:
        process.kill()
        process.wait()

    assert url.startswith("http://127.0.0.1:")
    assert out == "stopped\n"
    assert process.returncode == 0
