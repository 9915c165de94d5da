"""The HTTP and websocket front door: a FastAPI app served as a Ray Serve ingress.

(No `from __future__ import annotations` here: FastAPI must see real types on the methods.)

Calls live on CallHost actors (actors/host_pool.py); this replica holds only the pool and,
per open media websocket, the edge (deployments/media_edge.py) that turns 20 ms frames into
utterances and plays the agent's audio back with marks.
"""

import asyncio
import contextlib
import logging
import secrets
import time
from typing import Any

from fastapi import FastAPI, HTTPException, Request, Response, WebSocket, WebSocketDisconnect
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from ray import serve

from actors import metrics as voxray_metrics
from actors.call_host import CallNotFound
from actors.host_pool import CallHostPool
from actors.store import CallStore
from deployments.api_models import (
    HangupRequest,
    PrecomputeRequest,
    StartCallRequest,
    StartCallResponse,
    TextTurnRequest,
)
from deployments.media_edge import preload_models
from deployments.media_session import MediaCall
from deployments.twilio_webhooks import (
    connect_stream_twiml,
    media_stream_url,
    place_outbound_call_async,
    verify_signature,
)
from engine.schema_errors import CallDataError
from engine.schema_loader import SchemaRegistry
from engine.settings import VoxraySettings

log = logging.getLogger("voxray.ingress")
api = FastAPI(
    title="voxray",
    version="0.1.0",
    description="Start, drive and inspect AI phone calls; Twilio webhooks and Media Streams.",
)


@api.exception_handler(RequestValidationError)
async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    """422 naming each bad field, without echoing the submitted values (they may be PHI)."""
    detail = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
    return JSONResponse(status_code=422, content={"detail": detail})


def _call_data_error(problems: dict[str, str]) -> HTTPException:
    detail = [
        {"loc": ["body", "call_data", field], "msg": msg, "type": "call_data"}
        for field, msg in problems.items()
    ]
    return HTTPException(status_code=422, detail=detail)


@serve.deployment(
    ray_actor_options={"num_cpus": 0.5},
    autoscaling_config={"min_replicas": 1, "max_replicas": 4, "target_ongoing_requests": 200},
    max_ongoing_requests=1000,
)
@serve.ingress(api)
class Ingress:
    def __init__(self, *deployments: Any, settings: dict[str, Any] | None = None) -> None:
        # ``deployments`` are the bound STT/TTS/cache/router apps: passing them here makes them part
        # of this application; call hosts reach them by name through Serve handles.
        self.settings = VoxraySettings(**(settings or {}))
        self.registry = SchemaRegistry.from_directory(self.settings.schemas.directory)
        self.pool = CallHostPool(
            self.settings.calls.call_hosts, self.settings.redis_url, self.settings.calls.key_prefix
        )
        self.store = (
            CallStore(self.settings.redis_url, self.settings.calls.key_prefix)
            if self.settings.redis_url
            else None
        )
        self.tokens: dict[str, str] = {}
        self.openings: dict[str, list[str]] = {}
        self.media: dict[str, MediaCall] = {}
        preload_models()  # VAD + smart-turn now, not on the first call's event loop
        self._started = False
        self._start_lock = asyncio.Lock()

    async def _ready(self) -> None:
        if not self._started:
            async with self._start_lock:
                if not self._started:
                    await self.pool.start()
                    try:  # cluster-wide metrics of the deployments (router, STT, TTS, cache)
                        await voxray_metrics.ensure_poller(self.pool.app_name)
                    except Exception as exc:
                        log.warning("metrics poller not started: %s", type(exc).__name__)
                    self._started = True

    # ---- calls -----------------------------------------------------------------------------
    @api.post("/calls", status_code=201, response_model=StartCallResponse)
    async def start_call(self, body: StartCallRequest) -> StartCallResponse:
        t_start = time.perf_counter()
        await self._ready()
        if body.schema_name not in self.registry:
            raise HTTPException(
                422,
                detail=[
                    {
                        "loc": ["body", "schema_name"],
                        "msg": f"unknown schema; known: {self.registry.names()}",
                        "type": "unknown_schema",
                    }
                ],
            )
        webhook = str(body.webhook_url) if body.webhook_url else None
        result = await self.pool.start_call(body.schema_name, body.call_data, webhook)
        if result.get("error") == "invalid_call_data":
            voxray_metrics.error("ingress", "invalid_call_data")
            raise _call_data_error(result["problems"])
        call_id = result["call_id"]
        token = secrets.token_urlsafe(16)
        self.tokens[call_id] = token
        self.openings[call_id] = result["opening"]
        base = self.settings.twilio.public_base_url.rstrip("/")
        sid = None
        status = "ready"
        if body.to is not None:
            try:
                sid = await place_outbound_call_async(
                    self.settings.twilio,
                    body.to,
                    None,
                    f"{base}/twilio/voice/{call_id}",
                    f"{base}/twilio/status/{call_id}",
                )
            except Exception as exc:  # not configured, or Twilio refused: the call cannot go ahead
                await self._end(call_id, "dial_failed")
                raise HTTPException(502, detail=f"could not place the call through Twilio: {exc}") from None
            status = "dialing"
        elapsed_ms = (time.perf_counter() - t_start) * 1000
        voxray_metrics.start_call_latency(body.schema_name, elapsed_ms)
        return StartCallResponse(
            call_id=call_id,
            status=status,
            state=result["state"],
            host=result["host"],
            opening=result["opening"],
            media_url=media_stream_url(base, call_id),
            stream_token=token,
            twiml_url=f"{base}/twilio/voice/{call_id}",
            twilio_call_sid=sid,
            ready_ms=result["ready_ms"],
        )

    @api.get("/calls")
    async def list_calls(self, status: str | None = None, schema: str | None = None) -> dict[str, Any]:
        await self._ready()
        calls = [c for host in self.pool.hosts.values() for c in await host.list_calls.remote()]
        if status:
            calls = [c for c in calls if c["status"] == status]
        if schema:
            calls = [c for c in calls if c["schema"] == schema]
        ended = await self.store.list_calls(200) if self.store else []
        live = {c["call_id"] for c in calls}
        return {"live": calls, "recent_ids": [i for i in ended if i not in live]}

    async def _live_or_record(self, call_id: str, method: str) -> dict[str, Any]:
        await self._ready()
        if call_id in self.pool.where:
            try:
                result: dict[str, Any] = await self.pool.call(call_id, method)
                return result
            except CallNotFound:  # it ended while we asked: its record is being written
                await asyncio.sleep(0.2)
        record = await self.store.load_record(call_id) if self.store else None
        if record is None:
            raise HTTPException(404, detail=f"unknown call {call_id}")
        return record if method == "status" else record.get("performance", {})

    @api.get("/calls/{call_id}")
    async def call_status(self, call_id: str) -> dict[str, Any]:
        return await self._live_or_record(call_id, "status")

    @api.get("/calls/{call_id}/performance")
    async def call_performance(self, call_id: str) -> dict[str, Any]:
        return await self._live_or_record(call_id, "performance")

    @api.post("/calls/{call_id}/turns")
    async def text_turn(self, call_id: str, body: TextTurnRequest) -> dict[str, Any]:
        """Text mode: one counterpart line in, the agent's reply out (no STT/TTS)."""
        await self._ready()
        if call_id not in self.pool.where:
            raise HTTPException(404, detail=f"unknown or ended call {call_id}")
        try:
            result: dict[str, Any] = await self.pool.call(call_id, "text_turn", body.text)
        except CallNotFound:
            raise HTTPException(404, detail=f"call {call_id} has ended") from None
        except RuntimeError as exc:  # the conversation already reached a terminal state
            raise HTTPException(409, detail=str(exc).splitlines()[-1]) from None
        return result

    @api.post("/calls/{call_id}/hangup")
    async def hangup(self, call_id: str, body: HangupRequest | None = None) -> dict[str, Any]:
        """End a call. Hanging up a call that already ended returns its record (not an error)."""
        return await self._end(call_id, (body or HangupRequest()).reason)

    async def _end(self, call_id: str, reason: str) -> dict[str, Any]:
        await self._ready()
        self.tokens.pop(call_id, None)
        self.openings.pop(call_id, None)
        if call_id in self.pool.where:
            return await self.pool.hangup(call_id, reason)
        record = await self.store.load_record(call_id) if self.store else None
        if record is None:
            raise HTTPException(404, detail=f"unknown call {call_id}")
        return record

    # ---- schemas ---------------------------------------------------------------------------
    @api.get("/schemas")
    async def schemas(self) -> list[dict[str, Any]]:
        return [self._schema_info(name) for name in self.registry.names()]

    def _schema(self, name: str) -> Any:
        if name not in self.registry:
            raise HTTPException(404, detail=f"unknown schema {name!r}; known: {self.registry.names()}")
        return self.registry.get(name)

    def _schema_info(self, name: str) -> dict[str, Any]:
        schema = self._schema(name)
        return {
            "schema": {
                "name": schema.name,
                "version": schema.version,
                "client_id": schema.spec.metadata.client_id,
            },
            "states": list(schema.states),
            "initial_state": schema.initial_state,
            "call_data": {k: v.model_dump(exclude_none=True) for k, v in schema.spec.call_data.items()},
            "performance": schema.timings_ms,
            "health": {
                "schema_loaded": True,
                "templates_compiled": schema.template_count,
                "init_time_acceptable": schema.timings_ms["total_ms"] < 100,
            },
        }

    @api.get("/schemas/{name}")
    async def schema_info(self, name: str) -> dict[str, Any]:
        return self._schema_info(name)

    @api.post("/schemas/{name}/precompute")
    async def precompute(self, name: str, body: PrecomputeRequest) -> dict[str, Any]:
        schema = self._schema(name)
        t0 = time.perf_counter()
        try:
            data = schema.validate_call_data(body.call_data)
        except CallDataError as exc:
            raise _call_data_error(exc.problems) from None
        values = schema.precompute(data)
        return {"precomputed": values, "precompute_ms": (time.perf_counter() - t0) * 1000}

    @api.post("/schemas/{name}/render/{state}")
    async def render(self, name: str, state: str, body: PrecomputeRequest) -> dict[str, Any]:
        schema = self._schema(name)
        if state not in schema.states:
            raise HTTPException(404, detail=f"unknown state {state!r}; states: {list(schema.states)}")
        try:
            values = schema.precompute(schema.validate_call_data(body.call_data))
        except CallDataError as exc:
            raise _call_data_error(exc.problems) from None
        compiled = schema.states[state]
        t0 = time.perf_counter()
        say = compiled.say.render(values) if compiled.say else None
        prompt = compiled.prompt.render(values)
        return {"state": state, "say": say, "prompt": prompt, "render_ms": (time.perf_counter() - t0) * 1000}

    # ---- Twilio ----------------------------------------------------------------------------
    async def _check_twilio(self, request: Request) -> dict[str, str]:
        form = {k: str(v) for k, v in (await request.form()).items()}
        token = self.settings.twilio.auth_token
        signature = request.headers.get("X-Twilio-Signature", "")
        url = self.settings.twilio.public_base_url.rstrip("/") + request.url.path
        if request.url.query:
            url += "?" + request.url.query
        if not token or not verify_signature(token, url, form, signature):
            raise HTTPException(403, detail="invalid or missing X-Twilio-Signature")
        return form

    @api.post("/twilio/voice/{call_id}")
    async def twilio_voice(self, call_id: str, request: Request) -> Response:
        await self._check_twilio(request)
        if call_id not in self.tokens:
            raise HTTPException(404, detail=f"unknown call {call_id}")
        url = media_stream_url(self.settings.twilio.public_base_url, call_id)
        xml = connect_stream_twiml(url, {"call_id": call_id, "token": self.tokens[call_id]})
        return Response(content=xml, media_type="application/xml")

    @api.post("/twilio/status/{call_id}")
    async def twilio_status(self, call_id: str, request: Request) -> dict[str, Any]:
        form = await self._check_twilio(request)
        status = form.get("CallStatus", "")
        if status in ("completed", "busy", "failed", "no-answer", "canceled") and call_id in self.pool.where:
            await self._end(call_id, f"twilio:{status}")
        return {"call_id": call_id, "status": status}

    @api.websocket("/twilio/media/{call_id}")
    async def twilio_media(self, websocket: WebSocket, call_id: str) -> None:
        await self._ready()
        await websocket.accept()
        if call_id not in self.pool.where:
            await websocket.close(code=4404, reason="unknown call")
            return
        media = MediaCall(
            call_id,
            self.pool,
            websocket.send_json,
            self.tokens.get(call_id, ""),
            self.openings.pop(call_id, []),
        )
        self.media[call_id] = media
        try:
            while not media.finished:
                try:
                    message = await asyncio.wait_for(websocket.receive_text(), timeout=1.0)
                except TimeoutError:
                    continue
                await media.handle(message)
        except WebSocketDisconnect:
            pass
        finally:
            self.media.pop(call_id, None)
            await media.close()
            # A socket that never proved it belongs to the call cannot end it.
            if call_id in self.pool.where and media.end_reason != "bad_stream_token":
                await self._end(call_id, media.end_reason or "caller_hung_up")
            with contextlib.suppress(RuntimeError):
                await websocket.close()

    # ---- health ----------------------------------------------------------------------------
    @api.get("/healthz")
    async def healthz(self) -> dict[str, str]:
        return {"status": "ok"}

    @api.get("/readyz")
    async def readyz(self) -> dict[str, Any]:
        await self._ready()
        loads = await self.pool.loads()
        if any(h.get("dead") for h in loads):
            raise HTTPException(503, detail={"hosts": loads})
        return {"status": "ready", "schemas": self.registry.names(), "hosts": loads}

    @api.get("/stats")
    async def stats(self) -> dict[str, Any]:
        await self._ready()
        return {
            "hosts": await self.pool.loads(),
            "failovers": self.pool.failovers,
            "media_sockets": len(self.media),
        }
