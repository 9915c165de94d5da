"""What speech recognition should expect on the counterpart's next turn.

Whisper takes a short text as the prompt its decoding continues from; words in it are far more
likely to come out spelled that way. The hints are this call's own names and identifiers (the
rep will read them back) and the values the current state asks for. They carry PHI: they go to
the speech-to-text service with the audio and are never logged or returned over the API.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine.schema_loader import CompiledSchema

MAX_HINT_CHARS = 400  # Whisper keeps the last ~224 prompt tokens; stay well inside them
SPOKEN_FIELD_TYPES = frozenset({"name", "string", "id", "cpt", "npi"})


def stt_hints(schema: CompiledSchema, state: str, call_data: Mapping[str, Any]) -> str:
    """A comma-separated line: the state's expected values first, then the call's names and IDs."""
    words: list[str] = []
    compiled = schema.states[state]
    for slot in (*compiled.spec.slots, *compiled.lookahead_slots.values()):
        words.extend(value.split("|")[0].replace("_", " ") for value in slot.values or ())  # canonical
    for name, spec in schema.spec.call_data.items():
        value = call_data.get(name)
        if value is not None and spec.type in SPOKEN_FIELD_TYPES and str(value).strip():
            words.append(str(value).strip())
    unique = list(dict.fromkeys(w for w in words if w))
    line = ""
    for word in unique:
        candidate = f"{line}, {word}" if line else word
        if len(candidate) > MAX_HINT_CHARS:
            break
        line = candidate
    return line
