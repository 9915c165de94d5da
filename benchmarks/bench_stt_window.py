"""Whisper's encoder window: fixed 30 s against fitted to the clip (prints figures; never fails).

    python benchmarks/bench_stt_window.py [--show]

``stt.fit_window`` encodes max(``min_window_s`` 10 s, clip + 2 s) instead of 30 s. Whisper was
trained on 30 s windows, and an earlier attempt at shorter ones looped on its own output, so
this measures, on the same clips in one run (arms interleaved clip by clip, one utterance per
call as at low load), three arms: the 30 s window; the fitted window alone; the fitted window
with the service's fallback (a decode that loops or hears nothing is decoded again in 30 s).
The clips are ``bench_stt_hints.py``'s (~30 lines in 7 espeak-ng voices, unlike the agent's,
through a telephone channel), plus short answers ("Yes.", "Mhm.") where loops would show, plus
noise-only clips; each with and without the call's hints. Per arm: model time per
utterance p50/p95, WER median/mean, identifiers exact, looping transcripts (compression ratio
over 2.4, a three-word phrase twice, a word three times in a row, or over twice the words said
+ 4), speech heard as nothing (empty transcripts), words heard in noise.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere

import argparse
import os
import statistics
import tempfile
import time
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from benchmarks.bench_stt_hints import VOICES, Clip, build_clips, compact, phone_line, tokens, wer
from loadtests.voice import espeak_wav

SHORT = [
    "Yes.",
    "No.",
    "Mhm.",
    "Okay, thanks.",
    "Correct.",
    "That's right.",
    "Hello?",
    "Sorry, say that again?",
    "Seven seven three four.",
    "Hold on.",
]


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def loops(reference: str, heard: str) -> bool:
    from services.stt import repeats_itself

    said, got = tokens(reference), tokens(heard)
    words = heard.lower().split()  # whole words: "000" in a misheard ID is no loop
    tripled = any(words[i] == words[i + 1] == words[i + 2] for i in range(len(words) - 2))
    return repeats_itself(heard) or tripled or len(got) > 2 * len(said) + 4


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--show", action="store_true", help="print transcripts that differ between arms")
    args = parser.parse_args()

    from common.settings import get_settings
    from services.stt import WhisperBatchTranscriber, prepare_audio

    with tempfile.TemporaryDirectory(prefix="bench-stt-window-") as tmp:
        clips, noise = build_clips(Path(tmp))
    for n, line in enumerate(SHORT):
        voice, wpm = VOICES[(n + 3) % len(VOICES)]
        clips.append(Clip(line, [], "", phone_line(espeak_wav(line, voice, wpm), seed=200 + n)))
    noise_refs = [Clip("", [], "", pcm) for pcm in noise]

    cfg = get_settings().stt
    fixed = WhisperBatchTranscriber(cfg.model_copy(update={"fit_window": False}))
    fitted = WhisperBatchTranscriber(cfg.model_copy(update={"fit_window": True}))

    class NoFallback(WhisperBatchTranscriber):
        @staticmethod
        def _redo_in_full(segments: list[dict[str, Any]]) -> bool:
            return False

    bare = NoFallback(cfg.model_copy(update={"fit_window": True}))
    arms = {"30 s window": fixed, "fitted, no fallback": bare, "fitted (service)": fitted}
    seconds = [len(c.pcm16k) / 32000 for c in clips]
    print(
        f"{len(clips)} clips ({min(seconds):.1f}-{max(seconds):.1f} s, {len(SHORT)} short answers) + "
        f"{len(noise)} noise clips, each without and with hints; model {cfg.model_path or 'tiny.en'} "
        f"{cfg.compute_type}, {cfg.cpu_threads} thread(s); min window {cfg.min_window_s:.0f} s; "
        f"cpus {os.cpu_count()}, load {os.getloadavg()[0]:.1f}"
    )
    cases = [(c, h) for c in clips for h in ("", c.hints)] + [(c, "") for c in noise_refs]
    for engine in arms.values():  # warm-up
        engine.run([prepare_audio(clips[0].pcm16k, 16000, 30.0)])
    heard: dict[str, list[str]] = {a: [] for a in arms}
    ms: dict[str, list[float]] = {a: [] for a in arms}
    for clip, hints in cases:
        item = prepare_audio(clip.pcm16k, 16000, 30.0, hints=hints)
        for label, engine in arms.items():
            t0 = time.perf_counter()
            heard[label].append(engine.run([item])[0].text)
            ms[label].append((time.perf_counter() - t0) * 1000)
    speech = [k for k, (c, _) in enumerate(cases) if c.reference]
    short = {k for k in speech if cases[k][0].reference in SHORT}
    rows: dict[str, dict[str, float]] = {}
    for label in arms:
        wers = [wer(cases[k][0].reference, heard[label][k]) for k in speech]
        found = [compact(i) in compact(heard[label][k]) for k in speech for i in cases[k][0].identifiers]
        rows[label] = {
            "p50": pct([ms[label][k] for k in speech], 0.5),
            "p95": pct([ms[label][k] for k in speech], 0.95),
            "wer_median": statistics.median(wers),
            "wer_mean": statistics.mean(wers),
            "wer_short": statistics.mean(wers[j] for j, k in enumerate(speech) if k in short),
            "ids": sum(found) / len(found),
            "loops": sum(loops(cases[k][0].reference, heard[label][k]) for k in speech),
            "empty": sum(not heard[label][k].strip() for k in speech),
            "noise_words": sum(len(tokens(heard[label][k])) for k in range(len(cases)) if k not in speech),
        }
        r = rows[label]
        print(
            f"{label:20s}: model time per utterance p50 {r['p50']:.0f} ms, p95 {r['p95']:.0f} ms; "
            f"WER median {r['wer_median']:.3f} mean {r['wer_mean']:.3f} (short answers "
            f"{r['wer_short']:.3f}); identifiers exact {100 * r['ids']:.0f}%; "
            f"looping transcripts {r['loops']:.0f}, empty {r['empty']:.0f} of {len(speech)}; "
            f"words heard in noise {r['noise_words']:.0f}"
        )
    base, svc = rows["30 s window"], rows["fitted (service)"]
    print(
        f"fitted (service) / 30 s: time p50 x{svc['p50'] / base['p50']:.2f}, "
        f"p95 x{svc['p95'] / base['p95']:.2f}; "
        f"WER mean {base['wer_mean']:.3f} → {svc['wer_mean']:.3f}"
    )
    if args.show:
        for k, (clip, hints) in enumerate(cases):
            texts = {label: heard[label][k] for label in arms}
            if len(set(texts.values())) > 1:
                print(f"  {'hinted' if hints else 'plain '} | {clip.reference!r}")
                for label, text in texts.items():
                    print(f"      {label:20s} {text!r}")


if __name__ == "__main__":
    main()
