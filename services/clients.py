"""Clients of the model services, built by ``serve_app.build_app`` around their bound apps.

Serve replaces each bound app inside a client with a ``DeploymentHandle`` when the client is
passed to the ingress, which hands the cache and LLM clients on to the call hosts. Consumers
see them through the protocols they declare (``actors/reply.py``, ``edge/call_link.py``) and
never import this module. It stays light: no model code is imported here.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

from common.events import AudioChunk, CacheHit, Transcript
from common.llm_types import LLMEvent, LLMRequest
from engine.cache_scope import CacheScope
from services.cache.store import CacheKeys, cache_prefix, read_exact

STT_SAMPLE_RATE = 16000


class STTClient:
    def __init__(self, app: Any):
        self.handle = app

    async def transcribe(self, pcm16_16k: bytes, hints: str = "") -> Transcript:
        """``hints``: the call's hint line for this utterance (``services/stt.py``); PHI, never logged."""
        transcript: Transcript = await self.handle.transcribe.remote(pcm16_16k, STT_SAMPLE_RATE, hints=hints)
        return transcript

    async def stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = await self.handle.stats.remote()
        return stats


class TTSClient:
    def __init__(self, app: Any):
        self.handle = app

    async def stream(
        self, text: str, encoding: str, voice: str = "standard"
    ) -> AsyncGenerator[AudioChunk, None]:
        stream = self.handle.options(stream=True).stream.remote(text, encoding, voice)
        try:
            async for chunk in stream:
                yield chunk
        finally:
            stream.cancel()  # a consumer that stops early (barge-in) stops the replica's work too

    async def stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = await self.handle.stats.remote()
        return stats


class CacheClient:
    """The exact tier is read straight from Redis with the cache's own reader (no Serve hop);
    the semantic tier and stores go to the cache deployment."""

    def __init__(self, app: Any, redis_url: str | None, key_prefix: str):
        self.handle = app
        self.redis_url = redis_url
        self.keys = CacheKeys(cache_prefix(key_prefix))
        self._redis: Any = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_redis": None}  # a connection never travels between processes

    async def exact(self, scope: CacheScope, text: str) -> CacheHit | None:
        if self.redis_url is None:
            return None
        if self._redis is None:
            import redis.asyncio as aioredis

            self._redis = aioredis.Redis.from_url(self.redis_url)
        return await read_exact(self._redis, self.keys, scope, text)

    async def semantic(
        self, scope: CacheScope, text: str, embedding: list[float] | None = None
    ) -> CacheHit | None:
        """``embedding``: the text's vector when the turn already has it (the NLU embedded it)."""
        hit: CacheHit | None = await self.handle.lookup.remote(scope, text, embedding, skip_exact=True)
        return hit

    async def embed(self, texts: list[str]) -> list[list[float]]:
        vectors: list[list[float]] = await self.handle.embed.remote(texts)
        return vectors

    async def store(
        self, scope: CacheScope, text: str, template: str, call_values: dict[str, Any], model: str = ""
    ) -> None:
        await self.handle.store.remote(scope, text, template, None, call_values, None, model)

    async def stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = await self.handle.stats.remote()
        return stats


class LLMClient:
    def __init__(self, app: Any):
        self.handle = app

    async def stream(self, request: LLMRequest) -> AsyncGenerator[LLMEvent, None]:
        stream = self.handle.options(stream=True).stream.remote(request)
        try:
            async for event in stream:
                yield event
        finally:
            stream.cancel()  # closes the router's provider streams when the call stops listening

    async def stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = await self.handle.stats.remote()
        return stats
