"""Cutting caller speech into utterances: a pure state machine over VAD windows.

It sees one 32 ms window at a time with its speech probability and whether agent audio is
playing, and answers with actions; it does no I/O and reads no clock (stream positions are
turned into times by the ``time_at`` function it is given). All knobs are in ``EdgeConfig``:

- QUIET → SPEAKING after ``min_speech_ms`` of consecutive windows with probability ≥
  ``vad_threshold``; the utterance keeps ``pre_roll_ms`` of audio before that so word onsets
  are not clipped.
- while in speech a window counts as speech while its probability ≥ ``vad_neg_threshold``
  (hysteresis, as Silero's own ``get_speech_timestamps`` does); otherwise SPEAKING → PAUSED.
- at a pause of ``early_stt_pause_ms`` (and at least ``tail_ms``) the utterance so far is handed
  out (``EarlyAudio``) to be transcribed while the end of turn is decided; if the caller does not
  resume, the utterance that ends is exactly that audio.
- at a pause of ``turn_pause_ms`` the smart-turn model is asked (``AskSmartTurn``) whether the
  turn is complete; its ``verdict`` "complete" ends the utterance at once, "incomplete" (the
  caller paused mid-sentence) stretches the pause needed to ``incomplete_end_silence_ms``.
  Without a verdict a pause of ``end_silence_ms`` ends it.
- with ``transcript_end_of_turn``, the early transcript's reading (``text_verdict``) is the
  words' half of the decision: a transcript that reads as finished (``turn_text``) ends the
  utterance once ``turn_pause_ms`` of pause has passed, whatever smart turn said.
- less than ``min_utterance_ms`` of voiced audio is noise (dropped); ``max_utterance_s`` cuts a
  monologue.
- while agent audio plays, ``min_barge_in_ms`` of voiced caller audio is a barge-in; a shorter
  sound ("mhm") never interrupts, and its utterance is marked ``during_playback``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import numpy.typing as npt

from common.events import Utterance, UtteranceEnd
from edge.media.config import EdgeConfig
from edge.media.vad import SAMPLE_RATE, VAD_WINDOW, WINDOW_MS


class EndpointState(StrEnum):
    QUIET = "quiet"
    SPEAKING = "speaking"
    PAUSED = "paused"


@dataclass(frozen=True)
class AskSmartTurn:
    """Ask the end-of-turn model about ``audio`` (the utterance so far); answer with ``verdict``."""

    pause_id: int
    audio: npt.NDArray[np.int16]


@dataclass(frozen=True)
class EarlyAudio:
    """The utterance so far, at a pause: the turn's audio if the caller does not go on. Its
    transcript's reading comes back through ``Endpointer.text_verdict`` with ``pause_id``."""

    audio: npt.NDArray[np.int16]
    pause_id: int = 0


@dataclass(frozen=True)
class BargeIn:
    """The caller is talking over the agent: stop the agent's audio."""


@dataclass(frozen=True)
class UtteranceEnded:
    utterance: Utterance


@dataclass(frozen=True)
class NoiseDropped:
    voiced_ms: float


Action = AskSmartTurn | EarlyAudio | BargeIn | UtteranceEnded | NoiseDropped


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
    early_sent: bool = False
    turn_verdict: float | None = None  # smart-turn probability for the current pause
    text_complete: bool = False  # the early transcript of this pause reads as a finished turn
    pause_id: int = 0
    samples: int = 0


class Endpointer:
    def __init__(self, config: EdgeConfig, time_at: Callable[[int], float]):
        self.config = config
        self._time_at = time_at
        self._pos = 0  # 16 kHz samples seen so far
        self._preroll: deque[npt.NDArray[np.int16]] = deque()
        self._preroll_samples = 0
        self._max_preroll = int(config.pre_roll_ms * SAMPLE_RATE / 1000) + VAD_WINDOW * (
            1 + int(config.min_speech_ms // WINDOW_MS)
        )
        self._start_run_ms = 0.0
        self._start_run_pos = 0
        self._speech: _Speech | None = None
        self._pause_seq = 0

    @property
    def state(self) -> EndpointState:
        if self._speech is None:
            return EndpointState.QUIET
        return EndpointState.PAUSED if self._speech.silence_ms else EndpointState.SPEAKING

    @property
    def in_speech(self) -> bool:
        return self._speech is not None

    def push(self, window: npt.NDArray[np.int16], prob: float, playing: bool) -> list[Action]:
        """One VAD window (``VAD_WINDOW`` samples) with its speech probability."""
        cfg = self.config
        pos = self._pos
        self._pos += window.size
        sp = self._speech
        if sp is None:
            self._preroll.append(window)
            self._preroll_samples += window.size
            while self._preroll_samples - self._preroll[0].size >= self._max_preroll:
                self._preroll_samples -= self._preroll.popleft().size
            if prob >= cfg.vad_threshold:
                if self._start_run_ms == 0.0:
                    self._start_run_pos = pos
                self._start_run_ms += WINDOW_MS
                if self._start_run_ms >= cfg.min_speech_ms:
                    self._begin(self._start_run_pos, pos + window.size, playing)
            else:
                self._start_run_ms = 0.0
            return []

        sp.pcm.append(window)
        sp.samples += window.size
        if playing:
            sp.during_playback = True
        if prob >= cfg.vad_neg_threshold:
            actions: list[Action] = []
            sp.voiced_ms += WINDOW_MS
            sp.last_speech_end_pos = pos + window.size
            if sp.silence_ms:
                sp.silence_ms = 0.0
                sp.turn_asked = False
                sp.early_sent = False
                sp.turn_verdict = None
                sp.text_complete = False
                self._pause_seq += 1
                sp.pause_id = self._pause_seq
            if sp.during_playback and not sp.barge_in and playing and sp.voiced_ms >= cfg.min_barge_in_ms:
                sp.barge_in = True
                actions.append(BargeIn())
            if sp.samples >= cfg.max_utterance_s * SAMPLE_RATE:
                actions += self._end("max_length")
            return actions

        sp.silence_ms += WINDOW_MS
        actions = []
        if (
            cfg.early_stt_pause_ms
            and not sp.early_sent
            and sp.silence_ms >= max(cfg.early_stt_pause_ms, cfg.tail_ms)
            and sp.voiced_ms >= cfg.min_utterance_ms
        ):
            sp.early_sent = True
            actions.append(EarlyAudio(self._audio(sp, sp.last_speech_end_pos), sp.pause_id))
        if (
            cfg.smart_turn
            and not sp.turn_asked
            and sp.silence_ms >= cfg.turn_pause_ms
            and sp.voiced_ms >= cfg.min_utterance_ms
        ):
            sp.turn_asked = True
            actions.append(AskSmartTurn(sp.pause_id, self._audio(sp, sp.last_speech_end_pos)))
        needed = cfg.end_silence_ms
        if sp.text_complete:
            needed = min(needed, cfg.turn_pause_ms)
        elif sp.turn_verdict is not None and sp.turn_verdict < cfg.smart_turn_threshold:
            needed = cfg.incomplete_end_silence_ms
        if sp.silence_ms >= needed:
            actions += self._end("transcript" if sp.text_complete else "silence")
        return actions

    def verdict(self, pause_id: int, probability: float) -> list[Action]:
        """The smart-turn model's answer for a pause; ignored if the caller spoke again since."""
        sp = self._speech
        if sp is None or sp.pause_id != pause_id or sp.silence_ms == 0.0:
            return []
        sp.turn_verdict = probability
        if probability >= self.config.smart_turn_threshold:
            return self._end("smart_turn")
        return []

    def text_verdict(self, pause_id: int, complete: bool) -> list[Action]:
        """The early transcript of a pause read as a finished turn or not; ignored if the caller
        spoke again since or the option is off."""
        sp = self._speech
        if sp is None or sp.pause_id != pause_id or not sp.silence_ms:
            return []
        if not self.config.transcript_end_of_turn:
            return []
        sp.text_complete = complete
        if complete and sp.silence_ms >= self.config.turn_pause_ms:
            return self._end("transcript")
        return []

    def finish(self) -> list[Action]:
        """The stream ended: the utterance in progress ends too."""
        return self._end("stream_end") if self._speech is not None else []

    def _begin(self, speech_start_pos: int, now_pos: int, playing: bool) -> None:
        pre = list(self._preroll)
        start_pos = now_pos - self._preroll_samples
        keep_from = max(start_pos, speech_start_pos - int(self.config.pre_roll_ms * SAMPLE_RATE / 1000))
        drop = keep_from - start_pos
        while pre and drop >= pre[0].size:
            drop -= pre[0].size
            start_pos += pre[0].size
            pre.pop(0)
        self._pause_seq += 1
        self._speech = _Speech(
            pcm=pre,
            start_pos=start_pos,
            speech_start_pos=speech_start_pos,
            last_speech_end_pos=now_pos,
            voiced_ms=self._start_run_ms,
            during_playback=playing,
            samples=sum(p.size for p in pre),
            pause_id=self._pause_seq,
        )
        self._preroll.clear()
        self._preroll_samples = 0
        self._start_run_ms = 0.0

    def _audio(self, sp: _Speech, upto_pos: int) -> npt.NDArray[np.int16]:
        """The utterance's audio up to ``upto_pos`` plus the configured tail."""
        audio = np.concatenate(sp.pcm) if sp.pcm else np.zeros(0, dtype=np.int16)
        end = upto_pos - sp.start_pos + int(self.config.tail_ms * SAMPLE_RATE / 1000)
        return audio[: max(end, 0)]

    def _end(self, reason: UtteranceEnd) -> list[Action]:
        sp = self._speech
        self._speech = None
        self._pause_seq += 1
        if sp is None:
            return []
        if sp.voiced_ms < self.config.min_utterance_ms:
            return [NoiseDropped(sp.voiced_ms)]
        audio = self._audio(sp, sp.last_speech_end_pos)
        utterance = Utterance(
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
        return [UtteranceEnded(utterance)]
