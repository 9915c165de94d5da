"""The call hosts as one pool: places new calls, routes by call id through the Redis call
directory, and fails calls over when their host dies.

Any ingress replica can serve any call: a call's host is read from the directory
(``actors/store.py``) on a local miss, and the local copy is only a cache. Hosts are named,
detached actors in the ``voxray`` namespace, so every replica finds the same hosts.

Failover: a transient ``ActorUnavailableError`` is retried before a host counts as dead. When a
host is dead, the call's route is moved to a live host with a compare-and-set on its generation
(so of several replicas that see the same dead host, exactly one moves the call), and the new
host resumes it from its snapshot (``resume_call`` is idempotent, so the others simply wait on
it). A route records the id of the host actor it was written for: a replica that reaches the new
host before the mover's resume does has that host resume the call in place, while a replacement
under a dead host's name (another actor) never had the call, which then moves on from it. A dead
host's name gets a replacement through ``get_if_exists``: a replica never kills an actor, so it
never kills a replacement another replica just started.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import logging
import secrets
import time
import uuid
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Any, Literal

import ray
from ray.exceptions import ActorUnavailableError, RayActorError

from actors.call_host import CallHost, CallNotFound, HostConfig
from actors.store import CallStore, Route, StreamClaim
from actors.webhook_guard import DestinationPolicy, Resolver, check_destination, system_resolver
from common.events import CallOpened, CallRefused, EndReason, HostLoad

log = logging.getLogger("voxray.pool")
NAMESPACE = "voxray"
HOST_GONE = (RayActorError,)  # ActorDiedError and ActorUnavailableError are both RayActorErrors
TRANSIENT_RETRIES = 3
TRANSIENT_BACKOFF_S = 0.2
MAX_RECOVERIES = 6
LOADS_MAX_AGE_S = 1.0
Claim = StreamClaim | Literal["bad"]


# A stream token is ``{nonce}.{mac}``, the mac an HMAC of the call id and the nonce: any replica
# checks one without storing it, every TwiML fetch (and POST /calls) mints a fresh one, and the
# directory remembers which nonces were used (``CallStore.claim_stream``): each is good once.
def _token_mac(secret: bytes, call_id: str, nonce: str) -> str:
    digest = hmac.new(secret, f"{call_id}.{nonce}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:24]).decode()


def mint_stream_token(secret: bytes, call_id: str) -> str:
    nonce = secrets.token_urlsafe(12)
    return f"{nonce}.{_token_mac(secret, call_id, nonce)}"


def stream_token_nonce(secret: bytes, call_id: str, token: str) -> str | None:
    """The nonce of a token minted with ``secret`` for this call, else None (constant time)."""
    nonce, dot, mac = token.partition(".")
    if not (dot and nonce and secret):
        return None
    expected = _token_mac(secret, call_id, nonce)
    return nonce if hmac.compare_digest(expected.encode(), mac.encode()) else None


def _actor_id(handle: Any) -> str:
    """The id of the actor behind a handle: a replacement under the same name has another."""
    return str(handle._actor_id.hex())


class HostTimeout(TimeoutError):
    """A call host did not answer in time (the ingress answers 504; the request may still run)."""


@dataclass(frozen=True)
class HostTimeouts:
    """How long the ingress waits on a call host: ``call_s`` for a request (start, status,
    hang-up, resume…), ``turn_s`` for a whole text turn and for each item of a streamed one."""

    call_s: float = 10.0
    turn_s: float = 60.0

    def for_method(self, method: str) -> float:
        return self.turn_s if method in TURN_METHODS else self.call_s


TURN_METHODS = frozenset({"turn", "complete_turn", "opening"})


async def _within(awaitable: Any, timeout_s: float, what: str) -> Any:
    try:
        return await asyncio.wait_for(awaitable, timeout_s)
    except TimeoutError:
        raise HostTimeout(f"call host did not answer {what} within {timeout_s:g} s") from None


class CallHostPool:
    def __init__(
        self,
        size: int,
        config: HostConfig,
        stream_secret: str | None = None,
        timeouts: HostTimeouts | None = None,
    ):
        self.size = size
        self.config = config
        self.timeouts = timeouts or HostTimeouts()
        self.webhook_policy = DestinationPolicy(config.webhooks.allow)
        self.resolver: Resolver = system_resolver  # the webhook host's addresses, checked at start
        self.store = (
            CallStore(config.redis_url, config.key_prefix, config.record_ttl_s) if config.redis_url else None
        )
        self.failovers = 0
        self._names = [f"{config.key_prefix.strip(':').replace(':', '-')}-call-host-{i}" for i in range(size)]
        self._handles: dict[str, Any] = {}
        self._routes: dict[str, Route] = {}  # a cache of the directory, re-read after any failure
        self._loads: dict[str, int] = dict.fromkeys(self._names, 0)
        self._loads_at = 0.0
        self._refreshing: asyncio.Task[list[HostLoad]] | None = None
        self._secret = stream_secret.encode() if stream_secret else b""
        self._used_tokens: set[str] = set()  # without a store: this replica's memory only
        self._streams: dict[str, str] = {}
        self._adopting: dict[str, asyncio.Future[int]] = {}  # dead host → its calls being resumed

    # ---- hosts -----------------------------------------------------------------------------
    def _spawn(self, name: str) -> Any:
        """The live actor of this name: the existing one, or a new one if it died."""
        handle = CallHost.options(  # type: ignore[attr-defined]
            name=name, namespace=NAMESPACE, lifetime="detached", get_if_exists=True
        ).remote(name, self.config)
        self._handles[name] = handle
        return handle

    def _handle(self, name: str) -> Any:
        return self._handles.get(name) or self._spawn(name)

    async def start(self) -> None:
        for name in self._names:
            self._spawn(name)
        await self._refresh_loads()
        if not self._secret:
            self._secret = await self.store.stream_secret() if self.store else secrets.token_bytes(32)

    async def _refresh_loads(self) -> list[HostLoad]:
        handles = [(name, self._handle(name)) for name in self._names]
        results = await asyncio.gather(
            *(asyncio.wait_for(h.load.remote(), timeout=min(5.0, self.timeouts.call_s)) for _, h in handles),
            return_exceptions=True,
        )
        loads: list[HostLoad] = []
        for (name, _), result in zip(handles, results, strict=True):
            if isinstance(result, HostLoad):
                self._loads[name] = result.live_calls
                loads.append(result)
            else:
                log.warning(
                    "call host %s did not answer (%s); starting a replacement", name, type(result).__name__
                )
                self._handles.pop(name, None)
                self._spawn(name)
                self._adopt_soon(name)
                self._loads[name] = 0
                loads.append(HostLoad(host=name, live_calls=0, dead=True))
        self._loads_at = time.monotonic()
        return loads

    def _adopt_soon(self, host: str) -> None:
        if self.store is not None and host not in self._adopting:
            self._adopting[host] = asyncio.ensure_future(self._adopt(host))

    async def _adopt(self, host: str) -> int:
        """Resume the live calls the directory still puts on ``host``, which died: otherwise
        nothing touches them until their caller speaks, no host lists them, and a call nobody
        speaks on never idles out."""
        assert self.store is not None
        moved = 0
        try:
            for route in await self.store.live_routes_on(host):
                with contextlib.suppress(*HOST_GONE, CallNotFound):
                    await self._move(route, exclude=None)
                    moved += 1
        except Exception as exc:  # the next refresh that finds the host dead tries again
            log.warning("call host %s: adopting its calls failed (%s)", host, type(exc).__name__)
        finally:
            self._adopting.pop(host, None)
        if moved:
            log.warning("call host %s died: %d live calls resumed elsewhere", host, moved)
        return moved

    async def _least_loaded(self, exclude: str | set[str] | None = None) -> str:
        if time.monotonic() - self._loads_at > LOADS_MAX_AGE_S:
            if self._refreshing is None or self._refreshing.done():  # one refresh for a burst of calls
                self._refreshing = asyncio.ensure_future(self._refresh_loads())
            await asyncio.shield(self._refreshing)
        skip = {exclude} if isinstance(exclude, str) else exclude or set()
        candidates = [n for n in self._names if n not in skip] or self._names
        return min(candidates, key=lambda n: self._loads[n])

    async def loads(self) -> list[HostLoad]:
        return await self._refresh_loads()

    # ---- stream tokens -----------------------------------------------------------------------
    def stream_token(self, call_id: str) -> str:
        """A fresh single-use token for the call's media stream (``mint_stream_token``)."""
        return mint_stream_token(self._secret, call_id)

    def check_token(self, call_id: str, token: str) -> bool:
        """Whether this is a token minted for the call (used or not)."""
        return stream_token_nonce(self._secret, call_id, token) is not None

    async def claim_stream(self, call_id: str, token: str, owner: str) -> Claim:
        """Consume the token and take the call's media stream for ``owner`` (one socket at a
        time): ``bad`` (not a token of the call), ``reused``, ``busy`` (another socket has the
        stream), ``ended`` (no live call) or ``ok``."""
        nonce = stream_token_nonce(self._secret, call_id, token)
        if nonce is None:
            return "bad"
        if self.store is not None:
            return await self.store.claim_stream(call_id, nonce, owner)
        if call_id not in self._routes:
            return "ended"
        if nonce in self._used_tokens:
            return "reused"
        if call_id in self._streams:
            return "busy"
        self._used_tokens.add(nonce)
        self._streams[call_id] = owner
        return "ok"

    async def release_stream(self, call_id: str, owner: str) -> None:
        if self.store is not None:
            await self.store.release_stream(call_id, owner)
        elif self._streams.get(call_id) == owner:
            del self._streams[call_id]

    # ---- calls -------------------------------------------------------------------------------
    async def start_call(
        self,
        schema: str,
        call_data: dict[str, Any],
        webhook_url: str | None,
        to: str | None = None,
        answering: str | None = None,
        call_id: str | None = None,
    ) -> CallOpened | CallRefused:
        """Open a call on the least loaded host; ``call_id`` when the caller fixed it beforehand
        (an idempotent start names it in its claim)."""
        if webhook_url is not None:  # UnsafeDestination: the ingress answers 422 naming webhook_url
            timeout_s = self.config.webhooks.timeout_s
            await check_destination(webhook_url, self.webhook_policy, self.resolver, timeout_s)
        call_id = call_id or uuid.uuid4().hex
        full: set[str] = set()
        for _ in range(self.size + 1):
            name = await self._least_loaded(exclude=full)
            try:
                result: CallOpened | CallRefused = await _within(
                    self._handle(name).start_call.remote(
                        call_id, schema, call_data, webhook_url, to, answering
                    ),
                    self.timeouts.call_s,
                    "start_call",
                )
            except HOST_GONE:
                self._handles.pop(name, None)
                self._spawn(name)
                continue
            if isinstance(result, CallOpened):
                route = Route(call_id, name, 1, "live", schema, webhook_url, _actor_id(self._handle(name)))
                self._routes[call_id] = route
                self._loads[name] += 1
            elif result.reason == "host_full" and len(full | {name}) < self.size:
                full.add(name)  # another host may have room
                continue
            return result
        raise RuntimeError("no call host could start the call")

    async def route(self, call_id: str, refresh: bool = False) -> Route:
        """The call's live route; raises CallNotFound for an unknown or ended call."""
        route = None if refresh else self._routes.get(call_id)
        if route is None and self.store is not None:
            route = await self.store.route(call_id)
        if route is None or route.status != "live":
            self._routes.pop(call_id, None)
            raise CallNotFound(f"no live call {call_id!r}")
        self._routes[call_id] = route
        return route

    async def call(self, call_id: str, method: str, *args: Any) -> Any:
        """A host method of the call (``method(call_id, *args)``), failing over as needed."""
        route = await self.route(call_id)
        attempt = 0
        while True:
            try:
                ref = getattr(self._handle(route.host), method).remote(call_id, *args)
                return await _within(ref, self.timeouts.for_method(method), method)
            except (*HOST_GONE, CallNotFound) as exc:
                route = await self._recover(route, exc, attempt)
                attempt += 1

    async def stream(self, call_id: str, method: str, *args: Any) -> AsyncGenerator[Any, None]:
        """Items of a streaming host method; fails over while nothing has been yielded. A
        consumer that stops early cancels the host's generator (a barge-in stops the reply)."""
        route = await self.route(call_id)
        attempt = 0
        while True:
            refs = (
                getattr(self._handle(route.host), method)
                .options(num_returns="streaming")
                .remote(call_id, *args)
            )
            started = finished = False
            timeout_s = self.timeouts.for_method(method)
            try:
                items = refs.__aiter__()
                while True:
                    try:
                        ref = await _within(items.__anext__(), timeout_s, method)
                    except StopAsyncIteration:
                        break
                    item = await _within(ref, timeout_s, method)
                    started = True
                    yield item
                finished = True
                return
            except (*HOST_GONE, CallNotFound) as exc:
                finished = True
                if started:
                    raise
                route = await self._recover(route, exc, attempt)
                attempt += 1
            finally:
                if not finished:
                    ray.cancel(refs)

    async def hangup(self, call_id: str, reason: EndReason, note: str | None = None) -> dict[str, Any]:
        record: dict[str, Any] = await self.call(call_id, "hangup", reason, note)
        route = self._routes.pop(call_id, None)
        if route is not None:
            self._loads[route.host] = max(0, self._loads.get(route.host, 0) - 1)
        return record

    async def list_calls(self) -> list[dict[str, Any]]:
        results = await asyncio.gather(
            *(
                _within(self._handle(name).list_calls.remote(), self.timeouts.call_s, "list_calls")
                for name in self._names
            ),
            return_exceptions=True,
        )
        return [call for result in results if isinstance(result, list) for call in result]

    # ---- failover ----------------------------------------------------------------------------
    async def _recover(self, route: Route, exc: BaseException, attempt: int) -> Route:
        """The route to try next after ``exc``; raises when the call cannot be reached."""
        if attempt >= MAX_RECOVERIES:
            raise exc
        if isinstance(exc, ActorUnavailableError) and attempt < TRANSIENT_RETRIES:
            await asyncio.sleep(TRANSIENT_BACKOFF_S * 2**attempt)  # a restart or a network blip
            return route
        if isinstance(exc, CallNotFound):
            # The host is up but does not hold the call: it moved or ended (the directory says
            # which), or the host is a replacement that never had it.
            fresh = await self.route(route.call_id, refresh=True)
            if (fresh.host, fresh.gen) != (route.host, route.gen):
                return fresh
            if fresh.actor and fresh.actor == _actor_id(self._handle(fresh.host)):
                # Another replica moved the call to this very actor and its resume has not come
                # in yet: have it resume the call now (the two resumes are one), not move it on.
                await self._resume_on(fresh)
                return fresh
            return await self._move(fresh, exclude=None)
        stale = self._handles.pop(route.host, None)
        current = self._spawn(route.host)  # the name's live actor, or a new one
        if stale is not None and current._actor_id != stale._actor_id:
            return route  # another replica already replaced this host: ask the replacement
        return await self._move(route, exclude=route.host)

    async def _move(self, route: Route, exclude: str | None) -> Route:
        """Fail the call over: move its route (compare-and-set on the generation) and resume it
        there. Of several replicas doing this at once, one moves it and the others follow."""
        if self.store is None:
            raise CallNotFound(f"call {route.call_id!r} was lost with its host (no state store)")
        target = await self._least_loaded(exclude=exclude)
        moved = await self.store.move_route(route, target, _actor_id(self._handle(target)))
        if moved is not None:
            self.failovers += 1
            log.warning("call %s: %s lost it; resuming on %s", route.call_id, route.host, target)
            new = moved
        else:
            new = await self.route(route.call_id, refresh=True)
        self._routes[new.call_id] = new
        self._loads[new.host] = self._loads.get(new.host, 0) + 1
        await self._resume_on(new)
        return new

    async def _resume_on(self, route: Route) -> None:
        """Have the route's host resume the call (idempotent: a resume under way there is shared).
        If the host died too or the route moved on, the next attempt re-routes."""
        with contextlib.suppress(*HOST_GONE, CallNotFound):
            resume = self._handle(route.host).resume_call.remote(route.call_id, route.gen)
            await asyncio.wait_for(resume, max(30.0, self.timeouts.call_s))
