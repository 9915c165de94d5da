"""A pool of CallHost actors: places new calls, routes by call id, fails calls over.

Hosts are named, detached actors in the ``voxray`` namespace, so a restarted ingress replica
finds the same hosts. A call's host is remembered here and in Redis; when a host dies, the
call resumes on another live host from its last snapshot and the dead host is replaced.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

import ray
from ray.exceptions import ActorDiedError, ActorUnavailableError, RayActorError

from actors.call_host import CallHost
from actors.services import APP_NAME

log = logging.getLogger("voxray.pool")
NAMESPACE = "voxray"
HOST_GONE = (RayActorError, ActorDiedError, ActorUnavailableError)


class CallHostPool:
    def __init__(
        self, size: int, redis_url: str | None, key_prefix: str = "voxray:", app_name: str = APP_NAME
    ):
        self.size = size
        self.redis_url = redis_url
        self.key_prefix = key_prefix
        self.app_name = app_name
        self.hosts: dict[str, Any] = {}
        self.live: dict[str, int] = {}
        self.where: dict[str, str] = {}
        self.webhooks: dict[str, str | None] = {}
        self.failovers = 0
        self._lock = asyncio.Lock()

    def _name(self, index: int) -> str:
        return f"{self.key_prefix.strip(':').replace(':', '-')}-call-host-{index}"

    def _spawn(self, name: str) -> Any:
        return CallHost.options(  # type: ignore[attr-defined]
            name=name, namespace=NAMESPACE, lifetime="detached", get_if_exists=True
        ).remote(name, self.redis_url, self.key_prefix, self.app_name)

    async def start(self) -> None:
        for i in range(self.size):
            name = self._name(i)
            self.hosts[name] = self._spawn(name)
            self.live.setdefault(name, 0)
        await asyncio.gather(*(h.load.remote() for h in self.hosts.values()))

    async def start_call(
        self, schema: str, call_data: dict[str, Any], webhook_url: str | None
    ) -> dict[str, Any]:
        call_id = uuid.uuid4().hex
        for _ in range(2):
            name = min(self.live, key=lambda n: self.live[n])
            try:
                result: dict[str, Any] = await self.hosts[name].start_call.remote(
                    call_id, schema, call_data, webhook_url
                )
            except HOST_GONE:
                await self._replace(name)
                continue
            if "error" not in result:
                self.where[call_id] = name
                self.webhooks[call_id] = webhook_url
                self.live[name] += 1
            return result
        raise RuntimeError("no call host could start the call")

    async def _replace(self, name: str) -> None:
        async with self._lock:
            log.warning("call host %s is gone; starting a replacement", name)
            with contextlib.suppress(ValueError):
                ray.kill(ray.get_actor(name, namespace=NAMESPACE))
            self.hosts[name] = self._spawn(name)
            self.live[name] = 0

    async def _failover(self, call_id: str, dead: str) -> str:
        await self._replace(dead)
        target = min((n for n in self.live if n != dead), key=lambda n: self.live[n], default=dead)
        await self.hosts[target].resume_call.remote(call_id, self.webhooks.get(call_id))
        self.where[call_id] = target
        self.live[target] += 1
        self.failovers += 1
        return target

    def host_of(self, call_id: str) -> str:
        try:
            return self.where[call_id]
        except KeyError:
            raise KeyError(f"unknown call {call_id!r}") from None

    async def call(self, call_id: str, method: str, *args: Any) -> Any:
        name = self.host_of(call_id)
        try:
            return await getattr(self.hosts[name], method).remote(call_id, *args)
        except HOST_GONE:
            name = await self._failover(call_id, name)
            return await getattr(self.hosts[name], method).remote(call_id, *args)

    async def stream(self, call_id: str, method: str, *args: Any) -> AsyncIterator[dict[str, Any]]:
        """Items of a host's streaming method; fails over if the host dies before the first item."""
        name = self.host_of(call_id)
        started = False
        try:
            async for ref in (
                getattr(self.hosts[name], method).options(num_returns="streaming").remote(call_id, *args)
            ):
                started = True
                yield await ref
        except HOST_GONE:
            if started:
                raise
            name = await self._failover(call_id, name)
            async for ref in (
                getattr(self.hosts[name], method).options(num_returns="streaming").remote(call_id, *args)
            ):
                yield await ref

    async def hangup(self, call_id: str, reason: str) -> dict[str, Any]:
        record: dict[str, Any] = await self.call(call_id, "hangup", reason)
        name = self.where.pop(call_id, None)
        self.webhooks.pop(call_id, None)
        if name is not None:
            self.live[name] = max(0, self.live[name] - 1)
        return record

    async def loads(self) -> list[dict[str, Any]]:
        out = []
        for name, handle in self.hosts.items():
            try:
                out.append(await handle.load.remote())
            except HOST_GONE:
                out.append({"host": name, "live_calls": None, "dead": True})
        return out

    async def shutdown(self) -> None:
        for handle in self.hosts.values():
            ray.kill(handle)
        self.hosts.clear()
