"""The example fleet's network policies, checked with the evaluator of tests/netpol.py (written
from the NetworkPolicy and CiliumNetworkPolicy semantics, not from the renderer) against truth
tables written by hand from each agent's spec: every dependency the spec declares (peer and
port) is reachable, and what it does not declare (another namespace, another port, the cloud
metadata address 169.254.169.254, private and CGNAT addresses, another domain) is not. Ingress
likewise, where the environment restricts it.

Public addresses are from the documentation range 203.0.113.0/24: a domain "resolves" to one.
"""

from __future__ import annotations

from typing import Any

import pytest

from agentctl.render import pipeline
from tests.conftest import REPO
from tests.netpol import Network, Peer, Pod, Unsupported, policies_of

ALLOW, DENY = True, False


def pod(namespace: str, port: int, protocol: str = "TCP",
        labels: dict[str, str] | None = None) -> tuple[Peer, int, str]:
    return Peer(pod=Pod(namespace, labels or {"app": "backend"}, "10.244.7.7")), port, protocol


def web(domain: str, port: int = 443) -> tuple[Peer, int, str]:
    return Peer(ip="203.0.113.10", domain=domain), port, "TCP"


def address(ip: str, port: int = 443) -> tuple[Peer, int, str]:
    return Peer(ip=ip), port, "TCP"


DNS = pod("kube-system", 53, "UDP", {"k8s-app": "kube-dns"})
DNS_TCP = pod("kube-system", 53, "TCP", {"k8s-app": "kube-dns"})
METADATA = address("169.254.169.254", 80)
PRIVATE = address("10.20.30.40")
PRIVATE_192 = address("192.168.1.10")
CGNAT = address("100.64.0.10")
OTHER_NAMESPACE = pod("payments", 8080)
NOT_DNS = pod("kube-system", 443, "TCP", {"component": "kube-apiserver"})
UNDENIABLE = [(DNS, ALLOW), (DNS_TCP, ALLOW), (METADATA, DENY), (PRIVATE, DENY),
              (PRIVATE_192, DENY), (CGNAT, DENY), (OTHER_NAMESPACE, DENY), (NOT_DNS, DENY)]
"""Rows every restricted agent shares."""

# agent → (destination, allowed?), from agents/*.yaml and environments/prod.yaml by hand.
PROD_EGRESS: dict[str, list[tuple[tuple[Peer, int, str], bool]]] = {
    "chat-assistant": [  # openai; tool mcp-docs.tools.svc:8080; allowInCluster tools:8080
        (web("api.openai.com"), ALLOW), (pod("tools", 8080), ALLOW),
        (web("api.openai.com", 80), DENY), (web("api.anthropic.com"), DENY),
        (pod("tools", 9090), DENY), (web("example.org"), DENY)],
    "code-review": [  # openai; redis {namespace: data, port: 6379}; tool mcp-git.tools.svc:8080
        (web("api.openai.com"), ALLOW), (pod("data", 6379), ALLOW), (pod("tools", 8080), ALLOW),
        (pod("data", 5432), DENY), (web("github.com"), DENY)],
    "gpu-inference": [  # vllm served from hf:// weights: Hugging Face only
        (web("huggingface.co"), ALLOW), (web("cdn-lfs.huggingface.co"), ALLOW),
        (web("cdn-lfs-us-1.hf.co"), ALLOW), (web("cas-bridge.xethub.hf.co"), ALLOW),
        (web("huggingface.co.attacker.example"), DENY), (web("api.openai.com"), DENY),
        (web("huggingface.co", 80), DENY), (pod("data", 6379), DENY)],
    "research-memory": [  # openai; postgres research-db.postgres.example.net:5432 (session,
        # long-term, database); tracing otel-collector.observability.svc:4317
        (web("api.openai.com"), ALLOW), (web("research-db.postgres.example.net", 5432), ALLOW),
        (pod("observability", 4317), ALLOW), (web("research-db.postgres.example.net"), DENY),
        (web("other-db.postgres.example.net", 5432), DENY), (pod("observability", 4318), DENY),
        (pod("data", 5432), DENY)],
    "support-bot": [  # openai; redis {namespace: data, port: 6379}
        (web("api.openai.com"), ALLOW), (pod("data", 6379), ALLOW),
        (pod("tools", 8080), DENY), (pod("data", 6380), DENY)],
    "ticket-triage": [  # anthropic; redis triage-redis.support.svc:6379; tool
        # tickets.support.svc:8080; allowInCluster monitoring:9090
        (web("api.anthropic.com"), ALLOW), (pod("support", 6379), ALLOW),
        (pod("support", 8080), ALLOW), (pod("monitoring", 9090), ALLOW),
        (web("api.openai.com"), DENY), (pod("support", 22), DENY), (pod("monitoring", 9093), DENY)],
}

# dev has no Cilium and `egressFallback: publicHTTPS`: a domain is any public address on 443.
DEV_EGRESS: dict[str, list[tuple[tuple[Peer, int, str], bool]]] = {
    "ticket-triage": [
        (web("api.anthropic.com"), ALLOW), (pod("support", 6379), ALLOW),
        (pod("support", 8080), ALLOW), (pod("monitoring", 9090), ALLOW),
        (web("example.org"), ALLOW),  # what the fallback gives up (with a warning)
        (web("api.anthropic.com", 80), DENY), (pod("support", 22), DENY),
        (address("fd00::1"), DENY), (address("fe80::1"), DENY)],
}


def from_pod(namespace: str, port: int) -> tuple[Peer, int, str]:
    return Peer(pod=Pod(namespace, {"app": "client"}, "10.244.9.9")), port, "TCP"


FROM_ELSEWHERE = [(from_pod("payments", 8080), DENY), (from_pod("tools", 8080), DENY),
                  (from_pod("monitoring", 22), DENY),
                  ((Peer(ip="203.0.113.50"), 8080, "TCP"), DENY)]

# prod restricts ingress: own namespace, gateway, scraper on the metrics port, allowFrom.
PROD_INGRESS: dict[str, list[tuple[tuple[Peer, int, str], bool]]] = {
    "chat-assistant": [(from_pod("agents-prod", 8080), ALLOW),
                       (from_pod("monitoring", 8080), ALLOW),
                       (from_pod("gateways", 8080), DENY)],
    "code-review": [(from_pod("agents-prod", 8080), ALLOW), (from_pod("gateways", 8080), ALLOW),
                    (from_pod("monitoring", 8080), ALLOW), (from_pod("gateways", 9090), DENY)],
    "gpu-inference": [(from_pod("agents-prod", 8080), ALLOW),
                      (from_pod("monitoring", 9090), ALLOW),
                      (from_pod("monitoring", 8080), DENY), (from_pod("gateways", 8080), DENY)],
    "research-memory": [(from_pod("agents-prod", 8080), ALLOW),
                        (from_pod("monitoring", 8080), ALLOW)],
    "support-bot": [(from_pod("agents-prod", 8080), ALLOW),
                    (from_pod("monitoring", 8080), ALLOW)],
    "ticket-triage": [(from_pod("agents-prod", 8080), ALLOW), (from_pod("support", 8080), ALLOW),
                      (from_pod("monitoring", 8080), ALLOW), (from_pod("support", 9000), DENY)],
}


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[dict[str, Any]]]:
    result = pipeline.render(REPO, all_envs=True)
    return {e.env: [m.body for m in e.manifests] for e in result.envs}


def agent_pods(bodies: list[dict[str, Any]]) -> dict[str, list[Pod]]:
    """Each agent's pods (one per track), as its workloads' templates label them."""
    found: dict[str, list[Pod]] = {}
    for body in bodies:
        if body["kind"] in ("Deployment", "StatefulSet"):
            labels = body["spec"]["template"]["metadata"]["labels"]
            found.setdefault(labels["agent.inferensys.com/agent"], []).append(
                Pod(body["metadata"]["namespace"], labels, "10.244.0.10"))
    return found


def check(network: Network, pods: list[Pod], rows: list[tuple[tuple[Peer, int, str], bool]],
          direction: str) -> list[str]:
    wrong = []
    for (peer, port, protocol), expected in rows:
        for agent_pod in pods:
            if direction == "egress":
                allowed = network.egress_allowed(agent_pod, peer, port, protocol)
            else:
                allowed = network.ingress_allowed(agent_pod, peer, port, protocol)
            if allowed != expected:
                track = agent_pod.labels["agent.inferensys.com/track"]
                wrong.append(f"{track}: {peer} {port}/{protocol}: "
                             f"{'allowed' if allowed else 'denied'}")
    return wrong


@pytest.mark.parametrize("agent", sorted(PROD_EGRESS))
def test_prod_egress_matches_the_truth_table(agent: str,
                                             rendered: dict[str, list[dict[str, Any]]]) -> None:
    bodies = rendered["prod"]
    network = Network(policies_of(bodies))
    pods = agent_pods(bodies)[agent]
    wrong = check(network, pods, PROD_EGRESS[agent] + UNDENIABLE, "egress")
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("agent", sorted(PROD_INGRESS))
def test_prod_ingress_matches_the_truth_table(agent: str,
                                              rendered: dict[str, list[dict[str, Any]]]) -> None:
    bodies = rendered["prod"]
    network = Network(policies_of(bodies))
    wrong = check(network, agent_pods(bodies)[agent], PROD_INGRESS[agent] + FROM_ELSEWHERE,
                  "ingress")
    assert not wrong, "\n".join(wrong)


def test_dev_egress_falls_back_to_public_https(rendered: dict[str, list[dict[str, Any]]]) -> None:
    bodies = rendered["dev"]
    network = Network(policies_of(bodies))
    pods = agent_pods(bodies)
    wrong = check(network, pods["ticket-triage"], DEV_EGRESS["ticket-triage"] + UNDENIABLE,
                  "egress")
    assert not wrong, "\n".join(wrong)
    # The other agents are not restricted in dev, and no agent's ingress is.
    for agent in set(pods) - set(DEV_EGRESS):
        assert check(network, pods[agent], [(METADATA, ALLOW), (OTHER_NAMESPACE, ALLOW)],
                     "egress") == []
    assert check(network, pods["chat-assistant"], [(from_pod("payments", 8080), ALLOW)],
                 "ingress") == []


def test_every_example_agent_has_a_truth_table(rendered: dict[str, list[dict[str, Any]]]) -> None:
    assert set(PROD_EGRESS) == set(PROD_INGRESS) == set(agent_pods(rendered["prod"]))


def test_the_tables_fail_on_the_policies_the_issue_found(
        rendered: dict[str, list[dict[str, Any]]]) -> None:
    """ticket-triage's old NetworkPolicy (DNS, monitoring:9090, support:8080): its model
    provider and session store were unreachable."""
    bodies = rendered["dev"]
    old = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
           "metadata": {"name": "ticket-triage-egress", "namespace": "agents-dev"},
           "spec": {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "ticket-triage"}},
                    "policyTypes": ["Egress"], "egress": [
                        {"to": [{"namespaceSelector": {"matchLabels": {
                            "kubernetes.io/metadata.name": "kube-system"}},
                            "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
                         "ports": [{"protocol": "UDP", "port": 53},
                                   {"protocol": "TCP", "port": 53}]},
                        {"to": [{"namespaceSelector": {"matchLabels": {
                            "kubernetes.io/metadata.name": "monitoring"}}}],
                         "ports": [{"protocol": "TCP", "port": 9090}]},
                        {"to": [{"namespaceSelector": {"matchLabels": {
                            "kubernetes.io/metadata.name": "support"}}}],
                         "ports": [{"protocol": "TCP", "port": 8080}]}]}}
    wrong = check(Network([old]), agent_pods(bodies)["ticket-triage"],
                  DEV_EGRESS["ticket-triage"], "egress")
    assert [w.split(": ", 1)[1] for w in wrong] == [
        "Peer(pod=None, ip='203.0.113.10', domain='api.anthropic.com') 443/TCP: denied",
        "Peer(pod=Pod(namespace='support', labels={'app': 'backend'}, ip='10.244.7.7'), "
        "ip=None, domain=None) 6379/TCP: denied",
        "Peer(pod=None, ip='203.0.113.10', domain='example.org') 443/TCP: denied"]


# -- the evaluator itself, on hand-made policies -----------------------------------------------

def policy(spec: dict[str, Any], kind: str = "NetworkPolicy",
           namespace: str = "a") -> dict[str, Any]:
    return {"kind": kind, "metadata": {"name": "p", "namespace": namespace}, "spec": spec}


SOURCE = Pod("a", {"app": "x"}, "10.0.0.1")


def test_an_unselected_pod_is_not_isolated() -> None:
    other = policy({"podSelector": {"matchLabels": {"app": "y"}}, "policyTypes": ["Egress"]})
    assert Network([other]).egress_allowed(SOURCE, Peer(ip="10.9.9.9"), 80)
    isolating = policy({"podSelector": {}, "policyTypes": ["Egress"]})
    assert not Network([isolating]).egress_allowed(SOURCE, Peer(ip="10.9.9.9"), 80)
    assert Network([isolating]).ingress_allowed(SOURCE, Peer(ip="10.9.9.9"), 80)


def test_rules_add_up_and_ports_narrow_them() -> None:
    web_only = policy({"podSelector": {}, "policyTypes": ["Egress"],
                       "egress": [{"ports": [{"port": 443}]}]})
    dns = policy({"podSelector": {}, "egress": [{"ports": [{"port": 53, "protocol": "UDP"}]}]})
    network = Network([web_only, dns])
    assert network.egress_allowed(SOURCE, Peer(ip="10.9.9.9"), 443)
    assert network.egress_allowed(SOURCE, Peer(ip="10.9.9.9"), 53, "UDP")
    assert not network.egress_allowed(SOURCE, Peer(ip="10.9.9.9"), 53, "TCP")
    ranged = policy({"podSelector": {}, "egress": [{"ports": [{"port": 8000, "endPort": 8010}]}]})
    assert Network([ranged]).egress_allowed(SOURCE, Peer(ip="1.1.1.1"), 8005)
    assert not Network([ranged]).egress_allowed(SOURCE, Peer(ip="1.1.1.1"), 8011)


def test_namespace_and_pod_selectors_in_one_peer_both_apply() -> None:
    both = policy({"podSelector": {}, "policyTypes": ["Egress"], "egress": [{"to": [{
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "b"}},
        "podSelector": {"matchLabels": {"app": "db"}}}]}]})
    network = Network([both])
    assert network.egress_allowed(SOURCE, Peer(pod=Pod("b", {"app": "db"}, "10.1.1.1")), 5432)
    assert not network.egress_allowed(SOURCE, Peer(pod=Pod("b", {"app": "web"}, "10.1.1.2")), 5432)
    assert not network.egress_allowed(SOURCE, Peer(pod=Pod("c", {"app": "db"}, "10.1.1.3")), 5432)
    same_namespace = policy({"podSelector": {}, "policyTypes": ["Egress"],
                             "egress": [{"to": [{"podSelector": {}}]}]})
    assert Network([same_namespace]).egress_allowed(SOURCE, Peer(pod=Pod("a", {}, "10.1.1.4")), 1)
    assert not Network([same_namespace]).egress_allowed(SOURCE, Peer(pod=Pod("b", {}, "1")), 1)


def test_ip_blocks_honour_their_exceptions() -> None:
    public = policy({"podSelector": {}, "policyTypes": ["Egress"], "egress": [{"to": [
        {"ipBlock": {"cidr": "0.0.0.0/0", "except": ["10.0.0.0/8", "169.254.0.0/16"]}}]}]})
    network = Network([public])
    assert network.egress_allowed(SOURCE, Peer(ip="203.0.113.1"), 443)
    assert not network.egress_allowed(SOURCE, Peer(ip="169.254.169.254"), 80)
    assert not network.egress_allowed(SOURCE, Peer(ip="10.1.2.3"), 443)
    assert not network.egress_allowed(SOURCE, Peer(ip="2001:db8::1"), 443)  # not IPv4


def test_cilium_fqdn_patterns_cover_one_label() -> None:
    fqdn = policy({"endpointSelector": {}, "egress": [{
        "toFQDNs": [{"matchName": "api.example.com"}, {"matchPattern": "*.cdn.example.com"}],
        "toPorts": [{"ports": [{"port": "443", "protocol": "TCP"}]}]}]}, "CiliumNetworkPolicy")
    network = Network([fqdn])
    for name, expected in [("api.example.com", True), ("API.example.com.", True),
                           ("eu.cdn.example.com", True), ("a.b.cdn.example.com", False),
                           ("cdn.example.com.evil.test", False), ("example.com", False)]:
        assert network.egress_allowed(SOURCE, Peer(ip="203.0.113.1", domain=name), 443) is (
            expected), name
    assert not network.egress_allowed(SOURCE, Peer(ip="203.0.113.1",
                                                   domain="api.example.com"), 80)


def test_a_field_it_does_not_know_is_an_error_not_a_pass() -> None:
    unknown = policy({"podSelector": {}, "policyTypes": ["Egress"],
                      "egress": [{"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}], "toFQDN": []}]})
    with pytest.raises(Unsupported):
        Network([unknown]).egress_allowed(SOURCE, Peer(ip="1.1.1.1"), 443)
