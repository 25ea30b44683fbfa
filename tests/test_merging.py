"""Environment merge: RFC 7386 semantics, and errors placed in the file that introduced them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from agentctl.cli import app
from agentctl.mergepatch import merge_patch

# RFC 7386, Appendix A.
RFC_VECTORS: list[tuple[Any, Any, Any]] = [
    ({"a": "b"}, {"a": "c"}, {"a": "c"}),
    ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
    ({"a": "b"}, {"a": None}, {}),
    ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
    ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
    ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
    ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
    ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
    (["a", "b"], ["c", "d"], ["c", "d"]),
    ({"a": "b"}, ["c"], ["c"]),
    ({"a": "foo"}, None, None),
    ({"a": "foo"}, "bar", "bar"),
    ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
    ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
    ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
]


@pytest.mark.parametrize(("target", "patch", "expected"), RFC_VECTORS)
def test_rfc7386_vectors(target: Any, patch: Any, expected: Any) -> None:
    assert merge_patch(target, patch) == expected


def test_merge_does_not_modify_inputs() -> None:
    target = {"a": {"b": [1]}}
    merge_patch(target, {"a": {"b": [2], "c": 3}})
    assert target == {"a": {"b": [1]}}


def test_null_override_on_a_required_field_names_the_environment_file(
        runner: CliRunner, example: Path) -> None:
    env = example / "environments" / "staging.yaml"
    env.write_text(env.read_text() + "  agents:\n    chat-assistant:\n      runtime:\n"
                   "        image: null\n")
    result = runner.invoke(app, ["-C", str(example), "render", "-e", "staging"])
    assert result.exit_code == 2, result.output
    assert "environments/staging.yaml:" in result.output
    assert "spec.runtime.image: required field is missing" in result.output


def test_bad_default_names_the_environment_file_and_line(runner: CliRunner,
                                                        example: Path) -> None:
    env = example / "environments" / "dev.yaml"
    text = env.read_text().replace("logging: {level: debug}", "logging: {level: chatty}")
    env.write_text(text)
    line = next(i for i, row in enumerate(text.splitlines(), 1) if "chatty" in row)
    result = runner.invoke(app, ["-C", str(example), "render", "-e", "dev"])
    assert result.exit_code == 2, result.output
    assert f"environments/dev.yaml:{line}:" in result.output
    assert "spec.observability.logging.level" in result.output


def test_agent_value_wins_over_defaults_and_override_wins_over_agent(
        runner: CliRunner, example: Path) -> None:
    env = example / "environments" / "staging.yaml"
    env.write_text(env.read_text() + "  agents:\n    chat-assistant:\n"
                   "      lifecycle: {preStop: {drainSeconds: 30}}\n")
    result = runner.invoke(app, ["-C", str(example), "render", "-e", "staging", "--agent",
                                 "chat-assistant"])
    assert result.exit_code == 0, result.output
    assert "seconds: 30" in result.stdout


def test_a_partial_probe_keeps_that_probes_defaults(runner: CliRunner, example: Path) -> None:
    agent = example / "agents" / "chat-assistant.yaml"
    agent.write_text(agent.read_text().replace(
        "    preStop: {drainSeconds: 20}",
        "    preStop: {drainSeconds: 20}\n    probes:\n      liveness: {path: /live}\n"
        "      startup: {path: /started}"))
    result = runner.invoke(app, ["-C", str(example), "render", "-e", "dev", "--agent",
                                 "chat-assistant"])
    assert result.exit_code == 0, result.output
    deployment = next(d for d in yaml.safe_load_all(result.stdout) if d["kind"] == "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["livenessProbe"]["httpGet"]["path"] == "/live"
    assert container["livenessProbe"]["periodSeconds"] == 20
    assert container["startupProbe"]["failureThreshold"] == 60
