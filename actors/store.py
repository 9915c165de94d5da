"""Durable call data in Redis: the call directory, fenced snapshots, records and the webhook outbox.

This module is the sole owner of the calls' Redis layout (prefix configurable so tests never
collide):

  {p}call:{id}:route   hash: host, gen, status (live|ended), schema, webhook, created
                       (the call directory: any ingress replica finds a call's host here)
  {p}call:{id}:snap    hash: gen, blob (latest CallState snapshot, written after every turn)
  {p}call:{id}:record  the final call record (JSON), kept after hang-up
  {p}calls             sorted set of call ids by start time (for listing)
  {p}webhooks          outbox list of pending webhook deliveries (JSON)
  {p}webhooks:inflight:{worker} / {p}webhooks:dead
  {p}stream-secret     the secret stream tokens are derived from (shared by every replica)
  {p}call:{id}:stream  the replica and socket that holds the call's media stream now
  {p}stream-token:{nonce}  a stream token already used (tokens are single-use)

Generations fence stale hosts: a failover moves the route to a new host with ``gen + 1`` (a
compare-and-set, so of several replicas that see the same dead host exactly one moves the
call), and a snapshot is only written when its generation is not older than the stored one.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass
from typing import Any, Literal

import redis.asyncio as aioredis

SNAPSHOT_TTL_S = 7 * 24 * 3600

# KEYS[1] route; ARGV: expected host, expected gen, new host → new gen, or 0 if the route moved on.
_MOVE_ROUTE = """
local host = redis.call('HGET', KEYS[1], 'host')
local gen = redis.call('HGET', KEYS[1], 'gen')
local status = redis.call('HGET', KEYS[1], 'status')
if (not host) or status ~= 'live' or host ~= ARGV[1] or gen ~= ARGV[2] then return 0 end
local new_gen = tonumber(gen) + 1
redis.call('HSET', KEYS[1], 'host', ARGV[3], 'gen', new_gen)
return new_gen
"""

# KEYS[1] snapshot; ARGV: gen, blob, ttl → 1 written, 0 refused (a newer generation is stored).
_SAVE_SNAPSHOT = """
local stored = redis.call('HGET', KEYS[1], 'gen')
if stored and tonumber(stored) > tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'gen', ARGV[1], 'blob', ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return 1
"""


@dataclass(frozen=True)
class Route:
    call_id: str
    host: str
    gen: int
    status: Literal["live", "ended"]
    schema: str
    webhook_url: str | None


def _dnc_entries(keys: list[str], call_id: str) -> dict[str, str]:
    entry = json.dumps({"call_id": call_id, "at": time.time()})
    return dict.fromkeys(keys, entry)


# KEYS: route, used-token key, stream key; ARGV: owner, ttl → ok | ended | reused | busy.
# One script, so of two replicas that see the same token (or two tokens of one call) one wins.
_CLAIM_STREAM = """
if redis.call('HGET', KEYS[1], 'status') ~= 'live' then return 'ended' end
if redis.call('EXISTS', KEYS[2]) == 1 then return 'reused' end
if not redis.call('SET', KEYS[3], ARGV[1], 'NX', 'EX', ARGV[2]) then return 'busy' end
redis.call('SET', KEYS[2], ARGV[1], 'EX', ARGV[2])
return 'ok'
"""

# KEYS[1] stream key; ARGV[1] owner → 1 released, 0 held by someone else (or by nobody).
_RELEASE_STREAM = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

StreamClaim = Literal["ok", "ended", "reused", "busy"]


class CallStore:
    def __init__(self, redis_url: str, prefix: str = "voxray:"):
        self.redis = aioredis.Redis.from_url(redis_url)
        self.prefix = prefix
        self._move = self.redis.register_script(_MOVE_ROUTE)
        self._save = self.redis.register_script(_SAVE_SNAPSHOT)
        self._claim_stream = self.redis.register_script(_CLAIM_STREAM)
        self._release_stream = self.redis.register_script(_RELEASE_STREAM)

    def _k(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    # ---- the call directory -----------------------------------------------------------------
    async def open_call(
        self, call_id: str, host: str, schema: str, webhook_url: str | None, snapshot: bytes
    ) -> Route:
        """A new call's route and first snapshot (generation 1), in one transaction."""
        key = self._k("call", call_id, "route")
        fields: dict[str, str | int] = {
            "host": host,
            "gen": 1,
            "status": "live",
            "schema": schema,
            "webhook": webhook_url or "",
            "created": repr(time.time()),
        }
        snap = self._k("call", call_id, "snap")
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(key, mapping=fields)  # type: ignore[arg-type]
        pipe.expire(key, SNAPSHOT_TTL_S)
        pipe.hset(snap, mapping={"gen": 1, "blob": snapshot})
        pipe.expire(snap, SNAPSHOT_TTL_S)
        pipe.zadd(self._k("calls"), {call_id: time.time()}, nx=True)
        await pipe.execute()
        return Route(call_id, host, 1, "live", schema, webhook_url)

    async def route(self, call_id: str) -> Route | None:
        raw: Any = await self.redis.hgetall(self._k("call", call_id, "route"))
        if not raw or b"host" not in raw:
            return None
        data = {k.decode(): v.decode() for k, v in raw.items()}
        status: Literal["live", "ended"] = "ended" if data.get("status") == "ended" else "live"
        return Route(call_id, data["host"], int(data["gen"]), status, data["schema"], data["webhook"] or None)

    async def move_route(self, route: Route, to_host: str) -> Route | None:
        """Move a live call from ``route.host`` to ``to_host`` if nobody moved it since ``route``
        was read; returns the new route, or None when another replica got there first."""
        key = self._k("call", route.call_id, "route")
        new_gen = int(await self._move(keys=[key], args=[route.host, route.gen, to_host]))
        if not new_gen:
            return None
        return Route(route.call_id, to_host, new_gen, "live", route.schema, route.webhook_url)

    async def stream_secret(self) -> bytes:
        """The shared secret stream tokens are derived from (created once, kept)."""
        key = self._k("stream-secret")
        await self.redis.set(key, secrets.token_hex(32), nx=True)
        secret: bytes = await self.redis.get(key)  # type: ignore[assignment]
        return secret

    # ---- the media stream ----------------------------------------------------------------
    async def claim_stream(self, call_id: str, nonce: str, owner: str) -> StreamClaim:
        """Use a stream token (``nonce`` names it) and take the call's stream for ``owner``, in
        one step: ``ended`` when the call is not live, ``reused`` when the token was used
        before, ``busy`` when another socket holds the stream; ``ok`` consumed the token."""
        keys = [
            self._k("call", call_id, "route"),
            self._k("stream-token", nonce),
            self._k("call", call_id, "stream"),
        ]
        result = await self._claim_stream(keys=keys, args=[owner, SNAPSHOT_TTL_S])
        claim = result.decode() if isinstance(result, bytes) else str(result)
        return claim  # type: ignore[return-value]

    async def release_stream(self, call_id: str, owner: str) -> bool:
        """Free the call's stream if ``owner`` still holds it (its token stays used)."""
        return bool(await self._release_stream(keys=[self._k("call", call_id, "stream")], args=[owner]))

    # ---- snapshots -----------------------------------------------------------------------
    async def save_snapshot(self, call_id: str, gen: int, blob: bytes) -> bool:
        """Write the call's snapshot unless a newer generation (a host the call failed over to)
        already wrote one; False means this host no longer owns the call."""
        written = await self._save(keys=[self._k("call", call_id, "snap")], args=[gen, blob, SNAPSHOT_TTL_S])
        return bool(written)

    async def load_snapshot(self, call_id: str) -> tuple[int, bytes] | None:
        row: Any = await self.redis.hmget(self._k("call", call_id, "snap"), ["gen", "blob"])
        gen, blob = row
        if blob is None:
            return None
        return int(gen or 0), bytes(blob)

    # ---- the end of a call ------------------------------------------------------------------
    async def end_call(
        self,
        call_id: str,
        record: dict[str, Any],
        webhook: dict[str, Any] | None,
        do_not_call: list[str] | None = None,
    ) -> None:
        """One transaction: the record, the webhook delivery, the do-not-call entries the call
        earned, the route marked ended and the snapshot deleted. Raises on a Redis error, so the
        caller keeps the call and can retry."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.set(self._k("call", call_id, "record"), json.dumps(record))
        if do_not_call:
            pipe.hset(self._k("dnc"), mapping=_dnc_entries(do_not_call, call_id))  # type: ignore[arg-type]
        if webhook is not None:
            pipe.rpush(self._k("webhooks"), json.dumps(webhook))
        pipe.hset(self._k("call", call_id, "route"), "status", "ended")
        pipe.delete(self._k("call", call_id, "snap"))
        await pipe.execute()

    # ---- the do-not-call list ------------------------------------------------------------
    async def add_do_not_call(self, keys: list[str], call_id: str) -> None:
        """Keep ``keys`` (engine/do_not_call.py) on the list, for good."""
        if keys:
            await self.redis.hset(self._k("dnc"), mapping=_dnc_entries(keys, call_id))  # type: ignore[arg-type]

    async def do_not_call(self, keys: list[str]) -> dict[str, Any] | None:
        """The entry (call id, when) of the first of ``keys`` on the list, or None."""
        if not keys:
            return None
        rows: list[Any] = await self.redis.hmget(self._k("dnc"), keys)
        found = next((row for row in rows if row), None)
        return json.loads(found) if found else None

    async def load_record(self, call_id: str) -> dict[str, Any] | None:
        raw = await self.redis.get(self._k("call", call_id, "record"))
        return json.loads(raw) if raw else None

    async def list_calls(self, limit: int = 100) -> list[str]:
        ids: Any = await self.redis.zrevrange(self._k("calls"), 0, limit - 1)
        return [i.decode() for i in ids]

    # ---- the webhook outbox -----------------------------------------------------------------
    async def claim_webhook(self, worker: str) -> tuple[bytes, dict[str, Any]] | None:
        """Move the oldest pending delivery to this worker's in-flight list (at-least-once)."""
        raw: Any = await self.redis.lmove(
            self._k("webhooks"), self._k("webhooks", "inflight", worker), "LEFT", "RIGHT"
        )
        return (raw, json.loads(raw)) if raw else None

    async def finish_webhook(
        self, worker: str, raw: bytes, retry: dict[str, Any] | None = None, dead: bool = False
    ) -> None:
        """Drop a claimed delivery; with ``retry`` put the updated delivery back at the end of the
        outbox; with ``dead`` move it to the dead letters."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.lrem(self._k("webhooks", "inflight", worker), 1, raw)  # type: ignore[arg-type]
        if retry is not None:
            pipe.rpush(self._k("webhooks"), json.dumps(retry))
        if dead:
            pipe.rpush(self._k("webhooks", "dead"), raw)
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
