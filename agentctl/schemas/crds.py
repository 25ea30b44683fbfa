"""The Agent's CustomResourceDefinition (so `kubectl get agents` works), generated from the
pydantic model that validates Agent files: never a hand-kept copy.

The CRD needs a *structural* OpenAPI v3 schema: every `$ref` inlined, `Optional[X]` as
`nullable`, int-or-string unions as `x-kubernetes-int-or-string`, free-form maps as
`x-kubernetes-preserve-unknown-fields`, no defaults (agentctl fills them in when rendering).
"""

from __future__ import annotations

from typing import Any

from agentctl.model.agent import Agent
from agentctl.model.common import describe_fields

GROUP = "agent.inferensys.com"
VERSION = "v1alpha1"
_KEEP = ("description", "enum", "pattern", "minimum", "maximum", "minLength", "maxLength",
         "minItems", "maxItems", "required")


def agent_schema() -> dict[str, Any]:
    """The Agent model's own JSON Schema (camelCase keys, field docstrings as descriptions)."""
    describe_fields()
    return Agent.model_json_schema(by_alias=True, mode="validation")


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
    schema = agent_schema()
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
