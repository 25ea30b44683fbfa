"""One reconcile of one environment: the only module that chains the cluster stages. Never prints.

Order (each step only after the previous one succeeded):

1. refusal of an empty render (before any request);
2. connect → the cluster's identity (before any other request) → discovery → preflight: every
   declared capability and every rendered kind served, or defined by a rendered
   CustomResourceDefinition (`Resources.defining`), else ClusterError (exit 3) naming each;
3. the environment's lease (`leasing`; a live holder → exit 5);
4. the change set (`changes.compute`, the one `agentctl diff` shows) → refusal of a mass
   deletion (before anything is applied);
5. staged server-side apply of its created and configured objects (`applying`), parent first;
   blue-green flips and canary steps (`slots.plan`) held back and applied in order after it
   (`flipping`: the new slot or the growing canary waited for before traffic or the other track
   moves);
6. the health wait of what was applied (`waiting`; not with --dry-run or --no-wait);
7. the lease confirmed, then the prune (`pruning`) and the parent narrowed — only when nothing
   failed: a failed or unhealthy object, or an interrupted run, never prunes;
8. the status of each rendered Agent object, where it changed, and the run's time on the
   ApplySet parent (`recording`; only when the environment renders Agent objects);
9. one Event on the ApplySet parent, then the lease is released (also on every error path).

With `install_crd`, the Agent CRD is applied (when it differs) and waited for until served right
after discovery, before the preflight (`installing`).

A `progress` (`progress.Progress`, given by the caller) hears the apply, the flips, the health
wait and the prune as they go; the stages call it, from their worker threads too.

Output: `Reconciled`, the change set with each object's final outcome. Nothing changes when
nothing differs: unchanged objects get no request, and the only writes are the lease's and the
Event.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentctl.cluster import (
    applying,
    changes,
    connecting,
    discovering,
    flipping,
    leasing,
    pruning,
    reading,
    recording,
    slots,
    waiting,
)
from agentctl.cluster.progress import Progress, Silent
from agentctl.diffs import EnvChanges, Outcome
from agentctl.errors import AgentctlError, ClusterError, Problem
from agentctl.manifests import MANAGED_BY, DesiredEnv

NOT_PRUNED = ("not pruned: the prune runs only after every object applied and became healthy "
              "(it stays in the set for the next run)")


@dataclass(frozen=True)
class Options:
    dry_run: bool = False
    prune: bool | None = None
    """Overrides the environment's `prune`."""
    wait: bool = True
    timeout: float = 300.0
    """Seconds the health wait may take."""
    force_conflicts: bool = False
    max_deletions: int | None = None
    allow_empty: bool = False
    full: bool = False
    allow_in_place: bool = False
    """Apply a change of a live active slot's pod template instead of refusing it."""
    workers: int = 8
    lease_seconds: int = leasing.DURATION
    install_crd: bool = False
    """Install (or update) the Agent CRD before the preflight."""


@dataclass
class Reconciled:
    changes: EnvChanges
    server: str
    context: str
    holder: str
    took_over: str = ""
    """The holder of the expired lease this run took over."""
    dry_run: bool = False
    pruned: bool = False
    """Whether the prune ran (and every deletion succeeded)."""
    seconds: float = 0.0
    sent: Counter[str] = field(default_factory=Counter)
    warnings: list[str] = field(default_factory=list)
    statuses: list[recording.Recorded] = field(default_factory=list)
    """Each rendered Agent's status after the run."""

    @property
    def failed(self) -> bool:
        return self.changes.failed


def preflight(resources: discovering.Resources, desired: DesiredEnv,
              capabilities: Iterable[str]) -> None:
    """Every declared capability and every rendered kind is served, else one ClusterError
    naming each missing API."""
    problems = []
    for capability in sorted(set(capabilities)):
        api_version, _, kind = capability.rpartition("/")
        if resources.get(api_version, kind) is None:
            problems.append(Problem(obj=f"environment {desired.env}", message=(
                f"declares capability {capability}, which the cluster does not serve (install "
                "its CRD, or remove it from the environment's capabilities)")))
    seen = set()
    for manifest in desired.manifests:
        key = (manifest.api_version, manifest.ref.kind)
        if key not in seen and resources.get(*key) is None:
            problems.append(Problem(obj=str(manifest.ref),
                                    message=discovering.missing(*key)))
        seen.add(key)
    if problems:
        raise ClusterError(problems)


def reconcile(desired: DesiredEnv, capabilities: Iterable[str] = (),
              kubeconfig: Path | None = None, context: str | None = None,
              options: Options | None = None,
              client: connecting.Client | None = None,
              progress: Progress | None = None) -> Reconciled:
    """Drive the environment's cluster to its desired state (see the module's order). A given
    `client` is used as is, and left open."""
    options = options or Options()
    progress = progress or Silent()
    started = time.monotonic()
    prune_on = desired.prune if options.prune is None else options.prune
    prune_options = pruning.Options(options.max_deletions, options.allow_empty,
                                    options.dry_run, options.workers)
    pruning.refuse_empty(desired, prune_on, prune_options)
    own = client is None
    if client is None:
        target = connecting.Target(kubeconfig, context, desired.context)
        client = connecting.connect(target, pool=options.workers * 2)
    try:
        connecting.check_identity(client, desired.env, desired.uid)
        resources = discovering.discover(client)
        if options.install_crd:
            from agentctl.cluster import installing  # the Agent model: only with --install-crd

            resources = installing.install(client, resources, options.dry_run,
                                           options.force_conflicts)
        resources = resources.defining(desired.manifests)
        preflight(resources, desired, capabilities)
        lease = leasing.Lease(client, desired.namespace, desired.parent, desired.env,
                              options.lease_seconds, options.dry_run)
        lease.acquire()
        result = Reconciled(EnvChanges(desired.env, desired.namespace, source=desired.source),
                            client.server, client.context, lease.holder, lease.took_over,
                            options.dry_run)
        try:
            _run(client, resources, desired, lease, prune_on, prune_options, options, result,
                 progress)
            lease.check()
            result.statuses, warnings = recording.record(
                client, resources, desired, result.changes, lease.server_now, options.dry_run)
            result.warnings += warnings
        except AgentctlError as err:
            _event(client, resources, desired, lease, options.dry_run, "Warning",
                   "ReconcileFailed", str(err).splitlines()[0])
            raise
        finally:
            warning = lease.release()
            if warning:
                result.warnings.append(warning)
        summary = ", ".join(f"{n} {o}" for o, n in result.changes.summary.items() if n)
        _event(client, resources, desired, lease, options.dry_run,
               "Warning" if result.failed else "Normal",
               "ReconcileFailed" if result.failed else "Reconciled",
               f"{'dry run: ' if options.dry_run else ''}{summary or 'no objects'}")
        result.seconds = time.monotonic() - started
        result.sent = Counter(client.sent)
        result.warnings += sorted(client.warnings)
        return result
    finally:
        if own:
            client.close()


def _run(client: connecting.Client, resources: discovering.Resources, desired: DesiredEnv,
         lease: leasing.Lease, prune_on: bool, prune_options: pruning.Options,
         options: Options, result: Reconciled, progress: Progress) -> None:
    progress.phase("changes", None)
    planned = changes.compute(client, resources, desired, changes.Options(
        full=options.full, force_conflicts=options.force_conflicts, prune=prune_on,
        workers=options.workers, allow_in_place=options.allow_in_place, dry_run_new=False))
    lease.check()
    pruning.refuse_mass(planned.changes, desired, prune_options)
    ordered = slots.plan(planned.changes, desired.manifests)
    applied = applying.apply(client, resources, desired, planned, applying.Options(
        force_conflicts=options.force_conflicts, dry_run=options.dry_run,
        workers=options.workers), check=lease.check, hold=ordered.held, progress=progress)
    flipping.run(client, resources, desired, applied, ordered, flipping.Options(
        dry_run=options.dry_run, force_conflicts=options.force_conflicts,
        timeout=options.timeout), check=lease.check, progress=progress)
    result.changes = applied
    work = applied.changes
    failed = applied.failed
    if not failed and options.wait and not options.dry_run:
        targets = [c for c in work[1:] if c.outcome in applying.APPLIED]
        progress.phase("wait", None)
        unhealthy = waiting.wait(client, resources, desired.applyset, targets,
                                 waiting.Options(timeout=options.timeout), check=lease.check,
                                 progress=progress)
        for change in work:
            if change.ref in unhealthy:
                change.outcome = Outcome.FAILED
                change.reason = f"applied, but not healthy: {unhealthy[change.ref]}"
        failed = bool(unhealthy)
    if failed:
        for change in pruning.deletions(work, desired):
            if change.outcome == Outcome.DELETED:
                change.outcome, change.reason = Outcome.SKIPPED, NOT_PRUNED
        return
    lease.confirm()
    pruned = pruning.prune(client, resources, desired, work, prune_on, prune_options,
                           check=lease.check, progress=progress)
    if pruned and prune_on \
            and not pruning.narrow(client, resources, desired, work[0], prune_options):
        result.warnings.append("the ApplySet parent's group-kinds and namespaces were not "
                                   "narrowed; the next run tries again")
    result.pruned = pruned and prune_on


def _event(client: connecting.Client, resources: discovering.Resources, desired: DesiredEnv,
           lease: leasing.Lease, dry_run: bool, kind: str, reason: str, message: str) -> None:
    """One Event on the ApplySet parent (best effort: a run's outcome never depends on it)."""
    try:
        parent = reading.get(client, resources.require("v1", "ConfigMap"), desired.namespace,
                             desired.parent)
        involved: dict[str, Any] = {"apiVersion": "v1", "kind": "ConfigMap",
                                    "name": desired.parent, "namespace": desired.namespace}
        uid = ((parent or {}).get("metadata") or {}).get("uid")
        if uid:
            involved["uid"] = uid
        now = lease.server_now().strftime("%Y-%m-%dT%H:%M:%SZ")
        body = {"apiVersion": "v1", "kind": "Event",
                "metadata": {"name": f"{desired.parent}.{uuid.uuid4().hex[:16]}",
                             "namespace": desired.namespace},
                "involvedObject": involved, "type": kind, "reason": reason,
                "message": message[:1000], "count": 1, "firstTimestamp": now,
                "lastTimestamp": now, "source": {"component": MANAGED_BY},
                "reportingComponent": MANAGED_BY, "reportingInstance": lease.holder[:128]}
        query = [("dryRun", "All")] if dry_run else []
        client.request("POST", f"/api/v1/namespaces/{desired.namespace}/events", query=query,
                       body=body, purpose="POST event")
    except AgentctlError:
        return
