"""Values of ``serve run module:builder key=value`` arguments, which Serve passes as strings."""

from __future__ import annotations

from typing import Any


def parse_cli_value(value: str) -> Any:
    """'true'/'false' → bool, then int, then float; anything else stays a string."""
    if value.lower() in ("true", "false"):
        return value.lower() == "true"
    for cast in (int, float):
        try:
            return cast(value)
        except ValueError:
            pass
    return value
