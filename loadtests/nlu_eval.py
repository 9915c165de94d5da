"""Scores the NLU on a labelled set through the real turn path (shared by the test and the benchmark).

Each case is said to a ``Conversation`` standing in the case's state with the case's slots
already filled; the intent it detects and the slots it captures on that turn
(``TurnPlan.nlu``) are compared with the labels. A case passes when both are right.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from common.testing.samples import SAMPLE_CALL_DATA
from engine.call_state import CallState
from engine.conversation import Conversation
from engine.nlu.intents import EmbeddingIntentScorer
from engine.nlu.understand import ASK_FIELD, Understander, embedding_understander
from engine.schema_loader import CompiledSchema, load_schema

ROOT = Path(__file__).resolve().parent.parent
GOLDEN_DIR = ROOT / "tests" / "golden"


@dataclass
class NLUReport:
    schema: str
    cases: int = 0
    intent_ok: int = 0
    slots_ok: int = 0
    both_ok: int = 0
    reconciles: int = 0
    latencies_ms: list[float] = field(default_factory=list)  # the whole turn (embedding included)
    local_ms: list[float] = field(default_factory=list)  # the engine's own work
    embed_ms: list[float] = field(default_factory=list)  # waiting for the turn's vectors
    misses: list[str] = field(default_factory=list)

    @property
    def accuracy(self) -> float:
        return self.both_ok / self.cases


def load_set(path: Path) -> tuple[CompiledSchema, dt.date, list[dict[str, Any]]]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    schema = load_schema(ROOT / "schemas" / data["schema"])
    return schema, dt.date.fromisoformat(data["today"]), data["cases"]


def conversation_at(
    schema: CompiledSchema, state: str, filled: dict[str, str], today: dt.date, understander: Understander
) -> Conversation:
    """A conversation standing in ``state`` with ``filled`` slots, as if the call got there."""
    data = schema.validate_call_data(SAMPLE_CALL_DATA[schema.name])
    call = CallState(
        call_id="nlu-eval",
        schema=schema.name,
        schema_version=schema.version,
        state=state,
        call_data=data,
        slots=dict(filled),
    )
    return Conversation(schema, call, understander, today=lambda: today)


class LocalEmbedder:
    """MiniLM in this process (the deployment's own ``Embedder``), as the engine's TextEmbedder."""

    def __init__(self) -> None:
        from services.embedder import Embedder

        self.model = Embedder()

    async def embed(self, texts: list[str]) -> list[list[float]]:
        vectors: list[list[float]] = self.model.encode(texts).tolist()
        return vectors


def evaluate(
    path: Path, understander: Understander | None = None, embedder: LocalEmbedder | None = None
) -> NLUReport:
    """``embedder`` (when no ``understander`` is given) turns on the embedding intent scorer."""
    schema, today, cases = load_set(path)
    report = NLUReport(schema=schema.name)

    async def run() -> None:
        nonlocal understander
        if understander is None:
            understander = (
                await embedding_understander(schema.intent_examples, embedder) if embedder else Understander()
            )
        for case in cases:
            filled = {k: str(v) for k, v in (case.get("filled") or {}).items()}
            convo = conversation_at(schema, case["state"], filled, today, understander)
            t0 = time.perf_counter()
            plan = await convo.take_turn(case["text"])
            report.latencies_ms.append((time.perf_counter() - t0) * 1000)
            assert plan.nlu is not None
            report.local_ms.append(plan.nlu.timings_ms["local_ms"])
            if "embed_ms" in plan.nlu.timings_ms:
                report.embed_ms.append(plan.nlu.timings_ms["embed_ms"])
            assert plan.nlu is not None
            expected_slots = {k: str(v) for k, v in (case.get("slots") or {}).items()}
            intent_ok = plan.nlu.intent == case["intent"] and (
                case["intent"] != ASK_FIELD
                or (plan.nlu.asked is not None and plan.nlu.asked.field == case.get("field"))
            )
            slots_ok = slots_match(plan.nlu.captured, expected_slots)
            report.cases += 1
            report.intent_ok += intent_ok
            report.slots_ok += slots_ok
            report.both_ok += intent_ok and slots_ok
            report.reconciles += plan.nlu.reconciled
            if not (intent_ok and slots_ok):
                got = (
                    plan.nlu.intent if plan.nlu.asked is None else f"{plan.nlu.intent}:{plan.nlu.asked.field}"
                )
                want = case["intent"] if case["intent"] != ASK_FIELD else f"{ASK_FIELD}:{case.get('field')}"
                report.misses.append(
                    f"[{case['state']}] {case['text']!r}: intent {got} (want {want}), "
                    f"slots {plan.nlu.captured} (want {expected_slots})"
                )

    asyncio.run(run())
    return report


def calibrate(paths: list[Path], embedder: LocalEmbedder) -> None:
    """Cases fully right summed over ``paths`` for each (accept, certain) pair, best last."""
    understanders: dict[Path, Understander] = {}
    for path in paths:
        schema = load_set(path)[0]
        understanders[path] = asyncio.run(embedding_understander(schema.intent_examples, embedder))
    results = []
    for accept, certain in ((0.7, 0.9), (0.75, 0.9), (0.8, 0.9)):
        for agree_cosine in (0.4, 0.45, 0.5, 0.55, 0.6):
            for agree_lexical in (0.15, 0.2, 0.25, 0.3):
                right = 0
                for path, understander in understanders.items():
                    scorer = understander.scorer
                    assert isinstance(scorer, EmbeddingIntentScorer)
                    scorer.accept, scorer.certain = accept, certain
                    scorer.agree_cosine, scorer.agree_lexical = agree_cosine, agree_lexical
                    right += evaluate(path, understander).both_ok
                results.append((right, accept, certain, agree_cosine, agree_lexical))
    for right, accept, certain, agree_cosine, agree_lexical in sorted(results)[-8:]:
        print(
            f"accept {accept:.2f} certain {certain:.2f} agree cosine {agree_cosine:.2f} "
            f"lexical {agree_lexical:.2f}: {right} right"
        )


def slots_match(captured: dict[str, str], expected: dict[str, str]) -> bool:
    """Equal slots; an expected "*" (a free-text answer) matches any captured value."""
    if set(captured) != set(expected):
        return False
    return all(want == "*" or captured[name] == want for name, want in expected.items())


def golden_path(schema: str) -> Path:
    return GOLDEN_DIR / f"{schema}.yaml"


def _p50_p95(values: list[float]) -> str:
    if not values:
        return "-"
    ordered = sorted(values)
    return f"p50 {statistics.median(ordered):.2f} ms, p95 {ordered[int(0.95 * (len(ordered) - 1))]:.2f} ms"


def main() -> None:
    import argparse

    ap = argparse.ArgumentParser(description="Score the NLU on labelled sets (intent and every slot right).")
    ap.add_argument("sets", nargs="+", type=Path, help="e.g. tests/phrasing/prior_auth.dev.yaml")
    ap.add_argument("--misses", action="store_true", help="print every miss")
    ap.add_argument("--embed", action="store_true", help="score intents with MiniLM embeddings too")
    ap.add_argument(
        "--calibrate",
        action="store_true",
        help="grid-search the embedding scorer's accept/certain cosines on these sets (use dev sets only)",
    )
    args = ap.parse_args()
    embedder = LocalEmbedder() if args.embed or args.calibrate else None
    if args.calibrate:
        assert embedder is not None
        calibrate(args.sets, embedder)
        return
    for path in args.sets:
        report = evaluate(path, embedder=embedder)
        print(
            f"{path.name}: {report.both_ok}/{report.cases} = {report.accuracy:.1%} "
            f"(intent {report.intent_ok}, slots {report.slots_ok}); "
            f"local NLU {_p50_p95(report.local_ms)}; embedding {_p50_p95(report.embed_ms)} "
            f"({len(report.embed_ms)} turns embedded)"
        )
        if args.misses:
            for miss in report.misses:
                print("  miss", miss)


if __name__ == "__main__":
    main()
