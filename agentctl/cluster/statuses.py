"""An Agent's status, derived from what the cluster runs for it: pure functions, no requests.

Inputs: the live Agent object (its generation, spec and previous status), the live workloads
of the agent (Deployments and StatefulSets labelled `agent.inferensys.com/agent: <name>`), the
track its Service `<name>` selects (blue-green), what went wrong for the agent in this run, the
digest of its rendered objects and the API server's time. Output: the status as the Agent
CRD's status subresource holds it (camelCase JSON).

- **Serving workloads**: every workload of the agent, but for a blue-green agent only the
  active slot (the track its Service `<name>` selects, else `spec.rollout.blueGreen.activeSlot`).
  `replicas`, `readyReplicas` and `availableReplicas` are their sums (desired, ready, available).
- **Ready** (metav1.Condition): True when there is a serving workload and each one is rolled
  out (its controller saw the current generation, every replica updated, no old replica left)
  with every replica available.
- **Progressing**: True while any workload of the agent (the preview slot too) is rolling out
  and nothing failed; False `Complete` when all are rolled out, False `Failed` when Degraded.
- **Degraded**: True when this run failed one of the agent's objects (apply error, conflict,
  unhealthy: the reason is the message), or a workload's own conditions say its rollout
  failed (ProgressDeadlineExceeded, ReplicaFailure).
- **phase**, the first that holds: Failed (Degraded with nothing available), Degraded,
  Progressing (any workload rolling out, the preview slot's too), Ready, else Pending (no
  workload yet).
- `observedGeneration` is the Agent's generation the status describes; `renderedDigest`
  identifies its rendered objects; `lastAppliedTime` is when a run first applied that digest
  (kept while the digest stays); each condition's `lastTransitionTime` is kept while its
  status stays.

`significant` strips the times, so reconcile patches the status only when something else
changed (the time of the last run is on the ApplySet parent instead).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from agentctl.manifests import LABEL_TRACK, sha256_json

TIMES = ("lastAppliedTime",)
CONDITIONS = ("Ready", "Progressing", "Degraded")


@dataclass(frozen=True)
class Observed:
    """What the cluster runs for one agent, and what this run did to it."""

    agent: dict[str, Any]
    """The live Agent object."""
    workloads: list[dict[str, Any]] = field(default_factory=list)
    """Its live Deployments and StatefulSets (with `kind`)."""
    service_track: str = ""
    """The track its Service `<name>` selects ("" when it has none or selects every track)."""
    failures: list[str] = field(default_factory=list)
    """Why this run failed its objects, one line each (empty when nothing failed)."""
    digest: str = ""
    """`rendered_digest` of its rendered objects."""


def rendered_digest(digests: dict[str, str]) -> str:
    """`sha256:` over the agent's objects (`Kind/namespace/name` → digest), in sorted order."""
    return "sha256:" + sha256_json(sorted(digests.items()))


def _int(value: Any) -> int:
    return int(value) if isinstance(value, int) else 0


def _conditions(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {str(c.get("type")): c for c in (body.get("status") or {}).get("conditions") or []
            if isinstance(c, dict)}


def _track(body: dict[str, Any]) -> str:
    selector = ((body.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    return str(selector.get(LABEL_TRACK, ""))


def rollout(body: dict[str, Any]) -> tuple[bool, str]:
    """Whether a workload is rolled out with every replica available, and what it still
    waits for."""
    spec, status = body.get("spec") or {}, body.get("status") or {}
    meta = body.get("metadata") or {}
    name = f"{body.get('kind', 'workload')}/{meta.get('name', '')}"
    wanted = _int(spec.get("replicas", 1))
    if _int(status.get("observedGeneration")) < _int(meta.get("generation")):
        return False, f"{name}: its controller has not seen generation {meta.get('generation')}"
    updated = _int(status.get("updatedReplicas"))
    available = _int(status.get("availableReplicas"))
    total = _int(status.get("replicas"))
    if updated < wanted or available < wanted or total > updated:
        return False, (f"{name}: {available}/{wanted} replicas available, {updated} updated"
                       + (f", {total - updated} old" if total > updated else ""))
    if body.get("kind") == "StatefulSet" and not _partitioned(spec) \
            and status.get("currentRevision") != status.get("updateRevision"):
        return False, f"{name}: revision {status.get('updateRevision')} is rolling out"
    return True, ""


def _partitioned(spec: dict[str, Any]) -> bool:
    return _int(((spec.get("updateStrategy") or {}).get("rollingUpdate") or {})
                .get("partition")) > 0


def failed_rollout(body: dict[str, Any]) -> str:
    """Why a workload's controller says its rollout failed, or ""."""
    conditions = _conditions(body)
    name = f"{body.get('kind', 'workload')}/{(body.get('metadata') or {}).get('name', '')}"
    progressing = conditions.get("Progressing") or {}
    if progressing.get("reason") == "ProgressDeadlineExceeded":
        return f"{name}: ProgressDeadlineExceeded: {progressing.get('message', '')}".rstrip(": ")
    failure = conditions.get("ReplicaFailure") or {}
    if failure.get("status") == "True":
        return f"{name}: {failure.get('reason', 'ReplicaFailure')}: {failure.get('message', '')}" \
            .rstrip(": ")
    return ""


def _strategy(spec: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    rollout_spec = spec.get("rollout") or {}
    return str(rollout_spec.get("strategy") or "RollingUpdate"), rollout_spec


def derive(observed: Observed, now: str) -> dict[str, Any]:
    """The agent's status (see the module's rules); `now` is the server's time, RFC 3339."""
    agent = observed.agent
    meta, spec = agent.get("metadata") or {}, agent.get("spec") or {}
    previous = agent.get("status") or {}
    generation = _int(meta.get("generation"))
    strategy, rollout_spec = _strategy(spec)
    status: dict[str, Any] = {"observedGeneration": generation}
    serving = list(observed.workloads)
    if strategy == "BlueGreen":
        declared = str((rollout_spec.get("blueGreen") or {}).get("activeSlot") or "blue")
        active = observed.service_track if observed.service_track in ("blue", "green") \
            else declared
        status["activeSlot"] = active
        serving = [w for w in serving if _track(w) == active]
    elif strategy == "Canary":
        status["canaryWeight"] = _int((rollout_spec.get("canary") or {}).get("weight"))
    replicas = sum(_int((w.get("spec") or {}).get("replicas", 1)) for w in serving)
    ready = sum(_int((w.get("status") or {}).get("readyReplicas")) for w in serving)
    available = sum(_int((w.get("status") or {}).get("availableReplicas")) for w in serving)
    status.update({"replicas": replicas, "readyReplicas": ready,
                   "availableReplicas": available})

    failures = [*observed.failures, *filter(None, map(failed_rollout, observed.workloads))]
    waiting = [why for done, why in map(rollout, observed.workloads) if not done]
    serving_waits = [why for done, why in map(rollout, serving) if not done]
    if not serving:
        ready_condition = ("False", "NoWorkload", "no workload of the agent runs yet"
                           if not observed.workloads else "the active slot has no workload")
    elif serving_waits:
        ready_condition = ("False", "NotAvailable", "; ".join(serving_waits))
    else:
        ready_condition = ("True", "Available", f"{available}/{replicas} replicas available")
    if failures:
        progressing = ("False", "Failed", failures[0])
    elif waiting:
        progressing = ("True", "RollingOut", "; ".join(waiting))
    else:
        progressing = ("False", "Complete", "every workload is rolled out")
    degraded = (("True", "ReconcileFailed" if observed.failures else "RolloutFailed",
                 "; ".join(failures)) if failures else ("False", "NoFailure",
                                                        "nothing failed"))
    before = _conditions(agent)
    status["conditions"] = [
        _condition(kind, value, before.get(kind), generation, now)
        for kind, value in zip(CONDITIONS, (ready_condition, progressing, degraded),
                               strict=True)]
    if failures:
        status["phase"] = "Failed" if available == 0 else "Degraded"
    elif waiting:
        status["phase"] = "Progressing"
    elif ready_condition[0] == "True":
        status["phase"] = "Ready"
    else:
        status["phase"] = "Pending"
    status["renderedDigest"] = observed.digest
    kept = previous.get("lastAppliedTime")
    status["lastAppliedTime"] = (kept if kept and previous.get("renderedDigest")
                                 == observed.digest else now)
    return status


def _condition(kind: str, value: tuple[str, str, str], before: dict[str, Any] | None,
               generation: int, now: str) -> dict[str, Any]:
    state, reason, message = value
    since = (before or {}).get("lastTransitionTime")
    return {"type": kind, "status": state, "observedGeneration": generation,
            "lastTransitionTime": since if since and (before or {}).get("status") == state
            else now,
            "reason": reason, "message": message[:1024]}


def significant(status: dict[str, Any] | None) -> str:
    """The status without its times, canonical: equal when only times differ."""
    body = {k: v for k, v in (status or {}).items() if k not in TIMES}
    body["conditions"] = [{k: v for k, v in c.items() if k != "lastTransitionTime"}
                          for c in body.get("conditions") or [] if isinstance(c, dict)]
    return json.dumps(body, sort_keys=True, separators=(",", ":"))
