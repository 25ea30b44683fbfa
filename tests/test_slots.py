"""The pure part of blue-green flips and canary steps, offline: which change sets hold a flip or
a canary step, the in-place refusal of the live active slot, and the replicas conflicts a flip
resolves itself. (The flips themselves run on the sandbox: tests/cluster/test_reconcile_flip.py.)"""

from __future__ import annotations

from typing import Any

from agentctl.cluster import slots
from agentctl.diffs import Change, Outcome
from agentctl.manifests import Manifest

NS = "agents"
TEMPLATE_IMAGE = "/spec/template/spec/containers/0/image"


def _labels(agent: str, **extra: str) -> dict[str, str]:
    return {slots.AGENT: agent, "app.kubernetes.io/name": agent, **extra}


def service(agent: str, name: str, role: str, track: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": NS,
                         "labels": _labels(agent, **{slots.ROLE: role})},
            "spec": {"selector": {"app.kubernetes.io/name": agent, slots.TRACK: track}}}


def workload(agent: str, name: str, track: str, replicas: int | None) -> dict[str, Any]:
    body: dict[str, Any] = {"apiVersion": "apps/v1", "kind": "Deployment",
                            "metadata": {"name": name, "namespace": NS,
                                         "labels": _labels(agent, **{slots.TRACK: track})},
                            "spec": {"template": {"spec": {"containers": []}}}}
    if replicas is not None:
        body["spec"]["replicas"] = replicas
    return body


def autoscaler(agent: str, target: str) -> dict[str, Any]:
    return {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": agent, "namespace": NS, "labels": _labels(agent)},
            "spec": {"scaleTargetRef": {"kind": "Deployment", "name": target}}}


def route(agent: str) -> dict[str, Any]:
    return {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": {"name": agent, "namespace": NS, "labels": _labels(agent)}}


def change(body: dict[str, Any], outcome: Outcome, before: dict[str, Any] | None = None,
           paths: tuple[str, ...] = ()) -> Change:
    manifest = Manifest(body, "", "", "")
    return Change(manifest.ref, manifest.api_version, outcome, list(paths), before=before,
                  after=body if outcome != Outcome.UNCHANGED else None)


def blue_green(live: str, desired: str, blue_paths: tuple[str, ...] = (),
               green_paths: tuple[str, ...] = ()) -> tuple[list[Manifest], list[Change]]:
    """support-bot with its Services selecting `live` on the cluster and `desired` rendered,
    autoscaled on its active slot."""
    other = {"blue": "green", "green": "blue"}
    bodies = [service("bot", "bot", "active", desired),
              service("bot", "bot-preview", "preview", other[desired]),
              workload("bot", "bot-blue", "blue", None if desired == "blue" else 1),
              workload("bot", "bot-green", "green", None if desired == "green" else 1),
              autoscaler("bot", f"bot-{desired}")]
    flipping = live != desired
    outcome = Outcome.CONFIGURED if flipping else Outcome.UNCHANGED
    changes = [
        change(bodies[0], outcome, service("bot", "bot", "active", live)),
        change(bodies[1], outcome, service("bot", "bot-preview", "preview", other[live])),
        change(bodies[2], Outcome.CONFIGURED if blue_paths or flipping else Outcome.UNCHANGED,
               workload("bot", "bot-blue", "blue", 3), blue_paths),
        change(bodies[3], Outcome.CONFIGURED if green_paths or flipping else Outcome.UNCHANGED,
               workload("bot", "bot-green", "green", 1), green_paths),
        change(bodies[4], outcome, autoscaler("bot", f"bot-{live}")),
    ]
    return [Manifest(b, "", "", "") for b in bodies], changes


def by_name(changes: list[Change]) -> dict[str, Change]:
    return {c.ref.name: c for c in changes}


def test_a_switch_of_the_active_slot_is_a_flip_holding_its_services_and_autoscaler() -> None:
    manifests, changes = blue_green("blue", "green", green_paths=("/spec/replicas",))
    plan = slots.plan(changes, manifests)
    [flip] = plan.flips
    assert (flip.agent, flip.old_slot, flip.new_slot) == ("bot", "blue", "green")
    assert (flip.old.name, flip.new.name) == ("bot-blue", "bot-green")
    assert [r.name for r in flip.services] == ["bot", "bot-preview"]
    assert [r.name for r in flip.scalers] == ["bot"]
    assert {r.name for r in plan.held} == {"bot", "bot-preview", "bot-blue", "bot-green"}
    assert plan.steps == ()


def test_no_flip_when_the_services_stay_or_are_new() -> None:
    manifests, changes = blue_green("blue", "blue", green_paths=(TEMPLATE_IMAGE,))
    assert slots.plan(changes, manifests) == slots.Plan()
    for found in changes[:2]:
        found.outcome, found.before = Outcome.CREATED, None
    assert slots.plan(changes, manifests) == slots.Plan()


def test_an_in_place_change_of_the_live_active_slot_is_refused_unless_allowed() -> None:
    manifests, changes = blue_green("blue", "blue", blue_paths=(TEMPLATE_IMAGE, "/spec/x"),
                                    green_paths=(TEMPLATE_IMAGE,))
    slots.review(changes, manifests, {})
    found = by_name(changes)
    assert found["bot-blue"].outcome == Outcome.FAILED
    assert found["bot-blue"].reason == (
        "refused: an in-place change of the live active slot blue (Service bot selects it) "
        f"would roll the pods serving traffic: {TEMPLATE_IMAGE}; put the change in the other "
        "slot and flip activeSlot, or reconcile --allow-in-place")
    assert found["bot-green"].outcome == Outcome.CONFIGURED  # the preview serves no traffic

    manifests, changes = blue_green("blue", "blue", blue_paths=(TEMPLATE_IMAGE,))
    slots.review(changes, manifests, {}, allow_in_place=True)
    assert by_name(changes)["bot-blue"].outcome == Outcome.CONFIGURED
    # a change outside the pod template (replicas, labels) is not in place
    manifests, changes = blue_green("blue", "blue", blue_paths=("/spec/replicas",))
    slots.review(changes, manifests, {})
    assert by_name(changes)["bot-blue"].outcome == Outcome.CONFIGURED


def test_the_live_slot_is_read_from_the_cluster_not_from_the_render() -> None:
    # rendered green active, but the flip has not happened: blue still serves, and green
    # (about to serve) may change; blue's change waits until it no longer serves
    manifests, changes = blue_green("blue", "green", blue_paths=(TEMPLATE_IMAGE,),
                                    green_paths=(TEMPLATE_IMAGE,))
    slots.review(changes, manifests, {})
    assert {c.outcome for c in changes} == {Outcome.CONFIGURED}


def test_a_flip_takes_the_old_slots_replicas_back_but_no_other_field() -> None:
    manifests, changes = blue_green("blue", "green")
    blue = by_name(changes)["bot-blue"]
    blue.outcome, blue.reason = Outcome.FAILED, "conflict: …"
    slots.review(changes, manifests, {blue.ref: {".spec.replicas": ["kube-controller-manager"]}})
    assert blue.outcome == Outcome.CONFIGURED
    assert blue.reason == ("blue-green flip: .spec.replicas is taken back from "
                           "kube-controller-manager once the Services select green")

    manifests, changes = blue_green("blue", "green")
    blue = by_name(changes)["bot-blue"]
    blue.outcome = Outcome.FAILED
    slots.review(changes, manifests, {blue.ref: {".spec.replicas": ["hpa"],
                                                 ".spec.template.spec.x": ["kubectl-edit"]}})
    assert blue.outcome == Outcome.FAILED
    # without a flip the same conflict is drift: it stays a conflict
    manifests, changes = blue_green("blue", "blue", blue_paths=("/spec/replicas",))
    blue = by_name(changes)["bot-blue"]
    blue.outcome = Outcome.FAILED
    slots.review(changes, manifests, {blue.ref: {".spec.replicas": ["kubectl"]}})
    assert blue.outcome == Outcome.FAILED


def test_replicas_left_with_the_hand_over_manager_are_taken_back_anywhere() -> None:
    manifests, changes = blue_green("blue", "blue", green_paths=("/spec/replicas",))
    green = by_name(changes)["bot-green"]
    green.outcome = Outcome.FAILED
    slots.review(changes, manifests, {green.ref: {".spec.replicas": [slots.REPLICAS_MANAGER]}})
    assert green.outcome == Outcome.CONFIGURED
    assert slots.REPLICAS_MANAGER in green.reason
    assert slots.handover({".spec.replicas": [slots.REPLICAS_MANAGER]})
    assert not slots.handover({".spec.replicas": [slots.REPLICAS_MANAGER, "kubectl"]})
    assert not slots.handover({".spec.replicas": [slots.REPLICAS_MANAGER], ".spec.x": ["a"]})


def canary(main: tuple[int, int] | None, canary_: tuple[int, int] | None,
           route_changed: bool = False) -> tuple[list[Manifest], list[Change]]:
    """code-review's stable and canary workloads, replicas (live, rendered); None: absent."""
    bodies, changes = [], []
    for name, track, pair in (("review", "main", main), ("review-canary", "canary", canary_)):
        if pair is None:
            continue
        live, rendered = pair
        body = workload("review", name, track, rendered)
        outcome = Outcome.UNCHANGED if live == rendered else Outcome.CONFIGURED
        if live == 0:
            outcome = Outcome.CREATED
        bodies.append(body)
        changes.append(change(body, outcome, None if live == 0 else
                              workload("review", name, track, live)))
    bodies.append(route("review"))
    changes.append(change(bodies[-1], Outcome.CONFIGURED if route_changed else
                          Outcome.UNCHANGED))
    return [Manifest(b, "", "", "") for b in bodies], changes


def test_a_canary_grows_before_the_stable_track_shrinks() -> None:
    manifests, changes = canary((3, 2), (1, 2))
    [step] = slots.plan(changes, manifests).steps
    assert ([r.name for r in step.grows], [r.name for r in step.then]) == (
        ["review-canary"], ["review"])
    manifests, changes = canary((4, 3), (0, 1))  # weight 0 → 25: the canary is created
    [step] = slots.plan(changes, manifests).steps
    assert [r.name for r in step.grows] == ["review-canary"]
    manifests, changes = canary((2, 3), (2, 1))  # weight down: the stable track grows first
    [step] = slots.plan(changes, manifests).steps
    assert ([r.name for r in step.grows], [r.name for r in step.then]) == (
        ["review"], ["review-canary"])


def test_a_route_moves_weight_only_after_a_growing_canary() -> None:
    manifests, changes = canary((3, 3), (1, 2), route_changed=True)
    [step] = slots.plan(changes, manifests).steps
    assert [r.kind for r in step.then] == ["HTTPRoute"]
    manifests, changes = canary((3, 3), (1, 1), route_changed=True)  # canary unchanged
    assert slots.plan(changes, manifests).steps == ()
    manifests, changes = canary((3, 3), (1, 1), route_changed=True)
    found = by_name(changes)["review-canary"]
    found.outcome, found.paths = Outcome.CONFIGURED, [TEMPLATE_IMAGE]  # a new canary version
    [step] = slots.plan(changes, manifests).steps
    assert ([r.name for r in step.grows], [r.kind for r in step.then]) == (
        ["review-canary"], ["HTTPRoute"])
    manifests, changes = canary((3, 3), (1, 2))  # nothing shrinks, nothing to hold
    assert slots.plan(changes, manifests).steps == ()
