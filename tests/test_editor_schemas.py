"""Editor support: `agentctl schema` emits JSON Schemas of Agent, Environment and Project files,
`--write`/`--check` keep a project's `schemas/` current, and every agentctl file of the example
fleet and of a fresh `agentctl init` starts with a modeline that reaches the schema it validates
against. The schemas check the fields inside environment overrides and track patches (partial
Agent-spec schemas) as the models do."""

from __future__ import annotations

import copy
import json
import os
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from jsonschema.protocols import Validator
from pydantic import ValidationError
from typer.testing import CliRunner, Result

from agentctl import schemas
from agentctl.cli import app
from agentctl.model.agent import Agent
from agentctl.model.tracks import track_specs
from tests.conftest import REPO

MODELINE = re.compile(r"^# yaml-language-server: \$schema=(\S+)\n")


def _ok(result: Result) -> None:
    assert result.exit_code == 0, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception


def _refused(result: Result, code: int) -> None:
    assert result.exit_code == code, result.output
    assert isinstance(result.exception, SystemExit), result.exception


def _emitted(kind: str) -> dict[str, Any]:
    result = CliRunner().invoke(app, ["schema", "--json-schema", "--kind", kind])
    _ok(result)
    schema: dict[str, Any] = json.loads(result.stdout)
    return schema


@pytest.fixture(scope="module", params=["2020-12", "7"])
def validators(request: pytest.FixtureRequest) -> dict[str, Validator]:
    """Each kind's validator, per Draft 2020-12 (the schemas' own dialect), and per Draft 7 as
    well: yaml-language-server validates with Draft 7 semantics (a `$ref`'s siblings ignored),
    so the schemas must mean the same there."""
    found: dict[str, Validator] = {}
    for kind in schemas.KINDS:
        schema = _emitted(kind)
        jsonschema.Draft202012Validator.check_schema(schema)
        if request.param == "7":
            found[kind] = jsonschema.Draft7Validator(schema)
        else:
            found[kind] = jsonschema.Draft202012Validator(schema)
    return found


@pytest.fixture(scope="module")
def scaffold(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("init") / "fleet"
    _ok(CliRunner().invoke(app, ["init", str(target)]))
    return target


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project holding only agentctl.yaml (every other file is optional to the schemas)."""
    root = tmp_path / "project"
    root.mkdir()
    (root / "agentctl.yaml").write_text((REPO / "agentctl.yaml").read_text())
    return root


def _files(project: Path) -> dict[Path, schemas.Kind]:
    """Every agentctl file of a project → its kind (per the project's folders)."""
    spec = yaml.safe_load((project / "agentctl.yaml").read_text())["spec"]
    found: dict[Path, schemas.Kind] = {project / "agentctl.yaml": "project"}
    found.update(dict.fromkeys(sorted((project / spec["agents"]).glob("*.yaml")), "agent"))
    found.update(dict.fromkeys(sorted((project / spec["environments"]).glob("*.yaml")),
                               "environment"))
    assert len(found) >= 5, found
    return found


def _project(which: str, scaffold: Path) -> Path:
    return REPO if which == "example" else scaffold


def test_schemas_are_generated_with_draft_and_stable_ids() -> None:
    ids = set()
    for kind in schemas.KINDS:
        schema = _emitted(kind)
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        assert schema["$id"].endswith(f"/v1alpha1/{kind}.json")
        ids.add(schema["$id"])
        assert _emitted(kind.upper()) == schema  # --kind is case-insensitive
    assert len(ids) == 3
    # the Agent's remains the default, and its field docstrings are descriptions
    result = CliRunner().invoke(app, ["schema", "--json-schema"])
    _ok(result)
    agent = json.loads(result.stdout)
    assert agent == _emitted("agent")
    assert "kube-system namespace UID" in json.dumps(_emitted("environment"))
    assert agent["$defs"]["Canary"]["properties"]["patch"]["description"]
    # an editor shows a title above the description: the key as written, not a model's name
    assert agent["$defs"]["Canary"]["properties"]["trafficRouting"]["title"] == "trafficRouting"
    environment = _emitted("environment")["$defs"]
    assert environment["EnvironmentSpec"]["properties"]["defaults"]["title"] == "defaults"
    assert not [name for name, definition in environment.items() if "title" in definition]
    # one paragraph per description (an editor makes each line one), code spans as markdown
    prune = environment["EnvironmentSpec"]["properties"]["prune"]
    assert "\n" not in prune["description"]
    assert prune["markdownDescription"] == prune["description"]


@pytest.mark.parametrize("which", ["example", "init"])
def test_every_file_validates_against_the_schema_its_modeline_names(
        which: str, scaffold: Path,
        validators: dict[str, Validator]) -> None:
    project = _project(which, scaffold)
    for path, kind in _files(project).items():
        text = path.read_text()
        match = MODELINE.match(text)
        assert match, f"{path}: no yaml-language-server modeline on the first line"
        target = (path.parent / match.group(1)).resolve()
        assert target == (project / schemas.FILES[kind]).resolve(), (path, match.group(1))
        assert target.is_file(), target
        on_disk = jsonschema.Draft202012Validator(json.loads(target.read_text()))
        for document in [d for d in yaml.safe_load_all(text) if d]:
            errors = [e.message for e in on_disk.iter_errors(document)]
            assert not errors, (path, errors)
            validators[kind].validate(document)


@pytest.mark.parametrize("which", ["example", "init"])
def test_committed_schemas_are_fresh(which: str, scaffold: Path, runner: CliRunner) -> None:
    result = runner.invoke(app, ["-C", str(_project(which, scaffold)), "schema", "--check"])
    _ok(result)


def _prod() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((REPO / "environments" / "prod.yaml").read_text())
    return document


def _prod_with(where: tuple[str, ...], value: Any) -> dict[str, Any]:
    """The example prod environment with `value` set at `where` under its spec."""
    document = _prod()
    node = document["spec"]
    for key in where[:-1]:
        node = node.setdefault(key, {})
    node[where[-1]] = value
    return document


@pytest.mark.parametrize(("where", "value"), [
    # a misspelled field, at the top of an override, deep inside one, and in the defaults
    (("agents", "chat-assistant", "replicass"), 3),
    (("agents", "chat-assistant", "resources", "requests", "cpuu"), "1"),
    (("defaults", "observability", "metrics", "monitr"), "none"),
    # a wrong type or value
    (("defaults", "replicas"), "three"),
    (("agents", "chat-assistant", "resources", "requests", "cpu"), "lots"),
    (("agents", "code-review", "rollout", "canary", "weight"), 150),
    (("defaults", "observability", "logging", "level"), "verbose"),
    # a list replaces whole in a merge patch: its items are complete
    (("agents", "chat-assistant", "tools"), [{"name": "search"}]),
    # an override names an agent, whose name is a DNS-1035 label
    (("agents", "Chat_Assistant"), {"replicas": 2}),
])
def test_environment_schema_rejects_bad_overrides(
        validators: dict[str, Validator], where: tuple[str, ...],
        value: Any) -> None:
    assert not validators["environment"].is_valid(_prod_with(where, value))


@pytest.mark.parametrize(("where", "value"), [
    (("defaults", "runtime"), {"image": "ghcr.io/example/other:1.0"}),  # image alone: partial
    (("agents", "chat-assistant", "rollout"), {"strategy": "Canary", "canary": {"weight": 5}}),
    (("agents", "chat-assistant", "network", "egress"), None),  # null deletes
    (("agents", "chat-assistant", "resources", "limits", "memory"), None),
    (("defaults", "runtime", "nodeSelector"), {"pool": "agents", "zone": None}),
    (("agents", "chat-assistant", "resources", "requests", "cpu"), 0.5),  # a quantity: 500m
])
def test_environment_schema_accepts_partial_and_null_overrides(
        validators: dict[str, Validator], where: tuple[str, ...],
        value: Any) -> None:
    document = _prod_with(where, value)
    errors = [e.message for e in validators["environment"].iter_errors(document)]
    assert not errors


def _canary(patch: Any) -> dict[str, Any]:
    agent: dict[str, Any] = copy.deepcopy(
        yaml.safe_load((REPO / "agents" / "chat-assistant.yaml").read_text()))
    agent["spec"].pop("scaling", None)
    agent["spec"]["replicas"] = 2
    agent["spec"]["rollout"] = {"strategy": "Canary", "canary": {"weight": 10, "patch": patch}}
    return agent


@pytest.mark.parametrize(("patch", "allowed"), [
    ({"runtime": {"image": "ghcr.io/example/next:2.0"}}, True),
    ({"model": {"id": "gpt-4.1"}, "resources": None}, True),
    ({"runtime": {"env": None}, "tools": []}, True),
    ({"replicas": 3}, False),  # not a section a track may change
    ({"observability": {"logging": {"level": "debug"}}}, False),
    ({"runtime": {"serviceAccount": {"create": True}}}, False),  # shared by the tracks
    ({"runtime": {"port": 9000}}, False),
    ({"model": {"source": {"cache": {"type": "pvc", "size": "1Gi"}}}}, False),
    ({"runtime": None}, False),  # would delete runtime.serviceAccount
    ({"model": {"source": None}}, False),  # would delete model.source.cache
    ({"runtime": {"imagee": "typo"}}, False),
])
def test_track_patch_schema_agrees_with_the_model(
        validators: dict[str, Validator], patch: dict[str, Any],
        allowed: bool) -> None:
    agent = _canary(patch)
    by_model = True
    try:  # the agent, then the spec each track runs (its patch merged over the agent's spec)
        track_specs(Agent.model_validate(agent).spec)
    except ValidationError:
        by_model = False
    assert by_model == allowed, patch
    assert validators["agent"].is_valid(agent) == allowed, patch
    slots = _canary(None)
    slots["spec"]["rollout"] = {"strategy": "BlueGreen",
                                "blueGreen": {"slots": {"green": patch}}}
    assert validators["agent"].is_valid(slots) == allowed, patch


@pytest.mark.parametrize(("cpu", "valid"), [(0.5, True), (2, True), ("250m", True),
                                          ("lots", False), (True, False)])
def test_a_quantity_is_a_number_or_a_quantity_string_as_the_model_reads_it(
        validators: dict[str, Validator], cpu: Any, valid: bool) -> None:
    agent = _canary(None)
    agent["spec"]["resources"] = {"requests": {"cpu": cpu}}
    by_model = True
    try:
        Agent.model_validate(agent)
    except ValidationError:
        by_model = False
    assert by_model == valid
    assert validators["agent"].is_valid(agent) == valid


def test_write_is_idempotent_and_prints_what_it_did(runner: CliRunner, project: Path) -> None:
    result = runner.invoke(app, ["schema", "--write", "-C", str(project)])
    _ok(result)
    for kind, rel in schemas.FILES.items():
        assert f"wrote {project / rel}" in result.stdout
        assert json.loads((project / rel).read_text()) == _emitted(kind)
    before = {rel: (project / rel).read_bytes() for rel in schemas.FILES.values()}
    inodes = {rel: (project / rel).stat().st_ino for rel in schemas.FILES.values()}
    result = runner.invoke(app, ["-o", "json", "schema", "--write", "-C", str(project)])
    _ok(result)
    assert json.loads(result.stdout) == {
        "written": [], "unchanged": [str(project / rel) for rel in schemas.FILES.values()]}
    assert {rel: (project / rel).read_bytes() for rel in schemas.FILES.values()} == before
    assert {rel: (project / rel).stat().st_ino for rel in schemas.FILES.values()} == inodes
    assert sorted(p.name for p in (project / "schemas").iterdir()) == sorted(
        Path(rel).name for rel in schemas.FILES.values())  # no temporary file left behind


def test_check_exits_1_naming_a_stale_or_missing_file_and_0_when_fresh(
        runner: CliRunner, project: Path) -> None:
    _ok(runner.invoke(app, ["schema", "--write", "-C", str(project)]))
    _ok(runner.invoke(app, ["schema", "--check", "-C", str(project)]))
    stale = project / schemas.FILES["environment"]
    stale.write_text(stale.read_text().replace('"defaults"', '"defaultz"'))
    missing = project / schemas.FILES["project"]
    missing.unlink()
    result = runner.invoke(app, ["schema", "--check", "-C", str(project)])
    _refused(result, 1)
    assert f"{stale}: stale" in result.output
    assert f"{missing}: missing" in result.output
    assert str(project / schemas.FILES["agent"]) not in result.output
    assert not missing.exists()  # --check writes nothing
    _ok(runner.invoke(app, ["schema", "--write", "-C", str(project)]))
    _ok(runner.invoke(app, ["schema", "--check", "-C", str(project)]))


@pytest.mark.parametrize("mode", ["--write", "--check"])
def test_a_symlinked_schemas_folder_is_refused(runner: CliRunner, tmp_path: Path,
                                               project: Path, mode: str) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (project / "schemas").symlink_to(outside, target_is_directory=True)
    result = runner.invoke(app, ["schema", mode, "-C", str(project)])
    _refused(result, 2)
    assert "symlink" in result.output
    assert list(outside.iterdir()) == []


@pytest.mark.parametrize("mode", ["--write", "--check"])
def test_a_symlinked_schema_file_is_refused_and_its_target_kept(runner: CliRunner,
                                                                tmp_path: Path,
                                                                mode: str) -> None:
    project = tmp_path / "project"
    _ok(runner.invoke(app, ["init", str(project)]))
    outside = tmp_path / "outside.json"
    outside.write_text("{}\n")
    link = project / schemas.FILES["environment"]
    link.unlink()
    link.symlink_to(outside)
    result = runner.invoke(app, ["schema", mode, "-C", str(project)])
    _refused(result, 2)
    assert str(link) in result.output
    assert outside.read_text() == "{}\n"
    assert link.is_symlink()
    # nothing else was written either: the refusal comes first
    agent = project / schemas.FILES["agent"]
    agent.write_text("{}\n")
    _refused(runner.invoke(app, ["schema", "--write", "-C", str(project)]), 2)
    assert agent.read_text() == "{}\n"


@pytest.mark.parametrize("args", [
    ["schema", "--kind", "bogus"],
    ["schema", "--crd", "--kind", "environment"],
    ["schema", "--write", "--kind", "project"],
    ["schema", "--json-schema", "--write"],
    ["schema", "--write", "-C", "{missing}"],
    ["schema", "--check", "-C", "{file}"],
])
def test_bad_input_is_a_usage_error_without_a_traceback(runner: CliRunner, tmp_path: Path,
                                                        args: list[str]) -> None:
    (tmp_path / "file").write_text("x")
    argv = [a.format(missing=tmp_path / "missing", file=tmp_path / "file") for a in args]
    result = runner.invoke(app, argv)
    _refused(result, 2)
    assert not (tmp_path / "missing").exists()


def test_an_unreadable_schema_file_is_a_clean_error(runner: CliRunner, project: Path) -> None:
    (project / "schemas").mkdir()
    (project / schemas.FILES["agent"]).mkdir()  # a folder where the file belongs
    result = runner.invoke(app, ["schema", "--write", "-C", str(project)])
    _refused(result, 2)
    assert os.path.isdir(project / schemas.FILES["agent"])
    assert not (project / schemas.FILES["environment"]).exists()


def test_write_refuses_a_directory_that_is_not_a_project(runner: CliRunner,
                                                         tmp_path: Path) -> None:
    result = runner.invoke(app, ["schema", "--write", "-C", str(tmp_path)])
    _refused(result, 2)
    assert "not an agentctl project" in result.output
    assert list(tmp_path.iterdir()) == []


def test_init_refuses_to_write_through_a_symlinked_schemas_folder(runner: CliRunner,
                                                                   tmp_path: Path) -> None:
    target, outside = tmp_path / "fleet", tmp_path / "outside"
    target.mkdir()
    outside.mkdir()
    (target / "schemas").symlink_to(outside, target_is_directory=True)
    result = runner.invoke(app, ["init", str(target), "--force"])
    _refused(result, 2)
    assert f"{target / 'schemas'}: is a symlink" in result.output
    assert list(outside.iterdir()) == []
    assert not (target / "agentctl.yaml").exists()  # all or nothing


@pytest.mark.parametrize(("file", "kind", "line"), [
    ("agentctl.yaml", "project", "# yaml-language-server: $schema=schemas/project.schema.json"),
    ("agents/x.yaml", "agent", "# yaml-language-server: $schema=../schemas/agent.schema.json"),
    ("deep/er/envs/prod.yaml", "environment",
     "# yaml-language-server: $schema=../../../schemas/environment.schema.json"),
])
def test_modeline_is_relative_to_the_file(file: str, kind: schemas.Kind, line: str) -> None:
    assert schemas.modeline(kind, file) == line
