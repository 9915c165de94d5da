"""The semantic cache's head start and its race with the LLM, in a fixed order.

``TimedServices`` is a test double of the call's services with set delays (it models no real
service): the real cache and LLM cannot be made to answer in a chosen order, and these tests
are about the order. The real-deployment version (a semantic hit beating a slow LLM through
Serve) is ``tests/test_calls_e2e.py::test_semantic_hit_beats_a_slow_llm``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from actors.call import CallActor
from engine.conversation import Conversation
from engine.schema_loader import SchemaRegistry
from common.testing.samples import SAMPLE_CALL_DATA

ROOT = Path(__file__).resolve().parent.parent
PATIENT = SAMPLE_CALL_DATA["prior_auth"]
CACHED = "Cached answer, served from the semantic tier."
LLM_TEXT = "Fresh answer from the model."


class TimedServices:
    def __init__(self, lookup_s: float, lookup_hits: bool, ttft_s: float):
        self.lookup_s, self.lookup_hits, self.ttft_s = lookup_s, lookup_hits, ttft_s
        self.lookups = 0
        self.lookup_cancelled = False
        self.llm_asked = 0
        self.llm_closed_before_first_token = False
        self.stored: list[str] = []

    async def semantic_lookup(self, scope: dict[str, Any], text: str) -> Any:
        self.lookups += 1
        try:
            await asyncio.sleep(self.lookup_s)
        except asyncio.CancelledError:
            self.lookup_cancelled = True
            raise
        return {"template": CACHED, "tier": "semantic"} if self.lookup_hits else None

    async def cache_store(self, scope: Any, text: str, template: str, embedding: Any, values: Any) -> None:
        self.stored.append(template)

    async def llm_stream(self, request: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        self.llm_asked += 1
        sent = 0
        t0 = time.perf_counter()
        try:
            yield {"type": "route", "policy": "race"}
            await asyncio.sleep(self.ttft_s)
            for word in LLM_TEXT.split(" "):
                sent += 1
                yield {"type": "token", "text": word if sent == 1 else " " + word}
            ms = (time.perf_counter() - t0) * 1000
            yield {"type": "done", "provider": "timed", "ttft_ms": ms, "router_ttft_ms": ms, "total_ms": ms}
        finally:
            self.llm_closed_before_first_token = sent == 0

    async def transcribe(self, pcm16_16k: bytes) -> dict[str, Any]:
        raise AssertionError("text mode never transcribes")

    def speak(self, text: str, encoding: str) -> AsyncIterator[dict[str, Any]]:
        raise AssertionError("text mode never speaks")


async def off_script_turn(services: TimedServices, head_start_s: float = 0.010) -> dict[str, Any]:
    registry = SchemaRegistry.from_directory(ROOT / "schemas")
    conversation = Conversation.start(registry.get("prior_auth"), "race-call", PATIENT)
    actor = CallActor(conversation, services, None, "test-host", semantic_head_start_s=head_start_s)
    await actor.opening()
    await actor.text_turn("This is Sarah, how can I help?")
    return await actor.text_turn("Lovely weather there today?")  # off-script: cache, then LLM


async def test_fast_semantic_hit_never_asks_the_llm() -> None:
    services = TimedServices(lookup_s=0.0, lookup_hits=True, ttft_s=0.05)
    turn = await off_script_turn(services)
    assert turn["source"] == "cache_semantic" and turn["agent"] == CACHED
    assert services.llm_asked == 0 and turn["llm"] == {}


async def test_late_semantic_hit_wins_and_closes_the_llm_stream() -> None:
    services = TimedServices(lookup_s=0.15, lookup_hits=True, ttft_s=1.0)
    turn = await off_script_turn(services)
    assert turn["source"] == "cache_semantic" and turn["agent"] == CACHED
    assert turn["llm"] == {"cancelled_for_cache": True}
    assert services.llm_asked == 1 and services.llm_closed_before_first_token
    assert 150 <= turn["stages_ms"]["cache"] < 600  # the hit's own time, not the LLM's
    assert turn["stages_ms"]["turn_total"] < 800
    assert services.stored == []  # nothing new to store: the reply came from the cache


async def test_slow_semantic_miss_does_not_hold_up_the_llm() -> None:
    services = TimedServices(lookup_s=2.0, lookup_hits=False, ttft_s=0.05)
    turn = await off_script_turn(services)
    assert turn["source"] == "llm" and turn["agent"] == LLM_TEXT
    assert turn["stages_ms"]["cache"] < 200  # the head start, not the 2 s lookup
    assert turn["stages_ms"]["turn_total"] < 1000
    assert services.lookup_cancelled  # the LLM answered first: the lookup was dropped
    await asyncio.sleep(0)  # let the background store run
    assert services.stored == [LLM_TEXT]


async def test_zero_head_start_asks_both_at_once() -> None:
    services = TimedServices(lookup_s=0.05, lookup_hits=False, ttft_s=0.2)
    turn = await off_script_turn(services, head_start_s=0.0)
    assert turn["source"] == "llm" and services.lookups == 1 and services.llm_asked == 1
    assert not services.lookup_cancelled  # it answered (a miss) while the LLM was still thinking
    assert turn["stages_ms"]["cache"] < 50
