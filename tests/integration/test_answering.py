"""Who answered, end to end through the edge: a SIMULATED counterpart (espeak-ng voice, a
synthetic beep) plays real audio on the Media Streams protocol into a ``CallLink`` (real
``MediaStream``: Silero VAD, tone detection) whose call runs on a real ``CallHostCore`` in this
process. Speech to text is scripted (the counterpart's words), so what is tested is the waiting:
the agent stays silent while it listens, then says the right thing — a voicemail message only
after the beep, a screener line to a screener."""

from __future__ import annotations

import asyncio
from typing import Any

from common.events import AnsweredBy, CallerTurn, ListenFirst, ReplyChunk
from common.testing.samples import SAMPLE_CALL_DATA
from common.testing.services import ScriptedSTT, ScriptedTTS
from edge.call_link import CallLink
from edge.media.config import EdgeConfig
from loadtests.answering_counterparts import (
    AnsweringCounterpart,
    beep_end_s,
    render_answer,
    screener_greeting,
    voicemail_greeting,
)
from tests.support import InProcessRouter


async def answer_with(
    greeting: dict[str, Any], heard: str
) -> tuple[InProcessRouter, ScriptedTTS, AnsweringCounterpart, CallLink]:
    router = InProcessRouter()
    opened = await router.host.start_call(
        "call-a", "prior_auth", SAMPLE_CALL_DATA["prior_auth"], None, None, "detect"
    )
    assert opened.opening  # type: ignore[union-attr]
    stt, tts = ScriptedSTT([heard] * 8), ScriptedTTS()
    audio = render_answer(greeting)

    async def to_link(raw: str) -> None:
        await link.handle(raw)

    counterpart = AnsweringCounterpart(audio, to_link, token=router.stream_token("call-a"))
    link = CallLink("call-a", router, stt, tts, counterpart.receive, EdgeConfig())
    await counterpart.play(until=lambda: link.finished, extra_quiet_s=3.0)
    await link.settle()
    return router, tts, counterpart, link


async def test_voicemail_message_only_after_the_beep() -> None:
    greeting = voicemail_greeting()
    router, tts, counterpart, link = await answer_with(greeting, greeting["text"])
    try:
        beep_end = beep_end_s(greeting, render_answer(greeting))
        assert beep_end is not None
        answered = [args[0] for method, args in router.calls if method == "answered"]
        assert [v.answered_by for v in answered] == [AnsweredBy.VOICEMAIL]
        assert answered[0].beep and answered[0].by in ("transcript", "audio")
        assert "prior authorization request" in " ".join(tts.spoken)  # the schema's message, in clauses
        assert counterpart.agent_audio_at, "the message was played"
        assert min(counterpart.agent_audio_at) >= beep_end  # nothing over the greeting or the beep
        assert link.finished  # terminal: the call ends once the message has played
        call = router.host.calls["call-a"]
        assert call.conversation.state.outcome == "voicemail_left"
        note = call.answer_flow.note if call.answer_flow else None
        assert note is not None and note["answered_by"] == "voicemail" and note["decided_ms"] > 0
    finally:
        await link.close()


async def test_a_screener_hears_who_is_calling_and_the_opening_waits_for_a_person() -> None:
    greeting = screener_greeting()
    router, tts, counterpart, link = await answer_with(greeting, greeting["text"])
    try:
        answered = [args[0] for method, args in router.calls if method == "answered"]
        assert [v.answered_by for v in answered] == [AnsweredBy.SCREENER]
        assert tts.spoken and tts.spoken[0].startswith("This is Alex")  # the schema's screener line
        speech_end = (len(render_answer(greeting)) / 8000) - 1.5  # the rendered tail is 1.5 s of quiet
        assert min(counterpart.agent_audio_at) >= speech_end - 0.05  # silent while the screener spoke
        assert not link.finished
        call = router.host.calls["call-a"]
        assert call.answer_flow is not None and call.answer_flow.awaiting == AnsweredBy.SCREENER
        # the person comes on: the opening follows as an ordinary turn
        events = [e async for e in call.turn(CallerTurn(text="Hello? Who's this?", mode="audio"))]
        said = [e.text for e in events if isinstance(e, ReplyChunk)]
        assert said and " ".join(said).startswith(" ".join(call.opening_lines)[:20])
        assert call.answer_flow.awaiting is None
    finally:
        await link.close()


async def test_text_mode_never_listens() -> None:
    router = InProcessRouter()
    await router.host.start_call("call-t", "prior_auth", SAMPLE_CALL_DATA["prior_auth"])
    first = [e async for e in router.host.opening("call-t")]
    assert not any(isinstance(e, ListenFirst) for e in first)
    await asyncio.sleep(0)


async def test_twilios_detection_decides_when_it_answers_first() -> None:
    """With Twilio's answering machine detection on, its AnsweredBy (here: a machine, reported
    while the greeting still runs and speech recognition heard nothing useful) is the verdict."""
    router = InProcessRouter()
    await router.host.start_call("call-t", "prior_auth", SAMPLE_CALL_DATA["prior_auth"], None, None, "detect")
    greeting = screener_greeting()
    stt, tts = ScriptedSTT([""] * 8), ScriptedTTS()

    async def to_link(raw: str) -> None:
        await link.handle(raw)

    async def twilio_says_machine() -> None:
        await asyncio.sleep(1.2)
        await router.host.note_twilio_answer("call-t", AnsweredBy.VOICEMAIL)

    counterpart = AnsweringCounterpart(render_answer(greeting), to_link, token=router.stream_token("call-t"))
    link = CallLink("call-t", router, stt, tts, counterpart.receive, EdgeConfig(), twilio_amd=True)
    twilio = asyncio.get_running_loop().create_task(twilio_says_machine())
    try:
        await counterpart.play(until=lambda: link.finished, extra_quiet_s=3.0)
        await link.settle()
        answered = [args[0] for method, args in router.calls if method == "answered"]
        assert [(v.answered_by, v.by) for v in answered] == [(AnsweredBy.VOICEMAIL, "twilio")]
        assert 1000 <= answered[0].decided_ms < 2500
    finally:
        await twilio
        await link.close()
