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
- the Serve replicas themselves (``services/replica_metrics.py``, definitions in
  ``common/metric_defs.py``): router requests/wins/errors/breaker state, LLM TTFT, tokens and
  cost by provider, STT and embedding batches, TTS requests and phrase-cache hits — each
  replica records its own events as they happen (no polling), so sums over replicas are true.

All functions are cheap no-ops until first use creates the metric objects in the process.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from ray.util import metrics as rm

from common.metric_defs import DEPLOYMENT_METRICS, LATENCY_BOUNDARIES_MS, MetricDef

log = logging.getLogger("voxray.metrics")

BATCH_BOUNDARIES = [1, 2, 3, 4, 6, 8, 12, 16, 24, 32]
TURN_STAGES = ("stt", "nlu", "cache", "llm_ttft", "tts_first_audio", "voice_to_voice", "turn_total")


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
    *DEPLOYMENT_METRICS,  # recorded inside the Serve replicas (services/replica_metrics.py)
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
