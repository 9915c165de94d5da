"""A decision's outcome told by what it means rather than by its name: "the office can go ahead
and book it" (it went through), "that code needs nothing from us" (nothing was needed), "the
office would have to put a request in first" (nothing was started), "we'd want the notes before
anyone looks at it" (still open), "it came back a no" (refused).

An enum slot maps these outcomes to its own values (``Slot.outcomes``); they are heard only where
none of the slot's synonyms is said. A negated one ("they can't go ahead and schedule") tells
nothing; of several, the last one said wins, as with synonyms, except that "go ahead" gives way
to "nothing was needed" (it follows from it).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from engine.nlu.text import negated, normalise
from engine.schema_model import Outcome

_SUBMIT = r"(?:put|send|submit|file|get|start|open|fax|call)"
_REQUEST = r"(?:request|case|auth|authorization|submission|pa|precert|referral)"
_PAPERS = r"(?:clinicals?|notes|records|documentation|chart|paperwork|more info(?:rmation)?|justification)"

_PATTERNS: dict[Outcome, re.Pattern[str]] = {
    # "the provider can go ahead and schedule", "your office is free to book", "they can just go book her"
    "go_ahead": re.compile(
        r"\b(?:can|may|(?:is|are|'s|'re) (?:free|clear|cleared|good|okay|ok|fine|all set) to)\s+"
        r"(?:just\s+|now\s+|already\s+|safely\s+)?(?:go\s+ahead\s+(?:and\s+|with\s+)?|go\s+)?"
        r"(?:schedule|book|proceed|perform|move forward|treat|"
        r"do the (?:procedure|surgery|service|scan|test))\b"
        r"|\bgreen ?light(?:ed)?\b"
        r"|\b(?:an|the) approval(?:'s| is| has been)\s+(?:already\s+)?"
        r"(?:sitting|on|in|there|attached|showing|posted)\b"
    ),
    # "it came back a no", "that one didn't go through"
    "refused": re.compile(
        r"\bcame back (?:as\s+)?(?:a\s+)?(?:no|negative|unfavou?rable|not covered)\b"
        r"|\b(?:didn't|did not) go through\b|\b(?:wasn't|was not|weren't|were not) granted\b"
    ),
    # "that code needs nothing from us", "nothing's required for it"
    "not_needed": re.compile(
        r"\b(?:needs?|requires?) nothing (?:from (?:us|you|the office)|at all|for (?:it|that|this))\b"
        r"|\bnothing(?:'s| is)? (?:needed|required) (?:from (?:us|you)|for (?:it|that|this|the|those|them))\b"
        r"|\b(?:don't|doesn't|do not|does not) need (?:anything|a thing) from us\b"
    ),
    # "the office would need to put a request together first", "nobody's sent anything our way"
    "not_started": re.compile(
        r"\b(?:would|will|'d|'ll|has to|have to|needs? to)\s+(?:need to\s+|have to\s+)?" + _SUBMIT + r"\s+"
        r"(?:in\s+)?(?:a|an|the)\s+(?:new\s+|fresh\s+)?" + _REQUEST + r"\b(?!\s+(?:for the appeal|appeal))"
        r"|\bnobody(?:'s| has| have)? (?:ever\s+)?(?:sent|submitted|faxed|filed) "
        r"(?:anything|a request|us anything)\b"
    ),
    # "we'd want clinicals before any nurse opens it", "nobody's touched it yet"
    "in_progress": re.compile(
        r"\b(?:want|need|needs|require|requires|waiting (?:for|on))\s+(?:the\s+|some\s+|their\s+|more\s+)?"
        r"(?:[\w-]+\s+)?"  # "the chart notes", "updated clinicals"
        + _PAPERS
        + r"\s+(?:before|ahead of|prior to|first)\b"
        r"|\b(?:nobody|no one)(?:'s| has)? (?:touched|looked at|opened|reviewed|picked up) it\b"
        r"|\bhasn't been (?:touched|looked at|opened|picked up)\b"
    ),
}


def told_outcome(text: str, outcomes: Mapping[Outcome, str]) -> str | None:
    """The value of the last outcome ``text`` tells, of those the slot maps; None if none."""
    norm = normalise(text)
    found: list[tuple[int, str, Outcome]] = []
    for outcome, value in outcomes.items():
        for match in _PATTERNS[outcome].finditer(norm):
            if not negated(norm, match.start()):
                found.append((match.start(), value, outcome))
    if any(outcome == "not_needed" for _, _, outcome in found):
        # nothing was needed, so of course the office can go ahead: "needs nothing from us, just book her"
        found = [f for f in found if f[2] != "go_ahead"]
    return max(found)[1] if found else None
