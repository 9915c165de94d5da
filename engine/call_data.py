"""Validation and normalisation of the call data a call starts with.

Messages name the field and what is wrong; values of PII fields are never echoed.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from engine.schema_errors import CallDataError
from engine.schema_model import CallDataField
from engine.spoken import npi_is_valid

_NAME_RE = re.compile(r"^[^\W\d_][\w .,'-]{0,99}$", re.UNICODE)
_ID_RE = re.compile(r"^[A-Z0-9]{3,32}$")
_CPT_RE = re.compile(r"^\d{4}[0-9FTU]$")
_TIME_RE = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")


def _parse_date(text: str) -> dt.date:
    for fmt in ("%Y-%m-%d", "%m/%d/%Y"):
        try:
            return dt.datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    raise ValueError("is not a valid date (use YYYY-MM-DD or MM/DD/YYYY)")


def _normalise(spec: CallDataField, raw: Any) -> str:
    if isinstance(raw, bool) or not isinstance(raw, str | int | float):
        raise ValueError(f"must be a string, got {type(raw).__name__}")
    text = str(raw).strip()
    if not text:
        raise ValueError("is empty")
    kind = spec.type
    if kind == "name":
        text = " ".join(text.split())
        if not _NAME_RE.match(text):
            raise ValueError("is not a name (letters, spaces, hyphens and apostrophes)")
    elif kind == "date":
        text = _parse_date(text).isoformat()
    elif kind == "id":
        text = re.sub(r"[\s-]", "", text).upper()
        if not _ID_RE.match(text):
            raise ValueError("must be 3-32 letters and digits")
    elif kind == "npi":
        text = re.sub(r"[\s-]", "", text)
        if not (text.isdigit() and len(text) == 10):
            raise ValueError("must be 10 digits")
        if not npi_is_valid(text):
            raise ValueError("fails the NPI check digit")
    elif kind == "cpt":
        text = text.upper()
        if not _CPT_RE.match(text):
            raise ValueError("must be a 5-character CPT code (4 digits then a digit or F/T/U)")
    elif kind == "phone":
        digits = re.sub(r"\D", "", text)
        if len(digits) == 11 and digits.startswith("1"):
            digits = digits[1:]
        if len(digits) != 10:
            raise ValueError("must be a 10-digit US number (optionally +1)")
        text = "+1" + digits
    elif kind in ("currency", "number"):
        try:
            number = Decimal(text.replace("$", "").replace(",", ""))
        except InvalidOperation as exc:
            raise ValueError("is not a number") from exc
        if not number.is_finite():
            raise ValueError("is not a finite number")
        text = str(number)
    elif kind == "time":
        if not _TIME_RE.match(text):
            raise ValueError("must be a 24-hour time HH:MM")
    elif kind == "enum":
        allowed = spec.values or []
        if text not in allowed:
            raise ValueError(f"must be one of {allowed}")
    if spec.pattern and not re.fullmatch(spec.pattern, text):
        raise ValueError(f"does not match the pattern {spec.pattern}")
    return text


def validate_call_data(
    schema_name: str, fields: Mapping[str, CallDataField], data: Mapping[str, Any]
) -> dict[str, str]:
    """Return normalised call data or raise CallDataError naming every bad field."""
    problems: dict[str, str] = {}
    out: dict[str, str] = {}
    for name in data:
        if name not in fields:
            problems[name] = "is not a field of this schema"
    for name, spec in fields.items():
        raw = data.get(name)
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            if spec.default is not None:
                out[name] = spec.default
            elif spec.required:
                problems[name] = "is required"
            continue
        try:
            out[name] = _normalise(spec, raw)
        except ValueError as exc:
            message = str(exc)
            problems[name] = message
    if problems:
        raise CallDataError(schema_name, problems)
    return out
