"""One command for voxray's load scenarios: provider latency models + local Ray/Serve + load.

    python -m loadtests.run_scenarios --scenario standard     # ~10 min on the 2-core box
    python -m loadtests.run_scenarios --scenario smoke        # ~2 min: 10 sessions, tiny spike, 1 audio call

What it does:
1. starts two PROVIDER LATENCY MODELS (``common/testing/latency_models.py``: simulated
   OpenAI-compatible servers with lognormal TTFT and tokens/s, not LLMs) and configures the
   router to race them (``openai_compatible`` and ``openai`` pointed at the models); the local
   llama.cpp provider is disabled, so the load measures voxray's own overhead;
2. starts local Ray + Serve and the ``voxray`` app (``loadtests.place_call.start_cluster``);
3. runs the scenario's phases: Locust (headless, subprocess: gevent and Ray cannot share a
   process) text-mode ramps, a spike of simultaneous start-calls (asyncio), and audio mode
   (asyncio ``SimulatedCaller`` over the real media websocket, concurrency stepped up until the
   box no longer keeps up in real time);
4. samples CPU, call-host RSS and live calls every 2 s, reads router/cache stats and scrapes
   Ray's Prometheus export for the ``ray_voxray_*`` series;
5. writes ``loadtests/reports/<scenario>/report.md``, ``report.json`` and PNG plots.

Figures are printed and written; nothing here fails on a latency threshold.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import time
from pathlib import Path
from typing import Any

import httpx
import psutil

from common.testing.latency_models import ProviderLatencyModel
from loadtests.api_key import tool_headers
from loadtests.drivers import (
    SAMPLER_EXCLUDE,
    Sampler,
    configure_env,
    router_delta,
    run_audio,
    run_locust,
    run_spike,
    scrape_voxray_series,
    serve_stats,
)
from loadtests.report import plot, summarise_text, write_markdown
from loadtests.scenarios import PROVIDER_MODELS, SCENARIOS

REPORTS = Path(__file__).resolve().parent / "reports"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenario", default="standard", choices=sorted(SCENARIOS))
    ap.add_argument("--port", type=int, default=8124)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument(
        "--prometheus",
        default=None,
        help="A Prometheus scraping this Ray cluster (file SD: /tmp/ray/prom_metrics_service_discovery.json);"
        " the dashboard's queries are evaluated against it after the text phases and reported.",
    )
    args = ap.parse_args()
    scenario = SCENARIOS[args.scenario]
    out = args.out or REPORTS / args.scenario
    out.mkdir(parents=True, exist_ok=True)
    base = f"http://127.0.0.1:{args.port}"

    models = [ProviderLatencyModel(cfg).start() for cfg in PROVIDER_MODELS]
    configure_env(args.port, models)
    from common.testing.samples import SAMPLE_CALL_DATA
    from loadtests.place_call import start_cluster

    t0 = time.time()
    # One API key drives every session: the front door's per-key rate limit and per-tenant call
    # quota are lifted, as the load measures the pipe (tests/e2e/test_hostile.py checks the limits).
    unlimited = {"limits.rate_per_s": 1e6, "limits.burst": 10**6, "limits.live_calls_per_tenant": 10**6}
    dashboard = start_cluster(args.port, unlimited)
    print(f"Ray + Serve up in {time.time() - t0:.0f} s; dashboard {dashboard}", flush=True)
    call_data = SAMPLE_CALL_DATA["prior_auth"]
    # warm-up: hosts, handles, router, cache
    with httpx.Client(base_url=base, timeout=60, headers=tool_headers()) as client:
        client.get("/readyz").raise_for_status()
        for _ in range(2):
            call = client.post(
                "/calls",
                json={
                    "schema_name": "prior_auth",
                    "call_data": call_data,
                    "simulate": {"persona": "insurance_rep"},
                },
            ).json()
            for line in ("Sorry, can you hold on a second? My computer is really slow today.", "Thanks."):
                client.post(f"/calls/{call['call_id']}/turns", json={"text": line})
            client.post(f"/calls/{call['call_id']}/hangup", json={})

    sampler = Sampler(base, SAMPLER_EXCLUDE)
    sampler.start()
    report: dict[str, Any] = {
        "scenario": args.scenario,
        "generated_at": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "machine": {
            "cpus": psutil.cpu_count(),
            "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
            "note": "shared with other work; system CPU includes the load generator",
        },
        "scenario_config": scenario.model_dump(),
        "text": [],
    }
    all_turns: list[dict[str, Any]] = []
    for phase in scenario.text:
        before = serve_stats()
        records, p0, p1 = run_locust(base, phase, out)
        after = serve_stats()
        summ = summarise_text(records, sampler.between(p0, p1), phase, p0, p1)
        summ["router"] = router_delta(before["LLMRouterDeployment"], after["LLMRouterDeployment"])
        summ["cache_deployment"] = after["SemanticCacheDeployment"]
        report["text"].append(summ)
        all_turns += [r for r in records if r["kind"] == "turn"]
        print(
            f"[{phase.name}] errors {summ['errors']}, turn p95 {summ['turn_ms_client']['p95']} ms, added p95 "
            f"{summ['added_ms_server']['p95']} ms, peak live {summ['peak_live_calls']}",
            flush=True,
        )
        time.sleep(5)
    report["prometheus"] = scrape_voxray_series()
    if scenario.spike:
        report["spike"] = asyncio.run(run_spike(base, scenario.spike, call_data))
        print(f"[spike] {report['spike']}", flush=True)
    if scenario.audio_levels:
        report["audio"] = asyncio.run(run_audio(base, scenario.audio_levels, scenario.audio_turns, call_data))
    if args.prometheus:
        from cluster.check_dashboard import check

        time.sleep(20)  # a scrape or two after the last phase
        window = f"{math.ceil((time.time() - t0) / 60)}m"  # rates over the whole run
        results = check(args.prometheus, rate=window)
        report["dashboard"] = {"prometheus": args.prometheus, "rate_window": window, "results": results}
    sampler.stop_event.set()
    report["provider_models"] = [m.stats() for m in models]
    report["deployments_final"] = serve_stats()
    if not report["prometheus"].get("series"):
        report["prometheus"] = scrape_voxray_series()
    report["plots"] = plot(report, all_turns, sampler.samples, out)
    report["samples"] = sampler.samples
    (out / "report.json").write_text(json.dumps(report, indent=1, default=str))
    write_markdown(report, out)
    print(f"report: {out / 'report.md'}", flush=True)
    for m in models:
        m.stop()
    import ray
    from ray import serve

    serve.shutdown()
    ray.shutdown()


if __name__ == "__main__":
    main()
