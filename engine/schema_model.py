"""Pydantic models of a conversation schema file (``schemas/<client>/schema.yaml``).

These models check the *shape* of a schema. Cross-references (transition targets,
template variables, reachability, slot types) are checked by ``schema_loader``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")

FieldType = Literal[
    "string", "name", "date", "id", "npi", "cpt", "phone", "currency", "time", "number", "enum"
]
SlotType = Literal[
    "string",
    "name",
    "date",
    "number",
    "currency",
    "yes_no",
    "reference_number",
    "id",
    "phone",
    "time",
    "enum",
]
# a decision's outcome and an objection, told by what they mean (engine/nlu/told.py)
Outcome = Literal["go_ahead", "refused", "not_needed", "not_started", "in_progress"]
Objection = Literal["costs_too_much", "has_a_vendor", "no_need_for_it", "bad_timing"]
SpokenRule = Literal["plain", "name", "date", "nato", "digits", "npi", "phone", "cpt", "currency", "time"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_name(value: str) -> str:
    if not NAME_RE.match(value):
        raise ValueError(f"{value!r} is not a valid name (lower_snake_case, starting with a letter)")
    return value


class Metadata(Strict):
    name: str
    version: str
    client_id: str
    description: str = ""
    language: str = "en-US"

    _name = field_validator("name")(_check_name)


class CallDataField(Strict):
    """One item of call data supplied when a call starts (patient, lead, provider …)."""

    type: FieldType = "string"
    required: bool = True
    pii: bool = False
    spoken: SpokenRule | None = None
    pattern: str | None = None
    values: list[str] | None = None
    default: str | None = None
    description: str = ""
    contact: bool = Field(
        False,
        description="Identifies the person called: a do-not-call request is kept against these values "
        "(phone fields each, the other contact fields together).",
    )

    @field_validator("pattern")
    @classmethod
    def _pattern_compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"pattern does not compile: {exc}") from exc
        return value


class Persona(Strict):
    agent_name: str
    organization: str
    role: str = ""
    system_prompt: str


class Intent(Strict):
    name: str
    examples: list[str] = Field(min_length=1)
    implied_by_slots: list[str] = Field(
        default_factory=list,
        description='Capturing any of these slots is evidence for this intent; "slot=value" only that value '
        "(and another value of it is evidence against).",
    )
    phrases: list[str] = Field(
        default_factory=list,
        description='Key phrases that on their own say it ("not interested", "take me off your list"): '
        "heard anywhere in a turn, not negated, they score it as a clear match.",
    )
    excluded_by_slots: list[str] = Field(
        default_factory=list,
        description='Capturing any of these ("slot" or "slot=value") rules this intent out: "yep, I\'ve '
        'got a minute" (has_time=yes) is not busy.',
    )
    answers: list[str] = Field(
        default_factory=list,
        description='Ways out: the yes/no slots a turn that takes this way out still answers ("not '
        'now" is busy and a no to has_time); any other yes/no heard in such a turn is dropped ("you '
        'people again? not interested" says nothing about having time).',
    )
    reply: str | None = Field(None, description="Line spoken when this intent moves no transition.")
    kind: Literal["answer", "request", "exit", "ack"] = Field(
        "answer",
        description="What the counterpart does with it, which decides when one turn holds several: a way "
        "out of the call (exit) beats a request to the agent (request), which beats an answer to the "
        "agent's question (answer), which beats an acknowledgement such as 'please hold' (ack).",
    )
    target: str | None = Field(
        None,
        description="Global intents only: the state any state moves to when this intent is heard and "
        "the state's own transitions do not handle it (e.g. do-not-call → a terminal state).",
    )
    keys: list[str] = Field(
        default_factory=list,
        description='Keypad entries that say this intent ("1" for yes): a keypad turn of exactly these keys '
        "(a trailing # ignored) is this intent.",
    )

    _name = field_validator("name")(_check_name)


class Disclosure(Strict):
    """A call-data field the agent may read out when the counterpart asks for it."""

    asked_as: list[str] = Field(
        min_length=1, description="How people ask for it ('member id', 'DOB', 'subscriber number' …)."
    )
    label: str | None = Field(
        None, description="What the field is called when read out; default from its name."
    )


def _check_enum_values(option: str, values: Iterable[str], info: ValidationInfo) -> None:
    """``option`` (a slot setting naming some of an enum slot's values) is on an enum slot and
    names only values it has."""
    if info.data.get("type") != "enum":
        raise ValueError(f"{option} is for enum slots only")
    known = {v.split("|")[0] for v in info.data.get("values") or ()}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"{option} names values the slot does not have: {', '.join(unknown)}")


class Slot(Strict):
    name: str
    type: SlotType
    required: bool = False
    critical: bool = Field(False, description="Capturing it triggers a re-detect (two-pass reconcile).")
    values: list[str] | None = Field(
        None, description="Allowed values for enum slots, with synonyms via '|'."
    )
    early: bool = Field(
        False,
        description="Captured from a turn in an earlier state when said outright (\"got her — it's "
        'approved"); codes, dates, times, amounts and phone numbers always are.',
    )
    ask_only: bool = Field(
        False,
        description="A fact only the counterpart states (a status, a reference): an off-script reply "
        "that asserts a value of it is not spoken.",
    )
    cues: list[str] = Field(
        default_factory=list,
        description="Date slots: words that, said in the same turn in an earlier state, make a date "
        'this slot\'s value early, a relative one too ("approved yesterday"); without one, an early '
        "date is not taken.",
    )
    tense: Literal["any", "past", "future"] = Field(
        "any", description="Date slots: a bare weekday or day of month resolves to the past or the future."
    )
    tense_when: dict[str, Literal["past", "future"]] = Field(
        default_factory=dict,
        description='Date slots of tense "any": "slot=value" of this call → the tense a date with no tense '
        'cue in the turn takes ("the 9th" is past once the status is approved, ahead while it is pending).',
    )
    by_when: dict[str, int | None] | None = Field(
        None,
        description="Enum slots of a time frame: value → how many days ahead it reaches, in order, the "
        "last one may be null (further off). A turn that names no synonym but a month or date "
        '("when our contract runs out at the end of March") gets the first value that reaches it.',
    )
    who_answers: dict[Literal["self", "other"], str] | None = Field(
        None,
        description='Enum slots that ask who does something ("who signs off?"): the value when the answer '
        'names the speaker ("Me.", "myself") and when it names someone else ("My wife.", "the owner, '
        'Sal", "signed by our contracting officer"), where no synonym is said.',
    )
    outcomes: dict[Outcome, str] | None = Field(
        None,
        description="Enum slots that record a decision: the value for an outcome told by what it means "
        'where no synonym is said (engine/nlu/told.py): go_ahead ("the office can go ahead and book '
        'it"), refused, not_needed ("needs nothing from us"), not_started ("they\'d have to send a '
        'request in first"), in_progress ("we\'d want the notes before anyone looks at it").',
    )
    objections: dict[Objection, str] | None = Field(
        None,
        description="Enum slots that record why the counterpart objects: the value for an objection told "
        'as a story where no synonym is said (engine/nlu/told.py): costs_too_much ("every buck goes to '
        'payroll"), has_a_vendor ("we already pay another outfit for exactly this"), no_need_for_it '
        '("five of us and a group chat, it\'d be overkill"), bad_timing ("we\'re mid-launch").',
    )
    description: str = ""

    _name = field_validator("name")(_check_name)

    @field_validator("who_answers")
    @classmethod
    def _who_answers_for_enums(
        cls, who: dict[str, str] | None, info: ValidationInfo
    ) -> dict[str, str] | None:
        if who is None:
            return None
        _check_enum_values("who_answers", who.values(), info)
        if set(who) != {"self", "other"}:
            raise ValueError("who_answers needs both self and other")
        return who

    @field_validator("outcomes", "objections")
    @classmethod
    def _meanings_for_enums(
        cls, outcomes: dict[str, str] | None, info: ValidationInfo
    ) -> dict[str, str] | None:
        if outcomes is not None:
            _check_enum_values(str(info.field_name), outcomes.values(), info)
        return outcomes

    @field_validator("tense_when")
    @classmethod
    def _tense_when_for_dates(cls, tense_when: dict[str, str], info: ValidationInfo) -> dict[str, str]:
        if tense_when and info.data.get("type") != "date":
            raise ValueError("tense_when is for date slots only")
        bad = [c for c in tense_when if not re.fullmatch(r"\w+=\S+", c)]
        if bad:
            raise ValueError(f"tense_when conditions are slot=value: {', '.join(bad)}")
        return tense_when

    @field_validator("by_when")
    @classmethod
    def _by_when_for_enums(
        cls, by_when: dict[str, int | None] | None, info: ValidationInfo
    ) -> dict[str, int | None] | None:
        if by_when is None:
            return None
        _check_enum_values("by_when", by_when, info)
        days = [d for d in by_when.values() if d is not None]
        if days != sorted(days) or any(d < 0 for d in days) or None in list(by_when.values())[:-1]:
            raise ValueError("by_when days must grow, be 0 or more, and only the last may be null")
        return by_when

    @field_validator("cues")
    @classmethod
    def _cues_for_dates(cls, cues: list[str], info: ValidationInfo) -> list[str]:
        if cues and info.data.get("type") != "date":
            raise ValueError("cues are for date slots only")
        return cues


class Transfer(Strict):
    """Entering the state hands the live call to a person (the state's ``say`` is spoken first)."""

    to: str = Field(description="E.164 number, or a template over call data ('{supervisor_phone}').")
    mode: Literal["cold", "warm"] = "cold"
    summary: str | None = Field(
        None,
        description="Warm transfers: what the person hears before the call is bridged (template; "
        "the captured slots may be used).",
    )


class Function(Strict):
    """A tool the LLM may call in this state (passed through to the provider)."""

    name: str
    description: str
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})


class Compute(Strict):
    """A pure-Python engine function run on entering a state; its result is stored as a slot."""

    compute: str
    store_as: str


class When(Strict):
    """All given conditions must hold. An empty ``when`` (or ``always: true``) always holds."""

    always: bool = False
    intent: str | list[str] | None = None
    slots_filled: list[str] = Field(default_factory=list)
    slots_missing: list[str] = Field(default_factory=list)
    slot_equals: dict[str, str | int | bool] = Field(default_factory=dict)
    slot_in: dict[str, list[str]] = Field(default_factory=dict)
    slot_gte: dict[str, float] = Field(default_factory=dict)
    slot_lt: dict[str, float] = Field(default_factory=dict)
    slots_changed: list[str] = Field(
        default_factory=list,
        description='This turn gave a new value for one of these slots (a correction: "no, I meant two '
        'thirty"). Holds only on the turn itself, never when a state is entered.',
    )

    def intents(self) -> list[str]:
        if self.intent is None:
            return []
        return [self.intent] if isinstance(self.intent, str) else list(self.intent)

    def slot_names(self) -> set[str]:
        return {
            *self.slots_filled,
            *self.slots_missing,
            *self.slot_equals,
            *self.slot_in,
            *self.slot_gte,
            *self.slot_lt,
            *self.slots_changed,
        }


class Transition(Strict):
    when: When = When()
    target: str
    say: str | None = Field(None, description="Optional line spoken before the target state's own line.")
    clear: list[str] = Field(
        default_factory=list, description="Slots forgotten when this transition is taken."
    )


class State(Strict):
    say: str | None = Field(None, description="Agent line spoken on entering the state (template).")
    prompt: str = Field("", description="Instructions for LLM replies while in this state (template).")
    respond_immediately: bool = Field(
        True, description="Speak `say` on entry without waiting for the caller."
    )
    intents: list[Intent] = Field(default_factory=list)
    slots: list[Slot] = Field(default_factory=list)
    functions: list[Function] = Field(default_factory=list)
    on_enter: list[Compute] = Field(default_factory=list)
    transitions: list[Transition] = Field(default_factory=list)
    max_turns: int = Field(6, ge=1, description="Caller turns allowed in this state before the fallback.")
    fallback: str | None = Field(None, description="State entered when max_turns is reached.")
    terminal: bool = False
    outcome: str | None = Field(None, description="Call outcome recorded when a terminal state is reached.")
    do_not_call: bool = Field(
        False,
        description="Terminal states: the counterpart asked never to be called again; the call's contact "
        "(call-data fields marked contact, the number dialled) goes on the client's do-not-call list.",
    )
    cacheable: bool = Field(
        True, description="LLM replies in this state may be served from the semantic cache."
    )
    transfer: Transfer | None = None
    llm_policy: Literal["single", "race", "hedge"] | None = None


class Fallbacks(Strict):
    no_match: str = "Sorry, I didn't catch that. Could you say it again?"
    stt_failure: str = "Sorry, the line broke up. Could you repeat that?"
    llm_unavailable: str = "Sorry, give me just a moment."
    max_turns: str = "Let me move us along."
    silence: str = "Are you still there?"
    not_available: str = "I'm sorry, I don't have that information in front of me."


class Escalation(Strict):
    """When the rest of a call is worth the strong LLM tier and the premium voice."""

    when: When = Field(description="e.g. {slot_gte: {qualification_score: 70}}")
    llm_tier: Literal["fast", "strong"] = "strong"
    tts_tier: Literal["standard", "premium"] = "premium"


class LLMReplyLimits(Strict):
    """How much an off-script (LLM or cached) reply may say before the guard stops it."""

    max_sentences: int = Field(2, ge=1, le=6)
    max_words: int = Field(45, ge=5, le=120)


class MenuOption(Strict):
    """One thing a phone menu asks, and the answer: key presses or a spoken line."""

    hear: list[str] = Field(
        min_length=1, description="Phrases of the menu prompt this option answers ('for providers')."
    )
    press: str | None = Field(
        None,
        description="Keys to press: digits, * and #, or a template over call data ('{npi}#': the digits "
        "of the field's value).",
    )
    say: str | None = Field(None, description="A spoken answer instead of keys (template).")


class Menu(Strict):
    """How to get through phone menus (IVRs) before a person answers."""

    options: list[MenuOption] = Field(min_length=1)
    max_repeats: int = Field(
        2, ge=0, le=5, description="Answers to one prompt heard again (the menu repeats) before giving up."
    )
    give_up_outcome: str = "menu_failed"


class VoicemailAction(Strict):
    say: str = Field(description="The message left after the beep (template; no PHI belongs here).")
    outcome: str = "voicemail_left"
    beep_wait_s: float = Field(
        20.0, gt=0, le=120, description="How long to wait for the beep before leaving the message anyway."
    )


class Answering(Strict):
    """Outbound calls: who answered decides the first words (a person, voicemail, a screener, a menu)."""

    wait_s: float = Field(
        2.5, gt=0, le=10, description="The longest the agent stays silent before deciding who answered."
    )
    voicemail: VoicemailAction | None = Field(None, description="Absent: hang up on voicemail.")
    screener: str | None = Field(
        None, description="Identity and purpose said to a call screener (template); absent: the opening."
    )
    no_answer_outcome: str = Field("no_answer", description="Outcome when silence or a fax answered.")


class Hold(Strict):
    """Being put on hold: silent and cheap while music plays, back with a short line."""

    timeout_s: float = Field(900.0, gt=0, le=7200, description="Hold this long at most, then end the call.")
    outcome: str = Field("callback_needed", description="Outcome when the hold times out.")
    resume: str = Field(
        "Thanks for coming back.", description="Said when a person returns, before the state's question."
    )


class Recording(Strict):
    """Two-channel call recording (counterpart, agent), with a consent line first where required."""

    enabled: bool = False
    consent: str | None = Field(
        None, description="Spoken before anything else when recording ('This call may be recorded …')."
    )
    retention_days: int = Field(30, ge=1, le=3650)


class AudioCleanup(Strict):
    """Clean-up of the counterpart's audio at the edge, before VAD and speech recognition
    (WebRTC's audio processing; ``benchmarks/bench_cleanup.py`` measures both)."""

    noise_suppression: bool = Field(
        False, description="Suppress steady background noise (costs CPU per call; see the README)."
    )
    echo_cancellation: bool = Field(
        False, description="Cancel the agent's own audio leaking back into the line (speakerphones)."
    )


class ConversationSchemaFile(Strict):
    metadata: Metadata
    call_data: dict[str, CallDataField]
    persona: Persona
    intents: list[Intent] = Field(
        default_factory=list, description="Global intents, available in every state."
    )
    disclose: dict[str, Disclosure] = Field(
        default_factory=dict,
        description="Call-data fields the agent reads out when asked; a field not listed is never "
        "spoken on request.",
    )
    fillers: list[str] = Field(default_factory=list)
    fallbacks: Fallbacks = Fallbacks()
    llm_replies: LLMReplyLimits = LLMReplyLimits()
    escalation: Escalation | None = None
    answering: Answering | None = None
    menu: Menu | None = None
    hold: Hold | None = None
    recording: Recording = Recording()
    audio: AudioCleanup = AudioCleanup()
    initial_state: str
    states: dict[str, State] = Field(min_length=1)
