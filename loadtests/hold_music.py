"""Hold music and call-progress tones made with sox, as a phone line carries them.

A ``Tune`` is a melody (optionally over a sustained chord pad, with drums or line noise); each
note is synthesised by ``sox -n … synth`` (pluck, sine, triangle, square, sawtooth), the notes
are laid end to end and mixed with numpy, and the mix goes through sox once more for the
telephone band (300-3400 Hz at 8 kHz) before µ-law encoding. Results are cached on disk under
the simulated counterparts' speech cache (``loadtests/.speech_cache/music``, not tracked).

Two sets of tunes: ``DEV_TUNES`` (to tune ``edge/media/music.py`` on) and ``TEST_TUNES`` (other
melodies, instruments and tempos, to report on). The simulated hold counterpart plays a dev tune.
"""

from __future__ import annotations

import hashlib
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from common.audio import pcm16_to_ulaw
from loadtests.voice import DEFAULT_CACHE_DIR, keep_cached, whole_frames

SYNTH_RATE = 44100  # sox's pluck wants 44.1-48 kHz
LINE_RATE = 8000
Floats = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Tune:
    """``notes``: one entry per beat, "C4", a chord "C4+E4+G4", or "-" (a rest)."""

    name: str
    notes: tuple[str, ...]
    beat_s: float = 0.3
    instrument: str = "pluck"
    pad: str | None = None  # a chord held under the whole tune, e.g. "C3+G3"
    drums: bool = False
    noise_db: float | None = None  # line noise relative to full scale (e.g. -40)
    gain_db: float = -8.0

    def key(self) -> str:
        return hashlib.sha256(repr(self).encode()).hexdigest()[:24]


@dataclass(frozen=True)
class Tone:
    """A call-progress tone: ``freqs`` on for ``on_s``, off for ``off_s``, repeated."""

    name: str
    freqs: tuple[float, ...]
    on_s: float
    off_s: float
    gain_db: float = -12.0

    def key(self) -> str:
        return hashlib.sha256(repr(self).encode()).hexdigest()[:24]


def _melody(*bars: str) -> tuple[str, ...]:
    return tuple(" ".join(bars).split())


DEV_TUNES: tuple[Tune, ...] = (
    Tune("dev-pluck-arpeggio", _melody("C4 E4 G4 C5 G4 E4 C4 E4", "F4 A4 C5 F5 C5 A4 F4 A4"), 0.25, "pluck"),
    Tune("dev-sine-waltz", _melody("E4 - G4 A4 - G4 E4 - D4 C4 - D4 E4 - -"), 0.35, "sine", pad="C3+G3"),
    Tune("dev-square-march", _melody("G4 G4 A4 B4 B4 A4 G4 F#4 E4 E4 F#4 G4"), 0.3, "square", drums=True),
    Tune("dev-chords", _melody("C4+E4+G4 - A3+C4+E4 - F3+A3+C4 - G3+B3+D4 -"), 0.5, "triangle"),
    Tune("dev-pluck-noisy", _melody("A4 C5 E5 A5 E5 C5 B4 G#4"), 0.3, "pluck", pad="A2+E3", noise_db=-38),
    Tune(
        "dev-saw-groove",
        _melody("D4 F4 A4 F4 D4 - C4 E4 G4 E4 C4 -"),
        0.22,
        "sawtooth",
        drums=True,
        noise_db=-45,
    ),
    Tune("dev-sparse-stabs", _melody("D4+F4+A4 - - - G3+B3+D4 - - -"), 0.3, "square", noise_db=-36),
)
TEST_TUNES: tuple[Tune, ...] = (
    Tune("test-pluck-lullaby", _melody("G4 E4 - G4 E4 - A4 G4 F4 E4 D4 - -"), 0.4, "pluck", pad="C3+E3"),
    Tune("test-sine-scale", _melody("C5 B4 A4 G4 F4 E4 D4 C4 D4 E4 F4 G4"), 0.2, "sine", drums=True),
    Tune(
        "test-tri-pad", _melody("E4+G#4+B4 - - C#4+E4+A4 - - B3+D#4+F#4 - -"), 0.45, "triangle", noise_db=-40
    ),
    Tune("test-square-jingle", _melody("C5 C5 G4 G4 A4 A4 G4 - F4 F4 E4 E4 D4 D4 C4 -"), 0.26, "square"),
    Tune("test-saw-minor", _melody("A3 C4 E4 A4 G4 E4 C4 D4"), 0.33, "sawtooth", pad="A2", drums=True),
    Tune(
        "test-organ-hymn",
        _melody("F3+A3+C4 F3+A3+C4 - B3+D4+F4 - C4+E4+G4 C4+E4+G4 -"),
        0.6,
        "sine",
        noise_db=-42,
    ),
    Tune("test-pluck-bossa", _melody("E4 - G4 B4 - A4 - F#4 D4 - E4 -"), 0.18, "pluck", drums=True),
)
DEV_TONES: tuple[Tone, ...] = (
    Tone("us-ringback", (440.0, 480.0), 2.0, 4.0),
    Tone("us-busy", (480.0, 620.0), 0.5, 0.5),
    Tone("beep-every-2s", (850.0,), 0.25, 1.75),
)
TEST_TONES: tuple[Tone, ...] = (
    Tone("uk-ringback", (400.0, 450.0), 0.4, 0.2),
    Tone("beep-every-3s", (1000.0,), 0.3, 2.7),
    Tone("call-waiting", (440.0,), 0.3, 9.7),
)


_SCALE_NOTES = ("C", "D", "E", "F", "G", "A", "B")
_INSTRUMENTS = ("pluck", "sine", "triangle", "square", "sawtooth")


def random_tunes(seed: int, count: int) -> tuple[Tune, ...]:
    """``count`` tunes drawn from ``seed``: melodies or chord changes in C major, 0.15-0.6 s a
    beat, any instrument, with or without a pad, drums and line noise."""
    rng = np.random.default_rng(seed)
    tunes = []
    for i in range(count):
        beats = []
        for _ in range(int(rng.integers(6, 17))):
            if rng.random() < 0.15:
                beats.append("-")
                continue
            root = int(rng.integers(0, 7))
            octave = int(rng.integers(3, 6))
            size = 3 if rng.random() < 0.25 else 1
            steps = [root + 2 * k for k in range(size)]  # a triad on the scale, or one note
            beats.append("+".join(f"{_SCALE_NOTES[s % 7]}{octave + s // 7}" for s in steps))
        tunes.append(
            Tune(
                f"random-{seed}-{i}",
                tuple(beats),
                round(float(rng.uniform(0.15, 0.6)), 2),
                str(rng.choice(_INSTRUMENTS)),
                pad=str(rng.choice(["C3+G3", "A2+E3", "F2+C3"])) if rng.random() < 0.4 else None,
                drums=bool(rng.random() < 0.4),
                noise_db=round(float(rng.uniform(-50, -35)), 1) if rng.random() < 0.4 else None,
            )
        )
    return tuple(tunes)


class HoldMusic:
    """µ-law 8 kHz audio of tunes and tones, ``seconds`` long (looped), cached on disk."""

    def __init__(self, cache_dir: Path | None = None) -> None:
        self.cache_dir = (cache_dir or DEFAULT_CACHE_DIR) / "music"
        self._notes: dict[tuple[str, str, float], Floats] = {}

    def mulaw(self, item: Tune | Tone, seconds: float) -> bytes:
        path = self.cache_dir / f"{item.key()}-{seconds:g}.ulaw"
        if path.exists():
            return path.read_bytes()
        audio = whole_frames(pcm16_to_ulaw(self._line(self._render(item, seconds))))
        keep_cached(path, audio)
        return audio

    def _render(self, item: Tune | Tone, seconds: float) -> Floats:
        n = int(seconds * SYNTH_RATE)
        if isinstance(item, Tone):
            return _loop(self._tone(item), n)
        beats = [self._note(item.instrument, note, item.beat_s) for note in item.notes]
        mix = _loop(np.concatenate(beats), n)
        if item.pad is not None:
            mix += 0.5 * _loop(self._note("sine", item.pad, 4.0, fade=False), n)
        if item.drums:
            mix += _loop(self._drum_bar(item.beat_s), n)
        mix *= 10 ** (item.gain_db / 20) / max(1e-9, float(np.max(np.abs(mix))))
        if item.noise_db is not None:
            rng = np.random.default_rng(int(item.key()[:8], 16))
            mix += rng.normal(0.0, 10 ** (item.noise_db / 20), n)
        return mix

    def _note(self, instrument: str, note: str, seconds: float, fade: bool = True) -> Floats:
        key = (instrument, note, seconds)
        if key not in self._notes:
            if note == "-":
                self._notes[key] = np.zeros(int(seconds * SYNTH_RATE))
            else:
                synth = [part for pitch in note.split("+") for part in (instrument, pitch)]
                shape = ["fade", "h", "0.01", str(seconds), str(min(0.08, seconds / 3))] if fade else []
                self._notes[key] = _sox_synth([f"{seconds}", *synth], shape)
        return self._notes[key]

    def _drum_bar(self, beat_s: float) -> Floats:
        """Kick on beats 1 and 3, snare on 2 and 4, a hat every half beat."""
        kick = _sox_synth(["0.15", "sine", "90-40"], ["fade", "q", "0", "0.15", "0.12"])
        snare = _sox_synth(["0.12", "whitenoise"], ["fade", "q", "0", "0.12", "0.11", "vol", "0.5"])
        hat_shape = ["highpass", "3000", "fade", "q", "0", "0.04", "0.03", "vol", "0.3"]
        hat = _sox_synth(["0.04", "whitenoise"], hat_shape)
        step = int(beat_s * SYNTH_RATE)
        bar = np.zeros(4 * step)
        for beat in range(4):
            hit = kick if beat % 2 == 0 else snare
            bar[beat * step : beat * step + hit.size] += hit[:step]
            for half in (0, step // 2):
                at = beat * step + half
                bar[at : at + hat.size] += hat[: bar.size - at]
        return 0.6 * bar

    def _tone(self, tone: Tone) -> Floats:
        t = np.arange(int(tone.on_s * SYNTH_RATE)) / SYNTH_RATE
        on = sum(np.sin(2 * np.pi * f * t) for f in tone.freqs) / len(tone.freqs)
        cycle = np.concatenate([on, np.zeros(int(tone.off_s * SYNTH_RATE))])
        return np.asarray(cycle * 10 ** (tone.gain_db / 20), dtype=np.float64)

    @staticmethod
    def _line(mix: Floats) -> npt.NDArray[np.int16]:
        """The telephone band: sox 300-3400 Hz band-pass, resampled to 8 kHz."""
        raw = (np.clip(mix, -1.0, 1.0) * 32767).astype("<i2").tobytes()
        fmt = ["-t", "raw", "-e", "signed", "-b", "16", "-c", "1"]
        cmd = ["sox", *fmt, "-r", str(SYNTH_RATE), "-", *fmt, "-r", str(LINE_RATE), "-", "sinc", "300-3400"]
        out = subprocess.run(cmd, input=raw, check=True, capture_output=True).stdout
        return np.frombuffer(out, dtype="<i2").astype(np.int16)


def _sox_synth(synth: list[str], effects: list[str]) -> Floats:
    fmt = ["-t", "raw", "-e", "signed", "-b", "16", "-c", "1", "-r", str(SYNTH_RATE)]
    cmd = ["sox", "-n", *fmt, "-", "synth", *synth, *effects]
    out = subprocess.run(cmd, check=True, capture_output=True).stdout
    return np.frombuffer(out, dtype="<i2").astype(np.float64) / 32768.0


def _loop(part: Floats, n: int) -> Floats:
    reps = -(-n // max(1, part.size))
    return np.tile(part, reps)[:n].astype(np.float64)
