"""An agent without a `memory` section is stateless: any replica count and autoscaling render.
Only a session store that is asked for (in the agent, the environment's defaults or its
per-agent overrides) and is inMemory is refused with more than one replica or any autoscaling,
at the line that asks for it.

Input: the minimal valid project of tests/hostile/projects.py, altered per case; each rendered
through the CLI for `dev`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import Result

from tests.hostile.projects import AGENT_FILE, ENV_FILE, agent, env, invoke, write_project

IN_MEMORY = {"session": {"backend": "inMemory"}}


def _rendered(result: Result) -> list[dict[str, Any]]:
    assert result.exit_code == 0, result.output
    return [doc for doc in yaml.safe_load_all(result.output) if doc]


def _key_position(text: str, *path: str) -> str:
    """`line:col` (1-based) of the last key of `path` in the YAML `text`."""
    node: Any = yaml.compose(text)
    for key in path[:-1]:
        node = next(v for k, v in node.value if k.value == key)
    key_node = next(k for k, _ in node.value if k.value == path[-1])
    return f"{key_node.start_mark.line + 1}:{key_node.start_mark.column + 1}"


def test_fixed_replicas_without_memory_render(tmp_path: Path) -> None:
    result = invoke(write_project(tmp_path, {AGENT_FILE: agent({"replicas": 3})}))
    (deployment,) = [d for d in _rendered(result) if d["kind"] == "Deployment"]
    assert deployment["spec"]["replicas"] == 3


def test_scaling_without_memory_renders(tmp_path: Path) -> None:
    result = invoke(write_project(tmp_path, {AGENT_FILE: agent({"scaling": {"maxReplicas": 5}})}))
    docs = _rendered(result)
    (hpa,) = [d for d in docs if d["kind"] == "HorizontalPodAutoscaler"]
    assert hpa["spec"]["maxReplicas"] == 5
    (deployment,) = [d for d in docs if d["kind"] == "Deployment"]
    assert "replicas" not in deployment["spec"]


def test_long_term_memory_alone_asks_for_no_session_store(tmp_path: Path) -> None:
    memory = {"longTerm": {"backend": "qdrant", "urlSecretRef": {"name": "q", "key": "url"}}}
    result = invoke(write_project(tmp_path, {AGENT_FILE: agent({"replicas": 2,
                                                                "memory": memory})}))
    _rendered(result)


@pytest.mark.parametrize("sizing", [{"replicas": 3}, {"scaling": {"maxReplicas": 3}}],
                         ids=["replicas", "scaling"])
def test_an_explicit_in_memory_store_cannot_be_shared(sizing: dict[str, Any],
                                                      tmp_path: Path) -> None:
    text = agent({**sizing, "memory": IN_MEMORY})
    result = invoke(write_project(tmp_path, {AGENT_FILE: text}))
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    at = _key_position(text, "spec", "memory", "session", "backend")
    assert (f"{AGENT_FILE}:{at}: spec.memory.session.backend: an inMemory session store cannot "
            "be shared") in result.output


@pytest.mark.parametrize("where", ["defaults", "agents"])
def test_an_in_memory_store_from_the_environment_is_explicit(where: str, tmp_path: Path) -> None:
    patch = {"memory": IN_MEMORY}
    env_text = env({"defaults": patch} if where == "defaults" else {"agents": {"x": patch}})
    result = invoke(write_project(tmp_path, {AGENT_FILE: agent({"replicas": 3}),
                                             ENV_FILE: env_text}))
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    path = ("spec", where, *(("x",) if where == "agents" else ()), "memory", "session", "backend")
    at = _key_position(env_text, *path)
    assert f"{ENV_FILE}:{at}: spec.memory.session.backend:" in result.output
