"""Keypad both ways through a real ``CallLink`` (no Ray): Twilio ``dtmf`` messages become one
keypad turn of the call (at '#' or after the gap), and a reply chunk with ``keys`` goes out
as in-band DTMF audio that decodes back to the same keys, without text to speech."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from typing import Any

from common.dtmf import detect_keys_ulaw
from common.events import CallerTurn, ReplyChunk, ReplySource, TurnDone, TurnEvent
from common.testing.samples import SAMPLE_CALL_DATA
from common.testing.services import ScriptedSTT, ScriptedTTS
from edge.call_link import CallLink
from edge.media.config import EdgeConfig
from edge.twilio import protocol
from tests.support import InProcessRouter


class Phone:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    async def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)

    def marks(self) -> list[str]:
        return [m["mark"]["name"] for m in self.sent if m["event"] == "mark"]

    def audio(self) -> bytes:
        return b"".join(base64.b64decode(m["media"]["payload"]) for m in self.sent if m["event"] == "media")


async def connect(
    schema: str, tts: ScriptedTTS, gap_ms: int = 300
) -> tuple[InProcessRouter, CallLink, Phone]:
    router = InProcessRouter()
    await router.host.start_call("call-k", schema, SAMPLE_CALL_DATA[schema])
    phone = Phone()
    link = CallLink(
        "call-k", router, ScriptedSTT([]), tts, phone.send, EdgeConfig(smart_turn=False, keypad_gap_ms=gap_ms)
    )
    start = protocol.start_in("MZ1", "CA1", "AC1", {"token": router.stream_token("call-k")})
    await link.handle(json.dumps(start))
    await link.media.drain()
    return router, link, phone


async def press(link: CallLink, keys: str) -> None:
    for n, key in enumerate(keys):
        await link.handle(json.dumps(protocol.dtmf_in("MZ1", 100 + n, key)))
    await link.media.drain()


def keypad_turns(router: InProcessRouter) -> list[CallerTurn]:
    return [args[0] for method, args in router.calls if method == "turn" and args[0].mode == "keypad"]


async def test_keys_pressed_during_the_opening_are_kept_and_end_at_the_gap() -> None:
    tts = ScriptedTTS(seconds_per_char=0.01)  # the opening plays for a second or more
    router, link, _ = await connect("sales_qualification", tts)
    await link.settle()  # the opening is handed to playout and plays for over a second
    assert link.media.is_playing
    await press(link, "9")  # the usual opt-out key, pressed over the agent's opening
    await asyncio.sleep(0.2)
    assert keypad_turns(router) == []  # still inside the gap: more keys may follow
    await asyncio.sleep(0.3)
    await link.keypad.settle()
    await link.settle()
    [turn] = keypad_turns(router)
    assert turn.keys == "9" and turn.text == "9"
    call = router.host.calls["call-k"]
    assert call.conversation.state.state == "do_not_call" and link.finished
    await link.close()


async def test_pound_ends_an_entry_at_once_and_the_digits_reach_the_call_as_text() -> None:
    router, link, _ = await connect("prior_auth", ScriptedTTS(seconds_per_char=0.0005), gap_ms=5000)
    await link.settle()
    router.host.calls["call-k"].conversation.state.state = "get_reference"
    await press(link, "A4418203#")  # 'A' is no keypad key: ignored
    await link.settle()
    [turn] = keypad_turns(router)
    assert turn.keys == "4418203#" and link.keypad.ignored == 1
    call = router.host.calls["call-k"]
    assert call.conversation.state.slots["reference_number"] == "4418203"
    await link.close()


async def test_a_reply_chunk_with_keys_is_played_as_dtmf_that_decodes_to_those_keys() -> None:
    tts = ScriptedTTS(seconds_per_char=0.0005)
    _, link, phone = await connect("prior_auth", tts)
    await link.settle()
    spoken, before = len(tts.spoken), len(phone.audio())

    async def reply() -> AsyncIterator[TurnEvent]:
        yield ReplyChunk(turn=1, index=0, text="(pressed 2)", source=ReplySource.SCRIPT, keys="2")
        yield ReplyChunk(
            turn=1, index=1, text="(pressed 1386950426#)", source=ReplySource.SCRIPT, keys="1386950426#"
        )
        yield TurnDone(turn=1, agent="", source=ReplySource.SCRIPT, state="greeting")

    await link._play(reply(), None)
    for _ in range(400):  # paced in real time: about 2.4 s of tones
        if "t1c1k" in phone.marks():
            break
        await asyncio.sleep(0.02)
    assert phone.marks()[-2:] == ["t1c0k", "t1c1k"]
    assert len(tts.spoken) == spoken  # no speech synthesis for key presses
    assert detect_keys_ulaw(phone.audio()[before:]) == "21386950426#"
    await link.close()
