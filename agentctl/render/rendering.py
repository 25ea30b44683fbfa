"""Stage 3, render: each merged agent, through its blueprint, becomes Kubernetes objects.

Templates run in the sandbox of `sandboxing.py` and see exactly `agent` and `env` (fresh copies
for every agent, so a template that changes them changes nothing else) and `capabilities`
(sorted), plus `warn`/`error`/`fail` to report. A template's output is bounded in size and its
rendering in CPU time and allocation. Errors name the blueprint file and line. A `Renderer`
keeps the compiled templates of one render; it holds no state shared with other renders or
threads.
"""

from __future__ import annotations

import json
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, NoReturn

import jinja2
import yaml
from jinja2.sandbox import SandboxedEnvironment

from agentctl.errors import Problem
from agentctl.manifests import Manifest
from agentctl.model import tracks
from agentctl.model.agent import Agent
from agentctl.model.environment import Environment
from agentctl.render import publishing, sandboxing, yamlparsing
from agentctl.render.blueprints import Blueprint
from agentctl.render.sources import Source, attribute, field_path

MAX_OUTPUT_CHARS = 1_000_000
"""Characters one template may produce for one agent."""


class _Abort(Exception):
    """Raised by `fail()` in a template."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass
class Rendered:
    manifests: list[Manifest] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


class Renderer:
    """Renders agents through blueprints, compiling each blueprint's templates once."""

    def __init__(self) -> None:
        self._environments: dict[Path, SandboxedEnvironment] = {}
        self._env_json: dict[str, str] = {}

    def _template(self, blueprint: Blueprint, name: str) -> jinja2.Template:
        env = self._environments.get(blueprint.folder)
        if env is None:
            env = self._environments[blueprint.folder] = sandboxing.build_environment(
                blueprint.folder)
        return env.get_template(name)

    def render(self, agent: Agent, environment: Environment, blueprint: Blueprint,
               sources: list[Source], out: Rendered) -> None:
        """Render one agent; record problems and warnings instead of raising."""
        agent_data = agent.model_dump(mode="json", by_alias=True)
        name = environment.metadata.name
        if name not in self._env_json:
            self._env_json[name] = json.dumps(environment.model_dump(mode="json", by_alias=True))
        env_data = json.loads(self._env_json[name])  # a copy of its own for every agent
        capabilities = tuple(sorted(set(environment.spec.capabilities)))
        name = agent.metadata.name
        agent_file = sources[1].file if len(sources) > 1 else sources[0].file

        def at(path: str) -> tuple[str | int, ...]:
            parts = [int(p) if p.isdigit() else p for p in path.split(".") if p]
            return tuple(parts[1:] if parts[:1] == ["spec"] else parts)

        def warn(path: str, message: str) -> str:
            out.warnings.append(_attribute(sources, at(path), message, path))
            return ""

        def error(path: str, message: str) -> str:
            out.problems.append(_attribute(sources, at(path), message, path))
            return ""

        def fail(path: str, message: str) -> NoReturn:
            raise _Abort(path, message)

        for section in _unhandled(agent, blueprint):
            out.problems.append(_attribute(sources, (section,), f"blueprint {blueprint.name!r} "
                                f"does not handle spec.{section}", f"spec.{section}"))
        track_agents = {track: {**agent_data, "spec": spec.model_dump(mode="json", by_alias=True)}
                        for track, spec in tracks.track_specs(agent.spec).items()}
        context = {"agent": agent_data, "env": env_data, "capabilities": capabilities,
                   "track_agents": track_agents, "warn": warn, "error": error, "fail": fail}
        current = ""
        try:
            with sandboxing.budget():
                for current in blueprint.templates:
                    template = self._template(blueprint, current)
                    text = _bounded(template.generate(context), MAX_OUTPUT_CHARS)
                    for body in _parse(text):
                        out.manifests.append(Manifest(body=body, agent=name,
                                                      template=blueprint.display_file(current),
                                                      source_file=agent_file))
            if publishing.publishes(capabilities):
                out.manifests.append(publishing.agent_manifest(agent, agent_file))
        except _Abort as err:
            out.problems.append(_attribute(sources, at(err.field), err.message, err.field))
        except sandboxing.Timeout:
            out.problems.append(Problem(file=blueprint.display_file(current), message=(
                f"rendering agent {name!r} took more than {sandboxing.MAX_SECONDS:g}s of CPU "
                "time (a runaway loop?)")))
        except _OutputTooLarge:
            out.problems.append(Problem(file=blueprint.display_file(current), message=(
                f"output for agent {name!r} exceeds {MAX_OUTPUT_CHARS} characters")))
        except _BadOutput as err:
            out.problems.append(Problem(file=blueprint.display_file(current),
                                        message=f"agent {name!r}: {err}"))
        except jinja2.TemplateSyntaxError as err:
            out.problems.append(Problem(file=blueprint.display_file(current), line=err.lineno,
                                        col=1, message=f"template syntax: {err.message}"))
        except (jinja2.TemplateError, ArithmeticError, TypeError, ValueError, LookupError,
                AttributeError, RuntimeError, MemoryError) as err:  # RuntimeError: recursion,
            # or a dict changed while a loop iterates it
            line = _template_line(err.__traceback__, blueprint.folder)
            kind = "sandbox" if isinstance(err, jinja2.exceptions.SecurityError) else "template"
            out.problems.append(Problem(file=blueprint.display_file(current), line=line, col=1,
                                        message=f"{kind} error rendering agent {name!r}: {err}"))


def _unhandled(agent: Agent, blueprint: Blueprint) -> list[str]:
    return sorted(s for s in agent.spec.model_fields_set
                  if _alias(s) not in blueprint.handles and s not in blueprint.handles)


def _alias(field_name: str) -> str:
    from agentctl.model.agent import AgentSpec

    info = AgentSpec.model_fields[field_name]
    return info.alias or field_name


def _attribute(sources: list[Source], loc: tuple[str | int, ...], message: str,
               path: str) -> Problem:
    del path
    return attribute(sources, loc, message, field_path(("spec", *loc)))


class _OutputTooLarge(Exception):
    pass


class _BadOutput(Exception):
    pass


def _bounded(chunks: Iterator[str], limit: int) -> str:
    parts: list[str] = []
    size = 0
    for chunk in chunks:
        size += len(chunk)
        if size > limit:
            raise _OutputTooLarge
        parts.append(chunk)
    return "".join(parts)


def _parse(text: str) -> list[dict[str, Any]]:
    try:
        docs = yamlparsing.load_rendered(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at output line {mark.line + 1}" if mark is not None else ""
        raise _BadOutput(f"rendered invalid YAML{where}: {getattr(err, 'problem', err)}") from err
    bodies: list[dict[str, Any]] = []
    for doc in docs:
        if doc is None:
            continue
        if (not isinstance(doc, dict) or not isinstance(doc.get("kind"), str)
                or not isinstance(doc.get("apiVersion"), str)
                or not isinstance(doc.get("metadata"), dict)
                or not isinstance(doc["metadata"].get("name"), str)):
            raise _BadOutput("every rendered document must be an object with apiVersion, kind "
                             "and metadata.name")
        _check_metadata(doc)
        bodies.append(doc)
    return bodies


def _check_metadata(doc: dict[str, Any]) -> None:
    """The metadata later stages read and extend: namespace a string, labels and annotations
    maps of strings (as the API server requires)."""
    meta = doc["metadata"]
    where = f"{doc['kind']} {meta['name']!r}"
    if not isinstance(meta.get("namespace", ""), str):
        raise _BadOutput(f"{where}: metadata.namespace must be a string")
    for key in ("labels", "annotations"):
        value = meta.get(key)
        if value is None:
            continue
        if not isinstance(value, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
            raise _BadOutput(f"{where}: metadata.{key} must be a map of strings to strings")


def _template_line(tb: TracebackType | None, folder: Path) -> int:
    """The template line of the innermost template frame (Jinja maps frames to templates)."""
    line = 0
    prefix = str(folder)
    for frame, lineno in traceback.walk_tb(tb):
        if frame.f_code.co_filename.startswith(prefix):
            line = lineno
    return line
