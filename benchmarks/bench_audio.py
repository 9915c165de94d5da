"""Per-frame cost of the telephony audio path (prints figures; never fails on timings).

    python benchmarks/bench_audio.py [--frames 5000]

Measures, per 20 ms frame:
- inbound  : µ-law 8 kHz (160 B) → PCM16 → 16 kHz (the edge's path towards VAD/STT)
- outbound : PCM16 22.05 kHz (441 samples, Piper) → 8 kHz → µ-law, framed to 160 B
- the codec alone, each soxr quality, and as a baseline in the same run an FFT resampler
  (scipy.signal.resample per frame) where scipy is installed.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np

from common.audio import (
    InboundConverter,
    OutboundConverter,
    pcm16_to_ulaw,
    ulaw_to_pcm16,
)


def per_call_us(fn: Callable[[], object], n: int, repeats: int = 5) -> tuple[float, float]:
    """Median and p95 over ``repeats`` runs of the mean µs per call across ``n`` calls."""
    for _ in range(min(n, 200)):
        fn()
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        runs.append((time.perf_counter() - t0) / n * 1e6)
    runs.sort()
    return statistics.median(runs), runs[min(len(runs) - 1, int(0.95 * len(runs)))]


def single_call_p95_us(fn: Callable[[], object], n: int) -> float:
    samples = []
    for _ in range(n):
        t0 = time.perf_counter_ns()
        fn()
        samples.append((time.perf_counter_ns() - t0) / 1000)
    samples.sort()
    return samples[int(0.95 * len(samples))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--frames", type=int, default=5000)
    n = parser.parse_args().frames

    rng = np.random.default_rng(0)
    t = np.arange(441) / 22050
    tts_frame = (8000 * np.sin(2 * np.pi * 220 * t) + rng.normal(0, 300, 441)).astype(np.int16)
    ulaw_frame = pcm16_to_ulaw((8000 * np.sin(2 * np.pi * 300 * np.arange(160) / 8000)).astype(np.int16))

    rows: list[tuple[str, float, float, float]] = []

    def add(name: str, fn: Callable[[], object]) -> None:
        med, p95 = per_call_us(fn, n)
        rows.append((name, med, p95, single_call_p95_us(fn, n)))

    add("ulaw→pcm16 (160 B)", lambda: ulaw_to_pcm16(ulaw_frame))
    pcm8 = ulaw_to_pcm16(ulaw_frame)
    add("pcm16→ulaw (160 samples)", lambda: pcm16_to_ulaw(pcm8))
    for q in ("HQ", "MQ", "LQ"):
        inbound = InboundConverter(quality=q)
        add(f"inbound decode+resample 8k→16k [{q}]", lambda c=inbound: c.convert(ulaw_frame))  # type: ignore[misc]
        outbound = OutboundConverter(22050, quality=q)
        add(f"outbound resample 22.05k→8k+encode [{q}]", lambda c=outbound: c.convert(tts_frame))  # type: ignore[misc]
    try:
        from scipy.signal import resample as fft_resample

        def seed_inbound() -> object:
            return fft_resample(ulaw_to_pcm16(ulaw_frame).astype(np.float32), 320).astype(np.int16)

        def seed_outbound() -> object:
            return pcm16_to_ulaw(fft_resample(tts_frame.astype(np.float32), 160).astype(np.int16))

        add("baseline: scipy.signal.resample inbound", seed_inbound)
        add("baseline: scipy.signal.resample outbound", seed_outbound)
    except ImportError:
        print("(scipy not installed: no FFT-resample baseline)")

    print(f"per 20 ms frame, {n} frames x 5 runs; budget < 50 µs")
    print(f"{'path':48s} {'median µs':>10s} {'p95-run µs':>10s} {'p95 call µs':>11s}")
    for name, med, p95, call95 in rows:
        print(f"{name:48s} {med:10.2f} {p95:10.2f} {call95:11.2f}")
    base = {r[0]: r[1] for r in rows}
    if "baseline: scipy.signal.resample inbound" in base:
        ratio = base["inbound decode+resample 8k→16k [HQ]"] / base["baseline: scipy.signal.resample inbound"]
        print(f"ratio inbound HQ / FFT baseline: {ratio:.2f}")
    realtime_frames_per_core = 1e6 / (
        base["inbound decode+resample 8k→16k [HQ]"] + base["outbound resample 22.05k→8k+encode [HQ]"]
    )
    calls = realtime_frames_per_core / 50
    print(f"HQ both directions: {calls:.0f} real-time calls per core (codec+resample only)")


if __name__ == "__main__":
    main()
