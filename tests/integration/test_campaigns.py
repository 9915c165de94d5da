"""Campaigns on the real Redis: atomic claims, resumption after a killed runner, do-not-call
and calling hours never dialled, the budget stop (dials go to SIMULATED COUNTERPARTS)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from actors.campaigns.models import CallingHours, CampaignSpec, Pacing, Row, RowState
from actors.campaigns.runner import CampaignRunner, RunnerConfig
from actors.campaigns.store import CampaignStore, Claim
from actors.store import CallStore
from common.settings import VoxraySettings
from engine.schema_loader import SchemaRegistry
from loadtests import campaign_load
from loadtests.campaign_load import SimulatedPhoneNetwork

REDIS = VoxraySettings().redis_url or "redis://127.0.0.1:6379/0"
ALWAYS = CallingHours(start="00:00", end="23:59")


@pytest_asyncio.fixture
async def prefix() -> AsyncIterator[str]:
    name = f"vxtest-campaigns-{uuid.uuid4().hex[:8]}:"
    yield name
    store = CampaignStore(REDIS, name)
    keys = [k async for k in store.redis.scan_iter(match=f"{name}*", count=1000)]
    if keys:
        await store.redis.delete(*keys)
    await store.aclose()


def spec(rows: int, **extra: Any) -> CampaignSpec:
    return CampaignSpec(
        campaign_id=uuid.uuid4().hex,
        tenant="t1",
        schema_name="sales_qualification",
        rows=rows,
        created_at=time.time(),
        **{"hours": ALWAYS, **extra},
    )


def row_data(n: int, to: str | None = "+12125550100") -> dict[str, Any]:
    return {"call_data": {"lead_name": f"Lead {n}", "company": "Example Co"}, "to": to}


@pytest.mark.asyncio
async def test_four_claimers_never_claim_a_row_twice(prefix: str) -> None:
    store = CampaignStore(REDIS, prefix)
    s = spec(500, pacing=Pacing(max_concurrent=500, calls_per_minute=600))
    rows = {n: row_data(n) for n in range(1, 501)}
    await store.create(s, rows, dict.fromkeys(rows, 0.0), [])
    claims: list[tuple[int, int]] = []

    async def claimer() -> None:
        while True:
            got = await store.claim(s.campaign_id, 500, 0.0)
            if isinstance(got, Claim):
                claims.append((got.row, got.attempt))
            elif got.why in ("nothing_due", "lines_full"):
                return

    await asyncio.gather(*(claimer() for _ in range(4)))
    assert len(claims) == 500
    assert len({r for r, _ in claims}) == 500  # 0 double claims
    assert {a for _, a in claims} == {1}
    states = await store.rows(s.campaign_id)
    assert all(r.state == RowState.DIALLING and r.attempt == 1 for r in states.values())
    # a stale writer (attempt 1 again after a re-claim bumped it) changes nothing
    assert not await store.settle(s.campaign_id, 1, 2, Row(state=RowState.DONE))
    await store.aclose()


@pytest.mark.asyncio
async def test_lease_keeps_one_runner(prefix: str) -> None:
    store = CampaignStore(REDIS, prefix)
    assert await store.hold_lease("a", 0.3)
    assert not await store.hold_lease("b", 0.3)
    s = spec(1)
    await store.create(s, {1: row_data(1)}, {1: 0.0}, [])
    refused = await store.claim(s.campaign_id, 5, 0.0, runner="b")
    assert not isinstance(refused, Claim) and refused.why == "not_holder"
    await asyncio.sleep(0.4)  # a's lease expired: b takes over
    assert await store.hold_lease("b", 0.3)
    assert isinstance(await store.claim(s.campaign_id, 5, 0.0, runner="b"), Claim)
    await store.aclose()


async def _run_until_settled(runner: CampaignRunner, store: CampaignStore, cid: str, limit_s: float) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop))
    deadline = time.time() + limit_s
    while time.time() < deadline:
        await asyncio.sleep(0.2)
        if await store.meta(cid) and "finished_at" in await store.meta(cid):
            break
    stop.set()
    await task


@pytest.mark.asyncio
async def test_dnc_and_hours_never_dialled_and_budget_stops(prefix: str) -> None:
    settings = VoxraySettings()
    schema = SchemaRegistry.shared(settings.schemas.directory).get("sales_qualification")
    store, calls = CampaignStore(REDIS, prefix), CallStore(REDIS, prefix)
    from engine.do_not_call import contact_keys

    listed = "+12125550111"
    await calls.add_do_not_call(contact_keys(schema.spec, {}, listed), "upload:test")
    now_utc_hour = time.gmtime().tm_hour
    closed = CallingHours(
        start=f"{(now_utc_hour + 3) % 21:02d}:00", end=f"{(now_utc_hour + 3) % 21 + 2:02d}:00"
    )
    s = spec(30, hours=ALWAYS, budget_usd=0.02, pacing=Pacing(max_concurrent=3, calls_per_minute=600))
    rows = {n: row_data(n, "+12125550100") for n in range(1, 31)}
    rows[1] = row_data(1, listed)  # claimed first (equal due times: by member order)
    await store.create(s, rows, dict.fromkeys(rows, 0.0), [])
    # a second campaign whose window is closed now, in London time
    shut = spec(5, hours=closed, default_timezone="UTC")
    await store.create(shut, {n: row_data(n, None) for n in range(1, 6)}, dict.fromkeys(range(1, 6), 0.0), [])
    network = SimulatedPhoneNetwork(REDIS, prefix, calls, ALWAYS, {listed}, call_s=(0.05, 0.1))

    async def on_list(sp: CampaignSpec, data: dict[str, Any]) -> bool:
        keys = contact_keys(schema.spec, data["call_data"], data.get("to"))
        return await calls.do_not_call(keys) is not None

    runner = CampaignRunner(store, calls, network, on_list, RunnerConfig(lease_ttl_s=2, tick_s=0.05))
    await _run_until_settled(runner, store, s.campaign_id, 20)
    assert network.tally.to_dnc == 0
    listed_row = await store.row(s.campaign_id, 1)
    assert listed_row is not None
    assert (listed_row.state, listed_row.outcome, listed_row.attempt) == (RowState.SKIPPED, "do_not_call", 0)
    meta = await store.meta(s.campaign_id)
    assert meta["status"] == "budget_reached"
    spent = float(meta["spent_usd"])
    assert 0.02 <= spent <= 0.02 + 3 * 0.004 + 1e-9  # only the calls in flight at the cap add to it
    assert sum(r.state == RowState.QUEUED for r in (await store.rows(s.campaign_id)).values()) > 0
    shut_rows = await store.rows(shut.campaign_id)
    assert all(r.state == RowState.QUEUED and r.attempt == 0 for r in shut_rows.values())
    assert min(r.due_at for r in shut_rows.values()) > time.time() + 3600  # the next opening
    await network.aclose()
    await store.aclose()
    await calls.redis.aclose()


@pytest.mark.asyncio
async def test_short_load_with_a_killed_runner_and_a_lost_ingress() -> None:
    args = campaign_load.parse(
        [
            "--short",
            "--restart-runner",
            "--restart-ingress",
            "--hours-start",
            "00:00",
            "--hours-end",
            "23:59",
            "--cpm",
            "600",
            "--max-s",
            "120",
        ]
    )
    report = await campaign_load.run(args)
    assert report["attempts_dialled_twice"] == 0
    assert report["calls_outside_hours"] == 0
    assert report["calls_to_dnc"] == 0
    assert report["rows_dialled"] + report["rows_skipped_dnc"] == 60
    assert len(report["drills"]) == 2
    assert report["states"].get("dialling", 0) == 0 and report["states"].get("queued", 0) == 0
