"""A campaign's settings and its rows' states (pydantic: they cross HTTP, Redis and Ray)."""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

HHMM = re.compile(r"\A([01][0-9]|2[0-3]):[0-5][0-9]\Z")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Pacing(Strict):
    max_concurrent: int = Field(5, ge=1, le=500, description="Calls of this campaign live at once.")
    calls_per_minute: float = Field(30.0, gt=0, le=600, description="New dials per minute at most.")


class RetryRule(Strict):
    max_attempts: int = Field(ge=1, le=10, description="Dials of a row that ends so, the first included.")
    spacing_s: float = Field(ge=0, le=7 * 24 * 3600, description="Wait before the next attempt.")


class Retries(Strict):
    """Per result: how often a row is dialled again and how long after."""

    no_answer: RetryRule = RetryRule(max_attempts=3, spacing_s=3600)
    busy: RetryRule = RetryRule(max_attempts=3, spacing_s=600)
    voicemail: RetryRule = RetryRule(max_attempts=2, spacing_s=4 * 3600)
    voicemail_left: RetryRule = RetryRule(max_attempts=1, spacing_s=0)
    failed: RetryRule = RetryRule(max_attempts=2, spacing_s=900)


class CallingHours(Strict):
    """A daily window in the callee's local time (every zone of the number must be inside it)."""

    start: str = Field("09:00", description="HH:MM local time, first minute a dial may start.")
    end: str = Field("20:00", description="HH:MM local time, no dial at or after it.")
    days: list[int] = Field(
        default_factory=lambda: [0, 1, 2, 3, 4, 5, 6], description="Weekdays allowed, 0 = Monday."
    )

    @model_validator(mode="after")
    def _window(self) -> CallingHours:
        if not HHMM.match(self.start) or not HHMM.match(self.end):
            raise ValueError("calling hours are HH:MM, 00:00 to 23:59")
        if self.start >= self.end:
            raise ValueError("calling hours: 'start' must be before 'end' (same day)")
        if not self.days or any(d < 0 or d > 6 for d in self.days):
            raise ValueError("calling hours: 'days' are 0 (Monday) to 6 (Sunday), at least one")
        return self

    def within(self, bounds: CallingHours) -> bool:
        return bounds.start <= self.start and self.end <= bounds.end and set(self.days) <= set(bounds.days)


class CampaignSpec(Strict):
    """What the runner needs to dial a campaign (kept in Redis; never holds row data)."""

    campaign_id: str
    tenant: str
    schema_name: str
    name: str = ""
    simulate: bool = False
    persona: str = "insurance_rep"
    pacing: Pacing = Pacing()
    retries: Retries = Retries()
    hours: CallingHours = CallingHours()
    default_timezone: str = Field("America/New_York", description="Zone of a simulated row without a number.")
    budget_usd: float | None = Field(None, ge=0)
    created_at: float = 0.0
    rows: int = 0


class RowState(StrEnum):
    QUEUED = "queued"  # waiting for its due time (first dial or a retry)
    DIALLING = "dialling"  # claimed with an attempt number: starting, or its call is live
    DONE = "done"  # finished: see its outcome
    SKIPPED = "skipped"  # never dialled again: do-not-call, or the campaign was cancelled
    FAILED = "failed"  # out of attempts, or a start that cannot be known


class Outcome(StrEnum):
    COMPLETED = "completed"  # the call ran (the schema's outcome is on the record)
    NO_ANSWER = "no_answer"
    BUSY = "busy"
    VOICEMAIL = "voicemail"
    VOICEMAIL_LEFT = "voicemail_left"
    FAILED = "failed"
    DO_NOT_CALL = "do_not_call"
    START_UNKNOWN = "start_unknown"  # the start may have happened: never dialled again
    CANCELLED = "cancelled"


RETRYABLE: frozenset[Outcome] = frozenset(
    {Outcome.NO_ANSWER, Outcome.BUSY, Outcome.VOICEMAIL, Outcome.VOICEMAIL_LEFT, Outcome.FAILED}
)

CampaignStatus = Literal["running", "paused", "cancelled", "done", "budget_reached"]


class Row(BaseModel):
    """One row's progress (the per-row state hash holds it as JSON)."""

    state: RowState = RowState.QUEUED
    attempt: int = 0
    call_id: str | None = None
    outcome: str | None = None  # an Outcome, or the schema's own outcome of a completed call
    result: Outcome | None = None
    end_reason: str | None = None
    due_at: float = 0.0
    deferred: int = 0  # times it came due outside calling hours and was moved to the next window
