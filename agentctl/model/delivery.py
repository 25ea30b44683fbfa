"""Spec sections about running and reaching an agent: scaling, rollout, observability and
network."""

import re
from typing import Annotated, Any, Literal, Self

from pydantic import Field, StringConstraints, model_validator

from agentctl.model.common import (
    AbsolutePath,
    DNS1123Label,
    DNS1123Subdomain,
    Duration,
    GatewayDuration,
    NonEmptyStr,
    Port,
    Quantity,
    StrictModel,
    rule,
)
from agentctl.model.kubeschemas import HpaBehavior

Url = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9+.-]*://[^\s]+$", max_length=2048)]


class Metric(StrictModel):
    type: Literal["cpu", "memory", "pods", "prometheus"] = "cpu"
    target: int | Quantity = 80
    """Average utilisation in percent (cpu, memory), an average value per pod (pods) or the
    threshold of the query (prometheus)."""
    name: NonEmptyStr | None = None
    """The custom metric (pods), e.g. agent_inflight_requests."""
    query: NonEmptyStr | None = None
    server_address: Url | None = None

    @model_validator(mode="after")
    def _fields(self) -> Self:
        if self.type == "pods" and self.name is None:
            raise rule("name", "a pods metric needs the metric name")
        if self.type == "prometheus" and (self.query is None or self.server_address is None):
            raise rule("query", "a prometheus metric needs query and serverAddress")
        if self.type in ("cpu", "memory") and not isinstance(self.target, int):
            raise rule("target", f"a {self.type} target is a utilisation percentage (integer)")
        return self


def _cpu80() -> list[Metric]:
    return [Metric(type="cpu", target=80)]


class Scaling(StrictModel):
    engine: Literal["hpa", "keda"] = "hpa"
    min_replicas: Annotated[int, Field(ge=0, le=10000)] = 1
    max_replicas: Annotated[int, Field(ge=1, le=10000)]
    metrics: Annotated[list[Metric], Field(min_length=1)] = Field(default_factory=_cpu80)
    behavior: HpaBehavior | None = None

    @model_validator(mode="after")
    def _bounds(self) -> Self:
        if self.min_replicas > self.max_replicas:
            raise rule("minReplicas", f"minReplicas ({self.min_replicas}) exceeds maxReplicas "
                       f"({self.max_replicas})")
        if self.min_replicas == 0 and self.engine == "hpa":
            raise rule("minReplicas", "minReplicas 0 (scale to zero) needs engine keda")
        for i, metric in enumerate(self.metrics):
            if metric.type == "prometheus" and self.engine != "keda":
                raise rule(f"metrics.{i}.type", "a prometheus metric needs engine keda")
            if metric.type == "pods" and self.engine != "hpa":
                raise rule(f"metrics.{i}.type", "a pods metric needs engine hpa")
        return self


IntOrPercent = int | Annotated[str, StringConstraints(pattern=r"^[0-9]+%$")]


class RollingUpdate(StrictModel):
    max_surge: IntOrPercent = 1
    max_unavailable: IntOrPercent = 0


PATCHABLE = ("runtime", "model", "instructions", "tools", "resources", "sidecars", "lifecycle")
"""Spec sections a track's patch may touch."""
NOT_PATCHABLE = {("runtime", "serviceAccount"): "the tracks share one ServiceAccount",
                 ("runtime", "port"): "the tracks share the NetworkPolicies and the metrics "
                                      "endpoint, which name the agent's port",
                 ("model", "source", "cache"): "the tracks share one model cache"}
TRACK_PATCHES = (("rollout", "canary", "patch"), ("rollout", "blueGreen", "slots", "blue"),
                 ("rollout", "blueGreen", "slots", "green"))
"""Where a track's patch sits in a spec: each is a leaf for the environment merges."""

TrackPatch = dict[str, Any]
"""A JSON Merge Patch over the agent's spec that one track runs (RFC 7386: `null` deletes)."""


def unpatchable(keys: tuple[str, ...]) -> str:
    """Why a track's patch may not touch `keys` (empty when it may)."""
    if keys[0] not in PATCHABLE:
        return (f"a track may change only {', '.join(PATCHABLE)}; {keys[0]} is shared by every "
                "track")
    for prefix, why in NOT_PATCHABLE.items():
        if keys[:len(prefix)] == prefix:
            return f"{'.'.join(prefix)} cannot differ per track: {why}"
    return ""


def _check_patch(patch: TrackPatch | None, at: tuple[str, ...]) -> None:
    def walk(value: Any, keys: tuple[str, ...]) -> None:
        why = unpatchable(keys)
        if why:
            raise rule((*at, *keys), why)
        prefixes = [p for p in NOT_PATCHABLE if p[:len(keys)] == keys and len(p) > len(keys)]
        if prefixes and isinstance(value, dict):
            for key, inner in value.items():
                walk(inner, (*keys, str(key)))
        elif prefixes and value is None:
            raise rule((*at, *keys), f"deleting {'.'.join(keys)} would change "
                       f"{'.'.join(prefixes[0])}: {NOT_PATCHABLE[prefixes[0]]}")

    for key, value in (patch or {}).items():
        walk(value, (str(key),))


class Slots(StrictModel):
    """What each slot runs on top of the agent's spec; new versions go to the inactive slot."""

    blue: TrackPatch | None = None
    """A JSON Merge Patch over the agent's spec that the blue slot runs."""
    green: TrackPatch | None = None
    """A JSON Merge Patch over the agent's spec that the green slot runs."""

    @model_validator(mode="after")
    def _patchable(self) -> Self:
        _check_patch(self.blue, ("blue",))
        _check_patch(self.green, ("green",))
        return self


class BlueGreen(StrictModel):
    active_slot: Literal["blue", "green"] = "blue"
    preview_replicas: Annotated[int, Field(ge=0, le=10000)] = 1
    slots: Slots = Field(default_factory=Slots)


class Canary(StrictModel):
    weight: Annotated[int, Field(ge=0, le=100)]
    traffic_routing: Literal["replicaRatio", "gatewayAPI"] = "replicaRatio"
    replicas: Annotated[int, Field(ge=1, le=10000)] = 1
    """Canary replicas with gatewayAPI routing (replicaRatio derives them from the weight)."""
    patch: TrackPatch | None = None
    """A JSON Merge Patch over the agent's spec that only the canary track runs (runtime but not
    runtime.serviceAccount or runtime.port, model but not model.source.cache, instructions,
    tools, resources, sidecars, lifecycle)."""

    @model_validator(mode="after")
    def _patchable(self) -> Self:
        _check_patch(self.patch, ("patch",))
        return self


class Rollout(StrictModel):
    strategy: Literal["RollingUpdate", "Recreate", "BlueGreen", "Canary"] = "RollingUpdate"
    rolling_update: RollingUpdate = Field(default_factory=RollingUpdate)
    blue_green: BlueGreen | None = None
    canary: Canary | None = None
    progress_deadline_seconds: Annotated[int, Field(ge=1)] | None = None
    """Seconds a Deployment's rollout may go without progress before Kubernetes marks it
    ProgressDeadlineExceeded (reconcile's health wait then fails at once). It must cover what
    a new pod may take to become ready: the model download (`model.source
    .downloadTimeoutSeconds`, when an init container downloads the model) plus the startup
    budget (`lifecycle.probes.startup.budgetSeconds`); a shorter value is an error. Defaults
    to that sum, and at least 600 (Kubernetes' own default)."""
    revision_history_limit: Annotated[int, Field(ge=0)] = 10

    @model_validator(mode="after")
    def _strategy_fields(self) -> Self:
        if self.blue_green is not None and self.strategy != "BlueGreen":
            raise rule("blueGreen", f"blueGreen is set but strategy is {self.strategy}")
        if self.canary is not None and self.strategy != "Canary":
            raise rule("canary", f"canary is set but strategy is {self.strategy}")
        if self.strategy == "Canary" and self.canary is None:
            raise rule("canary", "strategy Canary needs canary.weight")
        if self.strategy == "BlueGreen" and self.blue_green is None:
            self.blue_green = BlueGreen()
        return self


class MetricsEndpoint(StrictModel):
    port: Port | None = None
    """Defaults to the runtime port."""
    path: AbsolutePath = "/metrics"
    interval: Duration = "30s"
    monitor: Literal["serviceMonitor", "podMonitor", "annotations", "none"] = "serviceMonitor"


class Logging(StrictModel):
    format: Literal["json", "text"] = "json"
    level: Literal["debug", "info", "warn", "error"] = "info"


class Tracing(StrictModel):
    mode: Literal["env", "autoInstrument", "none"] = "none"
    endpoint: Url | None = None
    sampler: Literal["always_on", "always_off", "traceidratio", "parentbased_always_on",
                     "parentbased_always_off", "parentbased_traceidratio"] = (
        "parentbased_always_on")
    sampler_arg: Annotated[str, StringConstraints(pattern=r"^(0(\.[0-9]+)?|1(\.0+)?)$")] | None = (
        None)
    instrumentation: Literal["python", "nodejs", "java", "go", "dotnet"] = "python"
    """The language the OpenTelemetry Operator instruments (autoInstrument)."""

    @model_validator(mode="after")
    def _endpoint(self) -> Self:
        if self.mode == "env" and self.endpoint is None:
            raise rule("endpoint", "tracing mode env needs an endpoint")
        if self.sampler_arg is not None and "traceidratio" not in self.sampler:
            raise rule("samplerArg", f"samplerArg applies only to a traceidratio sampler, not "
                       f"{self.sampler}")
        return self


class Alerts(StrictModel):
    """Thresholds of the alerts in the agent's PrometheusRule (where the environment has
    `monitoring.coreos.com/v1/PrometheusRule`), on the OpenTelemetry GenAI metrics the agent
    runtime emits."""

    operation_p95_seconds: Annotated[int, Field(ge=1, le=86400)] = 30
    """p95 of `gen_ai.client.operation.duration` (model calls, not tool calls) over 10 minutes."""
    tool_error_ratio: Annotated[float, Field(ge=0, le=1)] = 0.1
    """Share of `execute_tool` operations that failed (`error.type` set) over 10 minutes (0:
    any failure)."""
    tokens_per_hour: Annotated[int, Field(ge=1)] | None = None
    """Input and output tokens per hour (`gen_ai.client.token.usage`) over 15 minutes; no
    token alert when unset (a budget is the agent's own)."""


class Observability(StrictModel):
    metrics: MetricsEndpoint = Field(default_factory=MetricsEndpoint)
    logging: Logging = Field(default_factory=Logging)
    tracing: Tracing = Field(default_factory=Tracing)
    alerts: Alerts = Field(default_factory=Alerts)


class ServiceSpec(StrictModel):
    type: Literal["ClusterIP", "NodePort", "LoadBalancer"] = "ClusterIP"
    port: Port = 80


class ParentRef(StrictModel):
    name: DNS1123Subdomain
    namespace: DNS1123Label | None = None
    section_name: DNS1123Label | None = None


Hostname = Annotated[str, StringConstraints(
    pattern=r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$",
    max_length=253)]


def _duration_seconds(value: str) -> float:
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
    return sum(int(n) * units[u] for n, u in re.findall(r"([0-9]+)(ms|h|m|s)", value))


class RouteTimeouts(StrictModel):
    """Gateway defaults (15 s on Envoy) cut long generations and streamed answers short."""

    request: GatewayDuration = "10m"
    """The whole request, from the client's first byte to the last byte of the (streamed)
    answer; `0s` disables it where the gateway supports that."""
    backend_request: GatewayDuration = "10m"
    """One request from the gateway to the agent (each retry has its own); at most
    `request`."""

    @model_validator(mode="after")
    def _backend_within_request(self) -> Self:
        request, backend = _duration_seconds(self.request), _duration_seconds(self.backend_request)
        if request and backend > request:
            raise rule("backendRequest", f"backendRequest ({self.backend_request}) must not "
                       f"exceed request ({self.request})")
        return self


class HttpRoute(StrictModel):
    parent_refs: Annotated[list[ParentRef], Field(min_length=1)]
    hostnames: list[Hostname] = Field(default_factory=list)
    timeouts: RouteTimeouts = Field(default_factory=RouteTimeouts)


class InClusterPeer(StrictModel):
    namespace: DNS1123Label
    port: Port | None = None
    """A TCP port; every port when unset."""


class Egress(StrictModel):
    """Set (even `{}`), egress is restricted: the agent may reach DNS, every dependency its spec
    names (the model provider or endpoint, the model source, tool URLs, the tracing endpoint,
    the memory and database backends' endpoints) and what is listed here, nothing else."""

    allowed_domains: list[Hostname] = Field(default_factory=list)
    """Further domains (`*.example.com` for subdomains), on TCP 443."""
    allow_in_cluster: list[InClusterPeer] = Field(default_factory=list)
    """Further namespaces (and ports) in the cluster."""


class Ingress(StrictModel):
    allow_from: list[InClusterPeer] = Field(default_factory=list)
    """Namespaces (and ports of the agent) that may connect besides the agent's own namespace,
    its gateway and the metrics scraper, where the environment restricts ingress."""


class Pdb(StrictModel):
    max_unavailable: IntOrPercent = 1


class Network(StrictModel):
    service: ServiceSpec = Field(default_factory=ServiceSpec)
    http_route: HttpRoute | None = None
    egress: Egress | None = None
    ingress: Ingress = Field(default_factory=Ingress)
    pdb: Pdb = Field(default_factory=Pdb)
    """A PodDisruptionBudget, rendered whenever more than one replica can run."""
