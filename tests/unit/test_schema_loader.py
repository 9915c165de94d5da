"""Schemas load, compile and index; broken ones fail naming file, path, line and problem."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from engine.schema_errors import SchemaError
from engine.schema_loader import SchemaRegistry, load_schema

ROOT = Path(__file__).resolve().parents[2]
PRIOR_AUTH = ROOT / "schemas" / "prior_auth" / "schema.yaml"


@pytest.fixture(scope="module")
def base() -> dict[str, Any]:
    return yaml.safe_load(PRIOR_AUTH.read_text())


def write(tmp_path: Path, data: dict[str, Any]) -> Path:
    path = tmp_path / "broken" / "schema.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def problems_of(path: Path) -> list[str]:
    with pytest.raises(SchemaError) as info:
        load_schema(path)
    assert str(path) in str(info.value)
    return [f"{p.path}: {p.message}" for p in info.value.problems]


def test_both_shipped_schemas_load_and_index() -> None:
    registry = SchemaRegistry.from_directory(ROOT / "schemas")
    assert registry.names() == ["prior_auth", "sales_qualification"]
    prior = registry.get("prior_auth")
    assert prior.initial_state == "greeting"
    assert prior.states["wrap_up"].spec.terminal
    assert "give_name" in {i.name for i in prior.states["greeting"].intents}
    assert "repeat" in {i.name for i in prior.states["greeting"].intents}  # global intents in every state
    assert prior.timings_ms["total_ms"] > 0
    assert "member_id" in prior.pii_fields


def test_unknown_schema_name_lists_loaded_ones() -> None:
    registry = SchemaRegistry.from_directory(ROOT / "schemas")
    with pytest.raises(KeyError, match="prior_auth"):
        registry.get("nope")


def test_unknown_transition_target_names_path_and_line(tmp_path: Path, base: dict[str, Any]) -> None:
    data = copy.deepcopy(base)
    data["states"]["ask_status"]["transitions"][2]["target"] = "nowhere"
    path = write(tmp_path, data)
    with pytest.raises(SchemaError) as info:
        load_schema(path)
    problem = next(p for p in info.value.problems if "nowhere" in p.message)
    assert problem.path == "states.ask_status.transitions[2].target"
    assert problem.line is not None
    assert "target: nowhere" in path.read_text().splitlines()[problem.line - 1]


def test_unreachable_state(tmp_path: Path, base: dict[str, Any]) -> None:
    data = copy.deepcopy(base)
    data["states"]["orphan"] = {"say": "Hello.", "terminal": True, "outcome": "x"}
    assert "states.orphan: unreachable from initial_state" in problems_of(write(tmp_path, data))


def test_undefined_template_variable(tmp_path: Path, base: dict[str, Any]) -> None:
    data = copy.deepcopy(base)
    data["states"]["wrap_up"]["say"] = "Bye {patient_nickname}."
    assert "states.wrap_up.say: undefined template variable {patient_nickname}" in problems_of(
        write(tmp_path, data)
    )


def test_bad_slot_type(tmp_path: Path, base: dict[str, Any]) -> None:
    data = copy.deepcopy(base)
    data["states"]["greeting"]["slots"][0]["type"] = "colour"
    problems = problems_of(write(tmp_path, data))
    assert any(p.startswith("states.greeting.slots[0].type: Input should be") for p in problems)


def test_duplicate_intent_names(tmp_path: Path, base: dict[str, Any]) -> None:
    data = copy.deepcopy(base)
    data["states"]["greeting"]["intents"].append({"name": "ready", "examples": ["ok"]})
    assert "states.greeting.intents[2].name: duplicate intent name 'ready'" in problems_of(
        write(tmp_path, data)
    )


def test_duplicate_yaml_keys_are_an_error_not_a_silent_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "dup" / "schema.yaml"
    path.parent.mkdir()
    text = PRIOR_AUTH.read_text().replace("  wrap_up:\n", "  greeting:\n    say: hi\n  wrap_up:\n", 1)
    path.write_text(text)
    with pytest.raises(SchemaError) as info:
        load_schema(path)
    assert "duplicate key 'greeting'" in str(info.value)
    assert info.value.problems[0].line is not None


def test_terminal_state_needs_outcome_and_dead_ends_are_caught(tmp_path: Path, base: dict[str, Any]) -> None:
    data = copy.deepcopy(base)
    del data["states"]["wrap_up"]["outcome"]
    data["states"]["not_on_file"]["transitions"] = []
    del data["states"]["not_on_file"]["fallback"]
    problems = problems_of(write(tmp_path, data))
    assert "states.wrap_up.outcome: a terminal state needs an outcome" in problems
    assert any(p.startswith("states.not_on_file: dead end") for p in problems)


def test_condition_on_unknown_intent_and_slot(tmp_path: Path, base: dict[str, Any]) -> None:
    data = copy.deepcopy(base)
    data["states"]["greeting"]["transitions"][1]["when"] = {"intent": "dance", "slots_filled": ["shoe_size"]}
    problems = problems_of(write(tmp_path, data))
    assert "states.greeting.transitions[1].when.intent: intent 'dance' is not defined here" in problems
    assert "states.greeting.transitions[1].when: unknown slot 'shoe_size'" in problems


def test_unknown_field_and_missing_section(tmp_path: Path, base: dict[str, Any]) -> None:
    data = copy.deepcopy(base)
    del data["persona"]
    data["states"]["greeting"]["sey"] = "typo"
    problems = problems_of(write(tmp_path, data))
    assert "persona: Field required" in problems
    assert "states.greeting.sey: Extra inputs are not permitted" in problems


def test_invalid_yaml_and_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "bad" / "schema.yaml"
    path.parent.mkdir()
    path.write_text("metadata: [unclosed\n")
    with pytest.raises(SchemaError, match="invalid YAML"):
        load_schema(path)
    with pytest.raises(SchemaError, match="cannot read"):
        load_schema(tmp_path / "missing")


def test_static_phrases_exclude_lines_with_call_data() -> None:
    schema = load_schema(ROOT / "schemas" / "prior_auth")
    phrases = schema.static_phrases()
    assert "One moment." in phrases
    assert all("{" not in p for p in phrases)
    assert schema.states["wrap_up"].say is not None
    assert schema.states["wrap_up"].say.source in phrases


def test_competence_fields_are_checked(tmp_path: Path, base: dict[str, Any]) -> None:
    data = copy.deepcopy(base)
    data["states"]["verify_member"]["do_not_call"] = True  # not a terminal state
    data["states"]["confirm_details"]["intents"][0]["implied_by_slots"] = ["details_confirmed=maybe"]
    data["states"]["confirm_details"]["slots"][0]["tense"] = "past"  # a yes/no slot has no tense
    data["disclose"]["not_a_field"] = {"asked_as": ["the thing"]}
    problems = problems_of(write(tmp_path, data))
    assert any("only a terminal state can put a contact on the do-not-call list" in p for p in problems)
    assert any("'maybe' is not a value of slot 'details_confirmed'" in p for p in problems)
    assert any("only date slots have a tense" in p for p in problems)
    assert any("'not_a_field' is not a call-data field" in p for p in problems)


def test_a_registry_loads_schemas_added_or_changed_later(tmp_path: Path, base: dict[str, Any]) -> None:
    first = tmp_path / "first" / "schema.yaml"
    first.parent.mkdir()
    first.write_text(yaml.safe_dump(base, sort_keys=False))
    registry = SchemaRegistry.from_directory(tmp_path)
    loaded = registry.get(base["metadata"]["name"])
    second = copy.deepcopy(base)
    second["metadata"]["name"] = "added_later"
    (tmp_path / "second").mkdir()
    (tmp_path / "second" / "schema.yaml").write_text(yaml.safe_dump(second, sort_keys=False))
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "schema.yaml").write_text("metadata: {name: [}")
    assert registry.refresh(tmp_path) == ["added_later"]  # the broken one is skipped
    assert registry.get(base["metadata"]["name"]) is loaded  # unchanged: the same object
    assert registry.refresh(tmp_path) == []
    changed = copy.deepcopy(base)
    changed["persona"]["agent_name"] = "Robin"
    first.write_text(yaml.safe_dump(changed, sort_keys=False))
    assert registry.refresh(tmp_path) == [base["metadata"]["name"]]
    assert registry.get(base["metadata"]["name"]) is not loaded  # new calls get the new version
    assert loaded.spec.persona.agent_name != "Robin"  # a live call's compiled schema is untouched


def test_tense_when_names_known_slots_and_values(tmp_path: Path, base: dict[str, Any]) -> None:
    data = copy.deepcopy(base)
    slots = data["states"]["get_decision_date"]["slots"]
    date_slot = next(s for s in slots if s["name"] == "decision_date")
    date_slot["tense_when"] = {"auth_stat=approved": "past", "auth_status=okayish": "past"}
    problems = problems_of(write(tmp_path, data))
    assert any(p.endswith("tense_when: unknown slot 'auth_stat'") for p in problems), problems
    assert any(p.endswith("'okayish' is not a value of 'auth_status'") for p in problems), problems
