"""The app every end-to-end module talks to, deployed once for the session.

One Serve application ("voxray": ingress + STT + TTS + semantic cache + LLM router) with the real
models and TWO ingress replicas, so every test also exercises routing through the call
directory. The LLM is a SIMULATED OpenAI-compatible server (common/testing) so replies are fast
and known (the NLU does not put turns to it: ``nlu.llm=off``, its hook is tested on its own);
Twilio's REST API is the simulated server in common/testing/twilio_server.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from twilio.request_validator import RequestValidator

from common.testing import Behaviour
from common.testing.openai_server import FakeOpenAIServer
from common.testing.twilio_server import FakeTwilioServer
from tests.conftest import REDIS_URL, SERVE_HTTP_PORT

AUTH_TOKEN = "test-auth-token-0123456789abcdef"
ACCOUNT_SID = "AC" + "0" * 32
LLM_TEXT = "I understand. Let me note that and we can continue."


def twilio_signature(url: str, params: dict[str, str]) -> str:
    """``X-Twilio-Signature`` as Twilio computes it with the app's auth token."""
    return str(RequestValidator(AUTH_TOKEN).compute_signature(url, params))


@pytest.fixture(scope="session")
def app(ray_session: None) -> Iterator[dict[str, Any]]:
    import ray
    from ray import serve

    from common.settings import get_settings

    llm = FakeOpenAIServer(Behaviour(ttft_s=0.05, tokens_per_s=100.0, text=LLM_TEXT)).start()
    twilio = FakeTwilioServer(ACCOUNT_SID, AUTH_TOKEN).start()
    os.environ["VOXRAY_PROVIDERS__OPENAI_COMPATIBLE_URL"] = llm.base_url
    os.environ["VOXRAY_PROVIDERS__LOCAL_ENABLED"] = "false"
    get_settings.cache_clear()
    prefix = f"voxray-e2e-{uuid.uuid4().hex[:8]}:"
    base = f"http://127.0.0.1:{SERVE_HTTP_PORT}"
    settings = {
        "calls": {"call_hosts": 2, "key_prefix": prefix},
        "nlu": {"llm": "off"},
        "webhooks": {"allow": ["http://127.0.0.1:*"]},  # the tests' receivers (loopback, plain http)
        "twilio": {
            "account_sid": ACCOUNT_SID,
            "auth_token": AUTH_TOKEN,
            "from_number": "+15550001111",
            "api_base_url": twilio.base_url,
            "public_base_url": base,
        },
    }
    from serve_app import build_app

    two_replicas = {"num_replicas": 2, "autoscaling_config": None}
    serve.run(build_app(settings, ingress_options=two_replicas), name="voxray", route_prefix="/")
    _wait_for_embedding_scores(base)
    key = asyncio.run(_admin_key(prefix))
    try:
        yield {"base": base, "prefix": prefix, "llm": llm, "twilio": twilio, "key": key,
               "headers": {"Authorization": f"Bearer {key}"}}  # fmt: skip
    finally:
        serve.delete("voxray")
        for i in range(2):
            with contextlib.suppress(ValueError):
                ray.kill(ray.get_actor(f"{prefix.strip(':')}-call-host-{i}", namespace="voxray"))
        for key in ("VOXRAY_PROVIDERS__OPENAI_COMPATIBLE_URL", "VOXRAY_PROVIDERS__LOCAL_ENABLED"):
            os.environ.pop(key, None)
        get_settings.cache_clear()
        llm.stop()
        twilio.stop()
        store = redis.Redis.from_url(REDIS_URL)
        for key in store.scan_iter(match=f"{prefix}*", count=1000):
            store.delete(key)


def _wait_for_embedding_scores(base: str, timeout_s: float = 90.0) -> None:
    """The hosts embed the schemas' intent examples when they start: wait, so every test sees
    the intent scores a warm cluster gives."""
    import httpx

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        hosts = httpx.get(f"{base}/readyz", timeout=30).json().get("hosts", [])
        if hosts and all(set(h["intent_scoring"].values()) == {"embedding"} for h in hosts):
            return
        time.sleep(1.0)
    raise AssertionError(f"intent examples not embedded within {timeout_s:.0f} s")


async def _admin_key(prefix: str) -> str:
    """A key for the tests' tenant with every scope (as ``python -m edge.auth create`` makes)."""
    from edge.auth import SCOPES, KeyStore

    store = KeyStore(REDIS_URL, prefix)
    try:
        return await store.create("tests", list(SCOPES), name="e2e")
    finally:
        await store.aclose()
