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
