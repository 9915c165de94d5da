"""Cost of the Twilio media edge (prints figures; never fails on timings).

    python -m benchmarks.bench_media_stream [--seconds 20] [--decisions 10] [--pacing-s 5]
        [--v2v insurance_rep]

- inbound per 20 ms frame: the whole ``handle_message`` path (JSON + pydantic parse, base64,
  inbound order check, µ-law decode, 8→16 kHz resample, Silero VAD, utterance cutting) over Piper
  speech with pauses, smart turn off so the figure is the per-frame part only; and its parts:
  decode+resample alone and one Silero window (512 samples = 32 ms).
- smart turn: ms per end-of-turn decision (features + ONNX, bundled smart-turn v3.2 CPU model),
  on real utterances, one intra-op thread (the edge's setting).
- pacing: a real-time ``play`` of ``--pacing-s`` seconds; deviation of each frame's send time
  from its ideal slot after the lead burst, and of each inter-frame gap from 20 ms.
- many sessions at once: ``bench_edge_batching`` (CPU per call, frame lag, batched models).
- ``--v2v PERSONA``: a real-time SimulatedCaller call against the edge with an agent that
  answers at once: the voice-to-voice time the edge alone adds.
- ``--jitter OLD_MODULE``: the inbound order check (``edge/media/jitter_buffer.py``) against the
  adaptive jitter buffer it replaced, in one run: how long each frame is held (frames arriving
  every 20 ms with 0-2 ms of loopback jitter, simulated clock), CPU per frame, and with
  ``--v2v`` the edge-only voice to voice of both, alternating. ``OLD_MODULE`` is the old file:
  ``git show f0b475a:edge/media/jitter_buffer.py > /tmp/old_jitter_buffer.py``.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere

import argparse
import asyncio
import functools
import json
import logging
import operator
import os
import time
from typing import Any

import numpy as np

from common.audio import InboundConverter
from common.events import Utterance
from edge.media.config import EdgeConfig
from edge.media.playout import ClearResult
from edge.media.smart_turn import SmartTurn
from edge.media.stream import MediaStream
from edge.media.vad import SAMPLE_RATE, VAD_WINDOW, SileroModel, SileroStream
from edge.twilio import protocol
from loadtests.voice import SILENCE_FRAME, PersonaVoice, frames_of

LINES = [
    "Thanks for calling Acme Health provider services, this is Dana. How can I help you?",
    "Okay, let me pull that up. Can you give me the member ID one more time?",
    "I see an authorization on file for that procedure. It's approved.",
    "The reference number is P A seven seven three four.",
    "The decision was made on March third, twenty twenty six.",
]


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def speech_frames(seconds: float) -> list[bytes]:
    voice = PersonaVoice.shared()
    frames: list[bytes] = []
    i = 0
    while len(frames) * 0.02 < seconds:
        frames += frames_of(voice.mulaw(LINES[i % len(LINES)])) + [SILENCE_FRAME] * 50
        i += 1
    return frames


async def bench_inbound(frames: list[bytes]) -> tuple[float, float, int, float]:
    clock = [0.0]
    utts: list[Utterance] = []

    async def send(_: dict[str, Any]) -> None:
        return None

    async def on_utt(u: Utterance) -> None:
        utts.append(u)

    async def on_barge(_: ClearResult) -> None:
        return None

    session = MediaStream(send, on_utt, on_barge, EdgeConfig(smart_turn=False), clock=lambda: clock[0])
    await session.handle_message(
        json.dumps(protocol.start_in("MZb", "CAb", "AC1", {}))
    )  # media before start is ignored
    messages = [json.dumps(protocol.media_in("MZb", i + 1, i, f)) for i, f in enumerate(frames, start=1)]
    per_frame: list[float] = []
    t_all = time.perf_counter()
    for msg in messages:
        clock[0] += 0.02
        t0 = time.perf_counter()
        await session.handle_message(msg)
        per_frame.append((time.perf_counter() - t0) * 1e6)
    total = (time.perf_counter() - t_all) * 1e6 / len(messages)
    await session.flush()
    await session.close()
    windows = len(frames) * 320 / VAD_WINDOW  # a 20 ms frame is 320 samples at 16 kHz
    return total, pct(per_frame, 0.95), len(utts), session.stats["vad_skipped"] / max(windows, 1)


def bench_parts(frames: list[bytes]) -> tuple[float, float]:
    conv = InboundConverter(SAMPLE_RATE)
    t0 = time.perf_counter()
    pcm = [conv.convert(f) for f in frames]
    decode_us = (time.perf_counter() - t0) * 1e6 / len(frames)
    audio = np.concatenate(pcm)
    windows = [audio[i : i + VAD_WINDOW] for i in range(0, audio.size - VAD_WINDOW, VAD_WINDOW)]
    vad = SileroStream(SileroModel.shared())
    for w in windows[:50]:
        vad(w, quiet=True)
    t0 = time.perf_counter()
    for w in windows:
        vad(w, quiet=True)
    vad_us = (time.perf_counter() - t0) * 1e6 / len(windows)
    return decode_us, vad_us


def bench_smart_turn(n: int) -> list[float]:
    from common.audio import resample, ulaw_to_pcm16

    voice = PersonaVoice.shared()
    model = SmartTurn.shared()
    clips = [resample(ulaw_to_pcm16(voice.mulaw(line)), 8000, SAMPLE_RATE) for line in LINES]
    model.predict(clips[0])  # warm-up
    out = []
    for i in range(n):
        t0 = time.perf_counter()
        model.predict(clips[i % len(clips)])
        out.append((time.perf_counter() - t0) * 1000)
    return out


async def bench_pacing(seconds: float, lead_ms: int = 80) -> dict[str, float]:
    sent: list[float] = []

    async def send(msg: dict[str, Any]) -> None:
        if msg["event"] == "media":
            sent.append(time.perf_counter())

    async def noop_utt(_: Utterance) -> None:
        return None

    async def noop(_: ClearResult) -> None:
        return None

    session = MediaStream(send, noop_utt, noop, EdgeConfig(playback_lead_ms=lead_ms, smart_turn=False))
    n = int(seconds / 0.02)
    session.play(b"\xff" * 160 * n, "bench")
    while len(sent) < n:
        await asyncio.sleep(0.05)
    await session.close()
    burst = lead_ms // 20 + 1
    t_ref = sent[burst] - (burst * 0.02 - lead_ms / 1000)  # schedule anchor after the burst
    slot_dev = [
        abs((t - t_ref) - (i * 0.02 - lead_ms / 1000)) * 1000 for i, t in enumerate(sent) if i > burst
    ]
    gaps = [abs((b - a) * 1000 - 20.0) for a, b in zip(sent[burst:], sent[burst + 1 :], strict=False)]
    return {
        "frames": n,
        "burst_frames": sum(1 for t in sent if t - sent[0] < 0.005),
        "gap_dev_p50": pct(gaps, 0.5),
        "gap_dev_p95": pct(gaps, 0.95),
        "slot_dev_p50": pct(slot_dev, 0.5),
        "slot_dev_p95": pct(slot_dev, 0.95),
        "span_ms": (sent[-1] - sent[0]) * 1000,
    }


async def bench_edge_v2v(persona: str, old_buffer: Any = None) -> tuple[list[float], dict[str, int]]:
    """SimulatedCaller → websocket → MediaStream → an agent that answers at once with
    pre-synthesised audio: the voice-to-voice time the edge alone adds (end-of-turn detection,
    inbound order check, pacing), with no STT/LLM/TTS in the loop. ``old_buffer``: the replaced
    jitter buffer's class, put in the stream's place (the before arm of ``--jitter``)."""
    import websockets

    from loadtests.simulated_caller import SimulatedCaller

    reply = PersonaVoice.shared().mulaw("Okay, thank you. Next question.")
    reasons: dict[str, int] = {}

    async def handler(ws: Any) -> None:
        count = {"n": 0}

        async def send(msg: dict[str, Any]) -> None:
            await ws.send(json.dumps(msg))

        async def on_utt(u: Utterance) -> None:
            reasons[u.end_reason] = reasons.get(u.end_reason, 0) + 1
            count["n"] += 1
            session.play(reply, f"r{count['n']}")

        async def noop(_: ClearResult) -> None:
            return None

        session = MediaStream(send, on_utt, noop, EdgeConfig())
        if old_buffer is not None:
            session._order = HeldFrames(old_buffer)  # type: ignore[assignment]
        greeted = False
        async for raw in ws:
            await session.handle_message(raw)
            if session.started and not greeted:
                greeted = True
                session.play(reply, "greeting")
        await session.close()

    async with websockets.serve(handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        result = await SimulatedCaller(
            f"ws://127.0.0.1:{port}/twilio/media/b", persona, hang_up_after_s=4
        ).run()
    return result.latencies_ms, reasons


def load_old_buffer(path: str) -> Any:
    """The replaced ``AdaptiveJitterBuffer`` class, loaded from its old file (the before arm)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("old_jitter_buffer", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module.AdaptiveJitterBuffer


class HeldFrames:
    """The old buffer behind ``InOrderFrames``' interface: push, then play what is due now."""

    def __init__(self, old_cls: Any, clock: Any = time.monotonic) -> None:
        from edge.media.jitter_buffer import FrameStats

        self.jb = old_cls()
        self.clock = clock
        self.stats = FrameStats()

    def push(self, seq: int, timestamp_ms: int, payload: bytes) -> list[Any]:
        from edge.media.jitter_buffer import InboundFrame

        now = self.clock() * 1000.0
        self.jb.push(seq, timestamp_ms, payload, arrival_ms=now)
        return [InboundFrame(f.seq, f.timestamp_ms, f.payload) for f in self.jb.pop_due(now)]


def bench_hold(old_cls: Any, n_frames: int = 3000) -> dict[str, dict[str, float]]:
    """Per frame: ms from arrival to being handed on (simulated clock) and µs of CPU in push."""
    from edge.media.jitter_buffer import InOrderFrames

    rng = np.random.default_rng(3)
    arrivals = [5.0 + i * 20.0 + float(rng.uniform(0.0, 2.0)) for i in range(n_frames)]
    payload = SILENCE_FRAME
    out: dict[str, dict[str, float]] = {}
    for label in ("before", "after", "before ", "after "):  # twice each, interleaved
        clock = [0.0]
        now = functools.partial(operator.getitem, clock, 0)
        order: Any = HeldFrames(old_cls, now) if label.startswith("before") else InOrderFrames()
        arrived: dict[int, float] = {}
        held: list[float] = []
        cpu: list[float] = []
        for i, at in enumerate(arrivals):
            clock[0] = at / 1000.0
            arrived[i + 1] = at
            t0 = time.perf_counter()
            frames = order.push(i + 1, i * 20, payload)
            cpu.append((time.perf_counter() - t0) * 1e6)
            held += [at - arrived[f.seq] for f in frames]
        out[label.strip()] = {
            "held_p50": pct(held, 0.5),
            "held_p95": pct(held, 0.95),
            "held_max": max(held),
            "cpu_us_p50": pct(cpu, 0.5),
            "cpu_us_p95": pct(cpu, 0.95),
            "frames": len(held),
        }
    return out


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=20.0, help="audio fed through the inbound path")
    ap.add_argument("--decisions", type=int, default=10, help="smart-turn decisions timed")
    ap.add_argument("--pacing-s", type=float, default=5.0, help="real-time playback measured")
    ap.add_argument(
        "--v2v", metavar="PERSONA", help="also run a real-time simulated call (e.g. insurance_rep)"
    )
    ap.add_argument("--jitter", metavar="OLD_MODULE", help="compare with the old jitter buffer's file")
    ap.add_argument("--only-jitter", action="store_true", help="with --jitter: skip the other sections")
    args = ap.parse_args()
    logging.disable(logging.WARNING)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    print(f"load average at start: {os.getloadavg()[0]:.2f} ({os.cpu_count()} CPUs)")

    if args.jitter:
        await compare_jitter(args)
        if args.only_jitter:
            return
    frames = speech_frames(args.seconds)
    mean_us, p95_us, n_utt, skipped = await bench_inbound(frames)
    decode_us, vad_us = bench_parts(frames)
    print(
        f"inbound handle_message per 20 ms frame: mean {mean_us:.0f} µs, p95 {p95_us:.0f} µs "
        f"({len(frames)} frames, {n_utt} utterances, {skipped:.0%} of VAD windows below the energy floor)"
        f" = {mean_us * 50 / 1e4:.2f}% of a core per call"
    )
    print(f"  decode µ-law + resample 8→16 kHz: {decode_us:.1f} µs per frame")
    print(f"  Silero VAD: {vad_us:.0f} µs per 32 ms window ({vad_us * 20 / 32:.0f} µs per 20 ms frame)")

    st = bench_smart_turn(args.decisions)
    print(
        f"smart turn v3.2 per decision: p50 {pct(st, 0.5):.0f} ms, p95 {pct(st, 0.95):.0f} ms, "
        f"min {min(st):.0f} ms over {len(st)} (1 thread; once per pause ≥ turn_pause_ms)"
    )

    pacing = await bench_pacing(args.pacing_s)
    print(
        f"outbound pacing over {pacing['frames']:.0f} frames (lead 80 ms, burst {pacing['burst_frames']:.0f}"
        f" frames): |gap-20ms| p50 {pacing['gap_dev_p50']:.2f} ms p95 {pacing['gap_dev_p95']:.2f} ms; "
        f"slot deviation p50 {pacing['slot_dev_p50']:.2f} ms p95 {pacing['slot_dev_p95']:.2f} ms; "
        f"span {pacing['span_ms']:.0f} ms"
    )
    if args.v2v:
        lat, reasons = await bench_edge_v2v(args.v2v)
        print(
            f"edge-only voice-to-voice ({args.v2v}, {len(lat)} turns, instant agent): "
            f"p50 {pct(lat, 0.5):.0f} ms, p95 {pct(lat, 0.95):.0f} ms, max {max(lat):.0f} ms; "
            f"end of turn by {reasons}"
        )
    print(f"load average at end: {os.getloadavg()[0]:.2f}")


async def compare_jitter(args: argparse.Namespace) -> None:
    old_cls = load_old_buffer(args.jitter)
    hold = bench_hold(old_cls)
    for label, h in hold.items():
        what = "adaptive jitter buffer" if label == "before" else "order check"
        print(
            f"inbound hold per frame, {label:6s} ({what}): p50 {h['held_p50']:.1f} ms, "
            f"p95 {h['held_p95']:.1f} ms, max {h['held_max']:.1f} ms; CPU p50 {h['cpu_us_p50']:.1f} µs, "
            f"p95 {h['cpu_us_p95']:.1f} µs per frame ({h['frames']:.0f} frames)"
        )
    b, a = hold["before"], hold["after"]
    print(
        f"  held p50 {b['held_p50']:.1f} → {a['held_p50']:.1f} ms, CPU per frame "
        f"x{a['cpu_us_p50'] / max(b['cpu_us_p50'], 1e-9):.2f} (after/before)"
    )
    if not args.v2v:
        return
    lat: dict[str, list[float]] = {"before": [], "after": []}
    for _ in range(2):  # alternate arms so load drift hits both
        for label in ("before", "after"):
            got, _ = await bench_edge_v2v(args.v2v, old_cls if label == "before" else None)
            lat[label] += got
    for label, values in lat.items():
        print(
            f"edge-only voice-to-voice, {label:6s}: p50 {pct(values, 0.5):.0f} ms, "
            f"p95 {pct(values, 0.95):.0f} ms over {len(values)} turns"
        )
    print(
        f"  ratio after/before: p50 x{pct(lat['after'], 0.5) / pct(lat['before'], 0.5):.2f}, "
        f"p95 x{pct(lat['after'], 0.95) / pct(lat['before'], 0.95):.2f}"
    )


if __name__ == "__main__":
    asyncio.run(main())
