"""The only module that chains stages: load → merge → render → finish → write/check/validate.
It never prints; it returns results and raises `AgentctlError`s carrying every problem."""

from __future__ import annotations

import gc
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from agentctl.errors import InputError, Problem, StaleOutputError
from agentctl.manifests import Manifest, Origin, applyset_id, applyset_parent_name
from agentctl.render import blueprints, finishing, loading, merging, writing
from agentctl.render.inputs import AgentDoc, Inputs
from agentctl.render.rendering import Rendered, Renderer, forget_templates


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
    order: list[str] = field(default_factory=list)
    """Output file names in apply order."""


@dataclass(frozen=True)
class Sync:
    """Compare rendered files with the output tree `out` (None: the project's `output` folder)
    where they render, in the workers, and with a `stage` folder (see `staging`) write those
    that differ there, for `write` to move into place."""

    out: Path | None = None
    stage: Path | None = None


@dataclass
class RenderResult:
    inputs: Inputs
    envs: list[EnvRender] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    sync: Sync | None = None
    """How the files were compared and staged, with `out` resolved."""

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
TASKS_PER_WORKER = 8
"""Chunks of agents per worker: small enough for the workers to finish together."""


def render(root: Path, envs: tuple[str, ...] = (), all_envs: bool = False,
           agent: str | None = None, workers: int | None = None,
           dump: bool = False, checks: bool = False,
           objects: bool = True, chunk: int | None = None,
           sync: Sync | None = None) -> RenderResult:
    """Render the selected environments; raise one InputError with every problem.

    Agents render independently, so a large fleet is cut into chunks of `chunk` agents per
    environment, rendered by `workers` processes (default one per CPU; 1 renders in this
    process). With `dump`, each chunk's output files are formatted where it rendered; with
    `checks`, its objects are checked against the Kubernetes schemas there too, and
    credential-looking literal env values are added to the warnings. Without `objects`, the
    objects themselves are not kept (only counts, files and checks): cheaper from a worker.
    With `sync`, files are compared with the output tree (and staged) where they render
    instead of being sent back. The result does not depend on `workers` or `chunk`."""
    forget_templates()
    inputs = loading.load(root)
    problems: list[Problem] = list(inputs.problems)
    try:
        selected = select_envs(inputs, envs, all_envs)
    except InputError as err:
        raise InputError(problems + err.problems) from None
    if agent is not None and agent not in {a.name for a in inputs.agents}:
        raise InputError([*problems, Problem(message=f"no agent named {agent!r}")])
    docs = inputs.agents
    if workers is None:
        small = len(docs) < PARALLEL_MIN_AGENTS or agent is not None
        workers = 1 if small else (os.cpu_count() or 1)
    if chunk is None:  # equal chunks, TASKS_PER_WORKER of them per worker over all envs
        per_env = -(-workers * TASKS_PER_WORKER // len(selected))
        chunk = max(1, -(-len(docs) // per_env))
    tasks = [(env_name, start, min(start + chunk, len(docs)))
             for env_name in selected for start in range(0, max(len(docs), 1), chunk)]
    if sync is not None:
        sync = Sync(sync.out or root / inputs.project.spec.output, sync.stage)
    flags = _Flags(dump or sync is not None, checks, objects, agent, sync)
    if workers <= 1 or len(tasks) == 1:
        chunks = [_render_chunk(inputs, docs, task, flags) for task in tasks]
    else:
        chunks = _render_in_processes(inputs, docs, tasks, flags, min(workers, len(tasks)))
    result = RenderResult(inputs=inputs, sync=sync)
    for env_name in selected:
        problems += merging.defaults_problems(inputs, env_name)
        mine = [c for c in chunks if c.env == env_name]
        env, env_problems = _assemble(inputs, env_name, mine, flags)
        problems += env_problems
        result.warnings += [w for c in mine for w in c.warnings]
        result.envs.append(env)
    if problems:
        raise InputError(sorted(set(problems), key=_problem_order))
    result.warnings = sorted(set(result.warnings), key=_problem_order)
    return result


@dataclass(frozen=True)
class _Flags:
    dump: bool
    checks: bool
    objects: bool
    agent: str | None
    """Render only this agent (every agent is still merged and checked)."""
    sync: Sync | None


@dataclass
class _Chunk:
    """What rendering some agents for one environment produced (sent back from a worker)."""

    env: str
    origins: list[Origin] = field(default_factory=list)
    manifests: list[Manifest] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)
    synced: dict[str, str] = field(default_factory=dict)
    provenance: list[dict[str, str]] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    checked: int = 0
    skipped: set[str] = field(default_factory=set)


def _applyset(inputs: Inputs, env_name: str) -> str:
    parent = applyset_parent_name(inputs.project.metadata.name, env_name)
    return applyset_id(parent, merging.environment_of(inputs, env_name).spec.namespace)


def _render_chunk(inputs: Inputs, docs: list[AgentDoc], task: tuple[str, int, int],
                  flags: _Flags) -> _Chunk:
    env_name, start, stop = task
    out = _Chunk(env=env_name)
    if flags.checks:
        from agentctl.render import validating  # jsonschema and the schemas: only when validating
    environment = merging.environment_of(inputs, env_name)
    try:
        resolved = merging.resolve(inputs, env_name, docs[start:stop])
    except InputError as err:
        out.problems = err.problems
        return out
    applyset = _applyset(inputs, env_name)
    renderer = Renderer()
    local_blueprints = inputs.root / inputs.project.spec.blueprints
    manifests: list[Manifest] = []
    for item in resolved:
        if flags.agent is not None and item.name != flags.agent:
            continue
        try:
            blueprint = blueprints.find(item.agent.spec.blueprint, local_blueprints, inputs.root)
        except InputError as err:
            out.problems += [p if p.file else item.sources[1].problem(
                ("blueprint",), p.message, field="spec.blueprint") for p in err.problems]
            continue
        rendered = Rendered()
        renderer.render(item.agent, environment, blueprint, item.sources, rendered)
        out.problems += rendered.problems
        out.warnings += rendered.warnings
        out.problems += finishing.finish(item.agent, environment, applyset, rendered.manifests,
                                         item.sources)
        manifests += rendered.manifests
        if flags.checks:
            out.warnings += validating.credential_warnings(item.agent, item.sources)
    out.origins = [m.origin for m in manifests]
    if flags.checks:
        checked = validating.validate_objects(manifests)
        out.problems += checked.problems
        out.checked = len(checked.passed)
        out.skipped = {f"{m.body['apiVersion']}/{m.body['kind']}" for m in checked.skipped}
    if flags.dump and not out.problems:
        files = ((m.file_name, writing.dump(m.body)) for m in manifests)
        if flags.sync is None:
            out.files = dict(files)
        else:
            assert flags.sync.out is not None
            out.synced = writing.sync(flags.sync.out, env_name, files, flags.sync.stage)
        out.provenance = [writing.provenance_entry(m) for m in manifests]
    if flags.objects:
        out.manifests = manifests
    return out


def _assemble(inputs: Inputs, env_name: str, chunks: list[_Chunk],
              flags: _Flags) -> tuple[EnvRender, list[Problem]]:
    """One environment from its chunks: cross-agent checks, apply order, output files."""
    problems = [p for c in chunks for p in c.problems]
    origins = sorted((o for c in chunks for o in c.origins), key=lambda o: o.ref)
    problems += finishing.duplicates(origins)
    manifests = sorted((m for c in chunks for m in c.manifests), key=lambda m: m.ref)
    applyset = _applyset(inputs, env_name)
    env = EnvRender(env_name, merging.environment_of(inputs, env_name).spec.namespace, applyset,
                    manifests, count=len(origins), checked=sum(c.checked for c in chunks),
                    skipped=frozenset().union(*(c.skipped for c in chunks)),
                    order=[o.ref.file_name for o in origins])
    if flags.dump and not problems:
        files = {name: text for c in chunks for name, text in c.files.items()}
        entries = [e for c in chunks for e in c.provenance]
        env.output = writing.EnvOutput(
            env_name, writing.with_provenance(files, env_name, applyset, entries),
            synced={name: status for c in chunks for name, status in c.synced.items()})
    return env, problems


_FORKED: tuple[Inputs, list[AgentDoc], _Flags] | None = None
"""What forked workers render from: inherited, not pickled."""


def _render_forked(task: tuple[str, int, int]) -> _Chunk:
    assert _FORKED is not None
    inputs, docs, flags = _FORKED
    return _render_chunk(inputs, docs, task, flags)


def _worker_gc() -> None:
    """A worker allocates millions of short-lived objects that reference counting frees; the
    default thresholds would run the cycle collector hundreds of times per chunk for little."""
    gc.set_threshold(50_000, 20, 20)


def _render_in_processes(inputs: Inputs, docs: list[AgentDoc], tasks: list[tuple[str, int, int]],
                         flags: _Flags, workers: int) -> list[_Chunk]:
    import multiprocessing  # only for a large fleet: a noticeable part of a small one's start
    from concurrent.futures import ProcessPoolExecutor

    global _FORKED  # noqa: PLW0603 - handed to forked workers without pickling
    _FORKED = (inputs, docs, flags)
    gc.freeze()  # the workers' collections skip (and so do not copy) what they inherit
    try:
        context = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(max_workers=workers, mp_context=context,
                                 initializer=_worker_gc) as pool:
            return list(pool.map(_render_forked, tasks))
    finally:
        gc.unfreeze()
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


def stream(result: RenderResult) -> str:
    """Every environment's objects as one multi-document YAML stream, in apply order (from the
    files formatted where they rendered, when there are any)."""
    parts: list[str] = []
    for env in result.envs:
        if env.output is not None and not env.output.synced:
            parts += ["---\n" + env.output.files[name] for name in env.order]
        else:
            parts.append(writing.stream(env.manifests))
    return "".join(parts)


@contextmanager
def staging(out_dir: Path) -> Iterator[Path]:
    """A scratch folder inside `out_dir` (so files move in by rename) for `Sync.stage`; removed
    afterwards with whatever is left in it, and `out_dir` too if it was created for it and
    stayed empty (a failed render writes nothing)."""
    created = not out_dir.exists()
    out_dir.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=".agentctl-staging-", dir=out_dir))
    try:
        yield stage
    finally:
        shutil.rmtree(stage, ignore_errors=True)
        if created and not any(out_dir.iterdir()):
            out_dir.rmdir()


def write(result: RenderResult, out_dir: Path) -> list[str]:
    """Write the rendered tree, one environment per thread (file creation is kernel time, which
    threads spread over the cores); return the paths that changed."""
    from concurrent.futures import ThreadPoolExecutor  # not needed to print a render

    stage = result.sync.stage if result.sync is not None else None
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        changed = pool.map(lambda output: writing.write(out_dir, output, stage), outputs(result))
        return [path for paths in changed for path in paths]


def check(result: RenderResult, out_dir: Path) -> None:
    """Raise StaleOutputError listing stale, missing and orphan files."""
    problems: list[Problem] = []
    for output in outputs(result):
        problems += writing.check(out_dir, output)
    if problems:
        raise StaleOutputError(problems)
