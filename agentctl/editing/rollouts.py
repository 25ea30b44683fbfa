"""Progressive delivery as edits of the environment files: `rollout start | weight | promote |
abort` and `promote --from --to`. Each computes changes to one environment file, splices them
in (every other byte kept), checks that the whole project still renders with the edited file,
and returns the old and new text; the caller prints the diff and writes it (or not, with
--dry-run). Nothing here touches a cluster.

Where the changes go (AGENT_SPEC §3): a canary's version lives in the environment's per-agent
override at `rollout.canary.patch` (a JSON Merge Patch over the agent's spec that only the
canary track runs), its traffic at `rollout.canary.weight`; a blue-green agent's versions live
in `rollout.blueGreen.slots.<slot>`, and a new version always goes to the *inactive* slot, so
the live active slot never changes in place.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentctl.editing import splicing
from agentctl.errors import InputError, Problem
from agentctl.model.delivery import NOT_PATCHABLE, PATCHABLE
from agentctl.model.delivery import unpatchable as _unpatchable

SLOTS = ("blue", "green")
Change = tuple[tuple[str, ...], Any]
"""A key path in the environment file and its new value (`DELETE` removes the key)."""


@dataclass(frozen=True)
class Edit:
    """One environment file, before and after."""

    path: Path
    before: str
    after: str


def parse_sets(sets: list[str]) -> dict[str, Any]:
    """`--set runtime.image=x:2 --set model.id=m` → a nested patch; each value is read as a
    YAML scalar (`3` is a number, `"3"` a string)."""
    from agentctl.render import yamlparsing

    patch: dict[str, Any] = {}
    problems = []
    for item in sets:
        path, sep, raw = item.partition("=")
        keys = path.split(".")
        if not sep or not all(keys):
            problems.append(Problem(field="--set", message=f"{item!r}: expected path=value"))
            continue
        why = _unpatchable(tuple(keys))
        if why:
            problems.append(Problem(field="--set", message=f"{path}: {why}"))
            continue
        try:
            docs = yamlparsing.load_all(raw) if raw.strip() else [""]
        except Exception:  # not YAML: the text itself
            docs = [raw]
        value = docs[0] if len(docs) == 1 else raw
        if isinstance(value, (dict, list)):
            value = raw
        node = patch
        for key in keys[:-1]:
            node = node.setdefault(key, {})
            if not isinstance(node, dict):
                problems.append(Problem(field="--set", message=f"{path}: set twice"))
                break
        else:
            node[keys[-1]] = value
    if problems:
        raise InputError(problems)
    if not patch:
        raise InputError([Problem(field="--set", message="give at least one --set path=value")])
    return patch


def leaves(value: Any, prefix: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """(path, value) of every leaf of a patch (lists and empty maps are leaves)."""
    if isinstance(value, dict) and value:
        for key, item in value.items():
            yield from leaves(item, (*prefix, str(key)))
    else:
        yield prefix, value


@dataclass
class Target:
    """An agent in an environment: its file and its effective rollout."""

    root: Path
    env: str
    agent: str
    file: Path
    strategy: str
    active_slot: str
    spec: dict[str, Any]
    """The agent's effective spec there (camelCase, as templates see it)."""

    @property
    def base(self) -> tuple[str, ...]:
        return ("spec", "agents", self.agent)

    @property
    def inactive_slot(self) -> str:
        return SLOTS[1 - SLOTS.index(self.active_slot)]


def target(root: Path, env: str, agent: str) -> Target:
    """Find `agent` in environment `env` (InputError naming what is unknown)."""
    from agentctl.render import loading, merging

    inputs = loading.load(root)
    if inputs.problems:
        raise InputError(inputs.problems)
    if env not in inputs.environments:
        raise InputError([Problem(field="--env", message=(
            f"no environment {env!r} (known: {', '.join(sorted(inputs.environments))})"))])
    docs = [d for d in inputs.agents if d.name == agent]
    if not docs:
        raise InputError([Problem(message=f"no agent named {agent!r}")])
    [resolved] = merging.resolve(inputs, env, docs)
    spec = resolved.agent.spec.model_dump(mode="json", by_alias=True)
    rollout = spec.get("rollout") or {}
    blue_green = rollout.get("blueGreen") or {}
    return Target(root, env, agent, inputs.root / inputs.environments[env].source.file,
                  str(rollout.get("strategy")), str(blue_green.get("activeSlot") or "blue"),
                  spec)


def _edits(text: str, changes: list[Change]) -> str:
    """Apply the changes in order."""
    for path, value in changes:
        text = splicing.delete(text, path) if value is DELETE else splicing.set_value(
            text, path, value)
    return text


DELETE = object()
"""A change that removes its key."""


def _need(t: Target, strategy: str, verb: str) -> None:
    if t.strategy != strategy:
        raise InputError([Problem(message=(
            f"agent {t.agent} uses rollout strategy {t.strategy} in environment {t.env}; "
            f"{verb} needs {strategy}"))])


def start(t: Target, patch: dict[str, Any], weight: int | None) -> list[Change]:
    """The new version on the canary track (and its weight), or in the inactive slot: the
    patch replaces the track's earlier one (a start names a whole version)."""
    if t.strategy == "Canary":
        changes: list[Change] = [
            ((*t.base, "rollout", "canary", "patch"), patch)]
        if weight is not None:
            changes.append(((*t.base, "rollout", "canary", "weight"), weight))
        return changes
    if t.strategy == "BlueGreen":
        if weight is not None:
            raise InputError([Problem(field="--weight", message=(
                "a blue-green agent has no weight: `rollout promote` switches the slots"))])
        return [((*t.base, "rollout", "blueGreen", "slots", t.inactive_slot), patch)]
    raise InputError([Problem(message=(
        f"agent {t.agent} uses rollout strategy {t.strategy} in environment {t.env}; a rollout "
        "needs Canary or BlueGreen"))])


def weight(t: Target, value: int) -> list[Change]:
    _need(t, "Canary", "rollout weight")
    if not 0 <= value <= 100:
        raise InputError([Problem(field="WEIGHT", message="a weight is 0 to 100")])
    return [((*t.base, "rollout", "canary", "weight"), value)]


def promote(t: Target) -> list[Change]:
    """Canary: the patch becomes the environment's override of the spec, the weight 0 and
    the patch gone. Blue-green: the inactive slot becomes active (the old slot keeps its
    version, for an instant rollback)."""
    if t.strategy == "BlueGreen":
        return [((*t.base, "rollout", "blueGreen", "activeSlot"), t.inactive_slot)]
    _need(t, "Canary", "rollout promote")
    patch = ((t.spec.get("rollout") or {}).get("canary") or {}).get("patch")
    if not patch:
        raise InputError([Problem(message=(
            f"agent {t.agent} has no canary patch in environment {t.env}: nothing to promote"))])
    changes = [((*t.base, *path), value) for path, value in leaves(patch)]
    return [*changes, ((*t.base, "rollout", "canary", "weight"), 0),
            ((*t.base, "rollout", "canary", "patch"), DELETE)]


def abort(t: Target) -> list[Change]:
    """Canary: weight 0 and the patch gone. Blue-green: the inactive slot's version gone."""
    if t.strategy == "BlueGreen":
        return [((*t.base, "rollout", "blueGreen", "slots", t.inactive_slot), DELETE)]
    _need(t, "Canary", "rollout abort")
    return [((*t.base, "rollout", "canary", "weight"), 0),
            ((*t.base, "rollout", "canary", "patch"), DELETE)]


def between(source: Target, dest: Target, only: list[str] | None
            ) -> list[Change]:
    """`promote --from --to`: the fields of `source`'s effective spec that differ in `dest`,
    into `dest`'s override (or its inactive slot, for blue-green)."""
    wanted = [tuple(p.split(".")) for p in only] if only else [(s,) for s in PATCHABLE]
    problems = [Problem(field="--only", message=f"{'.'.join(p)}: {why}")
                for p in wanted if (why := _unpatchable(p))]
    if problems:
        raise InputError(problems)
    found: dict[tuple[str, ...], Any] = {}
    for path in wanted:
        here, there = _dig(source.spec, path), _dig(dest.spec, path)
        for leaf, value in leaves(here, path):
            if any(leaf[:len(p)] == p for p in NOT_PATCHABLE):
                continue
            if _dig(dest.spec, leaf) != value:
                found[leaf] = value
        if here is None and there is not None:
            found[path] = None
    if dest.strategy == "BlueGreen":
        slot = (*dest.base, "rollout", "blueGreen", "slots", dest.inactive_slot)
        return [((*slot, *path), value) for path, value in found.items()]
    return [((*dest.base, *path), value) for path, value in found.items()]


def _dig(value: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    return value


def edit(t: Target, changes: list[Change]) -> Edit:
    """The environment file with the changes, checked: the project must still render with it
    (in a copy of the project; nothing is written here)."""
    if not os.stat(t.file).st_mode & 0o222 or not os.access(t.file, os.W_OK):
        raise InputError([Problem(file=str(t.file), message="read-only: nothing was changed")])
    before = t.file.read_text(encoding="utf-8")
    try:
        after = _edits(before, changes)
    except splicing.EditError as err:
        raise InputError([Problem(file=str(t.file), line=err.line, message=str(err))]) from None
    _renders(t, after)
    return Edit(t.file, before, after)


def _renders(t: Target, text: str) -> None:
    from agentctl.render import pipeline

    with tempfile.TemporaryDirectory(prefix="agentctl-edit-") as tmp:
        copy = Path(tmp) / "project"
        shutil.copytree(t.root, copy, symlinks=True,
                        ignore=shutil.ignore_patterns(".git", "rendered", ".venv"))
        relative = t.file.relative_to(t.root)
        (copy / relative).write_text(text, encoding="utf-8")
        try:
            pipeline.render(copy, (t.env,))
        except InputError as err:
            raise InputError([Problem(file=str(t.root / p.file[len(str(copy)) + 1:])
                                      if p.file.startswith(str(copy)) else p.file,
                                      line=p.line, col=p.col, field=p.field, message=p.message,
                                      obj=p.obj) for p in err.problems]) from None


def write(result: Edit) -> None:
    """Replace the file atomically (a temporary file beside it, renamed over it)."""
    fd, temp = tempfile.mkstemp(prefix=".agentctl-", dir=result.path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(result.after)
        shutil.copymode(result.path, temp)
        os.replace(temp, result.path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
