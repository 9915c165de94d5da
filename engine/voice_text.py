"""Text shaping for voice: sentence splitting, markdown/symbol clean-up, streaming chunker.

Pure standard library; imported by the TTS deployment and the call actors.
"""

from __future__ import annotations

import re

__all__ = ["SentenceChunker", "shape_for_voice", "split_sentences"]

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
_BLANK_LINE_RE = re.compile(r"\n[ \t]*\n")
_LAST_WORD_RE = re.compile(r"[^\s\"'“‘(\[]+$")
_DASH_RE = re.compile(r"\s[-–—]+\s|[—–]")


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
    # Look back only within the current line and a short window: keeps long texts linear.
    line_start = text.rfind("\n", 0, punct_start) + 1
    before = text[max(line_start, punct_start - 40) : punct_start]
    word_match = _LAST_WORD_RE.search(before)
    word = word_match.group(0) if word_match else ""
    bare = word.lower().rstrip(".")
    if bare in _NEVER_END:
        return False
    if len(word) == 1 and word.isupper():
        return False
    if bare in ("no", "nos") and next_start < len(text) and text[next_start].isdigit():
        return False  # "No. 5", while "No. I can't." still splits
    if word.isdigit() and len(word) <= 3 and text[line_start:punct_start].strip() == word:
        return False  # "1. First" at the start of a line is a list number
    return next_start >= len(text) or not text[next_start].islower()


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
    for m in _BLANK_LINE_RE.finditer(text, start):
        if need_next and not text[m.end() :].strip():
            continue
        ends.append(m.start())
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


# --- markdown and symbol clean-up -------------------------------------------------------------

_FENCE_RE = re.compile(r"^\s*(```|~~~)")
_RULE_RE = re.compile(r"^\s*([-*_])(\s*\1){2,}\s*$")
_QUOTE_RE = re.compile(r"^\s*>\s?")
_HEADER_RE = re.compile(r"^\s*#{1,6}\s+(.*?)[\s#]*$")
_ITEM_RE = re.compile(r"^\s*(?:[-*+•]|\d{1,3}[.)])\s+(.*)$")

_INLINE_SUBS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"!\[([^\]]*)\]\([^)]*\)"), r"\1"),  # images -> alt text
    (re.compile(r"\[([^\]]+)\]\([^)]*\)"), r"\1"),  # links -> their text
    (re.compile(r"`+"), ""),  # inline code: keep the words, drop the ticks
    (re.compile(r"(\*\*|__)(?=\S)(.+?)(?<=\S)\1"), r"\2"),  # bold
    (re.compile(r"(?<![\w*])\*(?=\S)(.+?)(?<=\S)\*(?![\w*])"), r"\1"),  # *italics*
    (re.compile(r"(?<!\w)_(?=\S)(.+?)(?<=\S)_(?!\w)"), r"\1"),  # _italics_ (not snake_case)
    (re.compile(r"~~(.+?)~~"), r"\1"),  # strikethrough
    (re.compile(r"(?<=\d)\s*\*\s*(?=\d)"), " times "),
    (re.compile(r"\*+"), ""),  # stray asterisks (e.g. bold cut across chunks)
)

# Symbols TTS voices read badly. Deliberately conservative: each rule only fires in a context
# where the reading is unambiguous; anything else is left for the voice.
#   &            -> "and"                 %  -> "percent"            @ -> "at"
#   "a + b", 2+2 -> "plus" (not "+1 555", "C++")       = (spaced) -> "equals"
#   word/word    -> "word or word" (not 1/2, dates, URLs); and/or -> "and or"; N/A -> "not applicable"
#   #5           -> "number 5"            ~5 -> "about 5"            ° -> "degrees"
#   e.g. / i.e.  -> "for example" / "that is"
#   em/en dash and spaced hyphen -> comma pause
_SYMBOL_SUBS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"&amp;|&"), " and "),
    (re.compile(r"\s*%"), " percent"),
    (re.compile(r"@"), " at "),
    (re.compile(r"(?<=\d)\s*\+\s*(?=\d)|(?<=\s)\+(?=\s)"), " plus "),
    (re.compile(r"(?<=\s)=(?=\s)"), " equals "),
    (re.compile(r"\band/or\b", re.IGNORECASE), "and or"),
    (re.compile(r"\bN/A\b"), "not applicable"),
    (re.compile(r"(?<![\w./:])([A-Za-z]+)/([A-Za-z]+)(?![\w/])"), r"\1 or \2"),
    (re.compile(r"#(?=\d)"), "number "),
    (re.compile(r"(?<!\S)~(?=\d)"), "about "),
    (re.compile(r"\s*°\s*([FC])\b"), r" degrees \1"),
    (re.compile(r"\s*°"), " degrees"),
    (re.compile(r"\be\.g\.(?=\s|,|$)", re.IGNORECASE), "for example"),
    (re.compile(r"\bi\.e\.(?=\s|,|$)", re.IGNORECASE), "that is"),
    (re.compile(r"\s+[-–—]+\s+|\s*[—–]\s*"), ", "),
)
_EMOJI_RE = re.compile(
    "[\U0001f000-\U0001faff\U00002600-\U000027bf\U00002b00-\U00002bff\U0001f1e6-\U0001f1ff"
    "\ufe0e\ufe0f\u200d\u20e3\U000e0020-\U000e007f]"
)
_SPACE_RE = re.compile(r"\s+")
_SPACE_BEFORE_PUNCT_RE = re.compile(r"\s+([.,!?;:])")
_REPEATED_COMMA_RE = re.compile(r",(\s*,)+")
_LEADING_PUNCT_RE = re.compile(r"^[\s,;:]+")


def split_first_clause(sentence: str, max_chars: int = 60, min_chars: int = 20) -> list[str]:
    """A long sentence as [first clause, rest], cut at the first comma past ``min_chars``, so
    the first audio of a reply is synthesised sooner; short sentences stay whole."""
    if len(sentence) <= max_chars:
        return [sentence]
    cut = sentence.find(", ", min_chars)
    if cut < 0 or len(sentence) - cut < min_chars:
        return [sentence]
    return [sentence[: cut + 1], sentence[cut + 2 :]]


def _as_sentence(text: str) -> str:
    """A list item or header becomes a sentence: it must end in terminal punctuation."""
    text = text.rstrip()
    if not text or text[-1] in ".!?":
        return text
    if text[-1] in ",;:":
        text = text[:-1]
    return text + "."


def _clean(text: str) -> str:
    """Markdown, symbols, emoji and whitespace clean-up; keeps the sentence structure."""
    lines: list[str] = []
    for line in text.splitlines():
        if _FENCE_RE.match(line) or _RULE_RE.match(line):
            continue
        line = _QUOTE_RE.sub("", line)
        if (m := _HEADER_RE.match(line)) or (m := _ITEM_RE.match(line)):
            line = _as_sentence(m[1])
        lines.append(line)
    out = " ".join(lines)
    for pattern, repl in _INLINE_SUBS:
        out = pattern.sub(repl, out)
    out = _EMOJI_RE.sub("", out)
    for pattern, repl in _SYMBOL_SUBS:
        out = pattern.sub(repl, out)
    out = _SPACE_RE.sub(" ", out)
    out = _SPACE_BEFORE_PUNCT_RE.sub(r"\1", out)
    out = _REPEATED_COMMA_RE.sub(",", out)
    out = _LEADING_PUNCT_RE.sub("", out)
    return out.strip()


_CLAUSE_END_RE = re.compile(r"[,;:](?=\s)")


def _truncate_words(sentence: str, max_words: int) -> str:
    """Cut one over-long sentence to at most ``max_words`` words, preferring the last clause
    boundary (comma/semicolon/colon) if it keeps at least a third of the budget."""
    words = sentence.split()[:max_words]
    cut = len(words)
    for i in range(len(words) - 1, 0, -1):
        if words[i - 1][-1] in ",;:" and i >= max(2, max_words // 3):
            cut = i
            break
    text = " ".join(words[:cut]).rstrip(",;:-–— ")
    return text if text.endswith((".", "!", "?")) else text + "."


def shape_for_voice(text: str, max_words: int | None = None) -> str:
    """Turn LLM/markdown text into plain text a TTS voice reads well.

    Strips markdown (headers and list items become sentences, links keep their text, code
    fences and backticks go, bold/italics/strikethrough markers go), expands the symbols listed
    above ``_SYMBOL_SUBS``, drops emoji and collapses whitespace. With ``max_words`` the result
    is cut at the last sentence boundary that fits; if the first sentence alone is over the cap
    it is cut at a clause boundary (else at the word cap) and ends with a period.
    """
    cleaned = _clean(text)
    if max_words is None:
        return cleaned
    if max_words < 1:
        raise ValueError("max_words must be at least 1")
    kept: list[str] = []
    count = 0
    for sentence in split_sentences(cleaned):
        n = len(sentence.split())
        if count + n > max_words:
            if not kept:
                kept.append(_truncate_words(sentence, max_words))
            break
        kept.append(sentence)
        count += n
    return " ".join(kept)


# --- streaming chunker ------------------------------------------------------------------------


class SentenceChunker:
    """Groups an LLM token stream into speakable chunks for TTS.

    ``feed(token)`` returns the chunks that became ready, ``flush()`` the rest at the end of
    the reply (and resets the chunker for the next turn). Rules:

    - A chunk ends at a sentence end (same rules as ``split_sentences``) once it holds at least
      ``min_chars``; shorter sentences merge with the next one. A sentence end is only
      confirmed when the next non-space character arrives (or on flush), so "Dr" + "." +
      " Smith" never emits at "Dr.".
    - The first chunk of a reply needs only ``first_chunk_min_chars`` so audio starts early.
      With the default 8, "Sure." (5 chars) still merges with the next sentence — a lone
      one-word chunk sounds clipped and saves little time — while "Of course." goes alone.
    - When the buffer passes ``max_chars`` with no sentence end, it is cut at the last clause
      boundary (, ; : or a dash) or sentence end within ``max_chars``, else at the last space,
      else hard at ``max_chars``.
    - Each chunk goes through the markdown/symbol clean-up of ``shape_for_voice``; chunks that
      clean to nothing (a lone emoji, a "---" rule) are dropped.
    """

    def __init__(self, min_chars: int = 20, max_chars: int = 160, first_chunk_min_chars: int = 8) -> None:
        if not 1 <= first_chunk_min_chars <= min_chars < max_chars:
            raise ValueError("need 1 <= first_chunk_min_chars <= min_chars < max_chars")
        self.min_chars = min_chars
        self.max_chars = max_chars
        self.first_chunk_min_chars = first_chunk_min_chars
        self._buf = ""
        self._emitted = 0

    def feed(self, token: str) -> list[str]:
        self._buf += token
        return self._drain(final=False)

    def flush(self) -> list[str]:
        out = self._drain(final=True)
        rest = _clean(self._buf)
        if rest:
            out.append(rest)
        self._buf = ""
        self._emitted = 0
        return out

    def _drain(self, final: bool) -> list[str]:
        out: list[str] = []
        while True:
            threshold = self.min_chars if self._emitted else self.first_chunk_min_chars
            buf = self._buf
            cut: int | None = None
            for end in _boundaries(buf, need_next=not final):
                if len(buf[:end].strip()) >= threshold:
                    cut = end
                    break
            if cut is None and len(buf) > self.max_chars:
                cut = self._forced_cut(buf, threshold)
            if cut is None:
                return out
            self._buf = buf[cut:].lstrip()
            chunk = _clean(buf[:cut])
            if chunk:
                out.append(chunk)
                self._emitted += 1

    def _forced_cut(self, buf: str, threshold: int) -> int:
        window = buf[: self.max_chars + 1]
        candidates = [m.end() for m in _CLAUSE_END_RE.finditer(window)]
        candidates += [m.start() for m in _DASH_RE.finditer(window)]
        candidates += _boundaries(window)
        usable = [c for c in candidates if threshold <= c <= self.max_chars]
        if usable:
            return max(usable)
        space = window.rfind(" ", 0, self.max_chars + 1)
        return space if space > 0 else self.max_chars
