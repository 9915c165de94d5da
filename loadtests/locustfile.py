"""Locust users that are simulated voxray calls (text mode).

    locust -f loadtests/locustfile.py --host http://127.0.0.1:8000            # web UI on :8089
    locust -f loadtests/locustfile.py --host http://127.0.0.1:8000 --headless -u 100 -r 5 -t 2m

Each user places one call after another: ``POST /calls`` (``simulate``), then the scripted
counterpart lines of the prior-auth persona, one ``POST /calls/{id}/turns`` each, paced like a
phone call (``VOXRAY_LOAD_THINK_S``, default 2-4 s between lines: the agent's reply being
spoken plus the counterpart starting to talk), including off-script lines that the state
machine cannot answer (they go to the semantic cache, and on a miss to the LLM router), then
``POST /calls/{id}/hangup``. Text mode exercises ingress, call hosts, NLU, cache, router and
the Redis state store; it skips STT and TTS.

Locust's own table holds only real HTTP requests (start, turn, hang-up; a failed one is a
failure there). Server-side stages are not requests: one sample per stage in each turn's
``stages_ms`` (nlu, cache, llm_ttft, turn_total, ...) plus ``voxray_added`` (turn time not spent
in the provider, see ``added_ms``) goes to a table of its own, printed at the end, written as
``<--csv prefix>_stages.csv`` and served by the web UI at ``/voxray/stages`` (per Locust
process). Headless runs print a status line every 5 s (users, rps, failures, p95 of a turn).
``VOXRAY_LOAD_PHASES="50:60,100:120"`` (users:seconds, ...) runs those phases in order
(a ``LoadTestShape``; without it ``-u``/``-r``/``-t`` decide). ``[tool.locust]`` in
``pyproject.toml`` makes this file and ``http://127.0.0.1:8000`` the defaults.
With ``VOXRAY_LOAD_OUT=<file.jsonl>`` every start, turn and error is also appended as one JSON
line (run_scenarios reads those for exact percentiles and plots).

Audio mode is NOT a Locust user, by decision: Locust runs on gevent (monkey-patched sockets,
select and threads) while ``SimulatedCaller`` is asyncio + websockets + Piper, and importing
Ray next to gevent's patched ssl fails outright. Audio calls are driven by an asyncio runner
(``python -m loadtests.run_scenarios --scenario audio``), which steps the concurrency up and
records voice-to-voice as the caller hears it.
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
from typing import Any

import gevent
from locust import LoadTestShape, between, events, task
from locust.contrib.fasthttp import FastHttpUser
from locust.stats import RequestStats, get_percentile_stats_summary, get_stats_summary

from common.testing.samples import SAMPLE_CALL_DATA
from loadtests.api_key import tool_headers

SCHEMA = "prior_auth"
CALL_DATA = SAMPLE_CALL_DATA[SCHEMA]
# The insurance_rep persona's lines, with off-script lines (None = pick from OFF_SCRIPT).
SCRIPT: tuple[str | None, ...] = (
    "Thanks for calling Acme Health provider services, this is Dana. How can I help you?",
    None,
    "Okay, let me pull that up. Can you give me the member ID one more time?",
    "Got it, I found the member. She's active on the plan.",
    None,
    "I see an authorization on file for that procedure. It's approved.",
    "The reference number is P A seven seven three four.",
    "Yes, that's correct.",
)
# Paraphrases: the first of each family is a cache miss (LLM), later ones exact/semantic hits
# (the cache lives in Redis, so across runs these are mostly hits).
OFF_SCRIPT: tuple[str, ...] = (
    "Sorry, can you hold on a second? My computer is really slow today.",
    "Sorry, can you hold on a second? My computer is really slow today.",
    "Sorry, could you hold on a second? My computer is very slow today.",
    "What's the weather like over there today?",
    "What is the weather like over there today?",
    "Hang on, my screen just froze, give me a moment please.",
)


# Lines that name a fresh number: the cache's number guard refuses a hit, so they reach the LLM
# router (a guaranteed miss). Share of off-script lines: VOXRAY_LOAD_MISS_SHARE (default 0.5).
UNIQUE_OFF_SCRIPT: tuple[str, ...] = (
    "Sorry, one moment, I'm also handling ticket {n} for another office right now.",
    "Hold on, my supervisor is asking me about case {n}, give me a second.",
)


def off_script_line() -> str:
    if random.random() < float(os.environ.get("VOXRAY_LOAD_MISS_SHARE", "0.5")):
        return random.choice(UNIQUE_OFF_SCRIPT).format(n=random.randint(1000, 99999))
    return random.choice(OFF_SCRIPT)


def think_range() -> tuple[float, float]:
    raw = os.environ.get("VOXRAY_LOAD_THINK_S", "2,4")
    lo, _, hi = raw.partition(",")
    return float(lo), float(hi or lo)


def added_ms(turn: dict[str, Any]) -> float | None:
    """Turn time not spent waiting on the LLM provider (server side, in the call actor).

    provider time = provider TTFT as the router's HTTP client saw it + the streaming time after
    the router got the first token; 0 for turns answered by the script or the cache."""
    stages = turn.get("stages_ms") or {}
    total = stages.get("turn_total")
    if total is None:
        return None
    llm = turn.get("llm") or {}
    if turn.get("source") == "llm" and llm.get("total_ms") is not None:
        provider = (
            float(llm.get("ttft_ms") or 0.0)
            + float(llm["total_ms"])
            - float(llm.get("router_ttft_ms") or 0.0)
        )
        return float(total) - provider
    return float(total)


class _Sink:
    """Appends JSON lines (one writer per Locust process; a lock for the greenlets)."""

    def __init__(self) -> None:
        path = os.environ.get("VOXRAY_LOAD_OUT")
        self._file = open(path, "a", buffering=1) if path else None  # noqa: SIM115 - lives for the process
        self._lock = threading.Lock()

    def write(self, record: dict[str, Any]) -> None:
        if self._file is None:
            return
        line = json.dumps(record, separators=(",", ":"))
        with self._lock:
            self._file.write(line + "\n")


SINK = _Sink()


STAGE_STATS = RequestStats()  # server-side stage samples: kept out of Locust's request table
STATUS_EVERY_S = 5.0


def _stage(name: str, ms: float) -> None:
    STAGE_STATS.log_request("STAGE", name, round(ms), 0)


class TextCallUser(FastHttpUser):
    """One simulated call at a time, text mode; the user count is the number of live sessions."""

    wait_time = between(0.5, 1.5)  # between calls
    default_headers = tool_headers()  # VOXRAY_API_KEY, or a local key made in the cluster's Redis
    network_timeout = 60.0
    connection_timeout = 30.0

    def _error(self, where: str, kind: str, detail: str = "") -> None:
        SINK.write({"kind": "error", "t": time.time(), "where": where, "type": kind, "users": self._users()})

    def _users(self) -> int:
        runner = self.environment.runner
        return int(runner.user_count) if runner is not None else 0

    @task
    def call(self) -> None:
        body = {"schema_name": SCHEMA, "call_data": CALL_DATA, "simulate": {"persona": "insurance_rep"}}
        t0 = time.perf_counter()
        with self.client.post("/calls", json=body, name="POST /calls", catch_response=True) as r:
            ms = (time.perf_counter() - t0) * 1000
            if r.status_code != 201:
                r.failure(f"HTTP {r.status_code}")
                self._error("start_call", f"http_{r.status_code}", r.text or "")
                return
            call = r.json()
        SINK.write(
            {
                "kind": "start",
                "t": time.time(),
                "ms": ms,
                "ready_ms": call.get("ready_ms"),
                "users": self._users(),
            }
        )
        call_id = call["call_id"]
        lo, hi = think_range()
        try:
            for line in SCRIPT:
                time.sleep(random.uniform(lo, hi))  # gevent-patched: yields to other users
                text = line if line is not None else off_script_line()
                if not self._turn(call_id, text, off_script=line is None):
                    return
        finally:
            with self.client.post(
                f"/calls/{call_id}/hangup", json={"reason": "hangup"}, name="POST hangup", catch_response=True
            ) as r:
                if r.status_code != 200:
                    r.failure(f"HTTP {r.status_code}")
                    self._error("hangup", f"http_{r.status_code}", r.text or "")

    def _turn(self, call_id: str, text: str, off_script: bool) -> bool:
        t0 = time.perf_counter()
        with self.client.post(
            f"/calls/{call_id}/turns", json={"text": text}, name="POST turn", catch_response=True
        ) as r:
            client_ms = (time.perf_counter() - t0) * 1000
            if r.status_code == 409:  # the conversation ended early: not an error, stop talking
                r.success()
                return False
            if r.status_code != 200:
                r.failure(f"HTTP {r.status_code}")
                self._error("turn", f"http_{r.status_code}", r.text or "")
                return False
            turn = r.json()
        stages = turn.get("stages_ms") or {}
        for stage, value in stages.items():
            _stage(stage, float(value))
        added = added_ms(turn)
        if added is not None:
            _stage("voxray_added", added)
        llm = turn.get("llm") or {}
        SINK.write(
            {
                "kind": "turn",
                "t": time.time(),
                "users": self._users(),
                "client_ms": client_ms,
                "source": turn.get("source"),
                "off_script": off_script,
                "stages_ms": stages,
                "added_ms": added,
                "llm": {
                    k: llm.get(k)
                    for k in ("provider", "ttft_ms", "router_ttft_ms", "total_ms", "cancelled_for_cache")
                }
                if llm
                else None,
            }
        )
        return not turn.get("terminal")


@events.init_command_line_parser.add_listener  # type: ignore[untyped-decorator]
def _args(parser: Any) -> None:  # documented knobs, also settable by env
    parser.add_argument(
        "--voxray-think-s", default=None, help="Seconds between lines, 'lo,hi' (default 2,4)."
    )


@events.test_start.add_listener  # type: ignore[untyped-decorator]
def _start(environment: Any, **_: Any) -> None:
    opts = environment.parsed_options
    if opts is not None and getattr(opts, "voxray_think_s", None):
        os.environ["VOXRAY_LOAD_THINK_S"] = opts.voxray_think_s
    if opts is not None and getattr(opts, "headless", False):
        gevent.spawn(_status_loop, environment)


def _phases() -> list[tuple[int, float]]:
    """``VOXRAY_LOAD_PHASES``: "users:seconds,users:seconds" → [(users, seconds)]."""
    spec = os.environ.get("VOXRAY_LOAD_PHASES", "").strip()
    phases = []
    for part in filter(None, (p.strip() for p in spec.split(","))):
        users, _, seconds = part.partition(":")
        try:
            phases.append((int(users), float(seconds)))
        except ValueError:
            raise SystemExit(f"VOXRAY_LOAD_PHASES: {part!r} is not users:seconds") from None
    return phases


if _phases():  # Locust uses a shape class whenever the file defines one: only when asked

    class PhasedLoad(LoadTestShape):
        """The phases of ``VOXRAY_LOAD_PHASES`` one after another, spawning 5 users/s."""

        phases = _phases()

        def tick(self) -> tuple[int, float] | None:
            elapsed = self.get_run_time()
            for users, seconds in self.phases:
                if elapsed < seconds:
                    return users, 5.0
                elapsed -= seconds
            return None


def _status_line(environment: Any) -> str:
    total = environment.stats.total
    turn = environment.stats.get("POST turn", "POST")
    p95 = turn.get_response_time_percentile(0.95) if turn.num_requests else 0
    users = environment.runner.user_count if environment.runner is not None else 0
    return (
        f"[load] users={users} rps={total.current_rps:.1f} requests={total.num_requests} "
        f"failures={total.num_failures} turn_p95={p95:.0f}ms"
    )


def _status_loop(environment: Any) -> None:
    while True:
        gevent.sleep(STATUS_EVERY_S)
        print(_status_line(environment), flush=True)


@events.init.add_listener  # type: ignore[untyped-decorator]
def _init(environment: Any, **_: Any) -> None:
    if environment.web_ui is not None:

        @environment.web_ui.app.route("/voxray/stages")  # type: ignore[untyped-decorator]
        def stages() -> dict[str, Any]:
            return {"stages": STAGE_STATS.serialize_stats()}


@events.quitting.add_listener  # type: ignore[untyped-decorator]
def _quitting(environment: Any, **_: Any) -> None:
    if not STAGE_STATS.entries:
        return
    print("\nserver-side stages (ms per turn; samples, not requests):")
    for line in [*get_stats_summary(STAGE_STATS, current=False), *get_percentile_stats_summary(STAGE_STATS)]:
        print(line)
    prefix = getattr(environment.parsed_options, "csv_prefix", None)
    if prefix:
        with open(f"{prefix}_stages.csv", "w") as out:
            out.write("stage,samples,median_ms,p95_ms,p99_ms,avg_ms,min_ms,max_ms\n")
            for (name, _method), entry in sorted(STAGE_STATS.entries.items()):
                pct = entry.get_response_time_percentile
                out.write(
                    f"{name},{entry.num_requests},{pct(0.5):.1f},{pct(0.95):.1f},{pct(0.99):.1f},"
                    f"{entry.avg_response_time:.1f},{entry.min_response_time or 0:.1f},"
                    f"{entry.max_response_time:.1f}\n"
                )
