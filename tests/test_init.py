"""`agentctl init`: the scaffold is a working repository (it renders, its rendered tree checks
fresh, it validates with --strict, its CI workflow lints), and it never overwrites a file without
--force."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from agentctl import scaffolding
from agentctl.cli import app
from agentctl.model.common import DNS1123Label
from agentctl.sandbox import building
from tests.conftest import REPO

SCAFFOLD = [
    "agentctl.yaml",
    "agents/example.yaml",
    "environments/dev.yaml",
    "environments/staging.yaml",
    "environments/prod.yaml",
    ".github/workflows/agentctl.yaml",
    ".github/workflows/agentctl-diff.yaml",
    ".gitignore",
    "README.md",
    "schemas/agent.schema.json",
    "schemas/environment.schema.json",
    "schemas/project.schema.json",
    "deploy/dev/reconciler.yaml",
    "deploy/staging/reconciler.yaml",
    "deploy/prod/reconciler.yaml",
]


def _init(runner: CliRunner, target: Path, *args: str) -> str:
    result = runner.invoke(app, ["init", str(target), *args])
    assert result.exit_code == 0, result.output
    return result.output


def test_init_writes_every_file_and_lists_it(runner: CliRunner, tmp_path: Path) -> None:
    target = tmp_path / "My Fleet"
    output = _init(runner, target)
    for rel in SCAFFOLD:
        assert (target / rel).is_file(), rel
        assert f"created {target / rel}" in output
    assert sorted(str(p.relative_to(target)) for p in target.rglob("*") if p.is_file()) == sorted(
        SCAFFOLD)
    project = yaml.safe_load((target / "agentctl.yaml").read_text())
    assert project["metadata"]["name"] == "my-fleet"
    for env in scaffolding.ENVIRONMENTS:
        doc = yaml.safe_load((target / "environments" / f"{env}.yaml").read_text())
        assert doc["metadata"]["name"] == env
        assert doc["spec"]["namespace"] == f"my-fleet-{env}"


def test_scaffold_renders_checks_fresh_and_validates_strict(runner: CliRunner,
                                                           tmp_path: Path) -> None:
    target = tmp_path / "fleet"
    _init(runner, target)
    rendered = target / "rendered"
    result = runner.invoke(app, ["-C", str(target), "render", "--all-envs", "--out",
                                 str(rendered)])
    assert result.exit_code == 0, result.output
    assert "warning" not in result.output.lower(), result.output
    result = runner.invoke(app, ["-C", str(target), "render", "--all-envs", "--check"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["-C", str(target), "validate", "--strict"])
    assert result.exit_code == 0, result.output
    for env in scaffolding.ENVIRONMENTS:
        provenance = json.loads((rendered / env / "provenance.json").read_text())
        kinds = {o["kind"] for o in provenance["objects"]}
        assert {"Deployment", "Service", "ConfigMap"} <= kinds, provenance
        assert {o["namespace"] for o in provenance["objects"]} == {f"fleet-{env}"}


def test_prod_is_restricted(runner: CliRunner, tmp_path: Path) -> None:
    """The scaffold's prod refuses a baseline pod that dev accepts."""
    target = tmp_path / "fleet"
    _init(runner, target)
    agent = target / "agents" / "example.yaml"
    agent.write_text(agent.read_text().replace("  runtime:\n",
                                               "  security: {podSecurity: baseline}\n"
                                               "  runtime:\n", 1))
    result = runner.invoke(app, ["-C", str(target), "render", "--env", "dev"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["-C", str(target), "render", "--env", "prod"])
    assert result.exit_code == 2, result.output
    assert "podSecurity baseline is not allowed in environment prod" in result.output


def test_refuses_to_overwrite_and_writes_nothing(runner: CliRunner, tmp_path: Path) -> None:
    target = tmp_path / "fleet"
    (target / "agents").mkdir(parents=True)
    (target / "README.md").write_text("mine\n")
    (target / "agents" / "example.yaml").write_text("also mine\n")
    result = runner.invoke(app, ["init", str(target)])
    assert result.exit_code == 2, result.output
    assert f"{target / 'README.md'}: already exists" in result.output
    assert f"{target / 'agents' / 'example.yaml'}: already exists" in result.output
    assert "--force" in result.output
    assert not isinstance(result.exception, Exception), result.exception  # SystemExit only
    assert (target / "README.md").read_text() == "mine\n"
    assert not (target / "agentctl.yaml").exists()
    assert not (target / "environments").exists()


def test_force_overwrites_only_scaffold_files(runner: CliRunner, tmp_path: Path) -> None:
    target = tmp_path / "fleet"
    target.mkdir()
    (target / "README.md").write_text("mine\n")
    (target / "notes.txt").write_text("keep me\n")
    _init(runner, target, "--force")
    assert (target / "README.md").read_text().startswith("# fleet\n")
    assert (target / "notes.txt").read_text() == "keep me\n"


def test_force_replaces_a_symlink_instead_of_writing_through_it(runner: CliRunner,
                                                                tmp_path: Path) -> None:
    outside = tmp_path / "outside.md"
    outside.write_text("not yours\n")
    target = tmp_path / "fleet"
    target.mkdir()
    (target / "README.md").symlink_to(outside)
    _init(runner, target, "--force")
    assert outside.read_text() == "not yours\n"
    assert not (target / "README.md").is_symlink()


def test_a_directory_in_the_way_is_an_error_even_with_force(runner: CliRunner,
                                                           tmp_path: Path) -> None:
    target = tmp_path / "fleet"
    (target / "agentctl.yaml").mkdir(parents=True)
    result = runner.invoke(app, ["init", str(target), "--force"])
    assert result.exit_code == 2, result.output
    assert f"{target / 'agentctl.yaml'}: is a directory" in result.output
    assert not (target / "agents").exists()


def test_target_that_is_a_file_is_an_error(runner: CliRunner, tmp_path: Path) -> None:
    target = tmp_path / "fleet"
    target.write_text("")
    result = runner.invoke(app, ["init", str(target)])
    assert result.exit_code == 2, result.output
    assert not isinstance(result.exception, Exception), result.exception  # SystemExit only


def test_defaults_to_the_project_directory(runner: CliRunner, tmp_path: Path) -> None:
    target = tmp_path / "from-c"
    result = runner.invoke(app, ["-C", str(target), "init"])
    assert result.exit_code == 0, result.output
    assert (target / "agentctl.yaml").is_file()


def test_json_output_lists_the_files(runner: CliRunner, tmp_path: Path) -> None:
    target = tmp_path / "fleet"
    result = runner.invoke(app, ["-o", "json", "init", str(target)])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["project"] == "fleet"
    assert document["files"] == [str(target / rel) for rel in SCAFFOLD]


@pytest.mark.parametrize(("directory", "expected"), [
    ("My Fleet", "my-fleet"),
    ("agents.prod_EU", "agents-prod-eu"),
    ("--team--", "team"),
    ("2024-agents", "2024-agents"),
    ("Ünïcode Agents", "unicode-agents"),
    ("___", scaffolding.FALLBACK_NAME),
    ("x" * 80, "x" * scaffolding.MAX_PROJECT_NAME),
    ("a" * 54 + "-b" * 5, "a" * 54),
])
def test_project_name_is_a_dns_label_that_leaves_room_for_envs(directory: str, expected: str,
                                                               tmp_path: Path) -> None:
    from pydantic import TypeAdapter

    name = scaffolding.project_name(tmp_path / directory)
    assert name == expected
    label = TypeAdapter(DNS1123Label)
    for env in scaffolding.ENVIRONMENTS:
        label.validate_python(f"{name}-{env}")


def test_workflow_installs_pinned_agentctl_and_checks_render(tmp_path: Path) -> None:
    scaffolding.scaffold(tmp_path)
    workflow = yaml.safe_load((tmp_path / ".github/workflows/agentctl.yaml").read_text())
    job = workflow["jobs"]["render"]
    runs = [step.get("run", "") for step in job["steps"]]
    assert job["env"]["AGENTCTL_REQUIREMENT"] == "${{ vars.AGENTCTL_REQUIREMENT }}"
    assert "agentctl render --all-envs --check" in runs
    assert "agentctl validate --strict" in runs


@pytest.mark.parametrize("workflow", ["agentctl.yaml", "agentctl-diff.yaml"])
def test_workflow_passes_actionlint(tmp_path: Path, workflow: str) -> None:
    """The scaffolded workflows lint clean with the pinned actionlint (built by
    `python -m agentctl.sandbox.building --dev-tools`, which `make test` runs first)."""
    actionlint = building.binary("actionlint")
    scaffolding.scaffold(tmp_path)
    result = subprocess.run([str(actionlint), "-no-color", f".github/workflows/{workflow}"],
                            cwd=tmp_path, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def _diff_workflow(text: str) -> dict[str, Any]:
    workflow: dict[Any, Any] = yaml.safe_load(text)
    workflow["on"] = workflow.pop(True)  # YAML 1.1 reads the key `on` as true
    return workflow


def test_diff_workflow_comments_the_pr_diff_safely(tmp_path: Path) -> None:
    """On pull_request only (never pull_request_target, which would run the PR's code with a
    write token), reading contents and writing only pull-request comments, with the whole
    history (the base branch must be there), fresh output first, exit 1 not a failure."""
    scaffolding.scaffold(tmp_path)
    text = (tmp_path / ".github/workflows/agentctl-diff.yaml").read_text()
    assert "pull_request_target" not in text
    workflow = _diff_workflow(text)
    assert workflow["on"] == {"pull_request": None}
    assert workflow["permissions"] == {"contents": "read", "pull-requests": "write"}
    job = workflow["jobs"]["diff"]
    assert "permissions" not in job
    assert job["env"]["AGENTCTL_REQUIREMENT"] == "${{ vars.AGENTCTL_REQUIREMENT }}"
    steps = job["steps"]
    checkout = steps[0]
    assert checkout["uses"] == "actions/checkout@v6"
    assert checkout["with"]["fetch-depth"] == 0
    assert checkout["with"]["persist-credentials"] is False
    runs = [step.get("run", "") for step in steps]
    check = runs.index("agentctl render --all-envs --check")
    diff = next(i for i, run in enumerate(runs) if "agentctl diff" in run)
    assert check < diff
    assert steps[diff]["env"] == {"BASE_REF": "${{ github.base_ref }}"}
    assert ('agentctl diff --base "origin/$BASE_REF" --all-envs -o markdown > diff.md '
            "|| code=$?") in runs[diff]
    assert 'if [ "$code" -gt 1 ]; then exit "$code"; fi' in runs[diff]
    assert "${{" not in runs[diff]  # no expression expanded into the shell
    assert steps[-1]["uses"] == "actions/github-script@v8"
    assert "<!-- agentctl-diff -->" in steps[-1]["with"]["script"]


def test_diff_workflow_is_the_repositorys_own_but_for_the_install() -> None:
    ours = _diff_workflow((REPO / ".github/workflows/diff.yaml").read_text())
    scaffolded = _diff_workflow(scaffolding.contents("fleet")[
        ".github/workflows/agentctl-diff.yaml"])
    for workflow in (ours, scaffolded):
        del workflow["name"]
        workflow["jobs"]["diff"].pop("env", None)
        install = [s for s in workflow["jobs"]["diff"]["steps"] if s.get("name") ==
                   "Install agentctl"]
        assert len(install) == 1
        workflow["jobs"]["diff"]["steps"].remove(install[0])
    assert scaffolded == ours


def test_diff_workflow_exit_handling(tmp_path: Path) -> None:
    """The diff step's shell: exit 0 and 1 (changes) pass and keep the markdown, 2 fails."""
    scaffolding.scaffold(tmp_path)
    steps = _diff_workflow((tmp_path / ".github/workflows/agentctl-diff.yaml").read_text())[
        "jobs"]["diff"]["steps"]
    script = next(s["run"] for s in steps if "agentctl diff" in s.get("run", ""))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "agentctl"
    for code in (0, 1, 2, 70):
        fake.write_text(f"#!/bin/sh\necho \"$*\"\nexit {code}\n")
        fake.chmod(0o755)
        result = subprocess.run(  # as GitHub runs a `run:` step
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script], cwd=tmp_path,
            capture_output=True, text=True, check=False,
            env={"PATH": f"{bin_dir}:/usr/bin:/bin", "BASE_REF": "main"})
        assert result.returncode == (0 if code < 2 else code), (code, result.stderr)
        assert (tmp_path / "diff.md").read_text() == (
            "diff --base origin/main --all-envs -o markdown\n")
