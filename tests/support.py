"""Test harnesses that need the product's upper layers (the pure ones live in common/testing)."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any

from actors.call_host import CallHostCore, CallNotFound, HostConfig
from actors.host_pool import mint_stream_token, stream_token_nonce
from common.testing.services import ScriptedCache, ScriptedLLM

ROOT = Path(__file__).resolve().parent.parent


class InProcessRouter:
    """The call router a call link (and a media socket) needs, over one real ``CallHostCore`` in
    this process (no Ray): a scripted session for call-link tests. Tokens are minted and claimed
    as the pool does it without a store (this process's memory)."""

    def __init__(self, llm: ScriptedLLM | None = None, redis_url: str | None = None, prefix: str = "t:"):
        config = HostConfig(redis_url, prefix, ROOT / "schemas", ScriptedCache(), llm or ScriptedLLM())
        self.host = CallHostCore("in-process-host", config)
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        self.used_tokens: set[str] = set()
        self.streams: dict[str, str] = {}

    def stream_token(self, call_id: str) -> str:
        return mint_stream_token(b"test-secret", call_id)

    def check_token(self, call_id: str, token: str) -> bool:
        return stream_token_nonce(b"test-secret", call_id, token) is not None

    async def route(self, call_id: str) -> str:
        if call_id not in self.host.calls:
            raise CallNotFound(f"no live call {call_id!r}")
        return self.host.name

    async def claim_stream(self, call_id: str, token: str, owner: str) -> str:
        nonce = stream_token_nonce(b"test-secret", call_id, token)
        if nonce is None:
            return "bad"
        if call_id not in self.host.calls:
            return "ended"
        if nonce in self.used_tokens:
            return "reused"
        if call_id in self.streams:
            return "busy"
        self.used_tokens.add(nonce)
        self.streams[call_id] = owner
        return "ok"

    async def release_stream(self, call_id: str, owner: str) -> None:
        if self.streams.get(call_id) == owner:
            del self.streams[call_id]

    async def stream(self, call_id: str, method: str, *args: Any) -> AsyncGenerator[Any, None]:
        self.calls.append((method, args))
        async for event in getattr(self.host, method)(call_id, *args):
            yield event

    async def call(self, call_id: str, method: str, *args: Any) -> Any:
        self.calls.append((method, args))
        return await getattr(self.host, method)(call_id, *args)
