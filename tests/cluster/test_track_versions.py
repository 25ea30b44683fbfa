"""Per-track versions on the sandbox cluster: `agentctl rollout` edits the environment file,
the tree is rendered, `agentctl reconcile` applies it by server-side apply. A canary goes
start → weight 50 → promote, a blue-green agent flips to a new version and back; every run
succeeds (no object refused, so no 422 on a selector or anything else), the pods of each
track run that track's image, and `agentctl status` (JSON and the table) shows each track's
own runtime image, apart from its sidecars', and its ready/desired replicas."""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from agentctl.cli import app
from agentctl.render import publishing

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
    spec.setdefault("capabilities", []).append(publishing.AGENT_CAPABILITY)  # for status
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
    code, document = reconciles.report(cluster, project, "--env", "dev", "--install-crd")
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


Tracks = dict[str, tuple[str, int, int]]
"""Per track: the runtime's image, ready and desired replicas."""
_ORDER = ("blue", "green", "main", "canary")
"""The tracks in the table's order: the workloads' names sorted (`<agent>` before
`<agent>-canary`, `<agent>-blue` before `<agent>-green`)."""


def _status(cluster: Cluster, project: Path, *args: str) -> str:
    result = CliRunner().invoke(app, ["-C", str(project), "status", "--env", "dev",
                                      "--kubeconfig", str(cluster.kubeconfig), *args])
    assert result.exit_code == 0, result.output
    return result.stdout


def _tracks(cluster: Cluster, project: Path, agent: str) -> tuple[Tracks, list[str]]:
    """`agentctl status -o json`: the agent's tracks, and the sidecar images of all."""
    [env] = json.loads(_status(cluster, project, "-o", "json"))["environments"]
    [found] = [a for a in env["agents"] if a["name"] == agent]
    return ({t["track"]: (t["image"], t["readyReplicas"], t["replicas"])
             for t in found["tracks"]}, [i for t in found["tracks"] for i in t["sidecarImages"]])


def _shows(cluster: Cluster, project: Path, agent: str, want: Tracks,
           sidecar: str = "") -> None:
    """`agentctl status` settles on `want` for the agent (JSON), every track running the
    `sidecar` image beside its own (none when empty), and its table row says the same."""
    tracks, sidecars = poll(lambda: _tracks(cluster, project, agent),
                            lambda got: got[0] == want, f"status of {agent}: {want}")
    assert sidecars == ([sidecar] * len(want) if sidecar else []), sidecars
    assert not {image for image, _, _ in tracks.values()} & set(sidecars)
    [row] = [line for line in _status(cluster, project).splitlines()
             if line.startswith(f"{agent} ")]
    more = " (+1 sidecar)" if sidecar else ""
    ordered = sorted(want.items(), key=lambda item: _ORDER.index(item[0]))
    assert row.endswith(", ".join(f"{track} {image}{more} {ready}/{replicas}"
                                  for track, (image, ready, replicas) in ordered)), row


def _deployment(kube: Kube, namespace: str, name: str) -> dict[str, Any]:
    answer = kube.get(f"/apis/apps/v1/namespaces/{namespace}/deployments/{name}")
    assert answer.status == 200, answer.body
    body: dict[str, Any] = answer.body
    return body


def _sidecar(project: Path) -> str:
    """The image of support-bot's log shipper, as rendered (a preset's pinned image; a native
    sidecar, so an init container that keeps running)."""
    rendered = project / "rendered" / "dev"
    [path] = list(rendered.rglob("deployment-support-bot-blue.yaml"))
    pod = yaml.safe_load(path.read_text())["spec"]["template"]["spec"]
    [image] = [c["image"] for c in [*pod["containers"], *pod.get("initContainers", [])]
               if c["name"] == "logs"]
    return str(image)


def test_a_canary_with_its_own_image_goes_start_weight_promote(
        cluster: Cluster, fleet: tuple[Path, str]) -> None:
    project, namespace = fleet
    kube = cluster.kube
    old, new = "ghcr.io/inferensys/review-agent:0.12.0", "ghcr.io/inferensys/review-agent:0.13.0"
    _reconcile(cluster, project)
    _expect(kube, namespace, "code-review", {"main": {old}, "canary": {old}})
    _shows(cluster, project, "code-review", {"main": (old, 3, 3), "canary": (old, 1, 1)})
    selectors = {n: _deployment(kube, namespace, n)["spec"]["selector"]
                 for n in ("code-review", "code-review-canary")}

    _rollout(project, "start", "code-review", "--set", f"runtime.image={new}", "--weight", "10")
    _reconcile(cluster, project)
    _expect(kube, namespace, "code-review", {"main": {old}, "canary": {new}})
    _shows(cluster, project, "code-review", {"main": (old, 3, 3), "canary": (new, 1, 1)})

    _rollout(project, "weight", "code-review", "50")
    _reconcile(cluster, project)
    _expect(kube, namespace, "code-review", {"main": {old}, "canary": {new}})
    assert _deployment(kube, namespace, "code-review-canary")["spec"]["replicas"] == 2
    _shows(cluster, project, "code-review", {"main": (old, 2, 2), "canary": (new, 2, 2)})
    for name, selector in selectors.items():
        assert _deployment(kube, namespace, name)["spec"]["selector"] == selector

    _rollout(project, "promote", "code-review")
    _reconcile(cluster, project)
    _expect(kube, namespace, "code-review", {"main": {new}})
    _shows(cluster, project, "code-review", {"main": (new, 4, 4)})
    assert _deployment(kube, namespace, "code-review")["spec"]["selector"] == selectors[
        "code-review"]


def test_a_blue_green_flip_to_a_new_version_and_back(
        cluster: Cluster, fleet: tuple[Path, str]) -> None:
    project, namespace = fleet
    kube = cluster.kube
    old, new = "ghcr.io/inferensys/support-agent:3.4.0", "ghcr.io/inferensys/support-agent:3.5.0"
    _reconcile(cluster, project)
    _expect(kube, namespace, "support-bot", {"blue": {old}, "green": {old}})
    sidecar = _sidecar(project)
    _shows(cluster, project, "support-bot", {"blue": (old, 2, 2), "green": (old, 1, 1)},
           sidecar)

    _rollout(project, "start", "support-bot", "--set", f"runtime.image={new}")
    _reconcile(cluster, project)
    _expect(kube, namespace, "support-bot", {"blue": {old}, "green": {new}})
    _shows(cluster, project, "support-bot", {"blue": (old, 2, 2), "green": (new, 1, 1)},
           sidecar)

    def active() -> str:
        answer = kube.get(f"/api/v1/namespaces/{namespace}/services/support-bot")
        assert answer.status == 200, answer.body
        return str(answer.body["spec"]["selector"][TRACK])

    _rollout(project, "promote", "support-bot")   # flip: green (the new version) serves
    _reconcile(cluster, project)
    assert active() == "green"
    _expect(kube, namespace, "support-bot", {"blue": {old}, "green": {new}})
    assert _deployment(kube, namespace, "support-bot-green")["spec"]["replicas"] == 2
    _shows(cluster, project, "support-bot", {"blue": (old, 1, 1), "green": (new, 2, 2)},
           sidecar)

    _rollout(project, "promote", "support-bot")   # flip back: blue still runs the old version
    _reconcile(cluster, project)
    assert active() == "blue"
    _expect(kube, namespace, "support-bot", {"blue": {old}, "green": {new}})
    _shows(cluster, project, "support-bot", {"blue": (old, 2, 2), "green": (new, 1, 1)},
           sidecar)
