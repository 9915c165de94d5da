"""Text shaping for voice: sentence splitting, markdown/symbol clean-up, streaming chunker.

Pure standard library; imported by the TTS deployment and the call actors.
"""

from __future__ import annotations

import re

__all__ = ["split_sentences"]

# Words that, followed by ".", never end a sentence: titles and "followed by more" abbreviations.
# Compared lower-case, without the trailing dot.
_NEVER_END = frozenset(
    {
        "dr", "mr", "mrs", "ms", "mx", "prof", "rev", "hon", "fr", "st", "mt", "ft",
        "gen", "sen", "rep", "gov", "capt", "lt", "col", "sgt", "cpl", "pres", "supt",
        "vs", "cf", "approx", "dept", "apt", "ste", "fig", "vol",
        "e.g", "i.e", "eg", "ie", "viz",
    }
)  # fmt: skip

# A sentence-ending run: terminal punctuation, optional closing quotes/brackets, then whitespace.
_END_RE = re.compile(r"[.!?]+[\"'”’)\]]*(\s+)")
# A newline that starts a markdown list item or header (a boundary even without punctuation).
_BLOCK_START_RE = re.compile(r"\n\s*(?:[-*+•]\s|\d{1,3}[.)]\s|#{1,6}\s)")
_LIST_NUMBER_RE = re.compile(r"(?:^|\n)[ \t]*\d{1,3}$")


def _is_boundary(text: str, punct_start: int, next_start: int) -> bool:
    """Decide whether the punctuation run at ``text[punct_start]`` ends a sentence.

    ``next_start`` indexes the first non-space character after it (``len(text)`` when the text
    ends there). Rules, for runs ending in ".":
    - a known title/abbreviation before it (Dr., Mr., e.g., vs.) never ends a sentence;
    - a single capital letter (an initial, "J. Smith") never does;
    - a list number at the start of a line ("1. First") never does;
    - otherwise a "." ends a sentence unless the next word starts lower-case, which covers
      a.m./p.m./U.S./etc. mid-sentence ("at 9 a.m. on Monday") while still splitting
      "at 9 a.m. Is that okay?". Decimals ("3.5") have no space after the dot, so never split.
    "!" and "?" always end a sentence.
    """
    run = text[punct_start:next_start].rstrip()
    if "!" in run or "?" in run:
        return True
    if run.startswith("..."):
        # An ellipsis ends a sentence only before a capital letter.
        return next_start >= len(text) or not text[next_start].islower()
    before = text[:punct_start]
    word_match = re.search(r"[^\s\"'“‘(\[]+$", before)
    word = word_match.group(0) if word_match else ""
    bare = word.lower().rstrip(".")
    if bare in _NEVER_END:
        return False
    if len(word) == 1 and word.isupper():
        return False
    if bare in ("no", "nos") and next_start < len(text) and text[next_start].isdigit():
        return False  # "No. 5", while "No. I can't." still splits
    if word.isdigit() and _LIST_NUMBER_RE.search(before):
        return False
    if next_start < len(text) and text[next_start].islower():
        return False
    return True


def _boundaries(text: str, start: int = 0, need_next: bool = False) -> list[int]:
    """Positions (exclusive ends, before the whitespace) where sentences end in ``text``.

    With ``need_next`` a boundary counts only once a non-space character follows it — the
    streaming case, where the next token may turn "Dr." into "Dr. Smith".
    """
    ends: list[int] = []
    for m in _END_RE.finditer(text, start):
        next_start = m.end()
        if need_next and next_start >= len(text):
            continue
        if _is_boundary(text, m.start(), next_start):
            ends.append(m.start(1))
    for m in _BLOCK_START_RE.finditer(text, start):
        end = m.start()
        if end > 0 and text[:end].strip():
            ends.append(end)
    if "\n" in text:
        for m in re.finditer(r"\n[ \t]*\n", text[start:]):
            ends.append(start + m.start())
    return sorted(set(ends))


def split_sentences(text: str) -> list[str]:
    """Split text into sentences, stripped, without empty items.

    Does not split on common abbreviations (Dr., Mr., Mrs., e.g., i.e., U.S. or a.m./p.m.
    mid-sentence), decimals (3.5) or initials ("J. R. Smith"). Blank lines and markdown list
    items/headers on new lines also start a new sentence. See ``_is_boundary`` for the rules.
    """
    sentences: list[str] = []
    prev = 0
    for end in _boundaries(text):
        piece = text[prev:end].strip()
        if piece:
            sentences.append(piece)
        prev = end
    rest = text[prev:].strip()
    if rest:
        sentences.append(rest)
    return sentences
