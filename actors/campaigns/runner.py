"""The campaign dialler: one per cluster (it holds a Redis lease), resumable at any point.

Each tick it renews its lease, then per active campaign: settles the rows whose call ended (from
the call record), re-sends the start of a claimed row whose start never came back (same
Idempotency-Key, so the ingress answers with the call it already started, never a second one),
and claims due rows while pacing and lines allow. A claimed row is checked against the
do-not-call list and its calling hours before anything is dialled: outside hours it goes back
to the queue at the next window opening; on the list it is skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from actors.campaigns.hours import inside, next_opening, zones_for
from actors.campaigns.models import CampaignSpec, Outcome, Row, RowState
from actors.campaigns.outcomes import cost_of, result_of, retry_at
from actors.campaigns.pacing import spacing_s
from actors.campaigns.store import CampaignStore, Claim

log = logging.getLogger("voxray.campaigns")


@dataclass(frozen=True)
class Started:
    call_id: str


@dataclass(frozen=True)
class NotStarted:
    reason: str  # a short code, never row data
    transient: bool  # True: the same attempt is sent again later (same Idempotency-Key)


class Dialler(Protocol):
    """Starts one call the way ``POST /calls`` does; the key makes a re-send return the first."""

    async def start(
        self, spec: CampaignSpec, data: dict[str, Any], idempotency_key: str, api_key: str | None
    ) -> Started | NotStarted: ...


class Records(Protocol):
    async def load_record(self, call_id: str) -> dict[str, Any] | None: ...


# contact keys of a row (engine/do_not_call.py) → on the do-not-call list?
DoNotCall = Callable[[CampaignSpec, dict[str, Any]], Awaitable[bool]]


@dataclass
class RunnerConfig:
    lease_ttl_s: float = 10.0
    tick_s: float = 0.2
    resend_after_s: float = 2.0  # a transient start failure is re-sent after this
    start_unknown_after_s: float = 300.0  # a start still "in progress" at the ingress this long: unknown


def idempotency_key(campaign_id: str, row: int, attempt: int) -> str:
    return f"campaign:{campaign_id}:row:{row}:attempt:{attempt}"


class CampaignRunner:
    def __init__(
        self,
        store: CampaignStore,
        records: Records,
        dialler: Dialler,
        do_not_call: DoNotCall,
        config: RunnerConfig | None = None,
        runner_id: str | None = None,
        on_finished: Callable[[str, str | None], Awaitable[None]] | None = None,
    ):
        """``on_finished(campaign_id, runner key)``: revoke the key the campaign dialled with."""
        self.store = store
        self.records = records
        self.dialler = dialler
        self.do_not_call = do_not_call
        self.config = config or RunnerConfig()
        self.runner_id = runner_id or uuid.uuid4().hex
        self.on_finished = on_finished
        self.holding = False
        self._specs: dict[str, CampaignSpec] = {}
        self._starting: dict[tuple[str, int], asyncio.Task[None]] = {}
        self._resend_at: dict[tuple[str, int, int], float] = {}
        self._unknown_since: dict[tuple[str, int, int], float] = {}
        self._killed = False
        self.dialled = 0  # starts sent by this runner (re-sends of one attempt count once)

    # ---- the loop ---------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event | None = None) -> None:
        stop = stop or asyncio.Event()
        try:
            while not stop.is_set() and not self._killed:
                try:
                    self.holding = await self.store.hold_lease(self.runner_id, self.config.lease_ttl_s)
                    if self.holding:
                        await self.tick()
                except Exception as exc:  # Redis away for a moment: the next tick tries again
                    log.warning("campaign runner tick failed: %s", type(exc).__name__)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.config.tick_s)
        finally:
            if not self._killed:
                await self.drain()
                with contextlib.suppress(Exception):
                    await self.store.release_lease(self.runner_id)

    def kill(self) -> None:
        """Stop at once, as a crashed process would: in-flight starts dropped, the lease left
        to expire (fault drills and load scenarios)."""
        self._killed = True
        for task in list(self._starting.values()):
            task.cancel()

    async def drain(self) -> None:
        if self._starting:
            await asyncio.gather(*self._starting.values(), return_exceptions=True)

    async def tick(self) -> None:
        for campaign_id in await self.store.active():
            await self.step(campaign_id)

    async def _spec(self, campaign_id: str) -> CampaignSpec | None:
        spec = self._specs.get(campaign_id)
        if spec is None:
            spec = await self.store.spec(campaign_id)
            if spec is not None:
                self._specs[campaign_id] = spec
        return spec

    async def step(self, campaign_id: str) -> None:
        spec = await self._spec(campaign_id)
        if spec is None:
            return
        await self._settle_ended(spec)
        meta = await self.store.meta(campaign_id)
        status = meta.get("status", "running")
        spent = float(meta.get("spent_usd", "0"))
        over = spec.budget_usd is not None and spent >= spec.budget_usd
        if over and await self.store.set_status(campaign_id, ("running", "paused"), "budget_reached"):
            status = "budget_reached"
            log.info("campaign %s: budget reached, no more dials", campaign_id)
        in_flight = await self.store.dialling(campaign_id)
        if status == "running":
            await self._dial_due(spec, len(in_flight))
            in_flight = await self.store.dialling(campaign_id)
        mine = any(key[0] == campaign_id for key in self._starting)
        if in_flight or mine:
            return
        if status == "running" and await self.store.queued(campaign_id) == 0:
            await self.store.set_status(campaign_id, ("running",), "done")
            status = "done"
        if status in ("done", "cancelled", "budget_reached"):
            key = await self.store.finish(campaign_id)
            self._specs.pop(campaign_id, None)
            log.info("campaign %s finished: %s", campaign_id, status)
            if self.on_finished is not None:
                await self.on_finished(campaign_id, key)

    # ---- settling ---------------------------------------------------------------------------
    async def _settle_ended(self, spec: CampaignSpec) -> None:
        cid = spec.campaign_id
        for n in await self.store.dialling(cid):
            if (cid, n) in self._starting:
                continue
            row = await self.store.row(cid, n)
            if row is None or row.state != RowState.DIALLING:
                continue
            if row.call_id is None:
                if time.time() >= self._resend_at.get((cid, n, row.attempt), 0.0):
                    self._start(spec, n, row.attempt)  # resume: the same attempt, the same key
                continue
            record = await self.records.load_record(row.call_id)
            if record is not None:
                await self._settle_record(spec, n, row, record)

    async def _settle_record(self, spec: CampaignSpec, n: int, row: Row, record: dict[str, Any]) -> None:
        result = result_of(record)
        outcome = str(record.get("outcome") or result.value) if result == Outcome.COMPLETED else result.value
        note = {
            "call_id": row.call_id,
            "result": result.value,
            "end_reason": str(record.get("end_reason") or ""),
            "cost_usd": cost_of(record),
            "ended_at": record.get("ended_at"),
        }
        update = {"result": result, "outcome": outcome, "end_reason": note["end_reason"]}
        await self._after_attempt(spec, n, row, result, update, cost_of(record), note)

    async def _after_attempt(
        self,
        spec: CampaignSpec,
        n: int,
        row: Row,
        result: Outcome,
        update: dict[str, Any],
        cost: float,
        note: dict[str, Any],
    ) -> None:
        now = time.time()
        status = await self.store.status(spec.campaign_id)
        due = retry_at(spec.retries, result, row.attempt, now) if status in ("running", "paused") else None
        if due is not None:
            data = await self.store.row_data(spec.campaign_id, n) or {}
            due = next_opening(spec.hours, zones_for(data.get("to"), spec.default_timezone), due)
            new = row.model_copy(update={**update, "state": RowState.QUEUED, "due_at": due})
        else:
            final = (
                RowState.DONE if result in (Outcome.COMPLETED, Outcome.VOICEMAIL_LEFT) else RowState.FAILED
            )
            new = row.model_copy(update={**update, "state": final})
        await self.store.settle(spec.campaign_id, n, row.attempt, new, due, cost, note)

    # ---- claiming and starting --------------------------------------------------------------
    async def _dial_due(self, spec: CampaignSpec, in_flight: int) -> None:
        cid = spec.campaign_id
        gap = spacing_s(spec.pacing)
        for _ in range(max(0, spec.pacing.max_concurrent - in_flight)):
            claim = await self.store.claim(cid, spec.pacing.max_concurrent, gap, self.runner_id)
            if not isinstance(claim, Claim):
                return
            data = await self.store.row_data(cid, claim.row)
            row = await self.store.row(cid, claim.row)
            if data is None or row is None:
                continue
            if await self._held_back(spec, claim, row, data):
                continue
            self._start(spec, claim.row, claim.attempt)

    async def _held_back(self, spec: CampaignSpec, claim: Claim, row: Row, data: dict[str, Any]) -> bool:
        """Outside calling hours → back in the queue at the next opening; on the do-not-call
        list → skipped. Either way nothing is dialled and the attempt is not spent."""
        zones = zones_for(data.get("to"), spec.default_timezone)
        now = time.time()
        cid = spec.campaign_id
        if not inside(spec.hours, zones, now):
            opening = next_opening(spec.hours, zones, now)
            back = row.model_copy(
                update={
                    "state": RowState.QUEUED,
                    "attempt": claim.attempt - 1,
                    "due_at": opening,
                    "deferred": row.deferred + 1,
                }
            )
            await self.store.settle(cid, claim.row, claim.attempt, back, opening, undo_pacing=claim)
            return True
        if await self.do_not_call(spec, data):
            skipped = row.model_copy(
                update={
                    "state": RowState.SKIPPED,
                    "attempt": claim.attempt - 1,
                    "outcome": Outcome.DO_NOT_CALL.value,
                    "result": Outcome.DO_NOT_CALL,
                }
            )
            await self.store.settle(cid, claim.row, claim.attempt, skipped, undo_pacing=claim)
            return True
        return False

    def _start(self, spec: CampaignSpec, n: int, attempt: int) -> None:
        task = asyncio.get_running_loop().create_task(self._send(spec, n, attempt))
        self._starting[(spec.campaign_id, n)] = task
        task.add_done_callback(lambda _: self._starting.pop((spec.campaign_id, n), None))

    async def _send(self, spec: CampaignSpec, n: int, attempt: int) -> None:
        cid = spec.campaign_id
        slot = (cid, n, attempt)
        data = await self.store.row_data(cid, n)
        if data is None:
            return
        key = await self.store.runner_key(cid)
        first = slot not in self._resend_at
        try:
            answer = await self.dialler.start(spec, data, idempotency_key(cid, n, attempt), key)
        except Exception as exc:  # a bug or an odd reply: treated as a start that may come back
            answer = NotStarted(type(exc).__name__, transient=True)
        if first:
            self.dialled += 1
        now = time.time()
        if isinstance(answer, Started):
            self._resend_at.pop(slot, None)
            self._unknown_since.pop(slot, None)
            await self.store.started(cid, n, attempt, answer.call_id, {"started_at": now})
            return
        if answer.transient:
            self._resend_at[slot] = now + self.config.resend_after_s
            if answer.reason == "in_progress":
                since = self._unknown_since.setdefault(slot, now)
                if now - since >= self.config.start_unknown_after_s:
                    await self._give_up(spec, n, attempt)
            return
        self._resend_at.pop(slot, None)
        row = await self.store.row(cid, n)
        if row is None or row.state != RowState.DIALLING or row.attempt != attempt:
            return
        result = Outcome.DO_NOT_CALL if answer.reason == "do_not_call" else Outcome.FAILED
        note = {"call_id": None, "result": result.value, "error": answer.reason, "started_at": now}
        update = {"result": result, "outcome": result.value, "end_reason": answer.reason, "call_id": None}
        if result == Outcome.DO_NOT_CALL:
            skipped = row.model_copy(update={**update, "state": RowState.SKIPPED})
            await self.store.settle(cid, n, attempt, skipped, attempt_note=note)
            return
        await self._after_attempt(spec, n, row, result, update, 0.0, note)

    async def _give_up(self, spec: CampaignSpec, n: int, attempt: int) -> None:
        """The ingress still says this start is in progress: it may have dialled, so the row is
        never dialled again (an operator can read the attempt record)."""
        row = await self.store.row(spec.campaign_id, n)
        if row is None or row.state != RowState.DIALLING or row.attempt != attempt:
            return
        failed = row.model_copy(
            update={
                "state": RowState.FAILED,
                "result": Outcome.START_UNKNOWN,
                "outcome": Outcome.START_UNKNOWN.value,
            }
        )
        note = {"call_id": None, "result": Outcome.START_UNKNOWN.value, "error": "in_progress"}
        await self.store.settle(spec.campaign_id, n, attempt, failed, attempt_note=note)
