"""Runs the local NLU over a golden set and scores it (shared by the test and the benchmark)."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from engine.nlu.understand import Understander
from engine.schema_loader import CompiledSchema, load_schema

ROOT = Path(__file__).resolve().parent.parent
GOLDEN_DIR = ROOT / "tests" / "golden"


@dataclass
class GoldenReport:
    schema: str
    cases: int = 0
    intent_ok: int = 0
    slots_ok: int = 0
    both_ok: int = 0
    reconciles: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    misses: list[str] = field(default_factory=list)

    @property
    def accuracy(self) -> float:
        return self.both_ok / self.cases


def load_golden(name: str) -> tuple[CompiledSchema, dt.date, list[dict[str, Any]]]:
    data = yaml.safe_load((GOLDEN_DIR / f"{name}.yaml").read_text())
    schema = load_schema(ROOT / "schemas" / data["schema"])
    return schema, dt.date.fromisoformat(data["today"]), data["cases"]


def evaluate(name: str, understander: Understander | None = None) -> GoldenReport:
    schema, today, cases = load_golden(name)
    understander = understander or Understander()
    report = GoldenReport(schema=name)

    async def run() -> None:
        for case in cases:
            state = schema.states[case["state"]]
            t0 = time.perf_counter()
            filled = {k: str(v) for k, v in (case.get("filled") or {}).items()}
            ahead = {n: s for n, s in state.lookahead_slots.items() if n not in filled}
            wanted = {**ahead, **state.slots}  # as Conversation.take_turn asks
            result = await understander.understand(
                case["text"], state.intents, wanted, filled, today=today, lookahead=frozenset(ahead)
            )
            report.latencies_ms.append((time.perf_counter() - t0) * 1000)
            expected_slots = {k: str(v) for k, v in (case.get("slots") or {}).items()}
            intent_ok = result.intent == case["intent"]
            slots_ok = result.captured == expected_slots
            report.cases += 1
            report.intent_ok += intent_ok
            report.slots_ok += slots_ok
            report.both_ok += intent_ok and slots_ok
            report.reconciles += result.reconciled
            if not (intent_ok and slots_ok):
                report.misses.append(
                    f"[{case['state']}] {case['text']!r}: intent {result.intent} (want {case['intent']}), "
                    f"slots {result.captured} (want {expected_slots})"
                )

    asyncio.run(run())
    return report
