"""Properties every rendered object keeps, checked on the example fleet, the feature goldens and a
generated 200-agent fleet (benchmarks/fleet.py), in every environment:

- no empty list anywhere, and no empty map except where the API gives `{}` a meaning
  (`emptyDir`, `podSelector`, `namespaceSelector`): the API server drops the others, so a GitOps
  tool would show them as a difference forever;
- no two equal rules in a NetworkPolicy.

Each check is also run on an object that breaks it, so it cannot pass vacuously.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agentctl.render import pipeline
from benchmarks import fleet
from tests.conftest import REPO

MEANINGFUL_EMPTY_MAPS = {"emptyDir", "podSelector", "namespaceSelector"}
FLEET_SIZE = 200


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fleet.write_project(fleet.generate(FLEET_SIZE, seed=13),
                               tmp_path_factory.mktemp("fleet"))


@pytest.fixture(scope="module")
def bodies(generated: Path) -> dict[str, list[dict[str, Any]]]:
    """Every rendered object of each project, all environments."""
    projects = {"example": REPO, "features": REPO / "tests" / "goldens" / "features",
                "generated": generated}
    found = {name: [m.body for m in pipeline.render(root, all_envs=True).manifests]
             for name, root in projects.items()}
    agents = {b["metadata"]["labels"]["agent.inferensys.com/agent"] for b in found["generated"]}
    assert len(agents) == FLEET_SIZE
    return found


def empties(node: Any, path: str = "") -> Iterator[str]:
    """Paths of the empty lists, and of the empty maps not keyed by a meaningful name."""
    if isinstance(node, dict):
        if not node and path.rpartition(".")[2] not in MEANINGFUL_EMPTY_MAPS:
            yield path or "."
        for key, value in node.items():
            yield from empties(value, f"{path}.{key}")
    elif isinstance(node, list):
        if not node:
            yield path
        for i, value in enumerate(node):
            yield from empties(value, f"{path}[{i}]")


def describe(body: dict[str, Any]) -> str:
    return f"{body['kind']}/{body['metadata'].get('namespace')}/{body['metadata']['name']}"


@pytest.mark.parametrize("project", ["example", "features", "generated"])
def test_no_empty_list_and_no_meaningless_empty_map(
        project: str, bodies: dict[str, list[dict[str, Any]]]) -> None:
    found = [f"{describe(b)}: {p}" for b in bodies[project] for p in empties(b)]
    assert not found, "\n".join(found)


def test_the_empty_check_finds_what_the_api_server_would_drop() -> None:
    body = {"spec": {"containers": [{"env": [], "resources": {}}],
                     "volumes": [{"name": "tmp", "emptyDir": {}}]},
            "ingress": [{"from": [{"podSelector": {}}]}]}
    assert list(empties(body)) == [".spec.containers[0].env", ".spec.containers[0].resources"]


def duplicate_rules(body: dict[str, Any]) -> list[str]:
    found = []
    for direction in ("ingress", "egress"):
        rules = body["spec"].get(direction) or []
        found += [f"{direction}[{i}]" for i, rule in enumerate(rules) if rule in rules[:i]]
    return found


@pytest.mark.parametrize("project", ["example", "features", "generated"])
def test_no_network_policy_repeats_a_rule(project: str,
                                          bodies: dict[str, list[dict[str, Any]]]) -> None:
    policies = [b for b in bodies[project] if b["kind"] == "NetworkPolicy"]
    found = [f"{describe(b)}: {where}" for b in policies for where in duplicate_rules(b)]
    assert not found, "\n".join(found)
    rule = {"to": [{"namespaceSelector": {}}], "ports": [{"port": 80}]}
    assert duplicate_rules({"spec": {"egress": [rule, dict(rule)]}}) == ["egress[1]"]
