"""Who owns which call, and how much a tenant or a key may do.

- Ownership: the tenant of the key that started a call (``<prefix>owner:<call id>``, and the
  tenant's index of calls). Another tenant asking about the call gets 404, as for a call that
  does not exist.
- Rate limits: a token bucket per API key in Redis (one Lua script, so every ingress replica
  shares it) → 429 with ``Retry-After``.
- Quotas: live calls per tenant; a call counts until its route says it ended.
- Idempotency: ``POST /calls`` with an ``Idempotency-Key`` replays the first reply for a day,
  so a client that retries after a timeout never dials twice. The claim names the call id the
  request will use; a claim still without a reply after ``IDEMPOTENCY_LEASE_S`` (its ingress
  replica died mid-request) is taken over by the next retry, which looks that call id up
  instead of leaving the key "in progress" for a day.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis

IDEMPOTENCY_TTL_S = 24 * 3600  # a client retry within a day gets the first reply, never a second call
IDEMPOTENCY_LEASE_S = 120.0  # far longer than a start takes (host timeouts are 30 s)

# KEYS[1] claim; ARGV: the claim as read, the new claim, ttl → 1 when swapped
_TAKE_OVER = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'EX', tonumber(ARGV[3]))
  return 1
end
return 0
"""


@dataclass(frozen=True)
class Abandoned:
    """An earlier request with this key claimed ``call_id`` and died before it replied; this
    request now holds the claim and must find out whether that call was opened."""

    call_id: str


# KEYS[1] bucket; ARGV: rate per s, burst, now → 0 (taken) or seconds until a token is back
_TAKE = """
local rate, burst, now = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or burst
local at = tonumber(state[2]) or now
tokens = math.min(burst, tokens + (now - at) * rate)
local wait = 0
if tokens >= 1 then tokens = tokens - 1 else wait = (1 - tokens) / rate end
redis.call('HSET', KEYS[1], 'tokens', tokens, 'at', now)
redis.call('EXPIRE', KEYS[1], math.ceil(burst / rate) + 1)
return tostring(wait)
"""


class Tenancy:
    def __init__(self, redis_url: str, prefix: str = "voxray:", record_ttl_s: int = 30 * 24 * 3600):
        self.redis: Any = aioredis.Redis.from_url(redis_url)
        self.prefix = prefix
        self.record_ttl_s = record_ttl_s
        self._take = self.redis.register_script(_TAKE)
        self._take_over = self.redis.register_script(_TAKE_OVER)

    def _k(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    async def own(self, call_id: str, tenant: str) -> None:
        pipe = self.redis.pipeline(transaction=True)
        pipe.set(self._k("owner", call_id), tenant, ex=self.record_ttl_s)
        pipe.zadd(self._k("tenant", tenant, "calls"), {call_id: time.time()})
        pipe.zadd(self._k("tenant", tenant, "live"), {call_id: time.time()})
        await pipe.execute()

    async def owner(self, call_id: str) -> str | None:
        raw = await self.redis.get(self._k("owner", call_id))
        return raw.decode() if raw else None

    async def calls_of(self, tenant: str, limit: int = 200) -> list[str]:
        ids = await self.redis.zrevrange(self._k("tenant", tenant, "calls"), 0, limit - 1)
        return [i.decode() for i in ids]

    async def live_of(self, tenant: str) -> list[str]:
        ids = await self.redis.zrange(self._k("tenant", tenant, "live"), 0, -1)
        return [i.decode() for i in ids]

    async def ended(self, tenant: str, call_ids: list[str]) -> None:
        if call_ids:
            await self.redis.zrem(self._k("tenant", tenant, "live"), *call_ids)

    async def forget(self, call_id: str, tenant: str) -> None:
        pipe = self.redis.pipeline(transaction=True)
        pipe.delete(self._k("owner", call_id))
        pipe.zrem(self._k("tenant", tenant, "calls"), call_id)
        pipe.zrem(self._k("tenant", tenant, "live"), call_id)
        await pipe.execute()

    async def idempotent(
        self, tenant: str, key: str, fingerprint: str, call_id: str, now: float | None = None
    ) -> dict[str, Any] | str | Abandoned | None:
        """Claim ``key`` for a request with this body ``fingerprint`` that will open ``call_id``:
        None when this request is the first (go ahead, then ``remember``); the stored reply of
        an earlier one; "in_progress"; ``Abandoned`` (an earlier claim outlived its lease: this
        request holds it now, with the earlier call id); or "mismatch" (another body)."""
        now = time.time() if now is None else now
        slot = self._k("idem", tenant, key)
        claim = json.dumps({"fp": fingerprint, "call_id": call_id, "at": now})
        if await self.redis.set(slot, claim, nx=True, ex=IDEMPOTENCY_TTL_S):
            return None
        raw = await self.redis.get(slot)
        entry = json.loads(raw) if raw else {}
        if entry.get("fp") != fingerprint:
            return "mismatch"
        reply: dict[str, Any] | None = entry.get("reply")
        if reply is not None:
            return reply
        earlier = entry.get("call_id")
        if earlier and now - float(entry.get("at", now)) > IDEMPOTENCY_LEASE_S:
            renewed = json.dumps({**entry, "at": now})
            if await self._take_over(keys=[slot], args=[raw, renewed, IDEMPOTENCY_TTL_S]):
                return Abandoned(str(earlier))
        return "in_progress"

    async def remember(self, tenant: str, key: str, fingerprint: str, reply: dict[str, Any] | None) -> None:
        """Store the reply for retries of ``key``; None forgets the key (the request failed)."""
        slot = self._k("idem", tenant, key)
        if reply is None:
            await self.redis.delete(slot)
        else:
            await self.redis.set(slot, json.dumps({"fp": fingerprint, "reply": reply}), ex=IDEMPOTENCY_TTL_S)

    async def take(self, key_id: str, rate_per_s: float, burst: int) -> float:
        """A request token for ``key_id``: 0.0, or the seconds to wait before one is back."""
        wait = await self._take(keys=[self._k("rate", key_id)], args=[rate_per_s, burst, time.time()])
        return float(wait)

    async def aclose(self) -> None:
        await self.redis.aclose()
