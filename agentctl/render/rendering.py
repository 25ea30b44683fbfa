"""Stage 3, render: one sandboxed, StrictUndefined Jinja2 environment turns each merged agent,
through its blueprint, into Kubernetes objects.

Templates see exactly `agent`, `env` and `capabilities` (plus `warn`/`fail` to report), no clock,
randomness, file or network access. Every `{{ … }}` is emitted as a JSON value (`finalize`), so
agent data can never add keys, documents or objects. A template's output is bounded in size and
its rendering in time. Errors name the blueprint file and line.
"""

from __future__ import annotations

import hashlib
import json
import re
import signal
import threading
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any, NoReturn

import jinja2
import yaml
from jinja2.sandbox import SandboxedEnvironment

from agentctl import mergepatch
from agentctl.errors import Problem
from agentctl.manifests import Manifest
from agentctl.mergepatch import merge_patch
from agentctl.model.agent import Agent
from agentctl.model.environment import Environment
from agentctl.render import templatecache, yamlparsing
from agentctl.render.blueprints import Blueprint
from agentctl.render.sources import Source, attribute, field_path

MAX_OUTPUT_CHARS = 1_000_000
"""Characters one template may produce for one agent."""
MAX_SECONDS = 5.0
"""CPU-time budget for rendering one agent's templates."""
MAX_SEQUENCE = 1_000_000
"""Largest string or list a template may build with `*` (the output cap applies only later)."""



class _Abort(Exception):
    """Raised by `fail()` in a template."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


class _Timeout(Exception):
    pass


def _finalize(value: Any) -> str:
    """Every `{{ … }}` becomes one JSON value; JSON is YAML, and a JSON string cannot open a
    new key, document or object whatever it contains."""
    if isinstance(value, jinja2.Undefined):  # a bare `{{ missing }}` reaches here unrendered
        value._fail_with_undefined_error()  # raises, naming the missing variable or attribute
    if isinstance(value, set | frozenset):
        value = sorted(value)
    text = json.dumps(value, ensure_ascii=True, sort_keys=False)
    return _SURROGATE_PAIR.sub(_astral, text) if "\\ud" in text else text


# JSON escapes a character outside the Basic Multilingual Plane as a UTF-16 surrogate pair,
# which YAML does not accept; YAML has its own 8-digit escape for it.
_SURROGATE_PAIR = re.compile(r"(?<!\\)((?:\\\\)*)\\u(d[89ab][0-9a-f]{2})\\u(d[c-f][0-9a-f]{2})")


def _astral(match: re.Match[str]) -> str:
    high, low = int(match.group(2), 16), int(match.group(3), 16)
    code = 0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00)
    return f"{match.group(1)}\\U{code:08x}"


def _sha256(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True,
                                                           separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


_ENVIRONMENTS: dict[Path, SandboxedEnvironment] = {}
"""One environment per blueprint folder (compiled templates), until `forget_templates`."""


def forget_templates() -> None:
    """Start the next render from the templates as they are now on disk (compiled ones come
    back from the bytecode cache when unchanged). Within one render each template is loaded
    once, not checked for changes at every use."""
    _ENVIRONMENTS.clear()


CONFIGURING = [Path(__file__), Path(mergepatch.__file__)]
"""The modules whose code decides what a template compiles to (the environment's options and
filters): compiled templates are cached per their content (`agentctl.render.templatecache`)."""

_DICT_ATTRIBUTES = frozenset(dir(dict))


class _Sandbox(SandboxedEnvironment):
    """The sandbox, plus bounds on `*` and `**`, which could otherwise build a huge string or
    number before the output bound is ever checked."""

    intercepted_binops = frozenset({"*", "**"})

    def getattr(self, obj: Any, attribute: str) -> Any:
        """`agent.spec.x` on the plain dicts templates see: the key, without the failed
        attribute lookup (an exception per access) the general path takes first. Same result:
        a name that is a dict method still goes the general way and gets the method."""
        if type(obj) is dict and attribute not in _DICT_ATTRIBUTES:
            try:
                return obj[attribute]
            except KeyError:
                return self.undefined(obj=obj, name=attribute)
        return super().getattr(obj, attribute)

    def call_binop(self, context: jinja2.runtime.Context, operator: str, left: Any,
                   right: Any) -> Any:
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                if (isinstance(seq, str | list | tuple) and isinstance(times, int)
                        and len(seq) * times > MAX_SEQUENCE):
                    raise jinja2.exceptions.SecurityError(
                        f"a sequence of {len(seq) * times} items exceeds {MAX_SEQUENCE}")
        if (operator == "**" and isinstance(left, int) and isinstance(right, int)
                and right * max(abs(left), 1).bit_length() > 100_000):
            raise jinja2.exceptions.SecurityError("the power would exceed 100000 bits")
        return super().call_binop(context, operator, left, right)


def build_environment(folder: Path) -> SandboxedEnvironment:
    """The Jinja2 environment of a blueprint folder, built only here: sandboxed, strict,
    JSON-finalised, a fixed set of filters, includes only from the blueprint's own folder."""
    env = _Sandbox(
        loader=jinja2.FileSystemLoader(folder, followlinks=False),
        undefined=jinja2.StrictUndefined,
        finalize=_finalize,
        autoescape=False,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        extensions=["jinja2.ext.do", "jinja2.ext.loopcontrols"],
        auto_reload=False,  # one render sees one version of each template (`forget_templates`)
        cache_size=400,
        bytecode_cache=templatecache.for_folder(folder, CONFIGURING),
    )
    for name in ("random", "filesizeformat", "urlize", "xmlattr", "wordwrap"):
        env.filters.pop(name, None)
    for name in ("lipsum", "cycler", "joiner"):
        env.globals.pop(name, None)
    env.filters["sha256"] = _sha256
    env.filters["merge"] = merge_patch
    env.filters["tojson"] = _finalize
    env.filters["to_json"] = _finalize
    return env


@dataclass
class Rendered:
    manifests: list[Manifest] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


class Renderer:
    """Renders agents through blueprints; compiled templates are cached per blueprint."""

    def __init__(self) -> None:
        self._env_data: dict[str, Any] = {}

    def _template(self, blueprint: Blueprint, name: str) -> jinja2.Template:
        env = _ENVIRONMENTS.get(blueprint.folder)
        if env is None:
            env = _ENVIRONMENTS[blueprint.folder] = build_environment(blueprint.folder)
        return env.get_template(name)

    def render(self, agent: Agent, environment: Environment, blueprint: Blueprint,
               sources: list[Source], out: Rendered) -> None:
        """Render one agent; record problems and warnings instead of raising."""
        agent_data = agent.model_dump(mode="json", by_alias=True)
        env_data = self._env_data.get(environment.metadata.name)
        if env_data is None:
            env_data = environment.model_dump(mode="json", by_alias=True)
            self._env_data[environment.metadata.name] = env_data
        capabilities = frozenset(environment.spec.capabilities)
        name = agent.metadata.name
        agent_file = sources[1].file if len(sources) > 1 else sources[0].file

        def at(path: str) -> tuple[str | int, ...]:
            parts = [int(p) if p.isdigit() else p for p in path.split(".") if p]
            return tuple(parts[1:] if parts[:1] == ["spec"] else parts)

        def warn(path: str, message: str) -> str:
            out.warnings.append(_attribute(sources, at(path), message, path))
            return ""

        def fail(path: str, message: str) -> NoReturn:
            raise _Abort(path, message)

        for section in _unhandled(agent, blueprint):
            out.problems.append(_attribute(sources, (section,), f"blueprint {blueprint.name!r} "
                                f"does not handle spec.{section}", f"spec.{section}"))
        context = {"agent": agent_data, "env": env_data, "capabilities": capabilities,
                   "warn": warn, "fail": fail}
        current = ""
        try:
            with _deadline(MAX_SECONDS):
                for current in blueprint.templates:
                    template = self._template(blueprint, current)
                    text = _bounded(template.generate(context), MAX_OUTPUT_CHARS)
                    for body in _parse(text):
                        out.manifests.append(Manifest(body=body, agent=name,
                                                      template=blueprint.display_file(current),
                                                      source_file=agent_file))
        except _Abort as err:
            out.problems.append(_attribute(sources, at(err.field), err.message, err.field))
        except _Timeout:
            out.problems.append(Problem(file=blueprint.display_file(current), message=(
                f"rendering agent {name!r} took more than {MAX_SECONDS:g}s of CPU time (a runaway "
                "loop?)")))
        except _OutputTooLarge:
            out.problems.append(Problem(file=blueprint.display_file(current), message=(
                f"output for agent {name!r} exceeds {MAX_OUTPUT_CHARS} characters")))
        except _BadOutput as err:
            out.problems.append(Problem(file=blueprint.display_file(current),
                                        message=f"agent {name!r}: {err}"))
        except jinja2.TemplateSyntaxError as err:
            out.problems.append(Problem(file=blueprint.display_file(current), line=err.lineno,
                                        col=1, message=f"template syntax: {err.message}"))
        except (jinja2.TemplateError, ArithmeticError, TypeError, ValueError, KeyError,
                IndexError, AttributeError, RecursionError, MemoryError) as err:
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
                or not isinstance((doc.get("metadata") or {}).get("name"), str)):
            raise _BadOutput("every rendered document must be an object with apiVersion, kind "
                             "and metadata.name")
        bodies.append(doc)
    return bodies


def _template_line(tb: TracebackType | None, folder: Path) -> int:
    """The template line of the innermost template frame (Jinja maps frames to templates)."""
    line = 0
    prefix = str(folder)
    for frame, lineno in traceback.walk_tb(tb):
        if frame.f_code.co_filename.startswith(prefix):
            line = lineno
    return line


@contextmanager
def _deadline(seconds: float) -> Iterator[None]:
    """Interrupt a runaway template after `seconds` of CPU time (SIGPROF, main thread only), so a
    busy machine does not fail a legitimate render; an already running profiling timer is
    restored."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_timer(signum: int, frame: FrameType | None) -> None:
        raise _Timeout

    previous: Callable[..., Any] | int | None = signal.signal(signal.SIGPROF, on_timer)
    old_delay, old_interval = signal.setitimer(signal.ITIMER_PROF, seconds)
    try:
        yield
    finally:
        remaining, _ = signal.setitimer(signal.ITIMER_PROF, 0)
        signal.signal(signal.SIGPROF, previous)
        if old_delay:
            used = seconds - remaining
            signal.setitimer(signal.ITIMER_PROF, max(old_delay - used, 0.001), old_interval)
