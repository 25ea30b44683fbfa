"""Rollout edits of the environment files: the changed lines only, checked by a render, and every
refusal with the file left as it was."""

from __future__ import annotations

import difflib
import os
import shutil
from pathlib import Path

import pytest

from agentctl.editing import rollouts
from agentctl.errors import InputError

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    root.mkdir()
    for name in ("agentctl.yaml", "agents", "environments"):
        source = ROOT / name
        (shutil.copytree if source.is_dir() else shutil.copy)(source, root / name)
    return root


PATCH = "patch: {model: {id: gpt-4.1}}}"
"""The example prod canary's patch, as its line ends."""


def changed(edit: rollouts.Edit) -> list[str]:
    return [line.rstrip("\n") for line in difflib.unified_diff(
        edit.before.splitlines(True), edit.after.splitlines(True), n=0)
        if line[:1] in "+-" and not line.startswith(("+++", "---"))]


def test_weight_changes_the_one_line(project: Path) -> None:
    t = rollouts.target(project, "prod", "code-review")
    edit = rollouts.edit(t, rollouts.weight(t, 50))
    assert changed(edit) == [
        "-        canary: {weight: 10, trafficRouting: gatewayAPI, replicas: 1, " + PATCH,
        "+        canary: {weight: 50, trafficRouting: gatewayAPI, replicas: 1, " + PATCH]
    assert edit.path.read_text() == edit.before  # nothing written yet
    rollouts.write(edit)
    assert edit.path.read_text() == edit.after
    assert rollouts.target(project, "prod", "code-review").spec["rollout"]["canary"][
        "weight"] == 50


def test_blue_green_promote_switches_to_the_inactive_slot(project: Path) -> None:
    t = rollouts.target(project, "prod", "support-bot")
    assert (t.active_slot, t.inactive_slot) == ("blue", "green")
    rollouts.write(rollouts.edit(t, rollouts.promote(t)))
    flipped = rollouts.target(project, "prod", "support-bot")
    assert flipped.active_slot == "green"
    rollouts.write(rollouts.edit(flipped, rollouts.promote(flipped)))
    assert rollouts.target(project, "prod", "support-bot").active_slot == "blue"


def test_abort_sets_the_weight_to_zero(project: Path) -> None:
    t = rollouts.target(project, "prod", "code-review")
    edit = rollouts.edit(t, rollouts.abort(t))
    assert changed(edit) == [
        "-        canary: {weight: 10, trafficRouting: gatewayAPI, replicas: 1, " + PATCH,
        "+        canary: {weight: 0, trafficRouting: gatewayAPI, replicas: 1}"]


@pytest.mark.parametrize(("sets", "message"), [
    (["scaling.maxReplicas=3"], "scaling is shared by every track"),
    (["runtime.serviceAccount.name=x"], "one ServiceAccount"),
    (["runtime.port=9000"], "name the agent's port"),
    (["model.source.cache.size=1Gi"], "one model cache"),
    (["runtime.image"], "expected path=value"),
    ([], "at least one --set"),
])
def test_a_patch_may_touch_only_what_a_track_may_change(sets: list[str], message: str) -> None:
    with pytest.raises(InputError, match=message):
        rollouts.parse_sets(sets)


def test_set_values_are_typed_as_yaml_scalars() -> None:
    assert rollouts.parse_sets(["runtime.image=r:2", "resources.gpu=1", "model.id='7'"]) == {
        "runtime": {"image": "r:2"}, "resources": {"gpu": 1}, "model": {"id": "7"}}


def test_refusals_leave_the_file_unchanged(project: Path) -> None:
    prod = project / "environments" / "prod.yaml"
    before = prod.read_bytes()
    with pytest.raises(InputError, match="no agent named 'nobody'"):
        rollouts.target(project, "prod", "nobody")
    with pytest.raises(InputError, match="no environment 'qa'"):
        rollouts.target(project, "qa", "code-review")
    blue_green = rollouts.target(project, "prod", "support-bot")
    with pytest.raises(InputError, match="needs Canary"):
        rollouts.weight(blue_green, 10)
    with pytest.raises(InputError, match="0 to 100"):
        rollouts.weight(rollouts.target(project, "prod", "code-review"), 101)
    os.chmod(prod, 0o444)
    try:
        t = rollouts.target(project, "prod", "code-review")
        with pytest.raises(InputError, match="read-only"):
            rollouts.edit(t, rollouts.weight(t, 20))
    finally:
        os.chmod(prod, 0o644)
    assert prod.read_bytes() == before


def test_an_edit_that_breaks_the_render_is_refused_naming_the_file(project: Path) -> None:
    t = rollouts.target(project, "prod", "code-review")
    with pytest.raises(InputError) as caught:
        rollouts.edit(t, [((*t.base, "replicas"), "many")])
    assert any(p.file.endswith("environments/prod.yaml") for p in caught.value.problems), \
        caught.value
    assert (project / "environments" / "prod.yaml").read_text() == \
        (ROOT / "environments" / "prod.yaml").read_text()


def test_the_commands_print_the_diff_and_dry_run_writes_nothing(project: Path) -> None:
    from typer.testing import CliRunner

    from agentctl.cli import app

    prod = project / "environments" / "prod.yaml"
    before = prod.read_text()
    runner = CliRunner()
    dry = runner.invoke(app, ["-C", str(project), "rollout", "weight", "code-review",
                              "--env", "prod", "30", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "+        canary: {weight: 30," in dry.stdout
    assert prod.read_text() == before
    done = runner.invoke(app, ["-C", str(project), "rollout", "promote", "support-bot",
                               "--env", "prod"])
    assert done.exit_code == 0, done.output
    assert "activeSlot: green" in prod.read_text()
    for args in (["rollout", "weight", "nobody", "--env", "prod", "3"],
                 ["rollout", "abort", "support-bot", "--env", "qa"],
                 ["promote", "code-review", "--from", "prod", "--to", "prod"],
                 ["rollout", "start", "code-review", "--env", "prod", "--set", "scaling.x=1"]):
        refused = runner.invoke(app, ["-C", str(project), *args])
        assert refused.exit_code == 2, (args, refused.output)
        assert isinstance(refused.exception, SystemExit)
        assert len(refused.output.strip().splitlines()) == 1, refused.output


ROUND_TRIP = ROOT / "tests" / "goldens" / "rollouts"
"""A 200-line, heavily commented prod environment (three-space indentation, flow mappings,
a flow mapping over two lines) and, per command, the whole file that command leaves."""
COMMANDS = {
    "start-canary": ["rollout", "start", "code-review", "--env", "prod",
                     "--set", "runtime.image=ghcr.io/inferensys/review-agent:0.13.0",
                     "--weight", "20"],
    "weight": ["rollout", "weight", "code-review", "--env", "prod", "50"],
    "promote-canary": ["rollout", "promote", "code-review", "--env", "prod"],
    "abort": ["rollout", "abort", "code-review", "--env", "prod"],
    "start-blue-green": ["rollout", "start", "support-bot", "--env", "prod",
                         "--set", "runtime.image=ghcr.io/inferensys/support-agent:3.6.0"],
    "promote-blue-green": ["rollout", "promote", "support-bot", "--env", "prod"],
    "promote-between": ["promote", "code-review", "--from", "staging", "--to", "prod",
                        "--only", "runtime.image"],
}
CHANGED_LINES = {"start-canary": (2, 2), "weight": (1, 1), "promote-canary": (2, 3),
                 "abort": (2, 1), "start-blue-green": (1, 1), "promote-blue-green": (0, 1),
                 "promote-between": (0, 2)}
"""(removed, added) lines of each command's diff against the original."""


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_each_command_changes_only_the_lines_that_carry_the_change(
        project: Path, command: str, update_goldens: bool) -> None:
    from typer.testing import CliRunner

    from agentctl.cli import app

    prod = project / "environments" / "prod.yaml"
    original = (ROUND_TRIP / "prod.yaml").read_bytes()
    assert len(original.decode().splitlines()) == 200
    prod.write_bytes(original)
    if command == "promote-between":  # staging runs a newer image than prod
        with (project / "environments" / "staging.yaml").open("a") as staging:
            staging.write("  agents:\n    code-review:\n"
                          "      runtime: {image: ghcr.io/inferensys/review-agent:0.13.0}\n")
    result = CliRunner().invoke(app, ["-C", str(project), *COMMANDS[command]])
    assert result.exit_code == 0, result.output
    golden = ROUND_TRIP / f"{command}.yaml"
    if update_goldens:
        golden.write_bytes(prod.read_bytes())
    assert prod.read_bytes() == golden.read_bytes()
    diff = [line for line in difflib.unified_diff(
        original.decode().splitlines(), prod.read_text().splitlines(), n=0, lineterm="")
        if not line.startswith(("+++", "---", "@@"))]
    removed = sum(line.startswith("-") for line in diff)
    added = sum(line.startswith("+") for line in diff)
    assert (removed, added) == CHANGED_LINES[command], diff


def _selectors(runner: object, project: Path, out: Path) -> dict[str, dict[str, str]]:
    import yaml
    from typer.testing import CliRunner

    from agentctl.cli import app

    assert isinstance(runner, CliRunner)
    result = runner.invoke(app, ["-C", str(project), "render", "-e", "prod", "--out", str(out)])
    assert result.exit_code == 0, result.output
    found: dict[str, dict[str, str]] = {}
    for path in sorted((out / "prod").glob("*/*.yaml")):
        body = yaml.safe_load(path.read_text())
        if body["kind"] in ("Deployment", "StatefulSet"):
            found[body["metadata"]["name"]] = body["spec"]["selector"]["matchLabels"]
    return found


@pytest.mark.parametrize(("agent", "steps"), [
    ("code-review", [
        ["rollout", "start", "--set", "runtime.image=ghcr.io/inferensys/review-agent:0.13.0",
         "--weight", "10"],
        ["rollout", "weight", "50"], ["rollout", "promote"],
        ["rollout", "start", "--set", "model.id=gpt-4.1", "--weight", "25"],
        ["rollout", "abort"]]),
    ("support-bot", [
        ["rollout", "start", "--set", "runtime.image=ghcr.io/inferensys/support-agent:3.6.0"],
        ["rollout", "promote"],
        ["rollout", "start", "--set", "runtime.image=ghcr.io/inferensys/support-agent:3.7.0"],
        ["rollout", "abort"], ["rollout", "promote"]]),
])
def test_no_step_of_a_rollout_changes_a_workload_selector(
        project: Path, tmp_path: Path, agent: str, steps: list[list[str]]) -> None:
    from typer.testing import CliRunner

    from agentctl.cli import app

    runner = CliRunner()
    before = _selectors(runner, project, tmp_path / "out0")
    seen = set(before)
    for i, step in enumerate(steps, 1):
        result = runner.invoke(app, ["-C", str(project), *step[:2], agent, "--env", "prod",
                                     *step[2:]])
        assert result.exit_code == 0, (step, result.output)
        after = _selectors(runner, project, tmp_path / f"out{i}")
        for name in set(before) & set(after):
            assert after[name] == before[name], (step, name)
        for name, selector in after.items():  # the frozen name + track pair
            assert selector == {"app.kubernetes.io/name": name.split("-canary")[0].removesuffix(
                "-blue").removesuffix("-green"), "agent.inferensys.com/track": selector[
                "agent.inferensys.com/track"]}
        seen |= set(after)
        before = after
    if agent == "code-review":
        assert {"code-review", "code-review-canary"} <= seen
    else:
        assert {"support-bot-blue", "support-bot-green"} <= seen


@pytest.mark.parametrize(("args", "message"), [
    (["rollout", "weight", "nobody", "--env", "prod", "30"], "no agent named 'nobody'"),
    (["rollout", "abort", "code-review", "--env", "qa"], "no environment 'qa'"),
    (["rollout", "start", "code-review", "--env", "prod", "--set", "runtime.imagee=x:1"],
     "unknown field 'imagee'"),
    (["rollout", "start", "code-review", "--env", "prod", "--set", "scaling.maxReplicas=3"],
     "scaling is shared by every track"),
    (["rollout", "start", "code-review", "--env", "prod", "--set",
      "lifecycle.probes.startup.budgetSeconds=many"],
     "valid integer"),
    (["rollout", "weight", "code-review", "--env", "prod", "30"], "read-only"),
])
def test_hostile_commands_exit_2_with_one_line_and_the_file_unchanged(
        project: Path, args: list[str], message: str) -> None:
    from typer.testing import CliRunner

    from agentctl.cli import app

    prod = project / "environments" / "prod.yaml"
    prod.write_bytes((ROUND_TRIP / "prod.yaml").read_bytes())
    before = prod.read_bytes()
    if message == "read-only":
        os.chmod(prod, 0o444)
    try:
        result = CliRunner().invoke(app, ["-C", str(project), *args])
    finally:
        os.chmod(prod, 0o644)
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)
    lines = [x for x in result.output.strip().splitlines() if not x.startswith("warning:")]
    assert len(lines) == 1, result.output
    assert message in lines[0]
    assert prod.read_bytes() == before
