"""The one place where errors become output and exit codes."""

from __future__ import annotations

import functools
import gc
import importlib
import traceback
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import typer

from agentctl.cli.options import Globals, current
from agentctl.console import Console
from agentctl.errors import AgentctlError, ExitCode

P = ParamSpec("P")
R = TypeVar("R")


def started() -> None:
    """Start-up is over. If the process kept the cycle collector off until now (as the
    `agentctl` command does, see `agentctl.__main__`), what start-up built stays until exit:
    freeze it, so that collections never trace it, and turn the collector back on for the
    command's own work (a failed render, for one, leaves reference cycles)."""
    if not gc.isenabled():
        gc.freeze()
        gc.enable()


def console_for(ctx: typer.Context | None = None) -> Console:
    root = ctx.find_root().obj if ctx is not None else None
    g = root if isinstance(root, Globals) else current()
    return Console(fmt=g.output.value, color=not g.no_color, verbose=g.verbose)


def handled(fn: Callable[P, ExitCode | int | None],
            loads: tuple[str, ...] = ()) -> Callable[P, None]:
    """Wrap a command: print every problem of an `AgentctlError` on its own line, exit with its
    code, and show a traceback only with --verbose. `loads` names the modules the command
    imports, which are loaded before start-up ends (`started`)."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> None:
        for module in loads:
            importlib.import_module(module)
        started()
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
