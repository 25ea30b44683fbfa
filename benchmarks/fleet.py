"""A generated agent fleet, written both as an agentctl project and as values for the equivalent
Helm chart in `benchmarks/chart/`.

Input: a number of agents and a seed. Output: `Fleet` (plain dicts: the Agent documents and the
dev/staging/prod Environment documents), which `write_project` lays out as an agentctl project
(`agentctl.yaml`, `agents/*.yaml` in multi-document files of up to ten agents, `environments/`)
and `write_chart_values` as Helm values (`values.yaml` with the agents, `values-<env>.yaml` with
each environment's namespace, defaults and per-agent overrides).

Invariants: deterministic (same count and seed → same bytes); every agent is valid and uses only
what `benchmarks/chart` also renders (Deployment or StatefulSet, Services, ServiceAccount,
ConfigMap, PodDisruptionBudget), so `agentctl render` and `helm template` produce the same
kind/namespace/name set; no text contains `<`, `>` or `&` (Go's JSON escapes them, Python's does
not, which would make otherwise equal objects differ in the comparison test).

Run `python -m benchmarks.fleet --agents 1000 DIR` to write a project and its Helm values.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

PROJECT = "bench-fleet"
ENVIRONMENTS = ("dev", "staging", "prod")
AGENTS_PER_FILE = 10
AGENT_API = "agent.inferensys.com/v1alpha1"
PROJECT_API = "agentctl.inferensys.com/v1alpha1"

_ROLES = ("research", "support", "triage", "billing", "search", "ops", "sales", "review",
          "planner", "coder", "summarizer", "router")
_TEAMS = ("platform", "research", "support", "growth", "infra", "data")
_MODELS = (("gpt-4o", "openai"), ("gpt-4o-mini", "openai"), ("claude-sonnet-4", "anthropic"),
           ("llama-3.1-70b", "vllm"), ("mistral-large", "mistral"), ("qwen2.5-32b", None))
_TOOLS = (("docs-search", "mcpServer", ["search", "fetch"]),
          ("web", "http", ["get", "post"]),
          ("tickets", "mcpServer", ["list", "create", "close"]),
          ("calendar", "agent", ["read", "write"]),
          ("sql", "mcpServer", ["query", "explain", "migrate"]))
_WORDS = ("answers", "questions", "about", "internal", "documents", "routes", "tickets",
          "drafts", "replies", "summarises", "incidents", "reviews", "changes", "plans",
          "work", "for", "the", "team", "with", "care")


@dataclass(frozen=True)
class Fleet:
    """The generated fleet as plain YAML-ready documents."""

    agents: list[dict[str, Any]]
    environments: dict[str, dict[str, Any]]
    project: str = PROJECT

    @property
    def names(self) -> list[str]:
        return [a["metadata"]["name"] for a in self.agents]


def applyset_id(project: str, env: str, namespace: str) -> str:
    """KEP-3659 id of the environment's ApplySet parent ConfigMap `agentctl-<project>-<env>`."""
    raw = hashlib.sha256(f"agentctl-{project}-{env}.{namespace}.ConfigMap.".encode()).digest()
    return "applyset-" + base64.urlsafe_b64encode(raw).decode().rstrip("=") + "-v1"


def _sentence(rng: random.Random, words: int) -> str:
    text = " ".join(rng.choice(_WORDS) for _ in range(words))
    return text[0].upper() + text[1:]


def _secret_ref(name: str, key: str) -> dict[str, str]:
    return {"name": name, "key": key}


def _agent(rng: random.Random, index: int) -> dict[str, Any]:
    role = _ROLES[index % len(_ROLES)]
    name = f"{role}-{index:04d}"
    stateful = rng.random() < 0.15
    replicas = rng.choice((1, 1, 1, 2, 3, 4))
    spec: dict[str, Any] = {"description": _sentence(rng, rng.randint(4, 12))}
    if stateful:
        spec["workload"] = {"kind": "StatefulSet"}
    elif rng.random() < 0.3:
        spec["workload"] = {"kind": "Deployment"}

    runtime: dict[str, Any] = {
        "image": f"ghcr.io/example/{role}-agent:1.{rng.randint(0, 9)}.{rng.randint(0, 20)}"}
    if rng.random() < 0.3:
        runtime["port"] = rng.choice((8000, 9000, 8081))
    env: list[dict[str, Any]] = [
        {"name": f"{role.upper()}_SETTING_{i}", "value": str(rng.randint(1, 500))}
        for i in range(rng.randint(0, 4))]
    if rng.random() < 0.3:
        env.append({"name": "UPSTREAM_TOKEN",
                    "valueFrom": {"secretKeyRef": _secret_ref(f"{name}-upstream", "token")}})
    if env:
        runtime["env"] = env
    if rng.random() < 0.2:
        runtime["command"] = ["/app/agent"]
        runtime["args"] = ["--serve", f"--workers={rng.randint(1, 8)}"]
    if rng.random() < 0.2:
        runtime["imagePullPolicy"] = "IfNotPresent"
    if rng.random() < 0.2:
        runtime["serviceAccount"] = {"name": "shared-agents"}
    elif rng.random() < 0.1:
        runtime["serviceAccount"] = {"create": True,
                                     "annotations": {"example.com/role": f"{role}-reader"}}
    if rng.random() < 0.2:
        runtime["nodeSelector"] = {"kubernetes.io/arch": rng.choice(("amd64", "arm64"))}
    if rng.random() < 0.1:
        runtime["tolerations"] = [{"key": "dedicated", "operator": "Equal", "value": "agents",
                                   "effect": "NoSchedule"}]
    if rng.random() < 0.1:
        runtime["priorityClassName"] = "agents-high"
    if rng.random() < 0.1:
        runtime["imagePullSecrets"] = [{"name": "registry-pull"}]
    spec["runtime"] = runtime

    if rng.random() < 0.15:
        spec["security"] = {"securityContext": {"readOnlyRootFilesystem": False}}

    model_id, provider = rng.choice(_MODELS)
    model: dict[str, Any] = {"id": model_id}
    if provider:
        model["provider"] = provider
        model["apiKeySecretRef"] = _secret_ref("llm-keys", provider)
    else:
        model["endpoint"] = f"http://{model_id.replace('.', '-')}.models.svc:8000/v1"
    model["params"] = {"temperature": rng.choice((0, 0.2, 0.5, 0.7)),
                       "maxTokens": rng.choice((512, 1024, 4096))}
    spec["model"] = model

    if rng.random() < 0.7:
        spec["instructions"] = {"systemMessage": f"You are the {role} agent of team {index}.\n"
                                f"{_sentence(rng, 10)}.\n"}

    tools = []
    for tool_name, tool_type, names in rng.sample(_TOOLS, rng.randint(0, 3)):
        tool: dict[str, Any] = {"name": tool_name, "type": tool_type,
                                "url": f"http://{tool_name}.tools.svc:8080/mcp",
                                "toolNames": names}
        if rng.random() < 0.5:
            tool["requireApproval"] = [names[-1]]
        if rng.random() < 0.2:
            tool["timeoutSeconds"] = rng.choice((10, 60, 120))
        if rng.random() < 0.2:
            tool["headersFrom"] = [{"name": "Authorization",
                                    "secretKeyRef": _secret_ref(f"{tool_name}-auth", "header")}]
        tools.append(tool)
    if tools:
        spec["tools"] = tools

    memory: dict[str, Any] = {}
    if replicas > 1 or rng.random() < 0.2:
        backend = rng.choice(("redis", "postgres"))
        memory["session"] = {"backend": backend,
                             "urlSecretRef": _secret_ref(f"{name}-{backend}", "url")}
    if rng.random() < 0.15:
        memory["longTerm"] = {"backend": "qdrant",
                              "urlSecretRef": _secret_ref("qdrant", "url"),
                              "embeddingModel": "text-embedding-3-small",
                              "ttlDays": rng.choice((7, 30, 90))}
    if memory:
        spec["memory"] = memory

    secrets: dict[str, Any] = {}
    if rng.random() < 0.2:
        secrets["env"] = [{"name": "SEARCH_API_KEY",
                           "secretKeyRef": _secret_ref("search-keys", "api-key")}]
    # secrets.mount is left out: the agent blueprint reads `item.items`, which Jinja resolves
    # to dict.items (a method), so any mount fails to render (reported to the blueprint owner).
    if secrets:
        spec["secrets"] = secrets

    if rng.random() < 0.4:
        cpu = rng.choice((100, 250, 500))
        memory_mi = rng.choice((512, 1024, 2048))
        spec["resources"] = {"requests": {"cpu": f"{cpu}m", "memory": f"{memory_mi}Mi"},
                             "limits": {"cpu": str(rng.choice((1, 2, 4))),
                                        "memory": f"{memory_mi * 2}Mi"}}
        if rng.random() < 0.1:
            spec["resources"]["gpu"] = {"count": 1}
        if rng.random() < 0.1:
            spec["resources"]["shmSize"] = "1Gi"

    lifecycle: dict[str, Any] = {}
    if rng.random() < 0.5:
        drain = rng.choice((5, 20, 30, 90))
        lifecycle["preStop"] = {"drainSeconds": drain}
        if drain >= 60:
            lifecycle["terminationGracePeriodSeconds"] = drain + 30
    if rng.random() < 0.2:
        # Never `liveness: {enabled: true}`: the model then builds a fresh Probe() whose
        # periodSeconds is 10, not the liveness default 20 (reported to the model's owner).
        probes: dict[str, Any] = {"readiness": {"path": "/ready", "periodSeconds": 5}}
        if rng.random() < 0.5:
            probes["liveness"] = {"enabled": False}
        lifecycle["probes"] = probes
    if rng.random() < 0.1:
        lifecycle["postStart"] = {"command": ["/app/warmup", "--quick"]}
    if lifecycle:
        spec["lifecycle"] = lifecycle

    if replicas > 1 or rng.random() < 0.3:
        spec["replicas"] = replicas
    if not stateful and rng.random() < 0.2:
        spec["rollout"] = {"strategy": "Recreate"}
    elif not stateful and rng.random() < 0.2:
        spec["rollout"] = {"rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0},
                           "revisionHistoryLimit": 3}

    observability: dict[str, Any] = {}
    if rng.random() < 0.2:
        observability["metrics"] = {"port": 9090, "path": "/metrics"}
    elif rng.random() < 0.1:
        observability["metrics"] = {"monitor": "none"}
    if rng.random() < 0.2:
        observability["logging"] = {"format": rng.choice(("json", "text")),
                                    "level": rng.choice(("info", "warn"))}
    if observability:
        spec["observability"] = observability
    if rng.random() < 0.2:
        spec["network"] = {"service": {"port": 8080}}

    metadata: dict[str, Any] = {"name": name,
                                "labels": {"team": rng.choice(_TEAMS), "role": role}}
    if rng.random() < 0.2:
        metadata["annotations"] = {"example.com/owner": f"{rng.choice(_TEAMS)}-oncall"}
    return {"apiVersion": AGENT_API, "kind": "Agent", "metadata": metadata, "spec": spec}


def _environments(rng: random.Random, agents: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    dev_defaults = {"observability": {"logging": {"level": "debug"},
                                      "metrics": {"monitor": "annotations"}},
                    "resources": {"requests": {"cpu": "50m", "memory": "256Mi"}}}
    shared_defaults = {"observability": {"metrics": {"monitor": "annotations"}}}
    dev_overrides: dict[str, dict[str, Any]] = {}
    prod_overrides: dict[str, dict[str, Any]] = {}
    staging_overrides: dict[str, dict[str, Any]] = {}
    for agent in agents:
        name, spec = agent["metadata"]["name"], agent["spec"]
        shared_session = spec.get("memory", {}).get("session") is not None
        if spec.get("replicas", 1) > 1 and rng.random() < 0.3:
            dev_overrides[name] = {"replicas": 1}  # and so no PodDisruptionBudget in dev
        draw = rng.random()
        if draw < 0.1 and shared_session:
            prod_overrides[name] = {"replicas": spec.get("replicas", 1) + 2}
        elif draw < 0.2:
            prod_overrides[name] = {"resources": {"requests": {"cpu": "500m", "memory": "1Gi"},
                                                  "limits": {"cpu": "2", "memory": "2Gi"}}}
        elif draw < 0.25:
            staging_overrides[name] = {"observability": {"logging": {"level": "debug"}}}
    envs = {
        "dev": {"cluster": {"context": "kind-dev"}, "namespace": "agents-dev",
                "nodes": {"gpu": True},
                "capabilities": [], "defaults": dev_defaults, "agents": dev_overrides,
                "policy": {"podSecurity": ["restricted", "baseline"]}, "prune": True},
        "staging": {"cluster": {"context": "staging-eu"}, "namespace": "agents-staging",
                    "nodes": {"gpu": True},
                    "capabilities": ["monitoring.coreos.com/v1/ServiceMonitor"],
                    "defaults": shared_defaults, "agents": staging_overrides, "prune": True},
        "prod": {"cluster": {"context": "prod-eu"}, "namespace": "agents-prod",
                 "nodes": {"gpu": True},
                 "capabilities": ["monitoring.coreos.com/v1/ServiceMonitor",
                                  "external-secrets.io/v1/ExternalSecret"],
                 "defaults": shared_defaults, "agents": prod_overrides,
                 "policy": {"podSecurity": ["restricted"]}, "prune": False},
    }
    return {env: {"apiVersion": PROJECT_API, "kind": "Environment", "metadata": {"name": env},
                  "spec": spec} for env, spec in envs.items()}


def generate(agents: int, seed: int = 7) -> Fleet:
    """A deterministic fleet of `agents` agents and the dev/staging/prod environments."""
    rng = random.Random(seed)
    docs = [_agent(rng, i) for i in range(agents)]
    return Fleet(agents=docs, environments=_environments(rng, docs))


def _dump(doc: Any) -> str:
    text: str = yaml.safe_dump(doc, sort_keys=False, default_flow_style=False, width=100)
    return text


def write_project(fleet: Fleet, root: Path) -> Path:
    """Write the fleet as an agentctl project under `root`; return `root`."""
    (root / "agents").mkdir(parents=True, exist_ok=True)
    (root / "environments").mkdir(parents=True, exist_ok=True)
    (root / "agentctl.yaml").write_text(_dump({
        "apiVersion": PROJECT_API, "kind": "Project", "metadata": {"name": fleet.project},
        "spec": {"agents": "agents", "blueprints": "blueprints",
                 "environments": "environments", "output": "rendered"}}))
    for start in range(0, len(fleet.agents), AGENTS_PER_FILE):
        group = fleet.agents[start:start + AGENTS_PER_FILE]
        text = "---\n".join(_dump(doc) for doc in group)
        (root / "agents" / f"fleet-{start // AGENTS_PER_FILE:04d}.yaml").write_text(text)
    for env, doc in fleet.environments.items():
        (root / "environments" / f"{env}.yaml").write_text(_dump(doc))
    return root


def chart_values(fleet: Fleet) -> dict[str, Any]:
    """The chart's base values: every agent, as written in its Agent document."""
    return {"project": fleet.project,
            "agents": [{"metadata": a["metadata"], "spec": a["spec"]} for a in fleet.agents]}


def chart_env_values(fleet: Fleet, env: str) -> dict[str, Any]:
    """One environment's values: its identity, defaults and per-agent overrides."""
    spec = fleet.environments[env]["spec"]
    return {"environment": {"name": env, "namespace": spec["namespace"],
                            "applyset": applyset_id(fleet.project, env, spec["namespace"])},
            "capabilities": spec["capabilities"], "defaults": spec["defaults"],
            "overrides": spec["agents"]}


def write_chart_values(fleet: Fleet, folder: Path) -> dict[str, list[Path]]:
    """Write `values.yaml` and `values-<env>.yaml`; return env → the `-f` files, in order."""
    folder.mkdir(parents=True, exist_ok=True)
    base = folder / "values.yaml"
    base.write_text(_dump(chart_values(fleet)))
    files: dict[str, list[Path]] = {}
    for env in fleet.environments:
        path = folder / f"values-{env}.yaml"
        path.write_text(_dump(chart_env_values(fleet, env)))
        files[env] = [base, path]
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.fleet", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path, help="directory for the project (and helm/ values)")
    parser.add_argument("--agents", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    fleet = generate(args.agents, args.seed)
    write_project(fleet, args.out)
    write_chart_values(fleet, args.out / "helm")
    print(f"{args.out}: {len(fleet.agents)} agents × {len(fleet.environments)} environments")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
