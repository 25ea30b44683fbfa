"""`agentctl reconcile` on invalid input: exit 2, one line per problem, no traceback, and not one
connection reaches the server (a listening socket in the kubeconfig's place counts them).

Inputs: every class of the hostile corpus (tests/test_hostile.py, rendered with --render), a
damaged committed tree (edited, missing, resealed against the policy, stale with --verify), bad
options; and the refusal of an empty render, which is exit 4 before any request."""

from __future__ import annotations

import shutil
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner, Result

from agentctl.cli import app
from agentctl.cli.reconciling import duration
from agentctl.errors import InputError
from tests.hostile.projects import write_project
from tests.test_diff_engine import _reseal
from tests.test_hostile import CASES, Bad

ROOT = Path(__file__).resolve().parent.parent


class Listener:
    """A TCP socket that accepts (and counts) every connection, and answers nothing."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[Listener]:
    found = Listener()
    config = {"apiVersion": "v1", "kind": "Config", "current-context": "c",
              "clusters": [{"name": "c", "cluster": {
                  "server": f"https://127.0.0.1:{found.port}"}}],
              "users": [{"name": "u", "user": {"token": "t"}}],
              "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}]}
    (tmp_path / "kubeconfig").write_text(yaml.safe_dump(config))
    try:
        yield found
    finally:
        found.close()


def reconcile(root: Path, kubeconfig: Path, *args: str) -> Result:
    result = CliRunner().invoke(app, ["-C", str(root), "reconcile", "--env", "dev",
                                      "--kubeconfig", str(kubeconfig), "--context", "c", *args])
    assert isinstance(result.exception, SystemExit), result.exception
    return result


def _hostile() -> Iterator[Any]:
    for case in CASES:
        yield pytest.param(case, id=case.id, marks=case.marks)


@pytest.mark.parametrize("case", list(_hostile()))
def test_hostile_input_exits_2_and_sends_nothing(case: Bad, tmp_path: Path,
                                                 listener: Listener) -> None:
    root = tmp_path / "project"
    if case.id == "yaml-not-utf8":
        (root / "agents").mkdir(parents=True)
        (root / "agents" / "bin.yaml").write_bytes(b"kind: Agent\nname: \xff\xfe\n")
    write_project(root, dict(case.files))
    result = reconcile(root, tmp_path / "kubeconfig", "--render")
    assert result.exit_code == 2, result.output
    assert listener.connections == 0


@pytest.fixture
def committed(tmp_path: Path) -> Path:
    from agentctl.render import pipeline

    root = tmp_path / "project"
    root.mkdir()
    for name in ("agentctl.yaml", "agents", "environments"):
        source = ROOT / name
        (shutil.copytree if source.is_dir() else shutil.copy)(source, root / name)
    pipeline.write(pipeline.plan(pipeline.render(root, ("dev",)), root / "rendered"))
    return root


def _deployment(root: Path) -> Path:
    return next((root / "rendered" / "dev").glob("*/deployment-chat-assistant.yaml"))


def _edit(root: Path) -> list[str]:
    path = _deployment(root)
    path.write_text(path.read_text().replace("replicas: 1", "replicas: 5"))
    return []


def _remove(root: Path) -> list[str]:
    _deployment(root).unlink()
    return []


def _privileged(root: Path) -> list[str]:
    def edit(body: dict[str, Any]) -> None:
        body["spec"]["template"]["spec"]["containers"][0]["securityContext"] = {
            "privileged": True}

    _reseal(root, edit)
    return []


def _stale(root: Path) -> list[str]:
    agent = root / "agents" / "chat-assistant.yaml"
    agent.write_text(agent.read_text().replace("chat-agent:1.2.0", "chat-agent:1.3.0"))
    return ["--verify"]


@pytest.mark.parametrize("damage", [_edit, _remove, _privileged, _stale],
                         ids=["edited", "missing", "resealed-privileged", "stale-verify"])
def test_a_damaged_committed_tree_exits_2_and_sends_nothing(
        damage: Any, committed: Path, tmp_path: Path, listener: Listener) -> None:
    args = damage(committed)
    result = reconcile(committed, tmp_path / "kubeconfig", *args)
    assert result.exit_code == 2, result.output
    assert listener.connections == 0


@pytest.mark.parametrize("args", [["--timeout", "soon"], ["--timeout", "0s"],
                                  ["--render", "--verify"], ["-o", "markdown"],
                                  ["--max-deletions", "-1"]])
def test_bad_options_exit_2_and_send_nothing(args: list[str], committed: Path, tmp_path: Path,
                                             listener: Listener) -> None:
    result = reconcile(committed, tmp_path / "kubeconfig", *args)
    assert result.exit_code == 2, result.output
    assert listener.connections == 0


def test_an_empty_render_is_refused_before_any_request(committed: Path, tmp_path: Path,
                                                      listener: Listener) -> None:
    for path in [*(committed / "agents").glob("*.yaml"),
                 *(committed / "environments").glob("*.yaml")]:
        path.unlink()
    (committed / "environments" / "dev.yaml").write_text(
        "apiVersion: agentctl.inferensys.com/v1alpha1\nkind: Environment\n"
        "metadata: {name: dev}\nspec: {namespace: agents-dev}\n")
    result = reconcile(committed, tmp_path / "kubeconfig", "--render")
    assert result.exit_code == 4, result.output
    assert "renders no objects" in result.output
    assert "--allow-empty" in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
    assert listener.connections == 0
    # with --no-prune nothing would be deleted, so it goes on to the cluster
    result = reconcile(committed, tmp_path / "kubeconfig", "--render", "--no-prune")
    assert result.exit_code == 3, result.output
    assert listener.connections > 0


def test_the_listener_does_count(committed: Path, tmp_path: Path, listener: Listener) -> None:
    """The control: valid input does reach the (silent) server, and fails there with exit 3."""
    result = reconcile(committed, tmp_path / "kubeconfig")
    assert result.exit_code == 3, result.output
    assert listener.connections > 0


@pytest.mark.parametrize(("text", "seconds"), [("90", 90), ("90s", 90), ("5m", 300),
                                               ("1h30m", 5400), ("1.5s", 1.5)])
def test_durations(text: str, seconds: float) -> None:
    assert duration(text) == seconds


@pytest.mark.parametrize("text", ["", "m", "5x", "-1s", "0", "1d"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(InputError):
        duration(text)
