"""`agentctl diff`: parses options, gets the desired state (committed tree, a render, or the
rendered difference from a git revision), asks the cluster half for each environment's change
set, formats it, and returns the exit code (0 no changes, 1 changes, 4 objects that would fail)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from agentctl.cli.handling import console_for, handled
from agentctl.cli.options import (
    AllEnvsOpt,
    ContextOpt,
    EnvOpt,
    KubeconfigOpt,
    NoColorOpt,
    OutputFormat,
    OutputOpt,
    ProjectOpt,
    RenderOpt,
    VerboseOpt,
    VerifyOpt,
    desired_source,
    globals_of,
)
from agentctl.console import Console
from agentctl.diffs import EnvChanges
from agentctl.errors import ExitCode, InputError, Problem

DIFF_HELP = """Show what applying the environment would change in its cluster.

The desired state is the committed tree (DIR/<env>/ checked against provenance.json and the
environment's policy); --render renders in-process instead, and --verify refuses a committed
tree that differs from a fresh render. Live members are read with one metadata LIST per kind
and namespace; an object whose digest annotation matches and whose applied fields nobody has
changed since is unchanged without further requests, every other object is a server-side
apply dry-run (field manager agentctl). Secret values are masked. With --base REF, the rendered
difference between a git revision and the working tree, without a cluster.

Exit: 0 no changes, 1 changes, 2 invalid input (nothing sent), 3 cluster unreachable,
forbidden or not the environment's, 4 some objects would fail (conflict, immutable field,
takeover refused).

Examples:

  agentctl diff --env prod

  agentctl diff --env dev --render -o json

  agentctl diff --base origin/main --all-envs -o markdown
"""


def diff(
    ctx: typer.Context,
    base: Annotated[str | None, typer.Option(
        "--base", help="Diff the rendered output of git revision REF against the working "
        "tree (no cluster).", metavar="REF", show_default=False)] = None,
    render: RenderOpt = False,
    verify: VerifyOpt = False,
    full: Annotated[bool, typer.Option(
        "--full", help="Dry-run every object (no digest shortcut).")] = False,
    force_conflicts: Annotated[bool, typer.Option(
        "--force-conflicts", help="Show the result of taking fields over from other "
        "managers instead of failing on conflicts.")] = False,
    allow_in_place: Annotated[bool, typer.Option(
        "--allow-in-place", help="Show the result of reconcile --allow-in-place: a change of "
        "a live active slot's pod template is not refused.")] = False,
    project: ProjectOpt = None,
    env: EnvOpt = None,
    all_envs: AllEnvsOpt = False,
    output: OutputOpt = None,
    no_color: NoColorOpt = False,
    verbose: VerboseOpt = False,
    context: ContextOpt = None,
    kubeconfig: KubeconfigOpt = None,
) -> ExitCode:
    from agentctl import reports

    g = globals_of(ctx, project=project, env=env, all_envs=all_envs, output=output,
                   no_color=no_color, verbose=verbose, context=context, kubeconfig=kubeconfig)
    console = console_for(ctx)
    source = desired_source(render, verify)
    if base is not None:
        if render or verify or full or force_conflicts or allow_in_place:
            raise InputError([Problem(field="--base", message=(
                "compares two renders without a cluster: --render, --verify, --full, "
                "--force-conflicts and --allow-in-place do not apply"))])
        from agentctl import revisions

        envs = revisions.diff_base(g.project_dir, base, g.env, g.all_envs)
    else:
        envs = _live(g.project_dir, g.env, g.all_envs, source, full, force_conflicts,
                     allow_in_place, g.kubeconfig, g.context, console)
    if g.output in (OutputFormat.json, OutputFormat.yaml):
        console.data(reports.document(envs))
    elif g.output == OutputFormat.markdown:
        console.out(reports.markdown(envs, title="agentctl diff" + (f" against {base}"
                                                                    if base else "")))
    else:
        color = not g.no_color and sys.stdout.isatty()
        console.out(reports.text(envs, color=color))
    if any(e.failed for e in envs):
        return ExitCode.FAILED
    return ExitCode.CHANGES if any(e.changed for e in envs) else ExitCode.OK


def _live(root: Path, env: tuple[str, ...], all_envs: bool, source: str, full: bool,
          force_conflicts: bool, allow_in_place: bool, kubeconfig: Path | None,
          context: str | None,
          console: Console) -> list[EnvChanges]:
    """Every selected environment's change set. All inputs are loaded and checked before the
    first request, so invalid input never reaches a cluster."""
    from agentctl.cluster import changes, planning
    from agentctl.render import pipeline

    desired = pipeline.desired(root, env, all_envs, source)
    for warning in desired.warnings:
        console.warning(warning)
    options = changes.Options(full=full, force_conflicts=force_conflicts,
                              allow_in_place=allow_in_place)
    out = []
    for environment in desired.envs:
        planned = planning.plan(environment, kubeconfig, context, options)
        for message in planned.warnings:
            console.warning(Problem(message=f"{planned.server}: {message}"))
        console.debug(f"{environment.env}: {planned.server} (context {planned.context}): "
                      + ", ".join(f"{n} {what}" for what, n in sorted(planned.sent.items())))
        out.append(planned.changes)
    return out


def register(app: typer.Typer) -> None:
    app.command("diff", help=DIFF_HELP)(handled(diff))
