"""Durable call data in Redis: the call directory, fenced snapshots, records and the webhook outbox.

This module is the sole owner of the calls' Redis layout (prefix configurable so tests never
collide):

  {p}call:{id}:route   hash: host, gen, status (live|ended), schema, webhook, created
                       (the call directory: any ingress replica finds a call's host here)
  {p}call:{id}:snap    hash: gen, blob (latest CallState snapshot, written after every turn;
                       deleted when the call ends)
  {p}call:{id}:record  the final call record (JSON, with the transcript), kept ``record_ttl_s``
  {p}calls             sorted set of call ids by start time (for listing), trimmed by age
  {p}webhook:{did}     one webhook delivery (JSON: url, payload, attempts, first try, last error),
                       kept ``record_ttl_s`` like the record it carries
  {p}webhooks:due      sorted set: delivery id → when it is due (epoch seconds)
  {p}webhooks:leased   sorted set: delivery id → when its sender's lease runs out
  {p}webhooks:owner    hash: delivery id → the sender holding its lease
  {p}webhooks:dest     hash: delivery id → scheme://host:port (per-destination limits)
  {p}webhooks:dead     sorted set: dead-lettered delivery id → when it died (listing, replay)
  {p}webhook-secret    the generated Standard Webhooks signing secret (when none is configured)
  {p}stream-secret     the secret stream tokens are derived from (shared by every replica)
  {p}call:{id}:stream  the replica and socket that holds the call's media stream now
  {p}stream-token:{nonce}  a stream token already used (tokens are single-use)
  {p}call:{id}:whisper what the person hears before a warm transfer bridges (PHI; minutes)

Generations fence stale hosts: a failover moves the route to a new host with ``gen + 1`` (a
compare-and-set, so of several replicas that see the same dead host exactly one moves the
call), and a snapshot is only written when its generation is not older than the stored one.

Webhook deliveries are leased, not popped: a sender claims due deliveries (due → leased, with
an expiry), and a claim first returns expired leases to the due set, so deliveries a dead host
had in flight are taken over by any other sender once its lease runs out.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any, Literal

import redis.asyncio as aioredis

SNAPSHOT_TTL_S = 7 * 24 * 3600
RECORD_TTL_S = 30 * 24 * 3600

# KEYS[1] route; ARGV: expected host, expected gen, new host, its actor id → new gen, or 0 if the
# route moved on.
_MOVE_ROUTE = """
local host = redis.call('HGET', KEYS[1], 'host')
local gen = redis.call('HGET', KEYS[1], 'gen')
local status = redis.call('HGET', KEYS[1], 'status')
if (not host) or status ~= 'live' or host ~= ARGV[1] or gen ~= ARGV[2] then return 0 end
local new_gen = tonumber(gen) + 1
redis.call('HSET', KEYS[1], 'host', ARGV[3], 'gen', new_gen, 'actor', ARGV[4])
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


# KEYS: due, leased, owner, dest. ARGV: now, lease until, limit, worker, per-destination limit,
# how many due entries to look at, the delivery key prefix, then (destination, in flight) pairs
# of this sender. Expired leases go back to due first; then up to ``limit`` due deliveries whose
# destination has room are leased to ``worker``. The due ones looked at whose destination is
# full stay due but move behind the rest (score ``now``), so a backlog for one slow receiver
# cannot hold the head of the due set and starve everyone else. → [id, body-or-nil, …]
_CLAIM = """
local now = tonumber(ARGV[1])
local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, 200)
for _, id in ipairs(expired) do
  redis.call('ZREM', KEYS[2], id)
  redis.call('ZADD', KEYS[1], now, id)
end
local used = {}
for i = 8, #ARGV, 2 do used[ARGV[i]] = tonumber(ARGV[i + 1]) end
local limit = tonumber(ARGV[3])
local per = tonumber(ARGV[5])
local out = {}
if limit <= 0 then return out end
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[6]))
local taken = 0
for _, id in ipairs(ids) do
  if taken >= limit then break end
  local dest = redis.call('HGET', KEYS[4], id) or ''
  local n = used[dest] or 0
  if n < per then
    used[dest] = n + 1
    taken = taken + 1
    redis.call('ZREM', KEYS[1], id)
    redis.call('ZADD', KEYS[2], ARGV[2], id)
    redis.call('HSET', KEYS[3], id, ARGV[4])
    table.insert(out, id)
    table.insert(out, redis.call('GET', ARGV[7] .. id))
  else
    redis.call('ZADD', KEYS[1], now, id)
  end
end
return out
"""

# KEYS: due, leased, owner, dest, dead, the delivery. ARGV: id, worker, action (done|retry|dead),
# score (when due again / when it died), the updated delivery, ttl. Only the lease holder
# finishes a delivery: 1 done, 0 the lease was lost (another sender took it over).
_FINISH = """
if redis.call('HGET', KEYS[3], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
redis.call('ZREM', KEYS[1], ARGV[1])
if ARGV[3] == 'done' then
  redis.call('DEL', KEYS[6])
  redis.call('HDEL', KEYS[4], ARGV[1])
elseif redis.call('EXISTS', KEYS[6]) == 0 then
  redis.call('HDEL', KEYS[4], ARGV[1])  -- expired with its record while in flight: nothing to keep
elseif ARGV[3] == 'retry' then
  redis.call('SET', KEYS[6], ARGV[5], 'KEEPTTL')
  redis.call('ZADD', KEYS[1], ARGV[4], ARGV[1])
else
  redis.call('SET', KEYS[6], ARGV[5], 'EX', ARGV[6])
  redis.call('ZADD', KEYS[5], ARGV[4], ARGV[1])
  redis.call('HDEL', KEYS[4], ARGV[1])
end
return 1
"""


class CallIsLive(RuntimeError):
    """The call is still live: hang it up before erasing it."""


def record_delivery_id(call_id: str) -> str:
    """The id of the webhook delivery of a call's record (the ``webhook-id`` receivers dedupe by)."""
    return f"{call_id}:record"


@dataclass(frozen=True)
class Route:
    call_id: str
    host: str
    gen: int
    status: Literal["live", "ended"]
    schema: str
    webhook_url: str | None
    actor: str = ""  # the id of the host actor the route was written for ("" when not known)


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
    def __init__(self, redis_url: str, prefix: str = "voxray:", record_ttl_s: int = RECORD_TTL_S):
        self.redis = aioredis.Redis.from_url(redis_url)
        self.prefix = prefix
        self.record_ttl_s = record_ttl_s
        self._move = self.redis.register_script(_MOVE_ROUTE)
        self._save = self.redis.register_script(_SAVE_SNAPSHOT)
        self._claim_stream = self.redis.register_script(_CLAIM_STREAM)
        self._release_stream = self.redis.register_script(_RELEASE_STREAM)
        self._claim = self.redis.register_script(_CLAIM)
        self._finish = self.redis.register_script(_FINISH)

    def _k(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    # ---- the call directory -----------------------------------------------------------------
    async def open_call(
        self,
        call_id: str,
        host: str,
        schema: str,
        webhook_url: str | None,
        snapshot: bytes,
        actor: str = "",
    ) -> Route:
        """A new call's route and first snapshot (generation 1), in one transaction; ``actor`` is
        the id of the host actor that opened it."""
        key = self._k("call", call_id, "route")
        fields: dict[str, str | int] = {
            "host": host,
            "gen": 1,
            "status": "live",
            "schema": schema,
            "webhook": webhook_url or "",
            "actor": actor,
            "created": repr(time.time()),
        }
        snap = self._k("call", call_id, "snap")
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(key, mapping=fields)  # type: ignore[arg-type]
        pipe.expire(key, SNAPSHOT_TTL_S)
        pipe.hset(snap, mapping={"gen": 1, "blob": snapshot})
        pipe.expire(snap, SNAPSHOT_TTL_S)
        pipe.zadd(self._k("calls"), {call_id: time.time()}, nx=True)
        pipe.zremrangebyscore(self._k("calls"), "-inf", time.time() - self.record_ttl_s)
        await pipe.execute()
        return Route(call_id, host, 1, "live", schema, webhook_url, actor)

    async def route(self, call_id: str) -> Route | None:
        raw: Any = await self.redis.hgetall(self._k("call", call_id, "route"))
        if not raw or b"host" not in raw:
            return None
        data = {k.decode(): v.decode() for k, v in raw.items()}
        status: Literal["live", "ended"] = "ended" if data.get("status") == "ended" else "live"
        webhook, actor = data["webhook"] or None, data.get("actor", "")
        return Route(call_id, data["host"], int(data["gen"]), status, data["schema"], webhook, actor)

    async def live_routes_on(self, host: str, limit: int = 5000) -> list[Route]:
        """Routes of the live calls the directory puts on ``host`` (of the ``limit`` latest calls)."""
        ids: Any = await self.redis.zrevrange(self._k("calls"), 0, limit - 1)
        fields = ("host", "gen", "status", "schema", "webhook", "actor")
        pipe = self.redis.pipeline(transaction=False)
        for raw_id in ids:
            pipe.hmget(self._k("call", raw_id.decode(), "route"), *fields)
        routes = []
        for raw_id, (r_host, gen, status, schema, hook, actor) in zip(ids, await pipe.execute(), strict=True):
            if r_host is not None and r_host.decode() == host and status == b"live":
                webhook, actor_id = hook.decode() or None, actor.decode() if actor else ""
                call_id = raw_id.decode()
                routes.append(Route(call_id, host, int(gen), "live", schema.decode(), webhook, actor_id))
        return routes

    async def move_route(self, route: Route, to_host: str, to_actor: str = "") -> Route | None:
        """Move a live call from ``route.host`` to ``to_host`` (the actor ``to_actor``) if nobody
        moved it since ``route`` was read; returns the new route, or None when another replica
        got there first."""
        key = self._k("call", route.call_id, "route")
        new_gen = int(await self._move(keys=[key], args=[route.host, route.gen, to_host, to_actor]))
        if not new_gen:
            return None
        return Route(route.call_id, to_host, new_gen, "live", route.schema, route.webhook_url, to_actor)

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

    # ---- warm transfers ------------------------------------------------------------------
    async def keep_whisper(self, call_id: str, text: str, ttl_s: int) -> None:
        await self.redis.set(self._k("call", call_id, "whisper"), text.encode(), ex=ttl_s)

    async def whisper(self, call_id: str) -> str | None:
        raw = await self.redis.get(self._k("call", call_id, "whisper"))
        return raw.decode() if isinstance(raw, bytes) else raw

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
        caller keeps the call and can retry. The record, the delivery and the ended route expire
        after ``record_ttl_s``; index entries and dead letters older than that are trimmed."""
        now = time.time()
        ttl = self.record_ttl_s
        route = self._k("call", call_id, "route")
        pipe = self.redis.pipeline(transaction=True)
        pipe.set(self._k("call", call_id, "record"), json.dumps(record), ex=ttl)
        if do_not_call:
            pipe.hset(self._k("dnc"), mapping=_dnc_entries(do_not_call, call_id))  # type: ignore[arg-type]
        if webhook is not None:
            self._enqueue(pipe, webhook, now)
        pipe.hset(route, "status", "ended")
        pipe.expire(route, ttl)
        pipe.delete(self._k("call", call_id, "snap"))
        pipe.zremrangebyscore(self._k("calls"), "-inf", now - ttl)
        pipe.zremrangebyscore(self._k("webhooks", "dead"), "-inf", now - ttl)
        await pipe.execute()

    async def erase_call(self, call_id: str, force: bool = False) -> bool:
        """Delete everything kept about an ended call: record (and its transcript), route,
        snapshot, index entry and webhook deliveries (pending, in flight or dead). Raises
        CallIsLive for a live call unless ``force``; False when nothing was there. The
        do-not-call entries it earned stay: they are digests, kept so the contact is never
        called again."""
        route = await self.route(call_id)
        if route is not None and route.status == "live" and not force:
            raise CallIsLive(f"call {call_id!r} is live; hang it up first")
        did = record_delivery_id(call_id)
        pipe = self.redis.pipeline(transaction=True)
        pipe.delete(
            self._k("call", call_id, "record"),
            self._k("call", call_id, "route"),
            self._k("call", call_id, "snap"),
            self._k("webhook", did),
        )
        pipe.zrem(self._k("calls"), call_id)
        for name in ("due", "leased", "dead"):
            pipe.zrem(self._k("webhooks", name), did)
        for name in ("owner", "dest"):
            pipe.hdel(self._k("webhooks", name), did)
        results = await pipe.execute()
        return any(bool(r) for r in results)

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
    def _enqueue(self, pipe: Any, delivery: dict[str, Any], now: float) -> None:
        did = delivery["id"]
        pipe.set(self._k("webhook", did), json.dumps(delivery), ex=self.record_ttl_s)
        pipe.hset(self._k("webhooks", "dest"), did, delivery.get("dest", ""))
        pipe.zadd(self._k("webhooks", "due"), {did: now})

    async def claim_webhooks(
        self,
        worker: str,
        limit: int,
        lease_s: float,
        per_destination: int,
        busy: dict[str, int] | None = None,
        now: float | None = None,
    ) -> list[tuple[str, dict[str, Any] | None]]:
        """Lease up to ``limit`` due deliveries to ``worker`` for ``lease_s``, at most
        ``per_destination`` in flight per destination counting ``busy`` (what this worker already
        has in flight). Expired leases of any worker are due again first. Due deliveries looked
        at whose destination is full move behind the rest (still due). A delivery
        whose data expired or was erased comes back as None (finish it as done)."""
        now = time.time() if now is None else now
        pairs = [x for dest, n in (busy or {}).items() for x in (dest, n)]
        raw: Any = await self._claim(
            keys=[self._k("webhooks", n) for n in ("due", "leased", "owner", "dest")],
            args=[
                now,
                now + lease_s,
                limit,
                worker,
                per_destination,
                max(4 * limit, 200),
                self._k("webhook", ""),
                *pairs,
            ],
        )
        out: list[tuple[str, dict[str, Any] | None]] = []
        for i in range(0, len(raw), 2):
            did = raw[i].decode()
            out.append((did, json.loads(raw[i + 1]) if raw[i + 1] else None))
        return out

    async def finish_webhook(
        self,
        worker: str,
        delivery_id: str,
        action: Literal["done", "retry", "dead"],
        delivery: dict[str, Any] | None = None,
        at: float = 0.0,
    ) -> bool:
        """End ``worker``'s lease of a delivery: ``done`` drops it, ``retry`` stores ``delivery``
        and makes it due at ``at``, ``dead`` stores it as a dead letter (dead at ``at``). False
        when the lease was lost (it ran out and another sender took the delivery over)."""
        keys = [self._k("webhooks", n) for n in ("due", "leased", "owner", "dest", "dead")]
        keys.append(self._k("webhook", delivery_id))
        body = json.dumps(delivery) if delivery is not None else ""
        done = await self._finish(keys=keys, args=[delivery_id, worker, action, at, body, self.record_ttl_s])
        return bool(done)

    async def pending_webhooks(self) -> int:
        """Deliveries due or in flight (not dead)."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.zcard(self._k("webhooks", "due"))
        pipe.zcard(self._k("webhooks", "leased"))
        due, leased = await pipe.execute()
        return int(due) + int(leased)

    async def webhook_due_at(self, delivery_id: str) -> float | None:
        score: Any = await self.redis.zscore(self._k("webhooks", "due"), delivery_id)
        return float(score) if score is not None else None

    async def load_webhook(self, delivery_id: str) -> dict[str, Any] | None:
        raw = await self.redis.get(self._k("webhook", delivery_id))
        return json.loads(raw) if raw else None

    async def dead_letters(self, limit: int = 100) -> list[dict[str, Any]]:
        """Dead-lettered deliveries, newest first: id, call, destination, attempts, last error and
        when it died (without the payload)."""
        dead = self._k("webhooks", "dead")
        await self.redis.zremrangebyscore(dead, "-inf", time.time() - self.record_ttl_s)
        rows: Any = await self.redis.zrevrange(dead, 0, limit - 1, withscores=True)
        if not rows:
            return []
        bodies: list[Any] = await self.redis.mget([self._k("webhook", did.decode()) for did, _ in rows])
        out = []
        for (did, died), raw in zip(rows, bodies, strict=True):
            if raw is None:  # expired with its record, or erased
                await self.redis.zrem(dead, did)
                continue
            d = json.loads(raw)
            out.append(
                {
                    "id": did.decode(),
                    "call_id": d.get("call_id"),
                    "type": d.get("type"),
                    "destination": d.get("dest"),
                    "attempts": d.get("attempts", 0),
                    "first_at": d.get("first_at"),
                    "dead_at": died,
                    "last_error": d.get("last_error"),
                }
            )
        return out

    async def replay_dead_letter(self, delivery_id: str, now: float | None = None) -> bool:
        """Put a dead-lettered delivery back in the outbox, due now, with a fresh retry window
        (attempts start again). False if there is no such dead letter."""
        now = time.time() if now is None else now
        dead = self._k("webhooks", "dead")
        raw = await self.redis.get(self._k("webhook", delivery_id))
        if raw is None or await self.redis.zscore(dead, delivery_id) is None:
            return False
        delivery = json.loads(raw)
        delivery.update(attempts=0, first_at=now, replays=int(delivery.get("replays", 0)) + 1)
        pipe = self.redis.pipeline(transaction=True)
        pipe.zrem(dead, delivery_id)
        self._enqueue(pipe, delivery, now)
        await pipe.execute()
        return True

    async def webhook_secret(self) -> str:
        """The generated Standard Webhooks secret (``whsec_`` + base64 of 32 bytes), created once
        and kept, shared by every sender."""
        key = self._k("webhook-secret")
        fresh = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
        await self.redis.set(key, fresh, nx=True)
        secret: bytes = await self.redis.get(key)  # type: ignore[assignment]
        return secret.decode()

    async def aclose(self) -> None:
        await self.redis.aclose()
