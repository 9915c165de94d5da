"""The front door's bounds on call data (``POST /calls`` and every campaign row): field count,
field names, printable bounded values. Problems name the field, never the value."""

from __future__ import annotations

from typing import Any

from common.settings import LimitsSettings
from edge.text_policy import text_problem


def call_data_problems(call_data: dict[str, Any], limits: LimitsSettings) -> dict[str, str]:
    problems: dict[str, str] = {}
    if len(call_data) > limits.max_fields:
        problems["*"] = f"more than {limits.max_fields} fields"
    for name, value in list(call_data.items())[: limits.max_fields]:
        if len(name) > 64 or text_problem(name, 64):
            problems[name[:64]] = "is not a field name"
        elif isinstance(value, str) and (problem := text_problem(value, limits.max_field_chars)):
            problems[name] = problem
    return problems
