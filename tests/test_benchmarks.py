"""The benchmark's fleet and its Helm chart: the generated fleet is deterministic and valid, and
`helm template` of the chart yields the same objects as `agentctl render` of the same fleet (same
kind/namespace/name set per environment, equal content up to hashes and JSON formatting), so the
timings that `benchmarks/render.py` prints compare equal work.

Needs helm (built by `python -m agentctl.sandbox.building --dev-tools`): skipped without it on a
developer machine, failed without it under CI=true.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from agentctl.cli import app
from benchmarks import fleet, helm

AGENTS = 20
ENVS = fleet.ENVIRONMENTS


@pytest.fixture(scope="module")
def helm_binary() -> Path:
    found = helm.find_helm()
    if found is None:
        reason = ("helm is not built: run `python -m agentctl.sandbox.building --dev-tools` "
                  "(or set HELM)")
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return found


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("fleet")
    generated = fleet.generate(AGENTS, seed=11)
    fleet.write_project(generated, root)
    fleet.write_chart_values(generated, root / "helm")
    return root


@pytest.fixture(scope="module")
def rendered(project: Path) -> Path:
    out = project / "out"
    result = CliRunner().invoke(app, ["-C", str(project), "render", "--all-envs",
                                      "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def charted(project: Path, helm_binary: Path) -> dict[str, list[dict[str, Any]]]:
    values = project / "helm"
    return {env: helm.load_stream(helm.template(
        helm_binary, [values / "values.yaml", values / f"values-{env}.yaml"])) for env in ENVS}


def test_fleet_is_deterministic_and_seeded() -> None:
    assert fleet.generate(30, seed=3) == fleet.generate(30, seed=3)
    assert fleet.generate(30, seed=3) != fleet.generate(30, seed=4)


def test_fleet_files_are_byte_stable(tmp_path: Path) -> None:
    first = fleet.write_project(fleet.generate(25, seed=5), tmp_path / "a")
    second = fleet.write_project(fleet.generate(25, seed=5), tmp_path / "b")
    files = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(second) for p in second.rglob("*") if p.is_file())
    assert len([f for f in files if f.parts[0] == "agents"]) == 3  # multi-document files
    for name in files:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name


def test_fleet_is_varied() -> None:
    agents = fleet.generate(200, seed=7).agents
    kinds = {a["spec"].get("workload", {}).get("kind", "Deployment") for a in agents}
    strategies = {a["spec"].get("rollout", {}).get("strategy", "RollingUpdate") for a in agents}
    assert kinds == {"Deployment", "StatefulSet"}
    assert strategies == {"RollingUpdate", "Recreate"}
    assert any(a["spec"].get("tools") for a in agents)
    assert any(a["spec"].get("runtime", {}).get("serviceAccount", {}).get("name")
               for a in agents)
    assert all(a["spec"].get("description") for a in agents)


def test_generated_fleet_validates(project: Path) -> None:
    result = CliRunner().invoke(app, ["-C", str(project), "validate"])
    assert result.exit_code == 0, result.output


def test_cli_writes_project_and_values(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "benchmarks.fleet", "--agents", "3",
                           str(tmp_path / "p")], capture_output=True, text=True, check=False,
                          cwd=Path(__file__).resolve().parent.parent)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "p" / "agentctl.yaml").is_file()
    values = yaml.safe_load((tmp_path / "p" / "helm" / "values-prod.yaml").read_text())
    assert values["environment"]["namespace"] == "agents-prod"
    assert values["environment"]["applyset"].startswith("applyset-")


@pytest.mark.parametrize("env", ENVS)
def test_helm_chart_renders_the_same_identities(env: str, rendered: Path,
                                                charted: dict[str, list[dict[str, Any]]]) -> None:
    ours = helm.load_tree(rendered / env)
    theirs = charted[env]
    assert len(theirs) == len(helm.identities(theirs)), "helm rendered an object twice"
    assert helm.identities(ours) == helm.identities(theirs)
    kinds = {kind for kind, _, _ in helm.identities(ours)}
    assert kinds == {"ConfigMap", "Deployment", "PodDisruptionBudget", "Service",
                     "ServiceAccount", "StatefulSet"}
    assert {ns for _, ns, _ in helm.identities(ours)} == {f"agents-{env}"}


@pytest.mark.parametrize("env", ENVS)
def test_helm_chart_renders_equivalent_content(env: str, rendered: Path,
                                               charted: dict[str, list[dict[str, Any]]]) -> None:
    ours = helm.by_identity(helm.load_tree(rendered / env))
    theirs = helm.by_identity(charted[env])
    different = [key for key in sorted(ours)
                 if helm.comparable(ours[key]) != helm.comparable(theirs.get(key, {}))]
    assert not different, different
    # Digests agree wherever no JSON text is hashed: the chart really computes agentctl's
    # digest (sha256 of the canonical JSON) rather than a placeholder.
    plain = [key for key in ours if key[0] in ("Service", "ServiceAccount", "PodDisruptionBudget")]
    assert plain
    assert [key for key in plain if ours[key]["metadata"]["annotations"][helm.DIGEST]
            != theirs[key]["metadata"]["annotations"][helm.DIGEST]] == []


def test_comparable_keeps_real_differences() -> None:
    body = {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "a", "annotations": {helm.DIGEST: "sha256:1"}},
            "data": {"tools.json": '[{"b": 1, "a": 2}]', "model-id": "x"}}
    other = {**body, "metadata": {"name": "a", "annotations": {helm.DIGEST: "sha256:2"}},
             "data": {"tools.json": '[{"a":2,"b":1}]', "model-id": "x"}}
    assert helm.comparable(body) == helm.comparable(other)
    changed = {**other, "data": {"tools.json": '[{"a":2,"b":1}]', "model-id": "y"}}
    assert helm.comparable(body) != helm.comparable(changed)
