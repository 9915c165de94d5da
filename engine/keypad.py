"""Keypad turns: the counterpart pressed keys instead of speaking.

A keypad turn whose keys (a trailing ``#`` dropped) equal one of an intent's ``keys`` is that
intent with full confidence; any other keypad turn is understood like speech, with the digits as
its text, so id and number slots capture them. Pure Python.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Final

from engine.nlu.understand import NLUResult
from engine.schema_model import ConversationSchemaFile, Intent

KEYS_PATTERN: Final = re.compile(r"[0-9*#]{1,16}")


def entry(keys: str) -> str:
    """The keys as intents list them: a trailing ``#`` (the caller's "enter") dropped."""
    return keys[:-1] if keys.endswith("#") and len(keys) > 1 else keys


def keypad_intent(keys: str, intents: Sequence[Intent]) -> NLUResult | None:
    """The intent these keys stand for, or None (then the keys go through understanding)."""
    pressed = entry(keys)
    if not pressed:
        return None
    for intent in intents:
        if any(entry(k) == pressed for k in intent.keys):
            return NLUResult(intent=intent.name, confidence=1.0, captured={})
    return None


def check_intent_keys(spec: ConversationSchemaFile) -> list[tuple[tuple[str | int, ...], str]]:
    """Intents' ``keys``: digits, * and # only, and no two intents of one state (its own and the
    global ones) answering the same keys."""
    errors: list[tuple[tuple[str | int, ...], str]] = []

    def check(at: tuple[str | int, ...], intents: Sequence[Intent], seen: dict[str, str]) -> None:
        for i, intent in enumerate(intents):
            for j, keys in enumerate(intent.keys):
                where = (*at, i, "keys", j)
                if not KEYS_PATTERN.fullmatch(keys):
                    errors.append((where, f"keys {keys!r}: use 1-16 of the keys 0-9, * and #"))
                    continue
                other = seen.setdefault(entry(keys), intent.name)
                if other != intent.name:
                    errors.append((where, f"keys {keys!r} already stand for intent {other!r}"))

    global_keys: dict[str, str] = {}
    check(("intents",), spec.intents, global_keys)
    for name, state in spec.states.items():
        check(("states", name, "intents"), state.intents, dict(global_keys))
    return errors
