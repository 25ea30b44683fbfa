"""ApplySet prune: members no longer rendered are deleted, after apply and health succeeded and
the lease was confirmed, in reverse kind order; every guard is checked again on a fresh read.

Inputs: the `DesiredEnv`, the run's change set (its deletions: `deleted`, or `skipped` with the
guard that keeps them, from `changes.compute`), the `Resources` and a `Client`.

- Refusals of the whole prune (`refuse_empty` before any request, `refuse_mass` right after the
  change set, so a refused run changes nothing): an empty render (`--allow-empty`), and more
  deletions than `--max-deletions` (default: 10, or 10 % of the set's members if larger).
- Per object, on a fresh GET: still a member (the ApplySet label), no ownerReferences, not
  annotated `agent.inferensys.com/prune: disabled`, and not a PersistentVolumeClaim, Namespace
  or CRD unless the environment lists that kind in `spec.pruneKinds` (`changes.kept`). A kept
  object loses its ApplySet label (a JSON patch that first tests the label is still ours) and
  is reported skipped, so the next run converges instead of keeping it forever.
- A delete carries the object's uid and resourceVersion as preconditions, so the guards hold
  for exactly the version deleted. A write in between (often a controller's status update)
  fails the delete with 409: the object is read and judged again, up to `ATTEMPTS` times. An
  object replaced since the first read (another uid), or changed every time, fails and stays
  in the set (the parent is not narrowed).
- With prune off (the environment's `prune: false`, or --no-prune) nothing here runs and the
  members stay in the set for a later run.
- After every deletion and label removal succeeded, `narrow` writes the parent's group-kinds and
  namespaces exactly as rendered (no write when they already are).

`dry_run` sends every DELETE and PATCH with `dryRun=All`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import groupby
from typing import Any

from agentctl.cluster import applying, changes, ownership
from agentctl.cluster.connecting import Client
from agentctl.cluster.discovering import Resources
from agentctl.cluster.progress import Progress, Silent
from agentctl.diffs import Change, Outcome, pointer
from agentctl.errors import ObjectsFailedError, Problem
from agentctl.manifests import LABEL_PART_OF, DesiredEnv

JSON_PATCH = "application/json-patch+json"
DEFAULT_MAX_DELETIONS = 10


@dataclass(frozen=True)
class Options:
    max_deletions: int | None = None
    """At most this many deletions in one run (None: 10, or 10 % of the members if larger)."""
    allow_empty: bool = False
    """Allow an empty render to prune every member."""
    dry_run: bool = False
    workers: int = 8


def deletions(planned: list[Change], desired: DesiredEnv) -> list[Change]:
    """The change set's members that are no longer rendered (deleted or skipped)."""
    rendered = {m.ref for m in desired.manifests}
    return [c for c in planned[1:] if c.after is None and c.ref not in rendered
            and c.outcome in (Outcome.DELETED, Outcome.SKIPPED)]


def limit(members: int, given: int | None) -> int:
    if given is not None:
        return given
    return max(DEFAULT_MAX_DELETIONS, members // 10)


def refuse_empty(desired: DesiredEnv, prune: bool, options: Options) -> None:
    """An empty render would prune the whole set: refused without --allow-empty."""
    if prune and not desired.manifests and not options.allow_empty:
        raise ObjectsFailedError([Problem(obj=f"environment {desired.env}", message=(
            "renders no objects, so pruning would delete every member of its ApplySet; "
            "refused (--allow-empty allows it, --no-prune keeps the members)"))])


def refuse_mass(planned: list[Change], desired: DesiredEnv, options: Options) -> None:
    """More deletions than the limit: the whole run is refused before anything is applied."""
    deleting = [c for c in deletions(planned, desired) if c.outcome == Outcome.DELETED]
    members = sum(1 for c in planned[1:] if c.outcome != Outcome.CREATED
                  and not (c.outcome == Outcome.FAILED and c.before is None))
    allowed = limit(members, options.max_deletions)
    if len(deleting) > allowed:
        how = ("--max-deletions" if options.max_deletions is not None else
               f"the default: {DEFAULT_MAX_DELETIONS}, or 10 % of the set's members")
        raise ObjectsFailedError([Problem(obj=f"environment {desired.env}", message=(
            f"would delete {len(deleting)} of its {members} members, more than {allowed} "
            f"({how}); refused, nothing was applied (raise --max-deletions if this is meant)"))])


def prune(client: Client, resources: Resources, desired: DesiredEnv, planned: list[Change],
          prune_on: bool, options: Options | None = None,
          check: Callable[[], None] = lambda: None,
          progress: Progress | None = None) -> bool:
    """Delete the deletions, release the kept ones from the set (the changes are updated in
    place); True when every one succeeded. `progress` hears the phase `prune`, each kind and
    each member done."""
    options = options or Options()
    progress = progress or Silent()
    if not prune_on:
        return True
    todo = sorted(deletions(planned, desired), key=lambda c: c.ref, reverse=True)
    progress.phase("prune", len(todo))

    def one(change: Change) -> bool:
        done = _one(client, resources, desired, change, options)
        progress.advance()
        return done

    ok = True
    with ThreadPoolExecutor(max_workers=max(1, options.workers)) as pool:
        for _, group in groupby(todo, key=lambda c: c.ref.rank):
            check()
            batch = list(group)
            progress.stage(", ".join(sorted({c.ref.kind for c in batch})))
            results = applying.bounded(pool, one, batch)
            ok = all(results) and ok
    return ok


ATTEMPTS = 3
"""Fresh reads and deletes of one member before a run gives up on it: a controller writing the
object's status between the read and the delete fails the resourceVersion precondition."""
PAUSE = 0.2
"""Seconds before the second attempt (twice that before the third)."""


def _one(client: Client, resources: Resources, desired: DesiredEnv, change: Change,
         options: Options) -> bool:
    resource = resources.get(change.api_version, change.ref.kind)
    if resource is None:
        change.outcome, change.reason = Outcome.FAILED, "its kind is no longer served"
        return False
    path = resource.path(change.ref.namespace, change.ref.name)
    uid = None
    for attempt in range(ATTEMPTS):
        if attempt:
            time.sleep(PAUSE * attempt)  # let the writer that beat the delete settle
        read = client.request("GET", path, purpose="GET prune")
        if read.status == 404:
            change.outcome, change.reason = Outcome.DELETED, "already gone"
            return True
        if not read.ok or not isinstance(read.body, dict):
            change.outcome, change.reason = Outcome.FAILED, f"cannot read it: {read.message}"
            return False
        meta = read.body.get("metadata") or {}
        if (meta.get("labels") or {}).get(LABEL_PART_OF) != desired.applyset:
            change.outcome, change.reason = Outcome.SKIPPED, "no longer a member of the ApplySet"
            return True
        if uid is not None and meta.get("uid") != uid:
            change.outcome, change.reason = Outcome.FAILED, (
                "replaced since it was read; it stays in the set for the next run")
            return False
        uid = meta.get("uid")
        guard = changes.kept(meta, resource.group, resource.kind, desired.prune_kinds)
        if guard:
            return _release(client, path, desired, change, guard, options)
        # the guards above hold for exactly this version: a write in between fails the delete
        # (409), and the next attempt reads and judges the object again
        body: dict[str, Any] = {"apiVersion": "v1", "kind": "DeleteOptions",
                                "propagationPolicy": "Background",
                                "preconditions": {"uid": uid,
                                                  "resourceVersion": meta.get("resourceVersion")}}
        query = [("dryRun", "All")] if options.dry_run else []
        if options.dry_run:
            body["dryRun"] = ["All"]
        answer = client.request("DELETE", path, query=query, body=body,
                                purpose="DELETE dryRun" if options.dry_run else "DELETE prune")
        if answer.ok or answer.status == 404:
            change.outcome, change.reason = Outcome.DELETED, ""
            return True
        if answer.status != 409:
            change.outcome, change.reason = Outcome.FAILED, f"delete failed: {answer.message}"
            return False
    change.outcome = Outcome.FAILED
    change.reason = (f"changed between each of {ATTEMPTS} reads and its delete; it stays in the "
                     "set for the next run")
    return False


def _release(client: Client, path: str, desired: DesiredEnv, change: Change, guard: str,
             options: Options) -> bool:
    """Drop the ApplySet label of a member kept by a guard, so it leaves the set."""
    label = pointer(("metadata", "labels", LABEL_PART_OF))
    query = [("fieldManager", ownership.MANAGER)]
    if options.dry_run:
        query.append(("dryRun", "All"))
    answer = client.request("PATCH", path, query=query, content_type=JSON_PATCH, body=[
        {"op": "test", "path": label, "value": desired.applyset},
        {"op": "remove", "path": label}],
        purpose="PATCH dryRun" if options.dry_run else "PATCH release")
    if answer.ok or answer.status == 422:  # 422: the test failed, it is no longer ours
        change.outcome = Outcome.SKIPPED
        change.reason = f"{guard}; kept, and released from the ApplySet"
        return True
    change.outcome = Outcome.FAILED
    change.reason = f"{guard}; kept, but its ApplySet label could not be removed: {answer.message}"
    return False


def narrow(client: Client, resources: Resources, desired: DesiredEnv, parent: Change,
           options: Options) -> bool:
    """Write the parent's group-kinds and namespaces exactly as rendered, once prune
    succeeded; no request when they already are. True when it is (or was) so."""
    kinds = {changes.group_kind(m.ref.group, m.ref.kind) for m in desired.manifests}
    exact = changes.parent_body(desired, kinds, {m.ref.namespace for m in desired.manifests})
    live = ((parent.after or parent.before or {}).get("metadata") or {}).get("annotations") or {}
    keys = (changes.APPLYSET_KINDS, changes.APPLYSET_NAMESPACES)
    if {k: live.get(k) for k in keys} == {k: exact["metadata"]["annotations"].get(k)
                                          for k in keys}:
        return True
    path = resources.require("v1", "ConfigMap").path(desired.namespace, desired.parent)
    answer = applying.send(client, path, exact, applying.Options(dry_run=options.dry_run))
    return answer.ok
