"""Campaigns in Redis. This module is the sole owner of their layout ({p} = the key prefix):

  {p}campaign:{id}:spec      JSON CampaignSpec (no row data)
  {p}campaign:{id}:meta      hash: status, spent_usd, last_dial_at, key (the runner's API key for
                             this campaign's tenant, revoked when it finishes), invalid, finished_at
  {p}campaign:{id}:rows      hash: row number → Row JSON (state, attempt, call id, outcome …)
  {p}campaign:{id}:data      hash: row number → {"call_data", "to"} (deleted when it finishes)
  {p}campaign:{id}:due       sorted set: queued row → when it is due (epoch seconds)
  {p}campaign:{id}:dialling  sorted set: claimed row → when it was claimed
  {p}campaign:{id}:attempts  hash: "row:attempt" → JSON (call id, started, result, end reason,
                             cost, error): every dial ever started, the failed starts included
  {p}campaign:{id}:errors    JSON list of the rows refused at creation (row, field, message)
  {p}campaigns:active        set of campaign ids the runner looks at
  {p}tenant:{t}:campaigns    sorted set of the tenant's campaign ids by creation time
  {p}campaigns:runner        the runner lease: the holder's id, with a TTL

A row moves ``queued → dialling`` in one script that also bumps its attempt number, checks the
runner's lease, the campaign's status and its pacing: of two claimers (or a runner and its
restarted self) exactly one gets a row, and every later write of that attempt is a
compare-and-set on (state, attempt), so a stale writer changes nothing.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis

from actors.campaigns.models import CampaignSpec, CampaignStatus, Row, RowState

# KEYS: meta, due, dialling, rows, lease; ARGV: now, max concurrent, spacing s, runner id
# → {1, row, attempt, previous last_dial_at} | {0} nothing due | {-1} not the lease holder
#   | {-2} not running | {-3} lines full | {-4, next allowed} pacing
_CLAIM = """
if ARGV[4] ~= '' and redis.call('GET', KEYS[5]) ~= ARGV[4] then return {-1} end
if redis.call('HGET', KEYS[1], 'status') ~= 'running' then return {-2} end
if redis.call('ZCARD', KEYS[3]) >= tonumber(ARGV[2]) then return {-3} end
local now = tonumber(ARGV[1])
local last = redis.call('HGET', KEYS[1], 'last_dial_at') or '0'
local allowed = tonumber(last) + tonumber(ARGV[3])
if tonumber(last) > 0 and now < allowed then return {-4, tostring(allowed)} end
local ids = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1], 'LIMIT', 0, 1)
if #ids == 0 then return {0} end
local n = ids[1]
redis.call('ZREM', KEYS[2], n)
local raw = redis.call('HGET', KEYS[4], n)
if not raw then return {-5} end
local row = cjson.decode(raw)
if row['state'] ~= 'queued' then return {-5} end
row['state'] = 'dialling'
row['attempt'] = row['attempt'] + 1
row['call_id'] = cjson.null
redis.call('HSET', KEYS[4], n, cjson.encode(row))
redis.call('ZADD', KEYS[3], now, n)
redis.call('HSET', KEYS[1], 'last_dial_at', ARGV[1])
return {1, n, row['attempt'], last}
"""

# KEYS: rows, dialling, due, meta, attempts; ARGV: row, attempt, new row JSON, due (or ''),
# cost, attempt key, attempt JSON (or ''), restore last_dial_at from, to (or '')
_SETTLE = """
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then return 0 end
local row = cjson.decode(raw)
if row['state'] ~= 'dialling' or row['attempt'] ~= tonumber(ARGV[2]) then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
redis.call('ZREM', KEYS[2], ARGV[1])
if ARGV[4] ~= '' then redis.call('ZADD', KEYS[3], ARGV[4], ARGV[1]) end
if tonumber(ARGV[5]) > 0 then redis.call('HINCRBYFLOAT', KEYS[4], 'spent_usd', ARGV[5]) end
if ARGV[7] ~= '' then redis.call('HSET', KEYS[5], ARGV[6], ARGV[7]) end
if ARGV[9] ~= '' and redis.call('HGET', KEYS[4], 'last_dial_at') == ARGV[8] then
  redis.call('HSET', KEYS[4], 'last_dial_at', ARGV[9])
end
return 1
"""

# KEYS: rows, attempts; ARGV: row, attempt, call id, attempt key, attempt JSON
_STARTED = """
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then return 0 end
local row = cjson.decode(raw)
if row['state'] ~= 'dialling' or row['attempt'] ~= tonumber(ARGV[2]) then return 0 end
row['call_id'] = ARGV[3]
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(row))
redis.call('HSET', KEYS[2], ARGV[4], ARGV[5])
return 1
"""

# KEYS[1] lease; ARGV: holder, ttl ms → 1 held (taken or renewed), 0 someone else holds it
_LEASE = """
local holder = redis.call('GET', KEYS[1])
if holder == false then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
if holder == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end
return 0
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

# KEYS: meta; ARGV: from status, to status → 1 changed, 0 not in ``from``
_STATUS = """
local now = redis.call('HGET', KEYS[1], 'status')
for s in string.gmatch(ARGV[1], '[^,]+') do
  if now == s then redis.call('HSET', KEYS[1], 'status', ARGV[2]) return 1 end
end
return 0
"""


@dataclass(frozen=True)
class Claim:
    row: int
    attempt: int
    claimed_at: float
    previous_dial_at: str  # the pacing mark before this claim, restored if nothing is dialled


@dataclass(frozen=True)
class NoClaim:
    why: str  # nothing_due | not_holder | not_running | lines_full | pacing | raced
    retry_at: float | None = None


_NO_CLAIM = {
    0: "nothing_due",
    -1: "not_holder",
    -2: "not_running",
    -3: "lines_full",
    -4: "pacing",
    -5: "raced",
}


class CampaignStore:
    def __init__(self, redis_url: str, prefix: str = "voxray:", retention_s: int = 30 * 24 * 3600):
        self.redis: Any = aioredis.Redis.from_url(redis_url)
        self.prefix = prefix
        self.retention_s = retention_s
        self._claim = self.redis.register_script(_CLAIM)
        self._settle = self.redis.register_script(_SETTLE)
        self._started = self.redis.register_script(_STARTED)
        self._lease = self.redis.register_script(_LEASE)
        self._release = self.redis.register_script(_RELEASE)
        self._status = self.redis.register_script(_STATUS)

    def _k(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    def _c(self, campaign_id: str, part: str) -> str:
        return self._k("campaign", campaign_id, part)

    # ---- creation and reading --------------------------------------------------------------
    async def create(
        self,
        spec: CampaignSpec,
        rows: dict[int, dict[str, Any]],
        due: dict[int, float],
        errors: list[dict[str, Any]],
        api_key: str | None = None,
    ) -> None:
        """A new campaign, running: ``rows`` maps row number → {"call_data", "to"}; ``due``
        when each row may first be dialled."""
        cid = spec.campaign_id
        pipe = self.redis.pipeline(transaction=True)
        pipe.set(self._c(cid, "spec"), spec.model_dump_json())
        meta: dict[str, str] = {
            "status": "running",
            "spent_usd": "0",
            "last_dial_at": "0",
            "invalid": str(len({e["row"] for e in errors})),
        }
        if api_key:
            meta["key"] = api_key
        pipe.hset(self._c(cid, "meta"), mapping=meta)
        if rows:
            pipe.hset(self._c(cid, "data"), mapping={str(n): json.dumps(r) for n, r in rows.items()})
            states = {str(n): Row(due_at=due[n]).model_dump_json() for n in rows}
            pipe.hset(self._c(cid, "rows"), mapping=states)
            pipe.zadd(self._c(cid, "due"), {str(n): due[n] for n in rows})
        pipe.set(self._c(cid, "errors"), json.dumps(errors))
        pipe.sadd(self._k("campaigns", "active"), cid)
        pipe.zadd(self._k("tenant", spec.tenant, "campaigns"), {cid: spec.created_at})
        await pipe.execute()

    async def spec(self, campaign_id: str) -> CampaignSpec | None:
        raw = await self.redis.get(self._c(campaign_id, "spec"))
        return CampaignSpec.model_validate_json(raw) if raw else None

    async def meta(self, campaign_id: str) -> dict[str, str]:
        raw: dict[bytes, bytes] = await self.redis.hgetall(self._c(campaign_id, "meta"))
        return {k.decode(): v.decode() for k, v in raw.items()}

    async def status(self, campaign_id: str) -> CampaignStatus | None:
        raw = await self.redis.hget(self._c(campaign_id, "meta"), "status")
        return raw.decode() if raw else None

    async def rows(self, campaign_id: str) -> dict[int, Row]:
        raw: dict[bytes, bytes] = await self.redis.hgetall(self._c(campaign_id, "rows"))
        return {int(n): Row.model_validate_json(v) for n, v in raw.items()}

    async def row(self, campaign_id: str, n: int) -> Row | None:
        raw = await self.redis.hget(self._c(campaign_id, "rows"), str(n))
        return Row.model_validate_json(raw) if raw else None

    async def row_data(self, campaign_id: str, n: int) -> dict[str, Any] | None:
        raw = await self.redis.hget(self._c(campaign_id, "data"), str(n))
        return json.loads(raw) if raw else None

    async def attempts(self, campaign_id: str) -> dict[str, dict[str, Any]]:
        raw: dict[bytes, bytes] = await self.redis.hgetall(self._c(campaign_id, "attempts"))
        return {k.decode(): json.loads(v) for k, v in raw.items()}

    async def errors(self, campaign_id: str) -> list[dict[str, Any]]:
        raw = await self.redis.get(self._c(campaign_id, "errors"))
        return json.loads(raw) if raw else []

    async def dialling(self, campaign_id: str) -> list[int]:
        return [int(n) for n in await self.redis.zrange(self._c(campaign_id, "dialling"), 0, -1)]

    async def queued(self, campaign_id: str) -> int:
        return int(await self.redis.zcard(self._c(campaign_id, "due")))

    async def next_due(self, campaign_id: str) -> float | None:
        first = await self.redis.zrange(self._c(campaign_id, "due"), 0, 0, withscores=True)
        return float(first[0][1]) if first else None

    async def active(self) -> list[str]:
        return sorted(m.decode() for m in await self.redis.smembers(self._k("campaigns", "active")))

    async def of_tenant(self, tenant: str, limit: int = 100) -> list[str]:
        ids = await self.redis.zrevrange(self._k("tenant", tenant, "campaigns"), 0, limit - 1)
        return [i.decode() for i in ids]

    # ---- the dialler's moves ----------------------------------------------------------------
    async def claim(
        self,
        campaign_id: str,
        max_concurrent: int,
        spacing_s: float,
        runner: str = "",
        now: float | None = None,
    ) -> Claim | NoClaim:
        at = time.time() if now is None else now
        keys = [self._c(campaign_id, p) for p in ("meta", "due", "dialling", "rows")]
        keys.append(self._k("campaigns", "runner"))
        out: list[Any] = await self._claim(
            keys=keys, args=[repr(at), max_concurrent, repr(spacing_s), runner]
        )
        code = int(out[0])
        if code == 1:
            previous = out[3].decode() if isinstance(out[3], bytes) else str(out[3])
            return Claim(int(out[1]), int(out[2]), at, previous)
        retry = float(out[1]) if code == -4 else None
        return NoClaim(_NO_CLAIM.get(code, "raced"), retry)

    async def started(
        self, campaign_id: str, n: int, attempt: int, call_id: str, note: dict[str, Any]
    ) -> bool:
        keys = [self._c(campaign_id, "rows"), self._c(campaign_id, "attempts")]
        args: list[str | int] = [
            str(n),
            attempt,
            call_id,
            f"{n}:{attempt}",
            json.dumps({**note, "call_id": call_id}),
        ]
        return bool(await self._started(keys=keys, args=args))

    async def settle(
        self,
        campaign_id: str,
        n: int,
        attempt: int,
        row: Row,
        due_at: float | None = None,
        cost_usd: float = 0.0,
        attempt_note: dict[str, Any] | None = None,
        undo_pacing: Claim | None = None,
    ) -> bool:
        """The attempt's end (a compare-and-set on state and attempt): the row's new state, back
        in the due set when ``due_at``; its cost; the attempt's record; with ``undo_pacing`` (a
        claim that dialled nothing) the pacing mark goes back to before that claim."""
        keys = [self._c(campaign_id, p) for p in ("rows", "dialling", "due", "meta", "attempts")]
        args: list[str | int] = [
            str(n),
            attempt,
            row.model_dump_json(),
            repr(due_at) if due_at is not None else "",
            repr(cost_usd),
            f"{n}:{attempt}",
            json.dumps(attempt_note) if attempt_note is not None else "",
            repr(undo_pacing.claimed_at) if undo_pacing else "",
            undo_pacing.previous_dial_at if undo_pacing else "",
        ]
        return bool(await self._settle(keys=keys, args=args))

    async def set_status(self, campaign_id: str, allowed_from: tuple[str, ...], to: CampaignStatus) -> bool:
        return bool(
            await self._status(keys=[self._c(campaign_id, "meta")], args=[",".join(allowed_from), to])
        )

    async def cancel_queued(self, campaign_id: str) -> int:
        """Every queued row → skipped (cancelled); rows whose call is live finish as they end."""
        members = await self.redis.zrange(self._c(campaign_id, "due"), 0, -1)
        skipped = 0
        for raw in members:
            n = int(raw)
            async with self.redis.pipeline(transaction=True) as pipe:
                try:
                    await pipe.watch(self._c(campaign_id, "rows"))
                    current = await pipe.hget(self._c(campaign_id, "rows"), str(n))
                    row = Row.model_validate_json(current) if current else None
                    if row is None or row.state != RowState.QUEUED:
                        continue
                    pipe.multi()
                    done = row.model_copy(update={"state": RowState.SKIPPED, "outcome": "cancelled"})
                    pipe.hset(self._c(campaign_id, "rows"), str(n), done.model_dump_json())
                    pipe.zrem(self._c(campaign_id, "due"), str(n))
                    await pipe.execute()
                    skipped += 1
                except aioredis.WatchError:
                    continue
        return skipped

    async def finish(self, campaign_id: str) -> str | None:
        """A campaign with no row left to dial: done, its row data deleted, its keys expiring
        after the retention; returns the runner key to revoke."""
        key = await self.redis.hget(self._c(campaign_id, "meta"), "key")
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(self._c(campaign_id, "meta"), mapping={"finished_at": repr(time.time())})
        pipe.hdel(self._c(campaign_id, "meta"), "key")
        pipe.delete(self._c(campaign_id, "data"))
        pipe.srem(self._k("campaigns", "active"), campaign_id)
        for part in ("spec", "meta", "rows", "due", "dialling", "attempts", "errors"):
            pipe.expire(self._c(campaign_id, part), self.retention_s)
        await pipe.execute()
        return key.decode() if key else None

    async def add_active(self, campaign_id: str) -> None:
        await self.redis.sadd(self._k("campaigns", "active"), campaign_id)

    async def runner_key(self, campaign_id: str) -> str | None:
        raw = await self.redis.hget(self._c(campaign_id, "meta"), "key")
        return raw.decode() if raw else None

    # ---- the runner lease -------------------------------------------------------------------
    async def hold_lease(self, holder: str, ttl_s: float) -> bool:
        """Take the runner lease or renew it; False while another runner holds it."""
        ttl_ms = max(1, int(ttl_s * 1000))
        return bool(await self._lease(keys=[self._k("campaigns", "runner")], args=[holder, ttl_ms]))

    async def release_lease(self, holder: str) -> None:
        await self._release(keys=[self._k("campaigns", "runner")], args=[holder])

    async def lease_holder(self) -> str | None:
        raw = await self.redis.get(self._k("campaigns", "runner"))
        return raw.decode() if raw else None

    async def aclose(self) -> None:
        await self.redis.aclose()
