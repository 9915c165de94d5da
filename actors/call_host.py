"""CallHost: a long-lived Ray actor that runs many calls as asyncio tasks.

A Ray actor process per call costs ~0.4 s CPU and 50-90 MB and goes through the GCS, so a
host keeps a dict of CallActor objects instead, addressable by call id. A call's state is in
Redis after every turn, so when a host dies the pool resumes its calls on another host.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import ray
from ray.util import metrics

from actors import metrics as voxray_metrics
from actors.call_actor import CallActor, Services
from actors.services import APP_NAME, ServeServices
from actors.store import CallStore
from actors.webhooks import WebhookSender
from engine.call_state import CallState
from engine.conversation import Conversation
from engine.schema_errors import CallDataError
from engine.schema_loader import SchemaRegistry
from engine.settings import cache_key_prefix, get_settings

log = logging.getLogger("voxray.host")


class CallNotFound(KeyError):
    pass


class CallHostCore:
    """The host's logic without Ray, so it can be tested and embedded directly."""

    def __init__(
        self,
        name: str,
        services: Services,
        redis_url: str | None,
        key_prefix: str = "voxray:",
        schema_dir: str | Path | None = None,
    ):
        self.name = name
        self.services = services
        self.registry = SchemaRegistry.from_directory(schema_dir or get_settings().schemas.directory)
        self.store = CallStore(redis_url, key_prefix) if redis_url else None
        self.webhooks = WebhookSender(self.store, worker=name) if self.store else None
        self.calls: dict[str, CallActor] = {}
        self.cache_prefix = cache_key_prefix(key_prefix)
        self.semantic_head_start_s = get_settings().cache.semantic_head_start_ms / 1000
        self.completed = 0
        self._webhook_task: asyncio.Task[None] | None = None

    def _ensure_background(self) -> None:
        if self.webhooks is not None and self._webhook_task is None:
            self._webhook_task = asyncio.get_running_loop().create_task(self.webhooks.run())

    def _call(self, call_id: str) -> CallActor:
        try:
            return self.calls[call_id]
        except KeyError:
            raise CallNotFound(f"call {call_id!r} is not live on host {self.name}") from None

    def _new_actor(self, conversation: Conversation, webhook_url: str | None) -> CallActor:
        return CallActor(
            conversation,
            self.services,
            self.store,
            self.name,
            webhook_url,
            self.cache_prefix,
            semantic_head_start_s=self.semantic_head_start_s,
        )

    async def start_call(
        self, call_id: str, schema: str, call_data: dict[str, Any], webhook_url: str | None = None
    ) -> dict[str, Any]:
        """Validate, precompute and create the call; returns its opening lines, or the errors."""
        self._ensure_background()
        t0 = time.perf_counter()
        if schema not in self.registry:
            return {
                "error": "unknown_schema",
                "detail": f"unknown schema {schema!r}",
                "known": self.registry.names(),
            }
        try:
            conversation = Conversation.start(self.registry.get(schema), call_id, call_data)
        except CallDataError as exc:
            return {"error": "invalid_call_data", "problems": exc.problems}
        actor = self._new_actor(conversation, webhook_url)
        self.calls[call_id] = actor
        opening = await actor.opening()
        return {
            "call_id": call_id,
            "host": self.name,
            "state": conversation.state.state,
            "opening": opening,
            "ready_ms": (time.perf_counter() - t0) * 1000,
        }

    async def resume_call(self, call_id: str, webhook_url: str | None = None) -> dict[str, Any]:
        """Recreate a call from its Redis snapshot (after its host died)."""
        if call_id in self.calls:
            return {"call_id": call_id, "host": self.name, "resumed": False}
        if self.store is None:
            raise CallNotFound(f"call {call_id!r}: no state store to resume from")
        blob = await self.store.load_snapshot(call_id)
        if blob is None:
            raise CallNotFound(f"call {call_id!r} has no snapshot")
        state = CallState.from_snapshot(blob)
        conversation = Conversation(self.registry.get(state.schema), state)
        self.calls[call_id] = self._new_actor(conversation, webhook_url)
        await self.store.save_snapshot(call_id, blob, self.name)
        log.info("call %s resumed on %s in state %s", call_id, self.name, state.state)
        return {"call_id": call_id, "host": self.name, "resumed": True, "state": state.state}

    async def text_turn(self, call_id: str, text: str) -> dict[str, Any]:
        return await self._call(call_id).text_turn(text)

    async def audio_turn(
        self,
        call_id: str,
        pcm16_16k: bytes,
        speech_end_at: float | None = None,
        during_playback: bool = False,
    ) -> AsyncIterator[dict[str, Any]]:
        async for event in self._call(call_id).audio_turn(pcm16_16k, speech_end_at, during_playback):
            yield event

    async def speak(self, call_id: str, lines: list[str]) -> AsyncIterator[dict[str, Any]]:
        """Audio for lines the call already decided to say (the opening)."""
        actor = self._call(call_id)
        for i, line in enumerate(lines):
            async for chunk in actor.services.speak(line, actor.encoding):
                yield {"type": "audio", "audio": chunk["audio"], "text": line, "mark": f"open{i}"}

    def barge_in(self, call_id: str, heard_text: str) -> None:
        self._call(call_id).barge_in(heard_text)

    async def hangup(self, call_id: str, reason: str = "hangup") -> dict[str, Any]:
        """End the call: store its record and queue the webhook. Ending an ended call is not an error."""
        actor = self.calls.pop(call_id, None)
        if actor is None:
            record = await self.store.load_record(call_id) if self.store else None
            if record is None:
                raise CallNotFound(f"call {call_id!r} is not live on host {self.name}")
            return record
        if actor.status == "active":
            actor.status = "ended"
        record = {**actor.call_record(), "end_reason": reason}
        self.completed += 1
        if self.store is not None:
            await self.store.save_record(call_id, record)
            if actor.webhook_url and self.webhooks is not None:
                await self.webhooks.enqueue(call_id, actor.webhook_url, record)
        return record

    def status(self, call_id: str) -> dict[str, Any]:
        return self._call(call_id).status_view()

    def performance(self, call_id: str) -> dict[str, Any]:
        return self._call(call_id).performance_report()

    def list_calls(self) -> list[dict[str, Any]]:
        return [
            {
                "call_id": cid,
                "schema": a.conversation.schema.name,
                "status": a.status,
                "state": a.conversation.state.state,
            }
            for cid, a in self.calls.items()
        ]

    def load(self) -> dict[str, Any]:
        return {
            "host": self.name,
            "live_calls": len(self.calls),
            "completed": self.completed,
            "pid": os.getpid(),
        }


@ray.remote(num_cpus=0.1, max_concurrency=10_000, max_restarts=0)
class CallHost:
    """Ray actor wrapper of CallHostCore (async actor: every method runs on one event loop)."""

    def __init__(
        self, name: str, redis_url: str | None, key_prefix: str = "voxray:", app_name: str = APP_NAME
    ):
        logging.basicConfig(level=logging.INFO)
        self.core = CallHostCore(name, ServeServices(app_name), redis_url, key_prefix)
        self._live = metrics.Gauge(
            "voxray_call_host_live_calls", "Live calls on a call host", tag_keys=("host",)
        ).set_default_tags({"host": name})
        self._schemas_seen: set[str] = set()

    def _report(self) -> None:
        self._live.set(len(self.core.calls))
        by_schema: dict[str, int] = {}
        for actor in self.core.calls.values():
            schema = actor.conversation.schema.name
            by_schema[schema] = by_schema.get(schema, 0) + 1
        self._schemas_seen.update(by_schema)
        voxray_metrics.calls_active(self.core.name, by_schema, self._schemas_seen)

    async def start_call(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        result = await self.core.start_call(*args, **kwargs)
        if "error" not in result:
            voxray_metrics.call_started(self.core.calls[result["call_id"]].conversation.schema.name)
        self._report()
        return result

    async def resume_call(self, call_id: str, webhook_url: str | None = None) -> dict[str, Any]:
        result = await self.core.resume_call(call_id, webhook_url)
        self._report()
        return result

    async def text_turn(self, call_id: str, text: str) -> dict[str, Any]:
        return await self.core.text_turn(call_id, text)

    async def audio_turn(
        self,
        call_id: str,
        pcm16_16k: bytes,
        speech_end_at: float | None = None,
        during_playback: bool = False,
    ) -> AsyncIterator[dict[str, Any]]:
        async for event in self.core.audio_turn(call_id, pcm16_16k, speech_end_at, during_playback):
            yield event

    async def speak(self, call_id: str, lines: list[str]) -> AsyncIterator[dict[str, Any]]:
        async for event in self.core.speak(call_id, lines):
            yield event

    async def barge_in(self, call_id: str, heard_text: str) -> None:
        self.core.barge_in(call_id, heard_text)

    async def hangup(self, call_id: str, reason: str = "hangup") -> dict[str, Any]:
        was_live = call_id in self.core.calls
        record = await self.core.hangup(call_id, reason)
        if was_live:
            voxray_metrics.call_completed(str(record.get("schema")), record.get("outcome"), reason)
        self._report()
        return record

    async def status(self, call_id: str) -> dict[str, Any]:
        return self.core.status(call_id)

    async def performance(self, call_id: str) -> dict[str, Any]:
        return self.core.performance(call_id)

    async def list_calls(self) -> list[dict[str, Any]]:
        return self.core.list_calls()

    async def load(self) -> dict[str, Any]:
        return self.core.load()

    async def webhook_stats(self) -> dict[str, Any]:
        hooks = self.core.webhooks
        pending = await self.core.store.pending_webhooks() if self.core.store else 0
        return {
            "delivered": hooks.delivered if hooks else 0,
            "failed_attempts": hooks.failed_attempts if hooks else 0,
            "pending": pending,
        }
