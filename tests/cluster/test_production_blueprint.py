"""The built-in blueprint where production would hurt, on the sandbox cluster (issue 13).

- Drain: the pods of a two-replica agent that are Running but not Ready (the sandbox's chaos
  stage: a provider outage) are evicted despite its PodDisruptionBudget; the same budget
  without `unhealthyPodEvictionPolicy: AlwaysAllow` blocks the same eviction (429), so the
  check can fail.
- Scrape once: in the example fleet's prod environment (every update strategy and a
  StatefulSet), each ServiceMonitor's selection yields exactly one endpoint per pod of its agent,
  across every track, as the EndpointSlices the cluster's controller made show; the selector the
  issue found (the agent's name only) yields some pods twice.

Objects are rendered with `agentctl.render.pipeline.render` from small projects and placed in the
test's namespace; the API server, the disruption controller and the ReplicaSet controller decide.
"""

from __future__ import annotations

import copy
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from agentctl.manifests import LABEL_AGENT
from agentctl.render import pipeline
from agentctl.sandbox import specs
from tests.hostile.projects import AGENT_FILE, ENV_FILE, agent, env, write_project

from . import fleet
from .kube import Kube, Obj, poll, wait_for
from .test_blueprints_on_cluster import ROOT, capability_crds  # noqa: F401 - a fixture

pytestmark = pytest.mark.cluster


def render(root: Path, spec: dict[str, Any], namespace: str) -> list[Obj]:
    write_project(root, {AGENT_FILE: agent(spec, name="drained"),
                         ENV_FILE: env({"namespace": namespace})})
    return [copy.deepcopy(m.body) for m in pipeline.render(root, ("dev",)).manifests]


def _unready_pods(kube: Kube, workload: Obj, count: int) -> list[Obj]:
    def ready(pod: Obj) -> str:
        return next((c["status"] for c in pod["status"].get("conditions") or []
                     if c["type"] == "Ready"), "")

    return poll(lambda: fleet.pods_of(kube, workload),
                lambda ps: len(ps) == count and all(
                    p.get("status", {}).get("phase") == "Running" and ready(p) == "False"
                    for p in ps),
                f"{count} running, unready pods")


def _evict(kube: Kube, pod: Obj) -> int:
    meta = pod["metadata"]
    body = {"apiVersion": "policy/v1", "kind": "Eviction",
            "metadata": {"name": meta["name"], "namespace": meta["namespace"]}}
    return kube.create(f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}/eviction",
                       body).status


@pytest.mark.parametrize("policy", ["AlwaysAllow", None], ids=["as-rendered", "without-policy"])
def test_a_drain_evicts_unready_pods_past_the_budget(tmp_path: Path, kube: Kube, namespace: str,
                                                     policy: str | None) -> None:
    bodies = render(tmp_path, {"replicas": 2}, namespace)
    [workload] = [b for b in bodies if b["kind"] == "Deployment"]
    [budget] = [b for b in bodies if b["kind"] == "PodDisruptionBudget"]
    assert budget["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow"
    if policy is None:
        del budget["spec"]["unhealthyPodEvictionPolicy"]
    workload["spec"]["template"]["metadata"]["labels"][specs.FAIL_LABEL] = "unready"
    results = fleet.apply_all(kube, [*fleet.stand_in_inputs(bodies, namespace), *bodies])
    assert all(r.ok for r in results), [r.report() for r in results if not r.ok]

    pods = _unready_pods(kube, workload, 2)
    path = fleet.object_path(budget)
    poll(lambda: kube.get(path).body,
         lambda b: b.get("status", {}).get("observedGeneration") == b["metadata"]["generation"]
         and b["status"].get("expectedPods") == 2,
         "the disruption controller to count the budget's pods")
    statuses = [_evict(kube, pod) for pod in pods]
    if policy is None:
        assert statuses == [429, 429]  # the default budget blocks the drain
    else:
        assert statuses == [201, 201]


def _selected(kube: Kube, namespace: str, monitor: Obj) -> Counter[str]:
    """Pod name → how many scrape targets the ServiceMonitor's selection yields for it: every
    endpoint of every EndpointSlice of every selected Service that has the endpoint's port."""
    selector = ",".join(f"{k}={v}" for k, v in monitor["spec"]["selector"]["matchLabels"].items())
    services = kube.request("GET", f"/api/v1/namespaces/{namespace}/services",
                            query=[("labelSelector", selector)])
    assert services.status == 200, services.body
    ports = {e["port"] for e in monitor["spec"]["endpoints"]}
    targets: Counter[str] = Counter()
    for service in services.body["items"]:
        slices = kube.request(
            "GET", f"/apis/discovery.k8s.io/v1/namespaces/{namespace}/endpointslices",
            query=[("labelSelector", f"kubernetes.io/service-name={service['metadata']['name']}")])
        assert slices.status == 200, slices.body
        for item in slices.body["items"]:
            named = {p.get("name") for p in item.get("ports") or []} & ports
            for endpoint in item.get("endpoints") or []:
                targets[endpoint["targetRef"]["name"]] += len(named)
    return targets


def _agent_pods(kube: Kube, namespace: str, agent: str) -> set[str]:
    resp = kube.request("GET", f"/api/v1/namespaces/{namespace}/pods",
                        query=[("labelSelector", f"{LABEL_AGENT}={agent}")])
    assert resp.status == 200, resp.body
    return {p["metadata"]["name"] for p in resp.body["items"]
            if not p["metadata"].get("deletionTimestamp")}


@pytest.mark.usefixtures("capability_crds")
def test_each_service_monitor_scrapes_every_pod_once(kube: Kube, namespace: str) -> None:
    result = pipeline.render(ROOT, ("prod",))
    bodies = fleet.retarget([m.body for m in result.manifests], namespace)
    applied = fleet.apply_all(kube, [*fleet.stand_in_inputs(bodies, namespace), *bodies])
    assert all(r.ok for r in applied), [r.report() for r in applied if not r.ok]
    fleet.wait_rolled_out(kube, bodies)
    monitors = [b for b in bodies if b["kind"] == "ServiceMonitor"]
    assert {m["metadata"]["name"] for m in monitors} == {
        "chat-assistant", "code-review", "gpu-inference", "research-memory", "support-bot",
        "ticket-triage"}
    tracks = {b["metadata"]["labels"].get("agent.inferensys.com/track") for b in bodies
              if b["kind"] in ("Deployment", "StatefulSet")}
    assert tracks == {"main", "canary", "blue", "green"}
    for monitor in monitors:
        agent = monitor["metadata"]["labels"][LABEL_AGENT]
        pods = _agent_pods(kube, namespace, agent)
        assert pods, agent
        wait_for(lambda m=monitor, p=pods: _selected(kube, namespace, m)  # type: ignore[misc]
                 == Counter(dict.fromkeys(p, 1)), f"{agent}: one target per pod")

    # The check can fail: the monitors the issue found (the agent's name only, the runtime
    # port) pick the StatefulSet's pods through its headless Service too, and a gatewayAPI
    # canary's stable pods through both `<name>` and `<name>-stable`.
    twice = set()
    for monitor in monitors:
        agent = monitor["metadata"]["labels"][LABEL_AGENT]
        old = copy.deepcopy(monitor)
        old["spec"]["selector"]["matchLabels"] = {"app.kubernetes.io/name": agent}
        old["spec"]["endpoints"] = [{"port": "http"}]
        if any(n > 1 for n in _selected(kube, namespace, old).values()):
            twice.add(agent)
    assert twice == {"research-memory", "code-review"}
