"""SIMULATED LLM providers for tests and benchmarks.

Real HTTP servers (aiohttp, in a background thread) that speak the exact OpenAI
chat.completions and Anthropic messages streaming wire formats (SSE), so the real ``openai``
and ``anthropic`` SDK clients can talk to them through ``base_url``. Per request they follow a
programmable ``Behaviour`` (time to first token, tokens/s, HTTP errors, hangs, tool calls) and
they record what happened, including when the client disconnected mid-stream.

Nothing here is a model: the replies are scripted text. Never use these outside tests and
benchmarks.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class Behaviour:
    ttft_s: float = 0.01
    tokens_per_s: float = 200.0
    text: str = "Sure, I can help with that."
    status: int | None = None  # answer with this HTTP error instead of a stream
    hang: bool = False  # send headers, then nothing, forever (until the client leaves)
    tool_call: dict[str, Any] | None = None  # {"name": ..., "arguments": {...}}
    input_tokens: int = 42
    cached_input_tokens: int = 0  # of input_tokens, reported as read from the provider's prompt cache

    def tokens(self) -> list[str]:
        words = self.text.split(" ")
        return [w if i == 0 else " " + w for i, w in enumerate(words)]


BehaviourSource = Behaviour | Callable[[dict[str, Any]], Behaviour]


@dataclass
class RequestRecord:
    id: int
    body: dict[str, Any]
    started: float
    first_token_at: float | None = None
    tokens_sent: int = 0
    completed: bool = False
    disconnected: bool = False
    disconnected_at: float | None = None
    status: int = 200


class ClientGone(Exception):
    pass


class FakeProviderServer:
    """Base: runs an aiohttp app on 127.0.0.1:<free port> in its own thread and event loop."""

    route: str = "/"

    def __init__(self, behaviour: BehaviourSource | None = None):
        self.behaviour: BehaviourSource = behaviour or Behaviour()
        self.records: list[RequestRecord] = []
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    # -------------------------------------------------------------- lifecycle
    def start(self) -> FakeProviderServer:
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            app = web.Application()
            app.router.add_post(self.route, self._handle)
            # handler_cancellation: a client disconnect cancels the handler, so we record it at once.
            self._runner = web.AppRunner(app, handler_cancellation=True, access_log=None)
            loop.run_until_complete(self._runner.setup())
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            loop.run_until_complete(site.start())
            server = site._server
            assert server is not None
            self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
            ready.set()
            loop.run_forever()

        self._thread = threading.Thread(target=run, name=f"fake-{type(self).__name__}", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("simulated provider server did not start")
        return self

    def stop(self) -> None:
        if self._loop is None:
            return
        loop = self._loop
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        if self._thread:
            self._thread.join(5)
        self._loop = None

    @property
    def base_url(self) -> str:
        raise NotImplementedError

    def reset(self, behaviour: BehaviourSource | None = None) -> None:
        with self._lock:
            self.records.clear()
            if behaviour is not None:
                self.behaviour = behaviour

    async def await_for(self, predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
        """Like ``wait_for`` but keeps the caller's event loop running (client sockets close on it)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if predicate():
                return True
            await asyncio.sleep(0.005)
        return predicate()

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if predicate():
                return True
            time.sleep(0.005)
        return predicate()

    # -------------------------------------------------------------- request handling
    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        behaviour = self.behaviour(body) if callable(self.behaviour) else self.behaviour
        record = RequestRecord(id=next(self._ids), body=body, started=time.monotonic())
        with self._lock:
            self.records.append(record)
        if behaviour.status is not None:
            record.status = behaviour.status
            return web.json_response(self.error_body(behaviour.status), status=behaviour.status)
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        try:
            await response.prepare(request)
            await self.stream_reply(request, response, behaviour, record)
            record.completed = True
        except asyncio.CancelledError:
            record.disconnected = True
            record.disconnected_at = time.monotonic()
            raise
        except (ClientGone, ConnectionResetError):
            record.disconnected = True
            record.disconnected_at = time.monotonic()
        return response

    async def _sleep(self, request: web.Request, seconds: float) -> None:
        """Sleep, noticing a client that went away (poll at 5 ms)."""
        end = time.monotonic() + seconds
        while True:
            transport = request.transport
            if transport is None or transport.is_closing():
                raise ClientGone()
            left = end - time.monotonic()
            if left <= 0:
                return
            await asyncio.sleep(min(left, 0.005))

    async def _send(self, request: web.Request, response: web.StreamResponse, data: str) -> None:
        transport = request.transport
        if transport is None or transport.is_closing():
            raise ClientGone()
        await response.write(data.encode())

    async def _paced_tokens(
        self,
        request: web.Request,
        response: web.StreamResponse,
        behaviour: Behaviour,
        record: RequestRecord,
        frame: Callable[[str], str],
    ) -> int:
        if behaviour.hang:
            await self._sleep(request, 3600)
        await self._sleep(request, behaviour.ttft_s)
        tokens = behaviour.tokens() if behaviour.tool_call is None else []
        gap = 1.0 / behaviour.tokens_per_s if behaviour.tokens_per_s > 0 else 0.0
        for i, token in enumerate(tokens):
            if i:
                await self._sleep(request, gap)
            await self._send(request, response, frame(token))
            if record.first_token_at is None:
                record.first_token_at = time.monotonic()
            record.tokens_sent += 1
        return len(tokens)

    def error_body(self, status: int) -> dict[str, Any]:
        raise NotImplementedError

    async def stream_reply(
        self, request: web.Request, response: web.StreamResponse, behaviour: Behaviour, record: RequestRecord
    ) -> None:
        raise NotImplementedError


def sse(data: dict[str, Any], event: str | None = None) -> str:
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {json.dumps(data, separators=(',', ':'))}\n\n"


@dataclass
class LatencyModel:
    """A provider's TTFT distribution for benchmarks: lognormal body + occasional slow tail."""

    median_s: float
    sigma: float = 0.25
    tail_prob: float = 0.05
    tail_factor: float = 4.0
    rng_seed: int = 0
    _rng: Any = field(default=None, repr=False)

    def sample(self) -> float:
        import random

        if self._rng is None:
            self._rng = random.Random(self.rng_seed)
        value = self.median_s * self._rng.lognormvariate(0.0, self.sigma)
        if self._rng.random() < self.tail_prob:
            value *= self.tail_factor * (0.5 + self._rng.random())
        return float(value)
