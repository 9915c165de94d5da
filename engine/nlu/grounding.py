"""Slot values an LLM proposes, kept only when the turn itself bears them out.

A small model asked to extract a reference number will happily write one that was never
said. Every proposed value is normalised the way the local extractors write it and must be
found in the utterance: the characters of a code among the spoken characters, an amount among
the amounts said, a name among the words, an enum value among the slot's values.
"""

from __future__ import annotations

import re

from engine.nlu.extractors import (
    EXTRACTORS,
    extract_code,
    extract_currency,
    extract_number,
    spoken_sequence,
)
from engine.nlu.text import normalise
from engine.schema_model import Slot

_DATE_WORDS = re.compile(
    r"\d|\b(today|tomorrow|yesterday|monday|tuesday|wednesday|thursday|friday|saturday|sunday|week|"
    r"month|january|february|march|april|may|june|july|august|september|october|november|december|"
    r"first|second|third|[a-z]+th)\b"
)


def grounded(value: object, slot: Slot, utterance: str) -> str | None:
    """``value`` as the slot stores it when the utterance bears it out, else None."""
    text = str(value).strip()
    if not text:
        return None
    if slot.type == "string":
        return text
    if slot.type in ("enum", "yes_no"):
        allowed = {"yes", "no"} if slot.type == "yes_no" else {v.split("|")[0] for v in slot.values or ()}
        return text if text in allowed else None
    if slot.type in ("reference_number", "id", "phone"):
        code = extract_code(text) or re.sub(r"[^A-Z0-9]", "", text.upper())
        said = "".join(spoken_sequence(utterance))
        return code if len(code) >= 3 and code in said else None
    if slot.type in ("number", "currency"):
        extract = extract_currency if slot.type == "currency" else extract_number
        proposed = extract(f"{text} dollars", slot)
        return proposed if proposed is not None and proposed == extract(utterance, slot) else None
    if slot.type == "name":
        words = set(normalise(utterance).split())
        return text if all(w in words for w in normalise(text).split()) else None
    if slot.type in ("date", "time"):
        normalised = EXTRACTORS[slot.type](text, slot)
        return normalised if normalised is not None and _DATE_WORDS.search(normalise(utterance)) else None
    return None
