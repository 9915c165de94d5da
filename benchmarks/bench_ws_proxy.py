"""Media websockets through Serve's HTTP proxy vs. a direct uvicorn server, in one run.

N simulated calls each send Twilio-shaped ``media`` messages (160 µ-law bytes, base64, in
JSON) at 50 messages/s for a fixed time. The server side timestamps every message on
arrival; one-way latency = arrival - the send time carried in the message (same clock).
Figures: delivered messages/s vs offered, latency p50/p95/p99, for each path.

    python -m benchmarks.bench_ws_proxy --calls 100 --seconds 15
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from typing import Any

import httpx
import uvicorn
import websockets
from fastapi import FastAPI, WebSocket, WebSocketDisconnect

PAYLOAD = base64.b64encode(bytes([0xFF]) * 160).decode()
RATE_HZ = 50


def build_api(samples: list[float]) -> FastAPI:
    api = FastAPI()

    @api.websocket("/media")
    async def media(ws: WebSocket) -> None:
        await ws.accept()
        try:
            while True:
                message = json.loads(await ws.receive_text())
                samples.append(time.time() - message["sent"])
        except WebSocketDisconnect:
            pass

    @api.get("/samples")
    async def get_samples() -> list[float]:
        out = list(samples)
        samples.clear()
        return out

    return api


async def one_call(url: str, seconds: float, index: int) -> int:
    sent = 0
    async with websockets.connect(url, max_queue=None) as ws:
        start = time.monotonic()
        while (now := time.monotonic()) - start < seconds:
            message = {
                "event": "media",
                "streamSid": f"MZ{index}",
                "sent": time.time(),
                "media": {"track": "inbound", "chunk": str(sent), "payload": PAYLOAD},
            }
            await ws.send(json.dumps(message))
            sent += 1
            await asyncio.sleep(max(0.0, start + sent / RATE_HZ - now - 0.0005))
    return sent


async def drive(url: str, calls: int, seconds: float) -> int:
    counts = await asyncio.gather(*(one_call(url, seconds, i) for i in range(calls)))
    return sum(counts)


def report(label: str, sent: int, samples: list[float], calls: int, seconds: float) -> None:
    ms = sorted(s * 1000 for s in samples)
    if not ms:
        print(f"{label:<22} no messages arrived")
        return

    def pct(p: float) -> float:
        return ms[min(len(ms) - 1, int(p * len(ms)))]

    offered = calls * RATE_HZ
    rates = f"offered {offered:5d} msg/s, sent {sent / seconds:7.0f}/s, arrived {len(ms) / seconds:7.0f}/s"
    latency = f"p50 {statistics.median(ms):7.1f} ms  p95 {pct(0.95):7.1f} ms  p99 {pct(0.99):7.1f} ms"
    print(f"{label:<22} {rates} ({len(ms) / max(sent, 1):.1%}); latency {latency}")


def run_direct(calls: int, seconds: float, port: int) -> None:
    samples: list[float] = []
    server = uvicorn.Server(
        uvicorn.Config(build_api(samples), host="127.0.0.1", port=port, log_level="error")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    sent = asyncio.run(drive(f"ws://127.0.0.1:{port}/media", calls, seconds))
    time.sleep(0.5)
    report("direct uvicorn", sent, samples, calls, seconds)
    server.should_exit = True
    thread.join(timeout=5)


def run_serve(calls: int, seconds: float, port: int, haproxy: bool = False) -> None:
    """Through Serve's proxy; ``haproxy``: Serve's HAProxy mode (``RAY_SERVE_ENABLE_HA_PROXY=1``),
    set before Ray starts so every Serve process reads it (so each Serve arm is a process)."""
    if haproxy:
        os.environ["RAY_SERVE_ENABLE_HA_PROXY"] = "1"
    import ray
    from ray import serve

    ray.init(num_cpus=8, include_dashboard=False, log_to_driver=False)
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    samples: list[float] = []
    api = build_api(samples)

    @serve.deployment(max_ongoing_requests=2000)
    @serve.ingress(api)
    class MediaIngress:
        pass

    serve.run(MediaIngress.bind(), name="wsbench", route_prefix="/")  # type: ignore[attr-defined]
    sent = asyncio.run(drive(f"ws://127.0.0.1:{port}/media", calls, seconds))
    time.sleep(0.5)
    arrived: list[float] = httpx.get(f"http://127.0.0.1:{port}/samples", timeout=30).json()
    report("through Serve HAProxy" if haproxy else "through Serve proxy", sent, arrived, calls, seconds)
    serve.shutdown()
    ray.shutdown()


def main(argv: Any = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--port", type=int, default=8799)
    parser.add_argument("--arm", choices=("all", "direct", "serve", "haproxy"), default="all")
    args = parser.parse_args(argv)
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if args.arm == "direct":
        run_direct(args.calls, args.seconds, args.port)
    elif args.arm in ("serve", "haproxy"):
        run_serve(args.calls, args.seconds, args.port, haproxy=args.arm == "haproxy")
    else:
        print(f"{args.calls} calls x {RATE_HZ} msg/s for {args.seconds:.0f} s, client and server on this box")
        for arm, port in (("direct", args.port), ("serve", args.port + 1), ("haproxy", args.port + 2)):
            common = ["--calls", str(args.calls), "--seconds", str(args.seconds), "--port", str(port)]
            subprocess.run(
                [sys.executable, "-m", "benchmarks.bench_ws_proxy", "--arm", arm, *common], check=False
            )


if __name__ == "__main__":
    main()
