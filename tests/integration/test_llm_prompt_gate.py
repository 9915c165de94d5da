"""Quality gate on the prompt and the default local model: a fixed subset of the off-script turns
of ``benchmarks/bench_local_llm.py`` through the real ``LlamaEngine`` (default model, default
decoding), the real ``Conversation.llm_request()`` and the real reply guard.

- the guard's pass rate (replies spoken in full) stays at the committed baseline, measured with
  this prompt and model (README, "Offline LLM"), less a small margin for sampling;
- no sentence the guard lets through names an identifier, date or amount outside the call's
  data and the counterpart's words (the guard's job: this checks the pipeline end to end).

A change to the prompt, the decoding defaults or the model that makes replies worse fails here.
About 45 s on a busy 2-core box (one model load, ten short greedy replies).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from benchmarks.bench_local_llm import ROOT, TURNS, Reply, Turn, conversation, run_turn
from engine.conversation import Conversation
from engine.guard import unsupported_identifiers
from engine.schema_loader import load_schema

pytestmark = pytest.mark.integration

GATE = [  # five turns per schema, different states and kinds of question
    "Is this for the same knee as last time?",
    "Do you have the patient's group number?",
    "Do you have the clinical notes?",
    "What's your fax?",
    "What's the diagnosis code for this?",
    "Do you integrate with Salesforce?",
    "How long is setup usually?",
    "How much does it cost per seat?",
    "Is there a contract, or is it month to month?",
    "Who would I be meeting with?",
]
BASELINE_PASSED = 5  # of the ten, with the committed prompt, model, decoding and guard (mislabels: 3)
MARGIN = 1  # greedy decoding repeats itself, but thread scheduling may flip a near tie


@pytest.fixture(scope="module")
def replies() -> Iterator[list[tuple[Conversation, Reply]]]:
    from services.llm.providers.local_llama import LlamaEngine

    turns: list[Turn] = [next(t for t in TURNS if t.question == q) for q in GATE]
    schemas = {t.schema: load_schema(ROOT / "schemas" / t.schema) for t in turns}
    engine = LlamaEngine(n_threads=2)
    out = []
    for turn in turns:
        convo = conversation(schemas, turn)
        out.append((convo, run_turn(engine, convo, turn, Conversation.llm_request)))
    yield out


def test_guard_pass_rate_holds_the_baseline(replies: list[tuple[Conversation, Reply]]) -> None:
    passed = sum(r.passed for _, r in replies)
    detail = "\n".join(f"{r.turn.question!r} -> {r.text!r} ({r.stopped or 'spoken'})" for _, r in replies)
    assert passed >= BASELINE_PASSED - MARGIN, f"{passed}/{len(replies)} spoken in full:\n{detail}"


def test_no_spoken_identifier_outside_the_call_data(replies: list[tuple[Conversation, Reply]]) -> None:
    for convo, reply in replies:
        given = [str(v) for v in convo.render().values()]
        heard = [text for who, text in convo.state.history if who == "caller"]
        for sentence in reply.spoken:
            assert not unsupported_identifiers(sentence, [*given, *heard]), (reply.turn.question, sentence)
