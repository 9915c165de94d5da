"""Capture + detect for one caller turn, local first, with the two-pass reconcile.

Pass 1 runs capture (slot extraction) and detect (intent) side by side; detect sees the
context as it was before this turn. Detect runs again (pass 2) only when capture filled a
critical slot, a slot that implies an intent, or detect was unsure. The LLM hook is asked
only when the local result stays unsure, and then follows the same two-pass pattern.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from engine.nlu.extractors import EXTRACTORS, extract_date
from engine.nlu.intents import IntentScorer, LexicalIntentScorer
from engine.schema_model import Intent, Slot

IMPLIED_SLOT_BOOST = 0.5  # a captured implying slot alone is enough evidence


class LLMUnderstandingHook(Protocol):
    async def capture(
        self, utterance: str, slots: Sequence[Slot], context: Mapping[str, str]
    ) -> dict[str, str]: ...

    async def detect(
        self, utterance: str, intents: Sequence[Intent], context: Mapping[str, str]
    ) -> tuple[str | None, float]: ...


@dataclass
class NLUResult:
    intent: str | None
    confidence: float
    captured: dict[str, str]
    reconciled: bool = False
    used_llm: bool = False
    scores: list[tuple[str, float]] = field(default_factory=list)
    timings_ms: dict[str, float] = field(default_factory=dict)


def capture_local(
    utterance: str,
    slots: Mapping[str, Slot],
    filled: Mapping[str, str],
    today: dt.date | None = None,
    lookahead: frozenset[str] = frozenset(),
) -> dict[str, str]:
    """Typed extraction for the state's slots. Free-text slots take the utterance only when empty;
    ``lookahead`` slots (of later states) take explicit values only, never "today" or "Friday"."""
    out: dict[str, str] = {}
    for name, slot in slots.items():
        if slot.type == "string" and name in filled:
            continue
        if slot.type == "date":
            value = extract_date(utterance, slot, today=today, relative=name not in lookahead)
        else:
            value = EXTRACTORS[slot.type](utterance, slot)
        if value is not None:
            out[name] = value
    return out


def detect_local(
    scorer: IntentScorer,
    utterance: str,
    intents: Sequence[Intent],
    new_slots: Mapping[str, str],
    embedding: Sequence[float] | None = None,
) -> list[tuple[str, float]]:
    """Scores best first; intents implied by slots captured this turn get a boost."""
    scores = scorer.score(utterance, intents, embedding)
    if new_slots:
        implied = {i.name for i in intents if any(s in new_slots for s in i.implied_by_slots)}
        scores = [(n, min(1.0, s + IMPLIED_SLOT_BOOST) if n in implied else s) for n, s in scores]
        scores.sort(key=lambda item: -item[1])
    return scores


class Understander:
    def __init__(
        self,
        scorer: IntentScorer | None = None,
        llm: LLMUnderstandingHook | None = None,
        threshold: float | None = None,
    ):
        self.scorer = scorer or LexicalIntentScorer()
        self.llm = llm
        self.threshold = self.scorer.threshold if threshold is None else threshold

    def _needs_reconcile(
        self,
        captured: Mapping[str, str],
        slots: Mapping[str, Slot],
        intents: Sequence[Intent],
        confidence: float,
    ) -> bool:
        critical = any(slots[name].critical for name in captured if name in slots)
        implies = any(s in captured for i in intents for s in i.implied_by_slots)
        return critical or implies or confidence < self.threshold

    async def understand(
        self,
        utterance: str,
        intents: Sequence[Intent],
        slots: Mapping[str, Slot],
        filled: Mapping[str, str],
        embedding: Sequence[float] | None = None,
        today: dt.date | None = None,
        lookahead: frozenset[str] = frozenset(),
    ) -> NLUResult:
        t0 = time.perf_counter()
        captured = capture_local(utterance, slots, filled, today, lookahead)
        scores = detect_local(self.scorer, utterance, intents, {}, embedding)
        reconciled = False
        best, confidence = scores[0] if scores else (None, 0.0)
        if captured and self._needs_reconcile(captured, slots, intents, confidence):
            reconciled = True
            scores = detect_local(self.scorer, utterance, intents, captured, embedding)
            best, confidence = scores[0] if scores else (None, 0.0)
        t_local = time.perf_counter()
        result = NLUResult(
            intent=best if confidence >= self.threshold else None,
            confidence=confidence,
            captured=captured,
            reconciled=reconciled,
            scores=scores[:3],
            timings_ms={"local_ms": (t_local - t0) * 1000},
        )
        if result.intent is None and self.llm is not None:
            await self._ask_llm(result, utterance, intents, slots, filled)
            result.timings_ms["llm_ms"] = (time.perf_counter() - t_local) * 1000
        _drop_free_text_explained_by_intent(result, intents, slots)
        return result

    async def _ask_llm(
        self,
        result: NLUResult,
        utterance: str,
        intents: Sequence[Intent],
        slots: Mapping[str, Slot],
        filled: Mapping[str, str],
    ) -> None:
        assert self.llm is not None
        missing = [s for name, s in slots.items() if name not in filled and name not in result.captured]
        context = {**filled, **result.captured}
        llm_captured, (intent, confidence) = await asyncio.gather(
            self.llm.capture(utterance, missing, context) if missing else _no_capture(),
            self.llm.detect(utterance, intents, context),
        )
        llm_captured = {k: v for k, v in llm_captured.items() if k in slots}
        result.used_llm = True
        if llm_captured and self._needs_reconcile(llm_captured, slots, intents, confidence):
            result.reconciled = True
            intent, confidence = await self.llm.detect(utterance, intents, {**context, **llm_captured})
        result.captured.update(llm_captured)
        known = {i.name for i in intents}
        if intent in known and confidence >= self.threshold:
            result.intent, result.confidence = intent, confidence


def _drop_free_text_explained_by_intent(
    result: NLUResult, intents: Sequence[Intent], slots: Mapping[str, Slot]
) -> None:
    """A free-text slot takes the whole utterance, so "say that again" is no answer to "what's
    your biggest challenge": drop it when a confident intent that does not imply it explains the turn."""
    if result.intent is None:
        return
    intent = next((i for i in intents if i.name == result.intent), None)
    implied = set(intent.implied_by_slots) if intent else set()
    for name in [
        n for n in result.captured if slots.get(n) and slots[n].type == "string" and n not in implied
    ]:
        del result.captured[name]


async def _no_capture() -> dict[str, str]:
    return {}
