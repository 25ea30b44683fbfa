"""The `Agent` resource (agent.inferensys.com/v1alpha1): the single source of truth that validates
files, generates the JSON Schema and the CRD, and feeds the blueprints.

Cross-field rules raise `rule(at, message)` so an error points at the field it is about.
Mutually exclusive options are errors, never silent precedence.
"""

from typing import Annotated, Any, Literal, Self

from pydantic import Field, StringConstraints, model_validator

from agentctl.model.common import (
    AbsolutePath,
    AgentName,
    ConfigMapKeyRef,
    DNS1123Label,
    DNS1123Subdomain,
    Duration,
    Endpoint,
    NonEmptyStr,
    ObjectMeta,
    Quantity,
    SecretKeyRef,
    StrictModel,
    rule,
)
from agentctl.model.delivery import Network, Observability, Rollout, Scaling, Url
from agentctl.model.pods import (
    Lifecycle,
    Resources,
    Runtime,
    Security,
    Sidecar,
    unique,
)
from agentctl.model.status import AgentStatus

AGENT_API_VERSION = "agent.inferensys.com/v1alpha1"


class AgentMeta(ObjectMeta):
    name: AgentName


class Workload(StrictModel):
    kind: Literal["Deployment", "StatefulSet"] = "Deployment"


class ModelCache(StrictModel):
    type: Literal["emptyDir", "pvc"] = "emptyDir"
    size: Quantity | None = None
    """The PVC's request, or the emptyDir's sizeLimit (and part of the pod's ephemeral-storage
    request); required."""
    storage_class: DNS1123Subdomain | None = None

    @model_validator(mode="after")
    def _storage_class(self) -> Self:
        if self.type == "emptyDir" and self.storage_class is not None:
            raise rule("storageClass", "storageClass applies only to a pvc cache")
        return self


class ModelSource(StrictModel):
    uri: Annotated[str, StringConstraints(pattern=r"^(hf|s3|gs|pvc|oci)://[^\s]+$")]
    """Where the weights come from: hf://org/model, s3://, gs://, pvc://claim/path, oci://."""
    auth_secret_ref: SecretKeyRef | None = None
    cache: ModelCache = Field(default_factory=ModelCache)
    mount_path: AbsolutePath = "/mnt/models"
    download_timeout_seconds: Annotated[int, Field(ge=1, le=86400)] = 1800

    @model_validator(mode="after")
    def _cache(self) -> Self:
        if self.uri.startswith("pvc://"):
            if self.cache.type == "pvc":
                raise rule("cache.type", "a pvc:// source is mounted as it is; it needs no pvc "
                           "cache")
        elif self.cache.size is None:
            what = ("PersistentVolumeClaim's request" if self.cache.type == "pvc" else
                    "emptyDir's sizeLimit and part of the pod's ephemeral-storage request")
            raise rule("cache.size" if "cache" in self.model_fields_set else "cache",
                       f"a downloaded model needs a cache size (the {what}): set "
                       "cache.size, e.g. 20Gi")
        return self


class Model(StrictModel):
    id: NonEmptyStr
    provider: Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9._-]*$")] | None = None
    endpoint: Url | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    api_key_secret_ref: SecretKeyRef | None = None
    source: ModelSource | None = None


class ConfigMapSource(StrictModel):
    config_map_key_ref: ConfigMapKeyRef


class Instructions(StrictModel):
    system_message: str | None = None
    system_message_from: ConfigMapSource | None = None

    @model_validator(mode="after")
    def _xor(self) -> Self:
        if self.system_message is not None and self.system_message_from is not None:
            raise rule("systemMessageFrom",
                       "systemMessage and systemMessageFrom are mutually exclusive")
        if self.system_message is None and self.system_message_from is None:
            raise rule("", "set systemMessage or systemMessageFrom")
        return self


class HeaderFrom(StrictModel):
    name: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9-]+$")]
    secret_key_ref: SecretKeyRef


class Tool(StrictModel):
    name: DNS1123Label
    type: Literal["mcpServer", "agent", "http"]
    url: Url
    tool_names: list[NonEmptyStr] = Field(default_factory=list)
    require_approval: list[NonEmptyStr] = Field(default_factory=list)
    headers_from: list[HeaderFrom] = Field(default_factory=list)
    timeout_seconds: Annotated[int, Field(ge=1, le=3600)] = 30

    @model_validator(mode="after")
    def _approval_subset(self) -> Self:
        for i, name in enumerate(self.require_approval):
            if name not in self.tool_names:
                raise rule(f"requireApproval.{i}",
                           f"requireApproval names {name!r}, which is not in toolNames")
        return self


class SessionMemory(StrictModel):
    backend: Literal["inMemory", "redis", "postgres"] = "inMemory"
    url_secret_ref: SecretKeyRef | None = None
    endpoint: Endpoint | None = None
    """Where the store listens, so restricted egress can allow it (see network.egress)."""

    @model_validator(mode="after")
    def _url(self) -> Self:
        if self.backend == "inMemory" and self.url_secret_ref is not None:
            raise rule("urlSecretRef", "an inMemory session store takes no urlSecretRef")
        if self.backend == "inMemory" and self.endpoint is not None:
            raise rule("endpoint", "an inMemory session store has no endpoint")
        if self.backend != "inMemory" and self.url_secret_ref is None:
            raise rule("urlSecretRef", f"a {self.backend} session store needs urlSecretRef")
        return self


class LongTermMemory(StrictModel):
    backend: Literal["postgres", "redis", "qdrant", "pinecone"]
    url_secret_ref: SecretKeyRef
    endpoint: Endpoint | None = None
    """Where the store listens, so restricted egress can allow it (see network.egress)."""
    embedding_model: NonEmptyStr | None = None
    ttl_days: Annotated[int, Field(ge=1, le=36500)] = 15


class Memory(StrictModel):
    session: SessionMemory = Field(default_factory=SessionMemory)
    long_term: LongTermMemory | None = None


AccessMode = Literal["ReadWriteOnce", "ReadOnlyMany", "ReadWriteMany", "ReadWriteOncePod"]


def _rwo() -> list[AccessMode]:
    return ["ReadWriteOnce"]


class StateVolume(StrictModel):
    name: Annotated[str, StringConstraints(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
                                           max_length=16)]
    mount_path: AbsolutePath
    size: Quantity
    storage_class: DNS1123Subdomain | None = None
    access_modes: Annotated[list[AccessMode], Field(min_length=1)] = Field(default_factory=_rwo)


class Database(StrictModel):
    name: DNS1123Label
    url_secret_ref: SecretKeyRef
    endpoint: Endpoint | None = None
    """Where the database listens, so restricted egress can allow it (see network.egress)."""
    wait_for_ready: bool = True


class State(StrictModel):
    volumes: list[StateVolume] = Field(default_factory=list)
    databases: list[Database] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique(self) -> Self:
        unique(self.volumes, "name", "volumes")
        unique(self.volumes, "mount_path", "volumes")
        unique(self.databases, "name", "databases")
        return self


class SecretEnv(StrictModel):
    name: Annotated[str, StringConstraints(pattern=r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")]
    secret_key_ref: SecretKeyRef


class SecretItem(StrictModel):
    key: NonEmptyStr
    path: NonEmptyStr


class SecretMount(StrictModel):
    secret_name: DNS1123Subdomain
    mount_path: AbsolutePath
    items: list[SecretItem] = Field(default_factory=list)


class StoreRef(StrictModel):
    name: DNS1123Subdomain
    kind: Literal["SecretStore", "ClusterSecretStore"] = "SecretStore"


class RemoteRef(StrictModel):
    key: NonEmptyStr
    property: str | None = None
    version: str | None = None


class ExternalSecretData(StrictModel):
    secret_key: Annotated[str, StringConstraints(pattern=r"^[-._a-zA-Z0-9]+$")]
    remote_ref: RemoteRef


class ExternalSecret(StrictModel):
    name: DNS1123Subdomain
    store_ref: StoreRef
    refresh_interval: Duration = "1h"
    data: Annotated[list[ExternalSecretData], Field(min_length=1)]


class Secrets(StrictModel):
    env: list[SecretEnv] = Field(default_factory=list)
    mount: list[SecretMount] = Field(default_factory=list)
    external: list[ExternalSecret] = Field(default_factory=list)
    as_files: bool = False
    """Deliver every Secret key the agent container reads (model key, backend URLs, tool
    headers, `env`) as a file `/var/run/secrets/agent/<secret>/<key>`, named by `<VAR>_FILE`
    instead of `<VAR>`, for a runtime that reads them so: the kubelet keeps the files current,
    so a rotated secret reaches running pods without a restart."""

    @model_validator(mode="after")
    def _unique(self) -> Self:
        unique(self.env, "name", "env")
        unique(self.mount, "mount_path", "mount")
        unique(self.external, "name", "external")
        return self


BlueprintName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
                                                 max_length=63)]


class AgentSpec(StrictModel):
    description: str | None = None
    blueprint: BlueprintName = "agent"
    workload: Workload = Field(default_factory=Workload)
    runtime: Runtime
    security: Security = Field(default_factory=Security)
    model: Model
    instructions: Instructions | None = None
    tools: list[Tool] = Field(default_factory=list)
    memory: Memory = Field(default_factory=Memory)
    state: State = Field(default_factory=State)
    secrets: Secrets = Field(default_factory=Secrets)
    resources: Resources = Field(default_factory=Resources)
    sidecars: list[Sidecar] = Field(default_factory=list)
    lifecycle: Lifecycle = Field(default_factory=Lifecycle)
    replicas: Annotated[int, Field(ge=0, le=10000)] | None = None
    """Fixed replicas (1 unless `scaling` is set); mutually exclusive with scaling."""
    scaling: Scaling | None = None
    rollout: Rollout = Field(default_factory=Rollout)
    observability: Observability = Field(default_factory=Observability)
    network: Network = Field(default_factory=Network)

    @model_validator(mode="after")
    def _cross_rules(self) -> Self:
        if self.replicas is not None and self.scaling is not None:
            raise rule("scaling", "replicas and scaling are mutually exclusive: set a fixed "
                       "replicas or an autoscaler, not both")
        if self.scaling is None and self.replicas is None:
            self.replicas = 1
            self.model_fields_set.discard("replicas")  # a default, not a section the user set
        _check_pod_rules(self)
        return self

    def sets(self, section: str) -> bool:
        """Whether the user set a spec section (as opposed to taking its default)."""
        return section in self.model_fields_set


def _check_pod_rules(spec: AgentSpec) -> None:
    if spec.memory.session.backend == "inMemory" and _session_set(spec):
        if spec.scaling is not None:
            raise rule("memory.session.backend", "an inMemory session store cannot be shared "
                       "between autoscaled replicas: use redis or postgres")
        if spec.replicas is not None and spec.replicas > 1:
            raise rule("memory.session.backend", f"an inMemory session store cannot be shared "
                       f"between {spec.replicas} replicas: use redis or postgres")
    rollout = spec.rollout
    if rollout.strategy == "Canary" and rollout.canary is not None:
        if rollout.canary.traffic_routing == "replicaRatio" and spec.scaling is not None:
            raise rule("scaling", "a replicaRatio canary needs fixed replicas, not scaling "
                       "(use trafficRouting gatewayAPI to autoscale the stable side)")
        if (rollout.canary.traffic_routing == "replicaRatio" and spec.replicas is not None
                and spec.replicas < 2 and 0 < rollout.canary.weight < 100):
            raise rule("replicas", "a replicaRatio canary between 0 and 100 % needs at least "
                       "2 replicas (one stable, one canary)")
    _progress_deadline(spec)
    if spec.workload.kind == "StatefulSet" and rollout.strategy != "RollingUpdate":
        raise rule("rollout.strategy", f"a StatefulSet rolls out with RollingUpdate only, not "
                   f"{rollout.strategy}")
    if spec.workload.kind == "Deployment":
        for i, volume in enumerate(spec.state.volumes):
            if "ReadWriteOnce" in volume.access_modes and _max_pods(spec) > 1:
                raise rule(f"state.volumes.{i}.accessModes",
                           "a ReadWriteOnce volume cannot be shared by the replicas of a "
                           "Deployment: use workload.kind StatefulSet or ReadWriteMany")
    paths = [("state.volumes", v.mount_path) for v in spec.state.volumes]
    paths += [("secrets.mount", m.mount_path) for m in spec.secrets.mount]
    if spec.model.source is not None:
        paths.append(("model.source.mountPath", spec.model.source.mount_path))
    seen: dict[str, str] = {}
    for where, path in paths:
        if path in seen:
            raise rule(where, f"mount path {path} is also used by {seen[path]}")
        seen[path] = where


def ready_budget(spec: AgentSpec) -> tuple[int, str]:
    """Seconds a new pod may take to become ready, and what they are made of: the model
    download (an init container, unless the weights are mounted from a pvc://) and the
    startup probe's budget."""
    parts: list[tuple[int, str]] = []
    source = spec.model.source
    if source is not None and not source.uri.startswith("pvc://"):
        parts.append((source.download_timeout_seconds, "model.source.downloadTimeoutSeconds"))
    startup = spec.lifecycle.probes.startup
    if startup.enabled:
        parts.append((startup.budget_seconds, "lifecycle.probes.startup.budgetSeconds"))
    return (sum(s for s, _ in parts),
            " + ".join(f"{what} {seconds}" for seconds, what in parts) or "nothing")


def _progress_deadline(spec: AgentSpec) -> None:
    """Default `rollout.progressDeadlineSeconds` to what a new pod may need, and refuse less:
    a Deployment would be marked failed while its pods are still downloading the model."""
    rollout = spec.rollout
    needed, parts = ready_budget(spec)
    if rollout.progress_deadline_seconds is None:
        rollout.progress_deadline_seconds = max(600, needed)
        rollout.model_fields_set.discard("progress_deadline_seconds")  # a default
    elif spec.workload.kind == "Deployment" and rollout.progress_deadline_seconds < needed:
        raise rule("rollout.progressDeadlineSeconds", (
            f"{rollout.progress_deadline_seconds}s is shorter than a new pod may take to become "
            f"ready ({parts} = {needed}s): the rollout would be marked failed while it is "
            f"still starting; set at least {needed}, or leave it unset"))


def _session_set(spec: AgentSpec) -> bool:
    """Whether a session store was asked for (`memory.session`, in the agent, the environment's
    defaults or its overrides). Without one the agent is stateless and any replica count works;
    an inMemory store is per replica, so it cannot serve more than one."""
    return spec.sets("memory") and "session" in spec.memory.model_fields_set


def _max_pods(spec: AgentSpec) -> int:
    if spec.scaling is not None:
        return spec.scaling.max_replicas
    count = spec.replicas or 0
    if spec.rollout.strategy in ("BlueGreen", "Canary"):
        count += 1
    return count


class Agent(StrictModel):
    """An AI agent: its runtime, model, tools, memory, state, scaling and rollout."""

    api_version: Literal["agent.inferensys.com/v1alpha1"] = Field(alias="apiVersion")
    kind: Literal["Agent"]
    metadata: AgentMeta
    spec: AgentSpec
    status: AgentStatus | None = None

