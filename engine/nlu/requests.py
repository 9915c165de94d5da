"""Requests from the counterpart: a piece of the call's data ("what's the member ID?", "DOB?",
"read me those letters once more") or a repeat of what the agent said.

Reps drive these calls: they ask for identifiers in their own words and order. A turn asks
for a field when it names the field (any of the schema's ``disclose.asked_as`` phrasings, or a
word for what the agent just read: "those letters", "the numbers") and reads as a request
(a question, "give me", "read back", "again", or little more than the field itself: "and the
NPI?"). Naming a field without asking ("the member ID doesn't come up") is no request. A rep may
also check a value by saying it back ("this is for a Dr. Smith, yes?", "the ninety-nine two
thirteen, not the two fourteen?"): a question that names one of the call's disclosable values asks
for that field.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from engine.nlu.extractors import extract_date, spoken_sequence
from engine.nlu.text import normalise, phrase_regex

_REQUEST_CUE = re.compile(
    # "the cost is what's going to sink this": a cleft, no question
    r"\?|\b((?<!\bis )(?<!'s )(?<!\bwas )(?:what|what's|whats)|which|who|who's|whos|can i (?:get|have)|"
    r"could i (?:get|have)|can you|could you|"
    r"would you|give me|please state|state (?:the|her|his|it|your)|(?:i will|i'll|i) require|required to|"
    r"please provide|provide (?:the|her|his)|re-?verify|kindly|walk me through|remind me|"
    r"wants? (?:the|her|his)|(?:back|over) to me\b|"
    r"read (?:me|back|it|that|those|them|the|out)|repeat|say (?:it|that|those|them|the) again|"
    r"once more|one more time|again|spell|confirm|verify|double[- ]check|i need|i'll need|i will need|"
    r"i'm going to need|gonna need|need the|go ahead with|tell me|let me (?:get|have)|do you have|"
    # "not going any further until I get the member ID", "can't open it without the doctor's name"
    r"(?:until|unless|till) (?:i|we) (?:get|have|see|hear)|"
    r"(?:can't|cannot|won't|couldn't) [\w' ]{0,30}\bwithout|"
    r"what about|how about|how much|how many|how long|how do you spell|how is it spelled|start with|"
    r"begin with|first thing|(?:was|is) (?:it|that) [\w ]+ or |^(?:was|is) (?:the|her|his|that|"
    r"this) [\w ]+ or |"
    r"how(?:'s| does| do) (?:that|the|her|his) [\w ]+ go|"
    r"how(?:'s| is| are| do you)\s+(?:[\w']+\s+){0,3}?spell(?:ed)?)\b"
)
# "may I have the NPI first": asks for a field (asking the caller's own name this way is a greeting's
# give-and-take, not who_is_this)
_MAY_I = re.compile(r"\b(?:may|might) i (?:get|have|know|take)\b")
# The field named, then its value: "the CPT on it is 99213" states the field, it does not ask.
_STATES_VALUE = re.compile(
    r"^\W*(?:\w+\W+){0,3}?(?:is|was|'s|reads|shows|says)\s+(?!(?:it|that|this)\b)(?:\w+\s+){0,2}?[\w-]*\d"
)  # not "the code, was it 99213 or 99203?": that asks
_REPEAT_CUE = re.compile(
    # "dial us once more after four" asks to be called again, not to hear the line again
    r"\b(repeat|say (?:all )?(?:that|it|this) again|say again|(?<!\bus )(?<!\bme )(?<!\bhere )once more|"
    r"one more time|come again|"
    r"pardon(?: me)?(?=\s*\?|\W*$)|"  # "I beg your pardon, let's say eleven" apologises
    r"didn't catch|did not catch|didn't get that|didn't hear|"
    r"missed (?:all of |most of )?(?:that|it|what|your question|"
    r"the question|the last)|you cut out|"
    r"you broke up|what was (?:all )?that|sorry what|sorry\?|go back|back up|slower|slow down|start over|"
    r"from the (?:very )?top|(?:only|just) (?:caught|got|heard) (?:half|part|some)|couldn't hear|can't hear|"
    r"begin again|start again|every other word|faded out|you faded|cutting out|crackling|too fast|"
    r"from the beginning|from the start|going (?:really |too |so )?fast|said what|lost you|more slow|"
    r"(?:say|tell|read|speak|talk|go|give)(?: [\w']+){0,3} (?:more )?slow(?:ly|er)?|"  # "tell it slowly"
    r"(?:say|tell|read|give)(?: me)?(?: [\w']+){0,4} again|"  # "please tell everything again"
    r"which [\w ]{0,12}(?:did )?you ask(?:ed)?|what did you ask|what(?:'d| did) (?:you|ya) (?:ask|say)|"
    r"which \w+ did (?:you|ya) say|garbled|cutting in and out|breakin[g']? up|go again|what was the rest|"
    r"start (?:[\w']+ ){1,3}over|(?:slipped|went|got) (?:right )?(?:past|by) me|went quiet|dropped out|"
    r"crackl(?:ed|ing) out|what (?:was|were) (?:your|the) question|"
    r"what (?:[\w']+ ){0,2}(?:were|was) (?:you|ya) (?:asking|saying)|"
    r"lost the (?:middle|last|first|end|second) (?:bit|part|half)|go through (?:[\w']+ ){1,3}again)\b"
    r"|^\s*(?:sorry|what|huh)\s*\??\s*$"
)
_LETTER_WORDS = re.compile(r"\b(letters?|spelling|spell|spelled|alphabet)\b")
_DIGIT_WORDS = re.compile(r"\b(numbers?|digits?|last (?:four|three|two|five|six)|first (?:four|three))\b")
# "the NPI for the ordering doctor": the doctor says whose NPI, it is not asked for itself;
# "nothing under that ID": the field says where the rep looked
# "dropped off right after the birthday": where in the read-out, no ask
_QUALIFIER = re.compile(
    r"\b(?:for|of|on|under|by|using|after|before|past)\s+(?:the\s+|this\s+|that\s+|her\s+|his\s+)?$"
    r"|\bwith\s+(?:this|that)\s+$"
)
_WITH_THIS = re.compile(r"\bwith\s+$")  # "nobody comes up with this ID": where the rep looked
# "the spelling on her last name" asks for the name, it does not say where the rep looked
_SPELLING_OF = re.compile(
    r"\b(?:spelling|letters?|digits?|characters?)\s+(?:on|of|for)\s+(?:the\s+|her\s+|his\s+|that\s+)?$"
    r"|\b(?:did you say|you said|was it|is it)\b[^.?!]{0,25}$"  # "what year did you say for her birthday"
)
# "you broke up on the procedure code": the field named is the one to hear again
_MISSED_ON = re.compile(
    r"\b(?:broke up|breaking up|cut out|cutting out|lost you|faded|garbled|dropped out|went quiet|missed)"
    r" (?:right )?(?:on|at|during|in)\s+(?:the\s+|that\s+|her\s+|his\s+)?$"
)
_DETERMINERS = ("that", "this", "your", "her", "his", "their", "which", "what")
# "the NPI please": a field named and then "please" asks for it
_PLEASE_AFTER = re.compile(  # "member ID first, please"; "NPI first, then the member"; "member number next."
    r"^\W*(?:first\W+|again\W+)?please\b|^\W*(?:first|next)\W*(?:$|[,.;]|(?:or|then|and|from|please)\b)"
)
_THING = (
    "your thing", "this thing", "the thing", "your stuff", "this stuff", "your software", "your product",
    "your tool", "your platform", "your system", "your service", "your solution", "the software",
    "the product", "the tool", "the platform", "the solution",
)  # fmt: skip
_YOU = re.compile(r"\b(?:your company|you guys|you folks|you all|y'all|you)\b")
# "may I have the calling party's full name", "and your name?": the caller's own name, no call data
_CALLERS = re.compile(r"\b(?:your|the caller's|caller's|calling party's|the calling party's)\s+(?:\w+\s+)?$")
_SHORT_ASK_OTHER_WORDS = 3  # "and the NPI?", "okay DOB": the field and little else is an ask
_SENTENCE = re.compile(r"(?<=[.?!;])\s+")


@dataclass(frozen=True)
class FieldAsk:
    field: str
    slowly: bool  # "once more", "slower", "spell it": read it grouped and slow


@dataclass(frozen=True)
class FieldValue:
    """A disclosable call-data value as a counterpart may say it back to check it: a name (any
    of its words will do: "Doe?"), a phrase (said whole: "Blue Cross"), characters (an ID or a
    code: upper-case letters and digits) or a date (ISO)."""

    field: str
    kind: Literal["name", "phrase", "chars", "date"]
    value: str


_TITLES = frozenset("doctor dr mr mrs ms miss mister the".split())
_CHARS_MATCHED = 5  # characters of an ID or code said in a row that name it ("X K M 4 4")


def field_values(values: Mapping[str, str], kinds: Mapping[str, str]) -> tuple[FieldValue, ...]:
    """The checkable forms of the disclosable fields' ``values``; ``kinds`` gives each field's
    call-data type (name, date, id, cpt, npi, phone, string …). Money and free numbers are left
    out: a counterpart says amounts of their own."""
    out: list[FieldValue] = []
    for name, raw in values.items():
        kind = kinds.get(name)
        if not raw or kind is None:
            continue
        if kind in ("id", "cpt", "npi", "phone"):
            out.append(FieldValue(name, "chars", re.sub(r"[^0-9A-Za-z]", "", raw).upper()))
        elif kind == "date":
            out.append(FieldValue(name, "date", raw))
        elif kind in ("name", "string"):
            words = [w for w in re.findall(r"[\w']+", normalise(raw)) if w not in _TITLES]
            if words:
                out.append(FieldValue(name, "name" if kind == "name" else "phrase", " ".join(words)))
    return tuple(out)


def _value_checked(text: str, values: Sequence[FieldValue], today: dt.date | None) -> str | None:
    """The field whose value a question of the turn says back, when that question ends the turn
    or nearly ("… Dr. Smith, yes? We have three Smiths."; not "this is for the 99213? We're the
    eligibility desk, you'll want utilization review")."""
    sentences = _SENTENCE.split(text.strip())
    for at, sentence in enumerate(sentences):
        if len(" ".join(sentences[at + 1 :]).split()) > _TAIL_WORDS:
            continue
        norm = normalise(sentence)
        if norm.endswith("?") or _TAG_QUESTION.search(norm) or _QUESTION_LEAD.match(norm):
            field = _value_said(sentence, norm, values, today)
            if field is not None:
                return field
    return None


_TAIL_WORDS = 6
_QUESTION_LEAD = re.compile(
    r"\W*(?:(?:and|so|now|but|okay|ok|sorry|just)\W+)?(?:is|was|are|did|do|does|has|have)\s+"
    r"(?:that|it|this|she|he|the|her|his|you|we)\b"
)


def _value_said(text: str, norm: str, values: Sequence[FieldValue], today: dt.date | None) -> str | None:
    """The field whose value ``text`` (normalised: ``norm``) says, first in ``values`` order."""
    runs: list[str] | None = None
    for value in values:
        if value.kind in ("name", "phrase"):
            forms = [value.value]
            if value.kind == "name":
                forms += [w for w in value.value.split() if len(w) >= 3]
            if any(re.search(rf"(?<![\w']){re.escape(f)}(?![\w'])", norm) for f in forms):
                return value.field
        elif value.kind == "chars":
            if runs is None:
                runs = "".join(spoken_sequence(text.lower())).upper().split()
            need = min(len(value.value), _CHARS_MATCHED)
            if any(run[i : i + need] in value.value for run in runs for i in range(len(run) - need + 1)):
                return value.field
        else:  # the day and month will do: "the second of June, seventy-five?" (a year said short)
            said = extract_date(text, None, today, relative=False)
            if said is not None and said[5:] == value.value[5:]:
                return value.field
    return None


def field_phrases(
    disclose: Mapping[str, Sequence[str]], organization: str = ""
) -> dict[str, tuple[re.Pattern[str], ...]]:
    """Compiled phrase patterns per field, longest phrasing first. The agent's ``organization``
    stands for "you" in them: "what does Brightline sell" asks what "you sell" asks."""
    org = normalise(organization)
    names = {n for n in (org, *org.split()[:1]) if len(n) >= 4 and n not in ("the", "your", "our")}
    out: dict[str, tuple[re.Pattern[str], ...]] = {}
    for field, phrases in disclose.items():
        forms = {normalise(p) for p in phrases} | {field.replace("_", " ")}
        forms |= {_YOU.sub(name, f) for f in forms if _YOU.search(f) for name in names}
        # "member ID" is also "member's ID" (and, as recognisers write it, "members ID")
        owned = [f for f in forms if " " in f and not f.startswith(("the ", *_DETERMINERS))]
        forms |= {re.sub(r"^(\w+) ", r"\1's ", f) for f in owned}
        # "the ID" is also "that ID", "her ID", "your member number"
        forms |= {f"{d} {f[4:]}" for f in forms if f.startswith("the ") for d in _DETERMINERS}
        # "which plan" is also "which of her plans"
        forms |= {
            f"which of {d} {f[6:]}s"
            for f in forms
            if f.startswith("which ") and " " not in f[6:]
            for d in ("the", "her", "his", "their", "your", "these", "those")
        }
        # "what does it do" is also "what does your thing do"
        forms |= {re.sub(r"\bit\b", thing, f) for f in forms if re.search(r"\bit\b", f) for thing in _THING}
        out[field] = tuple(
            re.compile(rf"(?<![\w']){phrase_regex(f.split())}(?![\w])")
            for f in sorted(forms, key=len, reverse=True)
        )
    return out


# "what it is your company sells" asks what "you sell" asks
_YOUR_COMPANY_DOES = re.compile(r"\byour (?:company|firm|business|outfit|team) (\w+?)(es|s)\b")


def _you_do(match: re.Match[str]) -> str:
    verb = {"do": "do", "ha": "have"}.get(match[1], match[1] + ("" if match[2] == "s" else "e"))
    return f"you {verb}"


def asks_for_field(
    text: str,
    phrases: Mapping[str, tuple[re.Pattern[str], ...]],
    recent_fields: Sequence[tuple[str, str]] = (),
    named_alone: bool = True,
    values: Sequence[FieldValue] = (),
    today: dt.date | None = None,
) -> FieldAsk | None:
    """The call-data field this turn asks for, if any. ``recent_fields`` are (field, value) read
    in the agent's last line, in order, so "those letters" can name one. ``named_alone``: a field
    said with little else ("and the NPI?"), or as a sentence of its own ("Ordering physician's
    name, first."), asks for it. ``values``: the call's disclosable values, checked when said
    back in a question (only a turn that answered nothing should pass them: "99213? that code
    never needed precert" answers)."""
    norm = _YOUR_COMPANY_DOES.sub(_you_do, normalise(text))
    named: list[tuple[int, str, int]] = []  # (start, field, words in the phrase)
    for field, patterns in phrases.items():
        for pattern in patterns:
            match = pattern.search(norm)
            if match is None:
                continue
            before = norm[: match.start()]
            qualifier = (
                _QUALIFIER.search(before)
                or (_WITH_THIS.search(before) and match.group(0).startswith(("this ", "that ")))
            ) and not (
                _SPELLING_OF.search(before)
                or _MISSED_ON.search(before)
                or match.group(0).startswith(("which ", "what "))  # "under which plan are you calling?"
            )
            own = re.fullmatch(r"(?:(?:full|first|last|sur)\s*)?name", match.group(0))
            if own and _CALLERS.search(norm[: match.start()]):
                continue  # the agent's own name is asked: who_is_this, not this field
            if not qualifier and not _STATES_VALUE.search(norm[match.end() :]):
                named.append((match.start(), field, len(match.group(0).split())))
                break
    if not named and recent_fields:
        referred = _referred_field(norm, recent_fields)
        if referred is not None:
            named.append((0, referred, 0))
    if not named and values:
        checked = _value_checked(text, values, today)
        if checked is not None:
            return FieldAsk(checked, slowly=True)
    if not named:
        return None
    named.sort()
    start, field, phrase_words = _served_first(norm, named)
    asks = (
        _asked_in(norm, start)
        or bool(_MAY_I.search(norm) or _MISSED_ON.search(norm[:start]))
        or _please_after(norm, start, phrase_words)
        or _listed_in_order(norm, named)
    )
    if not asks and (
        not named_alone
        or (
            len(norm.split()) - phrase_words > _SHORT_ASK_OTHER_WORDS
            and not _named_alone(norm, start, phrase_words)
        )
    ):
        return None
    slowly = bool(_REPEAT_CUE.search(norm) or _LETTER_WORDS.search(norm) or "slow" in norm)
    return FieldAsk(field, slowly)


def _asked_in(norm: str, start: int) -> bool:
    """A request cue in the turn; "again" only in the sentence that names the field ("Price, if I'm
    honest. The council cut our fund again" names the price as an answer)."""
    begin = max((m.end() for m in re.finditer(r"[.!?]", norm[:start])), default=0)
    end = re.search(r"[.!?]", norm[start:])
    stop = start + end.end() if end else len(norm)
    return any(m[0] != "again" or begin <= m.start() < stop for m in _REQUEST_CUE.finditer(norm))


def _served_first(norm: str, named: list[tuple[int, str, int]]) -> tuple[int, str, int]:
    """Of several fields named (in order of mention), the one to serve. The first not ruled out
    when the turn lists them ("the NPI, then the member ID"; "the doctor first, and then the
    code"; "the ID, and her surname too"); the last when it turns from one to the other ("the ID
    comes up, but what name do you have?", "not the DOB, the member ID") or puts it first."""
    kept = [n for n in named if not _RULED_OUT.search(norm[: n[0]])] or named
    first, last = kept[0], kept[-1]
    if first is last:
        return first
    between = norm[first[0] : last[0]]
    rest = " ".join(_SENTENCE.split(norm[last[0] :])[0].split()[last[2] :])  # its sentence, after it
    if re.match(r"(?:please\W+)?first\b", rest):
        return last  # "the NPI, but the member ID first"
    asked_at = norm.find("?", first[0])
    clause = norm[max(norm.rfind(mark, 0, last[0]) for mark in ",.?!;") + 1 :]  # where the later one is named
    if 0 <= asked_at < last[0] and "?" not in clause and not _REQUEST_CUE.search(clause):
        return first  # "Who's the ordering doctor? The NPI alone won't do.": the question is the ask
    if _IN_ORDER.search(between) or _ADDED.search(rest):
        return first
    if re.search(r"\b(?:and|plus)\b", between) and not _CONTRAST.search(between):
        return first  # "which NPI is this under, and the CPT again?": asked in the order said
    return last


# "… Smith, no E at the end, yes", "… the fourteenth, right": a statement turned into a question
_TAG_QUESTION = re.compile(r"[,.]\s*(?:yes|yeah|right|correct|isn't it|is it)\W*$")
_RULED_OUT = re.compile(r"\b(?:not|no|never mind|forget|skip)\s+(?:the\s+|that\s+|her\s+|his\s+|your\s+)?$")
_IN_ORDER = re.compile(r"\b(?:then|first|after that|afterwards|followed by|and next|next up|before that)\b")
# "spell her surname too", "and the NPI after that": the later field is asked in addition
_ADDED = re.compile(r"\b(?:too|as well|also|after that|afterwards|next|later|second|after)\b")
_CONTRAST = re.compile(r"\b(?:but|actually|rather|instead|i mean|sorry|no|not|only|just)\b")


def _listed_in_order(norm: str, named: list[tuple[int, str, int]]) -> bool:
    """ "Patient's name first, then the DOB": fields listed in order, leading their sentence, are
    a demand; "I keyed the ID, then her name" tells what was done."""
    if len(named) < 2 or not _IN_ORDER.search(norm, named[0][0], named[-1][0]):
        return False
    lead = re.findall(r"[\w']+", _SENTENCE.split(norm[: named[0][0]])[-1])
    return all(w in _LEAD_WORDS for w in lead)


def _named_alone(norm: str, start: int, phrase_words: int) -> bool:
    """The field and little else said as a sentence of its own, led by nothing but a filler or
    determiner: "Ordering physician's name, first. I don't open a case until …" asks; "it's the
    cost, mostly." and "date of birth 1/15/1980 matches." do not."""
    before = _SENTENCE.split(norm[:start])[-1]
    sentence = before + _SENTENCE.split(norm[start:])[0]
    lead = re.findall(r"[\w']+", before)
    return (
        len(re.findall(r"[\w']+", sentence)) - phrase_words <= _SHORT_ASK_OTHER_WORDS
        and not re.search(r"\d", sentence)
        and all(w in _LEAD_WORDS for w in lead)
    )


_LEAD_WORDS = frozenset(
    "and ok okay so now then also next first alright right um uh the your her his".split()
)


def _please_after(norm: str, start: int, phrase_words: int) -> bool:
    after = norm[start:].split(None, phrase_words)
    return len(after) > phrase_words and bool(_PLEASE_AFTER.match(after[phrase_words]))


def _referred_field(norm: str, recent_fields: Sequence[tuple[str, str]]) -> str | None:
    if _LETTER_WORDS.search(norm):
        with_letters = [
            f for f, v in recent_fields if any(c.isalpha() for c in v) and any(c.isdigit() for c in v)
        ]
        return with_letters[-1] if with_letters else None
    if _DIGIT_WORDS.search(norm) and (_REPEAT_CUE.search(norm) or _REQUEST_CUE.search(norm)):
        with_digits = [f for f, v in recent_fields if any(c.isdigit() for c in v)]
        return with_digits[-1] if with_digits else None
    return None


# the line complained of: a repeat asked, unless the turn answered all the same ("five grand, sorry,
# signal's awful out here, five thousand a year")
_BAD_LINE = re.compile(
    r"\b(?:signal(?:'s| is) (?:breaking|bad|weak|dropping)|signals? (?:is |'s )?(?:terrible|awful|horrible|"
    r"dreadful)|(?:and then|just|all) static|dropping in and out|turned to mush)\b"
)


def asks_to_repeat(text: str, answered: bool = False) -> bool:
    norm = normalise(text)
    return bool(_REPEAT_CUE.search(norm) or (not answered and _BAD_LINE.search(norm)))


WHO_IS_THIS = "who_is_this"  # the intent name schemas give a question about who is calling
# the caller's own name or firm asked for, whatever else the turn does: "Denied, and sorry, your
# name one more time?", "could I take down your company's name", "confirm who's on the phone"
_CALLER_NAMED = re.compile(
    r"\byour (?:(?:first |full |last )?name|employer|"
    r"(?:company|firm|organi[sz]ation|agency|office)(?:'s)? name)\b"
)
_WHO_CALLS = re.compile(
    r"\b(?:are )?you (?:a|an|some) (?:bot|robot|ai|machine|computer|recording)\b|\brobocall\b|"
    r"\b(?:an actual|a real) (?:human|person)\b|"  # "is there an actual human on this line"
    r"\bwhich (?:vendor|company|firm|outfit|agency|office) (?:are )?(?:you|ya)(?:'re)? (?:with|from)\b|"
    # "which billing outfit is this", "what company is this again"
    r"\b(?:which|what) (?:[\w-]+ )?(?:vendor|company|firm|outfit|agency|office|service) is (?:this|that)\b"
    r"(?! (?:for|about|regarding)\b)|"
    # "what billing outfit are you this time?"; not "what vendor are you using?"
    r"\b(?:which|what) (?:[\w-]+ )?(?:vendor|company|firm|outfit|agency|office|service|business|"
    r"organi[sz]ation) (?:are|were) (?:you|ya)\b(?! (?:\w+ing|in|on|at|about|after)\b)|"
    r"\bwho(?:'d| did| do) (?:ya|you)(?: say)? (?:ya|you)(?:'re)? (?:work(?:ing)?|calling) "
    r"(?:for|from|with)\b|"
    r"\b(?:is|was) (?:this|that|it|some) (?:a |an )?(?:bot|robot|ai|machine|computer|recording)\b|"
    r"\b(?:confirm|verify|know|ask|tell me|remind me|note|log) who(?:'s| is| i'm| i am) "
    r"(?:on the (?:phone|line)|calling|speaking|this)\b|\bwho (?:you're|you are) with\b|"
    r"\bwhose (?:office|practice|clinic|behalf)\b|"
    # "billing company who?", "and you personally are who?"
    r"\b(?:company|firm|office|outfit|practice|agency|billing|service) who\b(?=\W*(?:\?|$))|"
    r"\byou(?: personally)? are who\b|"
    # "how did a software company get the number for our site office?"
    r"\bhow (?:did|do|does|would) [\w' ]{0,40}\bget (?:the|my|our|this|that) (?:number|line)\b|"
    # "are you the same vendor that demoed for us?"
    r"\bare (?:you|ya) (?:the same|a different|another) (?:vendor|company|firm|outfit|agency|people|"
    r"folks|crowd)\b|"  # "whose office is this for", "on whose behalf"
    r"\b(?:which|what) (?:facility|office|practice|clinic|provider)(?:'s| is) (?:this|that|the call)\b|"
    # "which software firm is calling?", "how come it has my personal cell?"
    r"\b(?:which|what) (?:[\w-]+ ){0,2}(?:vendor|company|firm|outfit|agency|office|service|business) is "
    r"(?:calling|ringing|phoning)\b|"
    r"\bhow come (?:it|you|they|you guys|your (?:\w+ )?(?:company|firm)) (?:has|have|got) (?:my|our|this) "
    r"(?:[\w-]+ )?(?:number|cell|line|mobile|phone)\b|"
    # "are you with the practice itself, or some billing outfit?"
    r"\bare (?:you|ya) (?:with|from|calling from|calling for|part of) (?:the|a|an|some|that) (?:[\w-]+ ){0,3}"
    r"(?:clinic|practice|surgery|office|firm|company|biller|billing|vendor|agency|service|outfit|hospital|"
    r"provider)\b(?=[^.!]*\?)|"
    r"\bis (?:this|that|it) (?:the|a|an|some) (?:[\w-]+ ){0,2}(?:clinic|practice|office|firm|company|"
    r"hospital|provider)\b(?: itself)?,? or (?:an?|some|the) [^.!?]{0,30}\?"
)


def asks_who_is_calling(text: str) -> bool:
    """The counterpart asks the caller's own name or firm ("your name again and who you're with?")."""
    norm = normalise(text)
    if _WHO_CALLS.search(norm):
        return True
    named = _CALLER_NAMED.search(norm)
    return named is not None and bool(_REQUEST_CUE.search(norm, max(0, named.start() - 40)))
