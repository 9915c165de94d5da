"""LLM providers behind one streaming interface (see ``base.Provider``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from services.llm.providers.base import Provider, ProviderConfig, ProviderError
from services.model_paths import LOCAL_MODEL_NAME

if TYPE_CHECKING:
    from common.settings import ProviderSettings

__all__ = ["Provider", "ProviderConfig", "ProviderError", "build_provider", "configs_from_settings"]


def build_provider(config: ProviderConfig, local_handle: Any = None, timeout_s: float = 30.0) -> Provider:
    """Instantiate one provider; SDK modules are imported only for the kinds in use."""
    if config.kind == "anthropic":
        from services.llm.providers.anthropic_provider import AnthropicProvider

        return AnthropicProvider(config, timeout_s=timeout_s)
    if config.kind in ("openai", "openai_compatible"):
        from services.llm.providers.openai_provider import OpenAIProvider

        return OpenAIProvider(config, timeout_s=timeout_s)
    if config.kind == "local":
        if local_handle is None:
            raise ValueError(
                f"provider {config.name!r}: the local provider needs a LocalLLMDeployment handle"
            )
        from services.llm.providers.local_llama import LocalProvider

        return LocalProvider(config, local_handle)
    raise ValueError(f"unknown provider kind {config.kind!r}")


# USD per million tokens (input, output, input read from the prompt cache); list prices as of
# late 2026, override per config. Anthropic's cache writes (1.25x input) are priced as input.
DEFAULT_PRICES: dict[str, tuple[float, float, float]] = {
    "claude-haiku-4-5": (1.0, 5.0, 0.10),
    "claude-sonnet-4-5": (3.0, 15.0, 0.30),
    "gpt-4o-mini": (0.15, 0.60, 0.075),
    "gpt-4o": (2.5, 10.0, 1.25),
}


def configs_from_settings(settings: ProviderSettings) -> list[ProviderConfig]:
    """The pool from configuration: a hosted provider without a key is simply not in it."""
    out: list[ProviderConfig] = []
    if settings.anthropic_api_key:
        pin, pout, pcached = DEFAULT_PRICES.get(settings.anthropic_model, (0.0, 0.0, 0.0))
        out.append(
            ProviderConfig(
                name="anthropic",
                kind="anthropic",
                model=settings.anthropic_model,
                api_key=settings.anthropic_api_key,
                base_url=settings.anthropic_base_url,
                price_in_per_mtok=pin,
                price_out_per_mtok=pout,
                price_cached_in_per_mtok=pcached,
            )
        )
    if settings.openai_api_key:
        pin, pout, pcached = DEFAULT_PRICES.get(settings.openai_model, (0.0, 0.0, 0.0))
        out.append(
            ProviderConfig(
                name="openai",
                kind="openai",
                model=settings.openai_model,
                api_key=settings.openai_api_key,
                base_url=settings.openai_base_url,
                price_in_per_mtok=pin,
                price_out_per_mtok=pout,
                price_cached_in_per_mtok=pcached,
            )
        )
    if settings.openai_compatible_url:
        out.append(
            ProviderConfig(
                name="openai_compatible",
                kind="openai_compatible",
                model=settings.openai_compatible_model,
                base_url=settings.openai_compatible_url,
            )
        )
    if settings.local_enabled:
        # the model id (cache entries and records carry it): the configured GGUF's name, if any
        model = Path(settings.local_model_path).stem if settings.local_model_path else LOCAL_MODEL_NAME
        out.append(ProviderConfig(name="local", kind="local", model=model, supports_tools=False))
    for config in out:
        config.tier = settings.tiers.get(config.name, "fast")
    return out
