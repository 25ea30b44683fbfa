"""Byte-stable output: the example fleet's committed `rendered/` tree is the golden; rendering
twice, or from renamed, regrouped and reordered input files, yields the same bytes. Goldens are
rewritten only with `pytest --update-goldens` (then review the diff)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from agentctl.cli import app
from agentctl.errors import StaleOutputError
from agentctl.manifests import digest
from tests.conftest import REPO, tree


def _render(runner: CliRunner, project: Path, out: Path) -> None:
    result = runner.invoke(app, ["-C", str(project), "render", "--all-envs", "--out", str(out)])
    assert result.exit_code == 0, result.output


def test_example_fleet_matches_committed_goldens(runner: CliRunner, tmp_path: Path,
                                                 update_goldens: bool) -> None:
    if update_goldens:
        _render(runner, REPO, REPO / "rendered")
    _render(runner, REPO, tmp_path / "out")
    assert tree(tmp_path / "out") == tree(REPO / "rendered")


def test_rendering_twice_is_byte_identical(runner: CliRunner, example: Path,
                                           tmp_path: Path) -> None:
    _render(runner, example, tmp_path / "a")
    _render(runner, example, tmp_path / "b")
    _render(runner, example, tmp_path / "a")  # rewriting an existing tree changes nothing
    assert tree(tmp_path / "a") == tree(tmp_path / "b")


def _agent_documents(project: Path) -> list[str]:
    docs: list[str] = []
    for path in sorted((project / "agents").glob("*.yaml")):
        docs += [d for d in path.read_text().split("\n---\n") if d.strip()]
    return docs


def test_input_file_names_grouping_and_order_do_not_matter(runner: CliRunner, example: Path,
                                                           tmp_path: Path) -> None:
    # A second agent so that grouping and order have something to change.
    source = (example / "agents" / "chat-assistant.yaml").read_text()
    (example / "agents" / "zeta.yaml").write_text(
        source.replace("name: chat-assistant", "name: alpha-bot"))
    _render(runner, example, tmp_path / "before")

    regrouped = tmp_path / "regrouped"
    shutil.copytree(example, regrouped)
    shutil.rmtree(regrouped / "agents")
    (regrouped / "agents").mkdir()
    docs = _agent_documents(example)
    assert len(docs) == len(list((REPO / "agents").glob("*.yaml"))) + 1
    (regrouped / "agents" / "all-in-one.yml").write_text(
        "---\n" + "\n---\n".join(reversed(docs)) + "\n")
    _render(runner, regrouped, tmp_path / "after")
    assert tree(tmp_path / "after") == tree(tmp_path / "before")
    assert yaml.safe_load((tmp_path / "after" / "dev" / "provenance.json").read_text())[
        "environment"] == "dev"


def test_out_deletes_orphans_only_in_environments_it_wrote(runner: CliRunner, example: Path,
                                                           tmp_path: Path) -> None:
    """An agent removed from the project: its files go from the environment written, stay in
    the one not written; a foreign file stays everywhere."""
    out = tmp_path / "out"
    _render(runner, example, out)
    (out / "dev" / "agents-dev" / "deployment-mine.yaml").write_text("mine: true\n")
    (out / "elsewhere.txt").write_text("not ours\n")
    (example / "agents" / "research-memory.yaml").unlink()
    result = runner.invoke(app, ["-C", str(example), "render", "-e", "dev", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert not (out / "dev" / "agents-dev" / "service-research-memory.yaml").exists()
    assert (out / "staging" / "agents-staging" / "service-research-memory.yaml").exists()
    assert (out / "dev" / "agents-dev" / "deployment-mine.yaml").exists()
    assert "deployment-mine.yaml: foreign file" in result.output
    assert (out / "elsewhere.txt").exists()


def test_check_reports_stale_missing_and_orphan_files(runner: CliRunner, example: Path,
                                                      tmp_path: Path) -> None:
    out = tmp_path / "out"
    _render(runner, example, out)
    fresh = runner.invoke(app, ["-C", str(example), "render", "--all-envs", "--check",
                                "--out", str(out)])
    assert fresh.exit_code == 0, fresh.output

    folder = out / "staging" / "agents-staging"
    (folder / "service-chat-assistant.yaml").unlink()
    (folder / "foreign-thing.yaml").write_text("kind: Nothing\n")
    deployment = folder / "deployment-chat-assistant.yaml"
    deployment.write_text(deployment.read_text().replace("replicas: 1", "replicas: 2"))
    (example / "agents" / "gpu-inference.yaml").unlink()
    before = tree(out)
    result = runner.invoke(app, ["-C", str(example), "render", "--all-envs", "--check",
                                 "--out", str(out)])
    assert result.exit_code == 1, result.output
    assert "service-chat-assistant.yaml: missing" in result.output
    assert "deployment-gpu-inference.yaml: orphan" in result.output
    assert "foreign-thing.yaml: foreign file" in result.output
    assert "foreign-thing.yaml: orphan" not in result.output
    assert "deployment-chat-assistant.yaml: stale" in result.output
    assert tree(out) == before  # --check changes nothing


def test_check_defaults_to_the_projects_output(runner: CliRunner) -> None:
    result = runner.invoke(app, ["-C", str(REPO), "render", "--all-envs", "--check"])
    assert result.exit_code == 0, result.output


FEATURES = REPO / "tests" / "goldens" / "features"


def test_feature_goldens_in_every_environment(runner: CliRunner, tmp_path: Path,
                                              update_goldens: bool) -> None:
    """Blueprint features the example fleet does not use (every sidecar kind, pvc:// models,
    secret files, PodMonitor, auto-instrumentation…), in an environment with every optional API
    and in one with none (each capability falls back, with a warning)."""
    if update_goldens:
        _render(runner, FEATURES, FEATURES / "rendered")
    result = runner.invoke(app, ["-C", str(FEATURES), "render", "--all-envs", "--out",
                                 str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert tree(tmp_path / "out") == tree(FEATURES / "rendered")
    warnings = [line for line in result.output.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 3, result.output
    assert all("in environment bare" in w for w in warnings)


@pytest.mark.parametrize(("workers", "chunk"), [(3, None), (2, 1), (1, 2), (4, 3)])
def test_rendering_in_chunks_and_worker_processes_gives_the_same_bytes(
        example: Path, workers: int, chunk: int | None) -> None:
    """Large fleets render in chunks of agents, in worker processes; the result must not change:
    files, apply order, schema checks and warnings."""
    from agentctl.render import pipeline

    serial = pipeline.render(example, all_envs=True, checks=True)
    parallel = pipeline.render(example, all_envs=True, workers=workers, chunk=chunk, checks=True)
    assert pipeline.outputs(serial) == pipeline.outputs(parallel)
    assert [[m.ref for m in e.manifests] for e in serial.envs] == [
        [m.ref for m in e.manifests] for e in parallel.envs]
    assert serial.warnings == parallel.warnings
    assert serial.checked == parallel.checked > 0
    assert serial.skipped == parallel.skipped


def test_a_second_render_changes_exactly_what_was_changed_by_hand(example: Path,
                                                                    tmp_path: Path) -> None:
    """The tree that results is the golden; a second run rewrites exactly the stale and the
    missing file and deletes the file the previous render wrote that is no longer rendered,
    with the folder it emptied."""
    from agentctl.render import pipeline

    out = tmp_path / "out"

    def render() -> list[str]:
        return pipeline.write(pipeline.plan(
            pipeline.render(example, all_envs=True, workers=2, chunk=1), out))

    def check() -> list[str]:
        try:
            pipeline.check(pipeline.plan(pipeline.render(example, all_envs=True), out))
        except StaleOutputError as err:
            return [str(p) for p in err.problems]
        return []

    first = render()
    assert tree(out) == tree(REPO / "rendered")
    assert len(first) == len(tree(out))
    assert check() == []
    folder = out / "prod" / "agents-prod"
    (folder / "deployment-chat-assistant.yaml").write_text("edited: true\n")
    (folder / "service-chat-assistant.yaml").unlink()
    provenance = json.loads((out / "prod" / "provenance.json").read_text())
    orphan = {"apiVersion": "v1", "kind": "ConfigMap", "namespace": "gone-ns", "name": "x",
              "file": "gone-ns/configmap-x.yaml"}
    body: dict[str, object] = {"apiVersion": "v1", "kind": "ConfigMap",
                               "metadata": {"name": "x", "namespace": "gone-ns"}}
    orphan["digest"] = digest(body)
    provenance["objects"].append(orphan)
    (out / "prod" / "provenance.json").write_text(json.dumps(provenance))
    (out / "prod" / "gone-ns").mkdir()
    (out / "prod" / "gone-ns" / "configmap-x.yaml").write_text(yaml.safe_dump(body))
    stale = check()
    assert len(stale) == 4, stale
    assert any("deployment-chat-assistant.yaml: stale" in p for p in stale)
    assert any("service-chat-assistant.yaml: missing" in p for p in stale)
    assert any("provenance.json: stale" in p for p in stale)
    assert any("configmap-x.yaml: orphan" in p for p in stale)
    assert render() == ["prod/agents-prod/deployment-chat-assistant.yaml",
                        "prod/agents-prod/service-chat-assistant.yaml",
                        "prod/gone-ns/configmap-x.yaml", "prod/provenance.json"]
    assert not (out / "prod" / "gone-ns").exists()  # the folder it emptied goes too
    assert tree(out) == tree(REPO / "rendered")
    assert render() == []


@pytest.mark.parametrize("existing", [False, True], ids=["new-tree", "existing-tree"])
def test_a_failed_render_writes_nothing(runner: CliRunner, example: Path, tmp_path: Path,
                                        existing: bool) -> None:
    """One bad agent among many: the output tree is left exactly as it was (not even
    created)."""
    out = tmp_path / "out"
    if existing:
        _render(runner, example, out)
    before = tree(out) if existing else None
    bad = example / "agents" / "code-review.yaml"
    bad.write_text(bad.read_text().replace("replicas: 4", "replicas: -4", 1))
    assert "replicas: -4" in bad.read_text()
    result = runner.invoke(app, ["-C", str(example), "render", "--all-envs", "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)
    assert "code-review.yaml" in result.output
    if existing:
        assert tree(out) == before
        assert sorted(p.name for p in out.iterdir()) == ["dev", "prod", "staging"]
    else:
        assert not out.exists()


def test_the_stream_is_the_objects_in_apply_order_whoever_formats_them(example: Path) -> None:
    """`render` without --out joins the objects formatted in the workers in apply order: the
    same bytes as formatting them in this process."""
    from agentctl.render import formatting, pipeline

    objects = pipeline.render(example, all_envs=True, workers=1)
    expected = "".join("---\n" + formatting.libyaml_dump(m.body) for m in objects.manifests)
    assert expected.count("---\n") == objects.count
    for workers, chunk in ((1, None), (2, 1)):
        assert pipeline.stream(pipeline.render(example, all_envs=True, workers=workers,
                                               chunk=chunk)) == expected
