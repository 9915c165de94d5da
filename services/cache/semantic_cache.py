"""The two-tier reply cache (exact in Redis, semantic in FAISS), independent of Serve.

Correctness first:
- Every entry lives in one scope (schema, version, state, hash of the slot values the reply
  depends on: ``engine.cache_scope.CacheScope``). Lookups only ever search the index and the
  exact keys of their own scope: a hard key check, never a text trick.
- Values are reply templates (``{field}`` placeholders); ``store`` refuses templates holding
  call-specific facts (``engine.cache_scope.template_refusal``).
- A semantic hit also needs the same polarity and numbers as the stored utterance
  (``guard_signature``): "I can't make Tuesday" never reuses the answer to "I can make Tuesday".
- TTLs are absolute: set once at store (Redis EXPIRE), never refreshed by a hit.
- Redis is the source of truth. A semantic hit found in the local FAISS index is confirmed by
  reading the template from Redis, so an expired, evicted or invalidated entry is never served
  even if this replica missed the news. Redis down → a miss and a counter, never an exception.

Cross-replica propagation: Redis pub/sub. A store publishes the entry id; other replicas load
it into their FAISS index, typically within a millisecond or two. Pub/sub is fire-and-forget:
a replica whose subscription drops rebuilds its whole index from Redis when it reconnects. So
the staleness allowed is "a new entry may be missing from another replica's index until the
message arrives or the next reconnect rebuild": that costs a miss, never a wrong answer,
because deletions are enforced by the Redis confirmation above. New replicas rebuild from Redis
on start.

The Redis layout is ``services/cache/store.py``'s; the local index ``services/cache/index.py``'s.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

import numpy as np

from common.events import CacheHit
from common.settings import CacheSettings
from engine.cache_scope import CacheScope, guard_signature, normalise_text, template_refusal, text_hash
from services.cache.index import EntryMeta, ScopeIndexes
from services.cache.store import CacheKeys, exact_value, read_exact

log = logging.getLogger("voxray.semantic_cache")

BULK_TIMEOUT_S = 5.0
REBUILD_BACKOFF_S = (0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0)  # pauses before each retry of a failed rebuild
REDIS_ERRORS: tuple[type[BaseException], ...] = (OSError, asyncio.TimeoutError)
try:  # redis is a dependency of the deployment; keep the module importable for docs without it
    import redis.asyncio as aioredis
    from redis.exceptions import RedisError

    REDIS_ERRORS = (RedisError, OSError, asyncio.TimeoutError)
except ImportError:  # pragma: no cover
    aioredis = None  # type: ignore[assignment]


@dataclass
class CacheCounters:
    hits_exact: int = 0
    hits_semantic: int = 0
    misses: int = 0
    redis_errors: int = 0
    stores: int = 0
    refused: int = 0
    evicted: int = 0
    invalidated: int = 0
    stale_index_skips: int = 0
    guard_rejections: int = 0


def new_entry_id() -> int:
    return random.getrandbits(62) + 1


class SemanticCache:
    """The cache core, independent of Serve (tests drive it directly)."""

    def __init__(
        self,
        redis_url: str | None,
        dim: int,
        settings: CacheSettings,
        key_prefix: str = "voxray:cache:",
        subscribe: bool = True,
    ):
        self.settings = settings
        self.dim = dim
        self.keys = CacheKeys(key_prefix)
        self.replica_id = uuid.uuid4().hex[:12]
        self.counters = CacheCounters()
        self.index = ScopeIndexes(dim, settings.max_entries_per_scope)
        self._redis: Any = None
        self._bulk_redis: Any = None
        if redis_url and aioredis is not None:
            self._redis = aioredis.Redis.from_url(
                redis_url, socket_connect_timeout=0.25, socket_timeout=0.5, health_check_interval=15
            )
            # A rebuild scans the keyspace and reads every entry: off the turn path, so it gets a
            # timeout sized for bulk reads on a busy Redis rather than the lookup's 0.5 s.
            self._bulk_redis = aioredis.Redis.from_url(
                redis_url, socket_connect_timeout=1.0, socket_timeout=BULK_TIMEOUT_S, health_check_interval=15
            )
        self._subscribe = subscribe
        self._listener: asyncio.Task[None] | None = None
        self._retry: asyncio.Task[None] | None = None
        self._started = False
        self._start_lock = asyncio.Lock()
        self._subscribed = asyncio.Event()

    # ------------------------------------------------------------------ start / rebuild / sync
    async def start(self) -> None:
        async with self._start_lock:
            if self._started:
                return
            self._started = True
            if self._subscribe and self._redis is not None:
                # Subscribe before rebuilding so no insert falls between the two.
                self._listener = asyncio.create_task(self._listen(), name="semantic-cache-pubsub")
                try:
                    await asyncio.wait_for(self._subscribed.wait(), 1.0)
                except TimeoutError:
                    log.warning("semantic cache: pub/sub not subscribed yet; relying on rebuild")
            if self._bulk_redis is None:
                return
            try:
                await self._rebuild_once()
            except REDIS_ERRORS as exc:
                self._rebuild_failed(exc)
                self._retry = asyncio.create_task(self._rebuild_until_done(), name="semantic-cache-rebuild")

    async def rebuild(self) -> int:
        """Load every live entry of every scope from Redis into fresh FAISS indexes (one try).

        A failure is counted and logged and keeps the current indexes; returns the entries loaded.
        """
        if self._bulk_redis is None:
            return 0
        try:
            return await self._rebuild_once()
        except REDIS_ERRORS as exc:
            self._rebuild_failed(exc)
            return 0

    def _rebuild_failed(self, exc: BaseException) -> None:
        self.counters.redis_errors += 1
        log.warning("semantic cache rebuild from Redis failed: %s", type(exc).__name__)

    async def _rebuild_until_done(self) -> None:
        """Retry a failed start-up rebuild off the turn path, so one slow moment of Redis does
        not leave a new replica cold for good."""
        for pause in REBUILD_BACKOFF_S:
            await asyncio.sleep(pause)
            try:
                await self._rebuild_once()
                return
            except REDIS_ERRORS as exc:
                self._rebuild_failed(exc)
        log.warning("semantic cache: gave up rebuilding; the index fills from new entries")

    async def _rebuild_once(self) -> int:
        fresh = {}
        loaded = 0
        redis = self._bulk_redis
        async for key in redis.scan_iter(match=self.keys.scope_ids_pattern(), count=1000):
            scope_key = self.keys.scope_key_of(key.decode())
            ids = [int(i) for i in await redis.zrange(key, 0, -1)]
            if not ids:
                continue
            pipe = redis.pipeline(transaction=False)
            for entry_id in ids:
                pipe.hmget(self.keys.entry(entry_id), "emb", "guard", "created")
                pipe.pttl(self.keys.entry(entry_id))
            rows = await pipe.execute()
            now = time.time()
            vecs, keep, metas = [], [], []
            for n, entry_id in enumerate(ids):
                (emb, guard, created), pttl = rows[2 * n], rows[2 * n + 1]
                if emb is None or pttl is None or pttl < 0:
                    continue
                vecs.append(np.frombuffer(emb, dtype=np.float32))
                keep.append(entry_id)
                metas.append(EntryMeta(guard.decode(), float(created), now + pttl / 1000))
            if keep:
                fresh[scope_key] = self.index.build(vecs, keep, metas)
                loaded += len(keep)
        self.index.replace_all(fresh)
        log.info("semantic cache rebuilt %d entries in %d scopes", loaded, len(fresh))
        return loaded

    async def _listen(self) -> None:
        first = True
        while True:
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.keys.channel)
                self._subscribed.set()
                if not first:
                    await self.rebuild()  # messages may have been lost while disconnected
                first = False
                async for message in pubsub.listen():
                    if message.get("type") == "message":
                        try:
                            await self._apply_event(json.loads(message["data"]))
                        except (ValueError, KeyError, TypeError) as exc:
                            log.warning("semantic cache: bad pub/sub event ignored (%s)", type(exc).__name__)
            except asyncio.CancelledError:
                await pubsub.aclose()
                raise
            except REDIS_ERRORS:
                self.counters.redis_errors += 1
                first = False
            with contextlib.suppress(*REDIS_ERRORS):
                await pubsub.aclose()
            await asyncio.sleep(1.0)

    async def _apply_event(self, event: dict[str, Any]) -> None:
        if event.get("origin") == self.replica_id:
            return
        op = event.get("op")
        if op == "add":
            entry_id = int(event["id"])
            row = await self._redis.hmget(self.keys.entry(entry_id), "emb", "guard", "created")
            pttl = await self._redis.pttl(self.keys.entry(entry_id))
            if row[0] is not None and pttl and pttl > 0:
                self.index.add(
                    event["scope"],
                    entry_id,
                    np.frombuffer(row[0], dtype=np.float32),
                    EntryMeta(row[1].decode(), float(row[2]), time.time() + pttl / 1000),
                )
        elif op == "remove":
            for entry_id in event.get("ids", []):
                self.index.remove(event["scope"], int(entry_id))
        elif op == "drop_scopes":
            self.index.drop_scopes(list(event.get("scopes", [])))

    async def _publish(self, event: dict[str, Any]) -> None:
        try:
            await self._redis.publish(self.keys.channel, json.dumps({**event, "origin": self.replica_id}))
        except REDIS_ERRORS:
            self.counters.redis_errors += 1

    def scope_size(self, scope_key: str) -> int:
        return self.index.scope_size(scope_key)

    # ------------------------------------------------------------------ lookup
    async def lookup(
        self,
        scope: CacheScope,
        text: str,
        embedding: np.ndarray | Callable[[], Awaitable[np.ndarray]] | None,
        skip_exact: bool = False,
    ) -> CacheHit | None:
        """Exact tier (unless the caller already read it: ``skip_exact``), then semantic tier.
        ``embedding`` (a vector, or an async callable computing it only when the exact tier missed
        and the scope has entries) feeds the semantic tier."""
        t0 = time.perf_counter()
        if self._redis is None or not normalise_text(text):
            self.counters.misses += 1
            return None
        scope_key = scope.key()
        try:
            exact = None if skip_exact else await read_exact(self._redis, self.keys, scope, text)
            if exact is not None:
                self.counters.hits_exact += 1
                exact.lookup_ms = (time.perf_counter() - t0) * 1000
                return exact
            if not self.index.scope_size(scope_key) or embedding is None:
                self.counters.misses += 1
                return None
            if callable(embedding):
                embedding = await embedding()
            guard = guard_signature(text)
            now = time.time()
            for sim, entry_id, meta in self.index.search(scope_key, embedding):
                if sim < self.settings.similarity_threshold:
                    break
                if meta.expires_at <= now:
                    self.index.remove(scope_key, entry_id)
                    continue
                if meta.guard != guard:
                    self.counters.guard_rejections += 1
                    continue
                template = await self._redis.hget(self.keys.entry(entry_id), "template")
                if template is None:  # expired / evicted / invalidated elsewhere
                    self.counters.stale_index_skips += 1
                    self.index.remove(scope_key, entry_id)
                    continue
                self.counters.hits_semantic += 1
                return CacheHit(
                    template=template.decode(),
                    tier="semantic",
                    similarity=round(sim, 4),
                    entry_id=str(entry_id),
                    lookup_ms=(time.perf_counter() - t0) * 1000,
                )
        except REDIS_ERRORS as exc:
            self.counters.redis_errors += 1
            log.warning(
                "semantic cache lookup: Redis unavailable (%s); treating as a miss", type(exc).__name__
            )
        self.counters.misses += 1
        return None

    # ------------------------------------------------------------------ store
    async def store(
        self,
        scope: CacheScope,
        text: str,
        template: str,
        embedding: np.ndarray,
        call_values: dict[str, Any] | None = None,
        allowed_fields: list[str] | None = None,
        model: str = "",
    ) -> str | None:
        reason = template_refusal(template, call_values, allowed_fields)
        if reason is None and not normalise_text(text):
            reason = "empty utterance"
        if reason is not None:
            self.counters.refused += 1
            log.info("semantic cache: not caching reply in state %s: %s", scope.state, reason)
            return None
        if self._redis is None:
            return None
        scope_key = scope.key()
        th = text_hash(text)
        vector = np.asarray(embedding, dtype=np.float32).reshape(-1)
        if vector.shape[0] != self.dim:
            raise ValueError(f"embedding has {vector.shape[0]} dimensions, the cache expects {self.dim}")
        ttl = int(self.settings.ttl_s)
        try:
            await self._note_version(scope)
            exact_key = self.keys.exact_by_hash(scope_key, th)
            existing = await self._redis.get(exact_key)
            if existing is not None:
                return str(json.loads(existing)["id"])
            entry_id = new_entry_id()
            now = time.time()
            guard = guard_signature(text)
            pipe = self._redis.pipeline(transaction=True)
            entry_key = self.keys.entry(entry_id)
            pipe.hset(
                entry_key,
                mapping={
                    "scope": scope_key,
                    "template": template,
                    "guard": guard,
                    "th": th,
                    "emb": vector.tobytes(),
                    "created": repr(now),
                    "model": model,  # which model wrote it (scope carries the schema version)
                },
            )
            pipe.expire(entry_key, ttl)
            pipe.set(exact_key, exact_value(str(entry_id), template), ex=ttl)
            pipe.zadd(self.keys.scope_ids(scope_key), {str(entry_id): now})
            pipe.expire(self.keys.scope_ids(scope_key), ttl)
            pipe.sadd(self.keys.schema_scopes(scope.schema_key()), scope_key)
            pipe.zcard(self.keys.scope_ids(scope_key))
            results = await pipe.execute()
            self.counters.stores += 1
            self.index.add(scope_key, entry_id, vector, EntryMeta(guard, now, now + ttl))
            await self._publish({"op": "add", "scope": scope_key, "id": str(entry_id)})
            excess = int(results[-1]) - self.settings.max_entries_per_scope
            if excess > 0:
                await self._evict(scope_key, excess)
            return str(entry_id)
        except REDIS_ERRORS as exc:
            self.counters.redis_errors += 1
            log.warning("semantic cache store: Redis unavailable (%s); not cached", type(exc).__name__)
            return None

    async def _evict(self, scope_key: str, count: int) -> None:
        popped = await self._redis.zpopmin(self.keys.scope_ids(scope_key), count)
        ids = [member.decode() for member, _ in popped]
        await self._delete_entries(scope_key, ids)
        self.counters.evicted += len(ids)
        for entry_id in ids:
            self.index.remove(scope_key, int(entry_id))
        await self._publish({"op": "remove", "scope": scope_key, "ids": ids})

    async def _delete_entries(self, scope_key: str, ids: list[str]) -> None:
        if not ids:
            return
        pipe = self._redis.pipeline(transaction=False)
        for entry_id in ids:
            pipe.hget(self.keys.entry(entry_id), "th")
        hashes = await pipe.execute()
        pipe = self._redis.pipeline(transaction=False)
        for entry_id, th in zip(ids, hashes, strict=True):
            pipe.delete(self.keys.entry(entry_id))
            if th is not None:
                pipe.delete(self.keys.exact_by_hash(scope_key, th.decode()))
        await pipe.execute()

    # ------------------------------------------------------------------ invalidation
    async def _note_version(self, scope: CacheScope) -> None:
        """A schema's version changed: drop every entry of its other versions."""
        ver_key = self.keys.schema_version(scope.schema_key())
        previous = await self._redis.getset(ver_key, scope.schema_version)
        if previous is not None and previous.decode() != scope.schema_version:
            removed = await self.invalidate(scope.schema_name, previous.decode())
            log.info(
                "schema %s moved to a new version; invalidated %d cache entries", scope.schema_name, removed
            )

    async def _scope_keys(self, schema: str, version: str | None, state: str | None) -> list[str]:
        probe = CacheScope(schema_name=schema, schema_version=version or "x", state="x")
        keys = [k.decode() for k in await self._redis.smembers(self.keys.schema_scopes(probe.schema_key()))]
        if version is not None:
            keys = [k for k in keys if unquote(k.split(":")[1]) == version]
        if state is not None:
            keys = [k for k in keys if unquote(k.split(":")[2]) == state]
        return keys

    async def entries(self, schema: str, state: str | None = None, limit: int = 200) -> list[dict[str, Any]]:
        """The live entries of a schema (of one state when given), newest first: what an operator
        looks at before purging."""
        if self._redis is None:
            return []
        out: list[dict[str, Any]] = []
        for scope_key in await self._scope_keys(schema, None, state):
            ids = [i.decode() for i in await self._redis.zrevrange(self.keys.scope_ids(scope_key), 0, limit)]
            for entry_id in ids:
                row = await self._redis.hmget(self.keys.entry(entry_id), "template", "model", "created")
                if row[0] is None:
                    continue
                version, scope_state = (unquote(p) for p in scope_key.split(":")[1:3])
                out.append(
                    {
                        "id": entry_id,
                        "schema_version": version,
                        "state": scope_state,
                        "template": row[0].decode(),
                        "model": (row[1] or b"").decode(),
                        "created": float(row[2] or 0.0),
                    }
                )
        out.sort(key=lambda e: -float(e["created"]))
        return out[:limit]

    async def invalidate(self, schema: str, version: str | None = None, state: str | None = None) -> int:
        """Remove every entry of ``schema`` (only of ``version`` / ``state`` when given). Returns
        the count; every replica drops them from its index too (pub/sub)."""
        if self._redis is None:
            return 0
        probe = CacheScope(schema_name=schema, schema_version=version or "x", state="x")
        schema_set = self.keys.schema_scopes(probe.schema_key())
        removed = 0
        try:
            scope_keys = await self._scope_keys(schema, version, state)
            for scope_key in scope_keys:
                ids = [i.decode() for i in await self._redis.zrange(self.keys.scope_ids(scope_key), 0, -1)]
                await self._delete_entries(scope_key, ids)
                await self._redis.delete(self.keys.scope_ids(scope_key))
                await self._redis.srem(schema_set, scope_key)
                removed += len(ids)
            self.index.drop_scopes(scope_keys)
            await self._publish({"op": "drop_scopes", "scopes": scope_keys})
        except REDIS_ERRORS as exc:
            self.counters.redis_errors += 1
            log.warning("semantic cache invalidate: Redis unavailable (%s)", type(exc).__name__)
        self.counters.invalidated += removed
        return removed

    # ------------------------------------------------------------------ stats / close
    def stats(self) -> dict[str, Any]:
        c = self.counters
        lookups = c.hits_exact + c.hits_semantic + c.misses
        return {
            "hits": {"exact": c.hits_exact, "semantic": c.hits_semantic},
            "misses": c.misses,
            "hit_rate": (c.hits_exact + c.hits_semantic) / lookups if lookups else 0.0,
            "redis_errors": c.redis_errors,
            "stores": c.stores,
            "refused": c.refused,
            "evicted": c.evicted,
            "invalidated": c.invalidated,
            "stale_index_skips": c.stale_index_skips,
            "guard_rejections": c.guard_rejections,
            "entries": self.index.entries,
            "scopes": self.index.scopes,
            "replica_id": self.replica_id,
        }

    async def aclose(self) -> None:
        tasks = [t for t in (self._listener, self._retry) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for client in (self._redis, self._bulk_redis):
            if client is not None:
                await client.aclose()
