"""Silero VAD and smart turn batched across the sockets of one process, against one window
and one decision at a time, in one run (prints figures; never fails on time).

N media sessions (``MediaStream``, the edge's real per-socket path: JSON parse, µ-law decode,
resample, Silero, endpointer, smart turn, playout) run in one event loop, each fed by its own
task one real-time 20 ms frame every 20 ms (Piper speech with pauses, a different phase per
session), each answered with a short reply on every utterance. Two arms alternate at each
level: ``batched`` (the default: the windows and end-of-turn questions of sessions that wait at
the same time run as one model call, up to 64 Silero windows and 8 smart-turn clips) and
``one at a time`` (the same code with batches of 1). Per arm: process CPU per call in % of a
core (and the edge's calls per core from it), how late the 20 ms frames were handled (p50/p95),
the mean Silero and smart-turn batch, and the end-of-turn questions skipped because too many
were queued (the silence rule then decides alone).

    python -m benchmarks.bench_edge_batching [--calls 8 16 32] [--seconds 30] [--rounds 2]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere

import argparse
import asyncio
import json
import logging
import os
import time
from typing import Any

from benchmarks.bench_media_stream import pct, speech_frames
from common.events import Utterance
from edge.media.config import EdgeConfig
from edge.media.playout import ClearResult
from edge.media.smart_turn import SmartTurn
from edge.media.stream import MediaStream
from edge.media.vad import SileroBatcher, SileroModel
from edge.twilio import protocol
from loadtests.voice import PersonaVoice

ARMS = {"batched": (64, 8), "one at a time": (1, 1)}  # (Silero windows, smart-turn clips) per run


async def run_level(n_calls: int, seconds: float, vad: SileroBatcher, turn: SmartTurn) -> dict[str, float]:
    script = speech_frames(seconds + 5.0)
    n_frames = int(seconds / 0.02)
    # each session its own phase of the script, its own in-order chunk numbers
    messages = [
        [
            json.dumps(protocol.media_in(f"MZ{k}", i + 1, i + 1, script[(k * 37 + i) % len(script)]))
            for i in range(n_frames)
        ]
        for k in range(n_calls)
    ]
    reply = PersonaVoice.shared().mulaw("Okay, thank you.")

    async def noop_send(_: dict[str, Any]) -> None:
        return None

    async def noop_barge(_: ClearResult) -> None:
        return None

    sessions: list[MediaStream] = []
    for k in range(n_calls):

        async def on_utt(_: Utterance, k: int = k) -> None:
            sessions[k].play(reply, f"r{time.monotonic()}")

        session = MediaStream(noop_send, on_utt, noop_barge, EdgeConfig(), vad=vad, smart_turn=turn)
        await session.handle_message(json.dumps(protocol.start_in(f"MZ{k}", f"CA{k}", "AC1", {})))
        sessions.append(session)
    vad_runs0, vad_items0 = vad.batcher.runs, vad.batcher.items
    turn_runs0, turn_items0 = turn.batcher.runs, turn.batcher.items
    lags: list[float] = []
    t0 = time.monotonic()

    async def feed(k: int) -> None:
        start = t0 + (k % 10) * 0.002  # sockets' frames do not all land in the same millisecond
        for i in range(n_frames):
            due = start + i * 0.02
            lag = time.monotonic() - due
            if lag < 0:
                await asyncio.sleep(-lag)
                lag = 0.0
            lags.append(lag * 1000)
            await sessions[k].handle_message(messages[k][i])

    cpu0 = time.process_time()
    await asyncio.gather(*(feed(k) for k in range(n_calls)))
    cpu = time.process_time() - cpu0
    wall = time.monotonic() - t0
    stats = [s.stats for s in sessions]
    for s in sessions:
        await s.close()
    cpu_pct = cpu / wall * 100 / n_calls
    return {
        "cpu_pct_per_call": cpu_pct,
        "calls_per_core": 100 / cpu_pct,
        "lag_p50": pct(lags, 0.5),
        "lag_p95": pct(lags, 0.95),
        "vad_batch": (vad.batcher.items - vad_items0) / max(vad.batcher.runs - vad_runs0, 1),
        "turn_batch": (turn.batcher.items - turn_items0) / max(turn.batcher.runs - turn_runs0, 1),
        "decisions": sum(s["smart_turn_decisions"] for s in stats),
        "skipped": sum(s["smart_turn_skipped"] for s in stats),
        "utterances": sum(s["utterances"] for s in stats),
    }


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, nargs="+", default=[8, 16, 32], help="concurrent sessions per level")
    ap.add_argument("--seconds", type=float, default=30.0, help="audio per session per arm and round")
    ap.add_argument("--rounds", type=int, default=2, help="times each arm runs per level, alternating")
    args = ap.parse_args()
    logging.disable(logging.WARNING)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    print(f"load average at start: {os.getloadavg()[0]:.2f} ({os.cpu_count()} CPUs)")
    model = SileroModel.shared()
    models = {arm: (SileroBatcher(model, v), SmartTurn(max_batch=t)) for arm, (v, t) in ARMS.items()}
    speech_frames(5.0)  # synthesise the script once before timing
    for n in args.calls:
        results: dict[str, list[dict[str, float]]] = {arm: [] for arm in ARMS}
        for _ in range(args.rounds):
            for arm, (vad, turn) in models.items():
                results[arm].append(await run_level(n, args.seconds, vad, turn))
        for arm, runs in results.items():
            mean = {key: sum(r[key] for r in runs) / len(runs) for key in runs[0]}
            print(
                f"{n:3d} calls, {arm:13s}: {mean['cpu_pct_per_call']:.2f}% of a core per call "
                f"({mean['calls_per_core']:.0f} calls per core at the edge), frame lag p50 "
                f"{mean['lag_p50']:.1f} ms p95 {mean['lag_p95']:.1f} ms; mean batch Silero "
                f"{mean['vad_batch']:.1f}, smart turn {mean['turn_batch']:.2f}; smart-turn questions "
                f"{mean['decisions']:.0f} asked, {mean['skipped']:.0f} skipped; "
                f"{mean['utterances']:.0f} utterances"
            )
        b, o = (sum(r["cpu_pct_per_call"] for r in results[arm]) for arm in ("batched", "one at a time"))
        print(f"{n:3d} calls: CPU per call batched / one at a time x{b / o:.2f}")
    print(f"load average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    asyncio.run(main())
