"""An API key for the tools (main job, load tests, scenario suite) against a local cluster.

``VOXRAY_API_KEY`` when set; otherwise a key for tenant ``local`` with every scope is made in
the cluster's Redis (what ``python -m edge.auth create`` does), so the README's commands need
no set-up step.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os

from common.settings import VoxraySettings, get_settings
from edge.auth import LOCAL_TENANT, SCOPES, KeyStore


def local_api_key(
    settings: VoxraySettings | None = None, prefix: str | None = None, redis_url: str | None = None
) -> str:
    """``prefix`` / ``redis_url``: the cluster's key prefix and Redis when a tool started it with
    its own."""
    key = os.environ.get("VOXRAY_API_KEY")
    if key:
        return key
    settings = settings or get_settings()
    url = redis_url or settings.redis_url
    if not url:
        raise SystemExit("no VOXRAY_API_KEY and no Redis to make one in")

    async def make() -> str:
        store = KeyStore(url, prefix or settings.calls.key_prefix)
        try:
            return await store.create(LOCAL_TENANT, list(SCOPES), name="local tools")
        finally:
            await store.aclose()

    # A thread of its own: the tools ask for their key from inside running event loops too.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        key = pool.submit(asyncio.run, make()).result()
    os.environ["VOXRAY_API_KEY"] = key  # subprocesses (Locust) use the same key
    return key


def auth_headers(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def tool_headers(prefix: str | None = None, redis_url: str | None = None) -> dict[str, str]:
    """The headers a tool sends to a local cluster: its API key."""
    return auth_headers(local_api_key(prefix=prefix, redis_url=redis_url))
