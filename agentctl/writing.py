"""Stage 4, write: deterministic YAML for rendered objects, as one stream or as a tree.

`--out DIR` writes `DIR/<env>/<namespace>/<kind>-<name>.yaml` (cluster-scoped objects under
`_cluster/`) and `DIR/<env>/provenance.json`, and deletes files of the environments it wrote that
it no longer produces. One pinned emitter (libyaml through PyYAML, fixed settings: sorted keys,
2-space indent, no line wrapping, literal blocks for multi-line strings) makes the same objects
the same bytes on any machine. `check` compares without writing.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from agentctl.errors import Problem
from agentctl.manifests import Manifest

PROVENANCE = "provenance.json"
_BaseDumper: Any = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


class _Dumper(_BaseDumper):  # type: ignore[misc]
    pass


# Strings that YAML 1.1 (PyYAML) leaves plain but YAML 1.2 and Go's YAML (kubectl, Flux) read as
# numbers, such as 1e3, 08 or 0o17: quoted, so every reader sees the same string.
_NUMBER_LIKE = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?|0o[0-7]+")


def _str(dumper: Any, value: str) -> Any:
    if _NUMBER_LIKE.fullmatch(value):
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="'")
    style = "|" if "\n" in value and not _needs_quotes(value) else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


def _needs_quotes(value: str) -> bool:
    # libyaml cannot emit these in a literal block; it would fall back silently per scalar.
    return any(c in value for c in "\r\t\x85\u2028\u2029") or value != value.rstrip(" ")


_Dumper.add_representer(str, _str)


def dump(body: Any) -> str:
    """One object as YAML, always the same bytes for the same data."""
    text: str = yaml.dump(body, Dumper=_Dumper, sort_keys=True, default_flow_style=False,
                          allow_unicode=True, width=1_000_000, indent=2,
                          explicit_start=False, line_break="\n")
    return text


def stream(manifests: Iterable[Manifest]) -> str:
    """A multi-document YAML stream, one `---` per object."""
    return "".join("---\n" + dump(m.body) for m in manifests)


@dataclass(frozen=True)
class EnvOutput:
    """What one environment's output folder must contain: file → content."""

    env: str
    files: dict[str, str]


def env_output(env: str, applyset: str, manifests: list[Manifest]) -> EnvOutput:
    files = {m.file_name: dump(m.body) for m in manifests}
    entries = [provenance_entry(m) for m in manifests]
    return EnvOutput(env=env, files=with_provenance(files, env, applyset, entries))


def provenance_entry(manifest: Manifest) -> dict[str, str]:
    """One object's line in `provenance.json`."""
    meta = manifest.body["metadata"]
    return {
        "apiVersion": manifest.body["apiVersion"], "kind": manifest.body["kind"],
        "namespace": meta.get("namespace", ""), "name": meta["name"],
        "file": manifest.file_name,
        "digest": meta["annotations"]["agent.inferensys.com/digest"],
    }


def with_provenance(files: dict[str, str], env: str, applyset: str,
                    entries: list[dict[str, str]]) -> dict[str, str]:
    """`files` plus the environment's `provenance.json` (objects ordered by file)."""
    objects = sorted(entries, key=lambda o: o["file"])
    provenance = {"environment": env, "applyset": applyset, "objects": objects}
    return {**files, PROVENANCE: json.dumps(provenance, indent=2, ensure_ascii=False) + "\n"}


def _existing(folder: Path) -> set[str]:
    if not folder.is_dir():
        return set()
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}


def write(out_dir: Path, output: EnvOutput) -> list[str]:
    """Write one environment's folder; return the files changed, created or deleted. Unchanged
    files are not touched (their mtime stays)."""
    folder = out_dir / output.env
    existing = _existing(folder)
    changed: list[str] = []
    made: set[Path] = set()
    for name, content in sorted(output.files.items()):
        path = folder / name
        data = content.encode()
        if name in existing and path.read_bytes() == data:
            continue
        if path.parent not in made:
            path.parent.mkdir(parents=True, exist_ok=True)
            made.add(path.parent)
        path.write_bytes(data)
        changed.append(f"{output.env}/{name}")
    for name in sorted(existing - set(output.files)):
        (folder / name).unlink()
        changed.append(f"{output.env}/{name}")
    for sub in sorted((p for p in folder.rglob("*") if p.is_dir()), reverse=True):
        if not any(sub.iterdir()):
            sub.rmdir()
    return changed


def check(out_dir: Path, output: EnvOutput) -> list[Problem]:
    """Stale, missing and orphan files of one environment's folder; writes nothing."""
    folder = out_dir / output.env
    problems: list[Problem] = []
    for name, content in sorted(output.files.items()):
        path = folder / name
        shown = str(path)
        if not path.is_file():
            problems.append(Problem(file=shown, message="missing: render would create it"))
        elif path.read_bytes() != content.encode():
            problems.append(Problem(file=shown, message="stale: render would change it"))
    for name in sorted(_existing(folder) - set(output.files)):
        problems.append(Problem(file=str(folder / name),
                                message="orphan: render would delete it"))
    return problems
