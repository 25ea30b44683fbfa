"""Global options, accepted before the command (`agentctl -e dev render`) or after it
(`agentctl render -e dev`), as kubectl users expect. The value given after the command wins."""

from __future__ import annotations

import os
from dataclasses import dataclass, fields, replace
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer


class OutputFormat(StrEnum):
    text = "text"
    json = "json"
    yaml = "yaml"
    markdown = "markdown"
    """diff only (a pull request comment); other commands print text."""


ProjectOpt = Annotated[
    Path | None,
    typer.Option("--project", "-C", help="Project directory (default: current directory).",
                 file_okay=False, show_default=False),
]
EnvOpt = Annotated[
    list[str] | None,
    typer.Option("--env", "-e", help="Environment to act on (repeatable).", show_default=False),
]
AllEnvsOpt = Annotated[
    bool, typer.Option("--all-envs", help="Act on every environment.", show_default=False)
]
OutputOpt = Annotated[
    OutputFormat | None,
    typer.Option("--output", "-o", help="Output format.", show_default=False),
]
NoColorOpt = Annotated[
    bool,
    typer.Option("--no-color", help="Disable colours (also: NO_COLOR).", show_default=False),
]
VerboseOpt = Annotated[
    bool,
    typer.Option("--verbose", "-v", help="Show debug detail and tracebacks.", show_default=False),
]
ContextOpt = Annotated[
    str | None,
    typer.Option("--context", help="kubeconfig context (overrides the environment's).",
                 show_default=False),
]
KubeconfigOpt = Annotated[
    Path | None,
    typer.Option("--kubeconfig", help="Path to the kubeconfig file (kubectl semantics).",
                 show_default=False),
]


@dataclass(frozen=True)
class Globals:
    project: Path | None = None
    env: tuple[str, ...] = ()
    all_envs: bool = False
    output: OutputFormat = OutputFormat.text
    no_color: bool = False
    verbose: bool = False
    context: str | None = None
    kubeconfig: Path | None = None

    @property
    def project_dir(self) -> Path:
        return self.project or Path.cwd()


def globals_of(ctx: typer.Context, **given: Any) -> Globals:
    """Merge the options given after the command into the ones given before it."""
    root = ctx.find_root()
    base: Globals = root.obj if isinstance(root.obj, Globals) else Globals()
    names = {f.name for f in fields(Globals)}
    changes: dict[str, Any] = {}
    for name, value in given.items():
        if name not in names:
            raise TypeError(name)
        if value is None or value == [] or value is False:
            continue
        changes[name] = tuple(value) if name == "env" else value
    merged = replace(base, **changes)
    if os.environ.get("NO_COLOR"):
        merged = replace(merged, no_color=True)
    root.obj = merged
    return merged

RenderOpt = Annotated[
    bool, typer.Option("--render", help="Render in-process instead of reading the committed tree.")
]
VerifyOpt = Annotated[
    bool, typer.Option("--verify", help="Also render, and refuse a committed tree that differs.")
]


def desired_source(render: bool, verify: bool) -> str:
    """Where diff and reconcile take the desired state from (render/pipeline.py SOURCES)."""
    from agentctl.errors import InputError, Problem

    if render and verify:
        raise InputError([Problem(field="--render", message="--verify already renders; give "
                                  "one of --render and --verify")])
    return "verify" if verify else "render" if render else "committed"
