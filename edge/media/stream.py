"""One Twilio Media Streams websocket at the edge: utterances in, paced agent audio out.

Everything that happens per 20 ms frame happens here, so nothing per frame crosses a process
boundary. Inbound: each ``media`` message (µ-law 8 kHz) is handed on at once after an order
check (``jitter_buffer.InOrderFrames``: ``media.chunk`` order, gaps filled with silence, no
holding back), is decoded, cleaned where the call's schema asks (``cleanup.InboundCleanup``:
noise suppression, echo cancellation against the agent frames playout sends), resampled to
PCM16 16 kHz, scored by Silero VAD in 32 ms
windows (line silence below an energy floor skips the model) and cut into utterances by the
``Endpointer``. Model work never runs on the event loop: windows that need Silero are scored on
one thread, together with the windows of every other stream of the process that wait at the
same time (``vad.SileroBatcher``), and the smart-turn model answers its end-of-turn questions
off the loop too, also batched. Media before ``start`` is ignored.
Outbound: ``Playout`` paces the agent's audio and reports what was heard.

Callbacks: ``on_utterance``/``on_start``/``on_stop``/``on_dtmf`` run in order on one task (a
slow consumer never stalls frame handling, but delays the next callback); ``on_barge_in`` runs
at once on its own task, after ``clear`` went out, with what the caller heard, so the
in-flight reply can be stopped; ``on_early_audio`` (plain, must not block) gets the utterance so
far at a pause, at once, so speech recognition can start before the end of turn is decided; its
transcript comes back through ``early_transcript`` and may end the turn sooner.

Pipecat's ``TwilioFrameSerializer`` is not used: it converts to pipecat pipeline frames with
its own resampler, while this edge parses the protocol with pydantic models
(``edge/twilio/protocol.py``) and reuses ``common.audio``. The Silero and smart-turn models are
pipecat's bundled ones, one per process for every stream.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np
import numpy.typing as npt
from pydantic import ValidationError

from common.audio import TWILIO_FRAME_MS, InboundConverter, ulaw_to_pcm16
from common.events import Utterance
from edge.media.cleanup import InboundCleanup
from edge.media.config import EdgeConfig
from edge.media.endpointing import (
    Action,
    AskSmartTurn,
    BargeIn,
    EarlyAudio,
    Endpointer,
    NoiseDropped,
    UtteranceEnded,
)
from edge.media.jitter_buffer import InboundFrame, InOrderFrames
from edge.media.playout import ClearResult, Playout
from edge.media.recorder import Recorder
from edge.media.smart_turn import SmartTurn
from edge.media.turn_text import reads_complete
from edge.media.vad import SAMPLE_RATE, VAD_WINDOW, SileroBatcher, SileroStream, rms
from edge.twilio.protocol import (
    DtmfMessage,
    MarkMessage,
    MediaMessage,
    StartMessage,
    StopMessage,
    StreamInfo,
    TwilioMessage,
    parse_message,
)

logger = logging.getLogger("voxray.media")

Send = Callable[[dict[str, Any]], Awaitable[None]]
OnUtterance = Callable[[Utterance], Awaitable[None]]
OnBargeIn = Callable[[ClearResult], Awaitable[None]]
AudioTap = Callable[[npt.NDArray[np.int16]], None]


class MediaStream:
    """One Twilio media websocket's edge (see the module docstring)."""

    def __init__(
        self,
        send_json: Send,
        on_utterance: OnUtterance,
        on_barge_in: OnBargeIn,
        config: EdgeConfig | None = None,
        *,
        call_id: str = "",
        on_start: Callable[[StreamInfo], Awaitable[None]] | None = None,
        on_stop: Callable[[], Awaitable[None]] | None = None,
        on_dtmf: Callable[[str], Awaitable[None]] | None = None,
        on_early_audio: Callable[[bytes], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        vad: SileroBatcher | None = None,
        smart_turn: SmartTurn | None = None,
    ) -> None:
        self.config = cfg = config or EdgeConfig()
        self.call_id = call_id
        self._on_utterance = on_utterance
        self._on_barge_in = on_barge_in
        self._on_start = on_start
        self._on_stop = on_stop
        self._on_dtmf = on_dtmf
        self._on_early_audio = on_early_audio
        self._clock = clock
        self._vad_batcher = vad or SileroBatcher.shared()
        self._vad = SileroStream(self._vad_batcher.model)
        self._smart_turn = (smart_turn or SmartTurn.shared()) if cfg.smart_turn else None
        self._order = InOrderFrames(max_fill_frames=cfg.max_gap_fill_ms // TWILIO_FRAME_MS)
        self._inbound = InboundConverter(SAMPLE_RATE)
        self.endpointer = Endpointer(cfg, self._time_at)
        self.playout = Playout(send_json, cfg, clock, call_id)
        self.stream: StreamInfo | None = None
        self.started = False
        self.stopped = False
        self.closed = False
        self._stats: dict[str, float] = dict.fromkeys(
            (
                "frames_in",
                "malformed",
                "utterances",
                "noise_dropped",
                "barge_ins",
                "late_frames",
                "duplicate_frames",
                "filled_frames",
                "skipped_frames",
                "vad_skipped",
                "smart_turn_decisions",
                "smart_turn_skipped",
                "early_audio",
                "transcript_ends",
                "dtmf",
                "before_start",
                "callback_errors",
                "errors",
            ),
            0,
        )
        # inbound timing: stream sample position <-> Twilio timestamp <-> monotonic time
        self._ts_origin: float | None = None  # min(arrival - timestamp) in seconds
        self._first_ts_ms: int | None = None
        self._pending_pcm = np.zeros(0, dtype=np.int16)
        # a window's push waits for its Silero score; verdicts arrive meanwhile: one at a time
        self._endpoint_lock = asyncio.Lock()
        self._early_pause_id = 0  # the pause whose audio went out last as EarlyAudio
        # callbacks run in order on one task so a slow consumer never stalls frame handling
        self._events: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self._dispatcher: asyncio.Task[None] | None = None
        self._side_tasks: set[asyncio.Task[None]] = set()
        # off by default: called inline with each frame's decoded PCM16 16 kHz (keep it cheap)
        self.audio_tap: AudioTap | None = None
        self.recorder: Recorder | None = None
        self._record_origin = 0.0
        self.cleanup: InboundCleanup | None = None
        self.use_cleanup(cfg.noise_suppression, cfg.echo_cancellation)

    @property
    def stats(self) -> dict[str, float]:
        """Counters of the inbound side and of playout."""
        return {**self._stats, **self.playout.stats}

    # ------------------------------------------------------------------ outbound (playout)
    @property
    def is_playing(self) -> bool:
        return self.playout.is_playing

    @property
    def heard_marks(self) -> list[str]:
        return self.playout.heard_marks

    def play(self, mulaw: bytes, mark: str) -> None:
        self.playout.play(mulaw, mark)

    async def wait_played(self, mark: str, timeout: float) -> bool:
        return await self.playout.wait_played(mark, timeout)

    async def clear(self) -> ClearResult:
        return await self.playout.clear()

    # ------------------------------------------------------------------ recording, clean-up
    def record(self, recorder: Recorder | None) -> None:
        """Tap both sides into ``recorder`` (None stops): the counterpart's frames at their
        Twilio timestamps, the agent's at the time they play, on the same stream clock."""
        self.recorder = recorder
        self._record_origin = self._clock()
        self._tap_playout()

    def use_cleanup(self, noise_suppression: bool, echo_cancellation: bool) -> None:
        """Clean the caller's audio from the next frame on (``edge/media/cleanup.py``); both
        False stops. A call's schema decides this once its stream has started."""
        if not (noise_suppression or echo_cancellation):
            self.cleanup = None
        elif self.cleanup is None or (self.cleanup.noise_suppression, self.cleanup.echo_cancellation) != (
            noise_suppression,
            echo_cancellation,
        ):
            self.cleanup = InboundCleanup(noise_suppression, echo_cancellation)
        self._tap_playout()

    def _tap_playout(self) -> None:
        """Agent frames go to the recorder and to the echo canceller, when either listens."""
        listens = self.recorder is not None or (self.cleanup is not None and self.cleanup.echo_cancellation)
        self.playout.on_sent = self._agent_frame if listens else None
        self.playout.on_cleared = self._agent_cut if listens else None

    def _agent_frame(self, play_at: float, frame: bytes) -> None:
        if self.recorder is not None:
            self.recorder.agent(self._stream_time(play_at), frame)
        if self.cleanup is not None:
            self.cleanup.played(play_at, frame)

    def _agent_cut(self, at: float) -> None:
        if self.recorder is not None:
            self.recorder.cut_agent(self._stream_time(at))
        if self.cleanup is not None:
            self.cleanup.cleared(at)

    def _stream_time(self, at: float) -> float:
        """Seconds into the stream of monotonic time ``at`` (Twilio timestamps' clock)."""
        origin = self._ts_origin if self._ts_origin is not None else self._record_origin
        return at - origin

    # ------------------------------------------------------------------ inbound
    async def handle_message(self, raw: str | bytes | TwilioMessage) -> None:
        """Handle one websocket message from Twilio (its text, or already parsed). Never raises
        for bad input."""
        try:
            msg = parse_message(raw) if isinstance(raw, str | bytes) else raw
        except ValidationError as exc:
            self._stats["malformed"] += 1
            # field locations and error types only: inputs may carry audio or caller data
            where = sorted({".".join(str(p) for p in e["loc"]) + ":" + e["type"] for e in exc.errors()})
            logger.warning(
                "call %s: ignored malformed Twilio message (%s)", self.call_id, ", ".join(where[:4])
            )
            return
        except (ValueError, TypeError):
            self._stats["malformed"] += 1
            logger.warning("call %s: ignored Twilio message that is not JSON", self.call_id)
            return
        try:
            await self._dispatch(msg)
        except (ValueError, binascii.Error) as exc:
            self._stats["malformed"] += 1
            logger.warning(
                "call %s: ignored bad %s message (%s)", self.call_id, msg.event, type(exc).__name__
            )
        except Exception as exc:  # a bug or model failure must not take the call down
            self._stats["errors"] += 1
            logger.error(
                "call %s: error handling %s message (%s)", self.call_id, msg.event, type(exc).__name__
            )

    async def _dispatch(self, msg: TwilioMessage) -> None:
        if isinstance(msg, MediaMessage):
            await self._on_media(msg)
        elif isinstance(msg, MarkMessage):
            self.playout.on_mark(msg.mark.name)
        elif isinstance(msg, StartMessage):
            body = msg.start
            if body.media_format.encoding != "audio/x-mulaw" or body.media_format.sample_rate != 8000:
                raise ValueError("unsupported media format")
            if self.started:
                raise ValueError("a second start")
            self.stream = StreamInfo(body.stream_sid, body.call_sid, dict(body.custom_parameters))
            self.playout.stream_sid = body.stream_sid
            self.started = True
            if self._on_start is not None:
                self._emit("start", self.stream)
        elif isinstance(msg, StopMessage):
            self.stopped = True
            # not waiting for callbacks: one may be waiting on a mark that will never come
            await self.flush(wait_callbacks=False)
            if self._on_stop is not None:
                self._emit("stop", None)
        elif isinstance(msg, DtmfMessage):
            self._stats["dtmf"] += 1
            if self._on_dtmf is not None:
                self._emit("dtmf", msg.dtmf.digit)
        # ConnectedMessage: nothing to do

    async def _on_media(self, msg: MediaMessage) -> None:
        media = msg.media
        if not media.track.startswith("inbound"):
            return
        if not self.started:  # no stream yet: nothing to time it against, nobody to hear it
            self._stats["before_start"] += 1
            return
        payload = base64.b64decode(media.payload, validate=True)
        if not payload:
            raise ValueError("empty media payload")
        self._stats["frames_in"] += 1
        now = self._clock()
        origin = now - media.timestamp / 1000.0
        if self._ts_origin is None or origin < self._ts_origin:
            self._ts_origin = origin
        await self._process_frames(self._order.push(media.chunk, media.timestamp, payload))

    async def _process_frames(self, frames: list[InboundFrame]) -> None:
        self._sync_order_stats()
        if not frames:
            return
        if self._first_ts_ms is None:
            self._first_ts_ms = frames[0].timestamp_ms
        if self.recorder is not None:
            for frame in frames:
                self.recorder.counterpart(frame.timestamp_ms / 1000.0, frame.payload)
        cleanup = self.cleanup
        if cleanup is None:
            pcm = [self._inbound.convert(frame.payload) for frame in frames]
        else:
            now = self._clock()
            pcm = [self._inbound.convert_pcm(cleanup.process(ulaw_to_pcm16(f.payload), now)) for f in frames]
        await self._feed_pcm(pcm[0] if len(pcm) == 1 else np.concatenate(pcm))

    async def _feed_pcm(self, pcm: npt.NDArray[np.int16]) -> None:
        if self.audio_tap is not None:
            self.audio_tap(pcm)
        buf = np.concatenate((self._pending_pcm, pcm)) if self._pending_pcm.size else pcm
        n = buf.size // VAD_WINDOW * VAD_WINDOW
        self._pending_pcm = buf[n:].copy()
        floor = self.config.vad_energy_floor
        # window by window, acting on each one's actions before the next is judged: a barge-in
        # clears playback before the following window is pushed
        for window in buf[:n].reshape(-1, VAD_WINDOW):
            async with self._endpoint_lock:
                in_speech = self.endpointer.in_speech
                if not in_speech and rms(window) < floor:  # line silence while quiet: no model run
                    prob = 0.0
                    self._stats["vad_skipped"] += 1
                else:
                    prob = await self._vad_batcher.score(self._vad, window, quiet=not in_speech)
                actions = self.endpointer.push(window, prob, self.playout.is_playing)
            for action in actions:
                await self._act(action)

    def _time_at(self, pos: int) -> float:
        """Monotonic time at which stream sample ``pos`` reached us (fastest path)."""
        origin = self._ts_origin if self._ts_origin is not None else self._clock()
        return origin + ((self._first_ts_ms or 0) + pos * 1000.0 / SAMPLE_RATE) / 1000.0

    async def _act(self, action: Action) -> None:
        if isinstance(action, UtteranceEnded):
            self._stats["utterances"] += 1
            self._emit("utterance", action.utterance)
        elif isinstance(action, NoiseDropped):
            self._stats["noise_dropped"] += 1
        elif isinstance(action, BargeIn):
            self._stats["barge_ins"] += 1
            heard = await self.playout.clear()
            # Not queued behind a slow on_utterance: the in-flight reply must be stopped now.
            self._side_task(self._run_barge_in_callback(heard))
        elif isinstance(action, AskSmartTurn):
            self._ask_smart_turn(action)
        elif isinstance(action, EarlyAudio) and self._on_early_audio is not None:
            self._stats["early_audio"] += 1
            self._early_pause_id = action.pause_id
            # called at once, not queued: its whole point is to start before the turn ends
            self._on_early_audio(action.audio.astype("<i2").tobytes())

    async def early_transcript(self, text: str) -> None:
        """What speech recognition heard in the latest early audio: whether it reads as a finished
        turn joins the end-of-turn decision (``EdgeConfig.transcript_end_of_turn``)."""
        async with self._endpoint_lock:
            actions = self.endpointer.text_verdict(self._early_pause_id, reads_complete(text))
        self._stats["transcript_ends"] += any(isinstance(a, UtteranceEnded) for a in actions)
        for action in actions:
            await self._act(action)

    def _ask_smart_turn(self, ask: AskSmartTurn) -> None:
        model = self._smart_turn
        if model is None:
            return
        if model.pending >= self.config.smart_turn_max_pending:
            self._stats["smart_turn_skipped"] += 1  # the silence rule alone decides this pause
            return
        self._stats["smart_turn_decisions"] += 1

        async def decide() -> None:
            try:
                probability = await model.predict_async(ask.audio)
            except Exception:  # a model failure must not end the call: fall back to silence
                logger.exception("call %s: smart-turn decision failed", self.call_id)
                return
            async with self._endpoint_lock:
                actions = self.endpointer.verdict(ask.pause_id, probability)
            for action in actions:
                await self._act(action)

        self._side_task(decide())

    def _side_task(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._side_tasks.add(task)
        task.add_done_callback(self._side_tasks.discard)

    async def _run_barge_in_callback(self, heard: ClearResult) -> None:
        try:
            await self._on_barge_in(heard)
        except Exception:
            self._stats["callback_errors"] += 1
            logger.exception("call %s: barge_in callback failed", self.call_id)

    def _sync_order_stats(self) -> None:
        st = self._order.stats
        self._stats["late_frames"] = st.late
        self._stats["duplicate_frames"] = st.duplicates
        self._stats["filled_frames"] = st.filled
        self._stats["skipped_frames"] = st.skipped

    async def flush(self, wait_callbacks: bool = True) -> None:
        """End of input: finish the utterance in progress; with ``wait_callbacks`` also wait
        until every queued callback has run."""
        if self.endpointer.in_speech:
            if self._side_tasks:  # pending smart-turn verdicts may still end it first
                await asyncio.gather(*list(self._side_tasks), return_exceptions=True)
            async with self._endpoint_lock:
                actions = self.endpointer.finish()
            for action in actions:
                await self._act(action)
        if wait_callbacks:
            await self.drain()

    async def drain(self) -> None:
        """Wait until pending smart-turn decisions and queued callbacks have run."""
        while self._side_tasks:
            await asyncio.gather(*list(self._side_tasks), return_exceptions=True)
        if self._dispatcher is not None and not self._dispatcher.done():
            await self._events.join()

    # ------------------------------------------------------------------ callbacks
    def _emit(self, kind: str, value: Any) -> None:
        if self._dispatcher is None and not self.closed:
            self._dispatcher = asyncio.get_running_loop().create_task(self._run_callbacks())
        self._events.put_nowait((kind, value))

    async def _run_callbacks(self) -> None:
        while True:
            kind, value = await self._events.get()
            try:
                if kind == "utterance":
                    await self._on_utterance(value)
                elif kind == "start" and self._on_start is not None:
                    await self._on_start(value)
                elif kind == "stop" and self._on_stop is not None:
                    await self._on_stop()
                elif kind == "dtmf" and self._on_dtmf is not None:
                    await self._on_dtmf(value)
            except Exception:
                self._stats["callback_errors"] += 1
                logger.exception("call %s: %s callback failed", self.call_id, kind)
            finally:
                self._events.task_done()

    # ------------------------------------------------------------------ lifecycle
    async def close(self, drain_timeout: float = 1.0) -> None:
        """Stop the pacing and callback tasks (queued callbacks get ``drain_timeout`` s)."""
        if self.closed:
            return
        self.closed = True
        await self.playout.close()  # callbacks waiting on a mark stop waiting
        for task in list(self._side_tasks):
            task.cancel()
        if self._dispatcher is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._events.join(), drain_timeout)
            if not self._dispatcher.done():
                self._dispatcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._dispatcher
        self._sync_order_stats()
