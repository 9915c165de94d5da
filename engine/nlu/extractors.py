"""Typed slot extractors: the local, fast half of capture.

Each extractor takes the caller's utterance (as STT wrote it) and returns the normalised
slot value as a string, or None when the utterance holds no such value.
"""

from __future__ import annotations

import calendar
import datetime as dt
import itertools
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from typing import Literal

from engine.nlu.text import FILLER_WORDS, clauses, negated, normalise, phrase_pattern, phrase_regex
from engine.nlu.told import told_value
from engine.schema_model import Slot

_UNITS = {
    "zero": 0, "oh": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14,
    "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19,
}  # fmt: skip
_TENS = {
    "twenty": 20,
    "thirty": 30,
    "forty": 40,
    "fifty": 50,
    "sixty": 60,
    "seventy": 70,
    "eighty": 80,
    "ninety": 90,
}
_SCALES = {"hundred": 100, "thousand": 1_000, "grand": 1_000, "k": 1_000, "million": 1_000_000}
_DIGIT_WORDS = {w: str(n) for w, n in _UNITS.items() if n < 10}
_NATO = {
    "alpha": "A", "alfa": "A", "bravo": "B", "charlie": "C", "delta": "D", "echo": "E", "foxtrot": "F",
    "golf": "G", "hotel": "H", "india": "I", "juliet": "J", "juliett": "J", "kilo": "K", "lima": "L",
    "mike": "M", "november": "N", "oscar": "O", "papa": "P", "quebec": "Q", "romeo": "R", "sierra": "S",
    "tango": "T", "uniform": "U", "victor": "V", "whiskey": "W", "x-ray": "X", "xray": "X",
    "yankee": "Y", "zulu": "Z",
}  # fmt: skip
_MONTHS = {
    m.lower(): i
    for i, names in enumerate(
        [("january", "jan"), ("february", "feb"), ("march", "mar"), ("april", "apr"), ("may",),
         ("june", "jun"), ("july", "jul"), ("august", "aug"), ("september", "sep", "sept"),
         ("october", "oct"), ("november", "nov"), ("december", "dec")],
        start=1,
    )
    for m in names
}  # fmt: skip
_ORDINALS = {
    "first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6, "seventh": 7, "eighth": 8,
    "ninth": 9, "tenth": 10, "eleventh": 11, "twelfth": 12, "thirteenth": 13, "fourteenth": 14,
    "fifteenth": 15, "sixteenth": 16, "seventeenth": 17, "eighteenth": 18, "nineteenth": 19,
    "twentieth": 20, "thirtieth": 30,
}  # fmt: skip
_WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]

_WORD_RE = re.compile(r"[a-z]+(?:-[a-z]+)?|\d+(?:[.,]\d+)*|[$%]")


def tokens(text: str) -> list[str]:
    return _WORD_RE.findall(text.lower())


def words_to_number(words: list[str]) -> int | None:
    """'two hundred fifty thousand' → 250000; None if the words are not a number."""
    total = current = 0
    seen = False
    for word in words:
        for part in word.split("-"):
            if part in _UNITS:
                current += _UNITS[part]
            elif part in _TENS:
                current += _TENS[part]
            elif part == "hundred":
                current = max(current, 1) * 100
            elif part in _SCALES:
                total += max(current, 1) * _SCALES[part]
                current = 0
            elif part in ("and", "an") and seen:  # "a hundred an fifty" as a recogniser writes it
                continue
            else:
                return None
            seen = True
    return total + current if seen else None


def _number_spans(text: str) -> list[Decimal]:
    """Every number in the text, written as digits or as words, in order."""
    out: list[Decimal] = []
    run: list[str] = []
    for token in [*tokens(text), ""]:
        if token and (token in _UNITS or token in _TENS or token in _SCALES or token.split("-")[0] in _TENS):
            run.append(token)
            continue
        if token == "and" and run:
            run.append(token)
            continue
        if run:
            while run and run[-1] == "and":
                run.pop()
            value = words_to_number(run)
            if value is not None:
                out.append(Decimal(value))
            run = []
        if token and token[0].isdigit():
            out.append(Decimal(token.replace(",", "")))
    return out


def extract_number(text: str, slot: Slot | None = None) -> str | None:
    numbers = _number_spans(text)
    return str(numbers[0]) if numbers else None


_AMOUNT_CUE = re.compile(
    r"\$|\dk\b|\b(dollars?|bucks|grand|k|kay|thousand|million|budget|spend|price|costs?|monthly|quarterly|annually|"
    r"yearly|(?:a|per|each|every) (?:month|year|quarter|seat|user|head|license|location)|"
    r"for the (?:whole )?(?:year|month))\b"
)
_SPENT = re.compile(
    r"\b(spent|paid|blew through|blew|went over|cost us|costs us|costing us|were paying|used to pay|"
    r"burned|burnt|"
    r"burn through|burning|lost|lose|losing|wasted|wasting|bleeding|"
    r"quote (?:we|i) got|(?:were|was|got|been) quoted|quoted (?:us|me|them)|last quote)\b"
)
# "a hundred and forty on the phones": a headcount
_ON_STAFF = ("on the phone", "on the floor", "on staff", "on payroll", "on the team")
_SAME_AGAIN = re.compile(
    r"\b(?:same|similar) (?:ballpark|range|amount|number|money|budget|spend)\b|\babout the same\b|"
    r"\bmatch(?:ing)? (?:that|it)\b|\bthat much again\b"
)
_AMOUNT_TOKEN = re.compile(r"[a-z]+(?:-[a-z]+)?|\d+(?:,\d{3})*(?:\.\d+)?|[$,.]")
# "kay": "twelve k" as a recogniser writes it
_AMOUNT_SUFFIX = {
    "k": 1_000, "kay": 1_000, "grand": 1_000, "thousand": 1_000, "million": 1_000_000, "m": 1_000_000,
}  # fmt: skip
_NUMBER_WORDS = frozenset({*_UNITS, *_TENS, "hundred", "thousand", "million"})
_ONE_OF_MONEY = frozenset({*_AMOUNT_SUFFIX, "dollar", "dollars", "buck", "bucks", "point"})


_HOMOPHONE_NUMBER = {"for": "four", "won": "one", "to": "two", "too": "two", "ate": "eight"}
_SCALED_HOMOPHONE = re.compile(r"\b(for|won|to|too|ate)(?= (?:hundred|thousand|grand|k|kay)\b)")


# Words before a number that make it a label ("year one", "phase two"), not an amount.
_LABELS = frozenset(
    "year day week month phase version step level tier number option plan quarter q "
    "table room door aisle bay dock gate extension".split()
)
_HUNDREDS_SAID_AS_TENS = re.compile(
    r"(one|two|three|four|five|six|seven|eight|nine) "
    r"((?:twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety)(?:[- ](?:one|two|three|four|five|six|seven|"
    r"eight|nine))?)\b"
)
# Nouns after a number that make it a count ("across forty sites"), not an amount of money.
_COUNTED = frozenset(
    """people person employees staff users seats heads sites locations stores offices branches shops
    hours minutes days weeks months years percent % agents reps techs technicians drivers trucks
    nurses doctors clinics shifts calls times members folks guys workers crews teams vendors
    warehouses buildings beds rooms units licenses centers centres facilities departments homes houses
    venues hotels restaurants cafes bars pubs schools libraries cinemas theatres gyms farms depots stations
    practices pharmacies surgeries wards vans vehicles""".split()
)
_MONEY_WORDS = frozenset("dollars dollar bucks grand k kay thousand million per a an each $ , .".split())


@dataclass
class _Amount:
    value: Decimal
    scaled: bool  # said with its scale ("forty thousand", "$40", "40k"), not a bare "forty-five"
    negated: bool


def _continues(previous: str, word: str) -> bool:
    """Whether ``word`` goes on the spoken number so far ("forty" + "five"; not "ten" + "twelve")."""
    head, prev = word.split("-")[0], previous.split("-")[-1]
    if head in ("and", "an"):
        return prev in ("hundred", "thousand", "million")
    if head in ("hundred", "thousand", "million"):
        return prev != head
    if prev in _TENS:
        return head in _UNITS and _UNITS[head] < 10
    return prev in ("hundred", "thousand", "million", "and", "an")


_AND_A_HALF = re.compile(
    r"\b(\d{1,2}|"
    + "|".join(w for w, n in _UNITS.items() if 0 < n < 20)
    + r") and a half (hundred|thousand|grand|k|million)\b"
)


_POINT = re.compile(
    r"\b(\d{1,3}|" + "|".join(w for w, n in _UNITS.items() if 0 < n < 20) + r") point "
    r"(\d|" + "|".join(w for w, n in _UNITS.items() if n < 10) + r") (thousand|grand|k|million)\b"
)


def _amounts(text: str) -> list[_Amount]:
    """Every amount in the turn in order, digits or words, with a trailing scale word applied."""
    text = _SCALED_HOMOPHONE.sub(lambda m: _HOMOPHONE_NUMBER[m[1]], text)  # "ate grand"
    text = re.sub(r"\b(?:a )?quarter (?:of a )?million\b", "250 thousand", text)
    text = re.sub(r"\bhalf (?:a )?million\b", "500 thousand", text)
    # "a grand and a half" ("a grant and a half", as a recogniser may write it)
    text = re.sub(r"\b(?:a|one) gran[dt] and a half\b", "1500", text)
    text = re.sub(r"\b(?:put|set|kept|keep|putting|setting) (.{1,40}?) to one side\b", r"\1 aside", text)
    text = _AND_A_HALF.sub(lambda m: f"{_UNITS.get(m[1], m[1])}.5 {m[2]}", text)  # "four and a half grand"
    text = _POINT.sub(
        lambda m: f"{_UNITS.get(m[1], m[1])}.{_UNITS.get(m[2], m[2])} {m[3]}", text
    )  # "one point five million"
    text = re.sub(r"\ba (hundred|thousand|million)\b", r"one \1", text)  # "a hundred and fifty"
    # "a couple hundred", "a few grand": two and three of them
    text = re.sub(r"\b(?:a )?couple(?: of| a)? (?=hundred|thousand|grand|k\b)", "two ", text)
    text = re.sub(r"\b(?:a )?few (?=hundred|thousand|grand|k\b)", "three ", text)
    text = re.sub(r"(?<=\w)(?:-| )ish\b", "", text)  # "forty ish thousand"
    # "$30 000", "30 000 dollars": thousands grouped with a space
    text = re.sub(r"(?<=\$)(\d{1,3}) (\d{3})\b", r"\1\2", text)
    text = re.sub(r"\b(\d{1,3}) (\d{3})(?= (?:dollars?|bucks)\b)", r"\1\2", text)
    words = _AMOUNT_TOKEN.findall(text)
    per_unit = any(
        w in ("per", "each", "every") and (u in _COUNTED or f"{u}s" in _COUNTED)
        for w, u in itertools.pairwise(words)
    )
    out: list[_Amount] = []
    i = 0
    while i < len(words):
        word = words[i]
        dollar = i > 0 and words[i - 1] == "$"
        if i > 0 and words[i - 1] in _LABELS:
            i += 1
            continue  # "for year one", "phase two": a label, no amount
        if word in _DIGIT_WORDS and i + 1 < len(words) and words[i + 1] in _DIGIT_WORDS:
            while i < len(words) and words[i] in _DIGIT_WORDS:
                i += 1
            continue  # "six zero": digits read out to confirm, no amount of their own
        hundreds = _HUNDREDS_SAID_AS_TENS.match(" ".join(words[i : i + 3]))
        if hundreds and not dollar:  # "one seventy five k": 175, "two fifty" 250
            tail = hundreds[2].split()
            value = Decimal(_UNITS[hundreds[1]] * 100 + (words_to_number(tail) or 0))
            j = i + 1 + len(tail)
            scaled = False
            if j < len(words) and words[j] in _AMOUNT_SUFFIX:
                value *= _AMOUNT_SUFFIX[words[j]]
                scaled, j = True, j + 1
            out.append(_Amount(value, scaled, False))
            i = j
            continue
        if word[0].isdigit():
            value, j = Decimal(word.replace(",", "")), i + 1
            if not dollar and re.fullmatch(r"(?:19|20)\d\d", word):
                i += 1
                continue  # "till 2028" is a year, not an amount
            scaled = dollar or value >= 1000
        elif word.split("-")[0] in _NUMBER_WORDS and word != "oh":
            run = [word]
            j = i + 1
            while j < len(words) and (words[j].split("-")[0] in _NUMBER_WORDS or words[j] in ("and", "an")):
                if not _continues(run[-1], words[j]):
                    break
                run.append(words[j])
                j += 1
            while run and run[-1] in ("and", "an"):
                run.pop()
                j -= 1
            number = words_to_number(run)
            if number is None or (
                run == ["one"] and not dollar and not (j < len(words) and words[j] in _ONE_OF_MONEY)
            ):
                i += 1
                continue  # "answer me one", "the cheaper one": a pronoun, no amount
            value = Decimal(number)
            scaled = dollar or value >= 1000 or any(w in ("thousand", "million") for w in run)
        else:
            i += 1
            continue
        if j < len(words) and words[j] in _AMOUNT_SUFFIX:
            # "30,000 K", "thirty thousand … thousand": a thousand-scale word after a number already in
            # thousands says its scale again, it does not multiply it
            if not (value >= 1000 and _AMOUNT_SUFFIX[words[j]] == 1000):
                value *= _AMOUNT_SUFFIX[words[j]]
            scaled, j = True, j + 1
        elif (
            (not dollar and any(w in _COUNTED for w in words[j : j + 1]))
            or (
                not dollar
                and words[j + 1 : j + 2]
                and words[j + 1] in _COUNTED
                and words[j] not in _MONEY_WORDS
            )
            or (not dollar and " ".join(words[j : j + 3]).startswith(_ON_STAFF))
            or (not dollar and words[j : j + 2] in (["of", "them"], ["of", "us"], ["of", "those"]))
            # "two hundred per location, and we've got five": how many of the unit priced
            or (per_unit and not dollar and i > 0 and words[i - 1] in ("got", "have", "run", "own"))
        ):
            i = j
            continue  # "forty sites", "six people", "four call centers": a count, no amount
        before = words[max(0, i - 3) : i]
        negated_here = bool(before) and (
            before[-1] == "not"
            or (len(before) > 1 and before[-2] == "not" and before[-1] in ("like", "even"))
        )
        if value:  # "zero" is no amount on offer
            out.append(_Amount(value, scaled, negated_here))
        i = j
    return out


def _only_a_number(lowered: str) -> bool:
    """A turn of number words (and a hedge) alone: "ninety-five hundred", "about 8,000"."""
    words = _AMOUNT_TOKEN.findall(lowered)
    hedges = {
        "um",
        "uh",
        "about",
        "around",
        "roughly",
        "maybe",
        "like",
        "so",
        "probably",
        "say",
        "oh",
        ",",
        ".",
        "?",
        "!",
    }
    numeric = [w for w in words if w not in hedges]
    return bool(numeric) and all(
        w[0].isdigit() or w.split("-")[0] in _NUMBER_WORDS or w in ("and", "an") for w in numeric
    )


_PER_SEAT = r"\b(?:a|per|each) (?:seat|user|head|license|licence|employee)\b"  # "forty a seat": a price


_RANGE = re.compile(r"\b(?:between [\w-]+ and|[\w-]+ (?:to|or) [\w-]+ (?:dollars?|bucks)\b)")


def _said_as_money(amount: _Amount, lowered: str) -> bool:
    """A lone bare number is an amount when it is large or said with a money word ("ninety-nine
    dollars"), not "the other one" in a sentence that mentions the price."""
    return amount.value >= 100 or bool(re.search(r"\b(dollars?|bucks)\b|" + _PER_SEAT, lowered))


def extract_currency(text: str, slot: Slot | None = None) -> str | None:
    """The amount a turn settles on: the last one not negated ("not fifty, more like thirty-five
    thousand"; "forty thousand — no, forty-five"; a range gives its upper bound). A bare number
    takes the scale of the amount said next to it ("ten, twelve thousand" → 12000, "thirty to
    forty thousand", "forty thousand … forty-five" → 45000). Needs a money word in the turn."""
    # what was spent ("we blew through forty grand last quarter") is no amount on offer, unless it
    # is offered again ("the old tool costs us seventy-five hundred, so that, same ballpark")
    again = _SAME_AGAIN.search(normalise(text)) is not None
    parts = [c.text for c in clauses(text)]
    lowered = " , ".join(p for p in parts if again or not _SPENT.search(p))
    amounts = _amounts(lowered)
    whole = " , ".join(parts)
    said = amounts if whole == lowered else _amounts(whole)  # with the amounts not on offer
    only_numbers = _only_a_number(lowered)
    if not _AMOUNT_CUE.search(whole) and not only_numbers:
        return None
    for index, amount in enumerate(amounts):
        if amount.scaled or amount.value >= 1000:
            continue
        neighbours = [*amounts[index + 1 :], *reversed(amounts[:index])]
        scale = next((a for a in neighbours if a.scaled and a.value >= 1000), None) or next(
            (a for a in said if a.scaled and a.value >= 1000), None
        )  # "another firm quoted us nine grand. Seven, tops": the scale of an amount not on offer
        if scale is not None:
            unit = Decimal(1_000_000) if scale.value >= 1_000_000 else Decimal(1000)
            amount.value *= unit
            amount.scaled = True
        elif (
            only_numbers
            and amount.value < 10
            and any(100 <= a.value < 1000 and a.value % 100 == 0 for a in neighbours)
        ):
            amount.value *= 100  # "five hundred? maybe six": a turn of amounts alone, in hundreds too
    kept = [
        a
        for a in amounts
        if not a.negated
        and (
            a.scaled
            or (len(amounts) == 1 and _said_as_money(a, lowered))
            # "between fourteen and seventeen bucks an agent": a range's top
            or (
                len(amounts) == 2
                and a is amounts[-1]
                and _RANGE.search(lowered)
                and _said_as_money(a, lowered)
            )
            or (only_numbers and a.value >= 100)
        )
    ]
    if not kept:
        return None
    return format(kept[-1].value.normalize(), "f")


_NEUTRAL = re.compile(
    r"\b(no problem|no worries|not a problem|no doubt|no rush|not sure|not really sure|no idea|no clue|"
    r"not that i know|not certain|no pressure|don't hang up|do not hang up|don't go anywhere|"
    r"(?:we're|we are|i'm|i am) (?:all )?(?:good|set))\b"  # "we went with someone else, so we're good"
)
_EXPLICIT_YES = re.compile(
    # "could ya ring Thursday" says "you"
    r"\b(yes|yeah|yea|(?<!could )(?<!would )(?<!can )(?<!will )(?<!did )(?<!do )(?<!are )(?<!see )ya|yep|yup|"
    r"sure|(?<!the )(?<!kindly )(?<!please )(?<!are )(?<!were )(?<!is )(?<!was )"
    r"correct(?! (?:one|number|reference|date|id|code|spelling|"
    r"digits?|value|name|version) (?:is|was|should|would)\b)(?! (?:it|that|this|those|them)\b)|"
    r"absolutely|definitely|"
    r"(?:^|(?<=[.,!?] ))exactly|of course|"
    r"affirmative|(?:^|(?<=[.,!?] ))confirmed(?=\s*(?:[.,!]|$))|"  # "Confirmed. Do copy Margaret …"
    r"that's right|that is right|right on|you got it|you've got it|you have it|you bet|certainly|uh-huh|"
    r"mm-hmm|okie dokie|guilty as charged|"
    r"go ahead|ask away|fire away|fire (?:your|the) questions|go for it|"
    r"ask (?:me )?(?:your |the |a )?(?:two |three |few |couple (?:of )?|quick |couple )*questions?|"
    r"ask a couple|"
    r"(?:fine|okay|ok|alright|"
    r"sure),? ask(?=\s*[.!,])|"
    r"shoot(?=\s*(?:$|[.!?]|\s+(?:away|ahead|your|me|it)\b))|all good|sounds good|sounds great|"
    r"that works|works for me|lock (?:it |that )?in|locked in(?! (?:with|to|for|on|until|till))|"
    r"that's fine|that's me|i can do|i can talk|i can spare|make it quick|"
    r"everything's right|everything is right|all correct|(?:all right|alright)(?! (?:later|bye|cheers|"
    r"see ya))|"
    r"sounds right|all sounds right|"
    r"that's all correct|all of that is right|"
    r"you(?: had|'ve got|'ve had| have| got) (?:it|them|that|those|everything) (?:right|correct)|"
    r"(?<!none of them )(?<!none of those )(?<!neither of them )(?<!none )(?<!neither )(?<!nothing )"
    r"(?:are|were|is|was) (?:all )?(?:right|correct)|"
    r"spot on|bang on|dead on|sounds like a plan|it's a plan|deal|"
    r"(?:that|this|it)(?:'ll| will|'d| would) (?:work|do)|(?<!another )(?<!a )go on|carry on|"
    r"(?:all |it all |that all )?matches|"
    r"what (?:do|did) you (?:want|need) to know|what(?:'s| is| are) your questions?)\b"
)
_EXPLICIT_NO = re.compile(
    r"\b(no|nope|nah|negative|incorrect|wrong|not really|not at all|no way|absolutely not|"
    r"can't do|cant do|cannot do|doesn't work|doesnt work|won't work|wont work|not gonna work|"
    r"not going to work|no good|not right|not correct|except|apart from|not interested)\b"
)
_IMPLICIT_YES = re.compile(
    # "could we do it at 11:30 instead?" proposes, it says no "we do"
    r"\b((?<!can )(?<!could )(?<!should )(?<!shall )(?<!would )(?<!why )(?<!how )(?<!what )(?<!when )"
    r"(?<!where )(?<!do )(?<!did )(?:i do|we do)|i am|it is|(?:^|(?<=[.!?,] ))speaking|i have time|"
    r"i've got time|got a minute|"
    r"got a few minutes|"
    r"i guess so|i guess(?=\s*[.!]|$)|i think so|i guess i can|i can answer|i can give you|that's it|"
    r"perfect|great|fine|okay|ok|"
    r"good)\b"
)
_IMPLICIT_NO = re.compile(
    r"\b(don't|dont|do not|doesn't|does not|not(?! (?:this|my|that) (?:number|phone|line|cell|email|one)\b"
    r"| (?:one|two|three|four|five|six|seven|eight|nine|ten|\d+)\b)|"
    r"can't|cant|cannot|won't|isn't|aren't|never|busy|bad time|"
    # moving the meeting without saying where to ("push it to 3:30" gives the new time instead)
    r"(?:push|move|bump) (?:it|that|this)"
    r"(?![^.?!]*\b(?:to|for|at) (?:\d|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|noon))"
    r"|reschedule|(?:another|a different) (?:day|time|week))\b"
)


WEAK_YES_WORDS = 5  # "fine", "we do" … answer yes in a short clause ("but ok, questions are fine") …
WEAK_YES_AT = 12  # … or at the turn's start; "it works fine for us" is no yes to "can I ask?"
_WEAK_YES = frozenset({"perfect", "great", "fine", "okay", "ok", "good", "i do", "we do", "i am", "it is"})


def extract_yes_no(text: str, slot: Slot | None = None) -> str | None:
    """The turn's answer to a yes/no question, reading the whole turn. Clear words and phrases
    (yes, nope, go ahead, that works, can't do …) decide before weak ones (okay, fine, not …);
    among them the last one wins ("no — I mean yes, go ahead" is yes; "yes, hang on, no" is no);
    "no problem" and "not sure" are neither."""
    cleaned = _NEUTRAL.sub(" ", normalise(text))
    short_clauses = [
        (c.start, c.start + len(c.text)) for c in clauses(cleaned) if len(c.text.split()) <= WEAK_YES_WORDS
    ]

    def weak_counts(at: int) -> bool:
        return at < WEAK_YES_AT or any(a <= at < b for a, b in short_clauses)

    for yes, no in ((_EXPLICIT_YES, _EXPLICIT_NO), (_IMPLICIT_YES, _IMPLICIT_NO)):
        marks = [
            (m.end(), "no" if negated(cleaned, m.start()) else "yes")
            for m in yes.finditer(cleaned)
            if yes is _EXPLICIT_YES or m.group(0) not in _WEAK_YES or weak_counts(m.start())
        ]
        marks += [(m.end(), "no") for m in no.finditer(cleaned)]
        if marks:
            return max(marks)[1]
    return None


def no_said_outright(text: str) -> bool:
    """The turn says no in words ("no", "nope", "can't do") or opens with "not" ("Not Friday, …")."""
    cleaned = _NEUTRAL.sub(" ", normalise(text))
    return bool(_EXPLICIT_NO.search(cleaned) or re.match(r"\W*not\b", cleaned))


def yes_no_said_outright(text: str) -> bool:
    """The turn holds a clear yes or no word or phrase (not only "okay", "not", "busy")."""
    cleaned = _NEUTRAL.sub(" ", normalise(text))
    return bool(_EXPLICIT_YES.search(cleaned) or _EXPLICIT_NO.search(cleaned))


_AS_IN = re.compile(r"\b([A-Za-z])\s*(?:,\s*)?(?:as in|like|for|as)\s+[A-Za-z][\w-]*", re.IGNORECASE)
_CAPITAL_LETTER = re.compile(r"\b(?:capital|upper ?case|small|lower ?case)\s+([A-Za-z])\b", re.IGNORECASE)
_LETTER_THEN_WORD = re.compile(
    r"\b([A-Z])\s*,\s*(?!(?i:and|any|all|also|are|but|for|then|that|the|this|was|what|when|with|you|"
    r"okay|now|not|yes)\b)(?i:\1)[a-z]{2,}\b"
)
_SINGLE_HYPHENS = re.compile(r"(?<=\b\w)-(?=\w\b)")
# "T, T as in Tom": the letter, then the same letter spelled out to confirm it, is one letter
_CONFIRMED_LETTER = re.compile(r"\b([A-Za-z])\s*,?\s+(?=\1\s*,?\s*(?:as in|like)\s)", re.IGNORECASE)


def _nato_echoes(words: list[str]) -> set[int]:
    """Indexes of NATO words that only confirm the letters just said: "R, Romeo, 55091" and
    "P A, papa alpha, 773" say each letter once."""
    echoes: set[int] = set()
    i = 0
    while i < len(words):
        j = i
        while j < len(words) and len(words[j]) == 1 and words[j].isalpha():
            j += 1
        k = j - i
        said = [w.upper() for w in words[i:j]]
        if k and [_NATO.get(w.lower()) for w in words[j : j + k]] == said:
            echoes.update(range(j, j + k))
            i = j + k
        else:
            i = max(j, i + 1)
    return echoes


# "it starts with a T": the article before a letter read out adds no letter A ("it's a b c 4"
# may well be the letters A B C, so only after "with")
_ARTICLE_BEFORE = frozenset({"with"})
_SHORT_WORDS = frozenset(
    "a i an am as at be by do go he hi if in is it me my no of oh ok on or so to up us we the and "
    "for you are was its but not can yes yep her his him she one two six ten ref num nbr id no "
    "got get had has did see say saw put ran run try".split()
)


# a letter's name as a recogniser writes it ("tea are 6 0 3 3", "why kay 2 1 6 6 0"). The plain
# ones are read as letters in a run that holds at least three digits; those that are also common
# words ("are", "see", "why") only next to another letter as well ("there are 4 4 7 1" is no R).
_LETTER_NAMES = {
    "kay": "K", "tee": "T", "tea": "T", "dee": "D", "bee": "B", "pee": "P", "cue": "Q", "queue": "Q",
    "gee": "G", "jay": "J", "el": "L", "ell": "L", "eff": "F", "ef": "F", "aitch": "H", "vee": "V",
    "zee": "Z", "zed": "Z", "ess": "S", "ex": "X", "cee": "C", "ar": "R",
}  # fmt: skip
_LETTER_NAMES_ALSO_WORDS = {
    "see": "C",
    "sea": "C",
    "are": "R",
    "why": "Y",
    "em": "M",
    "en": "N",
    "eye": "I",
    "pea": "P",
}
_NAMED_LETTER_AS_IN = re.compile(
    r"\b("
    + "|".join(sorted({*_LETTER_NAMES, *_LETTER_NAMES_ALSO_WORDS}, key=len, reverse=True))
    + r")(?=\s*,?\s*(as in|like|for)\s+(\w))",
    re.IGNORECASE,
)


def _named_letter(match: re.Match[str]) -> str:
    """ "kay as in king" → "K as in king"; with "like" or "for" only when the word starts with the
    letter ("kay like king", "see for charlie"; not "see, like, the thing", "see for yourself")."""
    name = match.group(1).lower()
    letter = _LETTER_NAMES.get(name) or _LETTER_NAMES_ALSO_WORDS[name]
    if match.group(2).lower() in ("like", "for") and match.group(3).upper() != letter:
        return match.group(1)
    return letter


_VERBS_BEFORE_THEM = frozenset(("give", "tell", "call", "send", "ask", "let", "show", "get"))  # "give em 5"


def _letter_name(words: list[str], i: int) -> str | None:
    """The letter a letter's name at ``words[i]`` stands for, when it is read among code characters."""
    lower = words[i].lower()
    letter = _LETTER_NAMES.get(lower) or _LETTER_NAMES_ALSO_WORDS.get(lower)
    if letter is None:
        return None

    def code_char(word: str) -> bool:
        low = word.lower()
        return (
            _is_digit_word(word)
            or low in _DIGIT_HOMOPHONES  # "bee are to to for ate nine"
            or low in _NATO
            or low in _LETTER_NAMES
            or low in _LETTER_NAMES_ALSO_WORDS
            or low in ("double", "triple")  # "em double oh four seven five"
            or (len(word) == 1 and word.isalpha())
        )

    lo = i
    while lo > 0 and code_char(words[lo - 1]):
        lo -= 1
    hi = i
    while hi + 1 < len(words) and code_char(words[hi + 1]):
        hi += 1
    digits = sum(
        len(w) if w.isdigit() else 1
        for j, w in enumerate(words[lo : hi + 1], lo)
        if _is_digit_word(w) or (w.lower() in _DIGIT_HOMOPHONES and _among_digits(words, j))
    )
    if digits < 3:
        return None
    if lower in _LETTER_NAMES:
        return letter

    def lettered(j: int) -> bool:
        if not 0 <= j < len(words):
            return False
        low = words[j].lower()
        return (
            low in _LETTER_NAMES
            or low in _LETTER_NAMES_ALSO_WORDS
            or low in _NATO
            or (len(words[j]) == 1 and words[j].isalpha() and low not in ("a", "i"))
        )

    # "em double oh four", "en 7 7 0": these two are seldom words before digits
    before_digits = (
        lower in ("em", "en")
        and i + 1 < len(words)
        and code_char(words[i + 1])
        and (i == 0 or words[i - 1].lower() not in _VERBS_BEFORE_THEM)
    )
    return letter if lettered(i - 1) or lettered(i + 1) or before_digits else None


def spoken_sequence(text: str) -> list[str]:
    """Tokens with digit words, NATO words, letters' names, "D as in David" and "double five"
    turned into characters; a " " marks a word that is none of these (it ends a run)."""
    text = _NAMED_LETTER_AS_IN.sub(_named_letter, text)
    text = _CAPITAL_LETTER.sub(r"\1", text)  # "capital B, capital K, 7701"
    text = _LETTER_THEN_WORD.sub(r"\1", text)  # "T, Thomas, K, king, 3 9 7": each letter once
    text = _CONFIRMED_LETTER.sub("", text)
    text = _SINGLE_HYPHENS.sub(" ", _AS_IN.sub(lambda m: f" {m.group(1).upper()} ", text))
    out: list[str] = []
    words = re.findall(r"[A-Za-z]+(?:['’-][A-Za-z]+)*|\d+", text)
    words = [part for w in words for part in (w.split("-") if _spoken_digits(w) else [w])]
    double = 1
    echoes = _nato_echoes(words)
    for i, word in enumerate(words):
        lower = word.lower()
        if i in echoes:
            continue
        if lower in ("double", "triple"):
            double = 2 if lower == "double" else 3
            continue
        if lower in ("dash", "hyphen"):
            continue  # "PA dash 2026 dash 00418" is one code
        if lower == "then" and out and out[-1] != " ":
            continue  # "R as in Robert, then nine one six" is one code
        prev = words[i - 1].lower() if i > 0 else ""
        if prev in _TENS and lower in _DIGIT_WORDS and lower not in ("zero", "oh"):
            out.append(str(_TENS[prev] + int(_DIGIT_WORDS[lower])) * double)  # "forty four" → 44
            double = 1
            continue
        char = _DIGIT_WORDS.get(lower) or _NATO.get(lower) or ("9" if lower == "niner" else None)
        if char is None and lower in _DIGIT_HOMOPHONES and _among_digits(words, i):
            char = _DIGIT_HOMOPHONES[lower]  # "7 for for 0 9", "won seven seven too oh nine"
        if char is None:
            char = _letter_name(words, i)
        if char is None and (lower in _TENS or (lower in _UNITS and _UNITS[lower] >= 10)):
            value = _UNITS.get(lower, _TENS.get(lower, 0))
            nxt = words[i + 1].lower() if i + 1 < len(words) else ""
            if lower in _TENS and nxt in _DIGIT_WORDS and nxt not in ("zero", "oh"):
                continue  # "forty four": the unit word completes it
            char = str(value)
        if char is None and word.isdigit():
            char = word
        if char is None and lower in ("st", "nd", "rd", "th") and prev.isdigit():
            out.append(" ")  # "15th": an ordinal ends the run, it adds no letters to a code
            continue
        nxt_word = words[i + 1] if i + 1 < len(words) else ""
        if word == "a" and nxt_word.isdigit() and len(nxt_word) >= 2:  # "with a 1982 birth year"
            out.append(" ")
            continue
        if word == "a" and prev in _ARTICLE_BEFORE and i + 1 < len(words) and len(words[i + 1]) == 1:
            out.append(" ")
            continue
        if char is None and len(word) == 1 and word.isalpha() and not _pronoun_i(word, nxt_word):
            char = word.upper()
        if char is None and re.fullmatch(
            r"[A-Z]{1,4}\d[\w]*|\d+[A-Za-z]+\w*|[A-Z]{2,4}|[a-z]{1,4}\d\w*", word
        ):
            char = word.upper()
        if (
            char is None
            and len(word) <= 3
            and lower not in _SHORT_WORDS
            and i + 1 < len(words)
            and (words[i + 1].isdigit() or words[i + 1].lower() in _DIGIT_WORDS)
        ):
            char = word.upper()  # "pa 7734" as a recogniser writes it
        if char is None:
            out.append(" ")
            double = 1
            continue
        out.append(char * double)
        double = 1
    return out


def _spoken_digits(word: str) -> bool:
    """ "forty-seven", "oh-nine", "oh-seventeen": a hyphenated number said as its parts."""
    parts = word.lower().split("-")
    return len(parts) > 1 and (
        parts[0] in _TENS
        or all(p in _DIGIT_WORDS for p in parts)
        or (parts[0] in ("oh", "zero") and all(p in _UNITS or p in _TENS for p in parts[1:]))
    )


def _pronoun_i(word: str, nxt: str) -> bool:
    """ "… 4 1 3 9, I swapped the last two": "I" before a word that is no letter or digit is the speaker."""
    low = nxt.lower()
    spelled = re.fullmatch(r"[a-z][a-z'’-]+", low) is not None
    return word == "I" and spelled and low not in _DIGIT_WORDS and low not in _NATO


# words a recogniser writes for a digit said among others
_DIGIT_HOMOPHONES = {"for": "4", "fore": "4", "won": "1", "to": "2", "too": "2", "ate": "8"}


def _is_digit_word(word: str) -> bool:
    lower = word.lower()
    return word.isdigit() or lower in _DIGIT_WORDS or lower == "niner"


def _among_digits(words: list[str], i: int) -> bool:
    """A homophone read as a digit when a digit is said next to it, or next to the homophone
    run it is part of ("7 for for 0 9")."""
    j = i - 1
    while j >= 0 and words[j].lower() in _DIGIT_HOMOPHONES:
        j -= 1
    k = i + 1
    while k < len(words) and words[k].lower() in _DIGIT_HOMOPHONES:
        k += 1
    return (j >= 0 and _is_digit_word(words[j])) or (k < len(words) and _is_digit_word(words[k]))


_JOINED = re.compile(
    r"\b([A-Za-z0-9]|zero|oh|one|two|three|four|five|six|seven|eight|nine)\s*,?\s*(?:and\s+)?"
    r"(?:after that|followed by|and then)\s*,?\s+"
    r"(?=[A-Za-z0-9]\b|(?:zero|oh|one|two|three|four|five|six|seven|"
    r"eight|nine)\b)",
    re.IGNORECASE,
)
_CODE_CUE = re.compile(
    r"\b(number|reference|ref|id|confirmation|authorization|auth|code|tracking|case|is|it's|its)\b"
)


_DATE_SPAN = re.compile(
    r"\b(?:january|february|march|april|may|june|july|august|september|october|november|december)\b"
    r"(?:[\s,]+(?:the|of|[a-z]+(?:-[a-z]+)?|\d{1,4}(?:st|nd|rd|th)?)){0,4}"
    r"|\b(?:jan|feb|mar|apr|jun|jul|aug|sept?|oct|nov|dec)\.?\s+\d{1,2}(?:st|nd|rd|th)?\b(?!\s*\d)",  # jan 26
    re.IGNORECASE,
)
_CLARIFIED_AT_END = re.compile(
    r"[.,;]\s*([A-Za-z])\s*,?\s*(?:as in|like in|like)\s+[A-Za-z]+\W*$", re.IGNORECASE
)


def extract_code(text: str, slot: Slot | None = None, exclude: frozenset[str] = frozenset()) -> str | None:
    """Reference numbers and IDs: letters and digits, spoken or written, at least 4 characters
    and one digit. The last one said wins (a correction), except values in ``exclude`` (this
    call's other identifiers read back: CPT, NPI, member ID). Without a cue word a sentence that
    holds a date is not read as a code."""
    text = FILLER_WORDS.sub("", text)  # "8 8 3, uh, 0 2 5": no letters U H
    text = re.sub(r",\s*like\s*,", " ", text, flags=re.IGNORECASE)  # "M A, like, 0 0 4": a filler
    text = _JOINED.sub(r"\1 ", text)  # "H Q, and after that six oh three": one code
    text = _DATE_SPAN.sub(" , ", text)  # "October sixteenth, twenty twenty-six" holds no code
    text = _PHONE_OR_DATE_DIGITS.sub(" , ", text)  # "call 1-800-555-0148", "due by 12/10"
    text = _CODE_SYSTEM.sub(" , ", text)  # "the diagnosis code, ICD ten": a code set's name
    text = _MONTH_DAY_NUMBERS.sub(" , ", text)  # "the date's ten twenty two"
    text = _MONTH_DAY_IS_WHEN.sub(" , ", text)
    if _MONTH_DAY_ALONE.match(normalise(text)):
        return None  # "ten twelve", all the turn says: a date, where a code is read digit by digit
    clarified = _CLARIFIED_AT_END.search(text)
    if clarified and re.search(rf"\b{clarified[1]}\b", text[: clarified.start()], re.IGNORECASE):
        text = text[: clarified.start()]  # "… H 7 2 2 0 9. H as in hotel.": the H was said already
    text = _AT_THE_END.sub(" ", _TAKEN_BACK.sub(" ", text))
    text = _NOT_LETTER.sub(" not ", text)
    lowered = text.lower()
    cue = _CODE_CUE.search(lowered) or _SPELLED_OUT.search(lowered)
    # a date in digits may read as a code; one in words ("… approved on the first") is beside it
    if cue is None and extract_date(text) is not None and extract_date(re.sub(r"\d", " ", text)) is None:
        return None
    runs = "".join(spoken_sequence(text)).split(" ")
    negated_codes = _negated_codes(text)
    candidates = [
        r
        for r in runs
        if len(r) >= 4
        and sum(c.isdigit() for c in r) >= 2
        and r not in exclude
        and r not in negated_codes
        and not _YEAR.fullmatch(r)
    ]
    candidates = [
        c for c in candidates if not any(c in e or e in c or _misread(c, e) for e in exclude if len(e) >= 4)
    ]
    # "it's one seven, not seven one. N Q thirty …": the pair ruled out does not start the code said next
    candidates = [
        next((c[len(n) :] for n in negated_codes if c.startswith(n) and len(c) - len(n) >= 4), c)
        for c in candidates
    ]
    if len(candidates) >= 2 and _CORRECTION.search(lowered):
        said, fixed = candidates[-2], candidates[-1]
        tail = said[len(said) - len(fixed) :]
        if len(fixed) < len(said) and sum(a != b for a, b in zip(tail, fixed, strict=True)) <= 2:
            return said[: len(said) - len(fixed)] + fixed  # "N as in nickel 2 2 9 0 5, no, 2 2 9 0 6"
        resaid = _resaid_tail(said, fixed)
        if resaid is not None:
            return resaid  # "C N 8 8 0 6, no, sorry, 8 8 6 0, 2 9": the tail said again, then the rest
    return _said_twice(candidates[-1]) if candidates else None


def _said_twice(code: str) -> str:
    """ "seven three oh oh five two seven three oh oh five two": a code said twice over is one code;
    so is one begun, begun again and said twice ("nine four six, nine four six two two eight, nine
    four six two two eight")."""
    for k in range(len(code) // 2, 3, -1):
        if code[-k:] == code[-2 * k : -k] and code[-k:].startswith(code[: len(code) - 2 * k]):
            return code[-k:]
    return code


# a code said with letters spelled out is a code even in a turn that also holds a date
_SPELLED_OUT = re.compile(r"\b(?:as in|" + "|".join(re.escape(w) for w in _NATO if "-" not in w) + r")\b")
_CORRECTION = re.compile(
    r"\b(?:no|wait|sorry|i mean|actually|correction|scratch that|let me redo|my apologies|apologies|"
    r"should be|i reversed|reversed|transposed|swapped|hold on|misread|misspoke)\b"
)


_PHONE_OR_DATE_DIGITS = re.compile(
    r"(?<![\w-])(?:1[-. ])?\(?\d{3}\)?[-. ]\d{3}[-. ]\d{4}(?![\w-])"  # a phone or fax number
    r"|(?<![\w/])\d{1,2}/\d{1,2}(?:/\d{2,4})?(?![\w/])"  # a date written with slashes
    r"|(?<![\w-])\d{1,2}-\d{1,2}-(?:\d{2}|\d{4})(?![\w-])"  # or dashes
)
_YEAR = re.compile(r"(?:19|20)\d\d")  # "active since 2019": a year alone is no code
_CODE_SYSTEM = re.compile(
    r"\b(?:icd|i\.? ?c\.? ?d\.?)[- ]?(?:9|10|11|nine|ten|eleven)(?:[- ]?(?:cm|pcs))?\b", re.IGNORECASE
)
_NOT_CODE = re.compile(
    r"\b(?:not|isn't|wasn't|instead of|you (?:said|read|wrote|put|have|had|got|told|mentioned)"
    r"(?:\s+(?:it|that|this))?"
    r"(?:\s+(?:back|down))?(?:\s+as)?)\s+(?:the\s+)?([^,.;!?]+)",
    re.IGNORECASE,
)
# "it starts with an M, not an N", "last digit's a 6, not an 8.": the character ruled out is no part
# of the code said around it
_NOT_LETTER = re.compile(
    r"\bnot\s+(?:an?\s+)?(?:[A-Za-z0-9]|zero|oh|one|two|three|four|five|six|seven|eight|nine)\b"
    r"(?:\s*,?\s*(?:as in|like)\s+[A-Za-z]+)?(?=\s*[,.;]|$)",
    re.IGNORECASE,
)
# "four bee, sorry, not bee, dee as in delta": the character said and taken back at once
_TAKEN_BACK = re.compile(
    r"\b([\w']+)\W+(?:(?:sorry|no|oops|wait)\W+)+not\W+(?:an?\W+)?\1\b\W*", re.IGNORECASE
)
# "…, nine at the end": the last character named again, as a check
_AT_THE_END = re.compile(r"[,;]\s*(?:so\s+|with\s+)?(?:an?\s+)?[\w']+\s+(?:at|on) the end\W*$", re.IGNORECASE)


def _resaid_tail(said: str, fixed: str) -> str | None:
    """``said`` with its last characters (3 or more, a slip or two among them) said again as the
    start of ``fixed``, which then goes on: "CN8806" then "886029" is "CN886029". The slip is one
    character or two neighbours swapped; anything else is a new code ("44712, no wait, 551239")."""
    if not fixed[0].isdigit():
        return None  # "PA 4 4, no sorry, PA 4 7 4 1": said whole again, prefix and all
    for k in range(min(len(said) - 1, len(fixed) - 1), 2, -1):
        old, new = said[-k:], fixed[:k]
        slips = [i for i, (a, b) in enumerate(zip(old, new, strict=True)) if a != b]
        swapped = len(slips) == 2 and slips[1] == slips[0] + 1 and old[slips[0]] == new[slips[1]]
        if len(slips) == 1 or (swapped and old[slips[1]] == new[slips[0]]):
            return said[:-k] + fixed
    return None


def _misread(code: str, identifier: str) -> bool:
    """One character off one of the call's own long identifiers, or two neighbours swapped: that
    identifier read back wrong ("X K M 4 4 9 8 1 3?", "…8 2 1"), not a new code."""
    if len(code) != len(identifier) or len(code) < 6:
        return False
    off = [i for i, (a, b) in enumerate(zip(code, identifier, strict=True)) if a != b]
    swapped = len(off) == 2 and off[1] == off[0] + 1 and code[off[0]] == identifier[off[1]]
    return len(off) == 1 or (swapped and code[off[1]] == identifier[off[0]])


def _negated_codes(text: str) -> set[str]:
    """Codes said right after "not" ("it's ST22908, not ST22905") or "you said" ("… you read it
    back as 47109"): a correction's rejected value."""
    out: set[str] = set()
    for match in _NOT_CODE.finditer(text):
        said = spoken_sequence(match[1])
        if said and said[0] != " ":  # the code itself follows "not", not "not sure if it's …"
            out.add("".join(said).split(" ")[0])
    return out


def extract_phone(text: str, slot: Slot | None = None) -> str | None:
    digits = "".join(c for c in "".join(spoken_sequence(text)) if c.isdigit())
    if len(digits) == 11 and digits.startswith("1"):
        digits = digits[1:]
    return "+1" + digits if len(digits) == 10 else None


_FILLERS = re.compile(r"\b(?:um+|uh+|er+m?|uhm|hmm+|ah+)\b[,]?\s*", re.IGNORECASE)
_NAME_CUES = re.compile(
    r"\b(?:my name is|my name's|name's|name is|this is|i'm|i am|it's|its|you're speaking with|"
    r"you're talking to|speaking with|talking to|you've got|you got|y'all got|you all got|you've reached|"
    r"you reached|you are (?:speaking|talking) (?:with|to)|speaking to|you're through to|you are through to|"
    r"(?<![a-z]\s)myself)"  # "sir, myself Rajeshwari" (Indian English), not "I'll do it myself Monday"
    # a lookahead: "this is, this is Dmitri" finds the second cue; "this is June, may I …" ends the name
    r"\s+(?=([\w'-]+)(?:\s+(?!(?:may|can|could|might|shall|will|would)\s+i\b)([\w'-]+))?)",
    re.IGNORECASE,
)
_NAME_BEFORE = re.compile(
    r"(?:^|[,.]\s*|\b(?:yeah|yes|ya|hi|hello|hey|ok|okay|morning|afternoon)\s+)([\w'-]+)(?:\s+([\w'-]+))?"
    r"\s+(?:speaking|here|this side)\b",  # "Venkatesh this side", as Indian English says it
    re.IGNORECASE,
)
# a word, then (at most two words on) its letters spelled out
_SPELLED_AFTER = re.compile(r"\b([A-Za-z]{3,})\b(?:\W+\w+){0,2}?\W+((?:[A-Za-z][\s,.-]+){2,}[A-Za-z])\b")
# a turn that is a capitalised name and nothing else ("Marisol.", "Bobbie Jo.")
_NAME_ALONE = re.compile(r"^\s*([A-Z][a-z]+(?:['-][A-Za-z]+)?)(?:\s+([A-Z][a-z]+))?\s*[.!]?\s*$")
# "Priya. Go.", "Marco, shoot": a name, then a word or two that hands over the call
_NAME_THEN_REPLY = re.compile(
    r"^\s*([A-Z][a-z]+(?:['-][A-Za-z]+)?)\s*[.,!]\s*([A-Za-z' ]{1,20}?)\s*[.!]?\s*$"
)


def _name_then_go_ahead(text: str) -> re.Match[str] | None:
    match = _NAME_THEN_REPLY.match(text)
    if match is None or not all(w in _ONE_WORD_REPLIES for w in match[2].lower().split()):
        return None
    return _NAME_ALONE.match(match[1])


_ONE_WORD_REPLIES = frozenset(
    """speaking morning afternoon evening go shoot ready correct absolutely right pardon huh hmm bye
    goodbye nope fine great perfect excellent understood certainly proceed continue repeat again cool
    gotcha indeed definitely exactly agreed noted done yes no sir ma'am madam hiya howdy greetings
    welcome go ahead hold on next nothing nobody someone everyone anyone whatever same sorry what
    tomorrow yesterday tonight active inactive eligible covered found""".split()
    + _WEEKDAYS
)
# "… is an Tony speaking" (a recogniser's garble before it): a capitalised word right before
# "speaking", anywhere in a cased turn
_NAME_SPEAKING = re.compile(r"\b([A-Za-z][a-z]+(?:['-][A-Za-z]+)?)\s+speakin(?:g|')?(?!\w)")
# "Ray, provider services." / "Dana with claims": a name first, then where they sit
_NAME_FIRST = re.compile(
    r"^\s*(?:(?:hi|hello|hey|yeah|yes|yep|yup|sure|okay|ok|good morning|good afternoon|morning|afternoon)"
    r"[,.!]?\s+)?"
    r"([\w'-]+)(?:\s+([\w'-]+))?\s*(?:,|\s+(?:from|with|at|in|over at|on)\s)\s*(?:the\s+)?"
    r"(?:[\w'-]+\s+){0,2}(?:services|department|dept|line|desk|team|office|speaking|here|claims|"
    r"eligibility|utilization|authorizations?|auth|benefits|support|review|precert|pre-cert|precertification|"
    r"intake|appeals|"
    r"clinical|pharmacy|provider relations)\b",
    re.IGNORECASE,
)
_NOT_NAMES = frozenset(
    """a an the and or but so yes yeah ya yep yup no nope not okay ok hello hi hey thanks thank you just
    calling call sorry here speaking with from at on for in of to is are was be been i i'm me my we our
    us it it's this that there they he she him her his your you're you all about regarding gonna going
    going to provider provider's services service member members claims claim department team line
    office insurance plan customer support billing utilization management prior authorization auth
    desk unit center centre care health benefits eligibility pharmacy medical dental right now still
    who what where when how why can could would will do does did have has had get got need needs
    one sec second moment minute hold please sure great good fine well actually really also again
    hang wait bear give let say tell listen look see okay alright
    today calling the back pending approved denied busy correct wrong done open closed ready its
    free available interested mm hm mhm uh-huh mm-hmm live down up over gone late early true off out
    nobody somebody anybody everybody someone anyone everyone none nothing everything something
    mr mrs ms miss dr doctor sir madam ma'am mister helpdesk helpline hotline reception frontdesk
    intake queue portal quick""".split()
)
_NOT_NAME_ENDINGS = ("ed", "ing", "ly", "tion", "ment")
# words said as a clause of their own that are no names ("Right. Anyway, …", "Oh, wow, …")
_INTERJECTIONS = frozenset(
    """anyway anyways apologies ah oh wow jeez gosh nah awesome brilliant cheers yo man dude mate pal
    buddy honey darling folks guys well yeah hmm um uh er so then now first also plus besides otherwise
    sadly luckily frankly seriously basically literally obviously fortunately unfortunately eastern
    pacific central mountain""".split()
)


_NAME_TAKEN_BACK = re.compile(r"\b(?:no|sorry|actually|i mean|wait|correction)\b", re.IGNORECASE)


def _name_word(word: str, cased: bool) -> bool:
    if word.lower() in _NOT_NAMES or word.lower() in _INTERJECTIONS or word.lower() in _NUMBER_WORDS:
        return False
    if not re.fullmatch(r"[A-Za-z]+(?:['-][A-Za-z]+)?", word):
        return False
    if word[0].isupper():
        return True
    return not cased and (len(word) <= 4 or not word.lower().endswith(_NOT_NAME_ENDINGS))


def extract_name(text: str, slot: Slot | None = None) -> str | None:
    """A person's name after "this is", "my name's", … or before "here"/"speaking". Speech
    recognition capitalises names; a turn written all in lower case is read without case."""
    clean = _FILLERS.sub("", text)
    cased = any(c.isupper() for c in clean)
    cued: list[tuple[int, str]] = []
    for match in _NAME_CUES.finditer(clean):
        first, second = match.group(1), match.group(2)
        if not _name_word(first, cased):
            continue
        if second and _name_word(second, cased) and (cased or len(second) > 2):
            cued.append((match.start(), f"{first[0].upper()}{first[1:]} {second[0].upper()}{second[1:]}"))
        else:
            cued.append((match.start(), f"{first[0].upper()}{first[1:]}"))
    if cued:
        # "this is Bernard, no, sorry, I'm on Bernard's phone, I'm Lucinda": the name taken back
        later = [c for c in cued[1:] if _NAME_TAKEN_BACK.search(clean, cued[0][0], c[0])]
        return (later or cued)[-1 if later else 0][1]
    for match in _NAME_BEFORE.finditer(clean):
        words = [w for w in match.groups() if w]
        if not (all(_name_word(w, cased) for w in words) and (cased or len(words) == 1)):
            words = words[-1:]  # "yeah dana here": the word before "here" alone
        if words and _name_word(words[0], cased):
            return " ".join(f"{w[0].upper()}{w[1:]}" for w in words)
    for match in _SPELLED_AFTER.finditer(clean):  # "marjorie here m a r j o r i e": a name, spelled
        letters = re.sub(r"[^a-z]", "", match.group(2).lower())
        if match.group(1).lower() == letters and _name_word(match.group(1), False):
            return match.group(1)[0].upper() + match.group(1)[1:].lower()
    for match in _NAME_SPEAKING.finditer(clean):
        if _name_word(match.group(1), cased):
            return match.group(1)[0].upper() + match.group(1)[1:]
    alone = _NAME_ALONE.match(clean) or _name_then_go_ahead(clean)
    if alone and all(_name_word(w, True) and w.lower() not in _ONE_WORD_REPLIES for w in alone.groups() if w):
        return " ".join(w for w in alone.groups() if w)
    if cased:  # "Provider line, Roxanne, and I'm …", "Yeah. Desmond. Go.": a name as its own clause
        parts = [p.strip() for p in re.split(r"[.,!?;:]", clean)]
        for at, part in enumerate(parts[1:3], start=1):
            if (
                all(len(p.split()) <= 4 for p in parts[:at])  # after a short label or greeting
                and re.fullmatch(r"[A-Z][a-z]+", part)
                and _name_word(part, True)
                and part.lower() not in _ONE_WORD_REPLIES
                and part.lower() not in _INTERJECTIONS
                and part.lower() not in _MONTHS
            ):
                return part
    first = _NAME_FIRST.match(clean)
    if first and _name_word(first.group(1), cased):
        second = first.group(2)
        words = [first.group(1), *([second] if second and _name_word(second, cased) and cased else [])]
        return " ".join(f"{w[0].upper()}{w[1:]}" for w in words)
    return None


_PAST_CUES = re.compile(
    r"\b(was|were|got|had|decided|made|came|went|approved|denied|issued|finalized|back on|last|ago|"
    r"already|yesterday|earlier|previous|this past|"
    # a verb in the past with its object: "the nurse okayed it on the third", "signed it the 1st"
    r"(?!(?:expected|scheduled|planned|slated|projected|estimated|supposed|needed)\b)[a-z]{3,}ed"
    r"(?= (?:it|that|this|them|her|him|off|on|out|through|back)\b))\b"
)
_FUTURE_CUES = re.compile(
    # "signed off by doctor Ali", "reviewed by our nurse": who did it, not a deadline
    r"\b(will|at the latest|latest|"
    r"by(?! (?:doctor|dr|the (?:doctor|medical director|reviewer|nurse|physician|md)|our|a (?:nurse|doctor|"
    r"reviewer|physician))\b)|"
    r"expect|expected|due(?! to\b)|deadline|going to|gonna|within|next|"
    r"should be|ought to|supposed to|"
    r"coming|upcoming|(?:you're|youre|you are|we're|we are) looking at|"
    r"in about|in|until|before|tomorrow|later|no later than)\b"
)
_PAST_ADVERBS = frozenset(
    {"last", "ago", "already", "yesterday", "earlier", "previous", "this past", "back on"}
)
_TO_BE = re.compile(r"\b(?:be|to)\s+$")  # "should be decided", "going to be made": no past
_WEAK_CUES = frozenset(
    {"in", "within", "next", "coming", "upcoming", "before", "until", "later", "in about", "last", "earlier"}
    | {
        "previous",
        "back on",
        "should be",
        "ought to",
        "supposed to",
    }  # "it should be last Friday": a correction
)
# "seventy-two", "seventy two": one number
_TENS_UNIT = r"(?:" + "|".join(_TENS) + r")[- ](?:one|two|three|four|five|six|seven|eight|nine)\b"
_DURATION = re.compile(
    r"(?:\b(?:in|within|about|around|takes?|another|up to|give it|give them|give us|allow|allow for|"
    r"they have|you have|"
    r"we have|looking at|usually|typically|roughly|approximately|figure)\s+"
    # or none before "N days from today", "N days out"
    r"|\b(?=\w+\s+(?:business |working |calendar )?(?:days?|weeks?) (?:(?:counting )?(?:from|of) "
    r"(?:today|now)|out)\b)"
    r"|\b(?=(?:" + _TENS_UNIT + r"|\w+)\s+hours\b))"  # "so seventy-two hours"
    r"(?:(?!" + _TENS_UNIT + r")(\w+)(?:\s*(?:to|or|-|maybe|possibly)\s*))?"
    r"(" + _TENS_UNIT + r"|\w+)\s+(business |working |calendar )?(day|days|week|weeks|hours)\b"
    r"(?!\s+of\b(?!\s+(?:today|now)\b))"
)


def says_due(text: str) -> bool:
    """A deadline said: "the due date's the 22nd", "it's due Friday"; not "denied due to …"."""
    return re.search(r"\bdue\b(?! to\b)", normalise(text)) is not None


def says_a_turnaround(text: str) -> bool:
    """ "within seventy-two hours", "in three to five business days": how long until something."""
    return bool(_duration_dates(normalise(text), dt.date.today()))


def _tense_of(text: str, tense: str) -> str:
    if tense != "any":
        return tense
    # a verb's tense ("was decided", "will decide") outweighs a preposition ("the week before")
    for strong in (True, False):
        past = [
            m
            for m in _PAST_CUES.finditer(text)
            if (not strong or m[1] not in _WEAK_CUES)
            and (m[1] in _PAST_ADVERBS or not _TO_BE.search(text, 0, m.start()))
        ]
        future = [m for m in _FUTURE_CUES.finditer(text) if not strong or m[1] not in _WEAK_CUES]
        if past or future:  # the last cue wins: "was reviewed by the director and approved on the 5th"
            if past and (not future or past[-1].start() > future[-1].start()):
                return "past"
            return "future"
    return "any"


def _add_business_days(day: dt.date, n: int) -> dt.date:
    """``n`` weekdays on from ``day`` (back from it when ``n`` is negative)."""
    step = dt.timedelta(days=1 if n > 0 else -1)
    n = abs(n)
    while n > 0:
        day += step
        if day.weekday() < 5:
            n -= 1
    return day


def _small_number(word: str) -> int | None:
    if word.isdigit():
        return int(word)
    if word in ("a", "an", "one"):
        return 1
    if word == "couple":
        return 2
    if word == "few":
        return 3
    return _UNITS.get(word) or _TENS.get(word) or words_to_number(word.replace("-", " ").split())


def extract_date(
    text: str,
    slot: Slot | None = None,
    today: dt.date | None = None,
    relative: bool = True,
    tense: str | None = None,
    lean: str = "any",
    held: dt.date | None = None,
) -> str | None:
    """An ISO date: the last one the turn settles on, negated mentions skipped ("not Tuesday,
    Wednesday"). Explicit forms ("March 3rd, 2025", "3/3/2025", "the 9th") and durations ("in
    three to five business days": the later bound) always; with ``relative`` also "today",
    "tomorrow", "yesterday" and weekdays ("last Tuesday", "Thursday next week"). ``tense`` (a
    slot's, else read from the turn: "was decided on the 3rd" is past, "by the 9th" is future)
    decides whether a bare weekday, day of month or month-day without a year lies ahead or behind;
    ``lean`` when neither says. A bare day of the month said while the slot holds ``held`` is the
    one nearest it: "it was the 22nd, not the 26th" corrects a due date of the 26th to the 22nd."""
    today = today or dt.date.today()
    said_by = re.sub(r"\b(?:no later than|not later than)\b", "by", normalise(text))  # a deadline, no "no"
    said_by = re.sub(r"\b(?:rather than|instead of)\b", "and not", said_by)  # "the 22nd rather than the 23rd"
    said_by = _TEEN_AS_TENS.sub(lambda m: f"{m[1]} {_TEENS[m[2]]}", said_by)  # "friday the fifty"
    said_by = _SHORT_WEEKDAY.sub(lambda m: _SHORT_WEEKDAYS[m[1]], said_by)  # "tues at 2", "thurs arvo"
    said_by = _STUTTER.sub(r"\1", said_by)  # "decided on the the fourteenth"
    said_by = re.sub(r"\b(twenty|thirty) ate\b", r"\1 eight", said_by)  # "ten twenty ate"
    # "wednesday the twenty seven": a recogniser's cardinal for the day of the month
    said_by = _CARDINAL_DAY.sub(lambda m: f"{m[1]} {_TENS[m[2]] + _UNITS[m[3]]}", said_by)
    with_commas = re.sub(r"(\d)(st|nd|rd|th)\b", r"\1", said_by)
    lowered = with_commas.replace(",", " ")  # same offsets; commas still bound negation below
    fixed = tense or (slot.tense if slot is not None else "any")
    when = _tense_of(lowered, fixed)
    if when == "any":
        when = lean  # no cue in the turn: what the call so far says (``Slot.tense_when``)
    bare = fixed != "future"  # a meeting's "ten fifteen" is a time; a decision's "ten twelve" a date
    found = _dates_said(lowered, today, when, relative, bare, held)
    said_at = [at for at, value in found if value is not None]
    if fixed == "any" and said_at:
        # the tense of the clause that says the date: "denied the 8th, we're not gonna change it"
        end = _CLAUSE_END.search(lowered, max(said_at))
        begin = max((m.end() for m in _SENTENCE_END.finditer(lowered, 0, max(said_at))), default=0)
        near = _tense_of(lowered[begin : end.start() if end else len(lowered)], "any")
        if near not in ("any", when):
            when = near
            found = _dates_said(lowered, today, when, relative, bare, held)
    if len(_HEDGE.findall(lowered)) >= 2:
        return None  # "could be tomorrow, could be three weeks": no date given
    said = [
        (at, value)
        for at, value in found
        if value is not None
        and (not negated(with_commas, at) or _ANSWER_NO.search(with_commas, 0, at))
        and not _VALID_UNTIL.search(lowered, 0, at)
        and not _YOU_SAID.search(lowered, 0, at)
        and not _AWAY.search(lowered, 0, at)
        and not _EXCEPT.search(lowered, 0, at)
        and not _RULED_OUT_AFTER.match(lowered, at)
        and not _ENTERED_ON_AFTER.match(lowered, at)
    ]
    said = _weekdays_of_dates_said(said, found, lowered)
    cues = slot.cues if slot is not None else ()
    if cues:
        # "the earlier request dated 10/14 got denied, and this one's pending": another record's date
        others = _another_records_clauses(re.sub(r"[.;!?](?!\d)", ",", with_commas))
        said = [(at, value) for at, value in said if not any(a <= at < b for a, b in others)]
        starts = sorted(at for at, _ in found)
        said = [
            (at, value)
            for at, value in said
            if not _date_of_another_event(
                with_commas, max([-1] + [a for a in starts if a < at]), at, cues, len(said) == 1
            )
        ]
    said = _led_by_a_cue(said, with_commas, cues)
    if not said:
        return None
    said.sort()
    after = next((m for m in _WEEKDAY_AFTER.finditer(lowered) if m.start() <= said[-1][0] < m.end()), None)
    start = after.start() if after is not None else -1
    before = [value for at, value in sorted(found) if value is not None and at < start]
    if after is not None and before:
        # "the 29th is out, the following Monday": the first Monday after the day said before it
        base = dt.date.fromisoformat(before[-1])
        weekday = _WEEKDAYS.index(after[1] or after[2])
        return (base + dt.timedelta(days=(weekday - base.weekday() - 1) % 7 + 1)).isoformat()
    # "Tuesday the 15th": the day of month is what was meant
    return said[-1][1]


_STUTTER = re.compile(r"\b(the|on|by|a|in|at|it's|it is|its)(?:\s+\1)+\b")
_SHORT_WEEKDAYS = {
    "mon": "monday",
    "tue": "tuesday",
    "tues": "tuesday",
    "wed": "wednesday",
    "weds": "wednesday",
    "thu": "thursday",
    "thur": "thursday",
    "thurs": "thursday",
    "fri": "friday",
}
_SHORT_WEEKDAY = re.compile(r"(?<!')\b(" + "|".join(_SHORT_WEEKDAYS) + r")\b\.?")
_WEEKDAY_AFTER = re.compile(
    r"\bthe following (" + "|".join(_WEEKDAYS) + r")\b|\b(" + "|".join(_WEEKDAYS) + r") after (?:that|it)\b"
)
_SENTENCE_END = re.compile(r"[.;!?]")
_CLAUSE_END = re.compile(r"[.;!?]|\b(?:and|but|so)\b")  # searched from the last date said


def _dates_said(
    lowered: str, today: dt.date, when: str, relative: bool, bare: bool = False, held: dt.date | None = None
) -> Found:
    found = _explicit_dates(lowered, today, when) + _day_of_month_dates(lowered, today, when, held)
    found += _month_day_numbers(lowered, today, when, bare)
    counted = _duration_dates(lowered, today) + (_relative_dates(lowered, today, when) if relative else [])
    if any(value for _, value in found):  # "the 3rd, so roughly two weeks from now": the 3rd
        counted = [
            (at, value) for at, value in counted if not _HEDGE_BEFORE.search(lowered, max(0, at - 16), at)
        ]
    found += counted
    if not any(value for _, value in found):  # "Tuesday the 7th, after Labor Day": the 7th
        found += _holiday_dates(lowered, today, when)
    return found + _days_next_to(lowered, found, held)


# "the day after" alone, not "any other day after lunch"
_DAY_NEXT_TO = re.compile(
    r"\b(?:the )?day (after|before)\b(?=\s*(?:$|[.,;!?]|(?:then|instead|works|would|is|could|maybe|perhaps|"
    r"same|at|in the|around|please|if|or)\b))"
)


def _days_next_to(lowered: str, found: Found, held: dt.date | None) -> Found:
    """ "Tuesday's no good, the day after": the day after the date said before it, or after the
    date held (a meeting read back) when none was."""
    out: Found = []
    for match in _DAY_NEXT_TO.finditer(lowered):
        before = [value for at, value in sorted(found) if value is not None and at < match.start()]
        base = dt.date.fromisoformat(before[-1]) if before else held
        if base is not None:
            step = dt.timedelta(days=1 if match[1] == "after" else -1)
            out.append((match.start(), (base + step).isoformat()))
    return out


# the end of a period of validity, not a day something happens: "good through March 31st"
_BARE_WEEKDAY = re.compile(r"(?<!next )(?<!following )(?<!from )(?<!last )(" + "|".join(_WEEKDAYS) + r")\b")


def _led_by_a_cue(said: list[tuple[int, str]], text: str, cues: Sequence[str]) -> list[tuple[int, str]]:
    """Of several dates, those a cue of the slot leads in their own clause: "denied on the 12th,
    letter mailed the 14th" and "approved the 8th, good from the 10th" give the decision's day.
    All of them when no cue leads one."""
    if len(said) < 2 or not cues:
        return said
    starts = [m.end() for cue in cues for m in phrase_pattern(normalise(cue)).finditer(text)]
    led: list[tuple[int, str]] = []
    previous = -1
    for at, value in sorted(said):
        if (
            led
            and led[-1][0] == previous
            and (_CORRECTING.search(text, previous, at) or _SAME_MENTION.fullmatch(text, previous, at))
        ):
            # "decided the 12th, wait, the 13th": the correction takes its place; "the eighth of
            # January" is one date found twice, the second time whole
            led[-1] = (at, value)
        elif any(previous < end <= at and not _CUE_CLAUSE_END.search(text, end, at) for end in starts):
            led.append((at, value))
        previous = at
    return led or said


# what happens to the paper, not the decision: "the letter went out the 14th", "received the 7th"
_PAPER_EVENT = re.compile(
    r"\b(?:mail(?:ed)?|(?:sent|went|go(?:es)?|gone|going) out|postmarked|received|receipt|arrived|"
    r"came in|got in|logged|submitted|faxed|filed|opened|sent|asked|called|rang|phoned|"
    r"(?P<dated>(?:letter|notice|notification|paperwork|fax)(?:'s| is| was)? dated))\b"
    r"(?=(?:\W+[\w']+){0,5}?\W*$)"
)
_PAPER = re.compile(r"\s+(?:letter|notice|notification|paperwork|fax)\b")
_DATE_IS_WHEN = re.compile(r"\W*(?:[\w']+\W+){0,3}?(?:is|was) when\b")  # "the 8th is when we mailed it"


def _date_of_another_event(text: str, previous: int, at: int, cues: Sequence[str], alone: bool) -> bool:
    """A date a paper event leads (within a few words), with none of the slot's cues since the
    sentence began or the ``previous`` date: "decided the 12th, mailed the 14th" gives the 14th to
    the mail; "the denial went out on the 2nd" is the decision's day. The date a letter bears is
    the decision's when it is the only date said ("the letter's dated July 14th")."""
    begin = max([m.end() for m in _SENTENCE_END.finditer(text, 0, at)] + [at - 50, previous + 1, 0])
    window = text[begin:at]
    event = _PAPER_EVENT.search(window)
    if event is None or (previous >= 0 and _DATE_IS_WHEN.match(window)) or (alone and event["dated"]):
        return False
    # a cue counts in the event's own clause: "got denied, and the new one was sent on Friday"
    window = window[max([m.end() for m in _CUE_CLAUSE_END.finditer(window, 0, event.start())] + [0]) :]
    return not any(
        not _PAPER.match(window, m.end())
        for cue in cues
        for m in phrase_pattern(normalise(cue)).finditer(window)
    )


_CUE_CLAUSE_END = re.compile(r"[,.;!?]|\b(?:and|but)\b")
_SAME_MENTION = re.compile(r"\w+(?:\s+of)?\s+(?:the\s+)?")
_CORRECTING = re.compile(r"\b(?:no|sorry|wait|actually|i mean|rather|scratch that|correction|my bad|oops)\b")


def _weekdays_of_dates_said(said: list[tuple[int, str]], found: Found, lowered: str) -> list[tuple[int, str]]:
    """ "the 29th, that Friday", "November second, that's a Tuesday?", "not the 28th, on Thursday
    I'm away": a bare weekday that is the weekday of a date said in the turn names that date (or
    the reason for it), not this week's."""
    weekdays = {at: _WEEKDAYS.index(m[1]) for at, _ in found if (m := _BARE_WEEKDAY.match(lowered, at))}
    days = {dt.date.fromisoformat(v).weekday() for at, v in found if v and at not in weekdays}
    return [(at, v) for at, v in said if weekdays.get(at) not in days]


# "oh nine", "zero eight": a month or day read off a form, zero first
_MONTH_NUMBER = r"(?:(?:oh|zero)[- ])?(one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve)"
_DAY_NUMBER = (
    r"(?:(?:oh|zero)[- ])?"
    r"((?:twenty|thirty)(?:[- ](?:one|two|three|four|five|six|seven|eight|nine))?|one|two|three|four|five|"
    r"six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|fifteen|sixteen|seventeen|eighteen|nineteen)"
)
_MONTH_DAY_GAP = r"(?:[ -]|\s+slash\s+)"  # "ten twenty", "oh-nine-thirty", "ten slash fourteen"


def _month_day_led_by(leads: str) -> re.Pattern[str]:
    """Month and day said as two numbers after one of ``leads`` (one space between them: "one,
    three", with a comma, reads out digits)."""
    return re.compile(
        # (two spaces: a comma taken out, offsets kept)
        rf"\b(?:{leads})\s+{_MONTH_NUMBER}{_MONTH_DAY_GAP}{_DAY_NUMBER}"
        r"(?=\s*(?:$|[.,;!?]|not\b|and\b|but\b|so\b|by\b|though\b|i think\b|i believe\b)|\s\s)",
        re.IGNORECASE,
    )


# a date as forms write it, month and day numbers: "the date's ten twenty two", "decided ten twelve"
_MONTH_DAY_NUMBERS = _month_day_led_by(
    r"date(?:'s| is| was)?|dated|decided|due(?: on)?|approved|denied|posted|determined|issued|received|"
    r"came in|reads|(?:decision|determination)(?: itself)?(?: is| was|'s)?|signed off(?: on)?|signed|"
    r"went out|sent out|mailed|faxed"
)
# "ten twelve is when it posted"
_MONTH_DAY_IS_WHEN = re.compile(
    rf"\b{_MONTH_NUMBER}{_MONTH_DAY_GAP}{_DAY_NUMBER}(?= (?:is|was) when\b)", re.IGNORECASE
)
_MONTH_DAY_ALONE = re.compile(
    r"^\s*(?:(?:uh|um|er|so|okay|ok|it's|its|that's|thats)[,.]?\s+)*"
    + _MONTH_NUMBER
    + _MONTH_DAY_GAP
    + _DAY_NUMBER
    + r"\s*[.!?]?\s*$"
)
# "decision expected by ten twenty five": where no meeting's clock time can be meant
_MONTH_DAY_AFTER_BY = _month_day_led_by(r"expected|expected by|expect it|by|on|looking at")


def _month_day_numbers(lowered: str, today: dt.date, when: str, bare: bool) -> Found:
    """Month and day said as two numbers after a date word, or as the whole turn where the slot
    is no meeting (whose "ten fifteen" is a time)."""
    matches = list(_MONTH_DAY_NUMBERS.finditer(lowered)) + list(_MONTH_DAY_IS_WHEN.finditer(lowered))
    if bare:
        matches += list(_MONTH_DAY_ALONE.finditer(lowered)) + list(_MONTH_DAY_AFTER_BY.finditer(lowered))
    out: Found = []
    for match in matches:
        day = words_to_number(match[2].replace("-", " ").split())
        if day is not None and 1 <= day <= 31:
            out.append((match.start(1), _month_day(today, _UNITS[match[1]], day, when)))
    return out


_VALID_UNTIL = re.compile(
    r"\b(?:(?<!went )(?<!gone )(?<!goes )(?<!came )(?:through|thru)|expires?|expiring|"  # not "went through"
    r"expiration(?: date)?(?: is| of)?|valid until|good until|good till|"
    # the start of a period of validity: "effective from the first through the end of next month"
    r"effective (?:from|as of)|valid from|good from)\s+(?:on\s+)?(?:the\s+)?$"
)
# the agent's wrong value, quoted in a correction: "it went out on the 11th, you said the 12th"
_YOU_SAID = re.compile(
    r"\byou(?:'ve| have)? (?:said|read|wrote|put|have|had|got|gotten|told|mentioned|written)"
    r"(?:\s+(?:it|that|this))?"
    r"(?:\s+(?:back|down))?(?:\s+as)?"
    r"\s+(?:on\s+)?(?:the\s+)?$"
)
# a day the speaker is not there: "I'm off-site on the twelfth", "we're closed Friday"
_AWAY = re.compile(
    r"\b(?:i'm|i am|we're|we are|i'll be|we'll be)\s+(?:\w+\s+)?(?:off-site|offsite|out|away|off|closed|"
    r"travelling|traveling|booked|slammed|out of (?:the )?office)\s+(?:on\s+)?(?:the\s+)?$"
)
# a day ruled out: "any day but Monday", "except the 3rd", "other than Friday"
_EXCEPT = re.compile(
    r"(?:\b(?:any (?:day|time|morning|afternoon|evening|weekday)|anytime|anything|whenever)\s+but|"
    r"\b(?:except|other than|apart from|besides|"
    r"scratch|forget|skip|ditch))"
    r"\s+(?:on\s+)?(?:the\s+)?(?:next\s+)?$"
)
# "today's date on there is only when it posted": the day a system took the record in (but "ten
# twelve is when it posted" gives the decision's date)
_ENTERED_ON_AFTER = re.compile(
    r"(?:(?!\b(?:and|but)\b)[^.!?,;]){0,40}\b(?:is|was|'s) (?:only|just|simply|merely) "
    r"(?:when|the day|the date) "
    r"(?:it|that|this|the \w+) (?:(?:got |was )?(?:posted|entered|keyed|logged|loaded|uploaded|received)|"
    r"hit the system|came in)\b"
)
# a day ruled out after it is said: "tomorrow not possible", "Monday is no good for me"
_RULED_OUT_AFTER = re.compile(
    r"[\w'-]+(?:\s+(?:the\s+)?[\w'-]+)?\s*,?\s*(?:is\s+|'s\s+)?(?:not possible|no good|doesn't work|"
    r"does not work|won't work|not good|impossible|out of the question|is out|"
    # "the second is our board meeting": the day of something else
    r"(?:is|'s) (?:our|my) (?:[\w-]+ )?(?:meeting|standup|stand-up|offsite|off-site|holiday|day off|"
    r"conference|audit|launch))\b"
)
_HEDGE = re.compile(r"\b(?:could be|might be|may be)\b")
# "no no, Thursday": "no" answering the read-back at the start of a clause, not negating the day
# (or a day taken back by the one said after it: "friday no thursday the fourteenth")
_ANSWER_NO = re.compile(
    r"(?:^|[,.;!?]|\b(?:" + "|".join(_WEEKDAYS) + r"))\s*(?:(?:no|nope|nah)[\s,]+)+"
    r"(?:(?:" + "|".join(_WEEKDAYS) + r")\s+(?:the\s+)?)?$"
)
Found = list[tuple[int, str | None]]  # (where in the turn, ISO date or None when impossible)


def _explicit_dates(lowered: str, today: dt.date, when: str) -> Found:
    out: Found = []
    for match in re.finditer(r"\b(\d{4})-(\d{2})-(\d{2})\b", lowered):
        out.append((match.start(), _safe_date(int(match[1]), int(match[2]), int(match[3]))))
    for match in re.finditer(r"\b(\d{1,2})-(\d{1,2})-(\d{2}|\d{4})\b", lowered):  # "10-14-27"
        year = int(match[3])
        out.append(
            (match.start(), _safe_date(year + 2000 if year < 100 else year, int(match[1]), int(match[2])))
        )
    for match in re.finditer(r"\b(\d{1,2})/(\d{1,2})(?:/(\d{2,4}))?\b", lowered):
        if match[3]:
            year = int(match[3])
            out.append(
                (match.start(), _safe_date(year + 2000 if year < 100 else year, int(match[1]), int(match[2])))
            )
        else:
            out.append((match.start(), _month_day(today, int(match[1]), int(match[2]), when)))
    positions = [(m.start(), m.group(0)) for m in _WORD_RE.finditer(lowered)]
    words = [w for _, w in positions]
    for i, word in enumerate(words):
        if word not in _MONTHS:
            continue
        if i >= 3 and words[i - 1] in ("in", "of") and words[i - 2] in _WEEKDAYS and words[i - 3] in _NTH:
            nth = _nth_weekday_date(
                today, _MONTHS[word], _WEEKDAYS.index(words[i - 2]), _NTH[words[i - 3]], when
            )
            out.append((positions[i - 3][0], nth))  # "the first Monday in November"
            continue
        day = _day_before_month(words, i)  # "the 4th of October, nine a.m.", "22 September"
        rest_at = i + 1
        if day is None:
            day = _day_of(words[i + 1 : i + 3]) or _cardinal_day(words[i + 1 : i + 4])
            rest_at = i + 1 + (day[1] if day else 0)
        if day is None:
            continue
        rest = [w for w in words[rest_at : rest_at + 4] if w not in ("of", "the")]
        said_year = _said_year(rest)
        if said_year is not None:
            out.append((positions[i][0], _safe_date(said_year, _MONTHS[word], day[0])))
        else:
            out.append((positions[i][0], _month_day(today, _MONTHS[word], day[0], when)))
    return out


def _day_before_month(words: list[str], i: int) -> tuple[int, int] | None:
    """The day said before the month at ``words[i]``: "the twenty-first of May", and without "of"
    as British and Indian English say it ("22 September", "twentieth September"; "may" only after
    "of", where it cannot be the verb)."""
    if i >= 2 and words[i - 1] == "of":
        return _day_of(words[max(0, i - 3) : i - 1]) or _day_of(words[i - 2 : i - 1])
    if i == 0 or words[i] == "may":
        return None
    if i >= 2 and words[i - 2] in _TENS and words[i - 1] in _ORDINALS:
        return _day_of(words[i - 2 : i])
    previous = words[i - 1]
    if previous in _ORDINALS or (previous.isdigit() and len(previous) <= 2):
        return _day_of([previous])
    tens, _, unit = previous.partition("-")
    if unit and not (tens in ("twenty", "thirty") and 1 <= _UNITS.get(unit, 10) < 10):
        return _day_of([previous])
    # "on twelve October", "dated twenty five October", as Indian English says it; not "two October requests"
    said = [tens, unit] if unit else words[max(0, i - 2) : i]
    if len(said) == 2 and said[0] in ("twenty", "thirty") and 1 <= _UNITS.get(said[1], 10) < 10:
        day, used = _TENS[said[0]] + _UNITS[said[1]], 1 if unit else 2
    else:
        day, used = _UNITS.get(previous) or (_TENS[previous] if previous in ("twenty", "thirty") else 0), 1
    lead = words[i - used - 1] if i - used - 1 >= 0 else "on"
    return (day, used) if 1 <= day <= 31 and lead in _DAY_LEADS else None


_DAY_LEADS = frozenset("on the by from dated date is was till until before after since of".split())


def _day_of_month_dates(lowered: str, today: dt.date, when: str, held: dt.date | None = None) -> Found:
    out: Found = []
    for match in _DAY_OF_MONTH.finditer(lowered):
        first, second = match[1], match[2] or ""
        if re.match(r"[/:.-]\d", lowered[match.end(1) : match.end(1) + 2]):
            continue  # part of "12/05/2026", "3:30" (a sentence's full stop is not)
        if second in _MONTHS or (first in _MONTHS):
            continue  # "on the 3rd of May" is an explicit date
        day = _day_of([first, second]) if not first.isdigit() else (int(first), 1)
        if day is None or not 1 <= day[0] <= 31:
            continue
        half_past = second == "half" and lowered[match.end() :].lstrip().startswith("past")  # a time next
        apart = match[2] is not None and "  " in lowered[match.end(1) : match.start(2)]  # a comma between
        if (
            not first.isdigit()
            and (second in _COUNTED_THINGS or second in _WEEKDAYS)
            and not half_past
            and not apart
        ):
            continue  # "the first time", "the second Tuesday of the month": an order, not a day
        if (
            first.isdigit()
            and not re.search(r"\b(the|on the|by the)\s+\d", match[0])
            and second not in ("", "of")
        ):
            continue  # "for 3 days" is a duration, not the 3rd
        if first.isdigit() and second in ("day", "days", "week", "weeks", "business", "working", "months"):
            continue
        if first.isdigit() and re.match(
            r"\s+\d(?!\d*:)(?!\d*\s*(?:a\.?m|p\.?m|o'?clock|-?ish)\b)", lowered[match.end(1) :]
        ):
            continue  # "hang on, 4 4 0 9 2 7": digits of a code, not "on the 4th" ("the 21st, 10 a.m." is)
        which = _OF_WHICH_MONTH.match(lowered, match.end())
        if which is not None:  # "the first of next month"
            shift = {"next": 1, "following": 1, "this": 0, "last": -1}[which[1]]
            index = today.year * 12 + today.month - 1 + shift
            out.append((match.start(1), _safe_date(index // 12, index % 12 + 1, day[0])))
            continue
        weekday = _WEEKDAY_BEFORE.search(lowered[: match.start(1)])
        if weekday is not None:  # "Wednesday the 18th": the month where the 18th is a Wednesday
            on = _day_of_month_on(today, day[0], _WEEKDAYS.index(weekday[1]), when)
            if on is not None:
                out.append((match.start(1), on))
                continue
        out.append((match.start(1), _day_of_month(today, day[0], when, held)))
    for match in _ORDINAL_ALONE.finditer(lowered):  # "Twenty-ninth, that Friday."
        day = _day_of(match[1].split())
        if day is not None:
            out.append((match.start(1), _day_of_month(today, day[0], when, held)))
    for match in _WEEKDAY_THEN_DAY.finditer(lowered):  # "wednesday 27th 3 30 pm"
        number = int(match[2])
        if not 13 <= number <= 31:
            continue  # "wednesday 3", "wednesday 3 30": most likely an hour, not the 3rd
        on = _day_of_month_on(today, number, _WEEKDAYS.index(match[1]), when)
        if on is not None:
            out.append((match.start(2), on))
    return out


# a weekday and then its day of the month without "the" ("wednesday 27th"; the suffix is gone here)
_WEEKDAY_THEN_DAY = re.compile(r"\b(" + "|".join(_WEEKDAYS) + r")\s+(\d{1,2})\b(?!:)")


# an ordinal past "second" said as a sentence of its own or as a correction ("the twelfth, wait,
# thirteenth"), before a comma (two spaces here)
_ORDINAL_ALONE = re.compile(
    r"(?:^|[.;!?]\s+|\b(?:no|wait|sorry|i mean|actually|make that|rather)\s+)"
    r"((?:twenty|thirty)[- ](?:first|second|third|fourth|fifth|sixth|seventh|eighth|ninth)|"
    r"twentieth|thirtieth|third|fourth|fifth|sixth|seventh|eighth|ninth|tenth|eleventh|twelfth|thirteenth|"
    r"fourteenth|fifteenth|sixteenth|seventeenth|eighteenth|nineteenth)"
    r"(?=\s{2}|\s*[.;!?]|\s*$|\s+of\s+(?:this|next|the)\s+month\b)"  # "Twenty-ninth of this month"
)


_WEEKDAY_BEFORE = re.compile(r"\b(" + "|".join(_WEEKDAYS) + r")\s+(?:the\s+)?$")
_OF_WHICH_MONTH = re.compile(r"\s*(?:of\s+)?(?:the\s+)?(next|this|last|following)\s+month\b")


def _day_of_month_on(today: dt.date, day: int, weekday: int, when: str) -> str | None:
    """The ``day`` of last, this or next month that falls on ``weekday``, nearest today (not
    behind it in the future tense, not ahead in the past)."""
    months = [(today.year - (today.month == 1), today.month - 1 or 12), (today.year, today.month)]
    months.append((today.year + (today.month == 12), today.month % 12 + 1))
    matching = [
        date
        for year, month in months
        if (iso := _safe_date(year, month, day))
        and (date := dt.date.fromisoformat(iso)).weekday() == weekday
        and not (when == "future" and date < today)
        and not (when == "past" and date > today)
    ]
    if not matching:
        return None
    return min(matching, key=lambda d: abs((d - today).days)).isoformat()


_HEDGE_BEFORE = re.compile(r"\b(?:roughly|about|around|approximately|give or take|more or less)\s+$")


def _duration_dates(lowered: str, today: dt.date) -> Found:
    """ "in three to five business days" → the later bound, counted from today."""
    out: Found = []
    for duration in _DURATION.finditer(lowered):
        high = _small_number(duration[2])
        hours = duration[4] == "hours"
        if not duration[4] or high is None or not (24 <= high < 200 if hours else high < 100):
            continue  # "call back in two hours" names no day
        if hours:  # "within seventy-two hours": whole days from today
            day = today + dt.timedelta(days=high // 24)
        elif duration[4].startswith("week"):
            day = today + dt.timedelta(days=7 * high)
        elif duration[3] in ("business ", "working "):
            day = _add_business_days(today, high)
        else:
            day = today + dt.timedelta(days=high)
        out.append((duration.start(2), day.isoformat()))
    return out


_AFTER_LAST = frozenset("and but so then or sir ma'am madam only itself".split())  # "on Friday last, sir"


def _relative_dates(lowered: str, today: dt.date, when: str) -> Found:
    out: Found = []
    named = {
        "today": today,
        "tomorrow": today + dt.timedelta(days=1),
        "yesterday": today - dt.timedelta(days=1),
    }
    for match in re.finditer(r"\b(?:(a|one|two|three) weeks? from (today|now|tomorrow))\b", lowered):
        weeks = _small_number(match[1]) or 1
        start = today + dt.timedelta(days=1 if match[2] == "tomorrow" else 0)
        out.append((match.start(), (start + dt.timedelta(days=7 * weeks)).isoformat()))
    for match in re.finditer(r"\b(?:this (?:morning|afternoon|evening)|tonight|later today)\b", lowered):
        out.append((match.start(), today.isoformat()))
    for match in re.finditer(r"\b(?:the )?end of (?:the |this )?(next )?week\b", lowered):
        friday = today + dt.timedelta(days=(4 - today.weekday()) % 7 + (7 if match[1] else 0))
        out.append((match.start(), friday.isoformat()))  # a working week ends on Friday
    # "… with today?" and "two weeks ago today" use "today" for now, not as the date meant
    for match in re.finditer(
        r"(?<!ago )(?<!from )(?<!days of )\b(day after tomorrow|today(?!\s*\?)|tomorrow|yesterday)\b", lowered
    ):
        day = today + dt.timedelta(days=2) if match[1] == "day after tomorrow" else named[match[1]]
        out.append((match.start(), day.isoformat()))
    for match in re.finditer(
        r"\b(\w+) (business day|working day|day|week)s? ago(?: (" + "|".join(_WEEKDAYS) + r"))?\b", lowered
    ):
        n = _small_number(match[1])
        if n is not None and match[2] in ("business day", "working day"):
            out.append((match.start(), _add_business_days(today, -n).isoformat()))
        elif n is not None:
            days = n * (7 if match[2] == "week" else 1)
            if match[3] and match[2] == "week":  # "two weeks ago Friday": the Friday of that week
                days += today.weekday() - _WEEKDAYS.index(match[3])
            out.append((match.start(), (today - dt.timedelta(days=days)).isoformat()))
    positions = [(m.start(), m.group(0)) for m in _WORD_RE.finditer(lowered)]
    words = [w for _, w in positions]
    for i, word in enumerate(words):
        if word not in _WEEKDAYS or words[i - 1 : i] == ["black"]:  # Black Friday is a holiday
            continue
        following = words[i + 1 : i + 3]
        if following[:1] == ["the"] and _day_of(following[1:]) is not None:
            continue  # "Tuesday the 15th": the day of month says it
        if words[i - 1 : i] and words[i - 1] in _NTH and following[:1] in (["in"], ["of"]):
            continue  # "the first Monday in November": ``_explicit_dates`` reads it
        target = _WEEKDAYS.index(word)
        before = words[max(0, i - 3) : i]
        if before[-2:] in (["week", "from"], ["weeks", "from"]):  # "a week from Friday"
            weeks = (_small_number(before[0]) if len(before) == 3 else None) or 1
            day = today + dt.timedelta(days=((target - today.weekday()) % 7 or 7) + 7 * weeks)
            out.append((positions[i][0], day.isoformat()))
            continue
        if before[-2:] in (["week", "ago"], ["weeks", "ago"]):  # "two weeks ago Friday": that week's
            weeks = (_small_number(before[0]) if len(before) == 3 else None) or 1
            monday = today - dt.timedelta(days=today.weekday() + 7 * weeks)
            out.append((positions[i][0], (monday + dt.timedelta(days=target)).isoformat()))
            continue
        context = " ".join(words[max(0, i - 2) : i + 4])  # "Thursday of next week"
        # "next Wednesday" said on a Tuesday is the Wednesday of next week, not tomorrow
        if (
            "week after next" in " ".join(words[max(0, i - 6) : i + 6])  # "the week after next, Wednesday"
            or words[i + 1 : i + 3] == ["after", "next"]  # "the Tuesday after next"
            # "away all next week, so the Monday after": the week after the one named
            or (
                words[i + 1 : i + 2] == ["after"]
                and words[i + 2 : i + 3] not in (["that"], ["it"], ["this"], ["the"])
                and "next week" in " ".join(words[max(0, i - 12) : i])
            )
        ):
            monday = today - dt.timedelta(days=today.weekday()) + dt.timedelta(days=14)
            day = monday + dt.timedelta(days=target)
        elif (
            words[i - 1 : i] == ["next"]
            or words[i + 1 : i + 4] == ["after", "this", "one"]  # "the Friday after this one"
            or re.search(r"\b(next week|following week|week after)\b", context)
        ):
            monday = today - dt.timedelta(days=today.weekday()) + dt.timedelta(days=7)
            day = monday + dt.timedelta(days=target)
        elif re.search(r"\b(last|previous) week\b", context):  # "Friday of last week"
            monday = today - dt.timedelta(days=today.weekday()) - dt.timedelta(days=7)
            day = monday + dt.timedelta(days=target)
        elif (
            words[i - 1 : i] == ["last"]
            or (words[i + 1 : i + 2] == ["last"] and (words[i + 2 : i + 3] or ["and"])[0] in _AFTER_LAST)
            or (when == "past" and words[i - 1 : i] != ["next"])
        ):  # "last Friday", "on Friday last"
            day = today - dt.timedelta(days=(today.weekday() - target) % 7 or 7)
        else:
            day = today + dt.timedelta(days=(target - today.weekday()) % 7 or 7)
        out.append((positions[i][0], day.isoformat()))
    for match in re.finditer(r"\bend of (?:the |this )?week\b", lowered):
        out.append((match.start(), (today + dt.timedelta(days=(4 - today.weekday()) % 7)).isoformat()))
    for match in re.finditer(r"\b(?:the )?end of (?:the |this )?(next )?month\b", lowered):
        year, month = today.year, today.month
        if match[1]:
            year, month = (year + 1, 1) if month == 12 else (year, month + 1)
        out.append((match.start(), dt.date(year, month, calendar.monthrange(year, month)[1]).isoformat()))
    return out


_NTH = {"first": 1, "second": 2, "third": 3, "fourth": 4, "last": -1}


def _nth_weekday_date(today: dt.date, month: int, weekday: int, n: int, when: str) -> str:
    """The ``n``th ``weekday`` of ``month`` in this year, or the next (the last, in the past tense)."""
    day = _nth_weekday(today.year, month, weekday, n)
    if when == "past" and day > today:
        day = _nth_weekday(today.year - 1, month, weekday, n)
    elif when != "past" and day < today:
        day = _nth_weekday(today.year + 1, month, weekday, n)
    return day.isoformat()


def _nth_weekday(year: int, month: int, weekday: int, n: int) -> dt.date:
    """The ``n``th ``weekday`` of a month (n = -1: the last)."""
    if n < 0:
        last = dt.date(year, month, calendar.monthrange(year, month)[1])
        return last - dt.timedelta(days=(last.weekday() - weekday) % 7)
    first = dt.date(year, month, 1)
    return first + dt.timedelta(days=(weekday - first.weekday()) % 7 + 7 * (n - 1))


# a day of month a recogniser heard as its tens ("the fifty" for "the fifteenth"): no month has it
_TEENS = {"forty": "fourteenth", "fifty": "fifteenth", "sixty": "sixteenth", "seventy": "seventeenth",
          "eighty": "eighteenth", "ninety": "nineteenth"}  # fmt: skip
_TEEN_AS_TENS = re.compile(
    r"\b((?:"
    + "|".join(_WEEKDAYS)
    + r") the|the|on the|by the)\s+(forty|fifty|sixty|seventy|eighty|ninety)(?:th|ieth)?"
    r"(?![\w-])(?!\s+(?:dollars|bucks|grand|thousand|percent|k)\b)"
)
_CARDINAL_DAY = re.compile(
    r"\b((?:"
    + "|".join(_WEEKDAYS)
    + r") the)\s+(twenty|thirty)[ -](one|two|three|four|five|six|seven|eight|nine)"
    r"(?![\w-])(?!\s+(?:dollars|bucks|grand|thousand|hundred|percent|k)\b)"
)
# US holidays people date things by: fixed days, and the ones that move with the weekday
_HOLIDAYS: dict[str, Callable[[int], dt.date]] = {
    "new year's eve": lambda y: dt.date(y, 12, 31),
    "new year's day": lambda y: dt.date(y, 1, 1),
    "new year's": lambda y: dt.date(y, 1, 1),
    "new years": lambda y: dt.date(y, 1, 1),
    "valentine's day": lambda y: dt.date(y, 2, 14),
    "memorial day": lambda y: _nth_weekday(y, 5, 0, -1),
    "independence day": lambda y: dt.date(y, 7, 4),
    "labor day": lambda y: _nth_weekday(y, 9, 0, 1),
    "halloween": lambda y: dt.date(y, 10, 31),
    "veterans day": lambda y: dt.date(y, 11, 11),
    "thanksgiving": lambda y: _nth_weekday(y, 11, 3, 4),
    "black friday": lambda y: _nth_weekday(y, 11, 3, 4) + dt.timedelta(days=1),
    "christmas eve": lambda y: dt.date(y, 12, 24),
    "christmas": lambda y: dt.date(y, 12, 25),
}
_HOLIDAY = re.compile(r"\b(" + "|".join(re.escape(h) for h in _HOLIDAYS) + r")(?!\w)")


def _holiday_dates(lowered: str, today: dt.date, when: str) -> Found:
    """ "before Black Friday", "after New Year's": the holiday's date, the year read by tense."""
    out: Found = []
    for match in _HOLIDAY.finditer(lowered):
        days = [_HOLIDAYS[match[1]](y) for y in (today.year - 1, today.year, today.year + 1)]
        if when == "past":
            day = max(d for d in days if d <= today)
        elif when == "future":
            day = min(d for d in days if d >= today)
        else:
            day = min(days, key=lambda d: abs((d - today).days))
        out.append((match.start(), day.isoformat()))
    return out


def _said_year(words: list[str]) -> int | None:
    """A year after a month and day: "2025", or "twenty twenty-five" / "twenty twenty five"."""
    if words and words[0].isdigit() and len(words[0]) == 4:
        return int(words[0])
    if len(words) >= 2 and words[0] in ("twenty", "nineteen"):
        rest = words[1:3] if words[1] in _TENS and len(words) > 2 and words[2] in _UNITS else words[1:2]
        spoken = words_to_number(rest)
        if spoken is not None and spoken < 100:
            return (2000 if words[0] == "twenty" else 1900) + spoken
    return None


def _month_day(today: dt.date, month: int, day: int, when: str) -> str | None:
    """A month and day without a year: this year's, or the year before or after by tense."""
    candidate = _safe_date(today.year, month, day)
    if candidate is None:
        return None
    if when == "past" and candidate > today.isoformat():
        return _safe_date(today.year - 1, month, day)
    if when == "future" and candidate < today.isoformat():
        return _safe_date(today.year + 1, month, day)
    if when == "any":  # no tense said: the one nearest today ("January fifth", said in December)
        options = [
            d for d in (_safe_date(y, month, day) for y in (today.year - 1, today.year, today.year + 1)) if d
        ]
        return min(options, key=lambda d: abs((dt.date.fromisoformat(d) - today).days))
    return candidate


# Nouns after an ordinal that make it the order of something, not a day of the month.
_COUNTED_THINGS = frozenset(
    """time times thing things one ones step steps page pages option options part parts call calls
    person people level request requests visit visits round rounds letter letters digit digits
    number numbers line lines item items question questions attempt try submission review appeal
    place floor shift half name names claim auth authorization week weeks month months year years
    rep agent choice box field screen location locations site sites store stores branch branches office
    offices building buildings phase stage wave batch""".split()
)
_DAY_OF_MONTH = re.compile(
    r"\b(?:on|by|the|for|from|until|before|since)\s+(?:the\s+)?(\d{1,2}|[a-z]+(?:-[a-z]+)?)"
    r"(?:\s+(?!(?:the|on|by|for|from|until|before|since)\b)([a-z]+))?\b"
)


def _day_of_month(today: dt.date, day: int, when: str, held: dt.date | None = None) -> str | None:
    """ "the 9th": this month, or the next one when the 9th has passed (the last one, in the past tense);
    the one nearest ``held`` when a date is being restated."""
    if held is not None:
        options = [
            d
            for d in (
                _safe_date(held.year + (m - 1) // 12, (m - 1) % 12 + 1, day)
                for m in range(held.month - 1, held.month + 2)
            )
            if d
        ]
        return min(options, key=lambda d: abs((dt.date.fromisoformat(d) - held).days), default=None)
    try:
        candidate = today.replace(day=day)
    except ValueError:
        return None
    if when == "past" and candidate > today:
        return _safe_date(today.year - (today.month == 1), today.month - 1 or 12, day)
    if when != "past" and candidate < today:
        return _safe_date(today.year + (today.month == 12), today.month % 12 + 1, day)
    return candidate.isoformat()


def _safe_date(year: int, month: int, day: int) -> str | None:
    try:
        return dt.date(year, month, day).isoformat()
    except ValueError:
        return None


def _day_of(words: list[str]) -> tuple[int, int] | None:
    """(day of month, words used) from '15', 'fifteenth', 'twenty first' or 'twenty-first'."""
    if not words:
        return None
    first = words[0]
    if first.isdigit() and 1 <= int(first) <= 31:
        return int(first), 1
    if first in _ORDINALS:
        return _ORDINALS[first], 1
    if first in _TENS and len(words) > 1 and words[1] in _ORDINALS:
        return _TENS[first] + _ORDINALS[words[1]], 2
    if "-" in first:
        tens, _, unit = first.partition("-")
        if tens in _TENS and unit in _ORDINALS:
            return _TENS[tens] + _ORDINALS[unit], 1
    return None


def _cardinal_day(words: list[str]) -> tuple[int, int] | None:
    """A day said as a cardinal after its month ("March thirty", "April twenty one"); not when a
    number follows that makes it a year ("March twenty twenty-seven")."""
    if not words or (words[0] not in _UNITS and words[0] not in _TENS):
        return None
    value, used = _UNITS.get(words[0]) or _TENS.get(words[0], 0), 1
    if words[0] in _TENS and len(words) > 1 and words[1] in _UNITS and _UNITS[words[1]] < 10:
        value, used = value + _UNITS[words[1]], 2
    after = words[used] if len(words) > used else ""
    if after.split("-")[0] in _UNITS or after.split("-")[0] in _TENS or after.isdigit():
        return None
    if after in ("a", "am", "p", "pm", "o'clock", "oclock", "o"):
        return None  # "October, nine a.m.": the hour, not the 9th
    return (value, used) if 1 <= value <= 31 else None


_HOUR_WORD = {w: n for w, n in _UNITS.items() if 1 <= n <= 12}


def _business_hour(hour: int, text: str) -> int:
    """A clock hour without am/pm, read as business hours (8:00–18:59): "at 3" is 15:00."""
    if re.search(r"\b(pm|p m|afternoon|evening|tonight)\b", text):
        return hour + 12 if hour < 12 else hour
    morning = re.search(r"\b(am|a m|morning|first thing|early)\b", text)
    if morning and (7 <= hour <= 12 or morning[1] not in ("morning", "early")):
        return 0 if hour == 12 else hour  # "can't do the morning, how about 2" is 14:00
    return hour + 12 if 1 <= hour <= 7 else hour


_FULL_STOP = re.compile(r"(?<=[a-z0-9]{2})\.(?=\s|$)")
# "three's fine", "two works for me": an hour accepted is a time
_HOUR_ACCEPTED = re.compile(
    r"(?<!that )(?<!this )(?<!which )\b(one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve)"
    r"(?:'s| is| would be)?"
    r"(?= (?:works|suits|(?:is |would be |'s )?(?:fine|good|great|perfect|better|best|ok|okay)\b))"
)
_TIME_LEAD = frozenset(
    "at around about say by after before maybe like till til until or then make than to "
    "actually sorry mean rather".split()  # a correction: "two thirty? Actually, three"
)
_TIME_WORDS = frozenset(
    "o'clock oclock am pm morning afternoon evening ish or no not like maybe say um uh at around "
    "about".split()
)


def extract_time(text: str, slot: Slot | None = None) -> str | None:
    """A clock time "HH:MM", the last one the turn settles on ("ten, no, eleven"; "not at two,
    three"). Digits ("3:30 pm", "10am"), words ("nine thirty", "quarter to eleven", "half past
    two", "noon") and bare hours after "at"/"around"/"like" or in a turn of little else; without
    am/pm an hour is read as business hours ("at 3" → 15:00, "like 8" → 08:00)."""
    # a sentence's full stop kept as a comma ("I don't do mornings. Eleven?"); "p.m." loses its dots
    lowered = _clock_homophones(_FULL_STOP.sub(" ,", normalise(text)).replace(".", ""))
    lowered = _HOUR_ACCEPTED.sub(r"\1 o'clock", lowered)
    lowered = _HOUR_HYPHEN.sub(r"\1 \2", lowered)  # "eight-fifteen", "nine-thirty"
    found: list[tuple[int, str]] = []
    taken: list[tuple[int, int]] = []
    # "next tuesday 1030", "at 930": a clock time written without its colon
    for match in _NO_COLON_TIME.finditer(lowered):
        hour = _business_hour(int(match[1]), lowered)
        taken.append(match.span(1))
        found.append((match.start(1), f"{hour:02d}:{match[2]}"))
    for match in re.finditer(r"(?<!past )(?<!after )\bhalf (" + "|".join(_HOUR_WORD) + r")\b", lowered):
        taken.append(match.span())  # "half ten": half past ten, as British English says it
        found.append((match.start(), f"{_business_hour(_HOUR_WORD[match[1]], lowered):02d}:30"))
    for match in re.finditer(r"\b(noon|midday|lunchtime)\b", lowered):
        found.append((match.start(), "12:00"))
    for match in re.finditer(r"\b(\d{1,2})(?::(\d{2}))?\s*(am|pm|a m|p m)\b|\b(\d{1,2}):(\d{2})\b", lowered):
        hour, minute = int(match[1] or match[4]), int(match[2] or match[5] or 0)
        taken.append(match.span())
        if hour <= 23 and minute < 60:
            hour = _business_hour(hour, match[0] if match[3] else lowered) if hour <= 12 else hour
            found.append((match.start(), f"{hour:02d}:{minute:02d}"))
    for match in re.finditer(
        r"\b(quarter|half|twenty|ten|five)\s+(past|passed|after|to|till|til|before|of)\s+(\w+)\b", lowered
    ):
        if match[1] == "half" and match[2] == "of":
            continue  # "half of ten": no time
        base = _HOUR_WORD.get(match[3]) or (
            int(match[3]) if match[3].isdigit() and 1 <= int(match[3]) <= 12 else None
        )
        if base is None:
            continue
        taken.append(match.span())
        minutes = {"quarter": 15, "half": 30, "twenty": 20, "ten": 10, "five": 5}[match[1]]
        hour = _business_hour(base, lowered)
        if match[2] in ("to", "till", "til", "before", "of"):  # "quarter of two" is 1:45
            hour, minute = (hour - 1) % 24, 60 - minutes
        else:
            minute = minutes
        found.append((match.start(), f"{hour:02d}:{minute:02d}"))
    # "oh nine hundred", "fourteen hundred hours": the clock as the military says it
    for match in re.finditer(r"\b(?:(?:oh|zero)\s+(\w+)|(\w+))\s+hundred(?:\s+hours)?\b", lowered):
        hour = _UNITS.get(match[1] or match[2] or "", 99)
        if (match[1] and 1 <= hour <= 9) or (match[2] and 10 <= hour <= 23):
            taken.append(match.span())
            found.append((match.start(), f"{hour:02d}:00"))
    found += _spoken_hours(lowered, taken)
    kept = [
        (start, value)
        for start, value in found
        if not _not_before(lowered, start) and not _FREE_UNTIL.search(lowered, 0, start)
    ]
    proposed = [(start, value) for start, value in kept if not _time_of_something_else(lowered, start)]
    kept = proposed or kept
    return max(kept)[1] if kept else None


# "standup's at eleven", "three o'clock is our compliance stand-up": the reason a time will not do
_OTHER_EVENT_BEFORE = re.compile(
    r"\b(?!(?:it|that|this|meeting|call|demo|appointment|mine|yours|which|what|when|where)\b)[a-z-]+"
    r"(?:'s| is) at\s+$"
)
# "I've got a patient at a quarter to twelve", "we have the delivery till two"; not "I've got a slot at three"
_OTHER_EVENT_HELD = re.compile(
    r"\b(?:i've got|i have got|i have|i've|i got|we've got|we got|we have|there's)\s+(?:a|an|my|our|the)\s+"
    r"(?!(?:slot|opening|window|gap|spot|free|hole|time|few|half|couple|bit)\b)(?:[\w-]+\s+){1,2}?"
    r"(?:at|till|until)\s+(?:like\s+|about\s+|around\s+)?(?:a\s+)?$"
)
# "eight fifteen, before the stewards' briefing at nine", "the reading group finishes at half eleven"
_OTHER_EVENT_TIMED = re.compile(
    r"\b(?:before|after) (?:the|our|my|their) (?:[\w'-]+\s+){1,3}?at\s+$|"
    r"\b(?!(?:it|that|this|meeting|call|demo|which|we|i|you|they)\b)[a-z'-]+\s+"
    r"(?:finishes|ends|starts|begins|wraps up|kicks off|opens|closes|shows up|turns up|arrives|comes in|"
    r"comes|gets here|gets in|pulls in|lands|leaves)\s+(?:at\s+)?(?:about\s+|around\s+)?$|"
    # "I pick my son up at two forty-five", "drop the kids off at three"
    r"\b(?:pick|picking|drop|dropping)\s+(?:[\w'-]+\s+){0,2}(?:up|off)\s+(?:at\s+)?(?:about\s+|around\s+)?$"
)
_OTHER_EVENT_AFTER = re.compile(
    r"[\w:]+(?:\s+(?:o'clock|oclock|am|pm|thirty|fifteen|forty-five))?\s+(?:is|'s) (?:our|my|the|their)\b"
)


# "I've got a window till noon", "free until three": when the time free ends, no time to meet
_FREE_UNTIL = re.compile(
    r"\b(?:window|free|available|around|open)\s+(?:till|until|up to|up till)\s+(?:like\s+|about\s+|"
    r"around\s+)?$"
)


def _time_of_something_else(lowered: str, start: int) -> bool:
    before = lowered[:start]
    return bool(
        _OTHER_EVENT_BEFORE.search(before)
        or _OTHER_EVENT_HELD.search(before)
        or _OTHER_EVENT_TIMED.search(before)
        or _OTHER_EVENT_AFTER.match(lowered, start)
    )


_HOUR_HYPHEN = re.compile(
    r"\b(one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve)-"
    r"(oh|o'clock|fifteen|thirty|forty|forty-five|fifty|twenty|ten|five|\w+teen)\b"
)
# "1130", "930": a clock time as a recogniser writes it, not an amount or a count
_NO_COLON_TIME = re.compile(
    r"(?<![$\d,.])\b(1[0-2]|0?[1-9])([0-5]\d)\b(?!\s*(?:dollars|bucks|a (?:month|year|seat)|per|people|users|"
    r"employees|seats|of|units|[kx%]))"
)
_TIME_BEFORE = r"\b(at|around|like|about|till|until|to|past|passed|half) "
# "shove it back to for same day", "ten past for, no, make it half for", "around for ish"
_TIME_AFTER = r"\s*(?:$|[,?!]|instead\b|then\b|in the\b|same\b|no\b|or\b|-?ish\b)"
_CLOCK_HOMOPHONES = (
    (re.compile(r"\b(?:to|too)(?= (?:pm|am|p m|a m|o'clock|oclock|thirty|fifteen|forty-five)\b)"), "two"),
    (re.compile(r"\bate(?= (?:pm|am|p m|a m|o'clock|oclock|thirty|fifteen|forty-five)\b)"), "eight"),
    (re.compile(r"\bfor(?= (?:pm|am|p m|a m|o'clock|oclock|thirty|fifteen|forty-five)\b)"), "four"),
    # an hour after a time word: "at for", "like ate", "slide it to for instead", "quarter passed to"
    (re.compile(rf"{_TIME_BEFORE}(?:for|fore)\b(?={_TIME_AFTER})"), r"\1 four"),
    (re.compile(rf"{_TIME_BEFORE}ate\b(?={_TIME_AFTER})"), r"\1 eight"),
    (re.compile(rf"{_TIME_BEFORE}(?:to|too)\b(?={_TIME_AFTER})"), r"\1 two"),
    # "four-ish, once the trucks are in": an hour said with "-ish" is a time
    (
        re.compile(
            r"\b(one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|1[0-2]|[1-9])-?ish\b"
            r"(?!\s+(?:people|folks|guys|users|employees|staff|years|minutes|hours|days|weeks|months)\b)"
        ),
        r"\1 o'clock",
    ),
    (re.compile(r"(?<=\w)-?ish\b"), ""),  # "3ish", "twenty-ish"
)


def _clock_homophones(lowered: str) -> str:
    """Hours a recogniser wrote as other words ("to pm", "ate thirty"), and "-ish" dropped."""
    for pattern, word in _CLOCK_HOMOPHONES:
        lowered = pattern.sub(word, lowered)
    # "two pm" as "2 pm", which the digit forms read
    return re.sub(
        r"\b(one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve)(?= (?:pm|am|p m|a m)\b)",
        lambda m: str(_HOUR_WORD[m[1]]),
        lowered,
    )


def _not_before(lowered: str, start: int) -> bool:
    """ "not at two", "I can't do nine": a time ruled out."""
    words = lowered[:start].replace(",", " ").split()
    return (
        (bool(words) and words[-1] in ("not", "except"))
        or words[-2:] in (["instead", "of"], ["rather", "than"])
        or words[-2:] == ["not", "at"]
        or (len(words) >= 2 and words[-2] in _CANNOT and words[-1] in ("do", "make", "manage"))
    )


_CANNOT = frozenset(("can't", "cannot", "couldn't", "won't"))


_SEEMS = frozenset("sounds sound sounded looks look looked feels feel felt seems seem seemed".split())


def _spoken_hours(lowered: str, taken: list[tuple[int, int]]) -> list[tuple[int, str]]:
    """Hours said as words or bare digits: "nine thirty", "at 3", "like 8", "ten, no, eleven"."""
    spans = [(m.start(), m.group(0)) for m in _WORD_RE.finditer(lowered)]
    words = [w for _, w in spans]
    bare_turn = all(map(_time_word, words))
    clock_words = bool(re.search(r"\b(o'clock|oclock|morning|afternoon|evening)\b", lowered))
    out: list[tuple[int, str]] = []
    for i, word in enumerate(words):
        start = spans[i][0]
        if any(a <= start < b for a, b in taken):
            continue
        said = _HOUR_WORD.get(word) or (int(word) if word.isdigit() and 1 <= int(word) <= 12 else None)
        if said is None:
            continue
        before = words[i - 1] if i else ""
        after = words[i + 1] if i + 1 < len(words) else ""
        if after in (
            "of",
            "more",
            "other",
            "thing",
            "things",
            "person",
            "people",
            "week",
            "weeks",
            "day",
            "days",
            "sec",
            "second",
            "seconds",
            "minute",
            "minutes",
            "moment",
            "hours",
            "months",
            "years",
            "thousand",
            "hundred",
            "grand",
            "k",
            "dollars",
            "bucks",
            "percent",
        ):
            continue  # "one of your experts", "up to ten thousand": a count or an amount, not a time
        if word == "one" and before in ("that", "this", "which", "the", "any", "each", "no", "every"):
            continue  # "three o'clock, that one works": a pronoun
        if word == "one" and before == "like" and i >= 2 and words[i - 2] in _SEEMS:
            continue  # "it sounds like one": a pronoun
        if before == "it" and i >= 2 and words[i - 2] in ("make", "call"):
            before = "make"  # "make it two", "call it one"
        if before == "with" and i >= 2 and words[i - 2] in ("go", "going", "let's"):
            before = "make"  # "go with eleven"
        minute = 0
        if after in ("o'clock", "oclock", "sharp"):
            pass
        elif "-" in after and after.split("-")[0] in _TENS:  # "ten forty-five"
            minute = _TENS[after.split("-")[0]] + _UNITS.get(after.split("-")[1], 0)
        elif (
            after.isdigit()
            and len(after) == 2
            and after[0] in "012345"
            and (word.isdigit() or before in _TIME_LEAD)
            and words[i + 2 : i + 3] not in (["minute"], ["minutes"], ["hours"], ["days"])
        ):
            minute = int(after)  # "3 30", "11 15": the minutes as a recogniser writes them
        elif after in _TENS or after == "fifteen":
            minute = _TENS.get(after, _UNITS.get(after, 0))
            nxt = words[i + 2] if i + 2 < len(words) else ""
            if after in _TENS and nxt in _DIGIT_WORDS and nxt not in ("zero", "oh"):
                minute += int(_DIGIT_WORDS[nxt])
        elif after == "and" and words[i + 2 : i + 3] in (["half"], ["a"]):  # "nine and a half"
            minute = 30
        elif after == "oh" and i + 2 < len(words) and words[i + 2] in _DIGIT_WORDS:
            minute = int(_DIGIT_WORDS[words[i + 2]])
        elif (
            before not in _TIME_LEAD
            and not clock_words
            and not bare_turn
            and not _alone_in_clause(lowered, start)
            and not _after_a_day(before, after)
            and not _ZONED.match(lowered, start + len(word))
        ):
            continue
        if before in _TENS and not word.isdigit():
            continue  # "twenty five" as the minutes of an hour said before
        if minute < 60:
            out.append((start, f"{_business_hour(said, lowered):02d}:{minute:02d}"))
    return out


def _time_word(word: str) -> bool:
    return word in _TIME_WORDS or word in _HOUR_WORD or word.isdigit() or word in _TENS or word in _UNITS


def _alone_in_clause(lowered: str, start: int) -> bool:
    """An hour that is a sentence or clause of its own: "I don't do mornings. Eleven?"."""
    begin = max(lowered.rfind(mark, 0, start) for mark in ",?!;") + 1
    ends = [at for mark in ",?!;" if (at := lowered.find(mark, start)) >= 0]
    clause = lowered[begin : min(ends, default=len(lowered))]
    return all(map(_time_word, _WORD_RE.findall(clause)))


# an hour said with whose clock it is: "ten my time", "two, Eastern", "nine PT"
_ZONED = re.compile(
    r"\s*,?\s*(?:(?:my|your|our|their) time|(?:eastern|central|mountain|pacific|atlantic)\b|"
    r"(?:et|ct|mt|pt|est|cst|mst|pst|edt|cdt|mdt|pdt|gmt|utc|bst)\b)"
)


def _after_a_day(before: str, after: str) -> bool:
    """An hour said last, right after its day: "Monday the fifteenth of November, eleven"."""
    return not after and (
        before in _MONTHS or before in _WEEKDAYS or before in _ORDINALS or before == "tomorrow"
    )


_MONTH_SAID = re.compile(
    r"\b(?:(end of|by|before|until|till|late|early|beginning of|start of|mid|in|around|after|of)\s+)?"
    r"(?:the\s+)?(january|february|march|april|may|june|july|august|september|october|november|december)\b"
)
_MONTH_END = frozenset(("end of", "by", "before", "until", "till", "late", "after"))
_MONTH_START = frozenset(("early", "beginning of", "start of"))


_SEASON_SAID = re.compile(
    r"\b(?:(end of|by|before|until|till|late|early|beginning of|start of|mid|in|around|after)\s+)?(?:the\s+)?"
    r"(spring|summer|fall|autumn|winter|christmas|chris mass|xmas|holidays|new year|thanksgiving|easter|"
    r"q[1-4])\b"
)
# (month, day) where each season starts, is at its middle and ends; a holiday is one day
_SEASONS = {
    "spring": ((3, 20), (4, 25), (6, 20)),
    "summer": ((6, 21), (7, 25), (9, 21)),
    "fall": ((9, 22), (10, 25), (12, 20)),
    "autumn": ((9, 22), (10, 25), (12, 20)),
    "winter": ((12, 21), (1, 25), (3, 19)),
    "christmas": ((12, 25),) * 3,
    "chris mass": ((12, 25),) * 3,
    "xmas": ((12, 25),) * 3,
    "holidays": ((12, 25),) * 3,
    "new year": ((1, 1),) * 3,
    "thanksgiving": ((11, 25),) * 3,
    "easter": ((4, 5),) * 3,
    "q1": ((1, 1), (2, 15), (3, 31)),
    "q2": ((4, 1), (5, 15), (6, 30)),
    "q3": ((7, 1), (8, 15), (9, 30)),
    "q4": ((10, 1), (11, 15), (12, 31)),
}


def _season_date(match: re.Match[str], today: dt.date) -> dt.date:
    """The next day a season (or holiday) said with its lead starts, is at its middle, or ends."""
    start, middle, end = _SEASONS[match[2]]
    month, day = end if match[1] in _MONTH_END else start if match[1] in _MONTH_START else middle
    when = dt.date(today.year, month, day)
    return when if when >= today else dt.date(today.year + 1, month, day)


_SPAN = re.compile(r"(?<!last )(?<!past )\b(\w+) (day|week|month)s?\b(?! ago)")
_YEAR_IN_WORDS = re.compile(r"\btwenty (twenty|thirty)[- ](one|two|three|four|five|six|seven|eight|nine)\b")


def _year_digits(match: re.Match[str]) -> str:
    return str(2000 + _TENS[match[1]] + _UNITS[match[2]])


# "push it back an hour", "half an hour earlier": a time said as a move of the one agreed
_SHIFT_BY = re.compile(
    r"\b(an?|one|two|three|half an?|fifteen|twenty|thirty|forty-five|forty five|ninety) "
    r"(hours?|minutes?|mins?)\b"
)
_LATER = re.compile(
    r"\b(?:push|bump|slide|move|shift|kick|nudge)\w* (?:[\w']+ ){0,3}?(?:back|out)\b|\blater\b"
)
_EARLIER = re.compile(
    r"\b(?:move|bump|pull|shift|slide)\w* (?:[\w']+ ){0,3}?(?:up|forward|ahead)\b|\bearlier\b"
)
_SHIFT_AMOUNT = {"half an": 30, "half a": 30, "forty five": 45, "forty-five": 45}


def shifted_time(text: str, agreed: str) -> str | None:
    """The ``agreed`` "HH:MM" moved as the turn asks ("push it back an hour" → an hour later);
    None when the turn moves nothing or says both ways."""
    norm = normalise(text)
    by = _SHIFT_BY.search(norm)
    later, earlier = _LATER.search(norm), _EARLIER.search(norm)
    if by is None or bool(later) == bool(earlier) or not re.fullmatch(r"\d{2}:\d{2}", agreed):
        return None
    amount = _SHIFT_AMOUNT.get(by[1]) or _small_number(by[1].split()[-1]) or 1
    minutes = amount * 60 if by[2].startswith("hour") and amount < 10 else amount
    hour, minute = map(int, agreed.split(":"))
    moved = hour * 60 + minute + (minutes if later else -minutes)
    return f"{moved // 60:02d}:{moved % 60:02d}" if 0 <= moved < 24 * 60 else None


def extract_time_frame(text: str, slot: Slot, today: dt.date | None = None) -> str | None:
    """The ``by_when`` value of a date or month the turn names ("when our contract runs out at the
    end of March" → the first value that reaches the end of March); the last one said wins."""
    if not slot.by_when:
        return None
    today = today or dt.date.today()
    said = extract_date(text, today=today, relative=True, tense="future")
    lowered = normalise(text)
    found = [m for m in _MONTH_SAID.finditer(lowered) if m[2] != "may" or m[1]]  # "we may": no month
    seasons = list(_SEASON_SAID.finditer(lowered))  # "before the summer rush", "by Christmas"
    named_year = re.search(r"\b(20\d\d)\b", _YEAR_IN_WORDS.sub(_year_digits, lowered))
    span = _SPAN.search(lowered)  # "six weeks give or take"
    if said is None and not found and not seasons and span and (n := _small_number(span[1])):
        said = (today + dt.timedelta(days=n * {"day": 1, "week": 7, "month": 30}[span[2]])).isoformat()
    if said is not None:
        ahead = (dt.date.fromisoformat(said) - today).days  # "before March first"
    elif not found and not seasons and named_year and int(named_year[1]) >= today.year:
        # "the lawyers are saying 2029"
        when = int(named_year[1])
        ahead = ((dt.date(when, 12, 31) if when == today.year else dt.date(when, 1, 1)) - today).days
    elif found and (not seasons or found[-1].start() > seasons[-1].start()):
        lead, month = found[-1][1], _MONTHS[found[-1][2]]
        year = today.year if month >= today.month else today.year + 1
        last = calendar.monthrange(year, month)[1]
        day = last if lead in _MONTH_END else 1 if lead in _MONTH_START else 15
        ahead = (dt.date(year, month, day) - today).days
    elif seasons:
        ahead = (_season_date(seasons[-1], today) - today).days
    else:
        return None
    for value, reach in slot.by_when.items():
        if reach is None or ahead <= reach:
            return value
    return None


def enum_or_time_frame(text: str, slot: Slot, today: dt.date | None = None) -> str | None:
    """The enum value or the ``by_when`` value of a date, whichever the turn settles on last ("this
    month, but realistically the end of December" → the December one's)."""
    value = extract_enum(text, slot)
    parts = clauses(text)
    if value is None or len(parts) < 2:
        return value if value is not None else extract_time_frame(text, slot, today)
    with_value = [i for i, c in enumerate(parts) if extract_enum(c.text, slot) is not None]
    for index in range(len(parts) - 1, with_value[-1] if with_value else -1, -1):
        frame = extract_time_frame(parts[index].text, slot, today)
        if frame is not None:
            return frame
    return value


def extract_enum(text: str, slot: Slot | None = None) -> str | None:
    """The value the turn asserts last ("approved — no, that's last year's; this one's still
    open" → pending). A synonym that is negated ("it wasn't denied") asserts nothing; longer
    synonyms win where they overlap ("not approved" over "approved")."""
    if slot is None or not slot.values:
        return None
    if slot.who_answers and _SELF_BY_POST.search(normalise(text)):
        return slot.who_answers["self"]
    norm = f" {_plain(text)} "
    found: list[tuple[int, int, str]] = []  # (start, end, value)
    taken: list[tuple[int, int]] = []
    for synonym, canonical, pattern in _enum_options(tuple(slot.values)):
        for match in pattern.finditer(norm):
            span = match.span()
            if not any(a < span[1] and span[0] < b for a, b in taken):
                taken.append(span)
                if synonym in _YES_WORDS and _SAYS_YES.search(norm, 0, span[0]):
                    continue  # "the director must say yes": whose yes it takes, not an answer
                if synonym.split()[0] in _NEGATING_STARTS or not negated(norm, span[0]):
                    found.append((span[0], span[1], canonical))
    others = _another_records_clauses(norm)
    if others:
        found = [f for f in found if not any(a <= f[0] < b for a, b in others)]
        text = _without_spans(norm, others)
    if found and slot.who_answers:
        # "I am. Well, actually, my dad signs for anything that size": who, said after the answer
        turn = _COURSE_CHANGE.search(norm, max(found)[1])
        if turn is not None and _DECIDES.search(norm, turn.end()):
            who = _who_answers(norm[turn.end() :].strip(" ,"), slot.who_answers)
            if who is not None:
                found.append((turn.end(), turn.end(), who))
    if not found and slot.who_answers:
        return _who_answers(normalise(text), slot.who_answers)
    if not found and slot.outcomes:
        return told_value(text, slot.outcomes)
    if not found and slot.objections:
        return told_value(text, slot.objections)
    return max(found)[2] if found else None


# a clause about another record than the one asked: "that's the Doe on the line above", "I'd first
# clicked the March request", "my cursor was on the wrong row"
_ANOTHER_RECORD = re.compile(
    r"\b(?:line|row|entry|record|one|request|case|auth|member|patient)s? (?:right )?"
    r"(?:above|below|underneath|beneath|under (?:it|hers|his)|before (?:it|hers|his))\b"
    r"|\bwrong (?:row|line|column|member|patient|record|request|case|one|chart|screen|tab|account|file|"
    r"auth|entry)\b"
    r"|\b(?:earlier|previous|older|old|other|original) (?:request|auth|authorization|case|submission|"
    r"referral|one)\b"
    r"|\bat first\b|\bmy cursor\b"
    r"|\b(?:i'd|i had|i|i've) (?:first|initially|originally) "
    r"(?:clicked|pulled|opened|read|looked|had|grabbed|went|picked)\b"
)
# a relative clause carries on the one before it: "…, which was denied", "…, the one that got approved"
_CARRIES_ON = re.compile(r"^(?:which|that one|the one|and that one|and it)\b")
_TAKING_BACK = r"(?:oh|uh|um|ugh|hm+|no|nope|sorry|oops|whoops|hold on|hang on|wait|actually|scratch that)"
_CORRECTION_CLAUSE = re.compile(rf"^(?:{_TAKING_BACK}\s*)+$")
# the marked clause points back at what was just said: "that's the Doe on the line above", "I'm on
# the wrong row"
_POINTS_BACK = re.compile(
    rf"^(?:{_TAKING_BACK}\s+)*(?:that's|that was|that is|i'm on|i was on|my cursor|wrong)\b"
)


def _another_records_clauses(norm: str) -> list[tuple[int, int]]:
    """Spans (in ``_plain`` text) of the clauses that tell about another record: one that says
    so, the relative clauses after it, and, where it is led by a correction ("approved, oh wait,
    that's the line above"), the clauses the correction takes back."""
    spans = _clause_spans(norm)
    texts = [norm[a:b].strip() for a, b in spans]
    marked = [bool(_ANOTHER_RECORD.search(t)) for t in texts]
    if not any(marked):
        return []
    for i in range(1, len(texts)):
        if marked[i - 1] and _CARRIES_ON.match(texts[i]):
            marked[i] = True
    for i in [i for i, m in enumerate(marked) if m]:
        j = i - 1
        while j >= 0 and (not texts[j] or _CORRECTION_CLAUSE.match(texts[j])):
            j -= 1
        if j < i - 1 or _POINTS_BACK.match(texts[i]):
            for k in range(j + 1):
                marked[k] = True
    return [span for span, m in zip(spans, marked, strict=True) if m]


# clauses split at commas and at "and"/"but" that start a new subject: "the older one got voided and
# the current one is approved"
_CLAUSE_BREAK = re.compile(
    r",|\b(?:and|but|while|whereas)\b(?= (?:the|this|that|your|yours|my|our|its|it's|it) )"
    r"|(?<= )(?=(?:the|this|your) (?:live|current|new|newer|fresh|latest|active|real|correct|right) "
    r"(?:one|request|case|auth)\b|(?:yours|ours|hers|his|this one) (?:is|was|'s)\b)"
)


def _clause_spans(norm: str) -> list[tuple[int, int]]:
    spans, at = [], 0
    for brk in _CLAUSE_BREAK.finditer(norm):
        spans.append((at, brk.start()))
        at = brk.end()
    return [*spans, (at, len(norm))]


def _without_spans(norm: str, spans: Sequence[tuple[int, int]]) -> str:
    return ",".join(norm[a:b] for a, b in _clause_spans(norm) if (a, b) not in spans)


# "Me.", "myself, really"; not "me? no, my boss does"
_SELF = re.compile(
    r"^(?:(?:well|oh|yeah|so|honestly|that's|that'd be|that would be|it's)\W+){0,2}"
    r"(?:me|myself|mine|yours truly)\b(?!\s*\?)(?!\W+(?:no|not|nope)\b)"
    r"(?!\s+(?:and|&|plus|along|with|together)\b(?!\s+(?:only|nobody|no one|me alone)\b))"  # "me and only me"
    # "It's my budget line.", not "my company's board decides"
    r"|^(?:\w+\W+)?(?:it's|that's|its) my (?:own )?(?:budget|money|company|business|shop|outfit|firm)\b(?!'s)"
    # "the shop is mine, there is nobody else to ask"
    r"|\b(?:the|this) (?:shop|business|company|store|restaurant|clinic|place|firm) is mine\b"
    r"|\b(?:there's|there is) (?:nobody|no one) else to ask\b"
)
# the speaker names their own post: "I am the director, final decision is mine only" (over a post
# named as a synonym of someone else)
_SELF_BY_POST = re.compile(
    r"^(?:\w+\W+){0,2}?i(?:'m| am) the (?:\w+ )?(?:owner|director|ceo|founder|president|boss|head|manager|"
    r"principal|decision maker|one who (?:decides|signs))\b(?!.{0,40}\b(?:but|however)\b)"
    r"|\b(?:final )?(?:decision|call|say)(?:'s| is) (?:mine|my own)\b"
    r"|(?<!and )\bi own (?:the|this) (?:place|business|company|shop|store|firm|restaurant|clinic)\b"
    r"(?! together| with| jointly)"
    # "the decision sits with me", "software purchases are mine to decide", "I write the checks"
    r"|\b(?:sits?|rests?|lies|lie) with me\b(?!\s+and)"
    r"|\b(?:are|is|'s) mine to (?:decide|approve|sign off|call)\b|\bi (?:write|sign) the (?:checks|cheques)\b"
    # "I sign.", "the signature's mine"; not "I sign up to five grand, above that the CFO"
    r"|\b(?:i sign(?: off)?|(?:the )?signature(?:'s| is) mine|i'm the (?:one|person) who signs)\b"
    r"(?![^.?!]{0,40}\b(?:but|however|over|above|past|beyond|up to|under)\b)"
)
# people a decision rests with: "my wife", "the owner", "our contracting officer", "the board"
_PEOPLE = (
    r"(?:wife|husband|spouse|partners?|boss|owners?|co-owners?|co-founders?|cofounders?|manager|director|"
    r"officer|board|committee|council|ceo|cfo|"
    r"coo|cto|cio|vp|president|founders?|chair|chairman|dean|provost|principal|superintendent|head|chief|"
    r"accountant|bookkeeper|dad|father|mom|mother|brother|sister|son|daughter|family|franchisor|franchise|"
    r"corporate|headquarters|hq|head office|main office|parent company|procurement|purchasing|legal|"
    r"leadership|supervisor|administrator)"
)
_SOMEONE_ELSE = re.compile(
    r"^(?:(?:well|oh|hmm|honestly|that's|that'd be|that would be|it's|that'll be)\W+){0,2}"
    r"(?:my|our|the)\s+(?:[\w'-]+\s+){0,2}" + _PEOPLE + r"\b"
    r"|\b(?:we have|there's|it goes to|it has to go to) (?:a|an|the|our) (?:[\w-]+\s+){0,2}"
    r"(?:committee|board|council)\b"
    r"|\b(?:signed|executed|approved|decided|made|authori[sz]ed)\s+by\s+(?:my|our|the)\s+(?:[\w-]+\s+)?"
    + _PEOPLE
    + r"\b"
    r"|\bmy (?:role|job) is (?:to|just to) (?:make a )?recommend"
    # "I'm just managing the clinic, he gives the final okay"
    r"|\b(?:i'm|im|i am) (?:just|only) (?:managing|running (?:the|this) (?:\w+ )?(?:day|floor|shift)|"
    r"the (?:manager|office manager|assistant)|an? (?:employee|manager|assistant))\b"
    r"|\b(?:he|she|they) (?:gives?|has|have|gets?) the final (?:okay|ok|say|word|call|yes)\b"
    # "my co-founder and I split it", "the checkbook belongs to our regional director"
    r"|\b(?:my|our) (?:[\w'-]+\s+)?" + _PEOPLE + r" and (?:i|me|myself)\b"
    r"|\b(?:checkbook|chequebook|purse strings|signature|final (?:say|word|call)) (?:belongs|belong) to\b"
    r"|\bi (?:only |just )?(?:give|make|prepare|put together|write) (?:only |just )?(?:a |the )?"
    r"(?:recommendation|shortlist|papers|paperwork|proposal)s?\b"
    r"|\bi (?:just )?(?:present|recommend)\b[^.?!]{0,20}\b(?:they|the (?:committee|board|council)) "
    r"(?:vote|votes|decide|decides)\b"
    # "me plus my co-owner", "the owner signs for anything over five grand"
    r"|\bme (?:and|plus|&|along with|together with|with) (?:my|our|the) (?:[\w'-]+\s+){0,2}" + _PEOPLE + r"\b"
    # "Doctor Patel makes the final decision"
    r"|\b(?:(?:my|our|the)\s+(?:[\w'-]+\s+)?" + _PEOPLE + r"|(?:doctor|dr|mr|mrs|ms|miss)\s+[a-z]+)"
    r"\s+(?:signs?|approves?|decides?|okays?|has (?:the )?(?:final|last) (?:say|word)|"
    r"makes? the (?:final |last )?(?:decisions?|calls?)|calls the shots)\b"
)
# "I am. Well, actually, my dad signs for anything that size": who answers after a change of course
_COURSE_CHANGE = re.compile(r"\b(?:but|actually|i mean|though|however|then again)\b")
_DECIDES = re.compile(r"\b(?:signs?|approves?|decides?|decisions?|final|shots|okays?)\b")


def _who_answers(norm: str, who: Mapping[Literal["self", "other"], str]) -> str | None:
    """Who an answer names: the speaker ("Me. It's my outfit") or someone else ("My wife.")."""
    if _SELF.search(norm):
        return who["self"]
    if _SOMEONE_ELSE.search(norm):
        return who["other"]
    return None


_YES_WORDS = frozenset(("yes", "yeah", "yep", "yup"))
_SAYS_YES = re.compile(r"\b(?:say|says|said|saying|nod|nods|give|gives|sign|signs|vote|votes|voted) $")
_NEGATING_STARTS = frozenset("not no never doesn't don't isn't wasn't didn't nothing can't won't".split())


def _plain(text: str) -> str:
    """Lower-case words and apostrophes, single-spaced; a clause break (, . ; ! ?) stays as a
    lone "," so a negation does not reach past it ("not really, my director decides")."""
    words = re.sub(r"[^\w',.;!?]+", " ", normalise(text))
    return " ".join(re.sub(r"(?:[,;!?]|\.(?!\d))+", " , ", words).split())


_POSSESSIVES = ("my", "our", "the")


@lru_cache(maxsize=256)
def _enum_options(values: tuple[str, ...]) -> list[tuple[str, str, re.Pattern[str]]]:
    """(synonym, value, pattern) longest synonym first; the pattern runs on the " "-padded
    ``_plain`` text."""
    options = [(_plain(syn), value.split("|")[0]) for value in values for syn in value.split("|")]
    # "my boss" is also "our boss", "the boss"; but "my decision" is no "the decision"
    speaker = {value for syn, value in options if syn.startswith(("i ", "i'm "))}
    options += [
        (f"{other} {syn.split(' ', 1)[1]}", value)
        for syn, value in list(options)
        if syn.split(" ", 1)[0] in _POSSESSIVES and " " in syn and value not in speaker
        for other in _POSSESSIVES
    ]
    options = list(dict.fromkeys(options))
    return [
        (syn, value, re.compile(rf"(?<= ){phrase_regex(syn.split())}(?= )"))
        for syn, value in sorted(options, key=lambda o: -len(o[0]))
    ]


def extract_string(text: str, slot: Slot | None = None) -> str | None:
    cleaned = " ".join(text.split())
    return cleaned if len(cleaned.split()) >= 3 else None


EXTRACTORS: dict[str, Callable[[str, Slot | None], str | None]] = {
    "number": extract_number,
    "currency": extract_currency,
    "yes_no": extract_yes_no,
    "reference_number": extract_code,
    "id": extract_code,
    "phone": extract_phone,
    "name": extract_name,
    "date": extract_date,
    "time": extract_time,
    "enum": extract_enum,
    "string": extract_string,
}
