"""The command line: Typer only. Each command parses options, calls one pipeline function,
hands the result to the console and returns an exit code. Errors are caught in `main` only."""

from __future__ import annotations

import typer

from agentctl.cli.options import (
    AllEnvsOpt,
    ContextOpt,
    EnvOpt,
    KubeconfigOpt,
    NoColorOpt,
    OutputOpt,
    ProjectOpt,
    VerboseOpt,
    globals_of,
)

app = typer.Typer(
    name="agentctl",
    help="GitOps for AI agents on Kubernetes: render, diff and reconcile Agent specs.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def _root(
    ctx: typer.Context,
    project: ProjectOpt = None,
    env: EnvOpt = None,
    all_envs: AllEnvsOpt = False,
    output: OutputOpt = None,
    no_color: NoColorOpt = False,
    verbose: VerboseOpt = False,
    context: ContextOpt = None,
    kubeconfig: KubeconfigOpt = None,
) -> None:
    """agentctl renders Agent specs through blueprints, per environment, into plain Kubernetes
    manifests, and diffs and reconciles them against a cluster.

    Examples:

        agentctl render --env dev

        agentctl render --all-envs --out rendered

        agentctl validate --strict
    """
    globals_of(ctx, project=project, env=env, all_envs=all_envs, output=output,
               no_color=no_color, verbose=verbose, context=context, kubeconfig=kubeconfig)


def _register() -> None:
    from agentctl.cli import commands, diffing, init, reconciling, rolling, sandbox, status

    commands.register(app)
    diffing.register(app)
    reconciling.register(app)
    status.register(app)
    rolling.register(app)
    init.register(app)
    sandbox.register(app)


_register()


def main() -> None:
    """Run the command line (the `agentctl` command runs it through `agentctl.__main__`)."""
    app(prog_name="agentctl")
