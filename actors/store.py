"""Durable call data in Redis: per-turn snapshots, call records and the webhook outbox.

Keys (prefix configurable so tests never collide):
  {p}call:{id}:snap    latest CallState snapshot (written after every turn)
  {p}call:{id}:host    which call host runs the call
  {p}call:{id}:record  the final call record (JSON), kept after hang-up
  {p}calls             sorted set of call ids by start time (for listing)
  {p}webhooks          outbox list of pending webhook deliveries (JSON)
"""

from __future__ import annotations

import json
import time
from typing import Any

import redis.asyncio as aioredis

SNAPSHOT_TTL_S = 7 * 24 * 3600


class CallStore:
    def __init__(self, redis_url: str, prefix: str = "voxray:"):
        self.redis = aioredis.Redis.from_url(redis_url)
        self.prefix = prefix

    def _k(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    async def save_snapshot(self, call_id: str, blob: bytes, host: str | None = None) -> None:
        pipe = self.redis.pipeline(transaction=False)
        pipe.set(self._k("call", call_id, "snap"), blob, ex=SNAPSHOT_TTL_S)
        if host is not None:
            pipe.set(self._k("call", call_id, "host"), host, ex=SNAPSHOT_TTL_S)
            pipe.zadd(self._k("calls"), {call_id: time.time()}, nx=True)
        await pipe.execute()

    async def load_snapshot(self, call_id: str) -> bytes | None:
        blob: bytes | None = await self.redis.get(self._k("call", call_id, "snap"))
        return blob

    async def host_of(self, call_id: str) -> str | None:
        host = await self.redis.get(self._k("call", call_id, "host"))
        return host.decode() if host else None

    async def save_record(self, call_id: str, record: dict[str, Any]) -> None:
        await self.redis.set(self._k("call", call_id, "record"), json.dumps(record))

    async def load_record(self, call_id: str) -> dict[str, Any] | None:
        raw = await self.redis.get(self._k("call", call_id, "record"))
        return json.loads(raw) if raw else None

    async def list_calls(self, limit: int = 100) -> list[str]:
        ids = await self.redis.zrevrange(self._k("calls"), 0, limit - 1)
        return [i.decode() for i in ids]

    async def enqueue_webhook(self, delivery: dict[str, Any]) -> None:
        await self.redis.rpush(self._k("webhooks"), json.dumps(delivery))

    async def claim_webhook(self, worker: str) -> tuple[bytes, dict[str, Any]] | None:
        """Move the oldest pending delivery to this worker's in-flight list (at-least-once)."""
        raw = await self.redis.lmove(
            self._k("webhooks"), self._k("webhooks", "inflight", worker), "LEFT", "RIGHT"
        )
        return (raw, json.loads(raw)) if raw else None

    async def finish_webhook(self, worker: str, raw: bytes, retry: dict[str, Any] | None = None) -> None:
        """Drop a claimed delivery; with ``retry`` put the updated delivery back at the end of the outbox."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.lrem(self._k("webhooks", "inflight", worker), 1, raw)
        if retry is not None:
            pipe.rpush(self._k("webhooks"), json.dumps(retry))
        await pipe.execute()

    async def requeue_inflight(self, worker: str) -> int:
        """On start: deliveries a previous run of this worker claimed but never finished go back."""
        moved = 0
        while await self.redis.lmove(
            self._k("webhooks", "inflight", worker), self._k("webhooks"), "LEFT", "LEFT"
        ):
            moved += 1
        return moved

    async def pending_webhooks(self) -> int:
        count: int = await self.redis.llen(self._k("webhooks"))
        return count

    async def aclose(self) -> None:
        await self.redis.aclose()
