"""The spec each rollout track runs: the agent's spec with the track's patch merged over it
(JSON Merge Patch), validated like any spec. Tracks without a patch run the agent's spec."""

from typing import Any

from agentctl.mergepatch import merge_patch
from agentctl.model.agent import AgentSpec
from agentctl.model.delivery import TrackPatch


def patches(spec: AgentSpec) -> dict[str, TrackPatch]:
    """The patch of each track that has one: `canary`, `blue`, `green`."""
    rollout = spec.rollout
    found: dict[str, TrackPatch] = {}
    if rollout.strategy == "Canary" and rollout.canary and rollout.canary.patch is not None:
        found["canary"] = rollout.canary.patch
    if rollout.strategy == "BlueGreen" and rollout.blue_green:
        for slot, patch in (("blue", rollout.blue_green.slots.blue),
                            ("green", rollout.blue_green.slots.green)):
            if patch is not None:
                found[slot] = patch
    return found


def patched(data: dict[str, Any], patch: TrackPatch) -> dict[str, Any]:
    """A spec's data (aliases) with a track's patch merged over it."""
    result: dict[str, Any] = merge_patch(data, patch)
    return result


def track_specs(spec: AgentSpec) -> dict[str, AgentSpec]:
    """The validated spec of each track that has a patch (raises ValidationError)."""
    found = patches(spec)
    if not found:
        return {}
    data = spec.model_dump(mode="json", by_alias=True, exclude_unset=True)
    return {track: AgentSpec.model_validate(patched(data, patch))
            for track, patch in found.items()}
