"""`agentctl init [DIR]`: scaffold a working GitOps repository, or, with --cronjob/--ci, write
what runs reconcile for real into an existing one (agentctl.scaffolding and
agentctl.provisioning write the files; this module only parses options and prints what was
written and what to do next)."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Annotated

import typer

from agentctl.cli.handling import console_for, handled
from agentctl.cli.options import globals_of
from agentctl.errors import ExitCode

INIT_HELP = """Scaffold a working agentctl repository in DIR (default: the project directory),
or add what runs `agentctl reconcile` for real to an existing one.

Without --cronjob or --ci: writes agentctl.yaml (the project is named after DIR),
agents/example.yaml, environments dev, staging and prod, deploy/<env>/reconciler.yaml for each
(the CronJob mode, see below), the JSON Schemas in schemas/ (each agentctl file's first line
points editors at its schema), a CI workflow that runs `agentctl validate --strict`,
`agentctl render --all-envs --check` and `agentctl schema --check`, a pull-request workflow that
posts the rendered difference (`agentctl diff --base`) as one comment, .gitignore and README.md.

--cronjob ENV (repeatable), in an existing project: writes deploy/ENV/reconciler.yaml, to
apply with `kubectl apply --server-side -f`: a namespace of the reconciler's own (never one
the environment deploys into), a ServiceAccount there with least-privilege RBAC (exactly the
kinds the environment may render, in its policy's namespaces; its Lease and Events; the Agent
status; kube-system only with cluster.uid; the Agent CRD only with --install-crd), and a
CronJob (concurrencyPolicy Forbid, deadlines, restricted security context) whose pinned
git-sync init container clones --repo at --ref.

--ci ENV (repeatable): the same identity with a token Secret instead of the CronJob, and
.github/workflows/agentctl-reconcile.yaml, which reconciles the given environments in order on
pushes to main, each from the kubeconfig kept in GitHub Environment agentctl-ENV.

Refuses to overwrite existing files (exit 2 listing them) unless --force.

Examples:

  agentctl init my-agents

  agentctl init --cronjob prod --repo https://github.com/acme/agents.git --install-crd

  agentctl init --ci dev --ci prod --force
"""


def init(
    ctx: typer.Context,
    directory: Annotated[Path | None, typer.Argument(
        metavar="DIR",
        help="Where to scaffold (created if missing), or the existing project.",
        show_default=False, file_okay=False)] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite existing files.")] = False,
    cronjob: Annotated[list[str] | None, typer.Option(
        "--cronjob", metavar="ENV", help="Write deploy/ENV/reconciler.yaml with a CronJob "
        "(repeatable).", show_default=False)] = None,
    ci: Annotated[list[str] | None, typer.Option(
        "--ci", metavar="ENV", help="Write deploy/ENV/reconciler.yaml with a token Secret, and "
        "the reconcile workflow (repeatable).", show_default=False)] = None,
    repo: Annotated[str, typer.Option(
        "--repo", metavar="URL", help="The git repository the CronJob clones.")] = "",
    ref: Annotated[str, typer.Option("--ref", help="The branch, tag or commit it clones.")
                   ] = "main",
    path: Annotated[str, typer.Option(
        "--path", metavar="DIR", help="The project's folder inside the repository.")] = "",
    schedule: Annotated[str, typer.Option("--schedule", metavar="CRON",
                                          help="When the CronJob runs (UTC).")] = "*/5 * * * *",
    install_crd: Annotated[bool, typer.Option(
        "--install-crd", help="Reconcile with --install-crd (and allow it the Agent CRD).")
    ] = False,
    image: Annotated[str | None, typer.Option(
        "--image", help="The agentctl image (built from the Dockerfile).",
        show_default=False)] = None,
    git_sync_image: Annotated[str | None, typer.Option(
        "--git-sync-image", help="The git-sync image (pin it by digest if you can).",
        show_default=False)] = None,
    git_secret: Annotated[str, typer.Option(
        "--git-secret", metavar="NAME", help="Secret (keys username, password) in the "
        "reconciler's namespace for a private repository.")] = "",
    namespace: Annotated[str, typer.Option(
        "--namespace", help="The reconciler's own namespace.")] = "agentctl-system",
) -> ExitCode:
    from agentctl import provisioning, reconcilers, scaffolding

    g = globals_of(ctx)
    target = directory if directory is not None else g.project_dir
    console = console_for(ctx)
    options = provisioning.Options(repo, ref, path, schedule, install_crd,
                                   image or reconcilers.IMAGE,
                                   git_sync_image or reconcilers.GIT_SYNC_IMAGE, git_secret,
                                   namespace)
    document: dict[str, object] = {"directory": str(target)}
    if cronjob or ci:
        files, warnings = provisioning.for_project(target, cronjob or [], ci or [], options)
        for warning in warnings:
            console.warning(warning)
        written = scaffolding.write(target, files, force=force)
    else:
        written = scaffolding.scaffold(target, force=force, options=options)
        document["project"] = scaffolding.project_name(target)
    shown = [str(p) for p in written]
    document["files"] = shown
    console.data(document, text="\n".join(f"created {p}" for p in shown))
    where = "" if directory is None else f"cd {shlex.quote(str(target))} && "
    if cronjob or ci:
        first = (cronjob or ci or [""])[0]
        console.info(f"next: {where}kubectl apply --server-side -f "
                     f"{provisioning.deploy_file(first)}" + (
                         "" if repo or not cronjob else " (after setting --repo)"))
    else:
        console.info(f"next: {where}agentctl render --all-envs --out rendered, then commit "
                     "everything")
    if (cronjob or not ci) and not repo:
        console.info("the CronJob clones a placeholder repository: write it again with "
                     "--repo URL --force")
    return ExitCode.OK


def register(app: typer.Typer) -> None:
    app.command("init", help=INIT_HELP)(handled(init))
