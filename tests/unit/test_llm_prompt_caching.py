"""Provider prompt caching through the real ``anthropic`` and ``openai`` SDKs against the wire
fakes (real HTTP + SSE): the request Anthropic gets marks the system text as a cache breakpoint,
the cached prompt tokens either provider reports reach the router's DoneEvent (what a call's cost
record reads), and the router prices them at the cached rate."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from common.llm_types import DoneEvent, LLMRequest
from common.settings import RouterSettings
from common.testing import Behaviour, FakeProviderServer
from common.testing.anthropic_server import FakeAnthropicServer
from common.testing.openai_server import FakeOpenAIServer
from services.llm.providers import ProviderConfig, build_provider
from services.llm.router import LLMRouter, RouterOptions

SYSTEM = "You are Alex, calling about a prior authorization. Reply in one short sentence."


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, FakeProviderServer]]:
    running: dict[str, FakeProviderServer] = {
        "anthropic": FakeAnthropicServer().start(),
        "openai": FakeOpenAIServer().start(),
    }
    yield running
    for server in running.values():
        server.stop()


def router_for(kind: str, server: FakeProviderServer) -> LLMRouter:
    config = ProviderConfig(
        name=kind,
        kind=kind,  # type: ignore[arg-type]
        model=f"{kind}-sim",
        base_url=server.base_url,
        api_key="k",
        price_in_per_mtok=1.0,
        price_out_per_mtok=5.0,
        price_cached_in_per_mtok=0.1,
    )
    settings = RouterSettings(policy="single", max_retries=0, first_token_timeout_s=2.0, total_timeout_s=5.0)
    return LLMRouter([build_provider(config)], RouterOptions(settings=settings))


@pytest.mark.parametrize("kind", ["anthropic", "openai"])
async def test_cached_prompt_tokens_reach_usage_and_cost(
    servers: dict[str, FakeProviderServer], kind: str
) -> None:
    server = servers[kind]
    server.reset(Behaviour(text="Sure, one moment.", input_tokens=1500, cached_input_tokens=1280))
    request = LLMRequest(system=SYSTEM, messages=[{"role": "user", "content": "Who is this?"}])
    events = [e async for e in router_for(kind, server).stream(request)]
    done = events[-1]
    assert isinstance(done, DoneEvent) and done.provider == kind and done.text == "Sure, one moment."
    # the whole prompt, and the part of it read from the cache (Anthropic reports them apart)
    assert (done.usage.input_tokens, done.usage.cached_input_tokens) == (1500, 1280)
    assert done.cost_usd == pytest.approx((220 * 1.0 + 1280 * 0.1 + 3 * 5.0) / 1e6)

    body = server.records[-1].body
    if kind == "anthropic":
        assert body["system"] == [{"type": "text", "text": SYSTEM, "cache_control": {"type": "ephemeral"}}]
    else:  # OpenAI caches prefixes by itself: the system text leads the messages, unchanged
        assert body["messages"][0] == {"role": "system", "content": SYSTEM}


async def test_no_cache_hit_prices_the_whole_prompt(servers: dict[str, FakeProviderServer]) -> None:
    server = servers["openai"]
    server.reset(Behaviour(text="Hello.", input_tokens=300))
    request = LLMRequest(system=SYSTEM, messages=[{"role": "user", "content": "Hi"}])
    done = [e async for e in router_for("openai", server).stream(request)][-1]
    assert isinstance(done, DoneEvent)
    assert (done.usage.input_tokens, done.usage.cached_input_tokens) == (300, 0)
    assert done.cost_usd == pytest.approx((300 * 1.0 + 1 * 5.0) / 1e6)
