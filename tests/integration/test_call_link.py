"""The call link: utterance → STT → the call's turn → TTS per chunk → playout with marks.

The call runs on a real ``CallHostCore`` in this process (``tests/support.py``); speech to text
and text to speech are scripted stand-ins, so the order of events is fixed. The media stream is
real (Silero VAD is loaded; utterances are handed to the link directly).
"""

from __future__ import annotations

import asyncio
import json
import pickle
from typing import Any

from common.events import EndReason, TurnDone
from common.testing.samples import SAMPLE_CALL_DATA
from common.testing.services import ScriptedLLM, ScriptedSTT, ScriptedTTS
from edge.call_link import CallLink
from edge.media.config import EdgeConfig
from edge.twilio import protocol
from engine.stt_hints import stt_hints
from tests.support import InProcessRouter, utterance

GOODBYE_SCRIPT = [
    "This is Sarah.",
    "Okay, I found the member.",
    "It's approved.",
    "The reference number is A1234567.",
    "No date yet.",
    "Yes, that's correct.",
]


class Phone:
    """The Twilio side of the socket: collects what the link sends, echoes marks on demand."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.echoed: set[str] = set()

    async def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)

    def marks(self) -> list[str]:
        return [m["mark"]["name"] for m in self.sent if m["event"] == "mark"]

    async def echo(self, link: CallLink) -> None:
        for name in self.marks():
            if name not in self.echoed:
                self.echoed.add(name)
                await link.handle(json.dumps(protocol.mark_in("MZ1", 1, name)))


async def connect(
    router: InProcessRouter, stt: ScriptedSTT, tts: ScriptedTTS, token: str | None = None
) -> tuple[CallLink, Phone, str]:
    opened = await router.host.start_call("call-1", "prior_auth", SAMPLE_CALL_DATA["prior_auth"])
    phone = Phone()
    link = CallLink("call-1", router, stt, tts, phone.send, EdgeConfig(smart_turn=False))
    params = {"token": router.stream_token("call-1") if token is None else token}
    await link.handle(json.dumps(protocol.start_in("MZ1", "CA1", "AC1", params)))
    await link.media.drain()
    await link.settle()
    return link, phone, opened.call_id  # type: ignore[union-attr]


async def test_a_wrong_token_is_refused_and_cannot_touch_the_call() -> None:
    router = InProcessRouter()
    link, phone, call_id = await connect(
        router, ScriptedSTT(["This is Sarah."]), ScriptedTTS(), token="forged"
    )
    assert link.finished and not link.authorized and phone.sent == []
    await link.on_utterance(utterance())
    assert ("turn", ()) not in [(m, ()) for m, _ in router.calls]
    assert router.host.calls[call_id].status == "active"
    await link.close()


async def test_opening_then_a_turn_are_spoken_with_marks_and_timed_on_one_clock() -> None:
    router = InProcessRouter()
    tts = ScriptedTTS(seconds_per_char=0.0005, delay_s=0.01)
    link, phone, call_id = await connect(
        router, ScriptedSTT(["This is Sarah, how can I help?"], delay_s=0.02), tts
    )
    assert tts.spoken and tts.spoken[0].startswith("Hi, this is Alex")  # the opening, kept on the host
    assert [m for m in phone.marks() if m.startswith("t0")]
    await link.on_utterance(utterance())
    await link.settle()
    assert any(m.startswith("t1") for m in phone.marks())
    call = router.host.calls[call_id]
    stages = call.turns[-1].stages_ms
    assert stages["stt"] >= 20 and stages["tts_first_audio"] >= 10 and stages["voice_to_voice"] >= 30
    assert call.conversation.state.state == "verify_member"
    await link.close()


async def test_nothing_heard_is_answered_with_the_schema_line() -> None:
    router = InProcessRouter()
    tts = ScriptedTTS(seconds_per_char=0.0005)
    link, _, call_id = await connect(router, ScriptedSTT([""]), tts)
    await link.on_utterance(utterance())
    await link.settle()
    schema = router.host.calls[call_id].conversation.schema
    assert tts.spoken[-1] == schema.fallbacks["stt_failure"].source
    await link.close()


async def test_a_backchannel_over_the_agent_is_ignored_by_the_call() -> None:
    router = InProcessRouter()
    tts = ScriptedTTS(seconds_per_char=0.0005)
    link, _, call_id = await connect(router, ScriptedSTT(["Mhm."]), tts)
    spoken = len(tts.spoken)
    await link.on_utterance(utterance(over_agent=True))
    await link.settle()
    assert link.ignored_over_agent == 1 and len(tts.spoken) == spoken
    assert router.host.calls[call_id].turns == []
    await link.close()


async def test_barge_in_tells_the_call_once_what_was_heard() -> None:
    slow = " ".join(["Well, the weather here has been grey all week."] * 6)
    router = InProcessRouter(llm=ScriptedLLM(slow, seconds_per_token=0.01))
    tts = ScriptedTTS(seconds_per_char=0.01)  # ~0.5 s of audio per sentence
    link, phone, call_id = await connect(
        router, ScriptedSTT(["This is Sarah.", "Do you like the weather?"]), tts
    )
    await phone.echo(link)
    await link.on_utterance(utterance())
    await link.settle()
    await phone.echo(link)
    await link.on_utterance(utterance())  # off-script: a long LLM reply starts playing
    while not [m for m in phone.marks() if m.startswith("t2")]:
        await asyncio.sleep(0.01)
    await phone.echo(link)  # the first sentence was heard
    await link.on_barge_in(await link.media.clear())
    await link.settle()
    call = router.host.calls[call_id]
    assert call.transcript[-1]["text"] == "Well, the weather here has been grey all week."
    assert call.turns[-1].interrupted
    assert [m for m, _ in router.calls].count("interrupt") == 1
    await link.close()


async def test_the_goodbye_plays_to_its_last_mark_before_the_call_ends() -> None:
    router = InProcessRouter()
    tts = ScriptedTTS(seconds_per_char=0.0005)
    link, phone, _ = await connect(router, ScriptedSTT(GOODBYE_SCRIPT), tts)
    for _ in GOODBYE_SCRIPT[:-1]:
        await link.on_utterance(utterance())
        await link.settle()
        await phone.echo(link)
    await link.on_utterance(utterance())  # the last line: the call reaches its terminal state
    while not (phone.marks()[-1].startswith("t6") and link.media.playout.queued == 0):
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.1)
    assert not link.finished  # the goodbye's last mark has not come back yet
    await phone.echo(link)
    await link.settle()
    assert link.finished and link.end_reason == EndReason.COMPLETED
    await link.close()


async def test_each_utterance_is_heard_with_the_hints_of_the_turn_before() -> None:
    router = InProcessRouter()
    stt = ScriptedSTT(["This is Sarah.", "Mhm.", "Okay, I found the member.", "It's approved."])
    link, _, call_id = await connect(router, stt, ScriptedTTS(seconds_per_char=0.0005))
    call = router.host.calls[call_id]
    schema, data = call.conversation.schema, call.conversation.state.call_data
    await link.on_utterance(utterance())  # heard with the opening's hints: greeting → verify_member
    await link.settle()
    await link.on_utterance(utterance(over_agent=True))  # a backchannel: no turn, the hints stay
    for _ in range(2):  # → ask_status, then → get_reference
        await link.on_utterance(utterance())
        await link.settle()
    assert call.conversation.state.state == "get_reference"
    expected = [
        stt_hints(schema, state, data) for state in ("greeting", *["verify_member"] * 2, "ask_status")
    ]
    assert stt.hints == expected
    assert "Jane Doe" in stt.hints[0] and "XKM449812" in stt.hints[0]
    assert stt.hints[3].startswith("approved, denied, pending")
    await link.close()


async def test_a_pause_starts_recognition_and_the_turn_takes_that_transcript() -> None:
    router = InProcessRouter()
    stt = ScriptedSTT(["This is Sarah.", "Okay, I found the member."], delay_s=0.2)
    link, _, call_id = await connect(router, stt, ScriptedTTS(seconds_per_char=0.0005))
    said = utterance()
    link.on_early_audio(said.pcm16_16k)  # at the pause, before the end of turn is decided
    await asyncio.sleep(0.15)
    await link.on_utterance(said)  # the same audio: the caller did not go on
    await link.settle()
    call = router.host.calls[call_id]
    assert stt.heard == 1 and link.early_stt == {"started": 1, "used": 1, "dropped": 0}
    assert call.conversation.state.state == "verify_member"
    assert call.turns[-1].stages_ms["stt"] < 150  # only what was left of the 200 ms was waited for
    await link.close()


async def test_a_caller_who_went_on_is_transcribed_again_whole() -> None:
    router = InProcessRouter()
    stt = ScriptedSTT(["This is", "This is Sarah."], delay_s=0.05)
    link, _, call_id = await connect(router, stt, ScriptedTTS(seconds_per_char=0.0005))
    link.on_early_audio(b"\x01\x00" * 800)  # the first half, then the caller went on
    await asyncio.sleep(0.1)
    whole = utterance()
    await link.on_utterance(whole)
    await link.settle()
    assert stt.heard == 2 and link.early_stt == {"started": 1, "used": 0, "dropped": 1}
    assert router.host.calls[call_id].conversation.state.slots["rep_name"] == "Sarah"
    await link.close()


def test_hints_cross_process_boundaries_but_stay_out_of_dumps() -> None:
    done = TurnDone(turn=1, state="ask_status", stt_hints="approved, Jane Doe")
    assert pickle.loads(pickle.dumps(done)).stt_hints == "approved, Jane Doe"  # as Ray carries it
    assert "stt_hints" not in done.model_dump() and "Jane" not in repr(done)
