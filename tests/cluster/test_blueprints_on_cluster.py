"""The built-in blueprint's output on a real API server (the sandbox cluster): issue 4's proofs.

- Every object of the example fleet, in every environment (and of the feature-golden project),
  passes a server-side dry-run apply with strict field validation and no warning, with the CRDs
  of every declared capability installed from the projects' published manifests (tests/cluster/
  crds.py; one stand-in: the OpenTelemetry Operator's `Instrumentation`, whose module no registry
  reachable here serves, as a minimal open-schema CRD).
- Each environment's fleet, applied for real in a namespace that enforces the *restricted* Pod
  Security Standard, rolls out: every Deployment Available, every StatefulSet ready, the GPU
  agent's pod on a node with `nvidia.com/gpu` capacity, the stateful agent's PVCs Bound. A pod
  that breaks the standard is rejected there (the check can fail).
- Switching an agent between update strategies applies without an immutable-field error.

Objects are rendered with `agentctl.render.pipeline.render` and placed in the test's namespace
(`metadata.namespace` is the only field changed). The Secrets and ConfigMaps the agents refer to
but do not render (API keys, database URLs, prompts) are created with random dummy values: kwok's
fake kubelet never reads them, but a real cluster would, and the fleet is applied as it would be
there.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from agentctl.manifests import LABEL_AGENT
from agentctl.render import merging, pipeline

from . import crds, fleet
from .kube import Cluster, Kube, Obj, poll, wait_for

pytestmark = pytest.mark.cluster

ROOT = Path(__file__).resolve().parents[2]
PROJECTS = {"example": ROOT, "features": ROOT / "tests" / "goldens" / "features"}
CASES = [("example", "dev"), ("example", "staging"), ("example", "prod"),
         ("features", "bare"), ("features", "full")]
EXAMPLE_AGENTS = {"chat-assistant", "gpu-inference", "research-memory", "ticket-triage",
                  "support-bot", "code-review"}
# API versions a bare cluster serves; any other rendered kind must be a declared capability.
BUILT_IN = {"v1", "apps/v1", "autoscaling/v2", "policy/v1", "networking.k8s.io/v1"}
LEVELS = ["restricted", "baseline", "privileged"]
CRD_PATH = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"


@pytest.fixture(scope="module")
def renders() -> dict[str, pipeline.RenderResult]:
    return {name: pipeline.render(path, all_envs=True) for name, path in PROJECTS.items()}


def env_bodies(result: pipeline.RenderResult, env: str) -> list[Obj]:
    [found] = [e for e in result.envs if e.env == env]
    return [m.body for m in found.manifests]


def _unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"the capability CRDs are unavailable: {reason}", pytrace=False)
    pytest.skip(f"the capability CRDs are unavailable: {reason}")


@pytest.fixture(scope="module")
def capability_crds(cluster: Cluster) -> Iterator[dict[str, Obj]]:
    """Every known capability's CRD, installed and Established; removed afterwards."""
    failure = ""
    try:
        bodies = {c: crds.crd_for(c) for c in crds.known()}
    except crds.CrdUnavailable as err:
        failure = str(err)
    if failure:
        _unavailable(failure)
    kube = cluster.kube
    names = [crd["metadata"]["name"] for crd in bodies.values()]
    try:
        for crd in bodies.values():
            resp = kube.apply(f"{CRD_PATH}/{crd['metadata']['name']}", crd,
                              manager="agentctl-test-crds", force=True)
            assert resp.status in (200, 201), (crd["metadata"]["name"], resp.body)
        for name in names:
            poll(lambda n=name: kube.get(f"{CRD_PATH}/{n}").body,  # type: ignore[misc]
                 lambda b: any(c["type"] == "Established" and c["status"] == "True"
                               for c in b.get("status", {}).get("conditions", [])),
                 f"CRD {name} to be Established")
        yield bodies
    finally:
        for name in names:
            kube.delete(f"{CRD_PATH}/{name}")


def restricted(kube: Kube, namespace: str) -> str:
    fleet.label_namespace(kube, namespace, fleet.pod_security("restricted", "restricted"))
    return namespace


def test_every_declared_capability_has_a_crd(
        renders: dict[str, pipeline.RenderResult]) -> None:
    declared = {str(c) for result in renders.values()
                for doc in result.inputs.environments.values()
                for c in doc.environment.spec.capabilities}
    assert declared, "no environment declares a capability"
    assert declared <= set(crds.known()), sorted(declared - set(crds.known()))
    rendered_kinds = {f"{b['apiVersion']}/{b['kind']}" for result in renders.values()
                      for m in result.manifests for b in [m.body]}
    custom = {k for k in rendered_kinds if k.rpartition("/")[0] not in BUILT_IN}
    assert custom <= declared, sorted(custom - declared)
    assert set(crds.STAND_INS) == {"opentelemetry.io/v1alpha1/Instrumentation"}


def claimed_levels(result: pipeline.RenderResult, env: str) -> dict[str, str]:
    """agent -> the Pod Security level its `spec.security.podSecurity` claims in `env`."""
    return {item.name: item.agent.spec.security.pod_security
            for item in merging.resolve(result.inputs, env)}


@pytest.mark.parametrize(("project", "env"), CASES, ids=[f"{p}-{e}" for p, e in CASES])
def test_every_rendered_object_passes_a_server_side_dry_run(
        project: str, env: str, renders: dict[str, pipeline.RenderResult],
        capability_crds: dict[str, Obj], kube: Kube, namespace: str) -> None:
    """Every object is accepted; every workload's pod template meets exactly the Pod Security
    level its agent claims (the API server warns on a workload whose pods would violate the
    namespace's `warn` level), one dry-run pass per claimed level."""
    bodies = fleet.retarget(env_bodies(renders[project], env), namespace)
    assert bodies
    levels = claimed_levels(renders[project], env)
    lowest = max(levels.values(), key=LEVELS.index)
    passes = 0
    for level in sorted(set(levels.values()), key=LEVELS.index):
        fleet.label_namespace(kube, namespace, fleet.pod_security(enforce=lowest, warn=level))
        batch = [b for b in bodies if levels[b["metadata"]["labels"][LABEL_AGENT]] == level]
        results = fleet.apply_all(kube, batch, dry_run=True)
        passes += len(results)
        rejected = [r.report() for r in results if not r.ok]
        assert not rejected, "the API server rejected:\n" + "\n".join(rejected)
        warned = [f"{fleet.describe(r.body)}: {w}" for r in results for w in r.warnings]
        assert not warned, f"the API server warned ({level}):\n" + "\n".join(warned)
        # The server answered with each object as it would store it ...
        for result in results:
            assert result.response["metadata"]["namespace"] == namespace
            assert result.response["metadata"]["uid"]
    assert passes == len(bodies)
    # ... and kept none of them.
    for body in bodies:
        assert kube.get(fleet.object_path(body)).status == 404, fleet.describe(body)


def test_the_dry_run_can_fail(renders: dict[str, pipeline.RenderResult],
                              capability_crds: dict[str, Obj], kube: Kube,
                              namespace: str) -> None:
    """The baseline agent of the feature project, checked against `restricted`, draws the
    server's PodSecurity warning; an unknown field and a schema violation in a custom resource
    are rejected."""
    bodies = fleet.retarget(env_bodies(renders["features"], "full"), namespace)
    fleet.label_namespace(kube, namespace, fleet.pod_security(enforce="baseline",
                                                              warn="restricted"))
    [baseline] = [b for b in bodies if b["kind"] == "Deployment"
                  and b["metadata"]["name"] == "readonly-model"]
    [warning] = fleet.apply(kube, baseline, dry_run=True).warnings
    assert 'would violate PodSecurity \\"restricted:latest\\"' in warning, warning

    typo = copy.deepcopy(baseline)
    typo["spec"]["template"]["spec"]["containers"][0]["securityContxt"] = {}
    refused = fleet.apply(kube, typo, dry_run=True)  # SSA answers 500 for this, not 422
    assert not refused.ok
    assert "securityContxt: field not declared in schema" in refused.report(), refused.report()

    [monitor] = [b for b in bodies if b["kind"] == "ServiceMonitor"]
    broken = copy.deepcopy(monitor)
    broken["spec"]["endpoints"][0]["interval"] = "every 30s"  # the CRD's pattern refuses it
    refused = fleet.apply(kube, broken, dry_run=True)
    assert refused.status == 422, refused.report()
    assert "spec.endpoints[0].interval" in refused.report(), refused.report()


def _gpu_capacity(kube: Kube, node: str) -> int:
    resp = kube.get(f"/api/v1/nodes/{node}")
    assert resp.status == 200, resp.body
    return int(resp.body["status"]["capacity"].get("nvidia.com/gpu", "0"))


def _claims(bodies: list[Obj]) -> list[str]:
    """The PVC names the render asks for: plain PVCs and each StatefulSet replica's claims."""
    names = [b["metadata"]["name"] for b in bodies if b["kind"] == "PersistentVolumeClaim"]
    for body in bodies:
        if body["kind"] == "StatefulSet":
            for template in body["spec"].get("volumeClaimTemplates", []):
                names += [f"{template['metadata']['name']}-{body['metadata']['name']}-{i}"
                          for i in range(body["spec"].get("replicas", 1))]
    return names


@pytest.mark.parametrize("env", ["dev", "staging", "prod"])
def test_fleet_rolls_out_under_the_restricted_pod_security_standard(
        env: str, renders: dict[str, pipeline.RenderResult], capability_crds: dict[str, Obj],
        kube: Kube, namespace: str) -> None:
    bodies = fleet.retarget(env_bodies(renders["example"], env), restricted(kube, namespace))
    inputs = fleet.stand_in_inputs(bodies, namespace)
    assert {i["metadata"]["name"] for i in inputs} >= {"llm-keys", "research-db", "hf-token",
                                                       "research-prompts"}
    results = fleet.apply_all(kube, [*inputs, *bodies])
    rejected = [r.report() for r in results if not r.ok]
    assert not rejected, "the API server rejected:\n" + "\n".join(rejected)

    live = fleet.wait_rolled_out(kube, bodies)
    assert {w["metadata"]["labels"][LABEL_AGENT] for w in live} == EXAMPLE_AGENTS
    # Every pod the controllers created passed the namespace's `restricted` admission.
    for workload in live:
        pods = fleet.pods_of(kube, workload)
        assert len(pods) == workload["spec"]["replicas"], workload["metadata"]["name"]
        for pod in pods:
            assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
            ready = [c for c in pod["status"].get("conditions", []) if c["type"] == "Ready"]
            assert [c["status"] for c in ready] == ["True"], pod["metadata"]["name"]

    wait_for(lambda: not fleet.unserved(kube, bodies), "every Service to have ready endpoints")

    [gpu] = [w for w in live if w["metadata"]["name"] == "gpu-inference"]
    for pod in fleet.pods_of(kube, gpu):
        assert _gpu_capacity(kube, pod["spec"]["nodeName"]) >= 1, pod["spec"]["nodeName"]
    limits = gpu["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert str(limits["nvidia.com/gpu"]) == "1"

    claims = _claims(bodies)
    assert {"gpu-inference-model-cache", "state-notes-research-memory-0",
            "state-notes-research-memory-1"} <= set(claims)
    for claim in claims:
        poll(lambda c=claim: kube.get(  # type: ignore[misc]
                 f"/api/v1/namespaces/{namespace}/persistentvolumeclaims/{c}").body,
             lambda b: b.get("status", {}).get("phase") == "Bound", f"PVC {claim} to be Bound")


def _pod_from(workload: Obj, namespace: str, name: str) -> Obj:
    template = copy.deepcopy(workload["spec"]["template"])  # the render is shared
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace,
                         "labels": {"app": "psa-probe"}},
            "spec": {**template["spec"], "serviceAccountName": "default"}}


def _create_pod(kube: Kube, pod: Obj) -> tuple[int, str]:
    resp = kube.request("POST", f"/api/v1/namespaces/{pod['metadata']['namespace']}/pods", pod,
                        query=[("dryRun", "All")])
    return resp.status, resp.message


def test_a_non_compliant_pod_is_rejected_where_the_fleet_runs(
        renders: dict[str, pipeline.RenderResult], kube: Kube, namespace: str) -> None:
    """The namespace label is what refused pods: the rendered pod is admitted, the same pod made
    privileged or allowed to escalate is refused, and so is every pod a controller tries to
    create for a workload like that (whose rollout therefore never completes)."""
    restricted(kube, namespace)
    [workload] = [b for b in env_bodies(renders["example"], "dev")
                  if b["kind"] == "Deployment" and b["metadata"]["name"] == "chat-assistant"]
    compliant = _pod_from(workload, namespace, "as-rendered")
    assert _create_pod(kube, compliant) == (201, "")

    privileged = _pod_from(workload, namespace, "privileged")
    privileged["spec"]["containers"][0]["securityContext"] = {"privileged": True}
    status, message = _create_pod(kube, privileged)
    assert status == 403, message
    assert 'violates PodSecurity "restricted:latest"' in message
    assert "securityContext.privileged=true" in message

    escalating = _pod_from(workload, namespace, "escalating")
    escalating["spec"]["containers"][0]["securityContext"]["allowPrivilegeEscalation"] = True
    status, message = _create_pod(kube, escalating)
    assert status == 403, message
    assert "allowPrivilegeEscalation != false" in message

    [deployment] = fleet.retarget([workload], namespace)
    deployment["spec"]["template"]["spec"] = escalating["spec"]
    applied = fleet.apply(kube, deployment)
    assert applied.ok, applied.report()
    assert any("would violate PodSecurity" in w for w in applied.warnings), applied.warnings
    failure = poll(lambda: kube.get(fleet.object_path(deployment)).body,
                   lambda b: fleet.condition(b, "ReplicaFailure") is not None,
                   "the ReplicaSet to report its refused pods")
    conditions = {c["type"]: c for c in failure["status"]["conditions"]}
    assert 'violates PodSecurity "restricted:latest"' in conditions["ReplicaFailure"]["message"]
    with pytest.raises(AssertionError, match="to roll out"):
        fleet.wait_rolled_out(kube, [deployment], timeout=3)
    assert kube.get(f"/api/v1/namespaces/{namespace}/pods").body["items"] == []


# step, rollout, the workloads it yields, the tracks whose pods Service `code-review` serves
STRATEGIES: list[tuple[str, dict[str, Any], set[str], set[str]]] = [
    ("rolling", {"strategy": "RollingUpdate"}, {"code-review"}, {"main"}),
    ("recreate", {"strategy": "Recreate"}, {"code-review"}, {"main"}),
    ("canary-replica-ratio", {"strategy": "Canary", "canary": {"weight": 25}},
     {"code-review", "code-review-canary"}, {"main", "canary"}),
    ("canary-gateway-api", {"strategy": "Canary", "canary": {
        "weight": 10, "trafficRouting": "gatewayAPI", "replicas": 1}},
     {"code-review", "code-review-canary"}, {"main"}),
    ("blue-green", {"strategy": "BlueGreen", "blueGreen": {"activeSlot": "blue",
                                                            "previewReplicas": 1}},
     {"code-review-blue", "code-review-green"}, {"blue"}),
    ("blue-green-promoted", {"strategy": "BlueGreen", "blueGreen": {"activeSlot": "green",
                                                                     "previewReplicas": 1}},
     {"code-review-blue", "code-review-green"}, {"green"}),
    ("rolling-again", {"strategy": "RollingUpdate"}, {"code-review"}, {"main"}),
]
PRUNABLE = [("apps/v1", "Deployment"), ("apps/v1", "StatefulSet"), ("v1", "Service"),
            ("v1", "ConfigMap"), ("v1", "ServiceAccount"), ("v1", "PersistentVolumeClaim"),
            ("policy/v1", "PodDisruptionBudget"), ("autoscaling/v2", "HorizontalPodAutoscaler"),
            ("networking.k8s.io/v1", "NetworkPolicy"), ("gateway.networking.k8s.io/v1",
                                                        "HTTPRoute")]


def _strategy_project(tmp: Path, namespace: str) -> dict[str, Any]:
    """A copy of the example project with only code-review, in `namespace`, with an HTTPRoute
    (so the Gateway API canary has a route to weight); returns the agent document to edit."""
    (tmp / "agents").mkdir()
    (tmp / "environments").mkdir()
    (tmp / "agentctl.yaml").write_text((ROOT / "agentctl.yaml").read_text())
    env = yaml.safe_load((ROOT / "environments" / "dev.yaml").read_text())
    env["spec"].pop("agents", None)
    env["spec"]["namespace"] = namespace
    env["spec"]["capabilities"] = ["gateway.networking.k8s.io/v1/HTTPRoute"]
    (tmp / "environments" / "dev.yaml").write_text(yaml.safe_dump(env))
    agent: dict[str, Any] = yaml.safe_load((ROOT / "agents" / "code-review.yaml").read_text())
    agent["spec"]["network"] = {"httpRoute": {"parentRefs": [{"name": "internal",
                                                              "namespace": "gateways"}],
                                              "hostnames": ["code-review.example.test"]}}
    return agent


def test_switching_strategies_applies_without_immutable_field_errors(
        tmp_path: Path, capability_crds: dict[str, Obj], kube: Kube, namespace: str) -> None:
    """rolling → recreate → canary (replica ratio) → canary (Gateway API) → blue-green → promoted
    → rolling: each render applies (no 422), the objects it no longer has are deleted (what
    reconcile's prune will do), its workloads roll out and the main Service serves the right
    track."""
    restricted(kube, namespace)
    agent = _strategy_project(tmp_path, namespace)
    for step, rollout, workloads, tracks in STRATEGIES:
        agent["spec"]["rollout"] = rollout
        (tmp_path / "agents" / "code-review.yaml").write_text(yaml.safe_dump(agent))
        bodies = [m.body for m in pipeline.render(tmp_path, ("dev",)).manifests]
        assert {(b["apiVersion"], b["kind"]) for b in bodies} <= set(PRUNABLE), step
        results = fleet.apply_all(kube, [*fleet.stand_in_inputs(bodies, namespace), *bodies])
        invalid = [r.report() for r in results if r.status == 422]
        assert not invalid, f"{step}: 422 Invalid:\n" + "\n".join(invalid)
        rejected = [r.report() for r in results if not r.ok]
        assert not rejected, f"{step}: the API server rejected:\n" + "\n".join(rejected)
        fleet.prune(kube, namespace, "code-review", bodies, PRUNABLE)

        live = fleet.wait_rolled_out(kube, bodies)
        assert {w["metadata"]["name"] for w in live} == workloads, step
        wait_for(lambda b=bodies: not fleet.unserved(kube, b),  # type: ignore[misc]
                 f"{step}: every Service to have ready endpoints")
        wait_for(lambda t=tracks: fleet.served_tracks(  # type: ignore[misc]
            kube, namespace, "code-review") == t, f"{step}: Service code-review to serve {tracks}")
        wanted = {(b["kind"], b["metadata"]["name"]) for b in bodies}
        wait_for(lambda w=wanted: fleet.live_owned(  # type: ignore[misc]
            kube, namespace, "code-review", PRUNABLE) == w,
                 f"{step}: only the rendered objects to remain")

    # The check can fail: a workload whose selector changes is refused as immutable, which is
    # why every strategy keeps the frozen selector and adds or removes workloads instead.
    [deployment] = [b for b in bodies if b["kind"] == "Deployment"]
    moved = copy.deepcopy(deployment)
    moved["spec"]["selector"]["matchLabels"]["agent.inferensys.com/track"] = "moved"
    moved["spec"]["template"]["metadata"]["labels"]["agent.inferensys.com/track"] = "moved"
    [refused] = fleet.apply_all(kube, [moved])
    assert refused.status == 422, refused.report()
    assert "field is immutable" in refused.report(), refused.report()
