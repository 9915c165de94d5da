"""Shared fixtures: one local Ray (+ Serve) for the whole session, the real Redis."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

REDIS_URL = os.environ.get("VOXRAY_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# In the environment, so every import of this module (pytest's and tests' own) agrees on it.
SERVE_HTTP_PORT = int(os.environ.setdefault("VOXRAY_TEST_SERVE_PORT", str(free_port())))


@pytest.fixture(scope="session")
def ray_session() -> Iterator[None]:
    """One local Ray for every test that needs it. Logical CPUs are over-provisioned so
    several small deployments fit on this 2-core box at once."""
    import ray
    from ray import serve

    if not ray.is_initialized():
        ray.init(num_cpus=16, include_dashboard=False, log_to_driver=False)
    # Serve's HTTP proxy on a free port, started first so whichever module deploys first
    # does not decide it (modules that need no HTTP simply do not use it).
    serve.start(http_options={"host": "127.0.0.1", "port": SERVE_HTTP_PORT})
    yield
    try:
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


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """tests/integration and tests/e2e carry their markers (``-m "not e2e"`` skips the app)."""
    for item in items:
        parts = Path(str(item.fspath)).parts
        if "integration" in parts:
            item.add_marker(pytest.mark.integration)
        elif "e2e" in parts:
            item.add_marker(pytest.mark.e2e)
