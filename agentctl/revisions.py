"""The PR diff: what a change to the project's files changes in the rendered objects, between a
git revision and the working tree, without a cluster.

Input: the project folder (anywhere inside a git repository), a revision, the environments.
Output: per environment an `EnvChanges` whose changes (created | configured | unchanged |
deleted, sorted by object) come from `diffs.compare`, so Secret values and
`last-applied-configuration` copies are masked exactly as in the live diff.

Invariants: the user's checkout is never touched. The base is read with `git archive` into a
temporary folder that is removed afterwards: HEAD, the index, the work tree, the stash and the
worktree list stay as they were, and git runs no hook. A revision can never be read as an
option. Every failure is one `AgentctlError` line; nothing is printed.
"""

from __future__ import annotations

import os
import subprocess
import tarfile
import tempfile
from dataclasses import replace
from pathlib import Path

from agentctl.diffs import Change, EnvChanges, compare
from agentctl.errors import InputError, Problem, ToolingError
from agentctl.manifests import Manifest, ObjectRef
from agentctl.render import loading, pipeline

WORKING_TREE = "working tree"


def diff_base(root: Path, base: str, envs: tuple[str, ...] = (),
              all_envs: bool = False) -> list[EnvChanges]:
    """The changes from the project as committed at `base` to the project in the working tree,
    per environment (sorted by name). An environment that exists on one side only has every
    object created or deleted. Raises InputError for a bad revision or a project that does not
    render at either side (the base's problems start with `<base>:`), ToolingError without git.
    """
    root = root.resolve()
    if not root.is_dir():
        raise InputError([Problem(file=str(root), message="is not a folder")])
    commit = resolve(root, base)
    with tempfile.TemporaryDirectory(prefix="agentctl-base-") as scratch:
        old_root, folder = _export(root, base, commit, Path(scratch))
        new_names = _env_names(root, None)
        old_names = _env_names(old_root, base, folder)
        selected = _select(old_names | new_names, envs, all_envs)
        new = _render(root, None, [e for e in selected if e in new_names])
        old = _render(old_root, base, [e for e in selected if e in old_names], folder)
    source = f"{base}..{WORKING_TREE}"
    return [_env_changes(env, old.get(env), new.get(env), source) for env in selected]


def _git(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """git, never prompting for credentials and taking no optional locks."""
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_OPTIONAL_LOCKS": "0"}
    try:
        return subprocess.run(["git", *args], cwd=cwd, env=env, check=False,
                              capture_output=True, text=True, encoding="utf-8",
                              errors="replace")
    except FileNotFoundError as err:
        raise ToolingError("git is not installed (or not on PATH): --base reads the revision "
                           "with git") from err


def _first_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0].removeprefix("fatal: ").removeprefix("error: ") if lines else ""


def resolve(root: Path, base: str) -> str:
    """The commit id that `base` names, in the repository that holds `root`."""
    if not base or base.startswith("-") or any(ord(c) < 0x20 or c == "\x7f" for c in base):
        raise InputError([Problem(field="--base", message=(
            f"{base!r} is not a git revision (a branch, tag or commit; it may not start "
            "with '-')"))])
    inside = _git(root, "rev-parse", "--is-inside-work-tree")
    if inside.returncode != 0 or inside.stdout.strip() != "true":
        why = _first_line(inside.stderr)
        raise InputError([Problem(field="--base", message=(
            f"{root} is not in a git repository: --base compares git revisions"
            + (f" (git: {why})" if why and "not a git repository" not in why else "")))])
    found = _git(root, "rev-parse", "--verify", "--quiet", f"{base}^{{commit}}")
    commit = found.stdout.strip()
    if found.returncode != 0 or not commit:
        raise InputError([Problem(field="--base", message=(
            f"unknown revision {base!r}: no commit of that name in this repository (in CI, "
            "fetch it: actions/checkout with fetch-depth: 0)"))])
    return commit


def _export(root: Path, base: str, commit: str, scratch: Path) -> tuple[Path, str]:
    """The project folder as committed at `commit`, extracted under `scratch`: its path there,
    and its path in the repository ('' at the top)."""
    found = _git(root, "rev-parse", "--show-toplevel", "--show-prefix")
    lines = found.stdout.splitlines()
    if found.returncode != 0 or len(lines) != 2:
        raise InputError(f"{root}: {_first_line(found.stderr) or 'no git work tree'}")
    top, folder = Path(lines[0]), lines[1].rstrip("/")
    where = f"{commit}:{folder}"  # the commit id first: never an option
    kind = _git(top, "cat-file", "-t", where)
    if kind.returncode != 0 or kind.stdout.strip() != "tree":
        raise InputError([Problem(field="--base", message=(
            f"the project folder {folder or '.'!r} does not exist at {base}"))])
    archive = scratch / "base.tar"
    made = _git(top, "archive", "--format=tar", f"--output={archive}", where)
    if made.returncode != 0:
        raise InputError(f"{base}: git archive failed: {_first_line(made.stderr)}")
    project = scratch / "project"
    project.mkdir()
    with tarfile.open(archive) as tar:
        try:
            tar.extractall(project, filter="data")  # no absolute paths, '..' or links out
        except tarfile.FilterError as err:
            link = isinstance(err, tarfile.AbsoluteLinkError | tarfile.LinkOutsideDestinationError)
            raise InputError([Problem(file=f"{base}:{_under(folder, err.tarinfo.name)}", message=(
                "is a link out of the project; --base cannot read it at a past revision"
                if link else f"cannot be extracted safely ({type(err).__name__})"))]) from None
    archive.unlink()
    return project, folder


def _under(folder: str, member: str) -> str:
    return f"{folder}/{member}" if folder else member


def _from_base(problem: Problem, base: str, root: Path, folder: str) -> Problem:
    """A problem of the base's render (the project extracted at `root`, from `folder` of the
    repository), marked as such and naming no temporary path: `<base>:<path>` as git names a
    file at a revision, else `<base>: ` before the line."""
    hidden = str(root)

    def clean(text: str) -> str:
        return text.replace(hidden + os.sep, "").replace(hidden, ".")

    problem = replace(problem, file=clean(problem.file), message=clean(problem.message),
                      obj=clean(problem.obj))
    if problem.file and not os.path.isabs(problem.file):
        return replace(problem, file=f"{base}:{_under(folder, problem.file)}")
    if problem.file:
        return replace(problem, file=f"{base}: {problem.file}")
    if problem.obj:
        return replace(problem, obj=f"{base}: {problem.obj}")
    return replace(problem, message=f"{base}: {problem.message}")


def _env_names(root: Path, base: str | None, folder: str = "") -> set[str]:
    """The environments the project at `root` declares. Any problem loading it is raised now
    (marked as the base's with `base`): an environment file that does not load must fail the
    diff, never show its objects as deleted."""
    inputs = loading.load(root)
    if inputs.problems:
        if base is None:
            raise InputError(inputs.problems)
        raise InputError([_from_base(p, base, root, folder) for p in inputs.problems])
    return set(inputs.environments)


def _select(known: set[str], envs: tuple[str, ...], all_envs: bool) -> list[str]:
    """--env, --all-envs or the only environment, among those of either side."""
    names = sorted(known)
    if not names:
        raise InputError("no valid environment at either revision: add environments/<name>.yaml "
                         "(kind: Environment), or run `agentctl init`")
    if all_envs:
        return names
    if envs:
        unknown = [e for e in envs if e not in known]
        if unknown:
            raise InputError([Problem(message=f"unknown environment {e!r} at both revisions "
                                      f"(known: {', '.join(names)})") for e in unknown])
        return sorted(set(envs))
    if len(names) == 1:
        return names
    raise InputError(f"choose an environment with --env or --all-envs (environments: "
                     f"{', '.join(names)})")


def _render(root: Path, base: str | None, envs: list[str],
            folder: str = "") -> dict[str, pipeline.EnvRender]:
    """Each of `envs` rendered from the project at `root` (the base's problems marked)."""
    if not envs:
        return {}
    try:
        result = pipeline.render(root, tuple(envs), workers=None)
    except InputError as err:
        if base is None:
            raise
        raise InputError([_from_base(p, base, root, folder) for p in err.problems]) from None
    return {env.env: env for env in result.envs}


def _env_changes(env: str, old: pipeline.EnvRender | None, new: pipeline.EnvRender | None,
                 source: str) -> EnvChanges:
    before = _by_ref(old.manifests if old else [])
    after = _by_ref(new.manifests if new else [])
    changes: list[Change] = []
    for ref in sorted(before.keys() | after.keys()):
        was, now = before.get(ref), after.get(ref)
        api_version = (now or was).api_version  # type: ignore[union-attr]
        changes.append(compare(ref, api_version, was.body if was else None,
                               now.body if now else None))
    namespace = (new or old).namespace  # type: ignore[union-attr]
    return EnvChanges(env, namespace, changes, source=source)


def _by_ref(manifests: list[Manifest]) -> dict[ObjectRef, Manifest]:
    return {m.ref: m for m in manifests}
