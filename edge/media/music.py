"""Hold music or a person? A cheap look at one utterance's audio (PCM16 16 kHz, numpy only).

While the agent is on hold the line carries music, tones (ringback, beeps) and, at last, a
person. The VAD passes much of the music as "speech", so every utterance is looked at here
first and music never reaches speech recognition. Five numbers per utterance, after the
classic speech/music discriminators (Scheirer & Slaney 1997):

- ``depth``: how deeply the loudness swings at 2-8 Hz, the rate of syllables (speech's energy
  rises and falls with each syllable and stops between words; music's is sustained);
- ``low_energy``: the share of 16 ms blocks far quieter than the utterance's mean (pauses,
  stop consonants);
- ``stability``: how alike consecutive 32 ms spectra are (median cosine of log spectra in the
  telephone band): a held note keeps its harmonics, formants keep moving;
- ``same_peak``: the share of consecutive frames whose strongest band stays put (a note, a tone);
- ``flatness``: the spectral flatness of sounding frames (tones and clean instruments are peaky,
  speech through a phone line less so).

A pure tone (ringback, busy, beeps: very stable, one strong peak, flat nowhere) is never a
voice, and a block of line noise alone is nobody speaking. Otherwise a logistic model over
the five says music or speech; its weights were fitted on a dev set of
sox-made tunes and tones and espeak/Piper speech (``python -m benchmarks.bench_music --fit``
fits and prints them; the same script reports accuracy on a separate test set and the cost).
Long utterances are judged in blocks of about three seconds: one block of speech makes the
whole utterance speech, so a person talking straight after the music is never dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final

import numpy as np
import numpy.typing as npt

SAMPLE_RATE: Final = 16000
FRAME: Final = 512  # 32 ms spectra, 31.25 Hz bins
BLOCK: Final = 256  # 16 ms loudness blocks: a 62.5 Hz envelope
BAND: Final = slice(10, 110)  # bins of 312-3437 Hz: the telephone band
BLOCK_S: Final = 3.0  # long utterances are judged this much at a time
MIN_S: Final = 0.25  # shorter than this: too little to call music
SOUNDING_DB: Final = -20.0  # frames this far below the loudest are not "sounding"
QUIET_RMS: Final = 100.0  # about -50 dBFS: a line this quiet holds no person speaking
TONAL: Final = 0.85  # stability and same_peak both above this, flatness below PEAKY: a pure tone
PEAKY: Final = 0.1

Floats = npt.NDArray[np.float64]

# Fitted by ``python -m benchmarks.bench_music --fit`` on the dev set (features standardised by
# ``_MEAN``/``_SCALE``); positive favours speech.
FEATURES: Final = ("depth", "low_energy", "stability", "same_peak", "flatness")
_MEAN: Final = np.array([0.336, 0.3363, 0.8533, 0.839, 0.2642])
_SCALE: Final = np.array([0.2003, 0.2018, 0.0789, 0.1779, 0.1071])
_WEIGHTS: Final = np.array([0.9466, 0.2161, -0.488, -1.7331, -0.1169])
_BIAS: Final = -1.7747


class AudioKind(StrEnum):
    SPEECH = "speech"
    MUSIC = "music"  # music, tones, ringback: anything sustained that is not a person
    QUIET = "quiet"  # line noise only


@dataclass(frozen=True)
class MusicVerdict:
    kind: AudioKind
    speech_score: float  # the logit of the block most like speech (> 0: speech)
    features: dict[str, float]  # of that block

    @property
    def is_person(self) -> bool:
        return self.kind is AudioKind.SPEECH


def features(pcm: npt.NDArray[np.int16]) -> Floats:
    """The five numbers (``FEATURES`` order) for one stretch of PCM16 16 kHz audio."""
    x = pcm.astype(np.float32) * np.float32(1 / 32768)
    n = x.size // FRAME
    if n < 3:
        return np.array([1.0, 1.0, 0.0, 0.0, 0.5])  # too short to hear anything sustained
    frames = x[: n * FRAME].reshape(n, FRAME) * _HANN
    spectrum = np.abs(np.fft.rfft(frames, axis=1))[:, BAND]
    power = np.einsum("ij,ij->i", spectrum, spectrum)
    sounding = power > power.max() * 10 ** (SOUNDING_DB / 10) + 1e-12
    log_spec = np.log(spectrum + 1e-6)
    log_spec -= log_spec.mean(axis=1, keepdims=True)
    norms = np.sqrt(np.einsum("ij,ij->i", log_spec, log_spec)) + 1e-9
    cosine = np.einsum("ij,ij->i", log_spec[:-1], log_spec[1:]) / (norms[:-1] * norms[1:])
    pairs = sounding[:-1] & sounding[1:]
    peaks = spectrum.argmax(axis=1)
    same = np.abs(np.diff(peaks)) <= 1
    if pairs.any():
        stability = float(np.median(cosine[pairs]))
        same_peak = float(same[pairs].mean())
    else:
        stability, same_peak = 0.0, 0.0
    loud = spectrum[sounding]
    flatness = float(np.mean(np.exp(np.log(loud + 1e-9).mean(axis=1)) / (loud.mean(axis=1) + 1e-9)))

    m = x.size // BLOCK
    energy = np.einsum("ij,ij->i", *(2 * [x[: m * BLOCK].reshape(m, BLOCK)])) / BLOCK
    low_energy = float(np.mean(energy < 0.1 * energy.mean())) if energy.mean() > 0 else 1.0
    envelope = np.sqrt(energy)
    envelope = envelope / (envelope.mean() + 1e-9) - 1.0
    modulation = np.abs(np.fft.rfft(envelope)) ** 2
    freqs = np.fft.rfftfreq(m, BLOCK / SAMPLE_RATE)
    depth = float(np.sqrt(modulation[(freqs >= 2.0) & (freqs <= 8.0)].sum()) / m)
    return np.array([depth, low_energy, stability, same_peak, flatness])


def speech_logit(values: Floats) -> float:
    if values[2] > TONAL and values[3] > TONAL and values[4] < PEAKY:
        return -10.0
    return float(((values - _MEAN) / _SCALE) @ _WEIGHTS + _BIAS)


def classify(pcm16_16k: bytes | npt.NDArray[np.int16]) -> MusicVerdict:
    """Music (or tones, or line noise) versus a person speaking, for one utterance."""
    pcm = np.frombuffer(pcm16_16k, dtype="<i2") if isinstance(pcm16_16k, bytes) else pcm16_16k
    if pcm.size < MIN_S * SAMPLE_RATE:
        return MusicVerdict(AudioKind.SPEECH, 0.0, {})
    step = int(BLOCK_S * SAMPLE_RATE)
    starts = list(range(0, max(1, pcm.size - step // 2), step))  # a short tail joins the block before
    best: tuple[float, Floats] | None = None
    for i, start in enumerate(starts):
        block = pcm[start : pcm.size if i == len(starts) - 1 else start + step]
        if float(np.sqrt(np.mean(np.square(block, dtype=np.float64)))) < QUIET_RMS:
            continue
        values = features(block)
        score = speech_logit(values)
        if best is None or score > best[0]:
            best = (score, values)
        if score > 0:
            break  # one block of speech is enough
    if best is None:
        return MusicVerdict(AudioKind.QUIET, -10.0, {})
    kind = AudioKind.SPEECH if best[0] > 0 else AudioKind.MUSIC
    return MusicVerdict(kind, best[0], dict(zip(FEATURES, (float(v) for v in best[1]), strict=True)))


_HANN: Final = np.hanning(FRAME).astype(np.float32)
