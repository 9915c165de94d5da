"""The KubeRay ``RayService`` manifest for voxray, generated from ``cluster/serve_config.yaml``.

    python -m cluster.kuberay > cluster/kuberay/rayservice.yaml

``serveConfigV2`` is the Serve config file's applications (the same deployments, resources and
autoscaling as ``serve deploy`` uses), so the two cannot drift: ``tests/integration/
test_cluster_configs.py`` regenerates the manifest and compares it with the committed one.
The cluster: a head that runs no replicas (``num-cpus: 0``; the Serve controller and the GCS
only), a CPU worker group and a GPU worker group that KubeRay's in-tree autoscaler grows from
Serve's replica demand, and GCS fault tolerance on an external Redis (the same managed Redis
voxray keeps its calls in, another database number), so a lost head pod does not lose the
Serve applications. Secrets (the Redis password, provider API keys, Twilio credentials) come
from Kubernetes secrets, never from the manifest.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
SERVE_CONFIG = ROOT / "cluster" / "serve_config.yaml"
RAY_VERSION = "2.60.0"
IMAGE = "voxray:0.1.0"  # built by cluster/kuberay/Dockerfile from rayproject/ray
REDIS_HOST = "voxray-redis:6379"
SECRET = "voxray-secrets"


def _env() -> list[dict[str, Any]]:
    def secret(name: str, key: str, optional: bool = False) -> dict[str, Any]:
        ref: dict[str, Any] = {"name": SECRET, "key": key}
        if optional:
            ref["optional"] = True
        return {"name": name, "valueFrom": {"secretKeyRef": ref}}

    return [
        {"name": "HF_HUB_OFFLINE", "value": "1"},
        {"name": "TRANSFORMERS_OFFLINE", "value": "1"},
        {"name": "RAY_USAGE_STATS_ENABLED", "value": "0"},
        # Serve's HAProxy mode: media frames reach the ingress replica without a proxy actor's hop
        # (README "Media websockets through Serve's proxy": p50 117 ms -> 0.7 ms at 100 calls)
        {"name": "RAY_SERVE_ENABLE_HA_PROXY", "value": "1"},
        {"name": "REDIS_PASSWORD", "valueFrom": {"secretKeyRef": {"name": SECRET, "key": "redis-password"}}},
        # voxray's own data (calls, records, webhooks) in database 0; the GCS uses its own namespace
        {"name": "VOXRAY_REDIS_URL", "value": f"redis://:$(REDIS_PASSWORD)@{REDIS_HOST}/0"},
        secret("VOXRAY_PROVIDERS__ANTHROPIC_API_KEY", "anthropic-api-key", optional=True),
        secret("VOXRAY_PROVIDERS__OPENAI_API_KEY", "openai-api-key", optional=True),
        secret("VOXRAY_TWILIO__ACCOUNT_SID", "twilio-account-sid", optional=True),
        secret("VOXRAY_TWILIO__AUTH_TOKEN", "twilio-auth-token", optional=True),
    ]


def _container(name: str, cpu: str, memory: str, gpus: int = 0) -> dict[str, Any]:
    limits: dict[str, Any] = {"cpu": cpu, "memory": memory}
    if gpus:
        limits["nvidia.com/gpu"] = gpus
    container: dict[str, Any] = {
        "name": name,
        "image": IMAGE,
        "env": _env(),
        "resources": {"limits": limits, "requests": dict(limits)},
    }
    if name == "ray-head":
        container["ports"] = [
            {"containerPort": 6379, "name": "gcs-server"},
            {"containerPort": 8265, "name": "dashboard"},
            {"containerPort": 10001, "name": "client"},
            {"containerPort": 8000, "name": "serve"},
            {"containerPort": 8080, "name": "metrics"},
        ]
    return container


def _worker_group(
    name: str, replicas: int, max_replicas: int, cpu: str, memory: str, gpus: int = 0
) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [_container("ray-worker", cpu, memory, gpus)]}
    if gpus:
        spec["tolerations"] = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    return {
        "groupName": name,
        "replicas": replicas,
        "minReplicas": replicas,
        "maxReplicas": max_replicas,
        "rayStartParams": {"metrics-export-port": "8080"},
        "template": {"spec": spec},
    }


def serve_config_v2(serve_config: Path = SERVE_CONFIG) -> str:
    """The Serve config as RayService's ``serveConfigV2`` (a YAML string): its applications and
    HTTP options; the proxy runs on every node as in ``serve deploy``."""
    config = yaml.safe_load(serve_config.read_text())
    keep = {key: config[key] for key in ("proxy_location", "http_options", "applications") if key in config}
    return yaml.safe_dump(keep, sort_keys=False)


def rayservice(serve_config: Path = SERVE_CONFIG) -> dict[str, Any]:
    return {
        "apiVersion": "ray.io/v1",
        "kind": "RayService",
        "metadata": {"name": "voxray"},
        "spec": {
            "serveConfigV2": serve_config_v2(serve_config),
            "rayClusterConfig": {
                "rayVersion": RAY_VERSION,
                "enableInTreeAutoscaling": True,
                "autoscalerOptions": {"upscalingMode": "Default", "idleTimeoutSeconds": 600},
                "gcsFaultToleranceOptions": {
                    "redisAddress": REDIS_HOST,
                    "redisPassword": {
                        "valueFrom": {"secretKeyRef": {"name": SECRET, "key": "redis-password"}}
                    },
                },
                "headGroupSpec": {
                    # the head schedules no replicas: the controller and the GCS stay responsive
                    "rayStartParams": {
                        "num-cpus": "0",
                        "dashboard-host": "0.0.0.0",
                        "metrics-export-port": "8080",
                    },
                    "template": {"spec": {"containers": [_container("ray-head", "4", "16Gi")]}},
                },
                "workerGroupSpecs": [
                    _worker_group("cpu-workers", 1, 10, "16", "32Gi"),
                    _worker_group("gpu-workers", 0, 8, "8", "32Gi", gpus=1),
                ],
            },
        },
    }


class _Literal(str):
    """A multi-line string dumped as a YAML block (``serveConfigV2: |``)."""


def _literal(dumper: yaml.SafeDumper, value: _Literal) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")


def render(serve_config: Path = SERVE_CONFIG) -> str:
    manifest = rayservice(serve_config)
    manifest["spec"]["serveConfigV2"] = _Literal(manifest["spec"]["serveConfigV2"])
    dumper = yaml.SafeDumper
    dumper.add_representer(_Literal, _literal)
    header = (
        "# Generated by `python -m cluster.kuberay` from cluster/serve_config.yaml: edit those, not this.\n"
    )
    return header + yaml.dump(manifest, Dumper=dumper, sort_keys=False, width=120)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Print voxray's KubeRay RayService manifest.")
    parser.add_argument("--serve-config", type=Path, default=SERVE_CONFIG, help="Serve config file to embed")
    args = parser.parse_args(argv)
    print(render(args.serve_config), end="")


if __name__ == "__main__":
    main()
