"""What `spec.network` renders, through the CLI on small projects: HTTPRoute timeouts, restricted
egress (every dependency the spec names, the errors that say what to add, Cilium or the
public-HTTPS fallback for domains) and restricted ingress.

Input: the minimal valid project of tests/hostile/projects.py, altered per case. Bad input exits 2
with one line per problem at the file, line and column of the field.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import Result

from tests.hostile.projects import (
    AGENT_FILE,
    AT_AGENT,
    ENV_FILE,
    agent,
    env,
    invoke,
    merged,
    write_project,
)

ROUTE = {"parentRefs": [{"name": "internal", "namespace": "gateways"}]}
GATEWAY = {"capabilities": ["gateway.networking.k8s.io/v1/HTTPRoute"]}


def rendered(result: Result) -> list[dict[str, Any]]:
    assert result.exit_code == 0, result.output
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def one(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    [found] = [d for d in docs if d["kind"] == kind]
    return found


def test_the_route_outlasts_a_long_generation_by_default(tmp_path: Path) -> None:
    root = write_project(tmp_path, {AGENT_FILE: agent({"network": {"httpRoute": ROUTE}}),
                                    ENV_FILE: env(GATEWAY)})
    route = one(rendered(invoke(root)), "HTTPRoute")
    [rule] = route["spec"]["rules"]
    assert rule["timeouts"] == {"request": "10m", "backendRequest": "10m"}


def test_route_timeouts_are_set_per_agent(tmp_path: Path) -> None:
    timeouts = {"request": "1h", "backendRequest": "30m"}
    root = write_project(tmp_path, {
        AGENT_FILE: agent({"network": {"httpRoute": {**ROUTE, "timeouts": timeouts}}}),
        ENV_FILE: env(GATEWAY)})
    [rule] = one(rendered(invoke(root)), "HTTPRoute")["spec"]["rules"]
    assert rule["timeouts"] == timeouts


def test_a_backend_timeout_beyond_the_request_timeout_is_refused(tmp_path: Path) -> None:
    timeouts = {"request": "5m", "backendRequest": "1h"}
    root = write_project(tmp_path, {
        AGENT_FILE: agent({"network": {"httpRoute": {**ROUTE, "timeouts": timeouts}}}),
        ENV_FILE: env(GATEWAY)})
    result = invoke(root)
    assert result.exit_code == 2, result.output
    assert re.search(AT_AGENT + r": spec\.network\.httpRoute\.timeouts\.backendRequest: "
                     r"backendRequest \(1h\) must not exceed request \(5m\)", result.output)
    assert isinstance(result.exception, SystemExit), result.exception


def test_a_route_timeout_takes_the_gateway_api_duration_format(tmp_path: Path) -> None:
    timeouts = {"request": "1.5h"}
    root = write_project(tmp_path, {
        AGENT_FILE: agent({"network": {"httpRoute": {**ROUTE, "timeouts": timeouts}}}),
        ENV_FILE: env(GATEWAY)})
    result = invoke(root)
    assert result.exit_code == 2, result.output
    assert re.search(AT_AGENT + r": spec\.network\.httpRoute\.timeouts\.request: '1\.5h' is "
                     "invalid: must be a Gateway API duration", result.output), result.output


# -- restricted egress: every dependency, or an error saying what to add -------------------------

REDIS = {"backend": "redis", "urlSecretRef": {"name": "r", "key": "url"}}
OPENAI = {"id": "gpt-4o", "provider": "openai"}
CILIUM = {"capabilities": ["cilium.io/v2/CiliumNetworkPolicy"]}


def egress_rules(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = one(docs, "NetworkPolicy")["spec"]["egress"]
    return rules


def problems(result: Result) -> list[str]:
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    return [line for line in result.output.splitlines() if re.match(AT_AGENT, line)]


def test_a_backend_without_an_endpoint_is_an_error_saying_what_to_add(tmp_path: Path) -> None:
    spec = {"model": OPENAI, "memory": {"session": REDIS},
            "state": {"databases": [{"name": "db", "urlSecretRef": {"name": "d", "key": "u"}}]},
            "network": {"egress": {}}}
    found = problems(invoke(write_project(tmp_path, {AGENT_FILE: agent(spec),
                                                     ENV_FILE: env(CILIUM)})))
    assert len(found) == 2, found  # both, in one run
    assert re.match(AT_AGENT + r": spec\.memory\.session: egress is restricted and rendering "
                    r"reads no Secret, so this redis backend needs endpoint: \{host, port\}.* or "
                    r"endpoint: \{namespace, port\} \(in-cluster\), or an allowInCluster rule for "
                    r"port 6379$", found[0]), found[0]
    assert re.match(AT_AGENT + r": spec\.state\.databases\[0\]: .*database backend needs "
                    "endpoint", found[1]), found[1]


@pytest.mark.parametrize("fix", [
    {"memory": {"session": {**REDIS, "endpoint": {"namespace": "data", "port": 6379}}}},
    {"memory": {"session": {**REDIS, "endpoint": {"host": "redis.data.svc", "port": 6379}}}},
    {"network": {"egress": {"allowInCluster": [{"namespace": "data", "port": 6379}]}}},
])
def test_an_endpoint_or_an_allow_rule_lets_the_backend_through(tmp_path: Path,
                                                               fix: dict[str, Any]) -> None:
    spec = merged({"model": {"id": "m"}, "memory": {"session": REDIS},
                   "network": {"egress": {}}}, fix)
    rules = egress_rules(rendered(invoke(write_project(tmp_path, {AGENT_FILE: agent(spec)}))))
    assert {"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "data"}}}],
            "ports": [{"protocol": "TCP", "port": 6379}]} in rules


def test_every_dependency_the_spec_names_is_allowed(tmp_path: Path) -> None:
    spec = {"model": {"id": "m", "endpoint": "http://vllm.models.svc:8000/v1"},
            "tools": [{"name": "search", "type": "http", "url": "https://10.1.2.3:8443/q"},
                      {"name": "local", "type": "http", "url": "http://helper/api"}],
            "observability": {"tracing": {"mode": "env",
                                          "endpoint": "http://otel.observability.svc:4317"}},
            "state": {"databases": [{"name": "db", "urlSecretRef": {"name": "d", "key": "u"},
                                     "endpoint": {"host": "192.0.2.7", "port": 5432}}]},
            "network": {"egress": {}}}
    rules = egress_rules(rendered(invoke(write_project(tmp_path, {AGENT_FILE: agent(spec)}))))
    to = {(json_key(r["to"][0]), r.get("ports", [{}])[0].get("port")) for r in rules}
    assert to == {("kube-system", 53), ("models", 8000), ("ip:10.1.2.3/32", 8443),
                  ("agents-dev", 80), ("observability", 4317), ("ip:192.0.2.7/32", 5432)}


def json_key(peer: dict[str, Any]) -> str:
    if "ipBlock" in peer:
        return f"ip:{peer['ipBlock']['cidr']}"
    return str(peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"])


def test_a_domain_without_cilium_is_an_error_unless_the_environment_falls_back(
        tmp_path: Path) -> None:
    spec = {"model": OPENAI, "network": {"egress": {}}}
    found = problems(invoke(write_project(tmp_path / "none", {AGENT_FILE: agent(spec)})))
    assert len(found) == 1
    assert re.match(AT_AGENT + r": spec\.model\.provider: egress to api\.openai\.com needs "
                    r"capability cilium\.io/v2/CiliumNetworkPolicy in environment dev "
                    r"\(NetworkPolicy cannot match domains\), or network\.egressFallback: "
                    r"publicHTTPS there$", found[0]), found

    root = write_project(tmp_path / "fallback", {
        AGENT_FILE: agent(spec), ENV_FILE: env({"network": {"egressFallback": "publicHTTPS"}})})
    result = invoke(root)
    docs = rendered(result)
    assert re.search(r"warning: " + AT_AGENT + r": spec\.model\.provider: egress to "
                     r"api\.openai\.com cannot be pinned", result.output), result.output
    [public] = [r for r in egress_rules(docs) if "ipBlock" in r["to"][0]]
    assert public["ports"] == [{"protocol": "TCP", "port": 443}]
    assert set(public["to"][0]["ipBlock"]["except"]) >= {
        "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16", "100.64.0.0/10",
        "127.0.0.0/8"}
    assert not [d for d in docs if d["kind"] == "CiliumNetworkPolicy"]


def test_the_fallback_covers_https_only(tmp_path: Path) -> None:
    spec = {"model": {"id": "m"}, "memory": {"session": {
        **REDIS, "endpoint": {"host": "redis.example.net", "port": 6380}}},
        "network": {"egress": {}}}
    root = write_project(tmp_path, {AGENT_FILE: agent(spec),
                                    ENV_FILE: env({"network": {"egressFallback": "publicHTTPS"}})})
    [found] = problems(invoke(root))
    assert re.match(AT_AGENT + r": spec\.memory\.session\.endpoint: egress to redis\.example\.net "
                    r"on port 6380 needs capability cilium\.io/v2/CiliumNetworkPolicy", found)


def test_with_cilium_domains_are_pinned_per_port(tmp_path: Path) -> None:
    spec = {"model": OPENAI, "memory": {"session": {
        **REDIS, "endpoint": {"host": "redis.example.net", "port": 6380}}},
        "network": {"egress": {"allowedDomains": ["*.search.example.com", "api.openai.com"]}}}
    docs = rendered(invoke(write_project(tmp_path, {AGENT_FILE: agent(spec),
                                                    ENV_FILE: env(CILIUM)})))
    rules = one(docs, "CiliumNetworkPolicy")["spec"]["egress"]
    assert rules[1:] == [
        {"toFQDNs": [{"matchPattern": "*.search.example.com"}, {"matchName": "api.openai.com"}],
         "toPorts": [{"ports": [{"port": "443", "protocol": "TCP"}]}]},
        {"toFQDNs": [{"matchName": "redis.example.net"}],
         "toPorts": [{"ports": [{"port": "6380", "protocol": "TCP"}]}]}]


def test_a_host_that_may_be_a_service_or_a_domain_must_be_said_which(tmp_path: Path) -> None:
    tracing = {"mode": "env", "endpoint": "http://otel-collector.observability:4317"}
    spec = {"model": {"id": "m"}, "observability": {"tracing": tracing},
            "network": {"egress": {}}}
    [found] = problems(invoke(write_project(tmp_path / "a", {AGENT_FILE: agent(spec)})))
    assert re.match(AT_AGENT + r": spec\.observability\.tracing\.endpoint: egress is restricted "
                    r"and host otel-collector\.observability may be a Service \(otel-collector "
                    r"in namespace observability\) or a domain: write "
                    r"otel-collector\.observability\.svc for the Service", found), found
    declared = merged(spec, {"network": {"egress": {"allowInCluster": [
        {"namespace": "observability", "port": 4317}]}}})
    rendered(invoke(write_project(tmp_path / "b", {AGENT_FILE: agent(declared)})))


def test_a_provider_without_a_known_host_needs_an_endpoint(tmp_path: Path) -> None:
    spec = {"model": {"id": "m", "provider": "acme"}, "network": {"egress": {}}}
    [found] = problems(invoke(write_project(tmp_path, {AGENT_FILE: agent(spec)})))
    assert re.match(AT_AGENT + r": spec\.model\.provider: agentctl does not know the API host "
                    r"of provider acme: set model\.endpoint", found), found


def test_an_endpoint_is_a_host_or_a_namespace(tmp_path: Path) -> None:
    session = {**REDIS, "endpoint": {"host": "r.example.net", "namespace": "data", "port": 1}}
    [found] = problems(invoke(write_project(tmp_path, {AGENT_FILE: agent(
        {"memory": {"session": session}})})))
    assert re.match(AT_AGENT + r": spec\.memory\.session\.endpoint\.host: set host .* or "
                    r"namespace \(in-cluster\), not both", found), found


# -- ingress ---------------------------------------------------------------------------------------

def test_restricted_ingress_admits_the_namespace_gateway_scraper_and_allow_from(
        tmp_path: Path) -> None:
    spec = {"network": {"httpRoute": ROUTE, "ingress": {"allowFrom": [{"namespace": "ci"}]}},
            "observability": {"metrics": {"port": 9090}}}
    environment = {**GATEWAY, "network": {"ingress": "restricted", "scraperNamespace": "prom"}}
    docs = rendered(invoke(write_project(tmp_path, {AGENT_FILE: agent(spec),
                                                    ENV_FILE: env(environment)})))
    [policy] = [d for d in docs if d["kind"] == "NetworkPolicy"]
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    assert policy["spec"]["ingress"] == [
        {"from": [{"podSelector": {}}]},
        {"from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name":
                                                         "gateways"}}}],
         "ports": [{"protocol": "TCP", "port": 8080}]},
        {"from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "prom"}}}],
         "ports": [{"protocol": "TCP", "port": 9090}]},
        {"from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ci"}}}]}]


def test_allow_from_in_an_open_environment_is_a_warning(tmp_path: Path) -> None:
    spec = {"network": {"ingress": {"allowFrom": [{"namespace": "ci"}]}}}
    result = invoke(write_project(tmp_path, {AGENT_FILE: agent(spec)}))
    docs = rendered(result)
    assert not [d for d in docs if d["kind"] == "NetworkPolicy"]
    assert re.search("warning: " + AT_AGENT + r": spec\.network\.ingress\.allowFrom: has no "
                     r"effect: environment dev leaves ingress open", result.output), result.output
