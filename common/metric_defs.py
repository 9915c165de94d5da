"""What voxray's metrics are: names, kinds, labels and buckets, as plain data (no Ray here).

``actors/metrics.py`` records the call-host and edge series; ``services/replica_metrics.py``
records the deployment series below inside each Serve replica. Both create their Ray metric
objects from these definitions, and the Grafana dashboard test checks every queried series
against them (``actors.metrics.METRICS`` is the union).
"""

from __future__ import annotations

from dataclasses import dataclass

LATENCY_BOUNDARIES_MS = (
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
)
# Labels ``ray.serve.metrics`` adds to every series recorded inside a replica.
SERVE_TAGS = ("deployment", "replica", "application")


@dataclass(frozen=True)
class MetricDef:
    name: str
    kind: str  # counter | gauge | histogram
    description: str
    tags: tuple[str, ...] = ()
    boundaries: tuple[float, ...] = ()
    per_replica: bool = False  # recorded inside Serve replicas: also labelled with SERVE_TAGS


def _replica(
    name: str, kind: str, description: str, tags: tuple[str, ...] = (), boundaries: tuple[float, ...] = ()
) -> MetricDef:
    return MetricDef(name, kind, description, tags, boundaries, per_replica=True)


# Recorded where they happen, inside each replica: a counter's series per replica only ever
# grows with that replica's own events, so summing over replicas is the true total.
DEPLOYMENT_METRICS: tuple[MetricDef, ...] = (
    _replica("voxray_router_requests", "counter", "Requests the router sent to a provider", ("provider",)),
    _replica("voxray_router_wins", "counter", "Races/hedges/singles a provider won", ("provider",)),
    _replica("voxray_router_errors", "counter", "Provider errors (incl. timeouts)", ("provider",)),
    _replica("voxray_router_timeouts", "counter", "Provider timeouts", ("provider",)),
    _replica("voxray_router_breaker_state", "gauge", "Circuit breaker: 0 closed, 1 half-open, 2 open",
             ("provider",)),
    _replica("voxray_llm_ttft_ms", "histogram", "Provider's time to first token (ms)", ("provider",),
             boundaries=LATENCY_BOUNDARIES_MS),
    _replica("voxray_llm_input_tokens", "counter", "Prompt tokens of finished replies", ("provider",)),
    _replica("voxray_llm_cached_input_tokens", "counter",
             "Of those prompt tokens, read from the provider's prompt cache", ("provider",)),
    _replica("voxray_llm_output_tokens", "counter", "Generated tokens of finished replies", ("provider",)),
    _replica("voxray_llm_cost_usd", "counter", "What finished replies cost (USD)", ("provider",)),
    # Two counters, not a histogram: Ray exports a histogram's _sum from bucket midpoints, so a
    # mean batch size computed from it would be wrong (batches of 1 read as 0.5).
    _replica("voxray_stt_batches", "counter", "STT model batches run (@serve.batch)"),
    _replica("voxray_stt_batched_requests", "counter", "Requests those STT batches held"),
    _replica("voxray_embed_batches", "counter", "Embedding model batches run (@serve.batch)"),
    _replica("voxray_embed_batched_requests", "counter", "Texts those embedding batches held"),
    _replica("voxray_tts_requests", "counter", "TTS requests"),
    _replica("voxray_tts_phrase_cache_hits", "counter", "TTS sentences served from the phrase cache"),
)  # fmt: skip
