"""helm for the benchmarks: where the binary is, `helm template` of the fleet chart, and how the
objects of both tools are compared.

Inputs: the chart in `benchmarks/chart/`, values files written by `benchmarks.fleet`, and helm
from the sandbox build (`python -m agentctl.sandbox.building --dev-tools`, pinned v4.3.1), the
`HELM` environment variable, or PATH, in that order. Outputs: parsed objects, their identity
set (kind, namespace, name) and a comparable form of each object.

`comparable` drops only what differs by construction: the digest and config-hash annotations
(hashes over JSON text) and the formatting of JSON documents inside ConfigMaps (Python's
`json.dumps` and Go's `toJson` space and order keys differently), which it parses instead.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import yaml

CHART = Path(__file__).resolve().parent / "chart"
DIGEST = "agent.inferensys.com/digest"
CONFIG_HASH = "agent.inferensys.com/config-hash"
_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

Identity = tuple[str, str, str]


def find_helm() -> Path | None:
    """helm from the sandbox build cache, `$HELM`, or PATH; None when there is none."""
    from agentctl.errors import ToolingError
    from agentctl.sandbox.building import binary

    try:
        return binary("helm")
    except ToolingError:
        pass
    for candidate in (os.environ.get("HELM"), shutil.which("helm")):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


def template_command(helm: Path, values: Sequence[Path], chart: Path = CHART) -> list[str]:
    """The `helm template` command line for one environment's values files."""
    command = [str(helm), "template", "bench", str(chart)]
    for path in values:
        command += ["-f", str(path)]
    return command


def template(helm: Path, values: Sequence[Path], chart: Path = CHART) -> str:
    """Run `helm template`; raise RuntimeError with helm's stderr when it fails."""
    done = subprocess.run(template_command(helm, values, chart), capture_output=True,
                          text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"helm template failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout


def load_stream(text: str) -> list[dict[str, Any]]:
    """The objects of a multi-document YAML stream (empty documents skipped)."""
    return [doc for doc in yaml.load_all(text, Loader=_LOADER) if doc]


def load_tree(folder: Path) -> list[dict[str, Any]]:
    """The objects of a rendered tree (`<env>/<namespace>/<kind>-<name>.yaml`)."""
    return [yaml.load(path.read_text(encoding="utf-8"), Loader=_LOADER)
            for path in sorted(folder.rglob("*.yaml"))]


def identity(body: dict[str, Any]) -> Identity:
    meta = body.get("metadata") or {}
    return (str(body.get("kind", "")), str(meta.get("namespace") or ""), str(meta.get("name")))


def identities(bodies: Iterable[dict[str, Any]]) -> set[Identity]:
    return {identity(b) for b in bodies}


def by_identity(bodies: Iterable[dict[str, Any]]) -> dict[Identity, dict[str, Any]]:
    return {identity(b): b for b in bodies}


def comparable(body: dict[str, Any]) -> dict[str, Any]:
    """The object without its hash annotations and with ConfigMap JSON documents parsed."""
    body = copy.deepcopy(body)
    meta = body.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    annotations.pop(DIGEST, None)
    if not annotations:
        meta.pop("annotations", None)
    template_meta = ((body.get("spec") or {}).get("template") or {}).get("metadata") or {}
    (template_meta.get("annotations") or {}).pop(CONFIG_HASH, None)
    if body.get("kind") == "ConfigMap":
        data = body.get("data") or {}
        for key, value in data.items():
            if key.endswith(".json"):
                data[key] = json.loads(value)
    return body
