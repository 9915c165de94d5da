"""A campaign against the REAL app on a local Ray cluster, with an ingress replica and a call host
killed mid-campaign, and SIMULATED COUNTERPARTS playing the leads.

    python -m loadtests.campaign_cluster [--rows 500] [--short]

Real: Ray + Serve with the app (``loadtests.place_call.start_cluster``): its ingress replica,
its CallHost actors, the cluster's campaign runner actor (started by the ingress, dialling that
same ingress's ``POST /calls`` with the campaign's key) and Redis. The campaign is made, and the
do-not-call numbers are listed, through the HTTP API (``POST /campaigns/dnc``, ``POST /campaigns``).

Simulated: the LLM provider (``common.testing`` FakeOpenAIServer, as ``loadtests.faults``);
the phone network (a ``simulate`` campaign: nothing is dialled, calls run in text mode); the
leads: a SIMULATED COUNTERPART DRIVER polls ``GET /calls?schema=sales_qualification``, reads
each new call's opening line (``Hi <lead name>, …``) to know its row, and plays it as one of the
scripted counterparts of ``tests/scenarios/sales_qualification`` (``scenario_suite.Player``: some
book a meeting, some are not interested, a few ask never to be called again) with
``POST /calls/{id}/turns`` until the call ends, then hangs it up.

Rows: distinct numbers in five zones (``campaign_load.numbers``); the calling hours are chosen
so that some zones are inside them for the whole run and the others outside; one row in 17 is on
the client's do-not-call list. Drills: the ingress replica is killed (``faults.kill_serve_replica``)
after a quarter of the in-hours rows have a call, a call host (``faults.kill_call_host``) after
half. The run waits until no row is dialling and only outside-hours rows are queued.

Checked on the driver's own count (a call is attributed to a row by the name it opens with),
not on the campaign's bookkeeping: calls per row beyond the row's attempts (dialled twice), calls
to rows outside hours at the moment the call was seen, calls to listed numbers (or after a call
of that row ended do-not-call). Exits 1 only when one of those is not 0; timings never fail.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import io
import json
import os
import re
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx

from actors.campaigns.hours import inside, zones_for
from actors.campaigns.models import CallingHours
from loadtests.campaign_load import numbers
from loadtests.faults import (
    HEALTHY,
    CallRun,
    Turn,
    cleanup_redis,
    drill_settings,
    hang_up,
    kill_call_host,
    kill_serve_replica,
    pause,
    shutdown,
    wait_ready,
)
from loadtests.scenario_suite import MAX_TURNS, Counterpart, Player, load_counterparts, topic_of

SCHEMA = "sales_qualification"
DEFAULT_ZONE = "America/New_York"
OPENING = re.compile(r"\bHi (Lead [A-Za-z ]+?),")
ONES = "zero one two three four five six seven eight nine".split()


def lead_name(n: int) -> str:
    """Row n's lead, spelt in words ("Lead Four Two" for 42): a name the greeting says as is."""
    return "Lead " + " ".join(ONES[int(d)].capitalize() for d in str(n))


def row_of(name: str) -> int | None:
    try:
        return int("".join(str(ONES.index(w.lower())) for w in name.split()[1:]))
    except ValueError:
        return None


# ---------------------------------------------------------------- the campaign's plan
@dataclass
class Plan:
    hours: CallingHours
    to: dict[int, str]  # row (1-based, as the campaign numbers them) → number
    dnc: set[int]  # rows whose number is on the do-not-call list before the campaign
    outside: set[int]  # rows outside calling hours for the whole run

    def in_hours(self, n: int, at: float) -> bool:
        return inside(self.hours, zones_for(self.to[n], DEFAULT_ZONE), at)


def choose_hours(now: float, span_s: float) -> CallingHours:
    """Whole-half-hour calling hours in which 3 of the 5 zones of ``numbers()`` (or as near as
    can be) are inside, and each zone stays on its side for ``span_s``; the tenant window
    (08:00-21:00) preferred."""
    zones = [zones_for(n, DEFAULT_ZONE) for n in numbers(5)]
    checks = [now + t for t in range(-1800, int(span_s) + 1801, 300)]
    best: tuple[tuple[int, int], CallingHours] | None = None
    for start in range(0, 23 * 60, 30):
        for end in range(start + 240, 24 * 60, 60):
            hours = CallingHours(
                start=f"{start // 60:02d}:{start % 60:02d}", end=f"{end // 60:02d}:{end % 60:02d}"
            )
            sides = [{inside(hours, z, t) for t in checks} for z in zones]
            if any(len(s) > 1 for s in sides):
                continue
            n_in = sum(True in s for s in sides)
            if not 0 < n_in < len(zones):
                continue
            score = (abs(n_in - 3), 0 if start >= 8 * 60 and end <= 21 * 60 else 1)
            if best is None or score < best[0]:
                best = (score, hours)
    if best is None:
        raise SystemExit("no calling hours split the zones for the whole run")
    return best[1]


def make_plan(rows: int, span_s: float) -> Plan:
    now = time.time()
    hours = choose_hours(now, span_s)
    to = {i + 1: number for i, number in enumerate(numbers(rows))}
    plan = Plan(hours, to, {n for n in to if n % 17 == 5}, set())
    plan.outside = {n for n in to if not plan.in_hours(n, now)}
    return plan


# ---------------------------------------------------------------- the counterpart driver
@dataclass
class Lead:
    """One call the driver saw: its row (from the opening), the counterpart that played it."""

    run: CallRun
    seen_at: float
    via: str  # "listed": GET /calls; "results": only the campaign's results named it
    row: int | None = None
    counterpart: str = ""
    expected: str = ""
    outcome: str | None = None
    done: bool = False
    host: str = ""  # the host it was on when first read (after a move: the new one)


@dataclass
class CounterpartDriver:
    """SIMULATED COUNTERPARTS: every new call of the schema is played to its end, then hung up."""

    client: httpx.AsyncClient
    counterparts: list[Counterpart]
    think_s: float
    poll_s: float = 0.5
    calls: dict[str, Lead] = field(default_factory=dict)
    dnc_at: dict[int, float] = field(default_factory=dict)  # row → its call ended do-not-call
    poll_errors: int = 0
    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    async def watch(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                r = await self.client.get("/calls", params={"schema": SCHEMA})
                if r.status_code == 200:
                    for call in r.json()["live"]:
                        self.adopt(call["call_id"], "listed")
                else:
                    self.poll_errors += 1
            except (httpx.HTTPError, ValueError, KeyError):
                self.poll_errors += 1
            await pause(stop, self.poll_s)

    def adopt(self, call_id: str, via: str) -> None:
        if call_id in self.calls:
            return
        lead = Lead(CallRun(call_id, 0, time.monotonic()), time.time(), via)
        self.calls[call_id] = lead
        task = asyncio.get_running_loop().create_task(self.play(lead))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def opening(self, lead: Lead) -> str:
        """The agent's first lines (the greeting names the lead); notes the call's host."""
        for attempt in range(8):
            with contextlib.suppress(httpx.HTTPError, ValueError):
                r = await self.client.get(f"/calls/{lead.run.call_id}")
                if r.status_code == 200:
                    lead.host = str(r.json().get("host", ""))
                    lines = r.json().get("transcript", [])
                    return " ".join(x["text"] for x in lines[:2] if x["speaker"] == "agent")
                if r.status_code == 404:
                    return ""
            await asyncio.sleep(0.5 + attempt)
        return ""

    async def play(self, lead: Lead) -> None:
        run = lead.run
        agent = await self.opening(lead)
        match = OPENING.search(agent)
        lead.row = row_of(match[1]) if match else None
        counterpart = self.counterparts[((lead.row or 0) * 7) % len(self.counterparts)]
        lead.counterpart, lead.expected = counterpart.name, counterpart.expect.outcome
        player = Player(counterpart)
        line, failures = player.reply(topic_of(SCHEMA, agent)), 0
        while len([t for t in run.turns if t.ok]) < MAX_TURNS and failures < 8:
            sent = time.monotonic()
            try:
                r = await self.client.post(f"/calls/{run.call_id}/turns", json={"text": line})
                turn = Turn(sent, time.monotonic(), r.status_code == 200, r.status_code)
            except httpx.HTTPError as exc:
                r, turn = None, Turn(sent, time.monotonic(), False, None, type(exc).__name__)
            run.turns.append(turn)
            if r is not None and r.status_code in (404, 409):
                run.gone = f"turn {r.status_code}"
                break
            if r is None or r.status_code != 200:
                failures += 1  # a failed line is said again
                await asyncio.sleep(1.0)
                continue
            failures, reply = 0, r.json()
            if reply.get("terminal"):
                run.finished, lead.outcome = str(reply.get("state")), reply.get("outcome")
                if lead.outcome == "do_not_call" and lead.row is not None:
                    self.dnc_at[lead.row] = time.time()
                break
            line = player.reply(topic_of(SCHEMA, str(reply.get("agent", ""))))
            await asyncio.sleep(self.think_s)
        await hang_up(self.client, run)
        lead.done = True

    async def drain(self, timeout_s: float) -> None:
        if self.tasks:
            await asyncio.wait(list(self.tasks), timeout=timeout_s)


# ---------------------------------------------------------------- the run
async def results(client: httpx.AsyncClient, cid: str) -> dict[int, dict[str, str]]:
    r = await client.get(f"/campaigns/{cid}/results.csv")
    r.raise_for_status()
    return {int(row["row"]): row for row in csv.DictReader(io.StringIO(r.text))}


def settled(rows: dict[int, dict[str, str]], plan: Plan) -> bool:
    """No row dialling; the only queued rows are those outside calling hours."""
    return all(
        r["state"] not in ("dialling", "queued") or (r["state"] == "queued" and n in plan.outside)
        for n, r in rows.items()
    )


async def host0_live(client: httpx.AsyncClient) -> int | None:
    with contextlib.suppress(httpx.HTTPError, ValueError, KeyError):
        hosts = (await client.get("/readyz")).json()["hosts"]
        return next((int(h["live_calls"]) for h in hosts if str(h["host"]).endswith("-0")), None)
    return None


async def campaign(
    base: str, prefix: str, headers: dict[str, str], args: argparse.Namespace
) -> dict[str, Any]:
    plan = make_plan(args.rows, args.max_s)
    in_hours = len(plan.to) - len(plan.outside)
    limits = httpx.Limits(max_connections=args.concurrent * 4 + 16)
    async with httpx.AsyncClient(base_url=base, timeout=30, headers=headers, limits=limits) as client:
        listed = [plan.to[n] for n in sorted(plan.dnc)]
        r = await client.post("/campaigns/dnc", json={"schema_name": SCHEMA, "numbers": listed})
        r.raise_for_status()
        quick = {"max_attempts": 2, "spacing_s": 5.0}
        body = {
            "schema_name": SCHEMA,
            "name": "campaign_cluster drill",
            "simulate": True,
            "persona": "sales_lead",
            "rows": [
                {"lead_name": lead_name(n), "company": f"Company {n}", "to": to} for n, to in plan.to.items()
            ],
            "pacing": {"max_concurrent": args.concurrent, "calls_per_minute": args.cpm},
            "retries": {k: quick for k in ("no_answer", "busy", "voicemail", "failed")},
            "hours": plan.hours.model_dump(),
        }
        r = await client.post("/campaigns", json=body)
        if r.status_code != 201:
            raise SystemExit(f"POST /campaigns: {r.status_code} {r.text[:500]}")
        cid, accepted = r.json()["campaign_id"], r.json()["accepted"]
        print(f"campaign {cid}: {accepted}/{len(plan.to)} rows accepted; hours "
              f"{plan.hours.start}-{plan.hours.end}; {in_hours} in hours, {len(plan.outside)} outside; "
              f"{len(plan.dnc)} on the do-not-call list", flush=True)  # fmt: skip
        driver = CounterpartDriver(
            client, sorted(load_counterparts(SCHEMA), key=lambda c: c.name), args.think_s
        )
        stop = asyncio.Event()
        watcher = asyncio.create_task(driver.watch(stop))
        t0, host_killed_at = time.monotonic(), 0.0
        drills: list[str] = []
        rows: dict[int, dict[str, str]] = {}
        unlisted: dict[str, float] = {}
        while time.monotonic() - t0 < args.max_s:
            await asyncio.sleep(2.0)
            seen, t = len(driver.calls), time.monotonic() - t0
            if not drills and seen >= in_hours // 4:
                name = await asyncio.to_thread(kill_serve_replica, "ingress")
                drills.append(f"t={t:.0f}s, {seen} calls seen: killed {name}")
                print(drills[-1], flush=True)
            elif len(drills) == 1 and seen >= in_hours // 2:
                live = await host0_live(client)
                name = await asyncio.to_thread(kill_call_host, prefix)
                drills.append(f"t={t:.0f}s, {seen} calls seen: killed {name} ({live} live calls on it)")
                print(drills[-1], flush=True)
                host_killed_at = time.monotonic()
            with contextlib.suppress(httpx.HTTPError, ValueError):
                rows = await results(client, cid)
                for row in rows.values():  # a call the listing has not shown for 10 s (a dead host's)
                    call_id = row["last_call_id"]
                    unseen = row["state"] == "dialling" and call_id and call_id not in driver.calls
                    if unseen and time.monotonic() - unlisted.setdefault(call_id, time.monotonic()) > 10:
                        driver.adopt(call_id, "results")
                states = Counter(r["state"] for r in rows.values())
                print(f"t={t:.0f}s: {seen} calls seen, {sum(not c.done for c in driver.calls.values())} "
                      f"live; rows {dict(states)}", flush=True)  # fmt: skip
                if len(drills) == 2 and time.monotonic() - host_killed_at > 5 and settled(rows, plan):
                    break
        duration = time.monotonic() - t0
        await driver.drain(120.0)
        stop.set()
        await watcher
        rows = await results(client, cid)
        progress = (await client.get(f"/campaigns/{cid}")).json()
    return report(plan, driver, rows, progress, drills, duration, args)


def report(
    plan: Plan,
    driver: CounterpartDriver,
    rows: dict[int, dict[str, str]],
    progress: dict[str, Any],
    drills: list[str],
    duration: float,
    args: argparse.Namespace,
) -> dict[str, Any]:
    leads = list(driver.calls.values())
    per_row = Counter(c.row for c in leads if c.row is not None)
    attempts = {n: int(r["attempts"] or 0) for n, r in rows.items()}
    twice = {n: k - attempts.get(n, 0) for n, k in per_row.items() if k > attempts.get(n, 0)}
    outside = [c for c in leads if c.row in plan.to and not plan.in_hours(c.row, c.seen_at)]
    to_dnc = [
        c for c in leads
        if c.row in plan.dnc or (c.row in driver.dnc_at and c.seen_at > driver.dnc_at[c.row])
    ]  # fmt: skip
    turns = [t for c in leads for t in c.run.turns]
    seen_at = sorted(c.seen_at for c in leads)
    minutes = (seen_at[-1] - seen_at[0]) / 60 if len(seen_at) > 1 else 0.0
    seen_ids = set(driver.calls)
    return {
        "rows": len(plan.to),
        "hours": f"{plan.hours.start}-{plan.hours.end} (callee's local time)",
        "rows_in_hours": len(plan.to) - len(plan.outside),
        "rows_outside_hours": len(plan.outside),
        "rows_on_dnc_list": len(plan.dnc),
        "rows_on_dnc_list_in_hours": len(plan.dnc - plan.outside),
        "pace": {"max_concurrent": args.concurrent, "calls_per_minute": args.cpm},
        "campaign": {
            k: progress.get(k) for k in ("status", "states", "outcomes", "attempts", "deferred_for_hours")
        },
        "calls_seen": len(leads),
        "calls_seen_only_in_results": sum(c.via == "results" for c in leads),
        "calls_per_host": dict(Counter(c.host.rsplit("-", 1)[-1] for c in leads)),
        "calls_unattributed": sum(c.row is None for c in leads),
        "rows_called": len(per_row),
        "rows_called_more_than_once": sum(k > 1 for k in per_row.values()),
        "row_calls_beyond_attempts": sum(twice.values()),
        "calls_outside_hours": len(outside),
        "calls_to_dnc": len(to_dnc),
        "rows_skipped_dnc": sum(
            r["outcome"] == "do_not_call" and r["state"] == "skipped" for r in rows.values()
        ),
        "rows_ended_dnc_by_lead": len(driver.dnc_at),
        "rows_last_call_not_seen": sum(
            bool(r["last_call_id"]) and r["last_call_id"] not in seen_ids for r in rows.values()
        ),
        "rows_unsettled": sum(
            r["state"] == "dialling" or (r["state"] == "queued" and n not in plan.outside)
            for n, r in rows.items()
        ),
        "outcomes_as_scripted": f"{sum(c.outcome == c.expected for c in leads)}/{len(leads)}",
        "turns": len(turns),
        "turns_failed": sum(not t.ok for t in turns),
        "turn_errors": dict(Counter(str(t.status or t.error) for t in turns if not t.ok)),
        "calls_gone_before_hangup": sum(bool(c.run.gone) for c in leads),
        "calls_ended_idle": sum(c.run.end_reason == "idle" for c in leads),
        "rows_ended_idle": sum(r["end_reason"] == "idle" for r in rows.values()),
        "hangups_failed": sum(c.run.hangup_status not in (200, 404) for c in leads),
        "calls_per_min": round(len(leads) / minutes, 1) if minutes else None,
        "duration_s": round(duration, 1),
        "poll_errors": driver.poll_errors,
        "drills": drills,
    }


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="campaign_cluster", description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, default=500)
    p.add_argument("--short", action="store_true", help="40 rows")
    p.add_argument("--concurrent", type=int, default=12, help="the campaign's max_concurrent")
    p.add_argument("--cpm", type=float, default=300.0, help="the campaign's calls_per_minute")
    p.add_argument("--think-s", type=float, default=0.5, help="a lead's pause before each line")
    p.add_argument("--idle-s", type=float, default=120.0, help="limits.idle_call_timeout_s of the app")
    p.add_argument("--max-s", type=float, default=780.0, help="most seconds of campaign before reporting")
    p.add_argument("--port", type=int, default=8160)
    args = p.parse_args(argv)
    if args.short:
        args.rows = 40
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    from common.settings import get_settings
    from common.testing.openai_server import FakeOpenAIServer
    from loadtests.api_key import tool_headers
    from loadtests.place_call import start_cluster
    from loadtests.readiness import wait_until_warm

    llm = FakeOpenAIServer(HEALTHY).start()
    os.environ["VOXRAY_PROVIDERS__OPENAI_COMPATIBLE_URL"] = llm.base_url
    os.environ["VOXRAY_PROVIDERS__LOCAL_ENABLED"] = "false"
    get_settings.cache_clear()
    redis_url = get_settings().redis_url or "redis://127.0.0.1:6379/0"
    prefix = f"voxray-campaign-{uuid.uuid4().hex[:8]}:"
    base = f"http://127.0.0.1:{args.port}"
    settings: dict[str, Any] = {
        **drill_settings(prefix, redis_url),
        "limits.idle_call_timeout_s": args.idle_s,
        "campaigns.ingress_url": base,  # the runner dials this cluster's ingress
        "campaigns.earliest_start": "00:00",  # the tenant window: any hours that split the zones
        "campaigns.latest_end": "23:59",
    }
    t0, started = time.monotonic(), False
    try:
        start_cluster(args.port, settings)
        started = True
        wait_ready(base)
        wait_until_warm(base)
        print(f"cluster up in {time.monotonic() - t0:.0f} s on {base}; prefix {prefix}", flush=True)
        out = asyncio.run(campaign(base, prefix, tool_headers(prefix, redis_url), args))
    finally:
        if started:
            shutdown(prefix)
        llm.stop()
        with contextlib.suppress(Exception):
            cleanup_redis(redis_url, prefix)
    print(json.dumps(out, indent=2))
    bad = out["row_calls_beyond_attempts"] + out["calls_outside_hours"] + out["calls_to_dnc"]
    if bad:
        print("INVARIANT BROKEN: dialled twice / outside hours / do-not-call", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
