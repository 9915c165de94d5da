from __future__ import annotations

import pytest

from engine.backchannel import is_backchannel


@pytest.mark.parametrize(
    "text",
    [
        "mhm",
        "Mhm.",
        "Mm-hmm.",
        "mm hmm",
        "Mmhmm",
        "Uh-huh.",
        "uh huh",
        "Okay.",
        "OK",
        "okay, okay",
        "Right.",
        "Yeah.",
        "Yeah, yeah.",
        "Yep, got it.",
        "I see.",
        "All right.",
        "That's right.",
        "That\u2019s right.",
        "Sure, go ahead.",
        "Hmm.",
        "Oh, okay.",
        "Thank you.",
        "",
        "  ...  ",
    ],
)
def test_listener_feedback_is_a_backchannel(text: str) -> None:
    assert is_backchannel(text)


@pytest.mark.parametrize(
    "text",
    [
        "No.",
        "Wait.",
        "Hold on.",
        "Sorry, what?",
        "Huh?",
        "Stop.",
        "Yeah, but the member ID is wrong.",
        "Okay so the reference number is 4 4 7.",
        "Right, can you repeat that?",
        "Yes the patient is Maria.",
        "Uh, I need to check something.",
        "Twenty three",
        "12",
    ],
)
def test_real_content_is_not_a_backchannel(text: str) -> None:
    assert not is_backchannel(text)


def test_token_limit() -> None:
    assert is_backchannel("yeah yeah okay right")
    assert not is_backchannel("yeah yeah okay right sure")
    assert is_backchannel("yeah yeah okay right sure", max_tokens=5)
    with pytest.raises(ValueError, match="max_tokens"):
        is_backchannel("okay", max_tokens=0)
