"""`agentctl status`: each selected environment's agents as the cluster holds them (the Agent
objects' status that reconcile writes, the live workloads per track, the last reconcile), as a
table or `-o json|yaml`. Reads only; the environments come from their files (no render)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

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
    VerboseOpt,
    globals_of,
)
from agentctl.errors import ExitCode, InputError, Problem

if TYPE_CHECKING:
    from agentctl.cluster.inspecting import EnvState

STATUS_HELP = """Show each agent as the cluster holds it: phase, ready/desired replicas, active
slot or canary weight, when its rendered objects were last applied, and per track (TRACKS) its
runtime container's image, how many sidecars run beside it, and ready/desired replicas; then the
time and result of the environment's last reconcile. The JSON and YAML output list every
container's image.

The status is what `agentctl reconcile` wrote to the Agent objects (environments that declare
the capability agent.inferensys.com/v1alpha1/Agent render one per agent); the tracks are read
live. Reads only. Exit 0, 2 (invalid input, or no selected environment renders Agent objects),
3 (cluster unreachable, forbidden, or not serving the Agent CRD).

Examples:

  agentctl status --env prod

  agentctl status --all-envs -o json
"""


def status(
    ctx: typer.Context,
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
    if g.output == OutputFormat.markdown:
        raise InputError([Problem(field="--output", message="status prints text, json or "
                                  "yaml")])
    from agentctl.cluster import inspecting
    from agentctl.manifests import applyset_id, applyset_parent_name
    from agentctl.render import loading, pipeline, publishing

    inputs = loading.load(g.project_dir, agents=False)
    if inputs.problems:
        raise InputError(sorted(set(inputs.problems)))
    scopes = []
    for name in pipeline.select_envs(inputs, g.env, g.all_envs):
        spec = inputs.environments[name].environment.spec
        if not publishing.publishes(spec.capabilities):
            console.warning(Problem(obj=f"environment {name}", message=(
                "renders no Agent objects, so there is no status to show (declare capability "
                f"{publishing.AGENT_CAPABILITY})")))
            continue
        parent = applyset_parent_name(inputs.project.metadata.name, name)
        scopes.append(inspecting.Scope(
            name, spec.namespace, tuple(spec.policy.namespaces or [spec.namespace]),
            applyset_id(parent, spec.namespace), parent, spec.cluster.context,
            spec.cluster.uid))
    if not scopes:
        raise InputError([Problem(message=(
            "no selected environment renders Agent objects: add capability "
            f"{publishing.AGENT_CAPABILITY} to its capabilities, render, and reconcile with "
            "--install-crd"))])
    states = [inspecting.inspect(scope, g.kubeconfig, g.context) for scope in scopes]
    console.data(document(states), text(states))
    return ExitCode.OK


def _agent(agent: Any) -> dict[str, Any]:
    return {"name": agent.name, "namespace": agent.namespace, "status": agent.status,
            "tracks": [{"name": t.name, "kind": t.kind, "track": t.track,
                        "image": t.image, "sidecarImages": list(t.sidecars),
                        "images": list(t.images), "replicas": t.replicas,
                        "readyReplicas": t.ready, "availableReplicas": t.available}
                       for t in agent.tracks]}


def _track(track: Any) -> str:
    """`blue ghcr.io/x/bot:1.2 (+1 sidecar) 2/2`: the runtime's image only, so that two tracks
    still fit on a line; -o json has every container's."""
    sidecars = len(track.sidecars)
    more = f" (+{sidecars} sidecar{'s' if sidecars > 1 else ''})" if sidecars else ""
    return f"{track.track or track.name} {track.image or '-'}{more} {track.ready}/{track.replicas}"


def document(states: list[EnvState]) -> dict[str, Any]:
    """`kind: StatusReport`: per environment its last reconcile and each agent's status and
    tracks."""
    return {"apiVersion": "agentctl.inferensys.com/v1alpha1", "kind": "StatusReport",
            "environments": [{"environment": s.env, "namespace": s.namespace,
                              "server": s.server, "context": s.context,
                              "lastReconcileTime": s.last_run or None,
                              "lastReconcileResult": s.last_result or None,
                              "agents": [_agent(a) for a in s.agents]} for s in states]}


def _condition(status: dict[str, Any], kind: str) -> dict[str, Any]:
    for condition in status.get("conditions") or []:
        if isinstance(condition, dict) and condition.get("type") == kind:
            return condition
    return {}


def text(states: list[EnvState]) -> str:
    """One table per environment; under an agent that is not Ready, why."""
    out: list[str] = []
    for state in states:
        last = (f"last reconcile {state.last_run}, {state.last_result}" if state.last_run
                else "not reconciled with Agent status yet")
        out.append(f"# {state.env} (namespace {state.namespace}) on {state.server}: {last}")
        rows = [("AGENT", "PHASE", "READY", "SLOT/WEIGHT", "LAST APPLIED", "TRACKS")]
        notes: list[str] = []
        for agent in state.agents:
            s = agent.status
            slot = s.get("activeSlot") or (f"{s['canaryWeight']}%" if "canaryWeight" in s
                                           else "-")
            tracks = ", ".join(_track(t) for t in agent.tracks) or "-"
            ready = (f"{s.get('readyReplicas', 0)}/{s.get('replicas', 0)}" if s else "-")
            rows.append((agent.name, str(s.get("phase") or "-"), ready, str(slot),
                         str(s.get("lastAppliedTime") or "-"), tracks))
            if s.get("phase") not in (None, "Ready"):
                why = _condition(s, "Degraded") if s.get("phase") in ("Degraded", "Failed") \
                    else _condition(s, "Ready")
                notes.append(f"  {agent.name}: {why.get('message') or why.get('reason', '')}")
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        out += ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
                for row in rows]
        out += notes
    return "\n".join(out) + "\n"


def register(app: typer.Typer) -> None:
    app.command("status", help=STATUS_HELP)(handled(status))
