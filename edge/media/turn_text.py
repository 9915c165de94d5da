"""Whether a transcript reads as a finished turn: the words' half of the end-of-turn decision.

Smart turn hears prosody only, and it calls many finished lines in voices unlike its training
data "incomplete", which then costs ``incomplete_end_silence_ms`` of waiting. The transcript of
the audio so far (speech recognition starts at the first pause) says more: a line that ends
on a full stop after a content word is finished; one that ends on "and", "the", "my", a
filler, a digit or a lone letter (an ID read out in groups), or trails off ("…"), is not.
"""

from __future__ import annotations

import re

# words a speaker stops on mid-sentence: conjunctions, articles, prepositions, possessives,
# auxiliaries, fillers and the openers of a stall ("let me see", "so")
_GOES_ON = frozenset(
    """and but or so because cause since if when while though although than then that which who
    whose where the a an this these those my your his her its our their to of for with at in on by
    from into about as like um uh er erm hmm well is was are were be been being am have has had do
    does did will would can could should shall may might must just also plus see let it's i'm
    we're you're they're there's what's""".split()
)
# a question may end on "me" or "that" ("can you hear me?"); these it may not end on
_QUESTION_GOES_ON = frozenset("and but or the a an to of um uh er erm".split())
_NATO = frozenset(
    """alpha bravo charlie delta echo foxtrot golf hotel india juliet juliett kilo lima mike november
    oscar papa quebec romeo sierra tango uniform victor whiskey x-ray xray yankee zulu""".split()
)
_DIGIT_WORDS = frozenset("zero oh one two three four five six seven eight nine".split())
_FINAL = re.compile(r"[.!?]\s*$")
_TRAILS_OFF = re.compile(r"(?:\.\.\.|…|,|-|—)\s*$")


def reads_complete(text: str) -> bool:
    """The transcript ends as a finished turn would (see the module docstring)."""
    text = text.strip()
    if not text or _TRAILS_OFF.search(text) or not _FINAL.search(text):
        return False
    words = re.findall(r"[\w'-]+", text.lower())
    if not words:
        return False
    last = words[-1]
    if last in (_QUESTION_GOES_ON if text.endswith("?") else _GOES_ON):
        return False
    if last in _NATO or last in _DIGIT_WORDS or last.isdigit() or len(last) == 1:
        return False  # "… D as in David, 7 2 0 1, K": a code being read out, in groups
    return words[-3:-1] != ["as", "in"]  # "P as in Paul."
