"""The shared deployments as seen from a call host: Serve deployment handles."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from ray import serve

APP_NAME = "voxray"
STT, TTS, CACHE, ROUTER = "STTDeployment", "TTSDeployment", "SemanticCacheDeployment", "LLMRouterDeployment"


class ServeServices:
    """Implements ``actors.call_actor.Services`` over Serve handles (created lazily, once per host)."""

    def __init__(self, app_name: str = APP_NAME):
        self.app_name = app_name
        self._handles: dict[str, Any] = {}

    def _h(self, name: str) -> Any:
        if name not in self._handles:
            self._handles[name] = serve.get_deployment_handle(name, app_name=self.app_name)
        return self._handles[name]

    async def transcribe(self, pcm16_16k: bytes) -> dict[str, Any]:
        result: dict[str, Any] = await self._h(STT).transcribe.remote(pcm16_16k, 16000)
        return result

    async def speak(self, text: str, encoding: str) -> AsyncIterator[dict[str, Any]]:
        stream = self._h(TTS).options(stream=True).stream.remote(text, encoding)
        try:
            async for chunk in stream:
                yield chunk
        finally:
            stream.cancel()  # a consumer that stops early (barge-in) stops the replica's work too

    async def semantic_lookup(self, scope: dict[str, Any], text: str) -> Any:
        return await self._h(CACHE).lookup.remote(scope, text, None, skip_exact=True)

    async def cache_store(
        self,
        scope: dict[str, Any],
        text: str,
        template: str,
        embedding: list[float] | None,
        call_values: dict[str, Any],
    ) -> Any:
        return await self._h(CACHE).store.remote(scope, text, template, embedding, call_values)

    async def llm_stream(self, request: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        stream = self._h(ROUTER).options(stream=True).stream.remote(request)
        try:
            async for event in stream:
                yield event
        finally:
            stream.cancel()  # closes the router's provider streams when the call stops listening

    async def warm_phrases(self, phrases: list[str]) -> int:
        added: int = await self._h(TTS).warm_phrases.remote(phrases)
        return added
