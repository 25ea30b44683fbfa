"""Shared fixtures for the offline tests: the repository's example project, a scratch copy of
it, and a CLI runner."""

from __future__ import annotations

import importlib.util
import shutil
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest
from typer.testing import CliRunner

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def example(tmp_path: Path) -> Path:
    """A scratch copy of the example fleet (agentctl.yaml, agents/, environments/)."""
    dest = tmp_path / "project"
    dest.mkdir()
    shutil.copy(REPO / "agentctl.yaml", dest / "agentctl.yaml")
    shutil.copytree(REPO / "agents", dest / "agents")
    shutil.copytree(REPO / "environments", dest / "environments")
    return dest


@pytest.fixture
def write() -> Callable[[Path, str], Path]:
    def _write(path: Path, text: str) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return path

    return _write


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--update-goldens", action="store_true", default=False,
                     help="Rewrite golden files from the current output (review the diff).")


@pytest.fixture
def update_goldens(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--update-goldens"))


def load_script(name: str) -> ModuleType:
    """A script of `scripts/` (not a package) as a module."""
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tree(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` by relative path."""
    return {str(p.relative_to(folder)): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}
