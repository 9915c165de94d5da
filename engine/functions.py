"""Pure functions a schema may run on entering a state (``on_enter: [{compute, store_as}]``).

Each takes the call's captured slots and returns a value stored as a slot.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from decimal import Decimal, InvalidOperation


def qualification_score(slots: Mapping[str, str]) -> int:
    """BANT score 0-100: budget (30), authority (25), timeline (25), need (20)."""
    score = 0
    try:
        budget = Decimal(slots.get("budget", "") or "0")
    except InvalidOperation:
        budget = Decimal(0)
    if budget >= 10_000:
        score += 30
    elif budget >= 1_000:
        score += 20
    elif budget > 0:
        score += 10
    if slots.get("decision_maker") == "yes":
        score += 25
    score += {"immediate": 25, "this_quarter": 20, "this_year": 10}.get(slots.get("timeline", ""), 0)
    if slots.get("pain"):
        score += 20
    return score


FUNCTIONS: dict[str, Callable[[Mapping[str, str]], object]] = {
    "qualification_score": qualification_score,
}
