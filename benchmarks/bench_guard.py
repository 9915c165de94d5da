"""The reply guard's cost per sentence, against the budget (< 1 ms): prints median and p95 over
a mix of good and bad sentences, and how many of each kind it stopped. Never fails on time.

Run: ``python -m benchmarks.bench_guard``.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

from common.testing.samples import SAMPLE_CALL_DATA
from engine.call_state import CallState
from engine.conversation import Conversation
from engine.schema_loader import load_schema

ROOT = Path(__file__).resolve().parent.parent
SENTENCES = [  # what an off-script reply may hold: the first ten are fine, the rest are not
    "Sure, I can hold.",
    "Take your time, I'm not in a rush.",
    "I'm calling about a prior authorization for Jane Doe.",
    "The member ID is X-ray Kilo Mike, four four nine, eight one two.",
    "It's for CPT nine nine two one three.",
    "Thanks for checking on that for me.",
    "I can wait while the system loads.",
    "Doctor Smith's office ordered it.",
    "Could you tell me where things stand?",
    "No problem at all.",
    "The member ID is 123456.",  # invented
    "Her date of birth is February 29th, 2022.",  # invented
    "The procedure code is " + "1" * 70 + ".",  # run
    "I'm sorry, no, no, no, no, no.",  # loop
    "Great, so it's approved.",  # a fact only the rep states
]


def main() -> None:
    schema = load_schema(ROOT / "schemas" / "prior_auth")
    data = schema.validate_call_data(SAMPLE_CALL_DATA["prior_auth"])
    state = CallState("bench", schema.name, schema.version, "ask_status", data)
    convo = Conversation(schema, state)
    samples: list[float] = []
    stopped: dict[str, int] = {}
    for _ in range(200):
        for sentence in SENTENCES:
            guard = convo.reply_guard("Hang on, let me pull that up for you.")
            t0 = time.perf_counter()
            rule = guard.check(sentence)
            samples.append((time.perf_counter() - t0) * 1000)
            if rule is not None:
                stopped[str(rule)] = stopped.get(str(rule), 0) + 1
    ordered = sorted(samples)
    p95 = ordered[int(0.95 * (len(ordered) - 1))]
    print(f"reply guard, per sentence ({len(samples)} checks): median {statistics.median(ordered):.4f} ms, "
          f"p95 {p95:.4f} ms (budget < 1 ms)")  # fmt: skip
    print(f"stopped per 200 passes over {len(SENTENCES)} sentences: {dict(sorted(stopped.items()))}")


if __name__ == "__main__":
    main()
