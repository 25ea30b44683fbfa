"""Per-track versions: each rollout track renders from the agent's spec with its own patch
over it (AGENT_SPEC §3). The feature goldens hold a canary and a blue-green agent whose tracks
run different images; these tests read what those goldens say and probe the edges: where a
patch may not go, the error's position, the shared objects, egress of every track."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from agentctl.cli import app
from tests.conftest import REPO

GOLDENS = REPO / "tests" / "goldens" / "features" / "rendered"


def _object(env: str, file: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(
        (GOLDENS / env / f"features-{env}" / file).read_text())
    return loaded


def _pod(env: str, workload: str) -> dict[str, Any]:
    pod: dict[str, Any] = _object(env, f"deployment-{workload}.yaml")["spec"]["template"]
    return pod


def _image(env: str, workload: str) -> str:
    [agent] = [c for c in _pod(env, workload)["spec"]["containers"] if c["name"] == "agent"]
    return str(agent["image"])


def _config_maps(env: str, workload: str) -> set[str]:
    text = yaml.safe_dump(_pod(env, workload)["spec"])
    return set(re.findall(r"name: (\S+-config)\n", text))


@pytest.mark.parametrize("env", ["bare", "full"])
def test_the_canary_runs_its_patch_and_the_stable_track_the_spec(env: str) -> None:
    assert _image(env, "canary-tracks") == "ghcr.io/inferensys/agent:1.0.0"
    assert _image(env, "canary-tracks-canary") == "ghcr.io/inferensys/agent:2.0.0"
    assert _config_maps(env, "canary-tracks") == {"canary-tracks-config"}
    assert _config_maps(env, "canary-tracks-canary") == {"canary-tracks-canary-config"}
    stable = _object(env, "configmap-canary-tracks-config.yaml")["data"]
    canary = _object(env, "configmap-canary-tracks-canary-config.yaml")["data"]
    assert (stable["model-id"], canary["model-id"]) == ("model-a", "model-b")
    # The patch's `null` survived the defaults and override merges and deleted on the canary.
    assert stable["model-params.json"] == '{"temperature": 0.2, "maxTokens": 2048}'
    assert canary["model-params.json"] == '{"maxTokens": 2048}'
    assert "tickets" in canary["tools.json"]
    assert "tickets" not in stable["tools.json"]
    hashes = {_pod(env, w)["metadata"]["annotations"]["agent.inferensys.com/config-hash"]
              for w in ("canary-tracks", "canary-tracks-canary")}
    assert len(hashes) == 2
    # Selectors stay the frozen name + track pair.
    for workload, track in (("canary-tracks", "main"), ("canary-tracks-canary", "canary")):
        assert _object(env, f"deployment-{workload}.yaml")["spec"]["selector"] == {
            "matchLabels": {"app.kubernetes.io/name": "canary-tracks",
                            "agent.inferensys.com/track": track}}


def test_each_slot_runs_its_own_image_and_an_override_replaces_a_patch_whole() -> None:
    assert _image("bare", "blue-green-tracks-blue") == "ghcr.io/inferensys/agent:1.1.0"
    assert _image("bare", "blue-green-tracks-green") == "ghcr.io/inferensys/agent:1.2.0"
    assert _config_maps("bare", "blue-green-tracks-blue") == {"blue-green-tracks-config"}
    assert _config_maps("bare", "blue-green-tracks-green") == {"blue-green-tracks-green-config"}
    assert "briefly" in _object("bare", "configmap-blue-green-tracks-green-config.yaml")[
        "data"]["system-message"]
    # environments/full.yaml replaces the green patch with an image only: the agent's prompt.
    assert _image("full", "blue-green-tracks-green") == "ghcr.io/inferensys/agent:1.3.0"
    assert _config_maps("full", "blue-green-tracks-green") == {"blue-green-tracks-config"}
    assert not (GOLDENS / "full" / "features-full" /
                "configmap-blue-green-tracks-green-config.yaml").exists()


@pytest.mark.parametrize("env", ["bare", "full"])
def test_the_tracks_share_one_service_account(env: str) -> None:
    folder = GOLDENS / env / f"features-{env}"
    assert sorted(p.name for p in folder.glob("serviceaccount-*tracks*")) == [
        "serviceaccount-blue-green-tracks.yaml", "serviceaccount-canary-tracks.yaml"]
    names = {_pod(env, w)["spec"]["serviceAccountName"] for w in (
        "blue-green-tracks-blue", "blue-green-tracks-green")}
    assert names == {"blue-green-tracks"}


def _render_prod(runner: CliRunner, project: Path, out: Path) -> Any:
    return runner.invoke(app, ["-C", str(project), "render", "-e", "prod", "--out", str(out)])


def _set_canary(project: Path, canary: str) -> Path:
    prod = project / "environments" / "prod.yaml"
    text = prod.read_text()
    old = re.search(r"        canary: \{.*\}\n", text)
    assert old is not None
    prod.write_text(text.replace(old.group(0), f"        canary: {canary}\n"))
    return prod


def test_a_canary_workload_exists_only_with_weight(runner: CliRunner, example: Path,
                                                   tmp_path: Path) -> None:
    folder = tmp_path / "out" / "prod" / "agents-prod"
    assert _render_prod(runner, example, tmp_path / "out").exit_code == 0
    assert (folder / "deployment-code-review-canary.yaml").exists()
    _set_canary(example, "{weight: 0, trafficRouting: gatewayAPI, replicas: 1, "
                         "patch: {model: {id: gpt-4.1}}}")
    result = _render_prod(runner, example, tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert not (folder / "deployment-code-review-canary.yaml").exists()
    assert (folder / "deployment-code-review.yaml").exists()


def test_egress_allows_the_tools_of_every_track(runner: CliRunner, example: Path,
                                                tmp_path: Path) -> None:
    _set_canary(example, "{weight: 10, trafficRouting: gatewayAPI, replicas: 1, patch: {tools: "
                         "[{name: tickets, type: http, url: 'https://tickets.example.org/api'}]}}")
    result = _render_prod(runner, example, tmp_path / "out")
    assert result.exit_code == 0, result.output
    folder = tmp_path / "out" / "prod" / "agents-prod"
    policies = "".join(p.read_text() for p in folder.glob("*networkpolicy-code-review*"))
    assert "tickets.example.org" in policies
    stable = (folder / "configmap-code-review-config.yaml").read_text()
    assert "tickets" not in stable


@pytest.mark.parametrize(("canary", "where", "message"), [
    ("{weight: 10, patch: {scaling: {maxReplicas: 3}}}", "spec.rollout.canary.patch.scaling",
     "a track may change only runtime, model"),
    ("{weight: 10, patch: {runtime: {serviceAccount: {name: other}}}}",
     "spec.rollout.canary.patch.runtime.serviceAccount", "one ServiceAccount"),
    ("{weight: 10, patch: {runtime: {port: 9000}}}", "spec.rollout.canary.patch.runtime.port",
     "runtime.port cannot differ per track"),
    ("{weight: 10, patch: {runtime: {args: many}}}", "spec.rollout.canary.patch.runtime.args",
     "on the canary track"),
    ("{weight: 10, patch: {model: {idd: null}}}", "spec.rollout.canary.patch.model.idd",
     "unknown field 'idd' (did you mean 'id'?)"),
    ("{weight: 10, patch: {model: {idd: x}}}", "spec.rollout.canary.patch.model.idd",
     "on the canary track"),
    ("{weight: 10, patch: {runtime: {image: null}}}", "spec.rollout.canary.patch.runtime.image",
     "on the canary track"),
])
def test_a_patch_outside_what_a_track_may_change_is_an_error_at_its_line(
        runner: CliRunner, example: Path, tmp_path: Path, canary: str, where: str,
        message: str) -> None:
    canary = canary.replace("{weight: 10,", "{weight: 10, trafficRouting: gatewayAPI,")
    prod = _set_canary(example, canary)
    line = prod.read_text().splitlines().index(f"        canary: {canary}") + 1
    result = _render_prod(runner, example, tmp_path / "out")
    assert result.exit_code == 2, result.output
    errors = [x for x in result.output.splitlines() if not x.startswith("warning:")]
    assert len(errors) == 1, result.output
    assert isinstance(result.exception, SystemExit)
    assert errors[0].startswith(f"environments/prod.yaml:{line}:"), errors
    assert f": {where}: " in errors[0], errors
    assert message in errors[0], errors
