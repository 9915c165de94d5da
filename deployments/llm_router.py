"""The LLM router: racing / hedging / single-provider streaming with failover, per-provider
timeouts, concurrency limits, retries, circuit breakers, metrics and cost.

``LLMRouter`` is the plain asyncio core (tests and benchmarks drive it directly);
``LLMRouterDeployment`` is the Serve deployment around it.

Policies (request > per-state > per-tier > default):
- ``single``: the best candidate only; if it fails before its first token, the next one.
- ``race``:   the best ``race_width`` candidates at once; the first token (or tool call) wins
              and the others are cancelled at once.
- ``hedge``:  the best candidate; if no token arrived after the hedge delay (fixed, or the
              primary's recent ``hedge_percentile`` TTFT), a second one; first token wins.

Cancellation: each provider stream is consumed by one task (``_pump``); losers are cancelled by
cancelling that task, so the provider generator unwinds in its own task and its ``async with``
closes the HTTP response (the server sees the disconnect; nothing is generated after it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, Field, ValidationError
from ray import serve

from deployments.providers import build_provider, configs_from_settings
from deployments.providers.base import (
    Provider,
    ProviderConfig,
    ProviderError,
    StreamEnd,
    TextDelta,
    ToolCallOut,
)
from deployments.providers.stats import ProviderStats
from engine.breaker import CircuitBreaker
from engine.llm_types import (
    DoneEvent,
    ErrorEvent,
    LLMRequest,
    Policy,
    RouteEvent,
    Tier,
    TokenEvent,
    ToolCallEvent,
    choose_tier,
)
from engine.settings import RouterSettings, get_settings

log = logging.getLogger("voxray.llm_router")


class RouterOptions(BaseModel):
    """Router knobs beyond ``RouterSettings`` (per-state / per-tier policy, race width)."""

    settings: RouterSettings = Field(default_factory=lambda: get_settings().router)
    race_width: int = Field(2, ge=2, description="Providers launched at once by 'race'.")
    hedge_percentile: float = Field(
        90.0, gt=0, lt=100, description="Primary's TTFT percentile used as hedge delay."
    )
    hedge_min_samples: int = Field(
        20, ge=1, description="TTFT samples needed before the percentile is trusted."
    )
    hedge_default_delay_ms: float = Field(300.0, ge=0, description="Hedge delay until enough samples exist.")
    policy_by_state: dict[str, Policy] = Field(default_factory=dict)
    policy_by_tier: dict[str, Policy] = Field(default_factory=dict)
    retry_backoff_s: float = Field(0.05, ge=0, description="First retry backoff; doubles, with jitter.")


@dataclass
class _Runtime:
    provider: Provider
    config: ProviderConfig
    breaker: CircuitBreaker
    semaphore: asyncio.Semaphore
    first_token_timeout_s: float
    total_timeout_s: float
    stats: ProviderStats = field(default_factory=ProviderStats)

    @property
    def name(self) -> str:
        return self.config.name


@dataclass(slots=True)
class _First:
    """Internal queue item: a provider's first content arrived after ``ttft_ms``."""

    item: TextDelta | ToolCallOut
    ttft_ms: float


@dataclass(slots=True)
class _Failed:
    error: str


@dataclass(slots=True)
class _Finished:
    end: StreamEnd
    ttft_ms: float
    total_ms: float


class LLMRouter:
    def __init__(self, providers: list[Provider], options: RouterOptions | None = None):
        if not providers:
            log.warning("LLM router has no providers; every request will fail")
        self.options = options or RouterOptions()
        s = self.options.settings
        names = [p.name for p in providers]
        if len(set(names)) != len(names):
            raise ValueError(f"provider names must be unique, got {names}")
        self._runtimes: dict[str, _Runtime] = {
            p.name: _Runtime(
                provider=p,
                config=p.config,
                breaker=CircuitBreaker(s.breaker_failures, s.breaker_reset_s),
                semaphore=asyncio.Semaphore(p.config.max_concurrency or s.max_concurrency_per_provider),
                first_token_timeout_s=p.config.first_token_timeout_s or s.first_token_timeout_s,
                total_timeout_s=p.config.total_timeout_s or s.total_timeout_s,
            )
            for p in providers
        }
        self._policy_counts: dict[str, int] = {}
        self._tier_counts: dict[str, int] = {}
        self._requests = 0
        self._failed_requests = 0
        self._launched_total = 0

    # ------------------------------------------------------------------ decisions
    def _policy(self, request: LLMRequest, tier: Tier) -> Policy:
        if request.policy:
            return request.policy
        if request.state and request.state in self.options.policy_by_state:
            return self.options.policy_by_state[request.state]
        if tier in self.options.policy_by_tier:
            return self.options.policy_by_tier[tier]
        policy = self.options.settings.policy
        if policy not in ("single", "race", "hedge"):
            raise ValueError(f"router policy must be single, race or hedge; got {policy!r}")
        return policy  # type: ignore[return-value]

    def _candidates(self, request: LLMRequest, tier: Tier) -> list[_Runtime]:
        pool = list(self._runtimes.values())
        if request.providers is not None:
            unknown = set(request.providers) - set(self._runtimes)
            if unknown:
                raise ValueError(
                    f"request names unknown providers {sorted(unknown)}; known: {sorted(self._runtimes)}"
                )
            pool = [self._runtimes[n] for n in request.providers]
        if request.tools:
            with_tools = [r for r in pool if r.config.supports_tools]
            pool = with_tools or pool
        order = {r.name: i for i, r in enumerate(pool)}

        def rank(r: _Runtime) -> tuple[int, int, float, int]:
            p50 = r.stats.ttft_percentile(50)
            return (
                r.breaker.state == "open",
                r.config.tier != tier,
                p50 if p50 is not None else 0.0,  # no history yet: try it early
                order[r.name],
            )

        return sorted(pool, key=rank)

    def _hedge_delay_ms(self, request: LLMRequest, primary: _Runtime) -> float:
        if request.hedge_delay_ms is not None:
            return request.hedge_delay_ms
        if self.options.settings.hedge_delay_ms is not None:
            return self.options.settings.hedge_delay_ms
        recent = primary.stats.ttft_percentile(self.options.hedge_percentile, self.options.hedge_min_samples)
        return recent if recent is not None else self.options.hedge_default_delay_ms

    # ------------------------------------------------------------------ one provider
    async def _pump(
        self, rt: _Runtime, request: LLMRequest, queue: asyncio.Queue[tuple[str, object]]
    ) -> None:
        """Consume one provider's stream in this task, forwarding items to ``queue``."""
        attempt = 0
        rt.stats.requests += 1
        while True:
            emitted = False
            ttft_ms = 0.0
            start = time.perf_counter()
            phase = "first token"
            try:
                async with asyncio.timeout(rt.first_token_timeout_s) as deadline:
                    async with rt.semaphore:
                        agen = rt.provider.stream(request)
                        async with contextlib.aclosing(agen):
                            async for item in agen:
                                if isinstance(item, StreamEnd):
                                    total_ms = (time.perf_counter() - start) * 1000
                                    rt.breaker.record_success()
                                    await queue.put((rt.name, _Finished(item, ttft_ms, total_ms)))
                                    return
                                if not emitted:
                                    emitted = True
                                    ttft_ms = (time.perf_counter() - start) * 1000
                                    rt.stats.observe_ttft(ttft_ms)
                                    phase = "total"
                                    deadline.reschedule(
                                        asyncio.get_running_loop().time()
                                        + rt.total_timeout_s
                                        - ttft_ms / 1000
                                    )
                                    await queue.put((rt.name, _First(item, ttft_ms)))
                                else:
                                    await queue.put((rt.name, item))
                raise ProviderError(rt.name, "stream ended without an end event", retryable=False)
            except asyncio.CancelledError:
                rt.breaker.record_cancelled()
                rt.stats.cancelled += 1
                raise
            except TimeoutError:
                rt.breaker.record_failure()
                rt.stats.timeouts += 1
                rt.stats.errors += 1
                limit = rt.first_token_timeout_s if phase == "first token" else rt.total_timeout_s
                await queue.put((rt.name, _Failed(f"{phase} timeout after {limit:g}s")))
                return
            except ProviderError as exc:
                rt.breaker.record_failure()
                if exc.retryable and not emitted and attempt < self.options.settings.max_retries:
                    attempt += 1
                    rt.stats.retries += 1
                    backoff = self.options.retry_backoff_s * 2 ** (attempt - 1)
                    await asyncio.sleep(backoff * (0.5 + random.random()))
                    if rt.breaker.state == "open":
                        rt.stats.errors += 1
                        await queue.put((rt.name, _Failed(f"{exc} (breaker opened)")))
                        return
                    continue
                rt.stats.errors += 1
                await queue.put((rt.name, _Failed(str(exc))))
                return
            except Exception as exc:  # a bug or an SDK surprise: fail this provider, not the turn
                log.exception("provider %s raised unexpectedly", rt.name)
                rt.breaker.record_failure()
                rt.stats.errors += 1
                await queue.put((rt.name, _Failed(f"{rt.name}: unexpected {type(exc).__name__}")))
                return

    # ------------------------------------------------------------------ one request
    async def stream(self, request: LLMRequest) -> AsyncIterator[dict[str, Any]]:
        t0 = time.perf_counter()
        self._requests += 1
        tier, tier_reason = choose_tier(request)
        try:
            policy = self._policy(request, tier)
            candidates = self._candidates(request, tier)
        except ValueError as exc:
            self._failed_requests += 1
            yield ErrorEvent(message=str(exc)).model_dump()
            return
        self._policy_counts[policy] = self._policy_counts.get(policy, 0) + 1
        self._tier_counts[tier] = self._tier_counts.get(tier, 0) + 1
        hedge_ms = self._hedge_delay_ms(request, candidates[0]) if policy == "hedge" and candidates else None
        yield RouteEvent(
            policy=policy,
            tier=tier,
            tier_reason=tier_reason,
            candidates=[c.name for c in candidates],
            hedge_delay_ms=hedge_ms,
        ).model_dump()

        queue: asyncio.Queue[tuple[str, object]] = asyncio.Queue()
        tasks: dict[str, asyncio.Task[None]] = {}
        launched: list[str] = []
        errors: dict[str, str] = {}
        pending = list(candidates)

        def launch() -> bool:
            while pending:
                rt = pending.pop(0)
                if not rt.breaker.allow():
                    errors[rt.name] = "circuit breaker open"
                    continue
                tasks[rt.name] = asyncio.create_task(self._pump(rt, request, queue), name=f"llm-{rt.name}")
                launched.append(rt.name)
                self._launched_total += 1
                return True
            return False

        initial = self.options.race_width if policy == "race" else 1
        for _ in range(initial):
            launch()
        loop = asyncio.get_running_loop()
        hedge_at = loop.time() + hedge_ms / 1000 if hedge_ms is not None else None
        winner: str | None = None
        first: _First | None = None
        try:
            while winner is None:
                if not tasks and not launch():
                    self._failed_requests += 1
                    yield ErrorEvent(
                        message="no provider produced a reply", errors=errors, launched=launched
                    ).model_dump()
                    return
                try:
                    if hedge_at is not None:
                        async with asyncio.timeout_at(hedge_at):
                            name, item = await queue.get()
                    else:
                        name, item = await queue.get()
                except TimeoutError:
                    hedge_at = None
                    launch()
                    continue
                if isinstance(item, _First):
                    winner, first = name, item
                elif isinstance(item, _Failed):
                    errors[name] = item.error
                    tasks.pop(name, None)
                    if policy != "race" or not tasks:
                        hedge_at = None  # failover now instead of waiting for the hedge delay
                        launch()
                elif isinstance(item, _Finished):  # an empty reply: counts as a failure to answer
                    errors[name] = "empty reply"
                    tasks.pop(name, None)
            assert first is not None
            for name, task in tasks.items():
                if name != winner:
                    task.cancel()
            router_ttft_ms = (time.perf_counter() - t0) * 1000
            win_rt = self._runtimes[winner]
            win_rt.stats.wins += 1
            parts: list[str] = []
            yield self._content_event(winner, first.item, parts)
            while True:
                name, item = await queue.get()
                if name != winner:
                    continue  # a loser's item already queued before its cancel took effect
                if isinstance(item, _Finished):
                    yield self._done(
                        win_rt,
                        item,
                        first.ttft_ms,
                        router_ttft_ms,
                        t0,
                        policy,
                        tier,
                        launched,
                        errors,
                        "".join(parts),
                    ).model_dump()
                    return
                if isinstance(item, _Failed):
                    errors[name] = item.error
                    self._failed_requests += 1
                    yield ErrorEvent(
                        message=f"{winner} failed mid-reply: {item.error}", errors=errors, launched=launched
                    ).model_dump()
                    return
                if isinstance(item, TextDelta | ToolCallOut):
                    yield self._content_event(winner, item, parts)
        finally:
            for task in tasks.values():
                task.cancel()
            if tasks:
                await asyncio.gather(*tasks.values(), return_exceptions=True)

    @staticmethod
    def _content_event(provider: str, item: TextDelta | ToolCallOut, parts: list[str]) -> dict[str, Any]:
        if isinstance(item, TextDelta):
            parts.append(item.text)
            return TokenEvent(text=item.text, provider=provider).model_dump()
        return ToolCallEvent(call=item.call, provider=provider).model_dump()

    def _done(
        self,
        rt: _Runtime,
        fin: _Finished,
        ttft_ms: float,
        router_ttft_ms: float,
        t0: float,
        policy: Policy,
        tier: Tier,
        launched: list[str],
        errors: dict[str, str],
        text: str,
    ) -> DoneEvent:
        usage = fin.end.usage
        cost = rt.config.cost_usd(usage)
        gen_s = (fin.total_ms - ttft_ms) / 1000
        tps = usage.output_tokens / gen_s if len(text) > 0 and usage.output_tokens > 1 and gen_s > 0 else None
        rt.stats.input_tokens += usage.input_tokens
        rt.stats.output_tokens += usage.output_tokens
        rt.stats.cost_usd += cost
        if tps is not None:
            rt.stats.observe_tps(tps)
        return DoneEvent(
            provider=rt.name,
            model=rt.config.model,
            text=text,
            finish_reason=fin.end.finish_reason,
            usage=usage,
            ttft_ms=ttft_ms,
            router_ttft_ms=router_ttft_ms,
            total_ms=(time.perf_counter() - t0) * 1000,
            tokens_per_s=tps,
            cost_usd=cost,
            policy=policy,
            tier=tier,
            launched=launched,
            errors=errors,
        )

    async def complete(self, request: LLMRequest) -> dict[str, Any]:
        """Run one request to the end; returns the done event plus ``tool_calls`` and ``route``."""
        route: dict[str, Any] | None = None
        tool_calls: list[dict[str, Any]] = []
        async for event in self.stream(request):
            if event["type"] == "route":
                route = event
            elif event["type"] == "tool_call":
                tool_calls.append(event["call"])
            elif event["type"] in ("done", "error"):
                return {**event, "tool_calls": tool_calls, "route": route}
        return {"type": "error", "message": "stream ended without a result", "route": route}

    def stats(self) -> dict[str, Any]:
        return {
            "requests": self._requests,
            "failed_requests": self._failed_requests,
            "launched_total": self._launched_total,
            "requests_sent_per_request": self._launched_total / max(self._requests, 1),
            "policies": dict(self._policy_counts),
            "tiers": dict(self._tier_counts),
            "providers": {
                name: {**rt.stats.snapshot(), "breaker": rt.breaker.snapshot(), "tier": rt.config.tier}
                for name, rt in self._runtimes.items()
            },
        }

    async def aclose(self) -> None:
        for rt in self._runtimes.values():
            await rt.provider.aclose()


# A sentence end (or a line break) with the start of the next sentence after it: the earliest
# point at which the call's sentence chunker can cut, so tokens held until then cost no audio time.
_CUTTABLE = re.compile(r"([.!?…]['\")\]]*\s|\n)\s*\S")
COALESCE_MAX_CHARS = 48


def _confirms_a_sentence_end(released_tail: str, held: str) -> bool:
    joined = released_tail + held
    return any(m.end() > len(released_tail) for m in _CUTTABLE.finditer(joined))


async def coalesce_tokens(events: AsyncIterator[dict[str, Any]]) -> AsyncIterator[dict[str, Any]]:
    """Merge token events between sentence ends into one event, so a reply crosses the Serve
    stream (one Ray object per item) as a handful of events rather than one per token.

    The first token goes out alone (time to first token is not delayed); later tokens are held
    until they confirm a sentence end (its next word arrived), reach ``COALESCE_MAX_CHARS``, or
    another event comes; nothing is reordered or dropped."""
    held: list[str] = []
    tail = ""  # the end of the text already sent: a sentence end there is confirmed by what follows
    provider = ""
    first = True

    def release() -> dict[str, Any]:
        nonlocal tail
        text = "".join(held)
        held.clear()
        tail = (tail + text)[-8:]
        return {"type": "token", "text": text, "provider": provider}

    async for event in events:
        if event.get("type") != "token":
            if held:
                yield release()
            yield event
            continue
        if first:
            first = False
            tail = event["text"][-8:]
            yield event
            continue
        held.append(event["text"])
        provider = event["provider"]
        text = "".join(held)
        if len(text) >= COALESCE_MAX_CHARS or _confirms_a_sentence_end(tail, text):
            yield release()
    if held:
        yield release()


@serve.deployment(max_ongoing_requests=512, ray_actor_options={"num_cpus": 0.5})
class LLMRouterDeployment:
    """Serve wrapper: ``handle.options(stream=True).stream.remote(request_dict)``."""

    def __init__(
        self,
        providers: list[dict[str, Any]] | None = None,
        local_llm: Any = None,
        options: dict[str, Any] | None = None,
    ):
        configs = (
            [ProviderConfig.model_validate(p) for p in providers]
            if providers is not None
            else configs_from_settings(get_settings().providers)
        )
        if local_llm is None:
            configs = [c for c in configs if c.kind != "local"]
        opts = RouterOptions.model_validate(options or {})
        built = [build_provider(c, local_llm, timeout_s=opts.settings.total_timeout_s) for c in configs]
        self._router = LLMRouter(built, opts)
        log.info("LLM router pool: %s", [c.name for c in configs])

    async def stream(self, request: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        try:
            req = LLMRequest.model_validate(request)
        except ValidationError as exc:
            yield ErrorEvent(message=f"invalid LLMRequest: {exc}").model_dump()
            return
        async for event in coalesce_tokens(self._router.stream(req)):
            yield event

    async def complete(self, request: dict[str, Any]) -> dict[str, Any]:
        try:
            req = LLMRequest.model_validate(request)
        except ValidationError as exc:
            return ErrorEvent(message=f"invalid LLMRequest: {exc}").model_dump()
        return await self._router.complete(req)

    async def stats(self) -> dict[str, Any]:
        return self._router.stats()


def build_router_app(
    providers: list[dict[str, Any]] | None = None, options: dict[str, Any] | None = None
) -> Any:
    """Router app; binds ``LocalLLMDeployment`` when the local provider is configured."""
    settings = get_settings().providers
    configs = (
        [ProviderConfig.model_validate(p) for p in providers]
        if providers is not None
        else configs_from_settings(settings)
    )
    local = None
    if any(c.kind == "local" for c in configs):
        from deployments.providers.local_llama import LocalLLMDeployment

        local = LocalLLMDeployment.bind(settings.local_model_path, n_threads=settings.local_threads)
    return LLMRouterDeployment.bind([c.model_dump() for c in configs], local, options)
