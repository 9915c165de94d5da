"""SCRIPTED stand-ins for the model services, for tests only.

They implement the protocols a call and a call link consume (``actors/reply.py``,
``edge/call_link.py``) with set answers and set delays, and record what was asked of them.
Nothing here is a model: they exist so tests can fix the order and timing of events that real
services cannot be made to produce on demand. Never use them outside tests and benchmarks.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Any

from common.audio import ULAW_SILENCE
from common.events import AudioChunk, CacheHit, Transcript
from common.llm_types import DoneEvent, ErrorEvent, LLMEvent, LLMRequest, RouteEvent, TokenEvent


@dataclass
class ScriptedCache:
    """``exact``/``semantic`` are the templates to answer with (None = a miss)."""

    exact_template: str | None = None
    semantic_template: str | None = None
    semantic_delay_s: float = 0.0
    lookups: int = 0
    lookup_cancelled: bool = False
    stored: list[str] = field(default_factory=list)

    async def exact(self, scope: Any, text: str) -> CacheHit | None:
        if self.exact_template is None:
            return None
        return CacheHit(template=self.exact_template, tier="exact")

    async def semantic(self, scope: Any, text: str, embedding: list[float] | None = None) -> CacheHit | None:
        self.lookups += 1
        try:
            await asyncio.sleep(self.semantic_delay_s)
        except asyncio.CancelledError:
            self.lookup_cancelled = True
            raise
        if self.semantic_template is None:
            return None
        return CacheHit(template=self.semantic_template, tier="semantic", similarity=0.95)

    async def store(
        self, scope: Any, text: str, template: str, call_values: dict[str, Any], model: str = ""
    ) -> None:
        self.stored.append(template)


@dataclass
class ScriptedLLM:
    """Streams ``text`` word by word after ``ttft_s``; ``fail`` answers with an error event."""

    text: str = "A scripted reply."
    ttft_s: float = 0.0
    seconds_per_token: float = 0.0
    fail: bool = False
    requests: list[LLMRequest] = field(default_factory=list)
    tokens_sent: int = 0
    closed_early: bool = False  # the consumer closed the stream before it ended

    async def stream(self, request: LLMRequest) -> AsyncGenerator[LLMEvent, None]:
        self.requests.append(request)
        finished = False
        t0 = time.perf_counter()
        try:
            yield RouteEvent(policy="single", tier="fast", tier_reason="scripted", candidates=["scripted"])
            await asyncio.sleep(self.ttft_s)
            if self.fail:
                yield ErrorEvent(message="scripted failure")
                finished = True
                return
            for i, word in enumerate(self.text.split(" ")):
                if i:
                    await asyncio.sleep(self.seconds_per_token)
                self.tokens_sent += 1
                yield TokenEvent(text=word if i == 0 else " " + word, provider="scripted")
            ms = (time.perf_counter() - t0) * 1000
            yield DoneEvent(
                provider="scripted",
                model="scripted",
                text=self.text,
                ttft_ms=ms,
                router_ttft_ms=ms,
                total_ms=ms,
                policy="single",
                tier="fast",
                launched=["scripted"],
            )
            finished = True
        finally:
            self.closed_early = not finished


@dataclass
class ScriptedSTT:
    """Answers each utterance with the next line of ``lines`` ("" = heard nothing); keeps the
    hints each utterance came with."""

    lines: list[str]
    delay_s: float = 0.0
    heard: int = 0
    hints: list[str] = field(default_factory=list)

    async def transcribe(self, pcm16_16k: bytes, hints: str = "") -> Transcript:
        self.hints.append(hints)
        await asyncio.sleep(self.delay_s)
        text = self.lines[self.heard] if self.heard < len(self.lines) else ""
        self.heard += 1
        return Transcript(text=text, no_speech=not text, confidence=0.9 if text else 0.0)


@dataclass
class ScriptedTTS:
    """µ-law silence, ``seconds_per_char`` long per character, one chunk per call."""

    seconds_per_char: float = 0.02
    delay_s: float = 0.0
    spoken: list[str] = field(default_factory=list)

    async def stream(
        self, text: str, encoding: str, voice: str = "standard"
    ) -> AsyncGenerator[AudioChunk, None]:
        await asyncio.sleep(self.delay_s)
        self.spoken.append(text)
        n = max(160, int(len(text) * self.seconds_per_char * 8000) // 160 * 160)
        yield AudioChunk(
            audio=bytes([ULAW_SILENCE]) * n,
            sample_rate=8000,
            encoding=encoding,
            duration_s=n / 8000,
            synth_ms=self.delay_s * 1000,
            cached=False,
            index=0,
            text=text,
        )
