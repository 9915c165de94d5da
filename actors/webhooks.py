"""Delivers call records to client webhooks: at least once, retried with backoff, never lost.

Deliveries live in the Redis outbox until a POST answers 2xx; a failing webhook keeps them
there (with attempts and the next try time) up to ``max_attempts``, after which they stay
in the call record and a dead-letter list for inspection.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import httpx

from actors.store import CallStore

log = logging.getLogger("voxray.webhooks")


class WebhookSender:
    def __init__(self, store: CallStore, worker: str, max_attempts: int = 8, base_delay_s: float = 1.0):
        self.store = store
        self.worker = worker
        self.max_attempts = max_attempts
        self.base_delay_s = base_delay_s
        self.delivered = 0
        self.failed_attempts = 0
        self._client = httpx.AsyncClient(timeout=5.0)

    @staticmethod
    def delivery(call_id: str, url: str, record: dict[str, Any]) -> dict[str, Any]:
        """A new outbox entry for a call's record (the store writes it with the record)."""
        return {
            "id": f"{call_id}:record",
            "call_id": call_id,
            "url": url,
            "attempts": 0,
            "next_at": 0.0,
            "body": record,
        }

    async def deliver_due(self, limit: int = 50) -> int:
        """One pass over the outbox; returns how many were delivered."""
        delivered = 0
        for _ in range(limit):
            claimed = await self.store.claim_webhook(self.worker)
            if claimed is None:
                break
            raw, delivery = claimed
            if delivery["next_at"] > time.time():
                await self.store.finish_webhook(self.worker, raw, retry=delivery)
                continue
            if await self._post(delivery):
                await self.store.finish_webhook(self.worker, raw)
                delivered += 1
                continue
            delivery["attempts"] += 1
            self.failed_attempts += 1
            if delivery["attempts"] >= self.max_attempts:
                await self.store.finish_webhook(self.worker, raw, dead=True)
                log.warning(
                    "webhook for call %s gave up after %d attempts", delivery["call_id"], delivery["attempts"]
                )
            else:
                delivery["next_at"] = time.time() + self.base_delay_s * 2 ** (delivery["attempts"] - 1)
                await self.store.finish_webhook(self.worker, raw, retry=delivery)
        self.delivered += delivered
        return delivered

    async def _post(self, delivery: dict[str, Any]) -> bool:
        try:
            response = await self._client.post(
                delivery["url"], json=delivery["body"], headers={"Idempotency-Key": delivery["id"]}
            )
        except httpx.HTTPError as exc:
            log.info("webhook for call %s failed: %s", delivery["call_id"], type(exc).__name__)
            return False
        return 200 <= response.status_code < 300

    async def run(self, interval_s: float = 0.5) -> None:
        await self.store.requeue_inflight(self.worker)
        while True:
            try:
                await self.deliver_due()
            except Exception:  # a Redis blip must not kill the loop
                log.exception("webhook pass failed")
            await asyncio.sleep(interval_s)

    async def aclose(self) -> None:
        await self._client.aclose()
