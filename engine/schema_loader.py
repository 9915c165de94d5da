"""Load, validate and compile conversation schemas; a registry of the loaded ones.

A schema is parsed once: pydantic checks its shape, then cross-references are checked
(targets, reachability, template variables, intents and slots named in conditions), and
templates are compiled. Every problem is reported with file, path and line.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from engine.call_data import validate_call_data
from engine.functions import FUNCTIONS
from engine.keypad import check_intent_keys
from engine.menu import check_menu
from engine.nlu.requests import field_phrases
from engine.schema_errors import Problem, SchemaError, format_path, line_of
from engine.schema_model import ConversationSchemaFile, Intent, Slot, State
from engine.spoken import SPOKEN_RULES
from engine.templates import Template, TemplateError, compile_template
from engine.transfer import check_transfers, with_transfer_outcomes
from engine.voice_text import split_sentences

SCHEMA_FILE = "schema.yaml"
PERSONA_FIELDS = ("agent_name", "organization", "role")
LOOKAHEAD_TYPES = frozenset({"reference_number", "date", "time", "currency", "phone"})
LOOKAHEAD_HOPS = 2
REVISITED_TYPES = frozenset({"currency"})
CUED_LOOKAHEAD_HOPS = 3  # a slot with cues is taken only beside its cue words: safe further ahead
# Captured slots of these types also get a `<slot>_spoken` template value.
SPOKEN_SLOT_RULES = {
    "date": "date",
    "time": "time",
    "currency": "currency",
    "phone": "phone",
    "reference_number": "nato",
}


_BaseLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when present: ~10x faster


class _UniqueKeyLoader(_BaseLoader):  # type: ignore[valid-type,misc]
    """SafeLoader that rejects duplicate mapping keys instead of keeping the last one."""


def _construct_mapping(
    loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False
) -> dict[Any, Any]:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (first at line {seen[key]})", key_node.start_mark
            )
        seen[key] = key_node.start_mark.line + 1
    mapping: dict[Any, Any] = loader.construct_mapping(node, deep=deep)
    return mapping


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


@dataclass(frozen=True)
class CompiledState:
    name: str
    spec: State
    say: Template | None
    prompt: Template
    intents: tuple[Intent, ...]  # the state's own, then the global ones
    slots: Mapping[str, Slot]
    transition_says: tuple[Template | None, ...]
    replies: Mapping[str, Template]  # intent name → line spoken when it moves no transition
    # Unambiguous slots of the next states, captured early when the caller volunteers them.
    lookahead_slots: Mapping[str, Slot]
    # Amounts of other states, taken again when the caller goes back to them ("going back to the
    # money, it's closer to nine grand"): a correction of an earlier answer, or one skipped.
    revisited_slots: Mapping[str, Slot]


@dataclass
class CompiledSchema:
    path: str
    spec: ConversationSchemaFile
    states: dict[str, CompiledState]
    system_prompt: Template
    fallbacks: dict[str, Template]
    slot_types: Mapping[str, str]
    fingerprint: str
    timings_ms: dict[str, float] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.spec.metadata.name

    @property
    def version(self) -> str:
        return self.spec.metadata.version

    @property
    def initial_state(self) -> str:
        return self.spec.initial_state

    @property
    def pii_fields(self) -> frozenset[str]:
        return frozenset(n for n, f in self.spec.call_data.items() if f.pii)

    @cached_property
    def slot_specs(self) -> dict[str, Slot]:
        """Every slot by name (the first declaration: a slot has one type across states)."""
        out: dict[str, Slot] = {}
        for state in self.states.values():
            for slot in state.spec.slots:
                out.setdefault(slot.name, slot)
        return out

    @cached_property
    def intent_examples(self) -> tuple[str, ...]:
        """Every intent example of every state, once each (what the embedding scorer indexes)."""
        texts = (e for state in self.states.values() for i in state.intents for e in i.examples)
        return tuple(dict.fromkeys(texts))

    @cached_property
    def vocabulary(self) -> frozenset[str]:
        """The words (of four letters or more) the schema expects to hear: its intents' examples and
        phrases, its slots' values and synonyms, how fields are asked for. Speech recognition sometimes
        splits one of them ("a proved", "re quired"); ``engine.nlu.text.rejoin`` puts it back."""
        texts = [*self.intent_examples]
        for state in self.states.values():
            texts.extend(p for i in state.intents for p in i.phrases)
            for slot in state.spec.slots:
                texts.extend(v.replace("|", " ") for v in slot.values or ())
        for disclosure in self.spec.disclose.values():
            texts.extend(disclosure.asked_as)
        return frozenset(w for t in texts for w in re.findall(r"[a-z]{4,}", t.lower()))

    @cached_property
    def field_phrases(self) -> dict[str, tuple[re.Pattern[str], ...]]:
        """How counterparts ask for each disclosable call-data field, compiled once."""
        disclose = {name: d.asked_as for name, d in self.spec.disclose.items()}
        return field_phrases(disclose, self.spec.persona.organization)

    @cached_property
    def static_sentences(self) -> frozenset[str]:
        """Sentences of the static phrases: the TTS phrase cache holds exactly these."""
        return frozenset(s for phrase in self.static_phrases() for s in split_sentences(phrase))

    @property
    def template_count(self) -> int:
        """Distinct compiled templates (global intent replies are shared by every state)."""
        found: set[int] = {id(self.system_prompt), *(id(t) for t in self.fallbacks.values())}
        for s in self.states.values():
            found.update(id(t) for t in (s.say, s.prompt, *s.transition_says, *s.replies.values()) if t)
        return len(found)

    def validate_call_data(self, data: Mapping[str, Any]) -> dict[str, str]:
        return validate_call_data(self.name, self.spec.call_data, data)

    def precompute(self, call_data: Mapping[str, str]) -> dict[str, str]:
        """Template values for one call: call data, their spoken forms, persona fields."""
        persona = self.spec.persona
        values = {
            "agent_name": persona.agent_name,
            "organization": persona.organization,
            "role": persona.role,
        }
        for name, spec in self.spec.call_data.items():
            raw = call_data.get(name)
            if raw is None:
                continue
            values[name] = raw
            if spec.spoken is not None:
                values[f"{name}_spoken"] = SPOKEN_RULES[spec.spoken](raw)
        return values

    def static_phrases(self) -> list[str]:
        """Lines that do not depend on call data (fillers, fallbacks, literal lines): TTS caches them."""
        phrases = list(self.spec.fillers)
        phrases += [t.source for t in self.fallbacks.values() if not t.fields]
        phrases += [s.say.source for s in self.states.values() if s.say is not None and not s.say.fields]
        phrases += [t.source for s in self.states.values() for t in s.replies.values() if not t.fields]
        return list(dict.fromkeys(phrases))


def _known_variables(spec: ConversationSchemaFile) -> set[str]:
    known = set(PERSONA_FIELDS)
    for name, data_field in spec.call_data.items():
        known.add(name)
        if data_field.spoken is not None:
            known.add(f"{name}_spoken")
    for state in spec.states.values():
        for slot in state.slots:
            known.add(slot.name)
            if slot.type in SPOKEN_SLOT_RULES:
                known.add(f"{slot.name}_spoken")
        known.update(c.store_as for c in state.on_enter)
    return known


def _slot_values(slot: Slot) -> set[str]:
    """The values a captured slot can hold, where there is a closed set."""
    if slot.type == "yes_no":
        return {"yes", "no"}
    if slot.type == "enum":
        return {v.split("|")[0] for v in slot.values or ()}
    return set()


def _check_slot_conditions(
    at: tuple[str | int, ...], intent: Intent, all_slots: set[str], slot_specs: dict[str, Slot]
) -> list[tuple[tuple[str | int, ...], str]]:
    """``implied_by_slots`` / ``excluded_by_slots``: "slot" or "slot=value" of a known slot."""
    errors: list[tuple[tuple[str | int, ...], str]] = []
    for key in ("implied_by_slots", "excluded_by_slots"):
        for j, condition in enumerate(getattr(intent, key)):
            slot_name, _, value = condition.partition("=")
            if slot_name not in all_slots:
                errors.append(((*at, key, j), f"unknown slot {slot_name!r}"))
            elif value and slot_name in slot_specs and value not in _slot_values(slot_specs[slot_name]):
                errors.append(((*at, key, j), f"{value!r} is not a value of slot {slot_name!r}"))
    return errors


def _check_references(spec: ConversationSchemaFile) -> list[tuple[tuple[str | int, ...], str]]:
    errors: list[tuple[tuple[str | int, ...], str]] = []
    states = spec.states
    all_slots = {slot.name for s in states.values() for slot in s.slots} | {
        c.store_as for s in states.values() for c in s.on_enter
    }
    slot_specs = {slot.name: slot for s in states.values() for slot in s.slots}
    global_intents = {i.name for i in spec.intents}
    errors += _duplicates(("intents",), [i.name for i in spec.intents], "intent")
    for i, intent in enumerate(spec.intents):
        if intent.target is not None and intent.target not in states:
            errors.append((("intents", i, "target"), f"unknown target state {intent.target!r}"))
        errors += _check_slot_conditions(("intents", i), intent, all_slots, slot_specs)
    if spec.escalation is not None:
        for slot_name in sorted(spec.escalation.when.slot_names() - all_slots):
            errors.append((("escalation", "when"), f"unknown slot {slot_name!r}"))
    for field_name in spec.disclose:
        if field_name not in spec.call_data:
            errors.append((("disclose", field_name), f"{field_name!r} is not a call-data field"))

    slot_type_seen: dict[str, str] = {}
    for name, state in states.items():
        for i, slot in enumerate(state.slots):
            first = slot_type_seen.setdefault(slot.name, slot.type)
            if first != slot.type:
                errors.append(
                    (("states", name, "slots", i, "type"), f"slot {slot.name!r} is {first} elsewhere")
                )
    if spec.initial_state not in states:
        errors.append((("initial_state",), f"unknown state {spec.initial_state!r}"))
    for name, state in states.items():
        at: tuple[str | int, ...] = ("states", name)
        errors += _duplicates((*at, "intents"), [i.name for i in state.intents], "intent")
        errors += [
            ((*at, "intents", i, "name"), f"intent {intent.name!r} is already a global intent")
            for i, intent in enumerate(state.intents)
            if intent.name in global_intents
        ]
        errors += _duplicates((*at, "slots"), [s.name for s in state.slots], "slot")
        for i, slot in enumerate(state.slots):
            if slot.type == "enum" and not slot.values:
                errors.append(((*at, "slots", i, "values"), "an enum slot needs values"))
            if slot.tense != "any" and slot.type != "date":
                errors.append(((*at, "slots", i, "tense"), "only date slots have a tense"))
            for condition in slot.tense_when:
                slot_name, _, value = condition.partition("=")
                closed = _slot_values(slot_specs[slot_name]) if slot_name in slot_specs else set()
                where = (*at, "slots", i, "tense_when")
                if slot_name not in all_slots:
                    errors.append((where, f"unknown slot {slot_name!r}"))
                elif closed and value not in closed:
                    errors.append((where, f"{value!r} is not a value of {slot_name!r}"))
        for i, intent in enumerate(state.intents):
            if intent.target is not None:
                errors.append(((*at, "intents", i, "target"), "only global intents take a target"))
        state_intents = {i.name for i in state.intents} | global_intents
        for i, intent in enumerate(state.intents):
            errors += _check_slot_conditions((*at, "intents", i), intent, all_slots, slot_specs)
        for i, compute in enumerate(state.on_enter):
            if compute.compute not in FUNCTIONS:
                errors.append(((*at, "on_enter", i, "compute"), f"unknown function {compute.compute!r}"))
        for i, transition in enumerate(state.transitions):
            t_at = (*at, "transitions", i)
            if transition.target not in states:
                errors.append(((*t_at, "target"), f"unknown target state {transition.target!r}"))
            for intent_name in transition.when.intents():
                if intent_name not in state_intents:
                    errors.append(((*t_at, "when", "intent"), f"intent {intent_name!r} is not defined here"))
            for slot_name in sorted(transition.when.slot_names() - all_slots):
                errors.append(((*t_at, "when"), f"unknown slot {slot_name!r}"))
            for j, slot_name in enumerate(transition.clear):
                if slot_name not in all_slots:
                    errors.append(((*t_at, "clear", j), f"unknown slot {slot_name!r}"))
        if state.fallback is not None and state.fallback not in states:
            errors.append(((*at, "fallback"), f"unknown fallback state {state.fallback!r}"))
        if state.do_not_call and not state.terminal:
            errors.append(
                ((*at, "do_not_call"), "only a terminal state can put a contact on the do-not-call list")
            )
        if state.terminal:
            if state.outcome is None:
                errors.append(((*at, "outcome"), "a terminal state needs an outcome"))
            if state.transitions:
                errors.append(((*at, "transitions"), "a terminal state cannot have transitions"))
        elif not state.transitions and state.fallback is None:
            errors.append((at, "dead end: a non-terminal state needs transitions or a fallback"))

    if spec.initial_state in states:
        reachable = _reachable(spec)
        errors += [(("states", n), "unreachable from initial_state") for n in states if n not in reachable]
        if not any(states[n].terminal for n in reachable):
            errors.append((("states",), "no terminal state is reachable"))
    return errors


def _duplicates(
    at: tuple[str | int, ...], names: list[str], what: str
) -> list[tuple[tuple[str | int, ...], str]]:
    seen: set[str] = set()
    out = []
    for i, name in enumerate(names):
        if name in seen:
            out.append(((*at, i, "name"), f"duplicate {what} name {name!r}"))
        seen.add(name)
    return out


def _reachable(spec: ConversationSchemaFile) -> set[str]:
    seen = {spec.initial_state} | {i.target for i in spec.intents if i.target in spec.states}
    todo = list(seen)
    while todo:
        state = spec.states.get(todo.pop())
        if state is None:
            continue
        nexts = [t.target for t in state.transitions] + ([state.fallback] if state.fallback else [])
        for target in nexts:
            if target in spec.states and target not in seen:
                seen.add(target)
                todo.append(target)
    return seen


def _lookahead_slots(spec: ConversationSchemaFile, name: str) -> dict[str, Slot]:
    own = {slot.name for slot in spec.states[name].slots}
    found: dict[str, Slot] = {}
    frontier = {name}
    for hop in range(1, CUED_LOOKAHEAD_HOPS + 1):
        frontier = {t.target for s in frontier for t in spec.states[s].transitions}
        for state in frontier:
            for slot in spec.states[state].slots:
                near = hop <= LOOKAHEAD_HOPS or bool(slot.cues)
                if near and (slot.type in LOOKAHEAD_TYPES or slot.early) and slot.name not in own:
                    found.setdefault(slot.name, slot)
    return found


def _revisited_slots(spec: ConversationSchemaFile, name: str) -> dict[str, Slot]:
    own = {slot.name for slot in spec.states[name].slots}
    return {
        slot.name: slot
        for other, state in spec.states.items()
        if other != name
        for slot in state.slots
        if slot.type in REVISITED_TYPES and slot.name not in own
    }


def _with_decision_words_as_cues(spec: ConversationSchemaFile) -> ConversationSchemaFile:
    """A date slot with ``cues`` whose ``tense_when`` reads a decision ("auth_status=approved:
    past") also takes the words of those decided values as cues: a date said with "certified
    yesterday" or "non-certified on the 7th" is the decision date, as with "approved"."""
    enums = {slot.name: slot for state in spec.states.values() for slot in state.slots if slot.type == "enum"}
    changed = {}
    for name, state in spec.states.items():
        slots = list(state.slots)
        for i, slot in enumerate(slots):
            if slot.type != "date" or not slot.cues:
                continue
            words: list[str] = []
            for condition, tense in slot.tense_when.items():
                other, _, value = condition.partition("=")
                if tense != "past" or other not in enums:
                    continue
                for option in enums[other].values or ():
                    canonical, *synonyms = (part.strip() for part in option.split("|"))
                    if canonical == value:
                        words += synonyms
            extra = [w for w in dict.fromkeys(words) if w not in slot.cues]
            if extra:
                slots[i] = slot.model_copy(update={"cues": [*slot.cues, *extra]})
        if slots != list(state.slots):
            changed[name] = state.model_copy(update={"slots": slots})
    return spec.model_copy(update={"states": {**spec.states, **changed}}) if changed else spec


def _template_sources(spec: ConversationSchemaFile) -> Iterable[tuple[tuple[str | int, ...], str]]:
    yield ("persona", "system_prompt"), spec.persona.system_prompt
    for key, text in spec.fallbacks.model_dump().items():
        yield ("fallbacks", key), text
    for i, intent in enumerate(spec.intents):
        if intent.reply is not None:
            yield ("intents", i, "reply"), intent.reply
    for name, state in spec.states.items():
        for i, intent in enumerate(state.intents):
            if intent.reply is not None:
                yield ("states", name, "intents", i, "reply"), intent.reply
        if state.say is not None:
            yield ("states", name, "say"), state.say
        if state.transfer is not None and state.transfer.summary:
            yield ("states", name, "transfer", "summary"), state.transfer.summary
        yield ("states", name, "prompt"), state.prompt
        for i, transition in enumerate(state.transitions):
            if transition.say is not None:
                yield ("states", name, "transitions", i, "say"), transition.say


def _compile(
    spec: ConversationSchemaFile,
) -> tuple[dict[tuple[str | int, ...], Template], list[tuple[Any, str]]]:
    known = _known_variables(spec)
    compiled: dict[tuple[str | int, ...], Template] = {}
    errors: list[tuple[Any, str]] = []
    for at, source in _template_sources(spec):
        try:
            template = compile_template(source)
        except TemplateError as exc:
            errors.append((at, str(exc)))
            continue
        for var in template.fields:
            if var not in known:
                errors.append((at, f"undefined template variable {{{var}}}"))
        compiled[at] = template
    return compiled, errors


def load_schema(path: str | Path) -> CompiledSchema:
    """Load ``path`` (a schema folder or its schema.yaml) or raise SchemaError."""
    started = time.perf_counter()
    file = Path(path)
    if file.is_dir():
        file = file / SCHEMA_FILE
    shown = str(file)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise SchemaError(shown, [Problem("", f"cannot read: {exc.strerror}")]) from exc
    try:
        raw = yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise SchemaError(
            shown, [Problem("", f"invalid YAML: {getattr(exc, 'problem', exc)}", line)]
        ) from exc

    def problem(parts: tuple[Any, ...], message: str) -> Problem:
        # Line numbers cost a second parse, so only failing schemas pay for them.
        return Problem(format_path(parts), message, line_of(yaml.compose(text, Loader=_BaseLoader), parts))

    if not isinstance(raw, dict):
        raise SchemaError(shown, [Problem("", "the file must hold a mapping at the top level")])
    try:
        spec = ConversationSchemaFile.model_validate(raw)
        spec = with_transfer_outcomes(spec)  # a transfer state's outcome defaults to "transferred"
        spec = _with_decision_words_as_cues(spec)
    except ValidationError as exc:
        raise SchemaError(shown, [problem(tuple(e["loc"]), e["msg"]) for e in exc.errors()]) from None
    parsed = time.perf_counter()

    errors = _check_references(spec)
    errors += check_transfers(spec)
    errors += check_intent_keys(spec) + check_menu(spec)
    templates, template_errors = _compile(spec)
    errors += template_errors
    if errors:
        raise SchemaError(shown, [problem(at, message) for at, message in errors])

    global_intents = tuple(spec.intents)
    global_replies = {
        intent.name: templates[("intents", i, "reply")]
        for i, intent in enumerate(spec.intents)
        if intent.reply
    }
    states = {
        name: CompiledState(
            name=name,
            spec=state,
            say=templates.get(("states", name, "say")),
            prompt=templates[("states", name, "prompt")],
            intents=(*state.intents, *global_intents),
            slots={slot.name: slot for slot in state.slots},
            transition_says=tuple(
                templates.get(("states", name, "transitions", i, "say"))
                for i in range(len(state.transitions))
            ),
            lookahead_slots=_lookahead_slots(spec, name),
            revisited_slots=_revisited_slots(spec, name),
            replies={
                **global_replies,
                **{
                    intent.name: templates[("states", name, "intents", i, "reply")]
                    for i, intent in enumerate(state.intents)
                    if intent.reply is not None
                },
            },
        )
        for name, state in spec.states.items()
    }
    slot_types = {slot.name: slot.type for s in spec.states.values() for slot in s.slots}
    slot_types.update({c.store_as: "number" for s in spec.states.values() for c in s.on_enter})
    fallbacks = {key: templates[("fallbacks", key)] for key in spec.fallbacks.model_dump()}
    finished = time.perf_counter()
    return CompiledSchema(
        path=shown,
        spec=spec,
        states=states,
        system_prompt=templates[("persona", "system_prompt")],
        fallbacks=fallbacks,
        slot_types=slot_types,
        fingerprint=hashlib.sha256(text.encode()).hexdigest()[:16],
        timings_ms={
            "parse_validate_ms": (parsed - started) * 1000,
            "compile_ms": (finished - parsed) * 1000,
            "total_ms": (finished - started) * 1000,
        },
    )


class SchemaRegistry:
    """The loaded schemas by name. Loading is all-or-nothing per schema folder."""

    def __init__(self, schemas: Iterable[CompiledSchema] = ()):
        self._schemas: dict[str, CompiledSchema] = {}
        for schema in schemas:
            self.add(schema)

    @classmethod
    def from_directory(cls, directory: str | Path) -> SchemaRegistry:
        folders = sorted(p for p in Path(directory).iterdir() if (p / SCHEMA_FILE).is_file())
        return cls(load_schema(p) for p in folders)

    @classmethod
    def shared(cls, directory: str | Path) -> SchemaRegistry:
        """The process's one registry of ``directory`` (loaded on first use)."""
        key = Path(directory).resolve()
        registry = _SHARED.get(key)
        if registry is None:
            registry = _SHARED[key] = cls.from_directory(key)
        return registry

    def refresh(self, directory: str | Path) -> list[str]:
        """Bring the registry up to ``directory``: schemas added since are loaded, and a schema
        whose file changed is loaded again and replaces the old version for new calls (a live
        call keeps the compiled schema it started with). A long-lived call host that outlives a
        redeploy picks up the new schemas this way. A file that does not load now is skipped and
        the loaded version stays. Returns the names loaded."""
        loaded = []
        by_path = {Path(s.path).resolve(): s for s in self._schemas.values()}
        for folder in sorted(p for p in Path(directory).iterdir() if (p / SCHEMA_FILE).is_file()):
            file = (folder / SCHEMA_FILE).resolve()
            old = by_path.get(file)
            if old is not None:
                text = file.read_text(encoding="utf-8")  # as load_schema reads it (newlines too)
                if hashlib.sha256(text.encode()).hexdigest()[:16] == old.fingerprint:
                    continue
            try:
                schema = load_schema(folder)
            except (SchemaError, OSError):
                continue
            if old is not None and schema.name == old.name:
                self._schemas[schema.name] = schema
            elif schema.name not in self._schemas:
                self.add(schema)
            else:
                continue
            loaded.append(schema.name)
        return loaded

    def add(self, schema: CompiledSchema) -> None:
        if schema.name in self._schemas and self._schemas[schema.name].path != schema.path:
            raise SchemaError(
                schema.path, [Problem("metadata.name", f"name {schema.name!r} is already loaded")]
            )
        self._schemas[schema.name] = schema

    def get(self, name: str) -> CompiledSchema:
        try:
            return self._schemas[name]
        except KeyError:
            raise KeyError(f"unknown schema {name!r}; loaded: {sorted(self._schemas)}") from None

    def names(self) -> list[str]:
        return sorted(self._schemas)

    def __contains__(self, name: object) -> bool:
        return name in self._schemas


_SHARED: dict[Path, SchemaRegistry] = {}
