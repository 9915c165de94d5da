"""PII call-data values out of text: ``[redacted:<field>]`` in their place.

For webhook payloads when ``webhooks.redact_pii`` is on. A field marked ``pii: true`` in its
schema is redacted in every spelling the call may have used: its value, the spoken form the
agent says (``X-ray Kilo Mike, four four nine…``), and for names each word of three letters or
more (a counterpart says "Jane" as often as "Jane Doe"). Matching ignores case and needs word
boundaries, so "Doe" goes and "Doesn't" stays.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from typing import Any

from engine.schema_loader import CompiledSchema


def pii_values(schema: CompiledSchema, call_data: Mapping[str, Any]) -> dict[str, list[str]]:
    """Field → the spellings of its value to redact (longest first), for the schema's pii fields."""
    values = schema.precompute(call_data)
    out: dict[str, list[str]] = {}
    for name in sorted(schema.pii_fields):
        raw = call_data.get(name)
        if raw is None or str(raw).strip() == "":
            continue
        forms = {
            str(raw).strip(),
            str(values.get(name) or "").strip(),
            str(values.get(f"{name}_spoken") or ""),
        }
        field = schema.spec.call_data[name]
        if field.type == "name":
            forms |= {word for word in re.split(r"[\s,]+", str(raw)) if len(word) >= 3}
        if field.type == "date":
            forms |= _date_forms(str(raw))
        out[name] = sorted((f.strip() for f in forms if f.strip()), key=len, reverse=True)
    return out


def _date_forms(iso: str) -> set[str]:
    try:
        day = dt.date.fromisoformat(iso)
    except ValueError:
        return set()
    month = day.strftime("%B")
    return {
        f"{month} {day.day}, {day.year}",
        f"{month} {day.day} {day.year}",
        f"{day.month:02d}/{day.day:02d}/{day.year}",
        f"{day.month}/{day.day}/{day.year}",
    }


class Redactor:
    def __init__(self, values: Mapping[str, list[str]]):
        self._field_of: dict[str, str] = {}
        for field, forms in values.items():
            for form in forms:
                self._field_of.setdefault(form.lower(), field)
        forms_by_length = sorted(self._field_of, key=len, reverse=True)
        self._pattern = (
            re.compile(
                r"(?<!\w)(" + "|".join(re.escape(f) for f in forms_by_length) + r")(?!\w)", re.IGNORECASE
            )
            if forms_by_length
            else None
        )

    def text(self, text: str) -> str:
        if self._pattern is None:
            return text
        return self._pattern.sub(lambda m: f"[redacted:{self._field_of[m.group(1).lower()]}]", text)

    def payload(self, value: Any) -> Any:
        """Every string in a JSON-like value, redacted (keys are kept)."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {k: self.payload(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.payload(v) for v in value]
        return value
