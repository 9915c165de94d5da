"""The edge of one Twilio Media Streams websocket: utterances in, paced agent audio out.

``TwilioMediaSession`` owns everything that happens per 20 ms frame, so nothing per frame
crosses a process boundary (DESIGN.md §1):

Inbound: each ``media`` message (µ-law 8 kHz, base64) goes into the adaptive jitter buffer
(keyed by ``media.chunk``, scheduled by ``media.timestamp``); frames that are due are decoded
and resampled to PCM16 16 kHz (``engine.audio.InboundConverter``) and scored by Silero VAD in
512-sample (32 ms) windows. Speech is cut into utterances by a small state machine (below);
the CallActor gets one ``Utterance`` per utterance through ``on_utterance``.

Cutting utterances (all knobs in ``EdgeConfig``):
- start: ``min_speech_ms`` of consecutive windows with speech probability ≥ ``vad_threshold``;
  the utterance keeps ``pre_roll_ms`` of audio before that so word onsets are not clipped.
- while speaking, a window counts as speech while its probability ≥ ``vad_neg_threshold``
  (hysteresis, as Silero's own ``get_speech_timestamps`` does).
- end: after a pause of ``turn_pause_ms`` the bundled smart-turn v3 model (pipecat's
  ``LocalSmartTurnAnalyzerV3`` model, run on the utterance so far) is asked whether the turn
  is complete. "Complete" ends the utterance at once; "incomplete" (the caller paused
  mid-sentence) stretches the pause needed to ``incomplete_end_silence_ms``. Without a verdict
  (smart turn disabled, busy, or slow) a pause of ``end_silence_ms`` ends it. Smart turn costs
  tens to hundreds of ms of CPU per decision on this box (see benchmarks/bench_media_edge.py),
  so it runs off the event loop on one process-wide thread and is skipped (silence rule only)
  when ``smart_turn_max_pending`` decisions are already queued.
- utterances with less than ``min_utterance_ms`` of voiced audio are dropped as noise;
  ``max_utterance_s`` cuts a monologue.

Callbacks: ``on_utterance``/``on_start``/``on_stop``/``on_dtmf`` run in order on one task (a
slow consumer never stalls frame handling, but delays the next callback); ``on_barge_in`` runs
at once on its own task, after ``clear`` went out, so the in-flight reply can be cancelled.

Barge-in: while agent audio is playing (queued, or sent and its mark not yet echoed), caller
speech with ``min_barge_in_ms`` of voiced audio sends Twilio ``clear``, drops queued audio and
calls ``on_barge_in``. A shorter sound ("mhm", a cough) never interrupts; its utterance still
reaches the CallActor marked ``during_playback=True`` so the transcript can be checked with
``engine.backchannel.is_backchannel``.

Outbound: ``play(mulaw, mark)`` queues agent audio; one pacing task sends 160-byte ``media``
frames on a real-time schedule at most ``playback_lead_ms`` ahead of the estimated play-out
position, then a ``mark`` after each chunk. Marks echoed by Twilio say what the caller heard.

Pipecat's ``TwilioFrameSerializer`` is not used: it converts to pipecat pipeline frames with
its own resampler, while this edge parses the protocol with pydantic models and reuses
``engine.audio``. The Silero ONNX file and the smart-turn model are pipecat's bundled ones;
Silero runs through onnxruntime directly so one shared session serves every call in the
process (pipecat's analyzer opens a session and a thread per stream).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from engine.audio import InboundConverter, TwilioFramer
from engine.jitter_buffer import AdaptiveJitterBuffer, JitterFrame

logger = logging.getLogger("voxray.media_edge")

SAMPLE_RATE = 16000
VAD_WINDOW = 512  # Silero's window at 16 kHz (32 ms)
_VAD_CONTEXT = 64
_WINDOW_MS = VAD_WINDOW * 1000 / SAMPLE_RATE
FRAME_S = 0.020
# Silero's recurrent state drifts during long non-speech and then under-reports speech;
# reset it every ~2 s of clear non-speech (same rule as pipecat's SileroVADAnalyzer).
_RESET_EVERY_WINDOWS = int(2.0 * SAMPLE_RATE / VAD_WINDOW)
_RESET_MAX_PROB = 0.1
_RESET_LOW_WINDOWS = 5


# --------------------------------------------------------------------------- config


class EdgeConfig(BaseModel):
    """Per-connection knobs; the defaults suit 8 kHz telephone speech."""

    model_config = ConfigDict(extra="forbid")

    vad_threshold: float = Field(0.5, ge=0.0, le=1.0, description="Silero probability that starts speech.")
    vad_neg_threshold: float = Field(
        0.35, ge=0.0, le=1.0, description="While speaking, windows at or above this still count as speech."
    )
    vad_energy_floor: float = Field(
        60.0,
        ge=0.0,
        description="While quiet, windows below this RMS (int16 units; 60 ≈ -55 dBFS) skip the Silero "
        "model and score 0: line silence costs ~5 µs instead of a model run.",
    )
    min_speech_ms: int = Field(96, ge=0, description="Consecutive speech that confirms a start (3 windows).")
    pre_roll_ms: int = Field(300, ge=0, description="Audio kept before the confirmed start.")
    turn_pause_ms: int = Field(300, ge=32, description="Pause after which smart turn is asked.")
    end_silence_ms: int = Field(
        700, ge=64, description="Pause that ends an utterance without a smart-turn 'complete'."
    )
    incomplete_end_silence_ms: int = Field(
        1200,
        ge=64,
        description="Pause that ends an utterance smart turn judged incomplete (pipecat waits 3 s; "
        "the model calls some finished Piper lines incomplete, so every false verdict costs this).",
    )
    tail_ms: int = Field(200, ge=0, description="Trailing audio kept after the last speech window.")
    min_utterance_ms: int = Field(150, ge=0, description="Less voiced audio than this is noise: dropped.")
    max_utterance_s: float = Field(30.0, gt=0, description="A longer monologue is cut into utterances.")
    min_barge_in_ms: int = Field(
        700,
        ge=0,
        description="Voiced audio during playback that interrupts the agent. Backchannels run "
        "300-650 ms voiced (Piper's 'Mhm.' scores 608 ms here), a real interruption longer.",
    )
    smart_turn: bool = Field(True, description="Ask the smart-turn model at each pause.")
    smart_turn_threshold: float = Field(0.5, ge=0.0, le=1.0, description="Probability of 'complete'.")
    smart_turn_max_pending: int = Field(
        4, ge=1, description="Process-wide queued decisions beyond which the silence rule alone decides."
    )
    jitter_min_delay_ms: float = Field(40.0, ge=0)
    jitter_initial_delay_ms: float = Field(60.0, ge=0)
    jitter_max_delay_ms: float = Field(200.0, ge=0)
    mark_grace_ms: int = Field(
        2000,
        ge=0,
        description="A sent mark not echoed this long after its audio should have finished counts as "
        "played for barge-in purposes (not for heard_marks), so a lost echo cannot pin playback on.",
    )
    playback_lead_ms: int = Field(
        80, ge=0, le=500, description="How far ahead of real time outbound frames may be sent."
    )


# --------------------------------------------------------------------------- Twilio messages


class _Msg(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class ConnectedMessage(_Msg):
    event: Literal["connected"]
    protocol: str | None = None
    version: str | None = None


class MediaFormat(_Msg):
    encoding: str = "audio/x-mulaw"
    sample_rate: int = Field(8000, alias="sampleRate")
    channels: int = 1


class StartBody(_Msg):
    stream_sid: str = Field(alias="streamSid")
    call_sid: str = Field(alias="callSid")
    account_sid: str | None = Field(None, alias="accountSid")
    tracks: list[str] = Field(default_factory=lambda: ["inbound"])
    custom_parameters: dict[str, str] = Field(default_factory=dict, alias="customParameters")
    media_format: MediaFormat = Field(default_factory=MediaFormat, alias="mediaFormat")


class StartMessage(_Msg):
    event: Literal["start"]
    sequence_number: int | None = Field(None, alias="sequenceNumber")
    stream_sid: str | None = Field(None, alias="streamSid")
    start: StartBody


class MediaBody(_Msg):
    track: str = "inbound"
    chunk: int = Field(ge=0)
    timestamp: int = Field(ge=0)
    payload: str


class MediaMessage(_Msg):
    event: Literal["media"]
    sequence_number: int | None = Field(None, alias="sequenceNumber")
    stream_sid: str | None = Field(None, alias="streamSid")
    media: MediaBody


class MarkBody(_Msg):
    name: str


class MarkMessage(_Msg):
    event: Literal["mark"]
    sequence_number: int | None = Field(None, alias="sequenceNumber")
    stream_sid: str | None = Field(None, alias="streamSid")
    mark: MarkBody


class StopMessage(_Msg):
    event: Literal["stop"]
    sequence_number: int | None = Field(None, alias="sequenceNumber")
    stream_sid: str | None = Field(None, alias="streamSid")
    stop: dict[str, Any] = Field(default_factory=dict)


class DtmfBody(_Msg):
    track: str | None = None
    digit: str = Field(min_length=1, max_length=1)


class DtmfMessage(_Msg):
    event: Literal["dtmf"]
    sequence_number: int | None = Field(None, alias="sequenceNumber")
    stream_sid: str | None = Field(None, alias="streamSid")
    dtmf: DtmfBody


TwilioMessage = Annotated[
    ConnectedMessage | StartMessage | MediaMessage | MarkMessage | StopMessage | DtmfMessage,
    Field(discriminator="event"),
]
_MESSAGE_ADAPTER: TypeAdapter[TwilioMessage] = TypeAdapter(TwilioMessage)


def parse_twilio_message(raw: str | bytes) -> TwilioMessage:
    """Parse one Media Streams message; raises ``ValueError`` (incl. ``ValidationError``)."""
    return _MESSAGE_ADAPTER.validate_json(raw)


# --------------------------------------------------------------------------- results


EndReason = Literal["smart_turn", "silence", "max_length", "stream_end"]


class Utterance(BaseModel):
    """One caller utterance, cut by VAD + end-of-turn, as the CallActor receives it."""

    pcm16_16k: bytes = Field(repr=False)
    speech_start: float = Field(description="time.monotonic() when the caller started speaking.")
    speech_end: float = Field(description="time.monotonic() of the caller's last speech audio.")
    duration_s: float = Field(description="Length of pcm16_16k in seconds (pre-roll and tail included).")
    voiced_ms: float = Field(description="Audio the VAD scored as speech.")
    during_playback: bool = Field(description="Agent audio was playing while the caller spoke.")
    barge_in: bool = Field(False, description="This utterance interrupted the agent (clear was sent).")
    end_reason: EndReason
    smart_turn_probability: float | None = None


class ClearResult(BaseModel):
    """What the caller heard of the agent audio when playback was cleared."""

    heard: list[str] = Field(description="Marks echoed by Twilio since the previous clear, in order.")
    unheard: list[str] = Field(description="Marks queued or sent but never played: drop their text.")
    interrupted: str | None = Field(None, description="The mark of the chunk that was playing when cut.")
    interrupted_played_ms: float = Field(0.0, description="Estimated part of that chunk already played.")


@dataclass(frozen=True)
class StreamInfo:
    stream_sid: str
    call_sid: str
    custom_parameters: dict[str, str]


# --------------------------------------------------------------------------- models


def _pipecat_data_file(package: str, name: str) -> str:
    from importlib import resources

    path = resources.files(package).joinpath(name)
    if not path.is_file():
        raise FileNotFoundError(f"bundled model {name} not found in {package}")
    return str(path)


class SileroModel:
    """One onnxruntime session over pipecat's bundled ``silero_vad.onnx``, shared per process
    (``InferenceSession.run`` is thread-safe); per-stream state lives in ``SileroStream``."""

    _instance: SileroModel | None = None
    _lock = threading.Lock()

    def __init__(self, path: str | None = None) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        self.path = path or _pipecat_data_file("pipecat.audio.vad.data", "silero_vad.onnx")
        self.session = ort.InferenceSession(self.path, sess_options=opts, providers=["CPUExecutionProvider"])
        self._sr = np.array(SAMPLE_RATE, dtype=np.int64)

    @classmethod
    def shared(cls) -> SileroModel:
        with cls._lock:
            if cls._instance is None:
                cls._instance = cls()
            return cls._instance

    def run(
        self, x: npt.NDArray[np.float32], state: npt.NDArray[np.float32]
    ) -> tuple[float, npt.NDArray[np.float32]]:
        out, new_state = self.session.run(None, {"input": x, "state": state, "sr": self._sr})
        return float(out[0, 0]), new_state


class SileroStream:
    """Silero VAD over one audio stream: 512-sample windows at 16 kHz with 64 samples of
    context, recurrent state reset during clear non-speech."""

    def __init__(self, model: SileroModel) -> None:
        self.model = model
        self.reset()
        self._since_reset = 0
        self._low_run = 0

    def reset(self) -> None:
        self._state = np.zeros((2, 1, 128), dtype=np.float32)
        self._context = np.zeros((1, _VAD_CONTEXT), dtype=np.float32)

    def __call__(self, window: npt.NDArray[np.int16], quiet: bool) -> float:
        x = np.concatenate((self._context, window.astype(np.float32)[None, :] / 32768.0), axis=1)
        prob, self._state = self.model.run(x, self._state)
        self._context = x[:, -_VAD_CONTEXT:]
        self._since_reset += 1
        self._low_run = self._low_run + 1 if prob < _RESET_MAX_PROB else 0
        if quiet and self._since_reset >= _RESET_EVERY_WINDOWS and self._low_run >= _RESET_LOW_WINDOWS:
            self.reset()
            self._since_reset = 0
        return prob


class SmartTurn:
    """Pipecat's bundled smart-turn v3 end-of-turn model, one per process, run on one
    dedicated thread so decisions from many calls queue instead of oversubscribing cores."""

    _instance: SmartTurn | None = None
    _lock = threading.Lock()

    def __init__(self, cpu_threads: int = 1) -> None:
        from pipecat.audio.turn.smart_turn.local_smart_turn_v3 import LocalSmartTurnAnalyzerV3

        self._analyzer = LocalSmartTurnAnalyzerV3(cpu_count=cpu_threads)
        self._analyzer.set_sample_rate(SAMPLE_RATE)
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="smart-turn")
        self.pending = 0
        self.decisions = 0
        self.total_ms = 0.0

    @classmethod
    def shared(cls) -> SmartTurn:
        with cls._lock:
            if cls._instance is None:
                cls._instance = cls(cpu_threads=int(os.environ.get("VOXRAY_SMART_TURN_THREADS", "1")))
            return cls._instance

    def predict(self, pcm: npt.NDArray[np.int16]) -> float:
        """Blocking: probability that the turn is complete (the model keeps the last 8 s)."""
        t0 = time.perf_counter()
        # _predict_endpoint is the analyzer's stateless model call (features + ONNX); the
        # analyzer's own buffering is per-stream and timed by wall clock, which we replace.
        result = self._analyzer._predict_endpoint(pcm.astype(np.float32) / 32768.0)
        self.total_ms += (time.perf_counter() - t0) * 1000.0
        self.decisions += 1
        return float(result["probability"])

    async def predict_async(self, pcm: npt.NDArray[np.int16]) -> float:
        self.pending += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self.executor, self.predict, pcm)
        finally:
            self.pending -= 1


def preload_models(smart_turn: bool = True) -> None:
    """Load the shared Silero session (and smart turn) now, e.g. at ingress start-up, so the
    first call does not pay ~0.2-1 s of model loading and pipecat import on its event loop."""
    SileroModel.shared()
    if smart_turn:
        SmartTurn.shared()


# --------------------------------------------------------------------------- session


@dataclass
class _OutChunk:
    frames: deque[bytes]
    mark: str
    n_frames: int
    started_at: float | None = None  # estimated time its first frame plays


@dataclass
class _Speech:
    """The utterance being cut."""

    pcm: list[npt.NDArray[np.int16]]
    start_pos: int  # stream sample index of pcm[0]
    speech_start_pos: int
    last_speech_end_pos: int
    voiced_ms: float = 0.0
    silence_ms: float = 0.0
    during_playback: bool = False
    barge_in: bool = False
    turn_asked: bool = False
    turn_verdict: float | None = None  # smart-turn probability for the current pause
    pause_id: int = 0
    samples: int = 0


Send = Callable[[dict[str, Any]], Awaitable[None]]
OnUtterance = Callable[[Utterance], Awaitable[None]]
OnBargeIn = Callable[[], Awaitable[None]]


class TwilioMediaSession:
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
        clock: Callable[[], float] = time.monotonic,
        vad_model: SileroModel | None = None,
        smart_turn: SmartTurn | None = None,
    ) -> None:
        self.config = config or EdgeConfig()
        self.call_id = call_id
        self._send_json = send_json
        self._on_utterance = on_utterance
        self._on_barge_in = on_barge_in
        self._on_start = on_start
        self._on_stop = on_stop
        self._on_dtmf = on_dtmf
        self._clock = clock
        cfg = self.config
        self._vad = SileroStream(vad_model or SileroModel.shared())
        self._smart_turn = (smart_turn or SmartTurn.shared()) if cfg.smart_turn else None
        self._jitter = AdaptiveJitterBuffer(
            min_delay_ms=cfg.jitter_min_delay_ms,
            initial_delay_ms=cfg.jitter_initial_delay_ms,
            max_delay_ms=cfg.jitter_max_delay_ms,
        )
        self._inbound = InboundConverter(SAMPLE_RATE)
        self.stream: StreamInfo | None = None
        self.started = False
        self.stopped = False
        self.closed = False
        self.stats: dict[str, float] = {
            "frames_in": 0,
            "frames_out": 0,
            "malformed": 0,
            "utterances": 0,
            "noise_dropped": 0,
            "barge_ins": 0,
            "late_frames": 0,
            "duplicate_frames": 0,
            "concealed_frames": 0,
            "lost_frames": 0,
            "marks_sent": 0,
            "marks_heard": 0,
            "unknown_marks": 0,
            "clears": 0,
            "playback_gaps": 0,
            "vad_skipped": 0,
            "smart_turn_decisions": 0,
            "smart_turn_skipped": 0,
            "dtmf": 0,
            "callback_errors": 0,
            "errors": 0,
        }
        # inbound timing: stream sample position <-> Twilio timestamp <-> monotonic time
        self._ts_origin: float | None = None  # min(arrival - timestamp) in seconds
        self._first_ts_ms: int | None = None
        self._pos = 0  # 16 kHz samples fed to the VAD so far
        self._pending_pcm = np.zeros(0, dtype=np.int16)
        self._preroll: deque[npt.NDArray[np.int16]] = deque()
        self._preroll_samples = 0
        self._start_run_ms = 0.0
        self._start_run_pos = 0
        self._speech: _Speech | None = None
        self._pause_seq = 0
        # outbound
        self._out: deque[_OutChunk] = deque()
        self._out_wake = asyncio.Event()
        self._play_head = 0.0  # estimated time the last sent frame finishes playing
        self._pacer: asyncio.Task[None] | None = None
        self._sent_unheard: deque[tuple[str, float, float]] = deque()  # (mark, start, end) est.
        self._cleared_marks: set[str] = set()
        self.heard_marks: list[str] = []
        self._heard_since_clear: list[str] = []
        self._heard_set: set[str] = set()
        self._waiters: dict[str, list[asyncio.Future[bool]]] = {}
        # callbacks run in order on one task so a slow consumer never stalls frame handling
        self._events: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self._dispatcher: asyncio.Task[None] | None = None
        self._side_tasks: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------------ inbound

    async def handle_message(self, raw: str | bytes) -> None:
        """Handle one websocket text message from Twilio. Never raises for bad input."""
        try:
            msg = parse_twilio_message(raw)
        except ValidationError as exc:
            self.stats["malformed"] += 1
            # field locations and error types only: inputs may carry audio or caller data
            where = sorted({".".join(str(p) for p in e["loc"]) + ":" + e["type"] for e in exc.errors()})
            logger.warning(
                "call %s: ignored malformed Twilio message (%s)", self.call_id, ", ".join(where[:4])
            )
            return
        except (ValueError, TypeError):
            self.stats["malformed"] += 1
            logger.warning("call %s: ignored Twilio message that is not JSON", self.call_id)
            return
        try:
            await self._dispatch(msg)
        except (ValueError, binascii.Error) as exc:
            self.stats["malformed"] += 1
            logger.warning(
                "call %s: ignored bad %s message (%s)", self.call_id, msg.event, type(exc).__name__
            )
        except Exception as exc:  # a bug or model failure must not take the call down
            self.stats["errors"] += 1
            logger.error(
                "call %s: error handling %s message (%s)", self.call_id, msg.event, type(exc).__name__
            )

    async def _dispatch(self, msg: TwilioMessage) -> None:
        if isinstance(msg, MediaMessage):
            await self._on_media(msg)
        elif isinstance(msg, MarkMessage):
            self._on_mark(msg.mark.name)
        elif isinstance(msg, StartMessage):
            body = msg.start
            if body.media_format.encoding != "audio/x-mulaw" or body.media_format.sample_rate != 8000:
                raise ValueError("unsupported media format")
            self.stream = StreamInfo(body.stream_sid, body.call_sid, dict(body.custom_parameters))
            self.started = True
            self._ensure_tasks()
            if self._on_start is not None:
                self._emit("start", self.stream)
        elif isinstance(msg, StopMessage):
            self.stopped = True
            # not waiting for callbacks: one may be waiting on a mark that will never come
            await self.flush(wait_callbacks=False)
            if self._on_stop is not None:
                self._emit("stop", None)
        elif isinstance(msg, DtmfMessage):
            self.stats["dtmf"] += 1
            if self._on_dtmf is not None:
                self._emit("dtmf", msg.dtmf.digit)
        # ConnectedMessage: nothing to do

    async def _on_media(self, msg: MediaMessage) -> None:
        media = msg.media
        if not media.track.startswith("inbound"):
            return
        payload = base64.b64decode(media.payload, validate=True)
        if not payload:
            raise ValueError("empty media payload")
        self._ensure_tasks()
        self.stats["frames_in"] += 1
        now = self._clock()
        origin = now - media.timestamp / 1000.0
        if self._ts_origin is None or origin < self._ts_origin:
            self._ts_origin = origin
        self._jitter.push(media.chunk, media.timestamp, payload, arrival_ms=now * 1000.0)
        await self._process_frames(self._jitter.pop_due(now * 1000.0))

    async def _process_frames(self, frames: list[JitterFrame]) -> None:
        self._sync_jitter_stats()
        for frame in frames:
            if self._first_ts_ms is None:
                self._first_ts_ms = frame.timestamp_ms
            pcm = self._inbound.convert(frame.payload)
            await self._feed_pcm(pcm)

    async def _feed_pcm(self, pcm: npt.NDArray[np.int16]) -> None:
        buf = np.concatenate((self._pending_pcm, pcm)) if self._pending_pcm.size else pcm
        n = buf.size // VAD_WINDOW * VAD_WINDOW
        self._pending_pcm = buf[n:].copy()
        for i in range(0, n, VAD_WINDOW):
            await self._on_window(buf[i : i + VAD_WINDOW])

    def _time_at(self, pos: int) -> float:
        """Monotonic time at which stream sample ``pos`` reached us (fastest path)."""
        origin = self._ts_origin if self._ts_origin is not None else self._clock()
        return origin + ((self._first_ts_ms or 0) + pos * 1000.0 / SAMPLE_RATE) / 1000.0

    async def _on_window(self, window: npt.NDArray[np.int16]) -> None:
        cfg = self.config
        sp = self._speech
        if sp is None and self._rms(window) < cfg.vad_energy_floor:
            prob = 0.0
            self.stats["vad_skipped"] += 1
        else:
            prob = self._vad(window, quiet=sp is None)
        pos = self._pos
        self._pos += window.size
        if sp is None:
            self._preroll.append(window)
            self._preroll_samples += window.size
            max_pre = int(cfg.pre_roll_ms * SAMPLE_RATE / 1000) + VAD_WINDOW * (
                1 + int(cfg.min_speech_ms // _WINDOW_MS)
            )
            while self._preroll_samples - self._preroll[0].size >= max_pre:
                self._preroll_samples -= self._preroll.popleft().size
            if prob >= cfg.vad_threshold:
                if self._start_run_ms == 0.0:
                    self._start_run_pos = pos
                self._start_run_ms += _WINDOW_MS
                if self._start_run_ms >= cfg.min_speech_ms:
                    self._begin_speech(self._start_run_pos, pos + window.size)
            else:
                self._start_run_ms = 0.0
            return

        sp.pcm.append(window)
        sp.samples += window.size
        if self.is_playing:
            sp.during_playback = True
        if prob >= cfg.vad_neg_threshold:
            sp.voiced_ms += _WINDOW_MS
            sp.last_speech_end_pos = pos + window.size
            if sp.silence_ms:
                sp.silence_ms = 0.0
                sp.turn_asked = False
                sp.turn_verdict = None
                self._pause_seq += 1
                sp.pause_id = self._pause_seq
            if (
                sp.during_playback
                and not sp.barge_in
                and self.is_playing
                and sp.voiced_ms >= cfg.min_barge_in_ms
            ):
                await self._barge_in(sp)
            if sp.samples >= cfg.max_utterance_s * SAMPLE_RATE:
                self._end_speech("max_length")
            return

        sp.silence_ms += _WINDOW_MS
        if (
            self._smart_turn is not None
            and not sp.turn_asked
            and sp.silence_ms >= cfg.turn_pause_ms
            and sp.voiced_ms >= cfg.min_utterance_ms
        ):
            sp.turn_asked = True
            if self._smart_turn.pending < cfg.smart_turn_max_pending:
                self._ask_smart_turn(sp)
            else:
                self.stats["smart_turn_skipped"] += 1
        needed = cfg.end_silence_ms
        if sp.turn_verdict is not None and sp.turn_verdict < cfg.smart_turn_threshold:
            needed = cfg.incomplete_end_silence_ms
        if sp.silence_ms >= needed:
            self._end_speech("silence")

    @staticmethod
    def _rms(window: npt.NDArray[np.int16]) -> float:
        x = window.astype(np.float32)
        return float(np.sqrt(np.dot(x, x) / x.size))

    def _begin_speech(self, speech_start_pos: int, now_pos: int) -> None:
        pre = list(self._preroll)
        start_pos = now_pos - self._preroll_samples
        keep_from = max(start_pos, speech_start_pos - int(self.config.pre_roll_ms * SAMPLE_RATE / 1000))
        drop = keep_from - start_pos
        while pre and drop >= pre[0].size:
            drop -= pre[0].size
            start_pos += pre[0].size
            pre.pop(0)
        self._speech = _Speech(
            pcm=pre,
            start_pos=start_pos,
            speech_start_pos=speech_start_pos,
            last_speech_end_pos=now_pos,
            voiced_ms=self._start_run_ms,
            during_playback=self.is_playing,
            samples=sum(p.size for p in pre),
        )
        self._pause_seq += 1
        self._speech.pause_id = self._pause_seq
        self._preroll.clear()
        self._preroll_samples = 0
        self._start_run_ms = 0.0

    def _ask_smart_turn(self, sp: _Speech) -> None:
        assert self._smart_turn is not None
        upto = sp.last_speech_end_pos - sp.start_pos
        audio = np.concatenate(sp.pcm)[: max(upto, 0) + int(self.config.tail_ms * SAMPLE_RATE / 1000)]
        pause_id = sp.pause_id
        self.stats["smart_turn_decisions"] += 1

        async def decide() -> None:
            assert self._smart_turn is not None
            try:
                prob = await self._smart_turn.predict_async(audio)
            except Exception:  # a model failure must not end the call: fall back to silence
                logger.exception("call %s: smart-turn decision failed", self.call_id)
                return
            cur = self._speech
            if cur is not sp or cur.pause_id != pause_id or cur.silence_ms == 0.0:
                return  # the caller spoke again (or the utterance already ended)
            cur.turn_verdict = prob
            if prob >= self.config.smart_turn_threshold:
                self._end_speech("smart_turn")

        task = asyncio.get_running_loop().create_task(decide())
        self._side_tasks.add(task)
        task.add_done_callback(self._side_tasks.discard)

    def _end_speech(self, reason: EndReason) -> None:
        sp = self._speech
        self._speech = None
        self._pause_seq += 1
        if sp is None:
            return
        cfg = self.config
        if sp.voiced_ms < cfg.min_utterance_ms:
            self.stats["noise_dropped"] += 1
            return
        audio = np.concatenate(sp.pcm) if sp.pcm else np.zeros(0, dtype=np.int16)
        end = sp.last_speech_end_pos - sp.start_pos + int(cfg.tail_ms * SAMPLE_RATE / 1000)
        audio = audio[: max(end, 0)]
        utt = Utterance(
            pcm16_16k=audio.astype("<i2").tobytes(),
            speech_start=self._time_at(sp.speech_start_pos),
            speech_end=self._time_at(sp.last_speech_end_pos),
            duration_s=audio.size / SAMPLE_RATE,
            voiced_ms=sp.voiced_ms,
            during_playback=sp.during_playback,
            barge_in=sp.barge_in,
            end_reason=reason,
            smart_turn_probability=sp.turn_verdict,
        )
        self.stats["utterances"] += 1
        self._emit("utterance", utt)

    async def _barge_in(self, sp: _Speech) -> None:
        sp.barge_in = True
        self.stats["barge_ins"] += 1
        await self.clear()
        # Not queued behind a slow on_utterance: the in-flight reply must be cancelled now.
        task = asyncio.get_running_loop().create_task(self._run_barge_in_callback())
        self._side_tasks.add(task)
        task.add_done_callback(self._side_tasks.discard)

    async def _run_barge_in_callback(self) -> None:
        try:
            await self._on_barge_in()
        except Exception:
            self.stats["callback_errors"] += 1
            logger.exception("call %s: barge_in callback failed", self.call_id)

    def _sync_jitter_stats(self) -> None:
        js = self._jitter.stats
        self.stats["late_frames"] = js.late
        self.stats["duplicate_frames"] = js.duplicates
        self.stats["concealed_frames"] = js.concealed
        self.stats["lost_frames"] = js.lost

    async def flush(self, wait_callbacks: bool = True) -> None:
        """End of input: play out the jitter buffer and finish the utterance in progress;
        with ``wait_callbacks`` also wait until every queued callback has run."""
        await self._process_frames(self._jitter.flush())
        if self._speech is not None:
            if self._side_tasks:
                await asyncio.gather(*list(self._side_tasks), return_exceptions=True)
            if self._speech is not None:
                self._end_speech("stream_end")
        if wait_callbacks:
            await self.drain()

    async def drain(self) -> None:
        """Wait until pending smart-turn decisions and queued callbacks have run."""
        while self._side_tasks:
            await asyncio.gather(*list(self._side_tasks), return_exceptions=True)
        if self._dispatcher is not None and not self._dispatcher.done():
            await self._events.join()

    # ------------------------------------------------------------------ callbacks

    def _ensure_tasks(self) -> None:
        if self.closed:
            return
        if self._dispatcher is None:
            self._dispatcher = asyncio.get_running_loop().create_task(self._run_callbacks())
        if self._pacer is None:
            self._pacer = asyncio.get_running_loop().create_task(self._run_pacer())

    def _emit(self, kind: str, value: Any) -> None:
        self._ensure_tasks()
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
                self.stats["callback_errors"] += 1
                logger.exception("call %s: %s callback failed", self.call_id, kind)
            finally:
                self._events.task_done()

    # ------------------------------------------------------------------ outbound

    @property
    def is_playing(self) -> bool:
        """Agent audio is queued, or sent and not yet confirmed played by a mark (within
        ``mark_grace_ms`` of when it should have finished)."""
        if self._out:
            return True
        if not self._sent_unheard:
            return False
        return self._clock() < self._sent_unheard[-1][2] + self.config.mark_grace_ms / 1000.0

    async def play(self, mulaw: bytes, mark: str) -> None:
        """Queue agent audio (µ-law 8 kHz); a ``mark`` named ``mark`` follows its last frame.
        A partial last frame is padded with µ-law silence."""
        if not mark:
            raise ValueError("mark must be a non-empty name")
        if mark in self._heard_set or mark in self._cleared_marks or any(c.mark == mark for c in self._out):
            raise ValueError(f"mark {mark!r} was already used on this stream")
        framer = TwilioFramer()
        frames = framer.push(mulaw)
        tail = framer.flush(pad=True)
        if tail:
            frames.append(tail)
        self._out.append(_OutChunk(deque(frames), mark, len(frames)))
        self._ensure_tasks()
        self._out_wake.set()

    async def _send(self, message: dict[str, Any]) -> bool:
        try:
            await self._send_json(message)
        except Exception as exc:  # the socket went away: the call is ending
            logger.info("call %s: websocket send failed (%s)", self.call_id, type(exc).__name__)
            return False
        return True

    async def _run_pacer(self) -> None:
        lead = self.config.playback_lead_ms / 1000.0
        while True:
            if not self._out:
                self._out_wake.clear()
                await self._out_wake.wait()
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
                ok = await self._send(
                    {
                        "event": "media",
                        "streamSid": self._sid,
                        "media": {"payload": base64.b64encode(frame).decode("ascii")},
                    }
                )
                if not ok:
                    return
                self.stats["frames_out"] += 1
                self._play_head += FRAME_S
                continue
            # every frame of this chunk is out: its mark follows
            self._out.popleft()
            self._sent_unheard.append((chunk.mark, chunk.started_at or self._play_head, self._play_head))
            if not await self._send({"event": "mark", "streamSid": self._sid, "mark": {"name": chunk.mark}}):
                return
            self.stats["marks_sent"] += 1

    @property
    def _sid(self) -> str:
        return self.stream.stream_sid if self.stream else ""

    def _on_mark(self, name: str) -> None:
        if name in self._cleared_marks:
            return  # Twilio echoes cleared marks back after a clear: they were not heard
        idx = next((i for i, m in enumerate(self._sent_unheard) if m[0] == name), None)
        if idx is None:
            self.stats["unknown_marks"] += 1
            return
        # marks play in order: anything sent before this one has been heard too
        for _ in range(idx + 1):
            heard = self._sent_unheard.popleft()[0]
            self.heard_marks.append(heard)
            self._heard_since_clear.append(heard)
            self._heard_set.add(heard)
            self.stats["marks_heard"] += 1
            for fut in self._waiters.pop(heard, []):
                if not fut.done():
                    fut.set_result(True)

    async def wait_played(self, mark: str, timeout: float) -> bool:
        """True once Twilio echoed ``mark`` (the caller heard that audio); False when it was
        cleared, never queued, or ``timeout`` seconds passed."""
        if mark in self._heard_set:
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
        self._cleared_marks.update(unheard)
        for mark in unheard:
            for fut in self._waiters.pop(mark, []):
                if not fut.done():
                    fut.set_result(False)
        heard = self._heard_since_clear
        self._heard_since_clear = []
        self.stats["clears"] += 1
        await self._send({"event": "clear", "streamSid": self._sid})
        return ClearResult(
            heard=heard, unheard=unheard, interrupted=interrupted, interrupted_played_ms=played_ms
        )

    # ------------------------------------------------------------------ lifecycle

    async def close(self, drain_timeout: float = 1.0) -> None:
        """Stop the pacing and callback tasks (queued callbacks get ``drain_timeout`` s)."""
        if self.closed:
            return
        self.closed = True
        for fut_list in self._waiters.values():
            for fut in fut_list:
                if not fut.done():
                    fut.set_result(False)
        self._waiters.clear()
        for turn_task in list(self._side_tasks):
            turn_task.cancel()
        if self._dispatcher is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._events.join(), drain_timeout)
        for task in (self._pacer, self._dispatcher):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._sync_jitter_stats()
