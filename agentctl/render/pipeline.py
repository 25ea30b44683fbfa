"""The only module that chains the offline stages: load → merge → render → finish, then (as
separate steps taking that result) format and write, check, or validate.

`render` is pure: it reads the project's files and returns the rendered objects of each
environment, in apply order, or raises one `InputError` carrying every problem. It keeps no state
between calls and may be called from any thread (with `workers=1`, the default). It never
prints.
"""

from __future__ import annotations

import gc
import math
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from agentctl.errors import InputError, Problem, StaleOutputError
from agentctl.manifests import (
    ANNOTATION_DIGEST,
    LABEL_AGENT,
    DesiredEnv,
    Manifest,
    applyset_id,
    applyset_parent_name,
)
from agentctl.render import finishing, loading, reading, writing
from agentctl.render.inputs import AgentDoc, Inputs
from agentctl.render.trees import PROVENANCE

if TYPE_CHECKING:
    from agentctl.model.environment import Environment
    from agentctl.render import blueprints
    from agentctl.render.rendering import Renderer

# Rendering's modules (Jinja2, the Agent model) are imported where a render happens: acting on a
# committed tree (diff, reconcile) never needs them.

T = TypeVar("T")


@dataclass
class EnvRender:
    env: str
    namespace: str
    applyset: str
    manifests: list[Manifest]
    """In apply order, each with its `file`."""


@dataclass
class RenderResult:
    inputs: Inputs
    envs: list[EnvRender] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    checked: int = 0
    """Objects that passed their Kubernetes schema (with `checks`)."""
    skipped: set[str] = field(default_factory=set)
    """`apiVersion/kind` of objects without a schema here (with `checks`)."""

    @property
    def manifests(self) -> list[Manifest]:
        return [m for env in self.envs for m in env.manifests]

    @property
    def count(self) -> int:
        return sum(len(env.manifests) for env in self.envs)


def select_envs(inputs: Inputs, requested: tuple[str, ...], all_envs: bool) -> list[str]:
    """The environments to act on: --env, --all-envs, or the only one there is."""
    known = sorted(inputs.environments)
    if not known:
        folder = inputs.project.spec.environments
        raise InputError(f"no valid environment in {folder}/: add {folder}/<name>.yaml "
                         "(kind: Environment), or run `agentctl init`")
    if all_envs:
        return known
    if requested:
        unknown = [e for e in requested if e not in inputs.environments]
        if unknown:
            raise InputError([Problem(message=f"unknown environment {e!r} (known: "
                                      f"{', '.join(known)})") for e in unknown])
        return list(dict.fromkeys(requested))
    if len(known) == 1:
        return known
    raise InputError(f"choose an environment with --env or --all-envs (environments: "
                     f"{', '.join(known)})")


PARALLEL_MIN_AGENTS = 50
"""Below this many agents, a worker process costs more than it saves."""
TASKS_PER_WORKER = 8
"""Chunks of agents per worker process: small enough for the workers to finish together."""


def render(root: Path, envs: tuple[str, ...] = (), all_envs: bool = False, *,
           agent: str | None = None, workers: int | None = 1, chunk: int | None = None,
           checks: bool = False) -> RenderResult:
    """Render the selected environments (`agent`: only that agent's objects; every agent is
    still merged and checked); raise one InputError with every problem. With `checks` (what
    `validate` adds), every object is also checked against its Kubernetes schema, where it
    renders, and credential-looking literals in the specs are warnings.

    With `workers` > 1 (None: one per CPU for a fleet of `PARALLEL_MIN_AGENTS` or more),
    chunks of `chunk` agents render in forked worker processes, which also format each object's
    YAML (`Manifest.text`). Forking is for the main thread only: called from any other thread,
    it renders in that thread. The result does not depend on `workers` or `chunk`."""
    inputs = loading.load(root)
    problems: list[Problem] = list(inputs.problems)
    try:
        selected = select_envs(inputs, envs, all_envs)
    except InputError as err:
        raise InputError(problems + err.problems) from None
    if agent is not None and agent not in {a.name for a in inputs.agents}:
        raise InputError([*problems, Problem(message=f"no agent named {agent!r}")])
    docs = inputs.agents
    workers = _worker_count(workers, len(docs))
    if chunk is None:
        chunk = max(1, len(docs) if workers <= 1 else math.ceil(
            len(docs) * len(selected) / (workers * TASKS_PER_WORKER)))
    tasks = [_Task(env, start, min(start + chunk, len(docs)), agent, workers > 1, checks)
             for env in selected for start in range(0, max(len(docs), 1), chunk)]
    from agentctl.render import merging
    from agentctl.render.rendering import Renderer

    renderer = Renderer()  # compiled templates, shared by the chunks of one process
    if workers <= 1 or len(tasks) == 1:
        chunks = [_render_chunk(inputs, docs, renderer, task) for task in tasks]
    else:
        chunks = _forked(_render_chunk, (inputs, docs, renderer), tasks, workers)
    result = RenderResult(inputs=inputs)
    for env in selected:
        problems += merging.defaults_problems(inputs, env)
        mine = [c for c in chunks if c.env == env]
        problems += [p for c in mine for p in c.problems]
        result.warnings += [w for c in mine for w in c.warnings]
        result.checked += sum(c.checked for c in mine)
        result.skipped.update(*(c.skipped for c in mine))
        rendered = _assemble(inputs, env, mine, problems)
        result.envs.append(rendered)
    if problems:
        raise InputError(sorted(set(problems), key=_problem_order))
    result.warnings = sorted(set(result.warnings), key=_problem_order)
    return result


def _worker_count(workers: int | None, agents: int) -> int:
    """Processes to use: as asked (None: one per CPU for a large fleet), and 1 outside the main
    thread (forking a process that runs other threads can deadlock the child)."""
    if threading.current_thread() is not threading.main_thread():
        return 1
    if workers is None:
        return (os.cpu_count() or 1) if agents >= PARALLEL_MIN_AGENTS else 1
    return workers


@dataclass(frozen=True)
class _Task:
    env: str
    start: int
    stop: int
    agent: str | None
    formatted: bool
    """Format each object's YAML where it renders (in a worker process, in parallel)."""
    checks: bool


@dataclass
class _Chunk:
    """What rendering some agents for one environment produced (sent back from a worker)."""

    env: str
    manifests: list[Manifest] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    checked: int = 0
    """Objects that passed their Kubernetes schema (with `checks`)."""
    skipped: set[str] = field(default_factory=set)
    """`apiVersion/kind` of objects without a schema here (with `checks`)."""


def _applyset(inputs: Inputs, env: str) -> str:
    parent = applyset_parent_name(inputs.project.metadata.name, env)
    return applyset_id(parent, _environment(inputs, env).spec.namespace)


def _environment(inputs: Inputs, env: str) -> Environment:
    return inputs.environments[env].environment


def _render_chunk(inputs: Inputs, docs: list[AgentDoc], renderer: Renderer,
                  task: _Task) -> _Chunk:
    from agentctl.render import blueprints, formatting, merging
    from agentctl.render.rendering import Rendered

    if task.checks:
        from agentctl.render import validating  # jsonschema and the schemas: only here
    out = _Chunk(env=task.env)
    environment = merging.environment_of(inputs, task.env)
    try:
        resolved = merging.resolve(inputs, task.env, docs[task.start:task.stop])
    except InputError as err:
        out.problems = err.problems
        return out
    applyset = _applyset(inputs, task.env)
    local_blueprints = inputs.root / inputs.project.spec.blueprints
    found: dict[str, blueprints.Blueprint] = {}
    for item in resolved:
        if task.agent is not None and item.name != task.agent:
            continue
        name = item.agent.spec.blueprint
        try:
            blueprint = found.get(name) or blueprints.find(name, local_blueprints, inputs.root)
        except InputError as err:
            out.problems += [p if p.file else item.sources[1].problem(
                ("blueprint",), p.message, field="spec.blueprint") for p in err.problems]
            continue
        found[name] = blueprint
        rendered = Rendered()
        renderer.render(item.agent, environment, blueprint, item.sources, rendered)
        out.problems += rendered.problems
        out.warnings += rendered.warnings
        out.problems += finishing.finish(item.agent, environment, applyset, rendered.manifests,
                                         item.sources, scopes=inputs.project.spec.scopes)
        out.manifests += rendered.manifests
        if task.checks:
            out.warnings += validating.credential_warnings(item.agent, item.sources)
    if task.checks:
        checked = validating.validate_objects(out.manifests)
        out.problems += checked.problems
        out.checked = len(checked.passed)
        out.skipped = {f"{m.api_version}/{m.ref.kind}" for m in checked.skipped}
    if task.formatted and not out.problems:
        formatter = formatting.Formatter()
        for manifest in out.manifests:
            manifest.text = formatter.dump(manifest.body)
    return out


def _assemble(inputs: Inputs, env: str, chunks: list[_Chunk],
              problems: list[Problem]) -> EnvRender:
    """One environment from its chunks: cross-agent checks, apply order, file names."""
    manifests = sorted((m for c in chunks for m in c.manifests), key=lambda m: m.ref)
    problems += finishing.duplicates(m.origin for m in manifests)
    problems += writing.file_names(env, manifests)
    return EnvRender(env, _environment(inputs, env).spec.namespace,
                     _applyset(inputs, env), manifests)


_WORK: tuple[Callable[..., Any], tuple[Any, ...]] | None = None
"""Set only in a worker process, by `_start_worker`: the function and what it works on."""


def _start_worker(fn: Callable[..., Any], state: tuple[Any, ...]) -> None:
    global _WORK  # noqa: PLW0603 - a worker process's own copy, inherited by fork
    _WORK = (fn, state)
    # A worker allocates millions of short-lived objects that reference counting frees; at the
    # default thresholds its cycle collections cost much of its CPU (benchmarks/README.md).
    gc.set_threshold(50_000, 20, 20)


def _in_worker(task: Any) -> Any:
    assert _WORK is not None
    fn, state = _WORK
    return fn(*state, task)


def _forked(fn: Callable[..., T], state: tuple[Any, ...], tasks: list[Any],
            workers: int) -> list[T]:
    """`[fn(*state, task) for task in tasks]` in forked processes: `state` is inherited, not
    pickled; only tasks and results cross."""
    import multiprocessing  # only for a large fleet: a noticeable part of a small one's start
    from concurrent.futures import ProcessPoolExecutor

    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(max_workers=min(workers, len(tasks)), mp_context=context,
                             initializer=_start_worker, initargs=(fn, state)) as pool:
        return list(pool.map(_in_worker, tasks))


def _problem_order(problem: Problem) -> tuple[str, str, int, int, str, str]:
    return (problem.file, problem.obj, problem.line, problem.col, problem.field, problem.message)


def outputs(result: RenderResult) -> dict[str, dict[str, str]]:
    """Each environment's files: name → YAML, and its provenance.json."""
    from agentctl.render import formatting

    files: dict[str, dict[str, str]] = {}
    for env in result.envs:
        texts = formatting.texts(env.manifests)
        files[env.env] = {m.file: text for m, text in zip(env.manifests, texts, strict=True)}
        files[env.env][PROVENANCE] = writing.provenance(env.env, env.applyset,
                                                                env.manifests)
    return files


def stream(result: RenderResult) -> str:
    """Every environment's objects as one multi-document YAML stream, in apply order."""
    from agentctl.render import formatting

    return "".join(formatting.stream(env.manifests) for env in result.envs)


def plan(result: RenderResult, out: Path) -> writing.Plan:
    """What writing the rendered tree under `out` would change, and the warnings about files
    it leaves alone (see writing.py); reads only."""
    return writing.plan(out, outputs(result))


def write(changes: writing.Plan) -> list[str]:
    """Make the changes; return the paths changed."""
    return writing.apply(changes)


def check(changes: writing.Plan) -> None:
    """Raise StaleOutputError listing the changes, if there are any."""
    writing.check(changes)


@dataclass
class ValidateResult:
    render: RenderResult
    passed: int
    skipped: list[str]
    warnings: list[Problem]


def validate(root: Path, envs: tuple[str, ...] = (), all_envs: bool = False,
             strict: bool = False, workers: int | None = 1) -> ValidateResult:
    """Everything render checks, plus every object against the Kubernetes schemas offline and
    credential-looking literals (`render` with `checks`). Without --env, every environment is
    validated. With `strict`, warnings are errors."""
    result = render(root, envs, all_envs or not envs, workers=workers, checks=True)
    if strict and result.warnings:
        raise InputError(result.warnings)
    return ValidateResult(result, result.checked, sorted(result.skipped), result.warnings)


SOURCES = ("committed", "render", "verify")
"""Where diff and reconcile take the desired state from: the committed tree (the reviewed
bytes), a fresh render, or the committed tree after checking that a fresh render matches it."""


@dataclass
class DesiredResult:
    envs: list[DesiredEnv]
    warnings: list[Problem]
    source: str


def desired(root: Path, envs: tuple[str, ...] = (), all_envs: bool = False,
            source: str = "committed") -> DesiredResult:
    """Each selected environment's objects in apply order, from `source` (SOURCES), or one
    InputError with every problem: nothing may reach a cluster when any input is invalid.
    Committed objects are checked against the environment's policy (finishing.check_committed)
    as well as against provenance.json."""
    if source not in SOURCES:
        raise ValueError(source)
    warnings: list[Problem] = []
    if source == "committed":
        inputs = loading.load(root, agents=False)  # the committed tree is what is applied
        if inputs.problems:
            raise InputError(sorted(set(inputs.problems), key=_problem_order))
        selected = select_envs(inputs, envs, all_envs)
        rendered = [_committed(inputs, env, warnings) for env in selected]
    else:
        result = render(root, envs, all_envs, workers=None)
        inputs, rendered, warnings = result.inputs, result.envs, list(result.warnings)
        if source == "verify":
            out = inputs.root / inputs.project.spec.output
            changes = plan(result, out)
            try:
                check(changes)
            except StaleOutputError as err:  # the committed tree is not what renders now
                raise InputError([Problem(file=p.file, message=(
                    f"{p.message} (--verify: the committed tree differs from a fresh render; "
                    "run agentctl render --out)")) for p in err.problems]) from None
            warnings += changes.warnings
    out_envs = []
    for env in rendered:
        spec = _environment(inputs, env.env).spec
        out_envs.append(DesiredEnv(
            env.env, env.namespace, env.applyset,
            applyset_parent_name(inputs.project.metadata.name, env.env), env.manifests,
            spec.prune, spec.cluster.context, spec.cluster.uid, source,
            frozenset(spec.prune_kinds)))
    return DesiredResult(out_envs, warnings, source)


def _committed(inputs: Inputs, env: str, warnings: list[Problem]) -> EnvRender:
    out = inputs.root / inputs.project.spec.output
    committed = reading.read_committed(out, env)
    warnings += committed.warnings
    applyset = _applyset(inputs, env)
    environment = _environment(inputs, env)
    objects, problems = reading.parse_committed(out / env, committed.files)
    manifests = []
    for name, body in objects:
        labels = (body.get("metadata") or {}).get("labels") or {}
        manifest = Manifest(body, str(labels.get(LABEL_AGENT, "")), "", name)
        manifest.file = name
        manifest.digest = body["metadata"]["annotations"][ANNOTATION_DIGEST]
        manifests.append(manifest)
    problems += finishing.check_committed(environment, applyset, manifests,
                                          inputs.project.spec.scopes)
    if committed.applyset != applyset:
        problems.append(Problem(file=str(out / env / PROVENANCE), message=(
            f"records ApplySet {committed.applyset}, but environment {env} is {applyset}: "
            "run agentctl render --out")))
    if problems:
        raise InputError(problems)
    manifests.sort(key=lambda m: m.ref)
    return EnvRender(env, environment.spec.namespace, applyset, manifests)
