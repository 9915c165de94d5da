"""The LLM router as a Serve deployment: ``handle.options(stream=True).stream.remote(LLMRequest)``."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from typing import Any

from ray import serve
from ray.serve import Application

from common.llm_types import Completion, LLMEvent, LLMRequest, TokenEvent
from common.settings import ProviderSettings, RouterSettings
from services.llm.providers import build_provider, configs_from_settings
from services.llm.providers.base import ProviderConfig
from services.llm.router import LLMRouter, RouterOptions

log = logging.getLogger("voxray.llm_router")

# A sentence end (or a line break) with the start of the next sentence after it: the earliest
# point at which the call's sentence chunker can cut, so tokens held until then cost no audio time.
_CUTTABLE = re.compile(r"([.!?…]['\")\]]*\s|\n)\s*\S")
COALESCE_MAX_CHARS = 48


def _confirms_a_sentence_end(released_tail: str, held: str) -> bool:
    joined = released_tail + held
    return any(m.end() > len(released_tail) for m in _CUTTABLE.finditer(joined))


async def coalesce_tokens(events: AsyncIterator[LLMEvent]) -> AsyncIterator[LLMEvent]:
    """Merge token events between sentence ends into one event, so a reply crosses the Serve
    stream (one Ray object per item) as a handful of events rather than one per token.

    The first token goes out alone (time to first token is not delayed); later tokens are held
    until they confirm a sentence end (its next word arrived), reach ``COALESCE_MAX_CHARS``, or
    another event comes; nothing is reordered or dropped."""
    held: list[str] = []
    tail = ""  # the end of the text already sent: a sentence end there is confirmed by what follows
    provider = ""
    first = True

    def release() -> TokenEvent:
        nonlocal tail
        text = "".join(held)
        held.clear()
        tail = (tail + text)[-8:]
        return TokenEvent(text=text, provider=provider)

    async for event in events:
        if not isinstance(event, TokenEvent):
            if held:
                yield release()
            yield event
            continue
        if first:
            first = False
            tail = event.text[-8:]
            yield event
            continue
        held.append(event.text)
        provider = event.provider
        text = "".join(held)
        if len(text) >= COALESCE_MAX_CHARS or _confirms_a_sentence_end(tail, text):
            yield release()
    if held:
        yield release()


@serve.deployment(max_ongoing_requests=512, ray_actor_options={"num_cpus": 0.05})
class LLMRouterDeployment:
    def __init__(self, providers: list[ProviderConfig], local_llm: Any, options: RouterOptions):
        if local_llm is None:
            providers = [c for c in providers if c.kind != "local"]
        built = [build_provider(c, local_llm, timeout_s=options.settings.total_timeout_s) for c in providers]
        self._router = LLMRouter(built, options)
        log.info("LLM router pool: %s", [c.name for c in providers])

    async def stream(self, request: LLMRequest) -> AsyncIterator[LLMEvent]:
        async for event in coalesce_tokens(self._router.stream(request)):
            yield event

    async def complete(self, request: LLMRequest) -> Completion:
        return await self._router.complete(request)

    async def stats(self) -> dict[str, Any]:
        return self._router.stats()


def build_router_app(
    providers: ProviderSettings,
    router: RouterSettings,
    configs: list[ProviderConfig] | None = None,
    options: RouterOptions | None = None,
) -> Application:
    """The router app over ``configs`` (default: the pool the provider settings configure);
    binds ``LocalLLMDeployment`` when the local provider is in the pool."""
    configs = configs_from_settings(providers) if configs is None else configs
    local = None
    if any(c.kind == "local" for c in configs):
        from services.llm.providers.local_llama import LocalLLMDeployment, decoding_from_settings

        local = LocalLLMDeployment.bind(  # type: ignore[attr-defined]
            providers.local_model_path,
            n_threads=providers.local_threads,
            decoding=decoding_from_settings(providers),
            prompt_cache_mb=providers.local_prompt_cache_mb,
        )
    opts = options or RouterOptions(settings=router)
    return LLMRouterDeployment.bind(configs, local, opts)  # type: ignore[attr-defined,no-any-return]
