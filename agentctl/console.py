"""The only writer to the terminal. Data goes to stdout (text, JSON or YAML); problems,
warnings and progress go to stderr, so `agentctl render > all.yaml` stays clean."""

from __future__ import annotations

import json
import os
import sys
import threading
from collections.abc import Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, TextIO

import yaml

from agentctl.errors import Problem

if TYPE_CHECKING:
    from rich.console import Console as RichConsole
    from rich.progress import Progress as RichProgress
    from rich.progress import TaskID

PROGRESS_DELAY = 1.0
"""Seconds before a progress display appears: a run that ends sooner (nothing to change, a
small fleet) never flashes one. A time, not an object count: ten objects can wait minutes."""


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


class Console:
    def __init__(self, fmt: str = "text", color: bool = True, verbose: bool = False) -> None:
        self.fmt = fmt
        self.verbose = verbose
        self.color = color
        self._console: RichConsole | None = None

    @property
    def _err(self) -> RichConsole:
        """stderr through rich, imported only when there is something to say."""
        if self._console is None:
            from rich.console import Console as RichConsole

            self._console = RichConsole(stderr=True, no_color=not self.color, highlight=False,
                                        soft_wrap=True)
        return self._console

    # -- stdout: the command's result -------------------------------------------------------
    def out(self, text: str) -> None:
        """Write raw text (a YAML stream, a diff) to stdout, byte for byte."""
        sys.stdout.write(text)
        sys.stdout.flush()

    def data(self, document: Any, text: str | None = None) -> None:
        """Write a result document as JSON or YAML per -o, or `text` for -o text."""
        if self.fmt == "json":
            self.out(json.dumps(document, indent=2, sort_keys=False) + "\n")
        elif self.fmt == "yaml":
            self.out(yaml.dump(document, Dumper=yaml.SafeDumper, sort_keys=False))
        elif text is not None:
            self.out(text if text.endswith("\n") or not text else text + "\n")

    # -- stderr: diagnostics --------------------------------------------------------------
    def problem(self, problem: Problem) -> None:
        self._err.print(_escape(str(problem)), style="red")

    def warning(self, problem: Problem) -> None:
        self._err.print(f"[yellow]warning[/]: {_escape(str(problem))}")

    def info(self, message: str) -> None:
        self._err.print(_escape(message))

    def debug(self, message: str) -> None:
        if self.verbose:
            self._err.print(_escape(message), style="dim")

    # -- stderr: progress -----------------------------------------------------------------
    def progress(self, environ: Mapping[str, str] = os.environ) -> Bar:
        """A progress display for a long run (`Bar`), shown on stderr only when `shows_progress`
        says so; otherwise one that never shows anything."""
        shown = shows_progress(self.fmt, sys.stderr, environ)
        return Bar(self._err if shown else None)


def shows_progress(fmt: str, stream: TextIO, environ: Mapping[str, str]) -> bool:
    """Whether a progress display belongs on `stream`: only for text output, on a terminal, and
    neither in CI (`CI` set, as every CI service does) nor on a dumb terminal."""
    if fmt != "text" or environ.get("CI", "").lower() not in ("", "0", "false"):
        return False
    if environ.get("TERM", "") in ("dumb", "unknown"):
        return False
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or closed
        return False


_PHASES = {"changes": "change set", "apply": "apply", "flip": "flip", "wait": "health wait",
           "prune": "prune"}


class Bar:
    """A run's progress (an `agentctl.cluster.progress.Progress`) as rich's progress bar on
    `console` (None: never shown): transient, so it is gone when the run ends and the report
    follows on a clean screen, and shown only `delay` seconds after the first phase of an
    environment began. Never while a run connects: a kubeconfig's exec credential plugin may
    be asking on the terminal for a code, which a redrawn bar would erase.

    Thread-safe: events come from the cluster stages' worker threads; the display refreshes
    on rich's own thread. Use as a context manager: the display stops on the way out."""

    def __init__(self, console: RichConsole | None, delay: float | None = None) -> None:
        self._console = console
        self._delay = PROGRESS_DELAY if delay is None else delay
        self._lock = threading.Lock()
        self._env = ""
        self._phase = ""
        self._total: int | None = None
        self._done = 0
        self._detail = ""
        self._progress: RichProgress | None = None
        self._task: TaskID | None = None
        self._timer: threading.Timer | None = None
        self._armed = 0
        """Which timer may show the display: one cancelled after it fired must not."""
        self._closed = False

    def __enter__(self) -> Bar:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.close()

    @property
    def shown(self) -> bool:
        with self._lock:
            return self._progress is not None

    # -- the events (agentctl.cluster.progress.Progress) ------------------------------------
    def environment(self, name: str, index: int = 1, count: int = 1) -> None:
        """The environment the next events are about (the `index`th of `count`)."""
        with self._lock:
            self._env = name if count == 1 else f"{name} ({index}/{count})"
            self._phase, self._total, self._done, self._detail = "", None, 0, ""
            self._hide()  # it connects next

    def phase(self, name: str, total: int | None) -> None:
        with self._lock:
            self._phase, self._total, self._done, self._detail = name, total, 0, ""
            if (self._console is not None and not self._closed and self._timer is None
                    and self._progress is None):
                self._armed += 1
                self._timer = threading.Timer(self._delay, self._show, args=(self._armed,))
                self._timer.daemon = True
                self._timer.start()
            self._render(reset=True)

    def stage(self, label: str) -> None:
        with self._lock:
            self._detail = label
            self._render()

    def advance(self, count: int = 1) -> None:
        with self._lock:
            self._done += count
            self._render()

    def waiting(self, healthy: int, total: int, slowest: str) -> None:
        with self._lock:
            self._total, self._done = total, healthy
            pending = total - healthy
            self._detail = f"{pending} waiting, slowest {slowest}" if slowest else ""
            self._render()

    # -- the display ------------------------------------------------------------------------
    def close(self) -> None:
        """Stop the display (erasing it) and never show it again."""
        with self._lock:
            self._closed = True
            self._hide()

    def _hide(self) -> None:
        """Erase the display, if shown, until a phase shows it again (the caller holds the
        lock)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._progress is not None:
            self._progress.stop()
            self._progress, self._task = None, None

    def _show(self, armed: int) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
        )
        from rich.table import Column

        with self._lock:
            if self._closed or self._console is None or armed != self._armed \
                    or self._timer is None:
                return
            # One line whatever the width: the detail (a long object name) gives way first.
            self._progress = Progress(
                SpinnerColumn(), TextColumn("{task.description}",
                                            table_column=Column(no_wrap=True)),
                BarColumn(bar_width=20), MofNCompleteColumn(), TimeElapsedColumn(),
                TextColumn("{task.fields[detail]}",
                           table_column=Column(no_wrap=True, overflow="ellipsis", ratio=1)),
                console=self._console, transient=True, expand=True, redirect_stdout=False,
                redirect_stderr=False, refresh_per_second=5)
            self._task = self._progress.add_task("", detail="")
            self._render(reset=True)
            self._progress.start()

    def _render(self, reset: bool = False) -> None:
        """Push the state to the display (the caller holds the lock)."""
        if self._progress is None or self._task is None:
            return
        description = " ".join(filter(None, (self._env, _PHASES.get(self._phase,
                                                                     self._phase))))
        total = self._total  # None: rich pulses the bar
        if reset:  # a new task: its total may be unknown, and its clock starts again
            self._progress.remove_task(self._task)
            self._task = self._progress.add_task(description, total=total,
                                                 completed=self._done, detail=self._detail)
        else:
            self._progress.update(self._task, total=total, completed=self._done,
                                  description=description, detail=self._detail)
