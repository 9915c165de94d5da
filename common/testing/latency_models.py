"""PROVIDER LATENCY MODEL: a local OpenAI-compatible chat.completions server for load tests.

This is not a model and not a hosted provider: it answers every request with scripted text,
paced by a configurable latency model, so that 100+ concurrent load-test sessions measure
voxray's own overhead (ingress, call hosts, NLU, cache, router, state store) rather than a
135M-parameter model on two CPU cores. Reports must name it as a "provider latency model".

Per request it samples
- time to first token (TTFT) from a lognormal fitted to a median and a p95, and
- tokens/s from a lognormal fitted to a median and a p5 (slow streams are the tail),
then streams the reply over the exact OpenAI SSE wire format (the request handling and the
wire format are ``common.testing``' ``FakeOpenAIServer``, imported, not copied).

    python -m common.testing.latency_models --port 8701 --ttft-median-ms 350 --ttft-p95-ms 900

GET /stats returns request counts and the server-side TTFT/duration percentiles it produced.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import random
import threading
import time
from collections import deque
from typing import Any

from aiohttp import web
from pydantic import BaseModel, Field

from common.testing import Behaviour
from common.testing.openai_server import FakeOpenAIServer

Z95 = 1.6448536269514722  # standard normal quantile at 0.95

REPLIES: tuple[str, ...] = (
    "I understand. Could you tell me a little more about that so I can help?",
    "Sure, no problem at all. Take your time, I'm happy to wait.",
    "Thanks for letting me know. Let's keep going with the authorization status.",
    "Of course. I just need a couple more details and then I'll let you go.",
)


class LatencyModelConfig(BaseModel):
    """The provider latency model's knobs (all per request, independent draws)."""

    name: str = Field("provider-model", description="Label in reports and /stats.")
    ttft_median_ms: float = Field(350.0, gt=0, description="Median time to first token.")
    ttft_p95_ms: float = Field(900.0, gt=0, description="95th percentile time to first token.")
    tokens_per_s_median: float = Field(80.0, gt=0, description="Median streaming rate.")
    tokens_per_s_p5: float = Field(40.0, gt=0, description="5th percentile streaming rate (slow tail).")
    error_rate: float = Field(0.0, ge=0, le=1, description="Share of requests answered with HTTP 503.")
    seed: int | None = Field(None, description="RNG seed; None = nondeterministic.")

    @property
    def ttft_sigma(self) -> float:
        return max(0.0, math.log(self.ttft_p95_ms / self.ttft_median_ms) / Z95)

    @property
    def tps_sigma(self) -> float:
        return max(0.0, math.log(self.tokens_per_s_median / self.tokens_per_s_p5) / Z95)


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


class ProviderLatencyModel(FakeOpenAIServer):
    """OpenAI-compatible streaming server whose timing follows ``LatencyModelConfig``."""

    def __init__(self, config: LatencyModelConfig | None = None, port: int = 0, host: str = "127.0.0.1"):
        self.config = config or LatencyModelConfig()
        self._rng = random.Random(self.config.seed)
        self._rng_lock = threading.Lock()
        super().__init__(self._draw)
        self.requested_port = port
        self.host = host
        self.sampled_ttft_ms: deque[float] = deque(maxlen=20_000)
        self.requests = 0
        self.errors = 0

    # ------------------------------------------------------------------ the model
    def _draw(self, body: dict[str, Any]) -> Behaviour:
        cfg = self.config
        with self._rng_lock:
            ttft_ms = cfg.ttft_median_ms * math.exp(self._rng.gauss(0.0, cfg.ttft_sigma))
            tps = cfg.tokens_per_s_median * math.exp(self._rng.gauss(0.0, cfg.tps_sigma))
            fail = self._rng.random() < cfg.error_rate
            text = self._rng.choice(REPLIES)
            self.requests += 1
            # The base server keeps a record per request; keep only the recent ones (memory).
            if len(self.records) > 5_000:
                del self.records[:2_500]
        if fail:
            self.errors += 1
            return Behaviour(status=503)
        self.sampled_ttft_ms.append(ttft_ms)
        return Behaviour(ttft_s=ttft_ms / 1000.0, tokens_per_s=tps, text=text, input_tokens=120)

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> ProviderLatencyModel:
        """Serve on ``host:port`` (0 = a free port) in a background thread with its own loop."""
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            try:
                self._runner = loop.run_until_complete(self._serve())
            except BaseException as exc:  # port taken etc.: report to the starting thread
                failure.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()

        self._thread = threading.Thread(target=run, name=f"provider-model-{self.config.name}", daemon=True)
        self._thread.start()
        if not ready.wait(10) or failure:
            why = failure[0] if failure else "timeout"
            raise RuntimeError(f"provider latency model did not start: {why}")
        return self

    async def _serve(self) -> web.AppRunner:
        app = web.Application()
        app.router.add_post(self.route, self._handle)
        app.router.add_get("/stats", self._stats)
        app.router.add_get("/healthz", self._health)
        runner = web.AppRunner(app, handler_cancellation=True, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.requested_port, backlog=1024)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        return runner

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    # ------------------------------------------------------------------ reporting
    def stats(self) -> dict[str, Any]:
        with self._lock:
            records = list(self.records)
        done = [r for r in records if r.completed and r.first_token_at is not None]
        ttft = list(self.sampled_ttft_ms)
        return {
            "name": self.config.name,
            "kind": "provider latency model (simulated; not a real LLM)",
            "config": self.config.model_dump(),
            "requests": self.requests,
            "errors_injected": self.errors,
            "disconnected_recent": sum(r.disconnected for r in records),
            "ttft_ms_sampled": {"p50": _pct(ttft, 50), "p95": _pct(ttft, 95), "p99": _pct(ttft, 99)},
            "ttft_ms_served_recent": {
                "p50": _pct([(r.first_token_at - r.started) * 1000 for r in done if r.first_token_at], 50),
                "p95": _pct([(r.first_token_at - r.started) * 1000 for r in done if r.first_token_at], 95),
            },
        }

    async def _stats(self, request: web.Request) -> web.Response:
        return web.json_response(self.stats())

    async def _health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "model": "provider latency model"})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8701)
    ap.add_argument("--name", default="provider-model")
    ap.add_argument("--ttft-median-ms", type=float, default=350.0)
    ap.add_argument("--ttft-p95-ms", type=float, default=900.0)
    ap.add_argument("--tps-median", type=float, default=80.0)
    ap.add_argument("--tps-p5", type=float, default=40.0)
    ap.add_argument("--error-rate", type=float, default=0.0)
    ap.add_argument("--seed", type=int, default=None)
    args = ap.parse_args()
    config = LatencyModelConfig(
        name=args.name, ttft_median_ms=args.ttft_median_ms, ttft_p95_ms=args.ttft_p95_ms,
        tokens_per_s_median=args.tps_median, tokens_per_s_p5=args.tps_p5, error_rate=args.error_rate,
        seed=args.seed,
    )  # fmt: skip
    server = ProviderLatencyModel(config, port=args.port, host=args.host).start()
    print(f"provider latency model {config.name!r} (simulated) on {server.base_url}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
