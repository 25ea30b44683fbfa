"""The only module that chains stages: load → merge → render → finish → write/check/validate.
It never prints; it returns results and raises `AgentctlError`s carrying every problem."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from agentctl import blueprints, finishing, loading, merging, writing
from agentctl.errors import InputError, Problem, StaleOutputError
from agentctl.inputs import Inputs
from agentctl.manifests import Manifest, applyset_id, applyset_parent_name
from agentctl.rendering import Rendered, Renderer


@dataclass
class EnvRender:
    env: str
    namespace: str
    applyset: str
    manifests: list[Manifest]


@dataclass
class RenderResult:
    inputs: Inputs
    envs: list[EnvRender] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    resolved: dict[str, list[merging.ResolvedAgent]] = field(default_factory=dict)

    @property
    def manifests(self) -> list[Manifest]:
        return [m for env in self.envs for m in env.manifests]


def select_envs(inputs: Inputs, requested: tuple[str, ...], all_envs: bool) -> list[str]:
    """The environments to act on: --env, --all-envs, or the only one there is."""
    known = sorted(inputs.environments)
    if all_envs:
        return known
    if requested:
        unknown = [e for e in requested if e not in inputs.environments]
        if unknown:
            raise InputError([Problem(message=f"unknown environment {e!r} (known: "
                                      f"{', '.join(known) or 'none'})") for e in unknown])
        return list(dict.fromkeys(requested))
    if len(known) == 1:
        return known
    raise InputError(f"choose an environment with --env or --all-envs (environments: "
                     f"{', '.join(known) or 'none'})")


def render(root: Path, envs: tuple[str, ...] = (), all_envs: bool = False,
           agent: str | None = None) -> RenderResult:
    """Render the selected environments; raise one InputError with every problem."""
    inputs = loading.load(root)
    problems: list[Problem] = list(inputs.problems)
    try:
        selected = select_envs(inputs, envs, all_envs)
    except InputError as err:
        raise InputError(problems + err.problems) from None
    if agent is not None and agent not in {a.name for a in inputs.agents}:
        raise InputError([*problems, Problem(message=f"no agent named {agent!r}")])
    result = RenderResult(inputs=inputs)
    renderer = Renderer()
    local_blueprints = root / inputs.project.spec.blueprints
    for env_name in selected:
        environment = merging.environment_of(inputs, env_name)
        try:
            resolved = merging.resolve(inputs, env_name)
        except InputError as err:
            problems += err.problems
            continue
        result.resolved[env_name] = resolved
        parent = applyset_parent_name(inputs.project.metadata.name, env_name)
        applyset = applyset_id(parent, environment.spec.namespace)
        manifests: list[Manifest] = []
        for item in resolved:
            if agent is not None and item.name != agent:
                continue
            try:
                blueprint = blueprints.find(item.agent.spec.blueprint, local_blueprints, root)
            except InputError as err:
                problems += [p if p.file else item.sources[1].problem(("blueprint",), p.message,
                                                                    field="spec.blueprint")
                             for p in err.problems]
                continue
            out = Rendered()
            renderer.render(item.agent, environment, blueprint, item.sources, out)
            problems += out.problems
            result.warnings += out.warnings
            problems += finishing.finish(item.agent, environment, applyset, out.manifests,
                                         item.sources)
            manifests += out.manifests
        problems += finishing.duplicates(manifests)
        manifests.sort(key=lambda m: m.ref)
        result.envs.append(EnvRender(env_name, environment.spec.namespace, applyset, manifests))
    if problems:
        raise InputError(sorted(set(problems), key=_problem_order))
    result.warnings = sorted(set(result.warnings), key=_problem_order)
    return result


@dataclass
class ValidateResult:
    render: RenderResult
    passed: int
    skipped: list[str]
    warnings: list[Problem]


def validate(root: Path, envs: tuple[str, ...] = (), all_envs: bool = False,
             strict: bool = False) -> ValidateResult:
    """Everything render checks, plus every object against the Kubernetes schemas offline.
    Without --env, every environment is validated. With `strict`, warnings are errors."""
    from agentctl import validating  # jsonschema and the schemas: only when validating

    result = render(root, envs, all_envs or not envs)
    problems: list[Problem] = []
    checked = validating.validate_objects(result.manifests)
    problems += checked.problems
    warnings = list(result.warnings)
    for resolved in result.resolved.values():
        for item in resolved:
            warnings += validating.credential_warnings(item.agent, item.sources)
    warnings = sorted(set(warnings), key=_problem_order)
    if strict:
        problems += warnings
    if problems:
        raise InputError(sorted(set(problems), key=_problem_order))
    skipped = sorted({f"{m.body['apiVersion']}/{m.body['kind']}" for m in checked.skipped})
    return ValidateResult(result, len(checked.passed), skipped, warnings)


def _problem_order(problem: Problem) -> tuple[str, str, int, int, str, str]:
    return (problem.file, problem.obj, problem.line, problem.col, problem.field, problem.message)


def outputs(result: RenderResult) -> list[writing.EnvOutput]:
    return [writing.env_output(e.env, e.applyset, e.manifests) for e in result.envs]


def write(result: RenderResult, out_dir: Path) -> list[str]:
    """Write the rendered tree; return the paths that changed."""
    changed: list[str] = []
    for output in outputs(result):
        changed += writing.write(out_dir, output)
    return changed


def check(result: RenderResult, out_dir: Path) -> None:
    """Raise StaleOutputError listing stale, missing and orphan files."""
    problems: list[Problem] = []
    for output in outputs(result):
        problems += writing.check(out_dir, output)
    if problems:
        raise StaleOutputError(problems)
