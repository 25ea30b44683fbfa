"""`agentctl reconcile`: parses options, loads and checks every selected environment's desired
state (nothing is sent when any input is invalid), runs the cluster half's reconcile for each,
formats the outcomes and returns the exit code (0 converged, 4 objects failed; errors raise
with their own codes: 2 input, 3 cluster, 5 lease held). SIGTERM interrupts the run the way
Ctrl-C does, so the lease is released on the way out."""

from __future__ import annotations

import re
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import TYPE_CHECKING, Annotated, Any

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
from agentctl.errors import AgentctlError, ExitCode, InputError, Problem

if TYPE_CHECKING:
    from agentctl.cluster.reconciling import Reconciled

RECONCILE_HELP = """Drive each environment's cluster to its desired state, once, and report.

Inputs as for diff (the committed tree, --render, or --verify) → the cluster's identity → preflight
(every declared capability and rendered kind served, or defined by a rendered CRD) → the
environment's Lease → the change set diff shows → server-side apply (field manager agentctl) of
only what is created or configured, the ApplySet parent first, CRDs, Namespaces and cluster RBAC
before the rest → the health wait → prune of the members no longer rendered (only when everything
applied and became healthy; never objects with ownerReferences, annotated
agent.inferensys.com/prune: disabled, or PersistentVolumeClaims, Namespaces and CRDs unless the
environment lists their kind in spec.pruneKinds: those leave the set and are reported skipped) →
the status of each Agent object the environment renders (declared capability
agent.inferensys.com/v1alpha1/Agent), written only where it changed, and the run's time on the
ApplySet parent → one Event on the ApplySet parent → the Lease released. A run with nothing to
change writes nothing but its Lease and Event (and, with Agent objects, the run's time).
--install-crd applies the Agent CRD first (when it differs) and waits until it is served.

Exit: 0 converged, 2 invalid input (nothing sent), 3 cluster unreachable, forbidden, not the
environment's or missing a declared API, 4 some objects failed (apply error, conflict,
immutable field, refused prune, unhealthy, timed out), 5 another reconcile holds the lease.

Examples:

  agentctl reconcile --env dev

  agentctl reconcile --env prod --dry-run -o json

  agentctl reconcile --env dev --no-wait --max-deletions 40
"""

_DURATION = re.compile(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+(?:\.\d+)?)s?)?")


def duration(text: str) -> float:
    """`90`, `90s`, `5m`, `1h30m` → seconds; InputError otherwise."""
    match = _DURATION.fullmatch(text.strip())
    if not text.strip() or match is None or not any(match.groups()):
        raise InputError([Problem(field="--timeout", message=(
            f"{text!r} is not a duration (examples: 90s, 5m, 1h30m)"))])
    hours, minutes, seconds = match.groups()
    total = int(hours or 0) * 3600 + int(minutes or 0) * 60 + float(seconds or 0)
    if total <= 0:
        raise InputError([Problem(field="--timeout", message="must be more than zero")])
    return total


class Terminated(SystemExit):
    """SIGTERM: unwinds like Ctrl-C (every `finally` runs: the lease is released)."""


@contextmanager
def _sigterm_unwinds() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def terminate(signum: int, frame: FrameType | None) -> None:
        raise Terminated(128 + signal.SIGTERM)

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def reconcile(
    ctx: typer.Context,
    render: RenderOpt = False,
    verify: VerifyOpt = False,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Send every change with dryRun=All (deletes included): the server "
        "checks everything, nothing changes; no health wait.")] = False,
    prune: Annotated[bool | None, typer.Option(
        "--prune/--no-prune", help="Delete members no longer rendered (default: the "
        "environment's prune).", show_default=False)] = None,
    wait: Annotated[bool, typer.Option(
        "--wait/--no-wait", help="Wait until what was applied is healthy.")] = True,
    timeout: Annotated[str, typer.Option(
        "--timeout", help="How long the health wait may take (90s, 5m, 1h).",
        metavar="D")] = "5m",
    force_conflicts: Annotated[bool, typer.Option(
        "--force-conflicts", help="Take fields over from other field managers instead of "
        "failing those objects.")] = False,
    max_deletions: Annotated[int | None, typer.Option(
        "--max-deletions", min=0, help="Refuse to prune more objects than this in one run "
        "(default: 10, or 10 % of the set if larger).", metavar="N",
        show_default=False)] = None,
    allow_empty: Annotated[bool, typer.Option(
        "--allow-empty", help="Allow an environment that renders nothing to prune every "
        "member.")] = False,
    allow_in_place: Annotated[bool, typer.Option(
        "--allow-in-place", help="Apply a change of a blue-green agent's live active slot's "
        "pod template (rolling the pods that serve traffic) instead of refusing it.")] = False,
    full: Annotated[bool, typer.Option(
        "--full", help="Dry-run every object (no digest shortcut) when computing the "
        "changes.")] = False,
    install_crd: Annotated[bool, typer.Option(
        "--install-crd", help="Apply the Agent CRD first (when it differs) and wait until "
        "it is served.")] = False,
    project: ProjectOpt = None,
    env: EnvOpt = None,
    all_envs: AllEnvsOpt = False,
    output: OutputOpt = None,
    no_color: NoColorOpt = False,
    verbose: VerboseOpt = False,
    context: ContextOpt = None,
    kubeconfig: KubeconfigOpt = None,
) -> ExitCode:
    g = globals_of(ctx, project=project, env=env, all_envs=all_envs, output=output,
                   no_color=no_color, verbose=verbose, context=context, kubeconfig=kubeconfig)
    console = console_for(ctx)
    source = desired_source(render, verify)
    if g.output == OutputFormat.markdown:
        raise InputError([Problem(field="--output", message="markdown is diff's (a pull "
                                  "request comment); reconcile prints text, json or yaml")])
    seconds = duration(timeout)
    from agentctl.cluster import reconciling
    from agentctl.render import loading, merging, pipeline

    desired = pipeline.desired(g.project_dir, g.env, g.all_envs, source)
    for warning in desired.warnings:
        console.warning(warning)
    inputs = loading.load(g.project_dir, agents=False)  # the capabilities: no agent needed
    options = reconciling.Options(dry_run=dry_run, prune=prune, wait=wait, timeout=seconds,
                                  force_conflicts=force_conflicts, max_deletions=max_deletions,
                                  allow_empty=allow_empty, full=full,
                                  allow_in_place=allow_in_place,
                                  install_crd=install_crd)
    results: list[Reconciled] = []
    try:
        # The bar is gone (transient) before anything is reported, on every way out.
        with _sigterm_unwinds(), console.progress() as bar:
            for index, environment in enumerate(desired.envs, 1):
                capabilities = merging.environment_of(inputs, environment.env).spec.capabilities
                bar.environment(environment.env, index, len(desired.envs))
                result = reconciling.reconcile(environment, capabilities, g.kubeconfig,
                                               g.context, options, progress=bar)
                for message in result.warnings:
                    console.warning(Problem(message=f"{result.server}: {message}"))
                console.debug(f"{environment.env}: " + ", ".join(
                    f"{n} {what}" for what, n in sorted(result.sent.items())))
                results.append(result)
    except AgentctlError:
        _report(results, g.output, console_for(ctx))
        raise
    _report(results, g.output, console)
    return ExitCode.FAILED if any(r.failed for r in results) else ExitCode.OK


def _report(results: list[Reconciled], output: OutputFormat, console: Console) -> None:
    if not results:
        return
    if output in (OutputFormat.json, OutputFormat.yaml):
        console.data(document(results))
    else:
        console.out(text(results, color=console.color and sys.stdout.isatty()))


_COLUMNS = ("created", "configured", "unchanged", "deleted", "skipped", "failed")


def document(results: list[Reconciled]) -> dict[str, Any]:
    """`kind: ReconcileReport`: the diff report's shape (per environment its summary and one
    entry per object: outcome, paths, managers, reason), plus what the run did."""
    from agentctl import reports

    doc = reports.document([r.changes for r in results])
    doc["kind"] = "ReconcileReport"
    for env, result in zip(doc["environments"], results, strict=True):
        env.update({"server": result.server, "context": result.context,
                    "dryRun": result.dry_run, "converged": not result.failed,
                    "pruned": result.pruned, "seconds": round(result.seconds, 3),
                    "requests": dict(sorted(result.sent.items())),
                    "agents": [{"name": s.name, "namespace": s.namespace, "phase": s.phase,
                                "statusWritten": s.written} for s in result.statuses],
                    "lease": {"holder": result.holder, "tookOverFrom": result.took_over}})
    return doc


def text(results: list[Reconciled], color: bool = False) -> str:
    """Each object that changed, was kept or failed (unchanged ones are only counted), then a
    summary table with one row per environment."""
    def paint(line: str, code: str) -> str:
        return f"\x1b[{code}m{line}\x1b[0m" if color else line

    colours = {"created": "32", "configured": "33", "deleted": "31", "skipped": "36",
               "failed": "1;31"}
    out: list[str] = []
    for result in results:
        env = result.changes
        note = " — dry run, nothing was changed" if result.dry_run else ""
        out.append(paint(f"# {env.env} (namespace {env.namespace}, {env.source}) on "
                         f"{result.server}{note}", "1"))
        if result.took_over:
            out.append(f"took over the expired lease of {result.took_over}")
        for change in env.changes:
            word = change.outcome.value
            if word == "unchanged":
                continue
            line = f"{word:<10} {change.ref}" + (f": {change.reason}" if change.reason else "")
            out.append(paint(line, colours.get(word, "0")))
        if result.statuses:
            written = sum(1 for s in result.statuses if s.written)
            out.append(f"agent status ({written} written): " + ", ".join(
                f"{s.name} {s.phase or 'unknown'}" for s in result.statuses))
    rows = [("ENVIRONMENT", *(c.upper() for c in _COLUMNS), "RESULT")]
    for result in results:
        summary = result.changes.summary
        verdict = "failed" if result.failed else "converged"
        rows.append((result.changes.env, *(str(summary[c]) for c in _COLUMNS),
                     f"{verdict} in {result.seconds:.1f}s"
                     + (" (dry run)" if result.dry_run else "")))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    out += ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
            for row in rows]
    return "\n".join(out) + "\n"


def register(app: typer.Typer) -> None:
    app.command("reconcile", help=RECONCILE_HELP)(handled(reconcile))

