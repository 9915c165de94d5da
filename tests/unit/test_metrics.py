"""actors/metrics.py: names and the routing of turn results to metrics (the deployments' own
series: tests/unit/test_replica_metrics.py).

The Ray metric objects are replaced by recorders, so these tests need no Ray cluster; that the
series reach Ray's Prometheus export is shown by the load report (``ray_voxray_*`` list).
"""

from __future__ import annotations

from typing import Any

import pytest

from actors import metrics


class Recorder:
    def __init__(self, name: str) -> None:
        self.name = name
        self.calls: list[tuple[str, float, dict[str, str]]] = []

    def inc(self, value: float = 1.0, tags: dict[str, str] | None = None) -> None:
        self.calls.append(("inc", value, tags or {}))

    def set(self, value: float, tags: dict[str, str] | None = None) -> None:
        self.calls.append(("set", value, tags or {}))

    def observe(self, value: float, tags: dict[str, str] | None = None) -> None:
        self.calls.append(("observe", value, tags or {}))


@pytest.fixture
def rec(monkeypatch: pytest.MonkeyPatch) -> dict[str, Recorder]:
    made: dict[str, Recorder] = {}

    def fake(name: str) -> Recorder:
        assert name in metrics.BY_NAME, name
        return made.setdefault(name, Recorder(name))

    monkeypatch.setattr(metrics, "_metric", fake)
    return made


def test_definitions_are_prefixed_unique_and_well_formed() -> None:
    names = [m.name for m in metrics.METRICS]
    assert len(names) == len(set(names))
    for m in metrics.METRICS:
        assert m.name.startswith("voxray_") and m.kind in ("counter", "gauge", "histogram")
        assert not m.name.endswith("_total"), "Ray's export adds _total to counters itself"
        if m.kind == "histogram":
            assert list(m.boundaries) == sorted(m.boundaries) and m.boundaries
    stages = set(metrics.TURN_STAGES)
    assert {"stt", "nlu", "cache", "llm_ttft", "tts_first_audio", "voice_to_voice"} <= stages


def test_real_ray_metric_objects_can_be_created_without_a_cluster() -> None:
    for m in metrics.METRICS:
        assert metrics._metric(m.name) is not None


def test_cache_hit_turn(rec: dict[str, Recorder]) -> None:
    metrics.turn_observed(
        "prior_auth", "text", "cache_semantic", {"nlu": 0.4, "cache": 12.0, "turn_total": 13.0}
    )
    assert rec["voxray_cache_hits"].calls == [("inc", 1, {"tier": "semantic"})]
    assert "voxray_cache_misses" not in rec
    observed = {c[2]["stage"]: c[1] for c in rec["voxray_turn_latency_ms"].calls}
    assert observed == {"nlu": 0.4, "cache": 12.0, "turn_total": 13.0}
    assert rec["voxray_turns"].calls == [
        ("inc", 1, {"schema": "prior_auth", "mode": "text", "source": "cache_semantic"})
    ]


def test_cache_miss_and_scripted_turns(rec: dict[str, Recorder]) -> None:
    metrics.turn_observed(
        "prior_auth", "audio", "llm", {"cache": 30.0, "llm_ttft": 300.0, "voice_to_voice": 900.0}
    )
    metrics.turn_observed("prior_auth", "text", "script", {"nlu": 0.3, "turn_total": 0.5})  # no lookup
    assert rec["voxray_cache_misses"].calls == [("inc", 1, {})]
    assert "voxray_cache_hits" not in rec
    stages = [(c[2]["stage"], c[2]["mode"]) for c in rec["voxray_turn_latency_ms"].calls]
    assert ("voice_to_voice", "audio") in stages and ("llm_ttft", "audio") in stages


def test_call_lifecycle_and_errors(rec: dict[str, Recorder]) -> None:
    metrics.call_started("prior_auth")
    metrics.calls_active("host-0", {"prior_auth": 3}, {"prior_auth", "sales_qualification"})
    metrics.call_completed("prior_auth", None, "caller_hung_up")
    metrics.error("stt", "TimeoutError")
    active = {c[2]["schema"]: c[1] for c in rec["voxray_calls_active"].calls}
    assert active == {"prior_auth": 3.0, "sales_qualification": 0.0}  # emptied schemas drop to 0
    assert rec["voxray_calls_completed"].calls[0][2] == {
        "schema": "prior_auth",
        "outcome": "none",
        "reason": "caller_hung_up",
    }
    assert rec["voxray_errors"].calls == [("inc", 1, {"component": "stt", "type": "TimeoutError"})]


def test_a_failing_metric_never_breaks_the_caller(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(name: str) -> Any:
        raise RuntimeError("metrics backend down")

    monkeypatch.setattr(metrics, "_metric", boom)
    metrics.turn_observed("prior_auth", "text", "llm", {"cache": 1.0})  # no exception
    metrics.error("llm", "x")
