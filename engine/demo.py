"""Scripted conversations through both shipped schemas, with per-stage timings.

Typed counterpart lines go in; agent lines, captured slots and state transitions come out.
Run with ``python -m engine.demo`` (``make run``). Pure engine: no models, no Ray.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from pathlib import Path

from engine.conversation import Conversation
from engine.schema_loader import SchemaRegistry

ROOT = Path(__file__).resolve().parent.parent

SCRIPTS: dict[str, tuple[dict[str, str], list[str]]] = {
    "prior_auth": (
        {
            "patient_name": "Jane Doe",
            "date_of_birth": "1980-01-15",
            "member_id": "XKM449812",
            "insurer": "Blue Cross",
            "cpt_code": "99213",
            "provider_name": "Dr. Smith",
            "provider_npi": "1234567893",
        },
        [
            "Thank you for calling Blue Cross provider services, this is Sarah, how can I help?",
            "One moment, let me pull that up.",
            "Okay, I found the member.",
            "Let me check. It's approved.",
            "Sure, the reference number is P A 7 7 3 4 2 2 9 1.",
            "It was approved on March 3rd, 2025.",
            "Yes, that's correct.",
        ],
    ),
    "sales_qualification": (
        {"lead_name": "Tom Baker", "company": "Acme Logistics"},
        [
            "Who is this?",
            "Sure, I have a couple minutes.",
            "Honestly we keep double booking our agents and it's all manual spreadsheets.",
            "We have about fifty thousand dollars set aside.",
            "We'd want something this quarter.",
            "Yes, I make the call on this.",
            "How about next Tuesday at 2 pm?",
            "Yes that works.",
        ],
    ),
}


async def run_call(registry: SchemaRegistry, name: str) -> None:
    schema = registry.get(name)
    call_data, lines = SCRIPTS[name]
    print(f"\n=== {name} v{schema.version}: load+compile {schema.timings_ms['total_ms']:.1f} ms ===")
    t0 = time.perf_counter()
    call = Conversation.start(schema, f"demo-{name}", call_data)
    start_ms = (time.perf_counter() - t0) * 1000
    print(f"call start (validate + precompute spoken forms): {start_ms:.3f} ms")
    for line in call.opening().say:
        print(f"  AGENT  {line}")
        call.record_agent(line)
    turn_ms: list[float] = []
    for line in lines:
        print(f"  CALLER {line}")
        t1 = time.perf_counter()
        plan = await call.take_turn(line)
        turn_ms.append((time.perf_counter() - t1) * 1000)
        nlu = plan.nlu
        assert nlu is not None
        moved = f"{plan.previous_state} -> {plan.state}" if plan.transitioned else f"stay in {plan.state}"
        print(
            f"         [{moved}; intent={nlu.intent} ({nlu.confidence:.2f}); "
            f"captured={sorted(nlu.captured)}; nlu {plan.timings_ms['nlu_ms']:.3f} ms, "
            f"transition+render {plan.timings_ms['transition_ms']:.3f} ms]"
        )
        for said in plan.say:
            print(f"  AGENT  {said}")
            call.record_agent(said)
        if plan.needs_llm:
            print("  AGENT  (an LLM reply in this state; the call path adds it)")
        if plan.terminal:
            break
    state = call.state
    print(f"outcome: {state.outcome}; slots captured: {sorted(state.slots)}")
    print(
        f"turns: {len(turn_ms)}, per-turn engine time median {statistics.median(turn_ms):.3f} ms, "
        f"max {max(turn_ms):.3f} ms; snapshot {len(state.to_snapshot())} bytes"
    )


def main() -> None:
    registry = SchemaRegistry.from_directory(ROOT / "schemas")
    for name in SCRIPTS:
        asyncio.run(run_call(registry, name))


if __name__ == "__main__":
    main()
