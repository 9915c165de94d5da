"""Phone menus and keypad intents: prompts as a recogniser writes them map to the schema's
options, press templates enter call data as digits, repeats give up, and the loader refuses
bad ``menu:`` sections and intent ``keys``."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from engine.conversation import Conversation
from engine.keypad import keypad_intent
from engine.menu import MenuNavigator, normalize, offers, phrase_in
from engine.schema_errors import SchemaError
from engine.schema_loader import SchemaRegistry, load_schema
from engine.schema_model import Intent, Menu, MenuOption

ROOT = Path(__file__).resolve().parents[2]
PRIOR_AUTH = ROOT / "schemas" / "prior_auth" / "schema.yaml"
CALL_DATA = {"provider_npi": "1386 950 426", "member_id": "QH7730215", "clinic_name": "Elm Street Clinic"}


def navigator(max_repeats: int = 2) -> MenuNavigator:
    menu = Menu(
        options=[
            MenuOption(hear=["precertification", "prior authorization"]),
            MenuOption(hear=["national provider identifier", "enter the npi"], press="{provider_npi}#"),
            MenuOption(hear=["member id", "subscriber number"], press="w{member_id}#"),
            MenuOption(hear=["health care professional", "providers"]),
            MenuOption(hear=["name of your practice"], say="{clinic_name}"),
            MenuOption(hear=["operator"]),
        ],
        max_repeats=max_repeats,
        give_up_outcome="ivr_stuck",
    )
    return MenuNavigator(menu, CALL_DATA)


def test_normalising_lowercases_joins_spelled_letters_and_turns_number_words_into_digits() -> None:
    assert (
        normalize("Please enter the N.P.I., then press Pound!") == "please enter the npi , then press pound"
    )
    assert (
        normalize("For claims press ONE; for billing press 2") == "for claims press 1 , for billing press 2"
    )
    assert normalize("your m e m b e r number") == "your member number"


def test_offers_are_read_in_both_orders() -> None:
    before = offers(
        normalize("Thanks for calling. For billing, press one. To reach the operator, press zero.")
    )
    assert [(o.about, o.key) for o in before] == [("for billing", "1"), ("to reach the operator", "0")]
    after = offers(normalize("Press 1 for pharmacy. Press 2 for providers. Press star to repeat."))
    assert [o.key for o in after] == ["1", "2", "*"] and after[1].about == "for providers"


def test_fuzzy_phrases_tolerate_garble_but_not_a_missing_word() -> None:
    assert phrase_in("prior authorization", normalize("for pre-authorization press 4"))
    assert phrase_in("health care professional", normalize("if you're a healthcare professional"))
    assert not phrase_in("say operator", normalize("hold for the next operator"))
    assert not phrase_in("member id", normalize("if you are a member press 1"))


def test_a_menu_tree_is_walked_by_offers_then_by_prompts_for_data() -> None:
    nav = navigator()
    first = nav.answer(
        "Welcome to Northwind Health Plan. If you're a member, press 1. "
        "If you are a healthcare professional, press 2."
    )
    assert first is not None and first.keys == "2" and first.option == 3
    second = nav.answer(
        "For claims status, press 1. For pre certification requests, press 4. For the operator, press 0."
    )
    assert second is not None and second.keys == "4"
    npi = nav.answer("Using your keypad, enter the NPI, then the pound key.")
    assert npi is not None and npi.keys == "1386950426#" and npi.text == "(pressed 1386950426#)"
    member = nav.answer("now key in the subscriber number followed by pound")
    assert member is not None and member.keys == "w7730215#"
    spoken = nav.answer("Please say the name of your practice.")
    assert spoken is not None and spoken.say == "Elm Street Clinic" and not spoken.keys
    assert nav.answer("Please wait while I connect your call.") is None
    assert [a.option for a in nav.path] == [3, 0, 1, 2, 4]


def test_an_option_without_press_or_say_needs_an_offer() -> None:
    assert navigator().answer("All of our operators are busy, please stay on the line.") is None


def test_the_same_prompt_again_and_again_gives_up_after_max_repeats() -> None:
    nav = navigator(max_repeats=1)
    prompt = "Please enter the national provider identifier followed by pound."
    first, again, third = nav.answer(prompt), nav.answer(prompt), nav.answer(prompt)
    assert first is not None and first.repeat == 0 and not first.gave_up
    assert again is not None and again.repeat == 1 and again.keys
    assert third is not None and third.gave_up and third.outcome == "ivr_stuck" and not third.keys
    nav.reset()
    fresh = nav.answer(prompt)
    assert fresh is not None and not fresh.gave_up


def test_a_field_without_digits_gives_no_answer() -> None:
    menu = Menu(options=[MenuOption(hear=["member id"], press="{member_id}#")])
    assert MenuNavigator(menu, {"member_id": "ABCDEF"}).answer("enter the member id") is None


def test_the_shipped_prior_auth_menu_reaches_a_representative() -> None:
    schema = SchemaRegistry.from_directory(ROOT / "schemas").get("prior_auth")
    assert schema.spec.menu is not None
    nav = MenuNavigator(schema.spec.menu, {"provider_npi": "1386950426", "member_id": "QH7730215"})
    steps = [
        "Thank you for calling Summit Care. Members, press 1. For health care providers, press 2.",
        "For pre-authorizations, press 3. For claims, press 4.",
        "Enter your ten digit NPI, followed by the pound sign.",
        "Please hold for the next available representative.",
    ]
    answers = [nav.answer(step) for step in steps]
    assert [a.keys if a else None for a in answers] == ["2", "3", "1386950426#", None]


# ---- keypad intents -------------------------------------------------------------------------
def test_keys_name_an_intent_with_full_confidence_and_a_trailing_pound_is_ignored() -> None:
    intents = [
        Intent(name="agree", examples=["ok"], keys=["1"]),
        Intent(name="refuse", examples=["no"], keys=["2"]),
    ]
    result = keypad_intent("2#", intents)
    assert result is not None and result.intent == "refuse" and result.confidence == 1.0
    assert keypad_intent("12", intents) is None


async def test_a_keypad_turn_takes_the_intent_and_other_keys_are_understood_as_text() -> None:
    registry = SchemaRegistry.from_directory(ROOT / "schemas")
    call = Conversation.start(
        registry.get("sales_qualification"), "k-1", {"lead_name": "Ada Moss", "company": "Birch & Co"}
    )
    plan = await call.take_turn("9", keys="9")
    assert plan.state == "do_not_call" and plan.nlu is not None and plan.nlu.confidence == 1.0
    prior_auth = registry.get("prior_auth")
    patient = {
        "patient_name": "Ada Moss",
        "date_of_birth": "1975-03-02",
        "member_id": "QH7730215",
        "insurer": "Summit Care",
        "cpt_code": "72148",
        "provider_name": "Dr. Lee",
        "provider_npi": "1386950426",
    }
    call = Conversation.start(prior_auth, "k-2", patient)
    call.state.state = "get_reference"
    plan = await call.take_turn("4418203#", keys="4418203#")
    assert call.state.slots.get("reference_number") == "4418203" and plan.state == "get_decision_date"


# ---- loader checks ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def base() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(PRIOR_AUTH.read_text())
    return data


def problems_of(tmp_path: Path, data: dict[str, Any]) -> list[str]:
    path = tmp_path / "menu" / "schema.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(SchemaError) as info:
        load_schema(path)
    return [f"{p.path}: {p.message}" for p in info.value.problems]


def test_bad_menu_templates_are_refused_clearly(base: dict[str, Any], tmp_path: Path) -> None:
    data = copy.deepcopy(base)
    data["menu"] = {
        "options": [
            {"hear": ["npi"], "press": "{npi_number}#"},
            {"hear": ["name"], "press": "{patient_name}"},
            {"hear": ["extension"], "press": "12x"},
            {"hear": ["reason"], "say": "{no_such_field}"},
            {"hear": ["both"], "press": "1", "say": "one"},
        ]
    }
    problems = problems_of(tmp_path, data)
    assert any(
        "menu.options[0].press" in p and "{npi_number} is not a call-data field" in p for p in problems
    )
    assert any("menu.options[1].press" in p and "no digits" in p for p in problems)
    assert any("menu.options[2].press" in p and "'x'" in p for p in problems)
    assert any("menu.options[3].say" in p and "{no_such_field}" in p for p in problems)
    assert any("menu.options[4]" in p and "not both" in p for p in problems)


def test_bad_and_clashing_intent_keys_are_refused(base: dict[str, Any], tmp_path: Path) -> None:
    data = copy.deepcopy(base)
    data["intents"][0]["keys"] = ["1a"]
    intents = data["states"]["confirm_details"]["intents"]
    intents[0]["keys"] = ["1"]
    intents[1]["keys"] = ["1#"]
    problems = problems_of(tmp_path, data)
    assert any("keys[0]" in p and "'1a'" in p for p in problems)
    assert any("confirm_details" in p and "already stand for intent 'confirm'" in p for p in problems)
