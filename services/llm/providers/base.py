"""The one streaming interface every LLM provider implements, and its configuration.

``Provider.stream`` is an async generator of ``TextDelta`` / ``ToolCallOut`` items ending with
one ``StreamEnd``. The router consumes each provider's generator inside one task it owns; to
cancel a provider it cancels that task, and the generator's ``async with`` closes the HTTP
response in that same task (closing an async generator from another task fails).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, Field

from common.llm_types import LLMRequest, Tier, ToolCall, Usage

ProviderKind = Literal["anthropic", "openai", "openai_compatible", "local"]


class ProviderConfig(BaseModel):
    name: str = Field(description="Unique name in the pool, used in events and stats.")
    kind: ProviderKind
    model: str
    base_url: str | None = None
    api_key: str | None = None
    tier: Tier = Field("fast", description="Which tier this provider serves.")
    price_in_per_mtok: float = Field(0.0, ge=0, description="USD per million input tokens.")
    price_out_per_mtok: float = Field(0.0, ge=0, description="USD per million output tokens.")
    price_cached_in_per_mtok: float | None = Field(
        None, ge=0, description="USD per million input tokens read from the prompt cache; None = input price."
    )
    max_concurrency: int | None = Field(None, ge=1, description="None = the router default.")
    first_token_timeout_s: float | None = Field(None, gt=0, description="None = the router default.")
    total_timeout_s: float | None = Field(None, gt=0, description="None = the router default.")
    supports_tools: bool = True

    def cost_usd(self, usage: Usage) -> float:
        cached = min(usage.cached_input_tokens, usage.input_tokens)
        cached_price = (
            self.price_in_per_mtok if self.price_cached_in_per_mtok is None else self.price_cached_in_per_mtok
        )
        return (
            (usage.input_tokens - cached) * self.price_in_per_mtok
            + cached * cached_price
            + usage.output_tokens * self.price_out_per_mtok
        ) / 1e6


@dataclass(slots=True)
class TextDelta:
    text: str


@dataclass(slots=True)
class ToolCallOut:
    call: ToolCall


@dataclass(slots=True)
class StreamEnd:
    usage: Usage = field(default_factory=Usage)
    finish_reason: str | None = None


ProviderItem = TextDelta | ToolCallOut | StreamEnd


class ProviderError(Exception):
    """A provider failure, classified so the router knows whether a retry may help."""

    def __init__(self, provider: str, message: str, *, retryable: bool, status: int | None = None):
        super().__init__(f"{provider}: {message}")
        self.provider = provider
        self.retryable = retryable
        self.status = status


def is_retryable_status(status: int) -> bool:
    return status in (408, 409, 429) or status >= 500


class Provider(ABC):
    def __init__(self, config: ProviderConfig):
        self.config = config

    @property
    def name(self) -> str:
        return self.config.name

    @abstractmethod
    def stream(self, request: LLMRequest) -> AsyncGenerator[ProviderItem, None]:
        """Stream one reply. Raises ``ProviderError`` on failure."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook, default no-op
        """Release connection pools."""
