"""`agentctl schema --write/--check`: a project's `schemas/` folder (`jsonschemas.FILES`), kept
current.

The bytes are those `jsonschemas.text` prints, written whole beside the target and renamed into
place, only where they differ, every step opened without following a symlink (the output tree's
opener, `render.trees`): a symlinked `schemas/` or schema file is refused (exit 2), never written
through, and nothing is written unless every path is safe. Pure file I/O: no terminal.
"""

from __future__ import annotations

import os
from pathlib import Path

from agentctl.errors import InputError, Problem, StaleOutputError
from agentctl.schemas.jsonschemas import FILES, FOLDER, text

_PROJECT_MARKS = ("agentctl.yaml", "agents", "environments")
"""What makes a directory a project (agentctl.yaml is optional; its default folders are not)."""


def _planned(project: Path) -> tuple[dict[str, bytes], dict[str, bool]]:
    """Each schema file's bytes, and those whose file differs (→ whether it is missing). Raises
    InputError naming each path a symlink (or a non-regular file) makes unsafe."""
    from agentctl.render.trees import Tree, unsafe

    if not project.is_dir():
        raise InputError([Problem(file=str(project), message="is not a directory (the project "
                                  "directory: -C DIR)")])
    if not any(os.path.lexists(project / name) for name in _PROJECT_MARKS):
        raise InputError([Problem(file=str(project), message=(
            f"is not an agentctl project (no {', '.join(_PROJECT_MARKS)}): run this in the "
            "project directory or give -C DIR"))])
    wanted = {rel: text(kind).encode() for kind, rel in FILES.items()}
    tree = Tree(project, create=False)
    problems: list[Problem] = []
    differ: dict[str, bool] = {}
    try:
        for rel, data in wanted.items():
            parts = tuple(rel.split("/"))
            try:
                current = tree.read(parts)
                if current != data:
                    differ[rel] = current is None
            except OSError as err:
                problems.append(unsafe(tree, parts, err))
    finally:
        tree.close()
    if problems:
        raise InputError(problems)
    return wanted, differ


def write(project: Path) -> tuple[list[str], list[str]]:
    """Write the schema files under `project` (FILES); return (written, unchanged) paths
    relative to it. Nothing is written when any path is unsafe (InputError, exit 2)."""
    from agentctl.render.trees import Tree

    wanted, differ = _planned(project)
    tree = Tree(project, create=True)
    try:
        for rel in differ:
            tree.write(tuple(rel.split("/")), wanted[rel])
    except OSError as err:
        raise InputError([Problem(file=str(project / FOLDER), message=(
            f"cannot write {err.filename or ''}: {err.strerror or err}"))]) from err
    finally:
        tree.close()
    return list(differ), [rel for rel in wanted if rel not in differ]


def check(project: Path) -> list[str]:
    """The schema files under `project` (relative paths), all current; StaleOutputError (exit
    1) naming each that is missing or differs from what this agentctl generates."""
    wanted, differ = _planned(project)
    if differ:
        raise StaleOutputError([Problem(file=str(project / rel), message=(
            "missing" if missing else "stale") + ": run `agentctl schema --write`")
            for rel, missing in differ.items()])
    return list(wanted)
