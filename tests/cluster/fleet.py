"""Putting rendered agents on the sandbox cluster the way a user's tooling would: server-side apply
(dry-run or real) with strict field validation, the referenced Secrets and ConfigMaps the agents
expect to find, pruning what a new render no longer has, and waiting for rollouts.

Inputs: rendered object bodies (plain dicts from `agentctl.render.pipeline.render`) and the
raw client (`kube.Kube`). Outputs: `Applied` results carrying the status, body and every
`Warning` header the API server sent, so a test can assert on exactly what a user of kubectl
would have seen.

Invariants: bodies are never mutated (`retarget` copies); requests use `fieldValidation=Strict`,
so a field the API does not know is a rejection, not a silent drop; dummy secret values are random
per run and never printed.
"""

from __future__ import annotations

import copy
import json
import secrets
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from agentctl.manifests import LABEL_AGENT, LABEL_TRACK, WORKLOAD_KINDS, ObjectRef, pod_spec_path

from .kube import APPLY, Kube, Obj, poll, wait_for

MANAGER = "agentctl"

# kind -> plural, for every kind the blueprints render (and the few the tests create).
PLURALS: dict[str, str] = {
    "ConfigMap": "configmaps", "Secret": "secrets", "Service": "services",
    "ServiceAccount": "serviceaccounts", "PersistentVolumeClaim": "persistentvolumeclaims",
    "Pod": "pods", "Deployment": "deployments", "StatefulSet": "statefulsets",
    "HorizontalPodAutoscaler": "horizontalpodautoscalers",
    "PodDisruptionBudget": "poddisruptionbudgets", "NetworkPolicy": "networkpolicies",
    "ExternalSecret": "externalsecrets", "ScaledObject": "scaledobjects",
    "HTTPRoute": "httproutes", "ServiceMonitor": "servicemonitors",
    "PodMonitor": "podmonitors", "PrometheusRule": "prometheusrules",
    "CiliumNetworkPolicy": "ciliumnetworkpolicies",
    "Instrumentation": "instrumentations",
}


def collection_path(api_version: str, kind: str, namespace: str) -> str:
    if kind not in PLURALS:
        raise AssertionError(f"no resource path known for kind {kind!r}: add it to PLURALS")
    prefix = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    return f"{prefix}/namespaces/{namespace}/{PLURALS[kind]}"


def object_path(body: Obj) -> str:
    meta = body["metadata"]
    return f"{collection_path(body['apiVersion'], body['kind'], meta['namespace'])}/{meta['name']}"


def describe(body: Obj) -> str:
    return f"{body['apiVersion']} {body['kind']}/{body['metadata'].get('name')}"


@dataclass
class Applied:
    body: Obj
    status: int
    response: Any
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status in (200, 201)

    def report(self) -> str:
        said = self.response if isinstance(self.response, dict) else {}
        causes = said.get("details", {}).get("causes", [])
        return (f"{describe(self.body)}: {self.status} {said.get('reason', '')}: "
                f"{said.get('message', self.response)!s}"
                + "".join(f"\n    {c.get('field', '')}: {c.get('message', '')}" for c in causes))


def apply(kube: Kube, body: Obj, dry_run: bool = False) -> Applied:
    """Server-side apply `body` as field manager `agentctl`, with strict field validation."""
    query = [("fieldManager", MANAGER), ("fieldValidation", "Strict")]
    if dry_run:
        query.append(("dryRun", "All"))
    headers = {"Accept": "application/json", "Content-Type": APPLY, **kube.headers}
    _, url, hdrs, _, _ = kube.api.param_serialize(
        method="PATCH", resource_path=object_path(body), query_params=query,
        header_params=headers, auth_settings=["BearerToken"])
    resp = kube.api.call_api("PATCH", url, header_params=hdrs, body=body, _request_timeout=30)
    resp.read()
    data = json.loads(resp.data) if resp.data else None
    warnings = list(resp.headers.getlist("Warning")) if resp.headers else []
    return Applied(body, resp.status, data, warnings)


def apply_all(kube: Kube, bodies: Iterable[Obj], dry_run: bool = False) -> list[Applied]:
    """Apply in kind order (dependencies first), as agentctl's apply does."""
    return [apply(kube, b, dry_run) for b in sorted(bodies, key=ObjectRef.of)]


def retarget(bodies: Iterable[Obj], namespace: str) -> list[Obj]:
    """Copies of `bodies` placed in `namespace` (nothing else changes)."""
    moved = []
    for body in bodies:
        copied = copy.deepcopy(body)
        copied["metadata"]["namespace"] = namespace
        moved.append(copied)
    return moved


def pod_security(enforce: str, warn: str) -> dict[str, str]:
    """Namespace labels: pods below `enforce` are refused; workloads below `warn` draw a
    warning (Pod Security admission checks the pod templates of workloads only in warn and
    audit mode, and the pods themselves in enforce mode)."""
    return {"pod-security.kubernetes.io/enforce": enforce,
            "pod-security.kubernetes.io/enforce-version": "latest",
            "pod-security.kubernetes.io/warn": warn,
            "pod-security.kubernetes.io/warn-version": "latest"}


def label_namespace(kube: Kube, namespace: str, labels: dict[str, str]) -> None:
    resp = kube.apply(f"/api/v1/namespaces/{namespace}",
                      {"apiVersion": "v1", "kind": "Namespace",
                       "metadata": {"name": namespace, "labels": labels}},
                      manager="agentctl-test-labels")
    assert resp.status == 200, resp.body
    if labels.get("pod-security.kubernetes.io/enforce") in ("baseline", "restricted"):
        # Pod Security admission reads namespaces from an informer cache: wait until it has
        # seen the new labels (a privileged pod is refused) before relying on them.
        probe = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "psa-probe"},
                 "spec": {"containers": [{"name": "c", "image": "x",
                                          "securityContext": {"privileged": True}}]}}

        def refused() -> bool:
            answer = kube.request("POST", f"/api/v1/namespaces/{namespace}/pods", probe,
                                  query=[("dryRun", "All")])
            return answer.status == 403

        wait_for(refused, f"Pod Security labels of namespace {namespace} to take effect",
                 timeout=30)


def _walk(node: Any) -> Iterator[Obj]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from _walk(item)


def referenced(bodies: Sequence[Obj]) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """The Secrets and ConfigMaps the pod templates refer to but the render does not create:
    ({secret: keys}, {configmap: keys}); an empty key set means "the whole object"."""
    rendered = {(b["kind"], b["metadata"]["name"]) for b in bodies}
    found: dict[str, dict[str, set[str]]] = {"Secret": {}, "ConfigMap": {}}
    for body in bodies:
        path = pod_spec_path(body)
        if path is None:
            continue
        pod: Any = body
        for step in path:
            pod = pod[step]
        for node in _walk(pod):
            for ref_key, kind in (("secretKeyRef", "Secret"), ("configMapKeyRef", "ConfigMap")):
                if isinstance(node.get(ref_key), dict):
                    ref = node[ref_key]
                    found[kind].setdefault(ref["name"], set()).add(ref["key"])
            for ref_key, kind in (("secretRef", "Secret"), ("configMapRef", "ConfigMap")):
                if isinstance(node.get(ref_key), dict) and "name" in node[ref_key]:
                    found[kind].setdefault(node[ref_key]["name"], set())
            if isinstance(node.get("secret"), dict) and "secretName" in node["secret"]:
                found["Secret"].setdefault(node["secret"]["secretName"], set())
            if isinstance(node.get("secret"), dict) and "name" in node["secret"]:  # projected
                found["Secret"].setdefault(node["secret"]["name"], set()).update(
                    item["key"] for item in node["secret"].get("items") or [])
            if isinstance(node.get("configMap"), dict) and "name" in node["configMap"]:
                found["ConfigMap"].setdefault(node["configMap"]["name"], set())
    missing = {kind: {n: keys for n, keys in names.items() if (kind, n) not in rendered}
               for kind, names in found.items()}
    return missing["Secret"], missing["ConfigMap"]


def stand_in_inputs(bodies: Sequence[Obj], namespace: str) -> list[Obj]:
    """Secrets and ConfigMaps with random dummy values for every reference the render leaves
    open (what the platform team or External Secrets would provide)."""
    secret_refs, config_refs = referenced(bodies)
    made: list[Obj] = []
    for kind, refs, section in (("Secret", secret_refs, "stringData"),
                                ("ConfigMap", config_refs, "data")):
        for name, keys in sorted(refs.items()):
            made.append({"apiVersion": "v1", "kind": kind,
                         "metadata": {"name": name, "namespace": namespace,
                                      "labels": {"agentctl.test/stand-in": "true"}},
                         section: {k: secrets.token_hex(16) for k in sorted(keys or {"value"})}})
    return made


def live_owned(kube: Kube, namespace: str, agent: str,
               kinds: Iterable[tuple[str, str]]) -> set[tuple[str, str]]:
    """(kind, name) of every object of `kinds` ((apiVersion, kind) pairs) labelled as `agent`'s,
    one LIST per kind."""
    found: set[tuple[str, str]] = set()
    for api_version, kind in kinds:
        resp = kube.request("GET", collection_path(api_version, kind, namespace),
                            query=[("labelSelector", f"{LABEL_AGENT}={agent}")])
        assert resp.status == 200, (kind, resp.body)
        found |= {(kind, item["metadata"]["name"]) for item in resp.body["items"]}
    return found


def prune(kube: Kube, namespace: str, agent: str, keep: Sequence[Obj],
          kinds: Sequence[tuple[str, str]]) -> list[str]:
    """Delete `agent`'s objects of `kinds` that `keep` no longer has, dependants first.
    Returns `Kind/name` of what it deleted."""
    wanted = {(b["kind"], b["metadata"]["name"]) for b in keep}
    versions = {k: v for v, k in kinds}
    stale = sorted(live_owned(kube, namespace, agent, kinds) - wanted,
                   key=lambda kn: ObjectRef.of({"apiVersion": versions[kn[0]], "kind": kn[0],
                                                "metadata": {"name": kn[1]}}), reverse=True)
    deleted = []
    for kind, name in stale:
        path = f"{collection_path(versions[kind], kind, namespace)}/{name}"
        resp = kube.request("DELETE", path, {"propagationPolicy": "Background"})
        assert resp.status in (200, 202), (kind, name, resp.body)
        deleted.append(f"{kind}/{name}")
    return deleted


def condition(obj: Obj, kind: str) -> str | None:
    for cond in obj.get("status", {}).get("conditions") or []:
        if cond.get("type") == kind:
            return str(cond.get("status"))
    return None


def rolled_out(obj: Obj) -> bool:
    """Deployment Available with every replica updated and ready; StatefulSet fully updated."""
    spec, status = obj.get("spec", {}), obj.get("status", {})
    want = spec.get("replicas", 1)
    if status.get("observedGeneration", 0) < obj["metadata"].get("generation", 1):
        return False
    done = (status.get("updatedReplicas", 0) == want and status.get("readyReplicas", 0) == want
            and status.get("replicas", 0) == want)
    if obj["kind"] == "Deployment":
        return done and condition(obj, "Available") == "True"
    return done and bool(status.get("currentRevision") == status.get("updateRevision"))


def wait_rolled_out(kube: Kube, bodies: Iterable[Obj], timeout: float = 120.0) -> list[Obj]:
    """Wait until every Deployment/StatefulSet in `bodies` has rolled out; return them live."""
    live = []
    for body in bodies:
        if body["kind"] not in WORKLOAD_KINDS:
            continue
        path = object_path(body)
        live.append(poll(lambda p=path: kube.get(p).body, rolled_out,  # type: ignore[misc]
                         f"{body['kind']}/{body['metadata']['name']} to roll out", timeout))
    return live


def pods_of(kube: Kube, workload: Obj) -> list[Obj]:
    selector = ",".join(f"{k}={v}" for k, v in
                        workload["spec"]["selector"]["matchLabels"].items())
    resp = kube.request("GET", f"/api/v1/namespaces/{workload['metadata']['namespace']}/pods",
                        query=[("labelSelector", selector)])
    assert resp.status == 200, resp.body
    return [p for p in resp.body["items"] if not p["metadata"].get("deletionTimestamp")]


def unserved(kube: Kube, bodies: Iterable[Obj]) -> list[str]:
    """The Services in `bodies` whose EndpointSlices list no ready endpoint (selector matches no
    ready pod), one LIST per Service."""
    empty = []
    for body in bodies:
        if body["kind"] != "Service":
            continue
        meta = body["metadata"]
        resp = kube.request("GET", f"/apis/discovery.k8s.io/v1/namespaces/{meta['namespace']}/"
                            "endpointslices",
                            query=[("labelSelector", f"kubernetes.io/service-name={meta['name']}")])
        assert resp.status == 200, resp.body
        ready = [e for s in resp.body["items"] for e in s.get("endpoints") or []
                 if (e.get("conditions") or {}).get("ready")]
        if not ready:
            empty.append(meta["name"])
    return empty


def served_tracks(kube: Kube, namespace: str, service: str) -> set[str]:
    """The `agent.inferensys.com/track` labels of the pods behind `service`'s ready endpoints."""
    resp = kube.request("GET", f"/apis/discovery.k8s.io/v1/namespaces/{namespace}/endpointslices",
                        query=[("labelSelector", f"kubernetes.io/service-name={service}")])
    assert resp.status == 200, resp.body
    names = {e["targetRef"]["name"] for s in resp.body["items"] for e in s.get("endpoints") or []
             if (e.get("conditions") or {}).get("ready") and e.get("targetRef")}
    pods = kube.request("GET", f"/api/v1/namespaces/{namespace}/pods")
    assert pods.status == 200, pods.body
    return {p["metadata"]["labels"].get(LABEL_TRACK, "") for p in pods.body["items"]
            if p["metadata"]["name"] in names}
