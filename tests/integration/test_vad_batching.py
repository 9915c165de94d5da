"""Silero windows of several streams scored in one batch get the probabilities each stream
gets alone: the batch keeps every stream's own recurrent state and context."""

from __future__ import annotations

import asyncio

import numpy as np

from common.audio import resample, ulaw_to_pcm16
from edge.media.vad import VAD_WINDOW, SileroBatcher, SileroModel, SileroStream
from loadtests.voice import PersonaVoice

LINES = [
    "Let me pull that up, one second.",
    "The member ID again, please?",
    "It's approved, reference to follow.",
    "Okay, and the date of birth?",
]


def _speech(line: str, lead_s: float) -> np.ndarray:
    pcm = resample(ulaw_to_pcm16(PersonaVoice.shared().mulaw(line)), 8000, 16000)
    return np.concatenate((np.zeros(int(16000 * lead_s), dtype=np.int16), pcm))


async def test_batched_windows_score_as_each_stream_alone() -> None:
    model = SileroModel.shared()
    audios = [_speech(line, 0.1 * k) for k, line in enumerate(LINES)]
    windows = [a[: a.size // VAD_WINDOW * VAD_WINDOW].reshape(-1, VAD_WINDOW) for a in audios]

    alone = []
    for rows in windows:
        stream = SileroStream(model)
        alone.append([stream(w, quiet=False) for w in rows])

    batcher = SileroBatcher(model, max_batch=64)
    streams = [SileroStream(model) for _ in audios]

    async def score_all(k: int) -> list[float]:
        return [await batcher.score(streams[k], w, quiet=False) for w in windows[k]]

    together = await asyncio.gather(*(score_all(k) for k in range(len(audios))))
    assert batcher.batcher.items / batcher.batcher.runs > 2  # the streams really shared runs
    for a, b in zip(alone, together, strict=True):
        np.testing.assert_allclose(b, a, atol=1e-5)
    # speech and pauses were heard, so the comparison covers both
    assert all(max(p) > 0.9 and min(p) < 0.1 for p in alone)
