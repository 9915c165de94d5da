"""voxray's Ray Serve application: the composition.

    serve run serve_app:app                      # local, CPU, offline models
    serve run serve_app:build_app calls.call_hosts=4 ...
    serve deploy cluster/serve_config.yaml       # a cluster (per-deployment autoscaling/resources)

One application, ``voxray``: the model services (STT, TTS, embeddings + reply cache, LLM
router) are bound here and their clients handed to the ingress, which hands the cache and LLM
clients on to the call hosts. Settings are read once, here, and passed down.
"""

from __future__ import annotations

from typing import Any

from ray.serve import Application

from common.settings import VoxraySettings, get_settings
from edge.ingress import Ingress
from engine.schema_loader import SchemaRegistry
from services.cache.service import build_cache_app
from services.clients import CacheClient, LLMClient, STTClient, TTSClient
from services.llm.service import build_router_app
from services.stt import build_stt_app
from services.tts import build_tts_app


def build_app(
    settings: VoxraySettings | dict[str, Any] | None = None, ingress_options: dict[str, Any] | None = None
) -> Application:
    """The application for ``settings`` (``serve run serve_app:build_app key=value`` passes a
    dict: dotted keys set nested sections, e.g. ``calls.call_hosts=4``). ``ingress_options``
    override the ingress deployment's options (replicas, autoscaling)."""
    if isinstance(settings, dict):
        settings = VoxraySettings(**_nested(settings))
    settings = settings or get_settings()
    registry = SchemaRegistry.shared(settings.schemas.directory)
    # Static lines (fillers, fallbacks, fixed replies) are synthesised once per TTS replica.
    phrases = sorted({p for name in registry.names() for p in registry.get(name).static_phrases()})
    prefix = settings.calls.key_prefix
    ingress: Any = Ingress.options(**ingress_options) if ingress_options else Ingress  # type: ignore[attr-defined]
    cache = CacheClient(
        build_cache_app(settings.cache, settings.redis_url, prefix), settings.redis_url, prefix
    )
    return ingress.bind(  # type: ignore[no-any-return]
        settings,
        STTClient(build_stt_app(settings.stt)),
        TTSClient(build_tts_app(settings.tts, phrases=phrases)),
        cache,
        LLMClient(build_router_app(settings.providers, settings.router)),
        cache,  # its deployment's MiniLM also embeds turns for intent scoring
    )


def _nested(args: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in args.items():
        *path, leaf = key.split(".")
        node = out
        for part in path:
            node = node.setdefault(part, {})
        node[leaf] = value
    return out


app = build_app()
