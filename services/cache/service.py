"""The reply cache as a Serve deployment: MiniLM embeddings batched across callers + the cache."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import numpy as np
from pydantic import BaseModel, Field
from ray import serve
from ray.serve import Application

from common.events import CacheHit
from common.settings import CacheSettings
from engine.cache_scope import CacheScope, template_refusal
from services.cache.semantic_cache import SemanticCache
from services.cache.store import cache_prefix
from services.embedder import Embedder
from services.replica_metrics import ReplicaMetrics


class EmbedBatchConfig(BaseModel):
    """The deployment's ``user_config``: embedding batching (``reconfigure`` on a live replica)."""

    max_batch_size: int = Field(32, ge=1)
    batch_wait_timeout_s: float = Field(0.0, ge=0)


@serve.deployment(max_ongoing_requests=256, ray_actor_options={"num_cpus": 0.25})
class SemanticCacheDeployment:
    """Embeddings (batched across callers) + the two-tier cache."""

    def __init__(self, settings: CacheSettings, redis_url: str | None, key_prefix: str = "voxray:cache:"):
        self._embedder = Embedder(settings.embedding_model_path, settings.onnx_dir)
        self._cache = SemanticCache(redis_url, self._embedder.dim, settings, key_prefix=key_prefix)
        self._metrics = ReplicaMetrics()
        self.reconfigure(
            {"max_batch_size": settings.max_batch_size, "batch_wait_timeout_s": settings.batch_wait_timeout_s}
        )
        self.batch_sizes: list[int] = []

    def reconfigure(self, config: dict[str, Any]) -> None:
        batch = EmbedBatchConfig.model_validate(config)
        self._embed_batch.set_max_batch_size(batch.max_batch_size)  # type: ignore[attr-defined]
        self._embed_batch.set_batch_wait_timeout_s(batch.batch_wait_timeout_s)  # type: ignore[attr-defined]

    @serve.batch(max_batch_size=32, batch_wait_timeout_s=0.0)
    async def _embed_batch(self, texts: list[str]) -> list[np.ndarray]:
        self.batch_sizes.append(len(texts))
        self._metrics.embed_batch(len(texts))
        if len(self.batch_sizes) > 1000:
            del self.batch_sizes[:500]
        vectors = await asyncio.to_thread(self._embedder.encode, texts)
        return list(vectors)

    async def _vector(self, text: str, embedding: list[float] | None) -> np.ndarray:
        if embedding is not None:
            return np.asarray(embedding, dtype=np.float32)
        vector: np.ndarray = await self._embed_batch(text)
        return vector

    async def embed(self, texts: list[str]) -> list[list[float]]:
        vectors = await asyncio.gather(*(self._embed_batch(t) for t in texts))
        return [v.tolist() for v in vectors]

    async def lookup(
        self, scope: CacheScope, text: str, embedding: list[float] | None = None, skip_exact: bool = False
    ) -> CacheHit | None:
        await self._cache.start()
        t0 = time.perf_counter()

        async def vector() -> np.ndarray:  # only computed after an exact-tier miss
            return await self._vector(text, embedding)

        hit = await self._cache.lookup(scope, text, vector, skip_exact)
        if hit is not None:
            hit.lookup_ms = (time.perf_counter() - t0) * 1000
        return hit

    async def store(
        self,
        scope: CacheScope,
        text: str,
        template: str,
        embedding: list[float] | None = None,
        call_values: dict[str, Any] | None = None,
        allowed_fields: list[str] | None = None,
        model: str = "",
    ) -> str | None:
        await self._cache.start()
        if template_refusal(template, call_values, allowed_fields) is not None:
            return await self._cache.store(
                scope,
                text,
                template,
                np.zeros(self._embedder.dim, np.float32),
                call_values,
                allowed_fields,
            )  # counts and logs the refusal
        vector = await self._vector(text, embedding)
        return await self._cache.store(scope, text, template, vector, call_values, allowed_fields, model)

    async def invalidate(self, schema: str, version: str | None = None, state: str | None = None) -> int:
        await self._cache.start()
        return await self._cache.invalidate(schema, version, state)

    async def entries(self, schema: str, state: str | None = None, limit: int = 200) -> list[dict[str, Any]]:
        await self._cache.start()
        return await self._cache.entries(schema, state, limit)

    async def stats(self) -> dict[str, Any]:
        await self._cache.start()
        stats = self._cache.stats()
        recent = self.batch_sizes[-200:]
        stats["embed_batch_size_mean"] = sum(recent) / len(recent) if recent else None
        return stats

    async def rebuild(self) -> int:
        await self._cache.start()
        return await self._cache.rebuild()


def build_cache_app(settings: CacheSettings, redis_url: str | None, key_prefix: str) -> Application:
    """The cache app under a deployment's key prefix (its Redis keys live below ``cache:``)."""
    return SemanticCacheDeployment.options(  # type: ignore[attr-defined,no-any-return]
        user_config={
            "max_batch_size": settings.max_batch_size,
            "batch_wait_timeout_s": settings.batch_wait_timeout_s,
        }
    ).bind(settings, redis_url, cache_prefix(key_prefix))
