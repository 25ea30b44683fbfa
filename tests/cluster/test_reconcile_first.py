"""A first reconcile sends one write per object: no dry-run of the objects the set does not
hold yet (diff still dry-runs them), yet an existing object of a rendered name that is not the
set's is still a refused takeover, left as it was, and the run converges once it is gone."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from agentctl.manifests import LABEL_PART_OF

from . import projects, reconciles
from .kube import Cluster
from .test_diff import run as diff_run

pytestmark = pytest.mark.cluster


@pytest.fixture
def dev(cluster: Cluster, tmp_path: Path) -> Iterator[tuple[Path, str]]:
    with reconciles.dev_project(cluster, tmp_path) as found:
        yield found


def test_a_first_run_writes_each_object_once_and_still_refuses_a_takeover(
        cluster: Cluster, dev: tuple[Path, str]) -> None:
    project, ns = dev
    kube = cluster.kube
    configmaps = f"/api/v1/namespaces/{ns}/configmaps"
    foreign = kube.create(configmaps, {"apiVersion": "v1", "kind": "ConfigMap",
                                       "metadata": {"name": "chat-assistant-config",
                                                    "namespace": ns},
                                       "data": {"owner": "someone else"}})
    assert foreign.status == 201, foreign.body
    other = kube.create(configmaps, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {
        "name": "code-review-config", "namespace": ns,
        "labels": {LABEL_PART_OF: "applyset-other-v1"}}, "data": {"owner": "another set"}})
    assert other.status == 201, other.body
    # diff still dry-runs what it would create: the takeovers show there too
    assert diff_run(cluster, project, "--env", "dev").exit_code == 4

    code, document = reconciles.report(cluster, project, "--env", "dev", "--no-wait")
    assert code == 4, document
    [env] = document["environments"]
    assert "PATCH dryRun" not in env["requests"], env["requests"]
    members = len(projects.desired(project, "dev").manifests)
    assert env["requests"]["PATCH apply"] == members + 1 - 2, env["requests"]
    found = reconciles.objects(document)
    for name, why in (("chat-assistant-config", "without the"),
                      ("code-review-config", "applyset-other-v1")):
        change = found[f"ConfigMap/{name}"]
        assert change["outcome"] == "failed", change
        assert "takeover refused" in change["reason"], change
        assert why in change["reason"], change
    assert kube.get(f"{configmaps}/chat-assistant-config").body["data"] == {
        "owner": "someone else"}
    assert kube.get(f"{configmaps}/code-review-config").body["metadata"]["labels"][
        LABEL_PART_OF] == "applyset-other-v1"
    assert env["summary"]["created"] == members + 1 - 2, env["summary"]

    for name in ("chat-assistant-config", "code-review-config"):
        assert kube.delete(f"{configmaps}/{name}").status == 200
    code, document = reconciles.report(cluster, project, "--env", "dev", "--no-wait")
    assert code == 0, document
    assert reconciles.objects(document)["ConfigMap/chat-assistant-config"]["outcome"] == \
        "created"
    assert diff_run(cluster, project, "--env", "dev").exit_code == 0
