"""CallHost: a long-lived Ray actor that runs many calls as plain objects.

A Ray actor process per call costs ~0.4 s CPU and 50-90 MB and goes through the GCS, so a
host keeps a dict of ``Call`` objects instead, addressable by call id. A call's state is in
Redis after every turn, so when a host dies any ingress replica can resume its calls on
another host (``actors/host_pool.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import ray
from ray.util import metrics as ray_metrics

from actors import metrics
from actors.call import Call
from actors.cost import Rates
from actors.redact import Redactor, pii_values
from actors.reply import CacheClient, LLMClient, ReplyPolicy, ReplySourcer
from actors.store import RECORD_TTL_S, CallStore
from actors.understanding import Understanders, nlu_llm
from actors.webhooks import WebhookSender, destination_of, new_delivery, record_payload
from common import log_context, tracing
from common.events import (
    AnsweredBy,
    AnswerVerdict,
    CallerTurn,
    CallOpened,
    CallRefused,
    EndReason,
    HostLoad,
    TurnDone,
    TurnEvent,
)
from common.settings import TracingSettings, WebhookSettings
from engine.answer_flow import AnswerFlow, listens_first
from engine.call_state import CallState
from engine.conversation import Conversation
from engine.nlu.intents import TextEmbedder
from engine.recording_policy import RecordingMode, RecordingPolicy, recording_policy
from engine.schema_errors import CallDataError
from engine.schema_loader import SchemaRegistry
from engine.schema_model import AudioCleanup

log = logging.getLogger("voxray.host")


class CallNotFound(KeyError):
    """The call is not live on this host (it ended, or it runs elsewhere)."""


@dataclass(frozen=True)
class HostConfig:
    """What every call host is built with (handed down from ``serve_app.build_app``)."""

    redis_url: str | None
    key_prefix: str
    schema_dir: Path
    cache: CacheClient
    llm: LLMClient
    reply: ReplyPolicy = field(default_factory=ReplyPolicy)
    embedder: TextEmbedder | None = None  # intents scored with embeddings too (the cache deployment's)
    nlu_llm_providers: tuple[str, ...] = ()  # capable providers the NLU may ask about unsure turns
    nlu_llm_timeout_s: float = 2.5
    rates: Rates = field(default_factory=Rates)  # what a call's minutes, characters and tokens cost
    tier_map: dict[str, str] = field(default_factory=dict)  # what "strong" / "premium" are here
    webhooks: WebhookSettings = field(default_factory=WebhookSettings)  # signing, retries, allow-list
    record_ttl_s: int = RECORD_TTL_S  # records, the calls index and dead letters expire after this
    max_live_calls: int = 500  # a host refuses new calls beyond this (the pool tries another)
    idle_call_timeout_s: float = 600.0  # a call with no turn for this long is ended (EndReason.IDLE)
    max_turns_per_call: int = 200  # turns a call records; later ones are refused (bounded memory)
    recording_mode: RecordingMode = "schema"  # calls recorded as their schema says, or forced on/off
    tracing: TracingSettings = field(default_factory=TracingSettings)  # OpenTelemetry spans per call/turn


class CallHostCore:
    """The host's logic without Ray, so it can be tested and embedded directly."""

    def __init__(self, name: str, config: HostConfig, actor_id: str = ""):
        self.name = name
        self.actor_id = actor_id  # this incarnation of the named host (routes record it)
        self.config = config
        self.registry = SchemaRegistry.shared(config.schema_dir)
        self.store = (
            CallStore(config.redis_url, config.key_prefix, config.record_ttl_s) if config.redis_url else None
        )
        self.webhooks = WebhookSender(self.store, name, config.webhooks) if self.store else None
        self.replies = ReplySourcer(config.cache, config.llm, config.reply)
        self.understanders = Understanders(
            config.embedder,
            nlu_llm(config.llm, list(config.nlu_llm_providers), config.nlu_llm_timeout_s),
        )
        self.calls: dict[str, Call] = {}
        self.completed = 0
        self._resuming: dict[str, asyncio.Future[None]] = {}
        self._ending: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._webhook_task: asyncio.Task[None] | None = None
        self._reaper_task: asyncio.Task[None] | None = None
        self._idle_task: asyncio.Task[None] | None = None
        self._schemas_checked = time.monotonic()

    def _ensure_background(self) -> None:
        if self._idle_task is None:
            self._idle_task = asyncio.get_running_loop().create_task(self._end_idle_calls())
        if self.webhooks is not None and self._webhook_task is None:
            loop = asyncio.get_running_loop()
            self._webhook_task = loop.create_task(self.webhooks.run())
            self._reaper_task = loop.create_task(self._reap_orphans())

    async def _call(self, call_id: str) -> Call:
        """The live call; waits for a resume of it in progress here."""
        pending = self._resuming.get(call_id)
        if pending is not None:
            await asyncio.shield(pending)
        try:
            return self.calls[call_id]
        except KeyError:
            raise CallNotFound(f"call {call_id!r} is not live on host {self.name}") from None

    def _refresh_schemas(self, every_s: float = 5.0) -> None:
        """Schemas added or changed on disk since this host started (it may outlive a redeploy):
        looked at no more than every ``every_s`` seconds, as calls start."""
        now = time.monotonic()
        if now - self._schemas_checked < every_s:
            return
        self._schemas_checked = now
        loaded = self.registry.refresh(self.config.schema_dir)
        if loaded:
            log.info("host %s loaded schemas %s from %s", self.name, loaded, self.config.schema_dir)

    async def _end_idle_calls(self) -> None:
        """End calls with no turn for ``idle_call_timeout_s``: a call whose media never
        connected, or a line gone dead, does not hold a host slot and a tenant's quota forever."""
        timeout_s = self.config.idle_call_timeout_s
        while True:
            await asyncio.sleep(min(30.0, timeout_s / 4))
            now = time.time()
            for call_id, call in list(self.calls.items()):
                if now - call.last_activity > timeout_s and self.calls.get(call_id) is call:
                    log.info("call %s idle for %.0f s: ending it", call_id, now - call.last_activity)
                    with contextlib.suppress(Exception):  # ended meanwhile, or Redis trouble: next round
                        await self.hangup(call_id, EndReason.IDLE)

    async def _reap_orphans(self, interval_s: float = 30.0) -> None:
        """Drop calls the directory has moved to another host (this host was thought dead)."""
        assert self.store is not None
        while True:
            await asyncio.sleep(interval_s)
            for call_id, call in list(self.calls.items()):
                try:
                    route = await self.store.route(call_id)
                except Exception as exc:  # Redis trouble: try again next round
                    log.warning("orphan check failed: %s", type(exc).__name__)
                    break
                if route is not None and (route.host, route.gen) != (self.name, call.gen):
                    log.warning("call %s moved to %s; dropping this host's stale copy", call_id, route.host)
                    self.calls.pop(call_id, None)

    async def start_call(
        self,
        call_id: str,
        schema: str,
        call_data: dict[str, Any],
        webhook_url: str | None = None,
        to: str | None = None,
        answering: Literal["detect", "off"] | None = None,
    ) -> CallOpened | CallRefused:
        """Validate, precompute and create the call, and enter it in the call directory.
        ``answering``: whether the call first listens for who answered (None: when dialled
        through Twilio and the schema has an ``answering:`` section)."""
        self._ensure_background()
        t0 = time.perf_counter()
        if len(self.calls) >= self.config.max_live_calls:
            return CallRefused(reason="host_full", detail=f"{self.name} holds {len(self.calls)} live calls")
        self._refresh_schemas()
        if schema not in self.registry:
            return CallRefused(
                reason="unknown_schema", detail=f"unknown schema; known: {self.registry.names()}"
            )
        try:
            compiled = self.registry.get(schema)
            understander = self.understanders.for_schema(compiled)
            conversation = Conversation.start(compiled, call_id, call_data, understander, to)
        except CallDataError as exc:
            return CallRefused(reason="invalid_call_data", problems=exc.problems)
        call = Call(
            conversation,
            self.replies,
            self.store,
            self.name,
            1,
            webhook_url,
            self.config.rates,
            self.config.tier_map,
            self.config.max_turns_per_call,
        )
        call.recording = recording_policy(compiled.spec.recording, self.config.recording_mode)
        if listens_first(compiled.spec.answering is not None, to, answering):
            call.answer_flow = AnswerFlow(compiled.spec, conversation.state.call_data, conversation.render())
        opening = call.start()
        if self.store is not None:
            blob = conversation.state.to_snapshot()
            await self.store.open_call(call_id, self.name, schema, webhook_url, blob, self.actor_id)
        self.calls[call_id] = call
        metrics.call_started(schema)
        log.info(
            "call %s started on %s: schema %s, state %s", call_id, self.name, schema, compiled.initial_state
        )
        return CallOpened(
            call_id=call_id,
            host=self.name,
            state=conversation.state.state,
            opening=opening,
            ready_ms=(time.perf_counter() - t0) * 1000,
        )

    async def resume_call(self, call_id: str, gen: int) -> None:
        """Recreate a call from its Redis snapshot as generation ``gen`` (its host died).
        Idempotent: concurrent or repeated requests share one resume."""
        self._ensure_background()
        live = self.calls.get(call_id)
        if live is not None and live.gen >= gen:
            return
        pending = self._resuming.get(call_id)
        if pending is None:
            pending = self._resuming[call_id] = asyncio.get_running_loop().create_future()
            try:
                await self._resume(call_id, gen)
                pending.set_result(None)
            except BaseException as exc:
                pending.set_exception(exc)
                pending.exception()  # retrieved here; the caller re-raises below
                raise
            finally:
                self._resuming.pop(call_id, None)
        else:
            await pending

    async def _resume(self, call_id: str, gen: int) -> None:
        if self.store is None:
            raise CallNotFound(f"call {call_id!r}: no state store to resume from")
        route = await self.store.route(call_id)
        snapshot = await self.store.load_snapshot(call_id)
        if route is None or route.status != "live" or snapshot is None:
            raise CallNotFound(f"call {call_id!r} has ended or has no snapshot")
        if (route.host, route.gen) != (self.name, gen):  # the directory moved it on meanwhile
            raise CallNotFound(f"call {call_id!r} is routed to {route.host} (generation {route.gen})")
        state = CallState.from_snapshot(snapshot[1])
        compiled = self.registry.get(state.schema)
        conversation = Conversation(compiled, state, self.understanders.for_schema(compiled))
        call = Call(
            conversation,
            self.replies,
            self.store,
            self.name,
            gen,
            route.webhook_url,
            self.config.rates,
            self.config.tier_map,
            self.config.max_turns_per_call,
        )
        call.recording = recording_policy(compiled.spec.recording, self.config.recording_mode)
        await call.snapshot()  # fences the previous generation off
        if call.superseded:
            raise CallNotFound(f"call {call_id!r} moved on past generation {gen}")
        self.calls[call_id] = call
        log.info("call %s resumed on %s (generation %d) in state %s", call_id, self.name, gen, state.state)

    async def opening(self, call_id: str) -> AsyncIterator[TurnEvent]:
        async for event in (await self._call(call_id)).opening():
            yield event

    async def answered(self, call_id: str, verdict: AnswerVerdict) -> AsyncIterator[TurnEvent]:
        """Who answered (the edge's verdict after ``ListenFirst``): the call's first words."""
        async for event in (await self._call(call_id)).answered(verdict):
            yield event

    async def turn(self, call_id: str, caller: CallerTurn) -> AsyncIterator[TurnEvent]:
        call = await self._call(call_id)
        try:
            async for event in call.turn(caller):
                if isinstance(event, TurnDone):  # ids, states and timings only: never what was said
                    log.debug(
                        "call %s turn %d (%s): %s via %s in %.0f ms",
                        call_id,
                        event.turn,
                        caller.mode,
                        event.state,
                        event.source,
                        event.stages_ms.get("turn_total", 0.0),
                    )
                yield event
        finally:
            if call.superseded and self.calls.get(call_id) is call:
                del self.calls[call_id]  # it runs on another host now

    async def complete_turn(self, call_id: str, caller: CallerTurn) -> list[TurnEvent]:
        """The same turn, its events in one reply: text mode has no audio to start early, and one
        Ray reply costs less than a stream of them."""
        return [event async for event in self.turn(call_id, caller)]

    async def interrupt(self, call_id: str, turn: int, heard_text: str) -> None:
        await (await self._call(call_id)).interrupt(turn, heard_text)

    async def hold_timeout(self, call_id: str) -> TurnDone | None:
        """The edge's hold timer ran out (``Call.hold_timeout``)."""
        return await (await self._call(call_id)).hold_timeout()

    async def note_stages(
        self, call_id: str, turn: int, stages: dict[str, float], usage: dict[str, float] | None = None
    ) -> None:
        (await self._call(call_id)).note_stages(turn, stages, usage)

    async def recording_policy(self, call_id: str) -> RecordingPolicy | None:
        """Whether the edge records this call, and for how long the recording is kept."""
        return (await self._call(call_id)).recording

    async def note_recording(self, call_id: str, location: dict[str, Any]) -> None:
        (await self._call(call_id)).note_recording(location)

    async def audio_cleanup(self, call_id: str) -> AudioCleanup:
        """What the edge does to the counterpart's audio on this call (the schema's ``audio``)."""
        return (await self._call(call_id)).conversation.schema.spec.audio

    async def note_transfer(self, call_id: str, status: str, error: str | None = None) -> None:
        (await self._call(call_id)).note_transfer(status, error)

    async def note_twilio_answer(self, call_id: str, answered_by: AnsweredBy) -> None:
        """Twilio's answering machine detection said who answered (its async callback)."""
        (await self._call(call_id)).twilio_answer = answered_by

    async def twilio_answer(self, call_id: str) -> AnsweredBy | None:
        return (await self._call(call_id)).twilio_answer

    async def hangup(self, call_id: str, reason: EndReason, note: str | None = None) -> dict[str, Any]:
        """End the call: its record and webhook delivery are written in one Redis transaction
        before the call leaves memory. Ending an ended call returns its record."""
        ending = self._ending.get(call_id)
        if ending is not None:
            return await ending
        if call_id in self._resuming:
            await asyncio.shield(self._resuming[call_id])
        call = self.calls.get(call_id)
        if call is None:
            record = await self.store.load_record(call_id) if self.store else None
            if record is None:
                raise CallNotFound(f"call {call_id!r} is not live on host {self.name}")
            return record
        ending = self._ending[call_id] = asyncio.get_running_loop().create_future()
        try:
            record = call.call_record(reason, note)
            if self.store is not None:
                webhook = self._delivery(call, record) if call.webhook_url else None
                convo = call.conversation
                earned = convo.state.contact_keys if convo.do_not_call else None
                await self.store.end_call(call_id, record, webhook, earned)
            call.closed = True  # a turn still running must not bring its snapshot back
            self.calls.pop(call_id, None)
            self.completed += 1
            log.info(
                "call %s ended (%s): outcome %s after %d turns%s",
                call_id,
                reason,
                record.get("outcome"),
                len(call.turns),
                ", webhook queued" if call.webhook_url else "",
            )
            metrics.call_completed(call.conversation.schema.name, record.get("outcome"), str(reason))
            metrics.call_cost(call.conversation.schema.name, call.cost.components())
            ending.set_result(record)
            return record
        except BaseException as exc:
            ending.set_exception(exc)
            ending.exception()
            raise
        finally:
            self._ending.pop(call_id, None)

    def _delivery(self, call: Call, record: dict[str, Any]) -> dict[str, Any]:
        """The webhook delivery of a call's record (pii values redacted when so configured)."""
        assert call.webhook_url is not None and self.webhooks is not None
        payload = record_payload(record)
        if self.config.webhooks.redact_pii:
            convo = call.conversation
            payload = Redactor(pii_values(convo.schema, convo.state.call_data)).payload(payload)
        destination = destination_of(call.webhook_url, self.webhooks.policy)
        return new_delivery(call.call_id, call.webhook_url, payload, destination)

    async def status(self, call_id: str) -> dict[str, Any]:
        return (await self._call(call_id)).status_view()

    async def performance(self, call_id: str) -> dict[str, Any]:
        return (await self._call(call_id)).performance_report()

    def list_calls(self) -> list[dict[str, Any]]:
        return [
            {
                "call_id": cid,
                "schema": c.conversation.schema.name,
                "status": c.status,
                "state": c.conversation.state.state,
            }
            for cid, c in self.calls.items()
        ]

    def load(self) -> HostLoad:
        return HostLoad(
            host=self.name,
            live_calls=len(self.calls),
            completed=self.completed,
            pid=os.getpid(),
            intent_scoring=self.understanders.scoring(),
        )

    async def aclose(self) -> None:
        """Stop the webhook sender and the orphan reaper, close connections (tests, embedding)."""
        for task in (self._webhook_task, self._reaper_task, self._idle_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        self._webhook_task = self._reaper_task = self._idle_task = None
        if self.webhooks is not None:
            await self.webhooks.aclose()
        if self.store is not None:
            await self.store.aclose()

    def warm(self) -> None:
        """Start embedding every schema's intent examples now, not on the schema's first call."""
        for name in self.registry.names():
            self.understanders.for_schema(self.registry.get(name))


@ray.remote(num_cpus=0.1, max_concurrency=10_000, max_restarts=0)  # type: ignore[call-overload]
class CallHost:
    """Ray actor wrapper of CallHostCore (async actor: every method runs on one event loop)."""

    def __init__(self, name: str, config: HostConfig):
        logging.basicConfig(level=logging.INFO)
        log_context.install()  # call_id / trace_id on the records of a turn
        tracing.configure(config.tracing)
        self.core = CallHostCore(name, config, ray.get_runtime_context().get_actor_id() or "")
        self._live = ray_metrics.Gauge(
            "voxray_call_host_live_calls", "Live calls on a call host", tag_keys=("host",)
        ).set_default_tags({"host": name})
        self._schemas_seen: set[str] = set()

    def _report(self) -> None:
        self._live.set(len(self.core.calls))
        by_schema: dict[str, int] = {}
        for call in self.core.calls.values():
            schema = call.conversation.schema.name
            by_schema[schema] = by_schema.get(schema, 0) + 1
        self._schemas_seen.update(by_schema)
        metrics.calls_active(self.core.name, by_schema, self._schemas_seen)

    async def start_call(
        self,
        call_id: str,
        schema: str,
        call_data: dict[str, Any],
        webhook_url: str | None = None,
        to: str | None = None,
        answering: Literal["detect", "off"] | None = None,
    ) -> CallOpened | CallRefused:
        result = await self.core.start_call(call_id, schema, call_data, webhook_url, to, answering)
        self._report()
        return result

    async def resume_call(self, call_id: str, gen: int) -> None:
        await self.core.resume_call(call_id, gen)
        self._report()

    async def opening(self, call_id: str) -> AsyncIterator[TurnEvent]:
        async for event in self.core.opening(call_id):
            yield event

    async def answered(self, call_id: str, verdict: AnswerVerdict) -> AsyncIterator[TurnEvent]:
        async for event in self.core.answered(call_id, verdict):
            yield event

    async def turn(self, call_id: str, caller: CallerTurn) -> AsyncIterator[TurnEvent]:
        async for event in self.core.turn(call_id, caller):
            yield event

    async def complete_turn(self, call_id: str, caller: CallerTurn) -> list[TurnEvent]:
        return await self.core.complete_turn(call_id, caller)

    async def interrupt(self, call_id: str, turn: int, heard_text: str) -> None:
        await self.core.interrupt(call_id, turn, heard_text)

    async def hold_timeout(self, call_id: str) -> TurnDone | None:
        return await self.core.hold_timeout(call_id)

    async def note_stages(
        self, call_id: str, turn: int, stages: dict[str, float], usage: dict[str, float] | None = None
    ) -> None:
        await self.core.note_stages(call_id, turn, stages, usage)

    async def recording_policy(self, call_id: str) -> RecordingPolicy | None:
        return await self.core.recording_policy(call_id)

    async def note_recording(self, call_id: str, location: dict[str, Any]) -> None:
        await self.core.note_recording(call_id, location)

    async def audio_cleanup(self, call_id: str) -> AudioCleanup:
        return await self.core.audio_cleanup(call_id)

    async def note_transfer(self, call_id: str, status: str, error: str | None = None) -> None:
        await self.core.note_transfer(call_id, status, error)

    async def note_twilio_answer(self, call_id: str, answered_by: AnsweredBy) -> None:
        await self.core.note_twilio_answer(call_id, answered_by)

    async def twilio_answer(self, call_id: str) -> AnsweredBy | None:
        return await self.core.twilio_answer(call_id)

    async def hangup(self, call_id: str, reason: EndReason, note: str | None = None) -> dict[str, Any]:
        record = await self.core.hangup(call_id, reason, note)
        self._report()
        return record

    async def status(self, call_id: str) -> dict[str, Any]:
        return await self.core.status(call_id)

    async def performance(self, call_id: str) -> dict[str, Any]:
        return await self.core.performance(call_id)

    async def list_calls(self) -> list[dict[str, Any]]:
        return self.core.list_calls()

    async def load(self) -> HostLoad:
        self.core.warm()  # the pools ask every host for its load when they start
        return self.core.load()
