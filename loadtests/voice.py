"""Simulated counterparts' voices → µ-law 8 kHz frames, cached by voice and text.

- ``PersonaVoice``: Piper with the bundled en_US-joe-medium voice, the agent's own voice.
- ``EspeakVoice``: a SYNTHETIC stand-in for a real caller's voice, unlike the agent's:
  espeak-ng (formant synthesis, several English variants) through a telephone band.

Both give whole 20 ms frames with the leading/trailing silence trimmed, cached in memory and
on disk (``VOXRAY_SIM_SPEECH_CACHE``, default ``loadtests/.speech_cache``, not tracked by git).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import threading
import uuid
from pathlib import Path
from typing import ClassVar

import numpy as np

from common.audio import TWILIO_FRAME_BYTES, ULAW_SILENCE, encode_pcm16, float_to_pcm16, pcm16_to_ulaw

logger = logging.getLogger("voxray.simulated_caller")

DEFAULT_CACHE_DIR = Path(
    os.environ.get("VOXRAY_SIM_SPEECH_CACHE", Path(__file__).resolve().parent / ".speech_cache")
)
SILENCE_FRAME = bytes([ULAW_SILENCE]) * TWILIO_FRAME_BYTES


class CachedVoice:
    """``mulaw(text)`` from a subclass's ``_synthesise``, cached by ``key_prefix`` + text."""

    key_prefix = ""

    def __init__(self, cache_dir: Path | None = None) -> None:
        self.cache_dir = cache_dir or DEFAULT_CACHE_DIR
        self._memory: dict[str, bytes] = {}

    def _synthesise(self, text: str) -> bytes:
        """µ-law 8 kHz speech for ``text``, silence trimmed."""
        raise NotImplementedError

    def mulaw(self, text: str) -> bytes:
        """µ-law 8 kHz speech for ``text``, a whole number of 20 ms frames."""
        key = hashlib.sha256((self.key_prefix + text).encode()).hexdigest()[:32]
        cached = self._memory.get(key)
        if cached is not None:
            return cached
        path = self.cache_dir / f"{key}.ulaw"
        if path.exists():
            audio = path.read_bytes()
        else:
            audio = whole_frames(self._synthesise(text))
            keep_cached(path, audio)
        self._memory[key] = audio
        return audio


def whole_frames(mulaw: bytes) -> bytes:
    """``mulaw`` padded with line silence to a whole number of 20 ms frames."""
    return mulaw + bytes([ULAW_SILENCE]) * (-len(mulaw) % TWILIO_FRAME_BYTES)


def keep_cached(path: Path, audio: bytes) -> None:
    """Write a generated clip to the on-disk cache (atomically: runs may share the folder)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{uuid.uuid4().hex[:6]}.tmp")
        tmp.write_bytes(audio)
        tmp.replace(path)
    except OSError as exc:  # a read-only checkout still works, just slower
        logger.debug("audio cache not writable: %s", exc)


class PersonaVoice(CachedVoice):
    """Piper (the bundled en_US-joe-medium voice) → µ-law 8 kHz, cached by text."""

    _instances: ClassVar[dict[tuple[str | None, float], PersonaVoice]] = {}
    _lock = threading.Lock()

    def __init__(
        self, voice_path: str | None = None, length_scale: float = 1.0, cache_dir: Path | None = None
    ) -> None:
        import onnxruntime
        from piper import PiperVoice
        from piper.config import PiperConfig

        from services.model_paths import piper_voice_files

        super().__init__(cache_dir)
        model, config = piper_voice_files(voice_path)
        opts = onnxruntime.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        self.voice = PiperVoice(
            config=PiperConfig.from_dict(json.loads(Path(config).read_text(encoding="utf-8"))),
            session=onnxruntime.InferenceSession(
                str(model), sess_options=opts, providers=["CPUExecutionProvider"]
            ),
        )
        self.length_scale = length_scale
        self.sample_rate = int(self.voice.config.sample_rate)
        self.key_prefix = f"{Path(model).name}|{length_scale}|trimmed|"
        self._synth_lock = threading.Lock()

    @classmethod
    def shared(cls, voice_path: str | None = None, length_scale: float = 1.0) -> PersonaVoice:
        with cls._lock:
            key = (voice_path, length_scale)
            if key not in cls._instances:
                cls._instances[key] = cls(voice_path, length_scale)
            return cls._instances[key]

    def pcm(self, text: str) -> tuple[np.ndarray, int]:
        """Raw Piper output (int16, native rate): no cache."""
        from piper.config import SynthesisConfig

        cfg = SynthesisConfig(length_scale=self.length_scale)
        with self._synth_lock:
            parts = [float_to_pcm16(c.audio_float_array) for c in self.voice.synthesize(text, syn_config=cfg)]
        return (np.concatenate(parts) if parts else np.zeros(0, dtype=np.int16)), self.sample_rate

    def _synthesise(self, text: str) -> bytes:
        pcm, rate = self.pcm(text)
        audio, _ = encode_pcm16(_trim_silence(pcm, rate), rate, "mulaw_8k")
        return audio


# espeak-ng voice (language+variant) and words per minute; one is picked per counterpart.
ESPEAK_VOICES: list[tuple[str, int]] = [
    ("en-us", 160),
    ("en-gb", 155),
    ("en-us+m3", 165),
    ("en-us+f2", 160),
    ("en-gb-x-rp+f3", 150),
    ("en-us+m7", 170),
]


class EspeakVoice(CachedVoice):
    """A SYNTHETIC voice standing in for a real caller: espeak-ng (formant synthesis, nothing
    like the agent's Piper voice) through a telephone band (sox 300-3400 Hz at 8 kHz), µ-law."""

    def __init__(self, voice: str = "en-us", wpm: int = 160, cache_dir: Path | None = None) -> None:
        super().__init__(cache_dir)
        self.voice = voice
        self.wpm = wpm
        self.key_prefix = f"espeak-ng|{voice}|{wpm}|phone|trimmed|"

    @classmethod
    def for_name(cls, name: str) -> EspeakVoice:
        """The same voice for the same counterpart, every run."""
        voice, wpm = ESPEAK_VOICES[int(hashlib.sha256(name.encode()).hexdigest(), 16) % len(ESPEAK_VOICES)]
        return cls(voice, wpm)

    def _synthesise(self, text: str) -> bytes:
        pcm = telephone_band(espeak_wav(text, self.voice, self.wpm))
        return pcm16_to_ulaw(_trim_silence(pcm, 8000))


def espeak_wav(text: str, voice: str, wpm: int) -> bytes:
    """espeak-ng's WAV (22.05 kHz) of ``text``."""
    cmd = ["espeak-ng", "-v", voice, "-s", str(wpm), "--stdout", text]
    return subprocess.run(cmd, check=True, capture_output=True).stdout


def telephone_band(wav: bytes) -> np.ndarray:
    """A WAV through sox: 300-3400 Hz band-pass at 8 kHz, int16 mono."""
    cmd = ["sox", "-t", "wav", "-", "-t", "raw", "-e", "signed", "-b", "16", "-c", "1", "-r", "8000"]
    raw = subprocess.run([*cmd, "-", "sinc", "300-3400"], input=wav, check=True, capture_output=True).stdout
    return np.frombuffer(raw, dtype="<i2").astype(np.int16)


def _trim_silence(pcm: np.ndarray, rate: int, threshold: float = 200.0) -> np.ndarray:
    """Drop leading/trailing near-silence (10 ms RMS below ``threshold``) so the last
    frame of a line is its last speech, which voice-to-voice latency is measured from."""
    win = rate // 100
    n = pcm.size // win
    if n == 0:
        return pcm
    rms = np.sqrt(np.mean(pcm[: n * win].astype(np.float64).reshape(n, win) ** 2, axis=1))
    loud = np.flatnonzero(rms >= threshold)
    if loud.size == 0:
        return pcm
    return pcm[loud[0] * win : (loud[-1] + 1) * win]


def frames_of(mulaw: bytes) -> list[bytes]:
    pad = -len(mulaw) % TWILIO_FRAME_BYTES
    data = mulaw + bytes([ULAW_SILENCE]) * pad
    return [data[i : i + TWILIO_FRAME_BYTES] for i in range(0, len(data), TWILIO_FRAME_BYTES)]
