"""The reconcile's progress display: rich's bar on a terminal's stderr, transient, shown only
after a delay, fed from worker threads; nothing at all for JSON or YAML output, off a terminal,
in CI or on a dumb terminal. The CLI test runs `agentctl reconcile` in-process with stderr on a
real pseudo-terminal, the cluster half replaced by one that only sends progress events."""

from __future__ import annotations

import io
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

import pytest
from rich.console import Console as RichConsole

from agentctl import console as console_module
from agentctl.cli import app
from agentctl.cluster import reconciling
from agentctl.console import Bar, Console, shows_progress
from agentctl.diffs import EnvChanges
from agentctl.manifests import DesiredEnv
from tests import ptys

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
ERASE_LINE = "\x1b[2K"


@pytest.fixture(autouse=True)
def _a_usual_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """rich reads TERM, NO_COLOR and COLUMNS itself: the tests' own shell must not matter."""
    monkeypatch.setenv("TERM", "xterm-256color")
    for name in ("NO_COLOR", "CI", "COLUMNS", "FORCE_COLOR", "TTY_COMPATIBLE"):
        monkeypatch.delenv(name, raising=False)


def _plain(text: str) -> str:
    return ANSI.sub("", text)


def _terminal() -> tuple[RichConsole, io.StringIO]:
    out = io.StringIO()
    return RichConsole(force_terminal=True, file=out, width=160, color_system=None), out


def _until(seen: Callable[[], str], wanted: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while wanted not in _plain(seen()):
        assert time.monotonic() < deadline, f"{wanted!r} never shown: {_plain(seen())!r}"
        time.sleep(0.02)


def _advance(bar: Bar, times: int) -> None:
    for _ in range(times):
        bar.advance()


def test_the_bar_shows_each_phase_with_its_counts_and_is_erased_at_the_end() -> None:
    terminal, out = _terminal()
    with Bar(terminal, delay=0) as bar:
        bar.environment("prod", 2, 3)
        bar.phase("changes", None)
        _until(out.getvalue, "prod (2/3) change set")
        _until(out.getvalue, "0/?")  # a number not known yet
        bar.phase("apply", 40)
        bar.stage("Deployment")
        workers = [threading.Thread(target=_advance, args=(bar, 5)) for _ in range(8)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        _until(out.getvalue, "prod (2/3) apply")
        _until(out.getvalue, "40/40")
        assert "Deployment" in _plain(out.getvalue())
        bar.phase("wait", None)
        bar.waiting(1, 4, "Deployment/agents-prod/support-bot-green: 0/2 replicas available")
        _until(out.getvalue, "prod (2/3) health wait")
        _until(out.getvalue, "1/4")
        _until(out.getvalue, "3 waiting, slowest Deployment/agents-prod/support-bot-green")
        bar.phase("prune", 0)
        _until(out.getvalue, "prod (2/3) prune")
        _until(out.getvalue, "0/0")  # nothing to prune is a known number
        bar.phase("prune", 2)
        bar.stage("ConfigMap")
        bar.advance(2)
        _until(out.getvalue, "2/2")
        assert bar.shown
    written = out.getvalue()
    assert written.rstrip("\r\n").endswith(ERASE_LINE)  # transient: the last thing is an erase
    before = len(written)
    bar.advance()  # after the run: nothing more is drawn
    time.sleep(0.3)
    assert len(out.getvalue()) == before


def test_thousands_of_advances_from_many_threads_are_all_counted() -> None:
    terminal, out = _terminal()
    with Bar(terminal, delay=0) as bar:
        bar.environment("dev")
        bar.phase("apply", 4000)
        workers = [threading.Thread(target=_advance, args=(bar, 500)) for _ in range(8)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        _until(out.getvalue, "4000/4000")


def test_a_run_shorter_than_the_delay_draws_nothing() -> None:
    terminal, out = _terminal()
    with Bar(terminal, delay=5.0) as bar:
        bar.environment("dev")
        bar.phase("apply", 3)
        bar.advance(3)
        time.sleep(0.2)
    assert not bar.shown
    assert out.getvalue() == ""


def test_nothing_is_drawn_while_an_environment_connects() -> None:
    """Connecting may run a kubeconfig's exec credential plugin that asks on the terminal (an
    MFA code): the bar waits for the first phase, and is erased when the next environment
    begins."""
    terminal, out = _terminal()
    with Bar(terminal, delay=0.05) as bar:
        bar.environment("dev", 1, 2)
        time.sleep(0.3)  # connecting: past the delay, yet no phase
        assert not bar.shown
        assert out.getvalue() == ""
        bar.phase("apply", 3)
        _until(out.getvalue, "apply")
        assert bar.shown
        bar.environment("prod", 2, 2)
        assert not bar.shown  # erased before prod connects
        time.sleep(0.3)
        assert not bar.shown
        bar.phase("apply", 5)
        _until(out.getvalue, "prod (2/2) apply")


@contextmanager
def _pty() -> Iterator[tuple[TextIO, Callable[[], str]]]:
    """A pseudo-terminal: the file its programs write to (a real TTY), and what it received."""
    master, slave = os.openpty()
    thread, received = ptys.reader(master)
    tty = os.fdopen(slave, "w", encoding="utf-8", buffering=1)
    try:
        yield tty, received
    finally:
        tty.close()
        thread.join(timeout=5)
        os.close(master)


@pytest.mark.parametrize(("fmt", "environ", "shown"), [
    ("text", {"TERM": "xterm-256color"}, True),
    ("text", {"TERM": "xterm", "NO_COLOR": "1"}, True),  # no colour, still a bar
    ("json", {"TERM": "xterm"}, False),
    ("yaml", {"TERM": "xterm"}, False),
    ("text", {"TERM": "xterm", "CI": "true"}, False),
    ("text", {"TERM": "dumb"}, False),
])
def test_only_text_output_on_a_real_terminal_outside_ci_shows_progress(
        fmt: str, environ: dict[str, str], shown: bool) -> None:
    with _pty() as (tty, _):
        assert shows_progress(fmt, tty, environ) is shown


def test_off_a_terminal_the_console_gives_a_bar_that_never_draws(
        capsys: pytest.CaptureFixture[str]) -> None:
    with Console(fmt="text").progress(environ={"TERM": "xterm"}) as bar:
        bar.environment("dev")
        bar.phase("apply", 2)
        bar.advance(2)
        time.sleep(console_module.PROGRESS_DELAY + 0.3)
    assert not bar.shown
    assert capsys.readouterr().err == ""


def _fake_reconcile(desired: DesiredEnv, *args: Any, progress: Any = None,
                    **kwargs: Any) -> reconciling.Reconciled:
    """The cluster half of a run, but only its progress events (what a slow apply sends)."""
    progress.phase("apply", 3)
    progress.stage("Deployment")
    for _ in range(3):
        progress.advance()
    time.sleep(0.6)  # a slow stage: the display (no delay here) draws it
    progress.phase("wait", None)
    progress.waiting(0, 1, f"Deployment/{desired.namespace}/slow-bot: 0/1 replicas available")
    time.sleep(0.6)
    return reconciling.Reconciled(EnvChanges(desired.env, desired.namespace,
                                             source=desired.source),
                                  "https://fake.invalid:6443", "fake", "agentctl@test")


def _reconcile(example: Path, monkeypatch: pytest.MonkeyPatch, stderr: TextIO,
               capsys: pytest.CaptureFixture[str], *args: str) -> str:
    """`agentctl reconcile --render --env dev …` with stderr on `stderr`; its stdout."""
    monkeypatch.setattr(console_module, "PROGRESS_DELAY", 0.0)
    monkeypatch.setattr(reconciling, "reconcile", _fake_reconcile)
    monkeypatch.setenv("TERM", "xterm")
    monkeypatch.setenv("COLUMNS", "160")  # the pseudo-terminal has no size of its own
    monkeypatch.delenv("CI", raising=False)
    capsys.readouterr()
    monkeypatch.setattr(sys, "stderr", stderr)
    app(["-C", str(example), "reconcile", "--render", "--env", "dev", *args],
        standalone_mode=False)
    monkeypatch.undo()
    return capsys.readouterr().out


def test_reconcile_on_a_terminal_shows_the_bar_then_the_report(
        example: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    with _pty() as (tty, received):
        stdout = _reconcile(example, monkeypatch, tty, capsys)
        _until(received, "dev health wait")
    shown = _plain(received())
    assert "dev apply" in shown
    assert "3/3" in shown
    assert "Deployment" in shown
    assert "slowest Deployment/agents-dev/slow-bot" in shown
    assert "ENVIRONMENT" in stdout
    assert "converged" in stdout
    assert "apply" not in stdout
    assert "waiting" not in stdout


@pytest.mark.parametrize("output", ["json", "yaml"])
def test_reconcile_with_json_or_yaml_output_draws_no_bar_even_on_a_terminal(
        example: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        output: str) -> None:
    with _pty() as (tty, received):
        stdout = _reconcile(example, monkeypatch, tty, capsys, "-o", output)
    assert "ReconcileReport" in stdout
    assert "apply" not in _plain(received())
    assert "waiting" not in _plain(received())


def test_reconcile_with_stderr_off_a_terminal_draws_no_bar(
        example: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    piped = io.StringIO()
    stdout = _reconcile(example, monkeypatch, piped, capsys)
    assert "converged" in stdout
    assert "apply" not in piped.getvalue()
    assert "waiting" not in piped.getvalue()


def test_the_health_wait_ranks_a_workload_by_how_far_its_rollout_is() -> None:
    from agentctl.cluster import waiting

    def deployment(available: int, updated: int) -> dict[str, Any]:
        return {"metadata": {"generation": 2}, "spec": {"replicas": 4},
                "status": {"observedGeneration": 2, "replicas": 4,
                           "availableReplicas": available, "updatedReplicas": updated}}

    behind = waiting.judge("Deployment", deployment(available=4, updated=1), [])
    ahead = waiting.judge("Deployment", deployment(available=3, updated=4), [])
    assert not behind.done
    assert not ahead.done
    assert (behind.share, ahead.share) == (0.25, 0.75)  # old replicas available do not count
    assert waiting.judge("Deployment", deployment(available=4, updated=4), []).done


@pytest.mark.parametrize("color", [True, False])
def test_no_color_draws_the_bar_without_colours(monkeypatch: pytest.MonkeyPatch,
                                                color: bool) -> None:
    colour = re.compile(r"\x1b\[[0-9;]*3[0-9][;m]")  # a foreground colour
    with _pty() as (tty, received):
        monkeypatch.setattr(sys, "stderr", tty)
        with Console(fmt="text", color=color).progress(environ={"TERM": "xterm"}) as bar:
            bar.environment("dev")
            bar.phase("apply", 2)
            bar.advance()
            _until(received, "dev apply", timeout=console_module.PROGRESS_DELAY + 10)
        monkeypatch.undo()
    assert bool(colour.search(received())) is color
