"""Webhook delivery from the Redis outbox: headers, backoff, dead letters, in-flight requeue.

A real Redis and a real HTTP receiver (aiohttp in this process); time comes from the outbox's
own ``next_at`` fields, so no test waits on a backoff.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from actors.store import CallStore
from actors.webhooks import WebhookSender

RECORD = {"call_id": "c-1", "outcome": "status_captured"}


class Receiver:
    def __init__(self) -> None:
        self.status = 200
        self.received: list[tuple[dict[str, str], dict[str, Any]]] = []
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.received.append((dict(request.headers), await request.json()))
        return web.Response(status=self.status)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hook", self.handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}/hook"


@pytest.fixture
async def setup(redis_url: str, key_prefix: str) -> AsyncIterator[tuple[CallStore, Receiver]]:
    store = CallStore(redis_url, key_prefix)
    receiver = Receiver()
    await receiver.start()
    yield store, receiver
    assert receiver.runner is not None
    await receiver.runner.cleanup()
    async for key in store.redis.scan_iter(match=f"{key_prefix}*"):
        await store.redis.delete(key)
    await store.aclose()


async def outbox(store: CallStore, name: str = "webhooks") -> list[dict[str, Any]]:
    return [json.loads(raw) for raw in await store.redis.lrange(store._k(name), 0, -1)]


async def test_record_is_posted_with_its_idempotency_key(setup: tuple[CallStore, Receiver]) -> None:
    store, receiver = setup
    await store.end_call("c-1", RECORD, WebhookSender.delivery("c-1", receiver.url, RECORD))
    sender = WebhookSender(store, worker="w1")
    assert await sender.deliver_due() == 1
    [(headers, body)] = receiver.received
    assert headers["Idempotency-Key"] == "c-1:record" and body == RECORD
    assert await store.pending_webhooks() == 0
    await sender.aclose()


async def test_a_failing_receiver_gets_backoff_then_the_delivery_is_dead_lettered(
    setup: tuple[CallStore, Receiver],
) -> None:
    store, receiver = setup
    receiver.status = 503
    await store.end_call("c-1", RECORD, WebhookSender.delivery("c-1", receiver.url, RECORD))
    sender = WebhookSender(store, worker="w1", max_attempts=3, base_delay_s=10.0)
    assert await sender.deliver_due() == 0
    [pending] = await outbox(store)
    assert pending["attempts"] == 1 and pending["next_at"] > 0  # retried no sooner than 10 s
    assert await sender.deliver_due() == 0 and len(receiver.received) == 1  # not due yet: not posted
    for attempt in (2, 3):
        pending = (await outbox(store))[0]
        await store.redis.delete(store._k("webhooks"))
        await store.redis.rpush(store._k("webhooks"), json.dumps({**pending, "next_at": 0.0}))
        await sender.deliver_due()
        assert len(receiver.received) == attempt
    assert await outbox(store) == [] and len(await outbox(store, "webhooks:dead")) == 1
    assert sender.failed_attempts == 3
    await sender.aclose()


async def test_a_delivery_claimed_by_a_worker_that_died_is_requeued(
    setup: tuple[CallStore, Receiver],
) -> None:
    store, receiver = setup
    await store.end_call("c-1", RECORD, WebhookSender.delivery("c-1", receiver.url, RECORD))
    claimed = await store.claim_webhook("w1")  # ... and the worker dies before finishing it
    assert claimed is not None and await store.pending_webhooks() == 0
    assert await store.requeue_inflight("w1") == 1  # the replacement worker, on start
    sender = WebhookSender(store, worker="w1")
    assert await sender.deliver_due() == 1 and len(receiver.received) == 1
    await sender.aclose()
