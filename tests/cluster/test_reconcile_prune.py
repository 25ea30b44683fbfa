"""reconcile's ApplySet prune on the sandbox cluster: a removed agent's objects are deleted; a
foreign object with the same labels, an object with ownerReferences, one annotated
`agent.inferensys.com/prune: disabled` and a PVC are kept (the kept members leave the set, so
the next run converges); a mass deletion and prune-off are honoured; and every guard is checked
again on a fresh read just before the delete."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from agentctl.cluster import changes, discovering, pruning
from agentctl.diffs import Outcome
from agentctl.manifests import LABEL_PART_OF

from . import projects, reconciles
from .kube import Cluster, Kube
from .test_diff import by_name
from .test_diff import report as diff_report
from .test_diff import run as diff_run

pytestmark = pytest.mark.cluster
GPU = {"ConfigMap/gpu-inference-config", "Deployment/gpu-inference",
       "PersistentVolumeClaim/gpu-inference-model-cache", "Service/gpu-inference",
       "ServiceAccount/gpu-inference"}
"""What the gpu-inference agent renders in dev."""


@pytest.fixture
def applied(cluster: Cluster, tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """The example dev environment, reconciled (without waiting)."""
    with reconciles.dev_project(cluster, tmp_path) as (project, ns):
        code, document = reconciles.report(cluster, project, "--env", "dev", "--no-wait")
        assert code == 0, document
        yield project, ns


def _paths(ns: str) -> dict[str, str]:
    return {"ConfigMap/gpu-inference-config": f"/api/v1/namespaces/{ns}/configmaps/"
                                              "gpu-inference-config",
            "Deployment/gpu-inference": f"/apis/apps/v1/namespaces/{ns}/deployments/"
                                        "gpu-inference",
            "PersistentVolumeClaim/gpu-inference-model-cache":
                f"/api/v1/namespaces/{ns}/persistentvolumeclaims/gpu-inference-model-cache",
            "Service/gpu-inference": f"/api/v1/namespaces/{ns}/services/gpu-inference",
            "ServiceAccount/gpu-inference": f"/api/v1/namespaces/{ns}/serviceaccounts/"
                                            "gpu-inference"}


def _gone(kube: Kube, path: str) -> bool:
    answer = kube.get(path)
    return answer.status == 404 or "deletionTimestamp" in answer.body["metadata"]


def _label(kube: Kube, path: str) -> str | None:
    value = kube.get(path).body["metadata"].get("labels", {}).get(LABEL_PART_OF)
    return None if value is None else str(value)


def _merge(kube: Kube, path: str, patch: dict[str, Any]) -> None:
    answer = kube.request("PATCH", path, patch, query=[("fieldManager", "someone-else")],
                          content_type="application/merge-patch+json")
    assert answer.status == 200, answer.body


def _owner(kube: Kube, ns: str) -> dict[str, Any]:
    made = kube.create(f"/api/v1/namespaces/{ns}/configmaps", {
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "an-owner"}})
    assert made.status == 201, made.body
    return {"apiVersion": "v1", "kind": "ConfigMap", "name": "an-owner",
            "uid": made.body["metadata"]["uid"]}


def _remove_agent(project: Path, name: str) -> None:
    (project / "agents" / f"{name}.yaml").unlink()
    projects.render_out(project)


def test_a_removed_agent_is_pruned_and_guarded_objects_are_kept_and_released(
        cluster: Cluster, applied: tuple[Path, str]) -> None:
    project, ns = applied
    kube = cluster.kube
    paths = _paths(ns)
    # someone else's object with the agent's labels, but not a member of the set
    labels = dict(kube.get(paths["ConfigMap/gpu-inference-config"]).body["metadata"]["labels"])
    labels.pop(LABEL_PART_OF)
    assert kube.create(f"/api/v1/namespaces/{ns}/configmaps", {
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "gpu-inference-notes", "labels": labels}}).status == 201
    _merge(kube, paths["ServiceAccount/gpu-inference"],
           {"metadata": {"ownerReferences": [_owner(kube, ns)]}})
    _merge(kube, paths["Service/gpu-inference"],
           {"metadata": {"annotations": {changes.ANNOTATION_PRUNE: "disabled"}}})
    _remove_agent(project, "gpu-inference")

    code, document = reconciles.report(cluster, project, "--env", "dev", "--no-wait")
    assert code == 0, document
    found = reconciles.objects(document)
    outcomes = {name: found[name]["outcome"] for name in GPU}
    assert outcomes == {"ConfigMap/gpu-inference-config": "deleted",
                        "Deployment/gpu-inference": "deleted",
                        "PersistentVolumeClaim/gpu-inference-model-cache": "skipped",
                        "Service/gpu-inference": "skipped",
                        "ServiceAccount/gpu-inference": "skipped"}, found
    assert "ConfigMap/gpu-inference-notes" not in found
    assert "owned by ConfigMap/an-owner" in found["ServiceAccount/gpu-inference"]["reason"]
    assert "prune: disabled" in found["Service/gpu-inference"]["reason"]
    assert "unless the environment lists it in spec.pruneKinds" in found[
        "PersistentVolumeClaim/gpu-inference-model-cache"]["reason"]
    assert document["environments"][0]["pruned"] is True
    for name in ("ConfigMap/gpu-inference-config", "Deployment/gpu-inference"):
        assert _gone(kube, paths[name]), name
    for name in ("PersistentVolumeClaim/gpu-inference-model-cache", "Service/gpu-inference",
                 "ServiceAccount/gpu-inference"):
        assert kube.get(paths[name]).status == 200, name
        assert _label(kube, paths[name]) is None, name  # released from the set
    assert kube.get(f"/api/v1/namespaces/{ns}/configmaps/gpu-inference-notes").status == 200

    # the next run converges: nothing to delete or keep, and diff agrees
    code, document = reconciles.report(cluster, project, "--env", "dev", "--no-wait")
    assert code == 0, document
    summary = document["environments"][0]["summary"]
    assert summary["deleted"] == summary["skipped"] == summary["failed"] == 0, summary
    assert summary["created"] == summary["configured"] == 0, summary
    assert diff_run(cluster, project, "--env", "dev").exit_code == 0


def test_an_environment_that_opts_in_prunes_a_removed_agents_pvc(
        cluster: Cluster, applied: tuple[Path, str]) -> None:
    project, ns = applied
    kube = cluster.kube
    path = _paths(ns)["PersistentVolumeClaim/gpu-inference-model-cache"]
    env_file = project / "environments" / "dev.yaml"
    environment = yaml.safe_load(env_file.read_text())
    environment["spec"]["pruneKinds"] = ["PersistentVolumeClaim"]
    env_file.write_text(yaml.safe_dump(environment, sort_keys=False))
    _remove_agent(project, "gpu-inference")

    code, planned = diff_report(cluster, project, "--env", "dev")
    assert code == 1, planned
    assert by_name(planned)["PersistentVolumeClaim/gpu-inference-model-cache"][
        "outcome"] == "deleted"
    code, document = reconciles.report(cluster, project, "--env", "dev", "--no-wait")
    assert code == 0, document
    found = reconciles.objects(document)
    assert {found[name]["outcome"] for name in GPU} == {"deleted"}, found
    assert _gone(kube, path)


def test_prune_off_keeps_the_members_in_the_set(cluster: Cluster,
                                                applied: tuple[Path, str]) -> None:
    project, ns = applied
    kube = cluster.kube
    paths = _paths(ns)
    _remove_agent(project, "gpu-inference")
    code, document = reconciles.report(cluster, project, "--env", "dev", "--no-wait",
                                       "--no-prune")
    assert code == 0, document
    found = reconciles.objects(document)
    assert {found[name]["outcome"] for name in GPU} == {"skipped"}, found
    assert "prune is off" in found["Deployment/gpu-inference"]["reason"]
    for path in paths.values():
        assert _label(kube, path) is not None, path  # still members: a later run prunes
    code, document = reconciles.report(cluster, project, "--env", "dev", "--no-wait")
    assert code == 0, document
    assert reconciles.objects(document)["Deployment/gpu-inference"]["outcome"] == "deleted"
    assert _gone(kube, paths["Deployment/gpu-inference"])


def test_a_mass_deletion_is_refused_before_anything_is_applied(
        cluster: Cluster, applied: tuple[Path, str]) -> None:
    project, ns = applied
    kube = cluster.kube
    before = projects.desired(project, "dev")
    for name in ("chat-assistant", "code-review", "support-bot", "research-memory"):
        (project / "agents" / f"{name}.yaml").unlink()
    path = project / "agents" / "gpu-inference.yaml"
    doc = yaml.safe_load(path.read_text())
    image = doc["spec"]["runtime"]["image"]
    doc["spec"]["runtime"]["image"] = image + "-next"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    projects.render_out(project)
    after = projects.desired(project, "dev")
    removed = len({m.ref for m in before.manifests} - {m.ref for m in after.manifests})
    assert removed > 10
    code, document = reconciles.report(cluster, project, "--env", "dev", "--no-wait")
    assert code == 4
    assert document == {}
    result = reconciles.invoke(cluster, project, "--env", "dev", "--no-wait")
    assert result.exit_code == 4
    assert isinstance(result.exception, SystemExit)
    assert f"would delete {removed} of its" in result.output, result.output
    assert "--max-deletions" in result.output
    assert kube.get(f"/apis/apps/v1/namespaces/{ns}/deployments/chat-assistant").status == 200
    live = kube.get(f"/apis/apps/v1/namespaces/{ns}/deployments/gpu-inference").body
    assert image in [c["image"] for c in live["spec"]["template"]["spec"]["containers"]]
    assert image + "-next" not in str(live)  # nothing was applied either
    code, document = reconciles.report(cluster, project, "--env", "dev", "--no-wait",
                                       "--max-deletions", str(removed))
    assert code == 0, document
    assert document["environments"][0]["summary"]["deleted"] == removed - sum(
        1 for m in before.manifests if m.ref.kind == "PersistentVolumeClaim"
        and m.ref not in {a.ref for a in after.manifests})


def test_each_guard_is_checked_again_on_a_fresh_read_before_the_delete(
        cluster: Cluster, applied: tuple[Path, str]) -> None:
    """The change set says delete; between it and the prune, the objects change: the prune
    keeps what is now guarded, skips what left the set and fails what was replaced."""
    project, ns = applied
    kube = cluster.kube
    paths = _paths(ns)
    _remove_agent(project, "gpu-inference")
    desired = projects.desired(project, "dev")
    client = projects.client(cluster.kubeconfig, desired)
    try:
        resources = discovering.discover(client)
        planned = changes.compute(client, resources, desired).changes
        planned_outcomes = {f"{c.ref.kind}/{c.ref.name}": c.outcome for c in planned}
        assert planned_outcomes["ServiceAccount/gpu-inference"] == Outcome.DELETED
        assert planned_outcomes["Service/gpu-inference"] == Outcome.DELETED
        assert planned_outcomes["Deployment/gpu-inference"] == Outcome.DELETED
        assert planned_outcomes["ConfigMap/gpu-inference-config"] == Outcome.DELETED
        # meanwhile: an owner, an annotation, a label moved away, an object replaced
        _merge(kube, paths["ServiceAccount/gpu-inference"],
               {"metadata": {"ownerReferences": [_owner(kube, ns)]}})
        _merge(kube, paths["Service/gpu-inference"],
               {"metadata": {"annotations": {changes.ANNOTATION_PRUNE: "disabled"}}})
        _merge(kube, paths["Deployment/gpu-inference"],
               {"metadata": {"labels": {LABEL_PART_OF: "applyset-other-v1"}}})
        ok = pruning.prune(client, resources, desired, planned, True)
        assert ok
        outcomes = {f"{c.ref.kind}/{c.ref.name}": (c.outcome, c.reason) for c in planned
                    if f"{c.ref.kind}/{c.ref.name}" in GPU}
    finally:
        client.close()
    assert outcomes["ServiceAccount/gpu-inference"][0] == Outcome.SKIPPED, outcomes
    assert "owned by" in outcomes["ServiceAccount/gpu-inference"][1]
    assert outcomes["Service/gpu-inference"][0] == Outcome.SKIPPED, outcomes
    assert outcomes["Deployment/gpu-inference"][0] == Outcome.SKIPPED, outcomes
    assert "no longer a member" in outcomes["Deployment/gpu-inference"][1]
    for name in ("ServiceAccount/gpu-inference", "Service/gpu-inference",
                 "Deployment/gpu-inference"):
        assert kube.get(paths[name]).status == 200, name
    assert outcomes["ConfigMap/gpu-inference-config"][0] == Outcome.DELETED, outcomes
    assert _gone(kube, paths["ConfigMap/gpu-inference-config"])
    assert _label(kube, paths["Deployment/gpu-inference"]) == "applyset-other-v1"


def _kinds(kube: Kube, ns: str) -> set[str]:
    parent = kube.get(f"/api/v1/namespaces/{ns}/configmaps/agentctl-example-fleet-dev").body
    return set(parent["metadata"]["annotations"][changes.APPLYSET_KINDS].split(","))


def test_the_parent_stays_a_superset_until_a_prune_succeeds(
        cluster: Cluster, applied: tuple[Path, str]) -> None:
    """research-memory is the only StatefulSet: its kind leaves the parent's group-kinds only
    once its members are gone, so a run interrupted before that still finds them."""
    project, ns = applied
    kube = cluster.kube
    assert "StatefulSet.apps" in _kinds(kube, ns)
    _remove_agent(project, "research-memory")
    for args in (["--no-prune"], ["--dry-run"]):
        code, document = reconciles.report(cluster, project, "--env", "dev", "--no-wait",
                                           *args)
        assert code == 0, document
        assert "StatefulSet.apps" in _kinds(kube, ns), args
    found = reconciles.objects(document)
    assert found["StatefulSet/research-memory"]["outcome"] == "deleted"  # would be
    path = f"/apis/apps/v1/namespaces/{ns}/statefulsets/research-memory"
    assert kube.get(path).status == 200  # the dry run deleted nothing
    assert _label(kube, path) is not None
    code, document = reconciles.report(cluster, project, "--env", "dev", "--no-wait")
    assert code == 0, document
    assert _gone(kube, path)
    assert "StatefulSet.apps" not in _kinds(kube, ns)
    assert "Deployment.apps" in _kinds(kube, ns)
