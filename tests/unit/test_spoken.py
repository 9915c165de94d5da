"""Spoken forms of call data (engine.spoken): exact strings a TTS voice will read."""

from __future__ import annotations

import datetime
from decimal import Decimal

import pytest

from engine.spoken import (
    SPOKEN_RULES,
    npi_is_valid,
    number_to_words,
    ordinal_words,
    spoken_cpt,
    spoken_currency,
    spoken_date,
    spoken_digits,
    spoken_id_nato,
    spoken_name,
    spoken_npi,
    spoken_phone,
    spoken_time,
    spoken_year,
)


@pytest.mark.parametrize(
    ("n", "words"),
    [
        (0, "zero"),
        (7, "seven"),
        (13, "thirteen"),
        (20, "twenty"),
        (21, "twenty-one"),
        (100, "one hundred"),
        (123, "one hundred twenty-three"),
        (1005, "one thousand five"),
        (1250, "one thousand two hundred fifty"),
        (1_000_000, "one million"),
        (2_000_000_050, "two billion fifty"),
        (-42, "minus forty-two"),
    ],
)
def test_number_to_words(n: int, words: str) -> None:
    assert number_to_words(n) == words


def test_number_to_words_rejects_non_int() -> None:
    with pytest.raises(TypeError):
        number_to_words(1.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        number_to_words(True)


@pytest.mark.parametrize(
    ("n", "words"),
    [
        (1, "first"),
        (2, "second"),
        (3, "third"),
        (5, "fifth"),
        (8, "eighth"),
        (9, "ninth"),
        (11, "eleventh"),
        (12, "twelfth"),
        (13, "thirteenth"),
        (15, "fifteenth"),
        (20, "twentieth"),
        (21, "twenty-first"),
        (22, "twenty-second"),
        (23, "twenty-third"),
        (30, "thirtieth"),
        (31, "thirty-first"),
        (100, "one hundredth"),
        (101, "one hundred first"),
    ],
)
def test_ordinal_words(n: int, words: str) -> None:
    assert ordinal_words(n) == words


@pytest.mark.parametrize(
    ("year", "words"),
    [
        (1980, "nineteen eighty"),
        (1905, "nineteen oh five"),
        (1900, "nineteen hundred"),
        (2000, "two thousand"),
        (2005, "two thousand five"),
        (2007, "two thousand seven"),
        (2010, "twenty ten"),
        (2019, "twenty nineteen"),
        (1999, "nineteen ninety-nine"),
    ],
)
def test_spoken_year(year: int, words: str) -> None:
    assert spoken_year(year) == words


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("1980-01-15", "January fifteenth, nineteen eighty"),
        ("01/15/1980", "January fifteenth, nineteen eighty"),
        ("1/2/2005", "January second, two thousand five"),
        ("2024-02-29", "February twenty-ninth, twenty twenty-four"),
        ("2000-02-29", "February twenty-ninth, two thousand"),
        ("1900-12-31", "December thirty-first, nineteen hundred"),
        ("1955-03-22", "March twenty-second, nineteen fifty-five"),
        (datetime.date(2019, 11, 11), "November eleventh, twenty nineteen"),
        (datetime.datetime(1905, 7, 13, 8, 30), "July thirteenth, nineteen oh five"),
    ],
)
def test_spoken_date(value: str | datetime.date, words: str) -> None:
    assert spoken_date(value) == words


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("2023-02-29", "day out of range"),  # not a leap year
        ("1900-02-29", "day out of range"),  # century, not a leap year
        ("2023-02-30", "day out of range"),
        ("2023-13-01", "month out of range"),
        ("13/01/2023", "month out of range"),
        ("garbage", "unrecognised date format"),
        ("", "unrecognised date format"),
        ("1980-01-15T00:00", "unrecognised date format"),
    ],
)
def test_spoken_date_invalid(value: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem) as info:
        spoken_date(value)
    if value:
        assert value not in str(info.value)  # the value (maybe a DOB) is never echoed


def test_spoken_date_wrong_type() -> None:
    with pytest.raises(TypeError):
        spoken_date(19800115)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "group", "words"),
    [
        ("ABC123456", 3, "Alpha Bravo Charlie, one two three, four five six"),
        ("abc123456", 3, "Alpha Bravo Charlie, one two three, four five six"),
        ("ab-c 123-456", 3, "Alpha Bravo Charlie, one two three, four five six"),
        ("W1234567", 3, "Whiskey, one two three, four five six seven"),
        ("XJ90", 3, "X-ray Juliet, nine zero"),
        ("12345678", 4, "one two three four, five six seven eight"),
        ("ZQ", 1, "Zulu, Quebec"),
    ],
)
def test_spoken_id_nato(value: str, group: int, words: str) -> None:
    assert spoken_id_nato(value, group) == words


@pytest.mark.parametrize("value", ["ABC#123", "AB.12", "", " - ", "ÄB12"])
def test_spoken_id_nato_rejects(value: str) -> None:
    with pytest.raises(ValueError):
        spoken_id_nato(value)


def test_spoken_id_nato_error_names_position_not_value() -> None:
    with pytest.raises(ValueError, match="position 4") as info:
        spoken_id_nato("ABC#123")
    assert "ABC" not in str(info.value)


def test_spoken_digits() -> None:
    assert spoken_digits("1234567890", [3, 3, 4]) == "one two three, four five six, seven eight nine zero"
    assert spoken_digits("1234") == "one two three four"
    assert spoken_digits("123456") == "one two three, four five six"
    assert spoken_digits("12-34") == "one two three four"
    with pytest.raises(ValueError, match="groups add up to 6"):
        spoken_digits("12345", [3, 3])


def test_npi() -> None:
    assert spoken_npi("1234567893") == "one two three, four five six, seven eight nine three"
    assert spoken_npi("123 456 7893") == "one two three, four five six, seven eight nine three"
    assert npi_is_valid("1234567893")  # the CMS example NPI
    assert npi_is_valid("1245319599")
    assert not npi_is_valid("1234567890")  # wrong check digit
    assert not npi_is_valid("123456789")  # too short
    assert not npi_is_valid("12345678a3")
    with pytest.raises(ValueError, match="10 digits"):
        spoken_npi("12345")
    with pytest.raises(ValueError):
        spoken_npi("12345X7893")


@pytest.mark.parametrize(
    "value",
    [
        "(555) 123-4567",
        "555-123-4567",
        "555.123.4567",
        "555 123 4567",
        "+1 555 123 4567",
        "+15551234567",
        "1-555-123-4567",
    ],
)
def test_spoken_phone(value: str) -> None:
    assert spoken_phone(value) == "five five five, one two three, four five six seven"


@pytest.mark.parametrize("value", ["123-4567", "+44 20 7946 0958", "555-123-456x", "25551234567"])
def test_spoken_phone_rejects(value: str) -> None:
    with pytest.raises(ValueError):
        spoken_phone(value)


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("99213", "nine nine two one three"),
        ("0001U", "zero zero zero one Uniform"),
        ("0042t", "zero zero four two Tango"),
        ("J1234", "Juliet one two three four"),
    ],
)
def test_spoken_cpt(value: str, words: str) -> None:
    assert spoken_cpt(value) == words


@pytest.mark.parametrize("value", ["9921", "992134", "99-21"])
def test_spoken_cpt_rejects(value: str) -> None:
    with pytest.raises(ValueError):
        spoken_cpt(value)


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("$1,250.50", "one thousand two hundred fifty dollars and fifty cents"),
        ("$1", "one dollar"),
        ("$1.00", "one dollar"),
        ("$5", "five dollars"),
        (0.99, "ninety-nine cents"),
        ("$0.01", "one cent"),
        ("1.01", "one dollar and one cent"),
        ("$0", "zero dollars"),
        ("$3,000,000", "three million dollars"),
        (Decimal("2500000000.10"), "two billion five hundred million dollars and ten cents"),
        (42, "forty-two dollars"),
        ("-$5.25", "minus five dollars and twenty-five cents"),
        ("$-5", "minus five dollars"),
        (-0.5, "minus fifty cents"),
        ("($12.50)", "minus twelve dollars and fifty cents"),
        ("$.75", "seventy-five cents"),
        ("$19.999", "twenty dollars"),  # rounded half-up to cents
    ],
)
def test_spoken_currency(value: str | float | Decimal, words: str) -> None:
    assert spoken_currency(value) == words


@pytest.mark.parametrize("value", ["abc", "$", "1e5", "$1.2.3", float("nan"), float("inf")])
def test_spoken_currency_rejects(value: str | float) -> None:
    with pytest.raises(ValueError):
        spoken_currency(value)


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("14:30", "two thirty PM"),
        ("09:05", "nine oh five AM"),
        ("12:00", "twelve noon"),
        ("00:00", "twelve midnight"),
        ("12:30", "twelve thirty PM"),
        ("00:15", "twelve fifteen AM"),
        ("15:00", "three PM"),
        ("23:59", "eleven fifty-nine PM"),
        ("08:00:45", "eight AM"),
        ("3pm", "three PM"),
        ("3:15 pm", "three fifteen PM"),
        ("3:15 P.M.", "three fifteen PM"),
        ("11am", "eleven AM"),
        ("12pm", "twelve noon"),
        ("12 am", "twelve midnight"),
        (datetime.time(7, 45), "seven forty-five AM"),
    ],
)
def test_spoken_time(value: str | datetime.time, words: str) -> None:
    assert spoken_time(value) == words


@pytest.mark.parametrize("value", ["24:00", "12:60", "13pm", "0am", "noonish", "7"])
def test_spoken_time_rejects(value: str) -> None:
    with pytest.raises(ValueError):
        spoken_time(value)


def test_spoken_name() -> None:
    assert spoken_name("  mary-ann   O'NEIL iii ") == "Mary-Ann O'Neil III"
    assert spoken_name("JOHN\tsmith") == "John Smith"


def test_spoken_rules() -> None:
    assert set(SPOKEN_RULES) == {
        "plain", "name", "date", "nato", "digits", "npi", "phone", "cpt", "currency", "time",
    }  # fmt: skip
    assert SPOKEN_RULES["plain"]("Aetna") == "Aetna"
    assert SPOKEN_RULES["name"]("jane DOE") == "Jane Doe"
    assert SPOKEN_RULES["date"]("1980-01-15") == "January fifteenth, nineteen eighty"
    assert SPOKEN_RULES["nato"]("AB12") == "Alpha Bravo, one two"
    assert SPOKEN_RULES["digits"]("123456") == "one two three, four five six"
    assert SPOKEN_RULES["npi"]("1234567893") == "one two three, four five six, seven eight nine three"
    assert SPOKEN_RULES["phone"]("5551234567") == "five five five, one two three, four five six seven"
    assert SPOKEN_RULES["cpt"]("0001U") == "zero zero zero one Uniform"
    assert SPOKEN_RULES["currency"]("$1") == "one dollar"
    assert SPOKEN_RULES["time"]("14:30") == "two thirty PM"
