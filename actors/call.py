"""One live call: the engine's conversation, its transcript and turn records, and its reply source.

A ``Call`` is a plain object hosted (many at a time) by a ``CallHost`` Ray actor. It takes the
counterpart's words in and yields the agent's reply out, as typed events:

    turn(CallerTurn) → ReplyChunk, ReplyChunk, …, TurnDone

Phone calls and text mode run exactly this: speech-to-text before a turn and text-to-speech per
chunk happen at the edge that holds the media socket. The agent's line grows in the transcript
as chunks are released; when the caller talks over the agent, the edge says what was heard
(``interrupt``) and that line is cut to it — one path, whether the reply was still being
generated or had finished. The call state is snapshotted to Redis after every turn, fenced by
the call's generation so a host the call failed away from can no longer write.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from typing import Any, Literal

from actors import metrics
from actors.cost import CallCost, Rates
from actors.reply import ReplyPiece, ReplySourcer, script_pieces
from actors.store import CallStore
from actors.turn_log import TurnRecord, source_counts, stage_summary, turn_rows
from common import log_context, tracing
from common.events import (
    AnsweredBy,
    AnswerVerdict,
    CallerTurn,
    EndReason,
    ReplyChunk,
    ReplySource,
    TurnDone,
    TurnEvent,
    TurnRefused,
)
from engine.answer_flow import AnswerFlow, Step
from engine.backchannel import is_backchannel
from engine.conversation import Conversation, TurnPlan
from engine.hold import HoldFlow
from engine.menu import menu_hints
from engine.recording_policy import RecordingPolicy
from engine.stt_hints import stt_hints
from engine.transfer import transfer_note

log = logging.getLogger("voxray.call")

CallStatus = Literal["active", "completed", "ended"]


class Call:
    def __init__(
        self,
        conversation: Conversation,
        replies: ReplySourcer,
        store: CallStore | None,
        host: str,
        gen: int = 1,
        webhook_url: str | None = None,
        rates: Rates | None = None,
        tier_map: dict[str, str] | None = None,
        max_turns: int = 200,
    ):
        self.conversation = conversation
        self.replies = replies
        self.store = store
        self.host = host
        self.gen = gen
        self.webhook_url = webhook_url
        self.turns: list[TurnRecord] = []
        self.status: CallStatus = "active"
        self.superseded = False  # a newer generation of this call runs on another host
        self.closed = False  # its record is written: nothing more is saved for it
        self.created_at = time.time()
        self.last_activity = self.created_at  # the last turn's start (the host ends idle calls)
        self.max_turns = max_turns  # turn records and transcript stay bounded: later turns are refused
        self.cost = CallCost(rates or Rates())
        self.tier_map = tier_map or {}  # what "strong" and "premium" are on this deployment
        self.budget_stopped_at: int | None = None
        self.opening_lines: list[str] = []
        self.recording: RecordingPolicy | None = None  # set by the host before start(): consent first
        self.transfer_note: dict[str, Any] | None = None  # the record's ``transfer``
        self.recording_note: dict[str, Any] | None = None  # the record's ``recording`` (from the edge)
        self.answer_flow: AnswerFlow | None = None  # set by the host before start(): listen first
        self.answer_ended = False  # who answered ended the call (voicemail left, no answer, menu failed)
        self.twilio_answer: AnsweredBy | None = None  # Twilio's answering machine detection, if asked
        self.hold = HoldFlow(conversation.schema.spec.hold, conversation.state)  # being put on hold
        # The whole call's transcript (the conversation keeps only a window for the LLM); a call
        # resumed from a snapshot starts from that window.
        self.transcript: list[dict[str, str]] = [
            {"speaker": who, "text": text} for who, text in conversation.state.history
        ]
        self._lock = asyncio.Lock()
        self._stop_upto = -1  # turns up to this one stop releasing chunks (the caller cut in)
        self._agent_line_of: dict[int, int] = {}  # turn → index of its agent line in the transcript
        # OpenTelemetry call → turn → stage spans (common/tracing.py): None unless tracing is on
        self.trace = tracing.call_trace(self.call_id, conversation.schema.name, self.created_at)
        self._trace_id = self.trace.trace_id if self.trace is not None else None

    @property
    def call_id(self) -> str:
        return self.conversation.state.call_id

    # ---- the opening ---------------------------------------------------------------------
    def start(self) -> list[str]:
        """Decide the opening lines (turn 0) and keep them with the call (the host saves the
        first snapshot together with the call's route)."""
        self.opening_lines = list(self.conversation.opening().say)
        if self.recording is not None:
            self.opening_lines.insert(0, self.recording.consent)
        if self.opening_lines and self.answer_flow is None:  # listening first: said once a person answers
            self._say(0, " ".join(self.opening_lines))
        return self.opening_lines

    async def opening(self) -> AsyncIterator[TurnEvent]:
        """The opening lines as reply chunks, for the edge to speak when the media stream starts
        (or ``ListenFirst``: the edge first decides who answered and calls ``answered``)."""
        if self.answer_flow is not None and self.answer_flow.listening:
            yield self.answer_flow.listen_event(self.conversation.state.state)
            return
        static = self.conversation.schema.static_sentences
        for index, text in enumerate(script_pieces(self.opening_lines, static)):
            yield ReplyChunk(turn=0, index=index, text=text, source=ReplySource.SCRIPT)
        state = self.conversation.state.state
        agent = " ".join(self.opening_lines)
        yield TurnDone(
            turn=0, agent=agent, source=ReplySource.SCRIPT, state=state, stt_hints=self._stt_hints()
        )

    # ---- who answered (engine/answer_flow.py) ------------------------------------------------
    async def answered(self, verdict: AnswerVerdict) -> AsyncIterator[TurnEvent]:
        """The edge decided who answered (after ``ListenFirst``): the first words follow from it."""
        async with self._lock:
            if self.answer_flow is None or self.conversation.finished or self.answer_ended:
                return
            step = self.answer_flow.verdict(verdict, self.opening_lines, self.conversation.render())
            self.conversation.state.log("answered", answered_by=str(verdict.answered_by), by=verdict.by)
            async for event in self._play_step(step):
                yield event

    def _answer_step(self, text: str) -> Step | None:
        assert self.answer_flow is not None
        return self.answer_flow.heard(text, self.opening_lines, self.conversation.render())

    async def _play_step(self, step: Step, caller: str = "", mode: str = "audio") -> AsyncIterator[TurnEvent]:
        """A step of the answer flow as reply chunks; a step on a caller's utterance is a turn."""
        state = self.conversation.state.state
        if step.ignored:
            yield TurnDone(turn=len(self.turns), caller=caller, state=state, ignored=True)
            return
        record = None
        if caller:
            record = TurnRecord(len(self.turns) + 1, mode, state, state, source=ReplySource.SCRIPT)
        turn = record.turn if record is not None else 0
        if record is not None:
            record.caller = caller
            self.transcript.append({"speaker": "caller", "text": caller})
        static = self.conversation.schema.static_sentences
        index = 0
        for text, keys in step.chunks:
            self._say(turn, text)
            pieces = [text] if keys else script_pieces([text], static)
            for piece in pieces:
                yield ReplyChunk(turn=turn, index=index, text=piece, source=ReplySource.SCRIPT, keys=keys)
                index += 1
        if step.terminal:
            self.answer_ended = True
            self.status = "completed"
            self.conversation.state.outcome = step.outcome
            self.conversation.state.log("end", outcome=step.outcome)
        line = self._agent_line_of.get(turn)
        agent = self.transcript[line]["text"] if line is not None and step.chunks else ""
        if record is not None:
            record.agent = agent
            self.turns.append(record)
        await self.snapshot()
        yield TurnDone(
            turn=turn,
            caller=caller,
            agent=agent,
            source=ReplySource.SCRIPT,
            state=state,
            terminal=step.terminal,
            outcome=step.outcome,
            stt_hints="" if step.terminal else self._stt_hints(),
        )

    # ---- a turn --------------------------------------------------------------------------
    async def turn(self, caller: CallerTurn) -> AsyncIterator[TurnEvent]:
        async with self._lock:
            if self.conversation.finished or self.answer_ended or self.hold.timed_out:
                yield TurnRefused(
                    message=f"call {self.call_id} has ended in state {self.conversation.state.state!r}"
                )
                return
            if len(self.turns) >= self.max_turns:
                limit = f"call {self.call_id} reached its limit of {self.max_turns} turns"
                yield TurnRefused(reason="turn_limit", message=limit)
                return
            self.last_activity = time.time()
            log_context.bind(self.call_id, self._trace_id)  # on this turn's log records
            t0 = time.perf_counter()
            text = caller.text.strip()
            state = self.conversation.state.state
            if caller.over_agent and is_backchannel(text):
                yield TurnDone(turn=len(self.turns), caller=text, state=state, ignored=True)
                return
            if self.hold.silent(caller.heard_nothing or not text):  # on hold: nothing heard, nothing said
                yield self._hold_done(TurnDone(turn=len(self.turns), caller=text, state=state))
                return
            step = None
            if self.answer_flow is not None and not caller.heard_nothing:
                step = self._answer_step(text)
            if step is not None:  # still finding a person (after a screener, through a menu)
                async for event in self._play_step(step, text, caller.mode):
                    yield event
                return
            record = TurnRecord(len(self.turns) + 1, caller.mode, state, state)
            if caller.stt_ms is not None:
                record.stages_ms["stt"] = caller.stt_ms
            llm_tier, voice = self.tiers()
            pieces, plan = await self._plan(caller, text, record, llm_tier)
            finished = False
            try:
                index = 0
                async with aclosing(pieces) as stream:
                    async for piece in stream:
                        if record.turn <= self._stop_upto:
                            break  # closing the stream closes the LLM request: no tokens after barge-in
                        self._say(record.turn, piece.text)
                        yield ReplyChunk(
                            turn=record.turn, index=index, text=piece.text, source=piece.source, voice=voice
                        )
                        index += 1
                record.stages_ms["turn_total"] = (time.perf_counter() - t0) * 1000
                finished = True
            finally:
                self._finish(record, plan, interrupted=not finished or record.turn <= self._stop_upto)
                if not finished:  # the consumer went away mid-reply (barge-in): save without waiting
                    self._snapshot_soon()
            await self.snapshot()
            if plan.terminal and self.conversation.do_not_call:
                await self._put_on_do_not_call()
            done = record.done(plan.terminal, plan.outcome)
            if plan.transfer is not None:
                done.transfer = plan.transfer
                self.transfer_note = transfer_note(plan.transfer, record.turn)
            done.stt_hints = "" if plan.terminal else self._stt_hints()
            self._hold_done(done)
            yield done

    async def _plan(
        self, caller: CallerTurn, text: str, record: TurnRecord, llm_tier: str | None
    ) -> tuple[AsyncGenerator[ReplyPiece, None], TurnPlan]:
        convo = self.conversation
        if caller.heard_nothing or not text:
            line = convo.schema.fallbacks["stt_failure"].render(convo.render())
            record.source = ReplySource.FALLBACK
            plan = TurnPlan(state=convo.state.state, previous_state=convo.state.state)
            return _fixed([line], ReplySource.FALLBACK), plan
        plan = await convo.take_turn(text, keys=caller.keys if caller.mode == "keypad" else "")
        self.hold.shape(convo, plan, text)  # engine/hold.py: start, keep quiet or end a hold
        record.caller = text
        self.transcript.append({"speaker": "caller", "text": text})
        record.stages_ms["nlu"] = plan.timings_ms.get("nlu_ms", 0.0) + plan.timings_ms.get(
            "transition_ms", 0.0
        )
        if plan.nlu is not None and "embed_ms" in plan.nlu.timings_ms:
            record.stages_ms["embed"] = plan.nlu.timings_ms["embed_ms"]  # part of "nlu"
        return self.replies.pieces(convo, plan, text, record, llm_tier), plan

    def _stt_hints(self) -> str:
        convo = self.conversation
        menu = convo.schema.spec.menu
        if menu is not None and self.answer_flow is not None and self.answer_flow.awaiting == AnsweredBy.MENU:
            return menu_hints(menu)  # a phone menu is talking, not the rep the state expects
        return stt_hints(convo.schema, convo.state.state, convo.state.call_data)

    def _finish(self, record: TurnRecord, plan: TurnPlan, interrupted: bool) -> None:
        record.state_after = self.conversation.state.state
        record.interrupted = interrupted
        if not interrupted:
            self.replies.commit_store(record)
        line = self._agent_line_of.get(record.turn)
        record.agent = self.transcript[line]["text"] if line is not None else ""
        if record.llm.get("provider"):
            usage = record.llm.get("usage") or {}
            self.cost.add_llm(
                str(record.llm["provider"]),
                int(usage.get("input_tokens", 0)),
                int(usage.get("cached_input_tokens", 0)),
                int(usage.get("output_tokens", 0)),
                float(record.llm.get("cost_usd") or 0.0),
            )
        self.turns.append(record)
        if self.trace is not None:
            self.trace.turn_finished(record)  # a media turn's spans wait for the edge's stages
        metrics.turn_observed(
            self.conversation.schema.name, record.mode, str(record.source), record.stages_ms
        )
        if plan.terminal:
            self.status = "completed"

    # ---- the agent's lines -----------------------------------------------------------------
    def _say(self, turn: int, text: str) -> None:
        """Add ``text`` to ``turn``'s agent line (opening it on the turn's first chunk)."""
        line = self._agent_line_of.get(turn)
        if line is None:
            self._agent_line_of[turn] = len(self.transcript)
            self.transcript.append({"speaker": "agent", "text": text})
            self.conversation.record_agent(text)
            return
        self._replace_line(line, f"{self.transcript[line]['text']} {text}")

    def _replace_line(self, line: int, text: str) -> None:
        old = self.transcript[line]["text"]
        self.transcript[line]["text"] = text
        history = self.conversation.state.history
        for i in range(len(history) - 1, -1, -1):
            if history[i] == ("agent", old):
                history[i] = ("agent", text)
                break
        if self.conversation.state.last_agent_line == old:
            self.conversation.state.last_agent_line = text
        for record in reversed(self.turns):
            if self._agent_line_of.get(record.turn) == line:
                record.agent = text
                break

    async def interrupt(self, turn: int, heard_text: str) -> None:
        """The caller cut in while ``turn``'s reply played: stop releasing it, and keep only the
        part the caller heard as the agent's line."""
        self._stop_upto = max(self._stop_upto, turn)
        line = self._agent_line_of.get(turn)
        if line is not None:
            self._replace_line(line, heard_text)
        for record in reversed(self.turns):
            if record.turn == turn:
                record.interrupted = True
                break
        self.conversation.state.log("barge_in", turn=turn)
        if not self._lock.locked():  # a running turn saves its snapshot when it ends
            await self.snapshot()

    def tiers(self) -> tuple[str | None, str]:
        """The LLM tier (None: the router decides) and the voice tier for the next reply: the
        schema's escalation tiers once its rule held, until the call's cost reaches the budget."""
        rule = self.conversation.schema.spec.escalation
        at = self.conversation.state.escalated_at
        if rule is None or at is None:
            return None, "standard"
        if self.cost.over_budget():
            if self.budget_stopped_at is None:
                self.budget_stopped_at = len(self.turns)
                log.info("call %s: budget reached; escalation stops", self.call_id)
            return None, "standard"
        return rule.llm_tier, rule.tts_tier

    def escalation_view(self) -> dict[str, Any] | None:
        rule = self.conversation.schema.spec.escalation
        at = self.conversation.state.escalated_at
        if rule is None or at is None:
            return None
        return {
            "at_turn": at,
            "llm_tier": rule.llm_tier,
            "tts_tier": rule.tts_tier,
            "stopped_by_budget_at_turn": self.budget_stopped_at,
            "tiers_here": dict(self.tier_map),  # e.g. strong → which providers, premium → which voice
        }

    def note_stages(self, turn: int, stages: dict[str, float], usage: dict[str, float] | None = None) -> None:
        """Stages the edge measured for a turn (stt, tts_first_audio, voice_to_voice), and what
        it used (``stt_audio_s``, ``tts_chars``, ``tts_premium_chars``)."""
        if usage:
            self.cost.add_media(usage.get("stt_audio_s", 0.0), int(usage.get("tts_chars", 0)))
            self.cost.add_media(tts_chars=int(usage.get("tts_premium_chars", 0)), premium=True)
        for record in reversed(self.turns):
            if record.turn == turn:
                record.stages_ms.update(stages)
                if self.trace is not None:
                    self.trace.stages_noted(turn)
                return

    # ---- on hold (engine/hold.py) -------------------------------------------------------------
    def _hold_done(self, done: TurnDone) -> TurnDone:
        """Tell the edge the call is on hold (it listens cheaply and runs the hold timer)."""
        done.hold, done.hold_timeout_s = self.hold.on_hold, self.hold.timeout_s
        if done.hold and not done.stt_hints:
            done.stt_hints = self._stt_hints()
        return done

    async def hold_timeout(self) -> TurnDone | None:
        """The edge's hold timer ran out: the call ends with the schema's hold outcome
        (``callback_needed``). None when the call is no longer on hold."""
        async with self._lock:
            if not self.hold.on_hold or self.conversation.finished:
                return None
            outcome = self.hold.time_out()
            self.status = "completed"
            await self.snapshot()
            state = self.conversation.state.state
            return TurnDone(turn=len(self.turns), state=state, terminal=True, outcome=outcome)

    def note_transfer(self, status: str, error: str | None = None) -> None:
        """What became of the transfer the edge was asked for (``done`` or ``failed``)."""
        if self.transfer_note is not None:
            self.transfer_note = {**self.transfer_note, "status": status, "error": error}

    def note_recording(self, location: dict[str, Any]) -> None:
        """Where the edge wrote the call's recording (uri, channels, duration_s, expires_at)."""
        self.recording_note = dict(location)

    # ---- persistence ---------------------------------------------------------------------
    async def snapshot(self) -> None:
        if self.store is None or self.closed:
            return
        try:
            written = await self.store.save_snapshot(
                self.call_id, self.gen, self.conversation.state.to_snapshot()
            )
        except Exception as exc:  # a Redis blip costs recoverability of this turn, not the call
            log.warning("call %s: snapshot failed: %s", self.call_id, type(exc).__name__)
            return
        if not written:
            log.warning("call %s: generation %d on %s was superseded", self.call_id, self.gen, self.host)
            self.superseded = True

    async def _put_on_do_not_call(self) -> None:
        """At once, not at hang-up: a campaign must not dial this contact again meanwhile. (The
        end of the call writes the entries again, with its record.)"""
        if self.store is None:
            return
        try:
            await self.store.add_do_not_call(self.conversation.state.contact_keys, self.call_id)
        except Exception as exc:
            log.warning("call %s: do-not-call entry not written yet: %s", self.call_id, type(exc).__name__)

    def _snapshot_soon(self) -> None:
        task = asyncio.get_running_loop().create_task(self.snapshot())
        _pending.add(task)
        task.add_done_callback(_pending.discard)

    # ---- reports -------------------------------------------------------------------------
    def status_view(self) -> dict[str, Any]:
        state = self.conversation.state
        return {
            "call_id": self.call_id,
            "schema": state.schema,
            "status": self.status,
            "state": state.state,
            "outcome": state.outcome,
            "slots": dict(state.slots),
            "transcript": [dict(line) for line in self.transcript],
            "turns": len(self.turns),
            "host": self.host,
        }

    def performance_report(self) -> dict[str, Any]:
        state = self.conversation.state
        return {
            "call_id": self.call_id,
            "turns": turn_rows(self.turns),
            "stages": stage_summary(self.turns),
            "sources": source_counts(self.turns),
            "nlu": {"reconciles": state.reconciles, "llm_assisted_turns": state.llm_nlu_turns},
            "cost_usd": round(self.cost.total_usd, 6),
            "cost": self.cost.breakdown(),
            "escalation": self.escalation_view(),
            "duration_s": round(time.time() - self.created_at, 3),
        }

    def call_record(self, reason: EndReason, note: str | None = None) -> dict[str, Any]:
        status = self.status_view()
        if status["status"] == "active":
            status["status"] = "ended"
        if any(t.mode == "audio" for t in self.turns):  # a phone (media) call: its minutes count
            self.cost.phone_s = time.time() - self.created_at
        if self.trace is not None:
            self.trace.end(str(reason))
        return {
            **status,
            "end_reason": str(reason),
            "end_note": note,
            "do_not_call": self.conversation.do_not_call,
            "transfer": self.transfer_note,
            "answered": self.answer_flow.note if self.answer_flow is not None else None,
            "recording": self.recording_note,
            "call_data_fields": sorted(self.conversation.state.call_data),
            "performance": self.performance_report(),
            "ended_at": time.time(),
        }


_pending: set[asyncio.Task[None]] = set()


async def _fixed(lines: list[str], source: ReplySource) -> AsyncGenerator[ReplyPiece, None]:
    for line in lines:
        yield ReplyPiece(line, source)
