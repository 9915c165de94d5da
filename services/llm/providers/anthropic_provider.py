"""Anthropic messages streaming (the anthropic SDK)."""

from __future__ import annotations

import inspect
from collections.abc import AsyncGenerator
from typing import Any

import anthropic

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
from services.llm.providers.openai_provider import parse_arguments


def to_anthropic_messages(request: LLMRequest) -> list[dict[str, Any]]:
    """Anthropic wants alternating roles, tool results as user content blocks."""
    out: list[dict[str, Any]] = []
    for m in request.messages:
        if m.role == "tool":
            role = "user"
            blocks: list[dict[str, Any]] = [
                {"type": "tool_result", "tool_use_id": m.tool_call_id or "", "content": m.content}
            ]
        elif m.role == "assistant":
            role = "assistant"
            blocks = [{"type": "text", "text": m.content}] if m.content else []
            blocks += [
                {"type": "tool_use", "id": c.id, "name": c.name, "input": c.arguments} for c in m.tool_calls
            ]
        else:
            role = "user"
            blocks = [{"type": "text", "text": m.content}]
        if out and out[-1]["role"] == role:
            out[-1]["content"].extend(blocks)
        else:
            out.append({"role": role, "content": blocks})
    return out


class AnthropicProvider(Provider):
    def __init__(self, config: ProviderConfig, timeout_s: float = 30.0):
        super().__init__(config)
        self._client = anthropic.AsyncAnthropic(
            api_key=config.api_key or "not-needed",
            base_url=config.base_url,
            max_retries=0,
            timeout=timeout_s,  # a float: SDK majors differ on the httpx flavour
        )
        # Newer SDK majors dropped ``temperature`` from messages.create; send it only where accepted.
        self._accepts_temperature = (
            "temperature" in inspect.signature(self._client.messages.create).parameters
        )

    async def stream(self, request: LLMRequest) -> AsyncGenerator[ProviderItem, None]:
        kwargs: dict[str, Any] = {
            "model": self.config.model,
            "messages": to_anthropic_messages(request),
            "max_tokens": request.max_tokens,
            "stream": True,
        }
        if self._accepts_temperature:
            kwargs["temperature"] = request.temperature
        if request.system:
            # One cache breakpoint at the end of the system text: Anthropic caches the prefix up to
            # it (tools, then system), so a call's later turns in the same state, whose system text
            # changes only when a slot is captured, are read from the cache (prefixes of at least
            # the model's minimum, 1,024-4,096 tokens; shorter ones are simply not cached).
            kwargs["system"] = [
                {"type": "text", "text": request.system, "cache_control": {"type": "ephemeral"}}
            ]
        if request.tools and self.config.supports_tools:
            kwargs["tools"] = [
                {"name": t.name, "description": t.description, "input_schema": t.parameters}
                for t in request.tools
            ]
        input_tokens = output_tokens = cached_tokens = 0
        finish: str | None = None
        tool_blocks: dict[int, dict[str, str]] = {}
        try:
            stream = await self._client.messages.create(**kwargs)
            async with stream:
                async for event in stream:
                    etype = event.type
                    if etype == "content_block_delta":
                        delta = event.delta
                        if delta.type == "text_delta":
                            if delta.text:
                                yield TextDelta(delta.text)
                        elif delta.type == "input_json_delta" and event.index in tool_blocks:
                            tool_blocks[event.index]["arguments"] += delta.partial_json
                    elif etype == "content_block_start" and event.content_block.type == "tool_use":
                        block = event.content_block
                        tool_blocks[event.index] = {"id": block.id, "name": block.name, "arguments": ""}
                    elif etype == "content_block_stop" and event.index in tool_blocks:
                        slot = tool_blocks.pop(event.index)
                        yield ToolCallOut(
                            ToolCall(
                                id=slot["id"],
                                name=slot["name"],
                                arguments=parse_arguments(self.name, slot["arguments"]),
                            )
                        )
                    elif etype == "message_start":
                        # Anthropic's input_tokens leaves out what was read from or written to
                        # the cache; Usage counts the whole prompt, the part read from the cache too
                        u = event.message.usage
                        cached_tokens = u.cache_read_input_tokens or 0
                        input_tokens = (
                            (u.input_tokens or 0) + cached_tokens + (u.cache_creation_input_tokens or 0)
                        )
                        output_tokens = u.output_tokens or 0
                    elif etype == "message_delta":
                        finish = event.delta.stop_reason or finish
                        output_tokens = event.usage.output_tokens or output_tokens
        except anthropic.APIStatusError as exc:
            raise ProviderError(
                self.name,
                f"HTTP {exc.status_code}",
                retryable=is_retryable_status(exc.status_code),
                status=exc.status_code,
            ) from exc
        except anthropic.APIConnectionError as exc:  # includes APITimeoutError
            raise ProviderError(self.name, f"connection: {type(exc).__name__}", retryable=True) from exc
        except anthropic.APIError as exc:
            raise ProviderError(self.name, f"stream error: {exc.message}", retryable=False) from exc
        usage = Usage(
            input_tokens=input_tokens, output_tokens=output_tokens, cached_input_tokens=cached_tokens
        )
        yield StreamEnd(usage=usage, finish_reason=finish)

    async def aclose(self) -> None:
        await self._client.close()
