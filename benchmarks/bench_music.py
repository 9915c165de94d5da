"""Hold music versus a person: accuracy and cost of ``edge/media/music.py``.

Builds utterances as the edge would hand them over (PCM16 16 kHz after the µ-law line):
windows of 0.8-10 s of sox-made tunes and call-progress tones (``loadtests/hold_music.py``),
and lines said by espeak-ng voices and the Piper voice with a little line noise before and
after. The dev set (dev tunes, three espeak voices, Piper at normal speed, dev lines) is what
the classifier's weights were fitted on (``--fit`` fits and prints them); the test set has
other tunes, tones, voices, a slower Piper and other lines. Prints accuracy per set and
class, and the cost per second of audio (median and p95). Never fails on time.

    python -m benchmarks.bench_music [--fit] [--no-piper]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import numpy.typing as npt

from common.audio import resample, ulaw_to_pcm16
from edge.media import music
from loadtests.hold_music import (
    DEV_TONES,
    DEV_TUNES,
    TEST_TONES,
    TEST_TUNES,
    HoldMusic,
    Tone,
    Tune,
    random_tunes,
)
from loadtests.voice import ESPEAK_VOICES, CachedVoice, EspeakVoice

DEV_LINES = [
    "Thanks for holding, I have the member's file open now.",
    "Are you still there?",
    "Okay, I found the authorization, it was approved last week.",
    "Sorry about the wait, my system was really slow.",
    "Hello? Yes, I'm back, what was the member ID again?",
    "Alright, I have the case number for you.",
    "Hi, this is Maria, I'm taking over the call from here.",
    "Okay.",
    "It looks like it's still pending clinical review.",
    "Can you spell the last name for me?",
]
TEST_LINES = [
    "Hi, sorry for the long hold, I've got the chart in front of me.",
    "Hello, are you there?",
    "So the request was denied for missing documentation.",
    "Thank you for waiting, I appreciate your patience.",
    "Yes.",
    "I'm back, let me read you the reference number.",
    "My supervisor says we need a new fax with the notes.",
    "Alright, which date of service was that?",
    "It was approved through the end of next month.",
    "Okay, I'm going to need the NPI one more time.",
]
RATE = music.SAMPLE_RATE
L2 = 3.0  # keeps the weights modest: the dev set is small
Pcm = npt.NDArray[np.int16]


def line_pcm(ulaw: bytes) -> Pcm:
    return resample(ulaw_to_pcm16(ulaw), 8000, RATE)


def with_line_noise(pcm: Pcm, rng: np.random.Generator, before_s: float, after_s: float) -> Pcm:
    """Pre-roll and tail of line noise around ``pcm``, as the endpointer cuts an utterance."""
    x = np.concatenate(
        [np.zeros(int(before_s * RATE)), pcm.astype(np.float64), np.zeros(int(after_s * RATE))]
    )
    x += rng.normal(0.0, 30.0, x.size)  # about -60 dBFS of hiss
    out: Pcm = np.clip(x, -32768, 32767).astype(np.int16)
    return out


def music_windows(items: tuple[Tune | Tone, ...], per_item: int, rng: np.random.Generator) -> list[Pcm]:
    maker = HoldMusic()
    out = []
    for item in items:
        audio = line_pcm(maker.mulaw(item, 30.0))
        for _ in range(per_item):
            length = rng.uniform(0.8, 10.0)
            start = rng.uniform(0, 30.0 - length)
            out.append(audio[int(start * RATE) : int((start + length) * RATE)])
    return out


def speech_utterances(voices: list[CachedVoice], lines: list[str], rng: np.random.Generator) -> list[Pcm]:
    return [
        with_line_noise(line_pcm(voice.mulaw(line)), rng, rng.uniform(0.1, 0.3), rng.uniform(0.2, 0.7))
        for voice in voices
        for line in lines
    ]


def build(split: str, piper: bool) -> tuple[list[Pcm], list[Pcm]]:
    rng = np.random.default_rng(15 if split == "dev" else 16)
    dev = split == "dev"
    tunes = (
        DEV_TUNES + DEV_TONES + random_tunes(1, 24) if dev else TEST_TUNES + TEST_TONES + random_tunes(2, 24)
    )
    half = len(ESPEAK_VOICES) // 2
    voices: list[CachedVoice] = [EspeakVoice(v, w) for v, w in ESPEAK_VOICES[:half] if dev]
    voices += [EspeakVoice(v, w) for v, w in ESPEAK_VOICES[half:] if not dev]
    if piper:
        from loadtests.voice import PersonaVoice

        voices.append(PersonaVoice.shared(length_scale=1.0 if dev else 1.2))
    return music_windows(tunes, 4, rng), speech_utterances(voices, DEV_LINES if dev else TEST_LINES, rng)


def fit(tunes: list[Pcm], speech: list[Pcm]) -> None:
    """Logistic regression (Newton's method, a little L2) on standardised features; prints the
    constants for ``edge/media/music.py``."""
    x = np.array([music.features(p) for p in tunes + speech])
    y = np.array([0.0] * len(tunes) + [1.0] * len(speech))
    mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-9
    z = np.hstack([(x - mean) / scale, np.ones((len(x), 1))])
    w = np.zeros(z.shape[1])
    for _ in range(50):
        p = 1 / (1 + np.exp(-z @ w))
        grad = z.T @ (p - y) + L2 * w
        hess = (z * (p * (1 - p))[:, None]).T @ z + L2 * np.eye(z.shape[1])
        w -= np.linalg.solve(hess, grad)
    print("_MEAN: Final =", np.round(mean, 4).tolist())
    print("_SCALE: Final =", np.round(scale, 4).tolist())
    print("_WEIGHTS: Final =", np.round(w[:-1], 4).tolist())
    print("_BIAS: Final =", round(float(w[-1]), 4))


def report(split: str, tunes: list[Pcm], speech: list[Pcm]) -> None:
    music_right = sum(not music.classify(p).is_person for p in tunes)
    speech_right = sum(music.classify(p).is_person for p in speech)
    total = len(tunes) + len(speech)
    print(
        f"{split}: accuracy {(music_right + speech_right) / total:.3f} ({total} utterances) · "
        f"music/tones {music_right}/{len(tunes)} · speech {speech_right}/{len(speech)}"
    )


def cost(utterances: list[Pcm]) -> None:
    per_s = []
    for pcm in utterances:
        data = pcm.tobytes()
        t0 = time.perf_counter()
        music.classify(data)
        per_s.append((time.perf_counter() - t0) * 1000 / (pcm.size / RATE))
    print(
        f"cost: median {np.median(per_s):.3f} ms, p95 {np.percentile(per_s, 95):.3f} ms "
        f"per second of audio ({len(per_s)} utterances)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fit", action="store_true", help="fit the weights on the dev set and print them")
    parser.add_argument("--no-piper", action="store_true", help="espeak voices only")
    args = parser.parse_args()
    dev = build("dev", not args.no_piper)
    if args.fit:
        fit(*dev)
    test = build("test", not args.no_piper)
    report("dev", *dev)
    report("test", *test)
    cost(test[0] + test[1])


if __name__ == "__main__":
    main()
