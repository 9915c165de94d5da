"""What every NLU step needs from a turn's text as speech recognition wrote it.

- ``normalise``: lower case, one kind of apostrophe, spelled-out letters joined ("d o b" → "dob").
- ``clauses``: the turn cut where people change course ("one sec — read me the ID", "approved,
  hold on, that's last year's"), so each part can be understood on its own.
- ``negated``: whether a phrase at a position is negated ("not approved", "wasn't denied").
- ``is_question``: whether the turn asks something.
- ``rejoin``: a word the recogniser split in two put back together ("a proved" → "approved").
- ``phrase_regex``: a set phrase as a pattern that tolerates an adverb slipped into it;
  ``phrase_pattern`` the same compiled to match whole words.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

_APOSTROPHES = str.maketrans({"’": "'", "‘": "'", "`": "'"})
_SPELLED = re.compile(r"(?<![\w'])[a-z](?: [a-z])+(?![\w'])")
# "six k a year": a "k" after a number is thousands, not a spelled letter
_NUMBER_BEFORE = re.compile(
    r"(?:\d|\b(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|fifteen|twenty|thirty|"
    r"forty|fifty|sixty|seventy|eighty|ninety|hundred|half))\s$"
)
# Where a speaker changes course inside one turn.
_CLAUSE_BREAK = re.compile(
    r"\s*(?:[.!?;]+(?:\s+|$)|\s[-–—]+\s|"
    r",\s*(?=(?:but|and|so|oh|actually|sorry|wait|hold on|hang on|no|i mean|give me a|give me one|let me|"
    r"one sec|one moment|just a sec|bear with me)\b)"
    r"|\b(?:but|actually|i mean|no wait|wait|hold on|hang on|scratch that|correction)\b)\s*"
)
_NEGATORS = re.compile(
    r"\b(not|no|never|isn't|isnt|wasn't|wasnt|aren't|arent|weren't|werent|doesn't|doesnt|don't|dont|"
    r"didn't|didnt|hasn't|hasnt|haven't|havent|won't|wont|can't|cant|cannot|neither|nor|nothing|"
    r"nobody|nobody's|no one|no-one)\b"
)
_QUESTION_START = re.compile(
    r"^(?:(?:so|and|okay|ok|um|uh|sorry|oh|well|alright|but|hey|hi)[,]?\s+){0,3}"
    r"(?:(?:what|which|who|where|when|how|why)\b(?!\s+(?:you|we|they|i|he|she)\b)"  # "what you do is…"
    r"|(?:what's|whats|who's|whos|can|could|would|will|do|does|did|is|are|was|were|may)\b)"
)


@dataclass(frozen=True)
class Clause:
    text: str
    start: int  # offset in the normalised turn


FILLER_WORDS = re.compile(  # not "mm-hmm"
    r"(?<![\w'-])(?:um+|uh+|erm|er|uhm|hmm+|mm)(?![\w'-])[,]?\s*", re.IGNORECASE
)


# adverbs and hedges slipped inside a set phrase: "no real rush", "what exactly are you selling",
# "we don't even need it", "no PA for that on file"; a phrase's own words are still all required,
# in order
_SLIPPED_IN = (
    r"(?:(?:real|really|just|exactly|actually|even|quite|totally|all|so|very|pretty|ever|kind of|"
    r"sort of|some|any|whole|full|entire|entirely|completely|complete|actual|their|given|legal|"
    r"for (?:that|this|her|him|it|them))\s+)?"
)


# a plain word of a set phrase also matches these, in the same form: "don't call" is "do not
# phone", "take me off your list" is "... off your database", "remove my number" is "delete my
# number". One way only: a phrase that says "phone" or "ring" means that word ("you'd have to
# phone them" asks for the office, where "call" alone says less).
_SAID_ALSO_AS = {
    "call": ("phone", "ring", "dial", "contact"),
    "calling": ("phoning", "ringing", "dialing", "dialling", "contacting"),
    "called": ("phoned", "rang", "dialed", "dialled", "contacted"),
    "list": ("database", "records", "dialer", "crm", "files", "register"),
    "remove": ("delete", "erase", "scrub", "purge"),
    "removed": ("deleted", "erased", "scrubbed", "purged"),
    "stop": ("quit", "cease"),
    "company": ("firm", "organisation", "organization", "outfit", "agency"),
    "cost": ("fee", "fees"),
    "price": ("fee", "rate"),
    "office": ("company", "firm", "organisation", "organization", "outfit", "agency", "practice", "clinic"),
    "above": ("over",),  # "above my pay grade"
    "callback": ("call back", "call-back"),  # "a good call back number"
    "ceo": ("cto", "cio", "coo", "cfo", "president", "founder", "co-founder", "cofounder"),
    "quotes": ("prices", "pricing", "bids", "estimates", "proposals", "options"),  # "collecting prices"
    "collecting": ("gathering", "comparing", "pulling"),
}


def phrase_regex(words: Sequence[str]) -> str:
    """``words`` as a regex body (escaped, whitespace between them) that also matches the
    phrase with one adverb slipped in between two of its words, and with a plain word said
    another way (``_SAID_ALSO_AS``); "couple" holds with and without
    "of" ("next couple weeks", "a couple of minutes")."""
    parts: list[str] = []
    for i, word in enumerate(words):
        if word == "of" and i and words[i - 1] == "couple":
            continue
        if word == "couple":
            parts.append(r"couple(?:\s+of)?")
        elif word in _SAID_ALSO_AS:
            parts.append("(?:" + "|".join(re.escape(w) for w in (word, *_SAID_ALSO_AS[word])) + ")")
        else:
            parts.append(re.escape(word))
    return (r"\s+" + _SLIPPED_IN).join(parts)


@lru_cache(maxsize=4096)
def phrase_pattern(phrase: str) -> re.Pattern[str]:
    """``phrase`` (already normalised) as a ``phrase_regex`` pattern of whole words."""
    return re.compile(r"(?<![\w'])" + phrase_regex(phrase.split()) + r"(?![\w'])")


# contractions written without their apostrophe ("dont", "couldnt"); not "its", "were", "id", "ill"
_BARE_CONTRACTIONS = re.compile(
    r"\b(do|does|did|is|was|were|are|has|have|had|could|would|should|must|ca|wo)nt\b"
    r"|\b(i)m\b|\b(you|they)(re)\b|\b(i|you|we|they)(ve)\b"
    r"|\b(he|she|that|what|there|who|here|where|nothing|nobody|everything|everybody|something|somebody)s\b"
)  # "were" stays: it is a word of its own


def _apostrophe(match: re.Match[str]) -> str:
    if match[1]:
        return f"{match[1]}n't"
    if match[2]:
        return "i'm"
    if match[3] or match[5]:
        return f"{match[3] or match[5]}'{match[4] or match[6]}"
    return f"{match[7]}'s"


# words run together in speech and written so by recognisers ("gimme a sec", "lemme check"),
# or split by them ("no thing", "yester day"), and short forms ("thru", "y'all")
_RUN_TOGETHER_WORDS = {
    "gimme": "give me", "lemme": "let me", "gotta": "got to", "thru": "through", "y'all": "you all",
    "yall": "you all", "no thing": "nothing", "no body": "nobody", "any thing": "anything",
    "any body": "anybody", "every thing": "everything", "every body": "everybody",
    "some thing": "something", "some body": "somebody", "yester day": "yesterday", "to morrow": "tomorrow",
    "a sap": "asap", "o clock": "o'clock",
    # a field's name said another way or as a recogniser spells it out
    "surname": "last name", "sir name": "last name", "family name": "last name",
    "date of bird": "date of birth", "see pee tee": "c p t", "en pee eye": "n p i", "em pee eye": "n p i",
    "dee oh bee": "d o b", "card number": "id number", "idee": "id", "eye dee": "id", "revue": "review",
    # a dropped g, as recognisers write it ("nothin under that ID", "Dwayne speakin")
    "nothin": "nothing", "somethin": "something", "anythin": "anything", "speakin": "speaking",
    "lookin": "looking", "checkin": "checking", "holdin": "holding", "hangin": "hanging", "goin": "going",
    "doin": "doing", "talkin": "talking", "callin": "calling", "workin": "working", "waitin": "waiting",
    "pullin": "pulling", "comin": "coming", "gettin": "getting", "sayin": "saying", "tryin": "trying",
    "typin": "typing", "searchin": "searching", "showin": "showing", "seein": "seeing",
    "chargin": "charging", "outta": "out of",
}  # fmt: skip
_RUN_TOGETHER = re.compile(r"(?<![\w'])(?:" + "|".join(_RUN_TOGETHER_WORDS) + r")(?![\w'])")
# homophones a recogniser writes for words that matter here: "take us of the list",
# "a couple weaks"
_HOMOPHONES = (
    (re.compile(r"\b(take|get|keep|strike) (me|us|him|her|it|my number|our number) of\b"), r"\1 \2 off"),
    (re.compile(r"\b(a|one|two|three|four|few|couple|next|last|this|per|every) weak(s?)\b"), r"\1 week\2"),
    (re.compile(r"\b(thank you|thanks) by\b"), r"\1 bye"),
    (re.compile(r"\b(mon|tues|wednes|thurs|fri|satur) day\b"), r"\1day"),  # "next tues day"
    # "before cue four wraps up": a quarter as a recogniser writes it
    (
        re.compile(r"\b(?:queue|cue|q) (one|two|three|four)\b(?! (?:day|week|month|person|people|call)s?\b)"),
        lambda m: f"q{('one', 'two', 'three', 'four').index(m[1]) + 1}",
    ),
    # a field said another way: "what number should intake dial" asks the callback number, "what's
    # this gonna run me" the price
    (
        re.compile(
            r"\b(?:what|which) number (should|do|can|could) ((?:\w+ ){0,2})(call|dial|ring|reach|phone)\b"
        ),
        r"what callback number \1 \2\3",
    ),
    (re.compile(r"\b(?:what|which) number (rings|reaches|gets) (the|your)\b"), r"what callback number \1 \2"),
    (re.compile(r"\bcall ?back line\b"), "callback number"),
    # "what's the office's number": the number to call the office back on
    (
        re.compile(r"\b(the|your|their) (office|practice|clinic|provider|doctor)(?:'s)? (?:phone )?number\b"),
        r"\1 \2's callback number",
    ),
    (re.compile(r"\bset (me|us|you) back\b"), r"cost \1"),  # "what's it gonna set me back"
    # "what would a system like yours run", "do you charge per seat", "what is it you folks make"
    (
        re.compile(
            r"\bwhat (?:would|will|does|do) (?:[\w']+ ){1,5}run\b(?! (?:into|out|over|through|on|by)\b)"
        ),
        "what does it run",
    ),
    (re.compile(r"\bwhat is it (?:that )?you\b"), "what you"),
    (re.compile(r"(?<!what )\b(?:do|does|will|would) (?:you|y'all) charge\b"), "what do you charge"),
    (re.compile(r"\byou (?:folks|guys|all|people) (make|do|sell|offer)\b"), r"you \1"),
    (
        re.compile(r"\b(gonna|going to|it|that|this|does it|would it|will it) run (me|us|you)\b"),
        r"\1 cost \2",
    ),
    # "what do firms like ours typically pay" asks the price ("what do we pay now" does not)
    (
        re.compile(r"\bwhat (?:do|does|would) (?!we |i )(?:[\w']+ ){1,4}(?:typically |usually )?pay\b"),
        "what's the price",
    ),
    # a name's parts said the formal way: "the spelling on her surname", "her given name"
    (re.compile(r"\bsurname\b"), "last name"),
    (re.compile(r"\b(?:given|christian) name\b"), "first name"),
    # "what's the monthly on this": the monthly price
    (
        re.compile(
            r"\bthe (monthly|yearly|annual)\b(?= (?:on|for|with|of)\b| (?:going to|gonna) be\b|\W*$|\?)"
        ),
        r"the \1 price",
    ),
    # a possessive written without its apostrophe: "what's the members id"
    (
        re.compile(r"\b(member|patient|subscriber|provider|doctor|physician)s (id|number|name|dob|npi)\b"),
        r"\1's \2",
    ),
    # a correction written without its commas: "decided the fifth no sorry the sixth"
    (re.compile(r"(?<![,.]) (no|nope|oh) (sorry|wait|i mean|my bad|make that)\b(?!,)"), r", \1, \2,"),
)


def normalise(text: str) -> str:
    """Lower case, straight apostrophes, collapsed spaces, no "um"/"uh", contractions given
    back their apostrophe ("dont" → "don't"), "gimme" → "give me"; spelled letters joined when
    they stand alone ("n p i" → "npi", "d o b" → "dob"): recognisers write acronyms both ways."""
    lowered = " ".join(FILLER_WORDS.sub("", text.translate(_APOSTROPHES).lower()).split())
    lowered = _RUN_TOGETHER.sub(lambda m: _RUN_TOGETHER_WORDS[m.group(0)], lowered)
    for pattern, replacement in _HOMOPHONES:
        lowered = pattern.sub(replacement, lowered)
    lowered = _BARE_CONTRACTIONS.sub(_apostrophe, lowered)
    return _SPELLED.sub(lambda m: _joined_letters(m, lowered), lowered)


def _joined_letters(match: re.Match[str], text: str) -> str:
    letters = match.group(0)
    if letters.startswith("k ") and _NUMBER_BEFORE.search(text[: match.start()]):
        rest = letters[2:]
        return "k " + (rest.replace(" ", "") if len(rest) > 1 else rest)
    return letters.replace(" ", "")


@lru_cache(maxsize=4096)
def clauses(text: str) -> tuple[Clause, ...]:
    """The normalised turn cut at sentence ends, dashes and course changes."""
    norm = normalise(text)
    out: list[Clause] = []
    pos = 0
    for match in _CLAUSE_BREAK.finditer(norm):
        if match.start() > pos:
            out.append(Clause(norm[pos : match.start()], pos))
        pos = match.end()
    if pos < len(norm):
        out.append(Clause(norm[pos:], pos))
    return tuple(c for c in out if c.text.strip(" ,")) or (Clause(norm, 0),)


def negated(norm: str, start: int, window: int = 3) -> bool:
    """Is the phrase starting at ``start`` negated by one of the ``window`` words before it
    (within its clause)? "it's not approved" → True; "not only approved" is rare enough."""
    before = norm[:start]
    cut = max(before.rfind(","), before.rfind("."), before.rfind(" - "), before.rfind(";"))
    words = before[cut + 1 :].split()[-window:]
    return any(_NEGATORS.fullmatch(w.strip(",.")) for w in words)


def is_question(text: str) -> bool:
    norm = normalise(text)
    return "?" in norm or bool(_QUESTION_START.match(norm))


def asks_the_agent(text: str) -> bool:
    """A question to the agent after the turn's first part: "before I answer that, what does
    your thing do". A later part must say "you" to count: "the problem is, how do we staff
    Mondays" asks nobody."""
    parts = re.split(r"[,;.!]\s*", normalise(text))[1:]
    return any(_QUESTION_START.match(p) and _SECOND_PERSON.search(p) for p in parts)


_SECOND_PERSON = re.compile(r"\b(?:you|your|you're|you've|y'all)\b")


@lru_cache(maxsize=16)
def _one_letter_short(vocabulary: frozenset[str]) -> dict[str, str]:
    """Each long expected word with one letter inside it left out → the word ("aproved" →
    "approved"; not its last letter: "exist in" is no "existing")."""
    out: dict[str, str] = {}
    for word in vocabulary:
        if len(word) >= 7:
            for i in range(len(word) - 1):
                out.setdefault(word[:i] + word[i + 1 :], word)
    return out


# a prefix a recogniser writes as a word of its own: "in active", "pre cert"
_SPLIT_PREFIXES = frozenset(("in", "un", "non", "pre", "re", "dis"))


def rejoin(text: str, vocabulary: frozenset[str]) -> str:
    """Two neighbouring words whose concatenation is a word the schema expects (or one letter
    short of a long one: "a proved"), and at least one of which it does not (or the first is a
    prefix: "in active"), are one word split by speech recognition."""
    if not vocabulary:
        return text
    near = _one_letter_short(vocabulary)
    words = text.split(" ")
    out: list[str] = []
    i = 0
    while i < len(words):
        if i + 1 < len(words):
            a, b = words[i].lower(), words[i + 1].lower().rstrip(".,?!")
            joined = a + b
            if joined not in vocabulary and joined in near:
                joined = near[joined]
            elif (
                joined not in vocabulary
                and len(joined) >= 7
                and min(len(a), len(b)) >= 2
                and not {a, b} & vocabulary
            ):
                # "dee nied": two fragments, one letter too many
                shorter = (joined[:k] + joined[k + 1 :] for k in range(len(joined)))
                joined = next((w for w in shorter if w in vocabulary), joined)
            if (
                a.isalpha()
                and b.isalpha()
                and len(joined) >= 6
                and joined in vocabulary
                and (a not in vocabulary or b not in vocabulary or a in _SPLIT_PREFIXES)
            ):
                tail = words[i + 1][len(b) :]
                out.append(joined + tail)
                i += 2
                continue
        out.append(words[i])
        i += 1
    return " ".join(out)
