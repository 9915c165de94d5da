"""The everyday moves of a call in their general forms (engine/nlu/moves.py), alone and through
the turn path, where they only fill in when nothing else was understood."""

from __future__ import annotations

import pytest

from engine.nlu.moves import (
    CALL_BACK,
    DO_NOT_CALL,
    DONT_KNOW,
    ELSEWHERE,
    FOUND,
    GONE,
    GOODBYE,
    HOLD,
    NOT_FOUND,
    NOT_INTERESTED,
    PRINCIPAL_ONLY,
    READY,
    SOMEONE_NOW,
    heard_move,
    move_intent,
)
from tests.unit.test_nlu import _turn


@pytest.mark.parametrize(
    ("text", "move"),
    [
        ("Just a second, I'm pulling the chart.", HOLD),
        ("Kindly remain on the line while I check with my senior.", HOLD),
        ("please hold sir, the screen is loading", HOLD),
        ("the second one is the right one", None),  # an ordinal, not a hold
        ("could you call us after lunch, we're short-staffed", CALL_BACK),
        ("let's touch base next month about it", CALL_BACK),
        ("we called the plan back in March", None),  # no request to be called
        ("great, thank you so much, have a wonderful evening", GOODBYE),
        ("alright, cheers, bye-bye", GOODBYE),
        ("bye the way, what's the NPI", None),  # no closing at the turn's end
        ("that person retired in the spring, I handle the books now", GONE),
        ("that person is no longer at this clinic", GONE),
        ("that person is with a patient right now", None),
        ("can you hold, I need to find the right screen", HOLD),
        ("let me check whether I may read that out, stay on", HOLD),
        ("the portal is down, redial us this afternoon", CALL_BACK),
        ("okay, that's all I need, enjoy the weekend", GOODBYE),
        ("I am opting out of all of this, and I mean it", DO_NOT_CALL),
        ("scrub our business number, nobody here requested this", DO_NOT_CALL),
        ("you can remove the lid now", None),
        ("thanks but we're fine with spreadsheets, we'll pass", NOT_INTERESTED),
        ("give us a buzz after the holidays", CALL_BACK),
        ("that person hasn't been at this address for years", GONE),
        ("this line is dental only, I'll route your call to the correct team", ELSEWHERE),
        ("we only handle eligibility here, you'll get transferred to precert", ELSEWHERE),
        ("let me transfer you to my supervisor", None),  # a hold, not the wrong desk
        ("that person jumped ship last year", GONE),
        ("please cease any contact with this office", DO_NOT_CALL),
        ("legal said no, we won't move forward with this", NOT_INTERESTED),
        ("we will go ahead, book it", None),
        ("hmm, I'll patch you along to the vision folks", ELSEWHERE),
        ("precert for that sits with a separate unit", ELSEWHERE),
        ("sorry, this isn't our desk; sleep studies are delegated to a partner", ELSEWHERE),
        ("one moment while I'm transferring you", ELSEWHERE),
        ("that belongs to our team, go ahead", None),
        ("call me in March, not before", CALL_BACK),
        ("give it another try on Friday", CALL_BACK),
        ("please lose our contact for good", DO_NOT_CALL),
        ("make sure nobody from your outfit has us contacted ever again", DO_NOT_CALL),
        ("we'll respectfully decline, thank you", NOT_INTERESTED),
        ("that person relocated to Austin in June", GONE),
        ("I've inherited her accounts since she left", GONE),
        ("if you'd be so kind as to wait a moment, I'm changing rooms", HOLD),
        ("swamped today, shout at me Monday", CALL_BACK),
        ("a customer's here, try her again after three", CALL_BACK),
        ("please see to it nobody at your firm rings our front desk again", DO_NOT_CALL),
        ("nobody from your company ever called me back", None),  # a complaint, no request
        ("on second thought, let's leave it here, cheers", NOT_INTERESTED),
        ("honestly I don't feel this is for us", NOT_INTERESTED),
        ("the delivery truck just pulled up, I need to dash, ring me later", CALL_BACK),
        ("sorry, I've got to bolt, the boss is waving at me", CALL_BACK),
        ("we need to run it by our lawyer", None),
        ("no thanks, we're staying with our bookkeeper's system", NOT_INTERESTED),
        ("the system's down all afternoon, ring us first thing Thursday", CALL_BACK),
        ("hang on one second, my other phone is ringing", HOLD),
        ("that person sir has retired from this office", GONE),
        ("the portal's frozen, reach back out next week", CALL_BACK),
        ("we are not going for it, sorry", NOT_INTERESTED),
        ("my manager is saying it is not required for us", NOT_INTERESTED),
        ("kindly cancel the appointment", NOT_INTERESTED),
        ("once the audit is done, that time you can call", CALL_BACK),
    ],
)
def test_general_forms(text: str, move: str | None) -> None:
    assert heard_move(text) == move


def test_the_states_own_name_for_the_move() -> None:
    assert move_intent("try me back after five", {"busy", "hold"}) == "busy"
    assert move_intent("try me back after five", {"call_back_later"}) == "call_back_later"
    assert move_intent("try me back after five", {"hold"}) is None


def test_moves_fill_in_only_when_nothing_else_was_understood() -> None:
    nlu = _turn("prior_auth", "get_reference", "Just a second, I'm pulling the chart.")
    assert nlu.intent == "hold"
    nlu = _turn("sales_qualification", "ask_authority", "Tom retired last spring, I run purchasing now")
    assert nlu.intent == "wrong_person"  # the sample lead is Tom Baker
    nlu = _turn("sales_qualification", "ask_authority", "Priya retired last spring, I run purchasing now")
    assert nlu.intent != "wrong_person"  # someone else gone says nothing of the lead
    nlu = _turn("prior_auth", "get_decision_date", "decision is due the 20th, thanks for your call")
    assert nlu.intent != "goodbye" and nlu.captured.get("decision_date")


def test_a_way_out_beats_an_answer_that_is_only_free_text() -> None:
    nlu = _turn(
        "sales_qualification", "discover_pain", "the fryer just caught fire, gotta go, catch me tomorrow"
    )
    assert nlu.intent == "busy" and "pain" not in nlu.captured
    nlu = _turn("sales_qualification", "discover_pain", "shift swaps eat my whole Monday, every week")
    assert nlu.intent != "busy" and nlu.captured.get("pain")


def test_who_decides_and_which_office_said_another_way() -> None:
    nlu = _turn("sales_qualification", "ask_authority", "Yes. I'm the CTO.")
    assert nlu.captured.get("decision_maker") == "yes"
    nlu = _turn("sales_qualification", "ask_authority", "honestly that's over my pay grade")
    assert nlu.captured.get("decision_maker") == "no"
    nlu = _turn("prior_auth", "greeting", "hold up, which company did you say?")
    assert nlu.intent == "who_is_this"


def test_later_in_their_own_words_a_hold_said_last_and_a_meeting_called_off() -> None:
    assert heard_move("flat out in the shop, bell me back tomorrow") == "call_back"
    assert heard_move("holler at us sometime after the lunch crowd") == "call_back"
    assert heard_move("hang about, let me step outside") == "hold"
    assert heard_move("I'll pull up the rota. One second.") == "hold"
    assert heard_move("you know what, forget it") == "not_interested"
    nlu = _turn("sales_qualification", "confirm_meeting", "no, the owner said no new tools, please cancel it")
    assert nlu.intent == "not_interested" and nlu.captured.get("meeting_confirmed") == "no"


def test_repeat_asked_as_a_recogniser_writes_it() -> None:
    from engine.nlu.requests import asks_to_repeat

    assert asks_to_repeat("the oven timer went off, what'd you ask me")
    assert asks_to_repeat("sorry the line's garbled, which day did you say")
    assert not asks_to_repeat("thursday works, what time suits you")


def test_the_callers_own_name_asked_is_who_is_calling_whatever_else_the_turn_does() -> None:
    nlu = _turn("prior_auth", "ask_status", "It's pending. Sorry, and your full name for my notes?")
    assert nlu.intent == "who_is_this" and nlu.captured.get("auth_status") == "pending"
    nlu = _turn("prior_auth", "confirm_details", "all correct, and could you tell me your company's name")
    assert nlu.intent == "who_is_this"
    nlu = _turn("prior_auth", "ask_status", "why does your company keep calling, it's denied")
    assert nlu.intent != "who_is_this"
    nlu = _turn("prior_auth", "greeting", "sorry, bad reception, on whose behalf are you ringing")
    assert nlu.intent == "who_is_this"


def test_do_not_call_beats_a_plain_refusal_said_with_it() -> None:
    """A turn that turns the offer down and asks never to be called again is the do-not-call."""
    plan = _turn(
        "sales_qualification",
        "handle_objection",
        "We'll pass. And make sure nobody from your team calls this number again.",
    )
    assert plan.intent == "do_not_call"


@pytest.mark.parametrize(
    ("text", "move"),
    [
        ("I'm kicking this call over to the pharmacy team right now", ELSEWHERE),
        ("shifting you to enrollment this instant, stay with me", ELSEWHERE),
        ("pushing your call along to the radiology vendor", ELSEWHERE),
        ("I'm moving you up the queue, nothing to do with me", None),  # no desk named
        ("not a notion, the system shows nothing", DONT_KNOW),
        ("beats me, ask the medical director", DONT_KNOW),
        ("it depends how the quarter goes", DONT_KNOW),
        ("I can't tell the difference between these two", None),
        ("please cross my number off, for good", DO_NOT_CALL),
        ("she handed her accounts over to me in spring", GONE),
        ("don't waste your time on us, honestly", NOT_INTERESTED),
        ("give it a shot tomorrow morning", CALL_BACK),
        ("could one of your experts hop on right now?", SOMEONE_NOW),
        ("someone joined us last week", None),
        ("okay, chart's open, I'm all ears", READY),
        ("the lookup screen is up, whenever you're set", READY),
        ("ran it three ways and it comes back empty", NOT_FOUND),
        ("his policy was terminated in May", NOT_FOUND),
        ("date of birth and surname line up, he's one of ours", FOUND),
        ("hold that thought, my other line is flashing", HOLD),
        ("placing this call on hold while I dig", HOLD),
        ("the clinic's own staff must phone us for that", PRINCIPAL_ONLY),
        ("we won't share chart details with outside firms", PRINCIPAL_ONLY),
        ("we spoke with the office yesterday", None),
        ("we only handle claims for the practice", ELSEWHERE),  # not "only the practice may ask"
        ("only the physician's staff can request that", PRINCIPAL_ONLY),
        ("I'd have to speak only with the clinic directly", PRINCIPAL_ONLY),
        ("let me connect you over to the proper desk", ELSEWHERE),
        ("I'll put this call through to the correct unit", ELSEWHERE),
        ("that person's out of the office till the twentieth", GONE),
        ("hang on there, I'll grab her from the break room", HOLD),
        ("here, I'm passing the phone to my office manager", HOLD),
        ("my headset fell off my desk again", None),
        ("the owner sets the number once he's seen a quote, I can't even guess", DONT_KNOW),
        ("for tooling, no one has set aside a cent", DONT_KNOW),
        ("sorry, kindly hold the line while I reopen it", HOLD),
        ("searching by that number, no results are showing", NOT_FOUND),
        ("his policy is in force, address and phone are matching", FOUND),
        ("the exact day I cannot commit, it is not updated", DONT_KNOW),
        ("the decision field is still blank on my side", DONT_KNOW),
        ("scrub us from that database of yours", DO_NOT_CALL),
        ("can you take me off hold soon", None),
        ("just shoot me an email with the details", CALL_BACK),
        ("Priya! It's for you.", HOLD),
        ("sorry, two seconds, my other line is flashing", HOLD),
        ("ran her card, got nada", NOT_FOUND),
        ("yep, got that person here. Active.", FOUND),
        ("claims desk, prior auth is a different team. Transferring you now.", ELSEWHERE),
        ("this is that person's old extension, he moved over to our Austin branch", GONE),
        ("whatever machine keeps ringing this number, get us out of it", DO_NOT_CALL),
        ("cheers, though we're done shopping around", NOT_INTERESTED),
        ("yeah yeah, shoot whenever", READY),
        ("she was dropped off the group plan as of May", NOT_FOUND),
        ("the card number brings her up, she has coverage through work", FOUND),
        ("auth info goes only to the physician's own staff, we don't read it to billers", PRINCIPAL_ONLY),
        ("the surgeon's staff we deal with directly", PRINCIPAL_ONLY),
    ],
)
def test_a_transfer_now_and_not_knowing_are_heard(text: str, move: str | None) -> None:
    assert heard_move(text) == move


def test_not_knowing_answers_a_states_question_only_when_nothing_else_did() -> None:
    nlu = _turn("prior_auth", "get_decision_date", "honestly, no idea, nothing on my screen")
    assert nlu.intent == "no_date"
    nlu = _turn("prior_auth", "get_decision_date", "not a clue, maybe the fifteenth?")
    assert nlu.intent != "no_date" and "decision_date" in nlu.captured
    nlu = _turn("prior_auth", "greeting", "Hold on. Eligibility here, flipping you to precert right away.")
    assert nlu.intent == "wrong_department"  # a way out beats the hold said with it


def test_a_repeat_beats_free_text_and_gives_none_of_the_values_asked_back() -> None:
    nlu = _turn("sales_qualification", "discover_pain", "ugh, the line went quiet, the biggest what?")
    assert nlu.intent == "repeat" and not nlu.captured
    nlu = _turn("sales_qualification", "confirm_meeting", "you dropped out, was it Monday or Wednesday?")
    assert nlu.intent == "repeat" and "meeting_date" not in nlu.captured


def test_a_hedge_after_an_answer_asks_nothing_and_call_it_names_the_hour() -> None:
    nlu = _turn("sales_qualification", "ask_budget", "maybe twelve grand. Ballpark.")
    assert nlu.intent != "ask_field" and nlu.captured.get("budget") == "12000"
    nlu = _turn("sales_qualification", "book_meeting", "the twenty sixth, call it two")
    assert nlu.captured.get("meeting_time") == "14:00"
    nlu = _turn("sales_qualification", "greeting", "nope, driving, could ya ring me Friday")
    assert nlu.captured.get("has_time") != "yes"


def test_an_answer_that_implies_a_way_out_is_that_way_out() -> None:
    nlu = _turn("sales_qualification", "handle_objection", "Payroll software covers it, we renewed, so no.")
    assert nlu.intent == "not_interested" and nlu.captured.get("open_to_talk") == "no"
    nlu = _turn("sales_qualification", "handle_objection", "Terrible month for it, so no, not now.")
    assert nlu.intent != "not_interested"  # a timing objection puts the call off, it does not end it


def test_the_office_must_call_is_no_call_back() -> None:
    nlu = _turn("prior_auth", "verify_member", "Sorry, her practice has to ring us itself, not a vendor.")
    assert nlu.intent == "wants_the_office"


def test_who_knows_is_no_question_about_the_caller_and_a_repeat_needs_its_cue_after_an_answer() -> None:
    nlu = _turn("sales_qualification", "ask_timeline", "once the board stops dithering. who knows? someday.")
    assert nlu.intent != "who_is_this"
    nlu = _turn("sales_qualification", "ask_budget", "around three grand if the thing does what you say")
    assert nlu.intent != "repeat" and nlu.captured.get("budget") == "3000"
    nlu = _turn("prior_auth", "greeting", "quick one first, which clinic's this for?")
    assert nlu.intent == "who_is_this"


def test_a_call_again_said_with_once_more_is_no_repeat_and_which_plan_asks_the_plan() -> None:
    nlu = _turn("prior_auth", "greeting", "the portal crashed, please call us once more after three")
    assert nlu.intent == "call_back_later"
    nlu = _turn("prior_auth", "verify_member", "she has two policies. Under which plan is this?")
    assert nlu.intent == "ask_field" and nlu.asked is not None and nlu.asked.field == "insurer"


def test_who_asked_in_two_words_and_a_question_missed_are_heard() -> None:
    nlu = _turn("prior_auth", "greeting", "sorry, billing company who?")
    assert nlu.intent == "who_is_this"
    from engine.nlu.requests import asks_to_repeat

    assert asks_to_repeat("it's so loud on the floor, I missed your question")


@pytest.mark.parametrize(
    ("text", "move"),
    [
        ("I'll just pop you on a short hold while it loads", HOLD),
        ("kindly wait, the system is slow today", HOLD),
        ("we'll keep you holding for a tick", HOLD),
        ("the outage lasts all day, kindly revert back on Thursday", CALL_BACK),
        ("not now, e-mail me a brochure and I'll look tonight", CALL_BACK),
        ("okay carry on, I'm listening", READY),
        ("she was with us till March, nothing active since", NOT_FOUND),
        ("he pulls right up, active thru December", FOUND),
        ("grand, that's us done here, ta-ra", GOODBYE),
        ("my gut says this won't get past legal, so I'd rather we end it here", NOT_INTERESTED),
        ("I can't see it getting anywhere with our board", NOT_INTERESTED),
        ("let's cancel, we've changed direction", NOT_INTERESTED),
        ("nothing goes in the date field until a nurse picks it up", DONT_KNOW),
        ("that one's not part of our plan at all", DONT_KNOW),
    ],
)
def test_moves_in_more_words(text: str, move: str | None) -> None:
    assert heard_move(text) == move


def test_turning_the_offer_down_is_a_no_to_hearing_more_and_its_reason_stays() -> None:
    nlu = _turn("sales_qualification", "handle_objection", "our rota never changes, so we'll leave it there")
    assert nlu.intent == "not_interested"
    assert nlu.captured == {"objection": "no_need", "open_to_talk": "no"}
    nlu = _turn("sales_qualification", "handle_objection", "mid audit until June, ring me in July")
    assert nlu.captured == {"objection": "timing"}  # later is no answer for good


@pytest.mark.parametrize(
    ("text", "move"),
    [
        ("we will think and tell you, thanks", NOT_INTERESTED),
        ("honestly we don't need that kind of tool", NOT_INTERESTED),
        ("I bought the shop from her last spring", GONE),
        ("no hits on that one, sorry", NOT_FOUND),
        ("I'm routing you there now, stay on", ELSEWHERE),
        ("I'll route you to intake, they open new ones", ELSEWHERE),
        ("let me transfer you to my supervisor", None),
    ],
)
def test_moves_of_the_dev35_dev36_round(text: str, move: str | None) -> None:
    assert heard_move(text) == move


@pytest.mark.parametrize(
    ("text", "move"),
    [
        ("I'll put you through to the right team", ELSEWHERE),
        ("I tried both spellings, neither one pulls her up", NOT_FOUND),
        ("nothing entered yet, it's still with the reviewer", DONT_KNOW),
        ("we're all covered on that front, thanks anyway", NOT_INTERESTED),
        ("truthfully I can't see us switching", NOT_INTERESTED),
        ("oh, he retired last year, I run the shop now", GONE),
        ("and get my mobile out of your system", DO_NOT_CALL),
        ("our money for that is whatever's left, which is zero", DONT_KNOW),
    ],
)
def test_moves_of_the_dev37_dev38_round(text: str, move: str | None) -> None:
    assert heard_move(text) == move


def test_the_answer_after_coming_back_from_a_hold_in_the_same_turn_is_the_turn() -> None:
    from engine.nlu.moves import after_a_hold

    said = "Hang on a sec, the courier's here. Okay, sorry about that. We re-key every invoice by hand."
    assert after_a_hold(said) == "We re-key every invoice by hand."
    # the schema's own hold phrases count too; no hold before the apology: the turn stays whole
    said = "Pop on a sec. Sorry to keep you, it's about six grand."
    assert after_a_hold(said, ("pop on",)) == "it's about six grand."
    whole = "We lost two clients, sorry about that, the rota is a mess."
    assert after_a_hold(whole) == whole


def test_hold_said_alone_at_the_end_of_a_turn_is_a_hold() -> None:
    from engine.nlu.moves import HOLD, heard_move

    assert heard_move("Pulling up the case now. Hold.") == HOLD
    assert heard_move("the hold music was awful today") != HOLD


def test_he_retired_said_of_someone_the_turn_just_named_is_no_wrong_person() -> None:
    from engine.nlu.moves import GONE, heard_move

    assert heard_move("Oh, he retired at Easter, I look after his customers now.") == GONE
    said = "the rota lives in a spreadsheet a contractor made for us, and he retired, so nobody can fix it"
    assert heard_move(said) != GONE


@pytest.mark.parametrize(
    ("text", "move"),
    [
        ("Sure thing. Hold tight while the screen loads.", "hold"),
        ("that person sold me the garage in the spring and moved upstate", "gone"),
        ("she handed us the studio when she moved to Leeds", "gone"),
        ("Whatever database you got us from, scrub it for good.", "do_not_call"),
        ("The subscriber ID checks out, and her plan is current.", "found"),
        ("the hold music was awful today", None),
    ],
)
def test_moves_of_the_dev45_dev46_round(text: str, move: str | None) -> None:
    assert heard_move(text) == move


def test_who_calls_repeats_and_outcomes_told_of_the_dev45_dev46_round() -> None:
    from engine.nlu.requests import asks_to_repeat, asks_who_is_calling
    from engine.nlu.told import told_value

    assert asks_who_is_calling("Hang on, which staffing company is ringing me?")
    assert asks_who_is_calling("how come your firm has my home number?")
    assert asks_who_is_calling("Are you with the surgery itself, or an outside service?")
    assert not asks_who_is_calling("are you with us on the budget question?")
    assert asks_to_repeat("could you read those digits to me again")
    assert asks_to_repeat("what day were you asking about, the line's bad")
    outcomes = {"not_needed": "not_required", "not_started": "not_on_file", "in_progress": "pending"}
    said = "the policy exempts an MRI like hers from prior authorization"
    assert told_value(said, outcomes) == "not_required"
    assert told_value("nothing has come from that office on this member's file", outcomes) is None
    assert told_value("I see no submission from them anywhere on her record", outcomes) == "not_on_file"
    assert told_value("the reviewer hasn't finished going through it", outcomes) == "pending"
    objections = {"has_a_vendor": "competitor", "no_need_for_it": "no_need"}
    assert told_value("our booking site came with its own calendar bit", objections) == "competitor"
    assert told_value("two of us run the place, there's no call for it", objections) == "no_need"


def test_objections_told_in_the_dev46_round() -> None:
    from engine.nlu.told import told_value

    objections = {
        "costs_too_much": "price",
        "has_a_vendor": "competitor",
        "no_need_for_it": "no_need",
        "bad_timing": "timing",
    }
    assert told_value("Square covers all of that for us already", objections) == "competitor"
    assert told_value("we schedule the crews via Jobber", objections) == "competitor"
    assert told_value("we're locked in with ServiceTitan through spring", objections) == "competitor"
    assert told_value("honestly we pinch every penny and count every dollar twice", objections) == "price"
    assert told_value("it's harvest season and we're flat out till November", objections) == "timing"
    assert told_value("ring us again once the new manager settles in", objections) == "timing"
    assert told_value("a paper diary has never let us down", objections) == "no_need"
    assert told_value("I can't see us using it, we're tiny", objections) == "no_need"
