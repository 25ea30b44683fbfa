"""What the built-in blueprint puts in the pod template, through the CLI on small projects:
placement across nodes and zones, probes and the pre-stop drain, writable state, GPUs, and
secret rotation.

Input: the minimal valid project of tests/hostile/projects.py, altered per case.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import Result

from tests.hostile.projects import (
    AGENT_FILE,
    AT_AGENT,
    ENV_FILE,
    agent,
    env,
    invoke,
    merged,
    write_project,
)

SELECTOR = {"app.kubernetes.io/name": "x", "agent.inferensys.com/agent": "x"}


def rendered(result: Result) -> list[dict[str, Any]]:
    assert result.exit_code == 0, result.output
    return [doc for doc in yaml.safe_load_all(result.output) if doc]


def pod_of(tmp_path: Path, spec: dict[str, Any],
           environment: dict[str, Any] | None = None) -> dict[str, Any]:
    root = write_project(tmp_path, {AGENT_FILE: agent(spec), ENV_FILE: env(environment)})
    [workload] = [d for d in rendered(invoke(root)) if d["kind"] == "Deployment"]
    pod: dict[str, Any] = workload["spec"]["template"]["spec"]
    return pod


def spread(key: str) -> dict[str, Any]:
    return {"maxSkew": 1, "topologyKey": key, "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchLabels": SELECTOR}}


def test_one_pod_is_not_spread(tmp_path: Path) -> None:
    assert "topologySpreadConstraints" not in pod_of(tmp_path, {})


@pytest.mark.parametrize("sizing", [{"replicas": 3}, {"scaling": {"maxReplicas": 4}}])
def test_several_pods_spread_softly_over_nodes(tmp_path: Path, sizing: dict[str, Any]) -> None:
    assert pod_of(tmp_path, sizing)["topologySpreadConstraints"] == [
        spread("kubernetes.io/hostname")]


def test_and_over_zones_where_the_environment_has_them(tmp_path: Path) -> None:
    pod = pod_of(tmp_path, {"replicas": 3}, {"nodes": {"zones": True}})
    assert pod["topologySpreadConstraints"] == [spread("kubernetes.io/hostname"),
                                                spread("topology.kubernetes.io/zone")]


def test_the_agent_replaces_or_removes_the_spread(tmp_path: Path) -> None:
    own = [{"maxSkew": 2, "topologyKey": "kubernetes.io/hostname",
            "whenUnsatisfiable": "DoNotSchedule",
            "labelSelector": {"matchLabels": {"app.kubernetes.io/name": "x"}}}]
    pod = pod_of(tmp_path / "own", {"replicas": 3, "runtime": {"topologySpreadConstraints": own}})
    assert pod["topologySpreadConstraints"] == own
    pod = pod_of(tmp_path / "none", {"replicas": 3, "runtime": {"topologySpreadConstraints": []}})
    assert "topologySpreadConstraints" not in pod


def container_of(tmp_path: Path, spec: dict[str, Any]) -> dict[str, Any]:
    container: dict[str, Any] = pod_of(tmp_path, spec)["containers"][0]
    return container


def test_liveness_and_readiness_ask_different_questions(tmp_path: Path) -> None:
    agent_container = container_of(tmp_path, {})
    readiness, liveness = agent_container["readinessProbe"], agent_container["livenessProbe"]
    assert readiness["httpGet"] == {"path": "/readyz", "port": "http"}
    assert liveness["httpGet"] == {"path": "/livez", "port": "http"}
    # A busy event loop answers late: 10 s per check, 6 misses (2 minutes) before a restart.
    assert (liveness["timeoutSeconds"], liveness["periodSeconds"],
            liveness["failureThreshold"]) == (10, 20, 6)


def test_a_liveness_check_shorter_than_five_seconds_is_refused(tmp_path: Path) -> None:
    spec = {"lifecycle": {"probes": {"liveness": {"timeoutSeconds": 1}}}}
    root = write_project(tmp_path, {AGENT_FILE: agent(spec)})
    result = invoke(root)
    assert result.exit_code == 2, result.output
    assert re.search(AT_AGENT + r": spec\.lifecycle\.probes\.liveness\.timeoutSeconds: Input "
                     r"should be greater than or equal to 5", result.output), result.output


@pytest.mark.parametrize(("budget", "period", "threshold"), [(600, 10, 60), (1800, 10, 180),
                                                              (95, 10, 10), (5, 10, 1)])
def test_the_startup_budget_becomes_the_failure_threshold(
        tmp_path: Path, budget: int, period: int, threshold: int) -> None:
    startup = {"budgetSeconds": budget, "periodSeconds": period}
    probe = container_of(tmp_path, {"lifecycle": {"probes": {"startup": startup}}})[
        "startupProbe"]
    assert probe["failureThreshold"] == threshold
    assert probe["periodSeconds"] * probe["failureThreshold"] >= budget
    assert probe["httpGet"] == {"path": "/readyz", "port": "http"}  # ready = model loaded


def test_the_startup_probe_follows_the_readiness_endpoint(tmp_path: Path) -> None:
    probes = {"readiness": {"path": "/ready", "port": 9000}}
    probe = container_of(tmp_path, {"lifecycle": {"probes": probes}})["startupProbe"]
    assert probe["httpGet"] == {"path": "/ready", "port": 9000}


def test_pre_stop_calls_the_drain_endpoint_or_sleeps(tmp_path: Path) -> None:
    hooks = container_of(tmp_path / "sleep", {})["lifecycle"]
    assert hooks == {"preStop": {"sleep": {"seconds": 15}}}
    lifecycle = {"preStop": {"path": "/drain", "drainSeconds": 45},
                 "postStart": {"command": ["/agent", "validate"]},
                 "terminationGracePeriodSeconds": 60}
    hooks = container_of(tmp_path / "drain", {"lifecycle": lifecycle})["lifecycle"]
    assert hooks == {"preStop": {"httpGet": {"path": "/drain", "port": "http"}},
                     "postStart": {"exec": {"command": ["/agent", "validate"]}}}


@pytest.mark.parametrize(("lifecycle", "field", "message"), [
    ({"preStop": {"path": "/drain", "drainSeconds": 60}}, "terminationGracePeriodSeconds",
     r"terminationGracePeriodSeconds \(60\) must exceed preStop\.drainSeconds \(60\)"),
    ({"preStop": {"port": 9000}}, "preStop.port",
     "port applies only to a drain endpoint: set path too"),
])
def test_a_drain_that_does_not_fit_is_refused(tmp_path: Path, lifecycle: dict[str, Any],
                                              field: str, message: str) -> None:
    root = write_project(tmp_path, {AGENT_FILE: agent({"lifecycle": lifecycle})})
    result = invoke(root)
    assert result.exit_code == 2, result.output
    assert re.search(AT_AGENT + rf": spec\.lifecycle\.{re.escape(field)}: {message}",
                     result.output), result.output


def env_of(container: dict[str, Any]) -> dict[str, str | None]:
    return {v["name"]: v.get("value") for v in container.get("env") or []}


def mounts_of(container: dict[str, Any]) -> dict[str, str]:
    return {m["mountPath"]: m["name"] for m in container.get("volumeMounts") or []}


WRITABLE = {"HOME": "/home/agent", "XDG_CACHE_HOME": "/home/agent/.cache",
            "HF_HOME": "/home/agent/.cache/huggingface",
            "TRITON_CACHE_DIR": "/home/agent/.cache/triton"}


def test_every_read_only_container_gets_a_writable_home_and_caches(tmp_path: Path) -> None:
    spec = {"model": {"source": {"uri": "hf://org/model", "cache": {"size": "20Gi"}}},
            "sidecars": [{"name": "helper", "image": "ghcr.io/example/helper:1"},
                         {"name": "logs", "preset": "logShipper"}],
            "state": {"databases": [{"name": "db", "urlSecretRef": {"name": "db", "key": "u"}}]}}
    pod = pod_of(tmp_path, spec)
    everyone = pod["containers"] + pod["initContainers"]
    assert {c["name"] for c in everyone} == {"agent", "helper", "logs", "model-download",
                                              "wait-db"}
    for container in everyone:
        assert env_of(container).items() >= WRITABLE.items(), container["name"]
        assert mounts_of(container).items() >= {"/home/agent": "home", "/tmp": "tmp"}.items()
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["home"]["emptyDir"] == {"sizeLimit": "1Gi"}
    assert volumes["tmp"]["emptyDir"] == {"sizeLimit": "1Gi"}
    assert volumes["agent-logs"]["emptyDir"] == {"sizeLimit": "1Gi"}
    assert volumes["model-cache"]["emptyDir"] == {"sizeLimit": "20Gi"}
    # The pod asks for what its emptyDirs may fill: tmp, home, logs and the model cache.
    assert pod["containers"][0]["resources"]["requests"]["ephemeral-storage"] == "23Gi"


def test_what_the_agent_sets_itself_wins(tmp_path: Path) -> None:
    spec = {"runtime": {"env": [{"name": "HF_HOME", "value": "/mnt/models/hf"}]},
            "resources": {"requests": {"ephemeral-storage": "5Gi"},
                          "scratch": {"tmp": "2Gi", "home": "512Mi"}}}
    pod = pod_of(tmp_path, spec)
    [agent_container] = pod["containers"]
    assert env_of(agent_container)["HF_HOME"] == "/mnt/models/hf"
    assert [v["name"] for v in agent_container["env"]].count("HF_HOME") == 1
    assert agent_container["resources"]["requests"]["ephemeral-storage"] == "5Gi"
    volumes = {v["name"]: v["emptyDir"] for v in pod["volumes"] if "emptyDir" in v}
    assert volumes == {"tmp": {"sizeLimit": "2Gi"}, "home": {"sizeLimit": "512Mi"}}


def test_a_writable_root_needs_no_home_volume(tmp_path: Path) -> None:
    spec = {"security": {"securityContext": {"readOnlyRootFilesystem": False}}}
    pod = pod_of(tmp_path, spec)
    [agent_container] = pod["containers"]
    assert "HOME" not in env_of(agent_container)
    assert {v["name"] for v in pod["volumes"]} == {"config", "tmp"}
    assert agent_container["resources"]["requests"]["ephemeral-storage"] == "1Gi"


def test_a_downloaded_model_needs_a_cache_size(tmp_path: Path) -> None:
    spec = {"model": {"source": {"uri": "hf://org/model"}}}
    root = write_project(tmp_path, {AGENT_FILE: agent(spec)})
    result = invoke(root)
    assert result.exit_code == 2, result.output
    assert re.search(AT_AGENT + r": spec\.model\.source\.cache: a downloaded model needs a "
                     r"cache size \(the emptyDir's sizeLimit", result.output), result.output


def test_a_gpu_agent_where_there_are_no_gpu_nodes_is_an_error(tmp_path: Path) -> None:
    spec = {"resources": {"gpu": {"count": 1}}}
    root = write_project(tmp_path / "none", {AGENT_FILE: agent(spec)})
    result = invoke(root)
    assert result.exit_code == 2, result.output
    assert re.search(AT_AGENT + r": spec\.resources\.gpu: environment dev has no GPU nodes "
                     r"\(nodes\.gpu: false\): the pods would stay Pending", result.output)
    pod = pod_of(tmp_path / "gpu", spec, {"nodes": {"gpu": True}})
    assert pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 1


def test_secrets_as_files_name_the_file_instead_of_the_value(tmp_path: Path) -> None:
    spec = {"model": {"id": "m", "apiKeySecretRef": {"name": "llm", "key": "openai"}},
            "memory": {"session": {"backend": "redis", "urlSecretRef": {"name": "db", "key": "u"}},
                       "longTerm": {"backend": "redis",
                                    "urlSecretRef": {"name": "db", "key": "u"}}},
            "secrets": {"asFiles": True, "env": [{"name": "TOKEN", "secretKeyRef": {
                "name": "llm", "key": "search"}}]}}
    pod = pod_of(tmp_path, spec)
    [agent_container] = pod["containers"]
    env = env_of(agent_container)
    assert not [v for v in agent_container["env"] if "secretKeyRef" in v.get("valueFrom", {})]
    assert {k: v for k, v in env.items() if k.endswith("_FILE")} == {
        "MODEL_API_KEY_FILE": "/var/run/secrets/agent/llm/openai",
        "SESSION_URL_FILE": "/var/run/secrets/agent/db/u",
        "MEMORY_URL_FILE": "/var/run/secrets/agent/db/u",
        "TOKEN_FILE": "/var/run/secrets/agent/llm/search"}
    [volume] = [v for v in pod["volumes"] if v["name"] == "agent-secrets"]
    assert volume["projected"]["sources"] == [  # no subPath: the kubelet updates the files
        {"secret": {"name": "llm", "items": [{"key": "openai", "path": "llm/openai"},
                                             {"key": "search", "path": "llm/search"}]}},
        {"secret": {"name": "db", "items": [{"key": "u", "path": "db/u"}]}}]
    assert {"mountPath": "/var/run/secrets/agent", "name": "agent-secrets",
            "readOnly": True} in agent_container["volumeMounts"]


def test_reloader_rolls_the_pods_on_secrets_read_as_env_and_foreign_config_maps(
        tmp_path: Path) -> None:
    spec = {"model": {"id": "m", "apiKeySecretRef": {"name": "llm", "key": "openai"}},
            "instructions": {"systemMessageFrom": {"configMapKeyRef": {"name": "prompts",
                                                                       "key": "system"}}},
            "runtime": {"envFrom": [{"secretRef": {"name": "extra"}}]},
            "state": {"databases": [{"name": "db", "urlSecretRef": {"name": "pg", "key": "u"}}]}}
    root = write_project(tmp_path / "reloader", {AGENT_FILE: agent(spec),
                                                  ENV_FILE: env({"reloader": True})})
    [workload] = [d for d in rendered(invoke(root)) if d["kind"] == "Deployment"]
    annotations = workload["metadata"]["annotations"]
    assert annotations["secret.reloader.stakater.com/reload"] == "extra,llm,pg"
    # x-config is rendered, and its content hash is already on the pod template.
    assert annotations["configmap.reloader.stakater.com/reload"] == "prompts"

    files = merged(spec, {"secrets": {"asFiles": True}})
    root = write_project(tmp_path / "files", {AGENT_FILE: agent(files),
                                              ENV_FILE: env({"reloader": True})})
    [workload] = [d for d in rendered(invoke(root)) if d["kind"] == "Deployment"]
    # The database waiter still reads its URL as env; the agent's files update themselves.
    assert workload["metadata"]["annotations"]["secret.reloader.stakater.com/reload"] == (
        "extra,pg")

    root = write_project(tmp_path / "none", {AGENT_FILE: agent(spec)})
    [workload] = [d for d in rendered(invoke(root)) if d["kind"] == "Deployment"]
    assert not [k for k in workload["metadata"]["annotations"] if "reloader" in k]


def _deadline(tmp_path: Path, spec: dict[str, Any]) -> int:
    root = write_project(tmp_path, {AGENT_FILE: agent(spec)})
    [workload] = [d for d in rendered(invoke(root)) if d["kind"] == "Deployment"]
    return int(workload["spec"]["progressDeadlineSeconds"])


def _downloading(timeout: int, uri: str = "hf://org/model") -> dict[str, Any]:
    source: dict[str, Any] = {"uri": uri, "downloadTimeoutSeconds": timeout}
    if not uri.startswith("pvc://"):
        source["cache"] = {"size": "10Gi"}
    return {"model": {"id": "gpt-4o", "source": source}}


@pytest.mark.parametrize(("spec", "deadline"), [
    ({}, 600),  # the startup budget (600) alone: Kubernetes' default
    ({"lifecycle": {"probes": {"startup": {"budgetSeconds": 900}}}}, 900),
    ({"lifecycle": {"probes": {"startup": {"enabled": False}}}}, 600),
    (_downloading(1800), 2400),  # the download, then the startup budget
    (_downloading(1800, "pvc://weights/llama"), 600),  # mounted, nothing to download
    ({**_downloading(3600), "rollout": {"progressDeadlineSeconds": 7200}}, 7200),
])
def test_the_progress_deadline_defaults_to_what_a_new_pod_may_take(
        tmp_path: Path, spec: dict[str, Any], deadline: int) -> None:
    assert _deadline(tmp_path, spec) == deadline


def test_a_progress_deadline_shorter_than_download_and_startup_is_refused(
        tmp_path: Path) -> None:
    spec = {**_downloading(1800), "rollout": {"progressDeadlineSeconds": 600}}
    root = write_project(tmp_path, {AGENT_FILE: agent(spec)})
    before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    result = invoke(root)
    assert result.exit_code == 2, result.output
    assert not isinstance(result.exception, Exception) or isinstance(result.exception,
                                                                     SystemExit)
    assert re.search(
        AT_AGENT + r": spec\.rollout\.progressDeadlineSeconds: 600s is shorter than a new pod "
        r"may take to become ready \(model\.source\.downloadTimeoutSeconds 1800 \+ "
        r"lifecycle\.probes\.startup\.budgetSeconds 600 = 2400s\)", result.output), result.output
    assert {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} == before


def test_a_canary_that_downloads_longer_is_checked_on_its_own_track(tmp_path: Path) -> None:
    rollout = {"strategy": "Canary", "progressDeadlineSeconds": 2400,
               "canary": {"weight": 10, "patch": {"model": {"source": {
                   "downloadTimeoutSeconds": 3600}}}}}
    spec = {**_downloading(1800), "replicas": 2, "rollout": rollout}
    root = write_project(tmp_path, {AGENT_FILE: agent(spec)})
    result = invoke(root)
    assert result.exit_code == 2, result.output
    assert "progressDeadlineSeconds: 2400s is shorter" in result.output, result.output
    assert "canary" in result.output, result.output
    # left unset, each track's Deployment gets its own
    rollout.pop("progressDeadlineSeconds")
    root = write_project(tmp_path / "unset", {AGENT_FILE: agent(spec)})
    deadlines = {d["metadata"]["name"]: d["spec"]["progressDeadlineSeconds"]
                 for d in rendered(invoke(root)) if d["kind"] == "Deployment"}
    assert deadlines == {"x": 2400, "x-canary": 4200}
