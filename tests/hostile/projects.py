"""Small agentctl projects for the hostile-input tests, written as a person would write them.

One minimal valid project (`agents/x.yaml`, `environments/dev.yaml`) that each test alters, a local
blueprint `evil` for template cases, and the CLI invocation every test goes through. Test input is
written with libyaml: strings that agentctl's YAML 1.2 loader would read as numbers are quoted.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import typer
import yaml
from typer.testing import CliRunner, Result

from agentctl.cli import app
from agentctl.mergepatch import merge_patch

AGENT_FILE = "agents/x.yaml"
ENV_FILE = "environments/dev.yaml"
AT_AGENT = r"agents/x\.yaml:\d+:\d+"
AT_ENV = r"environments/dev\.yaml:\d+:\d+"
BLUEPRINT = "blueprints/evil"


def merged(base: Any, patch: Any) -> Any:
    """`patch` merged into `base` (RFC 7386), as a copy that shares nothing with either: the
    bases here are shared by every test."""
    return copy.deepcopy(merge_patch(base, patch))


class InputDumper(getattr(yaml, "CSafeDumper", yaml.SafeDumper)):  # type: ignore[misc]
    """Writes test input as a person would: strings that YAML 1.2 (agentctl's loader) reads as
    numbers are quoted, and libyaml escapes what the pure emitter would mangle (U+0085)."""


def _quoted_if_number_like(dumper: Any, value: str) -> Any:
    style = '"' if NUMBER_LIKE.fullmatch(value) else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


NUMBER_LIKE = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?"
                         r"|0o[0-7]+|0x[0-9a-fA-F]+")
InputDumper.add_representer(str, _quoted_if_number_like)


def dump(doc: Any) -> str:
    return yaml.dump(doc, Dumper=InputDumper, sort_keys=False, default_flow_style=False,
                     width=4096)


def agent_doc(spec: dict[str, Any] | None = None, name: str = "x",
              metadata: dict[str, Any] | None = None) -> dict[str, Any]:
    base_spec = {
        "description": "hello",
        "runtime": {"image": "ghcr.io/example/x:1.0"},
        "model": {"id": "gpt-4o"},
    }
    return {
        "apiVersion": "agent.inferensys.com/v1alpha1",
        "kind": "Agent",
        "metadata": merged({"name": name}, metadata or {}),
        "spec": merged(base_spec, spec or {}),
    }


def agent(spec: dict[str, Any] | None = None, name: str = "x",
          metadata: dict[str, Any] | None = None) -> str:
    return dump(agent_doc(spec, name, metadata))


def env(spec: dict[str, Any] | None = None, name: str = "dev") -> str:
    base_spec = {
        "namespace": "agents-dev",
        "defaults": {"observability": {"metrics": {"monitor": "annotations"}}},
    }
    return dump({
        "apiVersion": "agentctl.inferensys.com/v1alpha1",
        "kind": "Environment",
        "metadata": {"name": name},
        "spec": merged(base_spec, spec or {}),
    })


CONFIG_MAP = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ agent.metadata.name ~ "-cm" }}
data:
  id: {{ agent.spec.model.id }}
"""


def blueprint(template: str, handles: tuple[str, ...] = ("runtime", "model", "observability"),
              name: str = "main.yaml.j2") -> dict[str, str]:
    """A local blueprint `evil` with one template, and the agent using it."""
    meta = {"name": "evil", "description": "test", "handles": list(handles)}
    return {
        f"{BLUEPRINT}/blueprint.yaml": dump(meta),
        f"{BLUEPRINT}/{name}": template,
        AGENT_FILE: agent({"blueprint": "evil"}),
    }


def write_project(root: Path, files: Mapping[str, str | None]) -> Path:
    layout: dict[str, str | None] = {AGENT_FILE: agent(), ENV_FILE: env()}
    layout.update(files)
    for rel, text in layout.items():
        if text is None:
            continue
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


def commands() -> list[str]:
    """render, plus validate once the CLI has it."""
    names = typer.main.get_command(app).commands  # type: ignore[attr-defined]
    return [c for c in ("render", "validate") if c in names]


def invoke(root: Path, command: str = "render") -> Result:
    return CliRunner().invoke(app, ["-C", str(root), command, "--env", "dev"])
