"""The one place where errors become output and exit codes."""

from __future__ import annotations

import functools
import traceback
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import typer

from agentctl.cli.options import Globals, current
from agentctl.console import Console
from agentctl.errors import AgentctlError, ExitCode

P = ParamSpec("P")
R = TypeVar("R")


def console_for(ctx: typer.Context | None = None) -> Console:
    root = ctx.find_root().obj if ctx is not None else None
    g = root if isinstance(root, Globals) else current()
    return Console(fmt=g.output.value, color=not g.no_color, verbose=g.verbose)


def handled(fn: Callable[P, ExitCode | int | None]) -> Callable[P, None]:
    """Wrap a command: print every problem of an `AgentctlError` on its own line, exit with its
    code, and show a traceback only with --verbose."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> None:
        try:
            code = fn(*args, **kwargs)
        except AgentctlError as err:
            console = console_for()
            if console.verbose:
                console.debug("".join(traceback.format_exception(err)))
            for problem in err.problems:
                console.problem(problem)
            raise typer.Exit(int(err.exit_code)) from None
        except KeyboardInterrupt:
            raise typer.Exit(130) from None
        if code:
            raise typer.Exit(int(code))

    return wrapper
