"""`agentctl rollout start | weight | promote | abort` and `agentctl promote`: edits of the
environment files (comments and layout kept), never of the cluster. Each prints the unified diff
of what it changed; --dry-run only prints it."""

from __future__ import annotations

import difflib
from typing import TYPE_CHECKING, Annotated

import typer

from agentctl.cli.handling import console_for, handled
from agentctl.cli.options import NoColorOpt, ProjectOpt, VerboseOpt, globals_of
from agentctl.errors import ExitCode, InputError, Problem

if TYPE_CHECKING:
    from pathlib import Path

    from agentctl.editing.rollouts import Change, Target

rollout_app = typer.Typer(help="Ship a new version to a canary or a preview slot by editing "
                          "the environment file (git is the source of truth).",
                          no_args_is_help=True)

AgentArg = Annotated[str, typer.Argument(help="The agent.", show_default=False)]
EnvOption = Annotated[str, typer.Option("--env", "-e", help="The environment to edit.",
                                        show_default=False)]
DryRunOpt = Annotated[bool, typer.Option("--dry-run", help="Print the diff, change nothing.")]


def _finish(ctx: typer.Context, changes: list[Change], t: Target, dry_run: bool) -> ExitCode:
    from agentctl.editing import rollouts

    result = rollouts.edit(t, changes)
    console = console_for(ctx)
    relative = str(result.path.relative_to(t.root))
    diff = "".join(difflib.unified_diff(result.before.splitlines(True),
                                        result.after.splitlines(True),
                                        f"a/{relative}", f"b/{relative}"))
    console.out(diff)
    if not diff:
        console.info(f"{relative}: already so, nothing to change")
    elif not dry_run:
        rollouts.write(result)
        console.info(f"{relative}: written; commit it and reconcile (or open a pull request)")
    return ExitCode.OK


def _target(ctx: typer.Context, agent: str, env: str, project: Path | None, no_color: bool,
            verbose: bool) -> Target:
    from agentctl.editing import rollouts

    g = globals_of(ctx, project=project, no_color=no_color, verbose=verbose)
    return rollouts.target(g.project_dir, env, agent)


def start(ctx: typer.Context, agent: AgentArg, env: EnvOption,
          sets: Annotated[list[str], typer.Option(
              "--set", help="path=value of the new version (repeatable): runtime.image=…, "
              "model.id=…", show_default=False)],
          weight: Annotated[int | None, typer.Option(
              "--weight", help="The canary's share of traffic, 0-100.", show_default=False)] = None,
          dry_run: DryRunOpt = False, project: ProjectOpt = None, no_color: NoColorOpt = False,
          verbose: VerboseOpt = False) -> ExitCode:
    """Start a canary (its patch and weight) or fill the inactive blue-green slot. The --set
    values become the track's whole patch: a patch left from an earlier start is replaced, not
    merged, so the track runs exactly the version named here."""
    from agentctl.editing import rollouts

    t = _target(ctx, agent, env, project, no_color, verbose)
    return _finish(ctx, rollouts.start(t, rollouts.parse_sets(sets), weight), t, dry_run)


def weight(ctx: typer.Context, agent: AgentArg, env: EnvOption,
           value: Annotated[int, typer.Argument(metavar="WEIGHT", help="0-100.")],
           dry_run: DryRunOpt = False, project: ProjectOpt = None, no_color: NoColorOpt = False,
           verbose: VerboseOpt = False) -> ExitCode:
    """Set the canary's share of traffic."""
    from agentctl.editing import rollouts

    t = _target(ctx, agent, env, project, no_color, verbose)
    return _finish(ctx, rollouts.weight(t, value), t, dry_run)


def promote_track(ctx: typer.Context, agent: AgentArg, env: EnvOption, dry_run: DryRunOpt = False,
                  project: ProjectOpt = None, no_color: NoColorOpt = False,
                  verbose: VerboseOpt = False) -> ExitCode:
    """Canary: the patch becomes the spec, weight 0. Blue-green: switch to the other slot."""
    from agentctl.editing import rollouts

    t = _target(ctx, agent, env, project, no_color, verbose)
    return _finish(ctx, rollouts.promote(t), t, dry_run)


def abort(ctx: typer.Context, agent: AgentArg, env: EnvOption, dry_run: DryRunOpt = False,
          project: ProjectOpt = None, no_color: NoColorOpt = False,
          verbose: VerboseOpt = False) -> ExitCode:
    """Canary: weight 0 and the patch gone. Blue-green: the inactive slot's version gone."""
    from agentctl.editing import rollouts

    t = _target(ctx, agent, env, project, no_color, verbose)
    return _finish(ctx, rollouts.abort(t), t, dry_run)


PROMOTE_HELP = """Copy an agent's version from one environment to another: the fields of its
effective spec in --from that differ in --to are written into --to's override (for a blue-green
agent, into its inactive slot). Without --only, every field a track may change (runtime, model,
instructions, tools, resources, sidecars, lifecycle).

Examples:

  agentctl promote code-review --from staging --to prod --only runtime.image,model.id
"""


def promote(ctx: typer.Context, agent: AgentArg,
            source: Annotated[str, typer.Option("--from", help="The environment promoted from.",
                                                show_default=False)],
            dest: Annotated[str, typer.Option("--to", help="The environment to edit.",
                                              show_default=False)],
            only: Annotated[str | None, typer.Option(
                "--only", help="Comma-separated field paths.", show_default=False)] = None,
            dry_run: DryRunOpt = False, project: ProjectOpt = None, no_color: NoColorOpt = False,
            verbose: VerboseOpt = False) -> ExitCode:
    from agentctl.editing import rollouts

    if source == dest:
        raise InputError([Problem(field="--to", message="--from and --to are the same")])
    src = _target(ctx, agent, source, project, no_color, verbose)
    dst = _target(ctx, agent, dest, project, no_color, verbose)
    paths = [p.strip() for p in only.split(",") if p.strip()] if only else None
    return _finish(ctx, rollouts.between(src, dst, paths), dst, dry_run)


def register(app: typer.Typer) -> None:
    rollout_app.command("start")(handled(start))
    rollout_app.command("weight")(handled(weight))
    rollout_app.command("promote")(handled(promote_track))
    rollout_app.command("abort")(handled(abort))
    app.add_typer(rollout_app, name="rollout")
    app.command("promote", help=PROMOTE_HELP)(handled(promote))
