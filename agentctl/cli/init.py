"""`agentctl init [DIR]`: scaffold a working GitOps repository (agentctl.scaffolding writes the
files; this module only parses options and prints what was written and what to do next)."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Annotated

import typer

from agentctl.cli.handling import console_for, handled
from agentctl.cli.options import globals_of
from agentctl.errors import ExitCode

INIT_HELP = """Scaffold a working agentctl repository in DIR (default: the project directory).

Writes agentctl.yaml (the project is named after DIR), agents/example.yaml, environments
dev, staging and prod, a CI workflow that runs `agentctl validate --strict` and
`agentctl render --all-envs --check`, a pull-request workflow that posts the rendered
difference (`agentctl diff --base`) as one comment, .gitignore and README.md. Refuses to
overwrite existing files (exit 2 listing them) unless --force.

Examples:

  agentctl init my-agents

  agentctl init --force
"""


def init(
    ctx: typer.Context,
    directory: Annotated[Path | None, typer.Argument(
        metavar="DIR",
        help="Where to scaffold (created if missing).", show_default=False,
        file_okay=False)] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite existing files.")] = False,
) -> ExitCode:
    from agentctl import scaffolding

    g = globals_of(ctx)
    target = directory if directory is not None else g.project_dir
    console = console_for(ctx)
    written = scaffolding.scaffold(target, force=force)
    shown = [str(path) for path in written]
    console.data({"project": scaffolding.project_name(target), "directory": str(target),
                  "files": shown},
                 text="\n".join(f"created {path}" for path in shown))
    where = "" if directory is None else f"cd {shlex.quote(str(target))} && "
    console.info(f"next: {where}agentctl render --all-envs --out rendered, then commit "
                 "everything")
    return ExitCode.OK


def register(app: typer.Typer) -> None:
    app.command("init", help=INIT_HELP)(handled(init))
