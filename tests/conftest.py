"""Shared fixtures: one local Ray (+ Serve) for the whole session, the real Redis."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

REDIS_URL = os.environ.get("VOXRAY_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture(scope="session")
def ray_session() -> Iterator[None]:
    """One local Ray for every test that needs it. Logical CPUs are over-provisioned so
    several small deployments fit on this 2-core box at once."""
    import ray

    if not ray.is_initialized():
        ray.init(num_cpus=16, include_dashboard=False, log_to_driver=False)
    yield
    try:
        from ray import serve

        serve.shutdown()
    finally:
        ray.shutdown()


@pytest.fixture
def redis_url() -> str:
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.ConnectionError:  # pragma: no cover - CI starts Redis first
        pytest.fail(f"Redis is not reachable at {REDIS_URL}; start it (see README)")
    finally:
        client.close()
    return REDIS_URL


@pytest.fixture
def key_prefix() -> str:
    """A unique Redis key prefix so tests never see each other's keys."""
    return f"voxray-test:{uuid.uuid4().hex[:10]}:"
