"""Blue-green flips, canary steps and the in-place refusal on the sandbox cluster, with the
example project's support-bot (BlueGreen, replicas 2, previewReplicas 1) and code-review (Canary
by replica ratio, replicas 4, weight 25) in a fresh namespace.

What is watched is what a user would notice: which slot the Service sends traffic to and how
many pods it has available (polled all through a run), which Deployment shrinks when, and what
the report and diff say. Unready pods come from the sandbox's chaos label, which another field
manager adds to a pod template."""

from __future__ import annotations

import shutil
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml

from agentctl.cluster import slots
from agentctl.sandbox import specs

from . import projects, reconciles
from .kube import Cluster, Kube, poll
from .test_diff import report as diff_report
from .test_diff import run as diff_run

pytestmark = pytest.mark.cluster

AGENTS = ("support-bot", "code-review")


@pytest.fixture
def fleet(cluster: Cluster, tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """support-bot and code-review in the dev environment, in a fresh namespace (not applied)."""
    project = tmp_path / "project"
    (project / "agents").mkdir(parents=True)
    (project / "environments").mkdir()
    shutil.copy(projects.ROOT / "agentctl.yaml", project / "agentctl.yaml")
    for name in AGENTS:
        shutil.copy(projects.ROOT / "agents" / f"{name}.yaml", project / "agents")
    doc = yaml.safe_load((projects.ROOT / "environments" / "dev.yaml").read_text())
    namespace = f"t-flip-{uuid.uuid4().hex[:6]}"
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


def _edit(project: Path, agent: str, change: Callable[[dict[str, Any]], None]) -> None:
    """Edit an agent's spec and render the committed tree again (a commit)."""
    path = project / "agents" / f"{agent}.yaml"
    doc = yaml.safe_load(path.read_text())
    change(doc["spec"])
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    projects.render_out(project)


def _activate(slot: str) -> Callable[[dict[str, Any]], None]:
    def change(spec: dict[str, Any]) -> None:
        spec["rollout"]["blueGreen"]["activeSlot"] = slot
    return change


def _deployment(kube: Kube, ns: str, name: str) -> dict[str, Any]:
    found = kube.get(f"/apis/apps/v1/namespaces/{ns}/deployments/{name}")
    assert found.status == 200, found.body
    return dict(found.body)


def _track(kube: Kube, ns: str, service: str) -> str:
    body = kube.get(f"/api/v1/namespaces/{ns}/services/{service}").body
    return str(body["spec"]["selector"]["agent.inferensys.com/track"])


def _chaos(kube: Kube, ns: str, name: str, labels: dict[str, str]) -> None:
    """Another field manager sets (or, with no labels, lets go of) pod-template labels."""
    body: dict[str, Any] = {"apiVersion": "apps/v1", "kind": "Deployment",
                            "metadata": {"name": name, "namespace": ns}}
    if labels:
        body["spec"] = {"template": {"metadata": {"labels": labels}}}
    answer = kube.apply(f"/apis/apps/v1/namespaces/{ns}/deployments/{name}", body,
                        manager="chaos-monkey")
    assert answer.status == 200, answer.body


def _replicas_managers(deployment: dict[str, Any]) -> set[str]:
    """`manager (operation[, subresource])` of every entry owning spec.replicas."""
    found = set()
    for entry in deployment["metadata"].get("managedFields", []):
        if "f:replicas" in (entry.get("fieldsV1", {}).get("f:spec") or {}):
            sub = entry.get("subresource")
            found.add(f"{entry['manager']} ({entry['operation']}{', ' + sub if sub else ''})")
    return found


@contextmanager
def _watching(kube: Kube, ns: str, read: Callable[[], Any]) -> Iterator[list[Any]]:
    """Poll `read` in a thread for as long as the block runs; yields the observations."""
    seen: list[Any] = []
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            seen.append(read())
            stop.wait(0.05)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield seen
    finally:
        stop.set()
        thread.join(timeout=30)


def _serving(kube: Kube, ns: str) -> Callable[[], tuple[str, int]]:
    """The slot Service support-bot selects, and the pods available in it: read in that order,
    so a switch to a slot is seen only with what that slot had when it was switched to."""
    def read() -> tuple[str, int]:
        track = _track(kube, ns, "support-bot")
        status = _deployment(kube, ns, f"support-bot-{track}").get("status", {})
        return track, int(status.get("availableReplicas", 0))
    return read


def test_a_flip_to_a_slot_that_never_becomes_ready_is_refused_and_traffic_stays(
        cluster: Cluster, fleet: tuple[Path, str]) -> None:
    project, ns = fleet
    kube = cluster.kube
    assert reconciles.report(cluster, project, "--env", "dev")[0] == 0
    _chaos(kube, ns, "support-bot-green", {specs.FAIL_LABEL: "unready"})
    _edit(project, "support-bot", _activate("green"))

    code, document = reconciles.report(cluster, project, "--env", "dev", "--timeout", "10s")
    assert code == 4, document
    found = reconciles.objects(document)
    green = found["Deployment/support-bot-green"]
    assert green["outcome"] == "failed", green
    assert "flip of support-bot to slot green refused" in green["reason"], green
    assert "not healthy after 10s (--timeout): waiting for" in green["reason"], green
    assert "still select slot blue" in green["reason"], green
    for name in ("Service/support-bot", "Service/support-bot-preview",
                 "Deployment/support-bot-blue"):
        assert found[name]["outcome"] == "skipped", found[name]
        assert "traffic stays on slot blue" in found[name]["reason"], found[name]
    assert document["environments"][0]["pruned"] is False
    # the Services still point at the old slot, which kept its replicas
    assert _track(kube, ns, "support-bot") == "blue"
    assert _track(kube, ns, "support-bot-preview") == "green"
    assert _deployment(kube, ns, "support-bot-blue")["spec"]["replicas"] == 2
    # the new slot was scaled to the old slot's live replicas; the chaos label is untouched
    live = _deployment(kube, ns, "support-bot-green")
    assert live["spec"]["replicas"] == 2
    assert live["spec"]["template"]["metadata"]["labels"][specs.FAIL_LABEL] == "unready"

    # the text report: one line naming the slot, no traceback
    result = reconciles.invoke(cluster, project, "--env", "dev", "--timeout", "3s")
    assert result.exit_code == 4, result.output
    lines = [line for line in result.stdout.splitlines() if line.startswith("failed")]
    assert len(lines) == 1, result.stdout
    assert lines[0].startswith(f"failed     Deployment/{ns}/support-bot-green: blue-green "
                               "flip of support-bot to slot green refused"), lines

    # once the slot's pods can become ready, the next run flips; a commit that also changes
    # the image flips without --allow-in-place (the old slot changes after the switch)
    _chaos(kube, ns, "support-bot-green", {})

    def next_image(spec: dict[str, Any]) -> None:
        spec["runtime"]["image"] += "-next"

    _edit(project, "support-bot", next_image)
    code, document = reconciles.report(cluster, project, "--env", "dev")
    assert code == 0, document
    assert _track(kube, ns, "support-bot") == "green"
    assert _track(kube, ns, "support-bot-preview") == "blue"
    for slot, replicas in (("green", 2), ("blue", 1)):
        live = _deployment(kube, ns, f"support-bot-{slot}")
        assert live["spec"]["replicas"] == replicas, (slot, live["spec"])
        assert live["spec"]["template"]["spec"]["containers"][0]["image"].endswith("-next")
    assert diff_run(cluster, project, "--env", "dev").exit_code == 0


def _autoscaled(spec: dict[str, Any]) -> None:
    spec.pop("replicas", None)
    spec["scaling"] = {"engine": "hpa", "minReplicas": 3, "maxReplicas": 6}


def _flip_watched(cluster: Cluster, project: Path, ns: str,
                  slot: str) -> tuple[dict[str, Any], list[tuple[str, int]]]:
    _edit(project, "support-bot", _activate(slot))
    with _watching(cluster.kube, ns, _serving(cluster.kube, ns)) as seen:
        code, document = reconciles.report(cluster, project, "--env", "dev")
    assert code == 0, document
    return document, list(seen)


def _check_flip(cluster: Cluster, project: Path, ns: str, old: str, new: str,
                live: int) -> None:
    """Flip to `new` with the poll running: no conflict, traffic moved, the serving slot never
    had fewer than `live` pods available, replicas handed over the documented way."""
    kube = cluster.kube
    document, seen = _flip_watched(cluster, project, ns, new)
    found = reconciles.objects(document)
    assert not [o for o in found.values() if o["outcome"] == "failed"], found
    assert "conflict" not in str(document), document
    assert {track for track, _ in seen} == {old, new}, seen
    assert min(available for _, available in seen) >= live, seen
    assert _track(kube, ns, "support-bot") == new
    hpa = kube.get(f"/apis/autoscaling/v2/namespaces/{ns}/horizontalpodautoscalers/"
                   "support-bot").body
    assert hpa["spec"]["scaleTargetRef"]["name"] == f"support-bot-{new}"
    active, preview = (_deployment(kube, ns, f"support-bot-{s}") for s in (new, old))
    assert active["spec"]["replicas"] == live
    assert preview["spec"]["replicas"] == 1
    # agentctl's own apply leaves the active slot's replicas to the hand-over manager (until
    # the HPA writes them), and owns the preview's alone
    assert _replicas_managers(active) == {f"{slots.REPLICAS_MANAGER} (Apply)"}, \
        _replicas_managers(active)
    assert _replicas_managers(preview) == {"agentctl (Apply)"}, _replicas_managers(preview)
    # converged: nothing left to change
    assert diff_run(cluster, project, "--env", "dev").exit_code == 0


def test_with_an_hpa_a_flip_and_a_flip_back_never_drop_below_the_live_replicas(
        cluster: Cluster, fleet: tuple[Path, str]) -> None:
    project, ns = fleet
    kube = cluster.kube
    _edit(project, "support-bot", _autoscaled)
    assert reconciles.report(cluster, project, "--env", "dev")[0] == 0
    # the HPA raises the active slot (rendered without replicas) to its minimum
    poll(lambda: _deployment(kube, ns, "support-bot-blue"),
         lambda d: d["spec"]["replicas"] == 3
         and d.get("status", {}).get("availableReplicas") == 3,
         "the HPA to scale support-bot-blue to 3 available", timeout=90)
    _check_flip(cluster, project, ns, "blue", "green", live=3)

    # under load the HPA scales green to 4 through the scale subresource, and owns the field
    scale = f"/apis/apps/v1/namespaces/{ns}/deployments/support-bot-green/scale"
    answer = kube.request("PATCH", scale, {"spec": {"replicas": 4}},
                          query=[("fieldManager", "horizontal-pod-autoscaler")],
                          content_type="application/merge-patch+json")
    assert answer.status == 200, answer.body
    green = poll(lambda: _deployment(kube, ns, "support-bot-green"),
                 lambda d: d.get("status", {}).get("availableReplicas") == 4,
                 "support-bot-green to have 4 available")
    assert _replicas_managers(green) == {"horizontal-pod-autoscaler (Update, scale)"}
    assert diff_run(cluster, project, "--env", "dev").exit_code == 0  # the HPA's field
    # a dry run of the flip back: the server accepts every step, nothing moves
    _edit(project, "support-bot", _activate("blue"))
    code, document = reconciles.report(cluster, project, "--env", "dev", "--dry-run")
    assert code == 0, document
    assert reconciles.objects(document)["Deployment/support-bot-green"]["outcome"] == \
        "configured"
    assert _track(kube, ns, "support-bot") == "green"
    assert _deployment(kube, ns, "support-bot-green")["spec"]["replicas"] == 4
    assert _deployment(kube, ns, "support-bot-blue")["spec"]["replicas"] == 1
    _check_flip(cluster, project, ns, "green", "blue", live=4)  # the live count, not 3


def _weight(value: int) -> Callable[[dict[str, Any]], None]:
    def change(spec: dict[str, Any]) -> None:
        spec["rollout"]["canary"]["weight"] = value
    return change


def _tracks(kube: Kube, ns: str) -> tuple[int, int, int]:
    """The stable track's replicas, then the canary's replicas and available pods (read in
    that order: a shrunk stable track is seen only with what the canary had by then)."""
    stable = _deployment(kube, ns, "code-review")["spec"]["replicas"]
    canary = _deployment(kube, ns, "code-review-canary")
    return (stable, canary["spec"]["replicas"],
            int(canary.get("status", {}).get("availableReplicas", 0)))


def test_a_canary_weight_increase_scales_the_canary_and_waits_before_the_stable_shrinks(
        cluster: Cluster, fleet: tuple[Path, str]) -> None:
    project, ns = fleet
    kube = cluster.kube
    assert reconciles.report(cluster, project, "--env", "dev")[0] == 0
    assert _tracks(kube, ns) == (3, 1, 1)
    _edit(project, "code-review", _weight(50))
    with _watching(kube, ns, lambda: _tracks(kube, ns)) as seen:
        code, document = reconciles.report(cluster, project, "--env", "dev")
    assert code == 0, document
    assert _tracks(kube, ns) == (2, 2, 2)
    shrunk = [s for s in seen if s[0] == 2]
    assert shrunk, seen  # the poll saw the stable track shrink …
    assert all(available == 2 for _, _, available in shrunk), seen  # … only once ready
    assert any(canary == 2 and available < 2 for _, canary, available in seen), seen

    # a canary that never becomes ready leaves the stable track as it was
    _chaos(kube, ns, "code-review-canary", {specs.FAIL_LABEL: "unready"})
    _edit(project, "code-review", _weight(75))
    code, document = reconciles.report(cluster, project, "--env", "dev", "--timeout", "8s")
    assert code == 4, document
    found = reconciles.objects(document)
    canary = found["Deployment/code-review-canary"]
    assert canary["outcome"] == "failed", canary
    assert "not healthy after 8s (--timeout)" in canary["reason"], canary
    stable = found["Deployment/code-review"]
    assert stable["outcome"] == "skipped", stable
    assert "did not become healthy, so the other track keeps its replicas" in \
        stable["reason"], stable
    assert _deployment(kube, ns, "code-review")["spec"]["replicas"] == 2


def _next_image(spec: dict[str, Any]) -> None:
    spec["runtime"]["image"] += "-next"


def test_an_in_place_change_of_the_live_active_slot_is_refused_unless_allowed(
        cluster: Cluster, fleet: tuple[Path, str]) -> None:
    project, ns = fleet
    kube = cluster.kube
    assert reconciles.report(cluster, project, "--env", "dev")[0] == 0
    image = _deployment(kube, ns, "support-bot-blue")["spec"]["template"]["spec"][
        "containers"][0]["image"]
    _edit(project, "support-bot", _next_image)  # both slots: the live active one too

    # diff shows the refusal reconcile makes, with the same reason
    code, shown = diff_report(cluster, project, "--env", "dev")
    assert code == 4, shown
    planned = reconciles.objects(shown)["Deployment/support-bot-blue"]
    assert planned["outcome"] == "failed", planned
    code, document = reconciles.report(cluster, project, "--env", "dev")
    assert code == 4, document
    found = reconciles.objects(document)
    blue = found["Deployment/support-bot-blue"]
    assert blue["outcome"] == "failed", blue
    assert blue["reason"] == planned["reason"]
    assert "in-place change of the live active slot blue" in blue["reason"], blue
    assert "/spec/template/spec/containers/0/image" in blue["reason"], blue
    assert "--allow-in-place" in blue["reason"], blue
    live = _deployment(kube, ns, "support-bot-blue")
    assert live["spec"]["template"]["spec"]["containers"][0]["image"] == image
    # the preview slot is no live traffic: it changed
    assert found["Deployment/support-bot-green"]["outcome"] == "configured"
    assert _deployment(kube, ns, "support-bot-green")["spec"]["template"]["spec"][
        "containers"][0]["image"] == image + "-next"

    code, shown = diff_report(cluster, project, "--env", "dev", "--allow-in-place")
    assert code == 1, shown
    code, document = reconciles.report(cluster, project, "--env", "dev", "--allow-in-place")
    assert code == 0, document
    assert reconciles.objects(document)["Deployment/support-bot-blue"]["outcome"] == \
        "configured"
    live = _deployment(kube, ns, "support-bot-blue")
    assert live["spec"]["template"]["spec"]["containers"][0]["image"] == image + "-next"
    assert live["status"]["availableReplicas"] == 2
    assert diff_run(cluster, project, "--env", "dev").exit_code == 0
