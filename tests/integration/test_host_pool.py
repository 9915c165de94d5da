"""Routing through the Redis call directory: any pool (one per ingress replica) serves any call,
and a dead host's call fails over exactly once, whoever notices.

Real call hosts on the shared local Ray, real Redis; the model services are scripted stand-ins
(``common/testing/services.py``) because these tests are about routing, not replies.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from actors.call_host import CallNotFound, HostConfig
from actors.host_pool import NAMESPACE, CallHostPool
from actors.store import CallStore
from common.events import CallerTurn, CallOpened, EndReason, TurnDone
from common.testing.samples import SAMPLE_CALL_DATA
from common.testing.services import ScriptedCache, ScriptedLLM

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.usefixtures("ray_session")


@pytest.fixture
async def pools(redis_url: str, key_prefix: str) -> AsyncIterator[list[CallHostPool]]:
    """Three pools over the same hosts and directory: three ingress replicas."""
    import ray

    config = HostConfig(redis_url, key_prefix, ROOT / "schemas", ScriptedCache(), ScriptedLLM())
    replicas = [CallHostPool(2, config) for _ in range(3)]
    for pool in replicas:
        await pool.start()
    yield replicas
    for name in replicas[0]._names:
        with contextlib.suppress(ValueError):
            ray.kill(ray.get_actor(name, namespace=NAMESPACE))
    store = CallStore(redis_url, key_prefix)
    async for key in store.redis.scan_iter(match=f"{key_prefix}*"):
        await store.redis.delete(key)
    await store.aclose()


async def turn(pool: CallHostPool, call_id: str, text: str) -> TurnDone:
    events = [e async for e in pool.stream(call_id, "turn", CallerTurn(text=text))]
    done = events[-1]
    assert isinstance(done, TurnDone), done
    return done


async def start(pool: CallHostPool) -> CallOpened:
    opened = await pool.start_call("prior_auth", SAMPLE_CALL_DATA["prior_auth"], None)
    assert isinstance(opened, CallOpened)
    return opened


async def hosts_running(pool: CallHostPool, call_id: str) -> list[str]:
    import ray

    running = []
    for name in pool._names:
        calls = await ray.get_actor(name, namespace=NAMESPACE).list_calls.remote()
        running += [name for c in calls if c["call_id"] == call_id]
    return running


async def test_any_replica_serves_a_call_another_replica_started(pools: list[CallHostPool]) -> None:
    a, b, _ = pools
    call = await start(a)
    assert b.check_token(call.call_id, a.stream_token(call.call_id))  # the secret is shared
    assert not b.check_token(call.call_id, "forged") and not b.check_token(
        "other-call", a.stream_token(call.call_id)
    )
    done = await turn(b, call.call_id, "This is Sarah, how can I help?")
    assert done.state == "verify_member"
    status = await a.call(call.call_id, "status")
    assert status["slots"] == {"rep_name": "Sarah"} and status["turns"] == 1
    opening = [e async for e in b.stream(call.call_id, "opening")]
    assert opening[-1].turn == 0  # the opening lines live with the call on its host
    record = await b.hangup(call.call_id, EndReason.HANGUP, "done")
    assert record["end_reason"] == "hangup" and record["end_note"] == "done"
    with pytest.raises(CallNotFound):
        await a.call(call.call_id, "status")  # ended: the route says so on every replica
    assert (await a.store.load_record(call.call_id))["call_id"] == call.call_id  # type: ignore[union-attr]


async def test_a_dead_host_fails_over_once_whoever_notices(pools: list[CallHostPool]) -> None:
    import ray

    a, _b, c = pools
    call = await start(a)
    await turn(a, call.call_id, "This is Sarah.")
    dead = (await a.route(call.call_id)).host
    for pool in pools:  # every replica has a handle to the host that is about to die
        pool._handle(dead)
    ray.kill(ray.get_actor(dead, namespace=NAMESPACE), no_restart=True)

    results = await asyncio.gather(*(p.call(call.call_id, "status") for p in pools))
    assert all(r["slots"] == {"rep_name": "Sarah"} for r in results)
    assert len({r["host"] for r in results}) == 1
    assert await hosts_running(a, call.call_id) == [results[0]["host"]]  # exactly one host
    assert sum(p.failovers for p in pools) == 1  # one replica moved it; the others followed
    route = await CallStore(a.config.redis_url or "", a.config.key_prefix).route(call.call_id)
    assert route is not None and route.gen == 2 and route.host == results[0]["host"]
    done = await turn(c, call.call_id, "Okay, I found the member.")
    assert done.state == "ask_status"


async def test_a_replica_that_meets_a_call_before_its_resume_does_not_move_it_again(
    pools: list[CallHostPool],
) -> None:
    """One replica has moved the call to a live host, and another asks that host before the
    resume got there: "not here". The host the route names is the very actor the call was moved
    to, so it resumes the call where it is; a second failover would be wrong (a replacement
    under the host's name is another actor: the call moves on from it)."""
    a, b, _ = pools
    call = await start(a)
    await turn(a, call.call_id, "This is Sarah.")
    assert a.store is not None
    route = await a.route(call.call_id)
    target = next(name for name in a._names if name != route.host)
    moved = await a.store.move_route(route, target, a._handles[target]._actor_id.hex())  # a moved it
    assert moved is not None  # (and its resume is slow to come: b asks the new host first)

    status = await b.call(call.call_id, "status")
    assert status["host"] == target and status["slots"] == {"rep_name": "Sarah"}
    assert b.failovers == 0
    assert await a.store.route(call.call_id) == moved  # not moved a second time


async def test_the_calls_of_a_dead_host_are_resumed_without_anyone_touching_them(
    pools: list[CallHostPool],
) -> None:
    """A call nobody speaks on (a campaign's, a caller who went quiet) is listed again and can
    idle out: the pool that finds the host dead resumes its calls itself."""
    import ray

    a, _b, _c = pools
    call = await start(a)
    dead = (await a.route(call.call_id)).host
    ray.kill(ray.get_actor(dead, namespace=NAMESPACE), no_restart=True)
    store = CallStore(a.config.redis_url or "", a.config.key_prefix)
    try:
        deadline = time.monotonic() + 60
        # (ray.kill takes effect a moment later: until then the old host still lists the call)
        while (
            (route := await store.route(call.call_id)) is None
            or route.gen < 2
            or (call.call_id not in {c["call_id"] for c in await a.list_calls()})
        ):
            assert time.monotonic() < deadline, "the dead host's call was never resumed"
            await a.loads()  # what a readiness probe or the next new call does
            await asyncio.sleep(0.5)
        assert route.status == "live" and route.gen == 2
        assert await hosts_running(a, call.call_id) == [route.host]
        assert (await a.call(call.call_id, "status"))["state"] == "greeting"  # its state came along
    finally:
        await store.aclose()


async def _named_actor(name: str, pool: CallHostPool, within_s: float = 30.0) -> Any:
    """The actor registered under ``name``: creation is asynchronous, so on a loaded machine the
    name can reach the GCS a moment after ``.remote()`` returned; and a replacement asked for
    while the GCS still held the killed actor under that name got the dead one back, so the
    pool's load refresh (which replaces hosts that do not answer) is run meanwhile."""
    import ray

    deadline = time.monotonic() + within_s
    while True:
        try:
            return ray.get_actor(name, namespace=NAMESPACE)
        except ValueError:
            if time.monotonic() > deadline:
                raise
            await pool.loads()
            await asyncio.sleep(0.2)


async def test_a_replacement_host_is_never_killed_by_a_replica_with_a_stale_handle(
    pools: list[CallHostPool],
) -> None:
    import ray

    a, b, _ = pools
    call = await start(a)
    dead = (await a.route(call.call_id)).host
    b._handle(dead)  # b holds the soon-stale handle
    ray.kill(ray.get_actor(dead, namespace=NAMESPACE), no_restart=True)
    await a.call(call.call_id, "status")  # a fails the call over and starts a replacement
    replacement = await _named_actor(dead, a)
    other = await start(a)
    while (await a.route(other.call_id)).host != dead:  # place a call on the replacement
        other = await start(a)
    assert (await b.call(other.call_id, "status"))["host"] == dead  # b's stale handle fails, b recovers
    assert ray.get_actor(dead, namespace=NAMESPACE)._actor_id == replacement._actor_id
    assert (await a.call(other.call_id, "status"))["call_id"] == other.call_id  # still alive


async def test_a_stale_generation_cannot_overwrite_the_snapshot(redis_url: str, key_prefix: str) -> None:
    store = CallStore(redis_url, key_prefix)
    try:
        route = await store.open_call("c-1", "host-a", "prior_auth", None, b"one")
        assert await store.load_snapshot("c-1") == (1, b"one")
        moves = await asyncio.gather(store.move_route(route, "host-b"), store.move_route(route, "host-c"))
        winners = [m for m in moves if m is not None]
        assert len(winners) == 1 and winners[0].gen == 2  # one compare-and-set wins
        assert await store.save_snapshot("c-1", 2, b"two")
        assert not await store.save_snapshot("c-1", 1, b"stale host")  # fenced off
        assert await store.load_snapshot("c-1") == (2, b"two")
        await store.end_call("c-1", {"call_id": "c-1"}, {"id": "c-1:record", "url": "https://x"})
        ended = await store.route("c-1")
        assert ended is not None and ended.status == "ended"
        assert await store.load_snapshot("c-1") is None and await store.pending_webhooks() == 1
        assert await store.move_route(ended, "host-d") is None  # an ended call never moves
    finally:
        async for key in store.redis.scan_iter(match=f"{key_prefix}*"):
            await store.redis.delete(key)
        await store.aclose()


class _Flaky:
    """A host handle whose method fails ``failures`` times with ``error`` before answering."""

    def __init__(self, error: BaseException, failures: int, answer: Any) -> None:
        self.error, self.failures, self.answer, self.calls = error, failures, answer, 0
        self.status = self

    async def remote(self, *args: Any) -> Any:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return self.answer


async def test_a_transient_unavailable_host_is_retried_not_failed_over(key_prefix: str) -> None:
    from ray.exceptions import ActorUnavailableError

    from actors.store import Route

    config = HostConfig(None, key_prefix, ROOT / "schemas", ScriptedCache(), ScriptedLLM())
    pool = CallHostPool(1, config, stream_secret="s")
    name = pool._names[0]
    flaky = _Flaky(ActorUnavailableError("network blip", None), failures=2, answer={"ok": True})
    pool._handles[name] = flaky
    pool._routes["c-1"] = Route("c-1", name, 1, "live", "prior_auth", None)
    assert await pool.call("c-1", "status") == {"ok": True}
    assert flaky.calls == 3 and pool.failovers == 0


class _Hanging:
    """A host handle whose requests never answer (a wedged host)."""

    def __init__(self) -> None:
        self.status = self.complete_turn = self

    async def remote(self, *args: Any) -> Any:
        await asyncio.sleep(3600)

    def options(self, **kwargs: Any) -> _Hanging:
        return self


async def test_every_host_request_has_a_timeout(key_prefix: str) -> None:
    from actors.host_pool import HostTimeout, HostTimeouts
    from actors.store import Route

    config = HostConfig(None, key_prefix, ROOT / "schemas", ScriptedCache(), ScriptedLLM())
    pool = CallHostPool(1, config, stream_secret="s", timeouts=HostTimeouts(call_s=0.1, turn_s=0.3))
    name = pool._names[0]
    pool._handles[name] = _Hanging()
    pool._routes["c-1"] = Route("c-1", name, 1, "live", "prior_auth", None)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    with pytest.raises(HostTimeout, match=r"status within 0\.1 s"):
        await pool.call("c-1", "status")
    t1 = loop.time()
    with pytest.raises(HostTimeout, match=r"complete_turn within 0\.3 s"):
        await pool.call("c-1", "complete_turn", CallerTurn(text="hello"))
    t2 = loop.time()
    assert 0.1 <= t1 - t0 < 0.5 and 0.3 <= t2 - t1 < 0.8  # the turn gets the longer one
    assert pool.failovers == 0  # slow is not dead: no failover


async def test_an_unsafe_webhook_url_is_refused_before_a_host_is_asked(key_prefix: str) -> None:
    from actors.webhook_guard import UnsafeDestination, static_resolver

    config = HostConfig(None, key_prefix, ROOT / "schemas", ScriptedCache(), ScriptedLLM())
    pool = CallHostPool(1, config, stream_secret="s")
    pool._handles[pool._names[0]] = _Hanging()  # asking it would hang
    pool.resolver = static_resolver({"hooks.example.com": ["10.1.2.3"]})
    for url in ("https://hooks.example.com/x", "http://93.184.216.34/x", "https://u:p@93.184.216.34/x"):
        with pytest.raises(UnsafeDestination):
            await pool.start_call("prior_auth", SAMPLE_CALL_DATA["prior_auth"], url)


async def test_redis_failing_during_hangup_keeps_the_call_live_and_hangup_can_be_retried(
    redis_url: str, key_prefix: str
) -> None:
    """Redis goes away the moment the hang-up's transaction is sent: the hang-up fails, the call
    stays live on its host (turns still work), and once Redis is back the same hang-up writes
    the record and queues the webhook, which is then delivered."""
    import redis.exceptions
    from aiohttp import web

    from actors.call_host import CallHostCore
    from common.settings import WebhookSettings
    from tests.support import RedisGate

    received: list[dict[str, Any]] = []

    async def hook(request: web.Request) -> web.Response:
        received.append(await request.json())
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/hook"  # type: ignore[union-attr]
    gate = RedisGate(redis_url)
    await gate.open()
    webhooks = WebhookSettings(allow=["http://127.0.0.1:*"])
    config = HostConfig(
        gate.url, key_prefix, ROOT / "schemas", ScriptedCache(), ScriptedLLM(), webhooks=webhooks
    )
    core = CallHostCore("durable-host", config)
    store = CallStore(redis_url, key_prefix)  # the test's own view, past the gate
    try:
        opened = await core.start_call("c-durable", "prior_auth", SAMPLE_CALL_DATA["prior_auth"], url)
        assert isinstance(opened, CallOpened)
        await core.complete_turn("c-durable", CallerTurn(text="This is Sarah, how can I help?", mode="text"))

        gate.fail_on(b"EXEC")  # Redis dies as the end-of-call transaction is sent
        with pytest.raises(redis.exceptions.ConnectionError):
            await core.hangup("c-durable", EndReason.HANGUP, "first try")
        assert gate.tripped == 1
        assert "c-durable" in core.calls and (await core.status("c-durable"))["status"] == "active"
        assert await store.load_record("c-durable") is None  # nothing half-written
        route = await store.route("c-durable")
        assert route is not None and route.status == "live"
        done = [e async for e in core.turn("c-durable", CallerTurn(text="Okay, I found the member."))][-1]
        assert isinstance(done, TurnDone)  # the call still takes turns

        await gate.open()
        record = await core.hangup("c-durable", EndReason.HANGUP, "second try")
        assert record["end_note"] == "second try" and "c-durable" not in core.calls
        assert (await store.load_record("c-durable") or {}).get("end_note") == "second try"
        assert await store.load_snapshot("c-durable") is None
        for _ in range(100):  # the host's sender, which rode out the outage, delivers it
            if received:
                break
            await asyncio.sleep(0.05)
        assert [r["data"]["call_id"] for r in received] == ["c-durable"]
        assert (await core.hangup("c-durable", EndReason.HANGUP))["end_note"] == "second try"  # idempotent
    finally:
        await core.aclose()
        await gate.close()
        await runner.cleanup()
        async for key in store.redis.scan_iter(match=f"{key_prefix}*"):
            await store.redis.delete(key)
        await store.aclose()
