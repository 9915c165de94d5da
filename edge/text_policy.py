"""What text the front door accepts: bounded, printable, no bidirectional tricks.

A caller's line or a call-data value is rendered into prompts, read by TTS and shown to
operators: control characters (NUL, ESC, CR …), bidirectional overrides and isolates (which
make a transcript read differently from what it holds) and lone surrogates are refused
with a message naming the problem, never echoing the value.
"""

from __future__ import annotations

import re

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")  # tab and newline stay
_BIDI = re.compile(r"[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")


def text_problem(value: str, max_chars: int) -> str | None:
    """Why ``value`` is refused, or None."""
    if len(value) > max_chars:
        return f"is longer than {max_chars} characters"
    if _SURROGATE.search(value):
        return "holds an unpaired surrogate (not valid Unicode text)"
    if _CONTROL.search(value):
        return "holds a control character"
    if _BIDI.search(value):
        return "holds a bidirectional-text control character"
    return None
