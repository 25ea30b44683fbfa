"""Spec sections that shape the pod: runtime, security, resources, sidecars and lifecycle."""

from typing import Annotated, Any, Literal, Self

from pydantic import Field, StringConstraints, model_validator

from agentctl.model.common import (
    AbsolutePath,
    ConfigMapKeyRef,
    DNS1123Label,
    DNS1123Subdomain,
    EnvVarName,
    LocalObjectReference,
    NonEmptyStr,
    Port,
    Quantity,
    SecretKeyRef,
    StrictModel,
    parse_quantity,
    rule,
)
from agentctl.model.kubeschemas import (
    Affinity,
    PodSecurityContext,
    SecurityContext,
    Tolerations,
    TopologySpreadConstraints,
)

Image = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._/:@+-]*$",
                                         max_length=512)]
"""A container image reference (`registry/repo:tag` or `…@sha256:…`)."""


class FieldRef(StrictModel):
    field_path: NonEmptyStr


class EnvVarSource(StrictModel):
    secret_key_ref: SecretKeyRef | None = None
    config_map_key_ref: ConfigMapKeyRef | None = None
    field_ref: FieldRef | None = None

    @model_validator(mode="after")
    def _one(self) -> Self:
        chosen = [n for n in ("secret_key_ref", "config_map_key_ref", "field_ref")
                  if getattr(self, n) is not None]
        if len(chosen) != 1:
            raise rule("", "set exactly one of secretKeyRef, configMapKeyRef, fieldRef")
        return self


class EnvVar(StrictModel):
    name: EnvVarName
    value: str | None = None
    value_from: EnvVarSource | None = None

    @model_validator(mode="after")
    def _value_xor_from(self) -> Self:
        if self.value is not None and self.value_from is not None:
            raise rule("valueFrom", "value and valueFrom are mutually exclusive")
        return self


class EnvFromSource(StrictModel):
    prefix: str | None = None
    config_map_ref: LocalObjectReference | None = None
    secret_ref: LocalObjectReference | None = None

    @model_validator(mode="after")
    def _one(self) -> Self:
        if (self.config_map_ref is None) == (self.secret_ref is None):
            raise rule("", "set exactly one of configMapRef, secretRef")
        return self


class ServiceAccount(StrictModel):
    """Use an existing ServiceAccount (`name`) or have one created (`create: true`), not both."""

    name: DNS1123Subdomain | None = None
    create: bool = False
    automount_token: bool = False
    """Mount an API token into the pod. Off by default: agents rarely need the Kubernetes API."""
    annotations: dict[str, str] = Field(default_factory=dict)
    """Annotations of a created ServiceAccount (e.g. cloud workload identity)."""

    @model_validator(mode="after")
    def _name_xor_create(self) -> Self:
        if self.name is not None and self.create:
            raise rule("create", "serviceAccount.name and serviceAccount.create are mutually "
                       "exclusive: name an existing ServiceAccount or create one")
        if self.name is None and not self.create:
            raise rule("", "set serviceAccount.name or serviceAccount.create: true")
        if self.annotations and not self.create:
            raise rule("annotations", "annotations apply only to a created ServiceAccount")
        return self


def _default_service_account() -> ServiceAccount:
    return ServiceAccount(create=True)


class Runtime(StrictModel):
    image: Image
    command: list[str] | None = None
    args: list[str] | None = None
    port: Port = 8080
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] | None = None
    env: list[EnvVar] = Field(default_factory=list)
    env_from: list[EnvFromSource] = Field(default_factory=list)
    service_account: ServiceAccount = Field(default_factory=_default_service_account)
    node_selector: dict[str, str] = Field(default_factory=dict)
    tolerations: Tolerations = Field(default_factory=list)
    affinity: Affinity | None = None
    topology_spread_constraints: TopologySpreadConstraints | None = None
    """Unset: when more than one pod can run, a soft spread (`ScheduleAnyway`) of the agent's
    pods across nodes, and across zones where the environment declares `nodes.zones`. A list
    replaces that default; `[]` renders none."""
    priority_class_name: DNS1123Subdomain | None = None
    runtime_class_name: DNS1123Subdomain | None = None
    image_pull_secrets: list[LocalObjectReference] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_env(self) -> Self:
        seen: set[str] = set()
        for i, var in enumerate(self.env):
            if var.name in seen:
                raise rule(f"env.{i}.name", f"environment variable {var.name} is set twice")
            seen.add(var.name)
        return self


PodSecurityLevel = Literal["restricted", "baseline", "privileged"]


class Security(StrictModel):
    pod_security: PodSecurityLevel = "restricted"
    """The Pod Security Standard every pod of the agent meets; the environment's policy decides
    which levels are allowed."""
    pod_security_context: PodSecurityContext = Field(default_factory=dict)
    """Overrides merged into the rendered pod securityContext (only where the level allows)."""
    security_context: SecurityContext = Field(default_factory=dict)
    """Overrides merged into every rendered container's securityContext."""


class ResourceList(StrictModel):
    cpu: Quantity | None = None
    memory: Quantity | None = None
    ephemeral_storage: Quantity | None = Field(default=None, alias="ephemeral-storage")


def _requests() -> ResourceList:
    return ResourceList(cpu="100m", memory="384Mi")


def _limits() -> ResourceList:
    return ResourceList(cpu="2", memory="1Gi")


class Gpu(StrictModel):
    count: Annotated[int, Field(ge=1, le=64)]
    resource_name: DNS1123Subdomain | str = "nvidia.com/gpu"


class Scratch(StrictModel):
    """Sizes (`sizeLimit`) of the disk-backed emptyDirs agentctl adds to every pod; with an
    emptyDir model cache, their sum is the agent container's ephemeral-storage request unless
    `requests.ephemeral-storage` is set."""

    tmp: Quantity = "1Gi"
    """`/tmp`, in every container with a read-only root filesystem."""
    home: Quantity = "1Gi"
    """`/home/agent`: HOME and the caches (XDG_CACHE_HOME, HF_HOME, TRITON_CACHE_DIR) of every
    container with a read-only root filesystem."""
    logs: Quantity = "1Gi"
    """`/var/log/agent`, with the logShipper sidecar preset."""


class Resources(StrictModel):
    requests: ResourceList = Field(default_factory=_requests)
    limits: ResourceList = Field(default_factory=_limits)
    gpu: Gpu | None = None
    """GPUs, set as limits only (Kubernetes uses the limit as the request)."""
    shm_size: Quantity | None = None
    """Size of a memory-backed /dev/shm (model servers need more than the runtime's 64 MiB)."""
    qos_class: Literal["Guaranteed", "Burstable", "BestEffort"] | None = None
    """Asserted against the rendered pod, never set: a mismatch is an error."""
    scratch: Scratch = Field(default_factory=Scratch)

    @model_validator(mode="after")
    def _requests_within_limits(self) -> Self:
        for name in ("cpu", "memory", "ephemeral_storage"):
            req, lim = getattr(self.requests, name), getattr(self.limits, name)
            if req is not None and lim is not None and parse_quantity(req) > parse_quantity(lim):
                key = "ephemeral-storage" if name == "ephemeral_storage" else name
                raise rule(f"requests.{key}", f"request {req} exceeds limit {lim}")
        return self


class ContainerPort(StrictModel):
    name: Annotated[str, StringConstraints(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
                                           max_length=15)] | None = None
    container_port: Port
    protocol: Literal["TCP", "UDP", "SCTP"] = "TCP"


class VolumeMount(StrictModel):
    name: DNS1123Label
    mount_path: AbsolutePath
    read_only: bool = False
    sub_path: str | None = None


class ContainerResources(StrictModel):
    requests: ResourceList | None = None
    limits: ResourceList | None = None


class Container(StrictModel):
    """The container fields agentctl passes through for custom init containers and sidecars."""

    name: DNS1123Label
    image: Image | None = None
    command: list[str] | None = None
    args: list[str] | None = None
    env: list[EnvVar] = Field(default_factory=list)
    env_from: list[EnvFromSource] = Field(default_factory=list)
    ports: list[ContainerPort] = Field(default_factory=list)
    resources: ContainerResources | None = None
    """Requests and limits (a helper container's defaults, or the agent's for init
    containers, apply when unset)."""
    volume_mounts: list[VolumeMount] = Field(default_factory=list)


class InitContainer(Container):
    image: Image


SidecarPreset = Literal["logShipper", "otelCollector", "cacheWarmer"]


class Sidecar(Container):
    native: bool = False
    """Run as a native sidecar: an init container with `restartPolicy: Always`."""
    preset: SidecarPreset | None = None
    """A built-in sidecar whose image and wiring come from the environment's helper images."""

    @model_validator(mode="after")
    def _native_xor_preset(self) -> Self:
        if self.preset is not None and self.native:
            raise rule("native", "native and preset are mutually exclusive (a preset decides how "
                       "it runs)")
        if self.preset is not None and self.image is not None:
            raise rule("image", "a preset sidecar takes its image from the environment's images")
        if self.preset is None and self.image is None:
            raise rule("image", "a sidecar needs an image or a preset")
        return self


class Probe(StrictModel):
    enabled: bool = True
    path: AbsolutePath = "/readyz"
    port: Port | None = None
    """Defaults to the runtime port."""
    initial_delay_seconds: Annotated[int, Field(ge=0)] = 0
    period_seconds: Annotated[int, Field(ge=1)] = 10
    timeout_seconds: Annotated[int, Field(ge=1)] = 5
    failure_threshold: Annotated[int, Field(ge=1)] = 3


class LivenessProbe(Probe):
    """Restarts a pod that stopped answering. A busy agent (or a model server's event loop in
    the middle of a long generation) answers late, not never: at least 5 s per check, and by
    default 6 misses in a row (2 minutes) before a restart."""

    path: AbsolutePath = "/livez"
    period_seconds: Annotated[int, Field(ge=1)] = 20
    timeout_seconds: Annotated[int, Field(ge=5)] = 10
    failure_threshold: Annotated[int, Field(ge=1)] = 6


class StartupProbe(StrictModel):
    """Holds back the other probes until the agent is ready the first time (its model loaded).
    Probes start after the init containers, so a model download is not part of the budget."""

    enabled: bool = True
    path: AbsolutePath | None = None
    """Defaults to the readiness probe's path."""
    port: Port | None = None
    """Defaults to the readiness probe's port (the runtime port)."""
    period_seconds: Annotated[int, Field(ge=1)] = 10
    timeout_seconds: Annotated[int, Field(ge=1)] = 5
    budget_seconds: Annotated[int, Field(ge=1, le=86400)] = 600
    """How long the agent may take to become ready after its containers start (loading a model
    into memory); the probe's failureThreshold is this over periodSeconds, rounded up."""


class Probes(StrictModel):
    """Each probe keeps its own defaults under a partial override (`liveness: {path: /live}`).
    Liveness and readiness ask different questions, on different paths by default: is the
    process alive (`/livez`), and can it take a request now (`/readyz`)."""

    startup: StartupProbe = Field(default_factory=StartupProbe)
    readiness: Probe = Field(default_factory=Probe)
    liveness: LivenessProbe = Field(default_factory=LivenessProbe)


class ExecHook(StrictModel):
    command: Annotated[list[str], Field(min_length=1)]


class PreStop(StrictModel):
    drain_seconds: Annotated[int, Field(ge=0, le=3600)] = 15
    """Seconds the pod keeps serving after it is removed from endpoints, before SIGTERM; with
    `path`, the time the drain endpoint may take."""
    path: AbsolutePath | None = None
    """The agent's drain endpoint: preStop GETs it (instead of sleeping), and it answers once
    the agent has stopped taking new tasks, finished the ones in flight and flushed its state,
    within drainSeconds."""
    port: Port | None = None
    """Port of the drain endpoint; defaults to the runtime port."""

    @model_validator(mode="after")
    def _port_needs_path(self) -> Self:
        if self.port is not None and self.path is None:
            raise rule("port", "port applies only to a drain endpoint: set path too")
        return self


class Lifecycle(StrictModel):
    init_containers: list[InitContainer] = Field(default_factory=list)
    """Custom init containers; they run after the model download and the database waits."""
    post_start: ExecHook | None = None
    probes: Probes = Field(default_factory=Probes)
    pre_stop: PreStop = Field(default_factory=PreStop)
    termination_grace_period_seconds: Annotated[int, Field(ge=1, le=86400)] = 60

    @model_validator(mode="after")
    def _grace_exceeds_drain(self) -> Self:
        if self.termination_grace_period_seconds <= self.pre_stop.drain_seconds:
            raise rule("terminationGracePeriodSeconds",
                       f"terminationGracePeriodSeconds ({self.termination_grace_period_seconds}) "
                       f"must exceed preStop.drainSeconds ({self.pre_stop.drain_seconds})")
        return self


def unique(items: list[Any], key: str, where: str) -> None:
    """Raise a rule error naming the second item whose `key` repeats an earlier one."""
    seen: set[Any] = set()
    for i, item in enumerate(items):
        value = getattr(item, key)
        if value in seen:
            raise rule(f"{where}.{i}.{key}", f"{where}: {value!r} appears more than once")
        seen.add(value)
