"""What the built-in blueprint puts in the pod template, through the CLI on small projects:
placement across nodes and zones.

Input: the minimal valid project of tests/hostile/projects.py, altered per case.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import Result

from tests.hostile.projects import AGENT_FILE, ENV_FILE, agent, env, invoke, write_project

SELECTOR = {"app.kubernetes.io/name": "x", "agent.inferensys.com/agent": "x"}


def rendered(result: Result) -> list[dict[str, Any]]:
    assert result.exit_code == 0, result.output
    return [doc for doc in yaml.safe_load_all(result.output) if doc]


def pod_of(tmp_path: Path, spec: dict[str, Any],
           environment: dict[str, Any] | None = None) -> dict[str, Any]:
    root = write_project(tmp_path, {AGENT_FILE: agent(spec), ENV_FILE: env(environment)})
    [workload] = [d for d in rendered(invoke(root)) if d["kind"] == "Deployment"]
    pod: dict[str, Any] = workload["spec"]["template"]["spec"]
    return pod


def spread(key: str) -> dict[str, Any]:
    return {"maxSkew": 1, "topologyKey": key, "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchLabels": SELECTOR}}


def test_one_pod_is_not_spread(tmp_path: Path) -> None:
    assert "topologySpreadConstraints" not in pod_of(tmp_path, {})


@pytest.mark.parametrize("sizing", [{"replicas": 3}, {"scaling": {"maxReplicas": 4}}])
def test_several_pods_spread_softly_over_nodes(tmp_path: Path, sizing: dict[str, Any]) -> None:
    assert pod_of(tmp_path, sizing)["topologySpreadConstraints"] == [
        spread("kubernetes.io/hostname")]


def test_and_over_zones_where_the_environment_has_them(tmp_path: Path) -> None:
    pod = pod_of(tmp_path, {"replicas": 3}, {"nodes": {"zones": True}})
    assert pod["topologySpreadConstraints"] == [spread("kubernetes.io/hostname"),
                                                spread("topology.kubernetes.io/zone")]


def test_the_agent_replaces_or_removes_the_spread(tmp_path: Path) -> None:
    own = [{"maxSkew": 2, "topologyKey": "kubernetes.io/hostname",
            "whenUnsatisfiable": "DoNotSchedule",
            "labelSelector": {"matchLabels": {"app.kubernetes.io/name": "x"}}}]
    pod = pod_of(tmp_path / "own", {"replicas": 3, "runtime": {"topologySpreadConstraints": own}})
    assert pod["topologySpreadConstraints"] == own
    pod = pod_of(tmp_path / "none", {"replicas": 3, "runtime": {"topologySpreadConstraints": []}})
    assert "topologySpreadConstraints" not in pod
