"""Stream tokens: minted fresh, checked in constant time, and consumed once in Redis, so of two
ingress replicas (two ``CallHostPool``s over the real Redis; no Ray: claiming needs none) that
see the same token only one accepts it, and a call has one media stream at a time."""

from __future__ import annotations

import asyncio
from pathlib import Path

from actors.call_host import HostConfig
from actors.host_pool import CallHostPool, mint_stream_token, stream_token_nonce
from common.testing.services import ScriptedCache, ScriptedLLM

ROOT = Path(__file__).resolve().parents[2]


def test_tokens_are_fresh_and_bound_to_their_call_and_secret() -> None:
    one, two = mint_stream_token(b"s", "c1"), mint_stream_token(b"s", "c1")
    assert one != two and stream_token_nonce(b"s", "c1", one) == one.split(".")[0]
    assert stream_token_nonce(b"s", "c2", one) is None and stream_token_nonce(b"other", "c1", one) is None
    for bad in ("", ".", one.split(".")[0], one + "x", "é." + one.split(".")[1], one.replace(".", "")):
        assert stream_token_nonce(b"s", "c1", bad) is None
    assert stream_token_nonce(b"", "c1", one) is None  # no secret yet: nothing is valid


async def test_two_replicas_cannot_both_accept_a_token(redis_url: str, key_prefix: str) -> None:
    config = HostConfig(redis_url, key_prefix, ROOT / "schemas", ScriptedCache(), ScriptedLLM())
    a, b = CallHostPool(1, config, "shared-secret"), CallHostPool(1, config, "shared-secret")
    assert a.store is not None and b.store is not None
    try:
        calls = [f"c{i}" for i in range(1, 21)]
        for call_id in calls:
            await a.store.open_call(call_id, "host-0", "prior_auth", None, b"snapshot")
        tokens = [a.stream_token(call_id) for call_id in calls]
        claims = await asyncio.gather(  # each call's token on both replicas at once
            *(
                pool.claim_stream(c, t, f"s{pool is a}")
                for c, t in zip(calls, tokens, strict=True)
                for pool in (a, b)
            )
        )
        assert [sorted(claims[i : i + 2]) for i in range(0, 40, 2)] == [["ok", "reused"]] * 20
        token, other = tokens[0], b.stream_token("c1")
        assert token != other and b.check_token("c1", token) and not b.check_token("c2", token)
        holder = "sTrue" if claims[0] == "ok" else "sFalse"
        assert await a.claim_stream("c1", other, "sa2") == "busy"  # one stream at a time
        await a.release_stream("c1", "someone-else")  # not the holder: nothing
        assert await b.claim_stream("c1", other, "sb2") == "busy"
        await b.release_stream("c1", holder)
        assert await b.claim_stream("c1", other, "sb3") == "ok"  # a fresh token, the stream free
        assert await a.claim_stream("c1", token, "sa4") == "reused"  # an old one stays used
        assert await a.claim_stream("c1", "forged.token", "sa5") == "bad"
        await a.store.redis.hset(a.store._k("call", "c1", "route"), "status", "ended")  # type: ignore[misc]
        await b.release_stream("c1", "sb3")
        assert await a.claim_stream("c1", a.stream_token("c1"), "sa6") == "ended"
    finally:
        async for key in a.store.redis.scan_iter(match=f"{key_prefix}*"):
            await a.store.redis.delete(key)
        await a.store.aclose()
        await b.store.aclose()
