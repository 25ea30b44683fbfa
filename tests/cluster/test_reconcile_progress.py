"""`agentctl reconcile` on a terminal, against the sandbox cluster: a process of its own whose
stdout and stderr are a pseudo-terminal (as in an engineer's shell) shows the progress bar
while it applies and waits, erases it, and prints the usual report; the same run with stderr
piped prints no bar at all."""

from __future__ import annotations

import fcntl
import os
import re
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest

from tests import ptys

from . import reconciles
from .kube import Cluster

pytestmark = pytest.mark.cluster

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
ERASE_LINE = "\x1b[2K"
PHASE = re.compile(r"\bdev (change set|apply|flip|health wait|prune) ")


def _environ() -> dict[str, str]:
    environ = {k: v for k, v in os.environ.items() if k not in ("CI", "NO_COLOR", "COLUMNS")}
    return {**environ, "TERM": "xterm-256color"}


def _on_a_terminal(cluster: Cluster, project: Path, *args: str) -> tuple[int, str]:
    """Run `agentctl reconcile` with a 200-column pseudo-terminal as its stdout and stderr;
    its exit code and everything the terminal received."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 200, 0, 0))
    reader, received = ptys.reader(master)
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "agentctl", "-C", str(project), "reconcile", "--kubeconfig",
             str(cluster.kubeconfig), *args], cwd=reconciles.ROOT, stdin=subprocess.DEVNULL,
            stdout=slave, stderr=slave, env=_environ())
        os.close(slave)
        code = process.wait(timeout=600)
        reader.join(timeout=10)
    finally:
        os.close(master)
    return code, received()


def test_reconcile_on_a_terminal_shows_a_bar_then_the_report(
        cluster: Cluster, tmp_path: Path) -> None:
    with reconciles.dev_project(cluster, tmp_path) as (project, namespace):
        code, screen = _on_a_terminal(cluster, project, "--env", "dev")
        assert code == 0, screen
        plain = ANSI.sub("", screen)
        # the bar: a phase of the run (which ones last past the 1 s delay depends on the
        # machine) and its objects done of all
        assert PHASE.search(plain), plain
        assert re.search(r" \d+/(\d+|\?) ", plain), plain
        assert ERASE_LINE in screen  # erased (transient) …
        report = ANSI.sub("", screen.rsplit(ERASE_LINE, 1)[1])  # … before the report
        assert f"# dev (namespace {namespace}, committed)" in report, report
        assert "ENVIRONMENT" in report, report
        assert re.search(r"^dev .* converged in", report, re.M), report
        assert not PHASE.search(report), report

        # the same run, nothing to change, stderr piped: no bar, only the report on stdout
        piped = subprocess.run(
            [sys.executable, "-m", "agentctl", "-C", str(project), "reconcile",
             "--kubeconfig", str(cluster.kubeconfig), "--env", "dev"], cwd=reconciles.ROOT,
            capture_output=True, text=True, env=_environ(), timeout=600, check=False)
        assert piped.returncode == 0, piped.stderr
        assert "converged" in piped.stdout
        assert not PHASE.search(piped.stderr), piped.stderr
        assert "\x1b[" not in piped.stderr, piped.stderr
