"""Being put on hold: when the counterpart asks the agent to hold, the call goes quiet until a
person comes back, then picks up where it was.

- A turn whose intent is ``hold`` ("please hold", "one moment while I pull that up") puts the
  call on hold (when the schema has a ``hold:`` section): the agent says the intent's short
  reply (or nothing) and every ``TurnDone`` says ``hold`` until the counterpart is back, so the
  edge listens cheaply (music never reaches speech recognition) and starts the hold timer.
- While on hold, a turn that heard nothing, or that asks to hold again ("still looking, one
  more moment"), is answered with silence.
- The next real turn ("thanks for holding", "are you still there?", "okay, I have the member")
  ends the hold: the reply is the schema's ``hold.resume`` line and then the turn's own reply
  when it answered something, or else the current state's question again (never an LLM reply).
- ``time_out``: the hold lasted ``hold.timeout_s``; the call ends with ``hold.outcome``.

The flag lives in ``CallState.on_hold`` so a call resumed on another host is still on hold.
"""

from __future__ import annotations

import re

from engine.call_state import CallState
from engine.conversation import Conversation, TurnPlan
from engine.schema_model import Hold

HOLD_INTENT = "hold"
# How a person back from a hold greets the caller. "Thanks for holding" holds the word "hold",
# and intent scoring (more so on garbled speech: "and for holding, you still there") can take
# it for a further request to hold, which would keep the agent silent for good.
# A question to the agent ("you still there?", garbled: "you still have...") is a return too.
RETURN_CUE = re.compile(
    r"\bfor (?:holding|waiting|your patience)\b|\b(?:thanks|thank you) for\b"
    r"|\bstill (?:there|with me|on the line)\b|\bare you there\b|\byou still\b",
    re.IGNORECASE,
)


class HoldFlow:
    def __init__(self, spec: Hold | None, state: CallState):
        self.spec = spec
        self.state = state
        self.timed_out = False

    @property
    def on_hold(self) -> bool:
        return self.spec is not None and self.state.on_hold

    @property
    def timeout_s(self) -> float | None:
        """What the edge's hold timer runs to while on hold (None: not on hold)."""
        return self.spec.timeout_s if self.spec is not None and self.state.on_hold else None

    def silent(self, heard_nothing: bool) -> bool:
        """A turn the agent stays quiet for without even understanding it: nothing was heard
        while on hold (music the edge let through, a cough)."""
        return self.on_hold and heard_nothing

    def shape(self, convo: Conversation, plan: TurnPlan, text: str = "") -> None:
        """Adjust a planned reply for hold: start it, keep it quiet, or end it with the resume line;
        ``text``: what the counterpart said (a person coming back is told by it too)."""
        if self.spec is None or plan.terminal:
            if plan.terminal:
                self.state.on_hold = False
            return
        asked_to_hold = plan.nlu is not None and plan.nlu.intent == HOLD_INTENT and not plan.transitioned
        if not self.state.on_hold:
            if asked_to_hold:
                self.state.on_hold = True
                self.state.log("hold", held=True)
            return
        if asked_to_hold and not RETURN_CUE.search(text):  # still holding ("one more moment"): quiet
            plan.say.clear()
            plan.needs_llm = False
            return
        self.state.on_hold = False
        self.state.log("hold", held=False)
        question = convo.recovery_line()
        if plan.needs_llm or not plan.say or plan.say == [question]:
            plan.say[:] = [self.spec.resume, question]
            plan.needs_llm = False
        else:
            plan.say.insert(0, self.spec.resume)

    def time_out(self) -> str:
        """The hold lasted too long: the call ends with the schema's outcome (returned)."""
        assert self.spec is not None
        self.state.on_hold = False
        self.timed_out = True
        self.state.outcome = self.spec.outcome
        self.state.log("end", outcome=self.spec.outcome, reason="hold_timeout")
        return self.spec.outcome
