"""Being put on hold, through the call link: music never reaches speech recognition or the LLM,
the agent says nothing while it plays, a person coming back gets the resume line and the open
question, and a hold that lasts too long ends the call with ``callback_needed``.

The call runs on a real ``CallHostCore`` in this process (``tests/support.py``); speech to text
and the LLM are scripted and count their calls. The audio is real: sox-made hold music and an
espeak-ng voice (``loadtests/hold_music.py``, ``loadtests/voice.py``). The last test plays a
SIMULATED representative (``loadtests/hold_counterpart.py``) on the Media Streams protocol
into the real media stream (Silero VAD), in real time.
"""

from __future__ import annotations

import asyncio
import json
import time

import numpy as np

from common.audio import resample, ulaw_to_pcm16
from common.events import EndReason, Utterance
from common.testing.samples import SAMPLE_CALL_DATA
from common.testing.services import ScriptedLLM, ScriptedSTT, ScriptedTTS
from edge.call_link import CallLink
from edge.media.config import EdgeConfig
from edge.twilio import protocol
from loadtests.hold_counterpart import HoldCounterpart, HoldScript
from loadtests.hold_music import DEV_TONES, DEV_TUNES, HoldMusic, Tone, Tune
from loadtests.voice import EspeakVoice
from tests.support import InProcessRouter

REP = EspeakVoice("en-us+f2", 160)  # the representative: a voice unlike the agent's
HOLD = "Let me put you on hold while I pull that up."
BACK = "Thanks for holding, are you still there?"


def _utterance(mulaw: bytes) -> Utterance:
    pcm = resample(ulaw_to_pcm16(mulaw), 8000, 16000)
    now = time.monotonic()
    seconds = pcm.size / 16000
    return Utterance(
        pcm16_16k=pcm.tobytes(),
        speech_start=now - seconds,
        speech_end=now,
        duration_s=seconds,
        voiced_ms=seconds * 1000,
        during_playback=False,
        end_reason="max_length",
    )


def said(text: str) -> Utterance:
    return _utterance(REP.mulaw(text))


def music_utterances() -> list[Utterance]:
    """Stretches of hold music and ringback as the VAD might pass them on (2-8 s)."""
    maker = HoldMusic()
    out = []
    items: list[Tune | Tone] = [*DEV_TUNES, *DEV_TONES]
    for i, item in enumerate(items):
        audio = maker.mulaw(item, 12.0)
        start, seconds = 8000 * (i % 3), 2 + (i % 4) * 2
        out.append(_utterance(audio[start : start + 8000 * seconds]))
    return out


async def connect(router: InProcessRouter, stt: ScriptedSTT, tts: ScriptedTTS) -> tuple[CallLink, str]:
    opened = await router.host.start_call("call-h", "prior_auth", SAMPLE_CALL_DATA["prior_auth"])
    sent: list[dict[str, object]] = []

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    link = CallLink("call-h", router, stt, tts, send, EdgeConfig(smart_turn=False))
    params = {"token": router.stream_token("call-h")}
    await link.handle(json.dumps(protocol.start_in("MZ1", "CA1", "AC1", params)))
    await link.media.drain()
    await link.settle()
    return link, opened.call_id  # type: ignore[union-attr]


async def turn(link: CallLink, utterance: Utterance) -> None:
    await link.on_utterance(utterance)
    await link.settle()


async def put_on_hold(
    timeout_s: float | None = None,
) -> tuple[InProcessRouter, ScriptedLLM, ScriptedSTT, ScriptedTTS, CallLink, str]:
    llm = ScriptedLLM()
    router = InProcessRouter(llm=llm)
    stt = ScriptedSTT(["This is Sarah.", HOLD, BACK, "Okay, I found the member."])
    tts = ScriptedTTS(seconds_per_char=0.0005)
    link, call_id = await connect(router, stt, tts)
    call = router.host.calls[call_id]
    if timeout_s is not None:  # the schema's 15 minutes, shortened for the test
        assert call.hold.spec is not None
        call.hold.spec = call.hold.spec.model_copy(update={"timeout_s": timeout_s})
    await turn(link, said("This is Sarah."))
    await turn(link, said(HOLD))
    return router, llm, stt, tts, link, call_id


async def test_music_on_hold_reaches_no_stt_no_llm_and_no_agent_speech() -> None:
    router, llm, stt, tts, link, call_id = await put_on_hold()
    call = router.host.calls[call_id]
    assert link.hold.active and call.conversation.state.on_hold
    assert tts.spoken[-1] == "Sure, take your time."
    heard, spoken, turns = stt.heard, len(tts.spoken), len(call.turns)
    music = music_utterances()
    for utterance in music:
        await turn(link, utterance)
    assert stt.heard == heard  # zero STT calls on music
    assert llm.requests == []  # and zero LLM calls
    assert len(tts.spoken) == spoken and len(call.turns) == turns  # no turn, nothing said
    assert link.hold.held_music_utterances == len(music)
    assert link.hold.classify_ms < 5 * sum(u.duration_s for u in music)  # ≪ real time, loosely

    await turn(link, said(BACK))  # a person: heard, and the call picks up where it was
    assert stt.heard == heard + 1 and not link.hold.active and not call.conversation.state.on_hold
    assert call.conversation.schema.spec.hold is not None
    resume = call.conversation.schema.spec.hold.resume
    question = call.conversation.recovery_line()
    assert " ".join(tts.spoken[spoken:]) == f"{resume} {question}"
    assert llm.requests == []
    await turn(link, music_utterances()[0])  # off hold: audio goes to STT again
    assert stt.heard == heard + 2
    await link.close()


async def test_a_hold_that_lasts_too_long_ends_the_call_for_a_callback() -> None:
    router, llm, _, tts, link, call_id = await put_on_hold(timeout_s=0.3)
    for utterance in music_utterances()[:2]:
        await turn(link, utterance)
    spoken = len(tts.spoken)
    deadline = time.monotonic() + 3.0
    while not link.finished and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    assert link.finished and link.end_reason == EndReason.HOLD_TIMEOUT
    assert len(tts.spoken) == spoken  # no goodbye to hold music
    record = await router.host.hangup(call_id, link.end_reason)
    assert record["outcome"] == "callback_needed" and record["end_reason"] == "hold_timeout"
    assert record["status"] == "completed" and llm.requests == []
    await link.close()


async def test_a_person_back_before_the_timeout_stops_the_timer() -> None:
    router, _, _, _, link, call_id = await put_on_hold(timeout_s=0.4)
    await turn(link, said(BACK))
    await asyncio.sleep(0.6)
    assert not link.finished and router.host.calls[call_id].status == "active"
    await link.close()


async def test_a_simulated_rep_puts_the_agent_on_hold_over_the_media_stream() -> None:
    """Real time, real VAD: greeting, "let me put you on hold", 8 s of music, then back."""
    llm = ScriptedLLM()
    router = InProcessRouter(llm=llm)
    script = HoldScript(music_s=8.0, silence_s=1.0)
    stt = ScriptedSTT(["This is Dana at utilization review.", HOLD, BACK] + [""] * 4)
    tts = ScriptedTTS(seconds_per_char=0.02)
    await router.host.start_call("call-sim", "prior_auth", SAMPLE_CALL_DATA["prior_auth"])
    counterpart: HoldCounterpart

    async def to_link(raw: str) -> None:
        await link.handle(raw)

    counterpart = HoldCounterpart(to_link, script, token=router.stream_token("call-sim"))
    # early STT off: the scripted STT answers by call order, and a transcript started at a pause
    # the rep then talked through would take the next line of the script
    config = EdgeConfig(smart_turn=False, early_stt_pause_ms=0)
    link = CallLink("call-sim", router, stt, tts, counterpart.receive, config)
    result = await counterpart.run(until=lambda: link.finished)
    await link.settle()
    call = router.host.calls["call-sim"]
    assert result.agent_frames_during_hold == 0  # silent while the music played
    assert link.hold.held_music_utterances >= 1
    assert stt.heard == 3  # greeting, hold line, the return: the music was never transcribed
    assert llm.requests == []
    assert result.agent_reply_after_return_s is not None and result.agent_audio_after_return_s > 0
    resume = call.conversation.schema.spec.hold.resume  # type: ignore[union-attr]
    assert resume in tts.spoken and not call.conversation.state.on_hold
    assert np.isfinite(result.agent_reply_after_return_s)
    await counterpart.stop()
    await link.close()
