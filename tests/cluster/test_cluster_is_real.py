"""The sandbox is a real cluster: server-side apply, dry-run, defaulting, CRD validation,
conflicts, RBAC, controllers, scheduling, storage, namespace finalization and chaos pods all
behave as the Kubernetes API server and controllers make them behave."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from agentctl.sandbox import specs

from .kube import Cluster, Kube, Obj, poll, wait_for

pytestmark = pytest.mark.cluster


def deployment(name: str, replicas: int = 1, labels: dict[str, str] | None = None,
               resources: Obj | None = None) -> Obj:
    pod_labels = {"app": name, **(labels or {})}
    container: Obj = {"name": "main", "image": "registry.invalid/agent:1"}
    if resources:
        container["resources"] = resources
    return {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": pod_labels},
                              "spec": {"containers": [container]}}},
    }


def deploy_path(ns: str, name: str) -> str:
    return f"/apis/apps/v1/namespaces/{ns}/deployments/{name}"


def condition(obj: Obj, kind: str) -> Obj | None:
    for cond in obj.get("status", {}).get("conditions", []) or []:
        if cond.get("type") == kind:
            return dict(cond)
    return None


def pods(kube: Kube, ns: str, app: str) -> list[Obj]:
    resp = kube.request("GET", f"/api/v1/namespaces/{ns}/pods", query=[("labelSelector",
                                                                        f"app={app}")])
    assert resp.status == 200, resp.body
    return list(resp.body["items"])


def test_server_side_apply_returns_server_defaults(kube: Kube, namespace: str) -> None:
    resp = kube.apply(deploy_path(namespace, "web"), deployment("web"))
    assert resp.status == 201, resp.body
    spec = resp.body["spec"]
    assert spec["revisionHistoryLimit"] == 10
    assert spec["progressDeadlineSeconds"] == 600
    assert spec["strategy"]["rollingUpdate"] == {"maxSurge": "25%", "maxUnavailable": "25%"}
    container = spec["template"]["spec"]["containers"][0]
    assert container["terminationMessagePath"] == "/dev/termination-log"
    assert container["imagePullPolicy"] == "IfNotPresent"
    managers = {m["manager"] for m in resp.body["metadata"]["managedFields"]}
    assert managers == {"agentctl-test"}


def test_dry_run_apply_persists_nothing(kube: Kube, namespace: str) -> None:
    path = deploy_path(namespace, "ghost")
    resp = kube.apply(path, deployment("ghost"), dry_run=True)
    assert resp.status == 201, resp.body
    assert resp.body["spec"]["revisionHistoryLimit"] == 10  # defaulted, as a real apply would
    assert kube.get(path).status == 404


def test_crd_becomes_established_and_its_schema_rejects_invalid_objects(
        kube: Kube, namespace: str) -> None:
    group = f"{namespace}.sandbox.test"
    crd_name = f"widgets.{group}"
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": crd_name},
        "spec": {
            "group": group, "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
            "versions": [{
                "name": "v1", "served": True, "storage": True,
                "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "properties": {"spec": {
                        "type": "object", "required": ["size"],
                        "properties": {"size": {"type": "integer", "minimum": 1}},
                    }},
                }},
            }],
        },
    }
    crd_path = f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{crd_name}"
    assert kube.apply(crd_path, crd).status == 201
    try:
        wait_for(lambda: (condition(kube.get(crd_path).body, "Established") or {})
                 .get("status") == "True", "the CRD to become Established")
        base = f"/apis/{group}/v1/namespaces/{namespace}/widgets"

        def widget(name: str, size: Any) -> Obj:
            return {"apiVersion": f"{group}/v1", "kind": "Widget",
                    "metadata": {"name": name}, "spec": {"size": size}}

        # Discovery can lag Established by a moment: wait until the resource is served.
        wait_for(lambda: kube.get(base).status == 200, "the Widget resource to be served")
        assert kube.apply(f"{base}/good", widget("good", 3)).status == 201
        # A type error, by create (server-side apply reports type mismatches as a 500 while
        # building its typed patch, before validation runs).
        bad = kube.create(base, widget("bad", "big"))
        assert bad.status == 422, bad.body
        assert "spec.size" in bad.message
        too_small = kube.apply(f"{base}/small", widget("small", 0))
        assert too_small.status == 422, too_small.body
        assert "spec.size" in too_small.message
        assert kube.get(f"{base}/bad").status == 404
        assert kube.get(f"{base}/small").status == 404
    finally:
        kube.delete(crd_path)


def test_apply_by_a_second_manager_conflicts_naming_the_owner(kube: Kube,
                                                              namespace: str) -> None:
    path = deploy_path(namespace, "owned")
    assert kube.apply(path, deployment("owned", replicas=2), manager="team-a").status == 201
    clash = kube.apply(path, deployment("owned", replicas=3), manager="team-b")
    assert clash.status == 409, clash.body
    assert "team-a" in clash.message
    assert ".spec.replicas" in clash.message
    assert kube.get(path).body["spec"]["replicas"] == 2
    forced = kube.apply(path, deployment("owned", replicas=3), manager="team-b", force=True)
    assert forced.status == 200
    assert forced.body["spec"]["replicas"] == 3


def test_role_without_delete_denies_delete_through_impersonation(kube: Kube,
                                                                 namespace: str) -> None:
    rbac = "/apis/rbac.authorization.k8s.io/v1"
    user = f"reader-{uuid.uuid4().hex[:6]}"
    assert kube.create(f"{rbac}/namespaces/{namespace}/roles", {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": "reader"},
        "rules": [{"apiGroups": [""], "resources": ["configmaps"],
                   "verbs": ["get", "list", "watch"]}],
    }).status == 201
    assert kube.create(f"{rbac}/namespaces/{namespace}/rolebindings", {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "reader"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "reader"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
    }).status == 201
    cm = f"/api/v1/namespaces/{namespace}/configmaps/settings"
    assert kube.create(f"/api/v1/namespaces/{namespace}/configmaps", {
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"},
        "data": {"k": "v"}}).status == 201
    reader = kube.as_user(user)
    assert reader.get(cm).status == 200  # the binding works: reads are allowed
    denied = reader.delete(cm)
    assert denied.status == 403, denied.body
    assert user in denied.message
    assert "delete" in denied.message
    assert kube.get(cm).status == 200


def test_deployment_rolls_out_to_available_on_fake_nodes(kube: Kube, namespace: str) -> None:
    path = deploy_path(namespace, "agent")
    assert kube.apply(path, deployment("agent", replicas=3)).status == 201

    def available() -> Obj | None:
        body: Obj = kube.get(path).body
        status = body.get("status", {})
        done = ((condition(body, "Available") or {}).get("status") == "True"
                and status.get("availableReplicas") == 3
                and status.get("updatedReplicas") == 3)
        return body if done else None

    wait_for(available, "the Deployment to become Available")
    nodes = {p["spec"]["nodeName"] for p in pods(kube, namespace, "agent")}
    fake = {n.name for n in specs.DEFAULT_NODES}
    assert nodes
    assert nodes <= fake
    for pod in pods(kube, namespace, "agent"):
        assert pod["status"]["phase"] == "Running"
        assert (condition(pod, "Ready") or {}).get("status") == "True"


def test_pvc_binds_through_the_default_storage_class(kube: Kube, namespace: str) -> None:
    path = f"/api/v1/namespaces/{namespace}/persistentvolumeclaims"
    created = kube.create(path, {
        "apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
    })
    assert created.status == 201, created.body
    assert created.body["spec"]["storageClassName"] == specs.STORAGE_CLASS  # default class
    bound = poll(lambda: kube.get(f"{path}/data").body,
                 lambda b: b.get("status", {}).get("phase") == "Bound", "the PVC to bind")
    volume = kube.get(f"/api/v1/persistentvolumes/{bound['spec']['volumeName']}")
    assert volume.status == 200
    assert volume.body["spec"]["claimRef"]["name"] == "data"


def test_gpu_pods_schedule_only_on_gpu_nodes(kube: Kube, namespace: str) -> None:
    gpu = {"limits": {specs.GPU_RESOURCE: "1"}}
    assert kube.apply(deploy_path(namespace, "llm"),
                      deployment("llm", replicas=3, resources=gpu)).status == 201
    placed = poll(lambda: pods(kube, namespace, "llm"),
                  lambda ps: len(ps) == 3 and all(p["spec"].get("nodeName") for p in ps),
                  "three GPU pods to be scheduled")
    for pod in placed:
        node = kube.get(f"/api/v1/nodes/{pod['spec']['nodeName']}").body
        assert node["metadata"]["labels"].get(specs.GPU_LABEL) == "true"
        assert node["status"]["allocatable"][specs.GPU_RESOURCE] != "0"
    # More GPUs than any node has: the scheduler keeps the pod Pending and says why.
    assert kube.apply(deploy_path(namespace, "huge"), deployment(
        "huge", resources={"limits": {specs.GPU_RESOURCE: "64"}})).status == 201
    pending = wait_for(lambda: next((p for p in pods(kube, namespace, "huge") if (
        condition(p, "PodScheduled") or {}).get("reason") == "Unschedulable"), None),
        "the oversized GPU pod to be reported Unschedulable")
    assert not pending["spec"].get("nodeName")
    assert specs.GPU_RESOURCE in condition(pending, "PodScheduled")["message"]  # type: ignore[index]


def test_namespace_deletion_completes(cluster: Cluster) -> None:
    kube = cluster.kube
    name = f"t-doomed-{uuid.uuid4().hex[:6]}"
    ns_path = f"/api/v1/namespaces/{name}"
    assert kube.create("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                              "metadata": {"name": name}}).status == 201
    try:
        wait_for(lambda: kube.get(f"{ns_path}/serviceaccounts/default").status == 200,
                 "the default ServiceAccount")
        assert kube.apply(deploy_path(name, "app"), deployment("app", replicas=2)).status == 201
        wait_for(lambda: len(pods(kube, name, "app")) == 2, "the pods to exist")
        assert kube.delete(ns_path).status == 200
        assert kube.get(ns_path).body["status"]["phase"] == "Terminating"
        wait_for(lambda: kube.get(ns_path).status == 404, "the namespace to be gone",
                 timeout=120)
    finally:
        kube.delete(ns_path)


def test_unready_label_keeps_the_deployment_unavailable(kube: Kube, namespace: str) -> None:
    path = deploy_path(namespace, "sick")
    body = deployment("sick", replicas=2, labels={specs.FAIL_LABEL: "unready"})
    body["spec"]["minReadySeconds"] = 0
    assert kube.apply(path, body).status == 201
    running = poll(lambda: pods(kube, namespace, "sick"),
                   lambda ps: len(ps) == 2 and all(
                       p.get("status", {}).get("phase") == "Running" for p in ps),
                   "the labelled pods to run")
    for pod in running:
        assert (condition(pod, "Ready") or {}).get("status") == "False"
    # Once the controller has seen the running pods, it reports them unavailable.
    observed = poll(lambda: kube.get(path).body,
                    lambda b: b.get("status", {}).get("replicas") == 2
                    and (condition(b, "Available") or {}).get("status") == "False",
                    "the Deployment status to reflect the pods")
    assert observed["status"].get("availableReplicas", 0) == 0
    assert observed["status"].get("unavailableReplicas") == 2


def test_crash_label_puts_pods_in_crash_loop(kube: Kube, namespace: str) -> None:
    assert kube.apply(deploy_path(namespace, "crashy"), deployment(
        "crashy", labels={specs.FAIL_LABEL: "crash"})).status == 201
    pod = wait_for(lambda: next((p for p in pods(kube, namespace, "crashy")
                                 if p.get("status", {}).get("containerStatuses")), None),
                   "the crashing pod's container status")
    state = pod["status"]["containerStatuses"][0]
    assert state["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    assert state["lastState"]["terminated"]["exitCode"] == 1
    assert (condition(pod, "Ready") or {}).get("status") == "False"


def test_service_range_is_the_configured_slash_16(kube: Kube) -> None:
    cidr = kube.get("/apis/networking.k8s.io/v1/servicecidrs/kubernetes")
    assert cidr.status == 200, cidr.body
    assert cidr.body["spec"]["cidrs"] == [specs.SERVICE_CIDR]
    service = kube.get("/api/v1/namespaces/default/services/kubernetes").body
    assert service["spec"]["clusterIP"] == "10.96.0.1"


def test_version_is_the_pinned_release(kube: Kube) -> None:
    version = kube.get("/version").body
    assert version["gitVersion"] == "v1.37.2"
    assert (version["major"], version["minor"]) == ("1", "37")
