"""One command for voxray's load scenarios: provider latency models + local Ray/Serve + load.

    python -m loadtests.run_scenarios --scenario standard     # ~10 min on the 2-core box
    python -m loadtests.run_scenarios --scenario smoke        # ~2 min: 10 sessions, tiny spike, 1 audio call

What it does:
1. starts two PROVIDER LATENCY MODELS (``loadtests/provider_model.py``: simulated
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
import contextlib
import json
import math
import os
import random
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import psutil
from pydantic import BaseModel, Field

from loadtests.provider_model import LatencyModelConfig, ProviderLatencyModel

ROOT = Path(__file__).resolve().parent.parent
REPORTS = ROOT / "loadtests" / "reports"
STRICT_V2V_P95_MS = 2000.0  # the seed's voice-to-voice target
KEEPS_UP_FACTOR = 2.0
RAW_DIR = Path(os.environ.get("VOXRAY_LOAD_RAW_DIR", "/tmp/voxray-load-raw"))
STAGES = ("nlu", "cache", "llm_ttft", "turn_total")
PROVIDER_MODELS = (
    LatencyModelConfig(
        name="model-a",
        ttft_median_ms=300,
        ttft_p95_ms=700,
        tokens_per_s_median=90,
        tokens_per_s_p5=45,
        seed=11,
    ),
    LatencyModelConfig(
        name="model-b",
        ttft_median_ms=380,
        ttft_p95_ms=1100,
        tokens_per_s_median=70,
        tokens_per_s_p5=30,
        seed=12,
    ),
)


class TextPhase(BaseModel):
    name: str
    users: int = Field(gt=0, description="Concurrent sessions (Locust users).")
    spawn_rate: float = Field(gt=0, description="Sessions added per second during the ramp.")
    duration_s: int = Field(gt=0, description="Phase length including the ramp.")


class Scenario(BaseModel):
    text: list[TextPhase] = []
    spike: int = 0
    audio_levels: list[int] = []
    audio_turns: int = 4


SCENARIOS: dict[str, Scenario] = {
    "standard": Scenario(
        text=[
            TextPhase(name="ramp100", users=100, spawn_rate=5, duration_s=90),
            TextPhase(name="ramp200", users=200, spawn_rate=5, duration_s=110),
        ],
        spike=100,
        audio_levels=[1, 2, 3, 4, 6],
    ),
    "text": Scenario(
        text=[
            TextPhase(name="ramp100", users=100, spawn_rate=5, duration_s=90),
            TextPhase(name="ramp200", users=200, spawn_rate=5, duration_s=110),
        ]
    ),
    "spike": Scenario(spike=100),
    "audio": Scenario(audio_levels=[1, 2, 3, 4, 6]),
    "smoke": Scenario(
        text=[TextPhase(name="ramp10", users=10, spawn_rate=5, duration_s=30)],
        spike=10,
        audio_levels=[1],
        audio_turns=2,
    ),
}


# ----------------------------------------------------------------------------- statistics
def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    k = (len(ordered) - 1) * q / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def summary(values: list[float]) -> dict[str, float | int | None]:
    def r(v: float | None) -> float | None:
        return None if v is None else round(v, 2)

    return {
        "n": len(values),
        "p50": r(pct(values, 50)),
        "p95": r(pct(values, 95)),
        "p99": r(pct(values, 99)),
        "max": r(max(values) if values else None),
    }


# ----------------------------------------------------------------------------- sampling
class Sampler(threading.Thread):
    """Every ``interval`` s: system CPU, Ray processes' CPU, call-host RSS, live calls."""

    def __init__(self, base: str, exclude_pids: set[int], interval: float = 2.0):
        super().__init__(daemon=True, name="sampler")
        self.base = base
        self.exclude = exclude_pids
        self.interval = interval
        self.samples: list[dict[str, Any]] = []
        self.stop_event = threading.Event()
        self.me = psutil.Process()
        self._procs: dict[int, psutil.Process] = {}

    def _ray_cpu(self) -> float:
        total = 0.0
        for child in self.me.children(recursive=True):
            if child.pid in self.exclude:
                continue
            proc = self._procs.setdefault(child.pid, child)
            try:
                total += proc.cpu_percent(None)
            except psutil.Error:
                self._procs.pop(child.pid, None)
        return total

    def run(self) -> None:
        psutil.cpu_percent(None)
        self._ray_cpu()
        with httpx.Client(base_url=self.base, timeout=10) as client:
            while not self.stop_event.wait(self.interval):
                sample: dict[str, Any] = {
                    "t": time.time(),
                    "cpu_system_pct": psutil.cpu_percent(None),
                    "load_avg_1m": os.getloadavg()[0],
                    "cpu_ray_pct": self._ray_cpu(),
                }
                try:
                    hosts = client.get("/stats").json()["hosts"]
                    rss = 0
                    for h in hosts:
                        with contextlib.suppress(psutil.Error, KeyError, TypeError, ValueError):
                            rss += psutil.Process(int(h["pid"])).memory_info().rss
                    sample["live_calls"] = sum(int(h.get("live_calls") or 0) for h in hosts)
                    sample["call_host_rss_mb"] = rss / 2**20
                except (httpx.HTTPError, ValueError, KeyError):
                    sample["live_calls"] = None
                self.samples.append(sample)

    def between(self, t0: float, t1: float) -> list[dict[str, Any]]:
        return [s for s in self.samples if t0 <= s["t"] <= t1]


# ----------------------------------------------------------------------------- phases
def run_locust(base: str, phase: TextPhase, out_dir: Path) -> tuple[list[dict[str, Any]], float, float]:
    RAW_DIR.mkdir(parents=True, exist_ok=True)
    jsonl = RAW_DIR / f"{out_dir.name}-{phase.name}.jsonl"  # raw per-turn lines: kept out of the repo
    jsonl.unlink(missing_ok=True)
    env = {**os.environ, "VOXRAY_LOAD_OUT": str(jsonl)}
    cmd = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(ROOT / "loadtests" / "locustfile.py"),
        "--headless",
        "-u",
        str(phase.users),
        "-r",
        str(phase.spawn_rate),
        "-t",
        f"{phase.duration_s}s",
        "--host",
        base,
        "--csv",
        str(out_dir / phase.name),
        "--only-summary",
        "--stop-timeout",
        "45",
        "--exit-code-on-error",
        "0",
        "--loglevel",
        "WARNING",
    ]
    print(
        f"[{phase.name}] locust: {phase.users} sessions, +{phase.spawn_rate}/s, {phase.duration_s}s",
        flush=True,
    )
    t0 = time.time()
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    SAMPLER_EXCLUDE.add(proc.pid)
    output, _ = proc.communicate(timeout=phase.duration_s + 180)
    t1 = time.time()
    (out_dir / f"{phase.name}.locust.txt").write_text(output)
    records = (
        [json.loads(line) for line in jsonl.read_text().splitlines() if line.strip()]
        if jsonl.exists()
        else []
    )
    return records, t0, t1


SAMPLER_EXCLUDE: set[int] = set()


def summarise_text(
    records: list[dict[str, Any]], samples: list[dict[str, Any]], phase: TextPhase, t0: float, t1: float
) -> dict[str, Any]:
    turns = [r for r in records if r["kind"] == "turn"]
    starts = [r for r in records if r["kind"] == "start"]
    errors = [r for r in records if r["kind"] == "error"]
    stage_values: dict[str, list[float]] = {}
    for r in turns:
        for stage, v in (r.get("stages_ms") or {}).items():
            stage_values.setdefault(stage, []).append(float(v))
    sources: dict[str, int] = {}
    for r in turns:
        sources[r.get("source") or "none"] = sources.get(r.get("source") or "none", 0) + 1
    lookups = [r for r in turns if "cache" in (r.get("stages_ms") or {})]
    hits = [r for r in lookups if str(r.get("source", "")).startswith("cache_")]
    llm_turns = [r for r in turns if r.get("source") == "llm" and r.get("llm")]
    provider_ms = {
        id(r): float(r["llm"].get("ttft_ms") or 0)
        + float(r["llm"]["total_ms"])
        - float(r["llm"].get("router_ttft_ms") or 0)
        for r in llm_turns
        if r["llm"].get("total_ms") is not None
    }
    added_server = [float(r["added_ms"]) for r in turns if r.get("added_ms") is not None]
    added_client = [
        float(r["client_ms"]) - provider_ms.get(id(r), 0.0)
        for r in turns
        if r.get("source") != "llm" or id(r) in provider_ms
    ]
    semantic_hits = [r for r in turns if r.get("source") == "cache_semantic"]
    raced = [r for r in semantic_hits if (r.get("llm") or {}).get("cancelled_for_cache")]
    live = [s["live_calls"] for s in samples if s.get("live_calls")]
    peak_live = max(live) if live else 0
    rss_at_peak = max(
        (s.get("call_host_rss_mb") or 0.0 for s in samples if s.get("live_calls") == peak_live), default=0.0
    )
    rss_idle = min(
        (s.get("call_host_rss_mb") or 0.0 for s in samples if s.get("call_host_rss_mb")), default=0.0
    )
    requests = len(turns) + len(starts) + len(errors)
    return {
        "phase": phase.model_dump(),
        "window_s": round(t1 - t0, 1),
        "calls_started": len(starts),
        "turns": len(turns),
        "turns_per_s": round(len(turns) / max(t1 - t0, 1e-9), 1),
        "errors": len(errors),
        "error_types": sorted({f"{e['where']}:{e['type']}" for e in errors}),
        "error_rate": round(len(errors) / max(requests, 1), 5),
        "peak_live_calls": peak_live,
        "start_call_ms_client": summary([float(r["ms"]) for r in starts]),
        "ready_ms_server": summary([float(r["ready_ms"]) for r in starts if r.get("ready_ms") is not None]),
        "turn_ms_client": summary([float(r["client_ms"]) for r in turns]),
        "stages_ms": {s: summary(v) for s, v in sorted(stage_values.items())},
        "added_ms_server": summary(added_server),
        "added_ms_client": summary(added_client),
        "added_ms_server_non_llm_turns": summary(
            [
                float(r["added_ms"])
                for r in turns
                if r.get("source") != "llm" and r.get("added_ms") is not None
            ]
        ),
        "added_ms_server_llm_turns": summary(
            [float(r["added_ms"]) for r in llm_turns if r.get("added_ms") is not None]
        ),
        "added_ms_server_by_source": {
            src: summary(
                [
                    float(r["added_ms"])
                    for r in turns
                    if r.get("source") == src and r.get("added_ms") is not None
                ]
            )
            for src in sorted(sources)
        },
        "provider_ms_llm_turns": summary(list(provider_ms.values())),
        "sources": dict(sorted(sources.items())),
        "cache": {
            "lookups": len(lookups),
            "hits": len(hits),
            "hit_rate": round(len(hits) / len(lookups), 4) if lookups else None,
            "semantic_hits": len(semantic_hits),
            "semantic_hits_after_llm_asked": len(raced),
        },
        "memory": {
            "call_host_rss_mb_at_peak": round(rss_at_peak, 1),
            "call_host_rss_mb_idle": round(rss_idle, 1),
            "mb_per_live_call_all_in": round(rss_at_peak / peak_live, 3) if peak_live else None,
            "mb_per_live_call_marginal": round((rss_at_peak - rss_idle) / peak_live, 3)
            if peak_live
            else None,
        },
        "cpu": {
            "system_pct_mean": round(statistics.fmean([s["cpu_system_pct"] for s in samples]), 1)
            if samples
            else None,
            "system_pct_max": max((s["cpu_system_pct"] for s in samples), default=None),
            "ray_pct_mean": round(statistics.fmean([s["cpu_ray_pct"] for s in samples]), 1)
            if samples
            else None,
            "load_avg_1m_mean": round(statistics.fmean([s.get("load_avg_1m", 0.0) for s in samples]), 2)
            if samples
            else None,
        },
    }


async def run_spike(base: str, n: int, call_data: dict[str, str]) -> dict[str, Any]:
    print(f"[spike] {n} simultaneous POST /calls", flush=True)
    body = {"schema_name": "prior_auth", "call_data": call_data, "simulate": {"persona": "insurance_rep"}}
    limits = httpx.Limits(max_connections=n + 10, max_keepalive_connections=n + 10)
    async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as client:

        async def one() -> tuple[float, int, dict[str, Any]]:
            t0 = time.perf_counter()
            r = await client.post("/calls", json=body)
            ms = (time.perf_counter() - t0) * 1000
            return ms, r.status_code, (r.json() if r.status_code == 201 else {})

        t0 = time.time()
        results = await asyncio.gather(*(one() for _ in range(n)), return_exceptions=True)
        wall = time.time() - t0
        ok = [r for r in results if not isinstance(r, BaseException) and r[1] == 201]
        await asyncio.gather(
            *(client.post(f"/calls/{r[2]['call_id']}/hangup", json={"reason": "hangup"}) for r in ok),
            return_exceptions=True,
        )
    return {
        "simultaneous": n,
        "ok": len(ok),
        "errors": n - len(ok),
        "wall_s": round(wall, 2),
        "start_call_ms_client": summary([r[0] for r in ok]),
        "ready_ms_server": summary([float(r[2]["ready_ms"]) for r in ok]),
    }


async def run_audio(base: str, levels: list[int], n_turns: int, call_data: dict[str, str]) -> dict[str, Any]:
    from loadtests.simulated_caller import PersonaVoice, SimulatedCaller, load_persona

    persona = load_persona("insurance_rep")
    persona = persona.model_copy(update={"turns": persona.turns[:n_turns]})
    voice = PersonaVoice.shared(length_scale=persona.length_scale)
    for turn in persona.turns:  # synthesise the caller's lines once, before timing anything
        voice.mulaw(turn.say)
    body = {"schema_name": "prior_auth", "call_data": call_data, "simulate": {"persona": "insurance_rep"}}
    out: dict[str, Any] = {"levels": [], "turns_per_call": n_turns}
    baseline: float | None = None
    async with httpx.AsyncClient(base_url=base, timeout=60) as client:

        async def one(delay: float) -> dict[str, Any]:
            await asyncio.sleep(delay)
            r = await client.post("/calls", json=body)
            if r.status_code != 201:
                return {"error": f"start_call http_{r.status_code}"}
            call = r.json()
            caller = SimulatedCaller(
                call["media_url"],
                persona,
                voice=voice,
                agent_reply_timeout_s=15.0,
                custom_parameters={"token": call["stream_token"]},
                hang_up_after_s=3.0,
            )
            try:
                result = await caller.run()
            except Exception as exc:
                return {"error": f"caller {type(exc).__name__}"}
            perf: dict[str, Any] = {}
            try:  # the call ended with the socket; its record (in Redis) holds the server-side stages
                for _ in range(5):
                    await asyncio.sleep(1.0)
                    pr = await client.get(f"/calls/{call['call_id']}/performance")
                    perf = pr.json() if pr.status_code == 200 else {}
                    if perf.get("turns"):
                        break
                await client.post(f"/calls/{call['call_id']}/hangup", json={"reason": "hangup"})
            except (httpx.HTTPError, ValueError):
                pass
            return {
                "v2v": result.latencies_ms,
                "turns": len(result.turns),
                "errors": result.errors,
                "answered": sum(t.voice_to_voice_ms is not None for t in result.turns),
                "server": [t.get("stages_ms", {}) for t in perf.get("turns", [])],
            }

        for level in levels:
            print(f"[audio] {level} concurrent calls over the media websocket", flush=True)
            t0 = time.time()
            cpu0 = psutil.cpu_times()
            calls = await asyncio.gather(
                *(one(random.uniform(0, 1.5)) for _ in range(level)), return_exceptions=True
            )
            cpu_pct = psutil.cpu_percent(None)
            good = [c for c in calls if isinstance(c, dict) and "error" not in c]
            errors = [
                c.get("error") if isinstance(c, dict) else f"{type(c).__name__}: {c}"[:200]
                for c in calls
                if not (isinstance(c, dict) and "error" not in c)
            ]
            v2v = [v for c in good for v in c["v2v"]]
            turns = sum(c["turns"] for c in good)
            answered = sum(c["answered"] for c in good)
            server: dict[str, list[float]] = {}
            for c in good:
                for st in c["server"]:
                    for k, v in st.items():
                        server.setdefault(k, []).append(float(v))
            p95 = pct(v2v, 95)
            complete = not errors and answered == turns and turns > 0 and p95 is not None
            real_time = complete and p95 is not None and p95 < STRICT_V2V_P95_MS
            if baseline is None and complete:
                baseline = p95
            keeps_up = (
                complete and baseline is not None and p95 is not None and p95 <= KEEPS_UP_FACTOR * baseline
            )
            row = {
                "concurrency": level,
                "calls_ok": len(good),
                "errors": errors,
                "turns": turns,
                "answered": answered,
                "voice_to_voice_ms_caller": summary(v2v),
                "stages_ms_server": {k: summary(v) for k, v in sorted(server.items())},
                "wall_s": round(time.time() - t0, 1),
                "cpu_system_pct": cpu_pct,
                "cpu_s_used": round(sum(psutil.cpu_times()) - sum(cpu0), 1),
                "load_avg_1m": round(os.getloadavg()[0], 2),
                "real_time": real_time,
                "keeps_up": keeps_up,
            }
            out["levels"].append(row)
            print(
                f"[audio] {level}: v2v p95 {p95 and round(p95)} ms, answered {answered}/{turns}, "
                f"errors {errors}, p95 < 2 s: {real_time}, keeps up: {keeps_up}",
                flush=True,
            )
            if not keeps_up:
                break
    held = [row["concurrency"] for row in out["levels"] if row["real_time"]]
    out["max_real_time_concurrency"] = max(held) if held else 0
    kept = [row["concurrency"] for row in out["levels"] if row["keeps_up"]]
    out["max_keeps_up_concurrency"] = max(kept) if kept else 0
    out["criterion"] = (
        "every call starts and finishes, every caller line gets an answer, and voice-to-voice "
        f"p95 (last caller frame to first agent frame, as the caller hears it) < {STRICT_V2V_P95_MS:.0f} ms"
    )
    out["keeps_up_criterion"] = (
        f"every line answered, no errors, and voice-to-voice p95 <= {KEEPS_UP_FACTOR:g} x the first level's p95 "  # noqa: E501
        "(the CPU still processes speech as fast as it arrives; latency has not run away)"
    )
    return out


# ----------------------------------------------------------------------------- cluster side
def serve_stats() -> dict[str, Any]:
    from ray import serve

    out: dict[str, Any] = {}
    for name in ("LLMRouterDeployment", "SemanticCacheDeployment", "STTDeployment", "TTSDeployment"):
        try:
            out[name] = (
                serve.get_deployment_handle(name, app_name="voxray").stats.remote().result(timeout_s=10)
            )
        except Exception as exc:
            out[name] = {"unavailable": type(exc).__name__}
    return out


def router_delta(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    providers: dict[str, Any] = {}
    b = (before.get("providers") or {}) if isinstance(before, dict) else {}
    for name, s in ((after.get("providers") or {}) if isinstance(after, dict) else {}).items():
        prev = b.get(name, {})
        req = s.get("requests", 0) - prev.get("requests", 0)
        wins = s.get("wins", 0) - prev.get("wins", 0)
        providers[name] = {
            "requests": req,
            "wins": wins,
            "errors": s.get("errors", 0) - prev.get("errors", 0),
            "cancelled": s.get("cancelled", 0) - prev.get("cancelled", 0),
            "breaker": (s.get("breaker") or {}).get("state"),
            "ttft_ms_p50": s.get("ttft_ms_p50"),
            "ttft_ms_p90": s.get("ttft_ms_p90"),
        }
    total_wins = sum(p["wins"] for p in providers.values())
    for p in providers.values():
        p["win_rate"] = round(p["wins"] / total_wins, 4) if total_wins else None
    routed = after.get("requests", 0) - (before.get("requests", 0) if isinstance(before, dict) else 0)
    return {"requests": routed, "providers": providers}


def scrape_voxray_series() -> dict[str, Any]:
    """What Ray's Prometheus export on this node says about voxray (proves the metrics flow)."""
    import ray

    port = None
    for node in ray.nodes():
        port = node.get("MetricsExportPort") or port
    if not port:
        return {"error": "no metrics export port"}
    try:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    except httpx.HTTPError as exc:
        return {"error": type(exc).__name__}
    names = sorted(
        {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line.startswith("ray_voxray_")}
    )
    return {"metrics_export_port": port, "series": names}


# ----------------------------------------------------------------------------- report
def plot(
    report: dict[str, Any], turns: list[dict[str, Any]], samples: list[dict[str, Any]], out: Path
) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files: list[str] = []
    if turns:
        t_start = min(r["t"] for r in turns)
        bins: dict[int, list[dict[str, Any]]] = {}
        for r in turns:
            bins.setdefault(int((r["t"] - t_start) // 10), []).append(r)
        xs = sorted(bins)
        fig, (ax, ax2) = plt.subplots(2, 1, figsize=(10, 7), sharex=True)
        for q, style in ((50, "-"), (95, "--"), (99, ":")):
            ax.plot(
                [x * 10 for x in xs],
                [pct([b["client_ms"] for b in bins[x]], q) for x in xs],
                style,
                label=f"turn (client) p{q}",
            )
            ax.plot(
                [x * 10 for x in xs],
                [pct([b["added_ms"] for b in bins[x] if b.get("added_ms") is not None], q) for x in xs],
                style,
                label=f"voxray added (server) p{q}",
            )
        ax.set_ylabel("ms")
        ax.set_yscale("log")
        ax.set_title("Text-mode turn latency over time (10 s bins)")
        ax.legend(fontsize=7, ncol=2)
        ts = [s["t"] - t_start for s in samples if s.get("live_calls") is not None and s["t"] >= t_start]
        ax2.plot(
            ts,
            [s["live_calls"] for s in samples if s.get("live_calls") is not None and s["t"] >= t_start],
            label="live calls",
        )
        ax3 = ax2.twinx()
        ax3.plot(
            [s["t"] - t_start for s in samples if s["t"] >= t_start],
            [s["cpu_system_pct"] for s in samples if s["t"] >= t_start],
            color="tab:red",
            alpha=0.5,
            label="system CPU %",
        )
        ax2.set_ylabel("live calls")
        ax3.set_ylabel("CPU % (2 cores = 100)")
        ax2.set_xlabel("seconds since first turn")
        fig.tight_layout()
        fig.savefig(out / "latency_over_time.png", dpi=110)
        plt.close(fig)
        files.append("latency_over_time.png")

        by_users: dict[int, list[dict[str, Any]]] = {}
        for r in turns:
            by_users.setdefault(int(r["users"]) // 20 * 20, []).append(r)
        xs = sorted(k for k, v in by_users.items() if len(v) >= 20)
        fig, ax = plt.subplots(figsize=(8, 5))
        ax.plot(
            xs, [pct([b["client_ms"] for b in by_users[x]], 95) for x in xs], "o-", label="turn p95 (client)"
        )
        ax.plot(
            xs,
            [pct([b["stages_ms"].get("turn_total", 0) for b in by_users[x]], 95) for x in xs],
            "s-",
            label="turn_total p95 (server)",
        )
        ax.plot(
            xs,
            [pct([b["added_ms"] for b in by_users[x] if b.get("added_ms") is not None], 95) for x in xs],
            "^-",
            label="voxray added p95 (server)",
        )
        ax.set_xlabel("concurrent sessions (Locust users, 20-wide bins)")
        ax.set_ylabel("ms")
        ax.set_yscale("log")
        ax.set_title("Concurrency vs p95 (text mode, provider latency model)")
        ax.legend()
        fig.tight_layout()
        fig.savefig(out / "concurrency_vs_p95.png", dpi=110)
        plt.close(fig)
        files.append("concurrency_vs_p95.png")
    audio = report.get("audio") or {}
    if audio.get("levels"):
        fig, ax = plt.subplots(figsize=(7, 4))
        lv = audio["levels"]
        ax.plot(
            [r["concurrency"] for r in lv],
            [r["voice_to_voice_ms_caller"]["p95"] for r in lv],
            "o-",
            label="p95",
        )
        ax.plot(
            [r["concurrency"] for r in lv],
            [r["voice_to_voice_ms_caller"]["p50"] for r in lv],
            "s-",
            label="p50",
        )
        ax.axhline(2000, color="grey", ls=":", label="real-time criterion (p95 2 s)")
        ax.set_xlabel("concurrent audio calls")
        ax.set_ylabel("voice-to-voice ms (caller side)")
        ax.set_title("Audio mode on CPU: concurrency vs voice-to-voice")
        ax.legend()
        fig.tight_layout()
        fig.savefig(out / "audio_concurrency_vs_v2v.png", dpi=110)
        plt.close(fig)
        files.append("audio_concurrency_vs_v2v.png")
    return files


def fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.1f}"
    return str(v)


def stage_table(stages: dict[str, dict[str, Any]]) -> list[str]:
    lines = ["| stage | n | p50 ms | p95 ms | p99 ms | max ms |", "|---|---|---|---|---|---|"]
    for name, s in stages.items():
        lines.append(
            f"| {name} | {s['n']} | {fmt(s['p50'])} | {fmt(s['p95'])} | {fmt(s['p99'])} | {fmt(s['max'])} |"
        )
    return lines


def write_markdown(report: dict[str, Any], out: Path) -> None:
    md = [
        f"# voxray load report: `{report['scenario']}`",
        "",
        f"Generated {report['generated_at']} by `python -m loadtests.run_scenarios --scenario {report['scenario']}` "  # noqa: E501
        f"on {report['machine']['cpus']} CPU cores ({report['machine']['note']}).",
        "",
        "**LLM = PROVIDER LATENCY MODELS** (`loadtests/provider_model.py`: simulated OpenAI-compatible servers, "  # noqa: E501
        "scripted text, lognormal TTFT and tokens/s; not LLMs). The router races both. The local llama.cpp "
        "provider is disabled, so these figures are voxray's own overhead on this box.",
        "",
    ]
    for m in report["provider_models"]:
        c = m["config"]
        md.append(
            f"- `{c['name']}`: TTFT median {c['ttft_median_ms']} ms / p95 {c['ttft_p95_ms']} ms; "
            f"{c['tokens_per_s_median']} tok/s median (p5 {c['tokens_per_s_p5']}); {m['requests']} requests"
        )
    md += [
        "",
        "Definitions: *client* = measured by the load generator around the HTTP request; *server* = the "
        "call actor's `stages_ms`. *voxray added* = `turn_total` minus provider time, where provider time = "
        "the provider's TTFT as the router's HTTP client saw it + the streaming time after the router got the "  # noqa: E501
        "first token (0 for turns answered by the script or the cache). *added (client)* uses the client's "
        "turn time instead of `turn_total` (adds HTTP, Serve proxy, ingress and the actor hop).",
        "",
    ]
    for phase in report["text"]:
        p = phase["phase"]
        md += [
            f"## Text mode `{p['name']}`: {p['users']} concurrent sessions (+{p['spawn_rate']}/s, {p['duration_s']} s)",  # noqa: E501
            "",
            f"- calls started {phase['calls_started']}, turns {phase['turns']} ({phase['turns_per_s']}/s), "
            f"peak live calls {phase['peak_live_calls']}",
            f"- **errors {phase['errors']}** (error rate {phase['error_rate']}) {phase['error_types'] or ''}",
            f"- start-call (client) p50 {fmt(phase['start_call_ms_client']['p50'])} / p95 "
            f"{fmt(phase['start_call_ms_client']['p95'])} / p99 {fmt(phase['start_call_ms_client']['p99'])} ms; "  # noqa: E501
            f"host ready_ms p95 {fmt(phase['ready_ms_server']['p95'])} ms",
            f"- turn (client) p50 {fmt(phase['turn_ms_client']['p50'])} / p95 {fmt(phase['turn_ms_client']['p95'])}"  # noqa: E501
            f" / p99 {fmt(phase['turn_ms_client']['p99'])} ms",
            f"- **voxray added (server) p50 {fmt(phase['added_ms_server']['p50'])} / p95 "
            f"{fmt(phase['added_ms_server']['p95'])} / p99 {fmt(phase['added_ms_server']['p99'])} ms**; "
            f"LLM turns only p95 {fmt(phase['added_ms_server_llm_turns']['p95'])} ms; "
            f"added (client) p95 {fmt(phase['added_ms_client']['p95'])} ms",
            "- voxray added (server) p95 by reply source: "
            + ", ".join(
                f"{k} {fmt(v['p95'])} ms (n={v['n']})"
                for k, v in phase.get("added_ms_server_by_source", {}).items()
            ),
            f"- cache: {phase['cache']['hits']}/{phase['cache']['lookups']} lookups hit "
            f"(hit rate {fmt(phase['cache']['hit_rate'])}); turn sources {phase['sources']}; "
            f"{phase['cache'].get('semantic_hits_after_llm_asked', 0)} of "
            f"{phase['cache'].get('semantic_hits', 0)} semantic hits came after the head start (the LLM "
            "had been asked too and was cancelled before its first token)",
            f"- memory: call-host RSS {phase['memory']['call_host_rss_mb_at_peak']} MB at peak "
            f"({phase['memory']['call_host_rss_mb_idle']} MB lowest seen) → "
            f"{fmt(phase['memory']['mb_per_live_call_all_in'])} MB per live call all-in, "
            f"{fmt(phase['memory']['mb_per_live_call_marginal'])} MB marginal",
            f"- CPU: system mean {fmt(phase['cpu']['system_pct_mean'])} % (max {fmt(phase['cpu']['system_pct_max'])} %"  # noqa: E501
            f", 100 % = both cores), this cluster's Ray processes mean {fmt(phase['cpu']['ray_pct_mean'])} % of one "  # noqa: E501
            f"core; 1-min load average mean {fmt(phase['cpu'].get('load_avg_1m_mean'))}",
            f"- router: {phase['router']['requests']} LLM requests; "
            + ", ".join(
                f"{n} won {v['wins']}/{v['requests']} launched (win rate {fmt(v['win_rate'])}, "
                f"cancelled {v['cancelled']}, errors {v['errors']}, breaker {v['breaker']})"
                for n, v in phase["router"]["providers"].items()
            ),
            "",
            *stage_table(phase["stages_ms"]),
            "",
        ]
    if report.get("spike"):
        s = report["spike"]
        md += [
            f"## Spike: {s['simultaneous']} simultaneous start-calls",
            "",
            f"- ok {s['ok']}, errors {s['errors']}, all answered within {s['wall_s']} s",
            f"- start-call (client) p50 {fmt(s['start_call_ms_client']['p50'])} / p95 "
            f"{fmt(s['start_call_ms_client']['p95'])} / p99 {fmt(s['start_call_ms_client']['p99'])} ms",
            f"- host ready_ms (validate + precompute + opening + snapshot) p95 {fmt(s['ready_ms_server']['p95'])} ms",  # noqa: E501
            "",
        ]
    audio = report.get("audio")
    if audio:
        md += [
            "## Audio mode (real media websocket, 20 ms µ-law frames in real time, STT + TTS on CPU)",
            "",
            f"**Highest concurrency with voice-to-voice p95 under 2 s: {audio['max_real_time_concurrency']}** "  # noqa: E501
            f"(criterion: {audio['criterion']}). **Highest concurrency the CPU keeps up with: "
            f"{audio.get('max_keeps_up_concurrency')}** ({audio.get('keeps_up_criterion')}). "
            f"{audio['turns_per_call']} caller lines per call; the caller side (Piper voice, websocket "
            "pacing) runs on the same 2 cores.",
            "",
            "| concurrent calls | answered | v2v p50 ms | v2v p95 ms | server stt p95 | server tts_first_audio p95 "  # noqa: E501
            "| CPU % | load avg | errors | p95 < 2 s | keeps up |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in audio["levels"]:
            st = r["stages_ms_server"]
            md.append(
                f"| {r['concurrency']} | {r['answered']}/{r['turns']} | {fmt(r['voice_to_voice_ms_caller']['p50'])} "  # noqa: E501
                f"| {fmt(r['voice_to_voice_ms_caller']['p95'])} | {fmt(st.get('stt', {}).get('p95'))} | "
                f"{fmt(st.get('tts_first_audio', {}).get('p95'))} | {fmt(r['cpu_system_pct'])} | "
                f"{r.get('load_avg_1m', '-')} | {len(r['errors'])} | {r['real_time']} | {r.get('keeps_up', '-')} |"  # noqa: E501
            )
        md.append("")
    md += dashboard_section(report.get("dashboard"))
    prom = report.get("prometheus", {})
    md += [
        "## Metrics",
        "",
        f"Ray's Prometheus export (node metrics port {prom.get('metrics_export_port')}) "
        f"carried these voxray series during the run: {', '.join(prom.get('series', [])) or prom}",
        "",
    ]
    md += ["## Plots", ""] + [f"![{f}]({f})" for f in report.get("plots", [])]
    (out / "report.md").write_text("\n".join(md) + "\n")


# ----------------------------------------------------------------------------- main
def configure_env(port: int, models: list[ProviderLatencyModel]) -> None:
    a, b = models
    os.environ.update(
        {
            "VOXRAY_PROVIDERS__LOCAL_ENABLED": "false",
            "VOXRAY_PROVIDERS__OPENAI_COMPATIBLE_URL": a.base_url,
            "VOXRAY_PROVIDERS__OPENAI_COMPATIBLE_MODEL": a.config.name,
            "VOXRAY_PROVIDERS__OPENAI_API_KEY": "sim-not-a-key",
            "VOXRAY_PROVIDERS__OPENAI_BASE_URL": b.base_url,
            "VOXRAY_PROVIDERS__OPENAI_MODEL": b.config.name,
            "VOXRAY_TWILIO__PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
        }
    )
    for key in ("VOXRAY_PROVIDERS__ANTHROPIC_API_KEY",):
        os.environ.pop(key, None)


def dashboard_section(dashboard: dict[str, Any] | None) -> list[str]:
    if not dashboard:
        return []
    from cluster.check_dashboard import status_text

    results = dashboard["results"]
    panels = {r["panel"] for r in results}
    with_data = {r["panel"] for r in results if r.get("with_value")}
    lines = [
        "## Dashboard queries against Prometheus",
        "",
        f"Every query of `cluster/grafana/voxray.json` evaluated by a Prometheus ({dashboard['prometheus']}) "
        f"scraping this Ray cluster, at the end of the run (`$__rate_interval` = {dashboard['rate_window']}, "
        "the whole run; "
        f"`python -m cluster.check_dashboard`): **{len(with_data)} of {len(panels)} panels have data**, "
        f"{sum('error' in r for r in results)} queries rejected.",
        "",
        "| panel | query result |",
        "|---|---|",
    ]
    lines += [f"| {r['panel']} | {status_text(r)} |" for r in results]
    return [*lines, ""]


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
    dashboard = start_cluster(args.port)
    print(f"Ray + Serve up in {time.time() - t0:.0f} s; dashboard {dashboard}", flush=True)
    call_data = SAMPLE_CALL_DATA["prior_auth"]
    with httpx.Client(base_url=base, timeout=60) as client:  # warm-up: hosts, handles, router, cache
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
