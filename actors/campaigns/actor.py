"""The one campaign runner of a cluster: a detached named Ray actor the ingress starts (or
finds). Its loop holds a Redis lease, so a second copy waits and a killed one's campaigns are
taken over when the lease runs out."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from actors.campaigns.dialler import IngressDialler
from actors.campaigns.models import CampaignSpec
from actors.campaigns.runner import CampaignRunner, RunnerConfig
from actors.campaigns.store import CampaignStore
from actors.store import CallStore
from common.settings import VoxraySettings
from engine.do_not_call import contact_keys
from engine.schema_loader import SchemaRegistry

RUNNER_NAME = "voxray-campaign-runner"
log = logging.getLogger("voxray.campaigns")


Finished = Callable[[str, str | None], Awaitable[None]]


def build_runner(
    settings: VoxraySettings,
    dialler: Any = None,
    runner_id: str | None = None,
    on_finished: Finished | None = None,
) -> CampaignRunner:
    """The runner of this deployment: its Redis, the call records, the do-not-call list;
    ``on_finished(campaign id, key)`` revokes the API key a finished campaign dialled with (the
    edge owns keys, so it hands this in)."""
    url = settings.redis_url
    if url is None:
        raise RuntimeError("campaigns live in Redis, which is not configured")
    prefix = settings.calls.key_prefix
    store = CampaignStore(url, prefix, settings.retention.record_ttl_s)
    calls = CallStore(url, prefix, settings.retention.record_ttl_s)
    registry = SchemaRegistry.shared(settings.schemas.directory)

    async def on_list(spec: CampaignSpec, data: dict[str, Any]) -> bool:
        schema = registry.get(spec.schema_name)
        return (
            await calls.do_not_call(contact_keys(schema.spec, data.get("call_data", {}), data.get("to")))
            is not None
        )

    config = RunnerConfig(lease_ttl_s=settings.campaigns.lease_ttl_s, tick_s=settings.campaigns.tick_s)
    return CampaignRunner(
        store,
        calls,
        dialler or IngressDialler(settings.campaigns.ingress_url),
        on_list,
        config,
        runner_id,
        on_finished,
    )


def _actor_class() -> Any:
    import ray

    @ray.remote(num_cpus=0, max_restarts=-1)
    class CampaignRunnerActor:
        def __init__(self, settings: VoxraySettings, on_finished: Finished | None):
            self.runner = build_runner(settings, on_finished=on_finished)
            self.task: asyncio.Task[None] | None = None

        async def start(self) -> bool:
            if self.task is None or self.task.done():
                self.task = asyncio.get_running_loop().create_task(self.runner.run())
            return True

        async def holding(self) -> bool:
            return self.runner.holding

    return CampaignRunnerActor


async def ensure_runner(settings: VoxraySettings, on_finished: Finished | None = None) -> Any:
    """Start (or find) the cluster's campaign runner."""
    handle = (
        _actor_class()
        .options(name=RUNNER_NAME, namespace="voxray", lifetime="detached", get_if_exists=True)
        .remote(settings, on_finished)
    )
    await handle.start.remote()
    return handle
