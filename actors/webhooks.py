"""Delivers call records to client webhooks: signed, at least once, retried for a day, never lost.

A call's end writes its record and a delivery into the Redis outbox in one transaction
(``actors/store.py``). Every call host runs a ``WebhookSender`` over the shared outbox:

- **Signed** the Standard Webhooks way (https://www.standardwebhooks.com): headers
  ``webhook-id`` (the same on every retry: dedupe by it), ``webhook-timestamp`` (seconds, this
  attempt) and ``webhook-signature: v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`` with
  the key ``base64decode(secret without "whsec_")``. ``verify`` below is the receiver's side.
- **Checked** before every attempt (``actors/webhook_guard.py``): https, no userinfo, and the
  host resolved, every address public, the connection made to a checked address.
- **Retried** from a Redis sorted set of due times, with full-jitter exponential backoff
  (``uniform(0, min(max_delay, base * 2**n))``, at least 1 s) until ``retry_window_s`` (a day)
  has passed since the first attempt; then the delivery is a dead letter, listable and
  replayable (``python -m actors.webhooks_admin``). A 410 Gone or a URL that can never be
  allowed goes to the dead letters at once.
- **Concurrent**: deliveries run as tasks, at most ``concurrency`` at once and
  ``per_destination`` per scheme://host:port, so a slow receiver holds only its own slots.
- **Leased**: a claimed delivery is leased for ``lease_s``; if its host dies, any other sender
  takes it over when the lease runs out.
- **Never dies**: Redis errors at start or in the loop are logged and retried with backoff.

The payload is ``{"type": "call.ended", "timestamp": ISO-8601, "data": <call record>}``; with
``webhooks.redact_pii`` its pii call-data values read ``[redacted:<field>]`` (``actors/redact.py``).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import hashlib
import hmac
import json
import logging
import random
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import httpx

from actors.store import CallStore, record_delivery_id
from actors.webhook_guard import (
    DestinationPolicy,
    GuardedTransport,
    Resolver,
    UnsafeDestination,
    system_resolver,
)
from common.settings import WebhookSettings

log = logging.getLogger("voxray.webhooks")

SIGNATURE_VERSION = "v1"
DEFAULT_TOLERANCE_S = 300


# ---- signatures ------------------------------------------------------------------------------
def secret_key(secret: str) -> bytes:
    """The HMAC key of a ``whsec_<base64>`` secret."""
    return base64.b64decode(secret.removeprefix("whsec_"))


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value for one message."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return f"{SIGNATURE_VERSION},{base64.b64encode(digest).decode()}"


def signed_headers(secret: str, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, msg_id, timestamp, body),
        "content-type": "application/json",
    }


class InvalidSignature(ValueError):
    pass


def verify(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    now: float | None = None,
    tolerance_s: int = DEFAULT_TOLERANCE_S,
) -> None:
    """A receiver's check of a voxray webhook (raises InvalidSignature): the timestamp within
    ``tolerance_s`` of now (replays of old messages fail), and one of the space-separated
    ``v1,`` signatures equal, in constant time, to the HMAC of ``{id}.{timestamp}.{body}``."""
    lowered = {k.lower(): v for k, v in headers.items()}
    msg_id, stamp, signatures = (
        lowered.get(h, "") for h in ("webhook-id", "webhook-timestamp", "webhook-signature")
    )
    if not (msg_id and stamp and signatures):
        raise InvalidSignature("missing webhook-id, webhook-timestamp or webhook-signature")
    try:
        timestamp = int(stamp)
    except ValueError:
        raise InvalidSignature("webhook-timestamp is not an integer") from None
    if abs((time.time() if now is None else now) - timestamp) > tolerance_s:
        raise InvalidSignature("webhook-timestamp is too old or too new")
    expected = sign(secret, msg_id, timestamp, body)
    if not any(hmac.compare_digest(expected, s) for s in signatures.split(" ") if s.startswith("v1,")):
        raise InvalidSignature("no matching signature")


# ---- retries ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class RetryPolicy:
    base_delay_s: float = 5.0
    max_delay_s: float = 3 * 3600.0
    window_s: float = 24 * 3600.0
    min_delay_s: float = 1.0

    @classmethod
    def from_settings(cls, settings: WebhookSettings) -> RetryPolicy:
        return cls(settings.base_delay_s, settings.max_delay_s, settings.retry_window_s)

    def cap(self, attempts: int) -> float:
        """The backoff cap after ``attempts`` failed attempts (1, 2, …)."""
        return min(self.max_delay_s, self.base_delay_s * 2.0 ** min(attempts - 1, 60))

    def next_due(self, first_at: float, attempts: int, now: float, rng: random.Random) -> float | None:
        """When to try again after the ``attempts``-th failure, or None: the window is over
        (dead letter). The last retry lands on the window's end."""
        deadline = first_at + self.window_s
        if now >= deadline:
            return None
        delay = max(self.min_delay_s, rng.uniform(0.0, self.cap(attempts)))
        return min(now + delay, deadline)


# ---- deliveries ------------------------------------------------------------------------------
def record_payload(record: dict[str, Any], now: float | None = None) -> dict[str, Any]:
    stamp = dt.datetime.fromtimestamp(time.time() if now is None else now, dt.UTC)
    return {"type": "call.ended", "timestamp": stamp.isoformat(timespec="seconds"), "data": record}


def new_delivery(call_id: str, url: str, payload: dict[str, Any], destination: str) -> dict[str, Any]:
    """A new outbox entry for a call's record (the store writes it with the record)."""
    return {
        "id": record_delivery_id(call_id),
        "type": payload.get("type", "call.ended"),
        "call_id": call_id,
        "url": url,
        "dest": destination,
        "attempts": 0,
        "first_at": None,
        "last_error": None,
        "body": payload,
    }


def destination_of(url: str, policy: DestinationPolicy) -> str:
    """The per-destination key of a URL (``scheme://host:port``; a URL that fails the checks
    gets its own key and is dead-lettered when tried)."""
    try:
        return policy.check_url(url).destination
    except UnsafeDestination:
        return "refused"


@dataclass
class _Outcome:
    ok: bool
    error: str | None = None
    permanent: bool = False


class WebhookSender:
    def __init__(
        self,
        store: CallStore,
        worker: str,
        settings: WebhookSettings | None = None,
        resolver: Resolver = system_resolver,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.time,
    ):
        self.store = store
        self.settings = settings or WebhookSettings()
        self.worker = (
            f"{worker}:{uuid.uuid4().hex[:8]}"  # a replacement host with the same name is another holder
        )
        self.policy = DestinationPolicy(self.settings.allow)
        self.retry = RetryPolicy.from_settings(self.settings)
        self.rng = rng or random.Random()
        self.clock = clock
        self.delivered = 0
        self.failed_attempts = 0
        self.dead = 0
        self._busy: dict[str, int] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._secret: str | None = self.settings.secret
        self._client = httpx.AsyncClient(
            transport=GuardedTransport(self.policy, resolver, self.settings.timeout_s),
            timeout=self.settings.timeout_s,
            follow_redirects=False,
            trust_env=False,
        )

    @property
    def in_flight(self) -> int:
        return sum(self._busy.values())

    async def secret(self) -> str:
        if self._secret is None:
            self._secret = await self.store.webhook_secret()
        return self._secret

    async def deliver_due(self) -> int:
        """Claim what is due and fits the free slots, and start delivering it; returns how many
        deliveries were started (``drain`` waits for them)."""
        free = self.settings.concurrency - self.in_flight
        if free <= 0:
            return 0
        await self.secret()
        claimed = await self.store.claim_webhooks(
            self.worker, free, self.settings.lease_s, self.settings.per_destination, self._busy, self.clock()
        )
        for delivery_id, delivery in claimed:
            dest = str(delivery.get("dest", "")) if delivery else ""
            self._busy[dest] = self._busy.get(dest, 0) + 1
            task = asyncio.get_running_loop().create_task(self._run_one(delivery_id, delivery, dest))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return len(claimed)

    async def drain(self) -> None:
        """Wait for every delivery started so far."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def run_once(self) -> int:
        """One pass, waited for: how many were delivered in it (tests, the admin CLI)."""
        before = self.delivered
        await self.deliver_due()
        await self.drain()
        return self.delivered - before

    async def run(self, interval_s: float = 0.5, max_backoff_s: float = 30.0) -> None:
        """Deliver forever. Redis errors (at start or later) are retried with backoff; a
        finished delivery wakes the loop early to fill its slot."""
        backoff = interval_s
        while True:
            wait = interval_s
            try:
                await self.deliver_due()
                backoff = interval_s
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning(
                    "webhook outbox unavailable (%s); trying again in %.1f s", type(exc).__name__, backoff
                )
                wait, backoff = backoff, min(max_backoff_s, backoff * 2)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)

    async def _run_one(self, delivery_id: str, delivery: dict[str, Any] | None, dest: str) -> None:
        try:
            if delivery is None:  # expired with its record, or erased: nothing to send
                await self._finish(delivery_id, "done")
                return
            now = self.clock()
            if delivery.get("first_at") is None:
                delivery["first_at"] = now
            outcome = await self._attempt(delivery)
            if outcome.ok:
                self.delivered += 1
                log.debug("webhook %s delivered on attempt %d", delivery_id, delivery.get("attempts", 0) + 1)
                await self._finish(delivery_id, "done")
                return
            self.failed_attempts += 1
            delivery["attempts"] = int(delivery.get("attempts", 0)) + 1
            delivery["last_error"] = outcome.error
            now = self.clock()
            due = (
                None
                if outcome.permanent
                else self.retry.next_due(delivery["first_at"], delivery["attempts"], now, self.rng)
            )
            if due is None:
                self.dead += 1
                log.warning(
                    "webhook %s for call %s dead-lettered after %d attempts: %s",
                    delivery_id,
                    delivery.get("call_id"),
                    delivery["attempts"],
                    outcome.error,
                )
                await self._finish(delivery_id, "dead", delivery, now)
            else:
                log.info(
                    "webhook %s attempt %d failed (%s); next in %.0f s",
                    delivery_id,
                    delivery["attempts"],
                    outcome.error,
                    due - now,
                )
                await self._finish(delivery_id, "retry", delivery, due)
        except Exception:
            log.exception(
                "webhook %s: delivery task failed; its lease will run out and it is retried", delivery_id
            )
        finally:
            self._busy[dest] -= 1
            if not self._busy[dest]:
                del self._busy[dest]
            self._wake.set()

    async def _finish(
        self,
        delivery_id: str,
        action: Literal["done", "retry", "dead"],
        delivery: dict[str, Any] | None = None,
        at: float = 0.0,
    ) -> None:
        """Record the outcome; a Redis error is retried a few times, after which the lease runs
        out and the delivery is tried again (at least once, never lost)."""
        for attempt in range(4):
            try:
                if not await self.store.finish_webhook(self.worker, delivery_id, action, delivery, at):
                    log.info("webhook %s: lease lost to another sender", delivery_id)
                return
            except Exception as exc:
                if attempt == 3:
                    raise
                log.warning("webhook %s: outcome not stored yet (%s)", delivery_id, type(exc).__name__)
                await asyncio.sleep(0.2 * 2**attempt)

    async def _attempt(self, delivery: dict[str, Any]) -> _Outcome:
        try:
            self.policy.check_url(delivery["url"])
        except UnsafeDestination as exc:
            return _Outcome(False, f"refused: {exc.reason}", permanent=True)
        body = json.dumps(delivery["body"], separators=(",", ":")).encode()
        headers = signed_headers(await self.secret(), delivery["id"], int(self.clock()), body)
        try:
            async with asyncio.timeout(self.settings.timeout_s):
                response = await self._client.post(delivery["url"], content=body, headers=headers)
        except UnsafeDestination as exc:  # the name resolves to a refused address now
            return _Outcome(False, f"refused: {exc.reason}")
        except (httpx.HTTPError, TimeoutError, OSError) as exc:
            return _Outcome(False, type(exc).__name__)
        if 200 <= response.status_code < 300:
            return _Outcome(True)
        return _Outcome(False, f"HTTP {response.status_code}", permanent=response.status_code == 410)

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        with contextlib.suppress(Exception):
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        await self._client.aclose()
