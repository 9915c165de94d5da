"""Engine figures against the README's budgets: prints medians and p95, never fails on time.

Run: ``python -m benchmarks.bench_engine``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from engine.call_state import CallState
from engine.conversation import Conversation
from engine.nlu.intents import LexicalIntentScorer, features
from engine.nlu.understand import TurnContext, Understander
from engine.schema_loader import CompiledSchema, load_schema
from loadtests.nlu_eval import golden_path, load_set

ROOT = Path(__file__).resolve().parent.parent
PATIENT = {
    "patient_name": "Jane Doe",
    "date_of_birth": "1980-01-15",
    "member_id": "XKM449812",
    "insurer": "Blue Cross",
    "cpt_code": "99213",
    "provider_name": "Dr. Smith",
    "provider_npi": "1234567893",
    "callback_number": "(555) 123-4567",
}


def timed(fn: Callable[[], object], repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000)
    return out


def show(label: str, samples_ms: list[float], budget: str) -> None:
    ordered = sorted(samples_ms)
    p95 = ordered[int(0.95 * (len(ordered) - 1))]
    print(f"{label:<44} median {statistics.median(ordered):9.4f} ms   p95 {p95:9.4f} ms   budget {budget}")


def main() -> None:
    print(f"engine benchmark ({time.strftime('%Y-%m-%d')}, this machine)")
    for name in ("prior_auth", "sales_qualification"):
        path = ROOT / "schemas" / name
        show(f"schema load+validate+compile [{name}]", timed(lambda p=path: load_schema(p), 30), "< 100 ms")  # type: ignore[misc]

    schema = load_schema(ROOT / "schemas" / "prior_auth")
    data = schema.validate_call_data(PATIENT)
    show("call data validate [prior_auth]", timed(lambda: schema.validate_call_data(PATIENT), 2000), "-")
    show("precompute spoken forms per call", timed(lambda: schema.precompute(data), 2000), "< 1 ms")

    values = schema.precompute(data)
    longest = max(schema.states.values(), key=lambda s: len(s.say.source) if s.say else 0)
    assert longest.say is not None
    show(f"render say [{longest.name}]", timed(lambda: longest.say.render(values), 5000), "< 0.2 ms")  # type: ignore[union-attr]
    show("render system prompt", timed(lambda: schema.system_prompt.render(values), 5000), "< 0.2 ms")

    understander = Understander()
    nlu_ms: list[float] = []
    turn_ms: list[float] = []
    for golden in ("prior_auth", "sales_qualification"):
        g_schema, today, cases = load_set(golden_path(golden))

        async def run_nlu(
            g_schema: CompiledSchema = g_schema, cases: list[dict[str, Any]] = cases, today: dt.date = today
        ) -> None:
            # Example features are computed once per schema in a live host; caller lines are new
            # every time, so the utterance cache is cleared before each pass.
            for _ in range(5):
                features.cache_clear()
                for state in g_schema.states.values():
                    LexicalIntentScorer().score("", state.intents)
                for case in cases:
                    state = g_schema.states[case["state"]]
                    t0 = time.perf_counter()
                    await understander.understand(
                        case["text"], state.intents, state.slots, {}, TurnContext(today=today)
                    )
                    nlu_ms.append((time.perf_counter() - t0) * 1000)

        asyncio.run(run_nlu())
    show(f"NLU capture+detect local ({len(nlu_ms)} turns)", nlu_ms, "p95 < 15 ms")

    lines = [
        "This is Sarah.",
        "Found it.",
        "It's approved.",
        "Reference is PA 7734.",
        "No date yet.",
        "Correct.",
    ]

    async def run_calls() -> None:
        for i in range(200):
            call = Conversation.start(schema, f"bench-{i}", PATIENT)
            for line in lines:
                t0 = time.perf_counter()
                await call.take_turn(line)
                turn_ms.append((time.perf_counter() - t0) * 1000)

    asyncio.run(run_calls())
    show("whole turn (NLU + transition + render)", turn_ms, "state transition < 1 ms")

    call = Conversation.start(schema, "bench-snap", PATIENT)
    asyncio.run(call.take_turn("This is Sarah."))
    blob = call.state.to_snapshot()
    show(
        f"snapshot round trip ({len(blob)} bytes)",
        timed(lambda: CallState.from_snapshot(call.state.to_snapshot()), 2000),
        "-",
    )


if __name__ == "__main__":
    main()
