"""First audio of a reply sentence: Piper whole (the baseline) vs decoded in pieces (issue 14, lever 5).

Both on the bundled voice, one ONNX thread each, the same agent sentences in alternation, in one
run. Prints time to first audio (p50 / p95, and the ratio pieces / whole), the whole sentence's
synthesis time (the extra decoder work of the pieces), and gaps: a piece not ready when the audio
before it has finished playing (the caller would hear a pause mid-sentence). ``--busy N`` runs N
processes that keep a core busy each (the other calls' speech recognition, say) during the run.
Prints figures; never fails on time.

    python -m benchmarks.bench_tts_first_audio [--runs 5] [--busy 1] [--first-ms 400]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import time
from collections.abc import Iterable
from typing import Any

import numpy as np

from benchmarks.bench_speech import pct

# Agent lines of the kinds a call's first reply sentence takes (written for this benchmark).
SENTENCES = [
    "Thanks for checking, could you tell me where that prior authorization request stands right now?",
    "Got it, and is there a reference number I should note down for this one?",
    "Sure, the member ID is X K M four four nine eight one two.",
    "That makes sense, and roughly how many people on your team would be using a scheduling tool?",
    "Perfect, I have you down for Thursday at two in the afternoon.",
    "No problem at all, I'll call back later this week.",
    "Hi, this is Alex calling from Doctor Smith's office about a prior authorization for a patient of ours.",
    "Understood.",
]


def spin(stop: Any) -> None:  # a multiprocessing Event
    a = np.random.default_rng(0).standard_normal((256, 256))
    while not stop.is_set():
        a = np.tanh(a @ a)


def timed_pieces(pieces: Iterable[tuple[Any, bool]], rate: int) -> tuple[float, float, float]:
    """(first audio s, all s, worst gap s) of a piece iterator."""
    t0 = time.perf_counter()
    ready: list[float] = []
    lengths: list[float] = []
    for piece, _ in pieces:
        ready.append(time.perf_counter() - t0)
        lengths.append(len(piece) / rate)
    gap = 0.0
    playing_until = ready[0]
    for at, seconds in zip(ready, lengths, strict=True):
        gap = max(gap, at - playing_until)
        playing_until = max(playing_until, at) + seconds
    return ready[0], ready[-1], gap


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--busy", type=int, default=0, help="processes keeping a core busy each")
    parser.add_argument("--first-ms", type=int, default=400)
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from services.tts import PiperSynth

    whole = PiperSynth(first_piece_ms=0)
    pieced = PiperSynth(first_piece_ms=args.first_ms)
    assert pieced.chunked is not None
    rate = whole.sample_rate
    stop = multiprocessing.Event()
    workers = [multiprocessing.Process(target=spin, args=(stop,), daemon=True) for _ in range(args.busy)]
    for worker in workers:
        worker.start()
    results: dict[str, dict[str, list[float]]] = {
        name: {"first": [], "all": [], "gap": []} for name in ("whole", "pieces")
    }
    try:
        for sentence in SENTENCES[:2]:  # warm both
            list(whole.synth_pieces(sentence))
            list(pieced.synth_pieces(sentence))
        for _ in range(args.runs):
            for sentence in SENTENCES:
                for name, synth in (("whole", whole), ("pieces", pieced)):
                    first, total, gap = timed_pieces(synth.synth_pieces(sentence), rate)
                    results[name]["first"].append(first)
                    results[name]["all"].append(total)
                    results[name]["gap"].append(gap)
    finally:
        stop.set()
        for worker in workers:
            worker.join(timeout=5)
    print(
        f"cpus {os.cpu_count()}, busy processes {args.busy}; {len(SENTENCES)} sentences x {args.runs} runs; "
        f"first piece {args.first_ms} ms ({pieced.chunked.first_frames} frames)"
    )
    for name, r in results.items():
        gaps = [g for g in r["gap"] if g > 0.001]
        print(
            f"{name:6s}: first audio p50 {1000 * statistics.median(r['first']):.0f} ms, "
            f"p95 {1000 * pct(r['first'], 0.95):.0f} ms; whole sentence p50 "
            f"{1000 * statistics.median(r['all']):.0f} ms; gaps {len(gaps)}/{len(r['gap'])}"
            + (f" (worst {1000 * max(gaps):.0f} ms)" if gaps else "")
        )
    w, p = results["whole"], results["pieces"]
    ratio = statistics.median(p["first"]) / statistics.median(w["first"])
    print(
        f"pieces / whole: first audio x{ratio:.2f} (p50), "
        f"x{pct(p['first'], 0.95) / pct(w['first'], 0.95):.2f} (p95); synthesis time "
        f"x{sum(p['all']) / sum(w['all']):.2f}"
    )


if __name__ == "__main__":
    main()
