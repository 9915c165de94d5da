"""Speech recognition biased to the call: the real Whisper model (no Ray) on the agent's Piper
voice through G.711, with and without the call's hints, alone and in mixed batches."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from common.audio import pcm16_to_ulaw, resample, ulaw_to_pcm16
from common.events import Transcript
from services.stt import (
    PreparedAudio,
    WhisperBatchTranscriber,
    heard_digits,
    leaked_identifier,
    prepare_audio,
    repeats_itself,
)

SOFIA = "Yes, this is Sofia Lindqvist over at Kestrel Analytics."
SOFIA_HINTS = "yes, no, Sofia Lindqvist, Kestrel Analytics"
MARCUS = "Okay, Marcus Okafor at Brightline Dental, got it."
MARCUS_HINTS = "price, timing, competitor, no need, Marcus Okafor, Brightline Dental"


@pytest.fixture(scope="module")
def engine() -> WhisperBatchTranscriber:
    from common.settings import STTSettings

    return WhisperBatchTranscriber(STTSettings(word_timestamps=True))


@pytest.fixture(scope="module")
def clips() -> dict[str, bytes]:
    """Each line as a phone call carries it: µ-law 8 kHz, back to PCM16 16 kHz."""
    from services.tts import PiperSynth

    synth = PiperSynth()
    out = {}
    for text in (SOFIA, MARCUS):
        pcm8k = resample(synth.synth_pcm(text), synth.sample_rate, 8000)
        out[text] = resample(ulaw_to_pcm16(pcm16_to_ulaw(pcm8k)), 8000, 16000).astype("<i2").tobytes()
    return out


def item(pcm: bytes, hints: str = "") -> PreparedAudio:
    return prepare_audio(pcm, 16000, 30.0, hints=hints)


def test_hints_spell_the_calls_names(engine: WhisperBatchTranscriber, clips: dict[str, bytes]) -> None:
    plain, hinted = engine.run([item(clips[SOFIA]), item(clips[SOFIA], SOFIA_HINTS)])
    assert "Lindqvist" not in plain.text and "Kestrel" not in plain.text, (
        plain.text
    )  # measured: "Lindfist", "Castro"
    assert "Sofia Lindqvist" in hinted.text and "Kestrel Analytics" in hinted.text, hinted.text
    assert hinted.words and hinted.confidence > 0.5 and not hinted.no_speech


def test_a_mixed_batch_gives_each_utterance_what_it_gets_alone(
    engine: WhisperBatchTranscriber, clips: dict[str, bytes]
) -> None:
    batch = [
        (clips[SOFIA], SOFIA_HINTS),
        (clips[SOFIA], ""),
        (clips[MARCUS], MARCUS_HINTS),
        (clips[MARCUS], ""),
        (clips[MARCUS], SOFIA_HINTS),  # another call's hints, another prompt length
        (b"", MARCUS_HINTS),  # silence skips the model, hints or not
    ]
    mixed = engine.run([item(pcm, hints) for pcm, hints in batch])
    alone = [engine.run([item(pcm, hints)])[0] for pcm, hints in batch]
    for got, want in zip(mixed, alone, strict=True):
        assert same(got, want), (got.text, want.text, timing_gap(got, want))
    assert [r.batch_size for r in mixed] == [5, 5, 5, 5, 5, 0]
    assert "Marcus Okafor" in mixed[2].text and "Okafor" not in mixed[3].text
    unhinted = engine.run([item(clips[SOFIA]), item(clips[MARCUS])])  # faster-whisper's own path
    assert same(unhinted[0], mixed[1]) and same(unhinted[1], mixed[3])


def same(a: Transcript, b: Transcript) -> bool:
    """The same words; their timings may move by a few frames (the batch is aligned together, with
    or without hints, and the padded batch's arithmetic differs by CPU: 0.06 s held on this box and
    not on CI's; a quarter second still tells a word from its neighbour)."""
    if (a.text, a.no_speech, [w.word for w in a.words]) != (b.text, b.no_speech, [w.word for w in b.words]):
        return False
    return timing_gap(a, b) <= 0.25


def timing_gap(a: Transcript, b: Transcript) -> float:
    """The largest move, in seconds, of any word's start or end between two readings."""
    pairs = zip(a.words, b.words, strict=False)
    return max((max(abs(x.start - y.start), abs(x.end - y.end)) for x, y in pairs), default=0.0)


def test_a_hinted_decode_that_loops_is_decoded_again_without_the_hints(
    engine: WhisperBatchTranscriber, clips: dict[str, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    plain_prompt = engine._prompt("")
    loop = engine.tokenizer.encode(" Sofia Lindqvist," * 20)
    generate = engine._generate

    def looping(encoded: Any, rows: list[int], prompts: list[list[int]]) -> list[dict[str, Any]]:
        outputs = generate(encoded, rows, prompts)
        return [
            o if p == plain_prompt else {**o, "tokens": loop} for o, p in zip(outputs, prompts, strict=True)
        ]

    monkeypatch.setattr(engine, "_generate", looping)
    hinted, plain = engine.run([item(clips[MARCUS], SOFIA_HINTS), item(clips[MARCUS])])
    assert hinted.text == plain.text and "Sofia" not in hinted.text


def test_a_fitted_window_that_loops_is_decoded_again_in_30_s(
    clips: dict[str, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    from common.settings import STTSettings

    engine = WhisperBatchTranscriber(STTSettings(fit_window=True))  # off by default
    windows: list[float] = []
    forward = engine._forward

    def looping(batch: list[PreparedAudio], window_s: float) -> list[list[dict[str, Any]]]:
        windows.append(window_s)
        out = forward(batch, window_s)
        if window_s < 30.0:
            return [[{**s, "text": " Sofia Lindqvist," * 20} for s in segments] for segments in out]
        return out

    monkeypatch.setattr(engine, "_forward", looping)
    (got,) = engine.run([item(clips[MARCUS])])
    assert windows == [10.0, 30.0] and "Marcus" in got.text and "Sofia" not in got.text
    assert engine.window_s(3.2) == 10.0 and engine.window_s(9.1) == 12.0 and engine.window_s(40.0) == 30.0
    assert repeats_itself("I'm a family member, and I'm a family member.")  # measured in a 10 s window
    assert not repeats_itself("Yes, that's right, and the member ID was H B N.")


def test_hints_stay_out_of_logs_reprs_and_errors(
    engine: WhisperBatchTranscriber, clips: dict[str, bytes], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        prepared = item(clips[SOFIA], SOFIA_HINTS)
        engine.run([prepared])
    assert "Lindqvist" not in caplog.text and "Lindqvist" not in repr(prepared)
    with pytest.raises(ValueError, match="hints must be a string"):
        prepare_audio(clips[SOFIA], 16000, 30.0, hints=["Sofia"])  # type: ignore[arg-type]


def test_a_hint_identifier_the_audio_never_held_is_not_read_into_a_short_clip(
    engine: WhisperBatchTranscriber,
) -> None:
    """Measured on the audio dev suite: a short "Yep. Got her. Active." in an espeak-ng voice came
    out of the hinted decode as "Yep, Doctor XKM449812." (the member ID of the prompt)."""
    from pathlib import Path

    from common.testing.samples import SAMPLE_CALL_DATA
    from engine.schema_loader import load_schema
    from engine.stt_hints import stt_hints
    from loadtests.voice import EspeakVoice

    schema = load_schema(Path(__file__).resolve().parents[2] / "schemas" / "prior_auth")
    hints = stt_hints(schema, "verify_member", SAMPLE_CALL_DATA["prior_auth"])
    voice = EspeakVoice("en-gb-x-rp+f3", 150)
    member_id = SAMPLE_CALL_DATA["prior_auth"]["member_id"]

    def heard(text: str) -> str:
        pcm = resample(ulaw_to_pcm16(voice.mulaw(text)), 8000, 16000).astype("<i2").tobytes()
        return engine.run([item(pcm, hints)])[0].text

    assert member_id not in heard("Yep. Got her. Active.").replace(" ", "")
    assert member_id in heard("X K M 4 4 9 8 1 2, got it").replace(" ", "")  # said: the hint stands


def test_leaked_identifiers_and_digits_heard() -> None:
    assert leaked_identifier("Yep, Doctor XKM449812.", "approved, Jane Doe, XKM449812, 99213")
    assert not leaked_identifier("Yep, Doctor Smith.", "approved, Doctor Smith, XKM449812")  # a name
    assert heard_digits("Next, KLM for 9812") and heard_digits("four four nine")
    assert not heard_digits("yep, Doctor XD")
