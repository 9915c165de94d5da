"""LLM router behaviour against SIMULATED providers (real HTTP + SSE, real SDK clients) and the
token coalescing of its Serve stream; the deployment itself is in tests/integration."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import Any

import pytest

from common.llm_types import (
    DoneEvent,
    ErrorEvent,
    LLMEvent,
    LLMRequest,
    RouteEvent,
    TokenEvent,
    choose_tier,
)
from common.settings import RouterSettings
from common.testing import Behaviour
from common.testing.anthropic_server import FakeAnthropicServer
from common.testing.openai_server import FakeOpenAIServer
from services.llm.breaker import CircuitBreaker
from services.llm.providers import ProviderConfig, build_provider
from services.llm.router import LLMRouter, RouterOptions
from services.llm.service import COALESCE_MAX_CHARS, coalesce_tokens


@pytest.fixture(scope="module")
def oai() -> Iterator[FakeOpenAIServer]:
    server = FakeOpenAIServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def ant() -> Iterator[FakeAnthropicServer]:
    server = FakeAnthropicServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def oai2() -> Iterator[FakeOpenAIServer]:
    server = FakeOpenAIServer().start()
    yield server
    server.stop()


def make_router(
    oai: FakeOpenAIServer, ant: FakeAnthropicServer, oai2: FakeOpenAIServer | None = None, **settings: Any
) -> LLMRouter:
    configs = [
        ProviderConfig(
            name="openai",
            kind="openai",
            model="gpt-sim",
            base_url=oai.base_url,
            api_key="k",
            price_in_per_mtok=0.15,
            price_out_per_mtok=0.6,
        ),
        ProviderConfig(
            name="anthropic",
            kind="anthropic",
            model="claude-sim",
            base_url=ant.base_url,
            api_key="k",
            price_in_per_mtok=1.0,
            price_out_per_mtok=5.0,
        ),
    ]
    if oai2 is not None:
        configs.append(
            ProviderConfig(
                name="compat",
                kind="openai_compatible",
                model="vllm-sim",
                base_url=oai2.base_url,
                tier="strong",
            )
        )
    base = {
        "policy": "race",
        "breaker_failures": 5,
        "breaker_reset_s": 60.0,
        "max_retries": 0,
        "first_token_timeout_s": 2.0,
        "total_timeout_s": 5.0,
    }
    opts = RouterOptions(settings=RouterSettings(**{**base, **settings}), retry_backoff_s=0.01)
    return LLMRouter([build_provider(c) for c in configs], opts)


def req(text: str = "Hello there", **kw: Any) -> LLMRequest:
    return LLMRequest(messages=[{"role": "user", "content": text}], **kw)


async def collect(router: LLMRouter, request: LLMRequest) -> list[LLMEvent]:
    return [event async for event in router.stream(request)]


def done_of(events: list[LLMEvent]) -> DoneEvent:
    assert isinstance(events[-1], DoneEvent), events[-1]
    return events[-1]


def route_of(events: list[LLMEvent]) -> RouteEvent:
    assert isinstance(events[0], RouteEvent), events[0]
    return events[0]


def tokens_of(events: list[LLMEvent]) -> list[TokenEvent]:
    return [e for e in events if isinstance(e, TokenEvent)]


@pytest.mark.asyncio
async def test_race_picks_fastest_and_loser_is_disconnected(
    oai: FakeOpenAIServer, ant: FakeAnthropicServer
) -> None:
    # The winner's TTFT leaves the loser's request time to reach its server, so the test sees it
    # arrive and then sees the router hang up on it.
    oai.reset(Behaviour(ttft_s=1.2, text="slow reply"))
    ant.reset(Behaviour(ttft_s=0.25, text="Fast reply from the winner."))
    router = make_router(oai, ant)
    events = await collect(router, req(policy="race"))
    assert route_of(events).policy == "race"
    done = done_of(events)
    assert done.provider == "anthropic"
    assert done.text == "Fast reply from the winner."
    assert {e.provider for e in tokens_of(events)} == {"anthropic"}
    assert sorted(done.launched) == ["anthropic", "openai"]
    assert (done.usage.input_tokens, done.usage.output_tokens) == (42, 5)
    assert done.cost_usd == pytest.approx((42 * 1.0 + 5 * 5.0) / 1e6)
    # The loser's HTTP stream was closed by the router long before its first token.
    assert await oai.await_for(lambda: bool(oai.records) and oai.records[0].disconnected, 2.0)
    assert oai.records[0].tokens_sent == 0
    stats = router.stats()["providers"]
    assert stats["openai"]["cancelled"] == 1 and stats["anthropic"]["wins"] == 1
    await router.aclose()


@pytest.mark.asyncio
async def test_closing_the_stream_mid_reply_disconnects_the_streaming_provider(
    oai: FakeOpenAIServer, ant: FakeAnthropicServer
) -> None:
    """Barge-in: the consumer stops reading after two tokens; the winner is cut while sending."""
    words = "one two three four five six seven eight nine ten eleven twelve"
    oai.reset(Behaviour(ttft_s=0.01, tokens_per_s=20, text=words))
    router = make_router(oai, ant, policy="single")
    seen = 0
    async with contextlib.aclosing(router.stream(req(providers=["openai"]))) as events:
        async for event in events:
            seen += isinstance(event, TokenEvent)
            if seen == 2:
                break
    assert await oai.await_for(lambda: bool(oai.records) and oai.records[0].disconnected, 2.0)
    assert 2 <= oai.records[0].tokens_sent < len(words.split())  # cut mid-stream, not before it
    await router.aclose()


@pytest.mark.asyncio
async def test_hedge_delay_adapts_to_the_primarys_recent_p90(
    oai: FakeOpenAIServer, ant: FakeAnthropicServer
) -> None:
    router = make_router(oai, ant, policy="hedge")
    primary = router._runtimes["openai"]
    assert router._hedge_delay_ms(req(), primary) == router.options.hedge_default_delay_ms  # no history
    for ms in range(100, 120):  # 20 samples: 100..119 ms
        primary.stats.observe_ttft(float(ms))
    assert router._hedge_delay_ms(req(), primary) == pytest.approx(primary.stats.ttft_percentile(90))
    assert 115 <= router._hedge_delay_ms(req(), primary) <= 119
    assert router._hedge_delay_ms(req(hedge_delay_ms=42), primary) == 42  # a request's own delay wins
    await router.aclose()


@pytest.mark.asyncio
async def test_policy_by_request_then_state_then_tier(
    oai: FakeOpenAIServer, ant: FakeAnthropicServer
) -> None:
    router = make_router(oai, ant, policy="race")
    router.options.policy_by_state["collect_budget"] = "hedge"
    router.options.policy_by_tier["strong"] = "single"
    assert router._policy(req(state="collect_budget"), "fast") == "hedge"
    assert router._policy(req(state="collect_budget", policy="single"), "fast") == "single"
    assert router._policy(req(), "strong") == "single"
    assert router._policy(req(), "fast") == "race"
    await router.aclose()


@pytest.mark.asyncio
async def test_tool_calls_pass_through_both_wire_formats(
    oai: FakeOpenAIServer, ant: FakeAnthropicServer
) -> None:
    call = {"name": "check_status", "arguments": {"member": "m-1", "urgent": True}}
    oai.reset(Behaviour(ttft_s=0.01, tool_call=call))
    ant.reset(Behaviour(ttft_s=0.01, tool_call=call))
    router = make_router(oai, ant)
    tools = [
        {
            "name": "check_status",
            "description": "Look up a request",
            "parameters": {"type": "object", "properties": {"member": {"type": "string"}}},
        }
    ]
    for name in ("openai", "anthropic"):
        result = await router.complete(req(policy="single", providers=[name], tools=tools))
        assert isinstance(result.result, DoneEvent) and result.result.provider == name
        assert result.tool_calls[0].name == "check_status"
        assert result.tool_calls[0].arguments == {"member": "m-1", "urgent": True}
    assert oai.records[0].body["tools"][0]["function"]["name"] == "check_status"
    assert ant.records[0].body["tools"][0]["input_schema"]["type"] == "object"
    await router.aclose()


@pytest.mark.asyncio
async def test_failing_provider_trips_breaker_and_traffic_moves(
    oai: FakeOpenAIServer, ant: FakeAnthropicServer
) -> None:
    oai.reset(Behaviour(status=500))
    ant.reset(Behaviour(ttft_s=0.01))
    router = make_router(oai, ant, policy="single")
    for _ in range(8):
        result = (await router.complete(req(providers=["openai", "anthropic"]))).result
        assert isinstance(result, DoneEvent) and result.provider == "anthropic"  # failover, turn never fails
    assert len(oai.records) == 5  # the breaker opened after 5 failures: no more requests sent
    stats = router.stats()["providers"]["openai"]
    assert stats["breaker"]["state"] == "open" and stats["errors"] == 5
    assert len(ant.records) == 8
    await router.aclose()


@pytest.mark.asyncio
async def test_first_token_timeout_fires_and_other_provider_answers(
    oai: FakeOpenAIServer, ant: FakeAnthropicServer
) -> None:
    oai.reset(Behaviour(hang=True))
    ant.reset(Behaviour(ttft_s=0.01))
    router = make_router(oai, ant, policy="single", first_token_timeout_s=0.3)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    result = (await router.complete(req(providers=["openai", "anthropic"]))).result
    elapsed = loop.time() - t0
    assert isinstance(result, DoneEvent) and result.provider == "anthropic"
    assert "first token timeout" in result.errors["openai"]
    assert 0.28 <= elapsed < 1.5
    assert await oai.await_for(lambda: oai.records[0].disconnected, 2.0)
    assert router.stats()["providers"]["openai"]["timeouts"] == 1
    await router.aclose()


@pytest.mark.asyncio
async def test_total_timeout_fires_mid_reply(oai: FakeOpenAIServer, ant: FakeAnthropicServer) -> None:
    oai.reset(Behaviour(ttft_s=0.01, tokens_per_s=5, text="w " * 30))
    ant.reset(Behaviour(ttft_s=0.01))
    router = make_router(oai, ant, policy="single", total_timeout_s=0.4)
    events = await collect(router, req(providers=["openai"]))
    assert isinstance(events[-1], ErrorEvent)
    assert "total timeout" in events[-1].errors["openai"]
    assert tokens_of(events)
    await router.aclose()


@pytest.mark.asyncio
async def test_hedge_fires_only_after_its_delay(oai: FakeOpenAIServer, ant: FakeAnthropicServer) -> None:
    router = make_router(oai, ant, policy="hedge")
    # Slow primary: the hedge goes out after ~300 ms and wins. (Server-side arrival times: the
    # primary's includes connection setup, which on a loaded 2-core box has taken 30+ ms, so the
    # bound below the delay is loose; an immediate hedge would arrive within a few ms.)
    oai.reset(Behaviour(ttft_s=1.0))
    ant.reset(Behaviour(ttft_s=0.02))
    result = (await router.complete(req(providers=["openai", "anthropic"], hedge_delay_ms=300))).result
    assert isinstance(result, DoneEvent)
    assert result.provider == "anthropic" and result.launched == ["openai", "anthropic"]
    gap = ant.records[0].started - oai.records[0].started
    assert 0.2 <= gap < 0.8, gap
    assert await oai.await_for(lambda: oai.records[0].disconnected, 2.0)
    # Fast primary: no hedge is ever sent.
    oai.reset(Behaviour(ttft_s=0.02))
    ant.reset(Behaviour(ttft_s=0.02))
    result = (await router.complete(req(providers=["openai", "anthropic"], hedge_delay_ms=300))).result
    assert isinstance(result, DoneEvent) and result.provider == "openai" and result.launched == ["openai"]
    await asyncio.sleep(0.35)
    assert ant.records == []
    await router.aclose()


@pytest.mark.asyncio
async def test_retries_only_retryable_errors(oai: FakeOpenAIServer, ant: FakeAnthropicServer) -> None:
    router = make_router(oai, ant, policy="single", max_retries=1)
    oai.reset(Behaviour(status=429))
    result = (await router.complete(req(providers=["openai"]))).result
    assert isinstance(result, ErrorEvent) and len(oai.records) == 2  # one retry
    oai.reset(Behaviour(status=400))
    result = (await router.complete(req(providers=["openai"]))).result
    assert isinstance(result, ErrorEvent) and len(oai.records) == 1  # never retried
    assert "HTTP 400" in result.errors["openai"]
    await router.aclose()


@pytest.mark.asyncio
async def test_tier_decision_is_recorded_and_selects_providers(
    oai: FakeOpenAIServer, ant: FakeAnthropicServer, oai2: FakeOpenAIServer
) -> None:
    for s in (oai, ant, oai2):
        s.reset(Behaviour(ttft_s=0.01))
    router = make_router(oai, ant, oai2, policy="single")
    short = await collect(router, req("Yes that's right"))
    assert route_of(short).tier == "fast" and route_of(short).tier_reason.startswith("short_turn")
    assert done_of(short).provider in ("openai", "anthropic")
    long_text = " ".join(["We have several locations and I need to understand how pricing works"] * 5)
    strong = await collect(router, req(long_text))
    assert route_of(strong).tier == "strong" and route_of(strong).candidates[0] == "compat"
    assert done_of(strong).provider == "compat" and done_of(strong).tier == "strong"
    assert router.stats()["tiers"] == {"fast": 1, "strong": 1}
    await router.aclose()


def test_choose_tier_heuristics() -> None:
    assert choose_tier(req("ok"))[0] == "fast"
    assert choose_tier(req("What is it? And when? And how much?"))[0] == "strong"
    assert choose_tier(req("ok", tier="strong")) == ("strong", "hint")


def test_breaker_states_with_injected_clock() -> None:
    now = [0.0]
    breaker = CircuitBreaker(failures=5, reset_s=60, clock=lambda: now[0])
    for _ in range(4):
        breaker.record_failure()
    assert breaker.state == "closed" and breaker.allow()
    breaker.record_failure()
    assert breaker.state == "open" and not breaker.allow()
    now[0] = 61
    assert breaker.state == "half_open"
    assert breaker.allow() and not breaker.allow()  # one probe at a time
    breaker.record_failure()
    assert breaker.state == "open"
    now[0] = 122
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state == "closed"


# ------------------------------------------------------------------ token coalescing (Serve stream)
REPLIES = [
    "Of course. Dr. Smith's office sent the notes on Monday! Anything else I can help with?",
    "Sure thing.\nThe fax number is on file. It ends in four two.",
    "This reply has no sentence end at all and simply keeps going on and on well past the limit",
    "Yes.",
]


def word_tokens(text: str) -> list[str]:
    words = text.split(" ")
    return [w if i == 0 else " " + w for i, w in enumerate(words)]


async def as_events(tokens: list[str]) -> Any:
    yield RouteEvent(policy="race", tier="fast", tier_reason="test", candidates=["p"])
    for t in tokens:
        yield TokenEvent(text=t, provider="p")
    yield DoneEvent(
        provider="p",
        model="m",
        text="".join(tokens),
        ttft_ms=1.0,
        router_ttft_ms=1.0,
        total_ms=1.0,
        policy="race",
        tier="fast",
        launched=["p"],
    )


def chunk_offsets(texts: list[str]) -> list[tuple[str, int]]:
    """(chunk, characters of the reply received when the chunker released it)."""
    from engine.voice_text import SentenceChunker

    chunker, seen, out = SentenceChunker(), 0, []
    for text in texts:
        seen += len(text)
        out += [(chunk, seen) for chunk in chunker.feed(text)]
    return out + [(chunk, seen) for chunk in chunker.flush()]


@pytest.mark.parametrize("reply", REPLIES)
async def test_coalesced_tokens_keep_text_order_and_chunk_timing(reply: str) -> None:
    tokens = word_tokens(reply)
    out = [e async for e in coalesce_tokens(as_events(tokens))]
    assert isinstance(out[0], RouteEvent) and isinstance(out[-1], DoneEvent)
    assert all(isinstance(e, TokenEvent) for e in out[1:-1])
    texts = [e.text for e in tokens_of(out)]
    assert "".join(texts) == reply and texts[0] == tokens[0]  # nothing lost; first token alone
    assert all(e.provider == "p" for e in tokens_of(out))
    assert len(texts) <= len(tokens)
    assert all(len(t) < COALESCE_MAX_CHARS + max(map(len, tokens)) for t in texts)
    # The call's sentence chunker releases every chunk at the same point of the reply as it
    # would have token by token: holding tokens costs no audio time.
    assert chunk_offsets(texts) == chunk_offsets(tokens)


async def test_coalescing_cuts_the_events_of_a_long_reply() -> None:
    tokens = word_tokens(" ".join(REPLIES[:2]))
    out = [e async for e in coalesce_tokens(as_events(tokens))]
    assert len(tokens) == 28 and len(out) - 2 <= 8
