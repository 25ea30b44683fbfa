"""Stage 2, environment merge: `defaults` under each agent's spec, the agent, then the
environment's per-agent overrides, as JSON Merge Patch (RFC 7386: maps merge, lists replace,
`null` deletes). The merged spec is validated, and each error names the file (and line) that
introduced the offending value: the override, the agent file or the defaults.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from agentctl.errors import InputError, Problem
from agentctl.mergepatch import merge_patch
from agentctl.model import tracks
from agentctl.model.agent import Agent, AgentMeta, AgentSpec
from agentctl.model.delivery import TRACK_PATCHES
from agentctl.model.environment import Environment
from agentctl.render.inputs import AgentDoc, EnvironmentDoc, Inputs
from agentctl.render.sources import (
    Source,
    attribute,
    clean_loc,
    field_path,
    message_of,
    null_unknowns,
    problems_from,
    unknown_field,
)


@dataclass
class ResolvedAgent:
    """An agent as it runs in one environment: merged, validated, namespace filled in."""

    agent: Agent
    sources: list[Source]
    """Where values came from, by precedence: the overrides, the agent file, the defaults."""

    @property
    def name(self) -> str:
        return self.agent.metadata.name


def resolve(inputs: Inputs, env_name: str,
            docs: Iterable[AgentDoc] | None = None) -> list[ResolvedAgent]:
    """Agents merged for environment `env_name`, in the order given (default: every agent of
    the project, sorted by name). Raises one InputError with every problem, including those of
    the environment's `defaults` (see `defaults_problems`) when all agents are resolved."""
    env = inputs.environments[env_name]
    problems: list[Problem] = defaults_problems(inputs, env_name) if docs is None else []
    resolved: list[ResolvedAgent] = []
    for doc in inputs.agents if docs is None else docs:
        agent = _resolve_one(doc, env, problems)
        if agent is not None:
            resolved.append(agent)
    if problems:
        raise InputError(sorted(set(problems)))
    return resolved


def defaults_problems(inputs: Inputs, env_name: str) -> list[Problem]:
    """`null` on a field agents do not have, in the environment's `defaults`."""
    env = inputs.environments[env_name]
    defaults = Source(env.source.file, env.source.root, ("spec", "defaults"))
    return [defaults.problem(loc, unknown_field(AgentSpec, loc), field_path(("spec", *loc)))
            for loc in null_unknowns(env.environment.spec.defaults, AgentSpec)]


def _resolve_one(doc: AgentDoc, env: EnvironmentDoc,
                 problems: list[Problem]) -> ResolvedAgent | None:
    spec_env = env.environment.spec
    overrides = spec_env.agents.get(doc.name, {})
    merged = merge_patch(merge_patch(spec_env.defaults, doc.data["spec"], TRACK_PATCHES),
                         overrides, TRACK_PATCHES)
    sources = [
        Source(env.source.file, env.source.root, ("spec", "agents", doc.name)),
        Source(doc.source.file, doc.source.root, ("spec",), primary=True),
        Source(env.source.file, env.source.root, ("spec", "defaults")),
    ]
    for patch, source in ((overrides, sources[0]), (doc.data["spec"], sources[1])):
        for loc in null_unknowns(patch, AgentSpec):
            problems.append(source.problem(loc, unknown_field(AgentSpec, loc),
                                           field_path(("spec", *loc))))
    try:
        spec = AgentSpec.model_validate(merged)
    except ValidationError as err:
        problems.extend(problems_from(err, merged, sources, AgentSpec, prefix=("spec",)))
        return None
    track_problems = _track_problems(spec, merged, sources)
    if track_problems:
        problems.extend(track_problems)
        return None
    metadata = dict(doc.data["metadata"])
    metadata.setdefault("namespace", spec_env.namespace)
    if metadata["namespace"] is None:
        metadata["namespace"] = spec_env.namespace
    agent = Agent(api_version=doc.data["apiVersion"], kind="Agent",
                  metadata=AgentMeta.model_validate(metadata), spec=spec)
    return ResolvedAgent(agent=agent, sources=sources)


def _track_problems(spec: AgentSpec, merged: dict[str, Any],
                    sources: list[Source]) -> list[Problem]:
    """Each track's spec (the merged spec with the track's patch over it) validated, an error
    inside the patch placed at the patch's line in the file that sets it."""
    problems: list[Problem] = []
    paths = {path[-1] if path[-1] != "patch" else "canary": path for path in TRACK_PATCHES}
    for track, patch in tracks.patches(spec).items():
        path = paths[track]
        holder = next((s for s in sources if s.locate(path)[2] == len(path)), sources[0])
        in_patch = Source(holder.file, holder.root, (*holder.at, *path))
        problems += [in_patch.problem(loc, unknown_field(AgentSpec, loc),
                                      field_path(("spec", *path, *loc)))
                     for loc in null_unknowns(patch, AgentSpec)]
        data = tracks.patched(merged, patch)
        try:
            AgentSpec.model_validate(data)
        except ValidationError as err:
            for error in err.errors():
                loc = clean_loc(error, data)
                message = f"{message_of(error, AgentSpec, loc)} (on the {track} track)"
                if in_patch.locate(loc)[2] == len(loc):
                    problems.append(in_patch.problem(loc, message,
                                                     field_path(("spec", *path, *loc))))
                else:
                    problems.append(attribute([in_patch, *sources], loc, message,
                                              field_path(("spec", *loc))))
    return problems


def environment_of(inputs: Inputs, env_name: str) -> Environment:
    return inputs.environments[env_name].environment
