"""`agentctl status`, the cluster half: an environment's Agents as the cluster holds them (their
status subresource, as reconcile wrote it), each agent's workloads per track (image and
readiness, live), and the time and result of the last reconcile (the ApplySet parent's
annotations). Reads only: identity (when declared), discovery, one GET of the parent and one
LIST per (kind, namespace) of the environment's namespaces with the ApplySet label.

Output: `EnvState`. Never prints.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentctl.cluster import connecting, discovering, reading, recording
from agentctl.errors import ClusterError, Problem
from agentctl.manifests import LABEL_AGENT, LABEL_TRACK


@dataclass(frozen=True)
class Scope:
    """Where an environment's agents live, from its file (no render needed)."""

    env: str
    namespace: str
    namespaces: tuple[str, ...]
    """The environment's policy.namespaces: where its objects may be."""
    applyset: str
    parent: str
    context: str | None = None
    uid: str | None = None


RUNTIME = "agent"
"""The name of the runtime's container in the built-in blueprint's pod template."""


@dataclass(frozen=True)
class Track:
    name: str
    kind: str
    track: str
    images: tuple[str, ...]
    """The image of every container that runs beside the others: the pod template's
    containers, then its native sidecars (init containers with `restartPolicy: Always`); not
    the init containers that run to completion first (model download, database waits)."""
    replicas: int
    ready: int
    available: int
    containers: tuple[str, ...] = ()
    """The containers' names, in the order of `images`."""

    @property
    def runtime(self) -> int:
        """The index of the runtime's container: the one named `agent`, else the first (a
        local blueprint may name it otherwise)."""
        return self.containers.index(RUNTIME) if RUNTIME in self.containers else 0

    @property
    def image(self) -> str:
        """The runtime's image ("" without containers)."""
        return self.images[self.runtime] if self.images else ""

    @property
    def sidecars(self) -> tuple[str, ...]:
        """The other containers' images."""
        return tuple(image for i, image in enumerate(self.images) if i != self.runtime)


@dataclass
class AgentState:
    name: str
    namespace: str
    status: dict[str, Any]
    tracks: list[Track] = field(default_factory=list)


@dataclass
class EnvState:
    env: str
    namespace: str
    server: str
    context: str
    last_run: str = ""
    last_result: str = ""
    agents: list[AgentState] = field(default_factory=list)


def _int(value: Any) -> int:
    return int(value) if isinstance(value, int) else 0


def _track(item: reading.Live) -> Track:
    spec, status = item.body.get("spec") or {}, item.body.get("status") or {}
    pod = (spec.get("template") or {}).get("spec") or {}
    containers = [*(pod.get("containers") or []),
                  *(c for c in pod.get("initContainers") or []
                    if c.get("restartPolicy") == "Always")]
    selector = (spec.get("selector") or {}).get("matchLabels") or {}
    return Track(str(item.meta.get("name", "")), item.resource.kind,
                 str(selector.get(LABEL_TRACK, "")),
                 tuple(str(c.get("image", "")) for c in containers),
                 _int(spec.get("replicas", 1)), _int(status.get("readyReplicas")),
                 _int(status.get("availableReplicas")),
                 tuple(str(c.get("name", "")) for c in containers))


def inspect(scope: Scope, kubeconfig: Path | None = None,
            context: str | None = None) -> EnvState:
    """Read one environment's agents from its cluster."""
    target = connecting.Target(kubeconfig, context, scope.context)
    client = connecting.connect(target)
    try:
        connecting.check_identity(client, scope.env, scope.uid)
        resources = discovering.discover(client)
        agent_resource = resources.get("agent.inferensys.com/v1alpha1", "Agent")
        if agent_resource is None:
            raise ClusterError([Problem(message=(
                f"{client.server} does not serve agent.inferensys.com/v1alpha1/Agent: install "
                "the Agent CRD (agentctl reconcile --install-crd, or agentctl schema --crd | "
                "kubectl apply --server-side -f -)"))])
        state = EnvState(scope.env, scope.namespace, client.server, client.context)
        parent = reading.get(client, resources.require("v1", "ConfigMap"), scope.namespace,
                             scope.parent)
        annotations = ((parent or {}).get("metadata") or {}).get("annotations") or {}
        state.last_run = str(annotations.get(recording.LAST_RUN, ""))
        state.last_result = str(annotations.get(recording.LAST_RESULT, ""))
        found = recording.live(client, resources, scope.applyset, set(scope.namespaces),
                               services=False)
        workloads = [item for key, item in sorted(found.items())
                     if (key[0], key[1]) in (("apps", "Deployment"), ("apps", "StatefulSet"))]
        for key, item in sorted(found.items()):
            if key[1] != "Agent":
                continue
            name, namespace = key[3], key[2]
            tracks = [_track(w) for w in workloads if w.key[2] == namespace
                      and (w.meta.get("labels") or {}).get(LABEL_AGENT) == name]
            state.agents.append(AgentState(name, namespace, dict(item.body.get("status") or {}),
                                           tracks))
        return state
    finally:
        client.close()
