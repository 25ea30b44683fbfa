"""Whether a connection is allowed by a set of NetworkPolicies (networking.k8s.io/v1) and
CiliumNetworkPolicies (cilium.io/v2), written from their documented semantics, independently of
agentctl's renderer (the sandbox cluster enforces no network policy, so this is the check).

Inputs: policy bodies (plain dicts, as rendered), the labels of every namespace, the pod that
connects or is connected to, the other end (`Peer`: a pod, an address, or a domain resolved to
an address), a port and a protocol. Output: allowed or not.

Semantics implemented (and nothing else: anything else raises `Unsupported`, so a policy the
evaluator does not understand can never pass by accident):

- A NetworkPolicy selects the pods of its namespace that match `podSelector` (`matchLabels`,
  `matchExpressions`; `{}` selects all). `policyTypes` defaults to Ingress, plus Egress when the
  policy has an `egress` section.
- A pod selected by no policy of a direction is not isolated in that direction: everything is
  allowed. Once selected, a connection is allowed when any rule of any selecting policy allows
  it (policies add up; order does not matter).
- A rule allows a peer when its `to`/`from` is absent or empty, or any entry matches: `ipBlock`
  (`cidr` minus `except`, by the peer's address), or `namespaceSelector` and/or `podSelector`
  (a pod; without `namespaceSelector`, only pods of the policy's namespace). Its `ports`, when
  present, must match the port (with `endPort`) and protocol (default TCP).
- A CiliumNetworkPolicy with `egress` rules isolates the endpoints `endpointSelector` selects
  in its namespace; its rules add to the NetworkPolicies' (Cilium enforces both as one set).
  A rule matches by `toEndpoints` (labels; `k8s:` prefixes, `k8s:io.kubernetes.pod.namespace`
  for the namespace, the policy's namespace when none is named), `toFQDNs` (`matchName`, or
  `matchPattern` where `*` stands for any characters of one DNS label, and `*` alone for any
  name: Cilium allows only the addresses its DNS proxy saw returned for those names, which the
  `Peer`'s domain stands for) and `toPorts` (port as a string; protocol TCP, UDP or ANY).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

Obj = Mapping[str, Any]


class Unsupported(Exception):
    """A policy uses a field this evaluator does not implement."""


@dataclass(frozen=True)
class Pod:
    namespace: str
    labels: Mapping[str, str]
    ip: str


@dataclass(frozen=True)
class Peer:
    """The other end of a connection: a pod, or an address outside the cluster (with the domain
    it was resolved from, when it was)."""

    pod: Pod | None = None
    ip: str | None = None
    domain: str | None = None

    @property
    def address(self) -> str | None:
        return self.pod.ip if self.pod is not None else self.ip


@dataclass
class Network:
    policies: Sequence[Obj]
    namespaces: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    """Labels of each namespace (`kubernetes.io/metadata.name` is added, as the API server
    does)."""

    def _namespace_labels(self, name: str) -> dict[str, str]:
        return {**self.namespaces.get(name, {}), "kubernetes.io/metadata.name": name}

    def egress_allowed(self, source: Pod, peer: Peer, port: int, protocol: str = "TCP") -> bool:
        kube = [p for p in self._selecting("NetworkPolicy", source) if "Egress" in _types(p)]
        cilium = [p for p in self._selecting("CiliumNetworkPolicy", source)
                  if p["spec"].get("egress") is not None]
        if not kube and not cilium:
            return True
        for policy in kube:
            for rule in policy["spec"].get("egress") or []:
                if self._rule_allows(rule, "to", policy, peer, port, protocol):
                    return True
        for policy in cilium:
            for rule in policy["spec"]["egress"]:
                if self._cilium_allows(rule, policy, peer, port, protocol):
                    return True
        return False

    def ingress_allowed(self, target: Pod, peer: Peer, port: int, protocol: str = "TCP") -> bool:
        if any(p["spec"].get("ingress") is not None
               for p in self._selecting("CiliumNetworkPolicy", target)):
            raise Unsupported("CiliumNetworkPolicy ingress")
        kube = [p for p in self._selecting("NetworkPolicy", target) if "Ingress" in _types(p)]
        if not kube:
            return True
        return any(self._rule_allows(rule, "from", policy, peer, port, protocol)
                   for policy in kube for rule in policy["spec"].get("ingress") or [])

    def _selecting(self, kind: str, pod: Pod) -> list[Obj]:
        found = []
        for policy in self.policies:
            if policy["kind"] != kind or policy["metadata"]["namespace"] != pod.namespace:
                continue
            spec = policy["spec"]
            if kind == "CiliumNetworkPolicy" and set(spec) - {"endpointSelector", "egress"}:
                raise Unsupported(f"CiliumNetworkPolicy fields {sorted(spec)}")
            selector = spec["podSelector"] if kind == "NetworkPolicy" else spec["endpointSelector"]
            if matches(selector, pod.labels):
                found.append(policy)
        return found

    def _rule_allows(self, rule: Obj, direction: str, policy: Obj, peer: Peer, port: int,
                     protocol: str) -> bool:
        if set(rule) - {direction, "ports"}:
            raise Unsupported(f"rule fields {sorted(rule)}")
        ports = rule.get("ports")
        if ports and not any(_port_matches(p, port, protocol) for p in ports):
            return False
        peers = rule.get(direction)
        if not peers:
            return True
        return any(self._peer_matches(entry, policy["metadata"]["namespace"], peer)
                   for entry in peers)

    def _peer_matches(self, entry: Obj, policy_namespace: str, peer: Peer) -> bool:
        if set(entry) - {"ipBlock", "namespaceSelector", "podSelector"}:
            raise Unsupported(f"peer fields {sorted(entry)}")
        if "ipBlock" in entry:
            if set(entry) != {"ipBlock"}:
                raise Unsupported("ipBlock together with a selector")
            return peer.address is not None and in_block(peer.address, entry["ipBlock"])
        if peer.pod is None:
            return False
        namespaces = entry.get("namespaceSelector")
        if namespaces is None:
            in_namespace = peer.pod.namespace == policy_namespace
        else:
            in_namespace = matches(namespaces, self._namespace_labels(peer.pod.namespace))
        pods = entry.get("podSelector")
        return in_namespace and (pods is None or matches(pods, peer.pod.labels))

    def _cilium_allows(self, rule: Obj, policy: Obj, peer: Peer, port: int,
                       protocol: str) -> bool:
        if set(rule) - {"toEndpoints", "toFQDNs", "toPorts"}:
            raise Unsupported(f"Cilium rule fields {sorted(rule)}")
        to_ports = rule.get("toPorts")
        if to_ports and not any(
                str(p["port"]) == str(port) and p.get("protocol", "ANY") in ("ANY", protocol)
                for entry in to_ports for p in entry.get("ports") or []):
            return False
        if "toEndpoints" in rule:
            return peer.pod is not None and any(
                self._endpoint_matches(s, policy["metadata"]["namespace"], peer.pod)
                for s in rule["toEndpoints"])
        if "toFQDNs" in rule:
            return peer.domain is not None and any(fqdn_matches(s, peer.domain)
                                                   for s in rule["toFQDNs"])
        return True

    def _endpoint_matches(self, selector: Obj, policy_namespace: str, pod: Pod) -> bool:
        if set(selector) - {"matchLabels"}:
            raise Unsupported(f"endpoint selector fields {sorted(selector)}")
        labels = {k.removeprefix("k8s:"): v for k, v in (selector.get("matchLabels") or {}).items()}
        namespace = labels.pop("io.kubernetes.pod.namespace", policy_namespace)
        return pod.namespace == namespace and labels.items() <= pod.labels.items()


def _types(policy: Obj) -> list[str]:
    spec = policy["spec"]
    types: list[str] | None = spec.get("policyTypes")
    if types is None:
        types = ["Ingress", *(["Egress"] if "egress" in spec else [])]
    return types


def matches(selector: Obj, labels: Mapping[str, str]) -> bool:
    """A label selector (`matchLabels` and `matchExpressions`; `{}` matches everything)."""
    if set(selector) - {"matchLabels", "matchExpressions"}:
        raise Unsupported(f"selector fields {sorted(selector)}")
    if not (selector.get("matchLabels") or {}).items() <= labels.items():
        return False
    for expression in selector.get("matchExpressions") or []:
        key, operator, values = expression["key"], expression["operator"], expression.get(
            "values") or []
        if operator == "In" and labels.get(key) not in values:
            return False
        if operator == "NotIn" and key in labels and labels[key] in values:
            return False
        if operator == "Exists" and key not in labels:
            return False
        if operator == "DoesNotExist" and key in labels:
            return False
        if operator not in ("In", "NotIn", "Exists", "DoesNotExist"):
            raise Unsupported(f"operator {operator}")
    return True


def _port_matches(entry: Obj, port: int, protocol: str) -> bool:
    if entry.get("protocol", "TCP") != protocol:
        return False
    wanted = entry.get("port")
    if wanted is None:
        return True
    if isinstance(wanted, str):
        raise Unsupported(f"named port {wanted}")
    end = entry.get("endPort", wanted)
    return bool(wanted <= port <= end)


def in_block(address: str, block: Obj) -> bool:
    ip = ipaddress.ip_address(address)
    cidr = ipaddress.ip_network(block["cidr"])
    if ip.version != cidr.version or ip not in cidr:
        return False
    return not any(ip in ipaddress.ip_network(e) for e in block.get("except") or []
                   if ipaddress.ip_network(e).version == ip.version)


def fqdn_matches(selector: Obj, domain: str) -> bool:
    domain = domain.lower().rstrip(".")
    if "matchName" in selector:
        return bool(domain == str(selector["matchName"]).lower().rstrip("."))
    pattern = str(selector["matchPattern"]).lower().rstrip(".")
    if pattern == "*":
        return True
    regex = "".join("[-a-z0-9_]*" if c == "*" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, domain) is not None


def policies_of(bodies: Iterable[Obj]) -> list[Obj]:
    return [b for b in bodies if b["kind"] in ("NetworkPolicy", "CiliumNetworkPolicy")]
