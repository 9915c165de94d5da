"""Per-call state: small, and serialisable to a compact versioned snapshot for Redis."""

from __future__ import annotations

import json
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

SNAPSHOT_VERSION = 1
HISTORY_WINDOW = 12
EVENT_LOG_CAP = 200


class SnapshotError(ValueError):
    pass


@dataclass
class CallState:
    call_id: str
    schema: str
    schema_version: str
    state: str
    call_data: dict[str, str]
    slots: dict[str, str] = field(default_factory=dict)
    history: deque[tuple[str, str]] = field(default_factory=lambda: deque(maxlen=HISTORY_WINDOW))
    turns_in_state: int = 0  # counted towards the state's max_turns
    asides_in_state: int = 0  # requests and acknowledgements forgiven (up to max_turns of them)
    total_turns: int = 0
    reconciles: int = 0
    llm_nlu_turns: int = 0
    outcome: str | None = None
    last_agent_line: str = ""
    events: list[dict[str, Any]] = field(default_factory=list)
    started_at: float = field(default_factory=time.time)
    contact_keys: list[str] = field(default_factory=list)  # engine/do_not_call.py: who was called
    escalated_at: int | None = None  # the turn the schema's escalation rule first held
    on_hold: bool = False  # the counterpart put the agent on hold (engine/hold.py)

    def log(self, kind: str, **detail: Any) -> None:
        """Event log entry. Never put call data values in here: it feeds logs and reports."""
        self.events.append({"t": round(time.time() - self.started_at, 3), "type": kind, **detail})
        if len(self.events) > EVENT_LOG_CAP:
            del self.events[: len(self.events) - EVENT_LOG_CAP]

    def to_snapshot(self) -> bytes:
        payload = {
            "v": SNAPSHOT_VERSION,
            "id": self.call_id,
            "sc": self.schema,
            "sv": self.schema_version,
            "st": self.state,
            "cd": self.call_data,
            "sl": self.slots,
            "h": list(self.history),
            "c": [
                self.turns_in_state,
                self.total_turns,
                self.reconciles,
                self.llm_nlu_turns,
                self.asides_in_state,
            ],
            "o": self.outcome,
            "la": self.last_agent_line,
            "e": self.events[-50:],
            "t0": self.started_at,
            "ck": self.contact_keys,
            "esc": self.escalated_at,
            "oh": self.on_hold,
        }
        return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()

    @classmethod
    def from_snapshot(cls, blob: bytes | str) -> CallState:
        try:
            data = json.loads(blob)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise SnapshotError(f"snapshot is not valid JSON: {exc}") from exc
        if not isinstance(data, dict) or data.get("v") != SNAPSHOT_VERSION:
            found = data.get("v") if isinstance(data, dict) else None
            raise SnapshotError(f"snapshot version {found!r} is not {SNAPSHOT_VERSION}")
        try:
            turns_in_state, total_turns, reconciles, llm_nlu_turns, *asides = data["c"]
            return cls(
                call_id=data["id"],
                schema=data["sc"],
                schema_version=data["sv"],
                state=data["st"],
                call_data=dict(data["cd"]),
                slots=dict(data["sl"]),
                history=deque((tuple(h) for h in data["h"]), maxlen=HISTORY_WINDOW),
                turns_in_state=turns_in_state,
                asides_in_state=asides[0] if asides else 0,
                total_turns=total_turns,
                reconciles=reconciles,
                llm_nlu_turns=llm_nlu_turns,
                outcome=data["o"],
                last_agent_line=data["la"],
                events=list(data["e"]),
                started_at=data["t0"],
                contact_keys=list(data.get("ck", [])),
                escalated_at=data.get("esc"),
                on_hold=bool(data.get("oh", False)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise SnapshotError(f"snapshot is missing or has a bad field: {exc}") from exc
