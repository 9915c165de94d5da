"""Telephony audio plumbing: G.711 µ-law codec, resampling and Twilio framing.

Pure numpy + soxr (no ``audioop``, which is gone from Python 3.13; no per-sample Python
loops). Twilio Media Streams carry µ-law, 8 kHz, mono, in 20 ms / 160-byte frames; Whisper
wants PCM16 at 16 kHz; the bundled Piper voice speaks at 22.05 kHz.

- ``ulaw_to_pcm16`` / ``pcm16_to_ulaw``: table-driven G.711 µ-law (bit-exact with the
  ITU/Sun g711.c reference that ``audioop`` used: 14-bit magnitude, bias 0x84). A full
  65,536-entry encode table makes encoding one fancy-indexing op.
- ``resample``: one-shot, anti-aliased (soxr "HQ" by default) for whole utterances.
- ``StreamResampler``: stateful soxr stream for frame-by-frame use, so 20 ms frames resample
  without edge clicks (the filter state carries across frames).
- ``InboundConverter`` (µ-law 8 kHz frames → PCM16 16 kHz) and ``OutboundConverter`` (PCM16 at
  any rate → whole 160-byte µ-law frames, partial frame carried to the next call).
- ``StreamEncoder``: pieces of one utterance to any transport encoding, seamless across pieces.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt
import soxr

TWILIO_SAMPLE_RATE: Final = 8000
TWILIO_FRAME_MS: Final = 20
TWILIO_FRAME_BYTES: Final = TWILIO_SAMPLE_RATE * TWILIO_FRAME_MS // 1000  # 160 µ-law bytes
STT_SAMPLE_RATE: Final = 16000
ULAW_SILENCE: Final = 0xFF  # µ-law code of PCM 0

PCM16 = npt.NDArray[np.int16]

_BIAS: Final = 0x84
_CLIP14: Final = 8159
_SEG_UEND: Final = np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF])


def _build_decode_table() -> PCM16:
    u = ~np.arange(256, dtype=np.int32) & 0xFF
    t = (((u & 0x0F) << 3) + _BIAS) << ((u & 0x70) >> 4)
    return np.where(u & 0x80, _BIAS - t, t - _BIAS).astype(np.int16)


def _build_encode_table() -> npt.NDArray[np.uint8]:
    # Sun/ITU g711.c linear2ulaw on the 14-bit magnitude, indexed by the int16 sample
    # reinterpreted as uint16 (negative samples land at 32768+).
    x = np.arange(65536, dtype=np.int32)
    x = np.where(x >= 32768, x - 65536, x) >> 2
    mask = np.where(x < 0, 0x7F, 0xFF)
    mag = np.minimum(np.abs(x), _CLIP14) + (_BIAS >> 2)
    seg = np.searchsorted(_SEG_UEND, mag, side="left")
    uval = np.where(seg >= 8, 0x7F, (seg << 4) | ((mag >> (seg + 1)) & 0x0F))
    return ((uval ^ mask) & 0xFF).astype(np.uint8)


_DECODE: Final = _build_decode_table()
_ENCODE: Final = _build_encode_table()


def pcm16_from_bytes(data: bytes | bytearray | memoryview) -> PCM16:
    """View little-endian PCM16 bytes as int16 samples (zero-copy). Odd length is an error."""
    if len(data) % 2:
        raise ValueError(f"PCM16 audio must have an even number of bytes, got {len(data)}")
    return np.frombuffer(data, dtype="<i2")


def ulaw_to_pcm16(data: bytes | bytearray | memoryview) -> PCM16:
    """Decode G.711 µ-law bytes to int16 samples (same rate)."""
    return _DECODE[np.frombuffer(data, dtype=np.uint8)]


def pcm16_to_ulaw(pcm: PCM16 | bytes) -> bytes:
    """Encode int16 samples (or PCM16 LE bytes) to G.711 µ-law bytes (same rate)."""
    samples = pcm16_from_bytes(pcm) if isinstance(pcm, bytes | bytearray | memoryview) else pcm
    if samples.dtype != np.int16:
        raise ValueError(f"pcm16_to_ulaw expects int16 samples, got {samples.dtype}")
    return _ENCODE[samples.view(np.uint16)].tobytes()


def float_to_pcm16(audio: npt.NDArray[np.floating]) -> PCM16:
    """Float audio in [-1, 1] to int16; NaN/inf become 0 and out-of-range values are clipped."""
    clean = np.nan_to_num(audio.astype(np.float32, copy=False), nan=0.0, posinf=1.0, neginf=-1.0)
    return (np.clip(clean, -1.0, 1.0) * 32767.0).astype(np.int16)


def pcm16_to_float(pcm: PCM16) -> npt.NDArray[np.float32]:
    return pcm.astype(np.float32) / 32768.0


def resample(pcm: PCM16, src_rate: int, dst_rate: int, quality: str = "HQ") -> PCM16:
    """One-shot anti-aliased resampling of a whole buffer (soxr)."""
    if src_rate <= 0 or dst_rate <= 0:
        raise ValueError(f"sample rates must be positive, got {src_rate} -> {dst_rate}")
    if src_rate == dst_rate or pcm.size == 0:
        return pcm
    return np.asarray(soxr.resample(pcm, src_rate, dst_rate, quality=quality), dtype=np.int16)


class StreamResampler:
    """Frame-by-frame resampler that keeps filter state across calls.

    soxr delays output by its filter length at the start; call ``process(..., last=True)``
    (or ``flush``) at the end of a stream to get the tail.
    """

    def __init__(self, src_rate: int, dst_rate: int, quality: str = "HQ") -> None:
        self.src_rate = src_rate
        self.dst_rate = dst_rate
        self._passthrough = src_rate == dst_rate
        self._stream = (
            None
            if self._passthrough
            else soxr.ResampleStream(src_rate, dst_rate, 1, dtype="int16", quality=quality)
        )

    def process(self, pcm: PCM16, last: bool = False) -> PCM16:
        if self._stream is None:
            return pcm
        return np.asarray(self._stream.resample_chunk(pcm, last=last), dtype=np.int16)

    def flush(self) -> PCM16:
        return self.process(np.zeros(0, dtype=np.int16), last=True)


class TwilioFramer:
    """Cuts a µ-law byte stream into whole 160-byte (20 ms) Twilio frames.

    A trailing partial frame is carried over to the next ``push``; ``flush`` pads it with
    µ-law silence so the last syllable is not dropped.
    """

    def __init__(self, frame_bytes: int = TWILIO_FRAME_BYTES) -> None:
        self.frame_bytes = frame_bytes
        self._carry = b""

    @property
    def pending(self) -> int:
        return len(self._carry)

    def push(self, data: bytes) -> list[bytes]:
        buf = self._carry + data
        n = len(buf) // self.frame_bytes * self.frame_bytes
        self._carry = buf[n:]
        return [buf[i : i + self.frame_bytes] for i in range(0, n, self.frame_bytes)]

    def flush(self, pad: bool = True) -> bytes | None:
        if not self._carry:
            return None
        tail = self._carry
        self._carry = b""
        if pad:
            tail += bytes([ULAW_SILENCE]) * (self.frame_bytes - len(tail))
        return tail


class InboundConverter:
    """Twilio → models: µ-law 8 kHz frames to PCM16 at ``dst_rate`` (16 kHz for Whisper)."""

    def __init__(self, dst_rate: int = STT_SAMPLE_RATE, quality: str = "HQ") -> None:
        self._resampler = StreamResampler(TWILIO_SAMPLE_RATE, dst_rate, quality)

    def convert(self, ulaw: bytes) -> PCM16:
        return self._resampler.process(ulaw_to_pcm16(ulaw))

    def convert_pcm(self, pcm8k: PCM16) -> PCM16:
        """The same for audio already decoded to PCM16 8 kHz (and cleaned there)."""
        return self._resampler.process(pcm8k)

    def flush(self) -> PCM16:
        return self._resampler.flush()


class OutboundConverter:
    """Models → Twilio: PCM16 at ``src_rate`` to whole 160-byte µ-law 8 kHz frames."""

    def __init__(self, src_rate: int, quality: str = "HQ") -> None:
        self._resampler = StreamResampler(src_rate, TWILIO_SAMPLE_RATE, quality)
        self._framer = TwilioFramer()

    def convert(self, pcm: PCM16) -> list[bytes]:
        return self._framer.push(pcm16_to_ulaw(self._resampler.process(pcm)))

    def flush(self) -> list[bytes]:
        frames = self._framer.push(pcm16_to_ulaw(self._resampler.flush()))
        tail = self._framer.flush()
        return frames + ([tail] if tail else [])


def encode_pcm16(pcm: PCM16, src_rate: int, encoding: str) -> tuple[bytes, int]:
    """Convert a whole PCM16 buffer to one of the transport encodings.

    ``encoding``: ``mulaw_8k`` (Twilio), ``pcm16_8k``, ``pcm16_16k`` or ``pcm16_native``
    (unchanged rate). Returns ``(audio bytes, sample rate)``.
    """
    if encoding == "mulaw_8k":
        return pcm16_to_ulaw(resample(pcm, src_rate, TWILIO_SAMPLE_RATE)), TWILIO_SAMPLE_RATE
    if encoding == "pcm16_8k":
        return resample(pcm, src_rate, 8000).astype("<i2").tobytes(), 8000
    if encoding == "pcm16_16k":
        return resample(pcm, src_rate, 16000).astype("<i2").tobytes(), 16000
    if encoding == "pcm16_native":
        return pcm.astype("<i2").tobytes(), src_rate
    raise ValueError(
        f"unknown audio encoding {encoding!r}; expected one of mulaw_8k, pcm16_8k, pcm16_16k, pcm16_native"
    )


ENCODINGS: Final = ("mulaw_8k", "pcm16_8k", "pcm16_16k", "pcm16_native")


class StreamEncoder:
    """Pieces of one utterance (PCM16 at ``src_rate``) to one of ``ENCODINGS``, resampled with
    state carried across pieces so the joins are seamless. For ``mulaw_8k`` every push returns
    whole 20 ms frames (the rest waits for the next piece); ``finish`` returns the tail, µ-law
    padded to a whole frame."""

    def __init__(self, src_rate: int, encoding: str) -> None:
        if encoding not in ENCODINGS:
            raise ValueError(f"unknown audio encoding {encoding!r}; expected one of {', '.join(ENCODINGS)}")
        self.encoding = encoding
        rates = {"mulaw_8k": TWILIO_SAMPLE_RATE, "pcm16_8k": 8000, "pcm16_16k": 16000}
        self.rate = rates.get(encoding, src_rate)
        self._ulaw = OutboundConverter(src_rate) if encoding == "mulaw_8k" else None
        self._pcm = StreamResampler(src_rate, self.rate)

    def push(self, pcm: PCM16) -> bytes:
        if self._ulaw is not None:
            return b"".join(self._ulaw.convert(pcm))
        return self._pcm.process(pcm).astype("<i2").tobytes()

    def finish(self) -> bytes:
        if self._ulaw is not None:
            return b"".join(self._ulaw.flush())
        return self._pcm.flush().astype("<i2").tobytes()


def bytes_per_second(encoding: str, native_rate: int) -> int:
    rates = {"mulaw_8k": 8000, "pcm16_8k": 16000, "pcm16_16k": 32000, "pcm16_native": 2 * native_rate}
    return rates[encoding]


def snr_db(reference: npt.NDArray[np.number], test: npt.NDArray[np.number]) -> float:
    """Signal-to-noise ratio of ``test`` against ``reference`` (same length) in dB."""
    ref = reference.astype(np.float64)
    err = ref - test.astype(np.float64)
    noise = float(np.sum(err * err))
    if noise == 0.0:
        return float("inf")
    return 10.0 * float(np.log10(float(np.sum(ref * ref)) / noise))
