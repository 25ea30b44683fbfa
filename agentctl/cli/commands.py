"""Offline commands: render, validate, schema, init. Each parses options, calls one pipeline
function and formats its result; heavy modules are imported inside the command."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from agentctl.cli.handling import console_for, handled
from agentctl.cli.options import (
    AllEnvsOpt,
    EnvOpt,
    NoColorOpt,
    OutputFormat,
    OutputOpt,
    ProjectOpt,
    VerboseOpt,
    globals_of,
)
from agentctl.errors import ExitCode, InputError, Problem

RENDER_HELP = """Render agents into Kubernetes manifests.

Without --out, prints one YAML stream. With --out DIR, writes
DIR/<env>/<namespace>/<kind>-<name>.yaml and DIR/<env>/provenance.json, and deletes the
files its previous provenance.json lists, unchanged since, that it no longer produces; other
files are named in a warning and left alone. --check compares instead of writing and exits 1
listing stale, missing and orphan files.

Examples:

  agentctl render --env dev

  agentctl render --all-envs --out rendered

  agentctl render --all-envs --check
"""


def render(
    ctx: typer.Context,
    out: Annotated[Path | None, typer.Option("--out", help="Write a tree under DIR.",
                                             file_okay=False, show_default=False)] = None,
    check: Annotated[bool, typer.Option("--check", help="Exit 1 if the tree is not up to date "
                                        "(DIR defaults to the project's output).")] = False,
    agent: Annotated[str | None, typer.Option(
        "--agent", help="Print only this agent's objects (not with --out or --check).",
        show_default=False)] = None,
    project: ProjectOpt = None,
    env: EnvOpt = None,
    all_envs: AllEnvsOpt = False,
    output: OutputOpt = None,
    no_color: NoColorOpt = False,
    verbose: VerboseOpt = False,
) -> ExitCode:
    from agentctl.render import pipeline

    g = globals_of(ctx, project=project, env=env, all_envs=all_envs, output=output,
                   no_color=no_color, verbose=verbose)
    console = console_for(ctx)
    if agent is not None and (check or out is not None):
        raise InputError([Problem(field="--agent", message=(
            "prints one agent's objects, but --out and --check write or compare whole "
            "environments (every agent's files and provenance.json)"))])
    if check or out is not None:
        result = pipeline.render(g.project_dir, g.env, g.all_envs, workers=None)
        target = out if out is not None else g.project_dir / result.inputs.project.spec.output
        changes = pipeline.plan(result, target)
        for warning in [*result.warnings, *changes.warnings]:
            console.warning(warning)
        if check:
            pipeline.check(changes)
            console.info(f"{target}: up to date ({result.count} objects)")
        else:
            written = pipeline.write(changes)
            console.info(f"{target}: {result.count} objects, {len(written)} files changed")
        return ExitCode.OK
    as_json = g.output == OutputFormat.json
    result = pipeline.render(g.project_dir, g.env, g.all_envs, agent=agent, workers=None)
    for warning in result.warnings:
        console.warning(warning)
    if as_json:
        console.data({"apiVersion": "v1", "kind": "List",
                      "items": [m.body for m in result.manifests]})
    else:
        console.out(pipeline.stream(result))
    return ExitCode.OK


VALIDATE_HELP = """Load, merge, render and check every rendered object against the Kubernetes 1.37
schemas, offline. Without --env, every environment is validated. Kinds served by CRDs without a
schema here are reported as skipped. --strict turns warnings (capability fallbacks,
credential-looking literal env values) into errors.

Examples:

  agentctl validate

  agentctl validate --env prod --strict
"""


def validate(
    ctx: typer.Context,
    strict: Annotated[bool, typer.Option("--strict", help="Treat warnings as errors.")] = False,
    project: ProjectOpt = None,
    env: EnvOpt = None,
    all_envs: AllEnvsOpt = False,
    output: OutputOpt = None,
    no_color: NoColorOpt = False,
    verbose: VerboseOpt = False,
) -> ExitCode:
    from agentctl.render import pipeline

    g = globals_of(ctx, project=project, env=env, all_envs=all_envs, output=output,
                   no_color=no_color, verbose=verbose)
    console = console_for(ctx)
    result = pipeline.validate(g.project_dir, g.env, g.all_envs, strict, workers=None)
    for warning in result.warnings:
        console.warning(warning)
    envs = [e.env for e in result.render.envs]
    text = (f"valid: {result.render.count} objects in {', '.join(envs)} "
            f"({result.passed} checked against Kubernetes schemas"
            + (f", skipped without a schema: {', '.join(result.skipped)}" if result.skipped
               else "") + f", {len(result.warnings)} warnings)")
    console.data({"valid": True, "environments": envs,
                  "objects": result.render.count, "checked": result.passed,
                  "skippedKinds": result.skipped,
                  "warnings": [str(w) for w in result.warnings]}, text)
    return ExitCode.OK


SCHEMA_HELP = """Print the Agent CustomResourceDefinition (--crd) or the JSON Schema of a kind of
file (--json-schema, with --kind agent, environment or project; agent by default), or keep the
project's schemas/ folder current for editors (--write, --check). All are generated from the
models that validate the files.

--write writes schemas/agent.schema.json, schemas/environment.schema.json and
schemas/project.schema.json under the project directory (-C), each replaced whole and only when
it changed; a symlink in the way is refused (exit 2), never written through. --check changes
nothing and exits 1 naming each missing or stale file. A file whose first line is
`# yaml-language-server: $schema=<relative path to its schema>` (as `agentctl init` writes them)
is completed and checked as you type by any editor using yaml-language-server (VS Code's YAML
extension, Neovim, Helix, ...). The Environment schema checks the fields inside `defaults` and
per-agent overrides, the Agent schema those inside track patches.

Examples:

  agentctl schema --crd | kubectl apply -f -

  agentctl schema --json-schema --kind environment

  agentctl schema --write

  agentctl schema --check
"""


class SchemaKind(StrEnum):
    agent = "agent"
    environment = "environment"
    project = "project"


def schema(
    ctx: typer.Context,
    crd: Annotated[bool, typer.Option("--crd", help="The Agent CRD (YAML).")] = False,
    json_schema: Annotated[bool, typer.Option("--json-schema",
                                              help="The JSON Schema (JSON).")] = False,
    kind: Annotated[SchemaKind | None, typer.Option(
        "--kind", case_sensitive=False, help="Which file's JSON Schema --json-schema prints "
        "(default: agent).", show_default=False)] = None,
    write: Annotated[bool, typer.Option(
        "--write", help="Write every JSON Schema into the project's schemas/ folder.")] = False,
    check: Annotated[bool, typer.Option(
        "--check", help="Exit 1 if a file in schemas/ is missing or stale.")] = False,
    project: ProjectOpt = None,
    output: OutputOpt = None,
    no_color: NoColorOpt = False,
    verbose: VerboseOpt = False,
) -> ExitCode:
    from agentctl import schemas
    from agentctl.render import formatting

    g = globals_of(ctx, project=project, output=output, no_color=no_color, verbose=verbose)
    console = console_for(ctx)
    if kind is not None and not crd and not write and not check:
        json_schema = True
    if crd + json_schema + (write or check) != 1:
        raise InputError([Problem(field="schema", message=(
            "choose exactly one of --crd, --json-schema, --write and --check"))])
    if kind is not None and kind != SchemaKind.agent and not json_schema:
        raise InputError([Problem(field="--kind", message=(
            "the CRD is the Agent's only (environments and the project are files agentctl "
            "reads, not cluster resources)" if crd else
            "--write and --check handle every kind's schema; --kind picks what --json-schema "
            "prints"))])
    if crd:
        console.out(formatting.dump(schemas.crd()))
        return ExitCode.OK
    if json_schema:
        console.out(schemas.text((kind or SchemaKind.agent).value))
        return ExitCode.OK
    root = g.project_dir
    if check:
        fresh = schemas.check(root)
        console.data({"fresh": [str(root / rel) for rel in fresh]},
                     "\n".join(f"fresh {root / rel}" for rel in fresh))
        return ExitCode.OK
    written, unchanged = schemas.write(root)
    console.data({"written": [str(root / rel) for rel in written],
                  "unchanged": [str(root / rel) for rel in unchanged]},
                 "\n".join([*(f"wrote {root / rel}" for rel in written),
                            *(f"unchanged {root / rel}" for rel in unchanged)]))
    return ExitCode.OK


def register(app: typer.Typer) -> None:
    app.command("render", help=RENDER_HELP)(handled(render))
    app.command("validate", help=VALIDATE_HELP)(
        handled(validate))
    app.command("schema", help=SCHEMA_HELP)(handled(schema))
