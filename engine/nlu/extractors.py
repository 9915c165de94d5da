"""Typed slot extractors: the local, fast half of capture.

Each extractor takes the caller's utterance (as STT wrote it) and returns the normalised
slot value as a string, or None when the utterance holds no such value.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from decimal import Decimal

from engine.schema_model import Slot

_UNITS = {
    "zero": 0, "oh": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14,
    "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19,
}  # fmt: skip
_TENS = {
    "twenty": 20,
    "thirty": 30,
    "forty": 40,
    "fifty": 50,
    "sixty": 60,
    "seventy": 70,
    "eighty": 80,
    "ninety": 90,
}
_SCALES = {"hundred": 100, "thousand": 1_000, "grand": 1_000, "k": 1_000, "million": 1_000_000}
_DIGIT_WORDS = {w: str(n) for w, n in _UNITS.items() if n < 10}
_NATO = {
    "alpha": "A", "alfa": "A", "bravo": "B", "charlie": "C", "delta": "D", "echo": "E", "foxtrot": "F",
    "golf": "G", "hotel": "H", "india": "I", "juliet": "J", "juliett": "J", "kilo": "K", "lima": "L",
    "mike": "M", "november": "N", "oscar": "O", "papa": "P", "quebec": "Q", "romeo": "R", "sierra": "S",
    "tango": "T", "uniform": "U", "victor": "V", "whiskey": "W", "x-ray": "X", "xray": "X",
    "yankee": "Y", "zulu": "Z",
}  # fmt: skip
_MONTHS = {
    m.lower(): i
    for i, names in enumerate(
        [("january", "jan"), ("february", "feb"), ("march", "mar"), ("april", "apr"), ("may",),
         ("june", "jun"), ("july", "jul"), ("august", "aug"), ("september", "sep", "sept"),
         ("october", "oct"), ("november", "nov"), ("december", "dec")],
        start=1,
    )
    for m in names
}  # fmt: skip
_ORDINALS = {
    "first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6, "seventh": 7, "eighth": 8,
    "ninth": 9, "tenth": 10, "eleventh": 11, "twelfth": 12, "thirteenth": 13, "fourteenth": 14,
    "fifteenth": 15, "sixteenth": 16, "seventeenth": 17, "eighteenth": 18, "nineteenth": 19,
    "twentieth": 20, "thirtieth": 30,
}  # fmt: skip
_WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]

_WORD_RE = re.compile(r"[a-z]+(?:-[a-z]+)?|\d+(?:[.,]\d+)*|[$%]")
_YES = re.compile(
    r"\b(yes|yeah|yep|yup|correct|that's right|sure|absolutely|affirmative|definitely|exactly|"
    r"i am|i do|we do|it is|that's me|speaking|of course|sounds good|that works)\b"
)
_NO = re.compile(r"\b(no|nope|nah|not|negative|incorrect|wrong|don't|do not|isn't|aren't|never)\b")
_NOT_REALLY_NO = re.compile(r"\b(no problem|no worries|not a problem|no doubt)\b")


def tokens(text: str) -> list[str]:
    return _WORD_RE.findall(text.lower())


def words_to_number(words: list[str]) -> int | None:
    """'two hundred fifty thousand' → 250000; None if the words are not a number."""
    total = current = 0
    seen = False
    for word in words:
        for part in word.split("-"):
            if part in _UNITS:
                current += _UNITS[part]
            elif part in _TENS:
                current += _TENS[part]
            elif part == "hundred":
                current = max(current, 1) * 100
            elif part in _SCALES:
                total += max(current, 1) * _SCALES[part]
                current = 0
            elif part == "and" and seen:
                continue
            else:
                return None
            seen = True
    return total + current if seen else None


def _number_spans(text: str) -> list[Decimal]:
    """Every number in the text, written as digits or as words, in order."""
    out: list[Decimal] = []
    run: list[str] = []
    for token in [*tokens(text), ""]:
        if token and (token in _UNITS or token in _TENS or token in _SCALES or token.split("-")[0] in _TENS):
            run.append(token)
            continue
        if token == "and" and run:
            run.append(token)
            continue
        if run:
            while run and run[-1] == "and":
                run.pop()
            value = words_to_number(run)
            if value is not None:
                out.append(Decimal(value))
            run = []
        if token and token[0].isdigit():
            out.append(Decimal(token.replace(",", "")))
    return out


def extract_number(text: str, slot: Slot | None = None) -> str | None:
    numbers = _number_spans(text)
    return str(numbers[0]) if numbers else None


def extract_currency(text: str, slot: Slot | None = None) -> str | None:
    lowered = text.lower()
    match = re.search(r"\$\s?(\d[\d,]*(?:\.\d+)?)\s*(k|thousand|million|m)?\b", lowered)
    if match:
        value = Decimal(match.group(1).replace(",", ""))
        scale = match.group(2)
        if scale in ("k", "thousand"):
            value *= 1000
        elif scale in ("m", "million"):
            value *= 1_000_000
        return format(value.normalize(), "f")
    match = re.search(r"\b(\d[\d,]*(?:\.\d+)?)\s*(k|grand|thousand|million)\b", lowered)
    if match:
        value = Decimal(match.group(1).replace(",", "")) * _SCALES.get(match.group(2), 1)
        return str(int(value))
    if re.search(r"\b(dollars?|bucks|grand|budget|k)\b", lowered):
        numbers = _number_spans(lowered)
        if numbers:
            return str(int(max(numbers)))
    return None


def extract_yes_no(text: str, slot: Slot | None = None) -> str | None:
    lowered = text.lower().replace("’", "'")
    cleaned = _NOT_REALLY_NO.sub(" ", lowered)
    no = _NO.search(cleaned)
    yes = _YES.search(cleaned)
    if no and (not yes or no.start() < yes.start()):
        return "no"
    if yes:
        return "yes"
    return None


def spoken_sequence(text: str) -> list[str]:
    """Tokens with digit words, NATO words and 'double five' turned into characters."""
    out: list[str] = []
    words = re.findall(r"[A-Za-z]+(?:['’-][A-Za-z]+)*|\d+", text)
    double = False
    for word in words:
        lower = word.lower()
        if lower in ("double", "triple"):
            double = True
            continue
        char = _DIGIT_WORDS.get(lower) or _NATO.get(lower)
        if char is None and word.isdigit():
            char = word
        if char is None and len(word) == 1 and word.isalpha():
            char = word.upper()
        if char is None and re.fullmatch(r"[A-Z]{1,4}\d[\w]*|\d+[A-Z]+\w*|[A-Z]{2,4}", word):
            char = word.upper()
        if char is None:
            out.append(" ")
            double = False
            continue
        out.append(char * (2 if double else 1))
        double = False
    return out


def extract_code(text: str, slot: Slot | None = None) -> str | None:
    """Reference numbers and IDs: letters and digits, spoken or written, at least 4 chars and one digit.
    Without a cue word ("reference", "number", …) a sentence that holds a date is not read as a code."""
    lowered = text.lower()
    cue = re.search(r"\b(number|reference|ref|id|confirmation|authorization|auth|code|is)\b", lowered)
    if cue is None and extract_date(text) is not None:
        return None
    candidates = []
    for start in ([cue.end()] if cue else []) + [0]:
        runs = "".join(spoken_sequence(text[start:] if start else text)).split(" ")
        candidates += [r for r in runs if len(r) >= 4 and any(c.isdigit() for c in r)]
        if candidates:
            break
    return max(candidates, key=len) if candidates else None


def extract_phone(text: str, slot: Slot | None = None) -> str | None:
    digits = "".join(c for c in "".join(spoken_sequence(text)) if c.isdigit())
    if len(digits) == 11 and digits.startswith("1"):
        digits = digits[1:]
    return "+1" + digits if len(digits) == 10 else None


_NAME_WORD = r"[A-Z][a-z]*(?:['-][A-Z]?[a-z]+)*"
_NAME_CUES = re.compile(
    r"\b(?i:my name is|name's|this is|i'm|i am|it's|you're speaking with|speaking with)\s+"
    rf"({_NAME_WORD}(?:\s+{_NAME_WORD})?)"
)
_NAME_SPEAKING = re.compile(rf"\b({_NAME_WORD})\s+(?:speaking|here)\b")
_NOT_NAMES = {
    "Sure",
    "Yes",
    "Okay",
    "Ok",
    "Hello",
    "Hi",
    "The",
    "Thanks",
    "Thank",
    "Just",
    "Calling",
    "Not",
    "Sorry",
}


def extract_name(text: str, slot: Slot | None = None) -> str | None:
    for pattern in (_NAME_CUES, _NAME_SPEAKING):
        for match in pattern.finditer(text):
            words = [w for w in match.group(1).split() if w not in _NOT_NAMES]
            if words and words[0] == match.group(1).split()[0]:
                return " ".join(words)
    return None


def _year_from(words: list[str]) -> int | None:
    return words_to_number(words) if words else None


def extract_date(
    text: str, slot: Slot | None = None, today: dt.date | None = None, relative: bool = True
) -> str | None:
    """An ISO date from explicit forms ("March 3rd, 2025", "3/3/2025") and, when ``relative``,
    from "today", "tomorrow" and weekday names."""
    today = today or dt.date.today()
    lowered = re.sub(r"(\d)(st|nd|rd|th)\b", r"\1", text.lower().replace(",", " "))
    match = re.search(r"\b(\d{4})-(\d{2})-(\d{2})\b", lowered)
    try:
        if match:
            return dt.date(int(match[1]), int(match[2]), int(match[3])).isoformat()
        match = re.search(r"\b(\d{1,2})/(\d{1,2})(?:/(\d{2,4}))?\b", lowered)
        if match:
            year = int(match[3]) if match[3] else today.year
            year = year + 2000 if year < 100 else year
            return dt.date(year, int(match[1]), int(match[2])).isoformat()
    except ValueError:
        return None
    words = tokens(lowered)
    for i, word in enumerate(words):
        if word not in _MONTHS:
            continue
        found: tuple[int, int] | None = _day_of(words[i + 1 : i + 3])
        rest_at = i + 1 + (found[1] if found else 0)
        if found is None and i >= 2 and words[i - 1] == "of":  # "the twenty-first of May"
            found = _day_of(words[max(0, i - 3) : i - 1]) or _day_of(words[i - 2 : i - 1])
            rest_at = i + 1
        if found is None:
            continue
        rest = [w for w in words[rest_at : rest_at + 3] if w not in ("of", "the")]
        said_year = int(rest[0]) if rest and rest[0].isdigit() and len(rest[0]) == 4 else None
        try:
            return dt.date(said_year or today.year, _MONTHS[word], found[0]).isoformat()
        except ValueError:
            return None
    if not relative:
        return None
    if "today" in words:
        return today.isoformat()
    if "tomorrow" in words:
        return (today + dt.timedelta(days=1)).isoformat()
    for word in words:
        if word in _WEEKDAYS:
            ahead = (_WEEKDAYS.index(word) - today.weekday()) % 7 or 7
            return (today + dt.timedelta(days=ahead)).isoformat()
    return None


def _day_of(words: list[str]) -> tuple[int, int] | None:
    """(day of month, words used) from '15', 'fifteenth', 'twenty first' or 'twenty-first'."""
    if not words:
        return None
    first = words[0]
    if first.isdigit() and 1 <= int(first) <= 31:
        return int(first), 1
    if first in _ORDINALS:
        return _ORDINALS[first], 1
    if first in _TENS and len(words) > 1 and words[1] in _ORDINALS:
        return _TENS[first] + _ORDINALS[words[1]], 2
    if "-" in first:
        tens, _, unit = first.partition("-")
        if tens in _TENS and unit in _ORDINALS:
            return _TENS[tens] + _ORDINALS[unit], 1
    return None


def extract_time(text: str, slot: Slot | None = None) -> str | None:
    lowered = text.lower().replace(".", "")
    match = re.search(r"\b(\d{1,2})(?::(\d{2}))?\s*(am|pm)\b", lowered) or re.search(
        r"\b(\d{1,2}):(\d{2})\b()", lowered
    )
    if match:
        hour, minute = int(match[1]), int(match[2] or 0)
    else:
        words = tokens(lowered)
        match_word = next((i for i, w in enumerate(words) if w in _UNITS and 1 <= _UNITS[w] <= 12), None)
        if match_word is None or not re.search(r"\b(am|pm|o'clock|oclock|morning|afternoon|at)\b", lowered):
            return None
        hour = _UNITS[words[match_word]]
        nxt = words[match_word + 1] if match_word + 1 < len(words) else ""
        minute = _TENS.get(nxt, 0) + (15 if nxt == "fifteen" else 0) + (45 if nxt == "forty-five" else 0)
        if nxt.startswith(tuple(_TENS)) and "-" in nxt:
            minute = _TENS[nxt.split("-")[0]] + _UNITS.get(nxt.split("-")[1], 0)
    meridiem = re.search(r"\b(pm|afternoon|evening)\b", lowered) or (match and match[3] == "pm")
    if meridiem and hour < 12:
        hour += 12
    if re.search(r"\bam\b", lowered) and hour == 12:
        hour = 0
    if not (0 <= hour < 24 and 0 <= minute < 60):
        return None
    return f"{hour:02d}:{minute:02d}"


def extract_enum(text: str, slot: Slot | None = None) -> str | None:
    if slot is None or not slot.values:
        return None
    lowered = " " + " ".join(tokens(text.replace("’", "'"))) + " "
    options = [
        (" ".join(tokens(syn)), value.split("|")[0]) for value in slot.values for syn in value.split("|")
    ]
    for synonym, canonical in sorted(options, key=lambda o: -len(o[0])):
        if f" {synonym} " in lowered:
            return canonical
    return None


def extract_string(text: str, slot: Slot | None = None) -> str | None:
    cleaned = " ".join(text.split())
    return cleaned if len(cleaned.split()) >= 3 else None


EXTRACTORS: dict[str, Callable[[str, Slot | None], str | None]] = {
    "number": extract_number,
    "currency": extract_currency,
    "yes_no": extract_yes_no,
    "reference_number": extract_code,
    "id": extract_code,
    "phone": extract_phone,
    "name": extract_name,
    "date": extract_date,
    "time": extract_time,
    "enum": extract_enum,
    "string": extract_string,
}
