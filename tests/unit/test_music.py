"""Hold music versus a person (edge/media/music.py) and the call's hold flow (engine/hold.py),
on signals generated here: notes and chords, call-progress tones, line noise, and a small
formant synthesiser standing in for a voice (syllables at 4-5 a second, a moving pitch and
moving formants, pauses between words)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest
from scipy.signal import lfilter

from common.testing.samples import SAMPLE_CALL_DATA
from edge.media import music
from edge.media.music import AudioKind
from engine.conversation import Conversation
from engine.hold import HoldFlow
from engine.schema_loader import SchemaRegistry
from tests.support import ROOT

RATE = music.SAMPLE_RATE
Pcm = npt.NDArray[np.int16]
NOTES_HZ = [261.6, 293.7, 329.6, 349.2, 392.0, 440.0, 493.9, 523.3]


def _pcm(x: npt.NDArray[np.floating], peak: float = 0.3) -> Pcm:
    out: Pcm = (x / (np.max(np.abs(x)) + 1e-12) * peak * 32767).astype(np.int16)
    return out


def melody(seconds: float, beat_s: float, seed: int, chords: bool = False, noise: float = 0.0) -> Pcm:
    """Harmonic notes (a fundamental and four overtones), each held for a beat with a soft decay."""
    rng = np.random.default_rng(seed)
    beat = int(beat_s * RATE)
    t = np.arange(beat) / RATE
    out = []
    for _ in range(int(seconds / beat_s)):
        roots = rng.choice(NOTES_HZ, 3 if chords else 1)
        note = sum(
            np.sin(2 * np.pi * f * k * t) / k for f in roots for k in range(1, 6) if f * k < 3400
        ) * np.exp(-t / (2 * beat_s))
        out.append(note)
    x = np.concatenate(out)
    x = x / np.max(np.abs(x)) + rng.normal(0, noise, x.size)
    return _pcm(x)


def tone(seconds: float, freqs: tuple[float, ...], on_s: float, off_s: float) -> Pcm:
    t = np.arange(int(seconds * RATE)) / RATE
    gate = (t % (on_s + off_s)) < on_s
    return _pcm(np.sum([np.sin(2 * np.pi * f * t) for f in freqs], axis=0) * gate)


def voice(words: int, seed: int, f0: float = 120.0) -> Pcm:
    """A crude formant voice: per syllable a vowel (two formants) on a gliding pulse train,
    with a noisy consonant before it and a pause after each word."""
    rng = np.random.default_rng(seed)
    vowels = [(730, 1090), (270, 2290), (530, 1840), (570, 840), (300, 870), (660, 1720)]
    parts: list[npt.NDArray[np.float64]] = [np.zeros(int(0.2 * RATE))]
    for _ in range(words):
        for _ in range(int(rng.integers(1, 4))):
            parts.append(rng.normal(0, 0.05, int(rng.uniform(0.03, 0.08) * RATE)))  # a consonant
            n = int(rng.uniform(0.12, 0.22) * RATE)
            pitch = f0 * (1 + 0.15 * np.sin(np.linspace(0, rng.uniform(1, 3), n))) * rng.uniform(0.9, 1.1)
            phase = np.cumsum(pitch / RATE)
            source = (np.diff(np.floor(phase), prepend=0) > 0).astype(np.float64)
            source += rng.normal(0, 0.1, n)  # breath
            glide = np.linspace(0.0, 1.0, n)  # formants move from one vowel to the next
            start, end = (_formants(source, vowels[int(i)]) for i in rng.integers(len(vowels), size=2))
            parts.append((start * (1 - glide) + end * glide) * np.hanning(n))
        parts.append(np.zeros(int(rng.uniform(0.08, 0.3) * RATE)))
    x = np.concatenate(parts)
    return _pcm(x + rng.normal(0, 0.002 * np.max(np.abs(x)), x.size))


def _formants(source: npt.NDArray[np.float64], formants: tuple[int, int]) -> npt.NDArray[np.float64]:
    sound = source
    r = np.exp(-np.pi * 90 / RATE)
    for formant in formants:
        sound = lfilter([1.0], [1.0, -2 * r * np.cos(2 * np.pi * formant / RATE), r * r], sound)
    return np.asarray(sound, dtype=np.float64)


@pytest.mark.parametrize("seed", range(4))
def test_melodies_and_chords_are_music(seed: int) -> None:
    assert music.classify(melody(4.0, 0.3, seed)).kind is AudioKind.MUSIC
    assert music.classify(melody(6.0, 0.5, seed, chords=True, noise=0.01)).kind is AudioKind.MUSIC


@pytest.mark.parametrize("freqs,on_s,off_s", [((440.0, 480.0), 2.0, 4.0), ((480.0, 620.0), 0.5, 0.5)])
def test_ringback_and_busy_tones_are_no_person(freqs: tuple[float, ...], on_s: float, off_s: float) -> None:
    assert not music.classify(tone(5.0, freqs, on_s, off_s)).is_person


def test_line_noise_alone_is_quiet() -> None:
    hiss = np.random.default_rng(0).normal(0, 20, RATE * 2).astype(np.int16)
    assert music.classify(hiss).kind is AudioKind.QUIET


@pytest.mark.parametrize("seed", range(4))
def test_a_voice_is_a_person(seed: int) -> None:
    verdict = music.classify(voice(6, seed, f0=110 + 30 * seed).tobytes())
    assert verdict.is_person, verdict.features


def test_a_voice_after_music_in_one_utterance_is_a_person() -> None:
    """The person starts talking as the music stops: the utterance must not be dropped."""
    both = np.concatenate([melody(6.0, 0.3, 1), voice(8, 7)])
    assert music.classify(both).is_person


def test_very_short_audio_is_given_the_benefit_of_the_doubt() -> None:
    assert music.classify(melody(0.2, 0.1, 0)).is_person


# ---- engine/hold.py ------------------------------------------------------------------------


@pytest.fixture
def convo() -> Conversation:
    schema = SchemaRegistry.shared(ROOT / "schemas").get("prior_auth")
    return Conversation.start(schema, "call-hold", SAMPLE_CALL_DATA["prior_auth"])


async def test_please_hold_puts_the_call_on_hold_and_a_return_resumes_with_the_question(
    convo: Conversation,
) -> None:
    hold = HoldFlow(convo.schema.spec.hold, convo.state)
    assert hold.spec is not None and hold.timeout_s is None
    plan = await convo.take_turn("This is Sarah.")
    hold.shape(convo, plan)
    question = convo.recovery_line()
    plan = await convo.take_turn("Let me put you on hold while I pull that up.")
    hold.shape(convo, plan)
    assert hold.on_hold and hold.timeout_s == hold.spec.timeout_s
    assert plan.say == [convo.schema.spec.intents[1].reply] and not plan.needs_llm
    assert hold.silent(heard_nothing=True)
    plan = await convo.take_turn("Still looking, one more second.")
    hold.shape(convo, plan)
    assert hold.on_hold and plan.say == [] and not plan.needs_llm
    plan = await convo.take_turn("Are you still there?")
    hold.shape(convo, plan)
    assert not hold.on_hold and not plan.needs_llm
    assert plan.say == [hold.spec.resume, question]
    assert CallStateRoundTrip.on_hold_survives(convo)


@pytest.mark.parametrize(
    "text",
    [
        "And for holding, you still there?",
        "And for opening, you still have...",
        "Thank you for your patience.",
    ],
)
async def test_thanks_for_holding_ends_the_hold_even_if_scored_as_hold(
    convo: Conversation, text: str
) -> None:
    """Intent scoring may put "(th)anks for holding" with the hold examples: the words decide,
    garbled as the recogniser wrote them in CI ("for opening, you still have")."""
    hold = HoldFlow(convo.schema.spec.hold, convo.state)
    for line in ("This is Sarah.", "One moment please."):
        hold.shape(convo, await convo.take_turn(line))
    plan = await convo.take_turn(text)
    assert plan.nlu is not None
    plan.nlu.intent = "hold"  # as the embedding scorer took it on a garbled return
    hold.shape(convo, plan, text)
    assert not hold.on_hold and plan.say[0] == hold.spec.resume  # type: ignore[union-attr]


async def test_a_return_that_answers_keeps_the_answer_after_the_resume_line(convo: Conversation) -> None:
    hold = HoldFlow(convo.schema.spec.hold, convo.state)
    for line in ("This is Sarah.", "One moment please."):
        hold.shape(convo, await convo.take_turn(line))
    assert hold.on_hold
    plan = await convo.take_turn("Okay, I found the member.")
    hold.shape(convo, plan)
    assert plan.transitioned and plan.say[0] == hold.spec.resume and len(plan.say) == 2  # type: ignore[union-attr]


async def test_a_hold_that_times_out_ends_with_the_schema_outcome(convo: Conversation) -> None:
    hold = HoldFlow(convo.schema.spec.hold, convo.state)
    for line in ("This is Sarah.", "Please hold."):
        hold.shape(convo, await convo.take_turn(line))
    assert hold.time_out() == "callback_needed"
    assert hold.timed_out and not hold.on_hold and convo.state.outcome == "callback_needed"


class CallStateRoundTrip:
    @staticmethod
    def on_hold_survives(convo: Conversation) -> bool:
        from engine.call_state import CallState

        convo.state.on_hold = True
        return CallState.from_snapshot(convo.state.to_snapshot()).on_hold
