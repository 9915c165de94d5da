"""Answers from the call's data: what the agent says when the counterpart asks for a field.

Only fields the schema lists under ``disclose`` are ever read out, in their spoken form
("X-ray Kilo Mike, four four nine …"); asked again, or asked to go slowly, the agent reads it
slower and grouped ("X as in X-ray, K as in Kilo …").
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from engine.nlu.requests import FieldValue, field_values
from engine.schema_model import ConversationSchemaFile
from engine.spoken import SPOKEN_RULES, slowly

_ACRONYMS = {"id": "ID", "npi": "NPI", "cpt": "CPT", "dob": "date of birth"}
# A request about someone other than the person this call is about: this call's data is not
# theirs, so nothing is read out ("the other patient's ID", "her husband's date of birth").
_OTHER_PERSON = re.compile(
    r"\b(?:other|another|previous|last|next|different|second|earlier)\s+"
    r"(?:patient|member|person|caller|call|one|subscriber)s?\b|\bone before\b|\bsomeone else\b|"
    r"\b(?:anybody|anyone) else\b|\b(?:husband|wife|spouse|son|daughter|mother|father|mom|dad|brother|"
    r"sister|partner|child|kid)(?:'s)?\b",
    re.IGNORECASE,
)


def about_someone_else(text: str) -> bool:
    """Whether a request for data is about another person than the call's own."""
    return _OTHER_PERSON.search(text) is not None


def field_label(spec: ConversationSchemaFile, field: str) -> str:
    disclosure = spec.disclose.get(field)
    if disclosure is not None and disclosure.label:
        return disclosure.label
    words = [_ACRONYMS.get(w, w) for w in field.split("_")]
    return " ".join(words)


def answer(spec: ConversationSchemaFile, call_data: Mapping[str, str], field: str, slow: bool) -> str | None:
    """The line that answers a request for ``field``, or None when it may not be said or the
    call has no value for it."""
    if field not in spec.disclose or not call_data.get(field):
        return None
    value = call_data[field]
    rule = spec.call_data[field].spoken or "plain"
    said = slowly(rule, value) if slow else SPOKEN_RULES[rule](value)
    label = field_label(spec, field)
    return f"Sure, {label if label.startswith('the ') else 'the ' + label} is {said}."


def fields_in(
    line: str, spec: ConversationSchemaFile, values: Mapping[str, str]
) -> tuple[tuple[str, str], ...]:
    """(field, raw value) of the disclosable fields whose spoken form the agent's ``line`` reads
    out, in the order said: what "those letters" or "the numbers" can refer to."""
    found: list[tuple[int, str, str]] = []
    for field in spec.disclose:
        spoken = values.get(f"{field}_spoken") or values.get(field)
        raw = values.get(field)
        if spoken and raw:
            at = line.find(spoken)
            if at >= 0:
                found.append((at, field, raw))
    return tuple((f, v) for _, f, v in sorted(found))


def checkable_values(spec: ConversationSchemaFile, call_data: Mapping[str, Any]) -> tuple[FieldValue, ...]:
    """The disclosable fields' values, in the forms a counterpart may say them back to check."""
    values = {name: str(call_data.get(name) or "") for name in spec.disclose}
    return field_values(values, {name: spec.call_data[name].type for name in spec.disclose})


def identifiers(spec: ConversationSchemaFile, call_data: Mapping[str, str]) -> frozenset[str]:
    """The call's own identifiers as an extractor would write them (upper-case letters and
    digits; dates in ISO form): read back by the counterpart, they are not answers."""
    out: set[str] = set()
    for name, data_field in spec.call_data.items():
        value = call_data.get(name)
        if not value:
            continue
        if data_field.type in ("id", "npi", "cpt", "phone", "number"):
            chars = re.sub(r"[^0-9A-Za-z]", "", value).upper()
            out.add(chars)
            if data_field.type == "phone" and len(chars) == 11 and chars.startswith("1"):
                out.add(chars[1:])
        elif data_field.type == "date":
            out.add(value)
            out |= _date_digits(value)
    return frozenset(out)


def _date_digits(iso: str) -> set[str]:
    """A date as its digits are read out ("1 15 80", "01/15/1980"): a code extractor would take
    them for a number, so they are this call's identifiers too."""
    match = re.fullmatch(r"(\d{4})-(\d{2})-(\d{2})", iso)
    if match is None:
        return set()
    year, month, day = match[1], match[2], match[3]
    months, days = {month, month.lstrip("0")}, {day, day.lstrip("0")}
    return {m + d + y for m in months for d in days for y in (year, year[2:])}
