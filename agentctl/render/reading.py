"""A committed tree read back (for diff and reconcile): the files an environment's
`provenance.json` vouches for, each read without following a symlink and checked against the
digest it records. Files it does not list are foreign: named in a warning, never read further.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from agentctl.errors import InputError, Problem
from agentctl.manifests import ANNOTATION_DIGEST, digest
from agentctl.render import yamlparsing
from agentctl.render.trees import FILE, PROVENANCE, Tree, unsafe


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
    tree = Tree(out, create=False)
    problems: list[Problem] = []
    where = out / env / PROVENANCE
    try:
        try:
            raw = tree.read((env, PROVENANCE))
        except OSError as err:
            raise InputError([unsafe(tree, (env, PROVENANCE), err)]) from None
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
            if not isinstance(name, str) or not FILE.fullmatch(name):
                problems.append(Problem(file=str(where), message=(
                    f"lists {name!r}, which is not a file agentctl writes")))
                continue
            parts = (env, *name.split("/"))
            try:
                data = tree.read(parts)
            except OSError as err:
                problems.append(unsafe(tree, parts, err))
                continue
            if data is None:
                problems.append(Problem(file=str(out.joinpath(*parts)), message=(
                    f"listed in provenance.json but missing: run agentctl render --out {out}")))
                continue
            result.files.append((name, str(entry.get("digest")), data))
        known = {name for name, _, _ in result.files} | {PROVENANCE}
        refused = {p.file for p in problems}
        for parts in tree.walk((env,)):
            name = "/".join(parts[1:])
            if name in known or name.startswith("."):
                continue
            path = str(out.joinpath(*parts))  # built for foreign files only
            if path not in refused:
                result.warnings.append(Problem(file=path, message=(
                    "foreign file (not in provenance.json): never applied")))
    except OSError as err:
        raise InputError([unsafe(tree, (env,), err)]) from None
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
