"""One call: the engine's conversation plus the shared speech, cache and LLM services.

A CallActor is a plain object hosted (many at a time) by a ``CallHost`` Ray actor. Per turn:
STT → NLU + transition (engine) → scripted line, or semantic cache → LLM router (streamed)
→ sentence chunker → TTS per chunk → audio back. The first audio leaves as soon as the
first clause is synthesised. The call state is snapshotted to Redis after every turn.
"""

from __future__ import annotations

import asyncio
import json
import logging
import statistics
import time
from collections.abc import AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any, Protocol

from actors import metrics
from actors.store import CallStore
from engine.backchannel import is_backchannel
from engine.cache_scope import CacheScope, exact_key, render_template
from engine.conversation import Conversation, TurnPlan
from engine.voice_text import SentenceChunker, split_first_clause, split_sentences

log = logging.getLogger("voxray.call")

STAGES = ("stt", "nlu", "cache", "llm_ttft", "tts_first_audio", "voice_to_voice")
FILLER_AFTER_S = 1.5  # no LLM token by then: say one of the schema's fillers ("One moment.")
MIN_TEMPLATE_VALUE_CHARS = 3


class Services(Protocol):
    """What a call needs from the shared deployments (Serve handles in production)."""

    async def transcribe(self, pcm16_16k: bytes) -> dict[str, Any]: ...

    def speak(self, text: str, encoding: str) -> AsyncIterator[dict[str, Any]]: ...

    async def semantic_lookup(self, scope: dict[str, Any], text: str) -> Any:
        """The semantic tier only: the call host reads the exact tier from Redis itself."""

    async def cache_store(
        self,
        scope: dict[str, Any],
        text: str,
        template: str,
        embedding: list[float] | None,
        call_values: dict[str, Any],
    ) -> Any: ...

    def llm_stream(self, request: dict[str, Any]) -> AsyncIterator[dict[str, Any]]: ...


@dataclass
class TurnRecord:
    turn: int
    mode: str
    state_before: str
    state_after: str
    caller: str = ""
    agent: str = ""
    source: str = ""  # script | cache_exact | cache_semantic | llm | fallback
    stages_ms: dict[str, float] = field(default_factory=dict)
    llm: dict[str, Any] = field(default_factory=dict)
    interrupted: bool = False


async def _chain(
    head: list[dict[str, Any]], rest: AsyncIterator[dict[str, Any]]
) -> AsyncIterator[dict[str, Any]]:
    for item in head:
        yield item
    async for item in rest:
        yield item


def templatize(reply: str, values: dict[str, Any]) -> str:
    """Replace this call's data values in an LLM reply with ``{field}`` placeholders, longest first,
    so the cached template carries no caller's data."""
    out = reply
    for name, value in sorted(values.items(), key=lambda kv: -len(str(kv[1]))):
        text = str(value)
        if len(text) >= MIN_TEMPLATE_VALUE_CHARS and text in out:
            out = out.replace(text, "{" + name + "}")
    return out


class CallActor:
    def __init__(
        self,
        conversation: Conversation,
        services: Services,
        store: CallStore | None,
        host: str,
        webhook_url: str | None = None,
        cache_prefix: str | None = None,
        encoding: str = "mulaw_8k",
        semantic_head_start_s: float = 0.010,
    ):
        self.conversation = conversation
        self.services = services
        self.store = store
        self.host = host
        self.webhook_url = webhook_url
        self.cache_prefix = cache_prefix
        self.encoding = encoding
        self.semantic_head_start_s = semantic_head_start_s
        self.turns: list[TurnRecord] = []
        self.status = "active"
        self.created_at = time.time()
        self.cost_usd = 0.0
        self._lock = asyncio.Lock()
        self._background: set[asyncio.Task[None]] = set()
        self._interrupted = asyncio.Event()
        # The whole call's transcript (the conversation keeps only a window for the LLM); a call
        # resumed from a snapshot starts from that window.
        self.transcript = [{"speaker": who, "text": text} for who, text in conversation.state.history]
        self._heard_text = ""

    @property
    def call_id(self) -> str:
        return self.conversation.state.call_id

    # ---- text mode: everything but STT/TTS -------------------------------------------------
    async def text_turn(self, text: str) -> dict[str, Any]:
        async with self._lock:
            t0 = time.perf_counter()
            record, plan = await self._understand(text, "text")
            parts = [chunk async for chunk in self._reply_chunks(plan, text, record)]
            record.stages_ms["turn_total"] = (time.perf_counter() - t0) * 1000
            await self._finish_turn(record, " ".join(parts), plan)
            return self._turn_result(record, plan)

    # ---- audio mode ------------------------------------------------------------------------
    async def audio_turn(
        self, pcm16_16k: bytes, speech_end_at: float | None = None, during_playback: bool = False
    ) -> AsyncIterator[dict[str, Any]]:
        """Events: {"type": "transcript"}, then {"type": "audio", "audio": bytes, "mark": str} per
        clause, then {"type": "done"}. ``speech_end_at`` is the edge's wall-clock end of speech.
        A short utterance said over the agent (``during_playback``) that is only a backchannel
        ("mhm", "okay") ends with {"type": "ignored"}: it is no turn."""
        async with self._lock:
            t0 = time.perf_counter()
            speech_end = speech_end_at or time.time()
            try:
                transcript = await self.services.transcribe(pcm16_16k)
            except Exception as exc:  # the STT replica said no: ask the caller to repeat
                log.warning("call %s: STT failed: %s", self.call_id, type(exc).__name__)
                metrics.error("stt", type(exc).__name__)
                transcript = {"text": "", "no_speech": True, "confidence": 0.0}
            stt_ms = (time.perf_counter() - t0) * 1000
            text = str(transcript.get("text", "")).strip()
            yield {"type": "transcript", "text": text, "confidence": transcript.get("confidence")}
            if during_playback and is_backchannel(text):
                yield {"type": "ignored", "reason": "backchannel"}
                return
            if not text or transcript.get("no_speech"):
                line = self.conversation.schema.fallbacks["stt_failure"].render(self.conversation.render())
                async for event in self._speak_lines([line], "stt_failure"):
                    yield event
                yield {"type": "done", "state": self.conversation.state.state, "terminal": False}
                return
            record, plan = await self._understand(text, "audio")
            record.stages_ms["stt"] = stt_ms
            spoken: list[str] = []
            first_audio = False
            self._interrupted.clear()
            async with aclosing(self._reply_chunks(plan, text, record)) as chunks:
                async for chunk in chunks:
                    if self._interrupted.is_set():
                        break  # closing the chunks closes the LLM stream: no tokens after barge-in
                    spoken.append(chunk)
                    async for audio in self.services.speak(chunk, self.encoding):
                        if not first_audio:
                            first_audio = True
                            record.stages_ms["tts_first_audio"] = audio.get("synth_ms", 0.0)
                            record.stages_ms["voice_to_voice"] = (time.time() - speech_end) * 1000
                        yield {
                            "type": "audio",
                            "audio": audio["audio"],
                            "text": audio.get("text", chunk),
                            "mark": f"t{record.turn}c{len(spoken) - 1}",
                            "duration_s": audio.get("duration_s"),
                        }
            record.stages_ms["turn_total"] = (time.perf_counter() - t0) * 1000
            agent_text = " ".join(spoken)
            if self._interrupted.is_set():
                record.interrupted = True
                agent_text = self._heard_text
            await self._finish_turn(record, agent_text, plan)
            yield {"type": "done", **self._turn_result(record, plan)}

    async def opening(self) -> list[str]:
        plan = self.conversation.opening()
        lines = list(plan.say)
        for line in lines:
            self._record_agent(line)
        await self._snapshot()
        return lines

    def barge_in(self, heard_text: str) -> None:
        """The caller spoke over the agent: stop the reply in flight, and keep only the part of
        the agent's reply the caller heard."""
        if self._lock.locked():  # a turn is generating: it stops at its next chunk and records this
            self._heard_text = heard_text
            self._interrupted.set()
            return
        if not self.turns:
            return
        last = self.turns[-1]
        last.interrupted = True
        last.agent = heard_text
        history = self.conversation.state.history
        if history and history[-1][0] == "agent":
            history[-1] = ("agent", heard_text)
        if self.transcript and self.transcript[-1]["speaker"] == "agent":
            self.transcript[-1]["text"] = heard_text
        self.conversation.state.last_agent_line = heard_text
        self.conversation.state.log("barge_in", turn=last.turn)

    # ---- shared turn core ------------------------------------------------------------------
    async def _understand(self, text: str, mode: str) -> tuple[TurnRecord, TurnPlan]:
        before = self.conversation.state.state
        plan = await self.conversation.take_turn(text)
        self.transcript.append({"speaker": "caller", "text": text})
        record = TurnRecord(
            turn=len(self.turns) + 1, mode=mode, state_before=before, state_after=plan.state, caller=text
        )
        record.stages_ms["nlu"] = plan.timings_ms.get("nlu_ms", 0.0) + plan.timings_ms.get(
            "transition_ms", 0.0
        )
        return record, plan

    async def _reply_chunks(self, plan: TurnPlan, caller_text: str, record: TurnRecord) -> AsyncIterator[str]:
        """The agent's reply as speakable chunks, as early as each is known."""
        if plan.say:
            record.source = "script"
            static = self.conversation.schema.static_sentences
            first = True
            for line in plan.say:
                for sentence in split_sentences(line):
                    # The first clause of a long, uncached first sentence goes out alone: earlier audio.
                    parts = [sentence] if sentence in static or not first else split_first_clause(sentence)
                    first = False
                    for part in parts:
                        yield part
        if not plan.needs_llm:
            return
        async with aclosing(self._llm_reply(caller_text, record)) as chunks:
            async for chunk in chunks:
                yield chunk

    async def _llm_reply(self, caller_text: str, record: TurnRecord) -> AsyncIterator[str]:
        convo = self.conversation
        state = convo.current
        values = convo.render()
        scope_obj = CacheScope.for_call(
            convo.schema.name, convo.schema.version, state.name, convo.state.slots, sorted(state.slots)
        )
        scope = scope_obj.model_dump()
        t0 = time.perf_counter()
        hit: dict[str, Any] | None = None
        lookup: asyncio.Future[Any] | None = None  # the semantic tier, still answering
        if state.spec.cacheable:
            hit, lookup = await self._cache_first(scope_obj, scope, caller_text)
        record.stages_ms["cache"] = (time.perf_counter() - t0) * 1000
        cached = self._hit_text(hit, values)
        if cached and hit is not None:
            for sentence in self._from_cache(record, hit, cached):
                yield sentence
            return

        system, messages = convo.llm_request()
        request = {
            "system": system,
            "messages": messages or [{"role": "user", "content": caller_text}],
            "max_tokens": 80,
            "temperature": 0.3,
            "call_id": self.call_id,
            "state": state.name,
            "policy": state.spec.llm_policy,
            "tools": [f.model_dump() for f in state.spec.functions],
        }
        chunker = SentenceChunker()
        t1 = time.perf_counter()
        reply: list[str] = []
        failed = False
        try:
            async with aclosing(self.services.llm_stream(request)) as stream:
                events = stream.__aiter__()
                head: list[dict[str, Any]] = []
                fillers = convo.schema.spec.fillers
                deadline = time.monotonic() + FILLER_AFTER_S
                waiting = bool(fillers)
                pending = asyncio.ensure_future(anext(events, None))
                try:
                    # Read up to the first token; a semantic hit that comes first wins; a filler if
                    # the first token is slow to come.
                    while True:
                        timeout = max(0.0, deadline - time.monotonic()) if waiting else None
                        racing = {pending} if lookup is None else {pending, lookup}
                        done, _ = await asyncio.wait(
                            racing, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
                        )
                        if lookup is not None and lookup in done:
                            hit, lookup = self._lookup_result(lookup), None
                            cached = self._hit_text(hit, values)
                            if cached:
                                record.stages_ms["cache"] = (time.perf_counter() - t0) * 1000
                                record.llm = {"cancelled_for_cache": True}
                                break
                            continue
                        if not done:
                            waiting = False
                            record.stages_ms["filler_after"] = FILLER_AFTER_S * 1000
                            yield fillers[record.turn % len(fillers)]
                            continue
                        event = pending.result()
                        if event is None:
                            break
                        head.append(event)
                        if event.get("type") != "route":
                            break
                        pending = asyncio.ensure_future(anext(events, None))
                finally:
                    await self._cancel(pending)  # the stream is closed next: nothing may be reading it
                    if lookup is not None:  # the LLM answered first: the cache's answer is moot
                        await self._cancel(lookup)
                        lookup = None
                if not cached:  # after a cache win, leaving this block closes the unread LLM stream
                    async for event in _chain(head, events):
                        kind = event.get("type")
                        if kind == "token":
                            if "llm_ttft" not in record.stages_ms:
                                record.stages_ms["llm_ttft"] = (time.perf_counter() - t1) * 1000
                            reply.append(event["text"])
                            for chunk in chunker.feed(event["text"]):
                                yield chunk
                        elif kind == "done":
                            self._record_llm_done(record, event)
                        elif kind == "error":
                            failed = True
                            metrics.error("llm", "no_provider_reply")
        except Exception as exc:
            log.warning("call %s: LLM stream failed: %s", self.call_id, type(exc).__name__)
            metrics.error("llm", type(exc).__name__)
            failed = True
        if cached and hit is not None:
            for sentence in self._from_cache(record, hit, cached):
                yield sentence
            return
        for chunk in chunker.flush():
            yield chunk
        if failed and not reply:
            record.source = "fallback"
            yield convo.schema.fallbacks["llm_unavailable"].render(values)
            return
        record.source = "llm"
        full = "".join(reply).strip()
        if full and state.spec.cacheable:
            # Templates carry call-data fields only; slot values are part of the scope instead.
            template = templatize(full, convo.values)
            task = asyncio.get_running_loop().create_task(self._store(scope, caller_text, template))
            self._background.add(task)  # off the turn's path; kept referenced until done
            task.add_done_callback(self._background.discard)

    def _record_llm_done(self, record: TurnRecord, event: dict[str, Any]) -> None:
        keys = ("provider", "model", "ttft_ms", "cost_usd", "policy", "tier", "router_ttft_ms", "total_ms")
        record.llm = {k: event.get(k) for k in keys}
        self.cost_usd += float(event.get("cost_usd") or 0.0)

    async def _cache_first(
        self, scope_obj: CacheScope, scope: dict[str, Any], text: str
    ) -> tuple[dict[str, Any] | None, asyncio.Future[Any] | None]:
        """The exact tier straight from Redis (no Serve hop); after a miss, the semantic tier gets
        ``semantic_head_start_s`` to answer. Returns (hit, None), (None, None) for a miss, or
        (None, lookup) when the semantic tier is still answering: it then races the LLM."""
        try:
            hit = await self._exact_hit(scope_obj, text)
        except Exception as exc:  # the cache is an optimisation: never fail a turn on it
            log.warning("call %s: cache lookup failed: %s", self.call_id, type(exc).__name__)
            metrics.error("cache", type(exc).__name__)
            hit = None
        if hit is not None:
            return hit, None
        lookup = asyncio.ensure_future(self.services.semantic_lookup(scope, text))
        done, _ = await asyncio.wait({lookup}, timeout=self.semantic_head_start_s)
        return (self._lookup_result(lookup), None) if done else (None, lookup)

    def _lookup_result(self, lookup: asyncio.Future[Any]) -> dict[str, Any] | None:
        try:
            hit: dict[str, Any] | None = lookup.result()
            return hit
        except Exception as exc:
            log.warning("call %s: cache lookup failed: %s", self.call_id, type(exc).__name__)
            metrics.error("cache", type(exc).__name__)
            return None

    @staticmethod
    def _from_cache(record: TurnRecord, hit: dict[str, Any], text: str) -> list[str]:
        record.source = f"cache_{hit.get('tier', 'semantic')}"
        return split_sentences(text)

    @staticmethod
    def _hit_text(hit: dict[str, Any] | None, values: dict[str, Any]) -> str:
        if not hit:
            return ""
        try:
            return render_template(hit["template"], values)
        except KeyError:  # the template names a field this call lacks: treat as a miss
            return ""

    @staticmethod
    async def _cancel(future: asyncio.Future[Any]) -> None:
        if not future.done():
            future.cancel()
            await asyncio.wait({future})

    async def _exact_hit(self, scope: CacheScope, text: str) -> dict[str, Any] | None:
        if self.store is None or self.cache_prefix is None:
            return None
        raw = await self.store.redis.get(exact_key(self.cache_prefix, scope, text))
        return {"template": json.loads(raw)["template"], "tier": "exact"} if raw else None

    async def _store(self, scope: dict[str, Any], caller_text: str, template: str) -> None:
        try:
            await self.services.cache_store(scope, caller_text, template, None, self.conversation.values)
        except Exception as exc:
            log.warning("call %s: cache store failed: %s", self.call_id, type(exc).__name__)

    async def _speak_lines(self, lines: list[str], source: str) -> AsyncIterator[dict[str, Any]]:
        for i, line in enumerate(lines):
            async for audio in self.services.speak(line, self.encoding):
                yield {"type": "audio", "audio": audio["audio"], "text": line, "mark": f"{source}{i}"}
            self._record_agent(line)

    def _record_agent(self, text: str) -> None:
        self.conversation.record_agent(text)
        self.transcript.append({"speaker": "agent", "text": text})

    async def _finish_turn(self, record: TurnRecord, agent_text: str, plan: TurnPlan) -> None:
        record.agent = agent_text
        record.state_after = self.conversation.state.state
        if agent_text:
            self._record_agent(agent_text)
        self.turns.append(record)
        metrics.turn_observed(self.conversation.schema.name, record.mode, record.source, record.stages_ms)
        if plan.terminal:
            self.status = "completed"
        await self._snapshot()

    def _turn_result(self, record: TurnRecord, plan: TurnPlan) -> dict[str, Any]:
        return {
            "turn": record.turn,
            "caller": record.caller,
            "agent": record.agent,
            "source": record.source,
            "state": record.state_after,
            "terminal": plan.terminal,
            "outcome": plan.outcome,
            "stages_ms": record.stages_ms,
            "llm": record.llm,
        }

    async def _snapshot(self) -> None:
        if self.store is None:
            return
        try:
            await self.store.save_snapshot(self.call_id, self.conversation.state.to_snapshot(), self.host)
        except Exception as exc:  # a Redis blip costs recoverability of this turn, not the call
            log.warning("call %s: snapshot failed: %s", self.call_id, type(exc).__name__)

    # ---- reports ---------------------------------------------------------------------------
    def status_view(self) -> dict[str, Any]:
        state = self.conversation.state
        return {
            "call_id": self.call_id,
            "schema": state.schema,
            "status": self.status,
            "state": state.state,
            "outcome": state.outcome,
            "slots": dict(state.slots),
            "transcript": list(self.transcript),
            "turns": len(self.turns),
            "host": self.host,
        }

    def performance_report(self) -> dict[str, Any]:
        summary: dict[str, dict[str, float]] = {}
        for stage in (*STAGES, "turn_total"):
            values = sorted(t.stages_ms[stage] for t in self.turns if stage in t.stages_ms)
            if values:
                summary[stage] = {
                    "count": len(values),
                    "p50_ms": statistics.median(values),
                    "p95_ms": values[min(len(values) - 1, int(0.95 * len(values)))],
                    "max_ms": values[-1],
                }
        state = self.conversation.state
        return {
            "call_id": self.call_id,
            "turns": [
                {
                    "turn": t.turn,
                    "mode": t.mode,
                    "source": t.source,
                    "state": t.state_after,
                    "stages_ms": {k: round(v, 2) for k, v in t.stages_ms.items()},
                    "llm": t.llm,
                }
                for t in self.turns
            ],
            "stages": summary,
            "sources": {s: sum(t.source == s for t in self.turns) for s in {t.source for t in self.turns}},
            "nlu": {"reconciles": state.reconciles, "llm_assisted_turns": state.llm_nlu_turns},
            "cost_usd": round(self.cost_usd, 6),
            "duration_s": round(time.time() - self.created_at, 3),
        }

    def call_record(self) -> dict[str, Any]:
        return {
            **self.status_view(),
            "call_data_fields": sorted(self.conversation.state.call_data),
            "performance": self.performance_report(),
            "ended_at": time.time(),
        }
