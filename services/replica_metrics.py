"""Deployment metrics recorded inside each Serve replica, where the events happen.

Each replica owns its series (``ray.serve.metrics`` labels them with ``deployment``, ``replica``
and ``application``), increments them as it routes, batches and synthesises, and Ray's metrics
agent exports them; Prometheus sums over replicas. Nothing polls ``stats()`` and nothing turns
cumulative counts back into increments, so two replicas that handled 100 and 150 requests
export 100 and 150: 250 in all, however often they are scraped.

``ReplicaMetrics`` takes the factory that makes the metric objects: the real one
(``serve_metric``) by default, a recorder in tests. Recording never breaks the caller.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol

from common.llm_types import Usage
from common.metric_defs import DEPLOYMENT_METRICS, MetricDef

log = logging.getLogger("voxray.metrics")

BY_NAME = {m.name: m for m in DEPLOYMENT_METRICS}
BREAKER_STATE = {"closed": 0.0, "half_open": 1.0, "open": 2.0}


class MetricObject(Protocol):
    def inc(self, value: float = 1.0, tags: dict[str, str] | None = None) -> None: ...
    def set(self, value: float, tags: dict[str, str] | None = None) -> None: ...
    def observe(self, value: float, tags: dict[str, str] | None = None) -> None: ...


MetricFactory = Callable[[MetricDef], MetricObject]


def serve_metric(d: MetricDef) -> MetricObject:
    """A ``ray.serve.metrics`` object for ``d`` (inside a replica it adds the Serve labels)."""
    from ray.serve import metrics as sm

    tags: Any = d.tags or None  # Ray annotates tag_keys as tuple[str] though it takes any length
    made: object
    if d.kind == "counter":
        made = sm.Counter(d.name, d.description, tag_keys=tags)
    elif d.kind == "gauge":
        made = sm.Gauge(d.name, d.description, tag_keys=tags)
    else:
        made = sm.Histogram(d.name, d.description, boundaries=list(d.boundaries), tag_keys=tags)
    return made  # type: ignore[return-value]


class ReplicaMetrics:
    """The deployment series of one replica process."""

    def __init__(self, factory: MetricFactory = serve_metric) -> None:
        self._factory = factory
        self._objects: dict[str, MetricObject] = {}
        self._warned = False

    def _get(self, name: str) -> MetricObject:
        obj = self._objects.get(name)
        if obj is None:
            obj = self._objects[name] = self._factory(BY_NAME[name])
        return obj

    def _record(self, op: str, name: str, value: float, tags: dict[str, str] | None) -> None:
        try:
            getattr(self._get(name), op)(value, tags=tags)
        except Exception as exc:  # metrics never break a request
            if not self._warned:
                self._warned = True
                log.warning("metric %s not recorded: %s", name, exc)

    def inc(self, name: str, value: float = 1.0, tags: dict[str, str] | None = None) -> None:
        if value:
            self._record("inc", name, float(value), tags)

    def set(self, name: str, value: float, tags: dict[str, str] | None = None) -> None:
        self._record("set", name, float(value), tags)

    def observe(self, name: str, value: float, tags: dict[str, str] | None = None) -> None:
        self._record("observe", name, float(value), tags)

    # ---- the router (services/llm/router.py) ------------------------------------------------
    def provider_request(self, provider: str) -> None:
        self.inc("voxray_router_requests", tags={"provider": provider})

    def provider_won(self, provider: str) -> None:
        self.inc("voxray_router_wins", tags={"provider": provider})

    def provider_failed(self, provider: str, timeout: bool = False) -> None:
        self.inc("voxray_router_errors", tags={"provider": provider})
        if timeout:
            self.inc("voxray_router_timeouts", tags={"provider": provider})

    def breaker(self, provider: str, state: str) -> None:
        self.set("voxray_router_breaker_state", BREAKER_STATE.get(state, 0.0), tags={"provider": provider})

    def ttft(self, provider: str, ms: float) -> None:
        self.observe("voxray_llm_ttft_ms", ms, tags={"provider": provider})

    def usage(self, provider: str, usage: Usage, cost_usd: float) -> None:
        tags = {"provider": provider}
        self.inc("voxray_llm_input_tokens", usage.input_tokens, tags)
        self.inc("voxray_llm_cached_input_tokens", usage.cached_input_tokens, tags)
        self.inc("voxray_llm_output_tokens", usage.output_tokens, tags)
        self.inc("voxray_llm_cost_usd", cost_usd, tags)

    # ---- batches and the phrase cache (services/stt.py, services/cache, services/tts.py) ------
    def stt_batch(self, size: int) -> None:
        self.inc("voxray_stt_batches")
        self.inc("voxray_stt_batched_requests", size)

    def embed_batch(self, size: int) -> None:
        self.inc("voxray_embed_batches")
        self.inc("voxray_embed_batched_requests", size)

    def tts_request(self) -> None:
        self.inc("voxray_tts_requests")

    def tts_phrase_hit(self) -> None:
        self.inc("voxray_tts_phrase_cache_hits")
