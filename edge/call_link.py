"""One call's media socket wired to its call: speech to text before a turn, speech per reply chunk.

    Utterance ─► STT service ─► host.turn(CallerTurn) ─► ReplyChunk … ─► TTS service ─► playout
                                                           TurnDone ─► (goodbye: wait, then end)

Speech recognition starts early: at a pause (``early_stt_pause_ms``) the media stream hands out
the utterance so far and it is transcribed while the end of turn is still being decided. If the
caller does not go on, the utterance that ends is that same audio and the turn takes the
transcript already under way; if they do, it is dropped and the whole utterance is transcribed.

The call host sees one transcript per turn and answers with text chunks; all audio work stays
here, next to the socket. Voice to voice is measured on this process's clock: from the end of
the caller's speech to the first agent audio handed to playout. On barge-in, playout's
``clear`` says which marks were heard; the reply in flight is cancelled and the call is told
once what the caller heard of it (``interrupt``).

Each turn's ``TurnDone`` (the opening's included) says what the caller's next turn is likely to
hold (``stt_hints``: the state's values, the call's names and IDs); the next utterance goes to
speech recognition with it. The hints hold PHI: never logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from actors import metrics
from common.audio import STT_SAMPLE_RATE, TWILIO_SAMPLE_RATE
from common.dtmf import dtmf_ulaw
from common.events import (
    AnsweredBy,
    AnswerVerdict,
    AudioChunk,
    CallerTurn,
    EndReason,
    ListenFirst,
    ReplyChunk,
    Transcript,
    TransferOrder,
    TurnDone,
    TurnEvent,
    TurnRefused,
    Utterance,
)
from edge.answering import AnsweringSession
from edge.hold import HoldListener
from edge.keypad import KeypadCollector
from edge.media.config import EdgeConfig
from edge.media.playout import ClearResult
from edge.media.recorder import Recorder, RecordingSink
from edge.media.stream import MediaStream, Send
from edge.twilio.protocol import StreamInfo, TwilioMessage
from edge.twilio.transfer import Telephony, TransferResult
from engine.recording_policy import RecordingPolicy
from engine.schema_model import AudioCleanup

log = logging.getLogger("voxray.call_link")
GOODBYE_GRACE_S = 5.0
ENCODING = "mulaw_8k"


class SpeechToText(Protocol):
    async def transcribe(self, pcm16_16k: bytes, hints: str = "") -> Transcript: ...


class TextToSpeech(Protocol):
    def stream(self, text: str, encoding: str, voice: str = "standard") -> AsyncIterator[AudioChunk]: ...


class CallRouter(Protocol):
    """How a link reaches its call (``actors.host_pool.CallHostPool``)."""

    def check_token(self, call_id: str, token: str) -> bool: ...

    def stream(self, call_id: str, method: str, *args: Any) -> AsyncGenerator[Any, None]: ...

    async def call(self, call_id: str, method: str, *args: Any) -> Any: ...


@dataclass
class _EarlyTranscript:
    """Speech recognition of an utterance's audio so far, started at a pause."""

    pcm16_16k: bytes
    hints: str
    task: asyncio.Task[Transcript]


def _retrieve(task: asyncio.Task[Any]) -> None:
    if not task.cancelled():
        task.exception()


class CallLink:
    def __init__(
        self,
        call_id: str,
        pool: CallRouter,
        stt: SpeechToText,
        tts: TextToSpeech,
        send_json: Send,
        config: EdgeConfig | None = None,
        clock: Callable[[], float] = time.monotonic,
        telephony: Telephony | None = None,
        recordings: RecordingSink | None = None,
        twilio_amd: bool = False,
    ):
        self.call_id = call_id
        self.telephony = telephony  # hands the live call to a person (None: not on Twilio)
        self.recordings = recordings  # where recordings go (None: this edge records nothing)
        self.twilio_amd = twilio_amd  # Twilio's answering machine detection was asked for too
        self._recording: asyncio.Task[RecordingPolicy | None] | None = None
        self.pool = pool
        self.stt = stt
        self.tts = tts
        self.clock = clock
        self.media = MediaStream(
            send_json,
            self.on_utterance,
            self.on_barge_in,
            config,
            call_id=call_id,
            on_start=self.on_start,
            on_stop=self.on_stop,
            on_dtmf=self.on_dtmf,
            on_early_audio=self.on_early_audio,
            clock=clock,
        )
        self.keypad = KeypadCollector(self.on_keys, self.media.config.keypad_gap_ms / 1000)
        self.authorized = False
        self.finished = False
        self.end_reason: EndReason | None = None
        self.ignored_over_agent = 0
        self._turn: asyncio.Task[None] | None = None
        self._marks: dict[str, tuple[int, str]] = {}  # mark → (turn, text of its audio)
        self._marks_of: dict[int, list[str]] = {}  # turn → its marks in order
        self._notes: set[asyncio.Task[Any]] = set()
        self._stt_hints = ""  # from the latest TurnDone: what the next utterance likely holds
        self._early: _EarlyTranscript | None = None
        self.early_stt = {"started": 0, "used": 0, "dropped": 0}
        self.answering: AnsweringSession | None = None  # who answered (edge/answering.py)
        self.hold = HoldListener(self._hold_timed_out, call_id)  # on hold: music is dropped unheard
        self._stream_started = clock()

    async def handle(self, raw: str | bytes | TwilioMessage) -> None:
        await self.media.handle_message(raw)

    # ---- stream events -----------------------------------------------------------------
    async def on_start(self, info: StreamInfo) -> None:
        if not self.pool.check_token(self.call_id, info.custom_parameters.get("token", "")):
            log.warning("call %s: media stream with a wrong token refused", self.call_id)
            self.finished = True  # closes this socket; a stream that is not the call's cannot end it
            return
        self.authorized = True
        self._stream_started = self.clock()
        if self.recordings is not None:
            # both sides are taped from the first frame; the call's terms arrive meanwhile
            self.media.record(Recorder())
            self._recording = asyncio.get_running_loop().create_task(self._recording_terms())
        task = asyncio.get_running_loop().create_task(self._use_audio_cleanup())
        self._notes.add(task)
        task.add_done_callback(self._notes.discard)
        self._start_turn(self._play(self.pool.stream(self.call_id, "opening"), None))

    async def _use_audio_cleanup(self) -> None:
        """The schema's clean-up of the caller's audio (``audio:``), from the call's host."""
        try:
            terms: AudioCleanup | None = await self.pool.call(self.call_id, "audio_cleanup")
        except Exception as exc:  # the call's own turns report a lost host; audio stays as it is
            log.warning("call %s: audio clean-up terms unknown (%s)", self.call_id, type(exc).__name__)
            return
        if terms is not None and not self.finished:  # None: a host that sets no terms
            self.media.use_cleanup(terms.noise_suppression, terms.echo_cancellation)

    async def on_stop(self) -> None:
        self._end(EndReason.CALLER_HUNG_UP)

    async def on_utterance(self, utterance: Utterance) -> None:
        if not self.authorized or self.finished:
            return
        if self.answering is not None and self.answering.takes(utterance):
            return  # evidence of who answered, not a turn
        if self._turn is not None and not self._turn.done():
            await asyncio.wait([self._turn])  # the previous reply is queued first; turns stay in order
        if self.hold.drops(utterance):
            return  # hold music (edge/hold.py): no STT, no turn
        self._start_turn(self._caller_turn(utterance))

    def on_early_audio(self, pcm16_16k: bytes) -> None:
        """The utterance so far, at a pause: start transcribing it (see the module docstring)."""
        if not self.authorized or self.finished or self.hold.active:
            return  # on hold, music is screened first and most of it is never transcribed
        if self.answering is not None and self.answering.listening:
            return  # who answered decides on its own transcripts
        if self._turn is not None and not self._turn.done():
            return  # a reply is still being made: this speech waits for it anyway (and may be a hold)
        self._drop_early()
        task = asyncio.get_running_loop().create_task(self.stt.transcribe(pcm16_16k, self._stt_hints))
        task.add_done_callback(_retrieve)  # a dropped run that failed must not log "never retrieved"
        task.add_done_callback(self._early_heard)
        self._early = _EarlyTranscript(pcm16_16k, self._stt_hints, task)
        self.early_stt["started"] += 1

    def _early_heard(self, task: asyncio.Task[Transcript]) -> None:
        """An early transcript is in: if the caller is still quiet, its words help decide whether
        the turn has ended (``MediaStream.early_transcript``)."""
        early = self._early
        if early is None or early.task is not task or task.cancelled() or task.exception() is not None:
            return
        note = asyncio.get_running_loop().create_task(self.media.early_transcript(task.result().text))
        self._notes.add(note)
        note.add_done_callback(self._notes.discard)

    def _drop_early(self) -> None:
        early, self._early = self._early, None
        if early is not None:
            early.task.cancel()
            self.early_stt["dropped"] += 1

    async def _transcribe(self, utterance: Utterance) -> Transcript:
        """The utterance's transcript: the early one when the caller did not go on after it."""
        early = self._early
        if early is not None and early.pcm16_16k == utterance.pcm16_16k and early.hints == self._stt_hints:
            self._early = None
            try:
                transcript = await early.task
            except Exception:  # the early run failed: transcribed again below, where failures are handled
                pass
            else:
                self.early_stt["used"] += 1
                return transcript
        else:
            self._drop_early()
        return await self.stt.transcribe(utterance.pcm16_16k, self._stt_hints)

    # ---- keypad (edge/keypad.py gathers the keys; common/dtmf.py plays the agent's) -----
    async def on_dtmf(self, digits: str) -> None:
        if self.authorized and not self.finished:
            await self.keypad.press(digits)

    async def on_keys(self, keys: str) -> None:
        """One keypad entry: a turn like a spoken one, queued behind the reply in flight."""
        while not self.finished and self._turn is not None and not self._turn.done():
            await asyncio.wait([self._turn])
        if self.finished:
            return
        caller = CallerTurn(text=keys, mode="keypad", keys=keys)
        self._start_turn(self._play(self.pool.stream(self.call_id, "turn", caller), None))

    def _press_keys(self, chunk: ReplyChunk) -> tuple[str, float]:
        """Play a chunk's key presses as in-band DTMF (no TTS); returns its mark and seconds."""
        audio = dtmf_ulaw(chunk.keys)
        mark = f"t{chunk.turn}c{chunk.index}k"
        self._marks[mark] = (chunk.turn, chunk.text)
        self._marks_of.setdefault(chunk.turn, []).append(mark)
        self.media.play(audio, mark)
        return mark, len(audio) / TWILIO_SAMPLE_RATE

    async def on_barge_in(self, cleared: ClearResult) -> None:
        if self._turn is not None and not self._turn.done():
            self._turn.cancel()  # stops TTS here and, through the stream, the reply on the host
        turn = self._interrupted_turn(cleared)
        if turn is None:
            return
        heard = set(self.media.heard_marks)
        heard_text = " ".join(
            self._marks[m][1] for m in self._marks_of.get(turn, []) if m in heard and self._marks[m][1]
        )
        with contextlib.suppress(Exception):
            await self.pool.call(self.call_id, "interrupt", turn, heard_text)

    def _interrupted_turn(self, cleared: ClearResult) -> int | None:
        """The turn whose audio was playing (or queued) when the caller cut in."""
        for mark in [cleared.interrupted, *cleared.unheard, *reversed(cleared.heard)]:
            if mark is not None and mark in self._marks:
                return self._marks[mark][0]
        return None

    # ---- a turn ------------------------------------------------------------------------
    def _start_turn(self, work: Any) -> None:
        self._turn = asyncio.get_running_loop().create_task(work)

    async def _caller_turn(self, utterance: Utterance) -> None:
        t0 = self.clock()
        try:
            transcript = await self._transcribe(utterance)
        except Exception as exc:  # the STT replica said no: the call asks the caller to repeat
            log.warning("call %s: STT failed: %s", self.call_id, type(exc).__name__)
            metrics.error("stt", type(exc).__name__)
            transcript = Transcript()
        caller = CallerTurn(
            text=transcript.text.strip()[:4000],
            mode="audio",
            # said over the agent without cutting in: a mere backchannel ("mhm") is no turn
            over_agent=utterance.during_playback and not utterance.barge_in,
            heard_nothing=transcript.no_speech or not transcript.text.strip(),
            stt_ms=(self.clock() - t0) * 1000,
            confidence=transcript.confidence,
        )
        stt_audio_s = len(utterance.pcm16_16k) / (2 * STT_SAMPLE_RATE)
        await self._play(self.pool.stream(self.call_id, "turn", caller), utterance.speech_end, stt_audio_s)

    async def _play(
        self, events: AsyncIterator[TurnEvent], speech_end: float | None, stt_audio_s: float = 0.0
    ) -> None:
        """Speak a reply stream chunk by chunk; ``speech_end`` (this clock) times voice to voice.
        What the turn used (seconds transcribed, characters spoken per voice) goes to the call."""
        stages: dict[str, float] = {}
        usage: dict[str, float] = {"stt_audio_s": stt_audio_s, "tts_chars": 0, "tts_premium_chars": 0}
        turn: int | None = None
        last_mark: str | None = None
        played_s = 0.0
        try:
            async for event in events:
                if isinstance(event, ReplyChunk) and event.keys:
                    turn = event.turn
                    last_mark, seconds = self._press_keys(event)
                    played_s += seconds
                elif isinstance(event, ReplyChunk):
                    turn = event.turn
                    usage["tts_premium_chars" if event.voice == "premium" else "tts_chars"] += len(event.text)
                    async for audio in self.tts.stream(event.text, ENCODING, event.voice):
                        if not stages:
                            stages["tts_first_audio"] = audio.synth_ms
                            if speech_end is not None:
                                stages["voice_to_voice"] = (self.clock() - speech_end) * 1000
                        last_mark = f"t{event.turn}c{event.index}s{audio.index}"
                        said = "" if audio.partial else audio.text or event.text
                        self._marks[last_mark] = (event.turn, said)
                        self._marks_of.setdefault(event.turn, []).append(last_mark)
                        played_s += audio.duration_s
                        self.media.play(audio.audio, last_mark)
                elif isinstance(event, TurnDone):
                    turn = event.turn
                    self.hold.update(event)
                    if event.ignored:  # a backchannel: the state and so the hints did not change
                        self.ignored_over_agent += 1
                    else:
                        self._stt_hints = event.stt_hints
                    if event.terminal:
                        if last_mark is not None:
                            await self.media.wait_played(last_mark, timeout=played_s + GOODBYE_GRACE_S)
                        if event.transfer is not None:
                            await self._transfer(event.transfer)
                        self._end(EndReason.COMPLETED)
                elif isinstance(event, TurnRefused):
                    self._end(EndReason.COMPLETED)
                elif isinstance(event, ListenFirst):
                    await self._listen_first(event)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a failed turn must not kill the socket: the caller can speak again
            log.warning("call %s: turn failed: %s", self.call_id, type(exc).__name__)
        finally:
            self._report(turn, stages, speech_end, usage)

    def _report(
        self, turn: int | None, stages: dict[str, float], speech_end: float | None, usage: dict[str, float]
    ) -> None:
        if turn is None:
            return
        if speech_end is None or not stages:
            stages = {}
        else:
            metrics.stages_observed("audio", stages)
        task = asyncio.get_running_loop().create_task(
            self.pool.call(self.call_id, "note_stages", turn, stages, usage)
        )
        self._notes.add(task)
        task.add_done_callback(self._note_done)

    def _note_done(self, task: asyncio.Task[Any]) -> None:
        self._notes.discard(task)
        if not task.cancelled() and task.exception() is not None:  # the call ended meanwhile
            log.debug("call %s: stage note not delivered", self.call_id)

    async def settle(self) -> None:
        """Wait until the reply in flight has been handed to playout (and any goodbye played)."""
        if self._turn is not None:
            await asyncio.gather(self._turn, return_exceptions=True)
        if self._notes:
            await asyncio.gather(*self._notes, return_exceptions=True)

    async def _listen_first(self, listen: ListenFirst) -> None:
        """Stay silent until who answered is decided, then play the call's first words for it."""

        async def answered(verdict: AnswerVerdict) -> None:
            await self._play(self.pool.stream(self.call_id, "answered", verdict), None)

        async def twilio_answer() -> AnsweredBy | None:
            answer: AnsweredBy | None = await self.pool.call(self.call_id, "twilio_answer")
            return answer

        on_twilio = (
            self.twilio_amd and self.media.stream is not None and self.media.stream.call_sid.startswith("CA")
        )
        self.answering = AnsweringSession(
            self.media,
            self.stt,
            listen,
            self._stream_started,
            answered,
            clock=self.clock,
            twilio_answer=twilio_answer if on_twilio else None,
        )
        await self.answering.run()

    # ---- transfer and recording ----------------------------------------------------------
    async def _transfer(self, order: TransferOrder) -> None:
        """Hand the live call to a person (its last line has played); the call notes the result."""
        call_sid = self.media.stream.call_sid if self.media.stream is not None else ""
        if self.telephony is None or not call_sid:
            result = TransferResult(status="failed", error="not_on_twilio")
        else:
            result = await self.telephony.transfer(self.call_id, call_sid, order)
        if result.error:
            metrics.error("transfer", result.error)
        with contextlib.suppress(Exception):
            await self.pool.call(self.call_id, "note_transfer", result.status, result.error)

    async def _recording_terms(self) -> RecordingPolicy | None:
        try:
            policy: RecordingPolicy | None = await self.pool.call(self.call_id, "recording_policy")
        except Exception as exc:
            log.warning(
                "call %s: recording terms unknown, not recording (%s)", self.call_id, type(exc).__name__
            )
            policy = None
        if policy is None:
            self.media.record(None)
        return policy

    async def _save_recording(self) -> None:
        recorder, task = self.media.recorder, self._recording
        if recorder is None or task is None or self.recordings is None:
            return
        policy = await asyncio.gather(task, return_exceptions=True)
        terms = policy[0] if isinstance(policy[0], RecordingPolicy) else None
        self.media.record(None)
        if terms is None:
            return
        try:
            location = await asyncio.to_thread(
                self.recordings.write, recorder, self.call_id, terms.retention_days
            )
        except (OSError, ValueError) as exc:
            log.error("call %s: recording not written (%s)", self.call_id, type(exc).__name__)
            metrics.error("recording", type(exc).__name__)
            return
        with contextlib.suppress(Exception):  # the call ended elsewhere first: the file stays, unlisted
            await self.pool.call(self.call_id, "note_recording", location)

    # ---- the end -----------------------------------------------------------------------
    def _end(self, reason: EndReason) -> None:
        if not self.finished:
            self.finished = True
            self.end_reason = reason

    async def _hold_timed_out(self) -> None:
        """On hold for the schema's ``hold.timeout_s``: the call ends (``callback_needed``), unless
        a person came back meanwhile (the call is no longer on hold: it answers None)."""
        if self.finished:
            return
        try:
            done = await self.pool.call(self.call_id, "hold_timeout")
        except Exception as exc:  # the call is gone: end this link all the same
            log.warning("call %s: hold timeout not delivered: %s", self.call_id, type(exc).__name__)
            done = None
            self._end(EndReason.HOLD_TIMEOUT)
        if done is not None:
            self._end(EndReason.HOLD_TIMEOUT)

    async def close(self) -> None:
        self._drop_early()
        await self.keypad.close()
        await self.hold.close()
        if self.answering is not None:
            await self.answering.close()
        if self._turn is not None and not self._turn.done():
            self._turn.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._turn
        await self.media.close()
        await self._save_recording()
        if self._notes:
            await asyncio.gather(*self._notes, return_exceptions=True)
