"""The tools' API key (loadtests/api_key.py) is made in the cluster's Redis, from plain code or
from inside a running event loop (the main job asks for it inside its coroutine)."""

from __future__ import annotations

import pytest

from edge.auth import KeyStore
from loadtests.api_key import local_api_key

pytestmark = pytest.mark.integration


async def test_a_key_is_made_from_inside_a_running_loop(
    redis_url: str, key_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VOXRAY_API_KEY", "")  # none given (restored after: the key made here is not kept)
    key = local_api_key(prefix=key_prefix, redis_url=redis_url)
    store = KeyStore(redis_url, key_prefix)
    try:
        principal = await store.verify(key)
        assert principal.tenant == "local" and principal.may("admin")
    finally:
        async for k in store.redis.scan_iter(match=f"{key_prefix}*"):
            await store.redis.delete(k)
        await store.aclose()
