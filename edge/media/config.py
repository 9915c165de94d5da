"""Knobs of one media stream's edge (VAD, end of turn, inbound order, playout); defaults suit 8 kHz
telephone speech."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


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
    early_stt_pause_ms: int = Field(
        200,
        ge=0,
        description="Pause after which the utterance so far is sent to speech recognition while the "
        "end of turn is still being decided (not before ``tail_ms``); if the caller does not resume, "
        "that transcript is the turn's. 0: transcribe only once the turn has ended.",
    )
    transcript_end_of_turn: bool = Field(
        True,
        description="The early transcript has a say in the end of turn: one that reads as finished "
        "(edge/media/turn_text.py) ends the utterance at ``turn_pause_ms`` even when smart turn "
        "said 'incomplete'; one that does not leaves the decision to smart turn and silence.",
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
    noise_suppression: bool = Field(
        False, description="WebRTC noise suppression on the caller's audio (edge/media/cleanup.py)."
    )
    echo_cancellation: bool = Field(
        False, description="WebRTC echo cancellation of the agent's audio leaking back into the line."
    )
    smart_turn: bool = Field(True, description="Ask the smart-turn model at each pause.")
    smart_turn_threshold: float = Field(0.5, ge=0.0, le=1.0, description="Probability of 'complete'.")
    smart_turn_max_pending: int = Field(
        4, ge=1, description="Process-wide queued decisions beyond which the silence rule alone decides."
    )
    max_gap_fill_ms: int = Field(
        1000,
        ge=0,
        description="Inbound frames are handed on at once (Media Streams arrive in order over TCP); a "
        "gap in media.chunk/timestamp is filled with this much silence at most (20 ms frames).",
    )
    mark_grace_ms: int = Field(
        2000,
        ge=0,
        description="A sent mark not echoed this long after its audio should have finished counts as "
        "played for barge-in purposes (not for heard_marks), so a lost echo cannot pin playback on.",
    )
    playback_lead_ms: int = Field(
        80, ge=0, le=500, description="How far ahead of real time outbound frames may be sent."
    )
    keypad_gap_ms: int = Field(
        2000,
        ge=200,
        le=10000,
        description="Key presses end one keypad turn at '#' or after this long without another key.",
    )
