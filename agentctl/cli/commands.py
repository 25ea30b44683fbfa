"""Offline commands: render, validate, schema, init. Each parses options, calls one pipeline
function and formats its result; heavy modules are imported inside the command."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from agentctl.cli.handling import console_for, handled
from agentctl.cli.options import (
    AllEnvsOpt,
    EnvOpt,
    NoColorOpt,
    OutputFormat,
    OutputOpt,
    ProjectOpt,
    VerboseOpt,
    globals_of,
)
from agentctl.errors import ExitCode

RENDER_HELP = """Render agents into Kubernetes manifests.

Without --out, prints one YAML stream. With --out DIR, writes DIR/<env>/<namespace>/<kind>-<name>.yaml
and DIR/<env>/provenance.json, deleting files it no longer produces. --check compares instead of
writing and exits 1 listing stale, missing and orphan files.

Examples:

  agentctl render --env dev

  agentctl render --all-envs --out rendered

  agentctl render --all-envs --check
"""


def render(
    ctx: typer.Context,
    out: Annotated[Path | None, typer.Option("--out", help="Write a tree under DIR.",
                                             file_okay=False, show_default=False)] = None,
    check: Annotated[bool, typer.Option("--check", help="Exit 1 if the tree is not up to date "
                                        "(DIR defaults to the project's output).")] = False,
    agent: Annotated[str | None, typer.Option("--agent", help="Render only this agent.",
                                              show_default=False)] = None,
    project: ProjectOpt = None,
    env: EnvOpt = None,
    all_envs: AllEnvsOpt = False,
    output: OutputOpt = None,
    no_color: NoColorOpt = False,
    verbose: VerboseOpt = False,
) -> ExitCode:
    from agentctl import pipeline, writing

    g = globals_of(ctx, project=project, env=env, all_envs=all_envs, output=output,
                   no_color=no_color, verbose=verbose)
    console = console_for(ctx)
    result = pipeline.render(g.project_dir, g.env, g.all_envs, agent)
    for warning in result.warnings:
        console.warning(warning)
    if check or out is not None:
        out_dir = out if out is not None else g.project_dir / result.inputs.project.spec.output
        if check:
            pipeline.check(result, out_dir)
            console.info(f"{out_dir}: up to date ({len(result.manifests)} objects)")
            return ExitCode.OK
        changed = pipeline.write(result, out_dir)
        console.info(f"{out_dir}: {len(result.manifests)} objects, {len(changed)} files changed")
        return ExitCode.OK
    if g.output == OutputFormat.json:
        console.data({"apiVersion": "v1", "kind": "List",
                      "items": [m.body for m in result.manifests]})
    else:
        console.out(writing.stream(result.manifests))
    return ExitCode.OK


def register(app: typer.Typer) -> None:
    app.command("render", help=RENDER_HELP)(handled(render))
