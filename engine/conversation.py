"""The per-call conversation: state machine over a compiled schema.

A turn is: understand the caller (capture + detect) → store slots → pick the first
transition whose condition holds → run the new state's ``on_enter`` functions → plan the
reply: scripted lines (``say`` templates) when the schema has them, otherwise an LLM reply
in the current state. Everything here is pure Python; the call (``actors/call.py``) supplies embeddings
and the LLM.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from common.events import TransferOrder
from engine import disclose, transfer
from engine.call_state import CallState
from engine.do_not_call import contact_keys
from engine.functions import FUNCTIONS
from engine.guard import FieldLabels, GuardLimits, ReplyGuard
from engine.keypad import entry as keypad_entry
from engine.keypad import keypad_intent
from engine.nlu.extractors import extract_enum
from engine.nlu.moves import goes_back
from engine.nlu.text import is_question
from engine.nlu.understand import ASK_FIELD, NLUResult, TurnContext, Understander
from engine.schema_loader import SPOKEN_SLOT_RULES, CompiledSchema, CompiledState
from engine.schema_model import When
from engine.spoken import SPOKEN_RULES

REPEAT_INTENT = "repeat"
GUARD_CALLER_LINES = 6  # the counterpart's recent words an off-script reply may draw on
GUARD_AGENT_LINES = 3  # the agent's own recent lines a reply must not repeat
MAX_PASS_THROUGH = 8
LLM_HISTORY_LINES = 2  # the call's last lines an LLM reply sees: its own last line, the question


@dataclass
class TurnPlan:
    """What the agent does next. ``say`` lines are spoken in order; ``needs_llm`` asks the
    call for an off-script reply (cache first, then the LLM) in ``state``."""

    state: str
    previous_state: str
    say: list[str] = field(default_factory=list)
    needs_llm: bool = False
    terminal: bool = False
    outcome: str | None = None
    transfer: TransferOrder | None = None  # entering a transfer state: hand the call to a person
    nlu: NLUResult | None = None
    timings_ms: dict[str, float] = field(default_factory=dict)

    @property
    def transitioned(self) -> bool:
        return self.state != self.previous_state


def condition_holds(
    when: When, intent: str | None, slots: Mapping[str, str], changed: frozenset[str] = frozenset()
) -> bool:
    if when.always:
        return True
    if when.slots_changed and not changed.intersection(when.slots_changed):
        return False
    intents = when.intents()
    if intents and intent not in intents:
        return False
    if any(name not in slots for name in when.slots_filled):
        return False
    if any(name in slots for name in when.slots_missing):
        return False
    if any(str(slots.get(name)).lower() != str(value).lower() for name, value in when.slot_equals.items()):
        return False
    if any(slots.get(name) not in values for name, values in when.slot_in.items()):
        return False
    for name, bound in when.slot_gte.items():
        if _number(slots.get(name)) is None or _number(slots.get(name)) < bound:  # type: ignore[operator]
            return False
    for name, bound in when.slot_lt.items():
        value = _number(slots.get(name))
        if value is None or value >= bound:
            return False
    return True


def _number(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


_REPLY_RULES = (
    "Phone call. Answer in one or two short sentences, in your own words. Say only names and numbers "
    "written here; if you don't know, say you'll check. Example: \"I don't have that in front of me, "
    'but I can find out for you."'
)


def _spoken_facts(
    fields: Mapping[str, Any],
    values: Mapping[str, Any],
    skip: str = "",
    only: Mapping[str, Any] | None = None,
) -> str:
    """``name: value`` for each field (its spoken form where it has one), leaving out PII, fields
    not in ``only`` (when given) and values already said in ``skip``."""
    out = []
    for name, spec in fields.items():
        if getattr(spec, "pii", False) or (only is not None and name not in only):
            continue
        value = str(values.get(f"{name}_spoken") or values.get(name) or "").replace("_", " ")
        if value and value not in skip:
            out.append(f"{name.replace('_', ' ')}: {value}")
    return "; ".join(out)


class Conversation:
    def __init__(
        self,
        schema: CompiledSchema,
        state: CallState,
        understander: Understander | None = None,
        today: Callable[[], dt.date] = dt.date.today,
    ):
        if state.schema != schema.name:
            raise ValueError(f"call state is for schema {state.schema!r}, not {schema.name!r}")
        self.schema = schema
        self.state = state
        self.understander = understander or Understander()
        self.today = today  # relative dates ("next Tuesday") resolve against it
        self.values: dict[str, Any] = schema.precompute(state.call_data)
        self.identifiers = disclose.identifiers(schema.spec, state.call_data)
        self.field_values = disclose.checkable_values(schema.spec, state.call_data)
        self.contact_names = tuple(
            str(state.call_data[name])
            for name, spec in schema.spec.call_data.items()
            if spec.contact and spec.type == "name" and state.call_data.get(name)
        )

    @classmethod
    def start(
        cls,
        schema: CompiledSchema,
        call_id: str,
        call_data: Mapping[str, Any],
        understander: Understander | None = None,
        to: str | None = None,
    ) -> Conversation:
        """Validate call data (raises CallDataError) and create the call at the initial state;
        ``to`` is the number dialled, if any."""
        data = schema.validate_call_data(call_data)
        state = CallState(
            call_id=call_id,
            schema=schema.name,
            schema_version=schema.version,
            state=schema.initial_state,
            call_data=data,
            contact_keys=contact_keys(schema.spec, data, to),
        )
        conversation = cls(schema, state, understander)
        conversation._enter(schema.initial_state)
        return conversation

    @property
    def current(self) -> CompiledState:
        return self.schema.states[self.state.state]

    @property
    def finished(self) -> bool:
        return self.current.spec.terminal

    @property
    def do_not_call(self) -> bool:
        """The call ended where the counterpart asked never to be called again."""
        return self.current.spec.terminal and self.current.spec.do_not_call

    def render(self) -> dict[str, Any]:
        values = {**self.values, **self.state.slots}
        for name, value in self.state.slots.items():
            rule = SPOKEN_SLOT_RULES.get(self.schema.slot_types.get(name, ""))
            if rule is not None:
                try:
                    values[f"{name}_spoken"] = SPOKEN_RULES[rule](value)
                except ValueError:
                    values[f"{name}_spoken"] = value
        return values

    def opening(self) -> TurnPlan:
        """The agent's first words, when the initial state speaks first."""
        plan = TurnPlan(state=self.state.state, previous_state=self.state.state)
        if self.current.spec.respond_immediately and self.current.say is not None:
            plan.say.append(self.current.say.render(self.render()))
        elif self.current.spec.respond_immediately:
            plan.needs_llm = True
        return plan

    async def take_turn(
        self, utterance: str, embedding: Sequence[float] | None = None, keys: str = ""
    ) -> TurnPlan:
        """One counterpart turn; ``keys``: what a keypad turn pressed (``engine/keypad.py``)."""
        if self.finished:
            raise RuntimeError(f"call {self.state.call_id} has ended in state {self.state.state!r}")
        t0 = time.perf_counter()
        state = self.state
        current = self.current
        state.total_turns += 1
        state.turns_in_state += 1
        state.history.append(("caller", utterance))
        ahead = {n: s for n, s in current.lookahead_slots.items() if n not in state.slots}
        if goes_back(utterance):  # "going back to the money, it's nine grand": explicit values again
            ahead = {**current.revisited_slots, **ahead}
        wanted = {**ahead, **current.slots} if ahead else current.slots
        context = TurnContext(
            today=self.today(),
            lookahead=frozenset(ahead),
            exclude=self.identifiers,
            field_phrases=self.schema.field_phrases,
            recent_fields=disclose.fields_in(state.last_agent_line, self.schema.spec, self.values),
            field_values=self.field_values,
            vocabulary=self.schema.vocabulary,
            contact_names=self.contact_names,
        )
        nlu = keypad_intent(keys, current.intents) if keys else None
        if nlu is None:
            nlu = await self.understander.understand(
                keypad_entry(keys) if keys else utterance,
                current.intents,
                wanted,
                state.slots,
                context,
                embedding=None if keys else embedding,
            )
        t_nlu = time.perf_counter()
        if self._is_aside(nlu) and state.asides_in_state < current.spec.max_turns:
            state.turns_in_state -= 1  # a request or an aside is no failed attempt at the question
            state.asides_in_state += 1
        state.reconciles += nlu.reconciled
        state.llm_nlu_turns += nlu.used_llm
        changed = frozenset(n for n, v in nlu.captured.items() if n in state.slots and state.slots[n] != v)
        if nlu.captured:
            state.slots.update(nlu.captured)
            state.log("capture", slots=sorted(nlu.captured))
        state.log("intent", intent=nlu.intent, confidence=round(nlu.confidence, 3))

        plan = TurnPlan(state=state.state, previous_state=state.state, nlu=nlu)
        answer = self._answer(nlu, utterance)
        way_out = self._global_target(nlu.intent)
        kinds = {slot.name: slot.type for slot in current.spec.slots}
        answered = any(kinds.get(name) not in (None, "yes_no") for name in nlu.captured)
        if way_out is not None and not answered and not self._state_handles(nlu.intent):
            # "No. And put me on your do-not-call list": a way out for good outranks a yes or no
            # said with it, unless the state routes that way out itself; a value the turn gave
            # still moves the call on ("it's 904416, give them that number if you call back")
            self._move(way_out, reason=f"intent:{nlu.intent}", plan=plan)
        elif self._follow_transition(nlu.intent, plan, changed=changed):
            self._carry_over(utterance)
            if answer is not None:
                plan.say.insert(0, answer)
        elif answer is not None:
            plan.say.append(answer)
        else:
            self._stay(nlu, plan)
        self._maybe_escalate()
        plan.timings_ms = {
            "nlu_ms": (t_nlu - t0) * 1000,
            "transition_ms": (time.perf_counter() - t_nlu) * 1000,
        }
        return plan

    def _follow_transition(
        self, intent: str | None, plan: TurnPlan, hops: int = 0, changed: frozenset[str] = frozenset()
    ) -> bool:
        current = self.current
        for index, transition in enumerate(current.spec.transitions):
            if condition_holds(transition.when, intent, self.state.slots, changed):
                if not self._can_enter(transition.target):
                    continue
                for name in transition.clear:
                    self.state.slots.pop(name, None)
                line = current.transition_says[index]
                if line is not None:
                    plan.say.append(line.render(self.render()))
                self._move(transition.target, reason=f"transitions[{index}]", plan=plan, hops=hops)
                return True
        return False

    def _maybe_escalate(self) -> None:
        """The schema's escalation rule, checked after every turn; once it holds it stays."""
        rule = self.schema.spec.escalation
        if rule is None or self.state.escalated_at is not None:
            return
        if condition_holds(rule.when, None, self.state.slots):
            self.state.escalated_at = self.state.total_turns
            self.state.log("escalate", llm_tier=rule.llm_tier, tts_tier=rule.tts_tier)

    def _carry_over(self, utterance: str) -> None:
        """The turn that led into a state may already answer it: "we signed with another vendor,
        not interested" gives the objection the objection state asks about. Only closed values
        (enums) carry over, never free text or numbers."""
        if self.finished:
            return
        for slot in self.current.spec.slots:
            if slot.type == "enum" and slot.name not in self.state.slots:
                value = extract_enum(utterance, slot)
                if value is not None:
                    self.state.slots[slot.name] = value
                    self.state.log("carry_over", slot=slot.name)

    def _answer(self, nlu: NLUResult, utterance: str) -> str | None:
        """The line that answers the counterpart's request for a piece of the call's data (never
        when the request is about someone else: this call's data is not theirs)."""
        if nlu.intent != ASK_FIELD or nlu.asked is None:
            return None
        field = nlu.asked.field
        if disclose.about_someone_else(utterance):
            self.state.log("disclose", field=field, answered=False, other_person=True)
            return self.schema.fallbacks["not_available"].render(self.render())
        # Asked for what was just read out: say it slower and grouped.
        again = nlu.asked.slowly or any(
            f == field
            for f, _ in disclose.fields_in(self.state.last_agent_line, self.schema.spec, self.values)
        )
        line = disclose.answer(self.schema.spec, self.state.call_data, field, slow=again)
        self.state.log("disclose", field=field, slow=again, answered=line is not None)
        return line or self.schema.fallbacks["not_available"].render(self.render())

    def _state_handles(self, intent: str | None) -> bool:
        """Whether one of this state's transitions names ``intent``."""
        return intent is not None and any(intent in t.when.intents() for t in self.current.spec.transitions)

    def _global_target(self, intent: str | None) -> str | None:
        spec = next((i for i in self.schema.spec.intents if i.name == intent), None)
        if spec is None or spec.target is None or not self._can_enter(spec.target):
            return None
        return spec.target

    def _can_enter(self, name: str) -> bool:
        """False for a transfer state without a number (its call-data field was left out)."""
        spec = self.schema.states[name].spec
        return spec.transfer is None or transfer.can_enter(spec, self.render())

    def _is_aside(self, nlu: NLUResult) -> bool:
        if nlu.captured:
            return False
        if nlu.intent == ASK_FIELD:
            return True
        kind = next((i.kind for i in self.current.intents if i.name == nlu.intent), None)
        return kind in ("request", "ack")

    def _stay(self, nlu: NLUResult, plan: TurnPlan) -> None:
        current = self.current
        spec = current.spec
        if self.state.turns_in_state >= spec.max_turns and spec.fallback is not None:
            plan.say.append(self.schema.fallbacks["max_turns"].render(self.render()))
            self._move(spec.fallback, reason="max_turns", plan=plan)
        elif nlu.intent == REPEAT_INTENT and self.state.last_agent_line:
            plan.say.append(self.state.last_agent_line)
        elif nlu.intent is not None and nlu.intent in current.replies:
            plan.say.append(current.replies[nlu.intent].render(self.render()))
        elif current.say is not None and (
            nlu.intent is not None or not is_question(self.state.history[-1][1])
        ):
            # Said something that answers nothing ("okay", small talk), or an intent this state
            # has nothing for: ask the state's question again rather than have the LLM improvise.
            # Only an unrecognised question goes to the LLM (and so to the cache).
            plan.say.append(current.say.render(self.render()))
        elif spec.prompt.strip() and nlu.intent is None:
            plan.needs_llm = True
        else:
            plan.say.append(self.schema.fallbacks["no_match"].render(self.render()))

    def _move(self, target: str, reason: str, plan: TurnPlan, hops: int = 0) -> None:
        """Enter ``target``. A state whose transition already holds on entry is passed through
        without its line, so nothing the caller already said is asked again."""
        self.state.log("transition", source=self.state.state, target=target, reason=reason)
        self._enter(target)
        plan.state = target
        entered = self.current
        plan.terminal = entered.spec.terminal
        plan.outcome = entered.spec.outcome
        if entered.spec.transfer is not None:
            plan.transfer = transfer.transfer_order(entered.spec, self.render())
        if not plan.terminal and hops < MAX_PASS_THROUGH and self._follow_transition(None, plan, hops + 1):
            return
        if entered.say is not None:
            plan.say.append(entered.say.render(self.render()))
        elif entered.spec.prompt.strip() and entered.spec.respond_immediately:
            plan.needs_llm = True

    def _enter(self, name: str) -> None:
        self.state.state = name
        self.state.turns_in_state = 0
        self.state.asides_in_state = 0
        spec = self.schema.states[name].spec
        for compute in spec.on_enter:
            self.state.slots[compute.store_as] = str(FUNCTIONS[compute.compute](self.state.slots))
        if spec.terminal:
            self.state.outcome = spec.outcome
            self.state.log("end", outcome=spec.outcome)

    def reply_guard(self, caller_text: str) -> ReplyGuard:
        """The guard for an off-script reply to ``caller_text`` in the current state."""
        spec = self.schema.spec
        heard = [text for who, text in self.state.history if who == "caller"][-GUARD_CALLER_LINES:]
        said = [text for who, text in self.state.history if who == "agent"][-GUARD_AGENT_LINES:]
        ask_only = [
            (slot, self.state.slots.get(name))
            for name, slot in self.schema.slot_specs.items()
            if slot.ask_only
        ]
        return ReplyGuard(
            allowed=[*self.render().values(), *self.schema.static_phrases()],
            context=heard,
            heard=caller_text,
            ask_only=ask_only,
            recent=said,
            limits=GuardLimits(
                max_sentences=spec.llm_replies.max_sentences, max_words=spec.llm_replies.max_words
            ),
            identifiers=self.identifiers,
            fields=self._field_labels(),
        )

    def _field_labels(self) -> FieldLabels:
        """The call's identifier fields (IDs, NPIs, CPTs, phones, numbers), their values in every
        spoken form and what people call them, for the guard's mislabel check."""
        values = self.render()
        spec = self.schema.spec
        fields = [n for n, f in spec.call_data.items() if f.type in ("id", "npi", "cpt", "phone", "number")]
        return FieldLabels(
            values={n: tuple(str(values[k]) for k in (n, f"{n}_spoken") if values.get(k)) for n in fields},
            labels={
                n: (n.replace("_", " "), *(spec.disclose[n].asked_as if n in spec.disclose else []))
                for n in fields
            },
        )

    def recovery_line(self) -> str:
        """What the agent says instead of a reply the guard stopped: the state's question again,
        or the schema's no-match line."""
        if self.current.say is not None:
            return self.current.say.render(self.render())
        return self.schema.fallbacks["no_match"].render(self.render())

    def record_agent(self, text: str) -> None:
        self.state.history.append(("agent", text))
        self.state.last_agent_line = text

    def llm_request(self) -> tuple[str, list[dict[str, str]]]:
        """System prompt and messages for an LLM reply in the current state.

        The system text runs from what changes least to what changes most, so llama.cpp (the
        local model) reuses the evaluated prefix whenever the previous request shared it: the
        reply rules and an example (fixed), the state's goal (fixed per schema and state), then
        the schema's persona with this call's data, the call's other facts in spoken form (PII
        fields left out: the disclose path reads those out), and what the call has captured,
        spoken. Only the call's last ``LLM_HISTORY_LINES`` lines go in as messages (the agent's
        last line and the question); what came before is in the captured facts
        (``benchmarks/bench_local_llm.py`` measured the tokens and TTFT against the longer
        prompt this replaced)."""
        values = self.render()
        system = f"{_REPLY_RULES}\nYour goal: {self.current.prompt.render(values).strip()}\n"
        persona = " ".join(self.schema.system_prompt.render(values).split())
        system += persona
        facts = _spoken_facts(self.schema.spec.call_data, values, skip=persona)
        if facts:
            system += f"\nCall facts: {facts}."
        known = _spoken_facts(self.schema.slot_specs, values, only=self.state.slots)
        system += f"\nKnown so far: {known or 'nothing yet'}."
        messages = [{"role": "user" if who == "caller" else "assistant", "content": text}
                    for who, text in list(self.state.history)[-LLM_HISTORY_LINES:]]  # fmt: skip
        return system, messages
