"""Checks of what the agent is about to say against what it may say.

``unsupported_identifiers``: the identifiers in a line (digit groups, spelled IDs, dates,
amounts) that appear in none of the texts it may draw on (the call's data in its spoken forms,
the counterpart's words, the schema's own lines). The agent never says an identifier, date or
amount it was not given.

``ReplyGuard``: every sentence of an LLM (or cached) reply, before it is spoken: length,
runs of digits or symbols, repetition, echo of the counterpart, unsupported identifiers,
facts only the counterpart may state. Pure Python, well under a millisecond per sentence
(``benchmarks/bench_guard.py``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache

from engine.nlu.extractors import (
    EXTRACTORS,
    extract_code,
    extract_currency,
    extract_date,
    extract_time,
    spoken_sequence,
)
from engine.nlu.text import clauses
from engine.schema_model import Slot

_NATO_RUN = 2  # letters read in a row ("X-ray Kilo") make an identifier


_CLOCK = re.compile(r"\b\d{1,2}(?::\d{2})?\s*(?:am|pm|a\.m\.|p\.m\.|o'clock)", re.IGNORECASE)
_ACRONYM = re.compile(r"\b[A-Z]{2,4}\b")  # "ID", "CPT", "NPI": labels, not characters of a code


def _runs(text: str) -> list[str]:
    """Identifier-like runs of a text as characters: "X-ray Kilo Mike, four four nine" → XKM449.
    Clock times are facts (checked as such), and acronyms end a run."""
    text = _ACRONYM.sub(" , ", _CLOCK.sub(" , ", text))
    out = []
    for run in "".join(spoken_sequence(text)).split(" "):
        if (len(run) >= 3 and any(c.isdigit() for c in run)) or (
            len(run) >= _NATO_RUN and run.isalpha() and len(run) <= 12
        ):
            out.append(run)
    return out


def _facts(text: str) -> set[str]:
    """Dates and amounts a text states, normalised."""
    found: set[str] = set()
    for clause in clauses(text):
        date = extract_date(clause.text, relative=False)
        if date is not None:
            found.add(f"date:{date[5:]}")  # month and day: the year is often left out when read back
        amount = extract_currency(clause.text)
        if amount is not None:
            found.add(f"money:{amount}")
        if _CLOCK.search(clause.text):
            time = extract_time(clause.text)
            if time is not None:
                found.add(f"time:{time}")
    return found


@lru_cache(maxsize=1024)
def _allowed(texts: tuple[str, ...]) -> tuple[str, frozenset[str]]:
    runs = " ".join(run for t in texts for run in _runs(t))
    runs += " " + " ".join(w.upper() for t in texts for w in re.findall(r"[A-Za-z]{2,}", t))  # names spelled
    for t in texts:  # a date may also be read as its numbers: "one, fifteen, nineteen eighty"
        iso = re.fullmatch(r"(\d{4})-(\d{2})-(\d{2})", t.strip())
        if iso:
            year, month, day = iso.groups()
            runs += f" {int(month)}{int(day)}{year} {month}{day}{year}"
    facts: set[str] = set()
    for t in texts:
        facts |= _facts(t)
        if re.fullmatch(r"\d{2}:\d{2}", t.strip()):
            facts.add(f"time:{t.strip()}")  # a captured time slot
    return runs, frozenset(facts)


PART_MAX = 4  # "ending in 7893": a short piece of an identifier may be said alone


def unsupported_identifiers(
    line: str, allowed_texts: Iterable[str], context: Iterable[str] = ()
) -> list[str]:
    """``allowed_texts``: what stays the same through a call (its data, the schema's lines: cached
    across turns); ``context``: the turn's own (the counterpart's recent words)."""
    runs, facts = _allowed(tuple(allowed_texts))
    extra = tuple(context)
    if extra:
        more_runs, more_facts = _allowed(extra)
        runs, facts = f"{runs} {more_runs}", facts | more_facts
    whole = set(runs.split())
    bad = [
        run
        for run in _runs(line)
        if run not in whole
        and not (len(run) <= PART_MAX and run in runs)
        and not (run.isalpha() and len(run) < 3)
    ]
    bad += sorted(f for f in _facts(line) if f not in facts)
    return bad


class GuardRule(StrEnum):
    """Why a sentence of a reply was not spoken."""

    LENGTH = "length"  # past the reply's sentence or word budget
    RUN = "run"  # a long run of digits or symbols ("117.28.0000…", "!!!!")
    REPETITION = "repetition"  # a sentence said before, or a phrase looping inside one
    ECHO = "echo"  # the counterpart's own words handed back
    IDENTIFIER = "identifier"  # an ID, date or amount the call was never given
    CONFIRMS = "confirms"  # "yes" to a value the counterpart asked about that the call never had
    MISLABEL = "mislabel"  # one of the call's identifiers called something else ("the fax is <NPI>")
    ASSERTS = "asserts"  # states a fact the agent is there to ask for (status, reference …)


@dataclass(frozen=True)
class GuardLimits:
    max_sentences: int = 2
    max_words: int = 45
    max_run: int = 13  # digits in a row (an NPI or a phone number is ten or eleven)
    echo_overlap: float = 0.8  # share of a sentence's words found in the counterpart's line


# digits in a row, symbols, punctuation runs, one letter six times ("Nnnnnn…"), a 30-letter "word"
_RUN = re.compile(r"(?:\d[\s,.-]?){%d,}|[^\w\s'’,.?!-]{4,}|([.!?,])\1{3,}|([A-Za-z])\2{5,}|[A-Za-z]{30,}")
_YES = re.compile(
    r"^\W*(?:yes|yeah|yep|yup|correct|right|exactly|that's (?:right|correct)|that is (?:right|correct)|"
    r"affirmative|sure|confirmed)\b",
    re.IGNORECASE,
)
_WORDS = re.compile(r"[a-z0-9']+")


def _words(text: str) -> list[str]:
    return _WORDS.findall(text.lower().replace("’", "'"))


def _loops(words: list[str]) -> bool:
    """A word said four times running ("no, no, no, no"), or a two- or three-word phrase three
    times ("I'm sorry, I'm sorry. I'm sorry." over a whole reply)."""
    for i in range(len(words) - 3):
        if len(set(words[i : i + 4])) == 1:
            return True
    for n in (2, 3):
        grams = [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
        if any(grams.count(g) >= 3 for g in set(grams)):
            return True
    return False


def _near(a: set[str], b: set[str]) -> bool:
    """Two sentences of mostly the same words (a near repeat)."""
    return len(a) >= 3 and len(b) >= 3 and len(a & b) >= 0.8 * max(len(a), len(b))


# What identifiers are called that are no field of a call: a value of the call's said under one
# of these names is always the wrong thing.
OTHER_LABELS = (
    "fax", "diagnosis", "icd", "claim number", "claim id", "group number", "group id", "reference number",
    "case number", "tracking number", "tax id", "account number", "authorization number",
    "confirmation number", "extension", "ssn", "social security",
)  # fmt: skip


_PARTS = re.compile(
    r"[;:]|,\s+(?=and\b|but\b|or\b|while\b|ordered\b)|\s[-–—]\s|\bwhile\b|\bbut\b", re.IGNORECASE
)


def _label_pattern(labels: Iterable[str]) -> re.Pattern[str]:
    ordered = sorted({label.lower().strip() for label in labels if label.strip()}, key=len, reverse=True)
    return re.compile(r"\b(" + "|".join(re.escape(label) for label in ordered) + r")\b")


class FieldLabels:
    """The call's identifier fields: each field's values (all spoken forms) and the names people
    call it by (``disclose.asked_as`` and the field's own name), for the mislabel check. Built
    once per reply; each sentence costs a regex search and a few set lookups."""

    def __init__(self, values: dict[str, tuple[str, ...]], labels: dict[str, tuple[str, ...]]):
        self.runs = {field: {r for v in forms for r in _runs(v)} for field, forms in values.items()}
        self.label_of = {label.lower(): f for f, names in labels.items() for label in names}
        self.label_of.update({label: "" for label in OTHER_LABELS if label not in self.label_of})
        self.pattern = _label_pattern(self.label_of)

    def mislabelled(self, sentence: str, own: frozenset[str] = frozenset()) -> bool:
        """Whether a part of the sentence says one field's value under another field's name, or
        under a name that is no field of the call, without its own name. ``own``: runs the
        counterpart said (theirs to name)."""
        for part in _PARTS.split(sentence):
            named = {self.label_of[m.group(1)] for m in self.pattern.finditer(part.lower())}
            if not named:
                continue
            runs = set(_runs(part)) - own
            for field, values in self.runs.items():
                if field not in named and any(_part_of(run, values) for run in runs):
                    return True
        return False


def _part_of(run: str, values: set[str]) -> bool:
    """``run`` is one of ``values``, or a short piece of one ("123" of an NPI: "the group number
    is 123" is still the NPI's digits)."""
    return run in values or (len(run) <= PART_MAX and any(run in v for v in values))


class ReplyGuard:
    """Sentence by sentence, as a reply streams: ``check`` returns the rule a sentence breaks
    (and the reply stops there), or None and counts it as said.

    ``allowed`` are the texts the agent may draw identifiers from (the call's data in its spoken
    forms, the counterpart's recent words, the schema's own lines); ``heard`` is the
    counterpart's last line; ``ask_only`` are slots whose facts only the counterpart may state
    (with the values the counterpart already gave, which the agent may repeat); ``recent`` the
    agent's own recent lines (a reply that repeats one is a loop)."""

    def __init__(
        self,
        allowed: Sequence[str],
        heard: str = "",
        ask_only: Sequence[tuple[Slot, str | None]] = (),
        recent: Sequence[str] = (),
        limits: GuardLimits | None = None,
        identifiers: frozenset[str] = frozenset(),
        fields: FieldLabels | None = None,
        context: Sequence[str] = (),
    ):
        self.allowed = tuple(allowed)
        self.context = tuple(context)  # the counterpart's recent lines: identifiers they said
        # the counterpart asks to confirm a value the call does not hold ("the NPI is 987…, right?")
        self.contested = "?" in heard and bool(unsupported_identifiers(heard, self.allowed))
        self.heard = set(_words(heard))
        self.ask_only = tuple(ask_only)
        self.identifiers = identifiers  # the call's own IDs and dates: never a stated fact
        self.fields = fields
        self.heard_runs = frozenset(_runs(heard))
        self.limits = limits or GuardLimits()
        self.said: list[str] = []
        self.seen = {" ".join(_words(line)) for line in recent if line.strip()}
        self.seen_words = [set(_words(line)) for line in recent if line.strip()]
        self.reply_words: list[str] = []
        self.words = 0
        self._run = re.compile(_RUN.pattern.replace("%d", str(self.limits.max_run)))

    def check(self, sentence: str) -> GuardRule | None:
        words = _words(sentence)
        if not words:
            return None
        key = " ".join(words)
        limits = self.limits
        if len(self.said) >= limits.max_sentences or self.words + len(words) > limits.max_words:
            return GuardRule.LENGTH
        if self._run.search(sentence):
            return GuardRule.RUN
        if (
            key in self.seen
            or _loops(self.reply_words + words)
            or any(_near(set(words), seen) for seen in self.seen_words)
        ):
            return GuardRule.REPETITION
        if len(words) >= 4 and sum(w in self.heard for w in words) >= limits.echo_overlap * len(words):
            return GuardRule.ECHO
        if unsupported_identifiers(sentence, self.allowed, self.context):
            return GuardRule.IDENTIFIER
        if self.contested and _YES.match(sentence):
            return GuardRule.CONFIRMS
        if self.fields is not None and self.fields.mislabelled(sentence, self.heard_runs):
            return GuardRule.MISLABEL
        for slot, given in self.ask_only:
            if slot.type in ("reference_number", "id"):
                stated = extract_code(sentence, slot, self.identifiers)
            else:
                stated = EXTRACTORS[slot.type](sentence, slot)
            if stated is not None and stated != given and stated not in self.identifiers:
                return GuardRule.ASSERTS
        self.said.append(sentence)
        self.seen.add(key)
        self.seen_words.append(set(words))
        self.reply_words += words
        self.words += len(words)
        return None
