"""The HTTP and websocket front door: a FastAPI app served as a Ray Serve ingress.

(No `from __future__ import annotations` here: FastAPI must see real types on the methods.)

A replica keeps no call state of its own: calls live on call hosts and are found through the
call directory in Redis (``actors/host_pool.py``), so any replica serves any call's requests,
webhooks and media socket. Per open media websocket it runs a ``CallLink`` (media stream,
speech to text, text to speech) next to the socket.
"""

import asyncio
import contextlib
import hashlib
import logging
import time
import uuid
from math import ceil
from typing import Any

from fastapi import Depends, FastAPI, Header, HTTPException, Request, Response, WebSocket
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import JSONResponse
from ray import serve

from actors import metrics as voxray_metrics
from actors.call import CallStatus
from actors.call_host import CallNotFound, HostConfig
from actors.cost import Rates
from actors.host_pool import CallHostPool, HostTimeout, HostTimeouts
from actors.reply import CacheClient, LLMClient, ReplyPolicy
from actors.store import CallIsLive
from actors.webhook_guard import UnsafeDestination
from common.events import CallerTurn, CallOpened, EndReason, TurnDone, TurnEvent, TurnRefused
from common.settings import VoxraySettings
from edge import access as access_state
from edge.api_models import (
    HangupRequest,
    NewKeyRequest,
    PrecomputeRequest,
    StartCallRequest,
    StartCallResponse,
    TextTurnRequest,
)
from edge.auth import LOCAL_TENANT, SCOPES, InvalidKey, Principal
from edge.call_data_rules import call_data_problems
from edge.call_link import CallLink, SpeechToText, TextToSpeech
from edge.campaign_api import campaign_router
from edge.campaign_api import start_runner as start_campaign_runner
from edge.media.recorder import RecordingSink, purge_expired
from edge.media.smart_turn import preload_models
from edge.media_socket import MediaSocket, MediaSocketRules
from edge.tenancy import Abandoned
from edge.text_policy import text_problem
from edge.twilio.transfer import TwilioTelephony, whisper_twiml
from edge.twilio.webhooks import (
    TWILIO_ANSWERED_BY,
    connect_stream_twiml,
    media_stream_url,
    place_outbound_call_async,
    verify_signature,
)
from engine.do_not_call import contact_keys
from engine.nlu.intents import TextEmbedder
from engine.schema_errors import CallDataError
from engine.schema_loader import CompiledSchema, SchemaRegistry

log = logging.getLogger("voxray.ingress")


def tier_map(settings: VoxraySettings) -> dict[str, str]:
    """What the strong LLM tier and the premium voice are on this deployment (the call record
    says so: offline, both may be the same local models as the standard ones)."""
    providers = settings.providers
    pool = [*providers.capable(), *(["local"] if providers.local_enabled else [])]
    strong = [p for p in pool if providers.tiers.get(p, "fast") == "strong"]
    return {
        "llm_strong": ", ".join(strong)
        if strong
        else f"{', '.join(pool) or 'none'} (no strong provider: same as fast)",
        "tts_premium": settings.tts.premium_voice_path or "the standard voice (no premium voice configured)",
    }


api = FastAPI(
    title="voxray",
    version="0.1.0",
    description="Start, drive and inspect AI phone calls; Twilio webhooks and Media Streams. "
    "Every call endpoint takes `Authorization: Bearer <API key>` (python -m edge.auth create).",
    docs_url=None,  # served below, admin-only when auth is on
    redoc_url=None,
    openapi_url=None,
)


def _refuse(status: int, reason: str, message: str, headers: dict[str, str] | None = None) -> HTTPException:
    return HTTPException(status, detail={"reason": reason, "message": message}, headers=headers)


async def caller(request: Request) -> Principal:
    """The API key's principal (rate-limited per key); everything is allowed with auth off."""
    access = access_state.current()
    if access is None or not access.enabled or access.keys is None or access.tenancy is None:
        return Principal("anonymous", LOCAL_TENANT, frozenset(SCOPES))
    header = request.headers.get("authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise _refuse(
            401, "unauthenticated", "send Authorization: Bearer <API key>", {"WWW-Authenticate": "Bearer"}
        )
    try:
        principal = await access.keys.verify(key)
    except InvalidKey as exc:
        raise _refuse(401, "unauthenticated", str(exc), {"WWW-Authenticate": "Bearer"}) from None
    limits = access.settings.limits
    wait = await access.tenancy.take(principal.key_id, limits.rate_per_s, limits.burst)
    if wait > 0:
        raise _refuse(
            429, "rate_limited", "too many requests for this API key", {"Retry-After": str(ceil(wait))}
        )
    return principal


CALLER = Depends(caller)


def require(scope: str) -> Any:
    async def dependency(principal: Principal = CALLER) -> Principal:
        if not principal.may(scope):
            raise _refuse(403, "forbidden", f"this API key lacks the {scope!r} scope")
        return principal

    return Depends(dependency)


CALLS_WRITE, CALLS_READ, ADMIN = require("calls:write"), require("calls:read"), require("admin")
api.include_router(campaign_router(CALLS_WRITE, CALLS_READ))
IDEMPOTENCY_KEY = Header(None, alias="Idempotency-Key", max_length=128)


REPLICA_HEADER = "X-Voxray-Replica"


def _replica_id() -> str:
    """This ingress replica's Ray actor name (which replica served a request, for operators)."""
    try:
        return serve.get_replica_context().replica_id.to_full_id_str()
    except Exception:  # outside a Serve replica (the app object used directly)
        return "local"


@api.middleware("http")
async def _name_the_replica(request: Request, call_next: Any) -> Response:
    response: Response = await call_next(request)
    response.headers[REPLICA_HEADER] = _replica_id()
    return response


@api.middleware("http")
async def _bounded_body(request: Request, call_next: Any) -> Response:
    """Bodies over ``limits.max_body_bytes`` are refused before they are read (413)."""
    access = access_state.current()
    limit = access.settings.limits.max_body_bytes if access is not None else 64 * 1024
    if access is not None and request.url.path.startswith("/campaigns"):  # rows of call data
        limit = access.settings.campaigns.max_body_bytes
    length = request.headers.get("content-length")
    if length is not None and (not length.isdigit() or int(length) > limit):
        return JSONResponse(
            status_code=413,
            content={"detail": {"reason": "too_large", "message": f"bodies are capped at {limit} bytes"}},
        )
    if length is None and request.method in ("POST", "PUT", "PATCH", "DELETE"):
        body = b""
        async for part in request.stream():
            body += part
            if len(body) > limit:
                return JSONResponse(
                    status_code=413,
                    content={
                        "detail": {"reason": "too_large", "message": f"bodies are capped at {limit} bytes"}
                    },
                )
        request._body = body  # read once, within the cap: handlers see it as usual
    response: Response = await call_next(request)
    return response


@api.exception_handler(RequestValidationError)
async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    """422 naming each bad field, without echoing the submitted values (they may be PHI); a long
    list is cut after ``limits.max_errors_listed`` with a count of the rest."""
    access = access_state.current()
    cap = access.settings.limits.max_errors_listed if access is not None else 20
    errors = exc.errors()
    detail: list[dict[str, Any]] = [
        {"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in errors[:cap]
    ]
    if len(errors) > cap:
        detail.append({"loc": ["body"], "msg": f"and {len(errors) - cap} more problems", "type": "truncated"})
    return JSONResponse(status_code=422, content={"detail": detail})


@api.exception_handler(UnsafeDestination)
async def _unsafe_webhook(request: Request, exc: UnsafeDestination) -> JSONResponse:
    """422 naming webhook_url and why (the reason never repeats the URL)."""
    detail = [{"loc": ["body", "webhook_url"], "msg": exc.reason, "type": "unsafe_destination"}]
    return JSONResponse(status_code=422, content={"detail": detail})


@api.exception_handler(HostTimeout)
async def _host_timeout(request: Request, exc: HostTimeout) -> JSONResponse:
    return JSONResponse(status_code=504, content={"detail": {"reason": "host_timeout", "message": str(exc)}})


def _call_data_error(problems: dict[str, str]) -> HTTPException:
    detail = [
        {"loc": ["body", "call_data", field], "msg": msg, "type": "call_data"}
        for field, msg in problems.items()
    ]
    return HTTPException(status_code=422, detail=detail)


# Resource requests here fit one small machine (`serve run serve_app:app` on 2 cores: about 1.95
# CPUs with two call hosts); cluster/serve_config.yaml sets the production sizes.
@serve.deployment(
    ray_actor_options={"num_cpus": 0.2},
    autoscaling_config={"min_replicas": 1, "max_replicas": 4, "target_ongoing_requests": 200},
    max_ongoing_requests=1000,
)
@serve.ingress(api)
class Ingress:
    def __init__(
        self,
        settings: VoxraySettings,
        stt: SpeechToText,
        tts: TextToSpeech,
        cache: CacheClient,
        llm: LLMClient,
        embedder: TextEmbedder | None = None,
    ) -> None:
        """``embedder``: sentence vectors for intent scoring (the cache deployment's MiniLM)."""
        self.access = access_state.install(settings)
        self.settings = settings
        self.registry = SchemaRegistry.shared(settings.schemas.directory)
        self.stt = stt
        self.tts = tts
        self.services = {"stt": stt, "tts": tts, "cache": cache, "router": llm}
        host_config = HostConfig(
            redis_url=settings.redis_url,
            key_prefix=settings.calls.key_prefix,
            schema_dir=settings.schemas.directory,
            cache=cache,
            llm=llm,
            reply=ReplyPolicy(
                semantic_head_start_s=settings.cache.semantic_head_start_ms / 1000,
                filler_after_s=settings.calls.filler_after_s,
            ),
            embedder=embedder if settings.nlu.embeddings else None,
            nlu_llm_providers=tuple(settings.providers.capable()) if settings.nlu.llm == "auto" else (),
            nlu_llm_timeout_s=settings.nlu.llm_timeout_s,
            rates=Rates(
                phone_usd_per_min=settings.calls.phone_usd_per_min,
                stt_usd_per_min=settings.calls.stt_usd_per_min,
                tts_usd_per_1k_chars=settings.calls.tts_usd_per_1k_chars,
                tts_premium_usd_per_1k_chars=settings.calls.tts_premium_usd_per_1k_chars,
                budget_usd=settings.calls.budget_usd,
            ),
            tier_map=tier_map(settings),
            webhooks=settings.webhooks,
            tracing=settings.tracing,
            record_ttl_s=settings.retention.record_ttl_s,
            max_live_calls=settings.limits.live_calls_per_host,
            idle_call_timeout_s=settings.limits.idle_call_timeout_s,
            max_turns_per_call=settings.limits.max_transcript_lines // 2,
            recording_mode=settings.recording.mode,
        )
        timeouts = HostTimeouts(settings.calls.host_call_timeout_s, settings.calls.host_turn_timeout_s)
        secret = settings.calls.stream_secret
        self.pool = CallHostPool(settings.calls.call_hosts, host_config, secret, timeouts)
        self.links: dict[str, CallLink] = {}
        self.telephony = TwilioTelephony(settings.twilio, self.pool.store)
        self.recordings = (
            RecordingSink(settings.recording.directory) if settings.recording.mode != "off" else None
        )
        try:
            purged = purge_expired(settings.recording.directory)
            if purged:
                log.info("purged %d expired recordings", purged)
        except OSError as exc:
            log.warning("recordings not purged: %s", type(exc).__name__)
        preload_models()  # VAD + smart-turn now, not on the first call's event loop
        self._started = False
        self._start_lock = asyncio.Lock()

    async def _ready(self) -> None:
        if not self._started:
            async with self._start_lock:
                if not self._started:
                    await self.pool.start()
                    if self.settings.redis_url is not None:
                        try:  # the cluster's one campaign dialler (a lease keeps it to one)
                            await start_campaign_runner(self.settings)
                        except Exception as exc:
                            log.warning("campaign runner not started: %s", type(exc).__name__)
                    self._started = True

    # ---- calls -----------------------------------------------------------------------------
    @api.post("/calls", status_code=201, response_model=StartCallResponse)
    async def start_call(
        self,
        body: StartCallRequest,
        principal: Principal = CALLS_WRITE,
        idempotency_key: str | None = IDEMPOTENCY_KEY,
    ) -> StartCallResponse:
        """Start a call. With an ``Idempotency-Key`` header, a retry of the same request within a
        day gets the first reply again (the call is not started twice)."""
        tenancy = self.access.tenancy
        if idempotency_key is None or tenancy is None:
            return await self._start_call(body, principal)
        fingerprint = hashlib.sha256(body.model_dump_json().encode()).hexdigest()
        call_id = uuid.uuid4().hex
        earlier = await tenancy.idempotent(principal.tenant, idempotency_key, fingerprint, call_id)
        if earlier == "mismatch":
            raise _refuse(422, "idempotency_key_reused", "this Idempotency-Key was used with another request")
        if earlier == "in_progress":
            raise _refuse(409, "idempotency_in_progress", "a request with this Idempotency-Key is running")
        if isinstance(earlier, dict):
            return StartCallResponse.model_validate(earlier)
        if isinstance(earlier, Abandoned):  # its replica died mid-start: the call may be open already
            call_id = earlier.call_id
            opened = await self._already_opened(call_id)
            if opened is not None:
                await tenancy.remember(principal.tenant, idempotency_key, fingerprint, opened.model_dump())
                return opened
        try:
            reply = await self._start_call(body, principal, call_id)
        except BaseException:
            await tenancy.remember(principal.tenant, idempotency_key, fingerprint, None)
            raise
        await tenancy.remember(principal.tenant, idempotency_key, fingerprint, reply.model_dump())
        return reply

    async def _already_opened(self, call_id: str) -> StartCallResponse | None:
        """The reply for a call an abandoned start opened (its opening lines were not kept; the
        stream token is a fresh one), or None when it never opened."""
        route = await self.pool.store.route(call_id) if self.pool.store else None
        if route is None:
            return None
        status = await self._live_or_record(call_id, "status")
        base = self.settings.twilio.public_base_url.rstrip("/")
        return StartCallResponse(
            call_id=call_id,
            status="ready",
            state=str(status.get("state", "")),
            host=route.host,
            opening=[],
            media_url=media_stream_url(base, call_id),
            stream_token=self.pool.stream_token(call_id),
            twiml_url=f"{base}/twilio/voice/{call_id}",
            ready_ms=0.0,
        )

    async def _start_call(
        self, body: StartCallRequest, principal: Principal, call_id: str | None = None
    ) -> StartCallResponse:
        t_start = time.perf_counter()
        await self._ready()
        self._check_call_data(body.call_data)
        await self._check_quota(principal)
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
        await self._refuse_do_not_call(body)
        result = await self.pool.start_call(
            body.schema_name, body.call_data, webhook, body.to, body.answering, call_id
        )
        if not isinstance(result, CallOpened):
            voxray_metrics.error("ingress", result.reason)
            if result.reason == "host_full":
                raise _refuse(503, "at_capacity", "every call host is full", {"Retry-After": "5"})
            raise _call_data_error(result.problems)
        call_id = result.call_id
        if self.access.tenancy is not None:
            await self.access.tenancy.own(call_id, principal.tenant)
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
                    amd_callback=f"{base}/twilio/amd/{call_id}",
                )
            except Exception as exc:  # not configured, or Twilio refused: the call cannot go ahead
                await self.pool.hangup(call_id, EndReason.DIAL_FAILED)
                # Twilio's message names the dialled number: logged by type, never echoed
                log.warning("call %s: Twilio did not place the call (%s)", call_id, type(exc).__name__)
                raise _refuse(502, "dial_failed", "Twilio did not place the call") from None
            status = "dialing"
        voxray_metrics.start_call_latency(body.schema_name, (time.perf_counter() - t_start) * 1000)
        return StartCallResponse(
            call_id=call_id,
            status=status,
            state=result.state,
            host=result.host,
            opening=result.opening,
            media_url=media_stream_url(base, call_id),
            stream_token=self.pool.stream_token(call_id),
            twiml_url=f"{base}/twilio/voice/{call_id}",
            twilio_call_sid=sid,
            ready_ms=result.ready_ms,
        )

    async def _refuse_do_not_call(self, body: StartCallRequest) -> None:
        """409 when this contact asked not to be called again (the reason, never the contact)."""
        store = self.pool.store
        if store is None:
            return
        schema = self.registry.get(body.schema_name)
        try:
            data = schema.validate_call_data(body.call_data)
        except CallDataError:
            return  # the call host refuses it with the fields named
        entry = await store.do_not_call(contact_keys(schema.spec, data, body.to))
        if entry is not None:
            voxray_metrics.error("ingress", "do_not_call")
            asked = time.strftime("%Y-%m-%d", time.gmtime(entry["at"]))
            message = f"this contact asked not to be called again (call {entry['call_id']}, {asked})"
            raise HTTPException(409, detail={"reason": "do_not_call", "message": message})

    def _check_call_data(self, call_data: dict[str, Any]) -> None:
        """Bounded, printable call data (422 naming the field, never the value)."""
        limits = self.settings.limits
        problems = call_data_problems(call_data, limits)
        if problems:
            raise _call_data_error(dict(list(problems.items())[: limits.max_errors_listed]))

    async def _check_quota(self, principal: Principal) -> None:
        """429 when the tenant has ``limits.live_calls_per_tenant`` live calls already."""
        tenancy = self.access.tenancy
        if tenancy is None or not self.access.enabled:
            return
        live = await tenancy.live_of(principal.tenant)
        quota = self.settings.limits.live_calls_per_tenant
        if len(live) < quota:
            return
        routes = await asyncio.gather(*(self._route_or_none(c) for c in live))
        await tenancy.ended(principal.tenant, [c for c, r in zip(live, routes, strict=True) if r is None])
        if sum(r is not None for r in routes) >= quota:
            raise _refuse(429, "quota", f"this tenant has {quota} live calls already", {"Retry-After": "30"})

    async def _route_or_none(self, call_id: str) -> Any:
        try:
            return await self.pool.route(call_id)
        except CallNotFound:
            return None

    async def _owned(self, call_id: str, principal: Principal) -> None:
        """404 for a call of another tenant, as for one that does not exist."""
        if self.access.tenancy is None or not self.access.enabled:
            return
        if await self.access.tenancy.owner(call_id) != principal.tenant:
            raise HTTPException(404, detail="unknown call")

    @api.get("/calls")
    async def list_calls(
        self, status: CallStatus | None = None, schema: str | None = None, principal: Principal = CALLS_READ
    ) -> dict[str, Any]:
        await self._ready()
        calls = await self.pool.list_calls()
        if self.access.tenancy is not None and self.access.enabled:
            mine = set(await self.access.tenancy.calls_of(principal.tenant, 1000))
            calls = [c for c in calls if c["call_id"] in mine]
            ended = [c for c in await self.access.tenancy.calls_of(principal.tenant, 200)]
        else:
            ended = await self.pool.store.list_calls(200) if self.pool.store else []
        if status:
            calls = [c for c in calls if c["status"] == status]
        if schema:
            calls = [c for c in calls if c["schema"] == schema]
        live = {c["call_id"] for c in calls}
        return {"live": calls, "recent_ids": [i for i in ended if i not in live]}

    async def _record(self, call_id: str) -> dict[str, Any]:
        record = await self.pool.store.load_record(call_id) if self.pool.store else None
        if record is None:
            raise HTTPException(404, detail="unknown call")
        return record

    async def _live_or_record(self, call_id: str, method: str) -> dict[str, Any]:
        await self._ready()
        try:
            result: dict[str, Any] = await self.pool.call(call_id, method)
            return result
        except CallNotFound:
            record = await self._record(call_id)
        return record if method == "status" else record.get("performance", {})

    @api.get("/calls/{call_id}")
    async def call_status(self, call_id: str, principal: Principal = CALLS_READ) -> dict[str, Any]:
        await self._owned(call_id, principal)
        return await self._live_or_record(call_id, "status")

    @api.get("/calls/{call_id}/performance")
    async def call_performance(self, call_id: str, principal: Principal = CALLS_READ) -> dict[str, Any]:
        await self._owned(call_id, principal)
        return await self._live_or_record(call_id, "performance")

    @api.post("/calls/{call_id}/turns")
    async def text_turn(
        self, call_id: str, body: TextTurnRequest, principal: Principal = CALLS_WRITE
    ) -> dict[str, Any]:
        """Text mode: one counterpart line in, the agent's reply out (no STT/TTS)."""
        await self._owned(call_id, principal)
        if problem := text_problem(body.text, 2000):
            raise HTTPException(
                422, detail=[{"loc": ["body", "text"], "msg": problem, "type": "text_policy"}]
            )
        await self._ready()
        caller = CallerTurn(text=body.text, mode="text")
        try:
            events: list[TurnEvent] = await self.pool.call(call_id, "complete_turn", caller)
        except CallNotFound:
            raise HTTPException(404, detail="unknown or ended call") from None
        last = events[-1] if events else None
        if isinstance(last, TurnRefused):
            raise HTTPException(409, detail=last.message)
        if not isinstance(last, TurnDone):
            raise HTTPException(500, detail="the call ended the turn without a result")
        return last.model_dump(exclude={"kind", "ignored"})

    @api.post("/calls/{call_id}/hangup")
    async def hangup(
        self, call_id: str, body: HangupRequest | None = None, principal: Principal = CALLS_WRITE
    ) -> dict[str, Any]:
        """End a call. Hanging up a call that already ended returns its record (not an error)."""
        await self._owned(call_id, principal)
        await self._ready()
        return await self._end(call_id, EndReason.HANGUP, (body or HangupRequest()).reason)

    @api.delete("/calls/{call_id}")
    async def erase_call(self, call_id: str, principal: Principal = CALLS_WRITE) -> dict[str, Any]:
        """Erase an ended call: its record and transcript, route, snapshot, index entry and
        webhook deliveries (the do-not-call digests it earned stay). A live call: 409."""
        await self._owned(call_id, principal)
        if self.pool.store is None:
            raise _refuse(503, "no_store", "records live in Redis, which is not configured")
        try:
            erased = await self.pool.store.erase_call(call_id)
        except CallIsLive:
            raise _refuse(409, "call_live", "the call is live; hang it up first") from None
        if not erased:
            raise HTTPException(404, detail="unknown call")
        if self.access.tenancy is not None:
            await self.access.tenancy.forget(call_id, principal.tenant)
        return {"call_id": call_id, "erased": True}

    async def _end(self, call_id: str, reason: EndReason, note: str | None = None) -> dict[str, Any]:
        try:
            return await self.pool.hangup(call_id, reason, note)
        except CallNotFound:
            return await self._record(call_id)

    # ---- schemas ---------------------------------------------------------------------------
    @api.get("/schemas")
    async def schemas(self, principal: Principal = CALLS_READ) -> list[dict[str, Any]]:
        return [self._schema_info(name) for name in self.registry.names()]

    def _schema(self, name: str) -> CompiledSchema:
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
    async def schema_info(self, name: str, principal: Principal = CALLS_READ) -> dict[str, Any]:
        return self._schema_info(name)

    @api.post("/schemas/{name}/precompute")
    async def precompute(
        self, name: str, body: PrecomputeRequest, principal: Principal = CALLS_READ
    ) -> dict[str, Any]:
        schema = self._schema(name)
        t0 = time.perf_counter()
        try:
            data = schema.validate_call_data(body.call_data)
        except CallDataError as exc:
            raise _call_data_error(exc.problems) from None
        values = schema.precompute(data)
        return {"precomputed": values, "precompute_ms": (time.perf_counter() - t0) * 1000}

    @api.post("/schemas/{name}/render/{state}")
    async def render(
        self, name: str, state: str, body: PrecomputeRequest, principal: Principal = CALLS_READ
    ) -> dict[str, Any]:
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
        await self._ready()
        try:
            await self.pool.route(call_id)
        except CallNotFound:
            raise HTTPException(404, detail="unknown call") from None
        url = media_stream_url(self.settings.twilio.public_base_url, call_id)
        xml = connect_stream_twiml(url, {"call_id": call_id, "token": self.pool.stream_token(call_id)})
        return Response(content=xml, media_type="application/xml")

    @api.post("/twilio/status/{call_id}")
    async def twilio_status(self, call_id: str, request: Request) -> dict[str, Any]:
        form = await self._check_twilio(request)
        await self._ready()
        status = form.get("CallStatus", "")
        reason = EndReason.from_twilio_status(status)
        if reason is not None:
            with contextlib.suppress(HTTPException):
                await self._end(call_id, reason)
        return {"call_id": call_id, "status": status}

    @api.post("/twilio/amd/{call_id}")
    async def twilio_amd(self, call_id: str, request: Request) -> dict[str, Any]:
        """Twilio's answering machine detection (``AsyncAmdStatusCallback``): its ``AnsweredBy``
        goes to the call, where the edge deciding who answered picks it up."""
        form = await self._check_twilio(request)
        await self._ready()
        answered_by = TWILIO_ANSWERED_BY.get(form.get("AnsweredBy", ""))
        if answered_by is not None:
            with contextlib.suppress(Exception):  # the call ended meanwhile: nothing to tell
                await self.pool.call(call_id, "note_twilio_answer", answered_by)
        return {"call_id": call_id, "answered_by": str(answered_by) if answered_by else "unknown"}

    @api.post("/twilio/whisper/{call_id}")
    async def twilio_whisper(self, call_id: str, request: Request) -> Response:
        """Warm transfer: what the person hears before the call is bridged (Twilio asks when they
        answer; the summary waits in Redis, never in the URL)."""
        await self._check_twilio(request)
        summary = await self.pool.store.whisper(call_id) if self.pool.store else None
        return Response(content=whisper_twiml(summary or ""), media_type="application/xml")

    @api.websocket("/twilio/media/{call_id}")
    async def twilio_media(self, websocket: WebSocket, call_id: str) -> None:
        """The call's Twilio media stream; its rules and close codes: ``edge/media_socket.py``."""
        await self._ready()
        await MediaSocket(
            websocket,
            call_id,
            MediaSocketRules.from_settings(self.settings.twilio),
            self.pool,
            lambda send: CallLink(
                call_id,
                self.pool,
                self.stt,
                self.tts,
                send,
                telephony=self.telephony,
                recordings=self.recordings,
                twilio_amd=self.settings.twilio.machine_detection,
            ),
            self._end,
            self.links,
            accept_headers=[(REPLICA_HEADER.lower().encode(), _replica_id().encode())],
        ).run()

    # ---- health ----------------------------------------------------------------------------
    @api.get("/healthz")
    async def healthz(self) -> dict[str, str]:
        return {"status": "ok"}

    @api.get("/readyz")
    async def readyz(self) -> dict[str, Any]:
        await self._ready()
        loads = await self.pool.loads()
        if any(h.dead for h in loads):
            raise HTTPException(503, detail={"hosts": [h.model_dump() for h in loads]})
        return {"status": "ready", "schemas": self.registry.names(), "hosts": [h.model_dump() for h in loads]}

    # ---- admin -----------------------------------------------------------------------------
    @api.get("/docs", include_in_schema=False)
    async def docs(self, principal: Principal = ADMIN) -> Response:
        return get_swagger_ui_html(openapi_url="/openapi.json", title="voxray")

    @api.get("/openapi.json", include_in_schema=False)
    async def openapi(self, principal: Principal = ADMIN) -> dict[str, Any]:
        return api.openapi()

    @api.post("/admin/keys", status_code=201)
    async def create_key(self, body: NewKeyRequest, principal: Principal = ADMIN) -> dict[str, Any]:
        """A new API key for a tenant; the key is in this reply only (Redis keeps its hash)."""
        if self.access.keys is None:
            raise _refuse(503, "no_store", "API keys live in Redis, which is not configured")
        try:
            key = await self.access.keys.create(body.tenant, body.scopes, body.name)
        except ValueError as exc:
            raise HTTPException(
                422, detail=[{"loc": ["body"], "msg": str(exc), "type": "value_error"}]
            ) from None
        return {"key": key, "tenant": body.tenant, "scopes": sorted(set(body.scopes))}

    @api.get("/admin/keys")
    async def list_keys(self, principal: Principal = ADMIN) -> list[dict[str, Any]]:
        return await self.access.keys.list() if self.access.keys else []

    @api.delete("/admin/keys/{key_id}")
    async def revoke_key(self, key_id: str, principal: Principal = ADMIN) -> dict[str, bool]:
        return {"revoked": bool(self.access.keys and await self.access.keys.revoke(key_id))}

    @api.get("/admin/webhooks/dead")
    async def dead_letters(self, limit: int = 100, principal: Principal = ADMIN) -> list[dict[str, Any]]:
        """Webhook deliveries that failed for the whole retry window (no payloads)."""
        return await self.pool.store.dead_letters(max(1, min(limit, 1000))) if self.pool.store else []

    @api.post("/admin/webhooks/dead/{delivery_id}/replay")
    async def replay_dead_letter(self, delivery_id: str, principal: Principal = ADMIN) -> dict[str, Any]:
        """Put a dead letter back in the outbox, due now, with a fresh retry window."""
        if self.pool.store is None or not await self.pool.store.replay_dead_letter(delivery_id):
            raise HTTPException(404, detail="no such dead letter")
        return {"delivery_id": delivery_id, "replayed": True}

    @api.get("/stats")
    async def stats(self, principal: Principal = ADMIN) -> dict[str, Any]:
        await self._ready()
        return {
            "hosts": [h.model_dump() for h in await self.pool.loads()],
            "failovers": self.pool.failovers,
            "media_sockets": len(self.links),
        }
