"""Steady tones in a call's inbound audio: a voicemail beep, a fax or modem answering.

Streaming over PCM16 frames (8 or 16 kHz) of any length. The audio is cut into 32 ms blocks;
each block's spectrum (Hann window, zero-padded FFT) gives its loudest frequency and its
*tonality*: the share of the band's energy (250-3000 Hz) within ±60 Hz of that peak. Speech
spreads its energy over harmonics and formants (tonality well under 0.5); a beep or a fax tone
puts nearly all of it in one place (0.9+ even through µ-law).

A run of tonal blocks at one frequency is a tone. When it ends it is reported:

- ``beep``: 300-2500 Hz, at least 150 ms, one steady pitch, after speech was heard and followed
  by quiet (a voicemail's cue to talk; a tonal vowel drifts and is followed by more speech);
- ``fax``: CNG (1100 Hz, a calling fax's 0.5 s bursts) or CED (2100 Hz answer tone, ~3 s),
  reported as soon as the run is long enough, without waiting for its end.

A 2100 Hz tone that stops before ``CED_MIN_S`` after speech is a beep like any other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

BLOCK_S = 0.032
FFT_SIZE = 1024
BAND_HZ = (250.0, 3000.0)
PEAK_HALF_WIDTH_HZ = 60.0
TONAL = 0.85  # a block this tonal, at this level, is part of a tone
MIN_RMS = 150.0  # int16 units (≈ -47 dBFS): quieter blocks are not tones
SAME_FREQ_HZ = 40.0
BEEP_SPREAD_HZ = 20.0  # a beep holds its pitch; a sung or synthetic vowel drifts
BEEP_HZ = (300.0, 2500.0)
BEEP_MIN_S = 0.15
BEEP_MAX_S = 3.0  # longer steady tones are not beeps (a dial tone, an alarm)
CNG_HZ = 1100.0
CED_HZ = 2100.0
FAX_TOLERANCE_HZ = 45.0
CNG_MIN_S = 0.35
CED_MIN_S = 1.0
SPEECH_MIN_S = 0.3  # loud non-tonal audio this long counts as speech having been heard
MISSES_ALLOWED = 1  # one non-tonal block inside a tone (a µ-law click, a dropped frame)


@dataclass(frozen=True)
class Tone:
    kind: Literal["beep", "fax"]
    freq_hz: float
    start_s: float  # from the first sample fed
    duration_s: float

    @property
    def end_s(self) -> float:
        return self.start_s + self.duration_s


class ToneDetector:
    """Feed PCM16 as it arrives (``push``); tones come back as they are recognised."""

    def __init__(self, sample_rate: int = 16000) -> None:
        if sample_rate not in (8000, 16000):
            raise ValueError("tone detection takes 8 or 16 kHz PCM")
        self.sample_rate = sample_rate
        self.block = int(sample_rate * BLOCK_S)
        self._window = np.hanning(self.block).astype(np.float32)
        freqs = np.fft.rfftfreq(FFT_SIZE, 1.0 / sample_rate)
        self._freqs = freqs
        self._band = (freqs >= BAND_HZ[0]) & (freqs <= BAND_HZ[1])
        self._half_bins = max(1, round(PEAK_HALF_WIDTH_HZ / (sample_rate / FFT_SIZE)))
        self._pending = np.zeros(0, dtype=np.int16)
        self._blocks = 0
        self._speech_s = 0.0
        self.speech_heard = False
        # the tone in progress: first block, frequencies of its blocks, misses in a row
        self._run_start: int | None = None
        self._run_freqs: list[float] = []
        self._misses = 0
        self._fax_reported = False
        self.tones: list[Tone] = []

    @property
    def position_s(self) -> float:
        return self._blocks * BLOCK_S

    def push(self, pcm: npt.NDArray[np.int16]) -> list[Tone]:
        """Add audio; returns the tones recognised in it (usually none)."""
        buf = np.concatenate((self._pending, pcm)) if self._pending.size else pcm
        n = buf.size // self.block
        self._pending = buf[n * self.block :].copy()
        found: list[Tone] = []
        for i in range(n):
            tone = self._push_block(buf[i * self.block : (i + 1) * self.block])
            if tone is not None:
                found.append(tone)
        self.tones += found
        return found

    def finish(self) -> list[Tone]:
        """End of audio: a tone still running is judged as it stands."""
        tone = self._close_run()
        found = [tone] if tone is not None else []
        self.tones += found
        return found

    def block_features(self, block: npt.NDArray[np.int16]) -> tuple[float, float, float]:
        """(rms, peak frequency, tonality) of one block."""
        x = block.astype(np.float32)
        level = float(np.sqrt(np.mean(x * x)))
        if level < MIN_RMS:
            return level, 0.0, 0.0
        power = np.abs(np.fft.rfft(x * self._window, FFT_SIZE)) ** 2
        band = np.where(self._band, power, 0.0)
        total = float(band.sum())
        if total <= 0.0:
            return level, 0.0, 0.0
        peak = int(np.argmax(band))
        lo, hi = max(0, peak - self._half_bins), peak + self._half_bins + 1
        # interpolate the peak between bins (quadratic fit on log power)
        freq = float(self._freqs[peak])
        if 0 < peak < len(power) - 1:
            a, b, c = np.log(power[peak - 1 : peak + 2] + 1e-9)
            denom = a - 2 * b + c
            if denom != 0:
                freq += float(0.5 * (a - c) / denom) * float(self._freqs[1])
        return level, freq, float(band[lo:hi].sum()) / total

    def _push_block(self, block: npt.NDArray[np.int16]) -> Tone | None:
        index = self._blocks
        self._blocks += 1
        level, freq, tonality = self.block_features(block)
        tonal = tonality >= TONAL and level >= MIN_RMS
        if tonal and self._run_start is not None and abs(freq - self._run_freq()) > SAME_FREQ_HZ:
            ended = self._close_run()  # a new frequency: the old tone ended here
            self._open_run(index, freq)
            return ended
        if tonal:
            if self._run_start is None:
                self._open_run(index, freq)
            else:
                self._run_freqs.append(freq)
                self._misses = 0
            return self._fax_so_far()
        if level >= MIN_RMS:  # loud and not a tone: speech (or music, noise)
            self._speech_s += BLOCK_S
            if self._speech_s >= SPEECH_MIN_S:
                self.speech_heard = True
        if self._run_start is not None:
            self._misses += 1
            if self._misses > MISSES_ALLOWED:
                # a beep is followed by the recording's quiet, a tonal vowel by more speech
                return self._close_run(ended_quiet=level < MIN_RMS)
        return None

    def _open_run(self, index: int, freq: float) -> None:
        self._run_start = index
        self._run_freqs = [freq]
        self._misses = 0
        self._fax_reported = False

    def _run_freq(self) -> float:
        return float(np.median(self._run_freqs))

    def _run_duration_s(self) -> float:
        return len(self._run_freqs) * BLOCK_S

    def _fax_so_far(self) -> Tone | None:
        """A fax tone is reported while it still sounds (no need to hear it end)."""
        if self._fax_reported or self._run_start is None:
            return None
        freq, duration = self._run_freq(), self._run_duration_s()
        cng = abs(freq - CNG_HZ) <= FAX_TOLERANCE_HZ and duration >= CNG_MIN_S and not self.speech_heard
        ced = abs(freq - CED_HZ) <= FAX_TOLERANCE_HZ and duration >= CED_MIN_S
        if cng or ced:
            self._fax_reported = True
            return Tone("fax", round(freq, 1), self._run_start * BLOCK_S, duration)
        return None

    def _close_run(self, ended_quiet: bool = True) -> Tone | None:
        if self._run_start is None:
            return None
        start, freq, duration = self._run_start, self._run_freq(), self._run_duration_s()
        spread = max(self._run_freqs) - min(self._run_freqs)
        reported = self._fax_reported
        self._run_start, self._run_freqs, self._misses, self._fax_reported = None, [], 0, False
        if reported:
            return None
        if (
            self.speech_heard
            and ended_quiet
            and spread <= BEEP_SPREAD_HZ
            and BEEP_HZ[0] <= freq <= BEEP_HZ[1]
            and BEEP_MIN_S <= duration + 1e-9 <= BEEP_MAX_S
        ):
            return Tone("beep", round(freq, 1), start * BLOCK_S, duration)
        return None


def sine(
    freq_hz: float, duration_s: float, sample_rate: int = 8000, level: float = 8000.0
) -> npt.NDArray[np.int16]:
    """A steady tone as PCM16: a test signal, and the simulated counterparts' beep and fax tone."""
    t = np.arange(int(duration_s * sample_rate)) / sample_rate
    ramp = np.minimum(1.0, np.minimum(t, t[::-1] if t.size else t) / 0.005)  # 5 ms fades: no clicks
    return (np.sin(2 * np.pi * freq_hz * t) * ramp * level).astype(np.int16)
