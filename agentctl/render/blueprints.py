"""Blueprints: folders of Jinja2 templates plus `blueprint.yaml`. Local blueprints of a project
override the built-in library of the same name; a name can never leave its folder."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

import yaml

from agentctl.errors import InputError, Problem
from agentctl.render import sandboxing

_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
SECTIONS_ALWAYS_HANDLED = frozenset({"description", "blueprint"})


@dataclass(frozen=True)
class Blueprint:
    name: str
    folder: Path
    display: str  # how errors name the folder: `blueprints/agent` or `agentctl:blueprints/agent`
    description: str
    handles: frozenset[str]
    templates: tuple[str, ...]

    def display_file(self, template: str) -> str:
        return f"{self.display}/{template}"


@cache
def builtin_root() -> Path:
    """The built-in library: packaged as `agentctl/_blueprints`; in a source checkout, the
    repository's top-level `blueprints/`."""
    packaged = Path(str(resources.files("agentctl"))) / "_blueprints"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[2] / "blueprints"


def find(name: str, local_root: Path, project_root: Path) -> Blueprint:
    """The blueprint called `name`: the project's own first, then the built-in one. A local
    blueprint folder that is a symlink, or holds one, is refused: a blueprint reads only its own
    files."""
    if not _NAME.match(name):
        raise InputError(f"blueprint name {name!r} is invalid: a DNS-1123 label, no paths")
    local = local_root / name
    display = _display(local, project_root)
    for folder in (local_root, local):
        if folder.is_symlink():
            raise InputError([Problem(file=_display(folder, project_root), message=(
                "is a symlink: blueprints must be real folders of the project"))])
    if local.is_dir():
        return read(name, local, display)
    builtin = builtin_root() / name
    if builtin.is_dir():
        return read(name, builtin, f"agentctl:blueprints/{name}")
    raise InputError(f"no blueprint named {name!r} in {local_root.name}/ or the built-in library")


def _display(path: Path, project_root: Path) -> str:
    try:
        return str(path.relative_to(project_root))
    except ValueError:
        return str(path)


def read(name: str, folder: Path, display: str) -> Blueprint:
    """A blueprint folder's `blueprint.yaml` and template names (read anew by every render)."""
    links = sorted(p.name for p in folder.iterdir() if p.is_symlink())
    if links:
        raise InputError([Problem(file=f"{display}/{link}", message=(
            "is a symlink: a blueprint reads only its own files")) for link in links])
    try:
        text = sandboxing.read_no_symlinks(folder, ["blueprint.yaml"]).decode("utf-8")
        meta = yaml.safe_load(text) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        raise InputError([Problem(file=f"{display}/blueprint.yaml", message=str(err))]) from err
    if not isinstance(meta, dict) or not isinstance(meta.get("handles"), list):
        raise InputError([Problem(file=f"{display}/blueprint.yaml", field="handles",
                                  message="blueprint.yaml needs name, description and a list "
                                  "of handled spec sections")])
    templates = tuple(sorted(p.name for p in folder.iterdir()
                             if p.name.endswith(".yaml.j2") and not p.name.startswith("_")
                             and p.is_file()))
    return Blueprint(name=name, folder=folder, display=display,
                     description=str(meta.get("description", "")),
                     handles=frozenset(str(h) for h in meta["handles"]) | SECTIONS_ALWAYS_HANDLED,
                     templates=templates)
