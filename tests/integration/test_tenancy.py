"""The front door's shared state in Redis (edge/tenancy.py): the per-key token bucket, the
per-tenant call lists and the Idempotency-Key slots every ingress replica sees alike."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from edge.tenancy import IDEMPOTENCY_LEASE_S, Abandoned, Tenancy

pytestmark = pytest.mark.integration


@pytest.fixture
async def tenancy(redis_url: str, key_prefix: str) -> AsyncIterator[Tenancy]:
    t = Tenancy(redis_url, key_prefix)
    yield t
    async for key in t.redis.scan_iter(match=f"{key_prefix}*"):
        await t.redis.delete(key)
    await t.aclose()


async def test_the_bucket_gives_the_burst_then_waits_at_the_rate(tenancy: Tenancy) -> None:
    waits = [await tenancy.take("k1", rate_per_s=2.0, burst=5) for _ in range(7)]
    assert waits[:5] == [0.0] * 5
    assert 0.3 < waits[5] <= 0.5  # one token back after 1/rate s (a few ms have passed)
    assert await tenancy.take("k2", rate_per_s=2.0, burst=5) == 0.0  # another key: its own bucket


async def test_two_replicas_share_one_bucket(redis_url: str, key_prefix: str, tenancy: Tenancy) -> None:
    other = Tenancy(redis_url, key_prefix)
    try:
        taken = [await (tenancy if i % 2 else other).take("k", 0.01, 4) for i in range(6)]
    finally:
        await other.aclose()
    assert taken[:4] == [0.0] * 4 and all(w > 0 for w in taken[4:])


async def test_idempotency_claims_replays_and_refuses_another_body(tenancy: Tenancy) -> None:
    assert await tenancy.idempotent("acme", "key-1", "fp-a", "c1") is None  # first: go ahead
    assert await tenancy.idempotent("acme", "key-1", "fp-a", "c2") == "in_progress"
    assert await tenancy.idempotent("acme", "key-1", "fp-b", "c3") == "mismatch"
    await tenancy.remember("acme", "key-1", "fp-a", {"call_id": "c1"})
    assert await tenancy.idempotent("acme", "key-1", "fp-a", "c4") == {"call_id": "c1"}
    assert await tenancy.idempotent("other", "key-1", "fp-a", "c5") is None  # keys are per tenant
    await tenancy.remember("acme", "key-2", "fp-a", None)  # a failed first request frees the key
    assert await tenancy.idempotent("acme", "key-2", "fp-a", "c6") is None


async def test_a_claim_whose_request_died_is_taken_over_once_with_its_call_id(tenancy: Tenancy) -> None:
    t0 = 1_000_000.0
    assert await tenancy.idempotent("acme", "key-9", "fp-a", "first", now=t0) is None  # then its replica dies
    assert await tenancy.idempotent("acme", "key-9", "fp-a", "second", now=t0 + 5) == "in_progress"
    late = t0 + IDEMPOTENCY_LEASE_S + 1
    taken = await asyncio.gather(
        *(tenancy.idempotent("acme", "key-9", "fp-a", f"r{i}", now=late) for i in range(4))
    )
    assert taken.count(Abandoned("first")) == 1  # one retry holds it, naming the first call id
    assert taken.count("in_progress") == 3


async def test_calls_belong_to_their_tenant_until_forgotten(tenancy: Tenancy) -> None:
    await tenancy.own("c1", "acme")
    await tenancy.own("c2", "acme")
    assert await tenancy.owner("c1") == "acme" and await tenancy.owner("c3") is None
    assert sorted(await tenancy.live_of("acme")) == ["c1", "c2"]
    await tenancy.ended("acme", ["c1"])
    assert await tenancy.live_of("acme") == ["c2"] and sorted(await tenancy.calls_of("acme")) == ["c1", "c2"]
    await tenancy.forget("c2", "acme")
    assert await tenancy.owner("c2") is None and await tenancy.calls_of("acme") == ["c1"]
