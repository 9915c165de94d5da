"""Test harnesses that need the product's upper layers (the pure ones live in common/testing)."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any

from actors.call_host import CallHostCore, HostConfig
from common.testing.services import ScriptedCache, ScriptedLLM

ROOT = Path(__file__).resolve().parent.parent


class InProcessRouter:
    """The call router a call link needs, over one real ``CallHostCore`` in this process (no Ray):
    a scripted session for call-link tests. Tokens are derived as the pool derives them."""

    def __init__(self, llm: ScriptedLLM | None = None, redis_url: str | None = None, prefix: str = "t:"):
        config = HostConfig(redis_url, prefix, ROOT / "schemas", ScriptedCache(), llm or ScriptedLLM())
        self.host = CallHostCore("in-process-host", config)
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    def stream_token(self, call_id: str) -> str:
        digest = hmac.new(b"test-secret", call_id.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest[:24]).decode()

    def check_token(self, call_id: str, token: str) -> bool:
        return bool(token) and hmac.compare_digest(self.stream_token(call_id), token)

    async def stream(self, call_id: str, method: str, *args: Any) -> AsyncGenerator[Any, None]:
        self.calls.append((method, args))
        async for event in getattr(self.host, method)(call_id, *args):
            yield event

    async def call(self, call_id: str, method: str, *args: Any) -> Any:
        self.calls.append((method, args))
        return await getattr(self.host, method)(call_id, *args)
