"""A campaign against SIMULATED COUNTERPARTS: N rows dialled at a set pace, with a report.

The runner (``actors/campaigns``) runs for real against the real Redis; what it dials is a
``SimulatedPhoneNetwork``: it answers ``start`` with the same Idempotency-Key contract as
``POST /calls`` (a re-sent key gets the first call back), and each call ends a moment later
with a call record in the real call store (completed, no answer, busy, voicemail, failed;
costs on the record), as a hung-up call does. The network counts every call it really started
per (row, attempt) and checks, on its own, calling hours and the do-not-call numbers at the
moment of each dial.

Drills: ``--restart-runner`` kills the runner mid-campaign (no lease release, in-flight starts
dropped; another runner takes over when the lease expires); ``--restart-ingress`` takes the
network down for a few seconds, losing the replies of starts it did make.

    python -m loadtests.campaign_load [--rows 500] [--short] [--restart-runner] [--restart-ingress]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import phonenumbers
import redis.asyncio as aioredis

from actors.campaigns.hours import inside, zones_for
from actors.campaigns.models import CallingHours, CampaignSpec, Pacing, Retries, RetryRule, RowState
from actors.campaigns.runner import CampaignRunner, NotStarted, RunnerConfig, Started
from actors.campaigns.store import CampaignStore
from actors.store import CallStore
from common.settings import VoxraySettings
from edge.campaign_api import CampaignRequest, create_campaign
from engine.do_not_call import contact_keys
from engine.schema_loader import SchemaRegistry

SCHEMA = "sales_qualification"
# (outcome end_reason, answered_by, schema outcome, weight)
_RESULTS = [
    ("completed", "human", "qualified", 55),
    ("twilio:no-answer", None, None, 15),
    ("twilio:busy", None, None, 10),
    ("completed", "voicemail", "voicemail_left", 8),
    ("completed", "voicemail", None, 5),
    ("twilio:failed", None, None, 7),
]


@dataclass
class NetworkTally:
    new_calls: dict[str, int] = field(default_factory=dict)  # "row:attempt" → calls started
    outside_hours: int = 0
    to_dnc: int = 0
    lost_replies: int = 0
    started_at: list[float] = field(default_factory=list)


class SimulatedPhoneNetwork:
    """SIMULATED COUNTERPARTS behind the ``POST /calls`` contract (see the module doc)."""

    def __init__(
        self,
        redis_url: str,
        prefix: str,
        calls: CallStore,
        hours: CallingHours,
        dnc_numbers: set[str],
        call_s: tuple[float, float] = (0.3, 1.2),
        seed: int = 7,
    ):
        self.redis: Any = aioredis.Redis.from_url(redis_url)
        self.prefix = prefix
        self.calls = calls
        self.hours = hours
        self.dnc_numbers = dnc_numbers
        self.call_s = call_s
        self.random = random.Random(seed)
        self.tally = NetworkTally()
        self.down_until = 0.0
        self._calls: set[asyncio.Task[None]] = set()

    async def start(
        self, spec: CampaignSpec, data: dict[str, Any], idempotency_key: str, api_key: str | None
    ) -> Started | NotStarted:
        await asyncio.sleep(0.005)
        down = time.time() < self.down_until
        if down and self.random.random() < 0.5:
            return NotStarted("unreachable:ConnectError", transient=True)
        call_id = uuid.uuid4().hex
        slot = f"{self.prefix}simnet:idem:{idempotency_key}"
        if not await self.redis.set(slot, call_id, nx=True, ex=3600):
            earlier = await self.redis.get(slot)
            return Started(earlier.decode())
        row_attempt = ":".join(idempotency_key.split(":")[3::2])  # row:attempt
        self.tally.new_calls[row_attempt] = self.tally.new_calls.get(row_attempt, 0) + 1
        self.tally.started_at.append(time.time())
        to = data.get("to")
        if not inside(self.hours, zones_for(to, spec.default_timezone), time.time()):
            self.tally.outside_hours += 1
        if to in self.dnc_numbers:
            self.tally.to_dnc += 1
        task = asyncio.get_running_loop().create_task(self._ring(call_id, spec))
        self._calls.add(task)
        task.add_done_callback(self._calls.discard)
        if down:  # the call started, its reply was lost with the ingress
            self.tally.lost_replies += 1
            return NotStarted("unreachable:ReadError", transient=True)
        return Started(call_id)

    async def _ring(self, call_id: str, spec: CampaignSpec) -> None:
        await self.calls.open_call(call_id, "simulated-host", spec.schema_name, None, b"")
        await asyncio.sleep(self.random.uniform(*self.call_s))
        reason, who, outcome, _ = self.random.choices(_RESULTS, weights=[r[3] for r in _RESULTS])[0]
        cost = 0.004 if who is not None else 0.0
        record = {
            "call_id": call_id,
            "schema": spec.schema_name,
            "status": "ended",
            "outcome": outcome,
            "end_reason": reason,
            "answered": {"answered_by": who} if who else None,
            "performance": {"cost_usd": cost},
            "ended_at": time.time(),
        }
        await self.calls.end_call(call_id, record, None)

    async def aclose(self) -> None:
        for task in list(self._calls):
            task.cancel()
        await self.redis.aclose()


def numbers(count: int, seed: int = 11) -> list[str]:
    """Valid numbers across zones: New York, Los Angeles, London, Tokyo, Sydney."""
    rng = random.Random(seed)
    templates = ["+1212{:07d}", "+1213{:07d}", "+4420{:08d}", "+813{:08d}", "+612{:08d}"]
    out: list[str] = []
    while len(out) < count:
        template = templates[len(out) % len(templates)]
        digits = (
            rng.randrange(2_000_000, 9_999_999)
            if template.startswith("+1")
            else rng.randrange(10**7, 10**8 - 1)
        )
        number = template.format(digits)
        if phonenumbers.is_valid_number(phonenumbers.parse(number, None)):
            out.append(number)
    return out


async def run(args: argparse.Namespace) -> dict[str, Any]:
    settings = VoxraySettings()
    url = settings.redis_url or "redis://127.0.0.1:6379/0"
    prefix = f"vxload-campaign-{uuid.uuid4().hex[:8]}:"
    registry = SchemaRegistry.shared(settings.schemas.directory)
    schema = registry.get(SCHEMA)
    calls = CallStore(url, prefix)
    store = CampaignStore(url, prefix)
    hours = CallingHours(start=args.hours_start, end=args.hours_end)
    to_numbers = numbers(args.rows)
    dnc = set(to_numbers[::20])  # 1 row in 20 on the list
    for number in dnc:
        await calls.add_do_not_call(contact_keys(schema.spec, {}, number), "upload:load")
    rows = [
        {"lead_name": f"Lead {i}", "company": f"Company {i}", "to": to_numbers[i]} for i in range(args.rows)
    ]
    fast = RetryRule(max_attempts=2, spacing_s=1.0)
    body = CampaignRequest(
        schema_name=SCHEMA,
        rows=None,
        pacing=Pacing(max_concurrent=args.concurrent, calls_per_minute=args.cpm),
        retries=Retries(no_answer=fast, busy=fast, voicemail=fast, failed=fast),
        hours=hours,
    )
    settings.campaigns.earliest_start, settings.campaigns.latest_end = "00:00", "23:59"
    created = await create_campaign(store, schema, settings, "load", body, rows)
    cid = created["campaign_id"]
    network = SimulatedPhoneNetwork(url, prefix, calls, hours, dnc)

    async def on_list(spec: CampaignSpec, data: dict[str, Any]) -> bool:
        return (
            await calls.do_not_call(contact_keys(schema.spec, data["call_data"], data.get("to"))) is not None
        )

    config = RunnerConfig(lease_ttl_s=3.0, tick_s=0.05, resend_after_s=0.5)

    def runner() -> CampaignRunner:
        return CampaignRunner(store, calls, network, on_list, config)

    dialable = sum(1 for r in (await store.rows(cid)).values() if r.due_at <= time.time() + 1)
    t0 = time.time()
    first = runner()
    stop = asyncio.Event()
    tasks = [asyncio.create_task(first.run(stop))]
    restarts: list[str] = []

    async def settled() -> bool:
        rows_now = await store.rows(cid)
        now = time.time()
        waiting = [r for r in rows_now.values() if r.state == RowState.QUEUED and r.due_at <= now + 5]
        busy = [r for r in rows_now.values() if r.state == RowState.DIALLING]
        return not waiting and not busy

    while time.time() - t0 < args.max_s:
        await asyncio.sleep(0.5)
        dialled = len(network.tally.new_calls)
        if args.restart_runner and not restarts and dialled >= dialable // 3:
            first.kill()
            tasks[0].cancel()
            restarts.append(f"runner killed at {dialled} dials, t={time.time() - t0:.1f}s")
            tasks.append(asyncio.create_task(runner().run(stop)))
        if args.restart_ingress and dialled >= dialable // 2 and network.down_until == 0.0:
            network.down_until = time.time() + 4.0
            restarts.append(f"ingress down 4 s at {dialled} dials, t={time.time() - t0:.1f}s")
        if await settled():
            break
    duration = time.time() - t0
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    final = await store.rows(cid)
    attempts = await store.attempts(cid)
    tally = network.tally
    gaps = sorted(b - a for a, b in zip(tally.started_at, tally.started_at[1:], strict=False))
    states: dict[str, int] = {}
    for row in final.values():
        states[row.state.value] = states.get(row.state.value, 0) + 1
    report = {
        "rows": args.rows,
        "rows_in_hours_at_start": dialable,
        "pace": {"max_concurrent": args.concurrent, "calls_per_minute": args.cpm},
        "calls_started": sum(tally.new_calls.values()),
        "rows_dialled": len({k.split(":")[0] for k in tally.new_calls}),
        "attempts_dialled_twice": sum(1 for v in tally.new_calls.values() if v > 1),
        "calls_outside_hours": tally.outside_hours,
        "calls_to_dnc": tally.to_dnc,
        "rows_skipped_dnc": sum(1 for r in final.values() if r.outcome == "do_not_call"),
        "rows_waiting_for_hours": sum(1 for r in final.values() if r.state == RowState.QUEUED),
        "deferrals_for_hours": sum(r.deferred for r in final.values()),
        "attempt_records": len(attempts),
        "lost_replies_resent": tally.lost_replies,
        "states": states,
        "duration_s": round(duration, 1),
        "calls_per_min": round(sum(tally.new_calls.values()) / duration * 60, 1),
        "dial_gap_s": {
            "median": round(gaps[len(gaps) // 2], 3) if gaps else None,
            "p05": round(gaps[len(gaps) // 20], 3) if gaps else None,
        },
        "drills": restarts,
    }
    await network.aclose()
    keys = [k async for k in calls.redis.scan_iter(match=f"{prefix}*", count=1000)]
    for i in range(0, len(keys), 500):
        await calls.redis.delete(*keys[i : i + 500])
    await store.aclose()
    await calls.redis.aclose()
    return report


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="campaign_load", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=500)
    parser.add_argument("--short", action="store_true", help="60 rows (what the tests run)")
    parser.add_argument("--concurrent", type=int, default=20)
    parser.add_argument("--cpm", type=float, default=600.0, help="calls per minute")
    parser.add_argument("--hours-start", default="09:00")
    parser.add_argument("--hours-end", default="20:00")
    parser.add_argument("--restart-runner", action="store_true")
    parser.add_argument("--restart-ingress", action="store_true")
    parser.add_argument("--max-s", type=float, default=600.0)
    args = parser.parse_args(argv)
    if args.short:
        args.rows = 60
    return args


def main(argv: list[str] | None = None) -> int:
    report = asyncio.run(run(parse(argv)))
    print(json.dumps(report, indent=2))
    bad = report["attempts_dialled_twice"] + report["calls_outside_hours"] + report["calls_to_dnc"]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
