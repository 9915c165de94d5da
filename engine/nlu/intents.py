"""Intent matching against a schema's example utterances.

The scorer is pluggable: the lexical scorer here is the pure-Python default; the
embedding scorer takes example vectors computed once per schema by the embedding
deployment and the utterance's vector (the same one the semantic cache uses).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from functools import lru_cache
from itertools import pairwise
from typing import Protocol

from engine.schema_model import Intent

_WORD = re.compile(r"[a-z0-9']+")
_STOP = frozenset(
    "a an the to of and or is are was were be been am i you we it this that my your our me us "
    "for on in at with so um uh just please can could would will do does did".split()
)


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


@lru_cache(maxsize=8192)
def features(text: str) -> frozenset[str]:
    """Content-word stems plus bigrams of all words (bigrams keep 'not approved' apart from 'approved')."""
    words = [w.strip("'") for w in _WORD.findall(text.lower().replace("’", "'"))]
    content = {_stem(w) for w in words if w and w not in _STOP}
    bigrams = {f"{a}_{b}" for a, b in pairwise(words)}
    return frozenset(content | bigrams)


class LexicalIntentScorer:
    """Best cosine between the utterance's feature set and any example's."""

    threshold = 0.45

    def score(
        self, utterance: str, intents: Sequence[Intent], embedding: Sequence[float] | None = None
    ) -> list[tuple[str, float]]:
        said = features(utterance)
        out = []
        for intent in intents:
            best = 0.0
            for example in intent.examples:
                ex = features(example)
                if said and ex:
                    best = max(best, len(said & ex) / math.sqrt(len(said) * len(ex)))
            out.append((intent.name, best))
        out.sort(key=lambda item: -item[1])
        return out


class EmbeddingIntentScorer:
    """Cosine between the utterance vector and example vectors (all L2-normalised).

    ``example_vectors`` maps example text → vector; build it once per schema.
    Falls back to the lexical scorer when a turn carries no embedding.
    """

    threshold = 0.6

    def __init__(self, example_vectors: Mapping[str, Sequence[float]]):
        self._vectors = {text: tuple(vec) for text, vec in example_vectors.items()}
        self._lexical = LexicalIntentScorer()

    def score(
        self, utterance: str, intents: Sequence[Intent], embedding: Sequence[float] | None = None
    ) -> list[tuple[str, float]]:
        if embedding is None:
            return self._lexical.score(utterance, intents)
        out = []
        for intent in intents:
            best = 0.0
            for example in intent.examples:
                vec = self._vectors.get(example)
                if vec is not None:
                    best = max(best, sum(a * b for a, b in zip(embedding, vec, strict=True)))
            out.append((intent.name, best))
        out.sort(key=lambda item: -item[1])
        return out
