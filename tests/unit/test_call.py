"""The call: one turn path for text and phone, the opening, interruption, fallbacks, records.

Services are scripted stand-ins (``common/testing/services.py``); no Ray, Redis or models.
"""

from __future__ import annotations

import asyncio
from contextlib import aclosing
from pathlib import Path

import pytest

from actors.call import Call
from actors.reply import ReplyPolicy, ReplySourcer
from common.events import CallerTurn, EndReason, ReplyChunk, ReplySource, TurnDone, TurnRefused
from common.testing.samples import SAMPLE_CALL_DATA
from common.testing.services import ScriptedCache, ScriptedLLM
from engine.conversation import Conversation
from engine.schema_loader import SchemaRegistry

ROOT = Path(__file__).resolve().parents[2]
SLOW = " ".join(["Well, the weather here has been grey all week."] * 6)


def make_call(llm: ScriptedLLM | None = None) -> Call:
    registry = SchemaRegistry.shared(ROOT / "schemas")
    conversation = Conversation.start(registry.get("prior_auth"), "call-1", SAMPLE_CALL_DATA["prior_auth"])
    replies = ReplySourcer(ScriptedCache(), llm or ScriptedLLM(), ReplyPolicy(filler_after_s=5.0))
    return Call(conversation, replies, None, "test-host")


async def say(call: Call, text: str, **kw: object) -> list[ReplyChunk | TurnDone | TurnRefused]:
    return [e async for e in call.turn(CallerTurn(text=text, **kw))]  # type: ignore[arg-type]


def agent_lines(call: Call) -> list[str]:
    return [line["text"] for line in call.transcript if line["speaker"] == "agent"]


async def test_opening_is_turn_zero_and_streams_as_chunks() -> None:
    call = make_call()
    opening = call.start()
    assert opening[0].startswith("Hi, this is Alex")
    events = [e async for e in call.opening()]
    chunks = [e for e in events if isinstance(e, ReplyChunk)]
    assert {c.turn for c in chunks} == {0} and " ".join(c.text for c in chunks) == " ".join(opening)
    assert isinstance(events[-1], TurnDone) and events[-1].turn == 0
    assert agent_lines(call) == [" ".join(opening)]


async def test_a_turn_releases_chunks_then_done_and_records_them() -> None:
    call = make_call()
    call.start()
    events = await say(call, "This is Sarah, how can I help?")
    done = events[-1]
    assert isinstance(done, TurnDone) and done.turn == 1 and done.state == "verify_member"
    text = " ".join(e.text for e in events if isinstance(e, ReplyChunk))
    assert done.agent == text == agent_lines(call)[-1] and done.source == ReplySource.SCRIPT
    assert call.status_view()["slots"] == {"rep_name": "Sarah"}
    assert call.performance_report()["turns"][0]["stages_ms"]["nlu"] >= 0


async def test_interrupt_after_the_reply_keeps_only_what_was_heard() -> None:
    call = make_call()
    call.start()
    await say(call, "This is Sarah.")
    full = agent_lines(call)[-1]
    await call.interrupt(1, "Thanks.")
    assert agent_lines(call)[-1] == "Thanks." != full
    assert call.conversation.state.last_agent_line == "Thanks."
    assert ("agent", "Thanks.") in call.conversation.state.history
    assert call.turns[-1].agent == "Thanks." and call.turns[-1].interrupted


async def test_interrupt_while_generating_stops_the_reply_and_closes_the_llm() -> None:
    llm = ScriptedLLM(SLOW, seconds_per_token=0.02)
    call = make_call(llm)
    call.start()
    await say(call, "This is Sarah.")
    seen: list[ReplyChunk | TurnDone | TurnRefused] = []
    async with aclosing(call.turn(CallerTurn(text="Do you like the weather where you are?"))) as events:
        async for event in events:
            seen.append(event)
            if isinstance(event, ReplyChunk) and len(seen) == 1:
                await call.interrupt(event.turn, "")  # nothing of it was heard
    done = seen[-1]
    assert isinstance(done, TurnDone) and done.interrupted
    assert llm.closed_early and llm.tokens_sent < len(SLOW.split())
    assert agent_lines(call)[-1] == "" and call.turns[-1].agent == ""


async def test_a_consumer_that_goes_away_ends_the_turn_as_interrupted() -> None:
    llm = ScriptedLLM(SLOW, seconds_per_token=0.02)
    call = make_call(llm)
    call.start()
    await say(call, "This is Sarah.")
    async with aclosing(call.turn(CallerTurn(text="How's the weather over there?"))) as events:
        async for _ in events:
            break  # the edge cancelled the turn (barge-in, hang-up)
    assert call.turns[-1].interrupted and llm.closed_early
    follow = await say(call, "Okay, I found the member.")  # the lock was released
    assert isinstance(follow[-1], TurnDone) and follow[-1].state == "ask_status"


async def test_backchannel_over_the_agent_is_no_turn() -> None:
    call = make_call()
    call.start()
    events = await say(call, "Mhm.", mode="audio", over_agent=True)
    assert len(events) == 1 and isinstance(events[0], TurnDone) and events[0].ignored
    assert call.turns == [] and len(call.transcript) == 1
    real = await say(call, "No.", mode="audio", over_agent=True)  # a short real answer is a turn
    assert isinstance(real[-1], TurnDone) and not real[-1].ignored and len(call.turns) == 1


async def test_nothing_heard_asks_to_repeat_with_the_schema_line() -> None:
    call = make_call()
    call.start()
    events = await say(call, "", mode="audio", heard_nothing=True, stt_ms=512.0)
    done = events[-1]
    assert isinstance(done, TurnDone) and done.source == ReplySource.FALLBACK
    line = call.conversation.schema.fallbacks["stt_failure"].render(call.conversation.render())
    assert done.agent == line and done.stages_ms["stt"] == 512.0
    assert call.conversation.state.state == "greeting"  # the conversation did not move


async def test_edge_stages_are_noted_on_the_turn() -> None:
    call = make_call()
    call.start()
    await say(call, "This is Sarah.", mode="audio", stt_ms=300.0)
    call.note_stages(1, {"tts_first_audio": 80.0, "voice_to_voice": 900.0})
    stages = call.performance_report()["stages"]
    assert stages["voice_to_voice"]["p50_ms"] == 900.0 and stages["stt"]["p50_ms"] == 300.0


async def test_a_finished_call_refuses_turns_and_its_record_names_the_end() -> None:
    call = make_call()
    call.start()
    lines = [
        "This is Sarah.",
        "Okay, I found the member.",
        "It's approved.",
        "The reference number is A1234567.",
        "No date yet.",
        "Yes, that's correct.",
    ]
    for line in lines:
        done = (await say(call, line))[-1]
    assert isinstance(done, TurnDone) and done.terminal and done.outcome == "status_captured"
    refused = await say(call, "Anything else?")
    assert len(refused) == 1 and isinstance(refused[0], TurnRefused)
    record = call.call_record(EndReason.COMPLETED)
    assert record["end_reason"] == "completed" and record["status"] == "completed"
    assert len(record["transcript"]) == 1 + 2 * len(lines)


@pytest.mark.parametrize("heard", ["", "Thanks."])
async def test_interrupt_of_an_unknown_turn_changes_nothing(heard: str) -> None:
    call = make_call()
    call.start()
    await say(call, "This is Sarah.")
    before = [dict(line) for line in call.transcript]
    await call.interrupt(7, heard)
    assert call.transcript == before
    await asyncio.sleep(0)


class BrokenStore:
    """A state store whose Redis is down."""

    async def save_snapshot(self, call_id: str, gen: int, blob: bytes) -> bool:
        raise ConnectionError("Redis is down")


async def test_redis_down_costs_the_snapshot_not_the_turn() -> None:
    call = make_call()
    call.store = BrokenStore()  # type: ignore[assignment]
    call.start()
    done = (await say(call, "This is Sarah."))[-1]
    assert isinstance(done, TurnDone) and done.state == "verify_member" and not call.superseded


# ---- cost and escalation -------------------------------------------------------------------


def test_call_cost_by_component() -> None:
    from actors.cost import CallCost, Rates

    cost = CallCost(
        Rates(phone_usd_per_min=0.02, stt_usd_per_min=0.006, tts_usd_per_1k_chars=0.015, budget_usd=1.0)
    )
    cost.add_media(stt_s=90.0, tts_chars=2000)
    cost.add_llm("anthropic", prompt=1000, cached=800, completion=50, usd=0.0012)
    cost.phone_s = 61.0  # billed as two started minutes
    usd = cost.components()
    assert usd == pytest.approx({"phone": 0.04, "stt": 0.009, "tts": 0.03, "llm": 0.0012})
    assert cost.breakdown()["llm_tokens"] == {"anthropic": {"prompt": 1000, "cached": 800, "completion": 50}}
    assert not cost.over_budget()


async def _qualified_call(budget_usd: float) -> tuple[Call, ScriptedLLM]:
    from actors.cost import Rates

    schema = SchemaRegistry.shared(ROOT / "schemas").get("sales_qualification")
    convo = Conversation.start(schema, "esc", {"lead_name": "Tom Baker", "company": "Acme"})
    llm = ScriptedLLM("Happy to explain that on the call.")
    call = Call(convo, ReplySourcer(ScriptedCache(), llm), None, "h", rates=Rates(budget_usd=budget_usd),
                tier_map={"llm_strong": "local (no strong provider: same as fast)"})  # fmt: skip
    call.start()
    for line in ["Sure.", "Our agents are overbooked.", "About fifty thousand dollars.", "This quarter.",
                 "I make the call.", "Does it work with our phone system?"]:  # fmt: skip
        [_ async for _ in call.turn(CallerTurn(text=line))]
    return call, llm


async def test_a_qualified_lead_escalates_the_rest_of_the_call() -> None:
    call, llm = await _qualified_call(budget_usd=1.0)
    assert call.conversation.state.escalated_at == 5  # the turn the score passed 70
    assert llm.requests[-1].tier == "strong"  # the off-script question asked the strong tier
    assert call.tiers() == ("strong", "premium")
    record = call.call_record(EndReason.HANGUP)
    assert record["performance"]["escalation"]["tiers_here"]["llm_strong"].startswith("local")
    assert record["performance"]["cost"]["budget_usd"] == 1.0


async def test_the_budget_stops_escalation() -> None:
    call, llm = await _qualified_call(budget_usd=0.0)
    assert call.conversation.state.escalated_at is not None
    assert llm.requests[-1].tier is None and call.tiers() == (None, "standard")
    assert call.escalation_view()["stopped_by_budget_at_turn"] is not None
