"""What voxray keeps about a call, for how long, and what it lets out: record TTL, the calls
index trimmed by age, snapshots gone at hang-up, ``erase_call``, no call-data value in any log
line (a whole text call at DEBUG), and PII redaction of webhook payloads when asked for.

A real Redis, a real ``CallHostCore`` in this process (no Ray), scripted model services.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from actors.call_host import CallHostCore, HostConfig
from actors.store import CallIsLive, CallStore
from common.events import CallerTurn, CallOpened, EndReason, TurnDone
from common.settings import WebhookSettings
from common.testing.samples import SAMPLE_CALL_DATA
from common.testing.services import ScriptedCache, ScriptedLLM

ROOT = Path(__file__).resolve().parents[2]
LINES = [
    "Thanks for calling Acme Health provider services, this is Sarah, how can I help?",
    "Is the member ID XKM449812, for Jane Doe?",
    "What's the weather like over there today?",
    "Okay, I found the member.",
    "Yes, that one was approved.",
    "Sure, the reference number is P A 7 7 3 4 2 2 9 1.",
    "It was approved on March 3rd, 2025.",
    "Yes, that's correct.",
]


class Hooks:
    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.bodies.append(await request.json())
        return web.Response(status=204)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hook", self.handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/hook"  # type: ignore[union-attr]


@pytest.fixture
async def hooks() -> AsyncIterator[Hooks]:
    h = Hooks()
    await h.start()
    yield h
    assert h.runner is not None
    await h.runner.cleanup()


@pytest.fixture
async def cleanup(redis_url: str, key_prefix: str) -> AsyncIterator[None]:
    yield
    store = CallStore(redis_url, key_prefix)
    async for key in store.redis.scan_iter(match=f"{key_prefix}*"):
        await store.redis.delete(key)
    await store.aclose()


def host(redis_url: str, prefix: str, redact: bool = False, ttl_s: int = 30 * 86400) -> CallHostCore:
    webhooks = WebhookSettings(allow=["http://127.0.0.1:*"], redact_pii=redact)
    config = HostConfig(
        redis_url,
        prefix,
        ROOT / "schemas",
        ScriptedCache(),
        ScriptedLLM(),
        webhooks=webhooks,
        record_ttl_s=ttl_s,
    )
    return CallHostCore("dp-host", config)


async def whole_call(core: CallHostCore, webhook_url: str | None) -> tuple[str, dict[str, Any]]:
    opened = await core.start_call(
        "c-" + str(time.time_ns()), "prior_auth", SAMPLE_CALL_DATA["prior_auth"], webhook_url
    )
    assert isinstance(opened, CallOpened)
    last: Any = None
    for line in LINES:
        events = await core.complete_turn(opened.call_id, CallerTurn(text=line, mode="text"))
        last = events[-1]
        if isinstance(last, TurnDone) and last.terminal:
            break
    record = await core.hangup(opened.call_id, EndReason.HANGUP)
    return opened.call_id, record


async def wait_for(predicate: Any, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


def pii_strings() -> dict[str, str]:
    return {k: str(v) for k, v in SAMPLE_CALL_DATA["prior_auth"].items()}


async def test_no_call_data_value_reaches_any_log_line(
    redis_url: str, key_prefix: str, hooks: Hooks, cleanup: None, caplog: pytest.LogCaptureFixture
) -> None:
    """A whole text call (turns, an LLM turn, hang-up, webhook delivery) at DEBUG for every
    logger: no call-data value, pii or not, in any formatted line or exception text."""
    core = host(redis_url, key_prefix)
    with caplog.at_level(logging.DEBUG):
        call_id, record = await whole_call(core, hooks.url)
        await wait_for(lambda: len(hooks.bodies) == 1)
    await core.aclose()
    transcript = " ".join(line["text"] for line in record["transcript"])
    assert "Jane Doe" in transcript and len(record["transcript"]) >= 6  # the values were in play
    lines = [r.getMessage() + (r.exc_text or "") for r in caplog.records]
    assert len(lines) > 10 and any(call_id in line for line in lines)  # logging was on and said things
    for field, value in pii_strings().items():
        leaked = [line for line in lines if value.lower() in line.lower()]
        assert not leaked, f"{field} appears in the logs: {leaked[:2]}"
    for part in ("XKM449812", "Jane", "1980-01-15", "X-ray Kilo Mike"):
        assert not any(part in line for line in lines)


async def test_webhook_payloads_carry_pii_unless_redaction_is_on(
    redis_url: str, key_prefix: str, hooks: Hooks, cleanup: None
) -> None:
    plain = host(redis_url, key_prefix)
    await whole_call(plain, hooks.url)
    await wait_for(lambda: len(hooks.bodies) == 1)
    await plain.aclose()
    assert "Jane Doe" in json.dumps(hooks.bodies[0])  # default: the record as it is

    redacting = host(redis_url, key_prefix, redact=True)
    call_id, record = await whole_call(redacting, hooks.url)
    await wait_for(lambda: len(hooks.bodies) == 2)
    await redacting.aclose()
    sent = json.dumps(hooks.bodies[1])
    assert hooks.bodies[1]["data"]["call_id"] == call_id
    for value in ("Jane", "Doe", "XKM449812", "X-ray Kilo Mike", "January fifteenth, nineteen eighty"):
        assert value not in sent
    assert "[redacted:patient_name]" in sent and "[redacted:member_id]" in sent
    assert "Blue Cross" in sent or "99213" in sent or "nine nine two one three" in sent  # not pii: kept
    assert "Jane Doe" in json.dumps(record)  # the stored record (GET /calls/{id}) is not redacted


async def test_hangup_deletes_the_snapshot_and_everything_expires_with_the_record(
    redis_url: str, key_prefix: str, cleanup: None
) -> None:
    core = host(redis_url, key_prefix, ttl_s=3600)
    store = core.store
    assert store is not None
    old = time.time() - 7200
    await store.redis.zadd(store._k("calls"), {"ancient-call": old})
    await store.redis.zadd(store._k("webhooks", "dead"), {"ancient-call:record": old})
    opened = await core.start_call(
        "c-ttl", "prior_auth", SAMPLE_CALL_DATA["prior_auth"], "http://127.0.0.1:9/x"
    )
    assert isinstance(opened, CallOpened)
    assert await store.load_snapshot("c-ttl") is not None
    await core.hangup("c-ttl", EndReason.HANGUP)
    await core.aclose()
    store = CallStore(redis_url, key_prefix, 3600)
    assert await store.load_snapshot("c-ttl") is None  # gone at hang-up
    for key in (
        store._k("call", "c-ttl", "record"),
        store._k("call", "c-ttl", "route"),
        store._k("webhook", "c-ttl:record"),
    ):
        ttl = await store.redis.ttl(key)
        assert 3500 < ttl <= 3600, (key, ttl)
    assert await store.list_calls() == ["c-ttl"]  # the index lost the entry older than the TTL
    assert await store.redis.zscore(store._k("webhooks", "dead"), "ancient-call:record") is None
    await store.aclose()


async def test_erase_call_deletes_record_transcript_snapshot_route_and_deliveries(
    redis_url: str, key_prefix: str, cleanup: None
) -> None:
    core = host(redis_url, key_prefix)
    store = core.store
    assert store is not None
    opened = await core.start_call(
        "c-erase", "prior_auth", SAMPLE_CALL_DATA["prior_auth"], "http://127.0.0.1:9/x"
    )
    assert isinstance(opened, CallOpened)
    await core.complete_turn("c-erase", CallerTurn(text=LINES[0], mode="text"))
    with pytest.raises(CallIsLive):
        await store.erase_call("c-erase")  # live: hang up first
    await core.hangup("c-erase", EndReason.HANGUP)
    await core.aclose()
    store = CallStore(redis_url, key_prefix)
    assert (await store.load_record("c-erase") or {}).get("transcript")
    await store.redis.zadd(store._k("webhooks", "dead"), {"c-erase:record": time.time()})  # as if it died
    assert await store.erase_call("c-erase")
    left = [k async for k in store.redis.scan_iter(match=f"{key_prefix}*c-erase*")]
    assert left == []
    for name in ("due", "leased", "dead"):
        assert await store.redis.zscore(store._k("webhooks", name), "c-erase:record") is None
    assert "c-erase" not in await store.list_calls() and await store.route("c-erase") is None
    assert not await store.erase_call("c-erase")  # nothing left: says so
    await store.aclose()
