"""`agentctl render`: the README's first command, environment selection, output formats,
ownership labels, digests and the offline ApplySet id."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from agentctl.cli import app
from agentctl.manifests import digest
from tests.conftest import REPO


def _objects(text: str) -> list[dict]:  # type: ignore[type-arg]
    return [d for d in yaml.safe_load_all(text) if d is not None]


def test_readme_first_command_prints_dev_manifests(runner: CliRunner) -> None:
    result = runner.invoke(app, ["-C", str(REPO), "render", "--env", "dev"])
    assert result.exit_code == 0, result.output
    objects = _objects(result.stdout)
    kinds = {o["kind"] for o in objects}
    assert {"Deployment", "Service", "ServiceAccount", "ConfigMap"} <= kinds
    assert {o["metadata"]["namespace"] for o in objects} == {"agents-dev"}
    for obj in objects:
        labels = obj["metadata"]["labels"]
        assert labels["app.kubernetes.io/managed-by"] == "agentctl"
        assert labels["agent.inferensys.com/environment"] == "dev"
        assert labels["app.kubernetes.io/name"] == labels["agent.inferensys.com/agent"]


def test_applyset_id_and_digest_are_computed_offline(runner: CliRunner) -> None:
    result = runner.invoke(app, ["-C", str(REPO), "render", "-e", "prod"])
    assert result.exit_code == 0, result.output
    raw = hashlib.sha256(b"agentctl-example-fleet-prod.agents-prod.ConfigMap.").digest()
    expected = "applyset-" + base64.urlsafe_b64encode(raw).decode().rstrip("=") + "-v1"
    for obj in _objects(result.stdout):
        assert obj["metadata"]["labels"]["applyset.kubernetes.io/part-of"] == expected
        annotations = obj["metadata"]["annotations"]
        stated = annotations.pop("agent.inferensys.com/digest")
        canonical = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        if not annotations:
            del obj["metadata"]["annotations"]
            canonical = json.dumps(obj, sort_keys=True, separators=(",", ":"))
        assert stated == "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()
        assert stated == digest(obj)


def test_selector_is_the_frozen_pair(runner: CliRunner) -> None:
    result = runner.invoke(app, ["-C", str(REPO), "render", "-e", "dev"])
    deployment = next(o for o in _objects(result.stdout) if o["kind"] == "Deployment")
    name = deployment["metadata"]["name"]
    assert deployment["spec"]["selector"] == {"matchLabels": {
        "app.kubernetes.io/name": name, "agent.inferensys.com/track": "main"}}
    template = deployment["spec"]["template"]["metadata"]
    assert template["annotations"]["agent.inferensys.com/config-hash"]


def test_config_change_changes_the_config_hash(runner: CliRunner, example: Path) -> None:
    def config_hash() -> str:
        result = runner.invoke(app, ["-C", str(example), "render", "-e", "dev"])
        assert result.exit_code == 0, result.output
        deployment = next(o for o in _objects(result.stdout) if o["kind"] == "Deployment")
        value: str = deployment["spec"]["template"]["metadata"]["annotations"][
            "agent.inferensys.com/config-hash"]
        return value

    before = config_hash()
    agent = example / "agents" / "chat-assistant.yaml"
    agent.write_text(agent.read_text().replace("id: gpt-4o-mini", "id: gpt-4o"))
    assert config_hash() != before


def test_global_options_work_before_and_after_the_command(runner: CliRunner) -> None:
    before = runner.invoke(app, ["-C", str(REPO), "-e", "staging", "render"])
    after = runner.invoke(app, ["render", "-C", str(REPO), "--env", "staging"])
    assert before.exit_code == 0, before.output
    assert before.stdout == after.stdout


def test_more_than_one_environment_needs_a_choice(runner: CliRunner) -> None:
    result = runner.invoke(app, ["-C", str(REPO), "render"])
    assert result.exit_code == 2
    assert "dev, prod, staging" in result.output
    assert not isinstance(result.exception, Exception), result.exception  # SystemExit only


def test_unknown_environment_is_a_usage_error(runner: CliRunner) -> None:
    result = runner.invoke(app, ["-C", str(REPO), "render", "-e", "qa"])
    assert result.exit_code == 2
    assert "unknown environment 'qa'" in result.output


def test_all_envs_renders_every_environment(runner: CliRunner) -> None:
    result = runner.invoke(app, ["-C", str(REPO), "render", "--all-envs"])
    assert result.exit_code == 0, result.output
    envs = {o["metadata"]["labels"]["agent.inferensys.com/environment"]
            for o in _objects(result.stdout)}
    assert envs == {"dev", "staging", "prod"}


def test_json_output_is_a_list(runner: CliRunner) -> None:
    result = runner.invoke(app, ["-C", str(REPO), "-o", "json", "render", "-e", "dev"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["kind"] == "List"
    assert len(document["items"]) == len(_objects(
        runner.invoke(app, ["-C", str(REPO), "render", "-e", "dev"]).stdout))


def test_agent_filter(runner: CliRunner, example: Path) -> None:
    source = (example / "agents" / "chat-assistant.yaml").read_text()
    (example / "agents" / "other.yaml").write_text(
        source.replace("name: chat-assistant", "name: other-bot"))
    result = runner.invoke(app, ["-C", str(example), "render", "-e", "dev", "--agent",
                                 "other-bot"])
    assert result.exit_code == 0, result.output
    assert {o["metadata"]["labels"]["agent.inferensys.com/agent"]
            for o in _objects(result.stdout)} == {"other-bot"}
    missing = runner.invoke(app, ["-C", str(example), "render", "-e", "dev", "--agent", "nope"])
    assert missing.exit_code == 2
    assert "no agent named 'nope'" in missing.output


@pytest.mark.parametrize("tree_option", [["--out", "tree"], ["--check"]])
def test_agent_filter_does_not_write_or_check_a_tree(runner: CliRunner, example: Path,
                                                     tree_option: list[str]) -> None:
    """A tree holds every agent of an environment: one agent's render written there would
    delete the others' files as orphans (and --check would report them)."""
    result = runner.invoke(app, ["-C", str(example), "render", "-e", "dev", "--agent",
                                 "chat-assistant", *tree_option])
    assert result.exit_code == 2, result.output
    assert "--agent: prints one agent's objects" in result.output
    assert not (example / "tree").exists()


def test_environment_overrides_apply_last(runner: CliRunner) -> None:
    result = runner.invoke(app, ["-C", str(REPO), "render", "-e", "prod"])
    deployment = next(o for o in _objects(result.stdout) if o["kind"] == "Deployment")
    resources = deployment["spec"]["template"]["spec"]["containers"][0]["resources"]
    assert resources["requests"] == {"cpu": "500m", "memory": "1Gi", "ephemeral-storage": "2Gi"}
    dev = runner.invoke(app, ["-C", str(REPO), "render", "-e", "dev"])
    deployment = next(o for o in _objects(dev.stdout) if o["kind"] == "Deployment")
    env = {e["name"]: e.get("value")
           for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["LOG_LEVEL"] == "debug"  # from dev's defaults


def test_a_changed_template_is_used_by_the_next_render(tmp_path: Path) -> None:
    """Within one render a template is loaded once; the next render (same process) sees the
    template as it is on disk now."""
    from agentctl.render import pipeline
    from tests.hostile.projects import BLUEPRINT, CONFIG_MAP, blueprint, write_project

    root = write_project(tmp_path, blueprint(CONFIG_MAP))
    first = pipeline.render(root, ("dev",)).manifests
    assert [m.body["data"] for m in first] == [{"id": "gpt-4o"}]
    template = root / BLUEPRINT / "main.yaml.j2"
    template.write_text(template.read_text() + "  extra: {{ 'added' }}\n")
    second = pipeline.render(root, ("dev",)).manifests
    assert [m.body["data"] for m in second] == [{"id": "gpt-4o", "extra": "added"}]
