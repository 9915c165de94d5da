"""In-band DTMF (touch tones): generation as µ-law 8 kHz, and a streaming detector over PCM16 8 kHz.

Pure numpy, no I/O. The keypad is the ITU-T Q.23 grid: a key is the sum of one row tone
(697, 770, 852, 941 Hz) and one column tone (1209, 1336, 1477, 1633 Hz)::

            1209  1336  1477  1633
      697     1     2     3     A
      770     4     5     6     B
      852     7     8     9     C
      941     *     0     #     D

Generation (``dtmf_ulaw``): each key is ``tone_ms`` of both tones at equal levels (no twist),
about -7 dBm0 each, followed by ``gap_ms`` of silence; ``w``/``W`` waits half a second. The
edges get a 2 ms raised-cosine ramp so keys do not click.

Detection (``DtmfDetector``): 20 ms windows every 10 ms, each scored at the eight keypad
frequencies with the single-bin DFT that the Goertzel recurrence computes (evaluated for all
windows and frequencies as one matrix product, which numpy does far faster than a per-sample
loop). A window holds a key when

- the strongest row and the strongest column tone are each above an absolute floor,
- each dominates the other tones of its group (row/column dominance),
- their levels differ by at most ``max_twist_db`` (8 dB),
- and together they carry most of the window's energy, which speech (harmonics spread over
  the band) and music never do; a lone tone fails the column/row floor or the twist check.

A key is reported once, when the same key has held for ``min_tone_ms`` (40 ms), and not again
until the line has been free of it for two windows: one digit per key press.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from common.audio import PCM16, TWILIO_SAMPLE_RATE, pcm16_to_ulaw, ulaw_to_pcm16

ROW_HZ: Final = (697.0, 770.0, 852.0, 941.0)
COL_HZ: Final = (1209.0, 1336.0, 1477.0, 1633.0)
KEYPAD: Final = ("123A", "456B", "789C", "*0#D")
KEYS: Final = frozenset("".join(KEYPAD))
PAUSE_KEYS: Final = frozenset("wW")
PAUSE_MS: Final = 500
MIN_TONE_MS: Final = 40

# A 0 dBm0 sine in G.711 µ-law peaks at 8159 / 10^(3.17/20) on the 14-bit scale (µ-law's
# overload point is +3.17 dBm0); ×4 on the int16 scale.
_DBM0_PEAK: Final = 4 * 8159 / 10 ** (3.17 / 20)
_RAMP_MS: Final = 2

_KEY_TONES: Final = {key: (ROW_HZ[r], COL_HZ[c]) for r, row in enumerate(KEYPAD) for c, key in enumerate(row)}


def _check_ms(name: str, value: int) -> None:
    if value < MIN_TONE_MS:
        raise ValueError(f"DTMF {name} must be at least {MIN_TONE_MS} ms, got {value}")


def dtmf_pcm16(
    keys: str,
    tone_ms: int = 100,
    gap_ms: int = 100,
    level_dbm0: float = -7.0,
    sample_rate: int = TWILIO_SAMPLE_RATE,
) -> PCM16:
    """The key presses ``keys`` (0-9, *, #, A-D; ``w``/``W`` = a 500 ms pause) as PCM16 samples."""
    _check_ms("tone_ms", tone_ms)
    _check_ms("gap_ms", gap_ms)
    if not -30.0 <= level_dbm0 <= -3.0:
        raise ValueError(f"DTMF level must lie in -30..-3 dBm0 per tone, got {level_dbm0}")
    bad = sorted({k for k in keys if k.upper() not in KEYS and k not in PAUSE_KEYS})
    if bad:
        raise ValueError(f"not DTMF keys: {''.join(bad)!r} (expected 0-9, *, #, A-D, w)")
    amplitude = _DBM0_PEAK * 10 ** (level_dbm0 / 20)
    n_tone = sample_rate * tone_ms // 1000
    t = np.arange(n_tone) / sample_rate
    ramp_n = min(n_tone // 2, sample_rate * _RAMP_MS // 1000)
    envelope = np.ones(n_tone)
    if ramp_n:
        ramp = 0.5 - 0.5 * np.cos(np.pi * np.arange(ramp_n) / ramp_n)
        envelope[:ramp_n] = ramp
        envelope[-ramp_n:] = ramp[::-1]
    gap = np.zeros(sample_rate * gap_ms // 1000)
    pause = np.zeros(sample_rate * PAUSE_MS // 1000)
    parts: list[npt.NDArray[np.float64]] = []
    for key in keys:
        if key in PAUSE_KEYS:
            parts.append(pause)
            continue
        low, high = _KEY_TONES[key.upper()]
        parts.append(amplitude * envelope * (np.sin(2 * np.pi * low * t) + np.sin(2 * np.pi * high * t)))
        parts.append(gap)
    if not parts:
        return np.zeros(0, dtype=np.int16)
    return np.clip(np.rint(np.concatenate(parts)), -32768, 32767).astype(np.int16)


def dtmf_ulaw(keys: str, tone_ms: int = 100, gap_ms: int = 100, level_dbm0: float = -7.0) -> bytes:
    """The key presses ``keys`` as µ-law 8 kHz bytes, ready for a Twilio media stream."""
    return pcm16_to_ulaw(dtmf_pcm16(keys, tone_ms, gap_ms, level_dbm0))


@dataclass(frozen=True)
class DtmfDetectorConfig:
    window_ms: int = 20
    hop_ms: int = 10
    min_tone_ms: int = MIN_TONE_MS
    min_level_dbm0: float = -30.0
    """Each tone at least this loud (the standard asks for detection down to about -25 dBm0)."""
    max_twist_db: float = 8.0
    dominance_db: float = 6.0
    """The strongest tone of a group stands this far above the group's next one."""
    min_tone_share: float = 0.7
    """The two tones carry at least this share of the window's energy (speech spreads wider)."""
    release_windows: int = 2


class DtmfDetector:
    """Streaming DTMF detector over PCM16 8 kHz (see the module docstring). ``push`` returns
    the keys newly pressed, in order; audio may come in pieces of any size."""

    def __init__(
        self, config: DtmfDetectorConfig | None = None, sample_rate: int = TWILIO_SAMPLE_RATE
    ) -> None:
        self.config = cfg = config or DtmfDetectorConfig()
        if cfg.hop_ms <= 0 or cfg.window_ms < cfg.hop_ms:
            raise ValueError("DTMF detector needs 0 < hop_ms <= window_ms")
        self.window = sample_rate * cfg.window_ms // 1000
        self.hop = sample_rate * cfg.hop_ms // 1000
        freqs = np.array(ROW_HZ + COL_HZ)
        n = np.arange(self.window)
        self._basis = np.exp(-2j * np.pi * np.outer(n, freqs) / sample_rate)  # window × 8
        # Windows in a row that cover min_tone_ms of audio.
        self._needed = max(1, -(-(cfg.min_tone_ms - cfg.window_ms) // cfg.hop_ms) + 1)
        self._min_amp = _DBM0_PEAK * 10 ** (cfg.min_level_dbm0 / 20)
        self._buf = np.zeros(0, dtype=np.float64)
        self._candidate: str | None = None
        self._run = 0
        self._reported: str | None = None  # the key being held, already reported
        self._free = 0  # windows in a row without the reported key

    def push(self, pcm: PCM16) -> list[str]:
        self._buf = np.concatenate([self._buf, pcm.astype(np.float64)])
        count = 0 if len(self._buf) < self.window else (len(self._buf) - self.window) // self.hop + 1
        if count == 0:
            return []
        starts = np.arange(count) * self.hop
        frames = self._buf[starts[:, None] + np.arange(self.window)]
        self._buf = self._buf[count * self.hop :]
        return [key for key in (self._step(k) for k in self._classify(frames)) if key is not None]

    def push_ulaw(self, ulaw: bytes) -> list[str]:
        return self.push(ulaw_to_pcm16(ulaw))

    def _classify(self, frames: npt.NDArray[np.float64]) -> list[str | None]:
        """The key each window holds, or None."""
        cfg = self.config
        # Amplitude of a sinusoid at each keypad frequency: 2|X(f)|/N.
        amp = 2 * np.abs(frames @ self._basis) / self.window
        power = np.mean(frames**2, axis=1)
        rows, cols = amp[:, :4], amp[:, 4:]
        r_idx, c_idx = rows.argmax(axis=1), cols.argmax(axis=1)
        r_top, c_top = np.sort(rows, axis=1), np.sort(cols, axis=1)
        r_amp, c_amp = r_top[:, -1], c_top[:, -1]
        dominance = 10 ** (cfg.dominance_db / 20)
        twist = 10 ** (cfg.max_twist_db / 20)
        share = (r_amp**2 + c_amp**2) / 2 / np.maximum(power, 1e-9)
        ok = (
            (r_amp >= self._min_amp)
            & (c_amp >= self._min_amp)
            & (r_amp >= dominance * r_top[:, -2])
            & (c_amp >= dominance * c_top[:, -2])
            & (r_amp <= twist * c_amp)
            & (c_amp <= twist * r_amp)
            & (share >= cfg.min_tone_share)
        )
        return [KEYPAD[r][c] if good else None for r, c, good in zip(r_idx, c_idx, ok, strict=True)]

    def _step(self, key: str | None) -> str | None:
        if self._reported is not None:
            if key == self._reported:
                self._free = 0
                return None
            self._free += 1
            if self._free < self.config.release_windows:
                return None
            self._reported = None
        if key is None or key != self._candidate:
            self._candidate, self._run = key, 1 if key is not None else 0
        else:
            self._run += 1
        if key is not None and self._run >= self._needed:
            self._reported, self._free, self._candidate, self._run = key, 0, None, 0
            return key
        return None

    def reset(self) -> None:
        self._buf = np.zeros(0, dtype=np.float64)
        self._candidate, self._run, self._reported, self._free = None, 0, None, 0


def detect_keys(pcm: PCM16, config: DtmfDetectorConfig | None = None) -> str:
    """Every key pressed in a whole PCM16 8 kHz buffer, in order."""
    return "".join(DtmfDetector(config).push(pcm))


def detect_keys_ulaw(ulaw: bytes, config: DtmfDetectorConfig | None = None) -> str:
    return detect_keys(ulaw_to_pcm16(ulaw), config)
