"""Reply sourcing: script, exact cache, the semantic tier's head start and its race with the LLM,
the filler and the LLM-failure fallback, in a fixed order.

The services are scripted stand-ins (``common/testing/services.py``) with set delays: the real
cache and LLM cannot be made to answer in a chosen order, and these tests are about the order.
The real-deployment version (a semantic hit beating a slow LLM through Serve) is
``tests/e2e/test_calls.py::test_semantic_hit_beats_a_slow_llm``.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from actors.call import Call
from actors.reply import ReplyPolicy, ReplySourcer, script_pieces
from common.events import CallerTurn, ReplyChunk, ReplySource, TurnDone
from common.testing.samples import SAMPLE_CALL_DATA
from common.testing.services import ScriptedCache, ScriptedLLM
from engine.conversation import Conversation
from engine.schema_loader import SchemaRegistry, load_schema

ROOT = Path(__file__).resolve().parents[2]
PATIENT = SAMPLE_CALL_DATA["prior_auth"]
CACHED = "Cached answer, served from the semantic tier."
LLM_TEXT = "Fresh answer from the model."


SEEDS = frozenset({"scripted"})  # the scripted provider may seed the cache in these tests


async def off_script_turn(
    cache: ScriptedCache,
    llm: ScriptedLLM,
    head_start_s: float = 0.010,
    filler_after_s: float = 1.5,
    seeds: frozenset[str] = SEEDS,
) -> tuple[TurnDone, list[ReplyChunk]]:
    registry = SchemaRegistry.shared(ROOT / "schemas")
    conversation = Conversation.start(registry.get("prior_auth"), "race-call", PATIENT)
    policy = ReplyPolicy(
        semantic_head_start_s=head_start_s, filler_after_s=filler_after_s, cache_seed_providers=seeds
    )
    replies = ReplySourcer(cache, llm, policy)
    call = Call(conversation, replies, None, "test-host")
    call.start()
    [_ async for _ in call.turn(CallerTurn(text="This is Sarah, how can I help?"))]
    events = [e async for e in call.turn(CallerTurn(text="Lovely weather there today?"))]  # off-script
    await replies.drain()  # the cache store runs off the turn's path
    done = events[-1]
    assert isinstance(done, TurnDone)
    return done, [e for e in events if isinstance(e, ReplyChunk)]


async def test_exact_hit_answers_without_the_semantic_tier_or_the_llm() -> None:
    cache, llm = ScriptedCache(exact_template=CACHED, semantic_template="never"), ScriptedLLM(LLM_TEXT)
    done, chunks = await off_script_turn(cache, llm)
    assert done.source == ReplySource.CACHE_EXACT and done.agent == CACHED
    assert cache.lookups == 0 and llm.requests == []
    assert [c.source for c in chunks] == [ReplySource.CACHE_EXACT]


async def test_fast_semantic_hit_never_asks_the_llm() -> None:
    cache, llm = ScriptedCache(semantic_template=CACHED), ScriptedLLM(LLM_TEXT, ttft_s=0.05)
    done, _ = await off_script_turn(cache, llm)
    assert done.source == ReplySource.CACHE_SEMANTIC and done.agent == CACHED
    assert llm.requests == [] and done.llm == {}


async def test_late_semantic_hit_wins_and_closes_the_llm_stream() -> None:
    cache = ScriptedCache(semantic_template=CACHED, semantic_delay_s=0.15)
    llm = ScriptedLLM(LLM_TEXT, ttft_s=1.0)
    done, _ = await off_script_turn(cache, llm)
    assert done.source == ReplySource.CACHE_SEMANTIC and done.agent == CACHED
    assert done.llm == {"cancelled_for_cache": True}
    assert len(llm.requests) == 1 and llm.tokens_sent == 0 and llm.closed_early
    assert 150 <= done.stages_ms["cache"] < 600  # the hit's own time, not the LLM's
    assert done.stages_ms["turn_total"] < 800
    assert cache.stored == []  # nothing new to store: the reply came from the cache


async def test_slow_semantic_miss_does_not_hold_up_the_llm() -> None:
    cache = ScriptedCache(semantic_delay_s=2.0)
    llm = ScriptedLLM(LLM_TEXT, ttft_s=0.05)
    done, chunks = await off_script_turn(cache, llm)
    assert done.source == ReplySource.LLM and done.agent == LLM_TEXT
    assert done.stages_ms["cache"] < 200  # the head start, not the 2 s lookup
    assert done.stages_ms["turn_total"] < 1000
    assert cache.lookup_cancelled  # the LLM answered first: the lookup was dropped
    assert [c.source for c in chunks] == [ReplySource.LLM]
    assert done.llm["provider"] == "scripted" and "llm_ttft" in done.stages_ms
    assert cache.stored == [LLM_TEXT]  # stored off the turn's path


async def test_zero_head_start_asks_both_at_once() -> None:
    cache = ScriptedCache(semantic_delay_s=0.05)
    llm = ScriptedLLM(LLM_TEXT, ttft_s=0.2)
    done, _ = await off_script_turn(cache, llm, head_start_s=0.0)
    assert done.source == ReplySource.LLM and cache.lookups == 1 and len(llm.requests) == 1
    assert not cache.lookup_cancelled  # it answered (a miss) while the LLM was still thinking
    assert done.stages_ms["cache"] < 50


async def test_slow_first_token_gets_a_filler_first() -> None:
    llm = ScriptedLLM(LLM_TEXT, ttft_s=0.3)
    done, chunks = await off_script_turn(ScriptedCache(), llm, filler_after_s=0.1)
    assert [c.text for c in chunks][-1] == LLM_TEXT and len(chunks) == 2
    assert chunks[0].text in ("One moment.", "Sure.", "Okay, thank you.")
    assert done.agent == f"{chunks[0].text} {LLM_TEXT}" and done.stages_ms["filler_after"] == 100


async def test_llm_failure_says_the_schema_fallback() -> None:
    done, chunks = await off_script_turn(ScriptedCache(), ScriptedLLM(fail=True))
    assert done.source == ReplySource.FALLBACK and len(chunks) == 1
    assert chunks[0].source == ReplySource.FALLBACK and done.agent == "Sorry, give me just one moment."


def test_script_pieces_split_the_first_long_uncached_sentence_at_its_first_clause() -> None:
    line = "Thanks. The patient is Jane Doe, date of birth January fifteenth, nineteen eighty."
    assert script_pieces([line], frozenset()) == [
        "Thanks.",
        "The patient is Jane Doe, date of birth January fifteenth, nineteen eighty.",
    ]
    long_first = "The patient is Jane Doe, date of birth January fifteenth, nineteen eighty. Next."
    pieces = script_pieces([long_first], frozenset())
    assert pieces[0] == "The patient is Jane Doe," and pieces[-1] == "Next."
    assert script_pieces(["One moment."], frozenset({"One moment."})) == ["One moment."]


async def test_the_states_llm_policy_travels_with_the_request(tmp_path: Path) -> None:
    spec = yaml.safe_load((ROOT / "schemas" / "prior_auth" / "schema.yaml").read_text())
    spec["states"]["verify_member"]["llm_policy"] = "hedge"
    (tmp_path / "schema.yaml").write_text(yaml.safe_dump(spec))
    llm = ScriptedLLM(LLM_TEXT)
    conversation = Conversation.start(load_schema(tmp_path), "policy-call", PATIENT)
    call = Call(conversation, ReplySourcer(ScriptedCache(), llm), None, "test-host")
    call.start()
    [_ async for _ in call.turn(CallerTurn(text="This is Sarah."))]
    [_ async for _ in call.turn(CallerTurn(text="Lovely weather there today?"))]
    assert llm.requests[-1].policy == "hedge" and llm.requests[-1].state == "verify_member"


class BrokenCache(ScriptedCache):
    async def exact(self, scope: object, text: str) -> None:  # type: ignore[override]
        raise ConnectionError("Redis is down")


async def test_a_cache_that_fails_is_a_miss_not_a_failed_turn() -> None:
    done, _ = await off_script_turn(BrokenCache(), ScriptedLLM(LLM_TEXT))
    assert done.source == ReplySource.LLM and done.agent == LLM_TEXT


VERIFY_MEMBER_LINE = "Thanks. The patient is Jane Doe"


async def test_a_degenerate_llm_reply_is_stopped_and_the_question_asked_again() -> None:
    cache, llm = ScriptedCache(), ScriptedLLM("I'm sorry, no, no, no, no, no, no. I'm sorry.")
    done, _ = await off_script_turn(cache, llm)
    assert done.source == ReplySource.FALLBACK and done.agent.startswith(VERIFY_MEMBER_LINE)
    assert done.llm["guard"] == {"rule": "repetition", "source": "llm"}
    assert llm.closed_early or llm.tokens_sent == len(llm.text.split(" "))
    assert cache.stored == []  # a stopped reply never seeds the cache


async def test_an_invented_identifier_is_never_spoken() -> None:
    cache, llm = ScriptedCache(), ScriptedLLM("Sure. The member ID on file is 123456.")
    done, _ = await off_script_turn(cache, llm)
    assert "123456" not in done.agent and done.agent == "Sure."  # the good part before it stays
    assert done.llm["guard"]["rule"] == "identifier" and cache.stored == []


async def test_a_bad_entry_in_the_cache_is_never_spoken() -> None:
    bad = "She's a 2022. She's a 2022. She's a 2022. She's a 2022."
    cache, llm = ScriptedCache(exact_template=bad), ScriptedLLM(LLM_TEXT)
    done, _ = await off_script_turn(cache, llm)
    assert done.source == ReplySource.FALLBACK and "2022" not in done.agent
    assert done.llm["guard"]["source"] == "cache"


async def test_replies_of_a_provider_not_allowed_to_seed_are_not_stored() -> None:
    cache, llm = ScriptedCache(), ScriptedLLM(LLM_TEXT)
    done, _ = await off_script_turn(cache, llm, seeds=frozenset({"anthropic"}))
    assert done.source == ReplySource.LLM and cache.stored == []


async def test_a_reply_cut_off_by_barge_in_is_not_stored() -> None:
    registry = SchemaRegistry.shared(ROOT / "schemas")
    conversation = Conversation.start(registry.get("prior_auth"), "barge-call", PATIENT)
    cache = ScriptedCache()
    llm = ScriptedLLM(
        "First sentence of a long answer. Second sentence nobody hears.", seconds_per_token=0.02
    )
    replies = ReplySourcer(cache, llm, ReplyPolicy(cache_seed_providers=SEEDS))
    call = Call(conversation, replies, None, "test-host")
    call.start()
    [_ async for _ in call.turn(CallerTurn(text="This is Sarah, how can I help?"))]
    async for event in call.turn(CallerTurn(text="Lovely weather there today?")):
        if isinstance(event, ReplyChunk):
            await call.interrupt(event.turn, event.text)  # the caller talks over the first piece
    await replies.drain()
    assert cache.stored == []
