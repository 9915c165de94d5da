"""Semantic cache behaviour with the real embedding model and the real Redis."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from common.settings import CacheSettings
from engine.cache_scope import CacheScope, guard_signature, normalise_text, render_template, template_refusal
from services.cache.semantic_cache import SemanticCache
from services.embedder import Embedder

DEAD_REDIS = "redis://127.0.0.1:6390/0"  # nothing listens here

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    return Embedder()


def vec(embedder: Embedder, text: str) -> np.ndarray:
    return embedder.encode([text])[0]


def scope(
    state: str = "ask_member_id", version: str = "1", schema: str = "prior_auth", **slots: Any
) -> CacheScope:
    return CacheScope.for_call(schema, version, state, slots, sorted(slots))


async def new_cache(redis_url: str, prefix: str, dim: int, **settings: Any) -> SemanticCache:
    cache = SemanticCache(redis_url, dim, CacheSettings(**settings), key_prefix=prefix)
    await cache.start()
    return cache


# ------------------------------------------------------------------ pure rules


def test_normalisation_and_guards() -> None:
    assert normalise_text("  Who's   CALLING?! ") == "who's calling"
    assert guard_signature("I can make Tuesday") != guard_signature("I can't make Tuesday")
    assert guard_signature("about 50 employees") == guard_signature("about fifty employees")
    assert guard_signature("next week") != guard_signature("this week")
    assert guard_signature("Could you repeat the member ID?") == guard_signature(
        "Can you repeat the member ID?"
    )


def test_template_refusals() -> None:
    assert template_refusal("Thanks {patient_name}, one moment.", {"patient_name": "Ada Lovelace"}) is None
    assert "call field" in (
        template_refusal("Thanks Ada Lovelace, one moment.", {"patient_name": "Ada Lovelace"}) or ""
    )
    assert "digit run" in (template_refusal("Your reference is 48213.") or "")
    assert "date" in (template_refusal("We'll call back on 3/14.") or "")
    assert "not call data" in (template_refusal("Hi {ssn}", allowed_fields=["patient_name"]) or "")
    assert "bare field" in (template_refusal("Hi {name!r}") or "")
    assert render_template("Thanks {n}.", {"n": "Sam"}) == "Thanks Sam."
    with pytest.raises(KeyError, match=r"needs"):
        render_template("Thanks {n}.", {})


# ------------------------------------------------------------------ with Redis


@pytest.mark.asyncio
async def test_exact_and_semantic_hits(redis_url: str, key_prefix: str, embedder: Embedder) -> None:
    cache = await new_cache(redis_url, key_prefix, embedder.dim)
    s = scope()
    text = "Can you repeat the member ID?"
    entry = await cache.store(s, text, "Sure, it is {member_id_spoken}.", vec(embedder, text))
    assert entry is not None
    hit = await cache.lookup(s, "can you repeat the member id", vec(embedder, "can you repeat the member id"))
    assert hit is not None and hit.tier == "exact" and hit.entry_id == entry
    # A caller that read the exact tier itself (the call host) asks for the semantic tier only.
    same = await cache.lookup(s, text, vec(embedder, text), skip_exact=True)
    assert same is not None and same.tier == "semantic" and same.similarity > 0.999
    para = "Could you repeat the member ID?"
    hit = await cache.lookup(s, para, vec(embedder, para))
    assert hit is not None and hit.tier == "semantic" and hit.similarity >= 0.92
    assert hit.template == "Sure, it is {member_id_spoken}."
    near = "Can you repeat the group number?"
    assert await cache.lookup(s, near, vec(embedder, near)) is None
    stats = cache.stats()
    assert stats["hits"] == {"exact": 1, "semantic": 2} and stats["misses"] == 1 and stats["entries"] == 1
    await cache.aclose()


@pytest.mark.asyncio
async def test_scope_isolation(redis_url: str, key_prefix: str, embedder: Embedder) -> None:
    cache = await new_cache(redis_url, key_prefix, embedder.dim)
    text = "What is this call about?"
    v = vec(embedder, text)
    base = scope(state="greeting", plan="gold")
    await cache.store(base, text, "I'm calling about {purpose}.", v)
    assert await cache.lookup(base, text, v) is not None
    for other in (
        scope(state="greeting", plan="gold", schema="sales_qualification"),
        scope(state="greeting", plan="gold", version="2"),
        scope(state="closing", plan="gold"),
        scope(state="greeting", plan="silver"),
        scope(state="greeting"),
    ):
        assert other.key() != base.key()
        assert await cache.lookup(other, text, v) is None, other
    await cache.aclose()


@pytest.mark.asyncio
async def test_negated_near_miss_is_never_served(redis_url: str, key_prefix: str, embedder: Embedder) -> None:
    cache = await new_cache(redis_url, key_prefix, embedder.dim, similarity_threshold=0.5)
    s = scope(state="schedule")
    await cache.store(s, "Tuesday afternoon works for me.", "Great, I'll book {slot}.", vec(embedder, "x y"))
    # Force a vector match by reusing the stored vector: only the guard can stop this hit.
    stored_vec = vec(embedder, "x y")
    assert await cache.lookup(s, "Tuesday afternoon doesn't work for me.", stored_vec) is None
    assert await cache.lookup(s, "Thursday afternoon works for me.", stored_vec) is None
    assert cache.stats()["guard_rejections"] == 2
    await cache.aclose()


@pytest.mark.asyncio
async def test_refuses_call_specific_templates(redis_url: str, key_prefix: str, embedder: Embedder) -> None:
    cache = await new_cache(redis_url, key_prefix, embedder.dim)
    s = scope()
    v = vec(embedder, "what's my reference")
    assert await cache.store(s, "what's my reference", "Your reference is 48213.", v) is None
    assert await cache.store(s, "who am I", "You are Ada.", v, call_values={"patient_name": "Ada"}) is None
    assert cache.stats()["refused"] == 2 and await cache.lookup(s, "what's my reference", v) is None
    await cache.aclose()


async def until(condition: Any, timeout_s: float = 5.0) -> bool:
    """Poll ``condition`` until it holds (an event between replicas has no callback to await)."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            return False
        await asyncio.sleep(0.005)
    return True


@pytest.mark.asyncio
async def test_ttl_is_absolute_hits_do_not_extend_it(
    redis_url: str, key_prefix: str, embedder: Embedder
) -> None:
    import redis as sync_redis

    cache = await new_cache(redis_url, key_prefix, embedder.dim, ttl_s=2)
    s = scope()
    text = "How do you spell the last name?"
    v = vec(embedder, text)
    entry = await cache.store(s, text, "It's spelled {last_name_spelled}.", v)
    client = sync_redis.Redis.from_url(redis_url)
    ttl_before = client.pttl(f"{key_prefix}e:{entry}")
    for _ in range(5):
        await asyncio.sleep(0.2)
        assert await cache.lookup(s, text, v) is not None
        assert await cache.lookup(
            s, "How do you spell that last name?", vec(embedder, "How do you spell that last name?")
        )
    ttl_after = client.pttl(f"{key_prefix}e:{entry}")
    assert ttl_after <= ttl_before - 900  # a second of hits did not refresh it
    await asyncio.sleep(ttl_after / 1000 + 0.2)
    assert await cache.lookup(s, text, v) is None
    assert (
        await cache.lookup(
            s, "How do you spell that last name?", vec(embedder, "How do you spell that last name?")
        )
        is None
    )
    client.close()
    await cache.aclose()


@pytest.mark.asyncio
async def test_invalidation_explicit_and_on_version_change(
    redis_url: str, key_prefix: str, embedder: Embedder
) -> None:
    cache = await new_cache(redis_url, key_prefix, embedder.dim)
    other = await new_cache(redis_url, key_prefix, embedder.dim)  # a second replica
    text = "What is your fax number?"
    v = vec(embedder, text)
    v1 = scope(state="fax", version="1")
    await cache.store(v1, text, "Our fax number is {fax_spoken}.", v)
    await cache.store(scope(state="fax", version="1", schema="sales_qualification"), text, "Fax {fax}.", v)
    assert await until(lambda: other.scope_size(v1.key()) == 1)  # pub/sub reached the other replica
    assert (
        await other.lookup(v1, "What's your fax number?", vec(embedder, "What's your fax number?"))
        is not None
    )
    # Version 2 of prior_auth appears: every version-1 entry of that schema goes, on all replicas.
    v2 = scope(state="fax", version="2")
    await cache.store(v2, text, "Please send it to {fax_spoken}.", v)
    assert await until(lambda: other.scope_size(v1.key()) == 0 and other.scope_size(v2.key()) == 1)
    assert await other.lookup(v1, text, v) is None
    assert await other.lookup(v1, "What's your fax number?", vec(embedder, "What's your fax number?")) is None
    assert await other.lookup(v2, text, v) is not None
    assert (
        await other.lookup(scope(state="fax", version="1", schema="sales_qualification"), text, v) is not None
    )
    assert await cache.invalidate("prior_auth") == 1
    assert await other.lookup(v2, text, v) is None
    await cache.aclose()
    await other.aclose()


@pytest.mark.asyncio
async def test_new_replica_rebuilds_from_redis_and_pubsub_propagates(
    redis_url: str, key_prefix: str, embedder: Embedder
) -> None:
    first = await new_cache(redis_url, key_prefix, embedder.dim)
    s = scope(state="budget")
    for text, tpl in [
        ("How much does it cost?", "Plans start at {price_spoken}."),
        ("We don't have budget this year.", "Understood. {follow_up}"),
    ]:
        await first.store(s, text, tpl, vec(embedder, text))
    late = await new_cache(redis_url, key_prefix, embedder.dim)
    assert late.stats()["entries"] == 2
    q = "How much will it cost?"
    hit = await late.lookup(s, q, vec(embedder, q))
    assert hit is not None and hit.tier == "semantic"
    await first.store(
        s,
        "Send me some information by email.",
        "I'll send it to {email_spoken}.",
        vec(embedder, "Send me some information by email."),
    )
    assert await until(lambda: late.scope_size(s.key()) == 3)  # pub/sub delivery
    q = "Send me some info by email."
    hit = await late.lookup(s, q, vec(embedder, q))
    assert hit is not None and hit.tier == "semantic"
    await first.aclose()
    await late.aclose()


@pytest.mark.asyncio
async def test_a_failed_startup_rebuild_is_retried_off_the_turn_path(
    redis_url: str, key_prefix: str, embedder: Embedder
) -> None:
    first = await new_cache(redis_url, key_prefix, embedder.dim)
    s = scope(state="budget")
    text = "Is there a free trial?"
    await first.store(s, text, "There is, for {trial_days} days.", vec(embedder, text))
    late = SemanticCache(redis_url, embedder.dim, CacheSettings(), key_prefix=key_prefix)
    real_rebuild = late._rebuild_once
    failures = 0

    async def slow_redis_once() -> int:
        nonlocal failures
        if failures == 0:
            failures += 1
            raise TimeoutError  # what a busy Redis gives a scan past the socket timeout
        return await real_rebuild()

    late._rebuild_once = slow_redis_once  # type: ignore[method-assign]
    await late.start()
    assert late.stats()["entries"] == 0 and late.stats()["redis_errors"] == 1
    assert await until(lambda: late.stats()["entries"] == 1)
    assert await late.lookup(s, text, vec(embedder, text)) is not None
    await first.aclose()
    await late.aclose()


@pytest.mark.asyncio
async def test_redis_down_is_a_miss_and_a_counter(key_prefix: str, embedder: Embedder) -> None:
    cache = await new_cache(DEAD_REDIS, key_prefix, embedder.dim)
    s = scope()
    v = vec(embedder, "hello")
    assert await cache.lookup(s, "hello", v) is None
    assert await cache.store(s, "hello", "Hi, {greeting}.", v) is None
    assert await cache.invalidate("prior_auth") == 0
    stats = cache.stats()
    assert stats["redis_errors"] >= 3 and stats["misses"] == 1
    await cache.aclose()


@pytest.mark.asyncio
async def test_eviction_keeps_newest(redis_url: str, key_prefix: str, embedder: Embedder) -> None:
    cache = await new_cache(redis_url, key_prefix, embedder.dim, max_entries_per_scope=2)
    s = scope(state="faq")
    texts = ["Where are you located?", "What are your hours?", "Do you take walk-ins?"]
    for t in texts:
        await cache.store(s, t, "Answer to {topic}.", vec(embedder, t))
    assert cache.stats()["entries"] == 2 and cache.stats()["evicted"] == 1
    assert await cache.lookup(s, texts[0], vec(embedder, texts[0])) is None
    assert await cache.lookup(s, texts[2], vec(embedder, texts[2])) is not None
    await cache.aclose()


# ------------------------------------------------------------------ Serve deployment


@pytest.fixture(scope="module")
def cache_handle(ray_session: None) -> Iterator[Any]:
    import uuid

    from ray import serve

    from services.cache.service import SemanticCacheDeployment
    from tests.conftest import REDIS_URL

    prefix = f"voxray-test:{uuid.uuid4().hex[:10]}:"
    settings = CacheSettings(max_batch_size=32)
    app = SemanticCacheDeployment.options(ray_actor_options={"num_cpus": 0}).bind(settings, REDIS_URL, prefix)
    handle = serve.run(app, name="test-semantic-cache", route_prefix=None)
    yield handle
    serve.delete("test-semantic-cache")


@pytest.mark.asyncio
async def test_deployment_embed_batches_and_caches(cache_handle: Any) -> None:
    texts = [f"Sentence number {i} about prior authorization." for i in range(12)]
    results = await asyncio.gather(*(cache_handle.embed.remote([t]) for t in texts))
    vectors = np.asarray([r[0] for r in results])
    assert vectors.shape == (12, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    stats = await cache_handle.stats.remote()
    assert stats["embed_batch_size_mean"] > 1  # concurrent callers shared forward passes
    s = scope(state="greeting")
    assert await cache_handle.lookup.remote(s, "What is this call about?") is None
    entry = await cache_handle.store.remote(s, "What is this call about?", "I'm calling about {purpose}.")
    assert entry is not None
    hit = await cache_handle.lookup.remote(s, "What's this call about?")
    assert hit is not None and hit.tier == "semantic" and hit.entry_id == entry
    assert await cache_handle.store.remote(s, "what's my id", "It's 99812.") is None
    assert await cache_handle.invalidate.remote("prior_auth", "1") == 1
    assert await cache_handle.lookup.remote(s, "What is this call about?") is None


async def test_entries_are_listed_and_purged_by_state(
    redis_url: str, key_prefix: str, embedder: Embedder
) -> None:
    cache = await new_cache(redis_url, key_prefix, embedder.dim)
    for state, text in (("ask_status", "is it ready"), ("ask_status", "how long now"), ("greeting", "hello")):
        await cache.store(scope(state), text, f"Reply to {text}.", vec(embedder, text), model="model-a")
    listed = await cache.entries("prior_auth", "ask_status")
    assert {e["template"] for e in listed} == {"Reply to is it ready.", "Reply to how long now."}
    assert {e["model"] for e in listed} == {"model-a"} and {e["schema_version"] for e in listed} == {"1"}
    assert await cache.invalidate("prior_auth", state="ask_status") == 2
    assert await cache.entries("prior_auth", "ask_status") == []
    assert len(await cache.entries("prior_auth")) == 1  # the other state's entry stays
    await cache.aclose()


async def test_a_degenerate_entry_written_into_redis_is_never_spoken(
    redis_url: str, key_prefix: str, embedder: Embedder
) -> None:
    """An entry no guarded reply could have written (put straight into Redis) reaches the reply
    path through the real exact tier, and the guard still keeps it from being spoken."""
    from actors.call import Call
    from actors.reply import ReplyPolicy, ReplySourcer
    from common.events import CallerTurn, ReplySource, TurnDone
    from common.testing.samples import SAMPLE_CALL_DATA
    from common.testing.services import ScriptedLLM
    from engine.conversation import Conversation
    from engine.schema_loader import SchemaRegistry
    from services.cache.store import exact_value
    from services.clients import CacheClient

    registry = SchemaRegistry.shared(ROOT / "schemas")
    schema = registry.get("prior_auth")
    conversation = Conversation.start(schema, "bad-entry", SAMPLE_CALL_DATA["prior_auth"])
    await conversation.take_turn("This is Sarah.")
    line = "Lovely weather over there today?"
    bad = "I'm sorry. I'm sorry. I'm sorry. I'm sorry. The member ID is 123456."
    cache = await new_cache(redis_url, key_prefix, embedder.dim)
    state = conversation.current
    entry_scope = CacheScope.for_call(schema.name, schema.version, state.name, {}, sorted(state.slots))
    # straight into Redis, past every rule ``store`` applies
    await cache._redis.set(cache.keys.exact(entry_scope, line), exact_value("1", bad))
    client = CacheClient(None, redis_url, "")
    client.keys = cache.keys  # the same key space the entry was written in
    llm = ScriptedLLM("Never asked.")
    call = Call(conversation, ReplySourcer(client, llm, ReplyPolicy()), None, "test-host")
    events = [e async for e in call.turn(CallerTurn(text=line))]
    done = events[-1]
    assert isinstance(done, TurnDone)
    assert done.source == ReplySource.FALLBACK and "sorry" not in done.agent.lower()
    assert "123456" not in done.agent and done.llm["guard"]["source"] == "cache"
    assert llm.requests == []
    await cache.aclose()
