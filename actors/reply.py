"""Where the agent's words come from: script | exact cache | semantic cache (raced) | LLM + filler.

``ReplySourcer.pieces`` turns a turn's plan into speakable pieces, each released as early as it
is known:

- scripted lines (the plan's ``say``), sentence by sentence; the first clause of a long first
  sentence that is not in the TTS phrase cache goes out alone, so its audio starts sooner;
- for an off-script turn: the exact cache tier (one Redis read by the cache's own client, no
  Serve hop), then the semantic tier with a short head start; if it has not answered by then,
  the LLM is asked too and a semantic hit that arrives before the LLM's first token still wins
  (the LLM stream is closed, so the provider stops). A filler line ("One moment.") is said when
  no token has come after ``filler_after_s``. The LLM's reply is cut into sentences as it
  streams and, off the turn's path, stored in the cache as a template.

The services arrive as objects handed in (``CacheClient``, ``LLMClient``): this module never
imports a service.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any, Protocol

from actors import metrics
from actors.turn_log import TurnRecord
from common.events import CacheHit, ReplySource
from common.llm_types import DoneEvent, ErrorEvent, LLMEvent, LLMRequest, RouteEvent, TokenEvent
from engine.cache_scope import CacheScope, render_template, templatize
from engine.conversation import Conversation, TurnPlan
from engine.guard import GuardRule, ReplyGuard
from engine.voice_text import SentenceChunker, split_first_clause, split_sentences

log = logging.getLogger("voxray.reply")


class CacheClient(Protocol):
    """The reply cache as a call sees it."""

    async def exact(self, scope: CacheScope, text: str) -> CacheHit | None: ...

    async def semantic(
        self, scope: CacheScope, text: str, embedding: list[float] | None = None
    ) -> CacheHit | None: ...

    async def store(
        self, scope: CacheScope, text: str, template: str, call_values: dict[str, Any], model: str = ""
    ) -> None: ...


class LLMClient(Protocol):
    """The LLM router as a call sees it: one streamed reply per request."""

    def stream(self, request: LLMRequest) -> AsyncGenerator[LLMEvent, None]: ...


@dataclass(frozen=True)
class ReplyPolicy:
    semantic_head_start_s: float = 0.010
    filler_after_s: float = 1.5  # no LLM token by then: one of the schema's fillers
    max_tokens: int = 80
    temperature: float = 0.3
    # Providers whose replies may seed the cache; the small local model's may not.
    cache_seed_providers: frozenset[str] = frozenset({"anthropic", "openai", "openai_compatible"})


@dataclass(frozen=True)
class ReplyPiece:
    text: str
    source: ReplySource


class ReplySourcer:
    def __init__(self, cache: CacheClient, llm: LLMClient, policy: ReplyPolicy | None = None):
        self.cache = cache
        self.llm = llm
        self.policy = policy or ReplyPolicy()
        self._background: set[asyncio.Task[None]] = set()

    async def pieces(
        self,
        convo: Conversation,
        plan: TurnPlan,
        caller_text: str,
        record: TurnRecord,
        llm_tier: str | None = None,
    ) -> AsyncGenerator[ReplyPiece, None]:
        """The reply to one turn, piece by piece; fills ``record``'s source, stages and LLM info."""
        if plan.say:
            record.source = ReplySource.SCRIPT
            for text in script_pieces(plan.say, convo.schema.static_sentences):
                yield ReplyPiece(text, ReplySource.SCRIPT)
        if not plan.needs_llm:
            return
        vector = plan.nlu.embedding if plan.nlu is not None else None
        async with aclosing(self._off_script(convo, caller_text, record, vector, llm_tier)) as pieces:
            async for piece in pieces:
                yield piece

    async def _off_script(
        self,
        convo: Conversation,
        caller_text: str,
        record: TurnRecord,
        vector: list[float] | None,
        llm_tier: str | None = None,
    ) -> AsyncGenerator[ReplyPiece, None]:
        state = convo.current
        values = convo.render()
        scope = CacheScope.for_call(
            convo.schema.name, convo.schema.version, state.name, convo.state.slots, sorted(state.slots)
        )
        t0 = time.perf_counter()
        hit: CacheHit | None = None
        lookup: asyncio.Future[CacheHit | None] | None = None  # the semantic tier, still answering
        if state.spec.cacheable:
            hit, lookup = await self._cache_first(scope, caller_text, vector)
        record.stages_ms["cache"] = (time.perf_counter() - t0) * 1000
        guard = convo.reply_guard(caller_text)
        cached = _hit_text(hit, values)
        if hit is not None and cached:
            for piece in self._from_cache(convo, guard, record, hit, cached):
                yield piece
            return

        request = _llm_request(convo, caller_text, self.policy, llm_tier)
        stopped: GuardRule | None = None  # the rule a sentence of the reply broke
        spoken = 0
        chunker = SentenceChunker()
        t1 = time.perf_counter()
        reply: list[str] = []
        failed = False
        try:
            async with aclosing(self.llm.stream(request)) as stream:
                events = stream.__aiter__()
                head: list[LLMEvent] = []
                fillers = convo.schema.spec.fillers
                deadline = time.monotonic() + self.policy.filler_after_s
                waiting = bool(fillers)
                pending = asyncio.ensure_future(anext(events, None))
                try:
                    # Read up to the first token; a semantic hit that comes first wins; a filler if
                    # the first token is slow to come.
                    while True:
                        timeout = max(0.0, deadline - time.monotonic()) if waiting else None
                        racing: set[asyncio.Future[Any]] = {pending} if lookup is None else {pending, lookup}
                        done, _ = await asyncio.wait(
                            racing, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
                        )
                        if lookup is not None and lookup in done:
                            hit, lookup = _lookup_result(lookup), None
                            cached = _hit_text(hit, values)
                            if cached:
                                record.stages_ms["cache"] = (time.perf_counter() - t0) * 1000
                                record.llm = {"cancelled_for_cache": True}
                                break
                            continue
                        if not done:
                            waiting = False
                            record.stages_ms["filler_after"] = self.policy.filler_after_s * 1000
                            yield ReplyPiece(fillers[record.turn % len(fillers)], ReplySource.SCRIPT)
                            continue
                        event = pending.result()
                        if event is None:
                            break
                        head.append(event)
                        if not isinstance(event, RouteEvent):
                            break
                        pending = asyncio.ensure_future(anext(events, None))
                finally:
                    await _cancel(pending)  # the stream is closed next: nothing may be reading it
                    if lookup is not None:  # the LLM answered first: the cache's answer is moot
                        await _cancel(lookup)
                        lookup = None
                if not cached:  # after a cache win, leaving this block closes the unread LLM stream
                    async for event in _chain(head, events):
                        if isinstance(event, TokenEvent):
                            if "llm_ttft" not in record.stages_ms:
                                record.stages_ms["llm_ttft"] = (time.perf_counter() - t1) * 1000
                            reply.append(event.text)
                            for chunk in chunker.feed(event.text):
                                passed, stopped = _guarded(guard, chunk)
                                for sentence in passed:
                                    spoken += 1
                                    yield ReplyPiece(sentence, ReplySource.LLM)
                                if stopped is not None:
                                    break
                            if stopped is not None:
                                break  # leaving the loop closes the stream: the provider stops
                        elif isinstance(event, DoneEvent):
                            record.llm = _llm_summary(event)
                        elif isinstance(event, ErrorEvent):
                            failed = True
                            metrics.error("llm", "no_provider_reply")
        except Exception as exc:
            log.warning("call %s: LLM stream failed: %s", convo.state.call_id, type(exc).__name__)
            metrics.error("llm", type(exc).__name__)
            failed = True
        if hit is not None and cached:
            for piece in self._from_cache(convo, guard, record, hit, cached):
                yield piece
            return
        if stopped is None:
            for chunk in chunker.flush():
                passed, stopped = _guarded(guard, chunk)
                for sentence in passed:
                    spoken += 1
                    yield ReplyPiece(sentence, ReplySource.LLM)
                if stopped is not None:
                    break
        if failed and not reply:
            record.source = ReplySource.FALLBACK
            yield ReplyPiece(convo.schema.fallbacks["llm_unavailable"].render(values), ReplySource.FALLBACK)
            return
        record.source = ReplySource.LLM
        if stopped is not None:
            _count_stop(record, stopped, "llm")
            if not spoken:
                record.source = ReplySource.FALLBACK
                yield ReplyPiece(convo.recovery_line(), ReplySource.FALLBACK)
            return
        full = " ".join(guard.said).strip()
        provider = str(record.llm.get("provider") or "")
        if full and state.spec.cacheable and provider in self.policy.cache_seed_providers:
            # Templates carry call-data fields only; slot values are part of the scope instead.
            # Stored only once the whole reply was heard (the call commits it: ``commit_store``).
            model = str(record.llm.get("model") or "")
            record.pending_store = (scope, caller_text, templatize(full, convo.values), convo.values, model)

    async def _cache_first(
        self, scope: CacheScope, text: str, vector: list[float] | None = None
    ) -> tuple[CacheHit | None, asyncio.Future[CacheHit | None] | None]:
        """The exact tier; after a miss the semantic tier gets its head start. Returns (hit, None),
        (None, None) for a miss, or (None, lookup) when the semantic tier is still answering: it
        then races the LLM."""
        try:
            hit = await self.cache.exact(scope, text)
        except Exception as exc:  # the cache is an optimisation: never fail a turn on it
            log.warning("cache lookup failed: %s", type(exc).__name__)
            metrics.error("cache", type(exc).__name__)
            hit = None
        if hit is not None:
            return hit, None
        lookup = asyncio.ensure_future(self.cache.semantic(scope, text, vector))
        done, _ = await asyncio.wait({lookup}, timeout=self.policy.semantic_head_start_s)
        return (_lookup_result(lookup), None) if done else (None, lookup)

    async def drain(self) -> None:
        """Wait for the cache stores still running off the turn's path."""
        while self._background:
            await asyncio.gather(*self._background, return_exceptions=True)

    def _from_cache(
        self, convo: Conversation, guard: ReplyGuard, record: TurnRecord, hit: CacheHit, text: str
    ) -> list[ReplyPiece]:
        """A cached reply passes the same guard as a fresh one: an entry that went bad (or was
        written by anything but this code) is never spoken."""
        record.source = ReplySource.CACHE_EXACT if hit.tier == "exact" else ReplySource.CACHE_SEMANTIC
        passed, stopped = _guarded(guard, text)
        if stopped is None:
            return [ReplyPiece(sentence, record.source) for sentence in passed]
        _count_stop(record, stopped, "cache")
        record.source = ReplySource.FALLBACK
        return [ReplyPiece(convo.recovery_line(), ReplySource.FALLBACK)]

    def commit_store(self, record: TurnRecord) -> None:
        """Store the turn's reply in the cache: the call calls this once the reply was heard in
        full (a reply cut off by a barge-in is never stored)."""
        if record.pending_store is not None:
            self._store_later(*record.pending_store)
            record.pending_store = None

    def _store_later(
        self, scope: CacheScope, text: str, template: str, values: dict[str, Any], model: str
    ) -> None:
        async def store() -> None:
            try:
                await self.cache.store(scope, text, template, values, model)
            except Exception as exc:
                log.warning("cache store failed: %s", type(exc).__name__)

        task = asyncio.get_running_loop().create_task(store())
        self._background.add(task)  # off the turn's path; kept referenced until done
        task.add_done_callback(self._background.discard)


def script_pieces(lines: list[str], static_sentences: frozenset[str] | set[str]) -> list[str]:
    """Scripted lines as speakable pieces: one per sentence; the first clause of a long, uncached
    first sentence goes out alone so its audio starts sooner."""
    pieces: list[str] = []
    first = True
    for line in lines:
        for sentence in split_sentences(line):
            parts = [sentence] if sentence in static_sentences or not first else split_first_clause(sentence)
            first = False
            pieces.extend(parts)
    return pieces


def _llm_request(
    convo: Conversation, caller_text: str, policy: ReplyPolicy, tier: str | None = None
) -> LLMRequest:
    system, messages = convo.llm_request()
    state = convo.current
    return LLMRequest.model_validate(
        {
            "system": system,
            "messages": messages or [{"role": "user", "content": caller_text}],
            "max_tokens": policy.max_tokens,
            "temperature": policy.temperature,
            "call_id": convo.state.call_id,
            "state": state.name,
            "policy": state.spec.llm_policy,
            "tier": tier,  # an escalated call asks for the strong tier
            "tools": [f.model_dump() for f in state.spec.functions],
        }
    )


def _llm_summary(event: DoneEvent) -> dict[str, Any]:
    return {
        "provider": event.provider,
        "model": event.model,
        "usage": event.usage.model_dump(),
        "ttft_ms": event.ttft_ms,
        "cost_usd": event.cost_usd,
        "policy": event.policy,
        "tier": event.tier,
        "router_ttft_ms": event.router_ttft_ms,
        "total_ms": event.total_ms,
    }


async def _chain(head: list[LLMEvent], rest: AsyncIterator[LLMEvent]) -> AsyncGenerator[LLMEvent, None]:
    for item in head:
        yield item
    async for item in rest:
        yield item


def _guarded(guard: ReplyGuard, text: str) -> tuple[list[str], GuardRule | None]:
    """The sentences of ``text`` the guard lets through, up to the first it stops (and its rule)."""
    passed: list[str] = []
    for sentence in split_sentences(text):
        rule = guard.check(sentence)
        if rule is not None:
            return passed, rule
        passed.append(sentence)
    return passed, None


def _count_stop(record: TurnRecord, rule: GuardRule, source: str) -> None:
    record.llm["guard"] = {"rule": str(rule), "source": source}
    metrics.guard_stopped(str(rule), source)


def _hit_text(hit: CacheHit | None, values: dict[str, Any]) -> str:
    if hit is None:
        return ""
    try:
        return render_template(hit.template, values)
    except KeyError:  # the template names a field this call lacks: treat as a miss
        return ""


def _lookup_result(lookup: asyncio.Future[CacheHit | None]) -> CacheHit | None:
    try:
        return lookup.result()
    except Exception as exc:
        log.warning("cache lookup failed: %s", type(exc).__name__)
        metrics.error("cache", type(exc).__name__)
        return None


async def _cancel(future: asyncio.Future[Any]) -> None:
    if not future.done():
        future.cancel()
        await asyncio.wait({future})
