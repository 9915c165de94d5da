"""common.audio: G.711 µ-law codec, resampling and Twilio framing."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from common import audio
from common.audio import (
    TWILIO_FRAME_BYTES,
    InboundConverter,
    OutboundConverter,
    StreamEncoder,
    StreamResampler,
    TwilioFramer,
    encode_pcm16,
    pcm16_from_bytes,
    pcm16_to_ulaw,
    resample,
    snr_db,
    ulaw_to_pcm16,
)


def tone(freq: float, rate: int, seconds: float, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (amplitude * 32767 * np.sin(2 * np.pi * freq * t)).astype(np.int16)


def band_energy_db(pcm: np.ndarray, rate: int, lo: float, hi: float) -> float:
    spec = np.abs(np.fft.rfft(pcm.astype(np.float64) * np.hanning(pcm.size))) ** 2
    freqs = np.fft.rfftfreq(pcm.size, 1 / rate)
    band = spec[(freqs >= lo) & (freqs <= hi)].sum()
    return 10 * np.log10(band / spec.sum())


def test_decode_known_codes() -> None:
    pcm = ulaw_to_pcm16(bytes([0xFF, 0x7F, 0x00, 0x80, 0xFE, 0xEF]))
    assert pcm.tolist() == [0, 0, -32124, 32124, 8, 132]


def test_codec_matches_reference_g711() -> None:
    """Same output as the C reference (CPython's audioop, still present on 3.11) for every
    µ-law code and every int16 sample, where that reference is available."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        audioop = pytest.importorskip("audioop")
    codes = bytes(range(256))
    assert ulaw_to_pcm16(codes).astype("<i2").tobytes() == audioop.ulaw2lin(codes, 2)
    every = np.arange(-32768, 32768, dtype=np.int16)
    assert pcm16_to_ulaw(every) == audioop.lin2ulaw(every.astype("<i2").tobytes(), 2)


def test_encode_decode_is_idempotent_on_codes() -> None:
    codes = np.arange(256, dtype=np.uint8)
    back = np.frombuffer(pcm16_to_ulaw(ulaw_to_pcm16(codes.tobytes())), dtype=np.uint8)
    # 0x7F is µ-law "negative zero", which re-encodes as 0xFF (positive zero).
    mismatch = np.nonzero(back != codes)[0].tolist()
    assert mismatch == [0x7F]


def test_tone_round_trip_snr_over_30_db() -> None:
    pcm = tone(1000, 8000, 1.0, amplitude=0.5)
    back = ulaw_to_pcm16(pcm16_to_ulaw(pcm))
    snr = snr_db(pcm, back)
    assert snr > 30.0, snr
    # Quiet speech-level signals keep their SNR too: that is the point of companding.
    quiet = tone(440, 8000, 1.0, amplitude=0.02)
    assert snr_db(quiet, ulaw_to_pcm16(pcm16_to_ulaw(quiet))) > 30.0


def test_resample_8k_to_16k_preserves_a_tone() -> None:
    src = tone(1000, 8000, 1.0)
    out = resample(src, 8000, 16000)
    assert out.dtype == np.int16 and out.size == 16000
    ideal = tone(1000, 16000, 1.0)
    mid = slice(800, -800)  # ignore filter edges
    assert snr_db(ideal[mid], out[mid]) > 35.0


def test_downsample_22k_to_8k_is_anti_aliased() -> None:
    # A 6 kHz tone cannot exist at 8 kHz (Nyquist 4 kHz); without a low-pass filter it would
    # fold down to 2 kHz. The resampler must remove it.
    src = tone(6000, 22050, 1.0) + tone(1000, 22050, 1.0)
    out = resample(src, 22050, 8000)
    assert abs(out.size - 8000) <= 1
    assert band_energy_db(out, 8000, 1900, 2100) < -50.0
    assert band_energy_db(out, 8000, 900, 1100) > -1.0


def test_stream_resampler_matches_one_shot() -> None:
    src = tone(700, 8000, 1.0)
    stream = StreamResampler(8000, 16000)
    parts = [stream.process(src[i : i + 160]) for i in range(0, src.size, 160)]
    parts.append(stream.flush())
    streamed = np.concatenate(parts)
    one_shot = resample(src, 8000, 16000)
    assert abs(streamed.size - one_shot.size) <= 2
    n = min(streamed.size, one_shot.size)
    assert snr_db(one_shot[800 : n - 800], streamed[800 : n - 800]) > 40.0


def test_framer_carries_partial_frames() -> None:
    framer = TwilioFramer()
    assert framer.push(b"\x01" * 100) == []
    assert framer.pending == 100
    frames = framer.push(b"\x02" * 300)
    assert [len(f) for f in frames] == [160, 160]
    assert frames[0] == b"\x01" * 100 + b"\x02" * 60
    assert framer.pending == 80
    tail = framer.flush()
    assert tail is not None and len(tail) == 160 and tail[80:] == b"\xff" * 80
    assert framer.flush() is None


def test_outbound_converter_emits_whole_twilio_frames() -> None:
    conv = OutboundConverter(22050)
    src = tone(500, 22050, 1.0)
    frames: list[bytes] = []
    for i in range(0, src.size, 1000):  # odd-sized TTS chunks
        frames += conv.convert(src[i : i + 1000])
    frames += conv.flush()
    assert all(len(f) == TWILIO_FRAME_BYTES for f in frames)
    assert abs(len(frames) - 50) <= 1  # 1 s = 50 frames of 20 ms
    decoded = ulaw_to_pcm16(b"".join(frames))
    assert band_energy_db(decoded[400:-400], 8000, 450, 550) > -1.0


@pytest.mark.parametrize("encoding", ["mulaw_8k", "pcm16_8k", "pcm16_16k", "pcm16_native"])
def test_stream_encoder_joins_pieces_as_one_buffer_would(encoding: str) -> None:
    src = tone(440, 22050, 1.0)
    whole, rate = encode_pcm16(src, 22050, encoding)
    enc = StreamEncoder(22050, encoding)
    pieces = [enc.push(src[a : a + n]) for a, n in ((0, 3307), (3307, 9000), (12307, src.size - 12307))]
    joined = b"".join(pieces) + enc.finish()
    assert enc.rate == rate
    width = 1 if encoding == "mulaw_8k" else 2
    assert abs(len(joined) - len(whole)) <= width * 160  # the tail padded to a whole 20 ms frame at most
    if encoding == "mulaw_8k":
        assert all(len(p) % TWILIO_FRAME_BYTES == 0 for p in pieces) and len(joined) % TWILIO_FRAME_BYTES == 0
        pcm = ulaw_to_pcm16(joined)
    else:
        pcm = pcm16_from_bytes(joined)
    # no seam: the tone stays one tone across the joins (a click would spread energy out of band)
    assert band_energy_db(pcm[400:-400], rate, 400, 480) > -1.0
    with pytest.raises(ValueError, match="opus"):
        StreamEncoder(22050, "opus")


def test_inbound_converter_doubles_rate() -> None:
    conv = InboundConverter()
    ulaw = pcm16_to_ulaw(tone(300, 8000, 0.4))
    out = [conv.convert(ulaw[i : i + 160]) for i in range(0, len(ulaw), 160)]
    total = sum(o.size for o in out) + conv.flush().size
    assert abs(total - 6400) <= 2


def test_bad_input_is_named() -> None:
    with pytest.raises(ValueError, match="even number of bytes"):
        pcm16_from_bytes(b"\x00\x01\x02")
    with pytest.raises(ValueError, match="unknown audio encoding 'opus'"):
        encode_pcm16(np.zeros(10, dtype=np.int16), 8000, "opus")
    with pytest.raises(ValueError, match="int16"):
        pcm16_to_ulaw(np.zeros(10, dtype=np.float32))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="sample rates"):
        resample(np.zeros(10, dtype=np.int16), 0, 8000)


def test_float_to_pcm16_cleans_nan_and_clips() -> None:
    out = audio.float_to_pcm16(np.array([np.nan, 2.0, -2.0, 0.5, np.inf], dtype=np.float32))
    assert out.tolist() == [0, 32767, -32767, 16383, 32767]


@pytest.mark.parametrize(
    "encoding,rate,nbytes",
    [
        ("mulaw_8k", 8000, 8000),
        ("pcm16_8k", 8000, 16000),
        ("pcm16_16k", 16000, 32000),
        ("pcm16_native", 22050, 44100),
    ],
)
def test_encode_pcm16_encodings(encoding: str, rate: int, nbytes: int) -> None:
    data, out_rate = encode_pcm16(tone(440, 22050, 1.0), 22050, encoding)
    assert out_rate == rate
    assert abs(len(data) - nbytes) <= 2
