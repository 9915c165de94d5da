"""The endpointer: speech probabilities in, actions out; pure, no models and no clock."""

from __future__ import annotations

import numpy as np

from edge.media.config import EdgeConfig
from edge.media.endpointing import (
    AskSmartTurn,
    BargeIn,
    EarlyAudio,
    Endpointer,
    EndpointState,
    NoiseDropped,
    UtteranceEnded,
)
from edge.media.vad import SAMPLE_RATE, VAD_WINDOW, WINDOW_MS

WINDOW = np.zeros(VAD_WINDOW, dtype=np.int16)


def windows_for(ms: float) -> int:
    return round(ms / WINDOW_MS)


class Run:
    def __init__(self, **config: object) -> None:
        self.ep = Endpointer(EdgeConfig(**config), lambda pos: pos / SAMPLE_RATE)  # type: ignore[arg-type]
        self.actions: list[object] = []

    def feed(self, prob: float, ms: float, playing: bool = False) -> Run:
        for _ in range(windows_for(ms)):
            self.actions += self.ep.push(WINDOW, prob, playing)
        return self

    def of(self, kind: type) -> list:  # type: ignore[type-arg]
        return [a for a in self.actions if isinstance(a, kind)]


def test_speech_then_silence_is_one_utterance_with_its_pre_roll() -> None:
    run = Run(smart_turn=False).feed(0.0, 500).feed(0.9, 1000)
    assert run.ep.state == EndpointState.SPEAKING
    run.feed(0.0, 300)
    assert run.ep.state == EndpointState.PAUSED and not run.of(UtteranceEnded)
    run.feed(0.0, 500)
    [ended] = run.of(UtteranceEnded)
    u = ended.utterance
    assert u.end_reason == "silence" and not u.during_playback and not u.barge_in
    assert abs(u.speech_start - 0.5) < 0.04 and abs(u.speech_end - 1.5) < 0.04
    # pre-roll (300 ms) + speech (1 s) + tail (200 ms)
    assert abs(u.duration_s - 1.5) < 0.07 and len(u.pcm16_16k) == round(u.duration_s * SAMPLE_RATE) * 2
    assert run.ep.state == EndpointState.QUIET


def test_a_blip_is_dropped_as_noise() -> None:
    run = Run(smart_turn=False).feed(0.9, 100).feed(0.0, 800)
    assert run.of(NoiseDropped) and not run.of(UtteranceEnded)


def test_a_brief_dip_inside_speech_does_not_end_it() -> None:
    run = Run(smart_turn=False).feed(0.9, 600).feed(0.4, 200).feed(0.9, 600).feed(0.0, 800)
    [ended] = run.of(UtteranceEnded)
    assert ended.utterance.voiced_ms > 1300  # 0.4 is above the hysteresis threshold: still speech


def test_smart_turn_is_asked_once_per_pause_and_complete_ends_the_turn() -> None:
    run = Run(smart_turn=True).feed(0.9, 800).feed(0.0, 320)
    [ask] = run.of(AskSmartTurn)
    assert ask.audio.size > 0.8 * SAMPLE_RATE
    run.feed(0.0, 100)
    assert len(run.of(AskSmartTurn)) == 1
    [ended] = [a for a in run.ep.verdict(ask.pause_id, 0.9) if isinstance(a, UtteranceEnded)]
    assert ended.utterance.end_reason == "smart_turn" and ended.utterance.smart_turn_probability == 0.9


def test_a_verdict_for_a_pause_the_caller_talked_through_is_ignored() -> None:
    run = Run(smart_turn=True).feed(0.9, 800).feed(0.0, 320)
    [ask] = run.of(AskSmartTurn)
    run.feed(0.9, 200)  # the caller went on
    assert run.ep.verdict(ask.pause_id, 0.99) == [] and run.ep.state == EndpointState.SPEAKING


def test_incomplete_verdict_waits_longer_than_the_silence_rule() -> None:
    run = Run(smart_turn=True).feed(0.9, 800).feed(0.0, 320)
    [ask] = run.of(AskSmartTurn)
    assert run.ep.verdict(ask.pause_id, 0.1) == []
    run.feed(0.0, 600)  # past end_silence_ms (700) in all, short of 1200
    assert not run.of(UtteranceEnded)
    run.feed(0.0, 400)
    [ended] = run.of(UtteranceEnded)
    assert ended.utterance.end_reason == "silence" and ended.utterance.smart_turn_probability == 0.1


def test_long_speech_over_the_agent_barges_in_once() -> None:
    run = Run(smart_turn=False).feed(0.9, 1200, playing=True).feed(0.0, 800, playing=False)
    assert len(run.of(BargeIn)) == 1
    [ended] = run.of(UtteranceEnded)
    assert ended.utterance.barge_in and ended.utterance.during_playback


def test_a_backchannel_over_the_agent_does_not_barge_in() -> None:
    run = Run(smart_turn=False).feed(0.9, 400, playing=True).feed(0.0, 800, playing=True)
    assert not run.of(BargeIn)
    [ended] = run.of(UtteranceEnded)
    assert ended.utterance.during_playback and not ended.utterance.barge_in


def test_a_monologue_is_cut_at_max_length_and_the_stream_end_finishes_the_rest() -> None:
    run = Run(smart_turn=False, max_utterance_s=2.0).feed(0.9, 2500)
    [ended] = run.of(UtteranceEnded)
    assert ended.utterance.end_reason == "max_length"
    run.feed(0.9, 300)
    tail = [a for a in run.ep.finish() if isinstance(a, UtteranceEnded)]
    assert tail and tail[0].utterance.end_reason == "stream_end"
    assert run.ep.finish() == []


def _speak(ep: Endpointer, rng: np.random.Generator, ms: float, prob: float) -> list[object]:
    actions: list[object] = []
    for _ in range(windows_for(ms)):
        actions += ep.push(rng.integers(-3000, 3000, VAD_WINDOW, dtype=np.int16), prob, False)
    return actions


def test_early_audio_at_a_pause_is_exactly_the_turn_when_the_caller_stops_there() -> None:
    rng = np.random.default_rng(7)
    ep = Endpointer(EdgeConfig(smart_turn=False), lambda pos: pos / SAMPLE_RATE)
    actions = _speak(ep, rng, 900, 0.9) + _speak(ep, rng, 160, 0.0)
    assert not [a for a in actions if isinstance(a, EarlyAudio)]  # not before the pause (and tail) of 200 ms
    actions = _speak(ep, rng, 100, 0.0)
    [early] = [a for a in actions if isinstance(a, EarlyAudio)]
    actions = _speak(ep, rng, 600, 0.0)
    assert not [a for a in actions if isinstance(a, EarlyAudio)]  # once per pause
    [ended] = [a for a in actions if isinstance(a, UtteranceEnded)]
    assert early.audio.astype("<i2").tobytes() == ended.utterance.pcm16_16k


def test_a_caller_who_goes_on_after_the_early_audio_ends_with_different_audio() -> None:
    rng = np.random.default_rng(8)
    ep = Endpointer(EdgeConfig(smart_turn=False, end_silence_ms=700), lambda pos: pos / SAMPLE_RATE)
    actions = _speak(ep, rng, 800, 0.9) + _speak(ep, rng, 300, 0.0)  # a mid-sentence pause
    actions += _speak(ep, rng, 700, 0.9) + _speak(ep, rng, 800, 0.0)
    first, second = [a for a in actions if isinstance(a, EarlyAudio)]
    [ended] = [a for a in actions if isinstance(a, UtteranceEnded)]
    assert first.audio.size < second.audio.size
    assert second.audio.astype("<i2").tobytes() == ended.utterance.pcm16_16k


def test_early_audio_off_and_not_for_noise() -> None:
    rng = np.random.default_rng(9)
    off = Endpointer(EdgeConfig(smart_turn=False, early_stt_pause_ms=0), lambda pos: pos / SAMPLE_RATE)
    assert not [
        a for a in _speak(off, rng, 900, 0.9) + _speak(off, rng, 900, 0.0) if isinstance(a, EarlyAudio)
    ]
    on = Endpointer(EdgeConfig(smart_turn=False), lambda pos: pos / SAMPLE_RATE)
    blip = _speak(on, rng, 100, 0.9) + _speak(on, rng, 900, 0.0)  # under min_utterance_ms
    assert not [a for a in blip if isinstance(a, EarlyAudio)]


def test_words_that_read_as_finished_end_the_turn_smart_turn_called_incomplete() -> None:
    run = Run().feed(0.9, 800).feed(0.0, 320)
    [early] = run.of(EarlyAudio)
    [ask] = run.of(AskSmartTurn)
    assert not run.ep.verdict(ask.pause_id, 0.1)  # "incomplete": 1.2 s of silence would be needed
    [ended] = run.ep.text_verdict(early.pause_id, True)
    assert isinstance(ended, UtteranceEnded) and ended.utterance.end_reason == "transcript"
    # words that do not read as finished leave it to smart turn and silence
    run = Run().feed(0.9, 800).feed(0.0, 320)
    [early] = run.of(EarlyAudio)
    assert not run.ep.text_verdict(early.pause_id, False)
    run.feed(0.0, 300)
    assert not run.of(UtteranceEnded)  # still within the 700 ms silence rule
    # off: the words are not asked
    run = Run(transcript_end_of_turn=False).feed(0.9, 800).feed(0.0, 320)
    [early] = run.of(EarlyAudio)
    assert not run.ep.text_verdict(early.pause_id, True)


def test_a_transcript_reads_as_finished_on_a_full_stop_after_a_content_word() -> None:
    from edge.media.turn_text import reads_complete

    assert reads_complete("Yeah, I've got her pulled up.")
    assert reads_complete("Can you read me that again?")
    assert not reads_complete("The reference number is P as in Paul.")  # letters of a code, maybe more
    assert not reads_complete("It's four four seven.")  # a digit group
    assert not reads_complete("So what we need is the.")
    assert not reads_complete("Let me see.")  # a stall
    assert not reads_complete("We were thinking")  # no full stop: the recogniser heard it trail off
    assert not reads_complete("We were thinking...")
