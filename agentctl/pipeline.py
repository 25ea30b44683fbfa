"""The only module that chains stages: load → merge → render → finish → write/check/validate.
It never prints; it returns results and raises `AgentctlError`s carrying every problem."""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
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
    output: writing.EnvOutput | None = None
    """The formatted files, when rendering already made them."""
    count: int = 0
    """How many objects rendered (`manifests` may be left empty when only files are wanted)."""
    checked: int = 0
    """Objects that passed the Kubernetes schemas, when rendering checked them."""
    skipped: frozenset[str] = frozenset()
    """`apiVersion/kind` of objects without a schema, when rendering checked them."""


@dataclass
class RenderResult:
    inputs: Inputs
    envs: list[EnvRender] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)

    @property
    def manifests(self) -> list[Manifest]:
        return [m for env in self.envs for m in env.manifests]

    @property
    def count(self) -> int:
        return sum(env.count for env in self.envs)


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


PARALLEL_MIN_AGENTS = 50
"""Below this many agents, environments render in this process (a worker costs more)."""


def render(root: Path, envs: tuple[str, ...] = (), all_envs: bool = False,
           agent: str | None = None, workers: int | None = None,
           dump: bool = False, checks: bool = False,
           objects: bool = True) -> RenderResult:
    """Render the selected environments; raise one InputError with every problem.

    Environments are independent, so with several of them and a large fleet each renders in
    its own process (`workers`: how many; default one per CPU, 1 renders in this process).
    With `dump`, each environment's output files are formatted where it rendered; with
    `checks`, its objects are checked against the Kubernetes schemas there too, and
    credential-looking literal env values are added to the warnings. Without `objects`, the
    objects themselves are not kept (only counts, files and checks): cheaper from a worker."""
    inputs = loading.load(root)
    problems: list[Problem] = list(inputs.problems)
    try:
        selected = select_envs(inputs, envs, all_envs)
    except InputError as err:
        raise InputError(problems + err.problems) from None
    if agent is not None and agent not in {a.name for a in inputs.agents}:
        raise InputError([*problems, Problem(message=f"no agent named {agent!r}")])
    result = RenderResult(inputs=inputs)
    if workers is None:
        workers = 1 if len(inputs.agents) < PARALLEL_MIN_AGENTS else (os.cpu_count() or 1)
    workers = max(1, min(workers, len(selected)))
    if workers == 1:
        outcomes = [_render_env(inputs, root, env_name, agent, dump, checks, objects)
                    for env_name in selected]
    else:
        outcomes = _render_in_processes(inputs, root, selected, agent, (dump, checks, objects),
                                        workers)
    for outcome in outcomes:
        problems += outcome.problems
        result.warnings += outcome.warnings
        if outcome.env is not None:
            result.envs.append(outcome.env)
    if problems:
        raise InputError(sorted(set(problems), key=_problem_order))
    result.warnings = sorted(set(result.warnings), key=_problem_order)
    return result


@dataclass
class _EnvOutcome:
    env: EnvRender | None
    warnings: list[Problem] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


def _render_env(inputs: Inputs, root: Path, env_name: str, agent: str | None,
                dump: bool, checks: bool, objects: bool) -> _EnvOutcome:
    if checks:
        from agentctl import validating  # jsonschema and the schemas: only when validating
    environment = merging.environment_of(inputs, env_name)
    try:
        resolved = merging.resolve(inputs, env_name)
    except InputError as err:
        return _EnvOutcome(env=None, problems=err.problems)
    outcome = _EnvOutcome(env=None)
    parent = applyset_parent_name(inputs.project.metadata.name, env_name)
    applyset = applyset_id(parent, environment.spec.namespace)
    renderer = Renderer()
    local_blueprints = root / inputs.project.spec.blueprints
    manifests: list[Manifest] = []
    for item in resolved:
        if agent is not None and item.name != agent:
            continue
        try:
            blueprint = blueprints.find(item.agent.spec.blueprint, local_blueprints, root)
        except InputError as err:
            outcome.problems += [p if p.file else item.sources[1].problem(
                ("blueprint",), p.message, field="spec.blueprint") for p in err.problems]
            continue
        out = Rendered()
        renderer.render(item.agent, environment, blueprint, item.sources, out)
        outcome.problems += out.problems
        outcome.warnings += out.warnings
        outcome.problems += finishing.finish(item.agent, environment, applyset, out.manifests,
                                             item.sources)
        manifests += out.manifests
        if checks:
            outcome.warnings += validating.credential_warnings(item.agent, item.sources)
    outcome.problems += finishing.duplicates(manifests)
    manifests.sort(key=lambda m: m.ref)
    outcome.env = EnvRender(env_name, environment.spec.namespace, applyset, manifests,
                            count=len(manifests))
    if checks:
        checked = validating.validate_objects(manifests)
        outcome.problems += checked.problems
        outcome.env.checked = len(checked.passed)
        outcome.env.skipped = frozenset(f"{m.body['apiVersion']}/{m.body['kind']}"
                                        for m in checked.skipped)
    if not objects:
        outcome.env.manifests = []  # nothing to carry back from a worker but the results
    if dump and not outcome.problems:
        outcome.env.output = writing.env_output(env_name, applyset, manifests)
    return outcome


_FORKED: tuple[Inputs, Path, str | None, tuple[bool, bool, bool]] | None = None
"""What forked workers render from: inherited, not pickled."""


def _render_forked(env_name: str) -> _EnvOutcome:
    assert _FORKED is not None
    inputs, root, agent, (dump, checks, objects) = _FORKED
    return _render_env(inputs, root, env_name, agent, dump, checks, objects)


def _render_in_processes(inputs: Inputs, root: Path, selected: list[str], agent: str | None,
                         flags: tuple[bool, bool, bool], workers: int) -> list[_EnvOutcome]:
    global _FORKED  # noqa: PLW0603 - handed to forked workers without pickling
    _FORKED = (inputs, root, agent, flags)
    try:
        context = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            return list(pool.map(_render_forked, selected))
    finally:
        _FORKED = None


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
    result = render(root, envs, all_envs or not envs, checks=True, objects=False)
    warnings = result.warnings
    if strict and warnings:
        raise InputError(warnings)
    skipped = sorted(set().union(*(e.skipped for e in result.envs)))
    return ValidateResult(result, sum(e.checked for e in result.envs), skipped, warnings)


def _problem_order(problem: Problem) -> tuple[str, str, int, int, str, str]:
    return (problem.file, problem.obj, problem.line, problem.col, problem.field, problem.message)


def outputs(result: RenderResult) -> list[writing.EnvOutput]:
    return [e.output or writing.env_output(e.env, e.applyset, e.manifests) for e in result.envs]


def write(result: RenderResult, out_dir: Path) -> list[str]:
    """Write the rendered tree, one environment per thread (file creation is kernel time, which
    threads spread over the cores); return the paths that changed."""
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        changed = pool.map(lambda output: writing.write(out_dir, output), outputs(result))
        return [path for paths in changed for path in paths]


def check(result: RenderResult, out_dir: Path) -> None:
    """Raise StaleOutputError listing stale, missing and orphan files."""
    problems: list[Problem] = []
    for output in outputs(result):
        problems += writing.check(out_dir, output)
    if problems:
        raise StaleOutputError(problems)
