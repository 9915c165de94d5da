"""Who answered an outbound call, from what was heard in its first seconds.

The transcript is as a small recogniser writes it (Whisper tiny.en on 8 kHz telephone audio):
punctuation optional, words misheard ("leave a massage", "voice male"), cut off mid-sentence
when the greeting is still running. So the decision rests on weighted *families* of cues, each
a handful of patterns that tolerate that garble, plus the shape of what was said:

- a voicemail greeting talks about the phone, being away, messages, tones and calling back;
- a call screener asks the caller to say their name and why they are calling, and names itself
  (screening service, assistant) — a question aimed at the caller, not a greeting;
- a phone menu offers choices ("for billing, press 2", "para español", "main menu");
- a person says little ("hello?", "yeah", "this is Dana", "Dana speaking, how can I help").

Machines talk in long prepared sentences; people answering the phone do not. A long
transcript with no cue at all leans to a machine, a short one to a person. Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from common.events import AnsweredBy
from engine.schema_model import Answering
from engine.templates import compile_template

_CLASSES = (AnsweredBy.HUMAN, AnsweredBy.VOICEMAIL, AnsweredBy.SCREENER, AnsweredBy.MENU)


@dataclass(frozen=True)
class Cue:
    """One family member: a pattern and how much hearing it says about the class."""

    pattern: re.Pattern[str]
    weight: float
    name: str


def _cue(name: str, weight: float, pattern: str) -> Cue:
    return Cue(re.compile(pattern), weight, name)


_DIGIT = r"(?:\d|zero|one|two|to|too|three|four|for|five|six|seven|eight|nine|star|pound|hash)"
_PRESS = r"(?:press|oppress|pressed|presses|impress|prez|push|oprima|marque)"
_MESSAGE = r"(?:message|massage|messages|mess age|voice ?mail|voice ?male|note)"
_TONE = r"(?:tone|beep|beat|bee?p|signal)"

# Each family: (cue name, weight, pattern over the normalised transcript).
VOICEMAIL_CUES: tuple[Cue, ...] = (
    _cue(
        "cannot_take_call",
        3.5,
        r"\b(?:can't|cannot|can not|cant|unable to|not able to) "
        r"(?:come to|get to|take|answer|pick up)\b(?: (?:the|your|my|this) (?:phone|call))?",
    ),
    _cue(
        "not_available",
        2.5,
        r"\b(?:not available|unavailable|isn't available|is not available|"
        r"away from (?:the|my|our) (?:phone|desk)|not (?:here|in|home) right now|out of the office|"
        r"on vacation|(?:i'm|i am|we're|we are) (?:away|out|unavailable|busy)|"
        r"(?:office|we|clinic) (?:is|are|are now|is now|is currently) closed|we're closed|"
        r"(?:can't|cannot) be reached)\b",
    ),
    _cue("leave_message", 3.0, rf"\bleave (?:[a-z']+ ){{0,3}}(?:{_MESSAGE}|name|number|contact|details)"),
    _cue("after_tone", 3.0, rf"\b(?:after|at|following|when you hear) the {_TONE}\b|\b{_TONE}\b"),
    _cue(
        "mailbox",
        3.0,
        r"\b(?:voice ?mail|voice ?male|mail ?box|mailbox|voice messaging|message box|"
        r"answering machine)\b",
    ),
    _cue(
        "call_back",
        2.5,
        r"\b(?:get back to you|call you back|return your call|call back|"
        r"reach out to you|back to you as soon)\b",
    ),
    _cue("reached", 2.0, r"\b(?:you've reached|you have reached|you reached|you've got|you have called)\b"),
    _cue("missed_call", 3.0, r"\b(?:missed your call|sorry (?:i|we) missed you|sorry we missed)\b"),
    _cue(
        "number_dialled",
        3.0,
        r"\b(?:the (?:person|number|party|subscriber|customer) you (?:are|have|were)? ?"
        r"(?:calling|called|trying to reach|dialed|dialled|trying))\b",
    ),
    _cue(
        "record",
        2.0,
        rf"\b(?:record(?:ing)? (?:your|a) {_MESSAGE}|recording(?: your)?|record your message)\b",
    ),
    _cue("right_now", 1.0, r"\b(?:right now|at the moment|at this time)\b"),
    _cue("soon", 1.0, r"\b(?:as soon as (?:possible|i can|we can|i'm able)|at (?:your|the) earliest)\b"),
    _cue("name_number", 2.0, r"\b(?:name and (?:phone |telephone )?number|your number and)\b"),
)

SCREENER_CUES: tuple[Cue, ...] = (
    _cue(
        "say_name",
        3.0,
        r"\b(?:say|state|stay|take|tell (?:me|us)|record|give (?:me|us)|speak) (?:your|you're|ur) "
        r"(?:full )?(?:name|names|aim)\b",
    ),
    _cue(
        "why_calling",
        3.0,
        r"\b(?:why (?:you're|you are|you were|your|are you) calling|"
        r"(?:the )?reason (?:for|of) (?:your|the|this) call|purpose of (?:your|the|this) call|"
        r"what (?:you're|you are) calling (?:about|a mouth|for)|what(?: is)? (?:this|the|your)(?: call)? "
        r"(?:is )?(?:about|regarding|concerning|in reference to)|(?:call|calling) regarding)\b",
    ),
    _cue(
        "screening",
        3.0,
        r"\b(?:call screening|screening (?:service|assistant|this call|calls|your call)|"
        r"screens? (?:its|their|his|her|all) calls|being screened|using a (?:call )?screen(?:ing)?|"
        r"(?:using|uses) (?:a |an )?(?:[a-z]+ ){0,2}service|service from google|from google)\b",
    ),
    _cue(
        "assistant",
        2.0,
        r"\b(?:google|apple|virtual|automated|digital|ai|call) assistant\b|"
        r"\b(?:this is|i'm|i am) (?:a|an|the) (?:virtual |automated |digital )?assistant\b",
    ),
    _cue(
        "will_see",
        2.0,
        r"\b(?:(?:they|he|she|the person)(?:'ll| will| might| may) (?:see|get|know|be able)|"
        r"see if (?:this|the) person is available|see if (?:they're|they are|he's|she's) available|"
        r"let (?:them|him|her) know|pass (?:it|this|that) (?:on|along)|"
        r"(?:connect|put) you through|try to connect you|before (?:i|we) (?:connect|put))\b",
    ),
    _cue("stay_on", 1.0, r"\b(?:stay on the line|stay on the phone|hold on while|one moment while)\b"),
    _cue("name_and_why", 3.0, r"\b(?:name|aim) and (?:the )?(?:reason|why|purpose|what)\b"),
    _cue("reason_purpose", 1.5, r"\b(?:reason for|purpose of|regarding)\b"),
    _cue("go_ahead", 1.5, r"\b(?:go ahead and (?:say|state|speak)|after the tone,? say|please say)\b"),
    _cue("whos_calling", 1.0, r"\b(?:who(?:'s| is) calling|who is this|may i ask who)\b"),
    _cue(
        "recorded_for",
        1.5,
        r"\b(?:will be (?:recorded|shared|transcribed|sent)|recorded and (?:sent|shared))\b",
    ),
)

MENU_CUES: tuple[Cue, ...] = (
    _cue("press_digit", 3.5, rf"\b(?:{_PRESS}|dial|enter|select|choose) (?:the )?{_DIGIT}\b"),
    _cue("press", 2.0, rf"\b{_PRESS}\b"),
    _cue(
        "spanish",
        3.0,
        r"\b(?:para (?:espa[nñ]ol|spanish|continuar)|en espa[nñ]ol|espa[nñ]ol|"
        r"for spanish|spanish|para|oprima|marque|espanol)\b",
    ),
    _cue(
        "main_menu",
        3.0,
        r"\b(?:main menu|menu|menus|menu options|the following options|(?:our|these) options have "
        r"changed|listen carefully|please listen|options are|following (?:menu|choices)|"
        r"(?:repeat|hear) these options|(?:select|choose) (?:from|one of) the following)\b",
    ),
    _cue(
        "for_x_press",
        3.0,
        r"\bfor [a-z' ]{2,40}? ?(?:press|say|dial)\b|\bif you(?:'re| are) (?:a |an )?"
        r"[a-z' ]{2,30}? ?(?:press|say)\b",
    ),
    _cue(
        "enter_number",
        2.5,
        r"\b(?:enter|say or enter|key in|dial|type) (?:in )?(?:your|the|a) (?:[a-z0-9']+ ){0,4}"
        r"(?:number|extension|id|npi|zip|code|account|pin)\b",
    ),
    _cue(
        "extension",
        2.5,
        r"\b(?:party's extension|your party's|extension (?:at any time|now)|"
        r"if you know (?:the|your) (?:party's )?extension|"
        r"if you know (?:the |your )?(?:party|parties|party's))\b",
    ),
    _cue(
        "monitored",
        1.5,
        r"\b(?:(?:this|your) call (?:may|will|is|might) (?:be )?(?:monitored|recorded)|"
        r"quality (?:and|assurance|purposes))\b",
    ),
    _cue("thank_for_calling", 1.0, r"\b(?:thank you for calling|thanks for calling|welcome to)\b"),
    _cue(
        "serve_you",
        2.0,
        r"\b(?:(?:better|best) (?:serve|direct|assist) you|direct your call|"
        r"route your call|in order to (?:serve|help|assist))\b",
    ),
    _cue(
        "representative",
        1.5,
        r"\b(?:(?:speak|talk) (?:to|with) (?:a |an )?(?:representative|agent|operator|"
        r"someone)|customer service representative|next available)\b",
    ),
    _cue(
        "you_can_say",
        3.0,
        r"\b(?:you can (?:also )?say|say things like|say or press|press or say|"
        r"say (?:yes|no|one|two|agent|representative|operator))\b",
    ),
    _cue(
        "in_few_words",
        1.5,
        r"\b(?:in a (?:few|couple of) words|briefly (?:tell|describe|say)|"
        r"tell me (?:briefly )?(?:what|how) (?:i|we) can|tell me (?:briefly )?(?:why|what|how))\b",
    ),
    _cue(
        "pound_key",
        2.5,
        r"\b(?:follow(?:ed)? (?:by|like) (?:the )?(?:pound|hash|star|found|pown)|"
        r"(?:pound|hash|found|pown|star) (?:key|sign))\b",
    ),
    _cue(
        "please_hold",
        2.0,
        r"\b(?:please hold|(?:transferring|transfer|connecting) your call|"
        r"your call is important|all (?:of our )?(?:representatives|agents) are)\b",
    ),
    _cue("hours", 1.0, r"\b(?:our (?:office |business )?hours|business hours|open (?:monday|from))\b"),
)

HUMAN_CUES: tuple[Cue, ...] = (
    _cue(
        "greeting_start",
        2.0,
        r"^(?:hello|hallo|hullo|hi|hey|yeah|yes|yep|yo|good (?:morning|afternoon|evening)|"
        r"howdy)\b",
    ),
    _cue("speaking", 2.5, r"\b[a-z]+ speaking\b|\bspeaking\b"),
    _cue("this_is", 1.0, r"^(?:\w+ )?(?:this is|it's|it is) [a-z]+\b"),
    _cue(
        "help_you",
        2.5,
        r"\b(?:how (?:can|may|could) (?:i|we) help|what can (?:i|we|you) (?:do )?for you|"
        r"how (?:can|may) i (?:assist|direct)|can i help you|help you)\b",
    ),
    _cue("hello_question", 1.5, r"\bhello\?|\bhi\?|\byes\?|\bwho(?:'s| is) this\??|\bcan you hear me\b"),
    _cue("whats_up", 1.5, r"\b(?:what's up|who is it|what do you want|who's there|speak up)\b"),
)

FAMILIES: dict[AnsweredBy, tuple[Cue, ...]] = {
    AnsweredBy.VOICEMAIL: VOICEMAIL_CUES,
    AnsweredBy.SCREENER: SCREENER_CUES,
    AnsweredBy.MENU: MENU_CUES,
    AnsweredBy.HUMAN: HUMAN_CUES,
}

# Structure: how much the length of what was said leans towards a person or a machine.
SHORT_WORDS = 5  # "hello?", "yeah this is Sam": a person
LONG_WORDS = 14  # a prepared sentence or two: a machine
DECIDE_AT = 2.0  # a class needs this much evidence, and this much more than the runner-up to be sure
SURE_MARGIN = 2.0

STRUCTURE_CUES = frozenset(
    {"short", "long", "long_no_cue", "still_talking", "asks_caller", "asks_back", "thanks_then_more"}
)

_APOSTROPHES = str.maketrans({"’": "'", "‘": "'", "`": "'"})
_NON_WORD = re.compile(r"[^a-z0-9'?ñ ]+")
_FILLER = re.compile(r"\b(?:um+|uh+|erm|hmm+)\b")


def normalise(text: str) -> str:
    """Lower case, straight apostrophes, punctuation gone except '?', fillers and runs of spaces
    removed; "press 2." and "Press two," read alike."""
    lowered = text.translate(_APOSTROPHES).lower().replace("-", " ")
    lowered = _FILLER.sub(" ", _NON_WORD.sub(" ", lowered))
    return " ".join(lowered.split())


@dataclass
class Classification:
    """The verdict on one transcript, with what it rested on (cue names, never the words)."""

    answered_by: AnsweredBy
    scores: dict[AnsweredBy, float]
    cues: dict[AnsweredBy, list[str]] = field(default_factory=dict)
    words: int = 0
    sure: bool = False  # decisive enough to act on before the greeting has ended

    @property
    def cue_count(self) -> int:
        """How many cues (not the shape of the speech) back the verdict."""
        return sum(name not in STRUCTURE_CUES for name in self.cues.get(self.answered_by, []))

    @property
    def margin(self) -> float:
        ranked = sorted(self.scores.values(), reverse=True)
        return ranked[0] - ranked[1] if len(ranked) > 1 else ranked[0]


def classify(text: str, *, complete: bool = True) -> Classification:
    """Classify what the counterpart said first. ``complete`` is False when the speech was still
    going on (the transcript is of a greeting cut short): then length alone says less about a
    person, and a long monologue says more about a machine."""
    norm = normalise(text)
    words = len(norm.replace("?", " ").split())
    scores = dict.fromkeys(_CLASSES, 0.0)
    cues: dict[AnsweredBy, list[str]] = {c: [] for c in _CLASSES}
    if words == 0:
        return Classification(AnsweredBy.SILENCE, scores, cues, 0, sure=complete)
    for kind, family in FAMILIES.items():
        for cue in family:
            if cue.pattern.search(norm):
                scores[kind] += cue.weight
                cues[kind].append(cue.name)
    _weigh_structure(norm, words, complete, scores, cues)
    best = max(_CLASSES, key=lambda c: scores[c])
    ranked = sorted(scores.values(), reverse=True)
    margin = ranked[0] - ranked[1]
    if ranked[0] < DECIDE_AT:
        best = AnsweredBy.HUMAN if words <= SHORT_WORDS * 2 else AnsweredBy.UNKNOWN
    sure = ranked[0] >= DECIDE_AT + 1.0 and margin >= SURE_MARGIN
    return Classification(best, scores, cues, words, sure)


def _weigh_structure(
    norm: str, words: int, complete: bool, scores: dict[AnsweredBy, float], cues: dict[AnsweredBy, list[str]]
) -> None:
    machine = scores[AnsweredBy.VOICEMAIL] + scores[AnsweredBy.SCREENER] + scores[AnsweredBy.MENU]
    if words <= SHORT_WORDS and complete and machine < 3.0:
        scores[AnsweredBy.HUMAN] += 2.0
        cues[AnsweredBy.HUMAN].append("short")
    elif words >= LONG_WORDS:
        # People do not answer with a speech; a human cue inside a long greeting is the
        # machine introducing its owner ("Hi, this is Sam, I can't take your call").
        scores[AnsweredBy.HUMAN] -= 1.0 + (words - LONG_WORDS) * 0.1
        cues[AnsweredBy.HUMAN].append("long")
        if machine == 0.0:  # a long greeting with no cue: most likely a recorded one
            scores[AnsweredBy.VOICEMAIL] += 1.5
            cues[AnsweredBy.VOICEMAIL].append("long_no_cue")
    # "Thank you for calling X" and more than a sentence with no person in it: a recording.
    person = {"help_you", "speaking"} & set(cues[AnsweredBy.HUMAN])
    if words >= SHORT_WORDS * 2 and "thank_for_calling" in cues[AnsweredBy.MENU] and not person:
        scores[AnsweredBy.MENU] += 1.0
        cues[AnsweredBy.MENU].append("thanks_then_more")
    # A short complete question with no machine cue is a person asking who it is.
    if complete and "?" in norm and words < LONG_WORDS and machine == 0.0:
        scores[AnsweredBy.HUMAN] += 1.0
        cues[AnsweredBy.HUMAN].append("asks_back")
    if not complete and words >= SHORT_WORDS * 2 and scores[AnsweredBy.HUMAN] < 2.5:
        scores[AnsweredBy.VOICEMAIL] += 0.5
        cues[AnsweredBy.VOICEMAIL].append("still_talking")
    # A screener's question is aimed at the caller: "…and why you're calling?" — a voicemail
    # asks nothing. A question about the caller's name tips a tie between the two.
    if "?" in norm and scores[AnsweredBy.SCREENER] > 0:
        scores[AnsweredBy.SCREENER] += 1.0
        cues[AnsweredBy.SCREENER].append("asks_caller")


# ---- what the call says once it knows ----------------------------------------------------------
VOICEMAIL_NO_MESSAGE_OUTCOME = "voicemail_reached"


@dataclass(frozen=True)
class FirstWords:
    """The call's answer to a verdict: lines to say, whether the call ends (and how), and whether
    it still waits for a person (after a screener, inside a phone menu)."""

    say: list[str]
    terminal: bool = False
    outcome: str | None = None
    await_person: bool = False


def first_words(
    answering: Answering | None,
    answered_by: AnsweredBy,
    opening: list[str],
    values: Mapping[str, object],
    opened: bool = False,
) -> FirstWords:
    """What to do for who answered (``opened``: the opening was already said to a silent line)."""
    rules = answering or Answering()
    if answered_by in (AnsweredBy.HUMAN, AnsweredBy.UNKNOWN):
        return FirstWords([] if opened else list(opening))
    if answered_by == AnsweredBy.SCREENER:
        line = compile_template(rules.screener).render(values) if rules.screener else None
        return FirstWords([line] if line else list(opening), await_person=True)
    if answered_by == AnsweredBy.VOICEMAIL:
        if rules.voicemail is None:
            return FirstWords([], terminal=True, outcome=VOICEMAIL_NO_MESSAGE_OUTCOME)
        message = compile_template(rules.voicemail.say).render(values)
        return FirstWords([message], terminal=True, outcome=rules.voicemail.outcome)
    if answered_by == AnsweredBy.MENU:
        return FirstWords([], await_person=True)
    if answered_by == AnsweredBy.SILENCE and not opened:
        return FirstWords(list(opening))  # people pick up and wait: say it once
    return FirstWords([], terminal=True, outcome=rules.no_answer_outcome)  # silence again, or a fax


def person_came_on(text: str) -> bool:
    """After a screener or inside a menu: whether this utterance is a person (not the machine
    still talking)."""
    return classify(text).answered_by in (AnsweredBy.HUMAN, AnsweredBy.UNKNOWN)
