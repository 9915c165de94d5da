"""voxray's cluster-wide metrics (``ray.util.metrics``): Ray exports them to Prometheus.

Every metric is named ``voxray_*`` here; Ray's Prometheus export prefixes ``ray_``, so the
series scraped from a node's metrics port are ``ray_voxray_*`` (counters also get ``_total``
there, histograms ``_bucket``/``_sum``/``_count``). ``METRICS`` is the single list of what
exists; the Grafana dashboard test checks every queried series against it.

Where they come from:
- call hosts (``actors/call_host.py``, ``actors/call.py``, ``actors/reply.py``): calls started /
  completed / active, per-turn stage latencies, turn sources, cache hits and misses by tier,
  errors by type;
- the edge (``edge/ingress.py``, ``edge/call_link.py``): start-call latency, the stages it
  measures (stt, tts first audio, voice to voice) and HTTP-level errors;
- ``MetricsPoller`` (one detached actor, started by the ingress with the service clients):
  polls the router, cache, STT and TTS services' ``stats()`` and exports provider
  requests/wins/errors/breaker state, STT batch sizes, embedding batch size and TTS
  phrase-cache hits.

All functions are cheap no-ops until first use creates the metric objects in the process.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from ray.util import metrics as rm

log = logging.getLogger("voxray.metrics")

LATENCY_BOUNDARIES_MS = [
    1,
    2,
    5,
    10,
    15,
    25,
    50,
    100,
    200,
    300,
    500,
    750,
    1000,
    1500,
    2000,
    3000,
    5000,
    10000,
]
BATCH_BOUNDARIES = [1, 2, 3, 4, 6, 8, 12, 16, 24, 32]
TURN_STAGES = ("stt", "nlu", "cache", "llm_ttft", "tts_first_audio", "voice_to_voice", "turn_total")
BREAKER_STATE = {"closed": 0.0, "half_open": 1.0, "open": 2.0}


@dataclass(frozen=True)
class MetricDef:
    name: str
    kind: str  # counter | gauge | histogram
    description: str
    tags: tuple[str, ...] = ()
    boundaries: tuple[float, ...] = ()


METRICS: tuple[MetricDef, ...] = (
    MetricDef("voxray_calls_started", "counter", "Calls started", ("schema",)),
    MetricDef("voxray_calls_completed", "counter", "Calls ended, by outcome and end reason",
              ("schema", "outcome", "reason")),
    MetricDef("voxray_calls_active", "gauge", "Live calls per call host and schema", ("host", "schema")),
    MetricDef("voxray_turns", "counter", "Turns answered, by mode and reply source",
              ("schema", "mode", "source")),
    MetricDef("voxray_turn_latency_ms", "histogram", "Per-turn stage latency (ms)", ("stage", "mode"),
              tuple(LATENCY_BOUNDARIES_MS)),
    MetricDef("voxray_start_call_latency_ms", "histogram", "POST /calls latency at the ingress (ms)",
              ("schema",), tuple(LATENCY_BOUNDARIES_MS)),
    MetricDef("voxray_cache_hits", "counter", "Semantic cache hits seen by calls, by tier", ("tier",)),
    MetricDef("voxray_cache_misses", "counter", "Semantic cache lookups that missed both tiers"),
    MetricDef("voxray_errors", "counter", "Errors by component and type", ("component", "type")),
    MetricDef("voxray_call_cost_usd", "counter", "What ended calls cost, by component (phone, stt, tts, llm)",
              ("schema", "component")),
    MetricDef("voxray_guard_stops", "counter", "Off-script replies the guard stopped, by rule and source",
              ("rule", "source")),
    MetricDef("voxray_router_requests", "counter", "Requests the router sent to a provider", ("provider",)),
    MetricDef("voxray_router_wins", "counter", "Races/hedges/singles a provider won", ("provider",)),
    MetricDef("voxray_router_errors", "counter", "Provider errors (incl. timeouts)", ("provider",)),
    MetricDef("voxray_router_timeouts", "counter", "Provider timeouts", ("provider",)),
    MetricDef("voxray_router_breaker_state", "gauge", "Circuit breaker: 0 closed, 1 half-open, 2 open",
              ("provider",)),
    MetricDef("voxray_router_ttft_p50_ms", "gauge", "Provider's recent median TTFT (ms)", ("provider",)),
    # Two counters, not a histogram: Ray exports a histogram's _sum from bucket midpoints, so a
    # mean batch size computed from it would be wrong (batches of 1 read as 0.5).
    MetricDef("voxray_stt_batches", "counter", "STT model batches run (@serve.batch)"),
    MetricDef("voxray_stt_batched_requests", "counter", "Requests those STT batches held"),
    MetricDef("voxray_embed_batch_size_mean", "gauge", "Mean recent embedding batch size"),
    MetricDef("voxray_tts_requests", "counter", "TTS requests"),
    MetricDef("voxray_tts_phrase_cache_hits", "counter", "TTS sentences served from the phrase cache"),
)  # fmt: skip
BY_NAME = {m.name: m for m in METRICS}

_objects: dict[str, Any] = {}


def _metric(name: str) -> Any:
    obj = _objects.get(name)
    if obj is None:
        d = BY_NAME[name]
        if d.kind == "counter":
            obj = rm.Counter(d.name, d.description, tag_keys=d.tags)
        elif d.kind == "gauge":
            obj = rm.Gauge(d.name, d.description, tag_keys=d.tags)
        else:
            obj = rm.Histogram(d.name, d.description, boundaries=list(d.boundaries), tag_keys=d.tags)
        _objects[name] = obj
    return obj


def _safe(fn: Any) -> Any:
    """Metrics never break a call: failures are logged once per function and swallowed."""
    warned: list[bool] = []

    def wrapper(*args: Any, **kwargs: Any) -> None:
        try:
            fn(*args, **kwargs)
        except Exception as exc:  # pragma: no cover - defensive
            if not warned:
                warned.append(True)
                log.warning("metrics %s failed: %s", fn.__name__, exc)

    wrapper.__name__ = fn.__name__
    wrapper.__doc__ = fn.__doc__
    return wrapper


# ---------------------------------------------------------------------------- call lifecycle
@_safe
def call_started(schema: str) -> None:
    _metric("voxray_calls_started").inc(1, tags={"schema": schema})


@_safe
def call_completed(schema: str, outcome: str | None, reason: str) -> None:
    # reasons are a small fixed vocabulary (hangup, caller_hung_up, twilio:<status>, dial_failed)
    _metric("voxray_calls_completed").inc(
        1, tags={"schema": schema, "outcome": outcome or "none", "reason": reason[:40]}
    )


@_safe
def calls_active(host: str, by_schema: Mapping[str, int], known: set[str]) -> None:
    """Set the live-call gauge of every schema this host has seen (0 for those now empty)."""
    gauge = _metric("voxray_calls_active")
    for schema in known | set(by_schema):
        gauge.set(float(by_schema.get(schema, 0)), tags={"host": host, "schema": schema})


@_safe
def turn_observed(schema: str, mode: str, source: str, stages_ms: Mapping[str, float]) -> None:
    _metric("voxray_turns").inc(1, tags={"schema": schema, "mode": mode, "source": source or "none"})
    stages_observed(mode, stages_ms)
    if "cache" in stages_ms:  # a lookup happened this turn
        if source.startswith("cache_"):
            _metric("voxray_cache_hits").inc(1, tags={"tier": source.removeprefix("cache_")})
        else:
            _metric("voxray_cache_misses").inc(1)


@_safe
def stages_observed(mode: str, stages_ms: Mapping[str, float]) -> None:
    """Stage latencies of a turn (the edge reports the ones it measures: stt, tts, voice to voice)."""
    hist = _metric("voxray_turn_latency_ms")
    for stage in TURN_STAGES:
        value = stages_ms.get(stage)
        if value is not None:
            hist.observe(float(value), tags={"stage": stage, "mode": mode})


@_safe
def error(component: str, kind: str) -> None:
    _metric("voxray_errors").inc(1, tags={"component": component, "type": kind})


@_safe
def call_cost(schema: str, components: dict[str, float]) -> None:
    for component, usd in components.items():
        if usd:
            _metric("voxray_call_cost_usd").inc(usd, tags={"schema": schema, "component": component})


@_safe
def guard_stopped(rule: str, source: str) -> None:
    _metric("voxray_guard_stops").inc(1, tags={"rule": rule, "source": source})


@_safe
def start_call_latency(schema: str, ms: float) -> None:
    _metric("voxray_start_call_latency_ms").observe(ms, tags={"schema": schema})


# ---------------------------------------------------------------------------- deployment stats
class DeltaCounter:
    """Turns cumulative counts polled from a replica into counter increments.

    A count that goes down means a different or restarted replica answered: the new value is
    taken as the baseline and nothing is added (under-counts rather than double-counts)."""

    def __init__(self) -> None:
        self.last: dict[str, float] = {}

    def delta(self, key: str, value: float) -> float:
        prev = self.last.get(key)
        self.last[key] = value
        if prev is None:
            return value
        return value - prev if value >= prev else 0.0


ROUTER_COUNTERS = (
    ("requests", "voxray_router_requests"),
    ("wins", "voxray_router_wins"),
    ("errors", "voxray_router_errors"),
    ("timeouts", "voxray_router_timeouts"),
)


def export_router_stats(stats: Mapping[str, Any], deltas: DeltaCounter) -> None:
    for provider, s in (stats.get("providers") or {}).items():
        tags = {"provider": provider}
        for field, name in ROUTER_COUNTERS:
            d = deltas.delta(f"router:{provider}:{field}", float(s.get(field, 0)))
            if d > 0:
                _metric(name).inc(d, tags=tags)
        state = str((s.get("breaker") or {}).get("state", "closed"))
        _metric("voxray_router_breaker_state").set(BREAKER_STATE.get(state, 0.0), tags=tags)
        if s.get("ttft_ms_p50") is not None:
            _metric("voxray_router_ttft_p50_ms").set(float(s["ttft_ms_p50"]), tags=tags)


def export_stt_stats(stats: Mapping[str, Any], deltas: DeltaCounter) -> None:
    for size, count in (stats.get("batch_sizes") or {}).items():
        d = deltas.delta(f"stt:batch:{size}", float(count))
        if d > 0:
            _metric("voxray_stt_batches").inc(d)
            _metric("voxray_stt_batched_requests").inc(d * float(size))


def export_cache_stats(stats: Mapping[str, Any], deltas: DeltaCounter) -> None:
    if stats.get("embed_batch_size_mean") is not None:
        _metric("voxray_embed_batch_size_mean").set(float(stats["embed_batch_size_mean"]))


def export_tts_stats(stats: Mapping[str, Any], deltas: DeltaCounter) -> None:
    for field, name in (("requests", "voxray_tts_requests"), ("cache_hits", "voxray_tts_phrase_cache_hits")):
        d = deltas.delta(f"tts:{field}", float(stats.get(field, 0)))
        if d > 0:
            _metric(name).inc(d)


POLLED = {
    "router": export_router_stats,
    "stt": export_stt_stats,
    "cache": export_cache_stats,
    "tts": export_tts_stats,
}
POLLER_NAME = "voxray-metrics-poller"


class StatsSource(Protocol):
    async def stats(self) -> dict[str, Any]: ...


class MetricsPollerCore:
    """Polls each service's ``stats()`` (through the clients handed in) every ``interval_s``."""

    def __init__(self, sources: Mapping[str, StatsSource], interval_s: float = 5.0):
        unknown = set(sources) - set(POLLED)
        if unknown:
            raise ValueError(f"unknown stats sources {sorted(unknown)}; known: {sorted(POLLED)}")
        self.sources = dict(sources)
        self.interval_s = interval_s
        self.deltas = DeltaCounter()
        self.last: dict[str, Any] = {}
        self._task: asyncio.Task[None] | None = None

    async def poll_once(self) -> dict[str, Any]:
        for kind, source in self.sources.items():
            try:
                stats = await asyncio.wait_for(source.stats(), timeout=5.0)
            except Exception as exc:  # not deployed in this app, or busy: skip this round
                self.last[kind] = {"unavailable": type(exc).__name__}
                continue
            self.last[kind] = stats
            POLLED[kind](stats, self.deltas)
        return self.last

    async def run(self) -> None:
        while True:
            await self.poll_once()
            await asyncio.sleep(self.interval_s)

    def ensure_running(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self.run())


def _poller_class() -> Any:
    import ray

    @ray.remote(num_cpus=0, max_restarts=-1)
    class MetricsPoller:
        def __init__(self, sources: Mapping[str, StatsSource], interval_s: float = 5.0):
            self.core = MetricsPollerCore(sources, interval_s)

        async def start(self) -> bool:
            self.core.ensure_running()
            return True

        async def last(self) -> dict[str, Any]:
            return self.core.last

        async def poll_now(self) -> dict[str, Any]:
            return await self.core.poll_once()

    return MetricsPoller


async def ensure_poller(sources: Mapping[str, StatsSource], interval_s: float = 5.0) -> Any:
    """Start (or find) the one detached poller actor of this cluster."""
    handle = (
        _poller_class()
        .options(name=POLLER_NAME, namespace="voxray", lifetime="detached", get_if_exists=True)
        .remote(dict(sources), interval_s)
    )
    await handle.start.remote()
    return handle
