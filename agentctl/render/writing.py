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

import contextlib
import errno
import json
import os
import re
import stat
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from agentctl.errors import InputError, Problem, StaleOutputError
from agentctl.manifests import ANNOTATION_DIGEST, Manifest, digest
from agentctl.render import yamlparsing

PROVENANCE = "provenance.json"
_MAX_READ = 64 * 1024 * 1024
"""Bytes of a file in the tree that agentctl reads (its own files are far smaller)."""

_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_NAMESPACE = re.compile(_LABEL)
_GROUP = re.compile(rf"{_LABEL}(\.{_LABEL})*")
_NAME = re.compile(r"[a-z0-9]([-a-z0-9:]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9:]*[a-z0-9])?)*")
"""DNS-1123 subdomains, plus `:` (RBAC names such as `system:auth-delegator`)."""
_KIND = re.compile(r"[A-Za-z][A-Za-z0-9]{0,62}")
_FILE = re.compile(r"(_cluster|[a-z0-9-]{1,63})/[a-z0-9]{1,63}(\.[a-z0-9.-]{1,253})?-"
                   r"[a-z0-9][-a-z0-9.:]{0,252}\.yaml")
"""Every name `file_names` can produce (what a provenance entry may name)."""


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


class _Tree:
    """Folders under one root opened without following symlinks (one descriptor each, kept
    until `close`)."""

    def __init__(self, root: Path, create: bool) -> None:
        self.root = root
        self.create = create
        self._fds: dict[tuple[str, ...], int] = {}

    def folder(self, parts: tuple[str, ...]) -> int | None:
        """The folder `root/parts…`, or None if missing; OSError(ELOOP/ENOTDIR) if a step is a
        symlink or a file."""
        fd = self._fds.get(parts)
        if fd is not None:
            return fd
        if not parts:
            if self.create:
                self.root.mkdir(parents=True, exist_ok=True)
            try:
                fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY)
            except FileNotFoundError:
                return None
        else:
            parent = self.folder(parts[:-1])
            if parent is None:
                return None
            if self.create:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(parts[-1], 0o777, dir_fd=parent)
            try:
                fd = os.open(parts[-1], os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW,
                             dir_fd=parent)
            except FileNotFoundError:
                return None
        self._fds[parts] = fd
        return fd

    def read(self, parts: tuple[str, ...]) -> bytes | None:
        """A regular file's bytes, None if missing; OSError if a step is a symlink."""
        folder = self.folder(parts[:-1])
        if folder is None:
            return None
        try:  # O_NONBLOCK: a FIFO placed here must not block the open
            fd = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=folder)
        except FileNotFoundError:
            return None
        with os.fdopen(fd, "rb") as handle:
            info = os.fstat(handle.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise OSError(errno.EISDIR, "not a regular file")
            if info.st_size > _MAX_READ:
                raise OSError(errno.EFBIG, f"larger than {_MAX_READ} bytes")
            return handle.read(_MAX_READ + 1)

    def write(self, parts: tuple[str, ...], data: bytes) -> None:
        folder = self.folder(parts[:-1])
        assert folder is not None
        temp = f".agentctl-{os.getpid()}-{threading.get_ident()}.tmp"
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644,
                     dir_fd=folder)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(temp, parts[-1], src_dir_fd=folder, dst_dir_fd=folder)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp, dir_fd=folder)
            raise

    def delete(self, parts: tuple[str, ...]) -> None:
        folder = self.folder(parts[:-1])
        assert folder is not None
        os.unlink(parts[-1], dir_fd=folder)
        for depth in range(len(parts) - 1, 1, -1):  # folders this emptied, up to DIR/<env>/
            with contextlib.suppress(OSError):  # not empty (or gone): stop there
                os.rmdir(parts[depth - 1], dir_fd=self.folder(parts[:depth - 1]))
                continue
            break

    def walk(self, parts: tuple[str, ...]) -> Iterator[tuple[str, ...]]:
        """Every entry below a folder that is not a folder (symlinks included), not following
        symlinks."""
        fd = self.folder(parts)
        if fd is None:
            return
        for entry in sorted(os.listdir(fd)):
            info = os.stat(entry, dir_fd=fd, follow_symlinks=False)
            if stat.S_ISDIR(info.st_mode):
                yield from self.walk((*parts, entry))
            else:
                yield (*parts, entry)

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()


def _previous(tree: _Tree, env: str, problems: list[Problem]) -> dict[str, str]:
    """The previous render's files and digests, from an untrusted `provenance.json`: entries
    that do not name a file agentctl could have written are ignored."""
    try:
        data = tree.read((env, PROVENANCE))
    except OSError as err:
        problems.append(_unsafe(tree, (env, PROVENANCE), err))
        return {}
    try:
        objects = json.loads(data or b"{}").get("objects", [])
        return {o["file"]: o["digest"] for o in objects
                if isinstance(o, dict) and isinstance(o.get("file"), str)
                and isinstance(o.get("digest"), str) and _FILE.fullmatch(o["file"])}
    except (ValueError, AttributeError, TypeError):
        return {}


def _unsafe(tree: _Tree, parts: tuple[str, ...], err: OSError) -> Problem:
    reason = ("a symlink (or a file) is in the way: agentctl never writes, reads or deletes "
              "through a symlink" if err.errno in (errno.ELOOP, errno.ENOTDIR)
              else err.strerror or str(err))
    return Problem(file=str(tree.root.joinpath(*parts)), message=reason)


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
    tree = _Tree(out, create=False)
    try:
        for env, files in outputs.items():
            env_plan = EnvPlan(env, {name: text.encode() for name, text in files.items()})
            previous = _previous(tree, env, problems)
            for name, data in env_plan.files.items():
                parts = (env, *name.split("/"))
                try:
                    current = tree.read(parts)
                except OSError as err:
                    problems.append(_unsafe(tree, parts, err))
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
                problems.append(_unsafe(tree, (env,), err))
            result.envs.append(env_plan)
    finally:
        tree.close()
    if problems:
        raise InputError(sorted(set(problems)))
    return result


def apply(result: Plan) -> list[str]:
    """Write and delete what `plan` found (provenance.json last); return the changed paths."""
    tree = _Tree(result.out, create=True)
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


@dataclass
class Committed:
    """An environment's committed tree, as read from disk: what its provenance.json vouches
    for, and the files it does not list."""

    env: str
    applyset: str
    files: list[tuple[str, str, bytes]] = field(default_factory=list)
    """(file, recorded digest, content), in provenance order."""
    warnings: list[Problem] = field(default_factory=list)


def read_committed(out: Path, env: str) -> Committed:
    """The files `provenance.json` lists under `out/<env>/`, each read without following a
    symlink. A listed file that is missing or unreadable is an InputError naming it; files the
    provenance does not list are foreign (a warning). Contents are checked by
    `parse_committed`."""
    tree = _Tree(out, create=False)
    problems: list[Problem] = []
    where = out / env / PROVENANCE
    try:
        try:
            raw = tree.read((env, PROVENANCE))
        except OSError as err:
            raise InputError([_unsafe(tree, (env, PROVENANCE), err)]) from None
        if raw is None:
            raise InputError([Problem(file=str(where), message=(
                f"missing: nothing was rendered for environment {env} here (run agentctl "
                f"render --out {out}, or diff --render)"))])
        try:
            document = json.loads(raw)
            listed = document["objects"]
            result = Committed(env, str(document["applyset"]))
            if document.get("environment") != env or not isinstance(listed, list):
                raise ValueError
        except (ValueError, KeyError, TypeError):
            raise InputError([Problem(file=str(where), message=(
                f"not a provenance.json of environment {env}: run agentctl render --out "
                f"{out}"))]) from None
        for entry in listed:
            name = entry.get("file") if isinstance(entry, dict) else None
            if not isinstance(name, str) or not _FILE.fullmatch(name):
                problems.append(Problem(file=str(where), message=(
                    f"lists {name!r}, which is not a file agentctl writes")))
                continue
            parts = (env, *name.split("/"))
            try:
                data = tree.read(parts)
            except OSError as err:
                problems.append(_unsafe(tree, parts, err))
                continue
            if data is None:
                problems.append(Problem(file=str(out.joinpath(*parts)), message=(
                    f"listed in provenance.json but missing: run agentctl render --out {out}")))
                continue
            result.files.append((name, str(entry.get("digest")), data))
        known = {name for name, _, _ in result.files} | {PROVENANCE}
        unsafe = {p.file for p in problems}
        for parts in tree.walk((env,)):
            name = "/".join(parts[1:])
            path = str(out.joinpath(*parts))
            if name not in known and not name.startswith(".") and path not in unsafe:
                result.warnings.append(Problem(file=path, message=(
                    "foreign file (not in provenance.json): never applied")))
    except OSError as err:
        raise InputError([_unsafe(tree, (env,), err)]) from None
    finally:
        tree.close()
    if problems:
        raise InputError(sorted(problems))
    return result


def parse_committed(folder: Path, files: list[tuple[str, str, bytes]]
                    ) -> tuple[list[tuple[str, dict[str, Any]]], list[Problem]]:
    """Each file's one object, parsed by the loader that refuses alias bombs, if it still has
    the digest provenance.json records (computed, and in its digest annotation); a problem
    naming each file that does not (`folder`: the environment's folder, for the messages).
    Pure: may run in a worker process."""
    objects: list[tuple[str, dict[str, Any]]] = []
    problems: list[Problem] = []
    for name, recorded, data in files:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = ""
        body = yamlparsing.load_written(text) if text else None
        if body is None or not _sealed(body, recorded):
            body = _load_slowly(text)
            if body is not None and not _sealed(body, recorded):
                body = None
        if body is None:
            problems.append(Problem(file=str(folder / name), message=(
                "changed since it was rendered (its digest is not the one provenance.json "
                f"records): review the edit, then run agentctl render --out {folder.parent}")))
            continue
        objects.append((name, body))
    return objects, problems


def _load_slowly(text: str) -> dict[str, Any] | None:
    """The file's one mapping by the loader every other input goes through."""
    try:
        docs = yamlparsing.load_all(text)
    except (yaml.YAMLError, yamlparsing.TooDeepError, ValueError, RecursionError):
        return None
    return docs[0] if len(docs) == 1 and isinstance(docs[0], dict) else None


def _sealed(body: dict[str, Any], recorded: str) -> bool:
    """Whether an object has the recorded digest, computed and in its digest annotation."""
    annotations = (body.get("metadata") or {}).get("annotations") or {}
    return (isinstance(annotations, dict) and annotations.get(ANNOTATION_DIGEST) == recorded
            and digest(body) == recorded)
