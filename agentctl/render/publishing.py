"""The Agent object an environment publishes for each agent, so the cluster knows its agents
(`kubectl get agents`) and `agentctl reconcile` has somewhere to write their status.

An environment opts in by declaring the capability `agent.inferensys.com/v1alpha1/Agent` (the
cluster serves the Agent CRD: `agentctl schema --crd`, or `agentctl reconcile --install-crd`).
Then every agent renders, besides its blueprint's objects, one object of kind Agent:
`metadata` {name, namespace} (finishing adds the labels, the agent's annotations and the
digest, as on every object) and `spec`, the agent's spec as merged for this environment (the
environment's defaults, the agent file, the overrides) with the fields it sets and no more:
agentctl's defaults are not written out. It is committed, reviewed, diffed, applied and pruned
like any other rendered object; it never carries a status (reconcile writes that to the status
subresource).

Pure: no I/O, no clock.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agentctl.manifests import Manifest

if TYPE_CHECKING:
    from agentctl.model.agent import Agent

AGENT_API_VERSION = "agent.inferensys.com/v1alpha1"
AGENT_CAPABILITY = f"{AGENT_API_VERSION}/Agent"
"""The capability that makes an environment publish its Agent objects."""


def publishes(capabilities: tuple[str, ...] | list[str] | set[str]) -> bool:
    """Whether an environment with these capabilities renders Agent objects."""
    return AGENT_CAPABILITY in capabilities


def agent_object(agent: Agent) -> dict[str, Any]:
    """The Agent object of one merged agent (before finishing)."""
    spec = agent.spec.model_dump(mode="json", by_alias=True, exclude_unset=True)
    return {"apiVersion": AGENT_API_VERSION, "kind": "Agent",
            "metadata": {"name": agent.metadata.name, "namespace": agent.metadata.namespace},
            "spec": spec}


def agent_manifest(agent: Agent, source_file: str) -> Manifest:
    """`agent_object` as a manifest of `agent`, attributed to its file."""
    return Manifest(agent_object(agent), agent.metadata.name, "(Agent object)", source_file)
