"""Least-privilege RBAC for the identity that runs `agentctl reconcile` for one environment.

Input: `Access`, what the environment lets reconcile do: the kinds it may render (the kinds
agentctl's built-in blueprint renders without any capability, every declared capability's kind,
and any other kind its committed tree holds), the namespaces of its policy, whether it declares
`cluster.uid` and whether reconcile runs with `--install-crd`. Output: Roles, RoleBindings and,
only when needed, a ClusterRole and ClusterRoleBinding, bound to one ServiceAccount.

What each rule is for:

- every kind it may render, in every namespace of `policy.namespaces`: get, list (the change
  set's LISTs by ApplySet label, the prune's fresh reads), create and patch (server-side apply
  creates through a PATCH, which needs both), delete (the prune) — but no delete of
  PersistentVolumeClaims, Namespaces or CRDs unless the environment lists the kind in
  `spec.pruneKinds` (prune keeps them otherwise, and releases them with a patch);
- pods and ReplicaSets there: list (the health wait reads the current revision's pods);
- in the environment's namespace: its Lease (create; get and update of that name only) and
  Events (create, one per run on the ApplySet parent; the parent is a ConfigMap, a kind it
  renders anyway);
- with the Agent capability: `agents/status` patch (the status stage);
- cluster-wide, only when needed: `get` of the kube-system namespace (the identity check of
  `cluster.uid`), get, create and patch of the Agent CRD by name (`--install-crd`), and the
  cluster-scoped kinds it renders (a local blueprint's), with the same verbs as above.

Nothing else: no Secrets unless it renders them, no pods/exec, no escalate or bind, no
wildcard. Pure data: no I/O.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from agentctl.manifests import KEPT_KINDS, MANAGED_BY, scope_of

RBAC = "rbac.authorization.k8s.io/v1"
MEMBER_VERBS = ("get", "list", "create", "patch", "delete")
BASE_KINDS: tuple[tuple[str, str], ...] = (
    ("v1", "ServiceAccount"), ("v1", "ConfigMap"), ("v1", "Service"),
    ("v1", "PersistentVolumeClaim"), ("apps/v1", "Deployment"), ("apps/v1", "StatefulSet"),
    ("autoscaling/v2", "HorizontalPodAutoscaler"), ("policy/v1", "PodDisruptionBudget"),
    ("networking.k8s.io/v1", "NetworkPolicy"),
)
"""(apiVersion, kind) agentctl's built-in blueprint renders without any capability."""
AGENT_CRD = "agents.agent.inferensys.com"
_IRREGULAR = {"Endpoints": "endpoints"}


def resource_of(kind: str) -> str:
    """A kind's resource name, as kubectl guesses it offline (`NetworkPolicy` → `networkpolicies`,
    `Ingress` → `ingresses`)."""
    if kind in _IRREGULAR:
        return _IRREGULAR[kind]
    lower = kind.lower()
    if lower.endswith("s"):
        return lower + "es"
    if lower.endswith("y") and lower[-2:-1] not in "aeiou":
        return lower[:-1] + "ies"
    return lower + "s"


@dataclass(frozen=True)
class Access:
    """What reconcile of one environment may touch."""

    env: str
    namespace: str
    """The environment's namespace: its Lease, ApplySet parent and Events live there."""
    namespaces: tuple[str, ...]
    """policy.namespaces: where its objects may be."""
    lease: str
    """The Lease's name (the ApplySet parent's)."""
    kinds: frozenset[tuple[str, str]]
    """(apiVersion, kind) it may render."""
    scopes: Mapping[str, str] = field(default_factory=dict)
    """The project's declared scopes of custom kinds."""
    identity: bool = False
    """The environment declares cluster.uid: the kube-system namespace is read."""
    install_crd: bool = False
    prune_kinds: frozenset[str] = frozenset()
    """The environment's spec.pruneKinds: kept kinds reconcile may delete."""

    def deletes(self, api_version: str, kind: str) -> bool:
        """Whether prune may delete objects of this kind here."""
        group = api_version.rpartition("/")[0]
        return (group, kind) not in KEPT_KINDS or kind in self.prune_kinds


def kinds_of(capabilities: Iterable[str], rendered: Iterable[tuple[str, str]] = ()
             ) -> frozenset[tuple[str, str]]:
    """The kinds an environment may render: the built-in blueprint's, its capabilities' and
    the ones its committed tree holds."""
    declared = {tuple(c.rsplit("/", 1)) for c in capabilities}
    return frozenset({*BASE_KINDS, *((v, k) for v, k in declared), *rendered})


def _rules(resources: Mapping[str, Iterable[str]], verbs: Iterable[str]) -> list[dict[str, Any]]:
    return [{"apiGroups": [group], "resources": sorted(set(names)), "verbs": list(verbs)}
            for group, names in sorted(resources.items())]


def _members(grouped: Mapping[tuple[bool, bool], Mapping[str, Iterable[str]]],
             namespaced: bool) -> list[dict[str, Any]]:
    """Member kinds' rules: every verb, or every verb but delete for a kept kind."""
    return (_rules(grouped.get((namespaced, True), {}), MEMBER_VERBS)
            + _rules(grouped.get((namespaced, False), {}),
                     [v for v in MEMBER_VERBS if v != "delete"]))


def _meta(name: str, namespace: str | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    meta["labels"] = {"app.kubernetes.io/name": "agentctl",
                      "app.kubernetes.io/managed-by": MANAGED_BY}
    return meta


def objects(access: Access, account: str, account_namespace: str) -> list[dict[str, Any]]:
    """The Roles and bindings (and ClusterRole, when needed) for ServiceAccount
    `account_namespace/account`, named after it."""
    # (namespaced?, deletable?) → group → resources
    grouped: dict[tuple[bool, bool], dict[str, set[str]]] = defaultdict(
        lambda: defaultdict(set))
    for api_version, kind in sorted(access.kinds):
        group = api_version.rpartition("/")[0]
        namespaced = scope_of(api_version, kind, access.scopes) is not False
        grouped[namespaced, access.deletes(api_version, kind)][group].add(resource_of(kind))
    subject = [{"kind": "ServiceAccount", "name": account, "namespace": account_namespace}]
    out: list[dict[str, Any]] = []
    for namespace in sorted(set(access.namespaces) | {access.namespace}):
        rules = _members(grouped, namespaced=True)
        rules += _rules({"": ["pods"], "apps": ["replicasets"]}, ["list"])
        if namespace == access.namespace:
            rules += [
                {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
                 "verbs": ["create"]},
                {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
                 "resourceNames": [access.lease], "verbs": ["get", "update"]},
                {"apiGroups": [""], "resources": ["events"], "verbs": ["create"]}]
        if any("agents" in grouped[True, d].get("agent.inferensys.com", set())
               for d in (True, False)):
            rules.append({"apiGroups": ["agent.inferensys.com"], "resources": ["agents/status"],
                          "verbs": ["patch"]})
        out.append({"apiVersion": RBAC, "kind": "Role", "metadata": _meta(account, namespace),
                    "rules": rules})
        out.append({"apiVersion": RBAC, "kind": "RoleBinding",
                    "metadata": _meta(account, namespace),
                    "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                "name": account}, "subjects": subject})
    rules = _members(grouped, namespaced=False)
    if access.identity:
        rules.append({"apiGroups": [""], "resources": ["namespaces"],
                      "resourceNames": ["kube-system"], "verbs": ["get"]})
    if access.install_crd:
        rules.append({"apiGroups": ["apiextensions.k8s.io"],
                      "resources": ["customresourcedefinitions"], "resourceNames": [AGENT_CRD],
                      "verbs": ["get", "create", "patch"]})
    if rules:
        out.append({"apiVersion": RBAC, "kind": "ClusterRole", "metadata": _meta(account),
                    "rules": rules})
        out.append({"apiVersion": RBAC, "kind": "ClusterRoleBinding", "metadata": _meta(account),
                    "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                "name": account}, "subjects": subject})
    return out
