"""A fake multi-node voxray cluster on this machine, end to end, then torn down.

    python -m cluster.local_cluster [--keep]

1. starts a provider latency model (``loadtests/provider_model.py``, simulated LLM) and
   ``RAY_FAKE_CLUSTER=1 ray start --head --autoscaling-config=<cluster/local-cluster.yaml>``
   in its own temp dir and GCS port (never touching other Ray clusters on the box);
2. deploys the voxray Serve app with the ingress autoscaling on a low ongoing-request target;
3. places a call (text mode) and prints its turns;
4. loads the app with concurrent text-mode sessions until Serve asks for more ingress
   replicas than the head's CPUs hold and the autoscaler adds a ``ray.worker.cpu`` node
   (prints ``ray.nodes()`` and ``ray status`` as it happens);
5. tears everything down by process id (only the processes under its own temp dir).

Figures are printed; nothing fails on timing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import psutil
import yaml

# `ray start` in Ray 2.60 turns token authentication on (token in ~/.ray/auth_token); a driver
# connecting by address must be in token mode too, decided when ray is first imported.
os.environ.setdefault("RAY_AUTH_MODE", "token")
ROOT = Path(__file__).resolve().parent.parent
TEMP_DIR = "/tmp/vxfake"  # short: Ray's socket paths live under it
RAY = str(Path(sys.executable).with_name("ray"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def fake_defaults_present() -> tuple[bool, Path]:
    import ray

    path = Path(ray.__file__).parent / "autoscaler/_private/fake_multi_node/example.yaml"
    return path.exists(), path


def our_processes() -> list[psutil.Process]:
    """Processes of this fake cluster: those naming TEMP_DIR on their command line, and descendants."""
    roots = []
    for proc in psutil.process_iter(["cmdline"]):
        try:
            if any(TEMP_DIR in arg for arg in (proc.info["cmdline"] or [])):
                roots.append(proc)
        except psutil.Error:
            continue
    found: dict[int, psutil.Process] = {}
    for root in roots:
        found[root.pid] = root
        try:
            for child in root.children(recursive=True):
                found[child.pid] = child
        except psutil.Error:
            pass
    return [p for pid, p in found.items() if pid != os.getpid()]


def teardown() -> None:
    procs = our_processes()
    for p in procs:
        with contextlib.suppress(psutil.Error):
            p.terminate()
    _, alive = psutil.wait_procs(procs, timeout=10)
    for p in alive:
        with contextlib.suppress(psutil.Error):
            p.kill()
    print(f"teardown: ended {len(procs)} processes of the fake cluster (by pid)", flush=True)


def start_head(config: Path, gcs_port: int, env: dict[str, str]) -> None:
    cmd = [
        RAY,
        "start",
        "--head",
        f"--port={gcs_port}",
        "--num-cpus=5",
        "--num-gpus=0",
        f"--autoscaling-config={config}",
        f"--temp-dir={TEMP_DIR}",
        "--include-dashboard=false",
        "--disable-usage-stats",
    ]
    print("$ RAY_FAKE_CLUSTER=1 " + " ".join(cmd), flush=True)
    subprocess.run(cmd, env=env, check=True, timeout=120)


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
    from deployments.ingress import Ingress
    from deployments.llm_router import build_router_app
    from deployments.semantic_cache import SemanticCacheDeployment
    from deployments.stt import build_stt_app
    from deployments.tts import build_tts_app

    ingress = Ingress.options(
        autoscaling_config={
            "min_replicas": 1,
            "max_replicas": 4,
            "target_ongoing_requests": 4,
            "upscale_delay_s": 3,
            "downscale_delay_s": 600,
            "metrics_interval_s": 2,
            "look_back_period_s": 6,
        },
    )
    return ingress.bind(
        build_stt_app(), build_tts_app(phrases=[]), SemanticCacheDeployment.bind(), build_router_app()
    )


async def place_call(base: str) -> str:
    from loadtests.place_call import SAMPLE_CALL_DATA

    body = {
        "schema_name": "prior_auth",
        "call_data": SAMPLE_CALL_DATA["prior_auth"],
        "simulate": {"persona": "insurance_rep"},
    }
    async with httpx.AsyncClient(base_url=base, timeout=60) as client:
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

    from loadtests.place_call import SAMPLE_CALL_DATA

    body = {
        "schema_name": "prior_auth",
        "call_data": SAMPLE_CALL_DATA["prior_auth"],
        "simulate": {"persona": "insurance_rep"},
    }
    stop = asyncio.Event()
    counts = {"turns": 0, "errors": 0}
    limits = httpx.Limits(max_connections=sessions + 10)

    async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as client:

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
    ap.add_argument("--keep", action="store_true", help="leave the fake cluster running")
    ap.add_argument(
        "--restore-fake-defaults",
        action="store_true",
        help="write Ray's missing fake_multi_node/example.yaml into site-packages (see cluster/README.md)",
    )
    args = ap.parse_args()
    ok, defaults = fake_defaults_present()
    if not ok and args.restore_fake_defaults:
        # fillout_defaults() does defaults.update(config): with every top-level key present in
        # our config, the defaults file's content never matters, only its existence.
        shutil.copyfile(ROOT / "cluster/local-cluster.yaml", defaults)
        print(f"wrote the missing {defaults} (a copy of cluster/local-cluster.yaml)", flush=True)
    elif not ok:
        raise SystemExit(
            f"this Ray wheel lacks {defaults}, which the autoscaler loads for every fake_multinode config "
            "(FileNotFoundError in fillout_defaults); rerun with --restore-fake-defaults to write it. "
            "See cluster/README.md."
        )
    if our_processes():
        teardown()
    shutil.rmtree(TEMP_DIR, ignore_errors=True)

    from loadtests.provider_model import LatencyModelConfig, ProviderLatencyModel

    model = ProviderLatencyModel(LatencyModelConfig(name="model-a", seed=1)).start()
    http_port, gcs_port = free_port(), free_port()
    import ray

    ip = ray.util.get_node_ip_address()
    config = yaml.safe_load((ROOT / "cluster/local-cluster.yaml").read_text())
    config["provider"]["gcs_address"] = f"{ip}:{gcs_port}"  # fake workers join this GCS, not :6379
    tmp = Path(tempfile.mkdtemp(prefix="vxcfg"))
    (tmp / "local-cluster.yaml").write_text(yaml.safe_dump(config))
    env = {
        **os.environ,
        "RAY_FAKE_CLUSTER": "1",
        "RAY_AUTH_MODE": "token",  # Ray 2.60 default for `ray start`; the driver must say so too
        "AUTOSCALER_UPDATE_INTERVAL_S": "1",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "RAY_USAGE_STATS_ENABLED": "0",
        "VOXRAY_PROVIDERS__LOCAL_ENABLED": "false",
        "VOXRAY_PROVIDERS__OPENAI_COMPATIBLE_URL": model.base_url,
        "VOXRAY_TWILIO__PUBLIC_BASE_URL": f"http://127.0.0.1:{http_port}",
        "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
    }
    address = f"{ip}:{gcs_port}"
    t0 = time.time()
    try:
        start_head(tmp / "local-cluster.yaml", gcs_port, env)
        os.environ.update(
            {k: v for k, v in env.items() if k.startswith(("VOXRAY_", "HF_", "TRANSFORMERS_", "RAY_AUTH"))}
        )
        ray.init(address=address, log_to_driver=False)
        print(f"fake cluster up in {time.time() - t0:.0f} s: {nodes_summary()}", flush=True)
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
            print(f"kept: RAY_ADDRESS={address}; app on {base}. Ctrl-C to tear down.", flush=True)
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        try:
            monitor = Path(TEMP_DIR) / "session_latest" / "logs"
            for log in sorted(monitor.glob("monitor.*"))[:2]:
                tail = log.read_text(errors="replace").splitlines()[-8:]
                print(f"--- {log.name} (last lines)\n" + "\n".join(tail), flush=True)
        except OSError:
            pass
        try:
            ray.shutdown()
        finally:
            teardown()
            model.stop()
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
