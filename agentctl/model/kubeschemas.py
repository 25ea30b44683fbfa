"""The fields agentctl passes through to Kubernetes as they are (security contexts, tolerations,
affinity, topology spread constraints, an autoscaler's behavior), checked against their
Kubernetes 1.37 JSON schemas (strict: an unknown key is an error) when an agent is loaded, so a
wrong type is an input error at its line instead of a failure of a later stage.

The schemas ship with kubernetes-validate. jsonschema and the schemas are loaded only when such a
field has a value; one validator per schema, built once. The JSON Schema and the CRD keep these
fields free-form.
"""

from collections.abc import Callable
from functools import cache
from typing import Annotated, Any

from pydantic import BeforeValidator

from agentctl.model.common import KubeObject, rule

KUBERNETES_VERSION = "1.37.0"
_SCHEMA_DIR = f"v{KUBERNETES_VERSION}-local-strict"


def _schema_root() -> Any:
    from importlib import resources

    return resources.files("kubernetes_validate") / "kubernetes-json-schema" / _SCHEMA_DIR


@cache
def _registry() -> Any:
    import json

    from referencing import Registry, Resource

    definitions = json.loads((_schema_root() / "_definitions.json").read_text())
    return Resource.from_contents(definitions) @ Registry()


@cache
def validator(name: str, many: bool = False) -> Any | None:
    """The validator of the schema file `name` (`toleration-v1`, `deployment-apps-v1`), or of a
    list of it; None when kubernetes-validate ships no such file (a custom resource's kind).
    Shared with `agentctl validate`, so the definitions are loaded once."""
    import json

    import jsonschema

    path = _schema_root() / f"{name}.json"
    if not path.is_file():
        return None
    schema = json.loads(path.read_text())
    if many:
        schema = {"$schema": schema["$schema"], "type": "array", "items": schema}
    return jsonschema.validators.Draft202012Validator(schema, registry=_registry())


def kube_schema(name: str, many: bool = False) -> Callable[[Any], Any]:
    """A before-validator checking a value against the Kubernetes schema `name` (a file of
    kubernetes-validate without `.json`, e.g. `toleration-v1`), or a list of it (`many`). A
    violation is a `rule` about the offending element, placed at its value."""

    def check(value: Any) -> Any:
        if value is None:
            return value
        schema = validator(name, many)
        assert schema is not None, name  # every name given here ships with kubernetes-validate
        errors = list(schema.iter_errors(value))
        if errors:
            from jsonschema.exceptions import best_match

            at, message = _described(best_match(errors))
            raise rule(at, message, at_value=True)
        return value

    return check


def _described(error: Any) -> tuple[tuple[str | int, ...], str]:
    """The path below the field and the message of one schema violation."""
    import difflib

    path = tuple(error.absolute_path)
    instance = error.instance
    if error.validator == "additionalProperties" and isinstance(instance, dict):
        known = list((error.schema.get("properties") or {}).keys())
        key = next(k for k in instance if k not in known)
        close = difflib.get_close_matches(str(key), known, n=1, cutoff=0.6)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return (*path, key), f"unknown field {key!r}{hint}"
    if error.validator == "type":
        expected = error.validator_value
        names = [expected] if isinstance(expected, str) else list(expected)
        wanted = " or ".join(_TYPE_NAMES.get(n, n) for n in names if n != "null")
        return path, f"must be {wanted}, not {_kind(instance)} ({_shown(instance)})"
    if error.validator == "required" and isinstance(instance, dict):
        key = next(k for k in error.validator_value if k not in instance)
        return (*path, key), "required field is missing"
    message = str(error.message)
    return path, message if len(message) <= 300 else message[:297] + "..."


_TYPE_NAMES = {"object": "a mapping", "array": "a list", "string": "a string",
               "integer": "an integer", "number": "a number", "boolean": "a boolean"}


_VALUE_KINDS = {type(None): "null", bool: "a boolean", int: "an integer", float: "a number",
                str: "a string", dict: "a mapping", list: "a list"}


def _kind(value: Any) -> str:
    return _VALUE_KINDS.get(type(value), type(value).__name__)


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


PodSecurityContext = Annotated[KubeObject, BeforeValidator(kube_schema("podsecuritycontext-v1"))]
"""A Kubernetes PodSecurityContext (core/v1)."""
SecurityContext = Annotated[KubeObject, BeforeValidator(kube_schema("securitycontext-v1"))]
"""A Kubernetes container SecurityContext (core/v1)."""
Tolerations = Annotated[list[KubeObject],
                        BeforeValidator(kube_schema("toleration-v1", many=True))]
"""Kubernetes Tolerations (core/v1)."""
Affinity = Annotated[KubeObject, BeforeValidator(kube_schema("affinity-v1"))]
"""A Kubernetes Affinity (core/v1)."""
TopologySpreadConstraints = Annotated[
    list[KubeObject], BeforeValidator(kube_schema("topologyspreadconstraint-v1", many=True))]
"""Kubernetes TopologySpreadConstraints (core/v1)."""
HpaBehavior = Annotated[KubeObject, BeforeValidator(
    kube_schema("horizontalpodautoscalerbehavior-autoscaling-v2"))]
"""A HorizontalPodAutoscalerBehavior (autoscaling/v2), also KEDA's advanced HPA behavior."""
