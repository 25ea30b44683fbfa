"""The only writer to the terminal. Data goes to stdout (text, JSON or YAML); problems,
warnings and progress go to stderr, so `agentctl render > all.yaml` stays clean."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any

import yaml

from agentctl.errors import Problem

if TYPE_CHECKING:
    from rich.console import Console as RichConsole


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
