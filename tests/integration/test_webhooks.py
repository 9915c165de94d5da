"""Webhook delivery from the Redis outbox: signatures, the retry schedule, dead letters and
their replay, per-destination concurrency, lease takeover, Redis trouble, and the address
checks at delivery time (DNS rebinding).

A real Redis and real HTTP receivers (aiohttp in this process); time comes from a clock the
test moves, so no test waits on a backoff. Receivers run on 127.0.0.1, which only the
allow-list (``http://127.0.0.1:*``) lets a delivery reach.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from actors.store import CallStore, record_delivery_id
from actors.webhook_guard import DestinationPolicy, check_destination, static_resolver
from actors.webhooks import WebhookSender, destination_of, new_delivery, record_payload, verify
from common.settings import WebhookSettings
from tests.support import RedisGate

RECORD = {"call_id": "c-1", "outcome": "status_captured"}
LOCAL = ["http://127.0.0.1:*"]


class Receiver:
    def __init__(self) -> None:
        self.status = 200
        self.delay_s = 0.0
        self.gate: asyncio.Event | None = None  # set: requests wait for it
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.in_flight = self.max_in_flight = 0
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            body = await request.read()
            if self.gate is not None:
                await self.gate.wait()
            await asyncio.sleep(self.delay_s)
            self.received.append((dict(request.headers), body))
            return web.Response(status=self.status)
        finally:
            self.in_flight -= 1

    async def start(self) -> Receiver:
        app = web.Application()
        app.router.add_post("/hook", self.handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{self.port}/hook"
        return self

    async def stop(self) -> None:
        if self.gate is not None:
            self.gate.set()
        assert self.runner is not None
        await self.runner.cleanup()


class Clock:
    def __init__(self) -> None:
        self.now = time.time() + 1  # the outbox's entries are due from their real enqueue time

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def store(redis_url: str, key_prefix: str) -> AsyncIterator[CallStore]:
    store = CallStore(redis_url, key_prefix)
    yield store
    async for key in store.redis.scan_iter(match=f"{key_prefix}*"):
        await store.redis.delete(key)
    await store.aclose()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = await Receiver().start()
    yield r
    await r.stop()


def sender_for(store: CallStore, clock: Clock | None = None, **settings: Any) -> WebhookSender:
    settings.setdefault("allow", LOCAL)
    return WebhookSender(
        store,
        "w1",
        WebhookSettings(**settings),
        rng=random.Random(3),
        clock=clock or Clock(),
        resolver=settings.pop("resolver", None) or static_resolver({}),
    )


async def enqueue(store: CallStore, call_id: str, url: str, record: dict[str, Any] | None = None) -> None:
    dest = destination_of(url, DestinationPolicy([*LOCAL, "http://hooks.voxray.test:*"]))
    payload = record_payload(record or {**RECORD, "call_id": call_id})
    await store.end_call(
        call_id, record or {**RECORD, "call_id": call_id}, new_delivery(call_id, url, payload, dest)
    )


async def test_a_record_is_posted_signed_the_standard_webhooks_way(
    store: CallStore, receiver: Receiver
) -> None:
    await enqueue(store, "c-1", receiver.url)
    clock = Clock()
    sender = sender_for(store, clock)
    assert await sender.run_once() == 1
    [(headers, body)] = receiver.received
    secret = await store.webhook_secret()  # generated once, kept in Redis
    assert secret.startswith("whsec_") and await sender.secret() == secret
    verify(secret, headers, body, now=clock.now)  # what a receiver does
    assert headers["webhook-id"] == "c-1:record" and int(headers["webhook-timestamp"]) == int(clock.now)
    payload = json.loads(body)
    assert payload["type"] == "call.ended" and payload["data"] == RECORD and payload["timestamp"]
    assert await store.pending_webhooks() == 0 and await store.load_webhook("c-1:record") is None
    await sender.aclose()


async def test_a_configured_secret_signs_instead_of_the_generated_one(
    store: CallStore, receiver: Receiver
) -> None:
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    await enqueue(store, "c-1", receiver.url)
    sender = sender_for(store, secret=secret)
    assert await sender.run_once() == 1
    [(headers, body)] = receiver.received
    verify(secret, headers, body, now=sender.clock())
    await sender.aclose()


async def test_failures_are_retried_on_the_jittered_schedule_then_dead_lettered_and_replayable(
    store: CallStore, receiver: Receiver
) -> None:
    receiver.status = 503
    await enqueue(store, "c-1", receiver.url)
    clock = Clock()
    start = clock.now
    sender = sender_for(store, clock, base_delay_s=10.0, max_delay_s=600.0, retry_window_s=3600.0)
    did = record_delivery_id("c-1")
    assert await sender.run_once() == 0
    due = await store.webhook_due_at(did)
    assert due is not None and clock.now + 1 <= due <= clock.now + 10  # attempt 1: under a 10 s cap
    pending = await store.load_webhook(did)
    assert pending is not None and pending["attempts"] == 1 and pending["last_error"] == "HTTP 503"
    assert await sender.run_once() == 0 and len(receiver.received) == 1  # not due yet: not posted
    caps = []
    while (due := await store.webhook_due_at(did)) is not None:
        caps.append(due - clock.now)
        clock.now = due
        await sender.run_once()
    assert len(receiver.received) == len(caps) + 1
    assert clock.now == start + 3600  # retried until the window's end, the last try on it
    assert all(0 < d <= 600 for d in caps) and max(caps[:3]) <= 40  # growing caps, full jitter
    [dead] = await store.dead_letters()
    assert dead["id"] == did and dead["call_id"] == "c-1" and dead["attempts"] == len(caps) + 1
    assert dead["last_error"] == "HTTP 503" and dead["destination"].startswith("http://127.0.0.1:")
    assert "body" not in dead and await store.pending_webhooks() == 0

    receiver.status = 200
    assert await store.replay_dead_letter(did)
    assert not await store.replay_dead_letter(did)  # no longer dead
    assert await store.dead_letters() == []
    assert await sender.run_once() == 1
    assert json.loads(receiver.received[-1][1])["data"] == RECORD
    await sender.aclose()


async def test_a_gone_receiver_or_a_url_that_can_never_pass_is_dead_at_once(
    store: CallStore, receiver: Receiver
) -> None:
    receiver.status = 410
    await enqueue(store, "c-1", receiver.url)
    await enqueue(store, "c-2", "http://hooks.example.com/x")  # stored before the policy changed
    sender = sender_for(store)
    await sender.run_once()
    dead = {d["id"]: d for d in await store.dead_letters()}
    assert set(dead) == {"c-1:record", "c-2:record"} and all(d["attempts"] == 1 for d in dead.values())
    assert dead["c-2:record"]["last_error"] == "refused: the URL must use https"
    await sender.aclose()


async def test_a_slow_receiver_holds_only_its_own_slots(store: CallStore) -> None:
    slow, fast = await Receiver().start(), await Receiver().start()
    slow.gate = asyncio.Event()
    try:
        for i in range(6):
            await enqueue(store, f"slow-{i}", slow.url)
        for i in range(4):
            await enqueue(store, f"fast-{i}", fast.url)
        sender = sender_for(store, concurrency=8, per_destination=2)
        started = await sender.deliver_due()
        assert started == 4  # 2 to the slow receiver, 2 to the fast one
        for _ in range(200):  # the fast receiver's deliveries finish and free slots meanwhile
            await asyncio.sleep(0.01)
            await sender.deliver_due()
            if len(fast.received) == 4 and sender.in_flight == 2:
                break
        assert len(fast.received) == 4 and slow.received == []
        assert slow.in_flight == 2 and slow.max_in_flight == 2 and sender.in_flight == 2
        slow.gate.set()
        for _ in range(300):
            await sender.run_once()
            if len(slow.received) == 6:
                break
            await asyncio.sleep(0.01)
        assert len(slow.received) == 6 and slow.max_in_flight == 2
        await sender.aclose()
    finally:
        await slow.stop()
        await fast.stop()


async def test_a_backlog_for_one_slow_receiver_does_not_starve_the_others(store: CallStore) -> None:
    """More deliveries due for a stalled receiver than a claim looks at: the ones it cannot take
    move behind the rest (still due), so the other receiver's deliveries still go out at once."""
    slow, fast = await Receiver().start(), await Receiver().start()
    slow.gate = asyncio.Event()
    try:
        for i in range(500):  # a claim looks at max(4 x free slots, 200) due entries
            await enqueue(store, f"slow-{i}", slow.url)
        for i in range(3):
            await enqueue(store, f"fast-{i}", fast.url)
        clock = Clock()
        sender = sender_for(store, clock, concurrency=8, per_destination=2)
        for _ in range(200):
            await sender.deliver_due()
            if len(fast.received) == 3:
                break
            await asyncio.sleep(0.01)
        assert len(fast.received) == 3 and slow.received == [] and slow.max_in_flight == 2
        assert await store.redis.zcount(store._k("webhooks", "due"), "-inf", clock.now) == 498  # still due
        slow.gate.set()
        await sender.drain()
        assert len(slow.received) == 2
        await sender.aclose()
    finally:
        await slow.stop()
        await fast.stop()


async def test_a_dead_senders_deliveries_are_taken_over_when_its_lease_runs_out(
    store: CallStore, receiver: Receiver
) -> None:
    await enqueue(store, "c-1", receiver.url)
    clock = Clock()
    claimed = await store.claim_webhooks("dead-host", 10, 60.0, 4, now=clock.now)  # ... then it dies
    assert [did for did, _ in claimed] == ["c-1:record"] and await store.pending_webhooks() == 1
    sender = sender_for(store, clock)
    assert await sender.run_once() == 0  # leased to the dead host: not yet
    clock.now += 61
    assert await sender.run_once() == 1 and len(receiver.received) == 1
    assert not await store.finish_webhook("dead-host", "c-1:record", "done")  # its lease is gone
    assert await store.pending_webhooks() == 0
    await sender.aclose()


async def test_the_sender_survives_redis_being_down_at_start_and_in_the_loop(
    redis_url: str, key_prefix: str, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    gate = RedisGate(redis_url)
    await gate.open()
    await gate.close()  # Redis unreachable before the sender starts
    store = CallStore(gate.url, key_prefix)
    sender = WebhookSender(store, "w1", WebhookSettings(allow=LOCAL))
    task = asyncio.create_task(sender.run(interval_s=0.05, max_backoff_s=0.2))
    try:
        with caplog.at_level(logging.WARNING, "voxray.webhooks"):
            await asyncio.sleep(0.5)
        assert not task.done() and "webhook outbox unavailable" in caplog.text
        await gate.open()
        await enqueue(store, "c-1", receiver.url)
        for _ in range(100):
            if receiver.received:
                break
            await asyncio.sleep(0.05)
        assert len(receiver.received) == 1
        await gate.close()  # down again mid-loop
        await asyncio.sleep(0.3)
        assert not task.done()
        await gate.open()
        await enqueue(store, "c-2", receiver.url)
        for _ in range(100):
            if len(receiver.received) == 2:
                break
            await asyncio.sleep(0.05)
        assert len(receiver.received) == 2
    finally:
        task.cancel()
        await sender.aclose()
        async for key in store.redis.scan_iter(match=f"{key_prefix}*"):
            await store.redis.delete(key)
        await store.aclose()
        await gate.close()


async def test_dns_rebinding_is_caught_at_delivery_before_connecting(
    store: CallStore, receiver: Receiver
) -> None:
    """The name resolved to a public address when the call started and to loopback now: the
    delivery is refused without a connection, and retried later (the name may be fixed)."""
    answers = [["93.184.216.34"], ["127.0.0.1"], ["93.184.216.34", "127.0.0.1"]]

    async def rebinding(host: str, port: int) -> list[str]:
        return answers.pop(0)

    url = f"https://rebind.example:{receiver.port}/hook"
    policy = DestinationPolicy()
    await check_destination(url, policy, rebinding)  # at call start: public, accepted
    await enqueue(store, "c-1", url)
    clock = Clock()
    sender = WebhookSender(
        store, "w1", WebhookSettings(), rng=random.Random(1), clock=clock, resolver=rebinding
    )
    for _ in range(2):  # loopback, then a mixed answer
        await sender.run_once()
        pending = await store.load_webhook("c-1:record")
        assert (
            pending is not None
            and pending["last_error"] == "refused: the host resolves to a loopback address"
        )
        clock.now = await store.webhook_due_at("c-1:record") or clock.now
    assert receiver.received == [] and await store.dead_letters() == []
    await sender.aclose()


async def test_delivery_connects_to_the_resolved_address_with_the_original_host(
    store: CallStore, receiver: Receiver
) -> None:
    """The name is resolved by voxray's resolver and the connection made to that address; the
    request still names the original host (httpcore takes Host and SNI from the URL)."""
    url = f"http://hooks.voxray.test:{receiver.port}/hook"  # no DNS knows this name
    await enqueue(store, "c-1", url)
    sender = sender_for(
        store,
        allow=["http://hooks.voxray.test:*"],
        resolver=static_resolver({"hooks.voxray.test": ["127.0.0.1"]}),
    )
    assert await sender.run_once() == 1
    [(headers, _)] = receiver.received
    assert headers["Host"] == f"hooks.voxray.test:{receiver.port}"
    await sender.aclose()


async def test_an_erased_call_takes_its_pending_delivery_with_it(
    store: CallStore, receiver: Receiver
) -> None:
    await enqueue(store, "c-1", receiver.url)
    assert await store.erase_call("c-1")
    assert await store.pending_webhooks() == 0 and await store.load_record("c-1") is None
    sender = sender_for(store)
    assert await sender.run_once() == 0 and receiver.received == []
    await sender.aclose()


async def test_admin_cli_lists_and_replays_dead_letters(
    store: CallStore, receiver: Receiver, redis_url: str, key_prefix: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from actors import webhooks_admin
    from common.settings import VoxraySettings

    receiver.status = 410
    await enqueue(store, "c-1", receiver.url)
    sender = sender_for(store)
    await sender.run_once()
    settings = VoxraySettings(redis_url=redis_url, calls={"key_prefix": key_prefix})  # type: ignore[arg-type]
    assert await webhooks_admin.main(["list"], settings) == 0
    [line] = capsys.readouterr().out.splitlines()
    assert json.loads(line)["id"] == "c-1:record"
    assert await webhooks_admin.main(["replay", "c-1:record"], settings) == 0
    assert await webhooks_admin.main(["replay", "c-1:record"], settings) == 1
    assert await webhooks_admin.main(["pending"], settings) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "1"
    assert await webhooks_admin.main(["secret"], settings) == 0
    assert capsys.readouterr().out.strip() == await store.webhook_secret()
    await sender.aclose()
