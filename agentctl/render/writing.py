"""Stage 5, write: the rendered tree `DIR/<env>/<namespace>/<kind>-<name>.yaml` (cluster-scoped
objects under `_cluster/`) and `DIR/<env>/provenance.json`, or a check of it.

Paths built from data are hostile, and so is the previous `provenance.json` (it is a file in the
user's tree). So:

- every file name is built from validated parts (`file_names`) and every step below `DIR` is
  opened without following a symlink: a symlink anywhere under `DIR/<env>/` where agentctl would
  read, write or delete is an error (exit 2) and nothing is written;
- a file is deleted only when the previous `provenance.json` lists it, its name is one agentctl
  could have written, it is a regular file reached without a symlink, its content still has the
  recorded digest (nobody changed it since), and this render no longer produces it;
- every other file under `DIR/<env>/` is *foreign*: named in a warning, never touched;
- every file, `provenance.json` last, is written whole to a temporary file beside it and renamed
  into place, so a reader never sees half a file.

`plan` decides everything first (reading only); `apply` then writes. A render that failed never
reaches here, so the tree changes only after every environment rendered cleanly.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from agentctl.errors import InputError, Problem, StaleOutputError
from agentctl.manifests import Manifest, digest
from agentctl.render import yamlparsing
from agentctl.render.trees import FILE, PROVENANCE, Tree, unsafe

_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_NAMESPACE = re.compile(_LABEL)
_GROUP = re.compile(rf"{_LABEL}(\.{_LABEL})*")
_NAME = re.compile(r"[a-z0-9]([-a-z0-9:]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9:]*[a-z0-9])?)*")
"""DNS-1123 subdomains, plus `:` (RBAC names such as `system:auth-delegator`)."""
_KIND = re.compile(r"[A-Za-z][A-Za-z0-9]{0,62}")


def file_names(env: str, manifests: list[Manifest]) -> list[Problem]:
    """Set each object's `file` (relative to `DIR/<env>/`) from its validated namespace, kind
    and name; the API group joins the kind when two groups render the same kind and name.
    Return a problem per object whose parts cannot name a file."""
    problems: list[Problem] = []
    plain: dict[str, list[Manifest]] = {}
    for m in manifests:
        ref = m.ref
        bad = [f"{what} {value!r}" for what, value, pattern, limit in (
            ("namespace", ref.namespace, _NAMESPACE, 63), ("kind", ref.kind, _KIND, 63),
            ("API group", ref.group, _GROUP, 253), ("name", ref.name, _NAME, 253))
            if (value or what in ("kind", "name"))
            and (len(value) > limit or not pattern.fullmatch(value))]
        if bad:
            problems.append(Problem(obj=str(ref), message=(
                f"{', '.join(bad)} cannot name a file in {env}/ (namespaces and names are "
                f"DNS-1123, kinds identifiers) ({m.template})")))
            continue
        m.file = f"{ref.namespace or '_cluster'}/{ref.kind.lower()}-{ref.name}.yaml"
        plain.setdefault(m.file, []).append(m)
    for same in plain.values():
        if len({m.ref.group for m in same}) > 1:
            for m in same:
                ref = m.ref
                m.file = (f"{ref.namespace or '_cluster'}/{ref.kind.lower()}."
                          f"{ref.group or 'core'}-{ref.name}.yaml")
    claimed: dict[str, Manifest] = {}
    for m in manifests:
        if not m.file:
            continue
        if len(m.file.rpartition("/")[2].encode()) > _NAME_MAX:
            problems.append(Problem(obj=str(m.ref), message=(
                f"the file name {m.file.rpartition('/')[2]} would be longer than {_NAME_MAX} "
                f"bytes ({m.template})")))
        other = claimed.setdefault(m.file, m)
        if other is not m:  # kinds that differ only in case, or a group and a name that merge
            problems.append(Problem(obj=str(m.ref), message=(
                f"would be written to {env}/{m.file}, as {other.ref.group or 'core'} "
                f"{other.ref} is ({m.template})")))
    return problems


_NAME_MAX = 250
"""Bytes of a file name (most filesystems allow 255)."""


def provenance(env: str, applyset: str, manifests: list[Manifest]) -> str:
    """`provenance.json`: every object with its file and digest, sorted by file."""
    objects = sorted(({"apiVersion": m.api_version, "kind": m.ref.kind,
                       "namespace": m.ref.namespace, "name": m.ref.name, "file": m.file,
                       "digest": m.digest} for m in manifests), key=lambda o: o["file"])
    document = {"environment": env, "applyset": applyset, "objects": objects}
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


@dataclass
class EnvPlan:
    """What writing one environment's folder would change."""

    env: str
    files: dict[str, bytes]
    """Every file the folder must hold (provenance.json included): name → content."""
    write: list[str] = field(default_factory=list)
    """Files that are missing or differ."""
    missing: set[str] = field(default_factory=set)
    delete: list[str] = field(default_factory=list)
    """Files the previous render wrote, unchanged since, that this render no longer produces."""


@dataclass
class Plan:
    out: Path
    envs: list[EnvPlan] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)

    @property
    def changes(self) -> list[str]:
        return sorted(f"{e.env}/{name}" for e in self.envs for name in (*e.write, *e.delete))


def _previous(tree: Tree, env: str, problems: list[Problem]) -> dict[str, str]:
    """The previous render's files and digests, from an untrusted `provenance.json`: entries
    that do not name a file agentctl could have written are ignored."""
    try:
        data = tree.read((env, PROVENANCE))
    except OSError as err:
        problems.append(unsafe(tree, (env, PROVENANCE), err))
        return {}
    try:
        objects = json.loads(data or b"{}").get("objects", [])
        return {o["file"]: o["digest"] for o in objects
                if isinstance(o, dict) and isinstance(o.get("file"), str)
                and isinstance(o.get("digest"), str) and FILE.fullmatch(o["file"])}
    except (ValueError, AttributeError, TypeError):
        return {}


def _unchanged(data: bytes, recorded: str) -> bool:
    """Whether a file still holds the object whose digest provenance.json recorded (read with
    the loader that refuses alias bombs: the file may have been replaced by anyone)."""
    try:
        docs = yamlparsing.load_all(data.decode("utf-8"))
    except (yaml.YAMLError, yamlparsing.TooDeepError, ValueError, RecursionError):
        return False
    return len(docs) == 1 and isinstance(docs[0], dict) and digest(docs[0]) == recorded


def plan(out: Path, outputs: dict[str, dict[str, str]]) -> Plan:
    """Compare each environment's files (`env` → name → content, provenance.json included)
    with `out/<env>/`; raise InputError naming every path a symlink makes unsafe. Reads only."""
    result = Plan(out)
    problems: list[Problem] = []
    tree = Tree(out, create=False)
    try:
        for env, files in outputs.items():
            env_plan = EnvPlan(env, {name: text.encode() for name, text in files.items()})
            previous = _previous(tree, env, problems)
            for name, data in env_plan.files.items():
                parts = (env, *name.split("/"))
                try:
                    current = tree.read(parts)
                except OSError as err:
                    problems.append(unsafe(tree, parts, err))
                    continue
                if current != data:
                    env_plan.write.append(name)
                    if current is None:
                        env_plan.missing.add(name)
            for name in sorted(set(previous) - set(files)):
                parts = (env, *name.split("/"))
                try:
                    current = tree.read(parts)
                except OSError:
                    continue  # not a file agentctl wrote, whatever it is now: left alone
                if current is None:
                    continue
                if _unchanged(current, previous[name]):
                    env_plan.delete.append(name)
                else:
                    result.warnings.append(Problem(file=str(out / env / name), message=(
                        "changed since agentctl wrote it: kept (delete it if it is no longer "
                        "wanted)")))
            try:
                known = set(files) | set(env_plan.delete)
                for parts in tree.walk((env,)):
                    name = "/".join(parts[1:])
                    if name not in known and not name.startswith("."):
                        result.warnings.append(Problem(file=str(out.joinpath(*parts)), message=(
                            "foreign file (not written by agentctl): left alone, never "
                            "applied")))
            except OSError as err:
                problems.append(unsafe(tree, (env,), err))
            result.envs.append(env_plan)
    finally:
        tree.close()
    if problems:
        raise InputError(sorted(set(problems)))
    return result


def apply(result: Plan) -> list[str]:
    """Write and delete what `plan` found (provenance.json last); return the changed paths."""
    tree = Tree(result.out, create=True)
    try:
        for env_plan in result.envs:
            for name in sorted(env_plan.write, key=lambda n: n == PROVENANCE):
                tree.write((env_plan.env, *name.split("/")), env_plan.files[name])
            for name in env_plan.delete:
                tree.delete((env_plan.env, *name.split("/")))
    except OSError as err:
        raise InputError([Problem(file=str(result.out), message=(
            f"cannot write {err.filename or ''}: {err.strerror or err} (files before it were "
            "written; run render again)"))]) from err
    finally:
        tree.close()
    return result.changes


def check(result: Plan) -> None:
    """Raise StaleOutputError listing what writing would change."""
    problems: list[Problem] = []
    for env_plan in result.envs:
        for name in env_plan.write:
            problems.append(Problem(file=str(result.out / env_plan.env / name), message=(
                "missing: render would create it" if name in env_plan.missing
                else "stale: render would change it")))
        for name in env_plan.delete:
            problems.append(Problem(file=str(result.out / env_plan.env / name),
                                    message="orphan: render would delete it"))
    if problems:
        raise StaleOutputError(sorted(problems))
