"""Staged server-side apply of a change set: exactly the objects it says are created or
configured (with --force-conflicts, the conflicting ones are configured too), nothing else.

Inputs: the environment's `DesiredEnv`, its change set (`changes.compute`, parent first), the
cluster's `Resources` and a `Client`. Order:

1. the ApplySet parent, before any member (its group-kinds and namespaces are the superset the
   change set computed, so a crash at any later point leaves every member findable); when it
   cannot be written, no member is applied;
2. stages: CustomResourceDefinitions (then each is waited for until Established),
   Namespaces, cluster-scoped RBAC, then the kinds of `manifests.RANK_ORDER`, one stage per
   kind; objects within a stage are applied concurrently in a bounded pool. Objects of a kind
   a CRD of the run defines (a pending resource) come after that CRD, and under --dry-run
   are reported created without a request (the CRD was only dry-run).

Every apply is a PATCH with `application/apply-patch+yaml`, field manager `agentctl` and
`fieldValidation=Strict` (`force=true` only with --force-conflicts; `dryRun=All` with
--dry-run). A failure fails that object only, with the reason `changes.apply_failure` gives: a
conflict names the other managers and their fields, an immutable field says the object must be
replaced (agentctl never deletes and re-creates on its own). Unchanged objects cause no request
at all. `check` runs before every stage: it raises when the run must stop (the lease was lost).
Objects in `hold` (a blue-green flip's or a canary step's, `slots.Plan.held`) are left to
`flipping`, which applies them in order afterwards. A workload whose only conflict is
`.spec.replicas` held by `agentctl-replicas` (an interrupted flip's) is settled
(`flipping.settle`): the field is taken back without forcing anything else.

Output: a copy of the change set whose applied objects are created or configured, or failed
with a reason.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from itertools import groupby
from typing import Any, TypeVar

from agentctl.cluster import changes, flipping, ownership, slots
from agentctl.cluster.connecting import APPLY_PATCH, Client, Response
from agentctl.cluster.discovering import CRD, Resources, defined
from agentctl.cluster.progress import Progress, Silent
from agentctl.diffs import Change, EnvChanges, Outcome
from agentctl.errors import ObjectsFailedError, Problem
from agentctl.manifests import DesiredEnv, Manifest, ObjectRef

APPLIED = frozenset({Outcome.CREATED, Outcome.CONFIGURED})
_CLUSTER_RBAC = frozenset({("rbac.authorization.k8s.io", "ClusterRole"),
                           ("rbac.authorization.k8s.io", "ClusterRoleBinding")})
_CRD_STAGE = (0, 0)
T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class Options:
    force_conflicts: bool = False
    """Take fields over from other managers (`force=true`)."""
    dry_run: bool = False
    """Send every apply with `dryRun=All`."""
    workers: int = 8
    """Concurrent requests within a stage."""
    established_timeout: float = 60.0
    """Seconds a CustomResourceDefinition may take to become Established."""


def stage(ref: ObjectRef) -> tuple[int, int]:
    """The stage an object is applied in: CRDs, Namespaces, cluster-scoped RBAC, then one
    stage per kind in RANK_ORDER (unknown kinds last)."""
    if (ref.group, ref.kind) == CRD:
        return _CRD_STAGE
    if (ref.group, ref.kind) == ("", "Namespace"):
        return (1, 0)
    if (ref.group, ref.kind) in _CLUSTER_RBAC:
        return (2, 0)
    return (3, ref.rank)


def bounded(pool: ThreadPoolExecutor, fn: Callable[[T], R], items: Iterable[T]) -> list[R]:
    """`fn` over `items` in `pool`, in order; on any exception (SIGTERM included) the requests
    not yet started are cancelled, so an interrupted run stops sending."""
    futures = [pool.submit(fn, item) for item in items]
    try:
        return [future.result() for future in futures]
    except BaseException:
        for future in futures:
            future.cancel()
        raise


def send(client: Client, path: str, body: dict[str, Any], options: Options) -> Response:
    """One server-side apply as agentctl sends it."""
    query = [("fieldManager", ownership.MANAGER), ("fieldValidation", "Strict")]
    if options.force_conflicts:
        query.append(("force", "true"))
    if options.dry_run:
        query.append(("dryRun", "All"))
    return client.request("PATCH", path, query=query, body=body, content_type=APPLY_PATCH,
                          purpose="PATCH dryRun" if options.dry_run else "PATCH apply")


def apply(client: Client, resources: Resources, desired: DesiredEnv, planned: EnvChanges,
          options: Options | None = None,
          check: Callable[[], None] = lambda: None,
          hold: Collection[ObjectRef] = (),
          progress: Progress | None = None) -> EnvChanges:
    """Apply the change set's created and configured objects but those in `hold`, parent
    first, stage by stage. Raises ObjectsFailedError (and applies no member) when the parent
    cannot be written. `progress` hears the phase `apply`, each stage's kinds and each
    object done."""
    options = options or Options()
    progress = progress or Silent()
    out = [replace(change) for change in planned.changes]
    _apply_parent(client, resources, desired, out[0], options)
    manifests = {m.ref: m for m in desired.manifests}
    todo = sorted((c for c in out[1:] if c.outcome in APPLIED and c.ref in manifests
                   and c.ref not in hold),
                  key=lambda c: (stage(c.ref), c.ref))
    progress.phase("apply", len(todo))
    outcomes = {change.ref: change for change in out}
    defining = {(r.group, r.kind): m.ref for m in desired.manifests for r in defined(m)}

    def one(change: Change) -> str:
        crd = defining.get((change.ref.group, change.ref.kind))
        resource = resources.get(change.api_version, change.ref.kind)
        if resource is not None and resource.pending and crd is not None \
                and outcomes[crd].outcome not in APPLIED:
            failure = f"its kind is defined by {crd}, which was not applied"
        else:
            failure = _apply_one(client, resources, manifests[change.ref], options)
            if not failure and resource is not None and resource.pending \
                    and not options.dry_run:
                change.reason = ""  # created after all: the plan's note no longer holds
        progress.advance()
        return failure

    with ThreadPoolExecutor(max_workers=max(1, options.workers)) as pool:
        for key, group in groupby(todo, key=lambda c: stage(c.ref)):
            check()
            batch = list(group)
            progress.stage(", ".join(sorted({c.ref.kind for c in batch})))
            failures = bounded(pool, one, batch)
            for change, failure in zip(batch, failures, strict=True):
                if failure:
                    change.outcome, change.reason = Outcome.FAILED, failure
            if key == _CRD_STAGE and not options.dry_run:
                for change in batch:
                    if change.outcome != Outcome.FAILED:
                        failure = _established(client, resources, manifests[change.ref],
                                               options.established_timeout, desired.namespace)
                        if failure:
                            change.outcome, change.reason = Outcome.FAILED, failure
    return replace(planned, changes=out)


def _apply_parent(client: Client, resources: Resources, desired: DesiredEnv, parent: Change,
                  options: Options) -> None:
    if parent.outcome == Outcome.FAILED:
        raise ObjectsFailedError([Problem(obj=str(parent.ref), message=(
            f"{parent.reason}; no member was applied"))])
    if parent.outcome not in APPLIED:
        return
    body = parent.after or changes.parent_body(desired, set(), set())
    response = send(client, resources.require("v1", "ConfigMap").path(
        desired.namespace, desired.parent), body, options)
    if not response.ok:
        why = changes.apply_failure(Manifest(body, "", "", ""), response)
        raise ObjectsFailedError([Problem(obj=str(parent.ref), message=(
            f"the ApplySet parent could not be written, so no member was applied: {why}"))])


def _apply_one(client: Client, resources: Resources, manifest: Manifest,
               options: Options) -> str:
    """Apply one object; "" when it succeeded, else why it failed."""
    resource = resources.require(manifest.api_version, manifest.ref.kind)
    if resource.pending and options.dry_run:
        return ""  # its CRD was only dry-run: the kind does not exist to dry-run against
    path = resource.path(manifest.ref.namespace, manifest.ref.name)
    response = send(client, path, manifest.body, options)
    if response.status == 409 and slots.handover(changes.conflicting(response)):
        response = flipping.settle(client, path, manifest, options.dry_run,
                                   options.force_conflicts)
    if response.ok:
        return ""
    why = changes.apply_failure(manifest, response)
    if resource.pending and response.status == 404 and not why.startswith("namespace "):
        return (f"{resource.kind}.{resource.group}/{resource.version} is not served: the "
                "CustomResourceDefinition of this run that defines it was not applied or did "
                "not become Established")
    return why


def _established(client: Client, resources: Resources, manifest: Manifest,
                 timeout: float, namespace: str) -> str:
    """Wait until a CRD is Established and each kind it defines that was not served before
    the run (a pending resource) answers at its collection; "" when it does, else why not."""
    path = resources.require(manifest.api_version, manifest.ref.kind).path("", manifest.ref.name)
    deadline = time.monotonic() + timeout
    while True:
        response = client.request("GET", path, purpose="GET wait")
        body = response.body if response.ok and isinstance(response.body, dict) else {}
        for condition in (body.get("status") or {}).get("conditions") or []:
            if condition.get("type") == "Established" and condition.get("status") == "True":
                return _serving(client, resources, manifest, namespace, deadline, timeout)
            if condition.get("type") == "NamesAccepted" and condition.get("status") == "False":
                return f"not Established: {condition.get('message') or 'names not accepted'}"
        if time.monotonic() >= deadline:
            return f"not Established after {timeout:.0f} s"
        time.sleep(0.5)


def _serving(client: Client, resources: Resources, manifest: Manifest, namespace: str,
             deadline: float, timeout: float) -> str:
    """Wait until the pending kinds `manifest` (an Established CRD) defines are served, read
    in the environment's `namespace` (where the reconciler may list them): a CRD that only
    now serves a version can be Established already, before the API server routes it."""
    for resource in defined(manifest):
        known = resources.get(resource.api_version, resource.kind)
        if known is None or not known.pending:
            continue
        while client.request("GET", known.collection(namespace), query=[("limit", "1")],
                             purpose="GET wait").status == 404:
            if time.monotonic() >= deadline:
                return (f"Established, but {known.plural}.{known.group}/{known.version} not "
                        f"served after {timeout:.0f} s")
            time.sleep(0.5)
    return ""
