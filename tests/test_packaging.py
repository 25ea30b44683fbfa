"""The README's first command on a fresh environment: `pip install .` gives a working
`agentctl` (the built-in blueprints ship inside the package, every runtime dependency is
declared) that renders the example fleet."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO


@pytest.mark.timeout(900)
def test_pip_install_renders_the_example_fleet(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    install = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet",
                              str(REPO)], capture_output=True, text=True, check=False)
    assert install.returncode == 0, install.stdout + install.stderr
    agentctl = venv / "bin" / "agentctl"
    # also as a kubectl plugin (`kubectl agentctl …`), the same entry point
    plugin = venv / "bin" / "kubectl-agentctl"
    assert plugin.is_file()
    assert subprocess.run([str(plugin), "--help"], capture_output=True, text=True,
                          check=False).stdout == subprocess.run(
        [str(agentctl), "--help"], capture_output=True, text=True, check=False).stdout
    result = subprocess.run([str(agentctl), "render", "--env", "dev"], cwd=REPO,
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    kinds = {doc["kind"] for doc in yaml.safe_load_all(result.stdout) if doc}
    assert {"Deployment", "StatefulSet", "Service", "ConfigMap"} <= kinds
    # Outside the repository only the packaged blueprints exist.
    scaffold = subprocess.run([str(agentctl), "init", str(tmp_path / "fresh")],
                              capture_output=True, text=True, check=False)
    assert scaffold.returncode == 0, scaffold.stderr
    fresh = subprocess.run([str(agentctl), "-C", str(tmp_path / "fresh"), "validate",
                            "--strict"], capture_output=True, text=True, check=False)
    assert fresh.returncode == 0, fresh.stderr
    # A problem leaves through the same entry point: exit code 2, one line, no traceback.
    unknown = subprocess.run([str(agentctl), "-C", str(tmp_path / "fresh"), "render", "--env",
                              "nope"], capture_output=True, text=True, check=False)
    assert unknown.returncode == 2
    assert unknown.stderr.splitlines() == ["unknown environment 'nope' (known: dev, prod, "
                                           "staging)"]
