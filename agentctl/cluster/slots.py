"""An agent's tracks in a change set: the blue-green flips and canary steps it holds, and the
refusal that protects the slot serving traffic. Pure: no requests.

Inputs: the change set's changes (each configured one carries the live object as `before` and
the dry-run as `after`) and the desired manifests. The blueprint's contract is read from labels:
workloads carry `agent.inferensys.com/track` (main, canary, blue, green), Services
`agent.inferensys.com/service-role` (active, preview, …), every object
`agent.inferensys.com/agent`.

- The **live active slot** of a blue-green agent is the slot its active Service selects on the
  cluster (its `before`; an unchanged Service selects what it renders).
- A **flip**: the active Service selects one slot live and will select the other. Executed by
  `flipping`: the new slot scaled to the old slot's live replicas and waited for, then the
  Services, then the autoscaler, then the old slot shrunk.
- A **canary step**: a track of a canary agent grows (created, or more replicas) while another
  shrinks, or its route changes while the canary does: the growing workload (or the canary)
  first and waited for, the rest after.
- **In-place refusal** (`review`): a change of the live active slot's pod template would roll
  the pods that serve traffic; it fails unless allowed. The old slot of a flip is exempt: its
  change is applied after the Services left it.
- `review` also accepts the one conflict a flip resolves itself: `.spec.replicas` of the old
  slot (an autoscaler or the flip's own replicas manager holds it), and `.spec.replicas` held
  only by that manager anywhere (what an interrupted or reverted flip leaves).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from agentctl.diffs import Change, Outcome
from agentctl.manifests import Manifest, ObjectRef

TRACK = "agent.inferensys.com/track"
AGENT = "agent.inferensys.com/agent"
ROLE = "agent.inferensys.com/service-role"
SLOTS = ("blue", "green")
REPLICAS_MANAGER = "agentctl-replicas"
"""The field manager that holds a workload's `spec.replicas` while a flip moves it, and hands
it to an autoscaler (server-side apply's documented transfer of ownership)."""
REPLICAS_FIELD = ".spec.replicas"
APPLIED = frozenset({Outcome.CREATED, Outcome.CONFIGURED})
WORKLOADS = frozenset({("apps", "Deployment"), ("apps", "StatefulSet")})
SCALERS = frozenset({("autoscaling", "HorizontalPodAutoscaler"), ("keda.sh", "ScaledObject")})
ROUTE = ("gateway.networking.k8s.io", "HTTPRoute")
_ROLES = WORKLOADS | SCALERS | {ROUTE, ("", "Service")}


@dataclass(frozen=True)
class Flip:
    """One agent's switch of its active slot."""

    agent: str
    old_slot: str
    new_slot: str
    old: ObjectRef
    """The workload of the slot serving now."""
    new: ObjectRef
    services: tuple[ObjectRef, ...]
    """Switched only once `new` is Available."""
    scalers: tuple[ObjectRef, ...]
    """Retargeted after the switch, before the old slot shrinks."""


@dataclass(frozen=True)
class Step:
    """One agent's canary step: `grows` first and waited for, then `then`."""

    agent: str
    grows: tuple[ObjectRef, ...]
    then: tuple[ObjectRef, ...]


@dataclass(frozen=True)
class Plan:
    flips: tuple[Flip, ...] = ()
    steps: tuple[Step, ...] = ()

    @property
    def held(self) -> frozenset[ObjectRef]:
        """What the staged apply leaves to `flipping`."""
        refs: set[ObjectRef] = set()
        for flip in self.flips:
            refs |= {flip.old, flip.new, *flip.services, *flip.scalers}
        for step in self.steps:
            refs |= {*step.grows, *step.then}
        return frozenset(refs)


def _labels(body: Mapping[str, Any]) -> Mapping[str, Any]:
    return (body.get("metadata") or {}).get("labels") or {}


def _selector(body: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return ((body or {}).get("spec") or {}).get("selector") or {}


def _replicas(body: Mapping[str, Any] | None) -> int | None:
    value = ((body or {}).get("spec") or {}).get("replicas")
    return value if isinstance(value, int) else None


@dataclass
class _Agent:
    """One agent's objects in the change set, by role."""

    active: tuple[Manifest, Change] | None = None
    services: list[ObjectRef] = field(default_factory=list)
    workloads: dict[str, ObjectRef] = field(default_factory=dict)
    scalers: list[ObjectRef] = field(default_factory=list)
    route: ObjectRef | None = None


def _agents(manifests: Iterable[Manifest],
            by_ref: Mapping[ObjectRef, Change]) -> dict[tuple[str, str], _Agent]:
    """(namespace, agent) → its Services, workloads by track, autoscalers and route."""
    found: dict[tuple[str, str], _Agent] = {}
    for manifest in manifests:
        ref = manifest.ref
        kind = (ref.group, ref.kind)
        if kind not in _ROLES:
            continue
        labels = _labels(manifest.body)
        name = labels.get(AGENT)
        if not isinstance(name, str) or ref not in by_ref:
            continue
        agent = found.setdefault((ref.namespace, name), _Agent())
        if kind == ("", "Service"):
            if _selector(manifest.body).get(TRACK) in SLOTS:
                agent.services.append(ref)
                if labels.get(ROLE) == "active":
                    agent.active = (manifest, by_ref[ref])
        elif kind in WORKLOADS and isinstance(labels.get(TRACK), str):
            agent.workloads[labels[TRACK]] = ref
        elif kind in SCALERS:
            agent.scalers.append(ref)
        elif kind == ROUTE:
            agent.route = ref
    return found


def live_slot(manifest: Manifest, change: Change) -> str | None:
    """The slot the active Service selects on the cluster, or None (not there yet)."""
    if change.outcome == Outcome.UNCHANGED:
        slot = _selector(manifest.body).get(TRACK)
    else:
        slot = _selector(change.before).get(TRACK)
    return slot if slot in SLOTS else None


def plan(changes: list[Change], manifests: Iterable[Manifest]) -> Plan:
    """The flips and canary steps of a change set."""
    by_ref = {c.ref: c for c in changes}
    flips, steps = [], []
    for (_, name), agent in sorted(_agents(manifests, by_ref).items()):
        workloads = agent.workloads
        if agent.active is not None:
            manifest, change = agent.active
            old, new = live_slot(manifest, change), _selector(manifest.body).get(TRACK)
            if old in workloads and new in workloads and old != new:
                flips.append(Flip(
                    name, str(old), str(new), workloads[str(old)], workloads[str(new)],
                    tuple(r for r in agent.services if by_ref[r].outcome in APPLIED),
                    tuple(r for r in agent.scalers if by_ref[r].outcome in APPLIED)))
            continue
        step = _canary_step(name, workloads, agent.route, by_ref)
        if step is not None:
            steps.append(step)
    return Plan(tuple(flips), tuple(steps))


def _canary_step(name: str, workloads: Mapping[str, ObjectRef], route: ObjectRef | None,
                 by_ref: Mapping[ObjectRef, Change]) -> Step | None:
    """Grow before shrink: the tracks that grow (created, or more replicas) first, then the
    ones that shrink; a route that changes while the canary is created or changes comes after
    the canary too."""
    if "canary" not in workloads or "main" not in workloads:
        return None
    grows, shrinks = [], []
    for track in ("main", "canary"):
        direction = _direction(by_ref[workloads[track]])
        if direction > 0:
            grows.append(workloads[track])
        elif direction < 0:
            shrinks.append(workloads[track])
    canary = workloads["canary"]
    if route is not None and by_ref[route].outcome in APPLIED \
            and by_ref[canary].outcome in APPLIED and canary not in shrinks:
        # new weights only for a ready canary
        if canary not in grows:
            grows.append(canary)
        shrinks.append(route)
    return Step(name, tuple(grows), tuple(shrinks)) if grows and shrinks else None


def _direction(change: Change) -> int:
    """1 when a workload grows (created, or more replicas), -1 when it shrinks, else 0."""
    if change.outcome == Outcome.CREATED:
        return 1
    before, after = _replicas(change.before), _replicas(change.after)
    if change.outcome != Outcome.CONFIGURED or before is None or after is None:
        return 0
    return (after > before) - (after < before)


def review(changes: list[Change], manifests: Iterable[Manifest],
           conflicts: Mapping[ObjectRef, Mapping[str, list[str]]],
           allow_in_place: bool = False) -> None:
    """Refuse in-place changes of live active slots (unless allowed), and accept the replicas
    conflicts a flip resolves; changes the outcomes in place. `conflicts`: per object that met
    a conflict, the server's field (`.spec.replicas`) → the managers holding it."""
    by_ref = {c.ref: c for c in changes}
    for agent in _agents(manifests, by_ref).values():
        if agent.active is None:
            continue
        manifest, service = agent.active
        live = live_slot(manifest, service)
        workloads = agent.workloads
        if live not in workloads:
            continue
        serving = by_ref[workloads[str(live)]]
        flipping = _selector(manifest.body).get(TRACK) != live
        template = [p for p in serving.paths if p.startswith("/spec/template/")]
        if template and not flipping and not allow_in_place \
                and serving.outcome == Outcome.CONFIGURED:
            shown = ", ".join(template[:3]) + (f" and {len(template) - 3} more"
                                               if len(template) > 3 else "")
            serving.outcome = Outcome.FAILED
            serving.reason = (
                f"refused: an in-place change of the live active slot {live} (Service "
                f"{service.ref.name} selects it) would roll the pods serving traffic: "
                f"{shown}; put the change in the other slot and flip activeSlot, or "
                "reconcile --allow-in-place")
        if flipping and _replicas_only(conflicts.get(serving.ref)):
            holders = ", ".join(conflicts[serving.ref][REPLICAS_FIELD])
            serving.outcome = Outcome.CONFIGURED
            serving.reason = (f"blue-green flip: {REPLICAS_FIELD} is taken back from {holders} "
                              f"once the Services select {_selector(manifest.body).get(TRACK)}")
    for change in changes:
        held = conflicts.get(change.ref)
        if change.outcome == Outcome.FAILED and held is not None and handover(held):
            change.outcome = Outcome.CONFIGURED
            change.reason = (f"{REPLICAS_FIELD} is taken back from {REPLICAS_MANAGER} (left by "
                             "an interrupted or reverted blue-green flip)")


def _replicas_only(conflicts: Mapping[str, list[str]] | None) -> bool:
    return conflicts is not None and set(conflicts) == {REPLICAS_FIELD}


def handover(conflicts: Mapping[str, list[str]]) -> bool:
    """Whether an apply's conflicts are only `.spec.replicas` held by the flip's replicas
    manager (then `flipping.settle` takes it back)."""
    return _replicas_only(conflicts) and list(conflicts[REPLICAS_FIELD]) == [REPLICAS_MANAGER]
