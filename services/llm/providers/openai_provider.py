"""OpenAI chat.completions streaming (the openai SDK); also any OpenAI-compatible server
(vLLM via Ray Serve LLM, llama.cpp server) through ``base_url``."""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator
from typing import Any

import openai

from common.llm_types import LLMRequest, ToolCall, Usage
from services.llm.providers.base import (
    Provider,
    ProviderConfig,
    ProviderError,
    ProviderItem,
    StreamEnd,
    TextDelta,
    ToolCallOut,
    is_retryable_status,
)


def to_openai_messages(request: LLMRequest) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    if request.system:
        messages.append({"role": "system", "content": request.system})
    for m in request.messages:
        if m.role == "tool":
            messages.append({"role": "tool", "tool_call_id": m.tool_call_id or "", "content": m.content})
        elif m.role == "assistant" and m.tool_calls:
            messages.append(
                {
                    "role": "assistant",
                    "content": m.content or None,
                    "tool_calls": [
                        {
                            "id": c.id,
                            "type": "function",
                            "function": {"name": c.name, "arguments": json.dumps(c.arguments)},
                        }
                        for c in m.tool_calls
                    ],
                }
            )
        else:
            messages.append({"role": m.role, "content": m.content})
    return messages


def parse_arguments(provider: str, raw: str) -> dict[str, Any]:
    try:
        value = json.loads(raw or "{}")
    except json.JSONDecodeError as exc:
        raise ProviderError(provider, f"tool call arguments are not JSON: {exc}", retryable=False) from exc
    return value if isinstance(value, dict) else {"value": value}


class OpenAIProvider(Provider):
    def __init__(self, config: ProviderConfig, timeout_s: float = 30.0):
        super().__init__(config)
        base_url = config.base_url
        if config.kind == "openai_compatible" and not base_url:
            raise ValueError(f"provider {config.name!r}: openai_compatible needs base_url")
        # The router owns retries and timeouts; the SDK must not retry behind its back.
        self._client = openai.AsyncOpenAI(
            api_key=config.api_key or "not-needed",
            base_url=base_url,
            max_retries=0,
            timeout=timeout_s,  # a float: SDK majors differ on the httpx flavour
        )

    async def stream(self, request: LLMRequest) -> AsyncGenerator[ProviderItem, None]:
        kwargs: dict[str, Any] = {
            "model": self.config.model,
            "messages": to_openai_messages(request),
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if request.tools and self.config.supports_tools:
            kwargs["tools"] = [
                {
                    "type": "function",
                    "function": {"name": t.name, "description": t.description, "parameters": t.parameters},
                }
                for t in request.tools
            ]
        usage = Usage()
        finish: str | None = None
        calls: dict[int, dict[str, str]] = {}
        try:
            stream = await self._client.chat.completions.create(**kwargs)
            async with stream:
                async for chunk in stream:
                    if chunk.usage is not None:
                        # OpenAI caches prompt prefixes of 1,024+ tokens by itself; the part of
                        # the prompt it read from the cache comes back here
                        details = chunk.usage.prompt_tokens_details
                        usage = Usage(
                            input_tokens=chunk.usage.prompt_tokens or 0,
                            output_tokens=chunk.usage.completion_tokens or 0,
                            cached_input_tokens=(details.cached_tokens or 0) if details else 0,
                        )
                    for choice in chunk.choices:
                        delta = choice.delta
                        if delta.content:
                            yield TextDelta(delta.content)
                        for tc in delta.tool_calls or []:
                            slot = calls.setdefault(tc.index, {"id": "", "name": "", "arguments": ""})
                            if tc.id:
                                slot["id"] = tc.id
                            if tc.function is not None:
                                slot["name"] += tc.function.name or ""
                                slot["arguments"] += tc.function.arguments or ""
                        if choice.finish_reason:
                            finish = choice.finish_reason
        except openai.APIStatusError as exc:
            raise ProviderError(
                self.name,
                f"HTTP {exc.status_code}",
                retryable=is_retryable_status(exc.status_code),
                status=exc.status_code,
            ) from exc
        except openai.APIConnectionError as exc:  # includes APITimeoutError
            raise ProviderError(self.name, f"connection: {type(exc).__name__}", retryable=True) from exc
        except openai.APIError as exc:  # an error event inside the stream
            raise ProviderError(self.name, f"stream error: {exc.message}", retryable=False) from exc
        for _, slot in sorted(calls.items()):
            yield ToolCallOut(
                ToolCall(
                    id=slot["id"], name=slot["name"], arguments=parse_arguments(self.name, slot["arguments"])
                )
            )
        yield StreamEnd(usage=usage, finish_reason=finish)

    async def aclose(self) -> None:
        await self._client.close()
