"""The agent's audio out to Twilio: real-time pacing, a mark after each chunk, and clear.

``play(mulaw, mark)`` queues audio; one pacing task sends 160-byte ``media`` frames on a
real-time schedule at most ``playback_lead_ms`` ahead of the estimated play-out position, then
a ``mark``. Twilio echoes a mark once the audio before it has played, so the echoed marks say
what the caller heard. ``clear()`` stops the audio at once and returns exactly that: the marks
heard since the previous clear and the ones that were cut.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, Field

from common.audio import TwilioFramer
from edge.media.config import EdgeConfig
from edge.twilio import protocol

log = logging.getLogger("voxray.playout")
FRAME_S = 0.020

Send = Callable[[dict[str, Any]], Awaitable[None]]


class ClearResult(BaseModel):
    """What the caller heard of the agent audio when playback was cleared."""

    heard: list[str] = Field(description="Marks echoed by Twilio since the previous clear, in order.")
    unheard: list[str] = Field(description="Marks queued or sent but never played: drop their text.")
    interrupted: str | None = Field(None, description="The mark of the chunk that was playing when cut.")
    interrupted_played_ms: float = Field(0.0, description="Estimated part of that chunk already played.")


@dataclass
class _OutChunk:
    frames: deque[bytes]
    mark: str
    n_frames: int
    started_at: float | None = None  # estimated time its first frame plays


class Playout:
    def __init__(self, send: Send, config: EdgeConfig, clock: Callable[[], float], call_id: str = ""):
        self.config = config
        self.call_id = call_id
        self.stream_sid = ""
        self._send_json = send
        self._clock = clock
        self.stats: dict[str, float] = dict.fromkeys(
            ("frames_out", "marks_sent", "marks_heard", "unknown_marks", "clears", "playback_gaps"), 0
        )
        self._out: deque[_OutChunk] = deque()
        self._wake = asyncio.Event()
        self._play_head = 0.0  # estimated time the last sent frame finishes playing
        self._pacer: asyncio.Task[None] | None = None
        self._sent_unheard: deque[tuple[str, float, float]] = deque()  # (mark, start, end), estimated
        self._cleared: set[str] = set()
        self.heard_marks: list[str] = []
        self._heard_since_clear: list[str] = []
        self._heard: set[str] = set()
        self._waiters: dict[str, list[asyncio.Future[bool]]] = {}
        self.closed = False
        # taps (a call recorder): each frame with the time it plays; the time playback was cleared
        self.on_sent: Callable[[float, bytes], None] | None = None
        self.on_cleared: Callable[[float], None] | None = None

    @property
    def is_playing(self) -> bool:
        """Agent audio is queued, or sent and not yet confirmed played by a mark (within
        ``mark_grace_ms`` of when it should have finished)."""
        if self._out:
            return True
        if not self._sent_unheard:
            return False
        return self._clock() < self._sent_unheard[-1][2] + self.config.mark_grace_ms / 1000.0

    @property
    def queued(self) -> int:
        """Chunks not yet sent in full (their marks are still to go out)."""
        return len(self._out)

    def play(self, mulaw: bytes, mark: str) -> None:
        """Queue agent audio (µ-law 8 kHz); a ``mark`` named ``mark`` follows its last frame.
        A partial last frame is padded with µ-law silence."""
        if not mark:
            raise ValueError("mark must be a non-empty name")
        if mark in self._heard or mark in self._cleared or any(c.mark == mark for c in self._out):
            raise ValueError(f"mark {mark!r} was already used on this stream")
        framer = TwilioFramer()
        frames = framer.push(mulaw)
        tail = framer.flush(pad=True)
        if tail:
            frames.append(tail)
        self._out.append(_OutChunk(deque(frames), mark, len(frames)))
        if self._pacer is None and not self.closed:
            self._pacer = asyncio.get_running_loop().create_task(self._run_pacer())
        self._wake.set()

    async def _send(self, message: dict[str, Any]) -> bool:
        try:
            await self._send_json(message)
        except Exception as exc:  # the socket went away: the call is ending
            log.info("call %s: websocket send failed (%s)", self.call_id, type(exc).__name__)
            return False
        return True

    async def _run_pacer(self) -> None:
        lead = self.config.playback_lead_ms / 1000.0
        while True:
            if not self._out:
                self._wake.clear()
                await self._wake.wait()
                continue
            chunk = self._out[0]
            if chunk.frames:
                now = self._clock()
                if self._play_head < now:
                    if self._play_head > 0.0 and chunk.started_at is not None:
                        self.stats["playback_gaps"] += 1  # underrun inside a chunk: we were late
                    self._play_head = now
                send_at = self._play_head - lead
                if send_at > now:
                    await asyncio.sleep(send_at - now)
                    continue  # re-check: clear() may have emptied the queue meanwhile
                frame = chunk.frames.popleft()
                if chunk.started_at is None:
                    chunk.started_at = self._play_head
                if not await self._send(protocol.media_out(self.stream_sid, frame)):
                    return
                self.stats["frames_out"] += 1
                if self.on_sent is not None:
                    self.on_sent(self._play_head, frame)
                self._play_head += FRAME_S
                continue
            # every frame of this chunk is out: its mark follows
            self._out.popleft()
            self._sent_unheard.append((chunk.mark, chunk.started_at or self._play_head, self._play_head))
            if not await self._send(protocol.mark_out(self.stream_sid, chunk.mark)):
                return
            self.stats["marks_sent"] += 1

    def on_mark(self, name: str) -> None:
        """Twilio echoed a mark: its audio, and everything before it, has played."""
        if name in self._cleared:
            return  # Twilio echoes cleared marks back after a clear: they were not heard
        idx = next((i for i, m in enumerate(self._sent_unheard) if m[0] == name), None)
        if idx is None:
            self.stats["unknown_marks"] += 1
            return
        for _ in range(idx + 1):  # marks play in order
            heard = self._sent_unheard.popleft()[0]
            self.heard_marks.append(heard)
            self._heard_since_clear.append(heard)
            self._heard.add(heard)
            self.stats["marks_heard"] += 1
            for fut in self._waiters.pop(heard, []):
                if not fut.done():
                    fut.set_result(True)

    async def wait_played(self, mark: str, timeout: float) -> bool:
        """True once Twilio echoed ``mark`` (the caller heard that audio); False when it was
        cleared, never queued, or ``timeout`` seconds passed."""
        if mark in self._heard:
            return True
        pending = any(c.mark == mark for c in self._out) or any(m[0] == mark for m in self._sent_unheard)
        if not pending:
            return False
        fut: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(mark, []).append(fut)
        try:
            return await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            return False
        finally:
            waiters = self._waiters.get(mark)
            if waiters and fut in waiters:
                waiters.remove(fut)

    async def clear(self) -> ClearResult:
        """Stop agent audio now: Twilio ``clear``, queued audio dropped. Returns the marks the
        caller heard since the previous clear and the ones that were cut."""
        now = self._clock()
        unheard = [m[0] for m in self._sent_unheard] + [c.mark for c in self._out]
        interrupted: str | None = None
        played_ms = 0.0
        for mark, start, end in self._sent_unheard:
            if start <= now < end or now < start:
                interrupted = mark
                played_ms = max(0.0, (now - start) * 1000.0)
                break
        if interrupted is None and self._out and self._out[0].started_at is not None:
            interrupted = self._out[0].mark
            played_ms = max(0.0, (now - self._out[0].started_at) * 1000.0)
        self._out.clear()
        self._sent_unheard.clear()
        self._play_head = now
        if self.on_cleared is not None:
            self.on_cleared(now)
        self._cleared.update(unheard)
        for mark in unheard:
            for fut in self._waiters.pop(mark, []):
                if not fut.done():
                    fut.set_result(False)
        heard = self._heard_since_clear
        self._heard_since_clear = []
        self.stats["clears"] += 1
        await self._send(protocol.clear_out(self.stream_sid))
        return ClearResult(
            heard=heard, unheard=unheard, interrupted=interrupted, interrupted_played_ms=played_ms
        )

    async def close(self) -> None:
        self.closed = True
        for futures in self._waiters.values():
            for fut in futures:
                if not fut.done():
                    fut.set_result(False)
        self._waiters.clear()
        if self._pacer is not None and not self._pacer.done():
            self._pacer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pacer
