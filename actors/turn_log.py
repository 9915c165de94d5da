"""What a call remembers of its turns: per-turn records and the performance report built from them."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any

from common.events import ReplySource, TurnDone

# Stages a turn may record (ms). stt, tts_first_audio and voice_to_voice are measured by the
# edge that holds the media socket and reported back; the rest by the call itself.
STAGES = ("stt", "nlu", "embed", "cache", "llm_ttft", "tts_first_audio", "voice_to_voice", "turn_total")


@dataclass
class TurnRecord:
    turn: int
    mode: str
    state_before: str
    state_after: str
    caller: str = ""
    agent: str = ""
    source: ReplySource = ReplySource.NONE
    stages_ms: dict[str, float] = field(default_factory=dict)
    llm: dict[str, Any] = field(default_factory=dict)
    interrupted: bool = False
    # (scope, text, template, values, model) of a reply to store in the cache once heard in full
    pending_store: tuple[Any, str, str, dict[str, Any], str] | None = None

    def done(self, terminal: bool, outcome: str | None) -> TurnDone:
        return TurnDone(
            turn=self.turn,
            caller=self.caller,
            agent=self.agent,
            source=self.source,
            state=self.state_after,
            terminal=terminal,
            outcome=outcome,
            interrupted=self.interrupted,
            stages_ms=dict(self.stages_ms),
            llm=dict(self.llm),
        )


def stage_summary(turns: list[TurnRecord]) -> dict[str, dict[str, float]]:
    summary: dict[str, dict[str, float]] = {}
    for stage in STAGES:
        values = sorted(t.stages_ms[stage] for t in turns if stage in t.stages_ms)
        if values:
            summary[stage] = {
                "count": len(values),
                "p50_ms": statistics.median(values),
                "p95_ms": values[min(len(values) - 1, int(0.95 * len(values)))],
                "max_ms": values[-1],
            }
    return summary


def turn_rows(turns: list[TurnRecord]) -> list[dict[str, Any]]:
    return [
        {
            "turn": t.turn,
            "mode": t.mode,
            "source": str(t.source),
            "state": t.state_after,
            "stages_ms": {k: round(v, 2) for k, v in t.stages_ms.items()},
            "llm": t.llm,
            "interrupted": t.interrupted,
        }
        for t in turns
    ]


def source_counts(turns: list[TurnRecord]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for t in turns:
        counts[str(t.source)] = counts.get(str(t.source), 0) + 1
    return counts
