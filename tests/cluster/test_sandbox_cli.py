"""`agentctl sandbox up|down|status` and the build step's contract: exit 6 naming what to
install or set, prebuilt binaries from `$AGENTCTL_SANDBOX_BIN`, a warm cache that needs no Go."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from agentctl.cli import app
from agentctl.errors import ToolingError
from agentctl.sandbox import building, running

runner = CliRunner()


def _no_go_env(tmp_path: Path) -> dict[str, str | None]:
    empty = tmp_path / "empty-bin"
    empty.mkdir(exist_ok=True)
    return {"PATH": str(empty), "XDG_CACHE_HOME": str(tmp_path / "cache"),
            "XDG_STATE_HOME": str(tmp_path / "state"), building.BIN_ENV: None}


def test_up_without_go_or_prebuilt_binaries_exits_6(tmp_path: Path) -> None:
    result = runner.invoke(app, ["sandbox", "up"], env=_no_go_env(tmp_path))
    assert result.exit_code == 6, result.output
    assert "Go is not on PATH" in result.output
    assert building.BIN_ENV in result.output
    assert not (tmp_path / "state" / "agentctl" / "sandbox" / "agentctl").exists()


def test_build_step_without_go_exits_6(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    for key, value in _no_go_env(tmp_path).items():
        if value is None:
            monkeypatch.delenv(key, raising=False)
        else:
            monkeypatch.setenv(key, value)
    assert building.main([]) == 6
    assert "install Go" in capsys.readouterr().err


def test_prebuilt_dir_missing_binaries_exits_6(tmp_path: Path) -> None:
    prebuilt = tmp_path / "prebuilt"
    prebuilt.mkdir()
    env = {**_no_go_env(tmp_path), building.BIN_ENV: str(prebuilt)}
    result = runner.invoke(app, ["sandbox", "up"], env=env)
    assert result.exit_code == 6, result.output
    assert f"{building.BIN_ENV}={prebuilt} lacks" in result.output
    assert "kube-apiserver" in result.output


def test_binary_names_the_build_command_when_missing(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv(building.BIN_ENV, raising=False)
    with pytest.raises(ToolingError, match="--dev-tools"):
        building.binary("helm")
    with pytest.raises(ToolingError, match="unknown sandbox binary"):
        building.binary("docker")


@pytest.mark.cluster
def test_warm_cache_and_prebuilt_dir_need_no_go(binaries: dict[str, Path], tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no `go` reachable: a warm cache must not ask
    assert building.ensure() == binaries
    prebuilt = tmp_path / "prebuilt"
    prebuilt.mkdir()
    for name, path in binaries.items():
        (prebuilt / name).symlink_to(path)
    (prebuilt / "stages").symlink_to(building.stage_root())
    monkeypatch.setenv(building.BIN_ENV, str(prebuilt))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "empty-cache"))
    assert building.ensure() == {name: prebuilt / name for name in binaries}
    assert building.stage_root() == prebuilt / "stages"


@pytest.mark.cluster
def test_up_status_down(binaries: dict[str, Path], tmp_path: Path) -> None:
    env: dict[str, str | None] = {"XDG_STATE_HOME": str(tmp_path / "state")}
    root = tmp_path / "state" / "agentctl" / "sandbox" / "agentctl"
    try:
        up = runner.invoke(app, ["sandbox", "up"], env=env)
        assert up.exit_code == 0, up.output
        assert f"export KUBECONFIG={root / 'kubeconfig'}" in up.stdout
        status = runner.invoke(app, ["sandbox", "status"], env=env)
        assert status.exit_code == 0, status.output
        assert "'agentctl': ready" in status.stdout
        assert "kube-apiserver: running" in status.stdout
        again = runner.invoke(app, ["sandbox", "up"], env=env)
        assert again.exit_code == 0, again.output
        assert "already running" in again.output
        down = runner.invoke(app, ["sandbox", "down"], env=env)
        assert down.exit_code == 0, down.output
        assert running.processes(root) == []
        assert not root.exists()
        after = runner.invoke(app, ["sandbox", "status"], env=env)
        assert after.exit_code == 3, after.output
        assert "not running" in after.output
    finally:
        running.stop(root, binaries=binaries)
