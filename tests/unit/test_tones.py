"""Tone detection over streamed PCM: a voicemail beep after speech, fax tones, and no tone in
speech or before anyone spoke."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from edge.media.tones import Tone, ToneDetector, sine


def voice(seconds: float, rate: int, seed: int = 1) -> npt.NDArray[np.int16]:
    """A voice-like signal: a wavering pitch with many harmonics, plus breath noise."""
    t = np.arange(int(seconds * rate)) / rate
    f0 = 130 + 25 * np.sin(2 * np.pi * 2.5 * t)
    phase = 2 * np.pi * np.cumsum(f0) / rate
    x = sum(np.sin(k * phase) / k for k in range(1, 25)) * 3000
    noise = np.random.default_rng(seed).normal(0, 300, t.size)
    return np.asarray(x + noise).astype(np.int16)


def quiet(seconds: float, rate: int) -> npt.NDArray[np.int16]:
    return np.zeros(int(seconds * rate), dtype=np.int16)


def stream(signal: npt.NDArray[np.int16], rate: int) -> tuple[ToneDetector, list[Tone]]:
    detector = ToneDetector(rate)
    frame = rate // 50  # 20 ms frames, as the media stream hands them on
    found = [tone for i in range(0, signal.size, frame) for tone in detector.push(signal[i : i + frame])]
    return detector, found + detector.finish()


@pytest.mark.parametrize("rate", [8000, 16000])
@pytest.mark.parametrize("freq", [440.0, 1000.0, 1400.0, 2000.0])
def test_a_beep_after_a_greeting(rate: int, freq: float) -> None:
    signal = np.concatenate([voice(1.5, rate), quiet(0.3, rate), sine(freq, 0.4, rate), quiet(0.5, rate)])
    _, tones = stream(signal, rate)
    assert [t.kind for t in tones] == ["beep"]
    assert abs(tones[0].freq_hz - freq) < 20
    assert 0.35 <= tones[0].duration_s <= 0.5
    assert 1.7 <= tones[0].start_s <= 1.9


def test_a_short_blip_or_a_tone_before_speech_is_no_beep() -> None:
    rate = 8000
    blip = np.concatenate([voice(1.0, rate), sine(1000, 0.08, rate), quiet(0.3, rate)])
    assert stream(blip, rate)[1] == []
    before_speech = np.concatenate([sine(1000, 0.4, rate), quiet(0.3, rate)])
    assert stream(before_speech, rate)[1] == []


def test_speech_alone_has_no_tone() -> None:
    detector, tones = stream(voice(4.0, 16000, seed=3), 16000)
    assert tones == [] and detector.speech_heard


@pytest.mark.parametrize("rate", [8000, 16000])
def test_fax_calling_tone_cng(rate: int) -> None:
    signal = np.concatenate([quiet(0.5, rate), sine(1100, 0.5, rate), quiet(1.0, rate)])
    _, tones = stream(signal, rate)
    assert [t.kind for t in tones] == ["fax"] and abs(tones[0].freq_hz - 1100) < 20


def test_fax_answer_tone_ced_is_reported_while_it_sounds() -> None:
    rate = 8000
    detector = ToneDetector(rate)
    signal = np.concatenate([quiet(0.2, rate), sine(2100, 3.0, rate)])
    frame = rate // 50
    for i in range(0, signal.size, frame):
        if detector.push(signal[i : i + frame]):
            heard_at = (i + frame) / rate
            break
    else:
        pytest.fail("no fax tone")
    assert heard_at < 1.4  # about 1 s into the 3 s tone, not at its end


def test_only_8_or_16_khz() -> None:
    with pytest.raises(ValueError, match="8 or 16 kHz"):
        ToneDetector(44100)
