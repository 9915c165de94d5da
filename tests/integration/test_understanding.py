"""A host's understanders: upgraded in place to embedding scores, and the LLM asked about
turns the local NLU is unsure of, through the router, with what it proposes grounded."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from actors.understanding import RETRY_AFTER_S, RouterCompletion, Understanders, nlu_llm
from common.testing.services import ScriptedLLM
from engine.nlu.intents import EmbeddingIntentScorer, LexicalIntentScorer
from engine.nlu.understand import TurnContext
from engine.schema_loader import CompiledSchema, load_schema
from services.embedder import Embedder

ROOT = Path(__file__).resolve().parents[2]


class MiniLM:
    """The deployment's embedder in this process."""

    def __init__(self) -> None:
        self.model = Embedder()
        self.calls = 0

    async def embed(self, texts: list[str]) -> list[list[float]]:
        self.calls += 1
        vectors: list[list[float]] = self.model.encode(texts).tolist()
        return vectors


class Broken:
    calls = 0

    async def embed(self, texts: list[str]) -> list[list[float]]:
        self.calls += 1
        raise ConnectionError("embedding deployment unreachable")


@pytest.fixture(scope="module")
def minilm() -> MiniLM:
    return MiniLM()


@pytest.fixture(scope="module")
def schema() -> CompiledSchema:
    return load_schema(ROOT / "schemas" / "prior_auth")


async def test_understander_is_upgraded_in_place_once_examples_are_embedded(
    minilm: MiniLM, schema: CompiledSchema
) -> None:
    pool = Understanders(minilm)
    first = pool.for_schema(schema)
    assert isinstance(first.scorer, LexicalIntentScorer)  # no call waits for the examples
    await pool.ready()
    assert pool.for_schema(schema) is first  # calls already running see the upgrade too
    assert isinstance(first.scorer, EmbeddingIntentScorer) and first.embedder is minilm
    state = schema.states["verify_member"]
    # an unsure lexical score: the turn is embedded, and the vectors make it a clear hold
    result = await first.understand(
        "My computer is being really slow right now", state.intents, {}, {}, TurnContext()
    )
    assert result.intent == "hold" and result.confidence > 0.75
    assert result.embedding is not None and len(result.embedding) == 384
    assert "embed_ms" in result.timings_ms


async def test_a_failing_embedder_leaves_lexical_scores_and_is_retried_later(
    schema: CompiledSchema, caplog: pytest.LogCaptureFixture
) -> None:
    broken = Broken()
    pool = Understanders(broken)
    with caplog.at_level(logging.WARNING, logger="voxray.nlu"):
        understander = pool.for_schema(schema)
        await pool.ready()
    assert isinstance(understander.scorer, LexicalIntentScorer) and understander.embedder is None
    assert "not embedded (ConnectionError)" in caplog.text
    pool.for_schema(schema)
    await pool.ready()
    assert broken.calls == 1  # not hammered: tried again only after RETRY_AFTER_S
    pool._failed_at = {k: v - RETRY_AFTER_S for k, v in pool._failed_at.items()}
    pool.for_schema(schema)
    await pool.ready()
    assert broken.calls == 2


async def test_unsure_turns_go_to_the_llm_and_its_values_must_have_been_said(schema: CompiledSchema) -> None:
    llm = ScriptedLLM(text='{"intent": "give_reference", "confidence": 0.9, "reference_number": "ZZ9999"}')
    hook = nlu_llm(llm, ["anthropic"], timeout_s=2.0)
    assert hook is not None
    understander = Understanders(None, hook).for_schema(schema)
    state = schema.states["get_reference"]
    result = await understander.understand(
        "hmm, the thing you are after is printed on the letter we mailed",
        state.intents,
        state.slots,
        {},
        TurnContext(),
    )
    assert result.used_llm
    assert llm.requests and llm.requests[0].providers == ["anthropic"]
    assert llm.requests[0].temperature == 0.0
    # ZZ9999 was never said: an invented identifier is not captured
    assert "reference_number" not in result.captured
    assert result.intent == "give_reference"


async def test_llm_answers_that_fail_or_come_late_count_as_no_answer() -> None:
    failing = RouterCompletion(ScriptedLLM(fail=True), ["openai"], timeout_s=1.0)
    assert await failing("system", "user") == ""
    slow = ScriptedLLM(text='{"intent": "hold"}', ttft_s=0.5)
    late = RouterCompletion(slow, ["openai"], timeout_s=0.05)
    assert await late("system", "user") == ""
    await asyncio.sleep(0)  # the abandoned stream was closed, not left running
    assert slow.closed_early or slow.tokens_sent == 0


def test_no_capable_provider_means_no_llm_hook() -> None:
    assert nlu_llm(ScriptedLLM(), [], timeout_s=1.0) is None


def test_a_schemas_patterns_are_compiled_when_its_understander_is_made() -> None:
    """The host warms up by making each schema's understander: the patterns the NLU would
    otherwise compile in the first call's first turn (a third of a second) are built then."""
    from engine.nlu import extractors, intents

    schema = load_schema(ROOT / "schemas" / "sales_qualification")
    extractors._enum_options.cache_clear()
    intents._phrase_pattern.cache_clear()
    Understanders(None).for_schema(schema)
    assert "field_phrases" in schema.__dict__  # the cached property, computed
    assert extractors._enum_options.cache_info().currsize >= 1
    assert intents._phrase_pattern.cache_info().currsize >= 100
