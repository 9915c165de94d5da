"""A SIMULATED representative who puts the agent on hold, on the real Media Streams protocol.

The script: listen to the agent's opening, greet, say "let me put you on hold", wait for the
agent's short reply, play hold music (sox-made, ``loadtests/hold_music.py``) for ``music_s``
seconds, optionally ``silence_s`` of a quiet line, then come back with a line and listen to the
agent's answer. It speaks in an espeak-ng voice (``loadtests/voice.py``), unlike the agent's
Piper voice, paced in 20 ms frames as Twilio sends them, echoes marks once their audio has
"played", and records when the agent's audio arrived (none may arrive during the hold).

Over a websocket (``python -m loadtests.hold_counterpart ws://…/twilio/media/{call_id}
--token …``) or in-process: ``HoldCounterpart(send=link.handle)`` with ``receive`` as the
link's ``send_json``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import BaseModel, Field

from common.audio import TWILIO_FRAME_BYTES
from edge.twilio import protocol
from loadtests.hold_music import DEV_TUNES, HoldMusic, Tune
from loadtests.voice import SILENCE_FRAME, EspeakVoice, frames_of

FRAME_S = 0.020
AGENT_DONE_S = 0.8  # no agent audio for this long after it started: its reply is over


class HoldScript(BaseModel):
    greeting: str = "Utilization review, this is Dana. How can I help you?"
    hold_line: str = "Okay, let me put you on hold while I pull that up."
    music_s: float = Field(8.0, ge=0)
    silence_s: float = Field(0.0, ge=0)
    return_line: str = "Thanks for holding. Are you still there?"
    voice: str = "en-gb-x-rp+f3"
    wpm: int = 150
    tune: str = DEV_TUNES[0].name


class HoldCallResult(BaseModel):
    agent_frames_during_hold: int = 0  # agent audio while the music (and silence) played
    agent_reply_after_return_s: float | None = None  # from the return line's end to agent audio
    agent_audio_after_return_s: float = 0.0
    hold_started_at: float | None = None  # stream seconds
    hold_ended_at: float | None = None
    closed_by_agent: bool = False


class HoldCounterpart:
    def __init__(
        self,
        send: Callable[[str], Awaitable[None]],
        script: HoldScript | None = None,
        token: str = "",
        stream_sid: str = "MZhold",
        call_sid: str = "CAhold",
    ) -> None:
        self.send = send
        self.script = script or HoldScript()
        self.token = token
        self.stream_sid = stream_sid
        self.call_sid = call_sid
        self.voice = EspeakVoice(self.script.voice, self.script.wpm)
        self.result = HoldCallResult()
        self.agent_audio_at: list[tuple[float, float]] = []  # (stream time, seconds of audio)
        self._seq = 0
        self._chunk = 0
        self._t0 = 0.0
        self._play_end = 0.0
        self._pending_marks: list[tuple[float, str]] = []
        self._last_agent = 0.0
        self.closed = False

    def _now(self) -> float:
        return time.monotonic() - self._t0

    def _next(self) -> int:
        self._seq += 1
        return self._seq

    # ---- what the agent side sends --------------------------------------------------------
    async def receive(self, message: dict[str, Any]) -> None:
        now = time.monotonic()
        event = message.get("event")
        if event == "media":
            seconds = len(message["media"]["payload"]) * 3 / 4 / 8000
            self.agent_audio_at.append((now - self._t0, seconds))
            self._play_end = max(self._play_end, now) + seconds
            self._last_agent = now
        elif event == "mark":
            self._pending_marks.append((self._play_end, message["mark"]["name"]))
        elif event == "clear":
            for _, name in self._pending_marks:
                await self._echo(name)
            self._pending_marks.clear()
            self._play_end = now

    async def _echo(self, name: str) -> None:
        await self.send(json.dumps(protocol.mark_in(self.stream_sid, self._next(), name)))

    # ---- what it says and plays -----------------------------------------------------------
    async def _frames(self, frames: list[bytes]) -> None:
        """Send ``frames`` paced at 20 ms, echoing marks whose audio has played meanwhile."""
        for frame in frames:
            if self.closed:
                return
            self._chunk += 1
            payload = protocol.media_in(self.stream_sid, self._next(), self._chunk, frame)
            await self.send(json.dumps(payload))
            while self._pending_marks and self._pending_marks[0][0] <= time.monotonic():
                await self._echo(self._pending_marks.pop(0)[1])
            delay = self._t0 + self._chunk * FRAME_S - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)

    async def _quiet(self, seconds: float) -> None:
        await self._frames([SILENCE_FRAME] * int(seconds / FRAME_S))

    async def _listen(self, timeout_s: float = 15.0) -> None:
        """Send line silence until the agent's reply has started and ended (or ``timeout_s``)."""
        since = time.monotonic()
        deadline = since + timeout_s
        while time.monotonic() < deadline and not self.closed:
            now = time.monotonic()
            started = self._last_agent > since
            if started and now - self._last_agent >= AGENT_DONE_S and now >= self._play_end:
                return
            await self._quiet(0.1)

    async def _say(self, text: str) -> float:
        mulaw = await asyncio.to_thread(self.voice.mulaw, text)
        await self._frames(frames_of(mulaw))
        return time.monotonic()

    def _music(self) -> bytes:
        tune: Tune = next(t for t in DEV_TUNES if t.name == self.script.tune)
        audio = HoldMusic().mulaw(tune, self.script.music_s)
        return audio[: len(audio) - len(audio) % TWILIO_FRAME_BYTES]

    async def run(self, until: Callable[[], bool] | None = None) -> HoldCallResult:
        """The whole script; ``until()`` (the link ended the call) stops it early."""
        script = self.script
        music = await asyncio.to_thread(self._music)
        await self.send(json.dumps(protocol.connected_in()))
        self._t0 = time.monotonic()
        start = protocol.start_in(
            self.stream_sid, self.call_sid, "ACsim", {"token": self.token}, self._next()
        )
        await self.send(json.dumps(start))
        await self._listen()  # the agent's opening
        await self._say(script.greeting)
        await self._listen()
        await self._say(script.hold_line)
        await self._listen(timeout_s=6.0)  # "Sure, take your time."
        self.result.hold_started_at = self._now()
        await self._frames(frames_of(music))
        await self._quiet(script.silence_s)
        self.result.hold_ended_at = self._now()
        if until is not None and until():
            self.result.closed_by_agent = True
            return self.result
        said_at = await self._say(script.return_line)
        await self._listen()
        hold = (self.result.hold_started_at, self.result.hold_ended_at)
        self.result.agent_frames_during_hold = sum(
            int(seconds / FRAME_S) for at, seconds in self.agent_audio_at if hold[0] <= at < hold[1]
        )
        after = [(at, s) for at, s in self.agent_audio_at if at >= said_at - self._t0]
        if after:
            self.result.agent_reply_after_return_s = after[0][0] - (said_at - self._t0)
            self.result.agent_audio_after_return_s = sum(s for _, s in after)
        return self.result

    async def stop(self) -> None:
        self.closed = True
        with contextlib.suppress(Exception):
            await self.send(
                json.dumps(protocol.stop_in(self.stream_sid, self._next(), "ACsim", self.call_sid))
            )


async def run_over_websocket(url: str, token: str, script: HoldScript) -> HoldCallResult:
    import websockets

    async with websockets.connect(url, max_size=2**22) as ws:

        async def send(raw: str) -> None:
            await ws.send(raw)

        counterpart = HoldCounterpart(send, script, token)

        async def receive() -> None:
            with contextlib.suppress(Exception):
                async for raw in ws:
                    await counterpart.receive(json.loads(raw))
            counterpart.closed = True

        reader = asyncio.create_task(receive())
        try:
            return await counterpart.run(until=lambda: counterpart.closed)
        finally:
            await counterpart.stop()
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader


def main() -> None:
    ap = argparse.ArgumentParser(description="A simulated representative who puts the agent on hold.")
    ap.add_argument("url", help="ws://host:port/twilio/media/{call_id}")
    ap.add_argument("--token", default="", help="the call's stream token (customParameters.token)")
    ap.add_argument("--music-s", type=float, default=20.0)
    ap.add_argument("--silence-s", type=float, default=0.0)
    args = ap.parse_args()
    script = HoldScript(music_s=args.music_s, silence_s=args.silence_s)
    print(asyncio.run(run_over_websocket(args.url, args.token, script)).model_dump_json(indent=2))


if __name__ == "__main__":
    main()
