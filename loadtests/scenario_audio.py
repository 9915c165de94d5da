"""The scenario suite over the real media websocket, in a voice unlike the agent's.

    python -m loadtests.scenario_audio --start [--port 8126] [--json out.json]   # own local cluster
    python -m loadtests.scenario_audio --base http://127.0.0.1:8000              # a running app
    python -m loadtests.scenario_audio --start --agent-voice     # control: in the agent's own voice
    python -m loadtests.scenario_audio --start --dev             # the dev-split counterparts, to tune on

The counterparts marked ``audio: true`` (``tests/scenarios/<schema>/*.yaml``) call in over the
Twilio Media Streams protocol (``loadtests.simulated_caller``) and speak their lines with
``EspeakVoice``: SYNTHETIC speech (espeak-ng through a telephone band) standing in for a real
caller, nothing like the agent's own Piper voice. The agent hears them through its VAD,
endpointing and Whisper, as it would hear a person.

Once the agent's reply has finished playing, the counterpart picks its next line from what
the agent said, which it reads from the call's transcript (``GET /calls/{id}``, the last agent
line). That reading is the COUNTERPART'S comprehension, a stand-in for a person understanding
the agent; it is not part of what is tested (the agent's words are its own text, not its
synthesised audio heard back). Calls are scored as in text mode (``scenario_suite.score``):
outcome, slots, no identifier spoken that the call was not given; what the counterpart said
is its script lines, whatever the recogniser made of them.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import statistics
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from pydantic import BaseModel, Field

from common.testing.samples import SAMPLE_CALL_DATA
from loadtests.api_key import tool_headers
from loadtests.persona import Persona, PersonaTurn
from loadtests.scenario_suite import (
    MAX_TURNS,
    TOPICS,
    CallScore,
    Counterpart,
    Player,
    load_counterparts,
    score,
    summary,
    topic_of,
)
from loadtests.simulated_caller import SimulatedCaller, TurnResult
from loadtests.voice import CachedVoice, EspeakVoice, PersonaVoice

PAUSE_S = 0.4  # the counterpart's pause after the agent's reply, before it speaks
# Silence that means the agent has finished: long enough that a gap between two sentences of one
# reply (the next one still being synthesised on a loaded box) is not taken for the end, which
# would make the counterpart cut in and the agent's line be cut to what was heard.
AGENT_DONE_SILENCE_MS = 1500


class AudioCall(BaseModel):
    score: CallScore
    voice: str
    said: list[str] = Field(default_factory=list, description="The counterpart's lines, as scripted.")
    heard: list[str] = Field(default_factory=list, description="Its lines as the call transcribed them.")
    latencies_ms: list[float] = Field(
        default_factory=list, description="Voice to voice, per line the agent answered after it ended."
    )
    answered_audio_ms: float = Field(
        0.0, description="Agent audio after its opening, a reply that overlapped a line included."
    )
    error: str | None = None


class CounterpartCaller(SimulatedCaller):
    """A scenario counterpart on the call's media websocket, choosing each line as it goes."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        call: dict[str, Any],
        counterpart: Counterpart,
        voice: CachedVoice,
        auth_token: str | None = None,
    ) -> None:
        persona = Persona(  # the lines are chosen during the call, not scripted in order
            name=counterpart.name, turns=[PersonaTurn(say="(chosen during the call)")]
        )
        custom = {"token": call["stream_token"]}
        super().__init__(
            call["media_url"],
            persona,
            voice=voice,
            custom_parameters=custom,
            auth_token=auth_token,
            agent_done_silence_ms=AGENT_DONE_SILENCE_MS,
        )
        self.client = client
        self.call_id: str = call["call_id"]
        self.schema = counterpart.schema_name
        self.player = Player(counterpart)
        self.said: list[str] = []
        self.opening_frames = 0  # agent frames before the counterpart's first line

    async def _agent_line(self) -> str | None:
        """The agent's latest line (the counterpart's comprehension), None once the call is over."""
        status = (await self.client.get(f"/calls/{self.call_id}")).json()
        if status.get("status") != "active":
            return None
        lines = [t["text"] for t in status.get("transcript", []) if t["speaker"] == "agent"]
        return lines[-1] if lines else ""

    async def _converse(self) -> None:
        await self._listen_to_agent(None)  # the agent's opening
        self._take_reply()
        self.opening_frames = self.result.frames_received
        for index in range(MAX_TURNS):
            agent = None if self.result.closed_by_server else await self._agent_line()
            if agent is None:
                return
            line = self.player.reply(topic_of(self.schema, agent))
            self.said.append(line)
            await asyncio.sleep(PAUSE_S)
            self._reset_reply()
            start, end = await self._say(line)
            # the agent answered the first part while the rest was said: no voice-to-voice figure
            overlapped = self._listener.frames > 0
            clears_during = self._listener.clears
            self._reset_reply()  # the reply is what the agent sends after the line ended
            await self._listen_to_agent(None)
            _, frames, marks, clears, first = self._take_reply()
            self.result.turns.append(
                TurnResult(
                    index=index,
                    text=line,
                    speech_start=start,
                    speech_end=end,
                    voice_to_voice_ms=None if first is None or overlapped else (first - end) * 1000.0,
                    agent_audio_ms=frames * 20.0,
                    agent_frames=frames,
                    marks=marks,
                    clears=clears + clears_during,
                )
            )


async def _final_status(client: httpx.AsyncClient, call_id: str) -> dict[str, Any]:
    """The call's status; a call that just ended may take a moment to be on record."""
    for _ in range(20):
        response = await client.get(f"/calls/{call_id}")
        if response.status_code != 404:
            response.raise_for_status()
            status: dict[str, Any] = response.json()
            return status
        await asyncio.sleep(0.25)
    return {}


def counterpart_voice(name: str, agent_voice: bool = False) -> tuple[CachedVoice, str]:
    """The counterpart's espeak-ng voice; ``agent_voice``: the agent's own Piper voice instead,
    a control that tells an unfamiliar voice's recognition from everything else."""
    if agent_voice:
        return PersonaVoice.shared(), "Piper en_US-joe-medium, the agent's voice (control)"
    voice = EspeakVoice.for_name(name)
    return voice, f"espeak-ng {voice.voice}, {voice.wpm} wpm"


async def play_audio(
    client: httpx.AsyncClient,
    counterpart: Counterpart,
    today: dt.date | None = None,
    agent_voice: bool = False,
    auth_token: str | None = None,
) -> AudioCall:
    """One call over the media websocket, scored like ``scenario_suite.play``; ``auth_token``:
    the app's Twilio auth token, when Twilio is configured (the handshake is signed with it)."""
    today = today or dt.date.today()
    schema = counterpart.schema_name
    call_data = {**SAMPLE_CALL_DATA[schema], **counterpart.call_data}
    body = {"schema_name": schema, "call_data": call_data, "simulate": {"persona": counterpart.name}}
    voice, voice_name = counterpart_voice(counterpart.name, agent_voice)
    response = await client.post("/calls", json=body)
    if response.status_code != 201:  # e.g. 409: the contact is on the do-not-call list
        failed = score(counterpart, {}, [], call_data, today)
        error = f"POST /calls {response.status_code}: {response.text[:200]}"
        return AudioCall(score=failed, voice=voice_name, error=error)
    call = response.json()
    caller = CounterpartCaller(client, call, counterpart, voice, auth_token)
    result = await caller.run()
    status = await _final_status(client, call["call_id"])
    await client.post(f"/calls/{call['call_id']}/hangup", json={"reason": "scenario done"})
    return AudioCall(
        score=score(counterpart, status, caller.said, call_data, today),
        voice=voice_name,
        said=caller.said,
        heard=[t["text"] for t in status.get("transcript", []) if t["speaker"] == "caller"],
        latencies_ms=result.latencies_ms,
        # every agent frame after the opening, those sent while a line was still being said too
        answered_audio_ms=(result.frames_received - caller.opening_frames) * 20.0,
        error="; ".join(result.errors) if result.errors and not result.closed_by_server else None,
    )


def audio_counterparts(schema: str, dev: bool = False) -> list[Counterpart]:
    """A schema's audio counterparts (``dev``: its dev-split counterparts instead, to tune on;
    the audio figures reported are the ``audio: true`` ones); those who ask never to be called
    again go last, so the contact they put on the do-not-call list does not refuse the others'
    calls."""
    chosen = load_counterparts(schema, "dev") if dev else [c for c in load_counterparts(schema) if c.audio]
    return sorted(chosen, key=lambda c: c.expect.outcome == "do_not_call")


async def run_audio_suite(
    base: str,
    schemas: list[str],
    headers: dict[str, str],
    names: list[str] | None = None,
    agent_voice: bool = False,
    dev: bool = False,
) -> dict[str, list[AudioCall]]:
    """The audio counterparts of ``schemas`` (only ``names``, if given; ``dev``: the dev split),
    one call at a time; ``headers`` carry the API key."""
    async with httpx.AsyncClient(base_url=base, timeout=60, headers=headers) as client:
        results: dict[str, list[AudioCall]] = {}
        for schema in schemas:
            chosen = [c for c in audio_counterparts(schema, dev) if not names or c.name in names]
            results[schema] = [await play_audio(client, c, agent_voice=agent_voice) for c in chosen]
        return results


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def audio_summary(results: dict[str, list[AudioCall]]) -> str:
    lines = [summary({schema: [c.score for c in calls] for schema, calls in results.items()})]
    for calls in results.values():
        for call in calls:
            if call.score.passed:
                continue
            lines.append(f"  {call.score.name} ({call.voice}){': ' + call.error if call.error else ''}")
            lines.extend(f"    said  {line}" for line in call.said)
            lines.extend(f"    heard {line}" for line in call.heard)
    latencies = [ms for calls in results.values() for call in calls for ms in call.latencies_ms]
    if latencies:
        lines.append(
            f"voice to voice as the counterpart heard it: median {statistics.median(latencies):.0f} ms, "
            f"p95 {percentile(latencies, 0.95):.0f} ms over {len(latencies)} lines"
        )
    return "\n".join(lines)


def _drop_keys(prefix: str) -> None:
    import redis

    from common.settings import get_settings

    url = get_settings().redis_url
    if not url:
        return
    store = redis.Redis.from_url(url)
    for key in store.scan_iter(match=f"{prefix}*", count=1000):
        store.delete(key)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", default="http://127.0.0.1:8000", help="a running voxray app")
    ap.add_argument("--start", action="store_true", help="start a local cluster on --port first")
    ap.add_argument("--port", type=int, default=8126)
    ap.add_argument("--schema", action="append", choices=sorted(TOPICS), help="default: both")
    ap.add_argument("--name", action="append", help="only this counterpart (repeatable)")
    ap.add_argument(
        "--agent-voice", action="store_true", help="control: the counterparts speak with the agent's voice"
    )
    ap.add_argument("--dev", action="store_true", help="play the dev-split counterparts (to tune on)")
    ap.add_argument("--json", type=Path, help="also write every call's score and transcript here")
    args = ap.parse_args()
    base = args.base
    prefix = ""
    if args.start:
        from loadtests.place_call import start_cluster

        base = f"http://127.0.0.1:{args.port}"
        # Its own Redis keys: no do-not-call entries or cached replies from other runs.
        prefix = f"voxray-audio-{uuid.uuid4().hex[:8]}:"
        start_cluster(args.port, {"calls.key_prefix": prefix, "twilio.public_base_url": base})
    t0 = time.perf_counter()
    try:
        headers = tool_headers(prefix or None)
        suite = run_audio_suite(
            base, args.schema or sorted(TOPICS), headers, args.name, args.agent_voice, args.dev
        )
        results = asyncio.run(suite)
    finally:
        if args.start:
            _drop_keys(prefix)
    print(f"({sum(len(v) for v in results.values())} audio calls in {time.perf_counter() - t0:.0f} s)")
    print(audio_summary(results))
    if args.json:
        dump = {schema: [c.model_dump() for c in calls] for schema, calls in results.items()}
        args.json.write_text(json.dumps(dump, indent=1))


if __name__ == "__main__":
    main()
