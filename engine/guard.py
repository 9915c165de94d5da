"""Checks of what the agent is about to say against what it may say.

``unsupported_identifiers``: the identifiers in a line (digit groups, spelled IDs, dates,
amounts) that appear in none of the texts it may draw on (the call's data in its spoken forms,
the counterpart's words, the schema's own lines). The agent never says an identifier, date or
amount it was not given.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache

from engine.nlu.extractors import extract_currency, extract_date, extract_time, spoken_sequence
from engine.nlu.text import clauses

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


def unsupported_identifiers(line: str, allowed_texts: Iterable[str]) -> list[str]:
    runs, facts = _allowed(tuple(allowed_texts))
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
