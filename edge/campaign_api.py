"""``/campaigns``: outbound campaigns over the HTTP API (the runner: ``actors/campaigns``).

Rows arrive as JSON or as a CSV upload (multipart: a ``campaign`` JSON field and a ``rows``
file; one column per call-data field plus ``to``). Each row is checked as ``POST /calls``
checks call data; refused rows are listed by row number, field and message (never the value)
and the others run. Row data is never logged.
"""

import csv
import io
import time
import uuid
from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response
from pydantic import Field, ValidationError

from actors.campaigns.hours import next_opening, zones_for
from actors.campaigns.models import CallingHours, CampaignSpec, Pacing, Retries, RowState
from actors.campaigns.store import CampaignStore
from actors.store import CallStore
from common.settings import VoxraySettings
from edge import access as access_state
from edge.api_models import Request as StrictBody
from edge.api_models import e164
from edge.auth import KeyStore, Principal, parse_key
from edge.call_data_rules import call_data_problems
from engine.do_not_call import contact_keys
from engine.schema_errors import CallDataError
from engine.schema_loader import CompiledSchema, SchemaRegistry


class CampaignRequest(StrictBody):
    schema_name: str = Field(description="Conversation schema every row is called with.")
    name: str = Field("", max_length=100)
    rows: list[dict[str, Any]] | None = Field(
        None, description="Rows: call-data fields, plus 'to' (E.164) unless simulate. Or upload a CSV."
    )
    simulate: bool = Field(False, description="Simulated counterparts: nothing is dialled ('to' optional).")
    persona: str = Field("insurance_rep", max_length=64)
    pacing: Pacing = Pacing()
    retries: Retries = Retries()
    hours: CallingHours | None = Field(
        None, description="Within the tenant's bounds; default: the tenant window."
    )
    budget_usd: float | None = Field(None, ge=0, description="Stop dialling once the calls cost this.")


class DoNotCallUpload(StrictBody):
    schema_name: str = Field(description="The client (schema) whose list the numbers join.")
    numbers: list[str] = Field(min_length=1, max_length=100_000)


def plan_rows(
    schema: CompiledSchema, rows: list[dict[str, Any]], simulate: bool, settings: VoxraySettings
) -> tuple[dict[int, dict[str, Any]], list[dict[str, Any]]]:
    """Valid rows by number (1-based) as {"call_data", "to"}, and each problem of the others."""
    valid: dict[int, dict[str, Any]] = {}
    errors: list[dict[str, Any]] = []
    for n, raw in enumerate(rows, start=1):
        data = {k: v for k, v in raw.items() if k != "to"}
        to = raw.get("to") or None
        problems = call_data_problems(data, settings.limits)
        if not problems:
            try:
                data = schema.validate_call_data(data)
            except CallDataError as exc:
                problems = dict(exc.problems)
        if to is not None:
            try:
                to = e164(str(to))
            except ValueError as exc:
                problems["to"] = str(exc)
        elif not simulate:
            problems["to"] = "a number to dial is required (E.164), unless the campaign is simulate"
        if problems:
            errors.extend({"row": n, "field": f, "message": m} for f, m in problems.items())
        else:
            valid[n] = {"call_data": data, "to": to}
    return valid, errors


def tenant_hours(settings: VoxraySettings, asked: CallingHours | None) -> CallingHours:
    bounds = CallingHours(start=settings.campaigns.earliest_start, end=settings.campaigns.latest_end)
    if asked is None:
        return CallingHours(start=settings.campaigns.hours_start, end=settings.campaigns.hours_end)
    if not asked.within(bounds):
        raise HTTPException(
            422,
            detail=[
                {
                    "loc": ["body", "hours"],
                    "msg": f"calling hours must lie within {bounds.start}-{bounds.end} local time",
                    "type": "hours",
                }
            ],
        )
    return asked


async def create_campaign(
    store: CampaignStore,
    schema: CompiledSchema,
    settings: VoxraySettings,
    tenant: str,
    body: CampaignRequest,
    rows: list[dict[str, Any]],
    api_key: str | None = None,
    now: float | None = None,
) -> dict[str, Any]:
    """Validate, plan the first due times (each row's next calling-hours opening) and store."""
    at = time.time() if now is None else now
    hours = tenant_hours(settings, body.hours)
    valid, errors = plan_rows(schema, rows, body.simulate, settings)
    if not valid:
        raise HTTPException(422, detail={"reason": "no_valid_rows", "errors": errors[:1000]})
    spec = CampaignSpec(
        campaign_id=uuid.uuid4().hex,
        tenant=tenant,
        schema_name=schema.name,
        name=body.name,
        simulate=body.simulate,
        persona=body.persona,
        pacing=body.pacing,
        retries=body.retries,
        hours=hours,
        default_timezone=settings.campaigns.default_timezone,
        budget_usd=body.budget_usd,
        created_at=at,
        rows=len(rows),
    )
    due = {n: next_opening(hours, zones_for(r["to"], spec.default_timezone), at) for n, r in valid.items()}
    await store.create(spec, valid, due, errors, api_key)
    return {
        "campaign_id": spec.campaign_id,
        "rows": len(rows),
        "accepted": len(valid),
        "errors": errors[:1000],
    }


async def progress(store: CampaignStore, campaign_id: str) -> dict[str, Any]:
    spec = await store.spec(campaign_id)
    if spec is None:
        raise HTTPException(404, detail="unknown campaign")
    meta = await store.meta(campaign_id)
    rows = await store.rows(campaign_id)
    states = {s.value: 0 for s in RowState}
    outcomes: dict[str, int] = {}
    for row in rows.values():
        states[row.state.value] += 1
        if row.outcome:
            outcomes[row.outcome] = outcomes.get(row.outcome, 0) + 1
    return {
        "campaign_id": campaign_id,
        "name": spec.name,
        "schema": spec.schema_name,
        "status": meta.get("status"),
        "rows": spec.rows,
        "invalid_rows": int(meta.get("invalid", "0")),
        "states": states,
        "outcomes": outcomes,
        "attempts": sum(r.attempt for r in rows.values()),
        "deferred_for_hours": sum(r.deferred for r in rows.values()),
        "spent_usd": round(float(meta.get("spent_usd", "0")), 6),
        "budget_usd": spec.budget_usd,
        "pacing": spec.pacing.model_dump(),
        "hours": spec.hours.model_dump(),
        "next_due": await store.next_due(campaign_id),
        "finished_at": float(meta["finished_at"]) if "finished_at" in meta else None,
    }


async def results_csv(store: CampaignStore, campaign_id: str) -> str:
    rows = await store.rows(campaign_id)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["row", "state", "attempts", "last_call_id", "outcome", "result", "end_reason"])
    for n in sorted(rows):
        r = rows[n]
        result = r.result.value if r.result else ""
        writer.writerow(
            [n, r.state.value, r.attempt, r.call_id or "", r.outcome or "", result, r.end_reason or ""]
        )
    return out.getvalue()


def parse_csv(text: str, max_rows: int) -> list[dict[str, Any]]:
    reader = csv.DictReader(io.StringIO(text))
    rows: list[dict[str, Any]] = []
    for line in reader:
        if len(rows) >= max_rows:
            raise HTTPException(
                413, detail={"reason": "too_many_rows", "message": f"at most {max_rows} rows"}
            )
        rows.append({k.strip(): v for k, v in line.items() if k and v not in (None, "")})
    return rows


# ---- the router ---------------------------------------------------------------------------------


class _State:
    """This replica's campaign store and schemas (built on first use from the installed access,
    which is how module functions reach the replica's settings: see ``edge/access.py``)."""

    store: CampaignStore | None = None
    calls: CallStore | None = None
    registry: SchemaRegistry | None = None


def _settings() -> VoxraySettings:
    access = access_state.current()
    if access is None or access.settings.redis_url is None:
        raise HTTPException(
            503, detail={"reason": "no_store", "message": "campaigns live in Redis, not configured"}
        )
    return access.settings


def _store() -> tuple[CampaignStore, CallStore, SchemaRegistry, VoxraySettings]:
    settings = _settings()
    url = settings.redis_url
    assert url is not None
    if _State.store is None or _State.calls is None or _State.registry is None:
        _State.store = CampaignStore(url, settings.calls.key_prefix, settings.retention.record_ttl_s)
        _State.calls = CallStore(url, settings.calls.key_prefix, settings.retention.record_ttl_s)
        _State.registry = SchemaRegistry.shared(settings.schemas.directory)
    return _State.store, _State.calls, _State.registry, settings


def _schema(registry: SchemaRegistry, name: str) -> CompiledSchema:
    if name not in registry:
        detail = [
            {
                "loc": ["body", "schema_name"],
                "msg": f"unknown schema; known: {registry.names()}",
                "type": "unknown_schema",
            }
        ]
        raise HTTPException(422, detail=detail)
    return registry.get(name)


def _invalid(exc: ValidationError, where: str) -> HTTPException:
    detail = [{"loc": [where, *e["loc"]], "msg": e["msg"], "type": e["type"]} for e in exc.errors()[:20]]
    return HTTPException(422, detail=detail)


async def _owned(store: CampaignStore, campaign_id: str, principal: Principal) -> CampaignSpec:
    spec = await store.spec(campaign_id)
    access = access_state.current()
    checks = access is not None and access.enabled
    if spec is None or (checks and spec.tenant != principal.tenant):
        raise HTTPException(404, detail="unknown campaign")
    return spec


async def _runner_key(settings: VoxraySettings, tenant: str, campaign_id: str) -> str | None:
    """An API key of the tenant for the runner's ``POST /calls`` (revoked when it finishes)."""
    access = access_state.current()
    if access is None or not access.enabled or access.keys is None:
        return None
    return await access.keys.create(
        tenant, ["calls:write", "calls:read"], name=f"campaign {campaign_id[:12]}"
    )


async def revoke_runner_key(settings: VoxraySettings, campaign_id: str, key: str | None) -> None:
    """The runner's ``on_finished``: the finished campaign's key stops working."""
    if not key or settings.redis_url is None:
        return
    keys = KeyStore(settings.redis_url, settings.calls.key_prefix)
    try:
        await keys.revoke(parse_key(key)[0])
    finally:
        await keys.aclose()


def campaign_router(write: Any, read: Any) -> APIRouter:
    """The routes, with the ingress's auth dependencies (``calls:write`` / ``calls:read``)."""
    router = APIRouter(prefix="/campaigns", tags=["campaigns"])

    @router.post("", status_code=201)
    async def create(request: Request, principal: Principal = write) -> dict[str, Any]:
        """A new campaign: JSON (``CampaignRequest`` with ``rows``) or multipart (``campaign``
        JSON field + ``rows`` CSV file). 422 when no row is valid."""
        store, _, registry, settings = _store()
        rows: list[dict[str, Any]]
        try:
            if request.headers.get("content-type", "").startswith("multipart/form-data"):
                form = await request.form()
                body = CampaignRequest.model_validate_json(str(form.get("campaign") or "{}"))
                upload = form.get("rows")
                if upload is None or isinstance(upload, str):
                    raise HTTPException(
                        422, detail=[{"loc": ["form", "rows"], "msg": "attach a CSV file", "type": "missing"}]
                    )
                raw = await upload.read()
                try:
                    text = raw.decode("utf-8-sig")
                except UnicodeDecodeError:
                    raise HTTPException(
                        422, detail=[{"loc": ["form", "rows"], "msg": "not UTF-8 text", "type": "csv"}]
                    ) from None
                rows = parse_csv(text, settings.campaigns.max_rows)
            else:
                body = CampaignRequest.model_validate_json(await request.body())
                rows = body.rows or []
        except ValidationError as exc:
            raise _invalid(exc, "body") from None
        except csv.Error:
            raise HTTPException(
                422, detail=[{"loc": ["form", "rows"], "msg": "not a readable CSV", "type": "csv"}]
            ) from None
        if not rows:
            raise HTTPException(422, detail=[{"loc": ["body", "rows"], "msg": "no rows", "type": "missing"}])
        if len(rows) > settings.campaigns.max_rows:
            raise HTTPException(
                413,
                detail={"reason": "too_many_rows", "message": f"at most {settings.campaigns.max_rows} rows"},
            )
        schema = _schema(registry, body.schema_name)
        campaign_key = uuid.uuid4().hex
        key = await _runner_key(settings, principal.tenant, campaign_key)
        try:
            return await create_campaign(store, schema, settings, principal.tenant, body, rows, key)
        except HTTPException:
            if key:
                await revoke_runner_key(settings, campaign_key, key)
            raise

    @router.post("/dnc")
    async def upload_dnc(body: DoNotCallUpload, principal: Principal = write) -> dict[str, Any]:
        """Numbers the schema's client must never call (as digests; the numbers are not kept)."""
        _, calls, registry, _ = _store()
        schema = _schema(registry, body.schema_name)
        errors, keys = [], []
        for i, number in enumerate(body.numbers, start=1):
            try:
                keys.extend(contact_keys(schema.spec, {}, e164(number)))
            except ValueError as exc:
                errors.append({"row": i, "field": "number", "message": str(exc)})
        await calls.add_do_not_call(sorted(set(keys)), f"upload:{principal.tenant}")
        return {"added": len(body.numbers) - len(errors), "errors": errors[:1000]}

    @router.get("")
    async def list_campaigns(principal: Principal = read) -> list[str]:
        store, _, _, _ = _store()
        return await store.of_tenant(principal.tenant)

    @router.get("/{campaign_id}")
    async def status(campaign_id: str, principal: Principal = read) -> dict[str, Any]:
        store, _, _, _ = _store()
        await _owned(store, campaign_id, principal)
        return await progress(store, campaign_id)

    @router.get("/{campaign_id}/results.csv")
    async def results(campaign_id: str, principal: Principal = read) -> Response:
        store, _, _, _ = _store()
        await _owned(store, campaign_id, principal)
        headers = {"Content-Disposition": f'attachment; filename="campaign-{campaign_id}.csv"'}
        return Response(await results_csv(store, campaign_id), media_type="text/csv", headers=headers)

    async def _move(
        campaign_id: str, principal: Principal, allowed: tuple[str, ...], to: Any
    ) -> dict[str, Any]:
        store, _, _, _ = _store()
        await _owned(store, campaign_id, principal)
        if not await store.set_status(campaign_id, allowed, to):
            now = await store.status(campaign_id)
            raise HTTPException(409, detail={"reason": "wrong_status", "message": f"the campaign is {now}"})
        if to == "cancelled":
            await store.cancel_queued(campaign_id)
        return await progress(store, campaign_id)

    @router.post("/{campaign_id}/pause")
    async def pause(campaign_id: str, principal: Principal = write) -> dict[str, Any]:
        return await _move(campaign_id, principal, ("running",), "paused")

    @router.post("/{campaign_id}/resume")
    async def resume(campaign_id: str, principal: Principal = write) -> dict[str, Any]:
        return await _move(campaign_id, principal, ("paused",), "running")

    @router.post("/{campaign_id}/cancel")
    async def cancel(campaign_id: str, principal: Principal = write) -> dict[str, Any]:
        return await _move(campaign_id, principal, ("running", "paused"), "cancelled")

    return router


async def start_runner(settings: VoxraySettings) -> Any:
    """The cluster's campaign runner (started or found), revoking finished campaigns' keys."""
    from actors.campaigns.actor import ensure_runner

    async def finished(campaign_id: str, key: str | None) -> None:
        await revoke_runner_key(settings, campaign_id, key)

    return await ensure_runner(settings, finished)
