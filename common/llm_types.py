"""Wire types of the LLM router: the request a caller sends and the events it streams back.

Pure pydantic, no Ray: a call builds an ``LLMRequest`` and reads the events that the router's
``stream`` yields; they cross Serve as these objects.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

Policy = Literal["single", "race", "hedge"]
Tier = Literal["fast", "strong"]


class ToolSpec(BaseModel):
    """A function the model may call (schemas declare them per state)."""

    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$")
    description: str = ""
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})


class ToolCall(BaseModel):
    id: str
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)


class ChatMessage(BaseModel):
    role: Literal["user", "assistant", "tool"]
    content: str = ""
    tool_calls: list[ToolCall] = Field(default_factory=list, description="Calls an assistant turn made.")
    tool_call_id: str | None = Field(None, description="For role='tool': the call this result answers.")


class LLMRequest(BaseModel):
    messages: list[ChatMessage] = Field(min_length=1)
    system: str | None = None
    tools: list[ToolSpec] = Field(default_factory=list)
    max_tokens: int = Field(256, ge=1, le=8192)
    temperature: float = Field(0.3, ge=0.0, le=2.0)
    policy: Policy | None = Field(None, description="Override the router's default policy for this request.")
    tier: Tier | None = Field(None, description="Tier hint; None = decided by cheap heuristics.")
    hedge_delay_ms: float | None = Field(None, ge=0, description="Override the hedge delay for this request.")
    providers: list[str] | None = Field(None, description="Restrict the pool to these provider names.")
    call_id: str | None = Field(None, description="For logs and metrics only.")
    state: str | None = Field(None, description="Schema state, for per-state policy and metrics.")


class Usage(BaseModel):
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = Field(0, description="Of input_tokens, read from the provider's prompt cache.")


class RouteEvent(BaseModel):
    """First event of every stream: what the router decided and why."""

    type: Literal["route"] = "route"
    policy: Policy
    tier: Tier
    tier_reason: str
    candidates: list[str]
    hedge_delay_ms: float | None = None


class TokenEvent(BaseModel):
    type: Literal["token"] = "token"
    text: str
    provider: str


class ToolCallEvent(BaseModel):
    type: Literal["tool_call"] = "tool_call"
    call: ToolCall
    provider: str


class DoneEvent(BaseModel):
    type: Literal["done"] = "done"
    provider: str
    model: str
    text: str = Field("", description="The whole reply text (the tokens joined).")
    finish_reason: str | None = None
    usage: Usage = Field(default_factory=Usage)
    ttft_ms: float = Field(description="The winning provider's own time to first token.")
    router_ttft_ms: float = Field(description="Request received by the router → first token yielded.")
    total_ms: float
    tokens_per_s: float | None = None
    cost_usd: float = 0.0
    policy: Policy
    tier: Tier
    launched: list[str] = Field(description="Every provider a request was sent to, in order.")
    errors: dict[str, str] = Field(
        default_factory=dict, description="Provider → error, for those that failed."
    )


class ErrorEvent(BaseModel):
    type: Literal["error"] = "error"
    message: str
    errors: dict[str, str] = Field(default_factory=dict)
    launched: list[str] = Field(default_factory=list)


LLMEvent = Annotated[
    RouteEvent | TokenEvent | ToolCallEvent | DoneEvent | ErrorEvent, Field(discriminator="type")
]


class Completion(BaseModel):
    """A whole request's outcome (``LLMRouter.complete``): its last event, tool calls and route."""

    result: DoneEvent | ErrorEvent = Field(discriminator="type")
    tool_calls: list[ToolCall] = Field(default_factory=list)
    route: RouteEvent | None = None


_QUESTION_WORDS = re.compile(r"\b(why|how|explain|compare|difference|what if|which)\b", re.IGNORECASE)


def choose_tier(request: LLMRequest, simple_words: int = 20, complex_words: int = 50) -> tuple[Tier, str]:
    """Cheap heuristics: short, single-question turns go to the fast tier.

    Returns the tier and a short reason that the router records in its route event.
    """
    if request.tier is not None:
        return request.tier, "hint"
    last_user = next((m.content for m in reversed(request.messages) if m.role == "user"), "")
    words = len(last_user.split())
    questions = last_user.count("?")
    if request.tools and any(m.role == "tool" for m in request.messages[-2:]):
        return "strong", "tool_result_follow_up"
    if words > complex_words:
        return "strong", f"long_turn:{words}w"
    if questions > 1:
        return "strong", f"multi_question:{questions}"
    if words >= simple_words and _QUESTION_WORDS.search(last_user):
        return "strong", "reasoning_question"
    return "fast", f"short_turn:{words}w"
