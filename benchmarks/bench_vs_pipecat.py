"""voxray's edge against a Pipecat 1.14 telephony pipeline: same models, same caller, same replies.

Each side is a websocket server in its own process on 127.0.0.1, started, measured and stopped in
turn; the simulated callers run in this process (``loadtests.simulated_caller.SimulatedCaller``:
Twilio Media Streams, 20 ms µ-law frames in real time, marks echoed as they play).

- voxray: ``edge.media_socket.MediaSocket`` (the real ingress socket) ─► ``edge.call_link.CallLink``
  (``MediaStream``: Silero VAD, smart turn v3, endpointing, early STT; playout) ─► STT: faster-whisper
  in process (``benchmarks.bench_answering.WhisperInProcess``: ``services.stt.WhisperBatchTranscriber``,
  the STT service's core, no Ray) ─► ``ScriptedCall`` (a STAND-IN for the call host) ─► TTS: the TTS
  service's own class run in process (``services.tts.TTSDeployment``: Piper, one chunk per sentence).
- Pipecat: ``benchmarks/pipecat_side.py``: per socket one pipeline, FastAPIWebsocketTransport +
  TwilioFrameSerializer (auto_hang_up off) ─► WhisperSTTService ─► LLMContextAggregatorPair.user()
  (SileroVADAnalyzer + LocalSmartTurnAnalyzerV3 stop strategy) ─► ScriptedAgent (a STAND-IN for the
  LLM) ─► PiperTTSService ─► transport.output() ─► assistant aggregator.

The same on both (the tuning): faster-whisper tiny.en (voxray's bundled folder) with voxray's STT
settings (int8, CPU threads, beam size 1; Pipecat's default beam is 5), Piper en_US-joe-medium with
1 ONNX thread, one Whisper model and one Piper voice per server process, smart turn v3 on, and the
pause at which end of turn is first decided (``--stop-ms``: voxray ``turn_pause_ms``, Pipecat VAD
``stop_secs``; Pipecat's default and recommendation is 200 ms) and the silence that ends a turn smart
turn judged incomplete (``--incomplete-ms``: voxray ``incomplete_end_silence_ms``, Pipecat
``SmartTurnParams.stop_secs``; defaults voxray 1200 ms, Pipecat 3000 ms; 1200 here unless set, since
smart turn calls most of these synthetic lines incomplete and that wait then dominates voice to voice
on both sides). Left at each side's defaults: VAD thresholds (voxray 0.5, Pipecat 0.7), voxray's early
STT at a 200 ms pause, sentence pauses. Logs at WARNING on both.
The agent's replies (``AGENT_REPLIES``, a scripted STAND-IN for the LLM) and the caller's lines
(``PERSONA``, an insurance rep; espeak-ng voice through a telephone band) are the same on both;
a turn that heard nothing gets no reply on either side.

Prints per side and level (1..4 concurrent calls): caller-heard voice to voice p50/p95 (last
caller speech frame sent → first agent media frame received), lines left unanswered, errors, and
server process CPU seconds (psutil, over the level) per call-minute; a level is "held" when p95 <
``--p95-limit-ms`` (3000) with every line answered and no errors. Then the voxray / Pipecat ratios.
Never fails on time.

    python -m benchmarks.bench_vs_pipecat [--levels 1,2,3,4] [--rounds-at-1 2] [--lines 5]
        [--stop-ms 200] [--incomplete-ms 1200]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import queue
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import AsyncGenerator
from typing import Any

from fastapi import WebSocket  # at module level: FastAPI resolves the endpoints' annotations here

from loadtests.persona import Persona, PersonaTurn

PERSONA_LINES = [
    "Thank you for calling Blue Valley Health, this is Dana. How can I help you?",
    "Sure, can I get the member ID and the date of birth?",
    "Okay, I have the member pulled up now.",
    "That claim was approved on March third, and the reference number is four four seven nine.",
    "Is there anything else I can help you with today?",
]
AGENT_REPLIES = [
    "Hi Dana, this is Sam from Riverside Clinic. I'm calling to check on a claim.",
    "The member ID is A B C one two three four five, and the date of birth is June fifth, 1980.",
    "Great. The claim is for a visit on February tenth.",
    "Thank you. Could you spell the reference number once more?",
    "No, that's everything. Thanks for your help, have a great day.",
]
CALLER_VOICE = ("en-us", 160)  # espeak-ng voice and words per minute, the same caller on both sides
SIDES = ("voxray", "pipecat")


def persona(lines: int) -> Persona:
    return Persona(
        name="bench_insurance_rep",
        description="An insurance rep answering the agent's call (written for this benchmark).",
        speaks_first=True,
        turns=[PersonaTurn(say=s, pause_before_ms=300) for s in PERSONA_LINES[:lines]],
    )


# --------------------------------------------------------------------------- the voxray server


class ScriptedCall:
    """A STAND-IN call host (and the stream pool ``MediaSocket`` asks): the n-th caller turn with
    words gets ``AGENT_REPLIES[n-1]`` as one reply chunk; a turn that heard nothing, no reply."""

    def __init__(self) -> None:
        self.heard: list[str] = []
        self.turn = 0

    # the pool MediaSocket asks (one socket per call; no token on this bench)
    async def route(self, call_id: str) -> None:
        return None

    async def claim_stream(self, call_id: str, token: str, owner: str) -> str:
        return "ok"

    async def release_stream(self, call_id: str, owner: str) -> None:
        return None

    async def end(self, call_id: str, reason: Any) -> None:
        return None

    # the call host CallLink talks to
    def check_token(self, call_id: str, token: str) -> bool:
        return True

    async def stream(self, call_id: str, method: str, *args: Any) -> AsyncGenerator[Any, None]:
        from common.events import ReplyChunk, ReplySource, TurnDone

        if method == "opening":  # the rep speaks first: the agent says nothing before
            yield TurnDone(turn=0, state="listening")
        elif method == "turn":
            self.turn += 1
            caller = args[0]
            if not caller.heard_nothing:
                self.heard.append(caller.text)
                reply = AGENT_REPLIES[(len(self.heard) - 1) % len(AGENT_REPLIES)]
                yield ReplyChunk(turn=self.turn, index=0, text=reply, source=ReplySource.SCRIPT)
            yield TurnDone(turn=self.turn, state="listening")

    async def call(self, call_id: str, method: str, *args: Any) -> Any:
        return None


class _NoMetrics:
    def inc(self, *a: Any, **k: Any) -> None: ...
    def set(self, *a: Any, **k: Any) -> None: ...
    def observe(self, *a: Any, **k: Any) -> None: ...


def serve_voxray(port: int, stop_ms: int, incomplete_ms: int) -> None:
    import logging

    import uvicorn
    from fastapi import FastAPI

    from benchmarks.bench_answering import WhisperInProcess
    from common.settings import get_settings
    from edge.call_link import CallLink
    from edge.media.config import EdgeConfig
    from edge.media.smart_turn import preload_models
    from edge.media_socket import MediaSocket, MediaSocketRules
    from services.replica_metrics import ReplicaMetrics
    from services.tts import TTSDeployment

    logging.basicConfig(level=logging.WARNING)
    stt = WhisperInProcess()
    tts_class: Any = TTSDeployment.func_or_class  # type: ignore[attr-defined]  # the class, no Ray
    tts = tts_class(get_settings().tts, None, 1, 2)
    tts._metrics = ReplicaMetrics(lambda d: _NoMetrics())
    config = EdgeConfig(turn_pause_ms=stop_ms, incomplete_end_silence_ms=incomplete_ms)
    preload_models()
    app = FastAPI()

    @app.websocket("/twilio/media/{call_id}")
    async def media(websocket: WebSocket, call_id: str) -> None:
        call = ScriptedCall()
        sock = MediaSocket(
            websocket,
            call_id,
            MediaSocketRules(),
            call,
            lambda send: CallLink(call_id, call, stt, tts, send, config),
            call.end,
        )
        await sock.run()
        print("CALL " + json.dumps({"side": "voxray", "heard": call.heard}), flush=True)

    async def serve() -> None:
        await stt.transcribe(os.urandom(32000))  # noise: silence would skip the model
        async for _ in tts.stream("Warm up.", "mulaw_8k"):
            pass
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        task = asyncio.create_task(server.serve())
        while not server.started:
            await asyncio.sleep(0.05)
        print("READY", flush=True)
        await task

    asyncio.run(serve())


# --------------------------------------------------------------------------- the driver


class Server:
    """One side's server process; its stdout lines are collected (``CALL {json}`` per call)."""

    def __init__(self, side: str, stop_ms: int, incomplete_ms: int, log_dir: str) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        if side == "voxray":
            cmd = [sys.executable, "-m", "benchmarks.bench_vs_pipecat", "--serve", str(self.port)]
        else:
            cmd = [sys.executable, "-m", "benchmarks.pipecat_side", "--port", str(self.port)]
        cmd += ["--stop-ms", str(stop_ms), "--incomplete-ms", str(incomplete_ms)]
        self.side = side
        self.log = open(os.path.join(log_dir, f"bench_vs_pipecat_{side}.log"), "w")  # noqa: SIM115
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self.log, text=True)
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        import psutil

        self.ps = psutil.Process(self.proc.pid)

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))

    def wait_ready(self, timeout: float = 300.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if self.lines.get(timeout=1.0) == "READY":
                    return
            except queue.Empty:
                if self.proc.poll() is not None:
                    break
        raise RuntimeError(f"{self.side} server did not start (see {self.log.name})")

    def url(self) -> str:
        if self.side == "voxray":
            return f"ws://127.0.0.1:{self.port}/twilio/media/bench-{uuid.uuid4().hex[:12]}"
        return f"ws://127.0.0.1:{self.port}/ws"

    def cpu_s(self) -> float:
        t = self.ps.cpu_times()
        return float(t.user + t.system)

    def calls_reported(self, calls: int, timeout: float = 20.0) -> list[dict[str, Any]]:
        """The next ``calls`` calls' reports (the server prints one once its side of a call is over)."""
        out: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while len(out) < calls and time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.1)
            except queue.Empty:
                continue
            if line.startswith("CALL "):
                out.append(json.loads(line[5:]))
        return out

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))]


async def one_call(url: str, who: Persona, voice: Any) -> tuple[Any, float]:
    from loadtests.simulated_caller import SimulatedCaller

    t0 = time.monotonic()
    caller = SimulatedCaller(url, who, voice=voice, agent_done_silence_ms=1200, hang_up_after_s=4.0)
    try:
        result: Any = await caller.run()
    except Exception as exc:  # the socket failed: counted as an error of the level
        result = exc
    return result, time.monotonic() - t0


async def run_level(server: Server, calls: int, rounds: int, who: Persona, voice: Any) -> dict[str, Any]:
    cpu0 = server.cpu_s()
    v2v: list[float] = []
    unanswered = errors = 0
    call_s = 0.0
    what: list[str] = []
    for _ in range(rounds):
        done = await asyncio.gather(*(one_call(server.url(), who, voice) for _ in range(calls)))
        for result, seconds in done:
            call_s += seconds
            if isinstance(result, Exception):
                errors += 1
                unanswered += len(who.turns)
                what.append(f"{type(result).__name__}: {result}"[:200])
                continue
            errors += len(result.errors)
            what += result.errors
            v2v += result.latencies_ms
            unanswered += len(who.turns) - len(result.latencies_ms)
    heard = await asyncio.to_thread(server.calls_reported, calls * rounds)  # their side is over too
    cpu = server.cpu_s() - cpu0
    return {
        "calls": calls,
        "turns": len(v2v),
        "p50": pct(v2v, 0.5),
        "p95": pct(v2v, 0.95),
        "unanswered": unanswered,
        "errors": errors,
        "cpu_per_call_min": cpu / (call_s / 60.0) if call_s else float("nan"),
        "agent_turns": sum(len(c["heard"]) for c in heard),
        "heard": [c["heard"] for c in heard],
        "what": sorted(set(what)),
    }


def holds(row: dict[str, Any], limit_ms: float) -> bool:
    return bool(row["p95"] < limit_ms and row["unanswered"] == 0 and row["errors"] == 0)


def header(args: argparse.Namespace) -> str:
    from common.settings import get_settings

    stt = get_settings().stt
    return (
        f"voxray edge vs Pipecat 1.14, {os.cpu_count()} CPU cores, one side at a time, "
        "callers in this process\n"
        f"  both: faster-whisper tiny.en {stt.compute_type} cpu_threads={stt.cpu_threads} "
        f"beam={stt.beam_size} (one model per server), Piper en_US-joe-medium 1 ONNX thread, "
        f"smart turn v3, end of turn decided from a {args.stop_ms} ms pause (a turn judged incomplete "
        f"ends after {args.incomplete_ms} ms of silence), scripted replies, caller espeak-ng "
        f"{CALLER_VOICE[0]} @{CALLER_VOICE[1]} wpm, {args.lines} lines a call\n"
        "  voxray: MediaSocket -> CallLink (Silero VAD, smart turn, early STT at 200 ms, playout) -> "
        "STT core in process -> ScriptedCall (stand-in host) -> TTSDeployment class in process\n"
        "  Pipecat: FastAPIWebsocketTransport+TwilioFrameSerializer -> WhisperSTTService -> "
        "user aggregator (SileroVADAnalyzer, LocalSmartTurnAnalyzerV3) -> ScriptedAgent "
        "(stand-in LLM) -> PiperTTSService\n"
        f"  held = caller-heard voice to voice p95 < {args.p95_limit_ms:.0f} ms, every line answered, "
        "no errors"
    )


async def main_async(args: argparse.Namespace) -> None:
    from loadtests.voice import EspeakVoice

    print(header(args), flush=True)
    who = persona(args.lines)
    voice = EspeakVoice(*CALLER_VOICE)
    for turn in who.turns:  # rendered before any timing: the caller only sends frames
        voice.mulaw(turn.say)
    levels = [int(x) for x in args.levels.split(",")]
    table: dict[str, list[dict[str, Any]]] = {}
    for side in args.sides.split(","):
        server = Server(side, args.stop_ms, args.incomplete_ms, args.log_dir)
        try:
            t0 = time.monotonic()
            await asyncio.to_thread(server.wait_ready)
            print(f"\n{side}: server up in {time.monotonic() - t0:.0f} s; warm-up call", flush=True)
            await one_call(server.url(), persona(1), voice)
            await asyncio.to_thread(server.calls_reported, 1)
            table[side] = []
            for n in levels:
                row = await run_level(server, n, args.rounds_at_1 if n == 1 else 1, who, voice)
                table[side].append(row)
                print(
                    f"  {side} {n} call(s): {row['turns']} turns, v2v p50 {row['p50']:.0f} ms p95 "
                    f"{row['p95']:.0f} ms, unanswered {row['unanswered']}, errors {row['errors']}, "
                    f"agent turns {row['agent_turns']}, CPU {row['cpu_per_call_min']:.1f} s/call-min, "
                    f"{'held' if holds(row, args.p95_limit_ms) else 'NOT held'}",
                    flush=True,
                )
                if row["what"]:
                    print(f"    errors: {row['what']}")
                if args.show_heard:
                    for heard in row["heard"]:
                        print(f"    heard: {heard}")
        finally:
            server.stop()
    print(
        "\n| side | calls | turns | agent turns | v2v p50 | v2v p95 | unanswered | errors "
        "| CPU s / call-min | held |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for side, rows in table.items():
        for r in rows:
            print(
                f"| {side} | {r['calls']} | {r['turns']} | {r['agent_turns']} | {r['p50']:.0f} ms | "
                f"{r['p95']:.0f} ms | {r['unanswered']} | {r['errors']} | {r['cpu_per_call_min']:.1f} | "
                f"{'yes' if holds(r, args.p95_limit_ms) else 'no'} |"
            )
    if all(s in table for s in SIDES):
        most = {
            s: max([r["calls"] for r in table[s] if holds(r, args.p95_limit_ms)], default=0) for s in SIDES
        }
        vx, pc = table["voxray"][0], table["pipecat"][0]
        shown = {s: f"{n}{'+ (every level tried)' if n == max(levels) else ''}" for s, n in most.items()}
        held = f"voxray {shown['voxray']}, Pipecat {shown['pipecat']}"
        print(f"\nmost concurrent calls held (of {levels}): {held}")
        print("(agent turns above the caller's lines: a line cut in two by a false end of turn)")
        print(
            f"voxray / Pipecat at {vx['calls']} call: v2v p50 x{vx['p50'] / pc['p50']:.2f}, "
            f"p95 x{vx['p95'] / pc['p95']:.2f}"
        )
        for a, b in zip(table["voxray"], table["pipecat"], strict=True):
            if b["cpu_per_call_min"] > 0:
                print(
                    f"voxray / Pipecat CPU per call-minute at {a['calls']} call(s): "
                    f"x{a['cpu_per_call_min'] / b['cpu_per_call_min']:.2f}"
                )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--levels", default="1,2,3,4", help="concurrent calls per level")
    ap.add_argument("--rounds-at-1", type=int, default=2, help="calls one after another at level 1")
    ap.add_argument("--lines", type=int, default=5, choices=range(1, len(PERSONA_LINES) + 1))
    ap.add_argument("--sides", default="voxray,pipecat")
    ap.add_argument("--stop-ms", type=int, default=200, help="pause at which end of turn is first decided")
    ap.add_argument(
        "--incomplete-ms",
        type=int,
        default=1200,
        help="silence that ends a turn smart turn called incomplete",
    )
    ap.add_argument("--p95-limit-ms", type=float, default=3000.0)
    ap.add_argument("--show-heard", action="store_true", help="print what each agent heard per call")
    ap.add_argument("--log-dir", default="/tmp", help="where the servers' stderr goes")
    ap.add_argument("--serve", type=int, default=None, help=argparse.SUPPRESS)  # the voxray server
    args = ap.parse_args()
    if args.serve is not None:
        serve_voxray(args.serve, args.stop_ms, args.incomplete_ms)
        return
    t0 = time.perf_counter()
    asyncio.run(main_async(args))
    print(f"({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
