"""The health wait: the objects a run created or configured, until each is healthy, fails, or
its time is up. Unchanged objects are not waited for (nothing changed to wait for).

Healthy means: a Deployment rolled out (observedGeneration caught up, every replica updated and
available, no old replica left); a StatefulSet rolled out (every replica updated and ready, the
current revision is the update revision); a PersistentVolumeClaim Bound; a
CustomResourceDefinition Established; a Job complete. Other kinds are healthy once applied.

Failing fast, naming the object and the reason: a Deployment whose Progressing condition says
ProgressDeadlineExceeded (the object's own deadline, judged by its controller), a Job that
Failed, a PVC that is Lost, and a pod of a workload's current revision whose container waits in
CrashLoopBackOff, ImagePullBackOff or InvalidImageName.

Reads: per round, one LIST per (kind, namespace) with the ApplySet label selector, and while a
workload is not ready one LIST of its namespace's pods and ReplicaSets, selected by the labels
every pending workload's pods share. Never one GET per object. `--timeout` bounds the whole
wait; `check` runs every round (it raises when the lease was lost), and so does `progress`
(how many are healthy, and the pending object furthest from it).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from agentctl.cluster import reading
from agentctl.cluster.connecting import Client
from agentctl.cluster.discovering import Resource, Resources
from agentctl.cluster.progress import Progress, Silent
from agentctl.diffs import Change
from agentctl.manifests import LABEL_PART_OF, ObjectRef

WAITED = frozenset({("apps", "Deployment"), ("apps", "StatefulSet"),
                    ("", "PersistentVolumeClaim"), ("batch", "Job"),
                    ("apiextensions.k8s.io", "CustomResourceDefinition")})
FATAL_WAITING = frozenset({"CrashLoopBackOff", "ImagePullBackOff", "InvalidImageName"})
_WORKLOADS = frozenset({("apps", "Deployment"), ("apps", "StatefulSet")})


@dataclass(frozen=True)
class Options:
    timeout: float = 300.0
    """Seconds the whole wait may take."""
    interval: float = 1.0
    """Seconds between rounds."""


@dataclass(frozen=True)
class Verdict:
    done: bool
    failure: str = ""
    """Why it failed (fatal); empty while healthy or still progressing."""
    waiting_for: str = ""
    """What it is still waiting for."""
    share: float = 0.0
    """How far along it is while pending (0–1: a workload's available or ready replicas)."""


def wait(client: Client, resources: Resources, applyset: str, applied: list[Change],
         options: Options | None = None,
         check: Callable[[], None] = lambda: None,
         progress: Progress | None = None) -> dict[ObjectRef, str]:
    """Wait for the applied objects; return each unhealthy object's reason (empty: all
    healthy)."""
    options = options or Options()
    progress = progress or Silent()
    pending: dict[ObjectRef, Resource] = {}
    for change in applied:
        resource = resources.get(change.api_version, change.ref.kind)
        if resource is not None and (resource.group, resource.kind) in WAITED:
            pending[change.ref] = resource
    failures: dict[ObjectRef, str] = {}
    waiting_for: dict[ObjectRef, str] = {}
    total = len(pending)
    progress.waiting(0, total, "")
    deadline = time.monotonic() + options.timeout
    while pending:
        check()
        live = _read(client, pending, applyset)
        pods = _pods(client, resources, pending, live)
        shares: dict[ObjectRef, float] = {}
        for ref in list(pending):
            body = live.get(ref)
            verdict = (Verdict(False, waiting_for="it to appear") if body is None
                       else judge(pending[ref].kind, body, pods.get(ref, [])))
            if verdict.failure:
                failures[ref] = verdict.failure
            if verdict.done or verdict.failure:
                del pending[ref]
                waiting_for.pop(ref, None)
            else:
                waiting_for[ref] = verdict.waiting_for
                shares[ref] = verdict.share
        slowest = min(shares, key=lambda ref: (shares[ref], ref), default=None)
        progress.waiting(total - len(pending) - len(failures), total,
                         f"{slowest}: {waiting_for[slowest]}" if slowest else "")
        if not pending:
            break
        if time.monotonic() >= deadline:
            for ref in pending:
                failures[ref] = (f"not healthy after {_duration(options.timeout)} "
                                 f"(--timeout): waiting for {waiting_for.get(ref) or 'it'}")
            break
        time.sleep(min(options.interval, max(0.0, deadline - time.monotonic())))
    return failures


def _duration(seconds: float) -> str:
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes}m{rest}s" if minutes else f"{rest}s"


def _read(client: Client, pending: dict[ObjectRef, Resource],
          applyset: str) -> dict[ObjectRef, dict[str, Any]]:
    """The pending objects' bodies: one LIST per (kind, namespace)."""
    scopes = {(resource, ref.namespace) for ref, resource in pending.items()}
    found = reading.members(client, scopes, applyset, metadata_only=False)
    out = {}
    for ref, resource in pending.items():
        live = found.get((resource.group, resource.kind, ref.namespace, ref.name))
        if live is not None:
            out[ref] = live.body
    return out


def _pods(client: Client, resources: Resources, pending: dict[ObjectRef, Resource],
          live: dict[ObjectRef, dict[str, Any]]) -> dict[ObjectRef, list[dict[str, Any]]]:
    """The pods of each pending workload's current revision (only for workloads that are not
    ready yet, one LIST of pods and of ReplicaSets per namespace)."""
    workloads = {ref: body for ref, body in live.items()
                 if (pending[ref].group, pending[ref].kind) in _WORKLOADS
                 and not judge(pending[ref].kind, body, []).done}
    pod_resource = resources.get("v1", "Pod")
    rs_resource = resources.get("apps/v1", "ReplicaSet")
    out: dict[ObjectRef, list[dict[str, Any]]] = {}
    for namespace in sorted({ref.namespace for ref in workloads}):
        here = {ref: body for ref, body in workloads.items() if ref.namespace == namespace}
        selector = _shared_labels([_template_labels(body) for body in here.values()])
        if pod_resource is None or not selector:
            continue
        pods = reading.list_one(client, pod_resource, namespace, selector, metadata_only=False)
        sets = ([] if rs_resource is None or not any(r.kind == "Deployment" for r in here) else
                reading.list_one(client, rs_resource, namespace, selector, metadata_only=False))
        for ref, body in here.items():
            owner = _current_owner(ref.kind, body, [s.body for s in sets])
            out[ref] = [p.body for p in pods if owner and any(
                o.get("uid") == owner for o in (p.meta.get("ownerReferences") or []))
                and _revision_matches(ref.kind, body, p.body)]
    return out


def _template_labels(body: dict[str, Any]) -> dict[str, str]:
    labels = (((body.get("spec") or {}).get("template") or {}).get("metadata") or {}) \
        .get("labels") or {}
    return {str(k): str(v) for k, v in labels.items()}


def _shared_labels(label_sets: list[dict[str, str]]) -> str:
    """A selector of the labels (other than the ApplySet's) that every set has alike."""
    if not label_sets:
        return ""
    shared = dict(label_sets[0])
    for labels in label_sets[1:]:
        shared = {k: v for k, v in shared.items() if labels.get(k) == v}
    shared.pop(LABEL_PART_OF, None)
    return ",".join(f"{k}={v}" for k, v in sorted(shared.items()))


def _current_owner(kind: str, body: dict[str, Any], sets: list[dict[str, Any]]) -> str:
    """The uid owning the current revision's pods: a Deployment's newest ReplicaSet, or the
    StatefulSet itself."""
    meta = body.get("metadata") or {}
    if kind == "StatefulSet":
        return str(meta.get("uid") or "")
    revision = (meta.get("annotations") or {}).get("deployment.kubernetes.io/revision")
    for rs in sets:
        rs_meta = rs.get("metadata") or {}
        if any(o.get("uid") == meta.get("uid") for o in rs_meta.get("ownerReferences") or []) \
                and (rs_meta.get("annotations") or {}).get(
                    "deployment.kubernetes.io/revision") == revision:
            return str(rs_meta.get("uid") or "")
    return ""


def _revision_matches(kind: str, body: dict[str, Any], pod: dict[str, Any]) -> bool:
    if kind != "StatefulSet":
        return True
    update = (body.get("status") or {}).get("updateRevision")
    labels = (pod.get("metadata") or {}).get("labels") or {}
    return not update or labels.get("controller-revision-hash") == update


def _condition(body: dict[str, Any], kind: str) -> dict[str, Any]:
    for condition in (body.get("status") or {}).get("conditions") or []:
        if condition.get("type") == kind:
            return dict(condition)
    return {}


def judge(kind: str, body: dict[str, Any], pods: list[dict[str, Any]]) -> Verdict:
    """One object's health from its live body (and its current pods)."""
    status = body.get("status") or {}
    spec = body.get("spec") or {}
    if kind == "PersistentVolumeClaim":
        phase = status.get("phase")
        if phase == "Lost":
            return Verdict(False, "the claim is Lost (its volume is gone)")
        return Verdict(phase == "Bound", waiting_for=f"Bound (phase {phase or 'unknown'})")
    if kind == "CustomResourceDefinition":
        established = _condition(body, "Established").get("status") == "True"
        return Verdict(established, waiting_for="Established")
    if kind == "Job":
        if _condition(body, "Failed").get("status") == "True":
            failed = _condition(body, "Failed")
            return Verdict(False, f"the Job failed: {failed.get('reason')}: "
                                  f"{failed.get('message', '')}".rstrip(": "))
        return Verdict(_condition(body, "Complete").get("status") == "True",
                       waiting_for="completion")
    if kind not in ("Deployment", "StatefulSet"):
        return Verdict(True)
    crashing = _crashing(pods)
    generation = (body.get("metadata") or {}).get("generation", 0)
    observed = status.get("observedGeneration", 0)
    replicas = int(spec.get("replicas", 1))
    updated = int(status.get("updatedReplicas", 0))
    if kind == "Deployment":
        progressing = _condition(body, "Progressing")
        if progressing.get("reason") == "ProgressDeadlineExceeded":
            return Verdict(False, "ProgressDeadlineExceeded: " + str(
                progressing.get("message") or "the rollout made no progress in time"))
        available = int(status.get("availableReplicas", 0))
        total = int(status.get("replicas", 0))
        done = (observed >= generation and updated >= replicas and available >= replicas
                and total <= updated)
        what = f"{available}/{replicas} replicas available, {updated} updated"
        share = min(available, updated) / replicas if replicas else 0.0
    else:
        ready = int(status.get("readyReplicas", 0))
        partition = int(((spec.get("updateStrategy") or {}).get("rollingUpdate") or {})
                        .get("partition", 0))
        current = status.get("currentRevision") == status.get("updateRevision")
        done = (observed >= generation and ready >= replicas
                and updated >= replicas - partition and (current or partition > 0))
        what = f"{ready}/{replicas} replicas ready, {updated} updated"
        share = min(ready, updated) / replicas if replicas else 0.0
    if done:
        return Verdict(True)
    if crashing:
        return Verdict(False, crashing)
    return Verdict(False, waiting_for=what, share=share)


def _crashing(pods: list[dict[str, Any]]) -> str:
    for pod in pods:
        status = pod.get("status") or {}
        for container in [*(status.get("initContainerStatuses") or []),
                          *(status.get("containerStatuses") or [])]:
            waiting = (container.get("state") or {}).get("waiting") or {}
            if waiting.get("reason") in FATAL_WAITING:
                message = str(waiting.get("message") or "").splitlines()[0:1]
                return (f"pod {(pod.get('metadata') or {}).get('name')} container "
                        f"{container.get('name')} is in {waiting['reason']}"
                        + (f": {message[0][:200]}" if message else ""))
    return ""
