"""In-band DTMF: generated key presses decode back to the same keys; speech and lone tones do not."""

from __future__ import annotations

import numpy as np
import pytest

from common.audio import pcm16_to_ulaw, ulaw_to_pcm16
from common.dtmf import (
    COL_HZ,
    KEYPAD,
    ROW_HZ,
    DtmfDetector,
    detect_keys,
    detect_keys_ulaw,
    dtmf_pcm16,
    dtmf_ulaw,
)

RATE = 8000


def tone(freqs: list[tuple[float, float]], seconds: float) -> np.ndarray:
    t = np.arange(int(RATE * seconds)) / RATE
    return sum(amp * np.sin(2 * np.pi * f * t) for f, amp in freqs)  # type: ignore[return-value]


@pytest.mark.parametrize("key", list("0123456789*#ABCD"))
def test_every_key_round_trips_through_ulaw(key: str) -> None:
    assert detect_keys_ulaw(dtmf_ulaw(key)) == key


def test_a_digit_string_round_trips_in_twilio_sized_frames() -> None:
    audio = dtmf_ulaw("1234567893#")
    detector = DtmfDetector()
    found: list[str] = []
    for start in range(0, len(audio), 160):
        found += detector.push_ulaw(audio[start : start + 160])
    assert "".join(found) == "1234567893#"


def test_repeated_keys_at_the_shortest_timing_are_each_reported_once() -> None:
    assert detect_keys_ulaw(dtmf_ulaw("11w22*", tone_ms=40, gap_ms=40)) == "1122*"


def test_the_tones_are_the_q23_pairs_at_equal_levels_near_minus_7_dbm0() -> None:
    pcm = dtmf_pcm16("5").astype(np.float64)[40:760]  # the steady part of the 100 ms tone
    n = np.arange(pcm.size)

    def level(f: float) -> float:
        return float(2 * abs(np.sum(pcm * np.exp(-2j * np.pi * f * n / RATE))) / pcm.size)

    levels = {f: level(f) for f in (*ROW_HZ, *COL_HZ)}
    row, col = levels[ROW_HZ[1]], levels[COL_HZ[1]]  # "5": 770 + 1336 Hz
    assert KEYPAD[1][1] == "5"
    assert abs(20 * np.log10(row / col)) < 0.5  # no twist
    others = [v for f, v in levels.items() if f not in (ROW_HZ[1], COL_HZ[1])]
    assert max(others) < 0.05 * row
    zero_dbm0_peak = 4 * 8159 / 10 ** (3.17 / 20)
    assert 20 * np.log10(row / zero_dbm0_peak) == pytest.approx(-7.0, abs=0.5)


def test_timing_and_pause_lengths() -> None:
    assert len(dtmf_pcm16("1")) == 1600  # 100 ms tone + 100 ms gap
    assert len(dtmf_pcm16("1w")) == 1600 + 4000  # w waits half a second
    assert len(dtmf_pcm16("12", tone_ms=50, gap_ms=60)) == 2 * 880
    silent = dtmf_pcm16("1w")[1600:]
    assert not silent.any()


@pytest.mark.parametrize(
    "keys,kwargs",
    [("1x", {}), ("1", {"tone_ms": 30}), ("1", {"gap_ms": 20}), ("1", {"level_dbm0": 3.0})],
)
def test_bad_requests_are_clear_errors(keys: str, kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        dtmf_ulaw(keys, **kwargs)  # type: ignore[arg-type]


def test_a_tone_shorter_than_40_ms_is_no_key() -> None:
    short = dtmf_pcm16("7", tone_ms=40, gap_ms=40)[:240]  # 30 ms of tone
    assert detect_keys(short) == ""


def test_single_tones_are_not_keys() -> None:
    for f in (*ROW_HZ, *COL_HZ):
        assert detect_keys(tone([(f, 8000)], 0.5).astype(np.int16)) == ""


def test_too_much_twist_is_no_key() -> None:
    twisted = tone([(ROW_HZ[0], 8000), (COL_HZ[0], 8000 * 10 ** (-12 / 20))], 0.3)  # 12 dB apart
    assert detect_keys(twisted.astype(np.int16)) == ""


def test_speech_like_sound_and_noise_are_not_keys() -> None:
    rng = np.random.default_rng(7)
    t = np.arange(RATE * 3) / RATE
    for f0_mean in (95.0, 140.0, 210.0):  # voiced harmonics with a gliding pitch, several voices
        f0 = f0_mean + 25 * np.sin(2 * np.pi * 2.5 * t)
        phase = 2 * np.pi * np.cumsum(f0) / RATE
        voiced = sum((6000 / h) * np.sin(h * phase) for h in range(1, 35))
        syllables = 0.5 + 0.5 * np.sin(2 * np.pi * 4 * t)  # a 4 Hz syllable rhythm
        speech = voiced * syllables + 300 * rng.standard_normal(t.size)
        pcm = np.clip(speech, -32000, 32000).astype(np.int16)
        assert detect_keys(ulaw_to_pcm16(pcm16_to_ulaw(pcm))) == ""
    noise = (4000 * rng.standard_normal(RATE * 2)).astype(np.int16)
    assert detect_keys(noise) == ""


def test_keys_under_speech_level_noise_at_minus_25_dbm0_are_found() -> None:
    rng = np.random.default_rng(3)
    pcm = dtmf_pcm16("159#", level_dbm0=-25).astype(np.float64)
    noisy = pcm + 200 * rng.standard_normal(pcm.size)
    assert detect_keys(noisy.astype(np.int16)) == "159#"
