"""Spoken forms of call data: what a TTS voice should read for dates, IDs, money and times.

Computed once per call (precompute), so every function is deterministic and cheap. Error
messages describe what is wrong without echoing the value: call data may be a date of birth
or a member ID, and exceptions end up in logs.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

__all__ = [
    "SPOKEN_RULES",
    "npi_is_valid",
    "number_to_words",
    "ordinal_words",
    "slowly",
    "spoken_cpt",
    "spoken_currency",
    "spoken_date",
    "spoken_digits",
    "spoken_id_nato",
    "spoken_name",
    "spoken_npi",
    "spoken_phone",
    "spoken_time",
    "spoken_year",
]

_ONES = (
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen",
)  # fmt: skip
_TENS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")
_SCALES = ((10**12, "trillion"), (10**9, "billion"), (10**6, "million"), (1000, "thousand"))
_ORDINAL_IRREGULAR = {
    "one": "first",
    "two": "second",
    "three": "third",
    "five": "fifth",
    "eight": "eighth",
    "nine": "ninth",
    "twelve": "twelfth",
}
_MONTHS = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)  # fmt: skip
# ICAO spelling except "Alpha"/"Juliet", which TTS voices pronounce better.
_NATO = {
    word[0].upper(): word
    for word in (
        "Alpha", "Bravo", "Charlie", "Delta", "Echo", "Foxtrot", "Golf", "Hotel", "India",
        "Juliet", "Kilo", "Lima", "Mike", "November", "Oscar", "Papa", "Quebec", "Romeo",
        "Sierra", "Tango", "Uniform", "Victor", "Whiskey", "X-ray", "Yankee", "Zulu",
    )
}  # fmt: skip
_ID_SEPARATORS = re.compile(r"[\s\-]+")
_PHONE_PUNCT = re.compile(r"[\s().\-]+")


def _below_thousand(n: int) -> str:
    parts: list[str] = []
    hundreds, rest = divmod(n, 100)
    if hundreds:
        parts.append(f"{_ONES[hundreds]} hundred")
    if rest >= 20:
        tens, ones = divmod(rest, 10)
        parts.append(_TENS[tens] + (f"-{_ONES[ones]}" if ones else ""))
    elif rest:
        parts.append(_ONES[rest])
    return " ".join(parts)


def number_to_words(n: int) -> str:
    """Cardinal in words, American style without "and": 123 -> "one hundred twenty-three"."""
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError("number_to_words expects an int")
    if n < 0:
        return "minus " + number_to_words(-n)
    if n == 0:
        return "zero"
    if n >= 10**15:
        raise ValueError("number too large to speak (limit is below one quadrillion)")
    parts: list[str] = []
    for scale, name in _SCALES:
        count, n = divmod(n, scale)
        if count:
            parts.append(f"{_below_thousand(count)} {name}")
    if n:
        parts.append(_below_thousand(n))
    return " ".join(parts)


def ordinal_words(n: int) -> str:
    """Ordinal in words: 15 -> "fifteenth", 21 -> "twenty-first", 100 -> "one hundredth"."""
    words = number_to_words(n)
    head, sep, last = words.rpartition(" ")
    prefix, hyphen, last = last.rpartition("-")
    if last in _ORDINAL_IRREGULAR:
        last = _ORDINAL_IRREGULAR[last]
    elif last.endswith("y"):
        last = last[:-1] + "ieth"
    else:
        last += "th"
    return head + sep + prefix + hyphen + last


def spoken_year(year: int) -> str:
    """A year as people read it: 1980 "nineteen eighty", 1905 "nineteen oh five",
    1900 "nineteen hundred", 2000 "two thousand", 2007 "two thousand seven", 2019 "twenty nineteen"."""
    if not 1000 <= year <= 9999:
        return number_to_words(year)
    century, rest = divmod(year, 100)
    if century % 10 == 0 and rest < 10:  # 2000-2009, 1000-1009: "two thousand seven"
        return number_to_words(year)
    if rest == 0:
        return f"{number_to_words(century)} hundred"
    if rest < 10:
        return f"{number_to_words(century)} oh {_ONES[rest]}"
    return f"{number_to_words(century)} {number_to_words(rest)}"


_ISO_DATE = re.compile(r"(\d{4})-(\d{1,2})-(\d{1,2})")
_US_DATE = re.compile(r"(\d{1,2})/(\d{1,2})/(\d{4})")


def _parse_date(value: str | datetime.date) -> datetime.date:
    if isinstance(value, datetime.datetime):
        return value.date()
    if isinstance(value, datetime.date):
        return value
    if not isinstance(value, str):
        raise TypeError("date must be a str or datetime.date")
    text = value.strip()
    if m := _ISO_DATE.fullmatch(text):
        year, month, day = int(m[1]), int(m[2]), int(m[3])
    elif m := _US_DATE.fullmatch(text):
        month, day, year = int(m[1]), int(m[2]), int(m[3])
    else:
        raise ValueError("unrecognised date format (expected YYYY-MM-DD or MM/DD/YYYY)")
    if not 1 <= month <= 12:
        raise ValueError("invalid date: month out of range 1-12")
    if year < 1:
        raise ValueError("invalid date: year out of range")
    try:
        return datetime.date(year, month, day)
    except ValueError:
        raise ValueError("invalid date: day out of range for the month") from None


def spoken_date(value: str | datetime.date) -> str:
    """Month, ordinal day and spoken year: "January fifteenth, nineteen eighty" for "1980-01-15"
    or "01/15/1980". Invalid dates raise ValueError describing the problem, not the value."""
    d = _parse_date(value)
    return f"{_MONTHS[d.month - 1]} {ordinal_words(d.day)}, {spoken_year(d.year)}"


def _digit_words(chars: str) -> str:
    return " ".join(_NATO[c] if c.isalpha() else _ONES[int(c)] for c in chars)


def _even_groups(length: int, size: int) -> list[int]:
    """Split a run into groups of ``size``; a lone trailing item joins the previous group,
    so 7 digits read as 3+4, not 3+3+1."""
    sizes = [size] * (length // size)
    rem = length % size
    if rem == 1 and sizes and size > 1:
        sizes[-1] += 1
    elif rem:
        sizes.append(rem)
    return sizes


def _read_groups(chars: str, sizes: list[int]) -> list[str]:
    out: list[str] = []
    pos = 0
    for size in sizes:
        out.append(_digit_words(chars[pos : pos + size]))
        pos += size
    return out


def _clean_id(value: str, what: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str")
    chars = _ID_SEPARATORS.sub("", value).upper()
    if not chars:
        raise ValueError(f"{what} is empty")
    for pos, c in enumerate(chars):
        if not (c.isascii() and c.isalnum()):
            raise ValueError(f"{what} has an unsupported character at position {pos + 1}")
    return chars


def spoken_id_nato(value: str, group: int = 3) -> str:
    """An ID read character by character: letters in the NATO alphabet, digits as words.

    Letter and digit runs are read in groups of ``group`` with commas between groups, so the
    voice pauses: "ABC123456" -> "Alpha Bravo Charlie, one two three, four five six".
    Hyphens and spaces are separators and are dropped; other characters raise ValueError.
    """
    if group < 1:
        raise ValueError("group must be at least 1")
    chars = _clean_id(value, "ID")
    groups: list[str] = []
    for run in re.findall(r"[A-Z]+|[0-9]+", chars):
        groups.extend(_read_groups(run, _even_groups(len(run), group)))
    return ", ".join(groups)


def spoken_digits(value: str, groups: list[int] | None = None) -> str:
    """Digits read one by one in groups: ``spoken_digits("1234567890", [3, 3, 4])`` ->
    "one two three, four five six, seven eight nine zero".

    Spaces, hyphens, dots and parentheses are dropped; letters are read in the NATO alphabet.
    ``groups`` must add up to the number of characters; by default groups of three (a lone
    last character joins the previous group).
    """
    if not isinstance(value, str):
        raise TypeError("digits must be a str")
    chars = _clean_id(_PHONE_PUNCT.sub("", value), "digit string")
    if groups is None:
        sizes = _even_groups(len(chars), 3)
    else:
        if any(g < 1 for g in groups) or sum(groups) != len(chars):
            raise ValueError(f"groups add up to {sum(groups)} but the value has {len(chars)} characters")
        sizes = list(groups)
    return ", ".join(_read_groups(chars, sizes))


def _only_digits(value: str, what: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str")
    digits = _PHONE_PUNCT.sub("", value)
    if not digits.isascii() or not digits.isdigit():
        raise ValueError(f"{what} must contain only digits and separators")
    return digits


def spoken_npi(value: str) -> str:
    """A 10-digit NPI read 3-3-4. Does not check the Luhn digit: see ``npi_is_valid``."""
    digits = _only_digits(value, "NPI")
    if len(digits) != 10:
        raise ValueError(f"NPI must have 10 digits, got {len(digits)}")
    return spoken_digits(digits, [3, 3, 4])


def npi_is_valid(npi: str) -> bool:
    """NPI check digit: Luhn over "80840" + the first nine digits (CMS NPI standard)."""
    if not isinstance(npi, str):
        return False
    digits = npi.strip()
    if len(digits) != 10 or not digits.isascii() or not digits.isdigit():
        return False
    total = 0
    # Right to left over the payload (prefix + 9 digits), doubling every other digit
    # starting with the rightmost, as when the check digit is appended.
    for i, ch in enumerate(reversed("80840" + digits[:9])):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return (10 - total % 10) % 10 == int(digits[9])


def spoken_phone(value: str) -> str:
    """A US phone number read 3-3-4: "+1 (555) 123-4567" -> "five five five, one two three,
    four five six seven". Accepts +1/1 prefixes and spaces, dots, hyphens, parentheses."""
    if not isinstance(value, str):
        raise TypeError("phone number must be a str")
    text = value.strip()
    if text.startswith("+"):
        if not text.startswith("+1"):
            raise ValueError("only US/NANP phone numbers (+1) are supported")
        text = text[2:]
    digits = _only_digits(text, "phone number")
    if len(digits) == 11 and digits[0] == "1":
        digits = digits[1:]
    if len(digits) != 10:
        raise ValueError(f"US phone number must have 10 digits, got {len(digits)}")
    return spoken_digits(digits, [3, 3, 4])


_CPT_RE = re.compile(r"[A-Z0-9]{5}")


def spoken_cpt(value: str) -> str:
    """A CPT/HCPCS code (5 characters) read as one group: "99213" -> "nine nine two one three",
    "0001U" -> "zero zero zero one Uniform", "J1234" -> "Juliet one two three four"."""
    if not isinstance(value, str):
        raise TypeError("CPT code must be a str")
    code = value.strip().upper()
    if not _CPT_RE.fullmatch(code):
        raise ValueError("CPT code must be 5 letters or digits")
    return spoken_digits(code, [5])


_CURRENCY_TEXT = re.compile(r"(-)?\s*\$?\s*(-)?\s*([0-9][0-9,]*(?:\.[0-9]*)?|\.[0-9]+)")
_CENT = Decimal("0.01")


def spoken_currency(value: str | float | Decimal) -> str:
    """US dollars in words: "$1,250.50" -> "one thousand two hundred fifty dollars and fifty
    cents"; "$1" -> "one dollar"; 0.99 -> "ninety-nine cents"; negatives -> "minus ...".
    Amounts are rounded half-up to whole cents."""
    if isinstance(value, bool):
        raise TypeError("currency must be a str, int, float or Decimal")
    if isinstance(value, str):
        text = value.strip()
        negative = False
        if text.startswith("(") and text.endswith(")"):  # accounting style
            text, negative = text[1:-1], True
        m = _CURRENCY_TEXT.fullmatch(text)
        if not m:
            raise ValueError("unrecognised currency amount")
        negative = negative or bool(m[1] or m[2])
        amount = Decimal(m[3].replace(",", ""))
    elif isinstance(value, int | float | Decimal):
        try:
            amount = Decimal(str(value)) if isinstance(value, float) else Decimal(value)
        except InvalidOperation:
            raise ValueError("unrecognised currency amount") from None
        if not amount.is_finite():
            raise ValueError("currency amount must be finite")
        negative = amount < 0
        amount = abs(amount)
    else:
        raise TypeError("currency must be a str, int, float or Decimal")
    cents_total = int(amount.quantize(_CENT, rounding=ROUND_HALF_UP) * 100)
    dollars, cents = divmod(cents_total, 100)
    parts: list[str] = []
    if dollars:
        parts.append(f"{number_to_words(dollars)} dollar{'s' if dollars != 1 else ''}")
    if cents:
        parts.append(f"{number_to_words(cents)} cent{'s' if cents != 1 else ''}")
    if not parts:
        return "zero dollars"
    words = " and ".join(parts)
    return f"minus {words}" if negative else words


_TIME_RE = re.compile(
    r"(?P<h>\d{1,2})(?::(?P<m>\d{2}))?(?::\d{2})?\s*(?:(?P<ap>[ap])\.?\s*m\.?)?",
    re.IGNORECASE,
)


def spoken_time(value: str | datetime.time) -> str:
    """A clock time in 12-hour words: "14:30" -> "two thirty PM", "09:05" -> "nine oh five AM",
    "15:00" -> "three PM", "12:00" -> "twelve noon", "00:00" -> "twelve midnight".
    Accepts 24-hour "HH:MM[:SS]" and 12-hour "3pm", "3:15 p.m."; seconds are ignored."""
    if isinstance(value, datetime.time):
        hour, minute = value.hour, value.minute
    elif isinstance(value, str):
        m = _TIME_RE.fullmatch(value.strip())
        if not m or (m["m"] is None and m["ap"] is None):
            raise ValueError("unrecognised time format (expected HH:MM or e.g. 3:15 pm)")
        hour, minute = int(m["h"]), int(m["m"] or 0)
        if minute > 59:
            raise ValueError("invalid time: minutes out of range 0-59")
        if m["ap"]:
            if not 1 <= hour <= 12:
                raise ValueError("invalid time: hour out of range 1-12 with AM/PM")
            hour = hour % 12 + (12 if m["ap"].lower() == "p" else 0)
        elif hour > 23:
            raise ValueError("invalid time: hour out of range 0-23")
    else:
        raise TypeError("time must be a str or datetime.time")
    if minute == 0 and hour in (0, 12):
        return "twelve noon" if hour == 12 else "twelve midnight"
    hour12 = hour % 12 or 12
    words = number_to_words(hour12)
    if minute:
        words += f" oh {_ONES[minute]}" if minute < 10 else f" {number_to_words(minute)}"
    return f"{words} {'PM' if hour >= 12 else 'AM'}"


_ROMAN_SUFFIX = frozenset({"II", "III", "IV", "VI", "VII", "VIII"})
_NAME_CAPS = re.compile(r"(^|[\s\-'’])([^\W\d_])")


def spoken_name(value: str) -> str:
    """A person's name, title-cased with whitespace normalised: "  mary-ann  O'NEIL iii" ->
    "Mary-Ann O'Neil III"."""
    words = str(value).split()
    out: list[str] = []
    for word in words:
        if word.upper() in _ROMAN_SUFFIX and out:
            out.append(word.upper())
        else:
            out.append(_NAME_CAPS.sub(lambda m: m[1] + m[2].upper(), word.lower()))
    return " ".join(out)


SPOKEN_RULES: dict[str, Callable[[str], str]] = {
    "plain": str,
    "name": spoken_name,
    "date": spoken_date,
    "nato": spoken_id_nato,
    "digits": spoken_digits,
    "npi": spoken_npi,
    "phone": spoken_phone,
    "cpt": spoken_cpt,
    "currency": spoken_currency,
    "time": spoken_time,
}


def _chars_slowly(chars: str, group: int) -> str:
    """One character at a time, letters as "X as in X-ray", a full stop between groups so the
    voice pauses: "XK4" -> "X as in X-ray, K as in Kilo. four"."""
    said = [f"{c} as in {_NATO[c]}" if c.isalpha() else _ONES[int(c)] for c in chars]
    sizes = _even_groups(len(said), group)
    out, pos = [], 0
    for size in sizes:
        out.append(", ".join(said[pos : pos + size]))
        pos += size
    return ". ".join(out)


def slowly(rule: str, value: str) -> str:
    """A call-data value said slower and grouped, for a counterpart who asks again."""
    if rule in ("nato", "digits", "cpt"):
        return _chars_slowly(_clean_id(_PHONE_PUNCT.sub("", value), "ID"), 3)
    if rule == "npi":
        digits = _only_digits(value, "NPI")
        return ". ".join(", ".join(_ONES[int(c)] for c in digits[a:b]) for a, b in ((0, 3), (3, 6), (6, 10)))
    if rule == "phone":
        return slowly("npi", spoken_phone_digits(value))
    if rule == "date":
        d = _parse_date(value)
        month, day = number_to_words(d.month), number_to_words(d.day)
        return f"{spoken_date(value)}. That's {month}, {day}, {spoken_year(d.year)}"
    if rule == "name":
        name = spoken_name(value)
        last = name.split()[-1]
        return f"{name}, last name spelled {', '.join(c.upper() for c in last if c.isalpha())}"
    return SPOKEN_RULES[rule](value)


def spoken_phone_digits(value: str) -> str:
    digits = _only_digits(value.replace("+", ""), "phone number")
    return digits[1:] if len(digits) == 11 and digits.startswith("1") else digits
