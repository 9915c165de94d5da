"""The reply guard rejects what the issue's transcripts showed the small LLM saying."""

from __future__ import annotations

from pathlib import Path

import pytest

from common.testing.samples import SAMPLE_CALL_DATA
from engine.conversation import Conversation
from engine.guard import GuardLimits, GuardRule, ReplyGuard
from engine.schema_loader import CompiledSchema, load_schema
from engine.schema_model import Slot

ALLOWED = ["Jane Doe", "1980-01-15", "XKM449812", "99213", "1234567893", "Blue Cross", "Doctor Smith"]
STATUS = Slot(
    name="auth_status", type="enum", values=["approved|approved", "denied|denied", "pending|pending"]
)
REFERENCE = Slot(name="reference_number", type="reference_number")


def guard(**kwargs: object) -> ReplyGuard:
    return ReplyGuard(ALLOWED, **kwargs)  # type: ignore[arg-type]


def test_a_plain_reply_passes_and_the_budget_is_two_sentences() -> None:
    g = guard()
    assert g.check("Sure, I can hold.") is None
    assert g.check("Take your time.") is None
    assert g.check("Anything else I can do?") is GuardRule.LENGTH
    assert GuardLimits().max_words == 45


def test_invented_identifiers_dates_and_amounts_are_rejected() -> None:
    assert guard().check("The member ID is 123456.") is GuardRule.IDENTIFIER
    assert guard().check("Her date of birth is February 29th, 2022.") is GuardRule.IDENTIFIER
    assert guard().check("That will be $4,500.") is GuardRule.IDENTIFIER
    # the call's own data, in any spoken form, is fine
    assert guard().check("The member ID is X-ray Kilo Mike, four four nine, eight one two.") is None
    assert guard().check("She was born January fifteenth, nineteen eighty.") is None


def test_degenerate_output_is_rejected() -> None:
    assert guard().check("The procedure code is " + "1" * 70 + ".") is GuardRule.RUN
    assert guard().check("I'm sorry, no, no, no, no, no.") is GuardRule.REPETITION
    assert guard().check("She's a 2022. She's a 2022. She's a 2022.") is not None
    g = guard(recent=["I'm sorry."])
    assert g.check("I'm sorry.") is GuardRule.REPETITION  # the same line again


def test_the_counterpart_echoed_back_is_rejected() -> None:
    heard = "Can you hold on while I pull up the member please"
    assert guard(heard=heard).check("Can you hold on while I pull up the member?") is GuardRule.ECHO
    assert guard(heard=heard).check("Sure, I'll hold.") is None


def test_facts_only_the_counterpart_states_are_not_asserted() -> None:
    g = guard(ask_only=[(STATUS, None), (REFERENCE, None)])
    assert g.check("Great, so it's approved.") is GuardRule.ASSERTS
    given = guard(ask_only=[(STATUS, "denied")])
    assert given.check("I understand it was denied.") is None  # the rep said so: repeating is fine
    assert given.check("So it's approved then.") is GuardRule.ASSERTS


@pytest.fixture(scope="module")
def prior_auth() -> CompiledSchema:
    return load_schema(Path(__file__).resolve().parents[2] / "schemas" / "prior_auth")


@pytest.mark.parametrize(
    ("sentence", "stopped"),
    [
        ("The diagnosis code is nine nine two one three.", True),  # the CPT, called something else
        ("My fax is 123-456-7893.", True),  # the NPI's digits
        ("Yes, the patient's group number is 123.", True),  # a piece of the NPI
        ("The NPI is nine nine two one three.", True),  # another field's name
        ("The procedure is CPT code nine nine two one three, ordered by NPI 1234567893.", False),
        ("Sure, the CPT code is 99213.", False),
        ("I'll check the fax number for you.", False),  # a name with no value
    ],
)
def test_a_call_value_said_under_another_name_is_stopped(
    prior_auth: CompiledSchema, sentence: str, stopped: bool
) -> None:
    convo = Conversation.start(prior_auth, "c-label", SAMPLE_CALL_DATA["prior_auth"])
    rule = convo.reply_guard("what's the fax number over there?").check(sentence)
    assert (rule == GuardRule.MISLABEL) is stopped, rule


def test_a_value_the_counterpart_named_may_be_repeated_under_their_name(prior_auth: CompiledSchema) -> None:
    convo = Conversation.start(prior_auth, "c-label2", SAMPLE_CALL_DATA["prior_auth"])
    heard = "our fax is 123 456 7893"
    assert convo.reply_guard(heard).check("Got it, your fax is 123-456-7893.") is None


@pytest.mark.parametrize(
    ("heard", "reply", "rule"),
    [
        ("Is that right?", "Nnnnnnnnnnnnnnnnnnnnnnnn.", GuardRule.RUN),  # one letter over and over
        ("Hello?", "I'm sorry, I'm sorry. I'm sorry.", GuardRule.REPETITION),  # a phrase over a reply
        ("So the procedure code is 16616, right?", "Yes, that's correct.", GuardRule.CONFIRMS),
        ("So the NPI is 9876543210?", "Yes.", GuardRule.CONFIRMS),
        ("So the CPT is 99213, right?", "Yes, that's right.", None),  # the call's own value
    ],
)
def test_degenerate_replies_and_agreeing_to_values_the_call_never_had(
    prior_auth: CompiledSchema, heard: str, reply: str, rule: GuardRule | None
) -> None:
    convo = Conversation.start(prior_auth, "c-adv", SAMPLE_CALL_DATA["prior_auth"])
    guard = convo.reply_guard(heard)
    got = None
    for sentence in reply.replace(". ", ".\n").splitlines():
        got = guard.check(sentence)
        if got is not None:
            break
    assert got == rule


def test_a_reply_close_to_a_recent_line_is_a_repeat() -> None:
    guard = ReplyGuard(allowed=[], recent=["Could you tell me the status of the authorization please?"])
    assert guard.check("Could you tell me the status of that authorization, please?") == GuardRule.REPETITION
