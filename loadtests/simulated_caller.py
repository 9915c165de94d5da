"""A simulated telephone counterpart that speaks the Twilio Media Streams protocol.

``SimulatedCaller`` connects to ``WS /twilio/media/{call_id}`` exactly as Twilio does:
``connected``, then ``start`` (streamSid, callSid, customParameters, mediaFormat), then one
``media`` message of 20 ms µ-law every 20 ms of real time (silence between lines; increasing
``sequenceNumber``/``chunk``/``timestamp``), and ``stop`` at the end. It speaks the lines of a
persona script (``loadtests/personas/*.yaml``) synthesised by Piper in-process, listens to the
agent's audio in real time like a phone would (echoing each ``mark`` once the audio before it
has "played", and every pending mark at once on ``clear``, as Twilio does) and records, per
caller line, the voice-to-voice latency: from the caller's last speech frame to the first agent
``media`` frame after it.

With ``auth_token`` the websocket handshake carries ``X-Twilio-Signature`` computed as Twilio
does for Media Streams (HMAC-SHA1 over the stream URL with no parameters).

Options per persona turn: ``barge_in_at_ms`` (start this line that long into the agent's
reply, talking over it) and ``backchannel_at_ms`` (say "mhm" that long into the agent's reply
and keep listening). Synthesised lines are cached in memory and on disk (``speech_cache_dir``,
default ``loadtests/.speech_cache``, which is not tracked by git).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, Field

from edge.twilio import protocol
from loadtests.persona import Persona, PersonaTurn, load_persona
from loadtests.voice import SILENCE_FRAME, CachedVoice, PersonaVoice, frames_of

FRAME_S = 0.020


# --------------------------------------------------------------------------- results


class TurnResult(BaseModel):
    index: int
    text: str
    barge_in: bool = False
    backchannel: bool = Field(
        False, description="The caller said a backchannel during the reply to this line."
    )
    speech_start: float = Field(description="monotonic time the first frame of the line was sent")
    speech_end: float = Field(description="monotonic time the last frame of the line was sent")
    voice_to_voice_ms: float | None = Field(
        None, description="Last caller speech frame → first agent media frame after it; None = no reply."
    )
    agent_audio_ms: float = 0.0
    agent_frames: int = 0
    agent_audio: bytes = Field(b"", repr=False, description="µ-law of the agent's reply to this line.")
    marks: list[str] = Field(default_factory=list, description="Marks the agent sent during the reply.")
    clears: int = 0


class CallResult(BaseModel):
    persona: str
    stream_sid: str
    call_sid: str
    opening_agent_audio_ms: float = Field(0.0, description="Agent audio before the caller's first line.")
    opening_agent_audio: bytes = Field(b"", repr=False)
    turns: list[TurnResult] = Field(default_factory=list)
    marks_received: list[str] = Field(default_factory=list)
    marks_echoed: list[str] = Field(default_factory=list)
    clear_events: list[float] = Field(default_factory=list, description="monotonic times of `clear`.")
    backchannels: list[float] = Field(default_factory=list, description="monotonic times backchannels began.")
    frames_sent: int = 0
    frames_received: int = 0
    closed_by_server: bool = False
    errors: list[str] = Field(default_factory=list)

    @property
    def latencies_ms(self) -> list[float]:
        return [t.voice_to_voice_ms for t in self.turns if t.voice_to_voice_ms is not None]


# --------------------------------------------------------------------------- caller


class _Listener:
    """What the phone has received from the agent and is "playing"."""

    def __init__(self) -> None:
        self.play_end = 0.0  # when the audio received so far finishes playing
        self.last_media_at = 0.0
        self.frames = 0
        self.audio = bytearray()
        self.reply_started_at: float | None = None  # first agent frame of the current reply
        self.first_frame_after: float | None = None
        self.marks: list[str] = []
        self.pending_marks: list[tuple[float, str]] = []
        self.clears = 0
        self.changed = asyncio.Event()


class SimulatedCaller:
    """Drives one simulated call over a media websocket (see the module docstring)."""

    def __init__(
        self,
        url: str,
        persona: Persona | str,
        *,
        voice: CachedVoice | None = None,
        custom_parameters: dict[str, str] | None = None,
        agent_reply_timeout_s: float = 20.0,
        agent_done_silence_ms: int = 700,
        barge_in_at_ms: int | None = None,
        barge_in_turn: int | None = None,
        backchannel_at_ms: int | None = None,
        backchannel_turn: int | None = None,
        hang_up_after_s: float = 5.0,
        extra_headers: dict[str, str] | None = None,
        auth_token: str | None = None,
    ) -> None:
        self.url = url
        self.persona = persona if isinstance(persona, Persona) else load_persona(persona)
        self.voice: CachedVoice = voice or PersonaVoice.shared(length_scale=self.persona.length_scale)
        self.custom_parameters = {**self.persona.custom_parameters, **(custom_parameters or {})}
        self.agent_reply_timeout_s = agent_reply_timeout_s
        self.agent_done_silence_s = agent_done_silence_ms / 1000.0
        self.hang_up_after_s = hang_up_after_s
        self.extra_headers = dict(extra_headers or {})
        if auth_token:
            # Twilio signs the websocket handshake: HMAC-SHA1 of the stream URL, no params
            from twilio.request_validator import RequestValidator

            self.extra_headers["X-Twilio-Signature"] = RequestValidator(auth_token).compute_signature(url, {})
        turns = [t.model_copy() for t in self.persona.turns]
        if barge_in_at_ms is not None:
            idx = barge_in_turn if barge_in_turn is not None else min(1, len(turns) - 1)
            turns[idx] = turns[idx].model_copy(update={"barge_in_at_ms": barge_in_at_ms})
        if backchannel_at_ms is not None:
            idx = backchannel_turn if backchannel_turn is not None else min(1, len(turns) - 1)
            turns[idx] = turns[idx].model_copy(update={"backchannel_at_ms": backchannel_at_ms})
        self.turns = turns
        self.stream_sid = "MZ" + uuid.uuid4().hex
        self.call_sid = "CA" + uuid.uuid4().hex
        self.account_sid = "AC" + "0" * 32
        self._seq = 0
        self._chunk = 0
        self._speech: asyncio.Queue[tuple[list[bytes], asyncio.Future[tuple[float, float]]]] = asyncio.Queue()
        self._send_lock = asyncio.Lock()
        self._listener = _Listener()
        self._ws: Any = None
        self._closed = asyncio.Event()
        self._media_task: asyncio.Task[None] | None = None

    # -- wire --------------------------------------------------------------

    async def _send(self, message: dict[str, Any]) -> None:
        async with self._send_lock:
            await self._ws.send(json.dumps(message))

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    async def _send_start(self) -> None:
        await self._send(protocol.connected_in())
        await self._send(
            protocol.start_in(
                self.stream_sid, self.call_sid, self.account_sid, self.custom_parameters, self._next_seq()
            )
        )

    async def _media_loop(self) -> None:
        """One frame every 20 ms on an absolute schedule; queued speech, else silence."""
        t0 = time.monotonic()
        current: list[bytes] = []
        pos = 0
        fut: asyncio.Future[tuple[float, float]] | None = None
        started = 0.0
        try:
            while not self._closed.is_set():
                if pos >= len(current) and not self._speech.empty():
                    current, fut = self._speech.get_nowait()
                    pos = 0
                    started = 0.0
                if pos < len(current):
                    frame = current[pos]
                    pos += 1
                else:
                    frame = SILENCE_FRAME
                self._chunk += 1
                if fut is not None and pos == 1 and started == 0.0:
                    started = time.monotonic()
                await self._send(protocol.media_in(self.stream_sid, self._next_seq(), self._chunk, frame))
                self.result.frames_sent += 1
                if fut is not None and pos >= len(current) and not fut.done():
                    fut.set_result((started, time.monotonic()))
                    fut = None
                delay = t0 + self._chunk * FRAME_S - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
        except Exception as exc:  # the socket closed under us: the call is over
            if not self._closed.is_set():
                self.result.closed_by_server = True
                self.result.errors.append(f"send: {type(exc).__name__}")
        finally:
            # nobody may wait forever for a line that will never finish
            now = time.monotonic()
            pending = [fut] if fut is not None else []
            while not self._speech.empty():
                pending.append(self._speech.get_nowait()[1])
            for f in pending:
                if not f.done():
                    f.set_result((started or now, now))
            self._listener.changed.set()

    async def _receive_loop(self) -> None:
        lst = self._listener
        try:
            async for raw in self._ws:
                try:
                    msg = protocol.parse_outbound(raw)
                except ValueError:
                    self.result.errors.append("malformed message from server")
                    continue
                now = time.monotonic()
                if isinstance(msg, protocol.MediaOut):
                    payload = msg.audio
                    lst.frames += 1
                    self.result.frames_received += 1
                    lst.audio += payload
                    if lst.first_frame_after is None:
                        lst.first_frame_after = now
                    if lst.reply_started_at is None:
                        lst.reply_started_at = now
                    lst.play_end = max(lst.play_end, now) + len(payload) / 8000.0
                    lst.last_media_at = now
                elif isinstance(msg, protocol.MarkOut):
                    name = msg.mark.name
                    lst.marks.append(name)
                    self.result.marks_received.append(name)
                    lst.pending_marks.append((lst.play_end, name))
                elif isinstance(msg, protocol.ClearOut):
                    lst.clears += 1
                    self.result.clear_events.append(now)
                    lst.play_end = now
                    # Twilio returns every pending mark at once after a clear
                    for _, name in lst.pending_marks:
                        await self._echo_mark(name)
                    lst.pending_marks.clear()
                lst.changed.set()
        except Exception as exc:  # the server closed the socket
            if not self._closed.is_set():
                self.result.closed_by_server = True
                self.result.errors.append(f"receive: {type(exc).__name__}")
        finally:
            if not self._closed.is_set():
                self.result.closed_by_server = True
            lst.changed.set()

    async def _echo_mark(self, name: str) -> None:
        self.result.marks_echoed.append(name)
        await self._send(protocol.mark_in(self.stream_sid, self._next_seq(), name))

    async def _mark_loop(self) -> None:
        """Echo marks once the audio before them has played (in order)."""
        lst = self._listener
        while not self._closed.is_set():
            while lst.pending_marks and lst.pending_marks[0][0] <= time.monotonic():
                _, name = lst.pending_marks.pop(0)
                await self._echo_mark(name)
            await asyncio.sleep(0.005)

    # -- behaviour -----------------------------------------------------------

    async def _say(self, text: str) -> tuple[float, float]:
        """Queue ``text``; returns (first frame sent, last frame sent) monotonic times."""
        mulaw = await asyncio.to_thread(self.voice.mulaw, text)
        fut: asyncio.Future[tuple[float, float]] = asyncio.get_running_loop().create_future()
        if self.result.closed_by_server:
            now = time.monotonic()
            return now, now
        await self._speech.put((frames_of(mulaw), fut))
        while not fut.done():
            if self._media_task is not None and self._media_task.done():  # socket gone
                now = time.monotonic()
                return now, now
            await asyncio.wait({fut}, timeout=0.1)
        return fut.result()

    def _agent_idle(self) -> bool:
        lst = self._listener
        now = time.monotonic()
        return (
            lst.reply_started_at is not None
            and now - lst.last_media_at >= self.agent_done_silence_s
            and now >= lst.play_end
            and not lst.pending_marks
        )

    async def _wait(self, predicate: Any, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not predicate():
            if self.result.closed_by_server or time.monotonic() >= deadline:
                return bool(predicate())
            self._listener.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._listener.changed.wait(), 0.02)
        return True

    def _played_ms(self) -> float:
        start = self._listener.reply_started_at
        return 0.0 if start is None else (time.monotonic() - start) * 1000.0

    def _reset_reply(self) -> None:
        lst = self._listener
        lst.audio = bytearray()
        lst.frames = 0
        lst.marks = []
        lst.clears = 0
        lst.reply_started_at = None
        lst.first_frame_after = None

    async def _listen_to_agent(self, turn: PersonaTurn | None, timeout_s: float | None = None) -> None:
        """Wait for the agent's reply to start and finish; stop early at the barge-in point of
        ``turn`` (the caller's next line), saying its backchannel on the way."""
        wait_s = self.agent_reply_timeout_s if timeout_s is None else timeout_s
        await self._wait(lambda: self._listener.reply_started_at is not None, wait_s)
        if self._listener.reply_started_at is None:
            return
        if turn is not None and turn.backchannel_at_ms is not None:
            at = turn.backchannel_at_ms
            if (
                await self._wait(
                    lambda: self._played_ms() >= at or self._agent_idle(), self.agent_reply_timeout_s
                )
                and not self._agent_idle()
            ):
                self.result.backchannels.append(time.monotonic())
                await self._say(turn.backchannel_text)
        if turn is not None and turn.barge_in_at_ms is not None:
            at = turn.barge_in_at_ms
            await self._wait(
                lambda: self._played_ms() >= at or self._agent_idle(), self.agent_reply_timeout_s
            )
            return
        await self._wait(self._agent_idle, self.agent_reply_timeout_s + 60.0)

    def _take_reply(self) -> tuple[bytes, int, list[str], int, float | None]:
        lst = self._listener
        reply = (bytes(lst.audio), lst.frames, list(lst.marks), lst.clears, lst.first_frame_after)
        self._reset_reply()
        return reply

    async def run(self) -> CallResult:
        import websockets

        self.result = CallResult(
            persona=self.persona.name, stream_sid=self.stream_sid, call_sid=self.call_sid
        )
        async with websockets.connect(
            self.url, additional_headers=self.extra_headers or None, max_size=2**22
        ) as ws:
            self._ws = ws
            await self._send_start()
            self._media_task = asyncio.create_task(self._media_loop())
            tasks = [
                self._media_task,
                asyncio.create_task(self._receive_loop()),
                asyncio.create_task(self._mark_loop()),
            ]
            try:
                await self._converse()
            finally:
                self._closed.set()
                for t in tasks:
                    t.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                with contextlib.suppress(Exception):
                    stop = protocol.stop_in(
                        self.stream_sid, self._next_seq(), self.account_sid, self.call_sid
                    )
                    await ws.send(json.dumps(stop))
        return self.result

    async def _converse(self) -> None:
        if not self.persona.speaks_first:
            await self._listen_to_agent(self.turns[0])
        audio, frames, _, _, _ = self._take_reply()
        self.result.opening_agent_audio = audio
        self.result.opening_agent_audio_ms = frames * 20.0
        for i, turn in enumerate(self.turns):
            if self.result.closed_by_server:
                break
            barge = turn.barge_in_at_ms is not None and (i > 0 or not self.persona.speaks_first)
            if not barge:
                await asyncio.sleep(turn.pause_before_ms / 1000.0)
            self._reset_reply()
            start, end = await self._say(turn.say)
            clears_during = self._listener.clears
            self._reset_reply()  # the reply is what the agent sends after the line ended
            next_turn = self.turns[i + 1] if i + 1 < len(self.turns) else None
            backchannels_before = len(self.result.backchannels)
            if next_turn is not None:
                await self._listen_to_agent(next_turn)
            else:
                await self._listen_to_agent(None, timeout_s=self.hang_up_after_s)
            audio, frames, marks, clears, first = self._take_reply()
            self.result.turns.append(
                TurnResult(
                    index=i,
                    text=turn.say,
                    barge_in=barge,
                    backchannel=len(self.result.backchannels) > backchannels_before,
                    speech_start=start,
                    speech_end=end,
                    voice_to_voice_ms=None if first is None else (first - end) * 1000.0,
                    agent_audio_ms=frames * 20.0,
                    agent_frames=frames,
                    agent_audio=audio,
                    marks=marks,
                    clears=clears + clears_during,
                )
            )


async def run_call(url: str, persona: str = "insurance_rep", **kwargs: Any) -> CallResult:
    return await SimulatedCaller(url, persona, **kwargs).run()


def _summary(result: CallResult) -> str:
    lines = [f"persona {result.persona}: {len(result.turns)} turns, {len(result.clear_events)} clears"]
    for t in result.turns:
        v2v = "no reply" if t.voice_to_voice_ms is None else f"{t.voice_to_voice_ms:.0f} ms"
        lines.append(f"  turn {t.index}: voice-to-voice {v2v}, agent audio {t.agent_audio_ms:.0f} ms")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Simulated Twilio caller for a voxray media websocket.")
    ap.add_argument("url", help="ws://host:port/twilio/media/{call_id}")
    ap.add_argument("--persona", default="insurance_rep")
    ap.add_argument("--barge-in-at-ms", type=int)
    ap.add_argument("--backchannel-at-ms", type=int)
    args = ap.parse_args(argv)
    result = asyncio.run(
        run_call(
            args.url,
            args.persona,
            barge_in_at_ms=args.barge_in_at_ms,
            backchannel_at_ms=args.backchannel_at_ms,
        )
    )
    print(_summary(result))


if __name__ == "__main__":
    main()
