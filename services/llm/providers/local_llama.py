"""The local default provider: Qwen2.5-Coder-0.5B-Instruct (Q4_K_M GGUF, ``services/model_paths.py``)
on llama-cpp-python. ``benchmarks/bench_local_llm.py`` chose it over SmolLM2-135M and Gemma 3 270M
(README, "Offline LLM").

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
from dataclasses import dataclass
from typing import Any

from ray import serve

from common.llm_types import LLMRequest, Usage
from common.settings import ProviderSettings
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
        # Small models' chat templates know user/assistant/system only; tool results go in as user text.
        role = "user" if m.role == "tool" else m.role
        messages.append({"role": role, "content": m.content})
    return messages


@dataclass(frozen=True)
class Decoding:
    """Sampling for the local model (``VOXRAY_PROVIDERS__LOCAL_*``); ``benchmarks/bench_local_llm.py``
    measured these against the reply guard: greedy decoding (temperature 0, no repeat penalty)
    had the fewest made-up identifiers, and keeps replies reproducible (the quality gate test
    relies on it). ``temperature`` None keeps the request's; a request's
    ``max_tokens`` is capped at ``max_tokens`` (a spoken reply is two short sentences)."""

    temperature: float | None = 0.0
    top_p: float = 0.9
    top_k: int = 40
    min_p: float = 0.05
    repeat_penalty: float = 1.0
    max_tokens: int = 60
    stop: tuple[str, ...] = ("\n\n",)


def decoding_from_settings(providers: ProviderSettings) -> Decoding:
    return Decoding(
        temperature=providers.local_temperature,
        top_p=providers.local_top_p,
        top_k=providers.local_top_k,
        min_p=providers.local_min_p,
        repeat_penalty=providers.local_repeat_penalty,
        max_tokens=providers.local_max_tokens,
        stop=tuple(providers.local_stop),
    )


class LlamaEngine:
    """One llama.cpp model; one generation at a time (a ``Llama`` is not thread-safe).

    Prompt reuse: llama.cpp keeps the evaluated tokens of the last prompt and only evaluates what
    differs, so a prompt that starts with text fixed per schema and state (``Conversation.
    llm_request``) skips that part whenever the previous request shared it. ``prompt_cache_mb``
    > 0 adds llama-cpp-python's RAM cache: the states of earlier prompts, the longest matching
    prefix restored (measured in ``benchmarks/bench_local_llm.py``; off by default)."""

    def __init__(
        self,
        model_path: str | None = None,
        n_threads: int = 2,
        n_ctx: int = 2048,
        decoding: Decoding | None = None,
        prompt_cache_mb: int = 0,
        chat_template: str | None = None,
    ):
        from llama_cpp import Llama
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        from services.model_paths import local_gguf_path

        path = model_path or str(local_gguf_path())
        self.model_name = path.rsplit("/", 1)[-1]
        self.decoding = decoding or Decoding()
        self._llm = Llama(model_path=path, n_ctx=n_ctx, n_threads=n_threads, verbose=False)
        # The template the model ships, or ``chat_template`` for a model without one (kept to
        # count a request's real prompt tokens, template included).
        template = chat_template or self._llm.metadata.get("tokenizer.chat_template")
        self._formatter: Any = None
        if template:
            eos, bos = self._llm.token_eos(), self._llm.token_bos()
            self._formatter = Jinja2ChatFormatter(
                template=template,
                eos_token=self._llm._model.token_get_text(eos) if eos != -1 else "",
                bos_token=self._llm._model.token_get_text(bos) if bos != -1 else "",
                stop_token_ids=[eos],
            )
            if chat_template:
                self._llm.chat_handler = self._formatter.to_chat_handler()
        self._lock = threading.Lock()
        self.set_prompt_cache(prompt_cache_mb)

    def prompt_tokens(self, req: LLMRequest) -> int:
        """Tokens of ``req``'s prompt as the model reads it (chat template included)."""
        messages = to_chat_messages(req)
        if self._formatter is None:
            text, add_bos = "\n".join(m["content"] for m in messages), True
        else:
            formatted = self._formatter(messages=messages)
            text, add_bos = formatted.prompt, not formatted.added_special
        return len(self._llm.tokenize(text.encode(), add_bos=add_bos, special=True))

    def set_prompt_cache(self, capacity_mb: int) -> None:
        """Turn llama-cpp-python's RAM prompt cache on (``capacity_mb`` > 0, a new empty one) or off."""
        from llama_cpp.llama_cache import LlamaRAMCache

        with self._lock:
            self._llm.set_cache(LlamaRAMCache(capacity_bytes=capacity_mb << 20) if capacity_mb > 0 else None)

    def reset_context(self) -> None:
        """Forget the evaluated prompt: the next request evaluates all of its prompt (benchmarks)."""
        with self._lock:
            self._llm.reset()  # type: ignore[no-untyped-call]

    def generate(self, req: LLMRequest, stop: threading.Event) -> Iterator[TextDelta | StreamEnd]:
        messages = to_chat_messages(req)
        d = self.decoding
        with self._lock:
            chunks: Any = self._llm.create_chat_completion(
                messages=messages,  # type: ignore[arg-type]
                max_tokens=min(req.max_tokens, d.max_tokens),
                temperature=req.temperature if d.temperature is None else d.temperature,
                top_p=d.top_p,
                top_k=d.top_k,
                min_p=d.min_p,
                repeat_penalty=d.repeat_penalty,
                stop=list(d.stop),
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
            n_in = self.prompt_tokens(req)
        yield StreamEnd(Usage(input_tokens=n_in, output_tokens=n_out), finish)


@serve.deployment(max_ongoing_requests=8, ray_actor_options={"num_cpus": 0.25})
class LocalLLMDeployment:
    def __init__(
        self,
        model_path: str | None = None,
        n_threads: int = 2,
        n_ctx: int = 2048,
        decoding: Decoding | None = None,
        prompt_cache_mb: int = 0,
    ):
        self._engine = LlamaEngine(
            model_path, n_threads=n_threads, n_ctx=n_ctx, decoding=decoding, prompt_cache_mb=prompt_cache_mb
        )

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
