"""Test harnesses that need the product's upper layers (the pure ones live in common/testing)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from actors.call_host import CallHostCore, CallNotFound, HostConfig
from actors.host_pool import mint_stream_token, stream_token_nonce
from common.events import Utterance
from common.testing.services import ScriptedCache, ScriptedLLM

ROOT = Path(__file__).resolve().parent.parent


class InProcessRouter:
    """The call router a call link (and a media socket) needs, over one real ``CallHostCore`` in
    this process (no Ray): a scripted session for call-link tests. Tokens are minted and claimed
    as the pool does it without a store (this process's memory)."""

    def __init__(
        self,
        llm: ScriptedLLM | None = None,
        redis_url: str | None = None,
        prefix: str = "t:",
        schemas: Path | None = None,
    ):
        config = HostConfig(
            redis_url, prefix, schemas or ROOT / "schemas", ScriptedCache(), llm or ScriptedLLM()
        )
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


class RedisGate:
    """A TCP gate in front of the real Redis that a test can shut: ``close`` drops every
    connection and refuses new ones (clients get real ConnectionErrors), ``open`` lets them
    through again on the same port, and ``fail_on(marker)`` shuts the gate the moment a client
    sends bytes containing ``marker`` (``b"EXEC"``: Redis dies during a transaction), before
    Redis sees them."""

    def __init__(self, upstream_url: str):
        parsed = urlsplit(upstream_url)
        self.upstream = (parsed.hostname or "127.0.0.1", parsed.port or 6379)
        self.db = parsed.path or "/0"
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._marker: bytes | None = None
        self.tripped = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}{self.db}"

    async def open(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in list(self._writers):
            writer.close()
        self._writers.clear()

    def fail_on(self, marker: bytes | None) -> None:
        self._marker = marker

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.close()
            return
        self._writers |= {writer, up_writer}

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter, check: bool) -> None:
            with contextlib.suppress(OSError, ConnectionError):
                while data := await src.read(65536):
                    if check and self._marker is not None and self._marker in data:
                        self._marker = None
                        self.tripped += 1
                        await self.close()
                        return
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pump(reader, up_writer, True), pump(up_reader, writer, False))
        self._writers -= {writer, up_writer}


def utterance(end: float | None = None, over_agent: bool = False) -> Utterance:
    """A one-second utterance handed to a call link directly (its speech to text is scripted)."""
    now = time.monotonic() if end is None else end
    return Utterance(
        pcm16_16k=b"\x00\x00" * 1600,
        speech_start=now - 1.0,
        speech_end=now,
        duration_s=0.1,
        voiced_ms=800,
        during_playback=over_agent,
        end_reason="silence",
    )
