"""A fault matrix: inject one fault at a time while N text-mode calls are live, and measure.

    python -m loadtests.faults --short                     # what CI runs: a few faults, N=4
    python -m loadtests.faults                             # the full matrix, N=8
    python -m loadtests.faults --faults call_host,redis_pause --calls 8 --json out.json
    python -m loadtests.faults --own-redis 6390 --faults redis_restart   # a real restart, own Redis

Starts its own local Ray + Serve (``loadtests.place_call.start_cluster``) on ``--port`` with the
real app, a SIMULATED OpenAI-compatible LLM (common/testing) as the only provider, its own Redis
key prefix, per-key limits lifted, and an in-process webhook receiver on loopback. For each fault:
N call slots each place a prior_auth call (``webhook_url`` → the receiver) and drive text turns
(``POST /calls/{id}/turns``: a rep's lines with off-script lines, some naming a fresh number so
they miss the cache and reach the LLM router; a failed line is said again); when a call's script
is done the slot hangs it up and places the next, so N calls stay live. After a warm-up the fault
is injected, the slots keep going, then every live call is hung up. Per fault:

- calls: calls placed in the row (N live at any time);
- dropped: calls that were gone before the tool hung them up (a turn or status 404, the call
  ended by the system, or a failed last turn with a status that does not answer either);
  "silent" when such a call also has no record;
- turns failed: turns sent from the fault on that got a non-2xx or an exception (``--json`` has
  the status codes, the reply sources and latencies);
- records lost: calls with no ended record on ``GET /calls/{id}`` after their hang-up;
- webhooks lost: calls whose ``call.ended`` webhook did not reach the receiver within the wait;
- recovery s: from the fault to the first successful turn (sent after the fault) in every slot.

Faults (what each does mechanically):
- stt / tts / router / cache / ingress: ``ray.kill(no_restart=True)`` of one Serve replica actor of
  that deployment (a named actor in namespace "serve"); the Serve controller replaces it.
  Text mode never uses STT or TTS, so those two rows show that killing them does not disturb calls.
- call_host: ``ray.kill(<prefix>-call-host-0, no_restart=False)`` (hosts have max_restarts=0, so
  it stays dead; the pool fails its calls over from their snapshots).
- redis_pause: ``CLIENT PAUSE 3000 ALL`` on the run's Redis (every client blocks for 3 s; nothing
  is lost or flushed).
- redis_restart (only with ``--own-redis PORT``: a Redis of the run's own, AOF fsynced every
  second, as the shipped configs run it): SHUTDOWN, then redis-server again on the same append-only
  file. Without its own Redis the run never restarts one (dev Redis may keep nothing on disk).
- llm_hang / llm_5xx: the simulated provider hangs after the headers / answers HTTP 503 for
  ``--llm-fault-s`` seconds, then is healthy again.
- webhook_down: the receiver stops listening (connection refused) for ``--webhook-down-s``
  (short 20 s, full 600 s); the calls are hung up while it is down, then it comes back. The run
  caps the webhook retry delay (``webhooks.max_delay_s``, ``--webhook-max-delay-s``, default 30 s)
  so a delivery is retried soon after the receiver is back; the retry window is the default.

Prints a table, writes ``--json``. Exits 1 only when a record or a webhook was lost or a call was
dropped silently; timings never fail the run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import statistics
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

from common.testing import Behaviour
from common.testing.samples import SAMPLE_CALL_DATA

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

LLM_TEXT = "I understand. Let me note that and we can continue."
HEALTHY = Behaviour(ttft_s=0.05, tokens_per_s=100.0, text=LLM_TEXT)
# The insurance rep's opening lines (no reference number: the call should not finish by itself).
REP_LINES = (
    "Thanks for calling Acme Health provider services, this is Dana. How can I help you?",
    "Okay, let me pull that up. Can you give me the member ID one more time?",
    "Got it, I found the member. She's active on the plan.",
)
OFF_SCRIPT = (
    "Sorry, can you hold on a second? My computer is really slow today.",
    "What's the weather like over there today?",
    "Hang on, my screen just froze, give me a moment please.",
)
UNIQUE_OFF_SCRIPT = (  # no intent, a fresh number: the cache's number guard refuses a hit → LLM
    "Lovely weather there today, it's {n} degrees out here?",
    "By the way, our office just moved to suite {n}, in case you mail anything.",
)
SERVE_FAULTS = {"stt": "stt", "tts": "tts", "router": "router", "cache": "cache", "ingress": "ingress"}
ALL_FAULTS = (
    "stt",
    "tts",
    "router",
    "cache",
    "call_host",
    "ingress",
    "redis_pause",
    "llm_hang",
    "llm_5xx",
    "webhook_down",
    "redis_restart",
)
SHORT_FAULTS = ("call_host", "ingress", "router", "redis_pause", "llm_5xx", "webhook_down")
LABELS = {
    "stt": "STT replica killed",
    "tts": "TTS replica killed",
    "router": "LLM router replica killed",
    "cache": "cache replica killed",
    "call_host": "call host killed",
    "ingress": "ingress replica killed",
    "redis_pause": "Redis paused 3 s",
    "llm_hang": "LLM provider hangs",
    "llm_5xx": "LLM provider 503s",
    "webhook_down": "webhook receiver down",
    "redis_restart": "Redis restarted (AOF)",
}


class OwnRedis:
    """A Redis of the run's own (``--own-redis PORT``): append-only file fsynced every second in a
    temporary folder, as the shipped configs run it, so the run may really restart it."""

    def __init__(self, port: int):
        import tempfile

        self.port = port
        self.dir = tempfile.mkdtemp(prefix="voxray-faults-redis-")
        self.proc: Any = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        import subprocess

        import redis

        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", self.dir,
             "--save", "", "--appendonly", "yes", "--appendfsync", "everysec"],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with contextlib.suppress(redis.ConnectionError):
                if client.ping():
                    client.close()
                    return
            time.sleep(0.1)
        raise SystemExit(f"redis-server did not start on port {self.port}")

    def restart(self) -> float:
        """SHUTDOWN (the AOF is flushed), then start again on the same files; seconds it was down."""
        import redis

        t0 = time.monotonic()
        with contextlib.suppress(redis.ConnectionError):
            redis.Redis.from_url(self.url).shutdown()
        if self.proc is not None:
            self.proc.wait(20)
        self.start()
        return time.monotonic() - t0

    def stop(self) -> None:
        import shutil

        import redis

        with contextlib.suppress(Exception):
            redis.Redis.from_url(self.url).shutdown(nosave=True)
        if self.proc is not None:
            with contextlib.suppress(Exception):
                self.proc.wait(20)
        shutil.rmtree(self.dir, ignore_errors=True)


# ---------------------------------------------------------------- webhook receiver
class Receiver:
    """Counts ``call.ended`` deliveries by call id (the id is the last path segment); ``down()``
    closes the listening socket (connection refused), ``up()`` listens on the same port again."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.lock = threading.Lock()
        self.server: ThreadingHTTPServer | None = None
        self.port = 0

    def up(self) -> None:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                body = self.rfile.read(length)
                call_id = self.path.rstrip("/").rsplit("/", 1)[-1]
                with contextlib.suppress(ValueError, AttributeError):
                    call_id = json.loads(body).get("data", {}).get("call_id") or call_id
                with outer.lock:
                    outer.counts[call_id] += 1
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        self.port = server.server_address[1]
        self.server = server
        threading.Thread(target=server.serve_forever, daemon=True, name="webhook-receiver").start()

    def down(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def url(self, call_id: str) -> str:
        return f"http://127.0.0.1:{self.port}/hook/{call_id}"

    def got(self, call_id: str) -> int:
        with self.lock:
            return self.counts[call_id]


# ---------------------------------------------------------------- faults
@dataclass
class Env:
    base: str
    prefix: str
    llm: Any  # FakeOpenAIServer
    receiver: Receiver
    redis_url: str
    args: argparse.Namespace


def serve_replica_names(keyword: str) -> list[str]:
    """Live Serve replica actors of the app's deployments whose name contains ``keyword``
    (named actors in namespace "serve": ``SERVE_REPLICA::voxray#<Deployment>#<id>``)."""
    import ray

    names = []
    for actor in ray.util.list_named_actors(all_namespaces=True):
        name = str(actor["name"])
        if actor["namespace"] == "serve" and name.startswith("SERVE_REPLICA::voxray#"):
            deployment = name.split("#")[1].lower()
            if keyword in deployment:
                names.append(name)
    return sorted(names)


def kill_serve_replica(keyword: str) -> str:
    import ray

    names = serve_replica_names(keyword)
    if not names:
        raise RuntimeError(f"no live Serve replica of a '{keyword}' deployment")
    ray.kill(ray.get_actor(names[0], namespace="serve"), no_restart=True)
    return names[0]


def kill_call_host(prefix: str) -> str:
    import ray

    name = f"{prefix.strip(':').replace(':', '-')}-call-host-0"
    ray.kill(ray.get_actor(name, namespace="voxray"), no_restart=False)
    return name


async def inject(name: str, env: Env) -> str:
    """Start the fault; returns what was done (for the log)."""
    if name in SERVE_FAULTS:
        return f"killed {await asyncio.to_thread(kill_serve_replica, SERVE_FAULTS[name])}"
    if name == "call_host":
        return f"killed {await asyncio.to_thread(kill_call_host, env.prefix)}"
    if name == "redis_pause":
        import redis.asyncio as aioredis

        r = aioredis.Redis.from_url(env.redis_url)
        try:
            await r.client_pause(3000, all=True)
        finally:
            await r.aclose()
        return "CLIENT PAUSE 3000 ALL"
    if name == "llm_hang":
        env.llm.reset(Behaviour(hang=True))
        return f"provider hangs for {env.args.llm_fault_s:.0f} s"
    if name == "llm_5xx":
        env.llm.reset(Behaviour(status=503))
        return f"provider answers 503 for {env.args.llm_fault_s:.0f} s"
    if name == "webhook_down":
        env.receiver.down()
        return f"receiver down for {env.args.webhook_down_s:.0f} s"
    if name == "redis_restart":
        own: OwnRedis = env.args.own_redis_server
        down_s = await asyncio.to_thread(own.restart)
        return f"Redis shut down and started again on its AOF ({down_s:.1f} s down)"
    raise ValueError(name)


def heal_after(name: str, env: Env) -> float | None:
    """Seconds after the fault at which it is undone by the tool (None: nothing to undo)."""
    if name in ("llm_hang", "llm_5xx"):
        return float(env.args.llm_fault_s)
    if name == "webhook_down":
        return float(env.args.webhook_down_s)
    return None


def heal(name: str, env: Env) -> None:
    if name in ("llm_hang", "llm_5xx"):
        env.llm.reset(HEALTHY)
    elif name == "webhook_down":
        env.receiver.up()


# ---------------------------------------------------------------- one call slot's driver
@dataclass
class Turn:
    sent: float
    done: float
    ok: bool
    status: int | None  # None: an exception
    error: str = ""
    source: str = ""


@dataclass
class CallRun:
    call_id: str
    slot: int
    started: float
    turns: list[Turn] = field(default_factory=list)
    gone: str = ""  # why the call was gone before the tool hung it up ("" = it was not)
    finished: str = ""  # the state the script ended it in (terminal), "" = still going
    hung_up: bool = False
    hangup_status: int | None = None
    end_reason: str | None = None
    record: bool = False
    webhooks: int = 0


def call_script() -> list[str]:
    """A prior-auth rep's lines with off-script lines: asides the script answers ("hold on"), lines
    no intent matches that name a fresh number (a cache miss: the LLM router answers) and one
    cacheable line; it ends with the reference number and a confirmation."""
    aside = lambda: random.choice(OFF_SCRIPT)  # noqa: E731
    unique = lambda: random.choice(UNIQUE_OFF_SCRIPT).format(n=random.randint(1000, 99999))  # noqa: E731
    return [
        REP_LINES[0],
        unique(),
        REP_LINES[1],
        REP_LINES[2],
        aside(),
        unique(),
        "I see an authorization on file for that procedure. It's approved.",
        "Lovely weather there today?",
        "The reference number is P A seven seven three four.",
        aside(),
        "Yes, that's correct.",
    ]


@dataclass
class Slot:
    """One of the N live calls: when a call's script is done the slot hangs it up and places the
    next one, so N calls stay live for the whole row."""

    index: int
    runs: list[CallRun] = field(default_factory=list)
    starts_failed: int = 0

    def turns(self) -> list[Turn]:
        return [t for r in self.runs for t in r.turns]

    def first_ok_after(self, t: float) -> Turn | None:
        return min((x for x in self.turns() if x.ok and x.sent >= t), key=lambda x: x.done, default=None)


async def pause(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


async def start_call(client: httpx.AsyncClient, env: Env, slot: Slot, stop: asyncio.Event) -> CallRun | None:
    tag = uuid.uuid4().hex[:12]  # the receiver counts by the payload's call id; this keeps URLs apart
    body: dict[str, Any] = {
        "schema_name": "prior_auth",
        "call_data": SAMPLE_CALL_DATA["prior_auth"],
        "simulate": {"persona": "insurance_rep"},
        "webhook_url": env.receiver.url(tag),
    }
    while not stop.is_set():
        try:
            r = await client.post("/calls", json=body)
            if r.status_code == 201:
                return CallRun(r.json()["call_id"], slot.index, time.monotonic())
        except (httpx.HTTPError, ValueError):
            pass
        slot.starts_failed += 1
        await pause(stop, env.args.think_s)
    return None


async def drive(client: httpx.AsyncClient, env: Env, slot: Slot, stop: asyncio.Event) -> None:
    think = env.args.think_s
    while not stop.is_set():
        run = await start_call(client, env, slot, stop)
        if run is None:
            return
        slot.runs.append(run)
        script = call_script()
        i = 0
        while i < len(script) and not stop.is_set():
            sent = time.monotonic()
            try:
                r = await client.post(f"/calls/{run.call_id}/turns", json={"text": script[i]})
                turn = Turn(sent, time.monotonic(), r.status_code == 200, r.status_code)
                if r.status_code == 200:
                    reply = r.json()
                    turn.source = str(reply.get("source"))
                    if reply.get("terminal"):
                        run.finished = str(reply.get("state"))
                    i += 1  # a failed line is said again
                else:
                    turn.error = r.text[:200]
                    if r.status_code == 404:
                        run.gone = "turn 404"
            except (httpx.HTTPError, ValueError) as exc:
                turn = Turn(sent, time.monotonic(), False, None, f"{type(exc).__name__}: {exc}"[:200])
            run.turns.append(turn)
            if run.gone or run.finished:
                break
            await pause(stop, think * random.uniform(0.7, 1.3))
        if stop.is_set() and not (run.gone or run.finished):
            return  # still live: the row hangs it up
        await hang_up(client, run)
        await pause(stop, think)


# ---------------------------------------------------------------- one row of the matrix
async def until(predicate: Callable[[], bool], timeout_s: float, step: float = 0.25) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(step)
    return predicate()


async def settle(client: httpx.AsyncClient, timeout_s: float = 90.0) -> bool:
    """Between rows: the app answers /readyz five times in a row (a killed replica is back)."""
    ok = 0
    deadline = time.monotonic() + timeout_s
    while ok < 5 and time.monotonic() < deadline:
        try:
            ok = ok + 1 if (await client.get("/readyz")).status_code == 200 else 0
        except httpx.HTTPError:
            ok = 0
        await asyncio.sleep(0.5)
    return ok >= 5


async def hang_up(client: httpx.AsyncClient, run: CallRun) -> None:
    run.hung_up = True
    for attempt in range(4):
        try:
            r = await client.post(f"/calls/{run.call_id}/hangup", json={"reason": "fault matrix"})
            run.hangup_status = r.status_code
            if r.status_code == 200:
                run.end_reason = r.json().get("end_reason")
                return
            if r.status_code == 404:
                return
        except (httpx.HTTPError, ValueError):
            run.hangup_status = None
        await asyncio.sleep(1.0 + attempt)


async def check_record(client: httpx.AsyncClient, run: CallRun) -> None:
    for attempt in range(4):
        try:
            r = await client.get(f"/calls/{run.call_id}")
            if r.status_code == 200:
                body = r.json()
                run.record = body.get("status") == "ended" or body.get("end_reason") is not None
                run.end_reason = run.end_reason or body.get("end_reason")
                if run.record:
                    return
            elif r.status_code == 404:
                run.record = False
                return
        except (httpx.HTTPError, ValueError):
            pass
        await asyncio.sleep(1.0 + attempt)


async def probe(client: httpx.AsyncClient, run: CallRun) -> None:
    """Before the final hang-up: a call that is gone (404, or ended by the system) is dropped; so
    is one whose last turn failed and whose status does not answer either."""
    last_failed = bool(run.turns) and not run.turns[-1].ok
    for attempt in range(3):
        try:
            r = await client.get(f"/calls/{run.call_id}")
        except httpx.HTTPError:
            r = None
        if r is not None and r.status_code == 404:
            run.gone = run.gone or "status 404"
            return
        if r is not None and r.status_code == 200:
            if r.json().get("status") == "ended":
                run.gone = run.gone or f"ended before the hang-up ({r.json().get('end_reason')})"
            return
        await asyncio.sleep(1.0 + attempt)
    if last_failed:
        run.gone = run.gone or "last turn and status failed"


async def run_fault(name: str, env: Env, client: httpx.AsyncClient) -> dict[str, Any]:
    a = env.args
    print(f"\n[{name}] {LABELS[name]}: {a.calls} live calls", flush=True)
    if not await settle(client):
        print(f"[{name}] the app did not answer /readyz 5 times in a row; going on", flush=True)
    stop = asyncio.Event()
    slots = [Slot(i) for i in range(a.calls)]
    drivers = [asyncio.create_task(drive(client, env, slot, stop)) for slot in slots]
    await asyncio.sleep(a.warmup_s)
    t_fault = time.monotonic()
    what = await inject(name, env)
    print(f"[{name}] fault: {what}", flush=True)
    heal_at = heal_after(name, env)
    healer: asyncio.Task[None] | None = None
    if heal_at is not None:

        async def later() -> None:
            await asyncio.sleep(heal_at - (time.monotonic() - t_fault))
            heal(name, env)
            print(f"[{name}] healed {heal_at:.0f} s after the fault", flush=True)

        healer = asyncio.create_task(later())

    def recovered() -> bool:
        return all(s.first_ok_after(t_fault) is not None for s in slots)

    turn_for = a.after_s if name != "webhook_down" else min(a.after_s, max(1.0, a.webhook_down_s / 2))
    await asyncio.sleep(turn_for)
    if name != "webhook_down":
        await until(recovered, max(0.0, a.recover_cap_s - turn_for))
    t_stop = time.monotonic()
    stop.set()
    await asyncio.gather(*drivers)
    runs = [r for s in slots for r in s.runs]
    live = [r for r in runs if not r.hung_up]
    await asyncio.gather(*(probe(client, r) for r in live))
    await asyncio.gather(*(hang_up(client, r) for r in live))
    t_hangup = time.monotonic()
    if healer is not None:  # the receiver / provider comes back on schedule
        await healer
    await asyncio.gather(*(check_record(client, r) for r in runs))
    wait = a.webhook_wait_s + (2 * a.webhook_max_delay_s if name == "webhook_down" else 0.0)
    await until(lambda: all(env.receiver.got(r.call_id) for r in runs), wait)
    for r in runs:
        r.webhooks = env.receiver.got(r.call_id)
    return summarise(name, slots, t_fault, t_stop, t_hangup, what)


def summarise(
    name: str, slots: list[Slot], t_fault: float, t_stop: float, t_hangup: float, what: str
) -> dict[str, Any]:
    runs = [r for s in slots for r in s.runs]
    after = [t for r in runs for t in r.turns if t.sent >= t_fault]
    before = [t for r in runs for t in r.turns if t.sent < t_fault]
    firsts = [s.first_ok_after(t_fault) for s in slots]
    dropped = [r for r in runs if r.gone]
    silent = [r for r in dropped if not r.record]
    recovery = None if any(f is None for f in firsts) else max(f.done - t_fault for f in firsts if f)
    lat = [t.done - t.sent for t in after if t.ok]
    errors = Counter(str(t.status or t.error.split(":")[0]) for t in after if not t.ok)
    return {
        "fault": name,
        "label": LABELS[name],
        "injected": what,
        "live_calls": len(slots),
        "calls": len(runs),
        "calls_started_after_fault": sum(r.started >= t_fault for r in runs),
        "starts_failed": sum(s.starts_failed for s in slots),
        "dropped": len(dropped),
        "dropped_silently": len(silent),
        "turns": len(after),
        "turns_failed": sum(not t.ok for t in after),
        "turns_failed_before_fault": sum(not t.ok for t in before),
        "turn_errors": dict(errors),
        "turn_sources_after_fault": dict(Counter(t.source for t in after if t.ok)),
        "records_lost": sum(not r.record for r in runs),
        "webhooks_lost": sum(r.webhooks == 0 for r in runs),
        "webhook_duplicates": sum(max(0, r.webhooks - 1) for r in runs),
        "recovery_s": None if recovery is None else round(recovery, 2),
        "turn_s_p50_after_fault": round(statistics.median(lat), 3) if lat else None,
        "turn_s_max_after_fault": round(max(lat), 3) if lat else None,
        "turning_s": round(t_stop - t_fault, 1),
        "hangup_at_s": round(t_hangup - t_fault, 1),
        "per_call": [
            {
                "call_id": r.call_id,
                "slot": r.slot,
                "gone": r.gone or None,
                "finished_in": r.finished or None,
                "turns": len(r.turns),
                "turns_failed": sum(not t.ok for t in r.turns),
                "hangup_status": r.hangup_status,
                "end_reason": r.end_reason,
                "record": r.record,
                "webhooks": r.webhooks,
            }
            for r in runs
        ],
    }


# ---------------------------------------------------------------- report
COLUMNS = ("fault", "calls", "dropped", "turns failed", "records lost", "webhooks lost", "recovery s")


def table(rows: list[dict[str, Any]]) -> str:
    lines = []
    widths = (26, 5, 7, 14, 12, 13, 10)
    lines.append(
        "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(COLUMNS, widths, strict=True))
        )
    )
    lines.append("  ".join("-" * w for w in widths))
    for row in rows:
        dropped = str(row["dropped"]) + (
            f" ({row['dropped_silently']} silent)" if row["dropped_silently"] else ""
        )
        rec = "-" if row["recovery_s"] is None else f"{row['recovery_s']:.1f}"
        cells = (
            row["label"],
            str(row["calls"]),
            dropped,
            f"{row['turns_failed']}/{row['turns']}",
            str(row["records_lost"]),
            str(row["webhooks_lost"]),
            rec,
        )
        lines.append(
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w)
                for i, (c, w) in enumerate(zip(cells, widths, strict=True))
            )
        )
    return "\n".join(lines)


# ---------------------------------------------------------------- the run
def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--short", action="store_true", help="a few faults, 4 calls, short waits (CI)")
    p.add_argument("--faults", default=None, help=f"comma-separated, of: {','.join(ALL_FAULTS)}")
    p.add_argument("--calls", type=int, default=None, help="live calls per fault (8; --short 4)")
    p.add_argument("--port", type=int, default=8140)
    p.add_argument("--json", type=Path, default=None, help="write the results here")
    p.add_argument("--think-s", type=float, default=1.0, help="pause between a call's turns")
    p.add_argument("--warmup-s", type=float, default=None, help="turning before the fault (5; short 4)")
    p.add_argument("--after-s", type=float, default=None, help="turning after the fault (30; short 12)")
    p.add_argument("--recover-cap-s", type=float, default=None, help="most turning after it (90; short 40)")
    p.add_argument("--llm-fault-s", type=float, default=None, help="provider hang / 503 (20; short 8)")
    p.add_argument("--webhook-down-s", type=float, default=None, help="receiver outage (600; short 20)")
    p.add_argument("--webhook-max-delay-s", type=float, default=30.0, help="webhooks.max_delay_s")
    p.add_argument("--webhook-wait-s", type=float, default=None, help="wait for webhooks (30; short 20)")
    p.add_argument(
        "--own-redis",
        type=int,
        default=None,
        metavar="PORT",
        help="run a Redis of its own on PORT (AOF); needed by redis_restart, which restarts it",
    )
    a = p.parse_args(argv)
    short = a.short
    a.calls = a.calls or (4 if short else 8)
    a.warmup_s = a.warmup_s if a.warmup_s is not None else (4.0 if short else 5.0)
    a.after_s = a.after_s if a.after_s is not None else (12.0 if short else 30.0)
    a.recover_cap_s = a.recover_cap_s if a.recover_cap_s is not None else (40.0 if short else 90.0)
    a.llm_fault_s = a.llm_fault_s if a.llm_fault_s is not None else (8.0 if short else 20.0)
    a.webhook_down_s = a.webhook_down_s if a.webhook_down_s is not None else (20.0 if short else 600.0)
    a.webhook_wait_s = a.webhook_wait_s if a.webhook_wait_s is not None else (20.0 if short else 30.0)
    names = a.faults.split(",") if a.faults else list(SHORT_FAULTS if short else ALL_FAULTS)
    unknown = [n for n in names if n not in ALL_FAULTS]
    if unknown:
        p.error(f"unknown faults {unknown}; known: {', '.join(ALL_FAULTS)}")
    if "redis_restart" in names and a.own_redis is None:
        if a.faults:
            p.error("redis_restart restarts Redis: give it one of its own with --own-redis PORT")
        names.remove("redis_restart")  # the full matrix without --own-redis leaves it out
    a.fault_names = names
    return a


async def run_matrix(env: Env, headers: dict[str, str]) -> list[dict[str, Any]]:
    limits = httpx.Limits(max_connections=env.args.calls * 4 + 16)
    async with httpx.AsyncClient(base_url=env.base, timeout=30, headers=headers, limits=limits) as client:
        rows = []
        for name in env.args.fault_names:
            row = await run_fault(name, env, client)
            rows.append(row)
            print(table([row]).splitlines()[-1], flush=True)
        return rows


def wait_ready(base: str, timeout_s: float = 300.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError, ValueError):
            r = httpx.get(f"{base}/readyz", timeout=10)
            if r.status_code == 200 and r.json().get("hosts"):
                return
        time.sleep(1.0)
    raise SystemExit(f"the app was not ready within {timeout_s:.0f} s")


def cleanup_redis(redis_url: str, prefix: str) -> None:
    import redis

    store = redis.Redis.from_url(redis_url)
    try:
        for key in store.scan_iter(match=f"{prefix}*", count=1000):
            store.delete(key)
    finally:
        store.close()


def drill_settings(prefix: str, redis_url: str) -> dict[str, Any]:
    """App settings for a drill: its own key prefix, the simulated LLM provider only, no NLU LLM
    pass, and rate limits and quotas out of the way of the load."""
    return {
        "calls.key_prefix": prefix,
        "redis_url": redis_url,
        "nlu.llm": "off",
        "providers.local_enabled": False,
        "limits.rate_per_s": 1e6,
        "limits.burst": 10**6,
        "limits.live_calls_per_tenant": 10**6,
    }


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    from common.settings import get_settings
    from common.testing.openai_server import FakeOpenAIServer
    from loadtests.api_key import tool_headers
    from loadtests.place_call import start_cluster

    t0 = time.monotonic()
    llm = FakeOpenAIServer(HEALTHY).start()
    receiver = Receiver()
    receiver.up()
    os.environ["VOXRAY_PROVIDERS__OPENAI_COMPATIBLE_URL"] = llm.base_url
    os.environ["VOXRAY_PROVIDERS__LOCAL_ENABLED"] = "false"
    get_settings.cache_clear()
    own = OwnRedis(args.own_redis) if args.own_redis is not None else None
    args.own_redis_server = own
    if own is not None:
        own.start()
    redis_url = own.url if own is not None else get_settings().redis_url or "redis://127.0.0.1:6379/0"
    prefix = f"voxray-faults-{uuid.uuid4().hex[:8]}:"
    settings: dict[str, Any] = {
        **drill_settings(prefix, redis_url),
        "webhooks.allow": ["http://127.0.0.1:*"],
        "webhooks.max_delay_s": args.webhook_max_delay_s,
    }
    base = f"http://127.0.0.1:{args.port}"
    rows: list[dict[str, Any]] = []
    started = False
    try:
        start_cluster(args.port, settings)
        started = True
        wait_ready(base)
        print(f"cluster up in {time.monotonic() - t0:.0f} s on {base}; prefix {prefix}", flush=True)
        headers = tool_headers(prefix, redis_url)
        env = Env(base, prefix, llm, receiver, redis_url, args)
        rows = asyncio.run(run_matrix(env, headers))
    finally:
        if started:
            shutdown(prefix)
        llm.stop()
        receiver.down()
        with contextlib.suppress(Exception):
            cleanup_redis(redis_url, prefix)
        if own is not None:
            own.stop()
    wall = time.monotonic() - t0
    print(f"\nfault matrix ({'short' if args.short else 'full'}; {wall:.0f} s):")
    print(table(rows))
    failed = [r for r in rows if r["records_lost"] or r["webhooks_lost"] or r["dropped_silently"]]
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "short": args.short,
                    "calls": args.calls,
                    "wall_s": round(wall, 1),
                    "settings": {k: v for k, v in settings.items() if k != "calls.key_prefix"},
                    "options": {
                        k: getattr(args, k)
                        for k in (
                            "think_s",
                            "warmup_s",
                            "after_s",
                            "recover_cap_s",
                            "llm_fault_s",
                            "webhook_down_s",
                            "webhook_wait_s",
                        )
                    },
                    "rows": rows,
                },
                indent=2,
            )
        )
        print(f"wrote {args.json}")
    if failed:
        print("LOSSES: " + ", ".join(r["fault"] for r in failed), file=sys.stderr)
    return 1 if failed else 0


def shutdown(prefix: str) -> None:
    import ray
    from ray import serve

    with contextlib.suppress(Exception):
        serve.delete("voxray")
    for i in range(16):
        with contextlib.suppress(Exception):
            ray.kill(
                ray.get_actor(f"{prefix.strip(':').replace(':', '-')}-call-host-{i}", namespace="voxray")
            )
    with contextlib.suppress(Exception):
        serve.shutdown()
    ray.shutdown()


if __name__ == "__main__":
    raise SystemExit(main())
