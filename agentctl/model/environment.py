"""The `Environment` (agentctl.inferensys.com/v1alpha1): one cluster's namespace, capabilities,
defaults, per-agent overrides, policy and helper images."""

from typing import Annotated, Any, Literal, Self

from pydantic import Field, StringConstraints, model_validator

from agentctl.model.common import DNS1123Label, StrictModel, rule
from agentctl.model.images import Images
from agentctl.model.pods import PodSecurityLevel

PROJECT_API_VERSION = "agentctl.inferensys.com/v1alpha1"

Capability = Annotated[str, StringConstraints(
    pattern=r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?v[0-9]+"
            r"((alpha|beta)[0-9]+)?/[A-Z][A-Za-z0-9]*$")]
"""An API the cluster serves, as `group/version/Kind` (`v1/Kind` for the core group)."""


class ClusterRef(StrictModel):
    context: str | None = None
    """kubeconfig context used out of cluster; --context overrides it."""
    uid: Annotated[str, StringConstraints(pattern=r"^[0-9a-f-]{8,64}$")] | None = None
    """The kube-system namespace UID; diff and reconcile refuse any other cluster."""


def _restricted_only() -> list[PodSecurityLevel]:
    return ["restricted"]


class Policy(StrictModel):
    pod_security: Annotated[list[PodSecurityLevel], Field(min_length=1)] = Field(
        default_factory=_restricted_only)
    """Pod Security Standard levels agents may use here."""
    namespaces: list[DNS1123Label] | None = None
    """Namespaces rendered objects may target (default: the environment's namespace)."""


class EnvironmentSpec(StrictModel):
    cluster: ClusterRef = Field(default_factory=ClusterRef)
    namespace: DNS1123Label
    capabilities: list[Capability] = Field(default_factory=list)
    defaults: dict[str, Any] = Field(default_factory=dict)
    """Merged under every agent's spec (JSON Merge Patch)."""
    agents: dict[str, dict[str, Any]] = Field(default_factory=dict)
    """Per-agent overrides of the spec, merged last."""
    policy: Policy = Field(default_factory=Policy)
    images: Images = Field(default_factory=Images)
    prune: bool = True

    @model_validator(mode="after")
    def _namespaces(self) -> Self:
        if self.policy.namespaces is None:
            self.policy.namespaces = [self.namespace]
        elif self.namespace not in self.policy.namespaces:
            raise rule("policy.namespaces", f"the environment's own namespace {self.namespace} "
                       "must be among policy.namespaces")
        return self


class EnvironmentMeta(StrictModel):
    name: DNS1123Label


class Environment(StrictModel):
    api_version: Literal["agentctl.inferensys.com/v1alpha1"] = Field(alias="apiVersion")
    kind: Literal["Environment"]
    metadata: EnvironmentMeta
    spec: EnvironmentSpec


class ProjectSpec(StrictModel):
    agents: str = "agents"
    blueprints: str = "blueprints"
    environments: str = "environments"
    output: str = "rendered"


class ProjectMeta(StrictModel):
    name: DNS1123Label = "default"


class Project(StrictModel):
    """agentctl.yaml: optional; every field has a default."""

    api_version: Literal["agentctl.inferensys.com/v1alpha1"] = Field(
        default="agentctl.inferensys.com/v1alpha1", alias="apiVersion")
    kind: Literal["Project"] = "Project"
    metadata: ProjectMeta = Field(default_factory=ProjectMeta)
    spec: ProjectSpec = Field(default_factory=ProjectSpec)
