"""Ray's fake multi-node provider, made drivable by ``ray up`` / ``ray down`` on one machine.

Ray 2.60's ``FakeMultiNodeProvider`` is written for the autoscaler that
``RAY_FAKE_CLUSTER=1 ray start --head --autoscaling-config=...`` runs: it always reports a
built-in head node without a launch hash, so ``ray up`` decides to replace that head, calls
``terminate_node`` on it and fails (``KeyError: 'node'``). This subclass keeps everything the
parent does for worker nodes (the autoscaler on the head starts them as local raylets with the
node type's resources, fake GPUs included) and changes only the head:

- the head is this machine. ``ray up`` "launches" it by recording its tags (launch hash and
  status included) in a small JSON file, then runs the head's setup and start commands here
  through ``LocalCommandRunner`` (a local shell instead of SSH). The autoscaler that the head
  start command runs reads the same file, so both agree on the head;
- the head is never terminated by the provider: ``ray down`` first runs ``ray stop`` on it
  (Ray's teardown), which ends the head and every fake worker, then forgets the record.

Select it in a cluster YAML with
``provider: {type: external, module: cluster.fake_up_provider.FakeUpProvider}`` and run
``ray up`` from the repository root (the module must be importable there and on the head,
which is the same machine).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from ray.autoscaler._private.command_runner import _with_environment_variables
from ray.autoscaler._private.fake_multi_node.node_provider import (
    FAKE_HEAD_NODE_ID,
    FakeMultiNodeProvider,
)
from ray.autoscaler.command_runner import CommandRunnerInterface
from ray.autoscaler.tags import NODE_KIND_HEAD, TAG_RAY_NODE_KIND

STATE_DIR = Path(os.environ.get("VOXRAY_FAKE_UP_STATE_DIR", "/tmp/voxray-fake-up"))


class LocalCommandRunner(CommandRunnerInterface):
    """Runs the updater's commands in a local shell, with this Python environment's ``bin`` first
    on PATH (the head's "installed" Ray is the one running ``ray up``); "uploads" are copies."""

    def run(
        self,
        cmd: str | None = None,
        timeout: int = 120,
        exit_on_fail: bool = False,
        port_forward: Any = None,
        with_output: bool = False,
        environment_variables: dict[str, object] | None = None,
        run_env: str = "auto",
        ssh_options_override_ssh_key: str = "",
        shutdown_after_run: bool = False,
    ) -> str:
        if not cmd:
            return ""
        if environment_variables:  # exported exactly as Ray's SSH runner does (JSON-encoded)
            cmd = _with_environment_variables(cmd, environment_variables)
        env = {
            **os.environ,
            "PATH": str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""),
        }
        result = subprocess.run(["bash", "-c", cmd], env=env, capture_output=with_output, text=True)
        if result.returncode != 0:
            detail = (result.stderr or "").strip()[-500:] if with_output else ""
            raise subprocess.CalledProcessError(result.returncode, cmd, result.stdout, detail)
        return result.stdout if with_output else ""

    def _copy(self, source: str, target: str) -> None:
        src, dst = Path(os.path.expanduser(source)), Path(os.path.expanduser(target))
        if src.resolve() == dst.resolve():
            return
        if src.is_dir():
            shutil.copytree(src, dst, dirs_exist_ok=True)
        else:
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)

    def run_rsync_up(self, source: str, target: str, options: dict[str, Any] | None = None) -> None:
        self._copy(source, target)

    def run_rsync_down(self, source: str, target: str, options: dict[str, Any] | None = None) -> None:
        self._copy(source, target)

    def remote_shell_command_str(self) -> str:
        return "bash"

    def run_init(self, *, as_head: bool, file_mounts: dict[str, str], sync_run_yet: bool) -> bool | None:
        return None


# `ray up` exports these for the head's `ray start` (its resources, labels, type and instance
# id); the autoscaler started by that command inherits them, and the parent starts worker raylets
# inside the autoscaler's process, where they would give every worker the head's identity.
HEAD_ONLY_ENV = (
    "RAY_OVERRIDE_RESOURCES",
    "RAY_OVERRIDE_LABELS",
    "RAY_NODE_TYPE_NAME",
    "RAY_CLOUD_INSTANCE_ID",
)


class FakeUpProvider(FakeMultiNodeProvider):
    def __init__(self, provider_config: dict[str, Any], cluster_name: str):
        os.environ.setdefault("RAY_FAKE_CLUSTER", "1")  # the parent refuses to start without it
        for name in HEAD_ONLY_ENV:
            os.environ.pop(name, None)
        super().__init__(provider_config, cluster_name)
        self._state_file = STATE_DIR / f"{cluster_name}.json"
        self._head_id = provider_config.get("head_node_id", FAKE_HEAD_NODE_ID)
        del self._nodes[self._head_id]  # the head exists once `ray up` has recorded it

    # ---- the head's record, shared by `ray up`, `ray down` and the autoscaler on the head
    def _head_tags(self) -> dict[str, str] | None:
        try:
            tags: dict[str, str] = json.loads(self._state_file.read_text())
            return tags
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def _save_head_tags(self, tags: dict[str, str] | None) -> None:
        if tags is None:
            self._state_file.unlink(missing_ok=True)
            return
        self._state_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(tags))
        tmp.replace(self._state_file)

    # ---- NodeProvider
    def non_terminated_nodes(self, tag_filters: dict[str, str]) -> list[str]:
        workers: list[str] = super().non_terminated_nodes(tag_filters)
        head = self._head_tags()
        if head is not None and all(head.get(k) == v for k, v in tag_filters.items()):
            return [self._head_id, *workers]
        return workers

    def is_running(self, node_id: str) -> bool:
        if node_id == self._head_id:
            return self._head_tags() is not None
        return bool(super().is_running(node_id))

    def is_terminated(self, node_id: str) -> bool:
        return not self.is_running(node_id)

    def node_tags(self, node_id: str) -> dict[str, str]:
        if node_id == self._head_id:
            return self._head_tags() or {}
        tags: dict[str, str] = super().node_tags(node_id)
        return tags

    def set_node_tags(self, node_id: str, tags: dict[str, str]) -> None:
        if node_id == self._head_id:
            self._save_head_tags({**(self._head_tags() or {}), **tags})
            return
        with self.lock:
            self._nodes[node_id]["tags"].update(tags)

    def create_node(self, node_config: dict[str, Any], tags: dict[str, str], count: int) -> None:
        if tags.get(TAG_RAY_NODE_KIND) == NODE_KIND_HEAD:
            self._save_head_tags(dict(tags))  # this machine is the head: nothing to launch
            return
        super().create_node(node_config, tags, count)

    def terminate_node(self, node_id: str) -> None:
        if node_id == self._head_id:
            self._save_head_tags(None)  # `ray down` already ran `ray stop` on it
            return
        super().terminate_node(node_id)

    def get_command_runner(
        self,
        log_prefix: str,
        node_id: str,
        auth_config: dict[str, Any],
        cluster_name: str,
        process_runner: Any,
        use_internal_ip: bool,
        docker_config: dict[str, Any] | None = None,
    ) -> CommandRunnerInterface:
        return LocalCommandRunner()
