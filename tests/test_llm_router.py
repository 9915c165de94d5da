"""LLM router behaviour against SIMULATED providers (real HTTP + SSE, real SDK clients), plus
the Serve deployment and one run of the real local SmolLM2 provider."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from services.llm.router import LLMRouter, RouterOptions
from services.llm.providers import ProviderConfig, build_provider
from services.llm.breaker import CircuitBreaker
from common.llm_types import LLMRequest, choose_tier, parse_event
from common.settings import RouterSettings
from common.testing import Behaviour
from common.testing.anthropic_server import FakeAnthropicServer
from common.testing.openai_server import FakeOpenAIServer


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


async def collect(router: LLMRouter, request: LLMRequest) -> list[dict[str, Any]]:
    return [event async for event in router.stream(request)]


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
    parsed = [parse_event(e) for e in events]
    assert events[0]["type"] == "route" and events[0]["policy"] == "race"
    done = events[-1]
    assert done["type"] == "done", done
    assert done["provider"] == "anthropic"
    assert done["text"] == "Fast reply from the winner."
    assert {e["provider"] for e in events if e["type"] == "token"} == {"anthropic"}
    assert done["launched"] == ["openai", "anthropic"] or done["launched"] == ["anthropic", "openai"]
    assert done["usage"] == {"input_tokens": 42, "output_tokens": 5}
    assert done["cost_usd"] == pytest.approx((42 * 1.0 + 5 * 5.0) / 1e6)
    assert len(parsed) == len(events)
    # The loser's HTTP stream was closed by the router long before its first token.
    assert await oai.await_for(lambda: bool(oai.records) and oai.records[0].disconnected, 2.0)
    assert oai.records[0].tokens_sent == 0
    stats = router.stats()["providers"]
    assert stats["openai"]["cancelled"] == 1 and stats["anthropic"]["wins"] == 1
    await router.aclose()


@pytest.mark.asyncio
async def test_loser_cancelled_mid_stream_stops_receiving(
    oai: FakeOpenAIServer, ant: FakeAnthropicServer
) -> None:
    # Both start streaming; the slower-TTFT one must still be cut off while it is sending.
    oai.reset(Behaviour(ttft_s=0.01, tokens_per_s=20, text="one two three four five six"))
    ant.reset(Behaviour(ttft_s=0.08, tokens_per_s=20, text="a b c d e f g h i j"))
    router = make_router(oai, ant)
    done = (await collect(router, req(policy="race")))[-1]
    assert done["provider"] == "openai"
    assert await ant.await_for(lambda: bool(ant.records) and ant.records[0].disconnected, 2.0)
    assert ant.records[0].tokens_sent == 0
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
        assert result["type"] == "done" and result["provider"] == name
        assert result["tool_calls"][0]["name"] == "check_status"
        assert result["tool_calls"][0]["arguments"] == {"member": "m-1", "urgent": True}
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
        result = await router.complete(req(providers=["openai", "anthropic"]))
        assert result["type"] == "done" and result["provider"] == "anthropic"  # failover, turn never fails
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
    result = await router.complete(req(providers=["openai", "anthropic"]))
    elapsed = loop.time() - t0
    assert result["provider"] == "anthropic"
    assert "first token timeout" in result["errors"]["openai"]
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
    assert events[-1]["type"] == "error"
    assert "total timeout" in events[-1]["errors"]["openai"]
    assert any(e["type"] == "token" for e in events)
    await router.aclose()


@pytest.mark.asyncio
async def test_hedge_fires_only_after_its_delay(oai: FakeOpenAIServer, ant: FakeAnthropicServer) -> None:
    router = make_router(oai, ant, policy="hedge")
    # Slow primary: the hedge goes out after ~300 ms and wins. (Server-side arrival times: the
    # primary's includes connection setup, so allow a little slack below the delay.)
    oai.reset(Behaviour(ttft_s=1.0))
    ant.reset(Behaviour(ttft_s=0.02))
    result = await router.complete(req(providers=["openai", "anthropic"], hedge_delay_ms=300))
    assert result["provider"] == "anthropic" and result["launched"] == ["openai", "anthropic"]
    gap = ant.records[0].started - oai.records[0].started
    assert 0.27 <= gap < 0.8, gap
    assert await oai.await_for(lambda: oai.records[0].disconnected, 2.0)
    # Fast primary: no hedge is ever sent.
    oai.reset(Behaviour(ttft_s=0.02))
    ant.reset(Behaviour(ttft_s=0.02))
    result = await router.complete(req(providers=["openai", "anthropic"], hedge_delay_ms=300))
    assert result["provider"] == "openai" and result["launched"] == ["openai"]
    await asyncio.sleep(0.35)
    assert ant.records == []
    await router.aclose()


@pytest.mark.asyncio
async def test_retries_only_retryable_errors(oai: FakeOpenAIServer, ant: FakeAnthropicServer) -> None:
    router = make_router(oai, ant, policy="single", max_retries=1)
    oai.reset(Behaviour(status=429))
    result = await router.complete(req(providers=["openai"]))
    assert result["type"] == "error" and len(oai.records) == 2  # one retry
    oai.reset(Behaviour(status=400))
    result = await router.complete(req(providers=["openai"]))
    assert result["type"] == "error" and len(oai.records) == 1  # never retried
    assert "HTTP 400" in result["errors"]["openai"]
    await router.aclose()


@pytest.mark.asyncio
async def test_tier_decision_is_recorded_and_selects_providers(
    oai: FakeOpenAIServer, ant: FakeAnthropicServer, oai2: FakeOpenAIServer
) -> None:
    for s in (oai, ant, oai2):
        s.reset(Behaviour(ttft_s=0.01))
    router = make_router(oai, ant, oai2, policy="single")
    short = await collect(router, req("Yes that's right"))
    assert short[0]["tier"] == "fast" and short[0]["tier_reason"].startswith("short_turn")
    assert short[-1]["provider"] in ("openai", "anthropic")
    long_text = " ".join(["We have several locations and I need to understand how pricing works"] * 5)
    strong = await collect(router, req(long_text))
    assert strong[0]["tier"] == "strong" and strong[0]["candidates"][0] == "compat"
    assert strong[-1]["provider"] == "compat" and strong[-1]["tier"] == "strong"
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


# ------------------------------------------------------------------ Serve deployments


@pytest.fixture(scope="module")
def router_handle(ray_session: None, oai: FakeOpenAIServer, ant: FakeAnthropicServer) -> Iterator[Any]:
    from ray import serve

    from services.llm.router import LLMRouterDeployment

    providers = [
        {"name": "openai", "kind": "openai", "model": "gpt-sim", "base_url": oai.base_url, "api_key": "k"},
        {
            "name": "anthropic",
            "kind": "anthropic",
            "model": "claude-sim",
            "base_url": ant.base_url,
            "api_key": "k",
        },
    ]
    app = LLMRouterDeployment.options(ray_actor_options={"num_cpus": 0}).bind(
        providers, None, {"race_width": 2}
    )
    handle = serve.run(app, name="test-llm-router", route_prefix=None)
    yield handle
    serve.delete("test-llm-router")


@pytest.mark.asyncio
async def test_router_deployment_streams_through_serve_handle(
    router_handle: Any, oai: FakeOpenAIServer, ant: FakeAnthropicServer
) -> None:
    oai.reset(Behaviour(ttft_s=0.02, text="From the simulated OpenAI server."))
    ant.reset(Behaviour(ttft_s=0.5))
    request = req(policy="race", call_id="c-1").model_dump()
    events = [e async for e in router_handle.options(stream=True).stream.remote(request)]
    assert events[0]["type"] == "route"
    assert events[-1]["type"] == "done" and events[-1]["provider"] == "openai"
    assert "".join(e["text"] for e in events if e["type"] == "token") == "From the simulated OpenAI server."
    assert await ant.await_for(lambda: bool(ant.records) and ant.records[0].disconnected, 3.0)
    bad = [e async for e in router_handle.options(stream=True).stream.remote({"messages": []})]
    assert bad[-1]["type"] == "error" and "messages" in bad[-1]["message"]
    stats = await router_handle.stats.remote()
    assert stats["providers"]["openai"]["wins"] >= 1


@pytest.mark.asyncio
async def test_real_local_smollm2_provider(ray_session: None) -> None:
    pytest.importorskip("llama_cpp")
    from ray import serve

    from services.llm.router import LLMRouterDeployment
    from services.llm.providers.local_llama import LocalLLMDeployment

    local = LocalLLMDeployment.options(ray_actor_options={"num_cpus": 0}).bind(None, n_threads=1, n_ctx=512)
    providers = [
        {"name": "local", "kind": "local", "model": "smollm2-135m-instruct", "supports_tools": False}
    ]
    app = LLMRouterDeployment.options(ray_actor_options={"num_cpus": 0}).bind(providers, local, None)
    handle = serve.run(app, name="test-llm-local", route_prefix=None)
    try:
        request = LLMRequest(
            system="You are a polite phone agent. Answer in one short sentence.",
            messages=[{"role": "user", "content": "Hello, who am I speaking with?"}],
            max_tokens=24,
            temperature=0.0,
            policy="single",
        ).model_dump()
        events = [e async for e in handle.options(stream=True).stream.remote(request)]
        done = events[-1]
        assert done["type"] == "done", done
        assert done["provider"] == "local" and done["usage"]["output_tokens"] > 0
        assert done["text"].strip() and done["ttft_ms"] > 0
        tokens = [e["text"] for e in events if e["type"] == "token"]
        assert "".join(tokens) == done["text"]
        assert 1 <= len(tokens) <= done["usage"]["output_tokens"]  # merged between sentence ends
    finally:
        serve.delete("test-llm-local")


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
    yield {"type": "route", "policy": "race"}
    for t in tokens:
        yield {"type": "token", "text": t, "provider": "p"}
    yield {"type": "done", "provider": "p", "text": "".join(tokens)}


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
    from services.llm.router import COALESCE_MAX_CHARS, coalesce_tokens

    tokens = word_tokens(reply)
    out = [e async for e in coalesce_tokens(as_events(tokens))]
    kinds = [e["type"] for e in out]
    assert kinds[0] == "route" and kinds[-1] == "done" and set(kinds[1:-1]) == {"token"}
    texts = [e["text"] for e in out if e["type"] == "token"]
    assert "".join(texts) == reply and texts[0] == tokens[0]  # nothing lost; first token alone
    assert all(e["provider"] == "p" for e in out if e["type"] == "token")
    assert len(texts) <= len(tokens)
    assert all(len(t) < COALESCE_MAX_CHARS + max(map(len, tokens)) for t in texts)
    # The call's sentence chunker releases every chunk at the same point of the reply as it
    # would have token by token: holding tokens costs no audio time.
    assert chunk_offsets(texts) == chunk_offsets(tokens)


async def test_coalescing_cuts_the_events_of_a_long_reply() -> None:
    from services.llm.router import coalesce_tokens

    tokens = word_tokens(" ".join(REPLIES[:2]))
    out = [e async for e in coalesce_tokens(as_events(tokens))]
    assert len(tokens) == 28 and len(out) - 2 <= 8
