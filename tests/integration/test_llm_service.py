"""The LLM router as a Serve deployment (typed events through a streaming handle) against
SIMULATED providers, and one run of the real local SmolLM2 provider."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from common.llm_types import DoneEvent, LLMRequest, RouteEvent, TokenEvent
from common.settings import RouterSettings
from common.testing import Behaviour
from common.testing.anthropic_server import FakeAnthropicServer
from common.testing.openai_server import FakeOpenAIServer
from services.llm.providers import ProviderConfig
from services.llm.router import RouterOptions


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


def req(text: str = "Hello there", **kw: Any) -> LLMRequest:
    return LLMRequest(messages=[{"role": "user", "content": text}], **kw)


@pytest.fixture(scope="module")
def router_handle(ray_session: None, oai: FakeOpenAIServer, ant: FakeAnthropicServer) -> Iterator[Any]:
    from ray import serve

    from services.llm.service import LLMRouterDeployment

    providers = [
        ProviderConfig(name="openai", kind="openai", model="gpt-sim", base_url=oai.base_url, api_key="k"),
        ProviderConfig(
            name="anthropic", kind="anthropic", model="claude-sim", base_url=ant.base_url, api_key="k"
        ),
    ]
    options = RouterOptions(settings=RouterSettings(), race_width=2)
    app = LLMRouterDeployment.options(ray_actor_options={"num_cpus": 0}).bind(providers, None, options)
    handle = serve.run(app, name="test-llm-router", route_prefix=None)
    yield handle
    serve.delete("test-llm-router")


async def test_router_deployment_streams_typed_events_through_a_serve_handle(
    router_handle: Any, oai: FakeOpenAIServer, ant: FakeAnthropicServer
) -> None:
    oai.reset(Behaviour(ttft_s=0.02, text="From the simulated OpenAI server."))
    ant.reset(Behaviour(ttft_s=0.5))
    events = [
        e async for e in router_handle.options(stream=True).stream.remote(req(policy="race", call_id="c-1"))
    ]
    assert isinstance(events[0], RouteEvent)
    assert isinstance(events[-1], DoneEvent) and events[-1].provider == "openai"
    tokens = [e.text for e in events if isinstance(e, TokenEvent)]
    assert "".join(tokens) == "From the simulated OpenAI server."
    assert await ant.await_for(lambda: bool(ant.records) and ant.records[0].disconnected, 3.0)
    stats = await router_handle.stats.remote()
    assert stats["providers"]["openai"]["wins"] >= 1


async def test_real_local_smollm2_provider(ray_session: None) -> None:
    pytest.importorskip("llama_cpp")
    from ray import serve

    from services.llm.providers.local_llama import LocalLLMDeployment
    from services.llm.service import LLMRouterDeployment
    from services.model_paths import smollm2_gguf_path

    # SmolLM2 (the light model, still installed): this checks the deployment's plumbing, not the
    # default model's replies (tests/integration/test_llm_prompt_gate.py does that)
    local = LocalLLMDeployment.options(ray_actor_options={"num_cpus": 0}).bind(
        str(smollm2_gguf_path()), n_threads=1, n_ctx=512
    )
    providers = [
        ProviderConfig(name="local", kind="local", model="smollm2-135m-instruct", supports_tools=False)
    ]
    app = LLMRouterDeployment.options(ray_actor_options={"num_cpus": 0}).bind(
        providers, local, RouterOptions()
    )
    handle = serve.run(app, name="test-llm-local", route_prefix=None)
    try:
        request = LLMRequest(
            system="You are a polite phone agent. Answer in one short sentence.",
            messages=[{"role": "user", "content": "Hello, who am I speaking with?"}],
            max_tokens=24,
            temperature=0.0,
            policy="single",
        )
        events = [e async for e in handle.options(stream=True).stream.remote(request)]
        done = events[-1]
        assert isinstance(done, DoneEvent), done
        assert done.provider == "local" and done.usage.output_tokens > 0
        assert done.text.strip() and done.ttft_ms > 0
        tokens = [e.text for e in events if isinstance(e, TokenEvent)]
        assert "".join(tokens) == done.text
        assert 1 <= len(tokens) <= done.usage.output_tokens  # merged between sentence ends
    finally:
        serve.delete("test-llm-local")
