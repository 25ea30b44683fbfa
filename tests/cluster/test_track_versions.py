"""Per-track versions on the sandbox cluster: `agentctl rollout` edits the environment file,
the tree is rendered, `agentctl reconcile` applies it by server-side apply. A canary goes
start → weight 50 → promote, a blue-green agent flips to a new version and back; every run
succeeds (no object refused, so no 422 on a selector or anything else) and the pods of each
track run that track's image."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from agentctl.cli import app

from . import projects, reconciles
from .kube import Cluster, Kube, poll

pytestmark = pytest.mark.cluster

AGENTS = ("support-bot", "code-review")
TRACK = "agent.inferensys.com/track"


@pytest.fixture
def fleet(cluster: Cluster, tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """support-bot (BlueGreen) and code-review (Canary by replica ratio, weight 25) in the dev
    environment, in a fresh namespace (not applied)."""
    project = tmp_path / "project"
    (project / "agents").mkdir(parents=True)
    (project / "environments").mkdir()
    shutil.copy(projects.ROOT / "agentctl.yaml", project / "agentctl.yaml")
    for name in AGENTS:
        shutil.copy(projects.ROOT / "agents" / f"{name}.yaml", project / "agents")
    doc = yaml.safe_load((projects.ROOT / "environments" / "dev.yaml").read_text())
    namespace = f"t-tracks-{uuid.uuid4().hex[:6]}"
    spec = doc["spec"]
    spec["namespace"] = namespace
    spec["cluster"] = {"context": projects.context_of(cluster.kubeconfig)}
    spec["agents"] = {k: v for k, v in (spec.get("agents") or {}).items() if k in AGENTS}
    (project / "environments" / "dev.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    projects.render_out(project)
    created = cluster.kube.create("/api/v1/namespaces", {
        "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    assert created.status == 201, created.body
    try:
        yield project, namespace
    finally:
        cluster.kube.delete(f"/api/v1/namespaces/{namespace}")


def _rollout(project: Path, *args: str) -> None:
    """An `agentctl rollout` (or promote) command on dev, then the tree rendered again."""
    verb, agent, *rest = args
    result = CliRunner().invoke(app, ["-C", str(project), "rollout", verb, agent,
                                      "--env", "dev", *rest])
    assert result.exit_code == 0, result.output
    projects.render_out(project)


def _reconcile(cluster: Cluster, project: Path) -> None:
    code, document = reconciles.report(cluster, project, "--env", "dev")
    refused = {k: o for k, o in reconciles.objects(document).items() if o["outcome"] == "failed"}
    assert (code, refused) == (0, {}), document


def _images(kube: Kube, namespace: str, agent: str) -> dict[str, set[str]]:
    """Images of the agent container of the agent's live pods, by track."""
    answer = kube.request("GET", f"/api/v1/namespaces/{namespace}/pods", query=[(
        "labelSelector", f"agent.inferensys.com/agent={agent}")])
    assert answer.status == 200, answer.body
    found: dict[str, set[str]] = {}
    for pod in answer.body["items"]:
        if pod["metadata"].get("deletionTimestamp"):
            continue
        [container] = [c for c in pod["spec"]["containers"] if c["name"] == "agent"]
        found.setdefault(pod["metadata"]["labels"][TRACK], set()).add(container["image"])
    return found


def _expect(kube: Kube, namespace: str, agent: str, want: dict[str, set[str]]) -> None:
    poll(lambda: _images(kube, namespace, agent), lambda got: got == want,
         f"{agent} pods running {want}", timeout=120)


def _deployment(kube: Kube, namespace: str, name: str) -> dict[str, Any]:
    answer = kube.get(f"/apis/apps/v1/namespaces/{namespace}/deployments/{name}")
    assert answer.status == 200, answer.body
    body: dict[str, Any] = answer.body
    return body


def test_a_canary_with_its_own_image_goes_start_weight_promote(
        cluster: Cluster, fleet: tuple[Path, str]) -> None:
    project, namespace = fleet
    kube = cluster.kube
    old, new = "ghcr.io/inferensys/review-agent:0.12.0", "ghcr.io/inferensys/review-agent:0.13.0"
    _reconcile(cluster, project)
    _expect(kube, namespace, "code-review", {"main": {old}, "canary": {old}})
    selectors = {n: _deployment(kube, namespace, n)["spec"]["selector"]
                 for n in ("code-review", "code-review-canary")}

    _rollout(project, "start", "code-review", "--set", f"runtime.image={new}", "--weight", "10")
    _reconcile(cluster, project)
    _expect(kube, namespace, "code-review", {"main": {old}, "canary": {new}})

    _rollout(project, "weight", "code-review", "50")
    _reconcile(cluster, project)
    _expect(kube, namespace, "code-review", {"main": {old}, "canary": {new}})
    assert _deployment(kube, namespace, "code-review-canary")["spec"]["replicas"] == 2
    for name, selector in selectors.items():
        assert _deployment(kube, namespace, name)["spec"]["selector"] == selector

    _rollout(project, "promote", "code-review")
    _reconcile(cluster, project)
    _expect(kube, namespace, "code-review", {"main": {new}})
    assert _deployment(kube, namespace, "code-review")["spec"]["selector"] == selectors[
        "code-review"]


def test_a_blue_green_flip_to_a_new_version_and_back(
        cluster: Cluster, fleet: tuple[Path, str]) -> None:
    project, namespace = fleet
    kube = cluster.kube
    old, new = "ghcr.io/inferensys/support-agent:3.4.0", "ghcr.io/inferensys/support-agent:3.5.0"
    _reconcile(cluster, project)
    _expect(kube, namespace, "support-bot", {"blue": {old}, "green": {old}})

    _rollout(project, "start", "support-bot", "--set", f"runtime.image={new}")
    _reconcile(cluster, project)
    _expect(kube, namespace, "support-bot", {"blue": {old}, "green": {new}})

    def active() -> str:
        answer = kube.get(f"/api/v1/namespaces/{namespace}/services/support-bot")
        assert answer.status == 200, answer.body
        return str(answer.body["spec"]["selector"][TRACK])

    _rollout(project, "promote", "support-bot")   # flip: green (the new version) serves
    _reconcile(cluster, project)
    assert active() == "green"
    _expect(kube, namespace, "support-bot", {"blue": {old}, "green": {new}})
    assert _deployment(kube, namespace, "support-bot-green")["spec"]["replicas"] == 2

    _rollout(project, "promote", "support-bot")   # flip back: blue still runs the old version
    _reconcile(cluster, project)
    assert active() == "blue"
    _expect(kube, namespace, "support-bot", {"blue": {old}, "green": {new}})
