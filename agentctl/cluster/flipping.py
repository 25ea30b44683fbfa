"""The ordered part of a run: blue-green flips and canary steps (`slots.Plan`), which the staged
apply leaves out (`applying.apply(hold=…)`) and this stage applies in order, after it.

A flip of an agent from slot O (serving now) to slot W:

1. W is scaled to O's live `spec.replicas`: a forced server-side apply of only that field, by
   the field manager `agentctl-replicas` (so it takes the field from whoever holds it, an
   autoscaler or agentctl, and nothing else); agentctl then applies W without `spec.replicas`
   (a new W is created first);
2. W is waited for until rolled out and Available, always (`--no-wait` skips only the final
   health wait). When it is not within `--timeout`, or fails, W fails naming the slot, and the
   Services, the autoscaler and O are not applied (skipped): traffic stays on O;
3. the Services are applied (they select W now), then the autoscaler (it targets W now);
4. O is settled (`settle`): `agentctl-replicas` forces its `spec.replicas` to the rendered
   value, agentctl applies O as rendered (sharing the field at the same value), and
   `agentctl-replicas` lets go of it. W is settled the same way when it renders `replicas`;
   when it is autoscaled, `agentctl-replicas` keeps W's replicas until the autoscaler writes
   them: server-side apply's documented transfer of ownership, so neither the autoscaler nor
   agentctl ever conflicts and the field is never reset to its default.

A canary step: the growing workloads are applied and waited for, then the shrinking ones (and
a route whose weights move to the canary); a canary that never becomes healthy leaves the
stable track as it was.

With `--dry-run` every request carries `dryRun=All` and nothing is waited for; a settle is one
forced dry-run apply (a dry run leaves no owner behind to share the field with). `check` runs
before every step (it raises when the lease was lost); `progress` hears the phase `flip` and
the wait for the new slots and growing canaries.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from agentctl.cluster import changes, ownership, reading, slots, waiting
from agentctl.cluster.connecting import APPLY_PATCH, Client, Response
from agentctl.cluster.discovering import Resources
from agentctl.cluster.progress import Progress, Silent
from agentctl.diffs import Change, EnvChanges, Outcome
from agentctl.manifests import DesiredEnv, Manifest, ObjectRef


@dataclass(frozen=True)
class Options:
    dry_run: bool = False
    force_conflicts: bool = False
    """agentctl's own applies take fields over (`--force-conflicts`)."""
    timeout: float = 300.0
    """Seconds a new slot or a growing canary may take to become healthy."""
    interval: float = 1.0


def _send(client: Client, path: str, body: dict[str, Any], manager: str, force: bool,
          dry_run: bool) -> Response:
    query = [("fieldManager", manager), ("fieldValidation", "Strict")]
    if force:
        query.append(("force", "true"))
    if dry_run:
        query.append(("dryRun", "All"))
    purpose = "PATCH dryRun" if dry_run else (
        "PATCH apply" if manager == ownership.MANAGER else f"PATCH apply {manager}")
    return client.request("PATCH", path, query=query, body=body, content_type=APPLY_PATCH,
                          purpose=purpose)


def _identity(manifest: Manifest) -> dict[str, Any]:
    return {"apiVersion": manifest.api_version, "kind": manifest.ref.kind,
            "metadata": {"name": manifest.ref.name, "namespace": manifest.ref.namespace}}


def _replicas(body: dict[str, Any] | None) -> int | None:
    value = ((body or {}).get("spec") or {}).get("replicas")
    return value if isinstance(value, int) else None


def scale(client: Client, path: str, manifest: Manifest, replicas: int,
          dry_run: bool) -> Response:
    """`spec.replicas` only, forced, as `agentctl-replicas`."""
    body = _identity(manifest)
    body["spec"] = {"replicas": replicas}
    return _send(client, path, body, slots.REPLICAS_MANAGER, True, dry_run)


def settle(client: Client, path: str, manifest: Manifest, dry_run: bool = False,
           force: bool = False) -> Response:
    """agentctl's apply of a workload whose `spec.replicas` another manager holds: taken to
    the rendered value by `agentctl-replicas`, applied by agentctl, let go of by
    `agentctl-replicas` (the field stays: agentctl holds it at the same value)."""
    replicas = _replicas(manifest.body)
    if dry_run:
        return _send(client, path, manifest.body, ownership.MANAGER, True, True)
    if replicas is not None:
        taken = scale(client, path, manifest, replicas, False)
        if not taken.ok:
            return taken
    applied = _send(client, path, manifest.body, ownership.MANAGER, force, False)
    if applied.ok and replicas is not None:
        # Best effort: a manager still sharing the field at agentctl's value changes nothing.
        _send(client, path, _identity(manifest), slots.REPLICAS_MANAGER, False, False)
    return applied


@dataclass
class _Run:
    client: Client
    resources: Resources
    manifests: dict[ObjectRef, Manifest]
    by_ref: dict[ObjectRef, Change]
    options: Options

    def path(self, ref: ObjectRef) -> str:
        manifest = self.manifests[ref]
        return self.resources.require(manifest.api_version, ref.kind).path(ref.namespace,
                                                                           ref.name)

    def fail(self, ref: ObjectRef, response: Response) -> str:
        reason = changes.apply_failure(self.manifests[ref], response)
        self.by_ref[ref].outcome, self.by_ref[ref].reason = Outcome.FAILED, reason
        return reason

    def apply(self, ref: ObjectRef, body: dict[str, Any] | None = None) -> bool:
        """agentctl's apply of `ref` (its rendered body unless given); False when it failed."""
        response = _send(self.client, self.path(ref), body or self.manifests[ref].body,
                         ownership.MANAGER, self.options.force_conflicts, self.options.dry_run)
        return response.ok or not self.fail(ref, response)

    def settle(self, ref: ObjectRef) -> bool:
        response = settle(self.client, self.path(ref), self.manifests[ref],
                          self.options.dry_run, self.options.force_conflicts)
        return response.ok or not self.fail(ref, response)

    def skip(self, refs: tuple[ObjectRef, ...], reason: str) -> None:
        for ref in refs:
            change = self.by_ref[ref]
            if change.outcome in slots.APPLIED:
                change.outcome, change.reason = Outcome.SKIPPED, reason


def run(client: Client, resources: Resources, desired: DesiredEnv, applied: EnvChanges,
        plan: slots.Plan, options: Options | None = None,
        check: Callable[[], None] = lambda: None,
        progress: Progress | None = None) -> None:
    """Execute the plan's flips and canary steps; outcomes change in `applied`."""
    if not plan.flips and not plan.steps:
        return
    progress = progress or Silent()
    progress.phase("flip", len(plan.flips) + len(plan.steps))
    progress.stage(", ".join(sorted({f.agent for f in plan.flips}
                                    | {s.agent for s in plan.steps})))
    work = _Run(client, resources, {m.ref: m for m in desired.manifests},
                {c.ref: c for c in applied.changes}, options or Options())
    gates: list[ObjectRef] = []
    flips = []
    for flip in plan.flips:
        check()
        if _start(work, flip):
            flips.append(flip)
            gates.append(flip.new)
        progress.advance()
    steps = []
    for step in plan.steps:
        check()
        applied_all = [work.apply(ref) for ref in step.grows]  # each one, even after a failure
        if all(applied_all):
            steps.append(step)
            gates += step.grows
        else:
            work.skip(step.then, f"not applied: the canary of {step.agent} failed to apply, so "
                                 "the other track keeps its replicas")
        progress.advance()
    unhealthy: dict[ObjectRef, str] = {}
    if gates and not work.options.dry_run:
        unhealthy = waiting.wait(client, resources, desired.applyset,
                                 [work.by_ref[ref] for ref in gates],
                                 waiting.Options(work.options.timeout, work.options.interval),
                                 check=check, progress=progress)
    for flip in flips:
        check()
        if flip.new in unhealthy:
            _refuse(work, flip, unhealthy[flip.new])
        else:
            _switch(work, flip)
    for step in steps:
        check()
        sick = [ref for ref in step.grows if ref in unhealthy]
        for ref in sick:
            work.by_ref[ref].outcome = Outcome.FAILED
            work.by_ref[ref].reason = f"applied, but not healthy: {unhealthy[ref]}"
        if sick:
            work.skip(step.then, f"not applied: {sick[0]} did not become healthy, so the "
                                 "other track keeps its replicas")
        else:
            for ref in step.then:
                work.apply(ref)


def _members(flip: slots.Flip) -> tuple[ObjectRef, ...]:
    return (flip.new, *flip.services, *flip.scalers, flip.old)


def _start(work: _Run, flip: slots.Flip) -> bool:
    """Step 1 of a flip; False (with the rest skipped) when it cannot go on."""
    failed = next((r for r in _members(flip) if work.by_ref[r].outcome == Outcome.FAILED), None)
    if failed is None:
        failed = None if _scale_new(work, flip) else flip.new
    if failed is not None:
        work.skip(_members(flip), f"not applied: the blue-green flip of {flip.agent} to slot "
                                  f"{flip.new_slot} did not start ({failed} failed); traffic "
                                  f"stays on slot {flip.old_slot}")
        return False
    return True


def _scale_new(work: _Run, flip: slots.Flip) -> bool:
    """The new slot at the old slot's live replicas, and applied without `spec.replicas`."""
    old = work.manifests[flip.old]
    live = reading.get(work.client, work.resources.require(old.api_version, old.ref.kind),
                       old.ref.namespace, old.ref.name)
    count = _replicas(live)
    change = work.by_ref[flip.new]
    if count is None:  # nothing to match (the old slot is gone): as rendered
        return change.outcome not in slots.APPLIED or work.apply(flip.new)
    body = copy.deepcopy(work.manifests[flip.new].body)
    body.get("spec", {}).pop("replicas", None)
    if change.outcome == Outcome.CREATED and not work.apply(flip.new, body):
        return False
    response = scale(work.client, work.path(flip.new), work.manifests[flip.new], count,
                     work.options.dry_run)
    if not response.ok:
        return not work.fail(flip.new, response)
    return change.outcome != Outcome.CONFIGURED or work.apply(flip.new, body)


def _refuse(work: _Run, flip: slots.Flip, why: str) -> None:
    """The new slot never became Available: it fails naming the slot; nothing switches."""
    names = " and ".join(f"Service {r.name}" for r in flip.services) or "the Services"
    change = work.by_ref[flip.new]
    change.outcome = Outcome.FAILED
    change.reason = (f"blue-green flip of {flip.agent} to slot {flip.new_slot} refused: the "
                     f"slot did not become Available ({why}); {names} still select slot "
                     f"{flip.old_slot}")
    work.skip((*flip.services, *flip.scalers, flip.old),
              f"not applied: slot {flip.new_slot} of {flip.agent} did not become Available, "
              f"so traffic stays on slot {flip.old_slot}")


def _switch(work: _Run, flip: slots.Flip) -> None:
    """Steps 3 and 4: Services, autoscalers, then the old slot shrunk and both settled."""
    for group in (flip.services, flip.scalers):
        failed = [ref for ref in group if not work.apply(ref)]
        if failed:
            work.skip((flip.old,), f"not applied: {failed[0]} failed, so slot "
                                   f"{flip.old_slot} keeps its replicas")
            return
    if work.by_ref[flip.old].outcome in slots.APPLIED:
        work.settle(flip.old)
    if _replicas(work.manifests[flip.new].body) is not None:
        work.settle(flip.new)
