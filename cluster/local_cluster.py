"""A fake multi-node voxray cluster on this machine, end to end, through ``ray up``, then torn
down with ``ray down``.

    python -m cluster.local_cluster [--keep]

1. starts a provider latency model (``common/testing/latency_models.py``, simulated LLM) and runs
   ``ray up -y cluster/local-cluster.yaml`` (Ray's fake multi-node provider through
   ``cluster/fake_up_provider.py``: this machine is the head, fake CPU and GPU workers are local
   raylets the autoscaler starts);
2. deploys the voxray Serve app with the ingress autoscaling on a low ongoing-request target;
3. places a call (text mode) and prints its turns;
4. loads the app with concurrent text-mode sessions until Serve asks for more ingress
   replicas than the head's CPUs hold and the autoscaler adds a ``ray.worker.cpu`` node
   (prints ``ray.nodes()`` and ``ray status`` as it happens);
5. ``ray down -y cluster/local-cluster.yaml``, which runs ``ray stop`` on the head, this machine:
   so the script refuses to start while another Ray runs here.

Figures are printed; nothing fails on timing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import psutil
import yaml

from loadtests.api_key import tool_headers

# `ray start` in Ray 2.60 turns token authentication on (token in ~/.ray/auth_token); a driver
# connecting by address must be in token mode too, decided when ray is first imported.
os.environ.setdefault("RAY_AUTH_MODE", "token")
ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "cluster/local-cluster.yaml"
TEMP_DIR = "/tmp/vxfake"  # the head's --temp-dir in CONFIG
RAY = str(Path(sys.executable).with_name("ray"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def foreign_ray_processes() -> list[str]:
    """Ray daemons on this machine that are not this fake cluster's (``ray down`` would end them)."""
    found = []
    for proc in psutil.process_iter(["name", "cmdline"]):
        try:
            cmdline = " ".join(proc.info["cmdline"] or [])
        except psutil.Error:
            continue
        if proc.info["name"] in ("raylet", "gcs_server") and TEMP_DIR not in cmdline:
            found.append(f"{proc.info['name']} (pid {proc.pid})")
    return found


def cluster_processes() -> list[int]:
    return [p.pid for p in psutil.process_iter(["cmdline"]) if TEMP_DIR in " ".join(p.info["cmdline"] or [])]


def ray_cli(*args: str, env: dict[str, str], timeout: float = 300) -> None:
    print("$ ray " + " ".join(args), flush=True)
    subprocess.run([RAY, *args], env=env, cwd=ROOT, check=True, timeout=timeout)


def nodes_summary() -> list[str]:
    import ray

    out = []
    for n in ray.nodes():
        if n.get("Alive"):
            res = n.get("Resources", {})
            out.append(f"{n['NodeID'][-5:]} CPU={res.get('CPU', 0):g} GPU={res.get('GPU', 0):g}")
    return out


def ray_status(address: str, env: dict[str, str]) -> str:
    try:
        r = subprocess.run(
            [RAY, "status", f"--address={address}"], env=env, capture_output=True, text=True, timeout=30
        )
        return r.stdout.strip() or r.stderr.strip()
    except subprocess.TimeoutExpired:
        return "(ray status timed out)"


def build_app() -> Any:
    """serve_app's app with the ingress autoscaling on 4 ongoing requests (so load asks for replicas)."""
    from serve_app import build_app as build

    return build(
        ingress_options={
            "autoscaling_config": {
                "min_replicas": 1,
                "max_replicas": 4,
                "target_ongoing_requests": 4,
                "upscale_delay_s": 3,
                "downscale_delay_s": 600,
                "metrics_interval_s": 2,
                "look_back_period_s": 6,
            }
        }
    )


async def place_call(base: str) -> str:
    from common.testing.samples import SAMPLE_CALL_DATA

    body = {
        "schema_name": "prior_auth",
        "call_data": SAMPLE_CALL_DATA["prior_auth"],
        "simulate": {"persona": "insurance_rep"},
    }
    async with httpx.AsyncClient(base_url=base, timeout=60, headers=tool_headers()) as client:
        call = (await client.post("/calls", json=body)).json()
        print(f"call {call['call_id']} on {call['host']} ready in {call['ready_ms']:.1f} ms", flush=True)
        for line in (
            "Thanks for calling Acme Health provider services, this is Dana. How can I help you?",
            "Sorry, can you hold on a second? My computer is really slow today.",
        ):
            turn = (await client.post(f"/calls/{call['call_id']}/turns", json={"text": line})).json()
            print(
                f"  CALLER {line}\n  AGENT  {turn['agent']}   [{turn['source']}, "
                f"{turn['stages_ms'].get('turn_total', 0):.0f} ms]",
                flush=True,
            )
        await client.post(f"/calls/{call['call_id']}/hangup", json={})
        return str(call["call_id"])


async def load_until_new_node(base: str, sessions: int, max_s: float, start_nodes: int) -> dict[str, Any]:
    import ray

    from common.testing.samples import SAMPLE_CALL_DATA

    body = {
        "schema_name": "prior_auth",
        "call_data": SAMPLE_CALL_DATA["prior_auth"],
        "simulate": {"persona": "insurance_rep"},
    }
    stop = asyncio.Event()
    counts = {"turns": 0, "errors": 0}
    limits = httpx.Limits(max_connections=sessions + 10)

    async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits, headers=tool_headers()) as client:

        async def session() -> None:
            while not stop.is_set():
                r = await client.post("/calls", json=body)
                if r.status_code != 201:
                    counts["errors"] += 1
                    await asyncio.sleep(0.5)
                    continue
                cid = r.json()["call_id"]
                for line in (
                    "Sorry, can you hold on a second? My computer is really slow today.",
                    "What's the weather like over there today?",
                ) * 3:
                    if stop.is_set():
                        break
                    t = await client.post(f"/calls/{cid}/turns", json={"text": line})
                    counts["turns" if t.status_code == 200 else "errors"] += 1
                await client.post(f"/calls/{cid}/hangup", json={})

        tasks = [asyncio.create_task(session()) for _ in range(sessions)]
        t0 = time.time()
        added_at = None
        while time.time() - t0 < max_s:
            await asyncio.sleep(3)
            alive = nodes_summary()
            print(
                f"  t+{time.time() - t0:4.0f}s nodes {len(alive)}: {alive}; turns {counts['turns']}, "
                f"errors {counts['errors']}",
                flush=True,
            )
            if len(alive) > start_nodes:
                added_at = time.time() - t0
                break
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
    del ray
    return {"node_added_after_s": added_at, **counts}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sessions", type=int, default=40)
    ap.add_argument("--max-load-s", type=float, default=150)
    ap.add_argument("--keep", action="store_true", help="leave the fake cluster running (ray down later)")
    args = ap.parse_args()
    others = foreign_ray_processes()
    if others:
        raise SystemExit(
            f"another Ray runs on this machine ({', '.join(others[:4])}); `ray down` ends the head with "
            "`ray stop`, which would end it too. Stop it first."
        )
    config = yaml.safe_load(CONFIG.read_text())
    address = config["provider"]["gcs_address"]

    from common.testing.latency_models import LatencyModelConfig, ProviderLatencyModel

    model = ProviderLatencyModel(LatencyModelConfig(name="model-a", seed=1)).start()
    http_port = free_port()
    env = {
        **os.environ,
        "RAY_AUTH_MODE": "token",  # Ray 2.60 default for `ray start`; the driver must say so too
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "RAY_USAGE_STATS_ENABLED": "0",
        # the cluster's processes inherit these from `ray up` (the head is this machine)
        "VOXRAY_PROVIDERS__LOCAL_ENABLED": "false",
        "VOXRAY_PROVIDERS__OPENAI_COMPATIBLE_URL": model.base_url,
        "VOXRAY_TWILIO__PUBLIC_BASE_URL": f"http://127.0.0.1:{http_port}",
    }
    t0 = time.time()
    try:
        ray_cli("up", "-y", "--no-config-cache", str(CONFIG.relative_to(ROOT)), env=env)
        import ray

        os.environ.update(
            {k: v for k, v in env.items() if k.startswith(("VOXRAY_", "HF_", "TRANSFORMERS_", "RAY_AUTH"))}
        )
        ray.init(address=address, log_to_driver=False)
        print(f"ray up done in {time.time() - t0:.0f} s: {nodes_summary()}", flush=True)
        from ray import serve

        serve.start(http_options={"host": "127.0.0.1", "port": http_port})
        t1 = time.time()
        serve.run(build_app(), name="voxray", route_prefix="/")
        print(f"voxray deployed in {time.time() - t1:.0f} s; nodes: {nodes_summary()}", flush=True)
        base = f"http://127.0.0.1:{http_port}"
        asyncio.run(place_call(base))
        start_nodes = len(nodes_summary())
        print(
            f"loading with {args.sessions} concurrent text sessions until the autoscaler adds a node",
            flush=True,
        )
        result = asyncio.run(load_until_new_node(base, args.sessions, args.max_load_s, start_nodes))
        print(f"load result: {result}", flush=True)
        print(ray_status(address, env), flush=True)
        if args.keep:
            print(f"kept: RAY_ADDRESS={address}; app on {base}; `ray down -y {CONFIG}` ends it.", flush=True)
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        with contextlib.suppress(Exception):
            import ray

            ray.shutdown()
        t2 = time.time()  # also after a failed `ray up`: its head may be half started
        ray_cli("down", "-y", str(CONFIG.relative_to(ROOT)), env=env)
        left = [
            p.pid for p in psutil.process_iter(["cmdline"]) if TEMP_DIR in " ".join(p.info["cmdline"] or [])
        ]
        print(
            f"ray down done in {time.time() - t2:.0f} s; processes of the cluster left: {len(left)}",
            flush=True,
        )
        model.stop()


if __name__ == "__main__":
    main()
