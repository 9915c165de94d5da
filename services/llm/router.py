"""The LLM router: racing / hedging / single-provider streaming with failover, per-provider
timeouts, concurrency limits, retries, circuit breakers, metrics and cost.

``LLMRouter`` is the plain asyncio core (tests and benchmarks drive it directly);
``services/llm/service.py`` holds the Serve deployment around it.

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
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, Field

from common.llm_types import (
    Completion,
    DoneEvent,
    ErrorEvent,
    LLMEvent,
    LLMRequest,
    Policy,
    RouteEvent,
    Tier,
    TokenEvent,
    ToolCallEvent,
    choose_tier,
)
from common.settings import RouterSettings
from services.llm.breaker import CircuitBreaker
from services.llm.providers.base import (
    Provider,
    ProviderConfig,
    ProviderError,
    StreamEnd,
    TextDelta,
    ToolCallOut,
)
from services.llm.providers.stats import ProviderStats
from services.replica_metrics import ReplicaMetrics

log = logging.getLogger("voxray.llm_router")


class RouterOptions(BaseModel):
    """Router knobs beyond ``RouterSettings`` (per-state / per-tier policy, race width)."""

    settings: RouterSettings = Field(default_factory=RouterSettings)
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
    def __init__(
        self,
        providers: list[Provider],
        options: RouterOptions | None = None,
        metrics: ReplicaMetrics | None = None,
    ):
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
        self.metrics = metrics or ReplicaMetrics()  # this replica's series (services/replica_metrics.py)
        for name in self._runtimes:
            self.metrics.breaker(name, "closed")

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
        self.metrics.provider_request(rt.name)
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
                                    self.metrics.breaker(rt.name, rt.breaker.state)
                                    await queue.put((rt.name, _Finished(item, ttft_ms, total_ms)))
                                    return
                                if not emitted:
                                    emitted = True
                                    ttft_ms = (time.perf_counter() - start) * 1000
                                    rt.stats.observe_ttft(ttft_ms)
                                    self.metrics.ttft(rt.name, ttft_ms)
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
                self._failed(rt, timeout=True)
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
                        self._failed(rt)
                        await queue.put((rt.name, _Failed(f"{exc} (breaker opened)")))
                        return
                    continue
                rt.stats.errors += 1
                self._failed(rt)
                await queue.put((rt.name, _Failed(str(exc))))
                return
            except Exception as exc:  # a bug or an SDK surprise: fail this provider, not the turn
                log.exception("provider %s raised unexpectedly", rt.name)
                rt.breaker.record_failure()
                rt.stats.errors += 1
                self._failed(rt)
                await queue.put((rt.name, _Failed(f"{rt.name}: unexpected {type(exc).__name__}")))
                return

    def _failed(self, rt: _Runtime, timeout: bool = False) -> None:
        self.metrics.provider_failed(rt.name, timeout)
        self.metrics.breaker(rt.name, rt.breaker.state)

    # ------------------------------------------------------------------ one request
    async def stream(self, request: LLMRequest) -> AsyncIterator[LLMEvent]:
        t0 = time.perf_counter()
        self._requests += 1
        tier, tier_reason = choose_tier(request)
        try:
            policy = self._policy(request, tier)
            candidates = self._candidates(request, tier)
        except ValueError as exc:
            self._failed_requests += 1
            yield ErrorEvent(message=str(exc))
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
        )

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
                    yield ErrorEvent(message="no provider produced a reply", errors=errors, launched=launched)
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
            self.metrics.provider_won(winner)
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
                    )
                    return
                if isinstance(item, _Failed):
                    errors[name] = item.error
                    self._failed_requests += 1
                    yield ErrorEvent(
                        message=f"{winner} failed mid-reply: {item.error}", errors=errors, launched=launched
                    )
                    return
                if isinstance(item, TextDelta | ToolCallOut):
                    yield self._content_event(winner, item, parts)
        finally:
            for task in tasks.values():
                task.cancel()
            if tasks:
                await asyncio.gather(*tasks.values(), return_exceptions=True)

    @staticmethod
    def _content_event(
        provider: str, item: TextDelta | ToolCallOut, parts: list[str]
    ) -> TokenEvent | ToolCallEvent:
        if isinstance(item, TextDelta):
            parts.append(item.text)
            return TokenEvent(text=item.text, provider=provider)
        return ToolCallEvent(call=item.call, provider=provider)

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
        self.metrics.usage(rt.name, usage, cost)
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

    async def complete(self, request: LLMRequest) -> Completion:
        """Run one request to the end: its final event, tool calls and route."""
        route: RouteEvent | None = None
        tool_calls = []
        async for event in self.stream(request):
            if isinstance(event, RouteEvent):
                route = event
            elif isinstance(event, ToolCallEvent):
                tool_calls.append(event.call)
            elif isinstance(event, DoneEvent | ErrorEvent):
                return Completion(result=event, tool_calls=tool_calls, route=route)
        return Completion(result=ErrorEvent(message="stream ended without a result"), route=route)

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
