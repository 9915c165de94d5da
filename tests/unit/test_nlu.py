"""Typed extractors, intent scoring and the two-pass reconcile (local and LLM paths)."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from pathlib import Path

import pytest

from common.testing.samples import SAMPLE_CALL_DATA
from engine.nlu import extractors as ex
from engine.nlu.intents import EmbeddingIntentScorer, ExampleVectors, LexicalIntentScorer
from engine.nlu.llm_hook import LLMUnderstanding, parse_object
from engine.nlu.requests import asks_to_repeat
from engine.nlu.understand import NLUResult, Understander
from engine.schema_model import Intent, Slot

TODAY = dt.date(2026, 11, 21)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("It was approved on March 3rd, 2025.", "2025-03-03"),
        ("decided on the twenty-first of may", "2026-05-21"),
        ("january fifth at the latest", "2027-01-05"),  # no year said: the nearest one
        ("May twenty first 2024", "2024-05-21"),
        ("by 12/05/2026", "2026-12-05"),
        ("2024-02-29", "2024-02-29"),
        ("February 30th", None),
        ("next friday", "2026-11-27"),
        ("tomorrow", "2026-11-22"),
        ("may I help you", None),
    ],
)
def test_dates(text: str, expected: str | None) -> None:
    assert ex.extract_date(text, today=TODAY) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("We have about fifty thousand dollars", "50000"),
        ("Somewhere around $20k.", "20000"),
        ("$1,250.50 a month", "1250.5"),
        ("Maybe 10 grand.", "10000"),
        ("two hundred fifty thousand dollars", "250000"),
        ("we have a team of ten", None),
    ],
)
def test_currency(text: str, expected: str | None) -> None:
    assert ex.extract_currency(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Yes, that's correct.", "yes"),
        ("No problem, go ahead.", "yes"),  # "go ahead" answers "do you have a minute?"
        ("no — I mean yes, go ahead", "yes"),
        ("Yeah no, that doesn't work for me", "no"),
        ("not sure", None),
        ("No, not really.", "no"),
        ("That's not right.", "no"),
        ("Sure thing", "yes"),
        ("I'm in a meeting right now", None),
    ],
)
def test_yes_no(text: str, expected: str | None) -> None:
    assert ex.extract_yes_no(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The reference number is P A 7 7 3 4 2 2 9 1.", "PA77342291"),
        ("It's alpha bravo 4 4 1 9 0.", "AB44190"),
        ("confirmation number is seven seven two double one nine", "772119"),
        ("It was decided on March 3rd, 2025.", None),
        ("nothing to see here", None),
    ],
)
def test_codes(text: str, expected: str | None) -> None:
    assert ex.extract_code(text) == expected


def test_names_times_phones_enums() -> None:
    assert ex.extract_name("Thanks for calling, this is Sarah, how can I help?") == "Sarah"
    assert ex.extract_name("My name is Kevin O'Brien") == "Kevin O'Brien"
    assert ex.extract_name("Dana speaking.") == "Dana"
    assert ex.extract_name("this is the billing department") is None
    assert ex.extract_time("around 10:30 am") == "10:30"
    assert ex.extract_time("let's say 3 pm") == "15:00"
    assert ex.extract_time("Nine thirty in the morning") == "09:30"
    assert ex.extract_time("12 am") == "00:00"
    assert (
        ex.extract_phone("call back at five five five, one two three, four five six seven") == "+15551234567"
    )
    status = Slot(name="s", type="enum", values=["approved|approved", "denied|denied|not approved"])
    assert ex.extract_enum("It was not approved.", status) == "denied"  # the longer synonym wins
    assert ex.extract_enum("It's approved.", status) == "approved"
    assert ex.words_to_number(["two", "hundred", "and", "five"]) == 205


INTENTS = [
    Intent(name="confirm", examples=["yes that's right", "correct"]),
    Intent(name="give_reference", examples=["the reference number is 123"], implied_by_slots=["ref"]),
]
SLOTS = {"ref": Slot(name="ref", type="reference_number", critical=True)}


async def test_local_reconcile_boosts_intent_implied_by_captured_slot() -> None:
    understander = Understander()
    result = await understander.understand("PA 7734 22", INTENTS, SLOTS, {})
    assert result.captured == {"ref": "PA773422"}
    assert result.reconciled  # pass 2 ran because a critical slot was captured
    assert result.intent == "give_reference"
    plain = await understander.understand("yes that's right", INTENTS, SLOTS, {})
    assert plain.intent == "confirm" and not plain.reconciled


class ScriptedLLM:
    """Answers like an LLM would, from a fixed script; records every prompt it saw."""

    def __init__(self, replies: Mapping[str, list[str]]):
        self.replies = {k: list(v) for k, v in replies.items()}
        self.prompts: list[tuple[str, str]] = []

    async def __call__(self, system: str, user: str) -> str:
        self.prompts.append((system, user))
        kind = "capture" if "extract" in system else "detect"
        return self.replies[kind].pop(0)


async def test_llm_asked_only_when_unsure_and_its_invented_values_are_dropped() -> None:
    llm = ScriptedLLM(
        {"capture": ['{"ref": "ZX99"}'], "detect": ['{"intent": "confirm", "confidence": 0.4}']}
    )
    understander = Understander(llm=LLMUnderstanding(llm))
    confident = await understander.understand("yes that's right", INTENTS, SLOTS, {})
    assert not confident.used_llm and llm.prompts == []
    result = await understander.understand("it's the one I mentioned earlier", INTENTS, SLOTS, {})
    assert result.used_llm and len(llm.prompts) == 2  # capture + detect, in parallel
    assert result.captured == {}  # ZX99 was never said
    assert not result.reconciled and result.intent is None  # 0.4 is under the threshold


async def test_a_grounded_llm_capture_triggers_a_redetect() -> None:
    intents = [*INTENTS, Intent(name="give_name", examples=["my name is Sam"], implied_by_slots=["rep"])]
    slots = {"rep": Slot(name="rep", type="name", critical=True)}
    llm = ScriptedLLM(
        {
            "capture": ['{"rep": "Priya"}'],
            "detect": [
                '{"intent": null, "confidence": 0.0}',
                'Sure! {"intent": "give_name", "confidence": 0.9}',
            ],
        }
    )
    result = await Understander(llm=LLMUnderstanding(llm)).understand(
        "you have reached the desk of priya", intents, slots, {}
    )
    assert result.captured == {"rep": "Priya"} and result.reconciled
    assert result.intent == "give_name"
    assert len(llm.prompts) == 3  # capture + detect, then one re-detect with the capture


async def test_llm_garbage_is_no_answer_not_an_error() -> None:
    llm = ScriptedLLM({"capture": ["I think it's ZX99"], "detect": ["no idea, sorry"]})
    result = await Understander(llm=LLMUnderstanding(llm)).understand("mumble", INTENTS, SLOTS, {})
    assert result.intent is None and result.captured == {}
    assert parse_object('{"a": 1') == {} and parse_object('x {"a": 1} y') == {"a": 1}


def test_embedding_scorer_takes_the_better_of_vector_and_lexical_scores() -> None:
    texts = ["yes that's right", "correct", "the reference number is 123"]
    scorer = EmbeddingIntentScorer(ExampleVectors(texts, [(1.0, 0.0), (0.8, 0.6), (0.0, 1.0)]))
    # no shared words: the vector decides, and a perfect cosine maps to a full score
    best = scorer.score("whatever", INTENTS, embedding=(0.0, 1.0))[0]
    assert best == ("give_reference", 1.0)
    # a cosine at ``accept`` lands exactly on the lexical threshold
    at_accept = ((1 - scorer.accept**2) ** 0.5, scorer.accept)
    scores = dict(scorer.score("whatever", INTENTS, embedding=at_accept))
    assert abs(scores["give_reference"] - scorer.threshold) < 1e-6
    # without a vector it is the lexical scorer
    lexical = LexicalIntentScorer().score("yes that's right", INTENTS)
    assert scorer.score("yes that's right", INTENTS) == lexical


def test_example_vectors_must_match_their_texts() -> None:
    with pytest.raises(ValueError, match="2 examples but vectors of shape"):
        ExampleVectors(["a", "b"], [(1.0, 0.0)])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("between thirty and forty thousand a year", "40000"),  # a range: its upper bound
        ("like ten, twelve thousand", "12000"),  # a bare number takes its neighbour's scale
        ("forty thousand. wait, no, forty-five", "45000"),  # a correction: the last one
        ("not fifty, more like thirty-five thousand", "35000"),  # negated: skipped
        ("two hundred and fifty thousand dollars", "250000"),
        ("about 50k", "50000"),
        ("$1.5 million", "1500000"),
        ("we're five people and the budget is 30k", "30000"),
        ("eighty thousand … thousand a year", "80000"),  # a scale said twice does not multiply
        ("$60,000 K", "60000"),
        ("$45 000 a year", "45000"),  # thousands grouped with a space
        ("no budget", None),
    ],
)
def test_amounts(text: str, expected: str | None) -> None:
    assert ex.extract_currency(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("um this is uh Raj", "Raj"),
        ("yeah dana here", "Dana"),  # recognisers that write no case
        ("it's Nicole I'm gonna need the ordering provider first", "Nicole"),
        ("this is member services", None),
        ("it's approved", None),
        ("Reminder term is an Gwen speaking.", "Gwen"),  # a garbled start, the name before "speaking"
        ("Provider Services speaking.", None),
    ],
)
def test_names(text: str, expected: str | None) -> None:
    assert ex.extract_name(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("first thing, like 8", "08:00"),
        ("ten, no, eleven", "11:00"),
        ("not Tuesday, Wednesday at four", "16:00"),
        ("I have 5 people on the team", None),
        ("maybe ten thirty? actually, eleven would be better", "11:00"),
        ("one fifteen, sorry, two", "14:00"),
        ("eleven thirty, I've got a delivery at one", "11:30"),  # another event's time
        ("I've got a slot at three", "15:00"),  # a free slot is the time offered
        ("give me one minute to check, then two works", "14:00"),
    ],
)
def test_times_settle_on_the_last_one(text: str, expected: str | None) -> None:
    assert ex.extract_time(text) == expected


def test_dates_skip_negated_mentions_and_prefer_the_day_of_month() -> None:
    monday = dt.date(2026, 12, 7)
    assert ex.extract_date("not Tuesday, Wednesday at four", today=monday) == "2026-12-09"
    assert ex.extract_date("i can do tuesday the 15th", today=monday) == "2026-12-15"
    assert ex.extract_date("received on the 1st and decided on the 4th", today=monday) == "2026-12-04"


@pytest.mark.parametrize(
    ("value", "slot_type", "utterance", "expected"),
    [
        ("AP6629", "reference_number", "reference is A P 6 6 2 9", "AP6629"),
        ("123456", "reference_number", "I don't have one yet", None),  # invented
        ("12000", "currency", "like ten, twelve thousand", "12000"),
        ("90000", "currency", "like ten, twelve thousand", None),
        ("Priya", "name", "hi priya in provider services", "Priya"),
        ("Bob", "name", "hi priya in provider services", None),
    ],
)
def test_llm_values_must_be_grounded_in_the_turn(
    value: str, slot_type: str, utterance: str, expected: str | None
) -> None:
    from engine.nlu.grounding import grounded

    assert grounded(value, Slot(name="x", type=slot_type), utterance) == expected


def test_llm_enum_values_must_be_the_slots_own() -> None:
    from engine.nlu.grounding import grounded

    status = Slot(name="s", type="enum", values=["approved|okayed", "denied"])
    assert grounded("approved", status, "they okayed it") == "approved"
    assert grounded("maybe", status, "they okayed it") is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("not at one, make it two", "14:00"),
        ("can you patch me to one of your experts right now", None),  # a count, not a time
        ("we have two more questions for you", None),
        ("how about three thirty", "15:30"),
    ],
)
def test_times_and_counts(text: str, expected: str | None) -> None:
    assert ex.extract_time(text) == expected


def test_an_ordinal_that_counts_something_is_no_date() -> None:
    assert ex.extract_date("yes, that's what I said the first time", today=TODAY) is None
    assert ex.extract_date("it was decided on the first", today=TODAY) == "2026-11-01"


def test_a_hold_phrase_is_no_name() -> None:
    assert ex.extract_name("hang on, the line's crackling") is None
    assert ex.extract_name("wait, the line's bad") is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("not really, my director has the final say", "no"),  # the negation stops at the comma
        ("no, well, actually yes, it's my call", "yes"),
    ],
)
def test_enum_negation_stays_in_its_clause(text: str, expected: str) -> None:
    slot = Slot(name="decision_maker", type="enum", values=["yes|it's my call|i am", "no|my director|not me"])
    assert ex.extract_enum(text, slot) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("reference 6 1 2 0 9 5, and the office can call 1-800-555-0148 for a copy", "612095"),  # a phone
        ("the fax for clinicals is 855-555-0142", None),
        ("the due date on the case is 12/16", None),  # a date written with slashes
        ("she's been active since 2019", None),  # a year
        ("the number is K P 4 4 1 8 not K P 4 4 1 3", "KP4418"),  # the rejected value after "not"
        ("I'm not sure if it's 4471", "4471"),  # "not" before a hedge, not before the code
        ("auth number, B as in boy, then seven two oh one", "B7201"),
        ("its tee like tango four four nine one", "T4491"),  # a letter's name, "like" a word it starts
        ("you see, like I said, 5 5 0 2", "5502"),  # "see, like": no letter
        ("I only got six six two so far", None),  # "got" is no letter of a code
    ],
)
def test_codes_as_reps_read_them(text: str, expected: str | None) -> None:
    assert ex.extract_code(text) == expected


def test_a_date_of_birth_read_out_in_digits_is_no_reference() -> None:
    from engine import disclose
    from engine.schema_loader import load_schema

    schema = load_schema(Path(__file__).resolve().parents[2] / "schemas" / "prior_auth")
    data = {**SAMPLE_CALL_DATA["prior_auth"], "date_of_birth": "1980-01-15"}
    ids = disclose.identifiers(schema.spec, data)
    assert ex.extract_code("I put in 1 15 80 for the birthday", exclude=ids) is None


def test_digits_after_on_are_a_code_not_a_day() -> None:
    assert ex.extract_date("the auth number is 4 4 0 9 hang on 4 4 0 9 2 7", today=TODAY) is None
    assert ex.extract_date("the 22nd, 1:30", today=TODAY) == "2026-11-22"


def test_one_character_off_the_calls_own_id_is_a_misreading() -> None:
    own = frozenset({"XKM449812"})
    assert ex.extract_code("I'm getting X K M 4 4 9 8 1 3, is that right?", exclude=own) is None
    assert ex.extract_code("the reference is X K M 5 5 0 2 2 1", exclude=own) == "XKM550221"


def test_a_weekday_of_next_week() -> None:
    monday = dt.date(2026, 12, 7)
    assert ex.extract_date("Thursday of next week at the latest", today=monday) == "2026-12-17"
    assert ex.extract_date("Thursday at the latest", today=monday) == "2026-12-10"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("there's no real rush", "exploring"),  # an adverb slipped into "no rush"
        ("we don't even need it", "no_need"),
        ("just rushing nothing", None),  # the phrase's own words are all still needed, in order
    ],
)
def test_an_adverb_slipped_into_a_set_phrase(text: str, expected: str | None) -> None:
    slot = Slot(name="timeline", type="enum", values=["exploring|no rush", "no_need|don't need"])
    assert ex.extract_enum(text, slot) == expected


def test_a_field_named_with_another_determiner_is_asked_for() -> None:
    from engine.nlu.requests import asks_for_field, field_phrases

    phrases = field_phrases({"member_id": ["the id", "member id"]})
    asked = asks_for_field("give me that ID one more time, nice and slow", phrases)
    assert asked is not None and asked.field == "member_id" and asked.slowly
    assert asks_for_field("what exactly is the member ID?", phrases) is not None


def test_a_rate_word_marks_a_bare_number_as_an_amount() -> None:
    assert ex.extract_currency("somewhere around 2,500 a month") == "2500"
    assert ex.extract_currency("we have around 2,500 employees") is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [("that's it, you've got it", "yes"), ("I can give you about five minutes", "yes")],
)
def test_more_ways_to_say_yes(text: str, expected: str) -> None:
    assert ex.extract_yes_no(text) == expected


def test_an_answer_its_captured_value_implies_beats_another_answer() -> None:
    import asyncio

    from engine.schema_loader import load_schema
    from loadtests.nlu_eval import conversation_at

    schema = load_schema(Path(__file__).resolve().parents[2] / "schemas" / "prior_auth")
    convo = conversation_at(schema, "greeting", {}, TODAY, Understander())
    plan = asyncio.run(convo.take_turn("Nadia speaking, go ahead"))  # "go ahead" is a phrase of 'ready'
    assert plan.nlu is not None
    assert (plan.nlu.intent, plan.nlu.captured.get("rep_name")) == ("give_name", "Nadia")


def test_a_weekday_with_a_day_of_month_picks_the_month_it_falls_in() -> None:
    monday = dt.date(2026, 12, 7)
    said = "it was decided the week before the holiday, Wednesday the 18th"  # a verb's tense wins
    assert ex.extract_date(said, today=monday) == "2026-11-18"  # Wednesday, not Friday Dec 18
    # no Friday the 13th from last month to next: the day of month, as when no weekday is said
    assert ex.extract_date("Friday the 13th works", today=monday, tense="future") == "2026-12-13"
    assert ex.extract_date("it should be decided by the 9th", today=monday) == "2026-12-09"
    assert ex.extract_date("it came in on the 30th and it's due the 14th", today=monday) == "2026-12-14"


def test_contractions_written_without_their_apostrophe() -> None:
    from engine.nlu.text import normalise

    assert normalise("i couldnt tell you, they dont say, im not sure") == (
        "i couldn't tell you, they don't say, i'm not sure"
    )
    assert normalise("shes eligible and hes the subscriber") == "she's eligible and he's the subscriber"
    assert (
        normalise("we were there, its fine, my id") == "we were there, its fine, my id"
    )  # words of their own


def test_a_validity_end_is_no_date_something_happened() -> None:
    monday = dt.date(2026, 12, 7)
    assert ex.extract_date("it's approved, good through March 31st", today=monday) is None
    assert ex.extract_date("approved on the 2nd, valid through the 31st", today=monday) == "2026-12-02"
    assert ex.extract_date("Pending. You'll have an answer by the 16th.", today=monday) == "2026-12-16"


def test_a_later_states_date_is_taken_early_only_with_its_cue() -> None:
    import asyncio

    from engine.schema_loader import load_schema
    from loadtests.nlu_eval import conversation_at

    schema = load_schema(Path(__file__).resolve().parents[2] / "schemas" / "prior_auth")

    def said(text: str) -> dict[str, str]:
        convo = conversation_at(schema, "get_reference", {"auth_status": "approved"}, TODAY, Understander())
        plan = asyncio.run(convo.take_turn(text))
        assert plan.nlu is not None
        return plan.nlu.captured

    assert said("it's R 5 5 0 9 2, and it was approved yesterday")["decision_date"] == "2026-11-20"
    assert "decision_date" not in said("it came in on 11/30, reference R 5 5 0 9 2")  # received, not decided


def test_a_yes_that_corrects_a_read_back_value_is_a_no() -> None:
    import asyncio

    from engine.schema_loader import load_schema
    from loadtests.nlu_eval import conversation_at

    schema = load_schema(Path(__file__).resolve().parents[2] / "schemas" / "prior_auth")
    filled = {"auth_status": "approved", "reference_number": "R55092", "decision_date": "2026-11-18"}
    convo = conversation_at(schema, "confirm_details", filled, TODAY, Understander())
    plan = asyncio.run(convo.take_turn("yeah, except the decision was the 19th, not the 18th"))
    assert plan.nlu is not None
    assert plan.nlu.captured == {"details_confirmed": "no", "decision_date": "2026-11-19"}


def test_an_enum_phrase_with_my_also_holds_with_our_and_the() -> None:
    slot = Slot(name="decision_maker", type="enum", values=["no|my vp|my boss", "yes|i decide"])
    assert ex.extract_enum("I'd recommend it, but the VP decides", slot) == "no"
    assert ex.extract_enum("our boss signs", slot) == "no"


def test_a_way_out_answers_only_the_yes_no_questions_it_is_about() -> None:
    import asyncio

    from engine.schema_loader import load_schema
    from loadtests.nlu_eval import conversation_at

    schema = load_schema(Path(__file__).resolve().parents[2] / "schemas" / "sales_qualification")

    def said(state: str, text: str) -> tuple[str | None, dict[str, str]]:
        plan = asyncio.run(conversation_at(schema, state, {}, TODAY, Understander()).take_turn(text))
        assert plan.nlu is not None
        return plan.nlu.intent, plan.nlu.captured

    assert said("greeting", "we're not interested, we never were") == ("not_interested", {})
    assert said("greeting", "no, I'm in a meeting") == ("busy", {"has_time": "no"})  # busy answers has_time


def test_a_filler_word_inside_a_code_adds_no_letters() -> None:
    assert ex.extract_code("tracking number 8 8 3, uh, 0 2 5") == "883025"
    assert ex.extract_code("Uh, it's R 4 4 0 9 1") == "R44091"


def test_a_weekday_before_the_day_of_month_and_this_past() -> None:
    monday = dt.date(2026, 12, 7)
    assert ex.extract_date("on Monday the 30th", today=monday) == "2026-11-30"
    assert ex.extract_date("this past Friday", today=monday) == "2026-12-04"


def test_what_was_spent_is_no_budget_and_the_end_of_the_week_is_friday() -> None:
    assert ex.extract_currency("we spent twenty grand on the last tool, so nothing budgeted now") is None
    assert ex.extract_currency("we blew through forty grand last quarter. this year, maybe 30k") == "30000"
    monday = dt.date(2026, 12, 7)
    assert ex.extract_date("by the end of next week", today=monday) == "2026-12-18"
    assert ex.extract_date("end of the week", today=monday) == "2026-12-11"


def test_next_weekday_is_in_next_week_and_a_move_without_a_new_time_is_a_no() -> None:
    tuesday = dt.date(2026, 12, 8)
    assert ex.extract_date("next Thursday around ten", today=tuesday) == "2026-12-17"
    assert ex.extract_date("Thursday around ten", today=tuesday) == "2026-12-10"
    assert ex.extract_yes_no("ugh, could we bump it a week or so") == "no"
    assert ex.extract_yes_no("could we bump it to four instead") is None  # the new time says it


def test_a_field_then_please_asks_and_which_names_a_field() -> None:
    from engine.nlu.requests import asks_for_field, field_phrases

    phrases = field_phrases({"provider_npi": ["npi"], "cpt_code": ["the code"]})
    asked = asks_for_field("okay, and the ordering provider's NPI please", phrases)
    assert asked is not None and asked.field == "provider_npi"
    asked = asks_for_field("hang on, which code are we talking about here?", phrases)
    assert asked is not None and asked.field == "cpt_code"
    assert asks_for_field("please hold on while I look up the NPI in here", phrases) is None


def test_contentment_with_no_problem_named_is_no_pain() -> None:
    import asyncio

    from engine.schema_loader import load_schema
    from loadtests.nlu_eval import conversation_at

    schema = load_schema(Path(__file__).resolve().parents[2] / "schemas" / "sales_qualification")
    for text in ("honestly things have been going really well these days", "we're good so far"):
        convo = conversation_at(schema, "discover_pain", {}, TODAY, Understander())
        plan = asyncio.run(convo.take_turn(text))
        assert plan.nlu is not None and "pain" not in plan.nlu.captured, text


def test_the_last_tense_cue_wins_and_a_letter_confirmed_by_its_word_is_one_letter() -> None:
    wednesday = dt.date(2026, 12, 9)
    said = "the nurse looked at it, it went up to the director and it was signed off on the 4th"
    assert ex.extract_date(said, today=wednesday) == "2026-12-04"
    assert ex.extract_code("it begins with a K, K as in kilo, 7 7 0 1") == "K7701"
    assert ex.extract_code("it's a b c 4 4 1") == "ABC441"  # the letters A B C, not an article


def test_a_field_that_says_where_the_rep_looked_is_no_request() -> None:
    from engine.nlu.requests import asks_for_field, field_phrases

    phrases = field_phrases({"member_id": ["the id", "member id"]})
    assert asks_for_field("nothing comes up under her member ID, is it new?", phrases) is None
    asked = asks_for_field("I'll need the full member ID, letters too", phrases)
    assert asked is not None and asked.field == "member_id"


def _turn(schema_name: str, state: str, text: str, filled: Mapping[str, str] | None = None) -> NLUResult:
    import asyncio

    from engine.schema_loader import load_schema
    from loadtests.nlu_eval import conversation_at

    schema = load_schema(Path(__file__).resolve().parents[2] / "schemas" / schema_name)
    convo = conversation_at(schema, state, dict(filled or {}), TODAY, Understander())
    plan = asyncio.run(convo.take_turn(text))
    assert plan.nlu is not None
    return plan.nlu


def test_run_together_words_couple_of_and_split_prefixes() -> None:
    from engine.nlu.text import normalise, phrase_regex, rejoin

    assert normalise("Gimme a minute, lemme look") == "give me a minute, let me look"
    pattern = phrase_regex(["in", "a", "couple", "of", "weeks"])
    import re

    assert re.search(pattern, "in a couple weeks") and re.search(pattern, "in a couple of weeks")
    vocabulary = frozenset({"inactive", "coverage", "active"})
    assert rejoin("coverage is in active", vocabulary) == "coverage is inactive"


def test_a_question_to_the_agent_later_in_the_turn_is_no_free_text_answer() -> None:
    from engine.nlu.text import asks_the_agent

    assert asks_the_agent("hold that thought, what do you guys actually charge")
    assert not asks_the_agent("the real issue is, how do we cover weekends")
    nlu = _turn("sales_qualification", "discover_pain", "first things first, what does your thing even do")
    assert "pain" not in nlu.captured and nlu.asked is not None and nlu.asked.field == "product_area"


def test_spelled_questions_and_start_over_are_requests() -> None:
    from engine.nlu.requests import asks_for_field, asks_to_repeat, field_phrases

    phrases = field_phrases({"patient_name": ["last name"]})
    asked = asks_for_field("okay and how is the last name spelled", phrases)
    assert asked is not None and asked.field == "patient_name"
    assert asks_to_repeat("my line dropped for a second, could you start over")
    assert asks_to_repeat("it's noisy here, I just caught part of it")


def test_times_said_loosely_and_a_time_ruled_out() -> None:
    assert ex.extract_time("wednesday, quarter passed eleven") == "11:15"
    assert ex.extract_time("let's say quarter of three") == "14:45"
    assert ex.extract_time("mornings are out, I can't do ten") is None


def test_values_the_agent_got_wrong_are_not_taken() -> None:
    assert ex.extract_code("nope, it's 5 5 2 0 8, you have it down as 5 5 0 2 8") == "55208"
    assert ex.extract_code("starts with a B as in boy, not a P, B 4 4 1 9") == "B4419"
    wednesday = dt.date(2026, 12, 16)
    assert ex.extract_date("it was decided on the 9th, you said the 10th", today=wednesday) == "2026-12-09"
    nlu = _turn(
        "prior_auth",
        "confirm_details",
        "not quite, the number is 8 8 1 0 4, you read back 8 8 0 1 4",
        {"auth_status": "approved", "reference_number": "88014"},
    )
    assert nlu.captured == {"reference_number": "88104", "details_confirmed": "no"}


def test_went_through_is_an_event_and_looking_at_gives_a_duration() -> None:
    wednesday = dt.date(2026, 12, 16)
    assert ex.extract_date("it was approved, went through on Tuesday", today=wednesday) == "2026-12-15"
    assert ex.extract_date("you're looking at two to four business days", today=wednesday) == "2026-12-22"
    assert ex.extract_date("that auth is good through Friday", today=wednesday) is None


def test_names_after_a_repeated_cue_or_a_greeting() -> None:
    assert ex.extract_name("yes this is, um, this is Rosalind, how can I help") == "Rosalind"
    assert ex.extract_name("hello, Bartholomew on the precert line") == "Bartholomew"


def test_yes_in_looser_words() -> None:
    assert ex.extract_yes_no("yep that'd work for us") == "yes"
    assert ex.extract_yes_no("sure, carry on") == "yes"
    assert ex.extract_yes_no("we're tiny and I doubt we need it, but what do you need to know") == "yes"
    assert ex.extract_yes_no("it all matches on my end") == "yes"


def test_a_time_frame_by_the_month_it_names() -> None:
    slot = Slot(
        name="timeline",
        type="enum",
        values=["soon|asap", "quarter|this quarter", "year|this year", "later|someday"],
        by_when={"soon": 31, "quarter": 120, "year": 366, "later": None},
    )
    december = dt.date(2026, 12, 16)
    assert ex.extract_time_frame("the old system gets switched off in January", slot, december) == "soon"
    assert ex.extract_time_frame("before the end of February", slot, december) == "quarter"
    assert ex.extract_time_frame("sometime around August", slot, december) == "year"
    assert ex.extract_time_frame("we may get to it", slot, december) is None
    with pytest.raises(ValueError, match="does not have: never"):
        Slot(name="t", type="enum", values=["soon"], by_when={"never": 3})
    with pytest.raises(ValueError, match="only the last may be null"):
        Slot(name="t", type="enum", values=["a", "b"], by_when={"a": None, "b": 3})


def test_dates_counted_from_a_weekday_or_from_now_and_days_ruled_out() -> None:
    wednesday = dt.date(2027, 2, 3)
    assert ex.extract_date("a week from Tuesday at the latest", today=wednesday) == "2027-02-16"
    assert ex.extract_date("three business days from now", today=wednesday) == "2027-02-08"
    assert ex.extract_date("I'm away on the 9th, the 10th is better", today=wednesday) == "2027-02-10"
    assert ex.extract_date("might be Monday, might be the Wednesday after", today=wednesday) is None
    assert ex.extract_date("the committee sits the third Thursday", today=wednesday, relative=False) is None
    assert ex.extract_code("it went through feb 1 without a hitch") is None  # a date, not code FEB1


def test_codes_corrected_in_their_tail_or_spelled_beside_a_date() -> None:
    assert ex.extract_code("ref B as in boy 4 4 1 7, sorry, 4 4 1 8") == "B4418"
    assert ex.extract_code("Sierra Tango 5 5 1 2 0, approved on the third") == "ST55120"


def test_clock_words_as_recognisers_write_them_and_k_said_as_kay() -> None:
    assert ex.extract_time("around four-ish works") == "16:00"
    assert ex.extract_time("nine sharp, before clinic") == "09:00"
    assert ex.extract_time("friday 930 would be ideal") == "09:30"
    assert ex.extract_time("too pm on monday") == "14:00"
    assert ex.extract_time("ate fifteen if that's not too early") == "08:15"
    assert ex.extract_currency("we set aside fifteen kay") == "15000"
    assert ex.extract_yes_no("can we move it an hour earlier, to 10:30") is None  # the new time says it


def test_names_after_a_short_greeting_and_a_time_frame_from_a_date() -> None:
    assert ex.extract_name("yup. Esperanza, appeals") == "Esperanza"
    assert ex.extract_name("Cornelius in pharmacy, go ahead") == "Cornelius"
    slot = Slot(name="t", type="enum", values=["soon", "later"], by_when={"soon": 31, "later": None})
    assert ex.extract_time_frame("it has to work before March 2nd", slot, dt.date(2027, 2, 3)) == "soon"


def test_digit_and_number_homophones_as_recognisers_write_them() -> None:
    assert ex.extract_code("sure it's k like kilo 3 for for 1 2") == "K34412"
    assert ex.extract_code("the number is won two too oh six") == "12206"
    assert ex.extract_code("I'll pass it to the team, sorry") is None
    assert ex.extract_currency("we could do for thousand a year") == "4000"
    assert ex.extract_currency("about a hundred an twenty bucks a seat") == "120"
    assert ex.extract_time("thursday at like ate") == "08:00"
    assert ex.extract_time("how about half passed to in the afternoon") == "14:30"
    assert ex.extract_time("can we move it to for instead") == "16:00"
    assert ex.extract_time("mornings are out, how about 3") == "15:00"


def test_split_words_and_homophones_are_put_back() -> None:
    from engine.nlu.text import normalise, rejoin

    assert normalise("no body sent any thing yester day") == "nobody sent anything yesterday"
    assert normalise("please take me of the list") == "please take me off the list"
    assert normalise("in a few weaks") == "in a few weeks"
    vocabulary = frozenset({"approved", "getting"})
    assert rejoin("it was a pproo ved", vocabulary) == "it was a pproo ved"  # two letters off: left
    assert rejoin("it was ap proved", vocabulary) == "it was approved"
    assert rejoin("I'm getting X K M", vocabulary) == "I'm getting X K M"  # a letter read out stays


def test_a_field_asked_in_words_that_hold_a_way_out_is_a_request() -> None:
    nlu = _turn(
        "prior_auth",
        "get_decision_date",
        "and what's a good call back number for you",
        {"auth_status": "approved"},
    )
    assert nlu.asked is not None and nlu.asked.field == "callback_number"
    nlu = _turn(
        "prior_auth",
        "get_decision_date",
        "please call back tomorrow, what is your number",
        {"auth_status": "pending"},
    )
    assert nlu.intent == "call_back_later"


def test_a_bare_day_of_month_leans_on_the_status() -> None:
    decided = _turn("prior_auth", "get_decision_date", "the 2nd", {"auth_status": "denied"})
    waiting = _turn("prior_auth", "get_decision_date", "the 28th", {"auth_status": "pending"})
    assert decided.captured == {"decision_date": "2026-11-02"}  # TODAY is 2026-11-21
    assert waiting.captured == {"decision_date": "2026-11-28"}
    assert ex.extract_name("my name is uh mm hm so how can I help") is None


def test_a_day_said_as_a_cardinal_and_no_answering_before_a_day() -> None:
    from engine.nlu.text import normalise

    wednesday = dt.date(2027, 4, 14)
    assert ex.extract_date("it was decided march twenty two", today=wednesday) == "2027-03-22"
    assert ex.extract_date("march twenty twenty-seven", today=wednesday) is None  # a year, no day
    assert ex.extract_date("nope nope, monday, not tuesday", today=wednesday, tense="future") == "2027-04-19"
    assert ex.extract_date("no, not monday", today=wednesday, tense="future") is None
    assert normalise("okay thanks by now") == "okay thanks bye now"


def test_clock_times_said_with_hyphens_halves_and_the_military_hour() -> None:
    assert ex.extract_time("let's say eleven forty-five on the dot") == "11:45"
    assert ex.extract_time("somewhere near two and a half") == "14:30"
    assert ex.extract_time("make it oh eight hundred") == "08:00"
    assert ex.extract_time("fifteen hundred hours works") == "15:00"
    assert ex.extract_time("our budget is nine hundred") is None


def test_counts_and_money_spent_are_no_amount_but_a_bare_number_is() -> None:
    assert ex.extract_currency("maybe thirty grand, we have twelve locations") == "30000"
    assert ex.extract_currency("we're a crew of nine people and cost matters") is None
    assert ex.extract_currency("we keep losing fifty grand a year to no-shows") is None
    assert ex.extract_currency("uh, eighty-five hundred") == "8500"


def test_a_contrast_is_no_answer_but_corrects_a_read_back() -> None:
    assert ex.extract_yes_no("sure thing. three minutes, not ten.") == "yes"
    assert ex.extract_yes_no("lock it in, and text me, not this number") == "yes"
    assert ex.extract_yes_no("we're locked in with a vendor till spring") is None
    nlu = _turn(
        "prior_auth",
        "confirm_details",
        "the last digit is 7 not 1, so 3 3 8 2 0 7",
        {"reference_number": "338201", "auth_status": "approved"},
    )
    assert nlu.captured == {"reference_number": "338207", "details_confirmed": "no"}


def test_dates_by_holiday_by_month_end_by_past_verb_and_the_week_after_next() -> None:
    monday = dt.date(2027, 10, 4)
    assert ex.extract_date("we need it before Thanksgiving", today=monday) == "2027-11-25"
    assert ex.extract_date("some time after Black Friday", today=monday) == "2027-11-26"
    assert ex.extract_date("no later than the end of next month", today=monday) == "2027-11-30"
    assert ex.extract_date("Thursday, the week after next", today=monday) == "2027-10-21"
    assert ex.extract_date("the medical director signed off on the 6th", today=monday) == "2027-09-06"
    assert ex.extract_date("the reviewer stamped it September 30", today=monday) == "2027-09-30"
    assert ex.extract_date("ten business days counting from today", today=monday) == "2027-10-18"
    timeline = Slot(
        name="timeline",
        type="enum",
        values=("soon", "later"),
        by_when={"soon": 60, "later": None},
    )
    assert ex.extract_time_frame("not until the merger, 2030 probably", timeline, monday) == "later"


def test_a_name_said_alone_or_as_indian_and_southern_english_say_it() -> None:
    assert ex.extract_name("Oluwaseun.") == "Oluwaseun"
    assert ex.extract_name("Mary Beth.") == "Mary Beth"
    assert ex.extract_name("Certainly.") is None
    assert ex.extract_name("Tomorrow.") is None
    assert ex.extract_name("Good afternoon, Raghav this side, how may I help") == "Raghav"
    assert ex.extract_name("well y'all got Lurleen today") == "Lurleen"


def test_field_asks_name_the_agents_company_and_skip_places_in_the_read_out() -> None:
    nlu = _turn("sales_qualification", "discover_pain", "hang on, what does Brightline even sell")
    assert nlu.asked is not None and nlu.asked.field == "product_area"
    nlu = _turn("prior_auth", "verify_member", "the line dropped just past the date of birth, start again")
    assert nlu.asked is None and nlu.intent == "repeat"
    nlu = _turn("prior_auth", "ask_status", "that CPT, was it 99213 or 99214?")
    assert nlu.asked is not None and nlu.asked.field == "cpt_code" and nlu.captured == {}


def test_codes_joined_across_words_swapped_neighbours_and_an_article_before_digits() -> None:
    assert ex.extract_code("it opens with R T, followed by four one one nine") == "RT4119"
    # this call's member ID with two neighbours swapped is that ID misread, not a new code
    assert ex.extract_code("I keyed in XKM448912 and nothing", exclude=frozenset({"XKM449812"})) is None
    assert ex.extract_code("we show a 1979 birthday for her") is None
    assert ex.extract_code("5 0 7 7 2 1 8, and it was signed on the fifth") == "5077218"


def test_a_name_before_speaking_is_no_yes_and_an_ack_of_a_hold_no_no() -> None:
    assert ex.extract_yes_no("Harbor Freight, Luis speaking, what's it regarding") is None
    assert ex.extract_yes_no("Speaking.") == "yes"
    assert ex.extract_yes_no("let me grab her, do not hang up") is None


def test_amounts_said_the_way_people_say_them() -> None:
    assert ex.extract_currency("maybe one twenty five k") == "125000"
    assert ex.extract_currency("half a million, tops") == "500000"
    assert ex.extract_currency("three to four grand in phase one") == "4000"
    assert ex.extract_currency("thirty ish thousand") == "30000"
    assert ex.extract_currency("fourteen, no, forty thousand, four zero") == "40000"
    assert ex.extract_currency("a quarter million across both distribution centers") == "250000"


def test_times_with_hyphens_and_one_ruled_out_by_instead_of() -> None:
    assert ex.extract_time("eight-forty-five works") == "08:45"
    assert ex.extract_time("say ten-thirty") == "10:30"
    assert ex.extract_time("make it two instead of four") == "14:00"


def test_dates_split_weekdays_teens_heard_as_tens_and_corrections_by_rather_than() -> None:
    tuesday = dt.date(2027, 2, 9)
    assert ex.extract_date("next thurs day works", today=tuesday) == "2027-02-18"
    assert ex.extract_date("they have until monday the sixty", today=tuesday) == "2027-02-16"
    assert ex.extract_date("it should say the 14th rather than the 15th", today=tuesday) == "2027-02-14"
    assert ex.extract_date("expect it within two business days of today", today=tuesday) == "2027-02-11"
    assert ex.extract_date("Friday the 12th, right after Valentine's Day", today=tuesday) == "2027-02-12"


def test_time_frames_from_a_span_a_year_in_words_or_a_relative_day() -> None:
    timeline = Slot(
        name="timeline", type="enum", values=("soon", "later"), by_when={"soon": 60, "later": None}
    )
    monday = dt.date(2027, 10, 4)
    assert ex.extract_time_frame("about five weeks out", timeline, monday) == "soon"
    assert ex.extract_time_frame("twenty thirty one, maybe", timeline, monday) == "later"
    assert ex.extract_time_frame("by Friday if we can", timeline, monday) == "soon"


def test_yes_no_from_shoot_i_guess_and_we_are_good() -> None:
    assert ex.extract_yes_no("oh shoot, the forklift, no, not now") == "no"
    assert ex.extract_yes_no("sure, shoot") == "yes"
    assert ex.extract_yes_no("I guess. Make it fast.") == "yes"
    assert ex.extract_yes_no("we signed with someone last year, so we're all set") is None


def test_formal_requests_and_the_callers_own_name() -> None:
    nlu = _turn("prior_auth", "verify_member", "Kindly state the member's date of birth for verification.")
    assert nlu.asked is not None and nlu.asked.field == "date_of_birth"
    nlu = _turn("prior_auth", "greeting", "This is Odalys. And may I have your full name, please?")
    assert nlu.asked is None and nlu.captured.get("rep_name") == "Odalys"
    assert ex.extract_name("its rosalind on the auth line") == "Rosalind"


def test_half_ten_first_thing_and_yes_words_in_their_places() -> None:
    assert ex.extract_time("half nine suits me") == "09:30"
    assert ex.extract_time("first thing, around seven-fifteen") == "07:15"
    assert ex.extract_yes_no("wait, what exactly is this") is None
    assert ex.extract_yes_no("Exactly. Go on.") == "yes"
    assert ex.extract_yes_no("guilty as charged") == "yes"


def test_asks_by_want_the_a_slipped_actual_and_too_fast() -> None:
    nlu = _turn("prior_auth", "greeting", "Lorena here, my lead wants the NPI before anything")
    assert nlu.asked is not None and nlu.asked.field == "provider_npi"
    nlu = _turn("prior_auth", "verify_member", "that was the birthday again, what's the actual member ID")
    assert nlu.asked is not None and nlu.asked.field == "member_id"
    nlu = _turn("prior_auth", "verify_member", "slow down, that was way too fast for me")
    assert nlu.intent == "repeat"


def test_a_code_corrected_in_its_tail_after_an_apology() -> None:
    text = "prefix K T, then 5 2 9 4 1 0. My apologies, I transposed two, it should be 5 2 4 9 1 0"
    assert ex.extract_code(text) == "KT524910"


def test_a_day_said_before_its_month_and_an_hour_after_it() -> None:
    today = dt.date(2026, 11, 21)  # a Saturday
    assert ex.extract_date("Wednesday, 9 December, at two", today=today) == "2026-12-09"
    assert ex.extract_date("decision due field shows twelfth December", today=today) == "2026-12-12"
    assert ex.extract_date("Monday the 7th of December, ten a.m. sharp", today=today) == "2026-12-07"
    assert ex.extract_date("the 28th, 9 a.m. my time", today=today) == "2026-11-28"
    assert ex.extract_date("we meet 5 may be 6 of us", today=today) is None  # "may" after a digit: the verb


def test_a_weekday_of_last_week_and_on_friday_last() -> None:
    today = dt.date(2026, 11, 24)  # a Tuesday
    assert ex.extract_date("it was okayed on Friday last", today=today) == "2026-11-20"
    assert ex.extract_date("decided Wednesday of last week", today=today) == "2026-11-18"
    assert ex.extract_date("I'll ring you Friday, last thing before the weekend", today=today) == "2026-11-27"


def test_names_said_with_myself_and_you_are_speaking_to() -> None:
    assert ex.extract_name("Good morning ma'am, myself Harpreet from eligibility") == "Harpreet"
    assert ex.extract_name("you are speaking to Ottilie in utilization review") == "Ottilie"
    assert ex.extract_name("I'll check it myself Thursday") is None


def test_repeat_cues_and_a_repeat_answers_no_question_by_implication() -> None:
    for text in (
        "line is breaking, tell it once more slowly",
        "kindly say the whole thing again",
        "sorry, I lost you there",
        "which date did you ask?",
    ):
        assert _turn("prior_auth", "verify_member", text).intent == "repeat", text
    nlu = _turn("sales_qualification", "greeting", "I am not fast with English, repeat more slow?")
    assert nlu.intent == "repeat" and "has_time" not in nlu.captured
    nlu = _turn("sales_qualification", "greeting", "nope, sorry, say that again?")
    assert nlu.captured.get("has_time") == "no"


def test_a_set_phrase_with_call_list_remove_said_another_way() -> None:
    from engine.nlu.intents import phrase_heard

    assert phrase_heard("please do not phone this office again", ["do not call"])
    assert phrase_heard("erase us from your crm", ["remove us from your list"])
    assert not phrase_heard("you'd have to call the plan", ["have to phone"])  # one way only
    assert not phrase_heard("our phone system is a mess", ["call list"])


def test_a_code_sets_name_the_correct_one_and_what_you_told() -> None:
    assert ex.extract_code("and the diagnosis, ICD-10 please, it's required") is None
    text = "Wrong number, the correct one is R T 5 5 1 8 0, you told R T 5 5 1 0 8"
    assert ex.extract_code(text) == "RT55180"
    assert ex.extract_yes_no("no, the correct number is 4 4 1") == "no"
    assert ex.extract_yes_no("correct, that all matches") == "yes"
    nlu = _turn("prior_auth", "verify_member", "could you spell the patient's legal name for me")
    assert nlu.asked is not None and nlu.asked.field == "patient_name"


def test_a_code_whose_tail_is_said_again_and_a_filler_like() -> None:
    assert ex.extract_code("it's D as in delta, F as in fox, 3 3 0 7, sorry, 3 3 7 0, 1 5") == "DF337015"
    assert ex.extract_code("it's 6 6 1 2 8, no wait, 9 0 1 2 4 4") == "901244"  # a new code
    assert ex.extract_code("R B, like, 7 7 0 2 1 9") == "RB770219"
    assert ex.extract_code("QT, um, QT 5, 5... sorry, QT 5 2 5 8") == "QT5258"


def test_a_per_seat_price_and_an_hour_after_its_day() -> None:
    assert ex.extract_currency("Thirty a user.") == "30"
    assert ex.extract_currency("we hire six a month") is None
    assert ex.extract_time("Friday the twelfth of March, ten.") == "10:00"
    assert ex.extract_time("I have Tuesday and one other slot") is None


def test_words_after_its_that_are_no_name() -> None:
    assert ex.extract_name("the upgrade finishes tonight, call back once it's live") is None
    assert ex.extract_name("nobody can open a record today") is None


def test_letters_names_as_a_recogniser_writes_them_and_clock_times_without_colons() -> None:
    assert ex.extract_code("the number's kay tee 4 0 8 8 1") == "KT40881"
    assert ex.extract_code("sure it is are see nine one one two six") == "RC91126"
    assert ex.extract_code("jay as in juliet 7 3 3 0 2") == "J73302"
    assert ex.extract_code("the ones on file are 5 8 2 1 7") == "58217"  # "are" alone is no R
    assert ex.extract_code("it should be 6 2 0 1 9") == "62019"
    assert ex.extract_time("friday at 4 45 works") == "16:45"
    assert ex.extract_time("how about 1015") == "10:15"
    assert ex.extract_time("we budget 1100 dollars") is None
    assert ex.extract_time("two 45 minute calls at 9") == "09:00"


def test_a_couple_or_a_few_hundred_and_a_word_amount_past_a_thousand() -> None:
    assert ex.extract_currency("a couple hundred dollars a month") == "200"
    assert ex.extract_currency("a few grand, tops, for the year") == "3000"
    assert ex.extract_currency("one grand, maybe thirty five hundred a year") == "3500"
    assert ex.extract_currency("we could do eighteen hundred for the year") == "1800"
    assert ex.extract_currency("about four hundred people work here") is None


def test_a_day_of_next_month_a_range_of_business_days_and_the_tense_of_the_dates_clause() -> None:
    today = dt.date(2027, 10, 19)  # a Tuesday
    assert ex.extract_date("should be done by the tenth of next month", today=today) == "2027-11-10"
    assert ex.extract_date("it went out on the second of last month", today=today) == "2027-09-02"
    assert ex.extract_date("figure four, possibly six business days out", today=today) == "2027-10-27"
    # the clause that says the date is past, the one after it future
    assert ex.extract_date("they turned it down the ninth and nobody is gonna reopen it", today=today) == (
        "2027-10-09"
    )


def _field_asked(text: str, phrases: Mapping[str, tuple[re.Pattern[str], ...]]) -> str | None:
    from engine.nlu.requests import asks_for_field

    asked = asks_for_field(text, phrases)
    return asked.field if asked else None


def test_a_field_named_in_a_sentence_of_its_own_and_said_another_way() -> None:
    from engine.nlu.requests import field_phrases

    phrases = field_phrases(
        {
            "patient_name": ["last name"],
            "member_id": ["id number"],
            "cpt_code": ["c p t"],
            "insurer": ["carrier"],
        }
    )

    def field(text: str) -> str | None:
        return _field_asked(text, phrases)

    assert field("Her surname, first. Nothing gets opened until I have it on screen.") == "patient_name"
    assert field("ok read me the card number on her file again") == "member_id"
    assert field("um which see pee tee is this for") == "cpt_code"
    assert field("It's the carrier, mostly. They changed the rules in spring and we keep tripping.") is None
    assert field("Id number 4471 matches. She is active with us since spring.") is None


def test_a_name_said_as_its_own_clause_after_a_short_label() -> None:
    assert ex.extract_name("Pharmacy desk, Lucinda, what can I do for you?") == "Lucinda"
    assert ex.extract_name("Mm. Octavia. Talk to me.") == "Octavia"
    assert ex.extract_name("Right. Anyway, what do you need?") is None
    assert ex.extract_name("Our records system is down until four p.m. Central, sorry about that.") is None


def test_a_problem_denied_is_no_pain_described_unless_one_follows() -> None:
    nlu = _turn(
        "sales_qualification", "discover_pain", "truth is we don't really have any big problems with it"
    )
    assert "pain" not in nlu.captured and nlu.intent is None
    nlu = _turn(
        "sales_qualification",
        "discover_pain",
        "we don't have a problem with pay, but the shift swaps eat my Mondays",
    )
    assert nlu.captured.get("pain")


def test_could_we_do_it_proposes_and_is_no_yes() -> None:
    assert ex.extract_yes_no("could we do it twenty minutes later?") is None
    assert ex.extract_yes_no("how do we do it then") is None
    assert ex.extract_yes_no("we do, yes") == "yes"


def test_the_following_weekday_counts_from_the_day_said_before_it() -> None:
    today = dt.date(2027, 10, 19)  # a Tuesday
    said = "the 27th has the audit on it, the following Tuesday at the same hour is fine"
    assert ex.extract_date(said, today=today, lean="future") == "2027-11-02"
    assert ex.extract_date("not the 21st, the Monday after that", today=today, lean="future") == "2027-10-25"
    assert ex.extract_date("the following Monday works", today=today, lean="future") == "2027-10-25"


def test_dates_from_hours_weekdays_naming_a_date_said_nth_weekdays_and_month_day_numbers() -> None:
    today = dt.date(2027, 10, 19)  # a Tuesday
    assert ex.extract_date("they get these out inside forty-eight hours", today=today) == "2027-10-21"
    assert ex.extract_date("ring us again in three hours", today=today) is None  # no day named
    assert (
        ex.extract_date("Thirtieth, the Saturday, if that's alright", today=today, lean="future")
        == "2027-10-30"
    )
    assert ex.extract_date("not the 28th, Thursday I'm flying", today=today, lean="future") is None
    assert ex.extract_date("the Wednesday after this one", today=today, lean="future") == "2027-10-27"
    assert ex.extract_date("the second Tuesday in December", today=today, lean="future") == "2027-12-14"
    assert ex.extract_date("eleven four", today=today, tense="any") == "2027-11-04"
    assert ex.extract_date("it's dated nine thirty", today=today) == "2027-09-30"
    assert ex.extract_date("eleven four", today=today, tense="future") is None  # a meeting's time
    assert ex.extract_date("they closed it the ninth nope sorry the tenth", today=today) == "2027-10-10"
    assert ex.extract_code("the date is nine thirty") is None
    said = "Sure, the code is four, four, two. one, three."  # digits read out
    assert ex.extract_date(said, today=today) is None


_SIGNER = Slot(
    name="signer", type="enum", values=["yes|i sign", "no|not me"], who_answers={"self": "yes", "other": "no"}
)


def test_who_answers_reads_an_answer_that_names_the_speaker_or_someone_else() -> None:
    slot = _SIGNER
    assert ex.extract_enum("Myself. Nobody else touches the checkbook.", slot) == "yes"
    assert ex.extract_enum("Our office manager, Denise, she runs the purchases", slot) == "no"
    assert ex.extract_enum("it'd get approved by the finance committee", slot) == "no"
    assert ex.extract_enum("me? no way, my father does", slot) == "no"
    assert ex.extract_enum("the price matters most", slot) is None
    assert ex.extract_enum("It's my company, nobody else signs.", slot) == "yes"
    assert ex.extract_enum("there's a purchasing committee for that", slot) == "no"
    assert ex.extract_enum("My firm's partners decide", slot) == "no"
    with pytest.raises(ValueError, match="who_answers"):
        Slot(name="signer", type="enum", values=["yes", "no"], who_answers={"self": "yes", "other": "maybe"})


def test_hours_said_with_their_zone_or_ish_and_a_repeat_that_is_only_an_apology() -> None:
    assert ex.extract_time("Nine, Pacific. I'm on the coast.") == "09:00"
    assert ex.extract_time("eleven your time works for me") == "11:00"
    assert ex.extract_time("Three-ish, after the deliveries") == "15:00"
    assert ex.extract_time("about six-ish people on that shift") is None
    assert asks_to_repeat("sorry, the line went dead, start the entire pitch over?")
    assert asks_to_repeat("apologies, what you asked went right past me")
    assert not asks_to_repeat("Two, I beg your pardon, make it three.")


def test_recogniser_written_names_fields_and_days_ruled_out() -> None:
    assert ex.extract_name("hey thanks for waitin on rosalind here r o s a l i n d go ahead") == "Rosalind"
    assert ex.extract_name("um claims desk terrence speakin") == "Terrence"
    assert ex.extract_name("Oh, this queue handles dental only") is None
    today = dt.date(2027, 10, 19)
    assert ex.extract_date("whenever but Thursday", today=today, lean="future") is None
    assert (
        ex.extract_date("any day except the 22nd, the 25th is good", today=today, lean="future")
        == "2027-10-25"
    )
    nlu = _turn("prior_auth", "verify_member", "ok and whats the patients dob on file")
    assert nlu.intent == "ask_field" and nlu.asked is not None and nlu.asked.field == "date_of_birth"
    nlu = _turn("prior_auth", "not_on_file", "what number could the office ring if there are questions")
    assert nlu.asked is not None and nlu.asked.field == "callback_number"
    nlu = _turn("prior_auth", "verify_member", "nope, nothin comes up under that ID")
    assert nlu.intent == "member_not_found"
    nlu = _turn("sales_qualification", "discover_pain", "hold up, is this a recording or a real person?")
    assert nlu.intent == "who_is_this"


def test_due_dates_letters_before_a_doubled_digit_and_due_to() -> None:
    nlu = _turn("prior_auth", "ask_status", "it is pending, and the due date is the twenty-sixth")
    assert nlu.captured.get("decision_date") == "2026-11-26" and nlu.captured.get("auth_status") == "pending"
    today = dt.date(2027, 10, 19)
    assert ex.extract_date("denied due to no records, on the 4th", today=today) == "2027-10-04"
    assert ex.extract_code("it's en triple seven two one") == "N77721"


def test_a_bare_confirmed_is_a_yes_and_what_others_pay_asks_the_price() -> None:
    nlu = _turn(
        "sales_qualification", "confirm_meeting", "Confirmed, and please add my deputy to the invite."
    )
    assert nlu.captured.get("meeting_confirmed") == "yes"
    nlu = _turn("sales_qualification", "ask_budget", "what would a shop our size usually pay for it?")
    assert nlu.asked is not None and nlu.asked.field == "list_price"
    nlu = _turn("sales_qualification", "ask_budget", "what do we pay today? maybe three grand")
    assert nlu.asked is None


def test_prices_numbers_and_do_not_call_in_plain_speech() -> None:
    nlu = _turn("sales_qualification", "ask_budget", "ok but what's a license gonna set us back")
    assert nlu.asked is not None and nlu.asked.field == "list_price"
    nlu = _turn("prior_auth", "not_on_file", "which number reaches your front desk, for intake?")
    assert nlu.asked is not None and nlu.asked.field == "callback_number"
    nlu = _turn("sales_qualification", "greeting", "take my cell off your list, right now")
    assert nlu.intent == "do_not_call"
    nlu = _turn("sales_qualification", "ask_authority", "wait, who did you say you're calling from?")
    assert nlu.intent == "who_is_this"


def test_a_title_is_no_name() -> None:
    assert ex.extract_name("Mr. Okafor speaking") == "Okafor"
    assert ex.extract_name("Ms here") is None


def test_times_of_other_events_and_asks_said_around_the_question() -> None:
    assert ex.extract_time("Two. No, sorry, two-thirty, the huddle's at two.") == "14:30"
    assert ex.extract_time("at four, no, at three. Four o'clock is our board call.") == "15:00"
    nlu = _turn("sales_qualification", "book_meeting", "Sure. Do you charge per location, by the way?")
    assert nlu.asked is not None and nlu.asked.field == "list_price"
    nlu = _turn("sales_qualification", "greeting", "ok, and what is it that you people sell?")
    assert nlu.asked is not None and nlu.asked.field == "product_area"
    nlu = _turn("sales_qualification", "greeting", "wait, is this a robocall?")
    assert nlu.intent == "who_is_this"


def test_two_fields_asked_in_order_serve_the_first() -> None:
    """ "X, then Y" serves X; a field named in passing and then one asked serves the asked one."""
    from engine.nlu.requests import field_phrases

    phrases = field_phrases(
        {
            "member_id": ["member id"],
            "date_of_birth": ["date of birth"],
            "cpt_code": ["cpt"],
            "provider_npi": ["npi"],
            "patient_name": ["last name", "first name"],
        }
    )

    def asked(text: str) -> str | None:
        return _field_asked(text, phrases)

    assert asked("I need the date of birth and then the member ID") == "date_of_birth"
    assert asked("member ID first please, after that the CPT") == "member_id"
    assert asked("the member ID matches, but what's the date of birth?") == "date_of_birth"
    assert asked("not the NPI, then, the member ID?") == "member_id"
    assert asked("Read me the CPT, and after it the NPI.") == "cpt_code"
    assert asked("Member ID in full. Spell the last name as well.") == "member_id"
    assert asked("what NPI did they order under, and the CPT?") == "provider_npi"
    assert asked("the CPT can wait, just give me the NPI") == "provider_npi"
    assert asked("give me the CPT, but the NPI first") == "provider_npi"
    assert asked("Member ID first, then the date of birth.") == "member_id"  # a list is a demand
    assert asked("the NPI plus the member ID, read them once more") == "provider_npi"
    assert asked("date of birth and member ID back to me, then we'll talk") == "date_of_birth"
    assert asked("ugh, your voice cut out on the member ID") == "member_id"  # the field missed is asked
    assert asked("the line dropped right after her date of birth") is None
    assert asked("I typed the member ID, then the date of birth, and nothing came up") is None
    assert asked("what's the spelling of her surname") == "patient_name"
    assert asked("and her given name?") == "patient_name"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("all good, the office is cleared to do the procedure", "approved"),
        ("yeah they may go ahead with scheduling it", None),  # "scheduling": not the verb form asked
        ("the office can go ahead and book", "approved"),
        ("they can't go ahead and book it yet", None),  # negated: tells nothing
        ("that was greenlighted last week", "approved"),
        ("sadly it came back a no", "denied"),
        ("this code requires nothing from us, they can just schedule", "not_required"),
        ("the office will have to submit a new request", "not_on_file"),
        ("we'd need the chart notes before a reviewer picks it up", "pending"),
        ("it landed monday but no one's looked at it", "pending"),
        ("that one never made it out of clinical review", "pending"),
        ("that scan isn't on our PA list", "not_required"),
        ("no submissions for that member this year", "not_on_file"),
        ("it's approved", "approved"),  # a synonym, as before
    ],
)
def test_an_outcome_told_by_what_it_means(text: str, expected: str | None) -> None:
    slot = Slot(
        name="status",
        type="enum",
        values=["approved|it's approved", "denied", "pending", "not_required", "not_on_file"],
        outcomes={
            "go_ahead": "approved",
            "refused": "denied",
            "not_needed": "not_required",
            "not_started": "not_on_file",
            "in_progress": "pending",
        },
    )
    assert ex.extract_enum(text, slot) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("we run a food bank, every dollar is spoken for", "price"),
        ("honestly it's the money, plain and simple", "price"),
        ("we already pay a call center for exactly this", "competitor"),
        ("we renewed with them in May, a two-year contract", "competitor"),
        ("four of us and a whiteboard, it does the job", "no_need"),
        ("a tool like that would be overkill for a shop our size", "no_need"),
        ("we're mid-migration to a new ERP, terrible moment", "timing"),
        ("our peak season, it is awful", "timing"),
        ("we aren't mid-launch any more", None),  # a negated story tells nothing
        ("it's too expensive", "price"),  # a synonym, as before
    ],
)
def test_an_objection_told_as_a_story(text: str, expected: str | None) -> None:
    slot = Slot(
        name="objection",
        type="enum",
        values=["price|too expensive", "competitor", "no_need", "timing"],
        objections={
            "costs_too_much": "price",
            "has_a_vendor": "competitor",
            "no_need_for_it": "no_need",
            "bad_timing": "timing",
        },
    )
    assert ex.extract_enum(text, slot) == expected


def test_outcomes_are_checked_at_load() -> None:
    with pytest.raises(ValueError, match="outcomes names values the slot does not have: granted"):
        Slot(name="status", type="enum", values=["approved", "denied"], outcomes={"go_ahead": "granted"})
    with pytest.raises(ValueError, match="outcomes is for enum slots only"):
        Slot(name="status", type="text", outcomes={"go_ahead": "approved"})
    with pytest.raises(ValueError):
        Slot(name="status", type="enum", values=["approved"], outcomes={"went_fine": "approved"})
    with pytest.raises(ValueError, match="objections names values the slot does not have: cost"):
        Slot(name="objection", type="enum", values=["price"], objections={"costs_too_much": "cost"})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("it's K, Kilo, 4 4 0 1", "K4401"),  # the NATO word confirms the letter: one K
        ("B D, bravo delta, 9 0 2 2", "BD9022"),
        ("K K 4 4 0 1", "KK4401"),  # two letters said are two letters
        ("kilo kilo 4 4 0 1", "KK4401"),
    ],
)
def test_a_letter_confirmed_by_its_nato_word_is_said_once(text: str, expected: str) -> None:
    assert "".join(ex.spoken_sequence(text)).strip() == expected


def test_a_corrected_ordinal_is_the_date() -> None:
    today = dt.date(2027, 10, 19)
    assert ex.extract_date(
        "approved the sixth, sorry, seventh", today=today, relative=True, tense="past"
    ) == ("2027-10-07")
    assert ex.extract_date(
        "it went out the ninth, wait, tenth", today=today, relative=True, tense="past"
    ) == ("2027-10-10")


def test_a_day_of_the_month_that_restates_a_held_date_is_the_nearest_one_to_it() -> None:
    today = dt.date(2027, 10, 19)
    held = dt.date(2027, 10, 27)
    # "was" says nothing of when the decision falls: the 23rd of the held date's month, not September's
    assert ex.extract_date(
        "nope, that one was the twenty third, not the twenty seventh", today=today, held=held
    ) == ("2027-10-23")
    assert ex.extract_date("no, it's due the 2nd", today=today, held=held) == "2027-11-02"
    # the held value said back ("you've got the 27th") is not the new one
    assert ex.extract_date("they decided it the 25th, you've got the 27th", today=today, held=held) == (
        "2027-10-25"
    )
    assert ex.extract_date("it was the twenty third", today=today, tense="past") == "2027-09-23"


def test_a_statement_before_a_question_is_the_free_text_answer() -> None:
    """The pain said before a question is kept; the question is served; a short aside is no answer."""
    result = _turn(
        "sales_qualification",
        "discover_pain",
        "Half our weekend bookings vanish because nobody picks up the phone. What does your plan cost?",
    )
    assert result.intent == "ask_field" and result.asked is not None and result.asked.field == "list_price"
    assert result.captured.get("pain", "").startswith("Half our weekend bookings vanish")
    aside = _turn("sales_qualification", "discover_pain", "Okay, fine. What does your plan cost?")
    assert "pain" not in aside.captured


@pytest.mark.parametrize(
    ("text", "intent"),
    [
        ("hang on, what company is this, and what's it about", "who_is_this"),
        ("and which agency are you, remind me?", "who_is_this"),
        ("hello? you're breakin up, go again", "repeat"),
        ("what vendor are you calling about", None),  # asks what the call is about, not who calls
        ("the line crackled, what was all that", "repeat"),
        ("can you take it from the very top", "repeat"),
    ],
)
def test_requests_said_another_way(text: str, intent: str | None) -> None:
    assert _turn("prior_auth", "greeting", text).intent == intent


def test_the_offices_number_asks_the_callback_number() -> None:
    result = _turn("prior_auth", "confirm_details", "Right, and what's the practice's phone number?")
    assert result.asked is not None and result.asked.field == "callback_number"


def test_a_day_ruled_out_after_it_is_said_is_not_the_date() -> None:
    today = dt.date(2027, 10, 19)
    assert ex.extract_date("Friday no good, Monday then", today=today, relative=True, tense="future") == (
        "2027-10-25"
    )
    assert ex.extract_date("twenty-sixth of this month works", today=today, relative=True) == "2027-10-26"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("I'm the owner here, the call is mine", "yes"),
        ("final decision is mine alone", "yes"),
        ("the head office signs off on all vendors", "no"),
    ],
)
def test_who_decides_said_by_post(text: str, expected: str) -> None:
    assert ex.extract_enum(text, _SIGNER) == expected


def test_a_statement_that_only_announces_the_question_is_no_answer() -> None:
    result = _turn(
        "sales_qualification", "discover_pain", "I have a small question for you first. What does it cost?"
    )
    assert "pain" not in result.captured


def test_no_problem_there_is_no_pain() -> None:
    result = _turn(
        "sales_qualification", "discover_pain", "Frankly no big issues are there, all is running smoothly."
    )
    assert "pain" not in result.captured


def test_a_decided_status_word_is_a_cue_for_the_decision_date() -> None:
    """``tense_when`` reads auth_status=approved as decided, so approved's words ("certified") make
    a date said early the decision date, as "approved" does."""
    from engine.schema_loader import load_schema

    schema = load_schema(Path(__file__).resolve().parents[2] / "schemas" / "prior_auth")
    cues = schema.states["get_decision_date"].slots["decision_date"].cues
    assert "certified" in cues and "noncertified" in cues
    result = _turn("prior_auth", "get_reference", "It's HX 4471, certified on the fourteenth.")
    assert result.captured.get("decision_date") == "2026-11-14"  # TODAY is 2026-11-21


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Received the 3rd, and it was approved on the 10th, effective the 12th.", "2026-11-10"),
        ("The denial went out the 6th; the letter got mailed on the 9th.", "2026-11-06"),
        ("It was decided the 4th, hold on, no, the 5th.", "2026-11-05"),
        ("It got approved on the third of November; the letter left on the 9th.", "2026-11-03"),
        ("sent over November 2nd, reviewed November 7th", "2026-11-07"),  # no cue leads either: the last
    ],
)
def test_of_several_dates_the_one_a_cue_leads_is_the_decision_date(text: str, expected: str) -> None:
    result = _turn("prior_auth", "get_decision_date", text)
    assert result.captured.get("decision_date") == expected  # TODAY is 2026-11-21


@pytest.mark.parametrize(
    ("state", "text", "intent", "captured"),
    [
        ("ask_timeline", "Let me run it by my partner first. Try us again in December.", "busy", {}),
        ("ask_timeline", "phone me once the audit wraps up", "busy", {}),
        (
            "greeting",
            "Can't now, I'm with a customer. Give it another go on Monday.",
            "busy",
            {"has_time": "no"},
        ),
        ("ask_timeline", "We'd switch in March, so ring me then.", None, {"timeline": "this_quarter"}),
    ],
)
def test_a_when_said_in_a_call_back_request_is_no_answer(
    state: str, text: str, intent: str | None, captured: dict[str, str]
) -> None:
    result = _turn("sales_qualification", state, text)  # TODAY is 2026-11-21
    assert (result.intent, result.captured) == (intent, captured)


def test_tense_is_read_in_the_sentence_that_says_the_date() -> None:
    today = dt.date(2027, 10, 19)  # a Tuesday

    def date(text: str) -> str | None:
        return ex.extract_date(text, today=today, relative=True)

    assert date("They logged it Friday. The answer should be Thursday.") == "2027-10-21"
    assert date("no, the date should be last Thursday") == "2027-10-14"  # a correction, not a plan
    assert date("a review is due friday the twenty six") == "2027-11-26"  # the month it is a Friday
    assert date("a review is due tuesday the twenty six") == "2027-10-26"


def test_a_weekday_then_its_day_without_the() -> None:
    today = dt.date(2027, 10, 19)
    assert (
        ex.extract_date("wednesday 27th at 3 30 pm", today=today, relative=True, tense="future")
        == "2027-10-27"
    )
    assert (
        ex.extract_date("wednesday 3 pm", today=today, relative=True, tense="future") == "2027-10-20"
    )  # an hour


def test_me_and_my_partner_is_not_the_speaker_alone() -> None:
    assert ex.extract_enum("me and my co-founder, we decide together", _SIGNER) != "yes"
    assert ex.extract_enum("me along with my brother, fifty fifty", _SIGNER) == "no"
    assert ex.extract_enum("Me and nobody else. I run the place.", _SIGNER) == "yes"
    assert ex.extract_enum("Mostly. I shortlist it, though our director approves the money.", _SIGNER) == "no"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Denied, hm, no wait, I'm on the wrong member. Hers is still in the nurse's queue.", "pending"),
        ("It's been approved, I first opened the older case, which was denied.", "approved"),
        ("hers went through fine, same as the entry above", "approved"),
        ("no precert required for that one", "not_required"),
        ("none, no submission has ever arrived from that clinic", "not_on_file"),
        ("Approved. Ugh, my cursor's on the wrong line.", None),  # taken back, nothing settled
        ("the plan turned that one down yesterday", "denied"),
        ("the reviewer's got it, no ruling", "pending"),
        ("that code? we never precert those", "not_required"),
        ("nope, nothing has come through for that patient", "not_on_file"),
        ("we don't need her chart again", None),  # no status in it
        ("yes, and there's an approval on her account for physical therapy", "approved"),
        ("still open, the reviewer requested the latest therapy notes from them", "pending"),
        ("no one has submitted any requests for her since spring", "not_on_file"),
        ("her plan has no pre-approval for that, just book it", "not_required"),
        ("that code carries no PA requirement, they can just perform it", "not_required"),
    ],
)
def test_a_status_of_another_record_or_told_by_consequence(text: str, expected: str | None) -> None:
    nlu = _turn("prior_auth", "ask_status", text)
    assert nlu.captured.get("auth_status") == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("B R, fifty-one, oh-eight, twenty", "BR510820"),
        ("the number's 3 3 8 1 0 5, I double-checked it", "338105"),
        ("it's two nine, not nine two. K J forty-four eighteen twenty-nine", "KJ441829"),
    ],
)
def test_codes_said_in_pairs_and_corrected(text: str, expected: str) -> None:
    assert ex.extract_code(text) == expected


def test_an_hour_accepted_or_said_alone_is_the_time_and_an_amount_is_none() -> None:
    assert ex.extract_time("Three's fine. And what's the bill?") == "15:00"
    assert ex.extract_time("two works for me") == "14:00"
    assert ex.extract_time("Nothing before ten. Mornings are bad. Eleven?") == "11:00"
    assert ex.extract_time("early, before the crew shows up, seven forty-five") == "07:45"
    assert ex.extract_time("I sign off on anything up to ten thousand") is None
    assert ex.extract_time("we have two sites, ok") is None


def test_the_weekday_after_next_and_a_zero_before_a_teen() -> None:
    today = dt.date(2027, 10, 19)  # a Tuesday
    assert ex.extract_date("the Tuesday after next, afternoons", today=today, relative=True) == "2027-11-02"
    assert ex.extract_code("forty-eight, twenty-two, oh-seventeen") == "4822017"


def test_the_day_the_paper_moved_is_not_the_decisions_day() -> None:
    today = dt.date(2027, 10, 19)
    slot = Slot(name="decision_date", type="date", cues=["decided", "denial", "approval"])
    assert ex.extract_date("decided the 12th, letter got mailed the 14th", slot, today) == "2027-10-12"
    assert ex.extract_date("the approval letter got mailed Friday", slot, today) is None
    assert ex.extract_date("all I see is when it arrived, the seventh", slot, today) is None
    assert ex.extract_date("the denial went out on the 2nd", slot, today) == "2027-10-02"
    assert ex.extract_date("the 8th, no, the 8th is when we mailed it, the 7th", slot, today) == "2027-10-07"


def test_a_time_moved_from_the_one_agreed() -> None:
    assert ex.shifted_time("any chance we push it back an hour?", "14:00") == "15:00"
    assert ex.shifted_time("could we do it half an hour earlier", "14:00") == "13:30"
    assert ex.shifted_time("move it up thirty minutes", "09:15") == "08:45"
    assert ex.shifted_time("an hour is plenty, see you then", "14:00") is None
    nlu = _turn(
        "sales_qualification", "confirm_meeting", "can we slide it back two hours?", {"meeting_time": "10:00"}
    )
    assert nlu.captured.get("meeting_time") == "12:00"


def test_letters_said_as_capitals_or_for_a_word_and_short_weekdays() -> None:
    assert ex.extract_code("it is capital R, capital T, four four one nine") == "RT4419"
    assert ex.extract_code("jot it down, bee for bravo, see for charlie, 5 5 1") == "BC551"
    assert ex.extract_code("see for yourself, 8 8 1 2") == "8812"
    today = dt.date(2027, 10, 19)
    assert ex.extract_date("next week, weds at ten", today=today, relative=True) == "2027-10-27"
    assert ex.extract_date("c'mon, Friday then", today=today, relative=True) == "2027-10-22"


def test_a_day_said_as_a_cardinal_before_its_month_and_month_day_numbers_after_by() -> None:
    today = dt.date(2027, 10, 19)
    slot = Slot(name="decision_date", type="date", cues=["decided", "decision"])
    assert ex.extract_date("it was decided on fourteen October", slot, today) == "2027-10-14"
    assert ex.extract_date("we got three October requests", slot, today) is None
    assert ex.extract_date("still open, decision expected by ten twenty eight", slot, today) == "2027-10-28"


def test_a_turn_of_amounts_alone_and_a_correction_asked_for() -> None:
    assert ex.extract_currency("Four hundred? Maybe five.") == "500"
    assert ex.extract_currency("three hundred, maybe four hundred") == "400"
    assert ex.extract_currency("twelve thousand for ten people") == "12000"
    assert ex.extract_yes_no("that status is wrong, please correct it") == "no"
    assert ex.extract_yes_no("that is correct, thank you") == "yes"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("auth number is R, Robert, M, mike, 5 0 2 7 7", "RM50277"),
        ("its dee are to for ate won nine", "DR24819"),
        ("ref is pee a to to one two", "PA2212"),
        ("ready? six one oh oh four two six one oh oh four two", "610042"),
    ],
)
def test_codes_as_a_noisy_line_gives_them(text: str, expected: str) -> None:
    assert ex.extract_code(text) == expected


def test_a_date_with_a_stutter_and_a_status_said_before_it_in_the_turn() -> None:
    today = dt.date(2027, 10, 19)
    assert ex.extract_date("decided on the the twelfth", today=today, tense="past") == "2027-10-12"
    slot = Slot(name="decision_date", type="date", cues=["decision"])
    assert ex.extract_date("decision, expect it ten twenty ate", slot, today) == "2027-10-28"
    nlu = _turn("prior_auth", "ask_status", "found her, and a denial sits on it from the tenth")
    assert nlu.captured.get("auth_status") == "denied" and nlu.captured.get("decision_date") == "2026-11-10"


def test_early_is_the_morning_only_for_morning_hours_and_a_school_run_is_not_the_meeting() -> None:
    assert ex.extract_time("we close early on Fridays, so Thursday, four o'clock") == "16:00"
    assert ex.extract_time("nine, no, I got the school run till like eight thirty") == "09:00"


def test_a_day_scratched_or_taken_by_something_of_ours_is_not_the_meeting() -> None:
    today = dt.date(2027, 10, 19)
    assert ex.extract_date("ok, scratch Friday entirely", today=today, tense="future") is None
    said = "nope, not the third, the tenth at the same hour, the third is our staff offsite"
    assert ex.extract_date(said, today=today, tense="future") == "2027-11-10"
    assert ex.extract_date("by Monday, that's the deadline", today=today, tense="future") == "2027-10-25"


def test_a_field_asked_with_may_i_and_which_of_her_plans() -> None:
    nlu = _turn("prior_auth", "greeting", "this is June, may I have the member ID first")
    assert nlu.intent == "ask_field" and nlu.asked is not None and nlu.asked.field == "member_id"
    assert nlu.captured.get("rep_name") == "June"
    nlu = _turn("prior_auth", "verify_member", "which of his plans should I look under?")
    assert nlu.asked is not None and nlu.asked.field == "insurer"
    nlu = _turn("prior_auth", "verify_member", "nothing turns up with this ID at all, double check it")
    assert nlu.intent == "member_not_found"


def test_dates_of_another_request_or_event_and_weeks_ago_on_a_weekday() -> None:
    today = dt.date(2027, 10, 19)
    slot = Slot(name="decision_date", type="date", cues=["decided", "decision", "denied", "determination"])
    said = "the previous request was denied on the 4th, and this one is still in review"
    assert ex.extract_date(said, slot, today) is None
    said = "the notice is dated the 9th, but the determination was made the day before, the 8th"
    assert ex.extract_date(said, slot, today) == "2027-10-08"
    assert ex.extract_date("the notice was dated the 9th", slot, today) == "2027-10-09"
    assert ex.extract_date("decided three weeks ago Thursday", slot, today) == "2027-09-30"
    assert ex.extract_date("they rang us on Monday, no decision yet", slot, today) is None


def test_codes_with_a_character_taken_back_or_checked_at_the_end() -> None:
    assert ex.extract_code("ref five five kay sorry not kay jay as in juliet eight one") == "55J81"
    assert ex.extract_code("G as in golf, 4 4 1 0, last one's a 9, not a 0. G 4 4 1 9.") == "G4419"
    assert ex.extract_code("it's W R two two one seven, seven at the end") == "WR2217"
    assert ex.extract_code("it ends nine one, not one nine. 3 3 8 9 1.") == "33891"


def test_a_question_put_aside_for_the_answer_and_a_statement_after_a_question() -> None:
    nlu = _turn(
        "sales_qualification", "ask_budget", "Is that monthly? Either way, we set aside ninety thousand."
    )
    assert nlu.intent is None and nlu.captured.get("budget") == "90000"
    nlu = _turn(
        "sales_qualification",
        "discover_pain",
        "Can it read our PBX data? Because half our overtime comes from guessing call volume by hand.",
    )
    assert nlu.intent == "describe_pain" and "overtime" in nlu.captured.get("pain", "")
    assert ex.extract_currency("somewhere between nine and twelve dollars a user") == "12"


def test_who_signs_an_availability_window_and_the_monday_after_a_week_away() -> None:
    nlu = _turn("sales_qualification", "ask_authority", "I sign. Nobody else gets a look.")
    assert nlu.captured.get("decision_maker") == "yes"
    nlu = _turn("sales_qualification", "ask_authority", "I present the options and the board votes")
    assert nlu.captured.get("decision_maker") == "no"
    assert ex.extract_time("I've got a window till four, nothing after") is None
    today = dt.date(2027, 10, 19)
    said = "off all next week, so the Wednesday after"
    assert ex.extract_date(said, today=today, tense="future") == "2027-11-03"


def test_amounts_beside_a_headcount_a_quote_seen_and_a_spend_offered_again() -> None:
    assert (
        ex.extract_currency("per seat I'd cap it at thirty monthly. We've got ninety on the floor.") == "30"
    )
    assert ex.extract_currency("the old system costs us about four grand a quarter, similar budget") == "4000"
    assert ex.extract_currency("the old system costs us about four grand a quarter, never again") is None
    nlu = _turn(
        "sales_qualification", "handle_objection", "we were quoted forty a user, a deal breaker for us"
    )
    assert nlu.captured.get("objection") == "price" and "budget" not in nlu.captured


def test_a_one_word_question_before_the_answer_and_a_place_that_runs_itself() -> None:
    nlu = _turn(
        "sales_qualification", "discover_pain", "Truthfully? Turnover. New hires quit before we train them."
    )
    assert nlu.intent == "describe_pain" and "Turnover" in nlu.captured.get("pain", "")
    nlu = _turn(
        "sales_qualification", "discover_pain", "Nothing. Three of us, the place basically runs itself."
    )
    assert "pain" not in nlu.captured
    nlu = _turn(
        "sales_qualification", "confirm_meeting", "could we cancel? there's no point now, we signed elsewhere"
    )
    assert nlu.intent == "not_interested" and nlu.captured == {"meeting_confirmed": "no"}


def test_month_day_numbers_after_a_decision_word_and_dates_with_dashes() -> None:
    today = dt.date(2027, 10, 19)
    slot = Slot(name="decision_date", type="date", cues=["decided", "decision", "determination"])
    assert ex.extract_date("it got denied ten eleven, sorry", slot, today) == "2027-10-11"
    assert ex.extract_date("nine thirty is when it posted", slot, today, lean="past") == "2027-09-30"
    assert ex.extract_date("the system shows 09-28-27", slot, today) == "2027-09-28"
    assert ex.extract_code("approval number R 4 4 0 1 7, it was approved ten eleven") == "R44017"
    nlu = _turn(
        "prior_auth", "ask_status", "still pending, standard turnaround, you're looking at ten twenty nine"
    )
    assert nlu.captured.get("decision_date") == "2027-10-29"  # TODAY is 2026-11-21: ahead


def test_a_code_begun_again_and_the_question_asked_before_a_statement() -> None:
    assert ex.extract_code("it's five one, five one eight eight two, five one eight eight two") == "51882"
    nlu = _turn(
        "prior_auth", "ask_status", "What's the ordering doc's name? The NPI by itself doesn't open it."
    )
    assert nlu.asked is not None and nlu.asked.field == "provider_name"
    nlu = _turn(
        "prior_auth", "verify_member", "we can't go on without the member ID, I've got three of that name"
    )
    assert nlu.asked is not None and nlu.asked.field == "member_id"


def test_pronoun_one_a_half_past_after_a_date_and_amounts_beside_a_table_number() -> None:
    assert ex.extract_time("four o'clock, yes, that one suits") == "16:00"
    today = dt.date(2027, 10, 19)
    assert (
        ex.extract_date("Friday the twenty-ninth, half past ten", today=today, tense="future") == "2027-10-29"
    )
    assert ex.extract_currency("table four needs water! sorry. about six hundred a month") == "600"
    assert ex.extract_currency("one grand and a half each month") == "1500"


def test_a_name_taken_back_and_a_day_taken_back() -> None:
    assert ex.extract_name("this is Marcus, no, sorry, I'm at Marcus's desk, I'm Priya") == "Priya"
    assert ex.extract_name("this is Dana, I'm new on this queue") == "Dana"
    today = dt.date(2027, 10, 19)
    assert ex.extract_date("monday no tuesday the twelfth", today=today, tense="past") == "2027-10-12"
    assert ex.extract_date("the Thursday of the week after next", today=today, tense="future") == "2027-11-04"


def test_asks_about_the_letters_of_a_field_or_what_was_said_for_it() -> None:
    nlu = _turn("prior_auth", "verify_member", "was the last digit of the ID a three or an eight")
    assert nlu.asked is not None and nlu.asked.field == "member_id"
    nlu = _turn(
        "prior_auth", "verify_member", "seventy two or seventy three, what year did you say for his DOB"
    )
    assert nlu.asked is not None and nlu.asked.field == "date_of_birth"
    nlu = _turn("sales_qualification", "greeting", "hang on, what is it your firm sells, again?")
    assert nlu.asked is not None and nlu.asked.field == "product_area"


def test_a_cleft_is_no_question_and_a_bad_line_beside_an_answer_is_no_repeat() -> None:
    nlu = _turn("sales_qualification", "handle_objection", "Okay, ask. Price is what worries me, we're tiny.")
    assert nlu.intent is None and nlu.captured.get("objection") == "price"
    assert nlu.captured.get("open_to_talk") == "yes"
    nlu = _turn(
        "sales_qualification", "ask_budget", "maybe three grand, sorry, signal's terrible, three thousand"
    )
    assert nlu.intent is None and nlu.captured.get("budget") == "3000"
    nlu = _turn("sales_qualification", "greeting", "hello? the signal is terrible, I just got static")
    assert nlu.intent == "repeat"
    nlu = _turn(
        "sales_qualification", "handle_objection", "right in the thick of harvest season, try me in March"
    )
    assert nlu.intent == "busy" and nlu.captured.get("objection") == "timing"


def test_contentment_with_a_but_still_names_a_pain() -> None:
    nlu = _turn(
        "sales_qualification", "discover_pain", "all running fine, except Mondays are chaos on the rota"
    )
    assert "pain" in nlu.captured
    nlu = _turn("sales_qualification", "discover_pain", "it basically runs itself, we're six people")
    assert "pain" not in nlu.captured


def test_a_question_that_says_a_call_value_back_asks_for_that_field() -> None:
    import datetime as dt

    from engine.nlu.requests import asks_for_field, field_phrases, field_values

    phrases = field_phrases({"member_id": ["member id"], "provider_name": ["ordering doctor"]})
    values = field_values(
        {"patient_name": "Maria Okafor", "member_id": "QZR530771", "provider_name": "Dr. Lindqvist",
         "date_of_birth": "1975-06-02", "cpt_code": "97110"},
        {"patient_name": "name", "member_id": "id", "provider_name": "string", "date_of_birth": "date",
         "cpt_code": "cpt"},
    )  # fmt: skip

    def asked(text: str) -> str | None:
        found = asks_for_field(text, phrases, values=values, today=dt.date(2027, 3, 1))
        return found.field if found else None

    assert asked("Okafor with a K, or with a C?") == "patient_name"
    assert asked("I have a Lindqvist on the claim, one word, yes?") == "provider_name"
    assert asked("Q Z R five three oh seven seven one, did I get that right?") == "member_id"
    assert asked("is that the second of June, seventy-five?") == "date_of_birth"
    assert asked("So it's the nine seven one one oh? Fine, let me look.") == "cpt_code"
    # a value in a statement, or a question followed by what the turn is really about, asks nothing
    assert asked("I've found Maria Okafor, she's active with us.") is None
    assert asked("The 97110? We only do eligibility here, auth questions go to utilization review.") is None


def test_a_number_and_a_half_before_its_scale_is_the_half_too() -> None:
    assert ex.extract_currency("somewhere near three and a half grand") == "3500"
    assert ex.extract_currency("maybe 7 and a half thousand for the year") == "7500"


def test_dates_read_off_a_form_and_business_days_back() -> None:
    import datetime as dt

    today = dt.date(2027, 3, 10)  # a Wednesday
    assert ex.extract_date("two slash eighteen", None, today) == "2027-02-18"
    assert ex.extract_date("um, four oh two", None, today) == "2027-04-02"
    assert ex.extract_date("decision date zero-two-twenty-six", None, today) == "2027-02-26"
    assert ex.extract_date("the due date's three twenty-two though", None, today) == "2027-03-22"
    assert ex.extract_date("it was approved three business days ago", None, today) == "2027-03-05"


def test_a_name_then_go_ahead_is_the_name_and_clock_words_are_no_names() -> None:
    assert ex.extract_name("Oksana. Shoot.") == "Oksana"
    assert ex.extract_name("Yes. Go.") is None
    assert ex.extract_name("we close at five, it's five fifteen now") is None


def test_a_field_then_first_or_next_asks_for_it() -> None:
    from engine.nlu.requests import asks_for_field, field_phrases

    phrases = field_phrases({"provider_npi": ["npi"], "member_id": ["member number"]})
    asked = asks_for_field("Okay. The NPI first, then we'll see.", phrases)
    assert asked is not None and asked.field == "provider_npi"
    asked = asks_for_field("Name checks out. Member number next.", phrases)
    assert asked is not None and asked.field == "member_id"
    assert asks_for_field("the NPI first came back as inactive in our system", phrases) is None


def test_four_heard_as_for_after_half_or_before_ish_or_a_change_of_mind() -> None:
    assert ex.extract_time("twenty past for, no, make it half for") == "16:30"
    assert ex.extract_time("around for ish, once the van's back") == "16:00"
    assert ex.extract_time("we ran it for half for a year") is None


def test_an_amount_put_to_one_side_is_that_amount() -> None:
    assert ex.extract_currency("we've put about six grand to one side for it") == "6000"


def test_counts_other_events_times_days_next_to_another_and_a_field_named_as_an_answer() -> None:
    # a number of things ("four depots", "nine of them") is no amount and lends no scale
    assert ex.extract_currency("we cap it at twenty k over four depots") == "20000"
    assert ex.extract_currency("two grand a year per shop, and there's nine of them") == "2000"
    # the time of something else in the turn is not the time offered
    assert ex.extract_time("ten forty five, before the weekly huddle at eleven") == "10:45"
    assert ex.extract_time("quarter past two, the clinic closes at one on fridays") == "14:15"
    # "any afternoon but Friday" rules Friday out; "the day after" counts from the day said or held
    today = dt.date(2027, 10, 19)
    assert ex.extract_date("any afternoon but friday", today=today, tense="future") is None
    assert (
        ex.extract_date("Wednesday won't work, the day after?", today=today, tense="future") == "2027-10-21"
    )
    assert (
        ex.extract_date(
            "can't then, the day before, same slot", today=today, tense="future", held=dt.date(2027, 10, 29)
        )
        == "2027-10-28"
    )
    # a field named as the answer is no request because "again" comes in another sentence
    result = _turn(
        "sales_qualification",
        "handle_objection",
        "Cost, mainly. Our grant got trimmed again. Go on then, ask a couple.",
    )
    assert result.asked is None
    assert result.captured == {"objection": "price", "open_to_talk": "yes"}


def test_a_retracted_no_validity_starts_and_month_day_numbers_after_a_decision_word() -> None:
    assert ex.extract_yes_no("Denied, hmm, no, strike that, it's pending, you've got it right") == "yes"
    assert ex.extract_yes_no("both of those are correct, thanks") == "yes"
    assert ex.extract_yes_no("none of those are correct") != "yes"
    today = dt.date(2027, 10, 19)
    assert ex.extract_date(
        "they mailed the letter ten eleven, but the decision itself was ten nine", today=today
    ) == ("2027-10-09")
    # "by" a person is who decided, not a deadline
    assert ex.extract_date("it was signed ten twelve by the medical director", today=today) == "2027-10-12"
    assert ex.extract_date("good news, effective from the third onwards", today=today) is None


def test_one_as_a_pronoun_and_the_scale_of_an_amount_not_on_offer() -> None:
    assert ex.extract_currency("six grand a year, that's it. Your turn, tell me one.") == "6000"
    assert ex.extract_currency("the last vendor quoted us twelve grand. Eight, at most, from us.") == "8000"
    assert ex.extract_currency("roughly two point five million all in") == "2500000"
    assert ex.extract_time("honestly, it looks like one to me") is None


def test_a_weekday_after_a_comma_names_the_day_said_and_an_ordinal_that_counts_sites_is_no_day() -> None:
    today = dt.date(2027, 10, 19)
    # the 4th has passed this month: November's, a Thursday, not this week's Thursday
    assert (
        ex.extract_date("no wait, the fourth, Thursday, around ten", today=today, tense="future")
        == "2027-11-04"
    )
    assert ex.extract_date("when the third store opens", today=today, tense="future") is None


def test_a_thousands_k_a_count_of_the_unit_priced_and_a_time_frame_said_after_a_value() -> None:
    assert ex.extract_currency("eight k a year, give or take") == "8000"
    assert ex.extract_currency("ninety bucks per truck monthly, and we run eleven") == "90"
    # the time frame said last wins over a value said before the course change
    said = "we'd hoped for this month, but honestly more like end of January"
    result = _turn("sales_qualification", "ask_timeline", said)
    assert result.captured == {"timeline": "this_quarter"}


def test_times_of_another_errand_and_a_when_alone() -> None:
    assert ex.extract_time("Nine. No, let's go with ten, the delivery truck arrives around nine") == "10:00"
    assert ex.extract_time("four thirty works, I pick my daughter up at three") == "16:30"
    # "Before lunch." says when to meet; it is no call back
    result = _turn("sales_qualification", "ask_meeting_time", "Before lunch. Eleven fifteen.")
    assert result.intent is None
    assert result.captured == {"meeting_time": "11:15"}


def test_who_decides_after_a_change_of_course_and_dates_hedged_or_of_a_posting() -> None:
    said = "Me, yeah. Actually no, Mrs Okafor has the final say on the spend."
    assert _turn("sales_qualification", "ask_authority", said).captured == {"decision_maker": "no"}
    said = "I do, though my bookkeeper glances at the invoices"
    assert _turn("sales_qualification", "ask_authority", said).captured == {"decision_maker": "yes"}
    said = "we're just comparing options for now"
    assert _turn("sales_qualification", "ask_timeline", said).captured == {"timeline": "exploring"}
    today = dt.date(2027, 10, 19)
    assert ex.extract_date("the 5th, about two weeks out", today=today, tense="future") == "2027-11-05"
    said = "it was decided on the 14th, and the 19th on the letter is just the date it was keyed"
    assert ex.extract_date(said, today=today, relative=True) == "2027-10-14"


def test_a_brush_off_by_email_is_not_interested_and_a_day_after_a_meal_is_no_date() -> None:
    said = "We won't be buying, so mail me a flyer and leave it at that."
    assert _turn("sales_qualification", "book_meeting", said).intent == "not_interested"
    today = dt.date(2027, 10, 19)
    assert ex.extract_date("not Friday, but any weekday after breakfast", today=today, tense="future") is None
    said = "great, and remind me, what is it actually called?"
    result = _turn("sales_qualification", "confirm_meeting", said)
    assert result.asked is not None and result.asked.field == "product_area"


def test_seasons_holidays_and_quarters_as_time_frames() -> None:
    said = "hopefully before the winter holidays, realistically"
    assert _turn("sales_qualification", "ask_timeline", said).captured == {"timeline": "this_quarter"}
    said = "probably round about autumn twenty twenty-seven, no sooner"
    assert _turn("sales_qualification", "ask_timeline", said).captured == {"timeline": "this_year"}
    said = "end of cue three most likely"
    assert _turn("sales_qualification", "ask_timeline", said).captured == {"timeline": "this_year"}


def test_a_new_time_proposed_at_a_read_back_is_no_yes_or_no_and_whose_yes_it_takes() -> None:
    filled = {"meeting_date": "2026-11-26", "meeting_time": "15:00"}
    said = "Thursday works, though could we slide it to four?"
    result = _turn("sales_qualification", "confirm_meeting", said, filled)
    assert result.captured == {"meeting_time": "16:00"}
    said = "nope, four, not three"
    assert _turn("sales_qualification", "confirm_meeting", said, filled).captured == {
        "meeting_confirmed": "no",
        "meeting_time": "16:00",
    }
    said = "the trustees have to vote yes, I just draft the proposal"
    assert _turn("sales_qualification", "ask_authority", said).captured == {"decision_maker": "no"}
    said = "purchases like this are mine to sign off, nobody else"
    assert _turn("sales_qualification", "ask_authority", said).captured == {"decision_maker": "yes"}
    said = "my co-owner and I go halves on any of that"
    assert _turn("sales_qualification", "ask_authority", said).captured == {"decision_maker": "no"}
