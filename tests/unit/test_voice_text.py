"""Text shaping for voice (engine.voice_text): splitter, clean-up, word cap, streaming chunker."""

from __future__ import annotations

import re

import pytest

from engine.voice_text import SentenceChunker, shape_for_voice, split_sentences


@pytest.mark.parametrize(
    ("text", "sentences"),
    [
        ("Hello there. How are you?", ["Hello there.", "How are you?"]),
        ("Wait! Really? Yes.", ["Wait!", "Really?", "Yes."]),
        ("Dr. Smith is in. Mr. and Mrs. Lee are not.", ["Dr. Smith is in.", "Mr. and Mrs. Lee are not."]),
        (
            "Bring ID, e.g. a license. Or i.e. a passport.",
            ["Bring ID, e.g. a license.", "Or i.e. a passport."],
        ),
        ("We ship in the U.S. only. Thanks.", ["We ship in the U.S. only.", "Thanks."]),
        (
            "Come at 9 a.m. on Monday. Or at 3 p.m. on Tuesday.",
            ["Come at 9 a.m. on Monday.", "Or at 3 p.m. on Tuesday."],
        ),
        ("Your visit is at 9 a.m. Is that okay?", ["Your visit is at 9 a.m.", "Is that okay?"]),
        ("The copay is 3.5 percent. Fine.", ["The copay is 3.5 percent.", "Fine."]),
        ("J. R. Smith called. He left.", ["J. R. Smith called.", "He left."]),
        ("Ask for No. 5 please. No. I can't.", ["Ask for No. 5 please.", "No.", "I can't."]),
        ('She said "yes." Then she left.', ['She said "yes."', "Then she left."]),
        ("Well... maybe later. Okay... Bye.", ["Well... maybe later.", "Okay...", "Bye."]),
        ("First para\n\nSecond para", ["First para", "Second para"]),
        ("Options:\n1. Call us\n2. Write us", ["Options:", "1. Call us", "2. Write us"]),
        ("  ", []),
        ("No end punctuation", ["No end punctuation"]),
    ],
)
def test_split_sentences(text: str, sentences: list[str]) -> None:
    assert split_sentences(text) == sentences


@pytest.mark.parametrize(
    ("text", "shaped"),
    [
        ("**Great** news, _really_!", "Great news, really!"),
        ("## Next steps\nCall us.", "Next steps. Call us."),
        ("Options:\n- Call us\n- Email us\n1. Visit", "Options: Call us. Email us. Visit."),
        ("See [our site](https://example.com/x).", "See our site."),
        ("Run `prior_auth` now.", "Run prior_auth now."),
        ("```\nsome code\n```\nDone.", "some code Done."),
        ("Tom & Jerry", "Tom and Jerry"),
        ("It is 50% covered.", "It is 50 percent covered."),
        ("Email me @ noon", "Email me at noon"),
        ("2+2 = 4", "2 plus 2 equals 4"),
        ("Call +1 555 now", "Call +1 555 now"),  # a leading + on a number is left alone
        ("Yes/no answers", "Yes or no answers"),
        ("Take 1/2 a pill on 3/4", "Take 1/2 a pill on 3/4"),  # numbers left alone
        ("See https://x.com/a/b", "See https://x.com/a/b"),  # URLs left alone
        ("This and/or that, N/A", "This and or that, not applicable"),
        ("Ticket #42 at ~5 pm", "Ticket number 42 at about 5 pm"),
        ("It is 98.6°F", "It is 98.6 degrees F"),
        ("Thanks! 😊👍🏽 Bye ✅", "Thanks! Bye"),
        ("Wait — what?", "Wait, what?"),
        ("  lots \n\n of   space  ", "lots of space"),
        ("> quoted text\n---\nAfter.", "quoted text After."),
    ],
)
def test_shape_for_voice(text: str, shaped: str) -> None:
    assert shape_for_voice(text) == shaped


def test_shape_for_voice_max_words_sentence_boundary() -> None:
    text = "This is the first sentence here. Then another one follows it. And a third one."
    two = "This is the first sentence here. Then another one follows it."
    assert shape_for_voice(text, max_words=12) == two
    assert shape_for_voice(text, max_words=6) == "This is the first sentence here."
    assert shape_for_voice(text, max_words=100) == text


def test_shape_for_voice_max_words_first_sentence_too_long() -> None:
    text = "This is a very long sentence, with a clause in it and many more words beyond the cap. Next."
    assert shape_for_voice(text, max_words=10) == "This is a very long sentence."
    no_clause = "Please hold while I look up your member record in our system right now"
    assert shape_for_voice(no_clause, max_words=5) == "Please hold while I look."
    with pytest.raises(ValueError):
        shape_for_voice("Hi.", max_words=0)


def _stream(chunker: SentenceChunker, tokens: list[str]) -> list[str]:
    out: list[str] = []
    for token in tokens:
        out.extend(chunker.feed(token))
    out.extend(chunker.flush())
    return out


def _tokens(text: str, size: int = 3) -> list[str]:
    """Split like an LLM tokenizer might: pieces of up to ``size`` characters, mid-word."""
    return re.findall(rf"\S{{1,{size}}}|\s+", text)


def test_chunker_token_stream_mid_word_and_abbreviation() -> None:
    text = (
        "Sure. I can help with that. Dr. Smith sees you at 9 a.m. on Monday, in room 3.5 B. "
        "Is that okay? Great!"
    )
    chunks = _stream(SentenceChunker(), _tokens(text))
    assert chunks == [
        "Sure. I can help with that.",
        "Dr. Smith sees you at 9 a.m. on Monday, in room 3.5 B. Is that okay?",
        "Great!",
    ]


def test_chunker_every_character_a_token() -> None:
    text = "Of course. Mrs. Lee will call you back at 555 1234. Bye for now, take care."
    chunks = _stream(SentenceChunker(), list(text))
    assert chunks == ["Of course.", "Mrs. Lee will call you back at 555 1234.", "Bye for now, take care."]


def test_chunker_waits_for_char_after_abbreviation() -> None:
    chunker = SentenceChunker()
    assert chunker.feed("Please ask for Dr") == []
    assert chunker.feed(".") == []
    assert chunker.feed(" ") == []  # "Dr. " could still be a sentence end; wait
    assert chunker.feed("Smith") == []  # "Dr." + capital is not a boundary
    assert chunker.feed(" today.") == []  # unconfirmed until the next non-space char
    assert chunker.feed(" ") == []
    assert chunker.feed("Then") == ["Please ask for Dr. Smith today."]
    assert chunker.flush() == ["Then"]


def test_chunker_first_chunk_threshold() -> None:
    # "Sure." (5 chars) is under first_chunk_min_chars=8, so it merges; "Of course." goes alone.
    tokens = ["Sure.", " Let", " me", " check", " that", " for", " you.", " Ok"]
    assert _stream(SentenceChunker(), tokens) == [
        "Sure. Let me check that for you.",
        "Ok",
    ]
    assert _stream(SentenceChunker(), ["Of course.", " Let", " me", " check."]) == [
        "Of course.",
        "Let me check.",
    ]
    assert _stream(SentenceChunker(first_chunk_min_chars=1), ["Sure.", " Let", " me", " check."]) == [
        "Sure.",
        "Let me check.",
    ]


def test_chunker_short_sentences_merge_after_first() -> None:
    # "Yes. No. Maybe so." is 18 chars, under min_chars=20, so it merges with what follows.
    tokens = _tokens("Of course. Yes. No. Maybe so. That is longer. And this one is too.")
    assert _stream(SentenceChunker(), tokens) == [
        "Of course.",
        "Yes. No. Maybe so. That is longer.",
        "And this one is too.",
    ]


def test_chunker_max_chars_clause_cut() -> None:
    text = (
        "This reply keeps going and going, with one clause after another; it never reaches a full stop "
        "because the model rambles on about authorizations and member identifiers and dates"
    )
    chunks = _stream(SentenceChunker(max_chars=80), _tokens(text, 4))
    assert chunks == [
        "This reply keeps going and going, with one clause after another;",
        "it never reaches a full stop because the model rambles on about authorizations",
        "and member identifiers and dates",
    ]
    assert all(len(c) <= 80 for c in chunks)


def test_chunker_max_chars_hard_cut_without_spaces() -> None:
    chunks = _stream(SentenceChunker(min_chars=5, max_chars=10, first_chunk_min_chars=5), list("x" * 25))
    assert chunks == ["x" * 10, "x" * 10, "x" * 5]


def test_chunker_markdown_list_and_symbols() -> None:
    text = (
        "Here are your options:\n1. **Call** the office\n"
        "2. Visit [the portal](https://p.example)\n- 50% off & more 🎉\n"
    )
    chunks = _stream(SentenceChunker(), _tokens(text, 2))
    assert chunks == [
        "Here are your options:",
        "Call the office.",
        "Visit the portal.",
        "50 percent off and more.",
    ]


def test_chunker_flush_resets_for_next_turn() -> None:
    chunker = SentenceChunker()
    assert chunker.feed("Thanks for waiting") == []
    assert chunker.flush() == ["Thanks for waiting"]
    assert chunker.flush() == []
    # After a flush the next reply's first chunk uses the small threshold again.
    assert chunker.feed("Great news.") == []
    assert chunker.feed(" Next") == ["Great news."]


def test_chunker_drops_empty_chunks() -> None:
    assert _stream(SentenceChunker(), ["🎉🎉", "\n\n", "---", "\n\n", "All set", "."]) == ["All set."]


def test_chunker_rejects_bad_thresholds() -> None:
    with pytest.raises(ValueError):
        SentenceChunker(min_chars=10, first_chunk_min_chars=20)
    with pytest.raises(ValueError):
        SentenceChunker(min_chars=200, max_chars=160)


def test_split_first_clause_cuts_long_sentences_at_a_comma() -> None:
    from engine.voice_text import split_first_clause

    long = "The procedure is CPT code nine nine two one three, ordered by NPI one two three, four five six."
    assert split_first_clause(long) == [
        "The procedure is CPT code nine nine two one three,",
        "ordered by NPI one two three, four five six.",
    ]
    assert split_first_clause("Thanks, that helps.") == ["Thanks, that helps."]  # short: whole
    no_comma = "A long sentence without any pause in it at all that goes on and on and on."
    assert split_first_clause(no_comma) == [no_comma]
