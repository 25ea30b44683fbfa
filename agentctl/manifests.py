"""Rendered Kubernetes objects: identity, scope, ownership labels, kind order, digests, ApplySet
ids.

Pure data and pure functions; shared by rendering, writing and (later) the cluster stages.
"""

from __future__ import annotations

import base64
import hashlib
import json
import marshal
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from types import MappingProxyType
from typing import Any, Literal

MANAGED_BY = "agentctl"
LABEL_AGENT = "agent.inferensys.com/agent"
LABEL_ENVIRONMENT = "agent.inferensys.com/environment"
LABEL_TRACK = "agent.inferensys.com/track"
LABEL_PART_OF = "applyset.kubernetes.io/part-of"
ANNOTATION_DIGEST = "agent.inferensys.com/digest"
ANNOTATION_CONFIG_HASH = "agent.inferensys.com/config-hash"
ANNOTATION_DESCRIPTION = "agent.inferensys.com/description"

KeptKind = Literal["PersistentVolumeClaim", "Namespace", "CustomResourceDefinition"]
KEPT_KINDS: Mapping[tuple[str, str], str] = MappingProxyType({
    ("", "PersistentVolumeClaim"): "agent memory and model caches live there",
    ("", "Namespace"): "it holds everything else",
    ("apiextensions.k8s.io", "CustomResourceDefinition"):
        "deleting it deletes every object of its kind"})
"""(group, kind) never pruned unless the environment lists the kind in `spec.pruneKinds`, and
why."""


def kept_kind(group: str, kind: str, opted_in: frozenset[str]) -> str:
    """Why prune keeps a member of this kind, or "" (not a kept kind, or opted in)."""
    why = KEPT_KINDS.get((group, kind))
    if not why or kind in opted_in:
        return ""
    return (f"{kind} is never pruned unless the environment lists it in spec.pruneKinds "
            f"({why})")

RANK_ORDER: tuple[str, ...] = (
    "Namespace", "CustomResourceDefinition", "PriorityClass", "StorageClass",
    "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding",
    "SecretStore", "ExternalSecret", "Secret", "ConfigMap", "PersistentVolumeClaim",
    "NetworkPolicy", "CiliumNetworkPolicy", "Service", "Instrumentation",
    "Deployment", "StatefulSet", "Job", "CronJob",
    "HorizontalPodAutoscaler", "ScaledObject", "PodDisruptionBudget",
    "HTTPRoute", "ServiceMonitor", "PodMonitor",
)
"""Apply order (dependencies first); deletion runs in reverse. Unknown kinds apply last."""
_RANK = {kind: i for i, kind in enumerate(RANK_ORDER)}

SCOPES_FILE = "scopes.json"
"""Package data: whether each kind is namespaced. `builtin` holds every resource kind a
Kubernetes API server of `kubernetesVersion` serves (generated from its discovery by
scripts/gen_scopes.py), `custom` the custom resource kinds agentctl's blueprints render. Both map
`<group>/<Kind>` (the core group is empty: `/Namespace`) to true (namespaced) or false
(cluster-scoped); scope never depends on the version."""

CLUSTER = "Cluster"
NAMESPACED = "Namespaced"
"""The two scopes a project may declare for a custom kind (as a CRD's `spec.scope` spells them)."""


def group_kind(api_version: str, kind: str) -> str:
    """`<group>/<Kind>` of an `apiVersion` and `kind`, the core group as ''."""
    return f"{api_version.rpartition('/')[0]}/{kind}"


@cache
def known_scopes() -> Mapping[str, Mapping[str, bool]]:
    """The scopes agentctl knows (read once): `builtin` and `custom`, `<group>/<Kind>` → namespaced.
    Read-only views, safe to share between threads."""
    raw = json.loads(resources.files("agentctl").joinpath(SCOPES_FILE)
                     .read_text(encoding="utf-8"))
    return MappingProxyType({section: MappingProxyType({str(k): bool(v)
                                                        for k, v in raw[section].items()})
                             for section in ("builtin", "custom")})


def scope_of(api_version: str, kind: str,
             declared: Mapping[str, str] | None = None) -> bool | None:
    """Whether objects of `apiVersion`/`kind` are namespaced: True (namespaced), False
    (cluster-scoped) or None (unknown).

    Built-in Kubernetes kinds come first (a project cannot change them), then the scopes a
    project declares in agentctl.yaml (`spec.scopes`: `group/version/Kind` → Cluster or
    Namespaced, matched on group and kind, any version), then the custom kinds agentctl's
    blueprints render.
    """
    key = group_kind(api_version, kind)
    known = known_scopes()
    builtin = known["builtin"].get(key)
    if builtin is not None:
        return builtin
    for capability, scope in (declared or {}).items():
        group_version, _, declared_kind = capability.rpartition("/")
        if group_kind(group_version, declared_kind) == key:
            return scope == NAMESPACED
    return known["custom"].get(key)


WORKLOAD_KINDS = frozenset({"Deployment", "StatefulSet", "DaemonSet", "Job", "ReplicaSet"})


@dataclass(frozen=True, order=True)
class ObjectRef:
    """Identity of an object: usable as dict key and sort key (apply order first)."""

    rank: int
    group: str
    kind: str
    namespace: str
    name: str

    @classmethod
    def of(cls, body: dict[str, Any]) -> ObjectRef:
        api_version = str(body.get("apiVersion", ""))
        group = api_version.rpartition("/")[0]
        kind = str(body.get("kind", ""))
        meta = body.get("metadata") or {}
        return cls(_RANK.get(kind, len(RANK_ORDER)), group, kind,
                   str(meta.get("namespace") or ""), str(meta.get("name", "")))

    def __str__(self) -> str:
        return "/".join(p for p in (self.kind, self.namespace, self.name) if p)



@dataclass(frozen=True)
class Origin:
    """Which agent, from which file, rendered an object: enough to name both sides of a clash."""

    ref: ObjectRef
    agent: str
    source_file: str


class Manifest:
    """One rendered object and where it came from.

    A manifest crosses from a worker process to the parent with its body packed (marshal), and
    the body is unpacked on first use: printing or writing the already formatted `text` never
    pays for building a fleet's bodies again (benchmarks/README.md)."""

    def __init__(self, body: dict[str, Any], agent: str, template: str,
                 source_file: str) -> None:
        self._body: dict[str, Any] | None = body
        self._packed: bytes | None = None
        self.agent = agent
        self.template = template
        self.source_file = source_file
        self.ref = ObjectRef.of(body)
        self.api_version = str(body.get("apiVersion", ""))
        self.file = ""
        """Its path under `DIR/<env>/`, set when the environment is assembled
        (writing.file_names)."""
        self.text: str | None = None
        """Its YAML, when it was formatted where it rendered."""
        self.digest = ""
        """Its `agent.inferensys.com/digest`, once finished."""

    @property
    def body(self) -> dict[str, Any]:
        if self._body is None:
            assert self._packed is not None
            self._body = marshal.loads(self._packed)  # noqa: S302 - packed by this program
            self._packed = None
        return self._body

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_packed"], state["_body"] = marshal.dumps(self.body), None
        return state

    def refresh(self) -> None:
        self.ref = ObjectRef.of(self.body)

    @property
    def origin(self) -> Origin:
        return Origin(self.ref, self.agent, self.source_file)


def canonical_json(body: Any) -> str:
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def sha256_json(value: Any) -> str:
    return hashlib.sha256(canonical_json(value).encode()).hexdigest()


def digest(body: dict[str, Any]) -> str:
    """`sha256:<hex>` of the object's canonical JSON without the digest annotation."""
    meta = body.get("metadata")
    annotations = meta.get("annotations") if isinstance(meta, dict) else None
    if isinstance(annotations, dict) and ANNOTATION_DIGEST in annotations:
        rest = {k: v for k, v in annotations.items() if k != ANNOTATION_DIGEST}
        meta = {k: v for k, v in meta.items() if k != "annotations"}  # type: ignore[union-attr]
        if rest:
            meta["annotations"] = rest
        body = {**body, "metadata": meta}  # shallow copies: the body is left alone
    return "sha256:" + hashlib.sha256(canonical_json(body).encode()).hexdigest()


def applyset_parent_name(project: str, env: str) -> str:
    return f"agentctl-{project}-{env}"


def applyset_id(name: str, namespace: str) -> str:
    """KEP-3659 ApplySet id of a ConfigMap parent, computable offline."""
    raw = hashlib.sha256(f"{name}.{namespace}.ConfigMap.".encode()).digest()
    return "applyset-" + base64.urlsafe_b64encode(raw).decode().rstrip("=") + "-v1"


def ownership_labels(agent: str, env: str, applyset: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": agent,
        "app.kubernetes.io/instance": agent,
        "app.kubernetes.io/managed-by": MANAGED_BY,
        LABEL_AGENT: agent,
        LABEL_ENVIRONMENT: env,
        LABEL_PART_OF: applyset,
    }


def pod_spec_path(body: dict[str, Any]) -> tuple[str, ...] | None:
    """Where the pod spec of a workload lives, or None for objects without pods."""
    kind = body.get("kind")
    if kind in WORKLOAD_KINDS:
        return ("spec", "template", "spec")
    if kind == "CronJob":
        return ("spec", "jobTemplate", "spec", "template", "spec")
    if kind == "Pod":
        return ("spec",)
    return None


def dig(body: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        if not isinstance(body, dict):
            return None
        body = body.get(key)
    return body


@dataclass
class DesiredEnv:
    """One environment's desired state, as the cluster half takes it: the objects in apply
    order and what is needed to find and guard its cluster."""

    env: str
    namespace: str
    """The environment's namespace: where its ApplySet parent lives."""
    applyset: str
    parent: str
    """The ApplySet parent ConfigMap's name."""
    manifests: list[Manifest]
    prune: bool = True
    context: str | None = None
    """The environment's `spec.cluster.context`."""
    uid: str | None = None
    """The environment's `spec.cluster.uid`."""
    source: str = "committed"
    """Where the objects came from: `committed`, `render` or `verify`."""
    prune_kinds: frozenset[str] = frozenset()
    """The environment's `spec.pruneKinds`: kept kinds that prune may delete."""
