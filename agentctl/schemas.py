"""The JSON Schemas of agentctl's files (for editors) and the Agent's CustomResourceDefinition
(so `kubectl get agents` works), all generated from the pydantic models: never a hand-kept copy.

JSON Schemas (Draft 2020-12, camelCase keys as in files, field docstrings as descriptions), one
per kind of file: Agent, Environment, Project. Two places hold JSON Merge Patches (RFC 7386)
over an Agent's spec, and get a *partial* AgentSpec schema rather than a free-form map, so an
editor completes and checks the fields inside them: an Environment's `spec.defaults` and
`spec.agents.<name>`, and an Agent's track patches (`rollout.canary.patch`,
`rollout.blueGreen.slots.{blue,green}`), the latter limited to the sections a track may change
(`delivery.PATCHABLE` without `delivery.NOT_PATCHABLE`). A partial object has no `required` and
each of its properties also admits `null` (null deletes); a list replaces whole in a merge
patch, so its items keep the full schema.

`write`/`check` keep a project's `schemas/` folder (`FILES`) current: the bytes are those
`text` prints, written whole beside the target and renamed into place, every step opened
without following a symlink, so a symlinked `schemas/` or schema file is refused, never
written through. Pure file I/O: no terminal.

The CRD needs a *structural* OpenAPI v3 schema: every `$ref` inlined, `Optional[X]` as
`nullable`, int-or-string unions as `x-kubernetes-int-or-string`, free-form maps as
`x-kubernetes-preserve-unknown-fields`, no defaults (agentctl fills them in when rendering).
"""

from __future__ import annotations

import copy
import json
import os
import posixpath
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import TypeAdapter

from agentctl.errors import InputError, Problem, StaleOutputError
from agentctl.model.agent import Agent
from agentctl.model.common import Quantity, describe_fields
from agentctl.model.delivery import NOT_PATCHABLE, PATCHABLE, TRACK_PATCHES
from agentctl.model.environment import PROJECT_API_VERSION, Environment, Project

GROUP = "agent.inferensys.com"
VERSION = "v1alpha1"
_PROJECT_GROUP = PROJECT_API_VERSION.split("/", 1)[0]
_DRAFT = "https://json-schema.org/draft/2020-12/schema"
_KEEP = ("description", "enum", "pattern", "minimum", "maximum", "minLength", "maxLength",
         "minItems", "maxItems", "required")

Kind = Literal["agent", "environment", "project"]
KINDS: tuple[Kind, ...] = ("agent", "environment", "project")
FOLDER = "schemas"
"""Where `write` puts the schemas, relative to the project directory."""
FILES: dict[Kind, str] = {kind: f"{FOLDER}/{kind}.schema.json" for kind in KINDS}
"""Each kind's schema file, relative to the project directory."""
_PROJECT_MARKS = ("agentctl.yaml", "agents", "environments")
"""What makes a directory a project (agentctl.yaml is optional; its default folders are not)."""


def _agent_schema() -> dict[str, Any]:
    describe_fields()
    return Agent.model_json_schema(by_alias=True, mode="validation")


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/$defs/{name}"}


def _target(node: dict[str, Any]) -> str:
    """The definition a property refers to, directly or as the non-null branch of `X | None`."""
    if "$ref" in node:
        return str(node["$ref"]).rsplit("/", 1)[-1]
    real = [o for o in node.get("anyOf", []) if o.get("type") != "null"]
    if len(real) == 1 and "$ref" in real[0]:
        return str(real[0]["$ref"]).rsplit("/", 1)[-1]
    raise ValueError(f"not a reference to a definition: {node}")


def _nullable(node: dict[str, Any]) -> dict[str, Any]:
    """`node`, also admitting null (keeping its annotations on the outside)."""
    if node.get("type") == "null" or any(o.get("type") == "null"
                                         for o in node.get("anyOf", [])):
        return node
    notes: dict[str, Any] = {k: node[k] for k in ("title", "description", "default")
                             if k in node}
    inner = {k: v for k, v in node.items() if k not in notes}
    return {"anyOf": [inner, {"type": "null"}], **notes}


class _Partial:
    """Partial copies (`<Name>Patch`) of the object definitions in `defs`, made on demand;
    definitions named in `partial` are partial already and kept as they are."""

    def __init__(self, defs: dict[str, Any], partial: set[str]) -> None:
        self.defs = defs
        self.partial = partial

    def name(self, name: str) -> str:
        if name in self.partial or self.defs[name].get("type") != "object":
            return name
        patch = f"{name}Patch"
        if patch not in self.defs:
            self.partial.add(patch)
            self.defs[patch] = {}  # claimed first: a definition may refer to itself
            self.defs[patch] = {**self.node(self.defs[name]), "title": patch}
        return patch

    def node(self, node: dict[str, Any]) -> dict[str, Any]:
        out = dict(node)
        if "$ref" in out:
            out["$ref"] = f"#/$defs/{self.name(_target(out))}"
        for key in ("anyOf", "oneOf"):
            if key in out:
                out[key] = [self.node(o) for o in out[key]]
        if out.get("type") == "object":
            out.pop("required", None)
            if "properties" in out:
                out["properties"] = {k: _nullable(self.node(v))
                                     for k, v in out["properties"].items()}
            if isinstance(out.get("additionalProperties"), dict):
                out["additionalProperties"] = _nullable(self.node(out["additionalProperties"]))
        return out  # an array replaces whole: its items keep the full schema


_TRACK_PATCH = "TrackPatch"


def _with_track_patches(agent: dict[str, Any]) -> _Partial:
    """Point the Agent schema's track patches at `TrackPatch`: the partial AgentSpec limited to
    PATCHABLE sections, without the NOT_PATCHABLE fields, and not nullable on the way to them
    (deleting `runtime` would delete `runtime.serviceAccount`). Returns the partial maker that
    built it, which knows every partial definition."""
    defs = agent["$defs"]
    for path in TRACK_PATCHES:
        props, key = _at(agent, "AgentSpec", path)
        props[key] = {**_nullable(_ref(_TRACK_PATCH)),
                      **{k: v for k, v in props[key].items() if k == "description"}}
    defs[_TRACK_PATCH] = {}
    partial = _Partial(defs, {_TRACK_PATCH})
    root = copy.deepcopy(defs[partial.name("AgentSpec")])
    root["properties"] = {k: v for k, v in root["properties"].items() if k in PATCHABLE}
    root["title"] = _TRACK_PATCH
    root["description"] = ("A JSON Merge Patch over the agent's spec that one track runs, "
                           f"limited to {', '.join(PATCHABLE)}; null deletes a field.")
    defs[_TRACK_PATCH] = root
    for keys in NOT_PATCHABLE:
        node, prefix = root, "Track"
        for key in keys[:-1]:
            prefix += key[0].upper() + key[1:]
            prop = node["properties"][key]
            name = f"{prefix}Patch"
            if name not in defs:
                partial.partial.add(name)
                defs[name] = {**copy.deepcopy(defs[_target(prop)]), "title": name}
            node["properties"][key] = {**{k: v for k, v in prop.items()
                                          if k not in ("anyOf", "default")},
                                       **_ref(name)}
            node = defs[name]
        node["properties"].pop(keys[-1], None)
    return partial


def _at(schema: dict[str, Any], start: str, path: tuple[str, ...]) -> tuple[dict[str, Any], str]:
    """The properties map holding `path[-1]`, walking from definition `start` through refs."""
    defs = schema["$defs"]
    holder = defs[start]
    for key in path[:-1]:
        holder = defs[_target(holder["properties"][key])]
    return holder["properties"], path[-1]


def _prune(schema: dict[str, Any]) -> dict[str, Any]:
    """`schema` with only the definitions it reaches, in name order (stable bytes)."""
    defs = schema.get("$defs", {})
    reached: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                name = ref.rsplit("/", 1)[-1]
                if name not in reached:
                    reached.add(name)
                    walk(defs[name])
            for key, value in node.items():
                if key != "$defs":
                    walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    schema["$defs"] = {name: defs[name] for name in sorted(reached)}
    return schema


def _for_editors(node: Any, quantity: dict[str, Any]) -> None:
    """What an editor shows and accepts, beyond what pydantic generates:

    - a quantity may be any number, as the model reads it (`cpu: 0.5` is `500m`), where the
      CRD can only say int-or-string (`quantity` is its string branch: pydantic flattens
      `Quantity | None` into one anyOf);
    - each property is titled with its key as written in files (pydantic's "Trafficrouting"
      would head the hover), and definitions are not titled (an editor would show a model's
      name, or a partial copy's, over the key's);
    - descriptions are unwrapped (an editor makes each line of a docstring a paragraph), and
      also given as `markdownDescription`, so `code` in them renders as code.
    """
    if isinstance(node, dict):
        options = node.get("anyOf")
        if isinstance(options, list) and quantity in options:
            node["anyOf"] = [{"type": "number"} if o == {"type": "integer"} else o
                             for o in options]
        if isinstance(node.get("description"), str):
            text = re.sub(r"(?<!\n)\n(?!\n)", " ", node["description"])
            node["description"] = node["markdownDescription"] = text
        properties = node.get("properties")
        if isinstance(properties, dict) and node.get("type") == "object":
            for key, prop in properties.items():
                if isinstance(prop, dict):
                    prop["title"] = key
        for value in node.values():
            _for_editors(value, quantity)
    elif isinstance(node, list):
        for value in node:
            _for_editors(value, quantity)


def _finish(schema: dict[str, Any], group: str, kind: Kind) -> dict[str, Any]:
    integer, string = TypeAdapter(Quantity).json_schema()["anyOf"]
    assert integer == {"type": "integer"}, integer
    _for_editors(schema, string)
    defs = _prune(schema).pop("$defs")
    for definition in defs.values():
        definition.pop("title", None)
    return {"$schema": _DRAFT, "$id": f"https://{group}/schemas/{VERSION}/{kind}.json",
            "$comment": "Generated from agentctl's models: refresh it with `agentctl schema "
                        "--write`, never by hand.",
            **schema, "$defs": defs}


def json_schema(kind: Kind = "agent") -> dict[str, Any]:
    """The JSON Schema of one kind of file."""
    if kind == "project":
        describe_fields()
        return _finish(Project.model_json_schema(by_alias=True, mode="validation"),
                       _PROJECT_GROUP, "project")
    agent = _agent_schema()
    partial = _with_track_patches(agent)
    if kind == "agent":
        return _finish(agent, GROUP, "agent")
    environment = Environment.model_json_schema(by_alias=True, mode="validation")
    defs = environment["$defs"]
    for name, definition in agent["$defs"].items():
        if defs.setdefault(name, definition) != definition:
            raise ValueError(f"two different definitions named {name}")
    spec = _Partial(defs, partial.partial).name("AgentSpec")
    props = defs["EnvironmentSpec"]["properties"]
    notes = ("description",)
    props["defaults"] = {**_ref(spec), **{k: v for k, v in props["defaults"].items()
                                         if k in notes}}
    props["agents"] = {**{k: v for k, v in props["agents"].items()
                          if k != "additionalProperties"},
                       "additionalProperties": _ref(spec)}
    return _finish(environment, _PROJECT_GROUP, "environment")


def text(kind: Kind) -> str:
    """A kind's schema as the bytes `write` puts in its file (and `schema --json-schema`
    prints): JSON, two-space indented, ASCII, one final newline."""
    return json.dumps(json_schema(kind), indent=2) + "\n"


def modeline(kind: Kind, file: str) -> str:
    """The yaml-language-server comment that points the file at `file` (a path relative to the
    project directory, `/`-separated) to its kind's schema in FOLDER, by a relative path."""
    where = posixpath.relpath(FILES[kind], posixpath.dirname(posixpath.normpath(file)) or ".")
    return f"# yaml-language-server: $schema={where}"


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


def _structural(schema: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in schema:
        target = defs[schema["$ref"].rsplit("/", 1)[-1]]
        merged = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
        return _structural(merged, defs)
    if "anyOf" in schema or "oneOf" in schema:
        options = schema.get("anyOf") or schema.get("oneOf") or []
        real = [o for o in options if o.get("type") != "null"]
        nullable = len(real) < len(options)
        if len(real) == 1:
            out = _structural({**real[0], **{k: v for k, v in schema.items()
                                             if k in ("description",)}}, defs)
        else:
            branches = [_structural(o, defs) for o in real]
            if {b.get("type") for b in branches} == {"integer", "string"}:
                # As controller-gen renders resource.Quantity: the string branch keeps its pattern.
                out = {"anyOf": [{"type": "integer"}, {"type": "string"}],
                       "x-kubernetes-int-or-string": True}
                pattern = next((b["pattern"] for b in branches if "pattern" in b), None)
                if pattern:
                    out["pattern"] = pattern
            else:
                out = {"x-kubernetes-preserve-unknown-fields": True}
            if "description" in schema:
                out["description"] = schema["description"]
        if nullable:
            out["nullable"] = True
        return out
    out = {k: schema[k] for k in _KEEP if k in schema}
    if "const" in schema:
        out["enum"] = [schema["const"]]
    if "exclusiveMinimum" in schema:
        out["minimum"], out["exclusiveMinimum"] = schema["exclusiveMinimum"], True
    kind = schema.get("type")
    if kind is None:
        out.update({"x-kubernetes-preserve-unknown-fields": True})
        return out
    out["type"] = kind
    if kind == "object":
        props = schema.get("properties")
        extra = schema.get("additionalProperties")
        if props:
            out["properties"] = {k: _structural(v, defs) for k, v in props.items()}
        elif isinstance(extra, dict) and extra:
            out["additionalProperties"] = _structural(extra, defs)
        else:
            out["x-kubernetes-preserve-unknown-fields"] = True
    elif kind == "array":
        out["items"] = _structural(schema.get("items", {}), defs)
    return out


def crd() -> dict[str, Any]:
    schema = _agent_schema()
    defs = schema.get("$defs", {})
    props = schema["properties"]
    spec = _structural(props["spec"], defs)
    status = _structural(props["status"], defs)
    status.pop("nullable", None)
    open_api = {
        "type": "object",
        "description": schema.get("description", ""),
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": spec,
            "status": status,
        },
        "required": ["spec"],
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"agents.{GROUP}",
                     "labels": {"app.kubernetes.io/managed-by": "agentctl"}},
        "spec": {
            "group": GROUP,
            "names": {"kind": "Agent", "listKind": "AgentList", "plural": "agents",
                      "singular": "agent", "shortNames": ["ag"], "categories": ["ai"]},
            "scope": "Namespaced",
            "versions": [{
                "name": VERSION,
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "additionalPrinterColumns": [
                    {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
                    {"name": "Ready", "type": "string",
                     "jsonPath": '.status.conditions[?(@.type=="Ready")].status'},
                    {"name": "Available", "type": "integer",
                     "jsonPath": ".status.availableReplicas"},
                    {"name": "Desired", "type": "integer", "jsonPath": ".status.replicas"},
                    {"name": "Slot", "type": "string", "jsonPath": ".status.activeSlot",
                     "priority": 1},
                    {"name": "Weight", "type": "integer", "jsonPath": ".status.canaryWeight",
                     "priority": 1},
                    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
                ],
                "schema": {"openAPIV3Schema": open_api},
            }],
        },
    }
