"""The render core is pure: the same inputs give the same bytes for any hash seed, worker count,
chunking and call order, even when a template changes the data it is given; and no input makes
a command exit with anything but its contract's code (a bug is exit 70, never 1)."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agentctl.cli import app
from agentctl.errors import ExitCode
from agentctl.render import pipeline
from tests.conftest import REPO
from tests.hostile.projects import agent, blueprint, env, write_project

MUTATING = """\
{% do env.spec.defaults.update({"seen": env.spec.defaults.get("seen", "") ~ agent.metadata.name}) %}
{% do agent.spec.update({"touched": true}) %}
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ agent.metadata.name ~ "-cm" }}
data:
  seen: {{ env.spec.defaults.seen }}
  capabilities: {{ capabilities | join(",") }}
  first: {{ capabilities | first }}
"""

CAPABILITIES = ["monitoring.coreos.com/v1/ServiceMonitor", "keda.sh/v1alpha1/ScaledObject",
                "external-secrets.io/v1/ExternalSecret", "cilium.io/v2/CiliumNetworkPolicy",
                "gateway.networking.k8s.io/v1/HTTPRoute"]


def _fleet(root: Path, agents: int = 12) -> Path:
    files: dict[str, str | None] = {
        **blueprint(MUTATING),
        "environments/dev.yaml": env({"capabilities": CAPABILITIES}),
    }
    for i in range(agents):
        files[f"agents/a{i:02}.yaml"] = agent({"blueprint": "evil"}, name=f"a{i:02}")
    files["agents/x.yaml"] = None
    return write_project(root, files)


def test_templates_that_change_their_data_change_nothing_else(tmp_path: Path) -> None:
    """The environment's data used to be one dict shared by the agents of a Renderer: a
    template that changed it made an agent's output depend on the agents before it in its
    chunk, and so on the chunking and the worker count."""
    root = _fleet(tmp_path)
    serial = pipeline.stream(pipeline.render(root, ("dev",)))
    assert serial.count("seen: a") == 12
    for name in ("a00", "a05", "a11"):
        assert f"seen: {name}\n" in serial  # each agent sees only itself
    for workers, chunk in ((1, 1), (1, 5), (2, 1), (2, 5), (4, 3)):
        result = pipeline.render(root, ("dev",), workers=workers, chunk=chunk)
        assert pipeline.stream(result) == serial, (workers, chunk)
    assert pipeline.stream(pipeline.render(root, ("dev",))) == serial  # call order


PRINT = """
import sys
from pathlib import Path
from agentctl.render import pipeline
sys.stdout.write(pipeline.stream(pipeline.render(Path(sys.argv[1]), ("dev",),
                                                 workers=int(sys.argv[2]))))
"""


def test_output_is_identical_for_every_hash_seed(tmp_path: Path) -> None:
    """`capabilities` was a frozenset: its order in a template changed with PYTHONHASHSEED."""
    root = _fleet(tmp_path, agents=3)
    outputs = set()
    for seed in range(6):
        for workers in (1, 2):
            proc = subprocess.run([sys.executable, "-c", PRINT, str(root), str(workers)],
                                  capture_output=True, text=True, check=True, cwd=REPO,
                                  env={**os.environ, "PYTHONHASHSEED": str(seed)})
            outputs.add(proc.stdout)
    assert len(outputs) == 1
    (text,) = outputs
    assert f"first: {sorted(CAPABILITIES)[0]}" in text
    assert ",".join(sorted(CAPABILITIES)) in text


def test_the_example_fleet_is_identical_for_every_hash_seed_and_worker_count() -> None:
    outputs = set()
    for seed, workers in ((0, 1), (1, 2), (2, 4), (3, 1), (4, 2), (5, 4)):
        proc = subprocess.run(
            [sys.executable, "-m", "agentctl", "-C", str(REPO), "render", "--all-envs"],
            capture_output=True, text=True, check=True, cwd=REPO,
            env={**os.environ, "PYTHONHASHSEED": str(seed)})
        outputs.add(proc.stdout)
        outputs.add(pipeline.stream(pipeline.render(REPO, all_envs=True, workers=workers)))
    assert len(outputs) == 1


def _run(root: Path, *args: str) -> tuple[int, str, BaseException | None]:
    result = CliRunner().invoke(app, ["-C", str(root), *args])
    return result.exit_code, result.output, result.exception


def test_validate_in_an_empty_folder_exits_2_with_one_line(tmp_path: Path) -> None:
    """It died with ZeroDivisionError and exit 1 ("stale")."""
    for command in ("validate", "render"):
        code, output, exception = _run(tmp_path, command)
        assert code == 2, output
        assert isinstance(exception, SystemExit), exception
        assert len(output.strip().splitlines()) in (1, 2), output  # + "no environments dir"
        assert "environment" in output


def test_validate_with_no_valid_environment_exits_2(tmp_path: Path) -> None:
    root = write_project(tmp_path, {"environments/dev.yaml": "apiVersion: nope\nkind: Env\n"})
    code, output, exception = _run(root, "validate")
    assert code == 2, output
    assert isinstance(exception, SystemExit), exception
    assert "environments/dev.yaml:2:1: kind: expected kind Environment" in output


LABELS_LIST = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: x
  labels: [a]
"""


@pytest.mark.parametrize("metadata", [
    "  labels: [a]", "  annotations: {a: 1}", "  namespace: [x]", "  labels: a",
], ids=["labels-list", "annotation-number", "namespace-list", "labels-string"])
def test_a_blueprint_emitting_wrong_metadata_exits_2(tmp_path: Path, metadata: str) -> None:
    """`labels: [a]` gave a TypeError traceback and exit 1."""
    template = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n" + metadata + "\n"
    root = write_project(tmp_path, blueprint(template))
    for command in ("render", "validate"):
        code, output, exception = _run(root, command, "--env", "dev")
        assert code == 2, output
        assert isinstance(exception, SystemExit), exception
        assert "blueprints/evil/main.yaml.j2" in output


def test_an_unexpected_exception_is_an_internal_error_exit_70(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(pipeline, "render", broken)
    root = write_project(tmp_path, {})
    for verbose in ((), ("--verbose",)):
        result = CliRunner().invoke(app, ["-C", str(root), *verbose, "render", "--env", "dev"])
        assert result.exit_code == ExitCode.INTERNAL, result.output
        assert int(ExitCode.INTERNAL) == 70
        assert isinstance(result.exception, SystemExit), result.exception
        assert "internal error: ZeroDivisionError: division by zero" in result.output
        assert ("Traceback" in result.output) == bool(verbose)


def test_a_template_that_changes_a_dict_while_looping_over_it_exits_2(tmp_path: Path) -> None:
    """A RuntimeError raised by template code is the template's error, not agentctl's (exit 70
    before)."""
    template = ('{% set d = {"a": 1} %}{% for k in d %}{% do d.update({k ~ "x": 1}) %}'
                "{% endfor %}" + "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n")
    root = write_project(tmp_path, blueprint(template))
    code, output, exception = _run(root, "render", "--env", "dev")
    assert code == 2, output
    assert isinstance(exception, SystemExit), exception
    assert "dictionary changed size during iteration" in output


def test_a_render_from_another_thread_does_not_fork(tmp_path: Path) -> None:
    """Forking a process that runs other threads can deadlock the child: outside the main
    thread, even `workers=4` renders in the calling thread, with the same bytes."""
    from concurrent.futures import ThreadPoolExecutor

    root = _fleet(tmp_path)
    expected = pipeline.stream(pipeline.render(root, ("dev",)))
    children = set(multiprocessing.active_children())
    with ThreadPoolExecutor(max_workers=1) as pool:
        result = pool.submit(pipeline.render, root, ("dev",), workers=4, chunk=1).result()
    assert pipeline.stream(result) == expected
    assert all(m.text is None for m in result.manifests)  # formatted in a worker otherwise
    assert set(multiprocessing.active_children()) == children
