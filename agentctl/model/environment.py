"""The `Environment` (agentctl.inferensys.com/v1alpha1): one cluster's namespace, capabilities,
defaults, per-agent overrides, policy and helper images."""

from typing import Annotated, Any, Literal, Self

from pydantic import Field, StringConstraints, model_validator

from agentctl.manifests import KeptKind, group_kind, known_scopes
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


class Nodes(StrictModel):
    """What the cluster's nodes offer, as far as rendering needs to know."""

    zones: bool = False
    """The nodes are spread over zones (labelled `topology.kubernetes.io/zone`): agents with
    more than one pod also spread across zones."""
    gpu: bool = False
    """Nodes with GPUs exist here. Without them an agent asking for a GPU would never be
    scheduled: an error at its `resources.gpu`."""


class EnvironmentNetwork(StrictModel):
    ingress: Literal["open", "restricted"] = "open"
    """`restricted`: each agent admits only its own namespace, its gateway (the namespaces of
    its HTTPRoute's parentRefs) on its port, the metrics scraper's namespace on the metrics port
    and its `network.ingress.allowFrom`."""
    egress_fallback: Literal["none", "publicHTTPS"] = "none"
    """Without `cilium.io/v2/CiliumNetworkPolicy` a domain cannot be pinned: `none` makes a
    restricted agent's domain an error, `publicHTTPS` allows TCP 443 to public addresses (never
    private, link-local, CGNAT or loopback ranges) instead, with a warning naming the domain."""
    scraper_namespace: DNS1123Label = "monitoring"
    """The namespace the metrics scraper (Prometheus) runs in."""


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
    """Reconcile deletes the ApplySet's members that are no longer rendered (`reconcile
    --prune/--no-prune` overrides it for one run)."""
    prune_kinds: list[KeptKind] = Field(default_factory=list)
    """Kinds that are never pruned by default which this environment lets reconcile delete
    when no longer rendered: `PersistentVolumeClaim` (agent memory and model caches: their
    data goes with them), `Namespace` (everything in it goes) or `CustomResourceDefinition`
    (every object of its kind goes). Without it such an object is kept and released from the
    ApplySet; the reconciler's generated RBAC grants `delete` on these kinds only when listed.
    Listing `Namespace` requires `PersistentVolumeClaim` too: deleting a namespace deletes the
    claims in it."""
    nodes: Nodes = Field(default_factory=Nodes)
    reloader: bool = False
    """Stakater Reloader runs here: each workload names the Secrets its pods read as env vars
    and the ConfigMaps agentctl does not render (`secret.reloader.stakater.com/reload`,
    `configmap.reloader.stakater.com/reload`), so a rotated secret or an edited prompt rolls
    the pods."""
    network: EnvironmentNetwork = Field(default_factory=EnvironmentNetwork)

    @model_validator(mode="after")
    def _prune_kinds(self) -> Self:
        if "Namespace" in self.prune_kinds and "PersistentVolumeClaim" not in self.prune_kinds:
            raise rule("pruneKinds", "Namespace is listed without PersistentVolumeClaim, but "
                       "deleting a namespace deletes every claim in it (agent memory, model "
                       "caches): list PersistentVolumeClaim too, or leave Namespace out")
        return self

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


Scope = Literal["Cluster", "Namespaced"]
"""Whether objects of a kind live in a namespace, as a CRD's `spec.scope` spells it."""


class ProjectSpec(StrictModel):
    agents: str = "agents"
    blueprints: str = "blueprints"
    environments: str = "environments"
    output: str = "rendered"
    scopes: dict[Capability, Scope] = Field(default_factory=dict)
    """Scope of each custom kind the project's blueprints render that agentctl does not already
    know: `group/version/Kind` → `Cluster` or `Namespaced`, e.g.
    `{cert-manager.io/v1/ClusterIssuer: Cluster}`. Objects of a Namespaced kind get the agent's
    namespace, those of a Cluster kind none (they are written under `_cluster/`); rendering an
    object whose kind's scope is unknown is an error. A declaration covers every version of the
    kind; a built-in Kubernetes kind cannot be declared with a scope other than its own."""

    @model_validator(mode="after")
    def _scopes(self) -> Self:
        if not self.scopes:
            return self
        builtin_scopes = known_scopes()["builtin"]
        seen: dict[str, tuple[str, str]] = {}
        for capability, scope in self.scopes.items():
            group_version, _, kind = capability.rpartition("/")
            key = group_kind(group_version, kind)
            builtin = builtin_scopes.get(key)
            if builtin is not None and builtin != (scope == "Namespaced"):
                raise rule("scopes", f"{capability} is a built-in Kubernetes kind whose "
                           f"scope is {'Namespaced' if builtin else 'Cluster'}, not {scope}")
            other = seen.get(key)
            if other is not None and other[1] != scope:
                raise rule("scopes", f"{capability} is declared {scope} but "
                           f"{other[0]} is declared {other[1]} (scope does not depend on the "
                           "version)")
            seen[key] = (capability, scope)
        return self


class ProjectMeta(StrictModel):
    name: DNS1123Label = "default"


class Project(StrictModel):
    """agentctl.yaml: optional; every field has a default."""

    api_version: Literal["agentctl.inferensys.com/v1alpha1"] = Field(
        default="agentctl.inferensys.com/v1alpha1", alias="apiVersion")
    kind: Literal["Project"] = "Project"
    metadata: ProjectMeta = Field(default_factory=ProjectMeta)
    spec: ProjectSpec = Field(default_factory=ProjectSpec)
