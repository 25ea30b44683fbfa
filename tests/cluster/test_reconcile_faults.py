"""reconcile when the API server fails mid-run, through a fault-injecting proxy: answers of 500,
throttling with 429, and a server that stops answering. A failed run exits non-zero and prunes
nothing; the next run converges. Also a write by someone else between the prune's read and its
delete: the server refuses the delete (409), and the object is judged again."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentctl.cluster import leasing

from . import faults, projects, reconciles
from .kube import Cluster, Kube
from .test_diff import run as diff_run

pytestmark = pytest.mark.cluster


@pytest.fixture
def changed(cluster: Cluster, tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """dev reconciled, then the gpu-inference agent removed and chat-assistant changed: the
    next run has applies and a prune to do."""
    with reconciles.dev_project(cluster, tmp_path) as (project, ns):
        assert reconciles.report(cluster, project, "--env", "dev", "--no-wait")[0] == 0
        (project / "agents" / "gpu-inference.yaml").unlink()
        path = project / "agents" / "chat-assistant.yaml"
        path.write_text(path.read_text().replace("chat-agent:1.2.0", "chat-agent:1.3.0"))
        projects.render_out(project)
        yield project, ns


def _still_there(kube: Kube, ns: str) -> bool:
    return kube.get(f"/apis/apps/v1/namespaces/{ns}/deployments/gpu-inference").status == 200


def _applies(method: str, path: str) -> bool:
    return method == "PATCH" and "fieldManager=agentctl" in path and "dryRun" not in path


def test_500s_fail_the_objects_prune_nothing_and_the_next_run_converges(
        cluster: Cluster, changed: tuple[Path, str], tmp_path: Path) -> None:
    project, ns = changed

    def fault(method: str, path: str) -> int | None:
        return 500 if _applies(method, path) and "/deployments/" in path else None

    with faults.proxy(cluster, tmp_path, fault) as kubeconfig:
        result = reconciles.invoke(cluster, project, "--env", "dev", "--no-wait", "-o", "json",
                                   kubeconfig=kubeconfig)
    assert result.exit_code == 4, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    assert _still_there(cluster.kube, ns)
    code, document = reconciles.report(cluster, project, "--env", "dev", "--no-wait")
    assert code == 0, document
    assert reconciles.objects(document)["Deployment/gpu-inference"]["outcome"] == "deleted"
    assert diff_run(cluster, project, "--env", "dev").exit_code == 0


def test_throttling_is_retried_and_the_run_converges(
        cluster: Cluster, changed: tuple[Path, str], tmp_path: Path) -> None:
    project, ns = changed
    seen: dict[str, int] = {}
    lock = threading.Lock()

    def fault(method: str, path: str) -> int | None:
        if method not in ("GET", "PATCH"):
            return None  # POST is never retried (it is not idempotent)
        with lock:
            seen[f"{method} {path}"] = seen.get(f"{method} {path}", 0) + 1
            return 429 if seen[f"{method} {path}"] == 1 else None  # each request once

    with faults.proxy(cluster, tmp_path, fault) as kubeconfig:
        result = reconciles.invoke(cluster, project, "--env", "dev", "--no-wait",
                                   kubeconfig=kubeconfig)
    assert result.exit_code == 0, result.output
    assert len(seen) > 20, seen
    assert all(n >= 2 for n in seen.values()), seen  # each throttled once, then retried
    assert not _still_there(cluster.kube, ns) or "deletionTimestamp" in cluster.kube.get(
        f"/apis/apps/v1/namespaces/{ns}/deployments/gpu-inference").body["metadata"]


def test_a_server_that_stops_mid_run_is_exit_3_prunes_nothing_and_the_next_run_converges(
        cluster: Cluster, changed: tuple[Path, str], tmp_path: Path) -> None:
    project, ns = changed
    stopped = threading.Event()

    def fault(method: str, path: str) -> int | None:
        if _applies(method, path):
            stopped.set()
        return faults.DROP if stopped.is_set() else None

    with faults.proxy(cluster, tmp_path, fault) as kubeconfig:
        result = reconciles.invoke(cluster, project, "--env", "dev", "--no-wait",
                                   kubeconfig=kubeconfig)
    assert result.exit_code == 3, result.output
    assert "cannot reach" in result.output
    assert isinstance(result.exception, SystemExit), result.exception
    assert _still_there(cluster.kube, ns)
    # its lease could not be released: it expires, and then the next run takes it over
    stopped_at = time.monotonic()
    assert reconciles.invoke(cluster, project, "--env", "dev").exit_code == 5
    time.sleep(max(0.0, leasing.DURATION + 2 - (time.monotonic() - stopped_at)))
    code, document = reconciles.report(cluster, project, "--env", "dev", "--no-wait")
    assert code == 0, document
    assert document["environments"][0]["lease"]["tookOverFrom"]
    assert reconciles.objects(document)["Deployment/gpu-inference"]["outcome"] == "deleted"
    assert diff_run(cluster, project, "--env", "dev").exit_code == 0


@pytest.mark.parametrize(("annotation", "outcome"), [
    ("someone.example.com/touched", "deleted"),  # a write in between: read and delete again
    ("agent.inferensys.com/prune", "skipped"),  # a guard set in between: kept after all
])
def test_a_write_between_the_prunes_read_and_its_delete_is_judged_again(
        cluster: Cluster, changed: tuple[Path, str], tmp_path: Path, annotation: str,
        outcome: str) -> None:
    """The delete's resourceVersion precondition fails for real (the server answers 409): the
    object is read again and its guards are checked on what it is now."""
    project, ns = changed
    path = f"/apis/apps/v1/namespaces/{ns}/deployments/gpu-inference"
    deletes: list[str] = []

    def fault(method: str, request: str) -> int | None:
        if method == "DELETE" and request.partition("?")[0] == path:
            deletes.append(request)
            if len(deletes) == 1:  # someone else writes just before the first delete lands
                answer = cluster.kube.request(
                    "PATCH", path, {"metadata": {"annotations": {annotation: "disabled"}}},
                    query=[("fieldManager", "someone-else")],
                    content_type="application/merge-patch+json")
                assert answer.status == 200, answer.body
        return None

    with faults.proxy(cluster, tmp_path, fault) as kubeconfig:
        result = reconciles.invoke(cluster, project, "--env", "dev", "--no-wait", "-o", "json",
                                   kubeconfig=kubeconfig)
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert reconciles.objects(document)["Deployment/gpu-inference"]["outcome"] == outcome
    live = cluster.kube.get(path)
    if outcome == "deleted":
        assert len(deletes) == 2, deletes
        assert live.status == 404 or "deletionTimestamp" in live.body["metadata"]
    else:
        assert len(deletes) == 1, deletes
        assert live.status == 200
        assert "applyset.kubernetes.io/part-of" not in live.body["metadata"]["labels"]
