"""Pacing arithmetic: how many dials may start now, and when the next one may."""

from __future__ import annotations

from actors.campaigns.models import Pacing


def spacing_s(pacing: Pacing) -> float:
    """Seconds between two dial starts of one campaign."""
    return 60.0 / pacing.calls_per_minute


def next_dial_at(pacing: Pacing, last_dial_at: float) -> float:
    return last_dial_at + spacing_s(pacing) if last_dial_at > 0 else 0.0


def free_lines(pacing: Pacing, in_flight: int) -> int:
    return max(0, pacing.max_concurrent - in_flight)


def expected_minutes(pacing: Pacing, rows: int, call_s: float) -> float:
    """The least time ``rows`` single-attempt dials take: the rate or the lines, whichever binds."""
    by_rate = rows / pacing.calls_per_minute
    by_lines = rows * call_s / 60.0 / pacing.max_concurrent
    return max(by_rate, by_lines)
