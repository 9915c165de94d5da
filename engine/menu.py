"""Getting through a phone menu (IVR): which of the schema's ``menu:`` options a prompt asks for,
and the answer (key presses or a spoken line). Pure Python.

API (for the call's "a phone menu answered" mode)::

    navigator = MenuNavigator(schema.spec.menu, call_data)   # once per call; None menu: no navigator
    answer = navigator.answer(transcript)                    # per menu prompt heard
    if answer is None:        # nothing in the prompt matched: keep listening (or wait for a person)
    elif answer.gave_up:      # the menu repeated the same prompt too often: end with answer.outcome
    elif answer.keys:         # ReplyChunk(keys=answer.keys, text=answer.text): played as DTMF
    else:                     # ReplyChunk(text=answer.say): spoken
    navigator.reset()         # a person answered: the menu is over

Matching works on the prompt as speech recognition writes it: lower-cased, punctuation dropped
(commas kept as clause marks), number words turned into digits, "pound"/"hash" and "star"
kept as words, spelled-out letters joined ("n p i" → "npi"). An option's ``hear`` phrase
matches when it appears in the prompt exactly or nearly (a window of the prompt's words whose
characters agree ≥ 88 %, spaces ignored, so recogniser garble such as "pre-authorization" or
"healthcare" still matches).

Two ways an option is chosen, in the schema's option order (the first option wins):

1. The prompt offers keys ("for prior authorization, press 3" / "press 2 for providers"): an
   option whose phrase names an offer answers that offer; its own ``press``/``say`` if it has
   them, else the key the prompt named.
2. Otherwise an option with its own ``press``/``say`` whose phrase appears anywhere in the
   prompt ("please enter the NPI followed by the pound key") answers with them.

``press`` templates name call-data fields; a field is entered as its digits only
("{provider_npi}#" → "1234567893#"). Loading checks the fields exist and can hold digits
(``check_menu``); a value without digits at run time gives no answer. The same option chosen
again for the next prompt counts as the menu repeating itself; after ``max_repeats`` repeats
the navigator gives up with the schema's ``give_up_outcome``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from difflib import SequenceMatcher
from typing import Final

from engine.schema_model import ConversationSchemaFile, Menu, MenuOption
from engine.templates import Template, TemplateError, compile_template

PRESS_KEYS: Final = frozenset("0123456789*#wW")
# Call-data types whose values carry the digits a menu asks for.
DIGIT_FIELD_TYPES: Final = frozenset({"id", "npi", "cpt", "phone", "date", "number", "string", "time"})
MATCH_RATIO: Final = 0.88

_NUMBER_WORDS: Final = {
    "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5",
    "six": "6", "seven": "7", "eight": "8", "nine": "9",
    "ten": "10",  # "your ten digit NPI": speech recognition writes "10-digit"
}  # fmt: skip
_KEY_WORDS: Final = {"pound": "#", "hash": "#", "star": "*", "asterisk": "*"}
_KEY: Final = r"(?:[0-9]|pound|hash|star|asterisk)"
_PRESS: Final = re.compile(rf"\b(?:press|dial|enter|say)(?: or (?:say|press))?\s+({_KEY})\b")
_INTRO: Final = re.compile(r"(?:^|,)\s*(?:for|to|if)\b")


def normalize(text: str) -> str:
    """Prompt text as the matcher sees it (see the module docstring)."""
    text = text.lower().replace("’", "'")
    text = re.sub(r"\b([a-z])\.(?=[a-z]\.)", r"\1", text)  # n.p.i. → npi.
    text = re.sub(r"[.;:!?]+", ",", text)
    text = re.sub(r"[^a-z0-9#*,' ]+", " ", text)
    text = text.replace(",", " , ")
    words: list[str] = []
    letters: list[str] = []  # a run of spelled letters: "n p i" → "npi"
    for word in [*(_NUMBER_WORDS.get(w, w) for w in text.split()), ""]:
        if len(word) == 1 and word.isalpha():
            letters.append(word)
            continue
        if letters:
            words += ["".join(letters)] if len(letters) > 1 else letters
            letters = []
        if word:
            words.append(word)
    return re.sub(r"(?:\s*,)+", " ,", " ".join(words)).strip(" ,")


def _words(text: str) -> list[str]:
    return [w for w in text.split() if w != ","]


def phrase_in(phrase: str, text: str) -> bool:
    """``phrase`` (normalised) appears in ``text`` (normalised), exactly or nearly: some window of
    the text's words, compared without spaces ("health care" = "healthcare") and of nearly the
    same length, agrees ≥ 88 %."""
    if not phrase:
        return False
    if re.search(rf"(?<![a-z0-9]){re.escape(phrase)}(?![a-z0-9])", text):
        return True
    want = phrase.replace(" ", "")
    have = _words(text)
    n = len(phrase.split())
    for size in sorted({max(1, n - 1), n, n + 1}):
        for start in range(0, max(0, len(have) - size) + 1):
            window = "".join(have[start : start + size])
            if abs(len(window) - len(want)) > max(2, len(want) // 10):
                continue  # a missing or extra word, not garble
            matcher = SequenceMatcher(None, window, want, autojunk=False)
            if (
                matcher.real_quick_ratio() >= MATCH_RATIO
                and matcher.quick_ratio() >= MATCH_RATIO
                and matcher.ratio() >= MATCH_RATIO
            ):
                return True
    return False


def menu_hints(menu: Menu, max_chars: int = 300) -> str:
    """What speech recognition should expect while a phone menu talks: key offers and each
    option's first phrase (never call data). Whisper mishears a synthetic or muffled menu voice
    badly without them ("for private operation, press free")."""
    line = "For providers, press 2, followed by the pound key"  # how menus talk, not a list of keys
    for option in menu.options:
        if option.hear and len(line) + len(option.hear[0]) + 2 <= max_chars:
            line = f"{line}, {option.hear[0]}"
    return line + "."


@dataclass(frozen=True)
class Offer:
    """One "for X, press N" of a prompt."""

    about: str
    key: str


def offers(text: str) -> list[Offer]:
    """The key offers of a normalised prompt, "for X press N" or "press N for X" style."""
    anchors = list(_PRESS.finditer(text))
    if not anchors:
        return []
    keys = [_KEY_WORDS.get(a.group(1), a.group(1)) for a in anchors]
    tail = text[anchors[-1].end() :].lstrip(" ,")
    found: list[Offer] = []
    if re.match(r"(?:for|to|if)\b", tail):  # "press 1 for claims, press 2 for ..."
        for i, anchor in enumerate(anchors):
            end = anchors[i + 1].start() if i + 1 < len(anchors) else len(text)
            found.append(Offer(text[anchor.end() : end].strip(" ,"), keys[i]))
    else:  # "for claims, press 1, for ..., press 2"
        for i, anchor in enumerate(anchors):
            start = anchors[i - 1].end() if i else 0
            segment = text[start : anchor.start()]
            intros = list(_INTRO.finditer(segment))
            if intros:
                segment = segment[intros[-1].start() :]
            found.append(Offer(segment.strip(" ,"), keys[i]))
    return found


@dataclass(frozen=True)
class MenuAnswer:
    """What to do about one menu prompt. ``keys``: press these (DTMF); ``say``: speak this;
    ``gave_up``: stop trying, end the call with ``outcome``."""

    option: int
    keys: str = ""
    say: str = ""
    repeat: int = 0  # how many times in a row this option answered before this prompt
    gave_up: bool = False
    outcome: str | None = None

    @property
    def text(self) -> str:
        """For the transcript: what was pressed or said."""
        if self.gave_up:
            return ""
        return self.say or f"(pressed {self.keys})"


@dataclass(frozen=True)
class _Compiled:
    phrases: tuple[str, ...]
    press: Template | None
    say: Template | None


def _press_template(source: str) -> Template:
    template = compile_template(source)
    literal = "".join(part for part, _ in template.parts)
    bad = sorted(set(literal) - PRESS_KEYS)
    if bad:
        raise TemplateError(f"press may hold only digits, *, #, w and {{fields}}, not {''.join(bad)!r}")
    return template


def check_menu(spec: ConversationSchemaFile) -> list[tuple[tuple[str | int, ...], str]]:
    """Problems of the schema's ``menu:`` section (paths as the loader reports them)."""
    menu = spec.menu
    if menu is None:
        return []
    errors: list[tuple[tuple[str | int, ...], str]] = []
    spoken_fields = set(spec.call_data) | {f"{n}_spoken" for n, f in spec.call_data.items() if f.spoken}
    spoken_fields |= {"agent_name", "organization", "role"}
    for i, option in enumerate(menu.options):
        at: tuple[str | int, ...] = ("menu", "options", i)
        if option.press is not None and option.say is not None:
            errors.append((at, "an option either presses keys or says something, not both"))
        for j, phrase in enumerate(option.hear):
            if not normalize(phrase):
                errors.append(((*at, "hear", j), "an empty phrase matches nothing"))
        if option.press is not None:
            try:
                template = _press_template(option.press)
            except TemplateError as exc:
                errors.append(((*at, "press"), str(exc)))
            else:
                if not template.fields and not option.press:
                    errors.append(((*at, "press"), "press needs keys or a call-data field"))
                for name in template.fields:
                    data_field = spec.call_data.get(name)
                    if data_field is None:
                        errors.append(((*at, "press"), f"{{{name}}} is not a call-data field"))
                    elif data_field.type not in DIGIT_FIELD_TYPES:
                        errors.append(
                            (
                                (*at, "press"),
                                f"{{{name}}} is a {data_field.type} field: it has no digits to press",
                            )
                        )
        if option.say is not None:
            try:
                template = compile_template(option.say)
            except TemplateError as exc:
                errors.append(((*at, "say"), str(exc)))
            else:
                for name in template.fields:
                    if name not in spoken_fields:
                        errors.append(((*at, "say"), f"undefined template variable {{{name}}}"))
    return errors


class MenuNavigator:
    """One call's way through phone menus (see the module docstring)."""

    def __init__(self, menu: Menu, call_data: Mapping[str, str], persona: Mapping[str, str] | None = None):
        self.menu = menu
        self._values = {**(persona or {}), **call_data}
        self._digits = {name: re.sub(r"\D", "", str(value)) for name, value in call_data.items()}
        self._options = tuple(self._compile(option) for option in menu.options)
        self._last: int | None = None
        self._repeats = 0
        self.path: list[MenuAnswer] = []

    @staticmethod
    def _compile(option: MenuOption) -> _Compiled:
        return _Compiled(
            phrases=tuple(p for p in (normalize(h) for h in option.hear) if p),
            press=_press_template(option.press) if option.press is not None else None,
            say=compile_template(option.say) if option.say is not None else None,
        )

    def answer(self, transcript: str) -> MenuAnswer | None:
        text = normalize(transcript)
        if not text:
            return None
        chosen = self._choose(text)
        if chosen is None:
            return None
        index, offered = chosen
        option = self._options[index]
        keys, say = "", ""
        if option.press is not None:
            if any(not self._digits.get(name) for name in option.press.fields):
                return None  # the call has no digits to enter here: let a person take it
            keys = option.press.render(self._digits)
        elif option.say is not None:
            say = option.say.render(self._values).strip()
        elif offered is not None:
            keys = offered
        self._repeats = self._repeats + 1 if index == self._last else 0
        self._last = index
        if self._repeats > self.menu.max_repeats:
            result = MenuAnswer(index, repeat=self._repeats, gave_up=True, outcome=self.menu.give_up_outcome)
        else:
            result = MenuAnswer(index, keys=keys, say=say, repeat=self._repeats)
        self.path.append(result)
        return result

    def _choose(self, text: str) -> tuple[int, str | None] | None:
        offered = offers(text)
        for index, option in enumerate(self._options):
            for offer in offered:
                if any(phrase_in(p, offer.about) for p in option.phrases):
                    return index, offer.key
        for index, option in enumerate(self._options):
            answers_itself = option.press is not None or option.say is not None
            if answers_itself and any(phrase_in(p, text) for p in option.phrases):
                return index, None
        return None

    def reset(self) -> None:
        self._last, self._repeats = None, 0
