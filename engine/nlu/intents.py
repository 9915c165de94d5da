"""Intent matching against a schema's example utterances.

The scorer is pluggable: the lexical scorer is the pure-Python default; the embedding scorer
adds MiniLM vectors of the examples (computed once per schema by the embedding deployment) and
of the turn (the same vector the semantic cache then looks up with).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from functools import lru_cache
from itertools import pairwise
from typing import Protocol

import numpy as np
import numpy.typing as npt

from engine.nlu.text import negated, normalise, phrase_pattern
from engine.schema_model import Intent

_WORD = re.compile(r"[a-z0-9']+")
_STOP = frozenset(
    "a an the to of and or is are was were be been am i you we it this that my your our me us "
    "for on in at with so um uh just please can could would will do does did".split()
)


# "no" and "not" alone say which way, not what about: they count in bigrams ("not_interested")
_POLARITY = frozenset({"no", "not"})
_GLUE = _STOP | {"not", "no", "that's", "it's", "there", "here", "what", "who"}


class IntentScorer(Protocol):
    threshold: float  # a best score under this means "unsure"

    def score(
        self, utterance: str, intents: Sequence[Intent], embedding: Sequence[float] | None = None
    ) -> list[tuple[str, float]]:
        """(intent name, score 0..1) for every intent, best first."""
        ...


def _stem(word: str) -> str:
    for suffix in ("ing", "ed", "es", "s"):
        if len(word) > len(suffix) + 2 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


_CONTRACTIONS = [
    (re.compile(r"\b(can)'t\b"), r"\1 not"),
    (re.compile(r"\bwon't\b"), "will not"),
    (re.compile(r"\b(\w+)n't\b"), r"\1 not"),
    (re.compile(r"\b(who|what|where|when|how|that|it|there|here|he|she)'s\b"), r"\1 is"),
    (re.compile(r"\b(\w+)'re\b"), r"\1 are"),
    (re.compile(r"\bi'm\b"), "i am"),
    (re.compile(r"\b(\w+)'ll\b"), r"\1 will"),
    (re.compile(r"\b(\w+)'ve\b"), r"\1 have"),
    (re.compile(r"\b(who|what|where|how|why)'d\b"), r"\1 did"),
    (re.compile(r"\b(\w+)'d\b"), r"\1 would"),
]


def expand_contractions(text: str) -> str:
    """ "who's calling" and "who is calling" are the same words to the scorer."""
    for pattern, replacement in _CONTRACTIONS:
        text = pattern.sub(replacement, text)
    return text


@lru_cache(maxsize=8192)
def features(text: str) -> frozenset[str]:
    """Content-word stems plus bigrams of all words (bigrams keep 'not approved' apart from 'approved')."""
    words = [w.strip("'") for w in _WORD.findall(expand_contractions(text.lower().replace("’", "'")))]
    content = {_stem(w) for w in words if w and w not in _STOP and w not in _POLARITY}
    # bigrams of two function words ("that is", "is not") say nothing about what was meant
    bigrams = {f"{a}_{b}" for a, b in pairwise(words) if not (a in _GLUE and b in _GLUE)}
    return frozenset(content | bigrams)


def _vocabularies(intents: Sequence[Intent]) -> tuple[dict[str, frozenset[str]], dict[str, float]]:
    return _vocabularies_of(tuple((i.name, tuple(i.examples)) for i in intents))


@lru_cache(maxsize=256)
def _vocabularies_of(
    intents: tuple[tuple[str, tuple[str, ...]], ...],
) -> tuple[dict[str, frozenset[str]], dict[str, float]]:
    """Each intent's content stems (from all its examples), and how much each stem says about
    which intent it is: log(intents / intents using it), the inverse document frequency over the
    state's intents (a stem every intent uses says nothing)."""
    vocab = {
        name: frozenset(f for e in examples for f in features(e) if "_" not in f)
        for name, examples in intents
    }
    counts: dict[str, int] = {}
    for words in vocab.values():
        for word in words:
            counts[word] = counts.get(word, 0) + 1
    n = len(intents)
    return vocab, {w: math.log((n + 1) / c) for w, c in counts.items()}


COVERAGE_KINDS = ("answer", "ack")  # ways out and requests need more words said to be covered


_NEGATION = re.compile(r"\b(not|no|never|nothing|nobody|none|nope|nah)\b")
POLARITY_PENALTY = 0.3  # taken off the cosine of an example whose polarity differs
PHRASE_SCORE = 0.75  # a key phrase of the intent heard in the turn


@lru_cache(maxsize=1024)
def _phrase_pattern(phrase: str) -> re.Pattern[str]:
    return phrase_pattern(expand_contractions(normalise(phrase)))


def phrase_heard(utterance: str, phrases: Sequence[str]) -> bool:
    """One of ``phrases`` said in the turn and not negated ("I'm not saying we're not interested")."""
    if not phrases:
        return False
    said = expand_contractions(normalise(utterance))
    for phrase in phrases:
        match = _phrase_pattern(phrase).search(said)
        if match and not negated(said, match.start(), window=2):
            return True
    return False


class LexicalIntentScorer:
    """The better of two word-level scores per intent: the best cosine between the turn's
    features and one example's, and how much of the turn's (weighted) content words the
    intent's examples use between them (``coverage`` scaled by ``COVERAGE_WEIGHT``), so a turn
    that mixes the words of two examples of one intent still finds it."""

    threshold = 0.45
    COVERAGE_WEIGHT = 0.7  # full coverage alone scores this (calibrated on the dev sets)
    MIN_CONTENT_WORDS = 2  # a one-word turn is decided by examples, not coverage
    MIN_CONTENT_WORDS_STRONG = 5  # "it's up to me" must not be covered into a request or a way out

    def score(
        self, utterance: str, intents: Sequence[Intent], embedding: Sequence[float] | None = None
    ) -> list[tuple[str, float]]:
        said = features(utterance)
        # letters and digits read out (an ID, a code) say nothing about what the turn does
        content = [f for f in said if "_" not in f and len(f) > 1 and not f.isdigit()]
        vocab, idf = _vocabularies(intents)
        unknown = math.log(len(intents) + 1)  # a word no example uses weighs most
        total = sum(idf.get(w, unknown) for w in content)
        out = []
        for intent in intents:
            best = 0.0
            for example in intent.examples:
                ex = features(example)
                if said and ex:
                    best = max(best, len(said & ex) / math.sqrt(len(said) * len(ex)))
            needed = (
                self.MIN_CONTENT_WORDS if intent.kind in COVERAGE_KINDS else self.MIN_CONTENT_WORDS_STRONG
            )
            if len(content) >= needed and total > 0:
                covered = sum(idf.get(w, unknown) for w in content if w in vocab[intent.name])
                best = max(best, self.COVERAGE_WEIGHT * covered / total)
            if phrase_heard(utterance, intent.phrases):
                best = max(best, PHRASE_SCORE)
            out.append((intent.name, best))
        out.sort(key=lambda item: -item[1])
        return out


class TextEmbedder(Protocol):
    """Unit-norm sentence vectors, one per text (the embedding deployment, or a local model)."""

    async def embed(self, texts: list[str]) -> list[list[float]]: ...


class ExampleVectors:
    """The vectors of a schema's intent examples as one matrix, computed once per schema."""

    def __init__(self, texts: Sequence[str], vectors: npt.ArrayLike):
        matrix = np.asarray(vectors, dtype=np.float32)
        if matrix.ndim != 2 or matrix.shape[0] != len(texts):
            raise ValueError(f"{len(texts)} examples but vectors of shape {matrix.shape}")
        self.matrix = matrix
        self.negative = np.array(
            [_NEGATION.search(expand_contractions(normalise(t))) is not None for t in texts]
        )
        self.row_of = {text: row for row, text in enumerate(texts)}
        self._layouts: dict[tuple[str, ...], tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]] = {}

    def layout(self, intents: Sequence[Intent]) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
        """Rows of the intents' examples, grouped by intent, and where each group starts."""
        key = tuple(i.name for i in intents)
        cached = self._layouts.get(key)
        if cached is None:
            rows: list[int] = []
            starts: list[int] = []
            for intent in intents:
                starts.append(len(rows))
                rows.extend(self.row_of[e] for e in intent.examples if e in self.row_of)
            cached = np.asarray(rows, dtype=np.intp), np.asarray(starts, dtype=np.intp)
            self._layouts[key] = cached
        return cached


AGREEMENT_MARGIN = 0.05  # where two agreeing weak signals put an intent: just over the threshold


class EmbeddingIntentScorer:
    """The lexical score and the nearest example's cosine, on one scale: the better of the two.

    The cosine is mapped linearly so that ``accept`` lands on the lexical threshold and
    ``certain`` on 1.0; and when the nearest example's intent is also the lexical favourite,
    with a cosine of ``agree_cosine`` and a lexical score of ``agree_lexical`` at least, the two
    weak signals together put it just over the threshold. All four are calibrated on the dev
    phrasing sets (``loadtests/nlu_eval.py --calibrate``). One matrix product per turn scores
    every example of the state's intents. A turn without a vector gets the lexical score alone.
    """

    threshold = LexicalIntentScorer.threshold

    def __init__(
        self,
        examples: ExampleVectors,
        accept: float = 0.75,
        certain: float = 0.9,
        agree_cosine: float = 0.5,
        agree_lexical: float = 0.3,
    ):
        self.examples = examples
        self.accept = accept
        self.certain = certain
        self.agree_cosine = agree_cosine
        self.agree_lexical = agree_lexical
        self._lexical = LexicalIntentScorer()

    def score(
        self, utterance: str, intents: Sequence[Intent], embedding: Sequence[float] | None = None
    ) -> list[tuple[str, float]]:
        lexical = self._lexical.score(utterance, intents)
        rows, starts = self.examples.layout(intents)
        if embedding is None or not intents or rows.size == 0:
            return lexical
        sims = self.examples.matrix[rows] @ np.asarray(embedding, dtype=np.float32)
        # MiniLM barely hears "not": an example of the other polarity ("that's not me" against
        # "that's me") counts for less than its cosine says
        negative = _NEGATION.search(expand_contractions(normalise(utterance))) is not None
        sims = np.where(self.examples.negative[rows] == negative, sims, sims - POLARITY_PENALTY)
        best = np.maximum.reduceat(sims, np.minimum(starts, rows.size - 1))
        empty = np.diff(np.append(starts, rows.size)) == 0
        best[empty] = 0.0
        lift = (1.0 - self.threshold) / (self.certain - self.accept)
        mapped = np.clip(self.threshold + (best - self.accept) * lift, 0.0, 1.0)
        semantic = {intent.name: float(value) for intent, value in zip(intents, mapped, strict=True)}
        # Two weak signals that agree: the nearest example and the most words both name it.
        nearest = intents[int(np.argmax(best))].name
        agree = lexical and lexical[0][0] == nearest and lexical[0][1] >= self.agree_lexical
        if agree and float(best.max()) >= self.agree_cosine:
            semantic[nearest] = max(semantic[nearest], self.threshold + AGREEMENT_MARGIN)
        out = [(name, max(score, semantic.get(name, 0.0))) for name, score in lexical]
        out.sort(key=lambda item: -item[1])
        return out
