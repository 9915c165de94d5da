"""Whole scripted calls through both schemas, snapshots, fallbacks and call-data errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from common.testing.samples import SAMPLE_CALL_DATA
from engine.call_state import CallState, SnapshotError
from engine.conversation import Conversation
from engine.schema_errors import CallDataError
from engine.schema_loader import CompiledSchema, SchemaRegistry

ROOT = Path(__file__).resolve().parents[2]
PATIENT = {
    "patient_name": "Jane Doe",
    "date_of_birth": "1980-01-15",
    "member_id": "xkm-449812",
    "insurer": "Blue Cross",
    "cpt_code": "99213",
    "provider_name": "Dr. Smith",
    "provider_npi": "1234567893",
}


@pytest.fixture(scope="module")
def registry() -> SchemaRegistry:
    return SchemaRegistry.from_directory(ROOT / "schemas")


@pytest.fixture
def prior_auth(registry: SchemaRegistry) -> CompiledSchema:
    return registry.get("prior_auth")


async def test_prior_auth_full_call(prior_auth: CompiledSchema) -> None:
    call = Conversation.start(prior_auth, "call-1", PATIENT)
    opening = call.opening().say[0]
    assert "Alex" in opening and "Dr. Smith" in opening
    script = [
        ("This is Sarah at Blue Cross, how can I help?", "verify_member"),
        ("Okay, I found the member.", "ask_status"),
        ("Let me check. It's approved.", "get_reference"),
        ("The reference number is P A 7 7 3 4 2 2 9 1.", "get_decision_date"),
        ("It was approved on March 3rd, 2025.", "confirm_details"),
        ("Yes, that's correct.", "wrap_up"),
    ]
    spoken = []
    for line, expected_state in script:
        plan = await call.take_turn(line)
        assert plan.state == expected_state, (line, plan.state)
        spoken += plan.say
    assert plan.terminal and plan.outcome == "status_captured"
    assert call.state.slots == {
        "rep_name": "Sarah",
        "auth_status": "approved",
        "reference_number": "PA77342291",
        "decision_date": "2025-03-03",
        "details_confirmed": "yes",
    }
    text = " ".join(spoken)
    assert "January fifteenth, nineteen eighty" in text  # DOB precomputed spoken form
    assert "X-ray Kilo Mike" in text  # member ID normalised to upper case and read with NATO
    assert "Papa Alpha" in text  # captured reference read back letter by letter
    with pytest.raises(RuntimeError, match="has ended"):
        await call.take_turn("hello?")


async def test_caller_volunteering_details_skips_questions(prior_auth: CompiledSchema) -> None:
    call = Conversation.start(prior_auth, "call-2", PATIENT)
    await call.take_turn("Go ahead.")
    await call.take_turn("Found it.")
    plan = await call.take_turn("It's approved, reference number A1234567, approved on January 5th 2026.")
    # get_reference and get_decision_date already hold on entry: straight to the read-back
    assert plan.state == "confirm_details"
    assert len(plan.say) == 1 and plan.say[0].startswith("Let me read that back")


async def test_correction_clears_slots_and_asks_again(prior_auth: CompiledSchema) -> None:
    call = Conversation.start(prior_auth, "call-3", PATIENT)
    for line in ["Go ahead.", "Found it.", "It's approved.", "Reference is 5 5 1 2 9.", "No date yet."]:
        await call.take_turn(line)
    plan = await call.take_turn("No, that's not right.")
    assert plan.state == "get_reference"
    assert "reference_number" not in call.state.slots
    assert plan.say[0] == "Sorry about that, let's fix it."


async def test_hold_repeat_and_max_turn_fallback(prior_auth: CompiledSchema) -> None:
    call = Conversation.start(prior_auth, "call-4", PATIENT)
    await call.take_turn("Go ahead.")
    plan = await call.take_turn("Please hold.")
    assert plan.state == "verify_member" and plan.say == ["Sure, take your time."]
    call.record_agent("The patient is Jane Doe.")
    plan = await call.take_turn("Sorry, can you repeat that?")
    assert plan.say == ["The patient is Jane Doe."]
    plan = await call.take_turn("Is it cold over there today?")
    assert plan.needs_llm and plan.state == "verify_member"  # an off-script question: the LLM answers
    plan = await call.take_turn("The weather is lovely today.")
    assert plan.say == [call.current.say.render(call.render())]  # answers nothing: asked again
    assert not plan.needs_llm
    # a hold or a repeat is no failed attempt: only unhelpful turns count towards max_turns (4)
    plan = await call.take_turn("Whatever.")
    assert plan.state == "verify_member"
    plan = await call.take_turn("The sky is blue.")
    assert plan.state == "escalate" and plan.outcome == "needs_human"


async def test_acknowledgements_are_forgiven_only_up_to_max_turns(prior_auth: CompiledSchema) -> None:
    call = Conversation.start(prior_auth, "call-5", PATIENT)
    await call.take_turn("Go ahead.")
    states = []
    while not call.finished and len(states) < 20:
        states.append((await call.take_turn("Please hold.")).state)
    # max_turns (4) holds are forgiven, then they count: a call on hold for ever still ends
    assert states == ["verify_member"] * 7 + ["escalate"]


async def test_sales_call_scores_and_books(registry: SchemaRegistry) -> None:
    call = Conversation.start(
        registry.get("sales_qualification"), "s-1", {"lead_name": "Tom Baker", "company": "Acme"}
    )
    for line in [
        "Sure, I have a couple minutes.",
        "We keep double booking our agents, it's all manual spreadsheets.",
        "About fifty thousand dollars.",
        "This quarter.",
        "Yes, I make the call.",
        "How about next Tuesday at 2 pm?",
    ]:
        plan = await call.take_turn(line)
    assert plan.state == "confirm_meeting"
    assert call.state.slots["qualification_score"] == "95"
    assert "two PM" in plan.say[0]
    plan = await call.take_turn("Yes that works.")
    assert plan.outcome == "meeting_booked"


async def test_a_correction_at_the_read_back_is_taken_and_read_back_again(registry: SchemaRegistry) -> None:
    call = Conversation.start(
        registry.get("sales_qualification"), "s-3", {"lead_name": "Tom Baker", "company": "Acme"}
    )
    for line in ["Sure.", "Our agents are overbooked.", "About fifty thousand dollars.", "This quarter.",
                 "I make the call.", "Tuesday at 2 pm."]:  # fmt: skip
        plan = await call.take_turn(line)
    assert plan.state == "confirm_meeting" and call.state.slots["meeting_time"] == "14:00"
    plan = await call.take_turn("No, that's not it, sorry. I meant two thirty, not two.")
    assert plan.state == "confirm_meeting" and call.state.slots["meeting_time"] == "14:30"
    assert plan.say[0] == "No problem." and "two thirty PM" in plan.say[1]
    assert "meeting_confirmed" not in call.state.slots
    plan = await call.take_turn("Yes, that's it.")  # the same values again: no correction
    assert plan.outcome == "meeting_booked"


async def test_low_score_lead_goes_to_nurture(registry: SchemaRegistry) -> None:
    call = Conversation.start(
        registry.get("sales_qualification"), "s-2", {"lead_name": "Ann Lee", "company": "Beta"}
    )
    for line in ["Yeah go ahead.", "No-shows are a pain for us sometimes.", "We don't have a budget yet.",
                 "Just exploring.", "I'd need approval from my boss."]:  # fmt: skip
        plan = await call.take_turn(line)
    assert call.state.slots["qualification_score"] == "20"
    assert plan.outcome == "nurture"


async def test_snapshot_round_trip_resumes_mid_call(prior_auth: CompiledSchema) -> None:
    call = Conversation.start(prior_auth, "call-5", PATIENT)
    await call.take_turn("This is Sarah.")
    await call.take_turn("Found the member.")
    blob = call.state.to_snapshot()
    assert len(blob) < 4096
    restored = Conversation(prior_auth, CallState.from_snapshot(blob))
    assert restored.state.state == "ask_status" and restored.state.slots == {"rep_name": "Sarah"}
    plan = await restored.take_turn("It's still pending.")
    assert plan.state == "get_reference"
    with pytest.raises(SnapshotError, match="version"):
        CallState.from_snapshot(blob.replace(b'"v":1', b'"v":99'))
    with pytest.raises(SnapshotError, match="JSON"):
        CallState.from_snapshot(b"{nope")


def test_bad_call_data_names_every_field_without_echoing_pii(prior_auth: CompiledSchema) -> None:
    bad = {
        **PATIENT,
        "date_of_birth": "1980-02-30",
        "provider_npi": "1234567890",
        "cpt_code": "9921",
        "extra": 1,
    }
    del bad["insurer"]
    with pytest.raises(CallDataError) as info:
        Conversation.start(prior_auth, "call-6", bad)
    problems = info.value.problems
    assert problems["date_of_birth"].startswith("is not a valid date")
    assert problems["provider_npi"] == "fails the NPI check digit"
    assert "CPT" in problems["cpt_code"]
    assert problems["insurer"] == "is required"
    assert problems["extra"] == "is not a field of this schema"
    assert "1980-02-30" not in str(info.value)


def test_llm_request_carries_persona_state_and_history(prior_auth: CompiledSchema) -> None:
    call = Conversation.start(prior_auth, "call-7", PATIENT)
    call.record_agent("Hi there.")
    system, messages = call.llm_request()
    assert "You are Alex" in system and "Your goal: Get the representative's name" in system
    assert "cpt code: nine nine two one three" in system  # call data, spoken
    assert messages == [{"role": "assistant", "content": "Hi there."}]


def test_llm_request_is_compact_and_starts_with_the_fixed_part(prior_auth: CompiledSchema) -> None:
    """The rules and the state's goal come first (llama.cpp reuses a shared prefix); PII stays out;
    captured slots in spoken form; only the last lines of the call go in."""
    a = Conversation.start(prior_auth, "call-9", PATIENT)
    b = Conversation.start(prior_auth, "call-10", {**PATIENT, "insurer": "Aetna"})
    for call in (a, b):
        call.state.state = "get_decision_date"
        call.state.slots.update(
            {"rep_name": "Maria", "auth_status": "not_on_file", "decision_date": "2025-03-03"}
        )
        for i in range(6):
            call.state.history.append(("caller" if i % 2 else "agent", f"line {i}"))
    system, messages = a.llm_request()
    other, _ = b.llm_request()
    fixed = system.split("You are Alex")[0]
    assert fixed and other.startswith(fixed) and "Your goal: Get the date the decision" in fixed
    assert "Jane Doe" not in system and "X-ray Kilo" not in system and "nineteen eighty" not in system
    assert "auth status: not on file" in system and "decision date: March third" in system
    assert messages == [{"role": "assistant", "content": "line 4"}, {"role": "user", "content": "line 5"}]


async def test_lookahead_takes_explicit_values_only(prior_auth: CompiledSchema) -> None:
    call = Conversation.start(prior_auth, "call-8", PATIENT)
    for line in ["Go ahead.", "Found it.", "It's approved."]:
        await call.take_turn(line)
    plan = await call.take_turn("Lovely weather there today?")  # "today" is no decision date
    assert plan.state == "get_reference" and "decision_date" not in call.state.slots


def test_a_cued_slot_is_looked_ahead_one_state_further(prior_auth: CompiledSchema) -> None:
    ahead = prior_auth.states["verify_member"].lookahead_slots
    assert "decision_date" in ahead  # three states on, but taken only beside its cue words
    assert "reference_number" in ahead  # two states on


async def test_a_weekday_with_a_clock_time_said_early_is_the_meetings_day() -> None:
    import datetime as dt

    from engine.nlu.understand import Understander
    from engine.schema_loader import load_schema
    from loadtests.nlu_eval import conversation_at

    schema = load_schema(ROOT / "schemas" / "sales_qualification")
    today = dt.date(2027, 5, 4)  # a Tuesday
    said = "I sign for it myself. Let's get it in the diary, Friday around ten?"
    plan = await conversation_at(schema, "ask_authority", {}, today, Understander()).take_turn(said)
    assert plan.nlu is not None
    assert plan.nlu.captured.get("meeting_date") == "2027-05-07"
    plan = await conversation_at(schema, "ask_authority", {}, today, Understander()).take_turn(
        "I decide, and we're slammed until Friday."
    )
    assert plan.nlu is not None and "meeting_date" not in plan.nlu.captured  # no clock time: no meeting day


async def test_an_earlier_amount_is_corrected_when_the_caller_goes_back_to_it() -> None:
    import datetime as dt

    from engine.nlu.understand import Understander
    from engine.schema_loader import load_schema
    from loadtests.nlu_eval import conversation_at

    schema = load_schema(ROOT / "schemas" / "sales_qualification")
    today = dt.date(2027, 5, 4)
    convo = conversation_at(schema, "ask_authority", {"budget": "8000"}, today, Understander())
    plan = await convo.take_turn(
        "Going back to the spend, the partners signed off on twelve grand, and I decide."
    )
    assert plan.nlu is not None and plan.nlu.captured.get("budget") == "12000"
    convo = conversation_at(schema, "ask_authority", {"budget": "8000"}, today, Understander())
    plan = await convo.take_turn("I decide. We have forty staff on the rota.")
    assert plan.nlu is not None and "budget" not in plan.nlu.captured  # no going back: no amount taken


async def test_data_asked_for_someone_else_is_not_read_out(prior_auth: CompiledSchema) -> None:
    call = Conversation.start(prior_auth, "call-other", PATIENT)
    plan = await call.take_turn("Can you give me the other patient's member ID?")
    said = " ".join(plan.say)
    assert "X-ray Kilo" not in said and "four four nine" not in said
    plan = await call.take_turn("And what's the member ID?")
    assert "X-ray Kilo Mike" in " ".join(plan.say)  # asked for this patient: read out


LEAD = {"lead_name": "Priya Raman", "company": "Harbor Freight Lines"}


async def _at(
    schema: CompiledSchema, data: dict[str, str], state: str, line: str
) -> tuple[Conversation, object]:
    call = Conversation.start(schema, "call-turn", data)
    call.opening()
    call.state.state = state
    plan = await call.take_turn(line)
    return call, plan


@pytest.mark.parametrize(
    "line",
    [
        "there's no Priya here, this is a bakery",
        "Priya retired last spring, I have her desk now",
        "I'm not Priya, she's my business partner",
    ],
)
async def test_the_called_persons_name_said_as_absent_is_the_wrong_person(
    registry: SchemaRegistry, line: str
) -> None:
    call, plan = await _at(registry.get("sales_qualification"), LEAD, "greeting", line)
    assert plan.nlu.intent == "wrong_person", plan.nlu  # type: ignore[attr-defined]
    assert "has_time" not in call.state.slots  # "no Priya here" is no answer to "got a minute?"


async def test_a_question_after_hang_on_is_served_not_the_hold(registry: SchemaRegistry) -> None:
    _, plan = await _at(
        registry.get("sales_qualification"), LEAD, "discover_pain", "hang on, which company is this?"
    )
    assert plan.nlu.intent == "who_is_this"  # type: ignore[attr-defined]


async def test_an_answer_after_a_hang_on_is_the_answer(registry: SchemaRegistry) -> None:
    _, plan = await _at(
        registry.get("sales_qualification"),
        LEAD,
        "confirm_meeting",
        "yes, hang on, no, that's my dentist. no.",
    )
    assert plan.nlu.intent is None and plan.nlu.captured["meeting_confirmed"] == "no"  # type: ignore[attr-defined]


async def test_a_name_with_a_hold_is_the_name(prior_auth: CompiledSchema) -> None:
    call, plan = await _at(prior_auth, PATIENT, "greeting", "it's Marisol, give me a second to log in")
    assert plan.nlu.intent == "give_name" and call.state.slots["rep_name"] == "Marisol"  # type: ignore[attr-defined]


async def test_a_way_out_for_good_outranks_the_no_said_with_it(registry: SchemaRegistry) -> None:
    call, _ = await _at(
        registry.get("sales_qualification"), LEAD, "handle_objection", "Nope. Also, stop dialing this line."
    )
    assert call.state.state == "do_not_call"


async def test_a_value_given_with_a_way_out_phrase_still_moves_the_call_on(
    prior_auth: CompiledSchema,
) -> None:
    data = {**SAMPLE_CALL_DATA["prior_auth"]}
    call, _ = await _at(
        prior_auth, data, "get_reference", "it's 7 7 3 0 1 5, quote that if you call back about her"
    )
    assert call.state.slots["reference_number"] == "773015" and call.state.state == "get_decision_date"
