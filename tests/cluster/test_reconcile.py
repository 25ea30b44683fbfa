"""`agentctl reconcile` on the sandbox cluster: the example fleet created and waited for, a
second run that writes nothing to the objects it manages, drift corrected or reported as a
conflict, unhealthy rollouts named, and --dry-run changing nothing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from agentctl.cluster import reconciling
from agentctl.sandbox import specs

from . import projects, reconciles
from .kube import Cluster, Kube, wait_for
from .test_diff import run as diff_run

pytestmark = pytest.mark.cluster


@pytest.fixture
def dev(cluster: Cluster, tmp_path: Path) -> Iterator[tuple[Path, str]]:
    with reconciles.dev_project(cluster, tmp_path) as found:
        yield found


def _deployments(kube: Kube, namespace: str) -> list[dict[str, Any]]:
    body = kube.get(f"/apis/apps/v1/namespaces/{namespace}/deployments").body
    return list(body["items"])


def _versions(kube: Kube, namespace: str) -> dict[str, str]:
    """resourceVersion of every object of the managed kinds in the namespace (but the
    namespace's own default ServiceAccount and root CA ConfigMap)."""
    found = {}
    for path in ("/api/v1/namespaces/{ns}/configmaps", "/api/v1/namespaces/{ns}/services",
                 "/api/v1/namespaces/{ns}/serviceaccounts",
                 "/api/v1/namespaces/{ns}/persistentvolumeclaims",
                 "/apis/apps/v1/namespaces/{ns}/deployments",
                 "/apis/apps/v1/namespaces/{ns}/statefulsets",
                 "/apis/policy/v1/namespaces/{ns}/poddisruptionbudgets",
                 "/apis/autoscaling/v2/namespaces/{ns}/horizontalpodautoscalers",
                 "/apis/networking.k8s.io/v1/namespaces/{ns}/networkpolicies"):
        for item in kube.get(path.format(ns=namespace)).body["items"]:
            meta = item["metadata"]
            if meta["name"] in ("default", "kube-root-ca.crt"):
                continue
            found[f"{item.get('kind', path)}/{meta['name']}"] = meta["resourceVersion"]
    return found


def test_first_run_creates_and_waits_then_a_second_run_writes_nothing(
        cluster: Cluster, dev: tuple[Path, str]) -> None:
    project, ns = dev
    kube = cluster.kube
    code, document = reconciles.report(cluster, project, "--env", "dev")
    assert code == 0, document
    [env] = document["environments"]
    members = len(projects.desired(project, "dev").manifests)
    assert env["summary"]["created"] == members + 1, env["summary"]  # and the parent
    assert env["converged"] is True
    # the wait held the run until every rollout finished: nothing left to wait for now
    for deployment in _deployments(kube, ns):
        status = deployment["status"]
        assert status.get("availableReplicas", 0) == deployment["spec"]["replicas"], status
        assert status["observedGeneration"] == deployment["metadata"]["generation"]
        assert {c["type"]: c["status"] for c in status["conditions"]}["Available"] == "True"
    sts = kube.get(f"/apis/apps/v1/namespaces/{ns}/statefulsets/research-memory").body
    assert sts["status"].get("readyReplicas") == sts["spec"]["replicas"], sts["status"]
    claim = kube.get(f"/api/v1/namespaces/{ns}/persistentvolumeclaims/"
                     "gpu-inference-model-cache").body
    assert claim["status"]["phase"] == "Bound"

    versions = _versions(kube, ns)
    # The server's counts are cluster-wide: let earlier tests' namespaces finish terminating
    # (the namespace controller deletes their objects, and the root CA publisher re-creates
    # their kube-root-ca.crt until they are gone).
    wait_for(lambda: not [n for n in kube.get("/api/v1/namespaces").body["items"]
                          if n.get("status", {}).get("phase") == "Terminating"],
             "no namespace terminating", timeout=180)
    before = reconciles.metric_writes(cluster)
    code, document = reconciles.report(cluster, project, "--env", "dev")
    after = reconciles.metric_writes(cluster)
    assert code == 0, document
    [env] = document["environments"]
    assert env["summary"]["unchanged"] == members + 1, env["summary"]
    # agentctl's own count: reads, the lease and the event; no write to a managed object
    requests = env["requests"]
    writes = {k: n for k, n in requests.items() if k.split(" ")[0] in reconciles.WRITES}
    assert set(writes) <= {"PUT lease", "PUT lease release", "POST event"}, requests
    # the API server's count (every client), and not one object changed
    assert {k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k)} == {}
    assert _versions(kube, ns) == versions
    # and diff agrees: nothing to change
    result = diff_run(cluster, project, "--env", "dev")
    assert result.exit_code == 0, result.output
    # the run left its Event on the ApplySet parent, and its lease free
    events = kube.get(f"/api/v1/namespaces/{ns}/events?fieldSelector=involvedObject.name="
                      "agentctl-example-fleet-dev").body["items"]
    assert [e["reason"] for e in events] == ["Reconciled", "Reconciled"], events
    lease = kube.get(f"/apis/coordination.k8s.io/v1/namespaces/{ns}/leases/"
                     "agentctl-example-fleet-dev").body
    assert "holderIdentity" not in lease["spec"], lease


def test_text_report_is_a_summary_table(cluster: Cluster, dev: tuple[Path, str]) -> None:
    project, _ = dev
    result = reconciles.invoke(cluster, project, "--env", "dev", "--no-wait")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[-2].split()[:7] == ["ENVIRONMENT", "CREATED", "CONFIGURED", "UNCHANGED",
                                     "DELETED", "SKIPPED", "FAILED"], result.stdout
    assert lines[-1].split()[0] == "dev", result.stdout
    assert "converged" in lines[-1], result.stdout
    assert any(line.startswith("created    Deployment/") for line in lines), result.stdout


def test_drift_is_a_conflict_without_force_and_corrected_with_it(
        cluster: Cluster, dev: tuple[Path, str]) -> None:
    project, ns = dev
    kube = cluster.kube
    assert reconciles.report(cluster, project, "--env", "dev", "--no-wait")[0] == 0
    path = f"/apis/apps/v1/namespaces/{ns}/deployments/chat-assistant"
    scaled = kube.request("PATCH", f"{path}/scale", {"spec": {"replicas": 3}},
                          query=[("fieldManager", "kubectl")],
                          content_type="application/merge-patch+json")
    assert scaled.status == 200, scaled.body
    code, document = reconciles.report(cluster, project, "--env", "dev", "--no-wait")
    assert code == 4, document
    found = reconciles.objects(document)["Deployment/chat-assistant"]
    assert found["outcome"] == "failed", found
    assert "conflict" in found["reason"], found
    assert "kubectl" in found["reason"], found
    assert ".spec.replicas" in found["reason"], found
    assert kube.get(path).body["spec"]["replicas"] == 3  # left alone
    code, document = reconciles.report(cluster, project, "--env", "dev", "--no-wait",
                                       "--force-conflicts")
    assert code == 0, document
    assert reconciles.objects(document)["Deployment/chat-assistant"]["outcome"] == \
        "configured"
    assert kube.get(path).body["spec"]["replicas"] == 1
    assert diff_run(cluster, project, "--env", "dev").exit_code == 0


def test_dry_run_changes_nothing_and_reports_what_would_happen(
        cluster: Cluster, dev: tuple[Path, str]) -> None:
    project, ns = dev
    kube = cluster.kube
    code, document = reconciles.report(cluster, project, "--env", "dev", "--dry-run")
    assert code == 0, document
    [env] = document["environments"]
    assert env["dryRun"] is True
    assert env["summary"]["created"] > 10, env["summary"]
    assert _versions(kube, ns) == {}  # nothing was created
    assert kube.get(f"/apis/coordination.k8s.io/v1/namespaces/{ns}/leases/"
                    "agentctl-example-fleet-dev").status == 404
    assert all(k.split(" ")[0] not in reconciles.WRITES or "dryRun" in k
               or k in ("POST lease", "POST event") for k in env["requests"]), env["requests"]


def _chaos(cluster: Cluster, project: Path, ns: str, value: str) -> None:
    """Another field manager adds the sandbox's chaos label to support-bot-green's pods."""
    path = f"/apis/apps/v1/namespaces/{ns}/deployments/support-bot-green"
    answer = cluster.kube.apply(path, {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "support-bot-green", "namespace": ns},
        "spec": {"template": {"metadata": {"labels": {specs.FAIL_LABEL: value}}}}},
        manager="chaos-monkey")
    assert answer.status == 200, answer.body


def test_a_crashing_rollout_fails_fast_naming_object_and_reason(
        cluster: Cluster, dev: tuple[Path, str]) -> None:
    project, ns = dev
    assert reconciles.report(cluster, project, "--env", "dev")[0] == 0
    _chaos(cluster, project, ns, "crash")
    # a change of the agent rolls new pods, which crash; the wait names them long before
    # its five minutes are up
    path = project / "agents" / "support-bot.yaml"
    doc = yaml.safe_load(path.read_text())
    doc["spec"]["runtime"]["image"] += "-next"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    projects.render_out(project)
    # (the image changes in both slots, the live active one too: --allow-in-place)
    code, document = reconciles.report(cluster, project, "--env", "dev", "--timeout", "5m",
                                       "--allow-in-place")
    assert code == 4, document
    found = reconciles.objects(document)["Deployment/support-bot-green"]
    assert found["outcome"] == "failed", found
    assert "CrashLoopBackOff" in found["reason"], found
    assert document["environments"][0]["seconds"] < 240, document["environments"][0]


def test_an_unready_rollout_times_out_naming_what_it_waited_for(
        cluster: Cluster, dev: tuple[Path, str]) -> None:
    project, ns = dev
    assert reconciles.report(cluster, project, "--env", "dev")[0] == 0
    _chaos(cluster, project, ns, "unready")
    path = project / "agents" / "support-bot.yaml"
    doc = yaml.safe_load(path.read_text())
    doc["spec"]["runtime"]["image"] += "-next"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    projects.render_out(project)
    code, document = reconciles.report(cluster, project, "--env", "dev", "--timeout", "8s",
                                       "--allow-in-place")
    assert code == 4, document
    found = reconciles.objects(document)["Deployment/support-bot-green"]
    assert found["outcome"] == "failed", found
    assert "not healthy after 8s (--timeout)" in found["reason"], found
    assert "replicas available" in found["reason"], found


def test_the_python_api_reports_requests_and_honours_no_wait(
        cluster: Cluster, dev: tuple[Path, str]) -> None:
    project, _ = dev
    env = projects.desired(project, "dev")
    done = reconciling.reconcile(env, (), cluster.kubeconfig,
                                 options=reconciling.Options(wait=False))
    assert not done.failed
    assert done.sent["PATCH apply"] == len(env.manifests) + 1, done.sent
    assert "PATCH dryRun" not in done.sent, done.sent  # a new object's apply is its check
    kinds = {(m.ref.group, m.ref.kind) for m in env.manifests}
    # the change set's, by ApplySet label and, for the new objects, by name; no wait
    assert done.sent["LIST"] == 2 * len(kinds), done.sent


def _reseal(project: Path, file_suffix: str, edit: Any) -> None:
    """Edit one committed object and re-seal its digest and provenance.json, as a change that
    render would have made."""
    import json

    from agentctl.manifests import ANNOTATION_DIGEST, digest

    path = next((project / "rendered" / "dev").glob(f"*/{file_suffix}"))
    body = yaml.safe_load(path.read_text())
    edit(body)
    value = digest(body)  # without its digest annotation
    body["metadata"]["annotations"][ANNOTATION_DIGEST] = value
    path.write_text(yaml.safe_dump(body))
    provenance = project / "rendered" / "dev" / "provenance.json"
    doc = json.loads(provenance.read_text())
    for entry in doc["objects"]:
        if entry["file"].endswith(file_suffix):
            entry["digest"] = value
    provenance.write_text(json.dumps(doc))


def test_an_immutable_field_fails_that_object_with_an_explanation(
        cluster: Cluster, dev: tuple[Path, str]) -> None:
    project, ns = dev
    kube = cluster.kube
    assert reconciles.report(cluster, project, "--env", "dev", "--no-wait")[0] == 0

    def shared(body: dict[str, Any]) -> None:
        body["spec"]["accessModes"] = ["ReadWriteMany"]

    def bigger(body: dict[str, Any]) -> None:
        body["data"]["model-id"] = "another-model"

    _reseal(project, "persistentvolumeclaim-gpu-inference-model-cache.yaml", shared)
    _reseal(project, "configmap-chat-assistant-config.yaml", bigger)
    code, document = reconciles.report(cluster, project, "--env", "dev", "--no-wait")
    assert code == 4, document
    found = reconciles.objects(document)
    claim = found["PersistentVolumeClaim/gpu-inference-model-cache"]
    assert claim["outcome"] == "failed", claim
    assert "immutable" in claim["reason"], claim
    assert "replaced" in claim["reason"], claim
    path = f"/api/v1/namespaces/{ns}/persistentvolumeclaims/gpu-inference-model-cache"
    assert kube.get(path).body["spec"]["accessModes"] == ["ReadWriteOnce"]  # no re-create
    # the other change is applied; nothing is pruned while something failed
    assert found["ConfigMap/chat-assistant-config"]["outcome"] == "configured"
    assert kube.get(f"/api/v1/namespaces/{ns}/configmaps/chat-assistant-config") \
        .body["data"]["model-id"] == "another-model"
    assert document["environments"][0]["pruned"] is False


def test_full_dry_runs_everything_and_still_finds_nothing_to_change(
        cluster: Cluster, dev: tuple[Path, str]) -> None:
    """--full compares every object's dry-run with its LISTed body (which carries no
    apiVersion or kind): an applied fleet is still all unchanged, and nothing is applied."""
    project, _ = dev
    assert reconciles.report(cluster, project, "--env", "dev", "--no-wait")[0] == 0
    code, document = reconciles.report(cluster, project, "--env", "dev", "--full")
    assert code == 0, document
    [env] = document["environments"]
    assert env["summary"]["unchanged"] == len(env["objects"]), env["summary"]
    assert env["requests"]["PATCH dryRun"] == len(env["objects"]) - 1, env["requests"]
    assert "PATCH apply" not in env["requests"], env["requests"]
    assert diff_run(cluster, project, "--env", "dev", "--full").exit_code == 0
