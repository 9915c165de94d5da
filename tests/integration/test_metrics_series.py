"""Deployment series as Ray exports them: two replicas record their own events
(``services/replica_metrics.py`` with the real ``ray.serve.metrics``) and the node's Prometheus
endpoint carries one series per replica whose sum is the true total.

``MetricsProbe`` is a test deployment, not part of the app: it records what a TTS replica records
per request, so the test can count what each replica did.
"""

from __future__ import annotations

import re
import time
import urllib.request
from collections import Counter
from typing import Any

import pytest
import ray
from ray import serve

from services.replica_metrics import ReplicaMetrics

SERIES = re.compile(r"^ray_voxray_tts_requests_total\{([^}]*)\}\s+([0-9.eE+-]+)$", re.M)


@serve.deployment(num_replicas=2, ray_actor_options={"num_cpus": 0.01}, max_ongoing_requests=4)
class MetricsProbe:
    def __init__(self) -> None:
        self.metrics = ReplicaMetrics()

    async def request(self) -> str:
        self.metrics.tts_request()
        return str(serve.get_replica_context().replica_tag)


def _series(port: int) -> dict[str, float]:
    """Per replica: the exported ``ray_voxray_tts_requests_total`` of the probe's app."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    out: dict[str, float] = {}
    for labels, value in SERIES.findall(text):
        tags = dict(re.findall(r'(\w+)="([^"]*)"', labels))
        if tags.get("application") == "metrics-probe":
            out[tags["replica"]] = float(value)
    return out


@pytest.mark.timeout(180)
def test_two_replicas_export_their_own_counts_and_sum_to_the_total(ray_session: None) -> None:
    handle: Any = serve.run(MetricsProbe.bind(), name="metrics-probe", route_prefix=None)  # type: ignore[attr-defined]
    try:
        served = Counter(handle.request.remote().result() for _ in range(40))
        port = int(ray.nodes()[0]["MetricsExportPort"])  # type: ignore[no-untyped-call]
        deadline = time.monotonic() + 90  # Ray's agent exports every ~10 s
        seen: dict[str, float] = {}
        while time.monotonic() < deadline:
            seen = _series(port)
            if sum(seen.values()) >= 40:
                break
            time.sleep(2)
        assert sum(seen.values()) == 40
        assert len(served) == 2, served  # both replicas served (Serve spreads idle requests)
        # one series per replica, each exactly what that replica served
        assert {tag.split("#")[-1] for tag in seen} == {tag.split("#")[-1] for tag in served}
        assert sorted(seen.values()) == sorted(float(n) for n in served.values())
        for _ in range(3):  # reading again never adds
            assert sum(_series(port).values()) == 40
    finally:
        serve.delete("metrics-probe")
