"""A call link's hold mode: listen cheaply while the counterpart has the agent on hold.

The call says it is on hold in its ``TurnDone`` (``hold``, ``hold_timeout_s``). From then on,
until a ``TurnDone`` without ``hold`` arrives, each utterance is first looked at by
``edge/media/music.py``: music, tones and line noise are dropped here (no speech recognition,
no turn, nothing said), and only a person's speech goes on to STT and the call, which ends
the hold. A timer started with the hold runs out after ``hold_timeout_s`` and ends the call.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from common.events import TurnDone, Utterance
from edge.media import music

log = logging.getLogger("voxray.hold")


class HoldListener:
    def __init__(self, on_timeout: Callable[[], Awaitable[None]], call_id: str = ""):
        self.on_timeout = on_timeout
        self.call_id = call_id
        self.active = False
        self.held_music_utterances = 0  # dropped: no STT, no turn
        self.held_music_s = 0.0
        self.classify_ms = 0.0  # spent telling music from speech
        self._timer: asyncio.Task[None] | None = None

    def update(self, done: TurnDone) -> None:
        """Every ``TurnDone`` says whether the call is (still) on hold."""
        if done.ignored:
            return
        if done.hold and not self.active:
            self.active = True
            log.info("call %s: on hold (timeout %s s)", self.call_id, done.hold_timeout_s)
            if done.hold_timeout_s is not None:
                self._timer = asyncio.get_running_loop().create_task(self._expire(done.hold_timeout_s))
        elif not done.hold and self.active:
            self.active = False
            dropped = self.held_music_utterances
            log.info("call %s: off hold; %d music utterances dropped so far", self.call_id, dropped)
            self._cancel_timer()

    def drops(self, utterance: Utterance) -> bool:
        """On hold: is ``utterance`` music (or tones, or noise) to be dropped unheard?"""
        if not self.active:
            return False
        t0 = time.perf_counter()
        verdict = music.classify(utterance.pcm16_16k)
        self.classify_ms += (time.perf_counter() - t0) * 1000
        if verdict.is_person:
            return False
        self.held_music_utterances += 1
        self.held_music_s += utterance.duration_s
        return True

    async def _expire(self, timeout_s: float) -> None:
        await asyncio.sleep(timeout_s)
        if self.active:
            log.info("call %s: hold timed out after %.0f s", self.call_id, timeout_s)
            self._timer = None  # the callback may close this listener: not a self-cancel
            await self.on_timeout()

    def _cancel_timer(self) -> None:
        if self._timer is not None and not self._timer.done():
            self._timer.cancel()
        self._timer = None

    async def close(self) -> None:
        timer, self._timer = self._timer, None
        if timer is not None and not timer.done():
            timer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await timer
