"""One outbound call's first words, when the call first listens for who answered.

    listening ── verdict ──► person/unknown: the opening
                           ► screener: the identity-and-purpose line, then wait for a person
                           ► phone menu: answer its prompts (``engine.menu``), wait for a person
                           ► voicemail: the message (terminal) · fax: nothing (terminal)
                           ► silence: the opening once; silence again: nothing (terminal)
    waiting for a person ── utterance ──► a menu prompt: keys or a spoken choice
                                        ► the machine still talking: nothing
                                        ► a person: the opening, and the conversation goes on

Pure: the call (``actors/call.py``) turns a ``Step`` into reply chunks and turn records.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from common.events import AnsweredBy, AnswerVerdict, ListenFirst
from engine.answered_by import classify, first_words, person_came_on
from engine.menu import MenuNavigator
from engine.schema_model import Answering, ConversationSchemaFile


@dataclass
class Step:
    """What the call does now: ``chunks`` of (text, keys) to play, whether it ends (and how);
    ``ignored``: nothing at all (the machine is still talking)."""

    chunks: list[tuple[str, str]] = field(default_factory=list)
    terminal: bool = False
    outcome: str | None = None
    ignored: bool = False
    person: bool = False  # a person is on the line now: the opening was (re)said


class AnswerFlow:
    def __init__(
        self, spec: ConversationSchemaFile, call_data: Mapping[str, str], values: Mapping[str, object]
    ):
        """``values``: what templates may use (persona and spoken forms); ``call_data`` gives the
        digits a menu asks for."""
        persona = {name: str(value) for name, value in values.items() if value is not None}
        self.rules: Answering = spec.answering or Answering()
        self.navigator = MenuNavigator(spec.menu, call_data, persona) if spec.menu is not None else None
        self.listening = True
        self.awaiting: AnsweredBy | None = None
        self.opened = False  # the opening has been said
        self.note: dict[str, Any] | None = None  # for the call record: who answered, by what, when

    def listen_event(self, state: str) -> ListenFirst:
        beep_wait = self.rules.voicemail.beep_wait_s if self.rules.voicemail is not None else 20.0
        return ListenFirst(turn=0, wait_s=self.rules.wait_s, state=state, beep_wait_s=beep_wait)

    def verdict(self, verdict: AnswerVerdict, opening: list[str], values: Mapping[str, object]) -> Step:
        self.listening = False
        kind = verdict.answered_by
        if self.note is None or kind != AnsweredBy.SILENCE:
            self.note = {
                "answered_by": str(kind),
                "by": verdict.by,
                "decided_ms": round(verdict.decided_ms, 1),
                "beep": verdict.beep,
            }
        else:  # the line stayed silent after the opening: keep when it was first judged silent
            self.note["no_answer_ms"] = round(verdict.decided_ms, 1)
        words = first_words(self.rules, kind, opening, values, self.opened)
        step = Step([(line, "") for line in words.say], words.terminal, words.outcome)
        if words.say and kind in (AnsweredBy.HUMAN, AnsweredBy.UNKNOWN, AnsweredBy.SILENCE):
            self.opened = True
        if words.await_person:
            self.awaiting = kind
            if kind == AnsweredBy.MENU and verdict.text:
                return self._menu(verdict.text) or step
        return step

    def heard(self, text: str, opening: list[str], values: Mapping[str, object]) -> Step | None:
        """An utterance after the verdict; None: an ordinary turn of the conversation."""
        if self.listening:  # a turn before any verdict (text mode): it is its own verdict
            kind = classify(text).answered_by
            verdict = AnswerVerdict(answered_by=kind, by="transcript", decided_ms=0.0, text=text)
            return self.verdict(verdict, opening, values)
        if self.awaiting is None:
            return None
        if self.awaiting == AnsweredBy.MENU:
            step = self._menu(text)
            if step is not None:
                return step
        if not person_came_on(text):
            return Step(ignored=True)
        self.awaiting = None
        if self.navigator is not None:
            self.navigator.reset()
        self.opened = True
        if self.note is not None:
            self.note["person_after"] = True
        return Step([(line, "") for line in opening], person=True)

    def _menu(self, prompt: str) -> Step | None:
        if self.navigator is None:
            return None
        answer = self.navigator.answer(prompt)
        if answer is None:
            return None
        if answer.gave_up:
            return Step(terminal=True, outcome=answer.outcome)
        return Step([(answer.text, answer.keys)])


def listens_first(schema_has_answering: bool, to: str | None, answering: str | None) -> bool:
    """Whether a new call listens for who answered before its opening: as asked, else when it is
    dialled through Twilio (``to``) and its schema says what to do (``answering:``). A call with no
    number (text mode, a simulated counterpart) speaks first unless asked to detect."""
    if answering is not None:
        return answering == "detect"
    return to is not None and schema_has_answering
