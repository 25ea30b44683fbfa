"""The only writer to the terminal. Data goes to stdout (text, JSON or YAML); problems,
warnings and progress go to stderr, so `agentctl render > all.yaml` stays clean."""

from __future__ import annotations

import json
import sys
from typing import Any

import yaml
from rich.console import Console as RichConsole
from rich.markup import escape

from agentctl.errors import Problem


class Console:
    def __init__(self, fmt: str = "text", color: bool = True, verbose: bool = False) -> None:
        self.fmt = fmt
        self.verbose = verbose
        no_color = not color
        self._err = RichConsole(stderr=True, no_color=no_color, highlight=False, soft_wrap=True)

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
        self._err.print(escape(str(problem)), style="red")

    def warning(self, problem: Problem) -> None:
        self._err.print(f"[yellow]warning[/]: {escape(str(problem))}")

    def info(self, message: str) -> None:
        self._err.print(escape(message))

    def debug(self, message: str) -> None:
        if self.verbose:
            self._err.print(escape(message), style="dim")
