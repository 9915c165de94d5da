"""OpenTelemetry spans of a call (common/tracing.py) and call_id / trace_id on log records
(common/log_context.py), through the real ``Call`` with scripted services and an in-memory span
exporter; no Ray, Redis or models."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import AsyncGenerator, Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from actors.call import Call
from actors.reply import ReplyPolicy, ReplySourcer
from common import log_context, tracing
from common.events import CallerTurn, EndReason, TurnDone
from common.llm_types import DoneEvent, LLMEvent, LLMRequest, Usage
from common.settings import TracingSettings
from common.testing.samples import SAMPLE_CALL_DATA
from common.testing.services import ScriptedCache, ScriptedLLM
from engine.conversation import Conversation
from engine.schema_loader import SchemaRegistry

ROOT = Path(__file__).resolve().parents[2]
CALL_DATA = SAMPLE_CALL_DATA["prior_auth"]
PHI = [str(v) for v in CALL_DATA.values()] + ["Sarah"]  # call data and what the caller said of herself


class LoggingLLM(ScriptedLLM):
    """A scripted LLM that logs while it answers (as any component may, mid-turn) and reports
    token usage as a provider does."""

    async def stream(self, request: LLMRequest) -> AsyncGenerator[LLMEvent, None]:
        logging.getLogger("voxray.test.llm").info("llm request with %d messages", len(request.messages))
        async for event in super().stream(request):
            if isinstance(event, DoneEvent):
                event = event.model_copy(
                    update={"usage": Usage(input_tokens=420, cached_input_tokens=400, output_tokens=12)}
                )
            yield event


def make_call(call_id: str = "call-7f3a") -> Call:
    registry = SchemaRegistry.shared(ROOT / "schemas")
    conversation = Conversation.start(registry.get("prior_auth"), call_id, CALL_DATA)
    llm = LoggingLLM("Sure, the weather is fine here. Shall we go on?")
    replies = ReplySourcer(ScriptedCache(), llm, ReplyPolicy(filler_after_s=5.0))
    return Call(conversation, replies, None, "test-host")


async def say(call: Call, text: str, **kw: Any) -> TurnDone:
    events = [e async for e in call.turn(CallerTurn(text=text, **kw))]
    assert isinstance(events[-1], TurnDone)
    return events[-1]


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    assert tracing.configure(TracingSettings(enabled=True), exporter=exporter)
    yield exporter
    tracing.disable()


def by_name(finished: tuple[ReadableSpan, ...], name: str) -> list[ReadableSpan]:
    return [s for s in finished if s.name == name]


def children(finished: tuple[ReadableSpan, ...], parent: ReadableSpan) -> dict[str, ReadableSpan]:
    assert parent.context is not None
    return {
        s.name: s for s in finished if s.parent is not None and s.parent.span_id == parent.context.span_id
    }


def assert_no_phi(finished: tuple[ReadableSpan, ...], *said: str) -> None:
    for span in finished:
        values = " ".join(str(v) for v in (span.attributes or {}).values())
        for secret in [*PHI, *said]:
            assert secret not in values, f"{span.name} carries {secret!r}"


def test_off_by_default_no_trace_and_no_sdk() -> None:
    assert not tracing.enabled()
    assert not tracing.configure(TracingSettings())  # enabled=False: nothing set up
    assert tracing.call_trace("c", "prior_auth") is None
    assert make_call().trace is None


async def test_text_turns_make_the_call_turn_stage_tree(spans: InMemorySpanExporter) -> None:
    call = make_call()
    call.start()
    await say(call, "This is Sarah, how can I help?")  # scripted reply
    done = await say(call, "How's the weather over there?")  # the LLM answers
    assert done.source == "llm"
    assert not by_name(spans.get_finished_spans(), "call")  # still live
    call.call_record(EndReason.HANGUP)
    finished = spans.get_finished_spans()
    [root] = by_name(finished, "call")
    assert root.attributes is not None and root.context is not None
    assert root.attributes["voxray.call_id"] == "call-7f3a"
    assert root.attributes["voxray.schema"] == "prior_auth"
    assert root.attributes["voxray.end_reason"] == "hangup"
    assert {s.context.trace_id for s in finished if s.context} == {root.context.trace_id}
    turns = sorted(by_name(finished, "turn"), key=lambda s: int((s.attributes or {})["voxray.turn"]))  # type: ignore[arg-type]
    assert [t.parent.span_id if t.parent else None for t in turns] == [root.context.span_id] * 2
    first, second = (dict(t.attributes or {}) for t in turns)
    assert (first["voxray.turn"], first["voxray.state_before"], first["voxray.state"]) == (
        1,
        "greeting",
        "verify_member",
    )
    assert first["voxray.source"] == "script" and second["voxray.source"] == "llm"
    assert first["voxray.mode"] == "text"
    assert set(children(finished, turns[0])) == {"nlu"}  # no lookup for a scripted reply
    stages = children(finished, turns[1])
    assert {"nlu", "cache", "llm"} <= set(stages) and "stt" not in stages and "tts" not in stages
    llm = dict(stages["llm"].attributes or {})
    assert llm["gen_ai.system"] == "scripted" and llm["gen_ai.request.model"] == "scripted"
    assert (llm["gen_ai.usage.input_tokens"], llm["gen_ai.usage.output_tokens"]) == (420, 12)
    assert llm["voxray.llm.cached_input_tokens"] == 400
    assert float(llm["voxray.llm.ttft_ms"]) >= 0  # type: ignore[arg-type]
    # laid out in order: nlu, then the lookup, then the LLM, all inside the turn
    assert stages["nlu"].end_time <= stages["cache"].start_time <= stages["llm"].start_time  # type: ignore[operator]
    for span in stages.values():
        assert turns[1].start_time <= span.start_time and span.end_time <= turns[1].end_time  # type: ignore[operator]
    assert_no_phi(finished, "This is Sarah, how can I help?", "How's the weather over there?")


async def test_audio_turn_spans_wait_for_the_edges_stage_report(spans: InMemorySpanExporter) -> None:
    call = make_call("call-audio-1")
    call.start()
    await say(call, "This is Sarah.", mode="audio", stt_ms=180.0)
    assert not by_name(spans.get_finished_spans(), "turn")  # the edge has not reported yet
    call.note_stages(1, {"tts_first_audio": 120.0, "voice_to_voice": 650.0}, {"stt_audio_s": 1.2})
    finished = spans.get_finished_spans()
    [turn] = by_name(finished, "turn")
    assert turn.attributes is not None and turn.attributes["voxray.mode"] == "audio"
    assert turn.attributes["voxray.stage_ms.voice_to_voice"] == 650.0
    stages = children(finished, turn)
    assert {"stt", "nlu", "tts"} <= set(stages)
    ms = {name: (s.end_time - s.start_time) / 1e6 for name, s in stages.items()}  # type: ignore[operator]
    assert ms["stt"] == pytest.approx(180.0, abs=0.01) and ms["tts"] == pytest.approx(120.0, abs=0.01)
    assert stages["stt"].start_time == turn.start_time and stages["stt"].end_time <= stages["nlu"].start_time  # type: ignore[operator]
    assert (turn.end_time - turn.start_time) / 1e6 >= 650.0  # type: ignore[operator]
    # a media turn the edge never reported on is still traced when the call ends
    await say(call, "Yes.", mode="audio", stt_ms=90.0)
    call.call_record(EndReason.CALLER_HUNG_UP)
    assert len(by_name(spans.get_finished_spans(), "turn")) == 2
    assert_no_phi(spans.get_finished_spans(), "This is Sarah.")


def test_sample_ratio_zero_records_nothing() -> None:
    exporter = InMemorySpanExporter()
    tracing.configure(TracingSettings(enabled=True, sample_ratio=0.0), exporter=exporter)
    try:
        trace = tracing.call_trace("c", "prior_auth")
        assert trace is not None
        trace.end("hangup")
        assert exporter.get_finished_spans() == ()
    finally:
        tracing.disable()


def test_spans_reach_an_otlp_http_collector() -> None:
    """The real exporter, over OTLP/HTTP protobuf, to a local collector stand-in."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    received: list[tuple[str, bytes]] = []

    class Collector(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append((self.path, self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Collector)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        endpoint = f"http://127.0.0.1:{server.server_port}/v1/traces"
        assert tracing.configure(
            TracingSettings(enabled=True, otlp_endpoint=endpoint, service_name="voxray-test")
        )
        trace = tracing.call_trace("call-otlp-1", "prior_auth")
        assert trace is not None
        trace.end("hangup")
        tracing.disable()  # flushes the batch processor
        assert not tracing.enabled()
    finally:
        server.shutdown()
    [(path, body)] = received
    request = ExportTraceServiceRequest.FromString(body)
    [resource_spans] = request.resource_spans
    service = {a.key: a.value.string_value for a in resource_spans.resource.attributes}["service.name"]
    names = [span.name for scope in resource_spans.scope_spans for span in scope.spans]
    assert (path, service, names) == ("/v1/traces", "voxray-test", ["call"])


async def test_a_record_logged_during_a_turn_carries_call_and_trace_ids_and_no_phi(
    spans: InMemorySpanExporter,
) -> None:
    from ray._common.formatters import JSONFormatter  # what LoggingConfig(encoding="JSON") uses

    log_context.install()
    captured: list[logging.LogRecord] = []

    class Capture(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            captured.append(record)

    handler = Capture()
    logger = logging.getLogger("voxray.test.llm")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        call = make_call("call-logs-1")
        call.start()
        await say(call, "This is Sarah.")
        await say(call, "How's the weather over there?")
    finally:
        logger.removeHandler(handler)
    assert captured, "the LLM logged during the turn"
    assert call.trace is not None
    line = json.loads(JSONFormatter().format(captured[-1]))
    assert line["call_id"] == "call-logs-1" and line["trace_id"] == call.trace.trace_id
    assert len(line["trace_id"]) == 32
    text = json.dumps(line)
    for secret in PHI:
        assert secret not in text


def test_log_context_is_scoped_and_absent_outside_a_call() -> None:
    log_context.install()
    with log_context.bound("call-x", "ab" * 16):
        record = logging.getLogger("voxray.test").makeRecord(
            "voxray.test", logging.INFO, "f", 1, "m", (), None
        )
        assert (record.call_id, record.trace_id) == ("call-x", "ab" * 16)  # type: ignore[attr-defined]
    record = logging.getLogger("voxray.test").makeRecord("voxray.test", logging.INFO, "f", 1, "m", (), None)
    assert not hasattr(record, "call_id")
    assert log_context.ray_logging_config("json") == {"encoding": "JSON", "log_level": "INFO"}
    assert log_context.ray_logging_config("text") is None
    with pytest.raises(ValueError, match="text' or 'json"):
        log_context.ray_logging_config("xml")
