"""The status stage of a reconcile: each Agent object the environment renders gets its status
subresource written, and the ApplySet parent the time of the run.

Inputs: the environment's `DesiredEnv` (its Agent objects: `render/publishing.py`), the run's
change set with each object's final outcome, a `Client`, the cluster's `Resources` and the API
server's time. Reads: one LIST per (kind, namespace) with the ApplySet label and full bodies,
for the Agents, Deployments and StatefulSets (and Services when an agent is blue-green). Writes:

- per agent, a server-side apply of its status subresource (field manager `agentctl`, forced:
  nobody else writes it) only when `statuses.significant` differs from the live status, so a
  run that changes nothing writes no status;
- one merge patch of the parent's `agent.inferensys.com/last-reconcile-time` and
  `…/last-reconcile-result` annotations, the only write of such a run besides its Lease and
  Event (status times do not change every run: the run's time lives here).

Nothing is written when the environment renders no Agent object, nor in a dry run. A status
that cannot be written is a warning: the run's outcome is its objects'. Never prints.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from agentctl.cluster import ownership, reading, statuses
from agentctl.cluster.connecting import APPLY_PATCH, Client
from agentctl.cluster.discovering import Resource, Resources
from agentctl.diffs import EnvChanges, Outcome
from agentctl.errors import AgentctlError
from agentctl.manifests import LABEL_AGENT, LABEL_TRACK, DesiredEnv, Manifest

AGENT_GROUP = "agent.inferensys.com"
LAST_RUN = "agent.inferensys.com/last-reconcile-time"
LAST_RESULT = "agent.inferensys.com/last-reconcile-result"
MERGE_PATCH = "application/merge-patch+json"
WORKLOADS = (("apps/v1", "Deployment"), ("apps/v1", "StatefulSet"))


@dataclass(frozen=True)
class Recorded:
    """One agent's status after the run."""

    name: str
    namespace: str
    phase: str
    written: bool
    """Whether this run patched it (False: unchanged, or it could not be written)."""
    reason: str = ""
    """Why it was not written, when it should have been."""


def agents_of(desired: DesiredEnv) -> list[Manifest]:
    """The environment's rendered Agent objects."""
    return [m for m in desired.manifests
            if m.ref.group == AGENT_GROUP and m.ref.kind == "Agent"]


def timestamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def live(client: Client, resources: Resources, applyset: str, namespaces: set[str],
         services: bool) -> dict[reading.Key, reading.Live]:
    """The set's Agents and workloads (and Services) in `namespaces`, full bodies."""
    wanted = [("agent.inferensys.com/v1alpha1", "Agent"), *WORKLOADS]
    if services:
        wanted.append(("v1", "Service"))
    found = [r for r in (resources.get(*w) for w in wanted) if r is not None]
    scopes = {(resource, namespace) for resource in found for namespace in namespaces}
    return reading.members(client, scopes, applyset, metadata_only=False)


def observe(desired: DesiredEnv, agent: Manifest, body: dict[str, Any],
            found: dict[reading.Key, reading.Live], changes: EnvChanges) -> statuses.Observed:
    """What the cluster runs for one agent, from the LISTed objects and the run's outcomes."""
    name, namespace = agent.ref.name, agent.ref.namespace
    workloads = [{"kind": item.resource.kind, **item.body} for key, item in sorted(found.items())
                 if (key[0], key[1]) in (("apps", "Deployment"), ("apps", "StatefulSet"))
                 and key[2] == namespace
                 and (item.meta.get("labels") or {}).get(LABEL_AGENT) == name]
    service = found.get(("", "Service", namespace, name))
    selector = ((service.body.get("spec") or {}).get("selector") or {}) if service else {}
    mine = {m.ref: m for m in desired.manifests if m.agent == name}
    failures = [f"{c.ref}: {c.reason}" for c in changes.changes
                if c.outcome == Outcome.FAILED and c.ref in mine]
    digests = {str(ref): m.digest for ref, m in mine.items() if ref.kind != "Agent"}
    return statuses.Observed(body, workloads, str(selector.get(LABEL_TRACK, "")), failures,
                             statuses.rendered_digest(digests))


def record(client: Client, resources: Resources, desired: DesiredEnv, changes: EnvChanges,
           now: Callable[[], datetime], dry_run: bool = False) -> tuple[list[Recorded],
                                                                        list[str]]:
    """Write each rendered Agent's status where it changed, and the run's time on the parent.
    Returns each agent's outcome and warnings (a write that failed)."""
    agents = agents_of(desired)
    if not agents or dry_run:
        return [], []
    resource = resources.get("agent.inferensys.com/v1alpha1", "Agent")
    if resource is None:
        return [], ["Agent status not written: the cluster does not serve "
                    "agent.inferensys.com/v1alpha1/Agent"]
    blue_green = any(((a.body.get("spec") or {}).get("rollout") or {}).get("strategy")
                     == "BlueGreen" for a in agents)
    found = live(client, resources, desired.applyset, {a.ref.namespace for a in agents},
                 blue_green)
    moment = timestamp(now())
    out: list[Recorded] = []
    warnings: list[str] = []
    for agent in agents:
        item = found.get((AGENT_GROUP, "Agent", agent.ref.namespace, agent.ref.name))
        if item is None:
            out.append(Recorded(agent.ref.name, agent.ref.namespace, "", False,
                                "the Agent object does not exist (its apply failed)"))
            continue
        body = {"apiVersion": resource.api_version, "kind": "Agent", **item.body}
        status = statuses.derive(observe(desired, agent, body, found, changes), moment)
        if statuses.significant(status) == statuses.significant(body.get("status")):
            out.append(Recorded(agent.ref.name, agent.ref.namespace, status["phase"], False))
            continue
        why = write(client, resource, agent, status)
        if why:
            warnings.append(f"{agent.ref}: status not written: {why}")
        out.append(Recorded(agent.ref.name, agent.ref.namespace, status["phase"], not why, why))
    why = stamp(client, resources, desired, moment, changes.failed)
    if why:
        warnings.append(f"ConfigMap/{desired.namespace}/{desired.parent}: the time of the run "
                        f"was not written: {why}")
    return out, warnings


def write(client: Client, resource: Resource, agent: Manifest, status: dict[str, Any]) -> str:
    """Server-side apply of one Agent's status subresource; "" when it succeeded."""
    body = {"apiVersion": resource.api_version, "kind": "Agent",
            "metadata": {"name": agent.ref.name, "namespace": agent.ref.namespace},
            "status": status}
    try:
        answer = client.request(
            "PATCH", resource.path(agent.ref.namespace, agent.ref.name) + "/status",
            query=[("fieldManager", ownership.MANAGER), ("force", "true")], body=body,
            content_type=APPLY_PATCH, purpose="PATCH status")
    except AgentctlError as err:
        return str(err).splitlines()[0]
    return "" if answer.ok else answer.message


def stamp(client: Client, resources: Resources, desired: DesiredEnv, moment: str,
          failed: bool) -> str:
    """The run's time and result on the ApplySet parent; "" when written."""
    path = resources.require("v1", "ConfigMap").path(desired.namespace, desired.parent)
    patch = {"metadata": {"annotations": {
        LAST_RUN: moment, LAST_RESULT: "failed" if failed else "converged"}}}
    try:
        answer = client.request("PATCH", path, query=[("fieldManager", ownership.MANAGER)],
                                body=patch, content_type=MERGE_PATCH, purpose="PATCH parent")
    except AgentctlError as err:
        return str(err).splitlines()[0]
    return "" if answer.ok else answer.message
