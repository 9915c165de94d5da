"""Scenario counterparts over the real media websocket, in a synthetic voice unlike the agent's.

One short counterpart per schema, both calls at once, end to end: espeak-ng speech through the
media websocket, the edge's endpointing, Whisper, the call, Piper back. The whole audio set
runs in the benchmark (``python -m loadtests.scenario_audio``), not here.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from loadtests.scenario_audio import AudioCall, audio_summary, play_audio
from loadtests.scenario_suite import load_counterparts
from tests.e2e.conftest import AUTH_TOKEN

COUNTERPARTS = {"prior_auth": "callback_system_down", "sales_qualification": "busy_call_back_tomorrow"}


async def _play_both(base: str, headers: dict[str, str]) -> list[AudioCall]:
    chosen = [c for schema, name in COUNTERPARTS.items() for c in load_counterparts(schema) if c.name == name]
    assert len(chosen) == len(COUNTERPARTS)
    async with httpx.AsyncClient(base_url=base, timeout=60, headers=headers) as client:
        return list(await asyncio.gather(*(play_audio(client, c, auth_token=AUTH_TOKEN) for c in chosen)))


def test_audio_counterparts_reach_the_expected_outcome(app: dict[str, Any]) -> None:
    calls = asyncio.run(_play_both(app["base"], app["headers"]))
    report = audio_summary({schema: [call] for schema, call in zip(COUNTERPARTS, calls, strict=True)})
    print("\n" + report)
    for call in calls:
        assert call.error is None, report
        assert call.score.outcome == call.score.expected_outcome, report
        # The agent answered over the websocket. A reply that began while the counterpart was still
        # saying a second sentence (a pause between them ended the turn) has no voice-to-voice
        # figure, so the check is on the agent's audio, not on the latencies.
        assert call.answered_audio_ms > 0, report
