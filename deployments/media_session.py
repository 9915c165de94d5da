"""One call's media websocket: the edge (VAD, end-of-turn, pacing, marks) wired to its call host.

Utterances go to the host once each (never per frame); the agent's audio streams back per
clause and is played with a mark after each clause, so on barge-in the transcript keeps only
what the caller heard. The goodbye plays to its last mark before the call ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from actors.host_pool import CallHostPool
from deployments.media_edge import EdgeConfig, StreamInfo, TwilioMediaSession, Utterance

log = logging.getLogger("voxray.media")
GOODBYE_GRACE_S = 5.0


class MediaCall:
    def __init__(
        self,
        call_id: str,
        pool: CallHostPool,
        send_json: Callable[[dict[str, Any]], Awaitable[None]],
        token: str,
        opening: list[str] | None = None,
        config: EdgeConfig | None = None,
    ):
        self.call_id = call_id
        self.pool = pool
        self.token = token
        self.opening = opening or []
        self.session = TwilioMediaSession(
            send_json,
            self._on_utterance,
            self._on_barge_in,
            config,
            call_id=call_id,
            on_start=self._on_start,
            on_stop=self._on_stop,
        )
        self.finished = False
        self.end_reason: str | None = None
        self.ignored_during_playback = 0
        self._authorized = False
        self._turn: asyncio.Task[None] | None = None
        self._turn_marks: list[tuple[str, str]] = []  # (mark, text) of the reply being played

    async def handle(self, raw: str) -> None:
        await self.session.handle_message(raw)

    async def _on_start(self, info: StreamInfo) -> None:
        if not self.token or info.custom_parameters.get("token") != self.token:
            log.warning("call %s: media stream with a wrong token refused", self.call_id)
            self._end("bad_stream_token")
            return
        self._authorized = True
        if self.opening:
            self._run(self.pool.stream(self.call_id, "speak", self.opening))

    async def _on_stop(self) -> None:
        if not self.finished:
            self._end("caller_hung_up")

    async def _on_utterance(self, utterance: Utterance) -> None:
        if not self._authorized or self.finished:
            return
        if self._turn is not None and not self._turn.done():
            await asyncio.wait([self._turn])  # the previous reply finishes first; turns stay in order
        speech_end_wall = time.time() - (time.monotonic() - utterance.speech_end)
        # Said over the agent without barging in: the host transcribes it and drops a mere
        # backchannel ("mhm", "okay"); a short real answer ("no", "wait") is still a turn.
        overlapped = utterance.during_playback and not utterance.barge_in
        events = self.pool.stream(
            self.call_id, "audio_turn", utterance.pcm16_16k, speech_end_wall, overlapped
        )
        self._run(events, keep_marks=overlapped)

    async def _on_barge_in(self) -> None:
        heard = set(self.session.heard_marks)
        heard_text = " ".join(text for mark, text in self._turn_marks if mark in heard)
        if self._turn is not None and not self._turn.done():
            self._turn.cancel()
        with contextlib.suppress(Exception):
            await self.pool.call(self.call_id, "barge_in", heard_text)

    def _run(self, events: AsyncIterator[dict[str, Any]], keep_marks: bool = False) -> None:
        if not keep_marks:
            self._turn_marks = []
        self._turn = asyncio.get_running_loop().create_task(self._play(events))

    async def _play(self, events: AsyncIterator[dict[str, Any]]) -> None:
        last_mark: str | None = None
        played_s = 0.0
        try:
            async for event in events:
                if event["type"] == "audio":
                    last_mark = event["mark"]
                    self._turn_marks.append((last_mark, event.get("text", "")))
                    played_s += len(event["audio"]) / 8000
                    await self.session.play(event["audio"], last_mark)
                elif event["type"] == "ignored":
                    self.ignored_during_playback += 1
                elif event["type"] == "done" and event.get("terminal"):
                    if last_mark is not None:
                        await self.session.wait_played(last_mark, timeout=played_s + GOODBYE_GRACE_S)
                    self._end("completed")
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a failed turn must not kill the socket: the caller can speak again
            log.warning("call %s: turn failed: %s", self.call_id, type(exc).__name__)

    def _end(self, reason: str) -> None:
        if not self.finished:
            self.finished = True
            self.end_reason = reason

    async def close(self) -> None:
        if self._turn is not None and not self._turn.done():
            self._turn.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._turn
        await self.session.close()
