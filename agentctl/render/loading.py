"""Stage 1, files → validated models.

Reads `agentctl.yaml` (optional), `environments/*.yaml` and `agents/*.yaml` (multi-document) of a
project with libyaml (positions from a lazy round-trip parse, see yamlparsing.py), so every
problem can name `file:line:col` and the field.
All problems of all files are collected and raised together as one `InputError`. Duplicate keys
and alias bombs are refused; agent specs are kept as plain data here and validated after the
environment merge (merging.py), where defaults may still fill them in.
"""

from __future__ import annotations

import datetime
import functools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from agentctl.errors import Problem
from agentctl.model.environment import PROJECT_API_VERSION, Environment, Project
from agentctl.render import yamlparsing
from agentctl.render.inputs import AgentDoc, EnvironmentDoc, Inputs
from agentctl.render.sources import Source, problems_from

MAX_FILE_BYTES = 4 * 1024 * 1024
PROJECT_FILE = "agentctl.yaml"


def load(root: Path, agents: bool = True) -> Inputs:
    """Load a project. Problems are collected in `Inputs.problems`, not raised, so that later
    stages can report theirs in the same run; what failed to load is left out. Without
    `agents`, only the project and its environments (what acting on a committed tree needs)."""
    problems: list[Problem] = []
    project = _load_project(root, problems)
    inputs = Inputs(root=root, project=project)
    env_dir = root / project.spec.environments
    for path in _yaml_files(env_dir):
        for doc, source in _documents(path, root, problems):
            env = _load_environment(doc, source, path, problems)
            if env is None:
                continue
            if env.name in inputs.environments:
                other = inputs.environments[env.name].source.file
                problems.append(source.problem(
                    ("metadata", "name"), f"environment {env.name!r} is also defined in {other}"))
            else:
                inputs.environments[env.name] = env
    if not env_dir.is_dir():
        problems.append(Problem(file=_rel(env_dir, root), message="no environments directory"))
    seen: dict[str, AgentDoc] = {}
    if not agents:
        inputs.problems = sorted(set(problems))
        return inputs
    for path in _yaml_files(root / project.spec.agents):
        for doc, source in _documents(path, root, problems):
            agent = _load_agent(doc, source, problems)
            if agent is None:
                continue
            if agent.name in seen:
                first = seen[agent.name].source
                line = first.locate(("metadata", "name"))[0]
                problems.append(source.problem(
                    ("metadata", "name"),
                    f"agent {agent.name!r} is also defined at {first.file}:{line}"))
                continue
            seen[agent.name] = agent
            inputs.agents.append(agent)
    for env in inputs.environments.values():
        for name in env.environment.spec.agents:
            if name not in seen:
                problems.append(env.source.problem(
                    ("spec", "agents", name),
                    f"overrides name agent {name!r}, which no agent file defines",
                    field=f"spec.agents.{name}"))
    inputs.problems = sorted(set(problems))
    inputs.agents.sort(key=lambda a: a.name)
    return inputs


def _rel(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def _yaml_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir()
                  if p.suffix in (".yaml", ".yml") and not p.name.startswith(".") and p.is_file())


def _documents(path: Path, root: Path, problems: list[Problem]) -> Iterator[tuple[Any, Source]]:
    """Yield (plain data, source) per non-empty document; record problems instead of raising."""
    name = _rel(path, root)
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            problems.append(Problem(file=name, message=f"file is larger than {MAX_FILE_BYTES} "
                                    "bytes"))
            return
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        problems.append(Problem(file=name, message=f"cannot read: {err}"))
        return
    try:
        docs = yamlparsing.load_all(text)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        what = " ".join(str(p) for p in (err.context, err.problem) if p)
        problems.append(Problem(file=name, line=(mark.line + 1) if mark else 0,
                                col=(mark.column + 1) if mark else 0,
                                message=f"invalid YAML: {what}".strip()))
        return
    except (yaml.YAMLError, RecursionError, ValueError) as err:
        problems.append(Problem(file=name, message=f"invalid YAML: {err}"))
        return
    trees = yamlparsing.PositionTrees(text)
    for index, doc in enumerate(docs):
        if doc is None:
            continue
        source = Source(file=name, root=functools.partial(trees.document, index))
        if not isinstance(doc, dict):
            problems.append(source.problem((), "a document must be a mapping", field=""))
            continue
        yield plain(doc), source


def plain(node: Any) -> Any:
    """Round-trip YAML nodes → plain JSON-compatible Python data."""
    if isinstance(node, dict):
        return {str(k) if not isinstance(k, str) else k: plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [plain(v) for v in node]
    if isinstance(node, bool) or node is None:
        return node
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    if isinstance(node, datetime.date | datetime.datetime):
        return node.isoformat()
    return str(node)


def _check_type(doc: dict[str, Any], source: Source, api_version: str, kind: str,
                problems: list[Problem]) -> bool:
    if doc.get("kind") != kind:
        problems.append(source.problem(("kind",), f"expected kind {kind}, found "
                                       f"{doc.get('kind')!r}"))
        return False
    if doc.get("apiVersion") != api_version:
        problems.append(source.problem(("apiVersion",), f"expected apiVersion {api_version}, "
                                       f"found {doc.get('apiVersion')!r}"))
        return False
    return True


def _load_project(root: Path, problems: list[Problem]) -> Project:
    path = root / PROJECT_FILE
    if not path.exists():
        return Project()
    for doc, source in _documents(path, root, problems):
        if not _check_type(doc, source, PROJECT_API_VERSION, "Project", problems):
            return Project()
        try:
            return Project.model_validate(doc)
        except ValidationError as err:
            problems.extend(problems_from(err, doc, [source], Project))
    return Project()


def _load_environment(doc: dict[str, Any], source: Source, path: Path,
                      problems: list[Problem]) -> EnvironmentDoc | None:
    if not _check_type(doc, source, PROJECT_API_VERSION, "Environment", problems):
        return None
    try:
        env = Environment.model_validate(doc)
    except ValidationError as err:
        problems.extend(problems_from(err, doc, [source], Environment))
        return None
    if env.metadata.name != path.stem:
        problems.append(source.problem(("metadata", "name"), f"environment {env.metadata.name!r} "
                                       f"must be defined in {env.metadata.name}{path.suffix}"))
        return None
    return EnvironmentDoc(environment=env, source=source)


def _load_agent(doc: dict[str, Any], source: Source,
                problems: list[Problem]) -> AgentDoc | None:
    from agentctl.model.agent import AGENT_API_VERSION, AgentMeta  # only to load agents

    if not _check_type(doc, source, AGENT_API_VERSION, "Agent", problems):
        return None
    found = False
    for key in doc:
        if key not in ("apiVersion", "kind", "metadata", "spec"):
            message = ("status is written by agentctl reconcile, never by hand" if key == "status"
                       else f"unknown field {key!r}")
            problems.append(source.problem((key,), message))
            found = True
    metadata = doc.get("metadata")
    try:
        meta = AgentMeta.model_validate(metadata)
    except ValidationError as err:
        problems.extend(problems_from(err, metadata, [Source(source.file, source.root,
                                                             ("metadata",))],
                                      AgentMeta, prefix=("metadata",)))
        return None
    if not isinstance(doc.get("spec"), dict):
        problems.append(source.problem(("spec",), "spec is missing or not a mapping"))
        return None
    if found:
        return None
    return AgentDoc(name=meta.name, data=doc, source=source)
