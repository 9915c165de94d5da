"""The typed events that cross process boundaries (Ray actor calls, Serve handles).

Everything a turn produces or consumes between the edge, the call hosts and the model services
is one of these pydantic models; nothing crosses as an untyped dict. The models are plain
data: no I/O, no Ray.

The path of one phone turn:
``Utterance`` (edge media) → ``Transcript`` (STT service) → ``CallerTurn`` (to the call host)
→ ``ReplyChunk`` … ``TurnDone`` (from the call) → ``AudioChunk`` per chunk (TTS service).
Text mode enters at ``CallerTurn`` and reads the same events.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class EndReason(StrEnum):
    """Why a call ended (on the call record as ``end_reason``)."""

    COMPLETED = "completed"  # the conversation reached a terminal state and its last line played
    CALLER_HUNG_UP = "caller_hung_up"  # the media stream stopped or its socket closed
    MEDIA_POLICY = "media_policy"  # the call's media stream broke the socket's rules (1008)
    HANGUP = "hangup"  # a client asked: POST /calls/{id}/hangup
    DIAL_FAILED = "dial_failed"  # Twilio refused the outbound call
    IDLE = "idle"  # no turn for limits.idle_call_timeout_s (a call that never connected, a dead line)
    HOLD_TIMEOUT = "hold_timeout"  # on hold longer than the schema's hold.timeout_s
    TWILIO_COMPLETED = "twilio:completed"
    TWILIO_BUSY = "twilio:busy"
    TWILIO_FAILED = "twilio:failed"
    TWILIO_NO_ANSWER = "twilio:no-answer"
    TWILIO_CANCELED = "twilio:canceled"

    @classmethod
    def from_twilio_status(cls, status: str) -> EndReason | None:
        """The end reason for a Twilio ``CallStatus``, or None for a status that is no ending."""
        try:
            return cls(f"twilio:{status}")
        except ValueError:
            return None


class ReplySource(StrEnum):
    """Where the agent's words of a turn came from."""

    SCRIPT = "script"
    CACHE_EXACT = "cache_exact"
    CACHE_SEMANTIC = "cache_semantic"
    LLM = "llm"
    FALLBACK = "fallback"
    NONE = ""  # nothing said (a backchannel that was not a turn)


# --------------------------------------------------------------------------- audio in


UtteranceEnd = Literal["smart_turn", "transcript", "silence", "max_length", "stream_end"]


class Utterance(BaseModel):
    """One caller utterance, cut at the edge by VAD + end of turn."""

    model_config = ConfigDict(frozen=True)

    pcm16_16k: bytes = Field(repr=False)
    speech_start: float = Field(description="time.monotonic() when the caller started speaking.")
    speech_end: float = Field(description="time.monotonic() of the caller's last speech audio.")
    duration_s: float = Field(description="Length of pcm16_16k in seconds (pre-roll and tail included).")
    voiced_ms: float = Field(description="Audio the VAD scored as speech.")
    during_playback: bool = Field(description="Agent audio was playing while the caller spoke.")
    barge_in: bool = Field(False, description="This utterance interrupted the agent (clear was sent).")
    end_reason: UtteranceEnd
    smart_turn_probability: float | None = None


class Word(BaseModel):
    word: str
    start: float
    end: float
    probability: float


class Transcript(BaseModel):
    """What the STT service heard in one utterance."""

    text: str = ""
    words: list[Word] = Field(default_factory=list)
    language: str = "en"
    confidence: float = Field(0.0, ge=0.0, le=1.0)
    no_speech: bool = True
    duration_s: float = 0.0
    truncated: bool = False
    processing_ms: float = 0.0
    avg_logprob: float | None = None
    no_speech_prob: float | None = None
    batch_size: int = Field(0, description="Utterances in the model batch this one ran in; 0 = no model run.")
    warnings: list[str] = Field(default_factory=list, description="Input problems that were tolerated.")


# --------------------------------------------------------------------------- a turn


class CallerTurn(BaseModel):
    """What the counterpart said, as the call receives it (phone and text mode alike)."""

    text: str = Field(max_length=4000)
    mode: Literal["text", "audio", "keypad"] = "text"
    keys: str = Field(
        "",
        max_length=64,
        pattern=r"^[0-9*#]*$",
        description="Keypad presses of this turn (mode keypad), in order; ``text`` then holds the same.",
    )
    over_agent: bool = Field(
        False,
        description="Said while the agent was speaking, without interrupting it: a mere backchannel "
        "('mhm', 'okay') is then no turn.",
    )
    heard_nothing: bool = Field(
        False, description="Speech recognition failed or heard no words: the call asks to repeat."
    )
    stt_ms: float | None = Field(None, description="Speech-to-text time at the edge.")
    confidence: float | None = None


class ReplyChunk(BaseModel):
    """A clause or sentence of the agent's reply, released as soon as it is known."""

    kind: Literal["chunk"] = "chunk"
    turn: int = Field(ge=0, description="0 is the opening; caller turns count from 1.")
    index: int = Field(ge=0)
    text: str
    source: ReplySource
    voice: Literal["standard", "premium"] = Field(
        "standard", description="The voice tier to speak it in (premium once a call has escalated)."
    )
    keys: str = Field(
        "",
        pattern=r"^[0-9*#wW]*$",
        description="Key presses the edge sends as in-band DTMF tones instead of speaking ``text`` "
        "('w' waits half a second); ``text`` then says what was pressed, for the transcript.",
    )


class TransferOrder(BaseModel):
    """Hand the live call to a person: ``cold`` redirects it at once; ``warm`` first has the
    person hear ``summary``, then bridges (through Twilio's REST API)."""

    to: str = Field(description="E.164 number of the person (PII: never logged).", repr=False)
    mode: Literal["cold", "warm"] = "cold"
    summary: str = Field("", repr=False, description="What the person hears before a warm transfer bridges.")


class TurnDone(BaseModel):
    """The end of a turn's reply stream: what was decided and measured."""

    kind: Literal["done"] = "done"
    turn: int = Field(ge=0)
    caller: str = ""
    agent: str = ""
    source: ReplySource = ReplySource.NONE
    state: str
    terminal: bool = False
    outcome: str | None = None
    ignored: bool = Field(False, description="A backchannel said over the agent: no turn was taken.")
    interrupted: bool = False
    stages_ms: dict[str, float] = Field(default_factory=dict)
    llm: dict[str, Any] = Field(default_factory=dict)
    stt_hints: str = Field(
        "",
        exclude=True,  # never in an API reply or a log line: it holds the call's names and IDs
        repr=False,
        description="What speech recognition should expect on the next turn (engine/stt_hints.py).",
    )
    hold: bool = Field(
        False,
        description="The counterpart put the agent on hold: the edge listens cheaply until a person returns.",
    )
    hold_timeout_s: float | None = Field(
        None, gt=0, description="While on hold: end the call (``Call.hold_timeout``) after this long on hold."
    )
    transfer: TransferOrder | None = Field(
        None, description="Hand the live call to a person once this turn's audio has played."
    )


class TurnRefused(BaseModel):
    """The call cannot take a turn: it reached a terminal state, or its limit of turns."""

    kind: Literal["refused"] = "refused"
    reason: Literal["call_ended", "turn_limit"] = "call_ended"
    message: str


class ListenFirst(BaseModel):
    """The opening waits: the edge first decides who answered (a person, a voicemail greeting, a
    call screener, a phone menu, silence or a fax) and tells the call (``Call.answered``)."""

    kind: Literal["listen"] = "listen"
    turn: int = 0
    wait_s: float = Field(2.5, gt=0, le=10, description="The longest the agent stays silent waiting.")
    state: str = ""
    beep_wait_s: float = Field(
        20.0, gt=0, le=120, description="Voicemail: how long the edge waits for the beep before the message."
    )


TurnEvent = Annotated[ReplyChunk | TurnDone | TurnRefused | ListenFirst, Field(discriminator="kind")]


class AnsweredBy(StrEnum):
    """Who (or what) picked up an outbound call."""

    HUMAN = "human"
    VOICEMAIL = "voicemail"  # a greeting that ends in a beep
    SCREENER = "screener"  # a call-screening assistant asking who is calling and why
    MENU = "menu"  # a phone menu (IVR) that wants key presses or spoken choices
    SILENCE = "silence"  # nothing said
    FAX = "fax"  # a fax or modem tone
    UNKNOWN = "unknown"


class AnswerVerdict(BaseModel):
    """The edge's decision on who answered, with what it rested on."""

    answered_by: AnsweredBy
    by: Literal["audio", "transcript", "timeout", "twilio"]
    decided_ms: float = Field(ge=0, description="From the start of the media stream to the verdict.")
    text: str = Field(
        "", max_length=4000, repr=False, description="What was heard so far (PHI: never logged)."
    )
    beep: bool = Field(False, description="A voicemail beep was heard: a message can be left now.")


class AudioChunk(BaseModel):
    """Synthesised speech for one sentence of a reply chunk, or one piece of it."""

    audio: bytes = Field(repr=False)
    sample_rate: int
    encoding: str
    duration_s: float
    synth_ms: float
    cached: bool
    index: int = 0
    text: str = ""
    partial: bool = False  # a piece of a sentence before its last, which carries the sentence's text


# --------------------------------------------------------------------------- cache


class CacheHit(BaseModel):
    template: str
    tier: Literal["exact", "semantic"]
    similarity: float = 1.0
    entry_id: str = ""
    lookup_ms: float = 0.0


# --------------------------------------------------------------------------- call lifecycle


class CallOpened(BaseModel):
    """A call was created on a host: its opening lines and how long that took."""

    kind: Literal["opened"] = "opened"
    call_id: str
    host: str
    state: str
    opening: list[str]
    ready_ms: float


class CallRefused(BaseModel):
    """A call could not be created; ``problems`` maps a call-data field to what is wrong with it."""

    kind: Literal["refused"] = "refused"
    reason: Literal["unknown_schema", "invalid_call_data", "host_full"]
    detail: str = ""
    problems: dict[str, str] = Field(default_factory=dict)


StartResult = Annotated[CallOpened | CallRefused, Field(discriminator="kind")]


class HostLoad(BaseModel):
    host: str
    live_calls: int
    completed: int = 0
    pid: int | None = None
    dead: bool = False
    intent_scoring: dict[str, str] = Field(
        default_factory=dict,
        description='Per schema: "embedding" once its examples are embedded, else "lexical".',
    )
