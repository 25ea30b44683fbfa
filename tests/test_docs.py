"""The docs site: it builds with `mkdocs build --strict`, every page is in the nav, the generated
reference pages match the code, and the blueprint example in the docs really renders."""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
import typer.main
import yaml
from pydantic import BaseModel
from typer.testing import CliRunner

from agentctl import scaffolding
from agentctl.cli import app
from agentctl.errors import ExitCode
from agentctl.model.agent import Agent
from agentctl.model.environment import Environment, Project

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs"


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_reference",
                                                  REPO / "scripts" / "gen_reference.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_mkdocs_build_strict(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site"),
         "--config-file", str(REPO / "mkdocs.yml")],
        cwd=REPO, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    for page in ("index.html", "quickstart/index.html", "reference/agent/index.html",
                 "cli/index.html", "blueprints/index.html", "rendered-output/index.html"):
        assert (tmp_path / "site" / page).is_file(), page


def _nav_files(nav: list[object]) -> list[str]:
    found: list[str] = []
    for item in nav:
        values = item.values() if isinstance(item, dict) else [item]
        for value in values:
            if isinstance(value, list):
                found += _nav_files(value)
            elif isinstance(value, str):
                found.append(value)
    return found


def test_every_page_is_in_the_nav_and_every_nav_entry_exists() -> None:
    config = yaml.safe_load((REPO / "mkdocs.yml").read_text())
    nav = _nav_files(config["nav"])
    pages = sorted(str(p.relative_to(DOCS)) for p in DOCS.rglob("*.md"))
    assert sorted(nav) == pages


def test_reference_pages_are_up_to_date(capsys: pytest.CaptureFixture[str]) -> None:
    code = _generator().main(["--check"])
    assert code == 0, capsys.readouterr().err


def test_check_mode_reports_a_stale_page_and_writes_nothing(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]
                                                            ) -> None:
    gen = _generator()
    shutil.copytree(DOCS, tmp_path / "docs")
    page = tmp_path / "docs" / "reference" / "agent.md"
    page.write_text(page.read_text().replace("| `image` |", "| `imag` |"))
    (tmp_path / "docs" / "cli.md").unlink()
    monkeypatch.setattr(gen, "ROOT", tmp_path)
    assert gen.main(["--check"]) == 1
    err = capsys.readouterr().err
    assert "docs/reference/agent.md: out of date" in err
    assert "docs/cli.md: out of date" in err
    assert "docs/reference/environment.md" not in err
    assert "| `imag` |" in page.read_text()
    assert not (tmp_path / "docs" / "cli.md").exists()
    assert gen.main([]) == 0
    assert gen.main(["--check"]) == 0
    assert (tmp_path / "docs" / "cli.md").read_text() == (DOCS / "cli.md").read_text()


def _models(root: type[BaseModel]) -> list[type[BaseModel]]:
    gen = _generator()
    found, todo = [root], [root]
    while todo:
        model = todo.pop()
        for info in model.model_fields.values():
            nested, _ = gen._nested(info.annotation)
            if nested is not None and nested not in found:
                found.append(nested)
                todo.append(nested)
    return found


@pytest.mark.parametrize(("model", "page"), [
    (Agent, "reference/agent.md"),
    (Environment, "reference/environment.md"),
    (Project, "reference/project.md"),
])
def test_reference_documents_every_field(model: type[BaseModel], page: str) -> None:
    text = (DOCS / page).read_text()
    rows = set(re.findall(r"^\| `([^`]+)` \|", text, re.M))
    for nested in _models(model):
        for name, info in nested.model_fields.items():
            assert (info.alias or name) in rows, f"{nested.__name__}.{name}"
            if info.description:
                assert " ".join(info.description.split()).split(".")[0] in text, name


def test_reference_shows_defaults_from_factories() -> None:
    text = (DOCS / "reference" / "agent.md").read_text()
    assert "| `port` | integer | `8080` |" in text
    assert "`{cpu: 100m, memory: 384Mi}`" in text  # resources.requests
    assert "| `budgetSeconds` | integer | `600` |" in text  # lifecycle.probes.startup
    assert "| `runtime` | object ([`spec.runtime`](#spec-runtime)) | **required** |" in text


def test_cli_page_lists_every_command_and_exit_code() -> None:
    text = (DOCS / "cli.md").read_text()
    root = typer.main.get_command(app)

    def walk(command: object, path: str) -> None:
        assert f"\n## {path} " in text or f"\n### {path} " in text, path
        for name, sub in getattr(command, "commands", {}).items():
            walk(sub, f"{path} {name}")

    for name, command in getattr(root, "commands", {}).items():
        walk(command, f"agentctl {name}")
    for code in ExitCode:
        assert f"| {int(code)} | `{code.name}` |" in text


def test_blueprint_example_in_the_docs_renders(runner: CliRunner, tmp_path: Path) -> None:
    """The worker blueprint of docs/blueprints.md, written out file by file, renders and
    validates in a scaffolded repository, and fails exactly as the page says it does."""
    text = (DOCS / "blueprints.md").read_text()
    scaffolding.scaffold(tmp_path)
    written = []
    for block in re.findall(r"```(?:yaml|jinja)\n(.*?)```", text, re.S):
        match = re.match(r"(?:# |\{#- )(blueprints/\S+)", block)
        if match:
            path = tmp_path / match.group(1)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(block)
            written.append(match.group(1))
    assert sorted(written) == ["blueprints/worker/_helpers.j2",
                               "blueprints/worker/blueprint.yaml",
                               "blueprints/worker/deployment.yaml.j2"]
    (tmp_path / "agents" / "worker.yaml").write_text(
        "apiVersion: agent.inferensys.com/v1alpha1\nkind: Agent\nmetadata: {name: worker}\n"
        "spec:\n  blueprint: worker\n  runtime: {image: ghcr.io/example/worker:1.0.0}\n"
        "  model: {id: gpt-4o-mini}\n")
    result = runner.invoke(app, ["-C", str(tmp_path), "render", "--env", "dev", "--agent",
                                 "worker"])
    assert result.exit_code == 0, result.output
    body = yaml.safe_load(result.stdout)
    assert body["kind"] == "Deployment"
    assert body["spec"]["template"]["spec"]["containers"][0]["env"][1] == {
        "name": "LOG_LEVEL", "value": "debug"}
    result = runner.invoke(app, ["-C", str(tmp_path), "validate", "--strict"])
    assert result.exit_code == 0, result.output

    template = tmp_path / "blueprints" / "worker" / "deployment.yaml.j2"
    template.write_text(template.read_text().replace("spec.replicas }}", "spec.replica }}"))
    result = runner.invoke(app, ["-C", str(tmp_path), "render", "--env", "dev", "--agent",
                                 "worker"])
    assert result.exit_code == 2, result.output
    documented = re.search(r"^blueprints/worker/deployment\.yaml\.j2:\d+:\d+: .*$", text, re.M)
    assert documented is not None
    assert documented.group(0) in result.output
