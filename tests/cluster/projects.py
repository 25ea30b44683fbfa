"""Copies of the example project aimed at the sandbox cluster, and putting an environment on the
cluster with `agentctl reconcile` (the ApplySet parent first, then every member by server-side
apply with field manager `agentctl` and strict field validation), so diff is tested against what
reconcile really leaves.

Inputs: the repository's example project, a temporary folder, the sandbox's kubeconfig.
Outputs: a project whose environments use fresh namespaces and the sandbox's context, with its
committed tree rendered under `rendered/`.
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path
from typing import Any

import yaml

from agentctl.cluster import connecting, reconciling
from agentctl.manifests import DesiredEnv
from agentctl.render import pipeline

ROOT = Path(__file__).resolve().parents[2]


def context_of(kubeconfig: Path) -> str:
    return str(yaml.safe_load(kubeconfig.read_text())["current-context"])


def example_copy(dest: Path, kubeconfig: Path, envs: tuple[str, ...] = ("dev",),
                 agents: tuple[str, ...] | None = None) -> dict[str, str]:
    """Copy the example project's agents and `envs` into `dest`, each environment in a fresh
    namespace on the sandbox's context; render its tree. Returns env → namespace."""
    (dest / "agents").mkdir(parents=True)
    (dest / "environments").mkdir()
    shutil.copy(ROOT / "agentctl.yaml", dest / "agentctl.yaml")
    for path in sorted((ROOT / "agents").glob("*.yaml")):
        if agents is None or path.stem in agents:
            shutil.copy(path, dest / "agents" / path.name)
    namespaces = {}
    for env in envs:
        doc: dict[str, Any] = yaml.safe_load((ROOT / "environments" / f"{env}.yaml").read_text())
        namespace = f"t-diff-{env}-{uuid.uuid4().hex[:6]}"
        spec = doc["spec"]
        spec["namespace"] = namespace
        spec["cluster"] = {"context": context_of(kubeconfig)}
        if spec.get("policy", {}).get("namespaces"):
            spec["policy"]["namespaces"] = [namespace]
        (dest / "environments" / f"{env}.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
        namespaces[env] = namespace
    render_out(dest)
    return namespaces


def render_out(project: Path) -> None:
    """`agentctl render --all-envs --out rendered`, through the pipeline."""
    result = pipeline.render(project, all_envs=True)
    pipeline.write(pipeline.plan(result, project / "rendered"))


def desired(project: Path, env: str) -> DesiredEnv:
    [found] = pipeline.desired(project, (env,)).envs
    return found


def client(kubeconfig: Path, env: DesiredEnv) -> connecting.Client:
    return connecting.connect(connecting.Target(kubeconfig, None, env.context))


def apply_env(kubeconfig: Path, env: DesiredEnv, force: bool = False) -> None:
    """Put an environment on the cluster with `agentctl reconcile` itself (the ApplySet
    parent, then every member by server-side apply as `agentctl`), without the health wait."""
    done = reconciling.reconcile(env, (), kubeconfig, options=reconciling.Options(
        wait=False, force_conflicts=force))
    assert not done.failed, [(str(c.ref), c.reason) for c in done.changes.changes
                             if c.outcome == "failed"]
