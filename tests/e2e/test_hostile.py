"""A hostile-input corpus against the running app: each case is a request (or a websocket) that
must be refused with a stated status / close code, leave no live call behind, echo none of what
was sent, and never slow the app down (a health check follows the whole corpus)."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import redis
import websockets

from common.testing.samples import SAMPLE_CALL_DATA
from tests.e2e.conftest import REDIS_URL, twilio_signature

PATIENT = SAMPLE_CALL_DATA["prior_auth"]
GOOD = {"schema_name": "prior_auth", "call_data": PATIENT, "simulate": {}}


def _with(**changes: Any) -> dict[str, Any]:
    return {**GOOD, **changes}


def _data(**changes: Any) -> dict[str, Any]:
    return _with(call_data={**PATIENT, **changes})


@pytest.fixture(scope="module")
def http(app: dict[str, Any]) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=app["base"], timeout=30, headers=app["headers"]) as client:
        yield client


@pytest.fixture(scope="module")
def other_tenant(app: dict[str, Any]) -> dict[str, str]:
    key = asyncio.run(_key(app["prefix"], "intruders", ["calls:write", "calls:read"]))
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture(scope="module")
def reader(app: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {asyncio.run(_key(app['prefix'], 'tests', ['calls:read']))}"}


async def _key(prefix: str, tenant: str, scopes: list[str]) -> str:
    from edge.auth import KeyStore

    store = KeyStore(REDIS_URL, prefix)
    try:
        return await store.create(tenant, scopes, name="hostile")
    finally:
        await store.aclose()


@pytest.fixture(scope="module")
def victim(http: httpx.Client) -> dict[str, Any]:
    response = http.post("/calls", json=GOOD)
    assert response.status_code == 201, response.text
    call: dict[str, Any] = response.json()
    return call


# ---- (method, path, body or raw bytes, headers override, expected status) -------------------
NO_AUTH: list[tuple[str, str, dict[str, str]]] = [
    ("POST", "/calls", {}),
    ("GET", "/calls", {}),
    ("GET", "/calls", {"Authorization": "Bearer"}),
    ("GET", "/calls", {"Authorization": "Basic dXNlcjpwYXNz"}),
    ("GET", "/calls", {"Authorization": "Bearer not-a-key"}),
    ("GET", "/calls", {"Authorization": "Bearer vx_deadbeef0000_nope"}),
    ("GET", "/calls", {"Authorization": "Bearer vx__"}),
    ("GET", "/schemas", {}),
    ("GET", "/docs", {}),
    ("GET", "/openapi.json", {}),
    ("GET", "/stats", {}),
    ("GET", "/admin/keys", {}),
]


@pytest.mark.parametrize(("method", "path", "headers"), NO_AUTH)
def test_no_valid_key_is_401(app: dict[str, Any], method: str, path: str, headers: dict[str, str]) -> None:
    response = httpx.request(
        method, app["base"] + path, headers=headers, json=GOOD if method == "POST" else None
    )
    assert response.status_code == 401
    assert response.json()["detail"]["reason"] == "unauthenticated"
    assert response.headers["www-authenticate"] == "Bearer"


def test_scopes_and_tenants(
    app: dict[str, Any], victim: dict[str, Any], other_tenant: dict[str, str], reader: dict[str, str]
) -> None:
    base, call_id = app["base"], victim["call_id"]
    admin_only = [
        ("GET", "/stats"),
        ("GET", "/admin/keys"),
        ("GET", "/docs"),
        ("GET", "/admin/webhooks/dead"),
    ]
    for method, path in admin_only:
        assert httpx.request(method, base + path, headers=reader).status_code == 403
    assert httpx.get(base + "/admin/webhooks/dead", headers=app["headers"]).status_code == 200
    replay = httpx.post(base + "/admin/webhooks/dead/nope:record/replay", headers=app["headers"])
    assert replay.status_code == 404
    assert httpx.post(base + "/calls", headers=reader, json=GOOD).status_code == 403  # read-only key
    assert (
        httpx.post(base + f"/calls/{call_id}/turns", headers=reader, json={"text": "hi"}).status_code == 403
    )
    assert httpx.get(base + f"/calls/{call_id}", headers=reader).status_code == 200  # same tenant
    for method, path, body in [
        ("GET", f"/calls/{call_id}", None),
        ("GET", f"/calls/{call_id}/performance", None),
        ("POST", f"/calls/{call_id}/turns", {"text": "This is Sarah."}),
        ("POST", f"/calls/{call_id}/hangup", None),
    ]:
        response = httpx.request(method, base + path, headers=other_tenant, json=body)
        assert response.status_code == 404, (path, response.text)  # as if it did not exist
    listed = httpx.get(base + "/calls", headers=other_tenant).json()
    assert call_id not in json.dumps(listed)


BAD_BODIES: list[tuple[str, Any, int]] = [
    ("empty body", b"", 422),
    ("not json", b"{nope", 422),
    ("json list", b"[]", 422),
    ("no schema", {"call_data": PATIENT, "simulate": {}}, 422),
    ("unknown schema", _with(schema_name="nope"), 422),
    ("schema not a string", _with(schema_name=42), 422),
    ("call data not an object", _with(call_data="x"), 422),
    ("call data missing fields", _with(call_data={}), 422),
    ("bad NPI", _data(provider_npi="1234567890"), 422),
    ("impossible date", _data(date_of_birth="1980-02-30"), 422),
    ("field a list", _data(patient_name=["a", "b"]), 422),
    ("field an object", _data(patient_name={"a": 1}), 422),
    ("field huge", _data(insurer="x" * 200_000), 413),
    ("field long", _data(insurer="x" * 600), 422),
    ("field with NUL", _data(insurer="Blue\x00Cross"), 422),
    ("field with ESC", _data(insurer="Blue\x1b[31mCross"), 422),
    ("field with CR", _data(insurer="Blue\rCross"), 422),
    ("field with bidi override", _data(insurer="Blue\u202eCross"), 422),
    ("field with isolate", _data(insurer="Blue\u2066Cross"), 422),
    (
        "field with lone surrogate",
        b'{"schema_name":"prior_auth","simulate":{},"call_data":{"insurer":"\\ud800"}}',
        422,
    ),
    ("too many fields", _with(call_data={**PATIENT, **{f"f{i}": "x" for i in range(80)}}), 422),
    ("no destination", {"schema_name": "prior_auth", "call_data": PATIENT}, 422),
    ("two destinations", _with(to="+14155552671"), 422),
    ("to with newline", {**_with(to="+14155552671\n"), "simulate": None}, 422),
    ("to with other digits", {**_with(to="+１4155552671"), "simulate": None}, 422),
    ("to with letters", {**_with(to="+1415CALLNOW"), "simulate": None}, 422),
    ("to too short", {**_with(to="+1415"), "simulate": None}, 422),
    ("to no plan", {**_with(to="+99912345678"), "simulate": None}, 422),
    ("to not E.164", {**_with(to="(415) 555-2671"), "simulate": None}, 422),
    ("webhook not a URL", _with(webhook_url="not a url"), 422),
    ("webhook ftp", _with(webhook_url="ftp://example.com/x"), 422),
    ("webhook loopback", _with(webhook_url="https://127.0.0.1/hook"), 422),
    ("webhook metadata", _with(webhook_url="https://169.254.169.254/latest/meta-data"), 422),
    ("webhook decimal IP", _with(webhook_url="https://2130706433/hook"), 422),
    ("webhook IPv6 loopback", _with(webhook_url="https://[::1]/hook"), 422),
    ("webhook private", _with(webhook_url="https://10.0.0.7/hook"), 422),
    ("webhook userinfo", _with(webhook_url="https://example.com@127.0.0.1/hook"), 422),
    ("webhook plain http", _with(webhook_url="http://example.com/hook"), 422),
    ("persona not an object", _with(simulate="yes"), 422),
    ("to a number, not a string", {**_with(to=14155552671), "simulate": None}, 422),
    ("webhook with CRLF", _with(webhook_url="https://example.com/a\r\nX-Injected: 1"), 422),
    ("unknown top-level field", _with(admin=True), 422),
]


@pytest.mark.parametrize(("name", "body", "status"), BAD_BODIES, ids=[c[0] for c in BAD_BODIES])
def test_bad_start_requests_are_refused(http: httpx.Client, name: str, body: Any, status: int) -> None:
    before = _live_calls(http)
    if isinstance(body, bytes):
        response = http.post("/calls", content=body, headers={"content-type": "application/json"})
    else:
        response = http.post("/calls", json=body)
    assert response.status_code == status, (name, response.text[:300])
    for secret in ("Jane Doe", "1980-01-15", "XKM449812", "4155552671", "ud800", "\x00"):
        assert secret not in response.text, (name, secret)
    assert len(response.content) < 8192  # error lists are capped
    assert _live_calls(http) == before  # nothing left behind


def _live_calls(http: httpx.Client) -> int:
    return len(http.get("/calls").json()["live"])


BAD_TURNS: list[tuple[str, Any, int]] = [
    ("empty", {"text": ""}, 422),
    ("missing", {}, 422),
    ("not a string", {"text": 5}, 422),
    ("too long", {"text": "word " * 1000}, 422),
    ("NUL", {"text": "hello\x00"}, 422),
    ("ESC", {"text": "\x1b[2Jhello"}, 422),
    ("bidi", {"text": "approved\u202e"}, 422),
    ("isolate", {"text": "\u2067approved"}, 422),
    ("huge", {"text": "x" * 100_000}, 413),
]


@pytest.mark.parametrize(("name", "body", "status"), BAD_TURNS, ids=[c[0] for c in BAD_TURNS])
def test_bad_turns_are_refused(
    http: httpx.Client, victim: dict[str, Any], name: str, body: Any, status: int
) -> None:
    response = http.post(f"/calls/{victim['call_id']}/turns", json=body)
    assert response.status_code == status, (name, response.text[:300])
    assert http.get(f"/calls/{victim['call_id']}").json()["status"] == "active"


UNKNOWN_CALLS = ["nope", "0" * 32, "..%2F..%2Fetc%2Fpasswd", "x" * 300, "%00", "' OR 1=1 --"]


@pytest.mark.parametrize("call_id", UNKNOWN_CALLS)
def test_unknown_calls_are_404(http: httpx.Client, call_id: str) -> None:
    for method, path, body in [
        ("GET", "", None),
        ("POST", "/turns", {"text": "hi"}),
        ("POST", "/hangup", None),
    ]:
        response = http.request(method, f"/calls/{call_id}{path}", json=body)
        assert response.status_code == 404, (call_id, path, response.status_code)


def test_twilio_webhooks_need_twilios_signature(app: dict[str, Any], victim: dict[str, Any]) -> None:
    base, call_id = app["base"], victim["call_id"]
    for path in (f"/twilio/voice/{call_id}", f"/twilio/status/{call_id}"):
        assert httpx.post(base + path, data={"CallStatus": "completed"}).status_code == 403
        signed_wrong = {"X-Twilio-Signature": "d3Jvbmc="}
        assert (
            httpx.post(base + path, data={"CallStatus": "completed"}, headers=signed_wrong).status_code == 403
        )


def test_a_request_body_over_the_cap_is_413_without_reading_it(http: httpx.Client) -> None:
    response = http.post(
        "/calls", content=b"{" + b" " * 200_000 + b"}", headers={"content-type": "application/json"}
    )
    assert response.status_code == 413 and response.json()["detail"]["reason"] == "too_large"

    def chunks() -> Iterator[bytes]:
        for _ in range(100):
            yield b" " * 4096

    response = http.post("/calls", content=chunks(), headers={"content-type": "application/json"})
    assert response.status_code == 413


def test_idempotency_key_never_starts_a_call_twice(http: httpx.Client) -> None:
    key = {"Idempotency-Key": uuid.uuid4().hex}
    first = http.post("/calls", json=GOOD, headers=key)
    again = http.post("/calls", json=GOOD, headers=key)
    assert first.status_code == again.status_code == 201
    assert first.json()["call_id"] == again.json()["call_id"]
    other = http.post("/calls", json=_data(insurer="Aetna"), headers=key)
    assert other.status_code == 422 and other.json()["detail"]["reason"] == "idempotency_key_reused"
    http.post(f"/calls/{first.json()['call_id']}/hangup")


def test_a_start_whose_replica_died_mid_request_is_resumed_by_a_retry(
    app: dict[str, Any], http: httpx.Client
) -> None:
    """A claim left without a reply (its ingress replica died) past its lease: the retry finds
    the call that start opened, or opens the claimed call id itself; never a second call."""
    store = redis.Redis.from_url(REDIS_URL)

    def abandon(key: str, call_id: str) -> None:
        (slot,) = store.keys(f"{app['prefix']}idem:*:{key}")
        claim = json.loads(store.get(slot) or b"{}")
        store.set(slot, json.dumps({"fp": claim["fp"], "call_id": call_id, "at": time.time() - 3600}))

    opened = {"Idempotency-Key": uuid.uuid4().hex}
    first = http.post("/calls", json=GOOD, headers=opened).json()
    abandon(opened["Idempotency-Key"], first["call_id"])  # it opened the call, then its reply was lost
    retry = http.post("/calls", json=GOOD, headers=opened)
    assert retry.status_code == 201 and retry.json()["call_id"] == first["call_id"]
    assert retry.json()["state"] == "greeting"

    never = {"Idempotency-Key": uuid.uuid4().hex}
    stray = http.post("/calls", json=GOOD, headers=never).json()["call_id"]  # makes the claim …
    http.post(f"/calls/{stray}/hangup")
    claimed = uuid.uuid4().hex
    abandon(never["Idempotency-Key"], claimed)  # … now one that claimed this id and died first
    resumed = http.post("/calls", json=GOOD, headers=never)
    assert resumed.status_code == 201 and resumed.json()["call_id"] == claimed
    assert http.get(f"/calls/{claimed}").status_code == 200
    for call_id in (first["call_id"], claimed):
        http.post(f"/calls/{call_id}/hangup")


def test_a_key_that_spent_its_burst_is_rate_limited(app: dict[str, Any]) -> None:
    """A key whose bucket is empty (as after a flood: the bucket is shared by every replica in
    Redis) gets 429 with Retry-After; another key is untouched. The bucket's arithmetic is
    tested against Redis in tests/integration."""
    key = asyncio.run(_key(app["prefix"], "flood", ["calls:read"]))
    key_id = key.split("_")[1]
    redis.Redis.from_url(REDIS_URL).hset(
        f"{app['prefix']}rate:{key_id}", mapping={"tokens": 0, "at": time.time() + 2}
    )
    limited = httpx.get(app["base"] + "/schemas", headers={"Authorization": f"Bearer {key}"})
    assert limited.status_code == 429 and limited.json()["detail"]["reason"] == "rate_limited"
    assert int(limited.headers["retry-after"]) >= 1
    assert httpx.get(app["base"] + "/schemas", headers=app["headers"]).status_code == 200


# Before a valid start, junk is ignored (Twilio sends none) and the start deadline closes the
# socket (4408); none of it ends the call.
WS_CASES: list[tuple[str, Any, int]] = [
    ("unsigned handshake", None, 4401),
    ("unknown call", None, 4404),
    ("wrong token", {"event": "start", "token": "nope"}, 4401),
    ("binary frame", b"\x00\x01", 4408),
    ("oversize", "x" * 200_000, 1008),
    ("not json", "{nope", 4408),
]


@pytest.mark.parametrize(("name", "first", "code"), WS_CASES, ids=[c[0] for c in WS_CASES])
def test_hostile_media_sockets_are_closed_with_a_reason(
    app: dict[str, Any], http: httpx.Client, name: str, first: Any, code: int
) -> None:
    call = http.post("/calls", json=GOOD).json()
    call_id = "0" * 32 if name == "unknown call" else call["call_id"]
    url = call["media_url"].replace(call["call_id"], call_id)

    async def run() -> int | None:
        signed = {} if name == "unsigned handshake" else {"X-Twilio-Signature": twilio_signature(url, {})}
        async with websockets.connect(url, max_size=2**22, additional_headers=signed) as ws:
            if isinstance(first, dict):
                start = {
                    "event": "start",
                    "sequenceNumber": "1",
                    "streamSid": "MZ" + "0" * 32,
                    "start": {
                        "streamSid": "MZ" + "0" * 32,
                        "accountSid": "AC" + "0" * 32,
                        "callSid": "CA" + "0" * 32,
                        "tracks": ["inbound"],
                        "customParameters": {"token": first["token"]},
                        "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
                    },
                }
                await ws.send(json.dumps(start))
            elif first is not None:
                await ws.send(first)
            try:
                await asyncio.wait_for(ws.recv(), timeout=10)
            except websockets.ConnectionClosed as closed:
                return closed.rcvd.code if closed.rcvd else None
        return None

    assert asyncio.run(run()) == code, name
    if name != "unknown call":
        assert http.get(f"/calls/{call['call_id']}").json()["status"] == "active"  # the socket ended nothing
    http.post(f"/calls/{call['call_id']}/hangup")


def test_the_app_is_healthy_and_quick_after_the_corpus(app: dict[str, Any]) -> None:
    t0 = time.perf_counter()
    assert httpx.get(app["base"] + "/healthz", timeout=5).status_code == 200
    assert time.perf_counter() - t0 < 2.0  # generous: the point is a stalled loop (seconds)


def test_delete_erases_an_ended_call_of_ones_own_tenant_only(
    http: httpx.Client, other_tenant: dict[str, str]
) -> None:
    call_id = http.post("/calls", json=GOOD).json()["call_id"]
    assert http.delete(f"/calls/{call_id}").status_code == 409  # live: hang up first
    http.post(f"/calls/{call_id}/hangup")
    assert http.delete(f"/calls/{call_id}", headers=other_tenant).status_code == 404
    assert http.get(f"/calls/{call_id}").json()["transcript"]  # the record, with its transcript
    erased = http.delete(f"/calls/{call_id}")
    assert erased.status_code == 200 and erased.json() == {"call_id": call_id, "erased": True}
    assert http.get(f"/calls/{call_id}").status_code == 404
    assert http.delete(f"/calls/{call_id}").status_code == 404
    assert call_id not in json.dumps(http.get("/calls").json())
