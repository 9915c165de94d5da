"""Backchannel detection for transcripts of caller speech heard while the agent is talking.

A backchannel ("mhm", "okay", "uh-huh", "right", "yeah, got it") tells the agent the caller is
listening; it must not interrupt the agent's reply. The media edge already ignores short
sounds by duration (``EdgeConfig.min_barge_in_ms``); this pure function is the second gate
the call (``actors/call.py``) applies to the *transcript* of an utterance spoken during playback.

Rule: after lower-casing, dropping punctuation and collapsing known multi-word phrases
("got it", "i see", "all right", ...), the text is a backchannel when it has at most
``max_tokens`` tokens and every token is a listener token (fillers such as ``mm-hmm`` spelled
any way Whisper writes them, or acknowledgements such as ``okay``/``yeah``/``right``). Any
other word ("no", "wait", "sorry", "but", a number) makes it a real turn. Empty text (noise
Whisper heard as nothing) counts as a backchannel: there is nothing to act on.
"""

from __future__ import annotations

import re
from typing import Final

# Filler sounds, matched per token so every spelling Whisper emits is covered:
# mm, mhm, mmhmm, mm-hmm, hmm, uh, uh-huh, um, ah, oh, aha, er.
_FILLER_RE: Final = re.compile(r"^(?:m+(?:-?h*m+)*|h+m+|u+h+(?:-?h+u+h+)?|u+m+|a+h+|o+h+|a+h+a+|e+r+m*)$")

_ACK_WORDS: Final = frozenset(
    """
    ok okay okey k kay right yeah yea ya yah yep yup yes sure alright fine cool great good
    perfect gotcha understood exactly true correct totally absolutely thanks interesting wow
    nice certainly definitely indeed mhmm
    """.split()
)

# Collapsed to one token before the per-token check (longest first).
_PHRASES: Final = (
    "that's right",
    "thats right",
    "that is right",
    "sounds good",
    "makes sense",
    "thank you",
    "all right",
    "got it",
    "i see",
    "go on",
    "go ahead",
    "for sure",
    "of course",
    "uh huh",
    "mm hmm",
    "i got it",
)
_PHRASE_RE: Final = re.compile(
    r"\b(?:" + "|".join(re.escape(p) for p in sorted(_PHRASES, key=len, reverse=True)) + r")\b"
)
_PHRASE_TOKEN: Final = "<ack>"
# Keep letters, digits, apostrophes and in-word hyphens; everything else separates tokens.
_NON_WORD_RE: Final = re.compile(r"[^a-z0-9'\-]+")

DEFAULT_MAX_TOKENS: Final = 4


def _tokens(text: str) -> list[str]:
    lowered = text.lower().replace("\u2019", "'")
    cleaned = _NON_WORD_RE.sub(" ", lowered)
    cleaned = _PHRASE_RE.sub(f" {_PHRASE_TOKEN} ", cleaned)
    return [t.strip("'-") for t in cleaned.split() if t.strip("'-")]


def _is_listener_token(token: str) -> bool:
    return token == _PHRASE_TOKEN or token in _ACK_WORDS or _FILLER_RE.match(token) is not None


def is_backchannel(text: str, max_tokens: int = DEFAULT_MAX_TOKENS) -> bool:
    """True when ``text`` is only listener feedback (see the module docstring)."""
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be at least 1, got {max_tokens}")
    tokens = _tokens(text)
    if not tokens:
        return True
    if len(tokens) > max_tokens:
        return False
    return all(_is_listener_token(t) for t in tokens)
