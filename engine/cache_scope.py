"""Cache scoping and the rules that decide what may be cached.

A cache entry is only ever served inside the scope it was stored in: the same conversation
schema, schema version, state, and the same values of the slots the reply depends on (hashed;
the values themselves never leave the call). These are hard key checks, not text tricks.

Stored values are reply *templates*: ``{field}`` placeholders are filled from the current
call's precomputed data when served, so no caller's data can reach another call. ``store``
refuses a template that carries call-specific facts (see ``template_refusal``).
"""

from __future__ import annotations

import hashlib
import json
import re
import string
import unicodedata
from typing import Any
from urllib.parse import quote

from pydantic import BaseModel, Field, field_validator

SCOPE_PART = re.compile(r"^[^\s]{1,128}$")


class CacheScope(BaseModel):
    schema_name: str = Field(description="Conversation schema (client) name.")
    schema_version: str = Field(description="Schema version; a new version never sees old entries.")
    state: str = Field(description="State-machine state the reply belongs to.")
    slot_hash: str = Field("", description="Hash of the slot values the reply depends on ('' = none).")

    @field_validator("schema_name", "schema_version", "state")
    @classmethod
    def _non_blank(cls, value: str) -> str:
        if not SCOPE_PART.match(value):
            raise ValueError(f"scope part must be 1-128 non-space characters, got {value!r}")
        return value

    @classmethod
    def for_call(
        cls,
        schema_name: str,
        schema_version: str,
        state: str,
        slots: dict[str, Any] | None = None,
        depends_on: list[str] | None = None,
    ) -> CacheScope:
        """Scope of a reply that depends on ``depends_on`` slots (missing slots hash as null)."""
        slots = slots or {}
        return cls(
            schema_name=schema_name,
            schema_version=schema_version,
            state=state,
            slot_hash=slot_hash({name: slots.get(name) for name in depends_on or []}),
        )

    def key(self) -> str:
        """Stable string key; each part is percent-quoted so ':' can separate them."""
        parts = (self.schema_name, self.schema_version, self.state, self.slot_hash)
        return ":".join(quote(p, safe="") for p in parts)

    def schema_key(self) -> str:
        return quote(self.schema_name, safe="")


def slot_hash(values: dict[str, Any]) -> str:
    if not values:
        return ""
    canonical = json.dumps(
        {k: _normalise_value(v) for k, v in sorted(values.items())}, sort_keys=True, default=str
    )
    return hashlib.blake2b(canonical.encode(), digest_size=12).hexdigest()


def _normalise_value(value: Any) -> Any:
    if isinstance(value, str):
        return normalise_text(value)
    return value


_PUNCT = re.compile(r"[^\w\s']+")
_SPACES = re.compile(r"\s+")


def normalise_text(text: str) -> str:
    """Exact-tier normalisation: Unicode NFKC, case-folded, punctuation dropped (apostrophes
    kept: "can't" ≠ "cant" matters little, but "we'll" ≠ "well" does), whitespace collapsed."""
    text = unicodedata.normalize("NFKC", text).casefold().replace("’", "'")
    text = _PUNCT.sub(" ", text)
    return _SPACES.sub(" ", text).strip(" '")


def text_hash(text: str) -> str:
    return hashlib.blake2b(normalise_text(text).encode(), digest_size=16).hexdigest()


# --- near-miss guards -----------------------------------------------------------------
# Sentence embeddings put "I can make Tuesday" and "I can't make Tuesday" very close, and
# "3 refills" next to "4 refills". A semantic hit therefore also needs the same polarity and
# the same numbers as the stored utterance. Cheap, and they remove the classic false hits.

_NEGATIONS = frozenset(
    [
        "not",
        "no",
        "never",
        "nobody",
        "nothing",
        "nowhere",
        "neither",
        "nor",
        "none",
        "cannot",
        "dont",
        "doesnt",
        "didnt",
        "isnt",
        "arent",
        "wasnt",
        "werent",
        "wont",
        "wouldnt",
        "cant",
        "couldnt",
        "shouldnt",
        "havent",
        "hasnt",
        "hadnt",
        "nope",
        "nah",
    ]
)
_NUMBER_WORDS = {
    w: str(i)
    for i, w in enumerate(
        [
            "zero",
            "one",
            "two",
            "three",
            "four",
            "five",
            "six",
            "seven",
            "eight",
            "nine",
            "ten",
            "eleven",
            "twelve",
            "thirteen",
            "fourteen",
            "fifteen",
            "sixteen",
            "seventeen",
            "eighteen",
            "nineteen",
            "twenty",
        ]
    )
}
_NUMBER_WORDS.update({"thirty": "30", "forty": "40", "fifty": "50", "hundred": "100", "thousand": "1000"})


_TIME_NOUNS = frozenset(
    "week weekend month year quarter morning afternoon evening night day time monday tuesday wednesday "
    "thursday friday saturday sunday".split()
)
_TIME_QUALIFIERS = frozenset("this next last past coming previous following".split())
# Words whose swap flips the answer while barely moving a sentence embedding.
_CRITICAL = frozenset(
    "monday tuesday wednesday thursday friday saturday sunday january february march april may june july "
    "august september october november december morning afternoon evening night tonight today tomorrow "
    "yesterday ago early late earlier later before after first middle last partially partly fully only "
    "email mail fax phone text had who what when where why how which".split()
)
_PERSON = {
    **dict.fromkeys("i me my mine im ive ill id myself".split(), "p1"),
    **dict.fromkeys("we us our ours were weve well wed ourselves".split(), "p1pl"),
    **dict.fromkeys("you your yours youre youve youll youd yourself".split(), "p2"),
    **dict.fromkeys("he him his she her hers they them their theirs".split(), "p3"),
}


def guard_signature(text: str) -> str:
    """Polarity, numbers, grammatical person and critical words (days, times, channels,
    qualifiers) of an utterance; a semantic hit requires equal signatures."""
    tokens: list[str] = []
    for tok in normalise_text(text).split():
        if tok.endswith("n't"):  # can't → ca + not, won't → wo + not
            tokens += [tok[:-3], "not"]
        elif "'" in tok:  # what's → what, we'll → we, i'm → i
            tokens.append(tok.split("'", 1)[0])
        else:
            tokens.append(tok)
    negated = sum(t in _NEGATIONS for t in tokens) % 2
    numbers = sorted(_NUMBER_WORDS.get(t, t) for t in tokens if t.isdigit() or t in _NUMBER_WORDS)
    critical: set[str] = set()
    for i, tok in enumerate(tokens):
        nxt = tokens[i + 1] if i + 1 < len(tokens) else ""
        if tok in _TIME_QUALIFIERS and nxt in _TIME_NOUNS:
            critical.add(f"{tok}_{nxt}")
        elif tok in _CRITICAL:
            critical.add(tok)
        elif tok in _PERSON:
            critical.add(_PERSON[tok])
    return f"{'neg' if negated else 'pos'}|{','.join(numbers)}|{','.join(sorted(critical))}"


# --- what may be stored -------------------------------------------------------------------

_FORMATTER = string.Formatter()
_FIELD_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_DIGIT_RUN = re.compile(r"\d{3,}")
_EMAIL = re.compile(r"\b[\w.+-]+@[\w-]+\.[\w.]+\b")
_DATE = re.compile(r"\b\d{1,2}[/-]\d{1,2}([/-]\d{2,4})?\b")
_MONEY = re.compile(r"[$€£]\s?\d")


def template_fields(template: str) -> list[str]:
    """Placeholder names in a reply template; raises ValueError on malformed placeholders."""
    names: list[str] = []
    for _literal, field, spec, conversion in _FORMATTER.parse(template):
        if field is None:
            continue
        if not _FIELD_NAME.match(field) or spec or conversion:
            raise ValueError(f"template placeholder {{{field}}} must be a bare field name")
        names.append(field)
    return names


def template_refusal(
    template: str,
    call_values: dict[str, Any] | None = None,
    allowed_fields: list[str] | None = None,
) -> str | None:
    """Why a reply template must not be cached, or None when it may be.

    Refused when: a placeholder is malformed or not an allowed field; the literal text (outside
    placeholders) contains any of this call's data values (the reply used a call-specific fact
    instead of a template field); or it contains things that are call-specific by nature:
    runs of 3+ digits (IDs, phone numbers, amounts), dates, money amounts, e-mail addresses.
    """
    if not template.strip():
        return "empty template"
    try:
        fields = template_fields(template)
    except ValueError as exc:
        return str(exc)
    if allowed_fields is not None:
        unknown = sorted(set(fields) - set(allowed_fields))
        if unknown:
            return f"template uses fields that are not call data: {unknown}"
    literal = " ".join(lit for lit, *_ in _FORMATTER.parse(template))
    for pattern, what in ((_DIGIT_RUN, "digit run"), (_DATE, "date"), (_MONEY, "money"), (_EMAIL, "e-mail")):
        if pattern.search(literal):
            return f"template literal text contains a {what}"
    norm_literal = f" {normalise_text(literal)} "
    for name, value in (call_values or {}).items():
        norm_value = normalise_text(str(value)) if value is not None else ""
        if len(norm_value) >= 2 and f" {norm_value} " in norm_literal:
            return f"template literal text contains the value of call field {name!r}"
    return None


def render_template(template: str, data: dict[str, Any]) -> str:
    """Fill a cached template with this call's data; a missing field is a clear error."""
    missing = [f for f in template_fields(template) if f not in data]
    if missing:
        raise KeyError(f"cached template needs call fields {missing} that this call does not have")
    return template.format(**{f: data[f] for f in template_fields(template)})


MIN_TEMPLATE_VALUE_CHARS = 3


def templatize(reply: str, values: dict[str, Any]) -> str:
    """Replace this call's data values in an LLM reply with ``{field}`` placeholders, longest
    first, so the cached template carries no caller's data."""
    out = reply
    for name, value in sorted(values.items(), key=lambda kv: -len(str(kv[1]))):
        text = str(value)
        if len(text) >= MIN_TEMPLATE_VALUE_CHARS and text in out:
            out = out.replace(text, "{" + name + "}")
    return out
