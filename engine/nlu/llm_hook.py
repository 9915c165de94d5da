"""LLM capture/detect for turns the local NLU is unsure about.

``complete`` is any async function (system, user) → text, e.g. one that goes through the
LLM router. Replies are asked for as one JSON object and parsed
leniently; anything unparsable counts as "no answer", never an exception.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence

from engine.schema_model import Intent, Slot

Complete = Callable[[str, str], Awaitable[str]]
_OBJECT = re.compile(r"\{.*\}", re.DOTALL)

CAPTURE_SYSTEM = (
    "You extract facts from one sentence said on a phone call. Reply with one JSON object mapping "
    "slot names to values, only for slots the sentence states. No prose."
)
DETECT_SYSTEM = (
    "You classify one sentence said on a phone call into one of the given intents. Reply with one JSON "
    'object: {"intent": <name or null>, "confidence": <0..1>}. No prose.'
)


def parse_object(text: str) -> dict[str, object]:
    match = _OBJECT.search(text)
    if not match:
        return {}
    try:
        value = json.loads(match.group(0))
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


class LLMUnderstanding:
    def __init__(self, complete: Complete):
        self._complete = complete

    async def capture(
        self, utterance: str, slots: Sequence[Slot], context: Mapping[str, str]
    ) -> dict[str, str]:
        wanted = "\n".join(
            f"- {s.name} ({s.type}{': ' + ', '.join(s.values) if s.values else ''})" for s in slots
        )
        reply = await self._complete(CAPTURE_SYSTEM, f"Slots:\n{wanted}\nSentence: {utterance}")
        names = {s.name for s in slots}
        return {k: str(v) for k, v in parse_object(reply).items() if k in names and v not in (None, "")}

    async def detect(
        self, utterance: str, intents: Sequence[Intent], context: Mapping[str, str]
    ) -> tuple[str | None, float]:
        listing = "\n".join(f"- {i.name}: e.g. {i.examples[0]!r}" for i in intents)
        known = ", ".join(sorted(context)) or "none"
        reply = parse_object(
            await self._complete(
                DETECT_SYSTEM, f"Intents:\n{listing}\nKnown so far: {known}\nSentence: {utterance}"
            )
        )
        intent = reply.get("intent")
        try:
            confidence = float(reply.get("confidence", 0.0))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            confidence = 0.0
        return (intent if isinstance(intent, str) else None), max(0.0, min(1.0, confidence))
