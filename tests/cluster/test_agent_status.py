"""Agent objects and their status on the sandbox cluster: a declared Agent capability without
the CRD is refused before anything is written; `reconcile --install-crd` installs the CRD,
applies the Agents and writes their status, which the sandbox's `kubectl get agents` prints; a
run that changes nothing writes no status; a failed rollout is Degraded with its reason, and
recovers; `agentctl status` prints what the cluster holds."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from agentctl.cli import app
from agentctl.cluster import recording
from agentctl.render import publishing
from agentctl.sandbox import building, specs

from . import projects, reconciles
from .kube import Cluster, Kube, wait_for
from .test_diff import run as diff_run

pytestmark = pytest.mark.cluster

CRD = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/agents.agent.inferensys.com"
PARENT = "agentctl-example-fleet-dev"


def _agents_path(ns: str) -> str:
    return f"/apis/agent.inferensys.com/v1alpha1/namespaces/{ns}/agents"


def _declare(project: Path, only: str | None = None) -> None:
    """Declare the Agent capability in dev (keeping only agent `only`), and render."""
    path = project / "environments" / "dev.yaml"
    doc = yaml.safe_load(path.read_text())
    doc["spec"].setdefault("capabilities", []).append(publishing.AGENT_CAPABILITY)
    for agent in (project / "agents").glob("*.yaml"):
        if only is not None and agent.stem != only:
            agent.unlink()
    present = {p.stem for p in (project / "agents").glob("*.yaml")}
    doc["spec"]["agents"] = {k: v for k, v in (doc["spec"].get("agents") or {}).items()
                             if k in present}  # overrides of agents left out of the copy
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    projects.render_out(project)


def _without_crd(kube: Kube) -> None:
    """The Agent CRD is gone (another test of this module may have installed it)."""
    if kube.get(CRD).status == 200:
        kube.delete(CRD)
    wait_for(lambda: kube.get(CRD).status == 404, "the Agent CRD to be deleted")
    wait_for(lambda: "agent.inferensys.com" not in {
        g["name"] for g in kube.get("/apis").body["groups"]}, "the Agent API to leave discovery")


@pytest.fixture
def dev(cluster: Cluster, tmp_path: Path) -> Iterator[tuple[Path, str]]:
    with reconciles.dev_project(cluster, tmp_path) as (project, ns):
        _declare(project)
        yield project, ns


@pytest.fixture
def one(cluster: Cluster, tmp_path: Path) -> Iterator[tuple[Path, str]]:
    with reconciles.dev_project(cluster, tmp_path) as (project, ns):
        _declare(project, only="chat-assistant")
        yield project, ns


def _statuses(kube: Kube, ns: str) -> dict[str, dict[str, Any]]:
    return {a["metadata"]["name"]: a.get("status") or {}
            for a in kube.get(_agents_path(ns)).body["items"]}


def _versions(kube: Kube, ns: str) -> dict[str, str]:
    return {a["metadata"]["name"]: a["metadata"]["resourceVersion"]
            for a in kube.get(_agents_path(ns)).body["items"]}


def _agent_writes(cluster: Cluster) -> float:
    """Writes the API server served to agents, their status included (its own metrics)."""
    _, url, headers, _, _ = cluster.api.param_serialize(
        method="GET", resource_path="/metrics", header_params={"Accept": "text/plain"},
        auth_settings=["BearerToken"])
    answer = cluster.api.call_api("GET", url, header_params=headers, _request_timeout=30)
    answer.read()
    total = 0.0
    for line in answer.data.decode().splitlines():
        if line.startswith("apiserver_request_total{") and 'resource="agents"' in line \
                and any(f'verb="{verb}"' in line for verb in reconciles.WRITES):
            total += float(line.rsplit(" ", 1)[1])
    return total


def _status_cli(cluster: Cluster, project: Path, *args: str) -> Any:
    result = CliRunner().invoke(app, ["-C", str(project), "status", "--kubeconfig",
                                      str(cluster.kubeconfig), "--env", "dev", *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert result.exit_code != 70, result.output  # an internal error is a bug
    return result


def test_install_crd_applies_the_agents_and_writes_status_once(
        cluster: Cluster, dev: tuple[Path, str]) -> None:
    project, ns = dev
    kube = cluster.kube
    _without_crd(kube)
    # declared but not served: refused in the preflight, before the lease or anything else
    code, document = reconciles.report(cluster, project, "--env", "dev")
    assert code == 3, document
    lease = f"/apis/coordination.k8s.io/v1/namespaces/{ns}/leases/{PARENT}"
    assert kube.get(lease).status == 404
    assert kube.get(f"/api/v1/namespaces/{ns}/configmaps/{PARENT}").status == 404

    code, document = reconciles.report(cluster, project, "--env", "dev", "--install-crd")
    assert code == 0, document
    crd = kube.get(CRD).body
    assert {c["type"]: c["status"] for c in crd["status"]["conditions"]}["Established"] == \
        "True"
    [env] = document["environments"]
    assert env["requests"]["PATCH crd"] == 1, env["requests"]
    agents = {a["name"]: a for a in env["agents"]}
    names = {m.agent for m in projects.desired(project, "dev").manifests}
    assert set(agents) == names
    assert all(a["statusWritten"] and a["phase"] == "Ready" for a in agents.values()), agents
    live = _statuses(kube, ns)
    for name, status in live.items():
        assert status["phase"] == "Ready", (name, status)
        conditions = {c["type"]: c["status"] for c in status["conditions"]}
        assert conditions == {"Ready": "True", "Progressing": "False", "Degraded": "False"}
        assert status["readyReplicas"] == status["replicas"] == status["availableReplicas"] > 0
        assert status["renderedDigest"].startswith("sha256:")
        assert status["observedGeneration"] == 1
    assert live["support-bot"]["activeSlot"] == "blue"
    assert live["code-review"]["canaryWeight"] == 25
    parent = kube.get(f"/api/v1/namespaces/{ns}/configmaps/{PARENT}").body
    first = parent["metadata"]["annotations"][recording.LAST_RUN]
    assert parent["metadata"]["annotations"][recording.LAST_RESULT] == "converged"

    # the sandbox's own kubectl prints the CRD's printer columns
    printed = subprocess.run(
        [str(building.binary("kubectl")), "--kubeconfig", str(cluster.kubeconfig), "get",
         "agents", "-n", ns], capture_output=True, text=True, timeout=60, check=False)
    assert printed.returncode == 0, printed.stderr
    header, *rows = printed.stdout.splitlines()
    assert header.split()[:5] == ["NAME", "PHASE", "READY", "AVAILABLE", "DESIRED"], header
    assert {row.split()[0]: row.split()[1:3] for row in rows} == {
        name: ["Ready", "True"] for name in names}

    # a run that changes nothing writes no status (and the CRD not again): the parent's time
    # is the only write besides the lease and the Event
    time.sleep(1.1)  # the parent's time has seconds
    versions = _versions(kube, ns)
    before = _agent_writes(cluster)
    code, document = reconciles.report(cluster, project, "--env", "dev", "--install-crd")
    assert code == 0, document
    [env] = document["environments"]
    assert not any(a["statusWritten"] for a in env["agents"]), env["agents"]
    writes = {k for k in env["requests"] if k.split(" ")[0] in reconciles.WRITES}
    assert writes <= {"PUT lease", "PUT lease release", "POST event", "PATCH parent"}, writes
    assert _agent_writes(cluster) == before
    assert _versions(kube, ns) == versions
    parent = kube.get(f"/api/v1/namespaces/{ns}/configmaps/{PARENT}").body
    assert parent["metadata"]["annotations"][recording.LAST_RUN] > first
    assert diff_run(cluster, project, "--env", "dev").exit_code == 0

    # agentctl status prints the same, read from the cluster
    result = _status_cli(cluster, project, "-o", "json")
    assert result.exit_code == 0, result.output
    [shown] = json.loads(result.stdout)["environments"]
    assert {a["name"]: a["status"] for a in shown["agents"]} == _statuses(kube, ns)
    assert shown["lastReconcileTime"] == parent["metadata"]["annotations"][recording.LAST_RUN]
    tracks = {a["name"]: {t["track"] for t in a["tracks"]} for a in shown["agents"]}
    assert tracks["support-bot"] == {"blue", "green"}
    result = _status_cli(cluster, project)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[1].split()[:3] == ["AGENT", "PHASE", "READY"], result.stdout
    assert any(line.split()[:4] == ["support-bot", "Ready", "2/2", "blue"] for line in lines), \
        result.stdout


def _chaos(cluster: Cluster, ns: str, value: str | None) -> None:
    """Another field manager adds (or drops) the sandbox's chaos label on chat-assistant's
    pods."""
    labels = {specs.FAIL_LABEL: value} if value else {}
    answer = cluster.kube.apply(f"/apis/apps/v1/namespaces/{ns}/deployments/chat-assistant", {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "chat-assistant", "namespace": ns},
        "spec": {"template": {"metadata": {"labels": labels}}}}, manager="chaos-monkey")
    assert answer.status == 200, answer.body


def _bump_image(project: Path) -> None:
    path = project / "agents" / "chat-assistant.yaml"
    doc = yaml.safe_load(path.read_text())
    doc["spec"]["runtime"]["image"] += "-next"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    projects.render_out(project)


def test_a_failed_rollout_is_degraded_with_its_reason_and_recovers(
        cluster: Cluster, one: tuple[Path, str]) -> None:
    project, ns = one
    kube = cluster.kube
    code, document = reconciles.report(cluster, project, "--env", "dev", "--install-crd")
    assert code == 0, document
    ready = _statuses(kube, ns)["chat-assistant"]
    assert ready["phase"] == "Ready"

    _chaos(cluster, ns, "crash")
    _bump_image(project)
    code, document = reconciles.report(cluster, project, "--env", "dev", "--timeout", "2m")
    assert code == 4, document
    [env] = document["environments"]
    assert env["agents"] == [{"name": "chat-assistant", "namespace": ns, "phase": "Degraded",
                              "statusWritten": True}]
    status = _statuses(kube, ns)["chat-assistant"]
    conditions = {c["type"]: c for c in status["conditions"]}
    assert status["phase"] == "Degraded"  # the old pod still serves
    assert conditions["Degraded"]["status"] == "True"
    assert conditions["Degraded"]["reason"] == "ReconcileFailed"
    assert "CrashLoopBackOff" in conditions["Degraded"]["message"]
    assert conditions["Ready"]["status"] == "False"
    assert status["observedGeneration"] == 2  # the Agent's spec changed with the image
    assert status["renderedDigest"] != ready["renderedDigest"]
    assert status["lastAppliedTime"] >= ready["lastAppliedTime"]
    parent = kube.get(f"/api/v1/namespaces/{ns}/configmaps/{PARENT}").body
    assert parent["metadata"]["annotations"][recording.LAST_RESULT] == "failed"
    result = _status_cli(cluster, project)
    assert result.exit_code == 0, result.output
    assert any(line.split()[:2] == ["chat-assistant", "Degraded"]
               for line in result.stdout.splitlines()), result.stdout
    assert "CrashLoopBackOff" in result.stdout

    # the other manager lets go: new pods start. The objects are as rendered, so the next run
    # applies nothing and waits for nothing; the status says what it sees, no longer Degraded
    _chaos(cluster, ns, None)
    code, document = reconciles.report(cluster, project, "--env", "dev")
    assert code == 0, document
    assert document["environments"][0]["agents"][0]["statusWritten"] is True
    status = _statuses(kube, ns)["chat-assistant"]
    assert status["phase"] in ("Progressing", "Ready"), status
    assert {c["type"]: c["status"] for c in status["conditions"]}["Degraded"] == "False"
    path = f"/apis/apps/v1/namespaces/{ns}/deployments/chat-assistant"

    def rolled_out() -> bool:
        body = kube.get(path).body
        wanted = body["spec"]["replicas"]
        state = body["status"]
        return bool(state.get("observedGeneration") == body["metadata"]["generation"]
                and state.get("updatedReplicas") == state.get("availableReplicas") == wanted
                and state.get("replicas") == wanted)

    wait_for(rolled_out, "chat-assistant to roll out")
    code, document = reconciles.report(cluster, project, "--env", "dev")
    assert code == 0, document
    assert _statuses(kube, ns)["chat-assistant"]["phase"] == "Ready"
