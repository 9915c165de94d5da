"""A soak: N text calls kept live for a while, memory of every Ray process sampled, slopes printed.

    python -m loadtests.soak --minutes 30 [--calls 8] [--json out.json]

The same local cluster, simulated LLM provider and call slots as ``loadtests.faults`` (each slot
places a prior_auth call with a webhook to a local receiver, drives its turns, hangs it up and
places the next), with no fault. Every ``--sample-s`` the resident memory (RSS) of each Ray
worker process of the app (replicas, call hosts) is read with psutil. Per process it prints the
RSS at the start and end and the least-squares slope over the run's second half (the first half
warms caches and allocators), in MB per minute; then calls, turns failed, records and webhooks
lost. Never fails on memory; exits 1 only when a record or a webhook was lost.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import psutil

from loadtests.faults import (
    HEALTHY,
    Env,
    Receiver,
    Slot,
    check_record,
    cleanup_redis,
    drive,
    hang_up,
    shutdown,
    wait_ready,
)


def ray_processes() -> dict[int, str]:
    """pid → name of this run's app processes: the ``ray::<Actor>`` workers (replicas, call
    hosts) below the Ray this process started (other Rays on the machine are not counted)."""
    out = {}
    for proc in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            cmd = " ".join(proc.cmdline())
            if cmd.startswith("ray::") and ("ServeReplica" in cmd or "CallHost" in cmd):
                out[proc.pid] = cmd.split()[0].removeprefix("ray::")
    return out


def slope_mb_per_min(samples: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, MB) samples, in MB per minute."""
    if len(samples) < 2:
        return 0.0
    n = len(samples)
    mt = sum(t for t, _ in samples) / n
    mm = sum(m for _, m in samples) / n
    var = sum((t - mt) ** 2 for t, _ in samples)
    return 0.0 if var == 0 else 60.0 * sum((t - mt) * (m - mm) for t, m in samples) / var


async def soak(env: Env, headers: dict[str, str], minutes: float, sample_s: float) -> dict[str, Any]:
    limits = httpx.Limits(max_connections=env.args.calls * 4 + 16)
    memory: dict[int, list[tuple[float, float]]] = {}
    names = ray_processes()
    async with httpx.AsyncClient(base_url=env.base, timeout=30, headers=headers, limits=limits) as client:
        stop = asyncio.Event()
        slots = [Slot(i) for i in range(env.args.calls)]
        drivers = [asyncio.create_task(drive(client, env, slot, stop)) for slot in slots]
        t0 = time.monotonic()
        while time.monotonic() - t0 < minutes * 60:
            for pid, name in ray_processes().items():
                names.setdefault(pid, name)
                with contextlib.suppress(psutil.Error):
                    rss = psutil.Process(pid).memory_info().rss / 2**20
                    memory.setdefault(pid, []).append((time.monotonic() - t0, rss))
            await asyncio.sleep(sample_s)
        stop.set()
        await asyncio.gather(*drivers, return_exceptions=True)
        runs = [r for s in slots for r in s.runs]
        for run in runs:
            if not run.hung_up:  # still live when the soak stopped
                await hang_up(client, run)
            await check_record(client, run)
        await asyncio.sleep(env.args.webhook_wait_s)
    turns = [t for s in slots for t in s.turns()]
    half = minutes * 30
    processes = [
        {
            "pid": pid,
            "name": names.get(pid, "?"),
            "rss_start_mb": round(samples[0][1], 1),
            "rss_end_mb": round(samples[-1][1], 1),
            "slope_mb_per_min": round(slope_mb_per_min([s for s in samples if s[0] >= half]), 3),
        }
        for pid, samples in sorted(memory.items(), key=lambda kv: names.get(kv[0], ""))
    ]
    return {
        "minutes": minutes,
        "calls": len(runs),
        "turns": len(turns),
        "turns_failed": sum(not t.ok for t in turns),
        "records_lost": sum(r.record is False for r in runs),
        "webhooks_lost": sum(env.receiver.got(r.call_id) == 0 for r in runs),
        "processes": processes,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=30.0)
    p.add_argument("--calls", type=int, default=8)
    p.add_argument("--port", type=int, default=8150)
    p.add_argument("--sample-s", type=float, default=30.0)
    p.add_argument("--think-s", type=float, default=1.0, help="pause between a call's turns")
    p.add_argument("--webhook-wait-s", type=float, default=30.0)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)

    from common.settings import get_settings
    from common.testing.openai_server import FakeOpenAIServer
    from loadtests.api_key import tool_headers
    from loadtests.place_call import start_cluster

    llm = FakeOpenAIServer(HEALTHY).start()
    receiver = Receiver()
    receiver.up()
    os.environ["VOXRAY_PROVIDERS__OPENAI_COMPATIBLE_URL"] = llm.base_url
    os.environ["VOXRAY_PROVIDERS__LOCAL_ENABLED"] = "false"
    get_settings.cache_clear()
    redis_url = get_settings().redis_url or "redis://127.0.0.1:6379/0"
    prefix = f"voxray-soak-{uuid.uuid4().hex[:8]}:"
    settings: dict[str, Any] = {
        "calls.key_prefix": prefix,
        "nlu.llm": "off",
        "providers.local_enabled": False,
        "limits.rate_per_s": 1e6,
        "limits.burst": 10**6,
        "limits.live_calls_per_tenant": 10**6,
        "webhooks.allow": ["http://127.0.0.1:*"],
    }
    base = f"http://127.0.0.1:{args.port}"
    started = False
    try:
        start_cluster(args.port, settings)
        started = True
        wait_ready(base)
        env = Env(base, prefix, llm, receiver, redis_url, args)
        result = asyncio.run(soak(env, tool_headers(prefix), args.minutes, args.sample_s))
    finally:
        if started:
            shutdown(prefix)
        llm.stop()
        receiver.down()
        with contextlib.suppress(Exception):
            cleanup_redis(redis_url, prefix)
    print(f"\nsoak: {result['minutes']:g} min, {result['calls']} calls, {result['turns']} turns "
          f"({result['turns_failed']} failed), records lost {result['records_lost']}, "
          f"webhooks lost {result['webhooks_lost']}")  # fmt: skip
    print(f"{'process':44s} {'pid':>7s} {'RSS start':>10s} {'RSS end':>9s} {'MB/min (2nd half)':>18s}")
    for proc in result["processes"]:
        start, end, slope = proc["rss_start_mb"], proc["rss_end_mb"], proc["slope_mb_per_min"]
        print(f"{proc['name'][:44]:44s} {proc['pid']:7d} {start:10.1f} {end:9.1f} {slope:18.3f}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    lost = result["records_lost"] or result["webhooks_lost"]
    if lost:
        print("LOSSES during the soak", file=sys.stderr)
    return 1 if lost else 0


if __name__ == "__main__":
    raise SystemExit(main())
