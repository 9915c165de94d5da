"""What a finished call means for its row: the result class, and whether and when to dial again."""

from __future__ import annotations

from typing import Any

from actors.campaigns.models import RETRYABLE, Outcome, Retries, RetryRule

_BY_END_REASON = {
    "twilio:no-answer": Outcome.NO_ANSWER,
    "twilio:busy": Outcome.BUSY,
    "twilio:failed": Outcome.FAILED,
    "twilio:canceled": Outcome.FAILED,
    "dial_failed": Outcome.FAILED,
}


def result_of(record: dict[str, Any]) -> Outcome:
    """The result class of a call record (its end reason, and who answered when it was heard)."""
    reason = str(record.get("end_reason") or "")
    if reason in _BY_END_REASON:
        return _BY_END_REASON[reason]
    answered = record.get("answered") or {}
    who = answered.get("answered_by") if isinstance(answered, dict) else None
    if who == "voicemail":
        left = str(record.get("outcome") or "") == Outcome.VOICEMAIL_LEFT
        return Outcome.VOICEMAIL_LEFT if left else Outcome.VOICEMAIL
    if who == "silence" or record.get("outcome") == "no_answer":
        return Outcome.NO_ANSWER
    if who == "fax":
        return Outcome.FAILED
    return Outcome.COMPLETED


def rule_for(retries: Retries, result: Outcome) -> RetryRule | None:
    if result not in RETRYABLE:
        return None
    rule: RetryRule = getattr(retries, result.value)
    return rule


def retry_at(retries: Retries, result: Outcome, attempt: int, now: float) -> float | None:
    """When to dial the row again after ``attempt`` ended with ``result``; None: never."""
    rule = rule_for(retries, result)
    if rule is None or attempt >= rule.max_attempts:
        return None
    return now + rule.spacing_s


def cost_of(record: dict[str, Any]) -> float:
    performance = record.get("performance") or {}
    try:
        return float(performance.get("cost_usd") or 0.0) if isinstance(performance, dict) else 0.0
    except (TypeError, ValueError):
        return 0.0
