"""The Agent's status, written by `agentctl reconcile` (never by users)."""

from typing import Literal

from pydantic import Field

from agentctl.model.common import StrictModel


class Condition(StrictModel):
    """metav1.Condition."""

    type: str
    status: Literal["True", "False", "Unknown"]
    observed_generation: int | None = None
    last_transition_time: str
    reason: str
    message: str = ""


class AgentStatus(StrictModel):
    observed_generation: int | None = None
    conditions: list[Condition] = Field(default_factory=list)
    phase: Literal["Pending", "Progressing", "Ready", "Degraded", "Failed"] | None = None
    replicas: int | None = None
    ready_replicas: int | None = None
    available_replicas: int | None = None
    active_slot: Literal["blue", "green"] | None = None
    canary_weight: int | None = None
    last_applied_time: str | None = None
    """When a run first applied the objects `renderedDigest` names (the time of the last run is
    on the environment's ApplySet parent, so a run that changes nothing writes no status)."""
    rendered_digest: str | None = None
    """`sha256:` over the agent's rendered objects and their digests."""
