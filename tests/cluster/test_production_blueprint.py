"""The built-in blueprint where production would hurt, on the sandbox cluster (issue 13).

- Drain: the pods of a two-replica agent that are Running but not Ready (the sandbox's chaos
  stage: a provider outage) are evicted despite its PodDisruptionBudget; the same budget
  without `unhealthyPodEvictionPolicy: AlwaysAllow` blocks the same eviction (429), so the
  check can fail.

Objects are rendered with `agentctl.render.pipeline.render` from small projects and placed in the
test's namespace; the API server, the disruption controller and the ReplicaSet controller decide.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from agentctl.render import pipeline
from agentctl.sandbox import specs
from tests.hostile.projects import AGENT_FILE, ENV_FILE, agent, env, write_project

from . import fleet
from .kube import Kube, Obj, poll

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
