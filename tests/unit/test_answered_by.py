"""Who answered, from the transcript: the classifier on the DEV greetings (the test half is held
out for benchmarks/bench_answering.py), recogniser garble, cut-off greetings, and the call's
first words for each verdict."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
import yaml

from common.events import AnsweredBy, AnswerVerdict, Transcript
from engine.answer_flow import AnswerFlow, listens_first
from engine.answered_by import VOICEMAIL_NO_MESSAGE_OUTCOME, classify, first_words, normalise
from engine.schema_loader import SchemaRegistry
from engine.schema_model import Answering, VoicemailAction

DEV = Path(__file__).resolve().parents[2] / "loadtests" / "greetings" / "dev.yaml"
SPOKEN = [g for g in yaml.safe_load(DEV.read_text())["greetings"] if g["text"]]


@pytest.mark.parametrize("greeting", SPOKEN, ids=[g["id"] for g in SPOKEN])
def test_dev_greetings_are_classified(greeting: dict[str, str]) -> None:
    assert classify(greeting["text"]).answered_by == AnsweredBy(greeting["expected"])


@pytest.mark.parametrize(
    ("heard", "expected"),
    [
        ("hello", AnsweredBy.HUMAN),
        ("Yeah?", AnsweredBy.HUMAN),
        ("leave a massage after the beat", AnsweredBy.VOICEMAIL),  # Whisper garble
        ("you've reached the voice male box of", AnsweredBy.VOICEMAIL),
        ("press 1 for appointments press 2", AnsweredBy.MENU),
        ("para espanol oprima", AnsweredBy.MENU),
        ("please state your name and why you're calling", AnsweredBy.SCREENER),
    ],
)
def test_recogniser_garble(heard: str, expected: AnsweredBy) -> None:
    assert classify(heard).answered_by == expected


def test_nothing_heard_is_silence() -> None:
    assert classify("  ").answered_by == AnsweredBy.SILENCE


def test_a_long_greeting_without_cues_leans_to_a_machine_but_is_not_decided() -> None:
    long = "hi there it is a lovely day here at the lake house and we are all out on the boat today"
    result = classify(long)
    assert result.answered_by == AnsweredBy.UNKNOWN  # the opening is said: safer than hanging up
    assert result.scores[AnsweredBy.VOICEMAIL] > result.scores[AnsweredBy.HUMAN]


def test_a_machine_introducing_its_owner_is_not_a_person() -> None:
    result = classify("Hi, this is Sam. I can't take your call right now")
    assert result.answered_by == AnsweredBy.VOICEMAIL
    assert "long" in result.cues[AnsweredBy.HUMAN] or result.scores[AnsweredBy.VOICEMAIL] > 3


def test_a_cut_off_greeting_still_talking_is_judged_on_its_words() -> None:
    partial = classify("thank you for calling please listen carefully as our menu", complete=False)
    assert partial.answered_by == AnsweredBy.MENU
    assert not classify("hi you've", complete=False).sure


def test_normalise_keeps_question_marks_and_drops_punctuation() -> None:
    assert normalise("Hello?  Who's THIS — uh, Dana?") == "hello? who's this dana?"


def test_first_words_for_each_verdict() -> None:
    rules = Answering(
        voicemail=VoicemailAction(say="Hi, this is {agent_name}, please call us back."),
        screener="This is {agent_name} calling about a referral.",
    )
    values = {"agent_name": "Alex"}
    opening = ["Hi, this is Alex."]
    assert first_words(rules, AnsweredBy.HUMAN, opening, values).say == opening
    screener = first_words(rules, AnsweredBy.SCREENER, opening, values)
    assert screener.say == ["This is Alex calling about a referral."] and screener.await_person
    voicemail = first_words(rules, AnsweredBy.VOICEMAIL, opening, values)
    assert voicemail.terminal and voicemail.outcome == "voicemail_left" and "Alex" in voicemail.say[0]
    assert first_words(None, AnsweredBy.VOICEMAIL, opening, values).outcome == VOICEMAIL_NO_MESSAGE_OUTCOME
    menu = first_words(rules, AnsweredBy.MENU, opening, values)
    assert menu.say == [] and menu.await_person and not menu.terminal
    assert first_words(rules, AnsweredBy.SILENCE, opening, values).say == opening  # once
    again = first_words(rules, AnsweredBy.SILENCE, opening, values, opened=True)
    assert again.terminal and again.outcome == "no_answer" and again.say == []
    fax = first_words(rules, AnsweredBy.FAX, opening, values)
    assert fax.terminal and fax.outcome == "no_answer"


def test_listens_first_only_for_dialled_calls_unless_asked() -> None:
    assert listens_first(True, "+14155550100", None)
    assert not listens_first(False, "+14155550100", None)
    assert not listens_first(True, None, None)  # text mode / simulated: speaks first
    assert listens_first(False, None, "detect")
    assert not listens_first(True, "+14155550100", "off")


def _flow() -> AnswerFlow:
    registry = SchemaRegistry.from_directory(Path(__file__).resolve().parents[2] / "schemas")
    spec = registry.get("prior_auth").spec
    return AnswerFlow(spec, {}, {"agent_name": "Alex", "organization": "Clinic"})


def _verdict(kind: AnsweredBy, text: str = "") -> AnswerVerdict:
    return AnswerVerdict(answered_by=kind, by="transcript", decided_ms=900.0, text=text)


def test_after_a_screener_the_opening_waits_for_a_person() -> None:
    flow = _flow()
    opening = ["Hello, this is Alex."]
    first = flow.verdict(_verdict(AnsweredBy.SCREENER), opening, {"agent_name": "Alex"})
    assert first.chunks and first.chunks[0][0] != opening[0] and not first.terminal
    assert flow.heard("Please stay on the line while I see if they're available.", opening, {}) == flow.heard(
        "Please stay on the line while I see if they're available.", opening, {}
    )
    assert flow.heard("Please stay on the line while I see if they're available.", opening, {}).ignored  # type: ignore[union-attr]
    person = flow.heard("Hello? Who is this?", opening, {})
    assert person is not None and person.person and person.chunks == [(opening[0], "")]
    assert flow.heard("Sure, go ahead.", opening, {}) is None  # an ordinary turn now
    assert flow.note is not None and flow.note["answered_by"] == "screener"


def test_silence_says_the_opening_once_then_ends() -> None:
    flow = _flow()
    first = flow.verdict(_verdict(AnsweredBy.SILENCE), ["Hi."], {})
    assert first.chunks == [("Hi.", "")] and not first.terminal
    second = flow.verdict(_verdict(AnsweredBy.SILENCE), ["Hi."], {})
    assert second.terminal and second.chunks == []


@pytest.mark.parametrize(
    ("heard", "expected"),
    [
        # menus: "press" misheard, a number word kept; ids and keys said around garble
        ("for claims oppress three", AnsweredBy.MENU),
        ("key in your nine digit provider id now please", AnsweredBy.MENU),
        ("then follow like the found key", AnsweredBy.MENU),
        ("para ingles, marque", AnsweredBy.MENU),
        ("thank you for calling northgate imaging for the radiology for your hair", AnsweredBy.MENU),
        # screeners: the name request and the purpose question, misheard
        ("please stay your aim and the reason for the call", AnsweredBy.SCREENER),
        ("what is this call regarding", AnsweredBy.SCREENER),
        ("the person you reached is using a call service from google", AnsweredBy.SCREENER),
        # voicemail: away, closed, leave something
        ("the office is now closed, leave us your details", AnsweredBy.VOICEMAIL),
        ("hey its Lou, leave me a quick massage", AnsweredBy.VOICEMAIL),
        # people: a question back, however garbled
        ("front desk, what can you for you?", AnsweredBy.HUMAN),
    ],
)
def test_cue_families_survive_garble(heard: str, expected: AnsweredBy) -> None:
    assert classify(heard).answered_by == expected


def test_long_greeting_without_cues_is_not_a_person() -> None:
    result = classify(
        "we will be on the boat at the lake with the kids all week so the garden waits until then"
    )
    assert result.answered_by != AnsweredBy.HUMAN


def test_only_strong_cues_count_mid_greeting() -> None:
    """Cue counts exclude the shape of the speech: "thank you for calling X" and more is one cue."""
    opening = classify("thank you for calling the harbor view office we are", complete=False)
    assert opening.cue_count <= 1
    menu = classify("enter your member id followed by the pound key", complete=False)
    assert menu.answered_by == AnsweredBy.MENU and menu.cue_count >= 2


class _NoSTT:
    async def transcribe(self, pcm16_16k: bytes, hints: str = "") -> Transcript:
        raise AssertionError("a short hello is decided by audio, without speech recognition")


async def test_a_short_hello_is_a_person_by_audio_while_the_endpointer_still_holds_it() -> None:
    """The endpointer's in_speech stays true through a pause: the grace must look at "speaking"."""
    from edge.answering import AnswerDetector, AnsweringConfig

    started = time.monotonic()
    spoke_until = started + 0.3

    def state() -> str:
        now = time.monotonic()
        return "quiet" if now < started + 0.05 else "speaking" if now < spoke_until else "paused"

    config = AnsweringConfig(pause_s=0.2, person_grace_s=0.1, poll_s=0.01)
    detector = AnswerDetector(_NoSTT(), 2.5, started, lambda: True, config, speech_state=state)
    verdict = await asyncio.wait_for(detector.decide(), 2.0)
    assert verdict.answered_by == AnsweredBy.HUMAN and verdict.by == "audio"
    assert verdict.decided_ms < 1000
