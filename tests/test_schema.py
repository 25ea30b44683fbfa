"""`agentctl schema`: the JSON Schema and the Agent CRD are generated from the model, and both
accept the example agents and reject bad ones."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest
import yaml
from typer.testing import CliRunner

from agentctl.cli import app
from tests.conftest import REPO


def _example_agents() -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for path in sorted((REPO / "agents").glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    assert docs
    return docs


def _openapi_to_jsonschema(node: Any) -> Any:
    """Read an OpenAPI v3 structural schema as JSON Schema (as the API server would judge)."""
    if isinstance(node, list):
        return [_openapi_to_jsonschema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _openapi_to_jsonschema(v) for k, v in node.items()
           if not k.startswith("x-kubernetes") and k != "nullable"}
    if node.get("x-kubernetes-int-or-string"):
        out["anyOf"] = [{"type": "integer"},
                        {"type": "string", **({"pattern": node["pattern"]}
                                              if "pattern" in node else {})}]
        out.pop("pattern", None)
    if "properties" in node and not node.get("x-kubernetes-preserve-unknown-fields"):
        out.setdefault("additionalProperties", False)
    if node.get("nullable"):
        return {"anyOf": [out, {"type": "null"}]}
    return out


@pytest.fixture(scope="module")
def crd() -> dict[str, Any]:
    result = CliRunner().invoke(app, ["schema", "--crd"])
    assert result.exit_code == 0, result.output
    document: dict[str, Any] = yaml.safe_load(result.stdout)
    return document


def test_crd_shape(crd: dict[str, Any]) -> None:
    assert crd["kind"] == "CustomResourceDefinition"
    assert crd["metadata"]["name"] == "agents.agent.inferensys.com"
    version = crd["spec"]["versions"][0]
    assert version["name"] == "v1alpha1"
    assert version["storage"]
    assert version["served"]
    assert version["subresources"] == {"status": {}}
    columns = [c["name"] for c in version["additionalPrinterColumns"]]
    assert columns == ["Phase", "Ready", "Available", "Desired", "Slot", "Weight", "Age"]
    text = json.dumps(crd)
    for construct in ("$ref", "$defs", '"default"'):
        assert construct not in text


def test_crd_schema_accepts_the_example_agents(crd: dict[str, Any]) -> None:
    schema = _openapi_to_jsonschema(crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"])
    for agent in _example_agents():
        jsonschema.validate(agent, schema)


@pytest.mark.parametrize(("path", "value"), [
    (("spec", "replicas"), "three"),
    (("spec", "rollout"), {"strategy": "Bogus"}),
    (("spec", "runtime", "port"), 70000),
    (("spec", "runtime", "imageName"), "x"),
    (("spec", "resources"), {"requests": {"cpu": "lots"}}),
])
def test_crd_schema_rejects_bad_agents(crd: dict[str, Any], path: tuple[str, ...],
                                       value: Any) -> None:
    schema = _openapi_to_jsonschema(crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"])
    agent = _example_agents()[0]
    node = agent
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(agent, schema)


def test_json_schema_accepts_examples_and_rejects_unknown_fields() -> None:
    result = CliRunner().invoke(app, ["schema", "--json-schema"])
    assert result.exit_code == 0, result.output
    schema = json.loads(result.stdout)
    validator = jsonschema.Draft202012Validator(schema)
    for agent in _example_agents():
        validator.validate(agent)
    bad = _example_agents()[0]
    bad["spec"]["runtime"]["imag"] = "typo"
    assert not validator.is_valid(bad)


@pytest.mark.parametrize("args", [[], ["--crd", "--json-schema"], ["--write", "--crd"],
                                  ["--check", "--json-schema"]])
def test_schema_needs_exactly_one_choice(args: list[str]) -> None:
    result = CliRunner().invoke(app, ["schema", *args])
    assert result.exit_code == 2
    assert "exactly one of --crd, --json-schema, --write and --check" in result.output
