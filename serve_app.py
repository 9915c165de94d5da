"""voxray's Ray Serve application.

    serve run serve_app:app                      # local, CPU, offline models
    serve deploy cluster/serve_config.yaml       # a cluster (per-deployment autoscaling/resources)

One application, ``voxray``: the FastAPI ingress plus the STT, TTS, semantic cache and LLM
router deployments it composes. Call hosts (Ray actors) reach the deployments by name.
"""

from __future__ import annotations

from typing import Any

from ray.serve import Application

from deployments.ingress import Ingress
from deployments.llm_router import build_router_app
from deployments.semantic_cache import SemanticCacheDeployment
from deployments.stt import build_stt_app
from deployments.tts import build_tts_app
from engine.schema_loader import SchemaRegistry
from engine.settings import VoxraySettings, cache_key_prefix, get_settings


def build_app(args: dict[str, Any] | None = None) -> Application:
    """Serve application builder (``serve run serve_app:build_app key=value`` passes ``args``)."""
    settings = VoxraySettings(**args) if args else get_settings()
    registry = SchemaRegistry.from_directory(settings.schemas.directory)
    # Static lines (fillers, fallbacks, fixed replies) are synthesised once per TTS replica.
    phrases = sorted({p for name in registry.names() for p in registry.get(name).static_phrases()})
    return Ingress.bind(
        build_stt_app(),
        build_tts_app(phrases=phrases),
        SemanticCacheDeployment.bind(key_prefix=cache_key_prefix(settings.calls.key_prefix)),
        build_router_app(),
        settings=args or None,
    )


app = build_app()
