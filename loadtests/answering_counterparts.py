"""SIMULATED counterparts that answer an outbound call: a voicemail greeting ending in a beep, a
call screener, a phone menu's greeting, a person, silence, a fax. Synthetic voices (espeak-ng,
``loadtests/voice.py``), synthetic tones; nothing here is a real answering machine.

- ``render_answer(greeting)``: the counterpart's µ-law 8 kHz audio for one entry of
  ``loadtests/greetings/*.yaml`` (lead silence, speech, a beep for voicemail, fax tones).
- ``AnsweringCounterpart``: plays that audio on the real Media Streams protocol, paced in 20 ms
  frames, to any ``send`` (a websocket's, or a link's ``handle`` in-process), and keeps what the
  agent sent back (media, marks) with the stream time it arrived at, echoing marks as Twilio does.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from common.audio import TWILIO_FRAME_BYTES, ULAW_SILENCE, pcm16_to_ulaw
from edge.media.tones import sine
from edge.twilio import protocol
from loadtests.voice import EspeakVoice

GREETINGS_DIR = Path(__file__).resolve().parent / "greetings"
RATE = 8000
DEFAULT_LEAD_MS = 400  # people (and machines) take a moment after the line connects
BEEP_S = 0.45
TAIL_S = 1.5  # quiet after the greeting (a voicemail records it; a person waits)
SILENCE_S = 6.0


def load_greetings(half: str) -> list[dict[str, Any]]:
    """The ``dev`` or ``test`` half of the greeting set."""
    data = yaml.safe_load((GREETINGS_DIR / f"{half}.yaml").read_text())
    return list(data["greetings"])


def _quiet(seconds: float) -> bytes:
    n = int(seconds * RATE)
    return bytes([ULAW_SILENCE]) * (n - n % TWILIO_FRAME_BYTES)


def _tone(freq: float, seconds: float) -> bytes:
    return pcm16_to_ulaw(sine(freq, seconds, RATE, level=6000.0))


def render_answer(greeting: dict[str, Any]) -> bytes:
    """µ-law 8 kHz audio of how this counterpart answers (whole 20 ms frames)."""
    lead = _quiet(greeting.get("lead_ms", DEFAULT_LEAD_MS) / 1000)
    tone = greeting.get("tone")
    if tone == "cng":  # a calling fax: 0.5 s of 1100 Hz every 3.5 s
        return lead + (_tone(1100.0, 0.5) + _quiet(3.0)) * 2
    if tone == "ced":  # an answering fax/modem: 2100 Hz for ~3 s
        return lead + _tone(2100.0, 3.0) + _quiet(1.0)
    text = str(greeting.get("text") or "")
    if not text:
        return lead + _quiet(SILENCE_S)
    speech = EspeakVoice(greeting.get("voice", "en-us"), int(greeting.get("wpm", 160))).mulaw(text)
    audio = lead + speech
    if greeting.get("beep"):
        audio += _quiet(0.3) + _tone(float(greeting["beep"]), BEEP_S)
    audio += _quiet(TAIL_S)
    return audio + bytes([ULAW_SILENCE]) * (-len(audio) % TWILIO_FRAME_BYTES)


def beep_end_s(greeting: dict[str, Any], audio: bytes) -> float | None:
    """Stream time (s) at which the rendered voicemail's beep ends, or None without one."""
    if not greeting.get("beep"):
        return None
    return (len(audio) - len(_quiet(TAIL_S))) / RATE


@dataclass
class AnsweringCounterpart:
    """Plays one answer on the Media Streams protocol and records the agent's replies."""

    audio: bytes
    send: Callable[[str], Awaitable[None]]
    stream_sid: str = "MZsim"
    call_sid: str = "CAsim"
    token: str = ""
    agent_audio_at: list[float] = field(default_factory=list)  # stream time of each agent frame
    marks: list[str] = field(default_factory=list)
    agent_bytes: int = 0
    _seq: int = 0
    _t0: float = 0.0

    def _next(self) -> int:
        self._seq += 1
        return self._seq

    async def receive(self, message: dict[str, Any]) -> None:
        """What the agent side sent (the link's ``send_json``)."""
        now = time.monotonic() - self._t0
        if message.get("event") == "media":
            self.agent_audio_at.append(now)
            self.agent_bytes += len(message["media"]["payload"]) * 3 // 4
        elif message.get("event") == "mark":
            self.marks.append(message["mark"]["name"])
            name = message["mark"]["name"]
            await self.send(json.dumps(protocol.mark_in(self.stream_sid, self._next(), name)))

    async def play(self, until: Callable[[], bool] | None = None, extra_quiet_s: float = 0.0) -> None:
        """Connect, start, then stream the audio in real time (and ``extra_quiet_s`` of line
        silence after it) until done or ``until()`` holds."""
        await self.send(json.dumps(protocol.connected_in()))
        start = protocol.start_in(
            self.stream_sid, self.call_sid, "ACsim", {"token": self.token}, self._next()
        )
        self._t0 = time.monotonic()
        await self.send(json.dumps(start))
        audio = self.audio + _quiet(extra_quiet_s)
        frames = len(audio) // TWILIO_FRAME_BYTES
        for i in range(frames):
            if until is not None and until():
                return
            delay = self._t0 + i * 0.02 - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            frame = audio[i * TWILIO_FRAME_BYTES : (i + 1) * TWILIO_FRAME_BYTES]
            await self.send(json.dumps(protocol.media_in(self.stream_sid, self._next(), i + 1, frame)))

    async def stop(self) -> None:
        await self.send(json.dumps(protocol.stop_in(self.stream_sid, self._next(), "ACsim", self.call_sid)))

    @property
    def agent_seconds(self) -> float:
        return self.agent_bytes / RATE


def voicemail_greeting() -> dict[str, Any]:
    """A SIMULATED voicemail (not from the greeting sets): a greeting, then a 1 kHz beep."""
    return {
        "voice": "en-gb+f2",
        "wpm": 165,
        "beep": 1000,
        "text": "Hello, you've reached Jamie at the Elm Street office. I'm not able to take your call, "
        "so please leave a message after the tone.",
    }


def screener_greeting() -> dict[str, Any]:
    """A SIMULATED call screener (not from the greeting sets)."""
    return {
        "voice": "en-us+f3",
        "wpm": 170,
        "text": "Hi, this number uses a call screening service. Please say your name and why you're calling.",
    }
