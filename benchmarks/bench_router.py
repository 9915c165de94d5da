"""TTFT of best single provider vs racing vs hedging, against SIMULATED providers.

Two local servers speak the OpenAI and Anthropic streaming formats; each request's time to
first token is drawn from a per-provider latency model (lognormal body + a 5% slow tail). The
policies run interleaved in the same run against the same models. Prints figures; asserts
nothing about wall-clock time.

    python -m benchmarks.bench_router [--requests 200] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
from typing import Any

from common.llm_types import DoneEvent, LLMRequest
from common.settings import RouterSettings
from common.testing import Behaviour, LatencyModel
from common.testing.anthropic_server import FakeAnthropicServer
from common.testing.openai_server import FakeOpenAIServer
from services.llm.providers import ProviderConfig, build_provider
from services.llm.providers.stats import percentile
from services.llm.router import LLMRouter, RouterOptions


def behaviour_from(model: LatencyModel) -> Any:
    def pick(_body: dict[str, Any]) -> Behaviour:
        return Behaviour(ttft_s=model.sample(), tokens_per_s=400, text="Thanks, I can help with that today.")

    return pick


async def run(requests: int, concurrency: int) -> None:
    oai = FakeOpenAIServer(
        behaviour_from(LatencyModel(0.120, sigma=0.2, tail_prob=0.05, tail_factor=4, rng_seed=1))
    )
    ant = FakeAnthropicServer(
        behaviour_from(LatencyModel(0.140, sigma=0.2, tail_prob=0.05, tail_factor=4, rng_seed=2))
    )
    oai.start()
    ant.start()
    configs = [
        ProviderConfig(name="openai", kind="openai", model="sim-a", base_url=oai.base_url, api_key="k"),
        ProviderConfig(name="anthropic", kind="anthropic", model="sim-b", base_url=ant.base_url, api_key="k"),
    ]
    opts = RouterOptions(
        settings=RouterSettings(first_token_timeout_s=10, total_timeout_s=20, max_retries=0),
        hedge_percentile=90,
        hedge_min_samples=20,
    )
    router = LLMRouter([build_provider(c) for c in configs], opts)
    arms: dict[str, dict[str, Any]] = {
        "single:openai": {"policy": "single", "providers": ["openai"]},
        "single:anthropic": {"policy": "single", "providers": ["anthropic"]},
        "race": {"policy": "race", "providers": ["openai", "anthropic"]},
        "hedge(p90)": {"policy": "hedge", "providers": ["openai", "anthropic"]},
    }
    ttft: dict[str, list[float]] = {k: [] for k in arms}
    overhead: dict[str, list[float]] = {k: [] for k in arms}
    sent: dict[str, int] = dict.fromkeys(arms, 0)
    sem = asyncio.Semaphore(concurrency)

    async def one(arm: str) -> None:
        async with sem:
            req = LLMRequest(messages=[{"role": "user", "content": "Is the request approved?"}], **arms[arm])
            done = (await router.complete(req)).result
            if not isinstance(done, DoneEvent):
                raise RuntimeError(f"{arm}: {done}")
            ttft[arm].append(done.router_ttft_ms)
            overhead[arm].append(done.router_ttft_ms - done.ttft_ms)
            sent[arm] += len(done.launched)

    # Warm-up: connections and the hedge's TTFT history.
    await asyncio.gather(*(one("single:openai") for _ in range(30)))
    for k in arms:
        ttft[k].clear()
        overhead[k].clear()
        sent[k] = 0
    await asyncio.gather(*(one(arm) for _ in range(requests) for arm in arms))

    print(
        f"\nrequests per arm: {requests}, concurrency {concurrency}; simulated TTFT medians 120/140 ms, "
        "5% tail x2-6"
    )
    print(f"{'arm':18} {'p50':>8} {'p95':>8} {'p99':>8} {'mean':>8} {'requests sent':>14}")
    for arm in arms:
        v = ttft[arm]
        print(
            f"{arm:18} {percentile(v, 50):8.1f} {percentile(v, 95):8.1f} {percentile(v, 99):8.1f} "
            f"{statistics.mean(v):8.1f} {sent[arm] / len(v):13.2f}x"
        )
    best = min(("single:openai", "single:anthropic"), key=lambda a: percentile(ttft[a], 95) or 0.0)
    for arm in ("race", "hedge(p90)"):
        p95_cut = 1 - (percentile(ttft[arm], 95) or 0) / (percentile(ttft[best], 95) or 1)
        p99_cut = 1 - (percentile(ttft[arm], 99) or 0) / (percentile(ttft[best], 99) or 1)
        print(f"{arm} vs best single ({best}): p95 {p95_cut:+.0%} lower, p99 {p99_cut:+.0%} lower")
    all_overhead = [x for arm in arms for x in overhead[arm]]
    print(
        f"router overhead over winner TTFT (in-process): p50 {percentile(all_overhead, 50):.2f} ms, "
        f"p95 {percentile(all_overhead, 95):.2f} ms, p99 {percentile(all_overhead, 99):.2f} ms"
    )
    await router.aclose()
    oai.stop()
    ant.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    asyncio.run(run(args.requests, args.concurrency))


if __name__ == "__main__":
    main()
