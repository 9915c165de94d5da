"""Who answered an outbound call, decided at the edge in its first seconds.

When the call's opening is ``ListenFirst``, the link stays silent and an ``AnsweringSession``
listens: every inbound frame reaches an ``AnswerDetector`` through the media stream's audio tap
(tones: a voicemail beep, a fax), and every utterance the endpointer cuts goes to it instead of
becoming a turn. The verdict, within ``wait_s`` of the stream's start where it can be:

- a fax or modem tone → ``fax`` (by audio);
- a beep after speech → ``voicemail`` (by audio: the greeting is over, the message can start);
- a short burst of speech (``short_greeting_s``) and a pause → ``human`` (by audio: "Hello?"
  and waiting), unless the speech resumes within ``person_grace_s`` (a recorded greeting
  pauses too); no speech recognition on this path (also for a burst of sound the VAD missed);
- speech that paused or ended → speech recognition (the link's STT) →
  ``engine.answered_by.classify``; a short, person-like greeting gets a moment to go on;
- speech running ``early_partial_s`` without a pause (machines talk long) → the audio so far is
  transcribed at once and again every ``partial_every_s``; a clear machine verdict stands at
  once, anything else listens on until the speech ends (a person mid-sentence must not be
  talked over), for ``max_extend_s`` past ``wait_s`` at most; a long greeting without a cue
  is then taken for a recording (the session waits for its beep before it speaks);
- nothing heard by ``wait_s`` → ``silence`` (by timeout): the call says its opening once (people
  do pick up and wait); a further ``no_answer_s`` of silence ends the call as not answered.

For a voicemail the session then waits for the beep (or ``beep_wait_s``, or a long quiet after
the greeting) before the call's message is played. Verdicts are timed from the stream's start.
What was heard is PHI: it goes to the call, never to the logs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Literal, Protocol

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field

from common.events import AnsweredBy, AnswerVerdict, ListenFirst, Transcript, Utterance
from edge.media.tones import ToneDetector
from engine.answered_by import Classification, classify

log = logging.getLogger("voxray.answering")

SAMPLE_RATE = 16000
LOUD = 300  # int16: a sample this loud is more than line noise
VerdictBasis = Literal["audio", "transcript", "timeout", "twilio"]
MACHINES = (AnsweredBy.VOICEMAIL, AnsweredBy.SCREENER, AnsweredBy.MENU)


class SpeechToText(Protocol):
    async def transcribe(self, pcm16_16k: bytes, hints: str = "") -> Transcript: ...


class AnsweringConfig(BaseModel):
    """Edge-side knobs of the who-answered decision (the schema gives ``wait_s``, ``beep_wait_s``)."""

    model_config = ConfigDict(extra="forbid")

    early_partial_s: float = Field(
        1.2,
        gt=0,
        le=5,
        description="Speech running this long without a pause (people say little, machines talk "
        "long): transcribe the audio so far at once, then every partial_every_s.",
    )
    monologue_s: float = Field(
        4.0,
        gt=0,
        le=15,
        description="Speech running this long by the limit without a person's cue: a recording.",
    )
    person_grace_s: float = Field(
        0.35,
        ge=0,
        le=2,
        description="After a short person-like greeting ends, how long more speech "
        "would still make it a recorded greeting.",
    )
    max_extend_s: float = Field(
        4.0,
        ge=0,
        le=15,
        description="Speech still running at wait_s that is not clearly a machine: "
        "listen on this long at most for it to end.",
    )
    no_answer_s: float = Field(
        8.0,
        gt=0,
        le=60,
        description="Silence after the opening was said to a silent line before the call "
        "ends as not answered.",
    )
    greeting_quiet_s: float = Field(
        4.0,
        gt=0,
        le=30,
        description="Voicemail without a beep: quiet this long after the greeting means the "
        "recording has started.",
    )
    pause_s: float = Field(
        0.45,
        gt=0,
        le=2,
        description="A pause in the speech this long: transcribe what was said so far and "
        "judge it (the endpointer may wait longer before it ends the utterance).",
    )
    partial_every_s: float = Field(
        0.7, gt=0, le=5, description="Speech still running: transcribe the audio so far this often."
    )
    short_greeting_s: float = Field(
        1.6,
        gt=0,
        le=5,
        description="Speech this short, then a pause of pause_s and person_grace_s, is a person saying "
        "hello: decided by audio, without waiting for speech recognition.",
    )
    machine_score: float = Field(
        2.5, gt=0, description="Evidence for a machine in a greeting still going on that decides at once."
    )
    strong_cue_score: float = Field(
        3.5, gt=0, description="Mid-greeting, one cue family this strong decides alone (else two cues)."
    )
    twilio_poll_s: float = Field(
        0.25, gt=0, le=2, description="How often Twilio's detection is asked for while listening (when on)."
    )
    max_buffer_s: float = Field(12.0, gt=1, le=30, description="Audio kept for partial transcription.")
    poll_s: float = Field(0.04, gt=0, le=0.5)


class AnswerDetector:
    """One call's evidence (audio, utterances) and the decision over it; see the module docstring."""

    def __init__(
        self,
        stt: SpeechToText,
        wait_s: float,
        started_at: float,
        in_speech: Callable[[], bool],
        config: AnsweringConfig | None = None,
        clock: Callable[[], float] = time.monotonic,
        speech_state: Callable[[], str] | None = None,
    ) -> None:
        """``speech_state``: the endpointer's "quiet"/"speaking"/"paused" (default: from ``in_speech``)."""
        self.stt = stt
        self.wait_s = wait_s
        self.started_at = started_at
        self.in_speech = in_speech
        self.config = config or AnsweringConfig()
        self.clock = clock
        self.tones = ToneDetector(SAMPLE_RATE)
        self._chunks: list[npt.NDArray[np.int16]] = []
        self._samples = 0
        self._utterances: list[Utterance] = []
        self._texts: list[str] = []  # transcripts of the utterances taken so far
        self._fax = False
        self._twilio: AnsweredBy | None = None  # Twilio's answering machine detection, when asked
        self._beep = False
        self._last_speech_end: float | None = None
        self._loud_first: float | None = None  # loud frames (energy, whatever the VAD says)
        self._loud_last: float | None = None
        self._loud_s = 0.0
        self._stt_times: list[float] = []
        self._changed = asyncio.Event()
        self.stt_runs = 0
        self.trace: list[tuple[float, str]] = []  # (s from stream start, event): no words, never PHI
        self._last_state = "quiet"
        self.speech_state = speech_state or (lambda: "speaking" if in_speech() else "quiet")

    # ---- evidence -------------------------------------------------------------------------
    def on_audio(self, pcm: npt.NDArray[np.int16]) -> None:
        """The media stream's tap: every inbound frame, PCM16 16 kHz (cheap: ~50 µs a frame)."""
        if self._samples < self.config.max_buffer_s * SAMPLE_RATE:
            self._chunks.append(pcm)
            self._samples += pcm.size
        if pcm.size and float(np.sqrt(np.mean(pcm.astype(np.float32) ** 2))) >= LOUD:
            now = self.clock()
            self._loud_first = self._loud_first or now
            self._loud_last = now
            self._loud_s += pcm.size / SAMPLE_RATE
        for tone in self.tones.push(pcm):
            if tone.kind == "fax":
                self._fax = True
            else:
                self._beep = True
            self._changed.set()

    def note_twilio(self, answered_by: AnsweredBy) -> None:
        """Twilio's own detection answered (a human, a machine, a fax): it decides unless the
        edge has already."""
        self._twilio = answered_by
        self._changed.set()

    def on_utterance(self, utterance: Utterance) -> None:
        self._note(
            f"utterance in, speech {utterance.speech_start - self.started_at:.2f}"
            f"-{utterance.speech_end - self.started_at:.2f} s"
        )
        self._utterances.append(utterance)
        self._last_speech_end = utterance.speech_end
        self._changed.set()

    @property
    def heard_speech(self) -> bool:
        return bool(self._utterances) or self.in_speech() or self.tones.speech_heard

    def _note(self, event: str) -> None:
        self.trace.append((self.clock() - self.started_at, event))

    def _elapsed_ms(self) -> float:
        return max(0.0, (self.clock() - self.started_at) * 1000)

    def _verdict(self, answered_by: AnsweredBy, by: VerdictBasis, text: str = "") -> AnswerVerdict:
        self._note(f"verdict {answered_by} by {by}")
        return AnswerVerdict(
            answered_by=answered_by,
            by=by,
            decided_ms=self._elapsed_ms(),
            text=text[:4000],
            beep=self._beep,
        )

    # ---- the decision -----------------------------------------------------------------------
    async def decide(self) -> AnswerVerdict:
        cfg = self.config
        deadline = self.started_at + self.wait_s
        hard_limit = deadline + cfg.max_extend_s
        partial: Classification | None = None
        partial_text = ""
        partial_at: float | None = None
        paused_since: float | None = None
        speech_began: float | None = None
        pause_judged = False
        taken = 0  # utterances transcribed so far
        while True:
            if self._fax:
                return self._verdict(AnsweredBy.FAX, "audio")
            if self._twilio is not None:
                return self._verdict(self._twilio, "twilio", partial_text or " ".join(self._texts))
            if self._beep:
                return self._verdict(AnsweredBy.VOICEMAIL, "audio", partial_text or " ".join(self._texts))
            if taken < len(self._utterances):
                fresh = self._utterances[taken:]
                taken = len(self._utterances)
                # "Hello?" and the endpointer heard the turn end: a person (quick heuristic)
                short_hello = taken == 1 and self._short(fresh[0]) and not self._texts
                if short_hello and not self._voice() and await self._quiet_through_grace():
                    return self._verdict(AnsweredBy.HUMAN, "audio")
                for utterance in fresh:
                    text = await self._transcribe(utterance.pcm16_16k)
                    if text:
                        self._texts.append(text)
                heard = " ".join(self._texts)
                if heard:
                    result = classify(heard)
                    if await self._stands(result):
                        return self._verdict(result.answered_by, "transcript", heard)
                    if taken < len(self._utterances) or self.in_speech():
                        continue  # the greeting goes on: listen to the rest
                    if not self._keeps_listening(result):
                        return self._verdict(result.answered_by, "transcript", heard)
            now = self.clock()
            state = self.speech_state()
            if state != self._last_state:
                self._note(f"endpointer {state}")
                self._last_state = state
            paused_since = (paused_since or now) if state == "paused" else None
            if state == "speaking":
                pause_judged = False
                speech_began = speech_began or now
            if (
                paused_since is not None
                and not pause_judged
                and not self._texts
                and partial_at is None
                and speech_began is not None
                and paused_since - speech_began <= cfg.short_greeting_s
                and now - paused_since >= cfg.pause_s
            ):
                # "Hello?" and a pause: a person waiting for an answer (LiveKit's quick heuristic);
                # a recorded greeting goes on within the grace. No speech recognition needed.
                pause_judged = True
                if await self._quiet_through_grace():
                    return self._verdict(AnsweredBy.HUMAN, "audio")
                continue
            if paused_since is not None and not pause_judged and now - paused_since >= cfg.pause_s:
                # the greeting may be over: judge what was said without waiting for the endpointer
                pause_judged = True
                partial_text, partial_at = await self._transcribe(self._audio_so_far()), self.clock()
                partial = classify(partial_text)
                if partial_text and await self._stands(partial):
                    return self._verdict(partial.answered_by, "transcript", partial_text)
                continue
            # Machines talk long: once the speech has run early_partial_s, transcribe the audio so
            # far at once and again as it goes; a clear machine verdict stands mid-greeting.
            due = partial_at is None or now - partial_at >= cfg.partial_every_s
            talked = speech_began is not None and now - speech_began >= cfg.early_partial_s
            if state == "speaking" and due and talked:
                partial_text, partial_at = await self._transcribe(self._audio_so_far()), self.clock()
                partial = classify(partial_text, complete=False)  # the buffer holds all heard so far
                if self._decides_mid_greeting(partial):
                    return self._verdict(partial.answered_by, "transcript", partial_text)
                continue
            if speech_began is None and not self._texts and self._short_burst_heard(now):
                # sound the VAD never took for speech ("Yes?" clipped short), then quiet: a person
                return self._verdict(AnsweredBy.HUMAN, "audio")
            if not self.heard_speech and now >= deadline:
                return self._verdict(AnsweredBy.SILENCE, "timeout")
            if now >= hard_limit:  # a long monologue that never said what it was
                return self._at_limit(partial_text, speech_began, now)
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), cfg.poll_s)

    def _at_limit(self, partial_text: str, speech_began: float | None, now: float) -> AnswerVerdict:
        """The greeting ran to the limit without a decisive cue. A person answering the phone does
        not talk this long without a pause: a machine cue decides, a long greeting without one is
        taken for a recording (the session then waits for its beep: never talk over a machine)."""
        text = max(partial_text, " ".join(self._texts), key=len).strip()
        result = classify(text, complete=False)
        if result.answered_by in MACHINES:
            return self._verdict(result.answered_by, "timeout", text)
        machine = {k: result.scores[k] for k in MACHINES}
        best = max(machine, key=lambda k: machine[k])
        talked_s = 0.0 if speech_began is None else now - speech_began
        if machine[best] > 0 and result.scores[AnsweredBy.HUMAN] < machine[best]:
            return self._verdict(best, "timeout", text)
        if talked_s >= self.config.monologue_s and result.scores[AnsweredBy.HUMAN] < 2.5:
            return self._verdict(AnsweredBy.VOICEMAIL, "timeout", text)
        return self._verdict(result.answered_by if text else AnsweredBy.UNKNOWN, "timeout", text)

    def _decides_mid_greeting(self, result: Classification) -> bool:
        """A machine verdict on a greeting still running: strong cues only (one strong cue or two),
        never the shape of the speech alone ("thank you for calling X" opens menus and voicemails;
        "tell me why you're calling" opens screeners and spoken menus)."""
        if result.answered_by not in MACHINES or result.margin < 1.0:
            return False
        score = result.scores[result.answered_by]
        strong = score >= self.config.strong_cue_score or result.cue_count >= 2
        return score >= self.config.machine_score and strong

    def _keeps_listening(self, result: Classification) -> bool:
        """A complete but undecided greeting (long, no cue): listen on for a beep or more speech
        up to the limit rather than answer what may be a recording."""
        return result.answered_by == AnsweredBy.UNKNOWN and result.words >= 10

    def _short_burst_heard(self, now: float) -> bool:
        cfg = self.config
        if self._loud_first is None or self._loud_last is None or self._voice():
            return False
        burst = self._loud_last - self._loud_first
        quiet = now - self._loud_last
        waited = quiet >= cfg.pause_s + cfg.person_grace_s
        return self._loud_s >= 0.12 and burst <= cfg.short_greeting_s and waited

    def _voice(self) -> bool:
        """Voice right now (the endpointer's "speaking"; its in_speech also holds through pauses)."""
        return self.speech_state() == "speaking"

    async def _stands(self, result: Classification) -> bool:
        """Whether a verdict on complete utterances can be acted on now. A machine's cues are
        enough; a short person-like greeting must also be followed by quiet (a recorded greeting
        says "Hi, this is Sam." and goes on)."""
        if result.answered_by in MACHINES and result.sure:
            return True
        if result.answered_by in MACHINES:
            return not self._voice()
        if result.answered_by == AnsweredBy.UNKNOWN:
            return False
        return await self._quiet_through_grace()

    async def _quiet_through_grace(self) -> bool:
        self._note("grace")
        until = self.clock() + self.config.person_grace_s
        while self.clock() < until:
            if self._voice() or self._beep or self._fax:
                return False
            await asyncio.sleep(self.config.poll_s)
        return not self._voice()

    def _short(self, utterance: Utterance) -> bool:
        return utterance.speech_end - utterance.speech_start <= self.config.short_greeting_s

    def _audio_so_far(self) -> bytes:
        """The audio since the stream started, line silence before the first sound dropped."""
        if not self._chunks:
            return b""
        pcm = np.concatenate(self._chunks)
        loud = np.flatnonzero(np.abs(pcm) > LOUD)
        first = max(0, int(loud[0]) - SAMPLE_RATE // 5) if loud.size else 0
        return pcm[first:].astype("<i2").tobytes()

    async def _transcribe(self, pcm: bytes) -> str:
        t0 = self.clock()
        self.stt_runs += 1
        self._note(f"stt start ({len(pcm) / 2 / SAMPLE_RATE:.2f} s of audio)")
        try:
            transcript = await self.stt.transcribe(pcm, "")
        except Exception as exc:  # the STT replica said no: decide on what else there is
            log.warning("answering: STT failed: %s", type(exc).__name__)
            return ""
        finally:
            self._stt_times.append(self.clock() - t0)
            self._note(f"stt done in {self._stt_times[-1] * 1000:.0f} ms")
        return "" if transcript.no_speech else transcript.text.strip()

    # ---- after the verdict ------------------------------------------------------------------
    async def wait_for_turn(self, timeout_s: float) -> None:
        """Wait until the counterpart pauses (a verdict taken mid-sentence is not a cue to talk)."""
        until = self.clock() + timeout_s
        quiet_since: float | None = None
        while self.clock() < until:
            if self.speech_state() == "speaking":
                quiet_since = None
            elif quiet_since is None:
                quiet_since = self.clock()
            elif self.clock() - quiet_since >= self.config.pause_s:
                return
            await asyncio.sleep(self.config.poll_s)

    async def wait_for_beep(self, timeout_s: float) -> bool:
        """Wait until the greeting's beep (True), or until ``timeout_s`` or a long quiet after the
        greeting (False): the message goes on the recording either way."""
        until = self.clock() + timeout_s
        quiet_since: float | None = None
        while not self._beep:
            now = self.clock()
            if now >= until:
                return False
            if self.in_speech():
                quiet_since = None
            elif quiet_since is None:
                quiet_since = now
            elif now - quiet_since >= self.config.greeting_quiet_s:
                return False
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), self.config.poll_s)
        return True


class _Endpointer(Protocol):
    @property
    def in_speech(self) -> bool: ...

    @property
    def state(self) -> str: ...


class TappableStream(Protocol):
    """What the session needs of ``edge.media.stream.MediaStream``."""

    audio_tap: Callable[[npt.NDArray[np.int16]], None] | None

    @property
    def endpointer(self) -> _Endpointer: ...

    @property
    def stats(self) -> dict[str, float]: ...


class AnsweringSession:
    """The link's side of one who-answered decision: taps the stream, takes the utterances while
    it listens, hands the verdict to ``answered`` (the link plays the call's reply to it) and,
    after a silent line got the opening, ends the call if the silence goes on."""

    def __init__(
        self,
        media: TappableStream,
        stt: SpeechToText,
        listen: ListenFirst,
        started_at: float,
        answered: Callable[[AnswerVerdict], Awaitable[None]],
        config: AnsweringConfig | None = None,
        clock: Callable[[], float] = time.monotonic,
        twilio_answer: Callable[[], Awaitable[AnsweredBy | None]] | None = None,
    ) -> None:
        """``twilio_answer``: what Twilio's answering machine detection said so far (polled while
        the session listens; None: not asked)."""
        self.media = media
        self.twilio_answer = twilio_answer
        self.listen = listen
        self.answered = answered
        self.config = config or AnsweringConfig()
        self.clock = clock
        self.detector = AnswerDetector(
            stt,
            listen.wait_s,
            started_at,
            lambda: media.endpointer.in_speech,
            self.config,
            clock,
            lambda: str(media.endpointer.state),
        )
        self.listening = False
        self.verdict: AnswerVerdict | None = None
        self._watch: asyncio.Task[None] | None = None

    def takes(self, utterance: Utterance) -> bool:
        """An utterance while the session listens is evidence, not a turn. One after a silent line's
        opening means someone is there: the no-answer watch stops."""
        if self.listening:
            self.detector.on_utterance(utterance)
            return True
        if self._watch is not None and not self._watch.done():
            self._watch.cancel()
        return False

    async def run(self) -> AnswerVerdict:
        self.listening = True
        self.media.audio_tap = self.detector.on_audio
        poll = asyncio.get_running_loop().create_task(self._poll_twilio()) if self.twilio_answer else None
        try:
            verdict = await self.detector.decide()
            if poll is not None:
                poll.cancel()
            if verdict.answered_by == AnsweredBy.VOICEMAIL and not verdict.beep:
                verdict.beep = await self.detector.wait_for_beep(self.listen.beep_wait_s)
            elif verdict.answered_by in (AnsweredBy.HUMAN, AnsweredBy.UNKNOWN, AnsweredBy.SCREENER):
                await self.detector.wait_for_turn(self.config.max_extend_s)  # never talk over them
        finally:
            if poll is not None and not poll.done():
                poll.cancel()
            self.media.audio_tap = None
            self.listening = False
        self.verdict = verdict
        log.info(
            "answering: %s by %s in %.0f ms (beep %s, %d STT runs)",
            verdict.answered_by,
            verdict.by,
            verdict.decided_ms,
            verdict.beep,
            self.detector.stt_runs,
        )
        await self.answered(verdict)
        if verdict.answered_by == AnsweredBy.SILENCE:
            self._watch = asyncio.get_running_loop().create_task(self._no_answer_watch(verdict))
        return verdict

    async def _poll_twilio(self) -> None:
        assert self.twilio_answer is not None
        while True:
            try:
                answered_by = await self.twilio_answer()
            except Exception as exc:  # the call's host is busy or moving: ask again
                log.debug("answering: Twilio's verdict not read (%s)", type(exc).__name__)
                answered_by = None
            if answered_by is not None:
                self.detector.note_twilio(answered_by)
                return
            await asyncio.sleep(self.config.twilio_poll_s)

    async def _no_answer_watch(self, first: AnswerVerdict) -> None:
        heard = self.media.stats["utterances"]
        await asyncio.sleep(self.config.no_answer_s)
        if self.media.stats["utterances"] != heard or self.media.endpointer.in_speech:
            return
        still = first.model_copy(update={"by": "timeout", "decided_ms": self.detector._elapsed_ms()})
        await self.answered(still)

    async def close(self) -> None:
        self.media.audio_tap = None
        if self._watch is not None and not self._watch.done():
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
