"""Deployment metrics recorded inside each replica (services/replica_metrics.py).

Two replicas' routers run real requests against a SIMULATED in-process provider; their metric
objects are recorders that keep each series per replica, as Ray's export does (Serve labels
every series with its replica). Summing over replicas, as Prometheus and the dashboard do, gives
the true totals however often the series are read: the poller this replaced exported 600 for
two idle replicas reporting 100 and 150 after 20 polls.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncGenerator

import pytest

from common.llm_types import DoneEvent, LLMRequest, Usage
from common.metric_defs import DEPLOYMENT_METRICS, SERVE_TAGS, MetricDef
from common.settings import RouterSettings
from services.llm.providers.base import (
    Provider,
    ProviderConfig,
    ProviderError,
    ProviderItem,
    StreamEnd,
    TextDelta,
)
from services.llm.router import LLMRouter, RouterOptions
from services.replica_metrics import MetricObject, ReplicaMetrics

SeriesKey = tuple[str, tuple[tuple[str, str], ...]]


class SimulatedExport:
    """What Ray's metrics export holds: one value per (series, labels), labels incl. the replica."""

    def __init__(self) -> None:
        self.counters: dict[SeriesKey, float] = defaultdict(float)
        self.gauges: dict[SeriesKey, float] = {}
        self.observations: dict[SeriesKey, list[float]] = defaultdict(list)

    def factory(self, replica: str) -> ReplicaFactory:
        return ReplicaFactory(self, replica)

    def total(self, name: str, **labels: str) -> float:
        """``sum(<name>{labels})`` over every replica."""
        return sum(
            v for (n, tags), v in self.counters.items() if n == name and labels.items() <= dict(tags).items()
        )

    def count(self, name: str, **labels: str) -> int:
        return sum(
            len(v)
            for (n, tags), v in self.observations.items()
            if n == name and labels.items() <= dict(tags).items()
        )


class ReplicaFactory:
    def __init__(self, export: SimulatedExport, replica: str) -> None:
        self.export, self.replica = export, replica

    def __call__(self, d: MetricDef) -> MetricObject:
        return RecordedMetric(self.export, d, self.replica)


class RecordedMetric:
    def __init__(self, export: SimulatedExport, d: MetricDef, replica: str) -> None:
        self.export, self.d, self.replica = export, d, replica

    def _key(self, tags: dict[str, str] | None) -> SeriesKey:
        tags = dict(tags or {})
        assert set(tags) == set(self.d.tags), f"{self.d.name}: tags {sorted(tags)} != {self.d.tags}"
        tags["replica"] = self.replica
        return self.d.name, tuple(sorted(tags.items()))

    def inc(self, value: float = 1.0, tags: dict[str, str] | None = None) -> None:
        assert self.d.kind == "counter" and value > 0
        self.export.counters[self._key(tags)] += value

    def set(self, value: float, tags: dict[str, str] | None = None) -> None:
        assert self.d.kind == "gauge"
        self.export.gauges[self._key(tags)] = value

    def observe(self, value: float, tags: dict[str, str] | None = None) -> None:
        assert self.d.kind == "histogram"
        self.export.observations[self._key(tags)].append(value)


class SimulatedProvider(Provider):
    """A provider that answers at once with fixed usage (or fails, when told to)."""

    def __init__(self, name: str, fail: bool = False) -> None:
        super().__init__(
            ProviderConfig(
                name=name, kind="openai", model=f"{name}-sim", price_in_per_mtok=1.0, price_out_per_mtok=4.0
            )
        )
        self.fail = fail

    async def stream(self, request: LLMRequest) -> AsyncGenerator[ProviderItem, None]:
        if self.fail:
            raise ProviderError(self.name, "simulated outage", retryable=False)
        yield TextDelta("Sure, one moment.")
        yield StreamEnd(Usage(input_tokens=100, cached_input_tokens=40, output_tokens=10), "stop")


def router(export: SimulatedExport, replica: str, *providers: Provider) -> LLMRouter:
    options = RouterOptions(settings=RouterSettings(policy="single", max_retries=0, breaker_failures=1000))
    return LLMRouter(list(providers), options, metrics=ReplicaMetrics(export.factory(replica)))


async def run(r: LLMRouter, n: int) -> list[DoneEvent]:
    done = []
    for _ in range(n):
        completion = await r.complete(LLMRequest(messages=[{"role": "user", "content": "hello"}]))
        assert isinstance(completion.result, DoneEvent)
        done.append(completion.result)
    return done


async def test_two_replicas_sum_to_the_true_total_however_often_read() -> None:
    export = SimulatedExport()
    a = router(export, "router#a", SimulatedProvider("openai"))
    b = router(export, "router#b", SimulatedProvider("openai"))
    await run(a, 100)
    done = await run(b, 150)
    for _ in range(20):  # scrapes read; they never add
        assert export.total("voxray_router_requests", provider="openai") == 250
    assert export.total("voxray_router_requests", provider="openai", replica="router#a") == 100
    assert export.total("voxray_router_wins", provider="openai") == 250
    assert export.total("voxray_router_errors") == 0
    assert export.count("voxray_llm_ttft_ms", provider="openai") == 250
    assert export.total("voxray_llm_input_tokens", provider="openai") == 250 * 100
    assert export.total("voxray_llm_cached_input_tokens", provider="openai") == 250 * 40
    assert export.total("voxray_llm_output_tokens", provider="openai") == 250 * 10
    # the cost counter adds what each reply cost, as the router priced it
    assert export.total("voxray_llm_cost_usd", provider="openai") == pytest.approx(250 * done[0].cost_usd)
    assert done[0].cost_usd == pytest.approx((100 * 1.0 + 10 * 4.0) / 1e6)


async def test_failover_records_the_failure_and_the_winner() -> None:
    export = SimulatedExport()
    r = router(export, "router#a", SimulatedProvider("down", fail=True), SimulatedProvider("up"))
    await run(r, 3)
    assert export.total("voxray_router_requests", provider="down") == 3
    assert export.total("voxray_router_errors", provider="down") == 3
    assert export.total("voxray_router_wins", provider="up") == 3
    assert export.total("voxray_router_wins", provider="down") == 0
    assert export.total("voxray_llm_output_tokens", provider="down") == 0
    gauges = {
        dict(k[1])["provider"]: v for k, v in export.gauges.items() if k[0] == "voxray_router_breaker_state"
    }
    assert gauges == {"down": 0.0, "up": 0.0}  # 1000 failures open it: still closed


async def test_breaker_state_gauge_follows_the_breaker() -> None:
    export = SimulatedExport()
    options = RouterOptions(settings=RouterSettings(policy="single", max_retries=0, breaker_failures=2))
    r = LLMRouter(
        [SimulatedProvider("down", fail=True), SimulatedProvider("up")],
        options,
        metrics=ReplicaMetrics(export.factory("router#a")),
    )
    await run(r, 3)
    state = {
        dict(k[1])["provider"]: v for k, v in export.gauges.items() if k[0] == "voxray_router_breaker_state"
    }
    assert state == {"down": 2.0, "up": 0.0}  # open after two failures


def test_batch_and_phrase_cache_series_sum_over_replicas() -> None:
    export = SimulatedExport()
    one, two = ReplicaMetrics(export.factory("stt#1")), ReplicaMetrics(export.factory("stt#2"))
    for size in (1, 4, 3):
        one.stt_batch(size)
    two.stt_batch(8)
    assert export.total("voxray_stt_batches") == 4
    assert export.total("voxray_stt_batched_requests") == 16  # mean batch size 4 = ratio of the two
    one.embed_batch(5)
    two.embed_batch(1)
    assert (export.total("voxray_embed_batches"), export.total("voxray_embed_batched_requests")) == (2, 6)
    for _ in range(3):
        one.tts_request()
    two.tts_request()
    two.tts_phrase_hit()
    assert export.total("voxray_tts_requests") == 4 and export.total("voxray_tts_phrase_cache_hits") == 1


def test_a_failing_backend_never_breaks_the_replica() -> None:
    def broken(d: MetricDef) -> MetricObject:
        raise RuntimeError("metrics agent down")

    metrics = ReplicaMetrics(broken)
    metrics.stt_batch(2)
    metrics.usage("openai", Usage(input_tokens=1), 0.1)  # no exception


def test_real_serve_metric_objects_for_every_deployment_series() -> None:
    real = ReplicaMetrics()
    for d in DEPLOYMENT_METRICS:
        assert d.per_replica and not set(d.tags) & set(SERVE_TAGS)  # Serve reserves its own labels
        assert real._get(d.name) is not None
    real.ttft("openai", 120.0)
    real.usage("openai", Usage(input_tokens=3, output_tokens=2), 0.001)


async def test_metrics_are_recorded_concurrently_without_loss() -> None:
    export = SimulatedExport()
    r = router(export, "router#a", SimulatedProvider("openai"))
    await asyncio.gather(*(run(r, 10) for _ in range(5)))
    assert export.total("voxray_router_requests") == 50 == export.count("voxray_llm_ttft_ms")
