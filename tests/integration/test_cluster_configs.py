"""Cluster configs against Ray's own schemas; the Grafana dashboard against the code's metrics.

- ``ray-cluster.yaml`` and ``cluster/local-cluster.yaml`` validate against the autoscaler's
  ``ray/autoscaler/ray-schema.json`` (the schema ``ray up`` itself validates with);
- ``cluster/serve_config.yaml`` parses with Serve's ``ServeDeploySchema`` and names only
  deployments that ``serve_app.build_app()`` really builds;
- ``cluster/grafana/voxray.json`` is a valid dashboard whose every queried series and label is
  defined in ``actors/metrics.py``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import ray
import yaml

from actors.metrics import BY_NAME, METRICS
from common.metric_defs import SERVE_TAGS

ROOT = Path(__file__).resolve().parents[2]
RAY_SCHEMA = Path(ray.__file__).parent / "autoscaler" / "ray-schema.json"


def _yaml(path: Path) -> dict[str, Any]:
    return _yaml_text(path.read_text())


def _yaml_text(text: str) -> dict[str, Any]:
    data = yaml.safe_load(text)
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def ray_schema() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(RAY_SCHEMA.read_text())
    return schema


@pytest.mark.parametrize("path", ["ray-cluster.yaml", "cluster/local-cluster.yaml"])
def test_cluster_yaml_validates_against_rays_schema(path: str, ray_schema: dict[str, Any]) -> None:
    config = _yaml(ROOT / path)
    jsonschema.Draft7Validator(ray_schema).validate(config)
    assert config["head_node_type"] in config["available_node_types"]


def test_schema_rejects_a_broken_config(ray_schema: dict[str, Any]) -> None:
    """The validation above has teeth: a wrong type and an unknown key are refused."""
    config = _yaml(ROOT / "ray-cluster.yaml")
    config["max_workers"] = "lots"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(config, ray_schema)
    config = _yaml(ROOT / "ray-cluster.yaml")
    config["no_such_field"] = 1
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(config, ray_schema)


def test_aws_cluster_has_cpu_and_gpu_workers_and_deploys_serve() -> None:
    config = _yaml(ROOT / "ray-cluster.yaml")
    types = config["available_node_types"]
    assert any("gpu" in name for name in types) and any("cpu" in name for name in types)
    for name, node in types.items():
        if name != config["head_node_type"]:
            assert node["min_workers"] <= node["max_workers"]
    assert any("serve deploy" in cmd for cmd in config["head_start_ray_commands"])


def test_every_node_uses_the_heads_one_redis_with_aof() -> None:
    """One state store for the cluster: Redis is installed and configured (AOF, fsync every
    second) on the head only, and every node's Ray processes get VOXRAY_REDIS_URL pointing at
    the head, never their own 127.0.0.1 (the settings default)."""
    config = _yaml(ROOT / "ray-cluster.yaml")
    assert not any("redis" in cmd for cmd in config["setup_commands"])  # not on every node
    head_setup = " ".join(config["head_setup_commands"])
    assert "redis-server" in head_setup
    assert "appendonly yes" in head_setup and "appendfsync everysec" in head_setup
    head, workers = config["head_start_ray_commands"], config["worker_start_ray_commands"]
    for commands in (head, workers):
        env_line = next(c for c in commands if "VOXRAY_REDIS_URL=" in c)
        assert "127.0.0.1" not in env_line and "localhost" not in env_line
        for cmd in commands:
            if "ray start" in cmd or "serve deploy" in cmd:
                assert ". ~/voxray.env" in cmd, cmd
    assert "redis://$RAY_HEAD_IP:6379" in " ".join(workers)
    makefile = (ROOT / "Makefile").read_text()
    redis_target = makefile[makefile.index("\nredis:") : makefile.index("\nrun:")]
    assert "--appendonly yes" in redis_target and "--appendfsync everysec" in redis_target


def test_local_cluster_uses_fake_multinode_with_fake_gpus() -> None:
    from ray.autoscaler._private.fake_multi_node.node_provider import FakeMultiNodeProvider
    from ray.autoscaler._private.providers import _get_node_provider_cls

    config = _yaml(ROOT / "cluster/local-cluster.yaml")
    assert config["provider"]["type"] == "external"
    assert issubclass(_get_node_provider_cls(config["provider"]), FakeMultiNodeProvider)
    assert config["head_node_type"] == "ray.head.default"  # the fake provider's fixed head type
    gpus = [t for t in config["available_node_types"].values() if t["resources"].get("GPU", 0) > 0]
    assert gpus and all(t["max_workers"] >= 1 for t in gpus)
    start = " ".join(config["head_start_ray_commands"])
    assert "RAY_FAKE_CLUSTER=1" in start and config["provider"]["gcs_address"].split(":")[1] in start


def test_fake_up_provider_keeps_the_head_record_ray_up_needs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What `ray up` / `ray down` ask of the provider, without starting Ray: no head at first,
    the head `ray up` creates is listed with its tags in every process, tag updates stick, and
    terminating it only forgets it."""
    from ray.autoscaler.tags import NODE_KIND_HEAD, TAG_RAY_NODE_KIND, TAG_RAY_NODE_STATUS

    from cluster import fake_up_provider

    monkeypatch.setattr(fake_up_provider, "STATE_DIR", tmp_path)
    monkeypatch.setenv("RAY_FAKE_CLUSTER", "1")
    monkeypatch.setenv("RAY_OVERRIDE_RESOURCES", '{"CPU": 5}')  # exported for the head's ray start
    provider_config = _yaml(ROOT / "cluster/local-cluster.yaml")["provider"]
    up = fake_up_provider.FakeUpProvider(provider_config, "test-cluster")
    assert "RAY_OVERRIDE_RESOURCES" not in os.environ  # fake workers must not get the head's resources
    head_filter = {TAG_RAY_NODE_KIND: NODE_KIND_HEAD}
    assert up.non_terminated_nodes(head_filter) == []
    up.create_node({}, {TAG_RAY_NODE_KIND: NODE_KIND_HEAD, TAG_RAY_NODE_STATUS: "uninitialized"}, 1)
    [head] = up.non_terminated_nodes(head_filter)
    up.set_node_tags(head, {TAG_RAY_NODE_STATUS: "up-to-date"})
    autoscaler_side = fake_up_provider.FakeUpProvider(provider_config, "test-cluster")  # another process
    assert autoscaler_side.node_tags(head)[TAG_RAY_NODE_STATUS] == "up-to-date"
    assert autoscaler_side.non_terminated_nodes({TAG_RAY_NODE_STATUS: "up-to-date"}) == [head]
    up.terminate_node(head)
    assert autoscaler_side.non_terminated_nodes(head_filter) == [] and not autoscaler_side.is_running(head)


def test_local_command_runner_runs_here_with_rays_env_encoding(tmp_path: Path) -> None:
    from cluster.fake_up_provider import LocalCommandRunner

    runner = LocalCommandRunner()
    out = runner.run(
        'echo "$RAY_OVERRIDE_RESOURCES|$NAME"; command -v ray',
        with_output=True,
        environment_variables={"RAY_OVERRIDE_RESOURCES": {"CPU": 5}, "NAME": "x"},
    )
    first, ray_path = out.strip().splitlines()
    assert json.loads(first.split("|")[0]) == {"CPU": 5}  # exported JSON-encoded, as over SSH
    assert Path(ray_path).parent == Path(sys.executable).parent  # this venv's ray comes first
    (tmp_path / "a.yaml").write_text("x: 1")
    runner.run_rsync_up(str(tmp_path / "a.yaml"), str(tmp_path / "sub" / "b.yaml"))
    assert (tmp_path / "sub" / "b.yaml").read_text() == "x: 1"
    with pytest.raises(subprocess.CalledProcessError):
        runner.run("exit 3")


@pytest.mark.parametrize("profile", ["serve_config.yaml", "serve_config.gpu.yaml"])
def test_serve_config_parses_and_names_real_deployments(profile: str) -> None:
    from ray.serve._private.build_app import build_app as build_serve_app
    from ray.serve.schema import ServeDeploySchema

    config = ServeDeploySchema.model_validate(_yaml(ROOT / "cluster" / profile))
    import serve_app

    # every deployment, whatever this test session's environment turned off (the e2e app's
    # fixture disables the local LLM for the whole session)
    built = build_serve_app(serve_app.build_app({"providers.local_enabled": True}), name="voxray")
    real = {d.name for d in built.deployments}
    for app in config.applications:
        if app.import_path == "ray.serve.llm:build_openai_app":  # the GPU profile's vLLM app
            assert app.args["llm_configs"] and app.route_prefix == "/llm"
            continue
        assert app.import_path in ("serve_app:app", "serve_app:build_app")
        named = {d.name for d in app.deployments}
        assert named, "the serve config tunes no deployment"
        assert named <= real, (
            f"serve_config.yaml names deployments that serve_app does not build: {named - real}"
        )


# ------------------------------------------------------------------------------------ grafana
DASHBOARD = ROOT / "cluster/grafana/voxray.json"
SERIES = re.compile(r"\bray_(voxray_[a-z0-9_]+)")
SELECTOR = re.compile(r"ray_voxray_[a-z0-9_]+\{([^}]*)\}")
BY_CLAUSE = re.compile(r"\b(?:by|ignoring|without|on)\s*\(([^)]*)\)")


def _exprs() -> list[str]:
    from cluster.check_dashboard import panel_queries  # what the live check evaluates, too

    exprs = [expr for _, expr in panel_queries(json.loads(DASHBOARD.read_text()))]
    assert len(exprs) >= 20
    return exprs


def _metric_of(series: str) -> tuple[str, str]:
    """``voxray_x_total`` → (``voxray_x``, counter) etc., as Ray's Prometheus export names them."""
    for suffix, kind in (
        ("_total", "counter"),
        ("_bucket", "histogram"),
        ("_sum", "histogram"),
        ("_count", "histogram"),
    ):
        if series.endswith(suffix) and series.removesuffix(suffix) in BY_NAME:
            return series.removesuffix(suffix), kind
    return series, "gauge"


def test_dashboard_is_valid_grafana_json() -> None:
    dash = json.loads(DASHBOARD.read_text())
    assert dash["title"] and dash["uid"] and isinstance(dash["schemaVersion"], int)
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    for p in dash["panels"]:
        assert {"type", "title", "gridPos", "targets"} <= set(p)
        assert p["targets"] and all(t["expr"].strip() for t in p["targets"])
        assert p["gridPos"]["x"] + p["gridPos"]["w"] <= 24
    titles = " ".join(p["title"].lower() for p in dash["panels"])
    for needed in ("voice-to-voice", "active calls", "error rate", "cache hit rate", "win rate"):
        assert needed in titles


def test_every_queried_metric_is_defined_in_code() -> None:
    seen = set()
    for expr in _exprs():
        assert expr.count("(") == expr.count(")"), expr
        for series in SERIES.findall(expr):
            name, kind = _metric_of(series)
            assert name in BY_NAME, f"dashboard queries {series!r}, which actors/metrics.py does not define"
            assert BY_NAME[name].kind == kind, (
                f"{series!r}: exported as a {kind}, defined as {BY_NAME[name].kind}"
            )
            seen.add(name)
    # the dashboard covers the headline metrics
    assert {
        "voxray_turn_latency_ms",
        "voxray_calls_active",
        "voxray_errors",
        "voxray_cache_hits",
        "voxray_router_wins",
        "voxray_llm_ttft_ms",
        "voxray_llm_input_tokens",
        "voxray_llm_cached_input_tokens",
        "voxray_llm_output_tokens",
        "voxray_llm_cost_usd",
    } <= seen


def test_every_queried_label_exists_on_its_metric() -> None:
    all_tags = {t for m in METRICS for t in m.tags} | {"le"} | set(SERVE_TAGS)
    for expr in _exprs():
        for match in SELECTOR.finditer(expr):
            name, _ = _metric_of(match.group(0).split("{")[0].removeprefix("ray_"))
            labels = BY_NAME[name].tags + (SERVE_TAGS if BY_NAME[name].per_replica else ())
            for part in filter(None, (s.strip() for s in match.group(1).split(","))):
                label = re.split(r"[=!~]", part)[0].strip()
                assert label in labels, f"{name} has no label {label!r}"
        for clause in BY_CLAUSE.findall(expr):
            for label in filter(None, (s.strip() for s in clause.split(","))):
                assert label in all_tags, f"grouping by unknown label {label!r} in {expr}"


def test_cluster_readme_names_every_series_and_only_real_ones() -> None:
    """The metrics table of cluster/README.md: each ``ray_voxray_*`` it names is defined (as the
    kind its suffix says), and every defined metric appears there."""
    text = (ROOT / "cluster" / "README.md").read_text()
    named = set()
    for series in SERIES.findall(text):
        name, kind = _metric_of(series)
        assert name in BY_NAME and BY_NAME[name].kind == kind, f"cluster/README.md names {series!r}"
        named.add(name)
    # the table abbreviates sibling counters as `_wins_total`: expand them
    for short in re.findall(r"`(_[a-z_]+)_total`", text):
        named |= {m.name for m in METRICS if m.name.endswith(short)}
    assert {m.name for m in METRICS} <= named, sorted({m.name for m in METRICS} - named)
    assert "poller" not in text.lower()  # replicas record their own series now


def test_kuberay_rayservice_is_generated_from_the_serve_config_and_parses() -> None:
    from ray.serve.schema import ServeDeploySchema

    from cluster import kuberay

    committed = (ROOT / "cluster" / "kuberay" / "rayservice.yaml").read_text()
    assert committed == kuberay.render(), "run: python -m cluster.kuberay > cluster/kuberay/rayservice.yaml"
    manifest = _yaml_text(committed)
    assert (manifest["apiVersion"], manifest["kind"]) == ("ray.io/v1", "RayService")
    spec = manifest["spec"]
    serve = ServeDeploySchema.model_validate(_yaml_text(spec["serveConfigV2"]))
    assert serve.model_dump(exclude_unset=True) == ServeDeploySchema.model_validate(
        _yaml(ROOT / "cluster" / "serve_config.yaml")
    ).model_dump(exclude_unset=True)
    cluster = spec["rayClusterConfig"]
    assert cluster["enableInTreeAutoscaling"] is True
    assert cluster["gcsFaultToleranceOptions"]["redisAddress"]
    assert "secretKeyRef" in cluster["gcsFaultToleranceOptions"]["redisPassword"]["valueFrom"]
    assert cluster["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"
    groups = {g["groupName"]: g for g in cluster["workerGroupSpecs"]}
    assert set(groups) == {"cpu-workers", "gpu-workers"}
    gpu = groups["gpu-workers"]["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert gpu["nvidia.com/gpu"] == 1 and groups["gpu-workers"]["minReplicas"] == 0
    for group in [cluster["headGroupSpec"], *groups.values()]:
        for container in group["template"]["spec"]["containers"]:
            env = {e["name"]: e for e in container["env"]}
            assert env["HF_HUB_OFFLINE"]["value"] == "1"
            # credentials only ever come from the secret
            secrets = ("VOXRAY_PROVIDERS__ANTHROPIC_API_KEY", "VOXRAY_TWILIO__AUTH_TOKEN", "REDIS_PASSWORD")
            for name in secrets:
                assert "value" not in env[name] and env[name]["valueFrom"]["secretKeyRef"]["name"]
