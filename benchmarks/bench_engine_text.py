"""Figures for the engine's text hot paths; prints numbers, never fails on timings.

- per-call precompute of spoken forms for a prior-auth call's data (budget < 1 ms per call)
- SentenceChunker throughput on an LLM-like token stream (tokens/s)

Run from the repository root: python -m benchmarks.bench_engine_text [--calls N] [--replies N]
(or PYTHONPATH=. python benchmarks/bench_engine_text.py).
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import time

from engine.spoken import SPOKEN_RULES
from engine.voice_text import SentenceChunker, shape_for_voice

# One prior-auth call's data and the rule each field is read with (as a schema would name them).
PRIOR_AUTH_CALL: dict[str, tuple[str, str]] = {
    "patient_name": ("name", "  maria   GONZALEZ-ortiz "),
    "date_of_birth": ("date", "1957-03-22"),
    "member_id": ("nato", "XJH-482-917-350"),
    "provider_npi": ("npi", "1234567893"),
    "cpt_code": ("cpt", "0001U"),
    "callback_phone": ("phone", "+1 (555) 123-4567"),
    "billed_amount": ("currency", "$1,250.50"),
    "appointment_time": ("time", "2:30 pm"),
    "payer": ("plain", "Aetna"),
}

REPLY = (
    "Thanks for holding. I have the member's details here: the date of birth is March 22nd, 1957, "
    "and the member ID is on file. **Prior authorization** is required for CPT 0001U & the request "
    "was received on 11/02. Dr. Patel's office should expect a decision within 5-7 business days, "
    "e.g. by next Friday. You can also check the status at the provider portal; the reference number "
    "is PA-2291. Is there anything else I can help you with today?"
)


def precompute(call: dict[str, tuple[str, str]]) -> dict[str, str]:
    return {field: SPOKEN_RULES[rule](value) for field, (rule, value) in call.items()}


def percentile(sorted_values: list[float], q: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def bench_precompute(calls: int) -> None:
    for _ in range(200):  # warm-up (regex caches, branch predictors)
        precompute(PRIOR_AUTH_CALL)
    samples: list[float] = []
    for _ in range(calls):
        t0 = time.perf_counter_ns()
        precompute(PRIOR_AUTH_CALL)
        samples.append((time.perf_counter_ns() - t0) / 1000)
    samples.sort()
    print(f"spoken-forms precompute, {len(PRIOR_AUTH_CALL)} fields/call, {calls} calls:")
    print(f"  median {statistics.median(samples):8.1f} µs   p95 {percentile(samples, 0.95):8.1f} µs")
    for field, (rule, value) in PRIOR_AUTH_CALL.items():
        fn = SPOKEN_RULES[rule]
        per: list[float] = []
        for _ in range(min(calls, 2000)):
            t0 = time.perf_counter_ns()
            fn(value)
            per.append((time.perf_counter_ns() - t0) / 1000)
        per.sort()
        med, p95 = statistics.median(per), percentile(per, 0.95)
        print(f"    {field:<17} {rule:<9} median {med:6.1f} µs   p95 {p95:6.1f} µs")


def bench_chunker(replies: int) -> None:
    tokens = re.findall(r"\S{1,4}|\s+", REPLY)  # ~4-character pieces, split mid-word like BPE
    chunker = SentenceChunker()
    per_reply: list[float] = []
    chunks: list[str] = []
    for _ in range(replies):
        t0 = time.perf_counter_ns()
        chunks = []
        for token in tokens:
            chunks.extend(chunker.feed(token))
        chunks.extend(chunker.flush())
        per_reply.append((time.perf_counter_ns() - t0) / 1000)
    per_reply.sort()
    median = statistics.median(per_reply)
    print(f"SentenceChunker, {len(tokens)} tokens/reply ({len(REPLY)} chars), {replies} replies:")
    print(
        f"  median {median:8.1f} µs/reply   p95 {percentile(per_reply, 0.95):8.1f} µs/reply   "
        f"{len(tokens) / (median / 1e6):,.0f} tokens/s   {median / len(tokens):.2f} µs/token (median)"
    )
    print(f"  {len(chunks)} chunks: {chunks}")

    samples: list[float] = []
    for _ in range(replies):
        t0 = time.perf_counter_ns()
        shape_for_voice(REPLY, max_words=40)
        samples.append((time.perf_counter_ns() - t0) / 1000)
    samples.sort()
    med, p95 = statistics.median(samples), percentile(samples, 0.95)
    print(f"shape_for_voice(reply, max_words=40): median {med:.1f} µs   p95 {p95:.1f} µs")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--replies", type=int, default=500)
    args = parser.parse_args()
    print(f"python {sys.version.split()[0]}")
    bench_precompute(args.calls)
    bench_chunker(args.replies)


if __name__ == "__main__":
    main()
