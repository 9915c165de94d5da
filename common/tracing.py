"""OpenTelemetry traces of calls: ``call`` → ``turn`` → ``stt`` / ``nlu`` / ``cache`` / ``llm`` / ``tts``.

Off by default, at no cost: nothing here is set up unless ``configure`` is called with tracing
enabled, ``call_trace`` then returns ``None`` and a call makes one ``if`` per turn. When on,
each process (call host, ingress) has its own SDK ``TracerProvider`` exporting over OTLP/HTTP.

Spans are built on the call host when a turn is finished, from the stage durations the turn
measured (the call itself: nlu, cache, llm; the edge, reported afterwards through
``note_stages``: stt, tts first audio, voice to voice). The edge, the call host and the model
replicas are different processes that share no span context on the turn's path, so the stage
spans are laid out one after the other from those durations, ending at the moment the host
finished the turn (stt before it); they are faithful in length and order, approximate in
overlap (the semantic cache lookup races the LLM in reality).

Attributes carry ids, names of states and sources, timings and token counts, never what
anyone said nor any call-data value (PHI).
"""

from __future__ import annotations

import atexit
import logging
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

from opentelemetry import trace

from common.settings import TracingSettings

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export import SpanExporter

log = logging.getLogger("voxray.tracing")

_tracer: trace.Tracer | None = None
_shutdown: Any = None  # the provider's shutdown (flushes the batch processor)


def configure(settings: TracingSettings, exporter: SpanExporter | None = None) -> bool:
    """Set this process up to trace calls when ``settings.enabled`` (idempotent per process).

    ``exporter`` replaces the OTLP exporter (tests: an in-memory one, exported synchronously)."""
    global _tracer, _shutdown
    if not settings.enabled:
        return False
    if _tracer is not None and exporter is None:
        return True
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    provider = TracerProvider(
        resource=Resource.create({"service.name": settings.service_name}),
        sampler=ParentBased(TraceIdRatioBased(settings.sample_ratio)),
    )
    if exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        otlp = (
            OTLPSpanExporter(endpoint=settings.otlp_endpoint)
            if settings.otlp_endpoint
            else OTLPSpanExporter()
        )
        provider.add_span_processor(BatchSpanProcessor(otlp))
        atexit.register(provider.shutdown)
    _tracer = provider.get_tracer("voxray")
    _shutdown = provider.shutdown
    log.info("tracing on: sample ratio %.2f", settings.sample_ratio)
    return True


def disable() -> None:
    """Back to no tracing (flushing what was recorded)."""
    global _tracer, _shutdown
    if _shutdown is not None:
        atexit.unregister(_shutdown)
        _shutdown()
    _tracer = _shutdown = None


def enabled() -> bool:
    return _tracer is not None


class TurnView(Protocol):
    """What a finished turn tells its spans (``actors.turn_log.TurnRecord`` is one)."""

    turn: int
    mode: str
    state_before: str
    state_after: str
    stages_ms: dict[str, float]
    llm: dict[str, Any]
    interrupted: bool

    @property
    def source(self) -> Any: ...


def call_trace(call_id: str, schema: str, started_at: float | None = None) -> CallTrace | None:
    """The trace of a call starting now (or at ``started_at``, epoch seconds); None when off."""
    if _tracer is None:
        return None
    return CallTrace(_tracer, call_id, schema, started_at)


def _ns(ms: float) -> int:
    return int(ms * 1_000_000)


class CallTrace:
    """One call's ``call`` span and its turns' spans."""

    def __init__(self, tracer: trace.Tracer, call_id: str, schema: str, started_at: float | None = None):
        self.tracer = tracer
        self.call_id = call_id
        start = int((started_at if started_at is not None else time.time()) * 1e9)
        self.span = tracer.start_span(
            "call", attributes={"voxray.call_id": call_id, "voxray.schema": schema}, start_time=start
        )
        self.context = trace.set_span_in_context(self.span)
        # audio turns wait for the edge's stage report; turn number → (record, host finish ns)
        self._pending: dict[int, tuple[TurnView, int]] = {}
        self.ended = False

    @property
    def trace_id(self) -> str:
        return format(self.span.get_span_context().trace_id, "032x")

    def turn_finished(self, record: TurnView) -> None:
        """The host finished ``record``: a text turn's spans now; a media turn's once the edge
        reported its stages (``stages_noted``), at the next turn, or when the call ends."""
        now = time.time_ns()
        for turn in [t for t in self._pending if t < record.turn]:
            self._emit(*self._pending.pop(turn))
        if record.mode == "text":
            self._emit(record, now)
        else:
            self._pending[record.turn] = (record, now)

    def stages_noted(self, turn: int) -> None:
        pending = self._pending.pop(turn, None)
        if pending is not None:
            self._emit(*pending)

    def end(self, reason: str) -> None:
        if self.ended:
            return
        self.ended = True
        for record, finished in list(self._pending.values()):
            self._emit(record, finished)
        self._pending.clear()
        self.span.set_attribute("voxray.end_reason", reason)
        self.span.end()

    # ---- building one turn's spans -----------------------------------------------------------
    def _emit(self, record: TurnView, host_finished_ns: int) -> None:
        stages = record.stages_ms
        host_ms = stages.get("turn_total", stages.get("nlu", 0.0) + stages.get("cache", 0.0))
        stt_ms = stages.get("stt", 0.0)
        start = host_finished_ns - _ns(host_ms) - _ns(stt_ms)
        children: list[tuple[str, int, int, dict[str, Any]]] = []
        at = start
        if "stt" in stages:
            children.append(("stt", at, at + _ns(stt_ms), {}))
            at += _ns(stt_ms)
        for stage in ("nlu", "cache"):
            if stage in stages:
                children.append((stage, at, at + _ns(stages[stage]), {}))
                at += _ns(stages[stage])
        first_text_at = at  # where a scripted or cached reply's first words are ready
        llm = record.llm
        if llm.get("provider"):
            ttft = float(llm.get("ttft_ms") or stages.get("llm_ttft", 0.0))
            total = float(llm.get("total_ms") or ttft)
            children.append(("llm", at, at + _ns(total), _llm_attributes(llm, ttft)))
            first_text_at = at + _ns(stages.get("llm_ttft", ttft))
        if "tts_first_audio" in stages:
            tts = _ns(stages["tts_first_audio"])
            children.append(("tts", first_text_at, first_text_at + tts, {"voxray.first_audio": True}))
        end = max([host_finished_ns, *(c[2] for c in children)])
        if "voice_to_voice" in stages:
            end = max(end, start + _ns(stt_ms) + _ns(stages["voice_to_voice"]))
        attributes: dict[str, Any] = {
            "voxray.call_id": self.call_id,
            "voxray.turn": record.turn,
            "voxray.mode": record.mode,
            "voxray.state": record.state_after,
            "voxray.state_before": record.state_before,
            "voxray.source": str(record.source),
            "voxray.interrupted": record.interrupted,
        }
        for stage, value in stages.items():
            attributes[f"voxray.stage_ms.{stage}"] = round(float(value), 3)
        turn = self.tracer.start_span("turn", context=self.context, attributes=attributes, start_time=start)
        turn_context = trace.set_span_in_context(turn)
        for name, begin, finish, extra in children:
            span = self.tracer.start_span(
                name,
                context=turn_context,
                attributes={"voxray.call_id": self.call_id, **extra},
                start_time=begin,
            )
            span.end(end_time=max(begin, finish))
        turn.end(end_time=end)


def _llm_attributes(llm: Mapping[str, Any], ttft_ms: float) -> dict[str, Any]:
    usage = llm.get("usage") or {}
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": "chat",
        "gen_ai.system": str(llm.get("provider")),
        "gen_ai.request.model": str(llm.get("model") or ""),
        "gen_ai.usage.input_tokens": int(usage.get("input_tokens", 0)),
        "gen_ai.usage.output_tokens": int(usage.get("output_tokens", 0)),
        "voxray.llm.cached_input_tokens": int(usage.get("cached_input_tokens", 0)),
        "voxray.llm.ttft_ms": round(ttft_ms, 3),
    }
    if llm.get("cost_usd") is not None:
        attributes["voxray.llm.cost_usd"] = float(llm["cost_usd"])
    for key in ("policy", "tier"):
        if llm.get(key):
            attributes[f"voxray.llm.{key}"] = str(llm[key])
    return attributes
