"""Calling hours by time zone (DST included), pacing arithmetic, row validation errors."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from actors.campaigns.hours import inside, next_opening, zones_for
from actors.campaigns.models import CallingHours, Outcome, Pacing, Retries
from actors.campaigns.outcomes import result_of, retry_at
from actors.campaigns.pacing import expected_minutes, free_lines, next_dial_at, spacing_s
from common.settings import VoxraySettings
from edge.campaign_api import plan_rows
from engine.schema_loader import SchemaRegistry

NINE_TO_EIGHT = CallingHours(start="09:00", end="20:00")


def ts(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def test_new_york_number_follows_new_york_time() -> None:
    zones = zones_for("+12125550123", "Europe/London")
    assert [z.key for z in zones] == ["America/New_York"]
    assert inside(NINE_TO_EIGHT, zones, ts("2026-07-01T14:00:00"))  # 10:00 EDT
    assert not inside(NINE_TO_EIGHT, zones, ts("2026-07-01T12:30:00"))  # 08:30 EDT
    assert next_opening(NINE_TO_EIGHT, zones, ts("2026-07-01T12:30:00")) == ts("2026-07-01T13:00:00")


def test_opening_moves_with_daylight_saving() -> None:
    zones = zones_for("+12125550123", "UTC")
    # the night DST starts (8 March 2026): 09:00 EDT is 13:00 UTC, the day before 14:00 UTC
    assert next_opening(NINE_TO_EIGHT, zones, ts("2026-03-08T03:00:00")) == ts("2026-03-08T13:00:00")
    assert next_opening(NINE_TO_EIGHT, zones, ts("2026-03-07T02:00:00")) == ts("2026-03-07T14:00:00")


def test_a_window_in_the_spring_forward_gap_opens_after_it() -> None:
    early = CallingHours(start="02:30", end="05:00")
    zones = zones_for("+12125550123", "UTC")
    opening = next_opening(early, zones, ts("2026-03-08T05:00:00"))  # 00:00 EST
    assert opening == ts("2026-03-08T07:30:00")  # 03:30 EDT, the first real minute after 02:30


def test_number_spanning_zones_uses_the_most_restrictive() -> None:
    zones = zones_for("+12125550123", "UTC") + zones_for("+12135550123", "UTC")  # New York + Los Angeles
    # 10:00 in New York is 07:00 in Los Angeles: not yet; the common window opens at 09:00 LA
    assert not inside(NINE_TO_EIGHT, zones, ts("2026-07-01T14:00:00"))
    assert next_opening(NINE_TO_EIGHT, zones, ts("2026-07-01T14:00:00")) == ts("2026-07-01T16:00:00")


def test_weekday_only_window_skips_the_weekend() -> None:
    weekdays = CallingHours(start="09:00", end="17:00", days=[0, 1, 2, 3, 4])
    zones = zones_for("+442079460000", "UTC")
    saturday_noon = ts("2026-07-04T11:00:00")
    assert next_opening(weekdays, zones, saturday_noon) == ts("2026-07-06T08:00:00")  # Monday 09:00 BST


def test_bad_windows_are_refused() -> None:
    with pytest.raises(ValueError, match="before"):
        CallingHours(start="20:00", end="09:00")
    with pytest.raises(ValueError, match="HH:MM"):
        CallingHours(start="9am", end="20:00")


def test_pacing_arithmetic() -> None:
    pacing = Pacing(max_concurrent=10, calls_per_minute=30)
    assert spacing_s(pacing) == 2.0
    assert next_dial_at(pacing, 100.0) == 102.0
    assert next_dial_at(pacing, 0.0) == 0.0
    assert free_lines(pacing, 7) == 3 and free_lines(pacing, 12) == 0
    assert expected_minutes(pacing, 300, call_s=60) == 30.0  # the rate binds
    assert expected_minutes(Pacing(max_concurrent=2, calls_per_minute=30), 300, call_s=60) == 150.0


def test_results_and_retries() -> None:
    retries = Retries()
    assert result_of({"end_reason": "twilio:busy"}) == Outcome.BUSY
    assert (
        result_of({"end_reason": "completed", "answered": {"answered_by": "voicemail"}}) == Outcome.VOICEMAIL
    )
    left = {"end_reason": "completed", "answered": {"answered_by": "voicemail"}, "outcome": "voicemail_left"}
    assert result_of(left) == Outcome.VOICEMAIL_LEFT
    assert result_of({"end_reason": "completed", "outcome": "qualified"}) == Outcome.COMPLETED
    assert retry_at(retries, Outcome.BUSY, 1, 1000.0) == 1600.0
    assert retry_at(retries, Outcome.BUSY, 3, 1000.0) is None
    assert retry_at(retries, Outcome.COMPLETED, 1, 1000.0) is None


def test_rows_are_validated_with_errors_per_row() -> None:
    settings = VoxraySettings()
    schema = SchemaRegistry.shared(settings.schemas.directory).get("sales_qualification")
    rows = [
        {"lead_name": "Dev Example", "company": "Example Co", "to": "+12125550147"},
        {"company": "Example Co", "to": "+12125550147"},
        {"lead_name": "Dev Example", "company": "Example Co", "to": "555"},
        {"lead_name": "Dev Example", "company": "Example\x00Co", "to": "+12125550147"},
        {"lead_name": "Dev Example", "company": "Example Co"},
    ]
    valid, errors = plan_rows(schema, rows, simulate=False, settings=settings)
    assert list(valid) == [1]
    assert valid[1]["to"] == "+12125550147"
    by_row = {(e["row"], e["field"]) for e in errors}
    assert by_row == {(2, "lead_name"), (3, "to"), (4, "company"), (5, "to")}
    assert all("Example" not in e["message"] for e in errors)  # never the value
    valid, errors = plan_rows(schema, [rows[4]], simulate=True, settings=settings)
    assert list(valid) == [1] and not errors
