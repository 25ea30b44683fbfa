"""The JSON Schemas of agentctl's files, for editors, generated from the pydantic models:
never a hand-kept copy.

One per kind of file (Draft 2020-12, camelCase keys as in files, field docstrings as
descriptions, and the same meaning under Draft 7, which yaml-language-server applies): Agent,
Environment, Project. Two places hold JSON Merge Patches (RFC 7386) over an Agent's spec, and get
a *partial* AgentSpec schema rather than a free-form map, so an editor completes and checks the
fields inside them: an Environment's `spec.defaults` and `spec.agents.<name>`, and an Agent's
track patches (`rollout.canary.patch`, `rollout.blueGreen.slots.{blue,green}`), the latter
limited to the sections a track may change (`delivery.PATCHABLE` without
`delivery.NOT_PATCHABLE`). A partial object has no `required` and each of its properties also
admits `null` (null deletes); a list replaces whole in a merge patch, so its items keep the full
schema.
"""

from __future__ import annotations

import copy
import json
import posixpath
import re
from typing import Any, Literal

from pydantic import TypeAdapter

from agentctl.model.common import Quantity, describe_fields
from agentctl.model.delivery import NOT_PATCHABLE, PATCHABLE, TRACK_PATCHES
from agentctl.model.environment import PROJECT_API_VERSION, Environment, Project
from agentctl.schemas.crds import GROUP, VERSION, agent_schema

_PROJECT_GROUP = PROJECT_API_VERSION.split("/", 1)[0]
_DRAFT = "https://json-schema.org/draft/2020-12/schema"

Kind = Literal["agent", "environment", "project"]
KINDS: tuple[Kind, ...] = ("agent", "environment", "project")
FOLDER = "schemas"
"""Where a project keeps the schemas, relative to the project directory."""
FILES: dict[Kind, str] = {kind: f"{FOLDER}/{kind}.schema.json" for kind in KINDS}
"""Each kind's schema file, relative to the project directory."""


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
    agent = agent_schema()
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
    name = defs["AgentMeta"]["properties"]["name"]  # an override names an agent
    props["agents"] = {**{k: v for k, v in props["agents"].items()
                          if k != "additionalProperties"},
                       "propertyNames": {k: v for k, v in name.items()
                                         if k in ("pattern", "minLength", "maxLength")},
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
