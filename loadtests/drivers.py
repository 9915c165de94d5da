"""What drives load against a running app: Locust text ramps (a subprocess), a start-call spike
and audio calls through the simulated caller, plus the samplers of the cluster's side."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import psutil

from common.testing.latency_models import ProviderLatencyModel
from loadtests.api_key import tool_headers
from loadtests.report import KEEPS_UP_FACTOR, STRICT_V2V_P95_MS, pct, summary
from loadtests.scenarios import TextPhase

ROOT = Path(__file__).resolve().parent.parent
RAW_DIR = Path(os.environ.get("VOXRAY_LOAD_RAW_DIR", "/tmp/voxray-load-raw"))
SAMPLER_EXCLUDE: set[int] = set()


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
        with httpx.Client(base_url=self.base, timeout=10, headers=tool_headers()) as client:
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
    lines = []
    deadline = t0 + phase.duration_s + 180
    assert proc.stdout is not None
    for line in proc.stdout:  # the locustfile's status line every few seconds is shown as it comes
        lines.append(line)
        if line.startswith("[load]"):
            print(f"[{phase.name}] {line[7:].rstrip()}", flush=True)
        if time.time() > deadline:
            proc.kill()
            break
    proc.wait(timeout=30)
    output = "".join(lines)
    t1 = time.time()
    (out_dir / f"{phase.name}.locust.txt").write_text(output)
    records = (
        [json.loads(line) for line in jsonl.read_text().splitlines() if line.strip()]
        if jsonl.exists()
        else []
    )
    return records, t0, t1


async def run_spike(base: str, n: int, call_data: dict[str, str]) -> dict[str, Any]:
    print(f"[spike] {n} simultaneous POST /calls", flush=True)
    body = {"schema_name": "prior_auth", "call_data": call_data, "simulate": {"persona": "insurance_rep"}}
    limits = httpx.Limits(max_connections=n + 10, max_keepalive_connections=n + 10)
    async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits, headers=tool_headers()) as client:

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
    from loadtests.persona import load_persona
    from loadtests.simulated_caller import SimulatedCaller
    from loadtests.voice import PersonaVoice

    persona = load_persona("insurance_rep")
    persona = persona.model_copy(update={"turns": persona.turns[:n_turns]})
    voice = PersonaVoice.shared(length_scale=persona.length_scale)
    for turn in persona.turns:  # synthesise the caller's lines once, before timing anything
        voice.mulaw(turn.say)
    body = {"schema_name": "prior_auth", "call_data": call_data, "simulate": {"persona": "insurance_rep"}}
    out: dict[str, Any] = {"levels": [], "turns_per_call": n_turns}
    baseline: float | None = None
    async with httpx.AsyncClient(base_url=base, timeout=60, headers=tool_headers()) as client:

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
