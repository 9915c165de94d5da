"""A call host's own limits (actors/call_host.py): live calls per host, idle calls ended, a
call's turns bounded. Real host core, no Ray, no Redis (the pool's host-full failover is
covered through the pool below)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import replace

import pytest

from actors.call_host import CallHostCore, HostConfig
from actors.host_pool import NAMESPACE, CallHostPool
from common.events import CallerTurn, CallOpened, CallRefused, EndReason, TurnRefused
from common.testing.samples import SAMPLE_CALL_DATA
from common.testing.services import ScriptedCache, ScriptedLLM
from tests.support import ROOT

pytestmark = pytest.mark.integration
PATIENT = SAMPLE_CALL_DATA["prior_auth"]


def config(**limits: object) -> HostConfig:
    return replace(HostConfig(None, "t:", ROOT / "schemas", ScriptedCache(), ScriptedLLM()), **limits)  # type: ignore[arg-type]


async def test_a_full_host_refuses_new_calls() -> None:
    host = CallHostCore("h", config(max_live_calls=2))
    opened = [await host.start_call(f"c{i}", "prior_auth", PATIENT) for i in range(3)]
    assert [type(o) for o in opened] == [CallOpened, CallOpened, CallRefused]
    assert isinstance(opened[2], CallRefused) and opened[2].reason == "host_full"
    await host.hangup("c0", EndReason.HANGUP)
    assert isinstance(await host.start_call("c3", "prior_auth", PATIENT), CallOpened)  # room again
    await host.aclose()


async def test_a_call_with_no_turn_for_the_timeout_is_ended_idle() -> None:
    host = CallHostCore("h", config(idle_call_timeout_s=0.4))
    await host.start_call("quiet", "prior_auth", PATIENT)
    await host.start_call("talking", "prior_auth", PATIENT)
    for _ in range(6):
        await asyncio.sleep(0.1)
        await host.complete_turn("talking", CallerTurn(text="Hold on a second.", mode="text"))
    assert "talking" in host.calls
    deadline = time.monotonic() + 3
    while "quiet" in host.calls and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert "quiet" not in host.calls
    await host.aclose()


async def test_a_call_takes_a_bounded_number_of_turns() -> None:
    host = CallHostCore("h", config(max_turns_per_call=3))
    await host.start_call("c", "prior_auth", PATIENT)
    events = []
    for _ in range(5):
        events.append(await host.complete_turn("c", CallerTurn(text="Sorry, say again?", mode="text")))
    call = host.calls["c"]
    assert len(call.turns) == 3 and len(call.transcript) <= 2 * 3 + 2
    refused = events[-1][-1]
    assert isinstance(refused, TurnRefused) and refused.reason == "turn_limit"
    await host.aclose()


async def test_the_pool_tries_another_host_when_one_is_full(key_prefix: str) -> None:
    import ray

    pool = CallHostPool(2, replace(config(max_live_calls=1), key_prefix=key_prefix))
    try:
        await pool.start()
        first = await pool.start_call("prior_auth", PATIENT, None)
        second = await pool.start_call("prior_auth", PATIENT, None)
        third = await pool.start_call("prior_auth", PATIENT, None)
        assert isinstance(first, CallOpened) and isinstance(second, CallOpened)
        assert first.host != second.host
        assert isinstance(third, CallRefused) and third.reason == "host_full"
    finally:
        for name in pool._names:
            with contextlib.suppress(ValueError):
                ray.kill(ray.get_actor(name, namespace=NAMESPACE))
