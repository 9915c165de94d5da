"""The understander each call's conversation uses, one per schema on a host.

It starts lexical and is upgraded in place once the schema's intent examples are embedded by
the embedding deployment (in the background, from the first call of the schema on the host),
so no call waits on it and every call of the schema shares the one object. When a capable
LLM provider is configured, turns the local NLU is unsure of are also put to it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator
from typing import Any, Protocol

from common.llm_types import ChatMessage, DoneEvent, ErrorEvent, LLMEvent, LLMRequest, TokenEvent
from engine.nlu.intents import TextEmbedder
from engine.nlu.llm_hook import LLMUnderstanding
from engine.nlu.understand import Understander, compile_patterns, embedding_understander
from engine.schema_loader import CompiledSchema

log = logging.getLogger("voxray.nlu")

RETRY_AFTER_S = 30.0  # an embedding deployment that failed is tried again after this


class LLMStream(Protocol):
    def stream(self, request: LLMRequest) -> AsyncGenerator[LLMEvent, None]: ...


class RouterCompletion:
    """(system, user) → the reply text, through the LLM router, restricted to ``providers``.
    Any failure or a slow answer is "no answer" (an empty string), never an exception."""

    def __init__(self, llm: LLMStream, providers: list[str], timeout_s: float):
        self.llm = llm
        self.providers = providers
        self.timeout_s = timeout_s

    async def __call__(self, system: str, user: str) -> str:
        request = LLMRequest(
            messages=[ChatMessage(role="user", content=user)],
            system=system,
            max_tokens=120,
            temperature=0.0,
            providers=self.providers,
        )
        try:
            return await asyncio.wait_for(self._collect(request), self.timeout_s)
        except Exception as exc:
            log.warning("NLU question to the LLM failed: %s", type(exc).__name__)
            return ""

    async def _collect(self, request: LLMRequest) -> str:
        parts: list[str] = []
        stream = self.llm.stream(request)
        try:
            async for event in stream:
                if isinstance(event, TokenEvent):
                    parts.append(event.text)
                elif isinstance(event, ErrorEvent):
                    return ""
                elif isinstance(event, DoneEvent):
                    break
        finally:
            await stream.aclose()
        return "".join(parts)


class Understanders:
    def __init__(self, embedder: TextEmbedder | None, llm: LLMUnderstanding | None = None):
        self.embedder = embedder
        self.llm = llm
        self._by_schema: dict[tuple[str, str, str], Understander] = {}
        self._building: dict[tuple[str, str, str], asyncio.Task[None]] = {}
        self._failed_at: dict[tuple[str, str, str], float] = {}

    def for_schema(self, schema: CompiledSchema) -> Understander:
        key = (schema.name, schema.version, schema.fingerprint)
        understander = self._by_schema.get(key)
        if understander is None:
            understander = self._by_schema[key] = Understander(llm=self.llm)
            _ = schema.field_phrases  # compiled once per schema, here rather than in a first turn
            compile_patterns(
                (i for state in schema.states.values() for i in state.intents),
                (slot for state in schema.states.values() for slot in state.spec.slots),
            )
        if self.embedder is not None and understander.embedder is None:
            self._upgrade_soon(key, schema, understander)
        return understander

    def _upgrade_soon(self, key: tuple[str, str, str], schema: CompiledSchema, target: Understander) -> None:
        if (
            key in self._building
            or time.monotonic() - self._failed_at.get(key, -RETRY_AFTER_S) < RETRY_AFTER_S
        ):
            return
        self._building[key] = asyncio.get_running_loop().create_task(self._upgrade(key, schema, target))

    async def _upgrade(self, key: tuple[str, str, str], schema: CompiledSchema, target: Understander) -> None:
        assert self.embedder is not None
        try:
            built = await embedding_understander(schema.intent_examples, self.embedder, self.llm)
        except Exception as exc:
            self._failed_at[key] = time.monotonic()
            log.warning(
                "schema %s: intent examples not embedded (%s); lexical scores for now",
                key[0],
                type(exc).__name__,
            )
            return
        finally:
            self._building.pop(key, None)
        target.scorer, target.threshold, target.embedder = built.scorer, built.threshold, built.embedder
        log.info(
            "schema %s: embedding intent scorer ready (%d examples)", key[0], len(schema.intent_examples)
        )

    def scoring(self) -> dict[str, str]:
        """How each schema's intents are scored on this host right now."""
        return {
            key[0]: "embedding" if understander.embedder is not None else "lexical"
            for key, understander in self._by_schema.items()
        }

    async def ready(self) -> None:
        """Wait for upgrades under way (tests, warm-up)."""
        while self._building:
            await asyncio.gather(*self._building.values(), return_exceptions=True)


def nlu_llm(llm: Any, providers: list[str], timeout_s: float) -> LLMUnderstanding | None:
    return LLMUnderstanding(RouterCompletion(llm, providers, timeout_s)) if providers else None
