"""The one place where errors become output and exit codes."""

from __future__ import annotations

import functools
import traceback
from collections.abc import Callable
from typing import ParamSpec, TypeVar, cast

import typer

from agentctl.cli.options import Globals
from agentctl.console import Console
from agentctl.errors import AgentctlError, ExitCode

P = ParamSpec("P")
R = TypeVar("R")


def console_for(ctx: typer.Context | None) -> Console:
    """The console the invocation's options ask for."""
    root = ctx.find_root().obj if ctx is not None else None
    g = root if isinstance(root, Globals) else Globals()
    return Console(fmt=g.output.value, color=not g.no_color, verbose=g.verbose)


def _context_of(values: tuple[object, ...]) -> typer.Context | None:
    """The command's context among its arguments (typer passes its click base class)."""
    for value in values:
        if hasattr(value, "find_root"):
            return cast("typer.Context", value)
    return None


def handled(fn: Callable[P, ExitCode | int | None]) -> Callable[P, None]:
    """Wrap a command: print every problem of an `AgentctlError` on its own line and exit with
    its code; any other exception is a bug: one `internal error` line and exit 70, never 1
    (which means "changes"). A traceback only with --verbose."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> None:
        ctx = _context_of((*args, *kwargs.values()))
        try:
            code = fn(*args, **kwargs)
        except AgentctlError as err:
            console = console_for(ctx)
            if console.verbose:
                console.debug("".join(traceback.format_exception(err)))
            for problem in err.problems:
                console.problem(problem)
            raise typer.Exit(int(err.exit_code)) from None
        except KeyboardInterrupt:
            raise typer.Exit(130) from None
        except Exception as err:
            if type(err).__module__.startswith("typer"):  # Exit, Abort, usage errors: typer's
                raise
            internal_error(err, console_for(ctx))
        if code:
            raise typer.Exit(int(code))

    return wrapper


def internal_error(err: BaseException, console: Console) -> None:
    """Report a bug in one line (the traceback with --verbose) and exit 70."""
    if console.verbose:
        console.debug("".join(traceback.format_exception(err)))
    console.info(f"internal error: {type(err).__name__}: {err} (a bug in agentctl; run with "
                 "--verbose for the traceback)")
    raise typer.Exit(int(ExitCode.INTERNAL)) from None
