"""Building blocks shared by the models: the strict base model, Kubernetes name and value types,
quantities, and the one way a cross-field rule reports the field it is about.

Pure data: no I/O. Every model forbids unknown keys (a typo is an error, not a silently ignored
key) and reads and writes camelCase keys, exactly as they appear in YAML.
"""

import re
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    WithJsonSchema,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError


class StrictModel(BaseModel):
    """Every model: unknown keys refused, camelCase keys. Each field is documented by the
    docstring under it; those become descriptions only on demand (`describe_fields`)."""

    model_config = ConfigDict(
        extra="forbid",
        alias_generator=to_camel,
        populate_by_name=True,
        validate_default=False,
    )

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        _MODELS.append(cls)


_MODELS: list[type[StrictModel]] = []
"""Every model class, in the order they were defined (a model after the models it uses)."""
_described = False


def describe_fields() -> None:
    """Make each field's docstring its description, for the JSON Schema, the CRD and the
    reference docs. Not done at import: it parses the models' source (tens of milliseconds of
    every command's start), and validation never needs it."""
    global _described  # noqa: PLW0603 - once per process
    if _described:
        return
    own = {model: _attribute_docstrings(model) for model in _MODELS}
    for model in _MODELS:
        docs: dict[str, str] = {}
        for base in reversed(model.__mro__):  # an inherited field keeps its docstring
            docs.update(own.get(base, {}))
        for name, info in model.model_fields.items():
            if info.description is None and name in docs:
                info.description = docs[name]
        model.model_rebuild(force=True)
    _described = True


def _attribute_docstrings(model: type) -> dict[str, str]:
    """`name: type` followed by a string literal, in the class body: name → cleaned docstring."""
    import ast
    import inspect
    import itertools
    import textwrap

    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(model)))
    except (OSError, TypeError):
        return {}
    body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
    docs: dict[str, str] = {}
    for node, after in itertools.pairwise(body):
        if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                and isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant)
                and isinstance(after.value.value, str)):
            docs[node.target.id] = inspect.cleandoc(after.value.value)
    return docs


def rule(at: str | tuple[str | int, ...], message: str, *,
         at_value: bool = False) -> PydanticCustomError:
    """A cross-field rule violation about the field `at` (a dotted path below the model that
    raises it, or a tuple of keys when a key may hold a dot), so the loader can point at that
    field's line rather than at the model: at its key, or at its value (`at_value`)."""
    context: dict[str, Any] = {"at": at}
    if at_value:
        context["at_value"] = True
    return PydanticCustomError("agentctl_rule", message, context)


_DNS1123_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
_DNS1035_LABEL = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"
_DNS1123_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
_LABEL_VALUE = r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$"
_QUALIFIED_NAME = r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"  # noqa: E501
_ENV_VAR_NAME = r"^[-._a-zA-Z][-._a-zA-Z0-9]*$"
_QUANTITY = r"^[+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]+|Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?$"  # noqa: E501
_DURATION = r"^([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+$"
_GATEWAY_DURATION = r"^([0-9]{1,5}(h|m|s|ms)){1,4}$"

PATTERN_HINTS = {
    _DNS1123_LABEL: "must be a DNS-1123 label: lower-case letters, digits and '-', starting and "
    "ending with a letter or digit",
    _DNS1035_LABEL: "must be a DNS-1035 label: lower-case letters, digits and '-', starting with "
    "a letter and ending with a letter or digit",
    _DNS1123_SUBDOMAIN: "must be a DNS-1123 subdomain: lower-case letters, digits, '-' and '.'",
    _LABEL_VALUE: "must be a label value: at most 63 letters, digits, '-', '_' or '.', starting "
    "and ending with a letter or digit",
    _ENV_VAR_NAME: "must be an environment variable name: letters, digits, '_', '-' or '.', not "
    "starting with a digit",
    _QUANTITY: "must be a Kubernetes quantity such as 500m, 2, 512Mi or 1Gi",
    _DURATION: "must be a duration such as 30s, 5m or 1h",
    _GATEWAY_DURATION: "must be a Gateway API duration: whole numbers with h, m, s or ms, such "
    "as 10m, 1h30m or 500ms",
}
"""Human descriptions of the patterns above, for error messages."""

DNS1123Label = Annotated[str, StringConstraints(pattern=_DNS1123_LABEL, max_length=63)]
"""A DNS-1123 label: lower-case alphanumerics and '-', at most 63 characters."""
DNS1123Subdomain = Annotated[str, StringConstraints(pattern=_DNS1123_SUBDOMAIN, max_length=253)]
AgentName = Annotated[str, StringConstraints(pattern=_DNS1035_LABEL, max_length=45)]
"""A DNS-1035 label of at most 45 characters, so every derived name (`<name>-preview`, …) fits."""
LabelValue = Annotated[str, StringConstraints(pattern=_LABEL_VALUE, max_length=63)]
EnvVarName = Annotated[str, StringConstraints(pattern=_ENV_VAR_NAME, min_length=1)]
def _number_to_str(value: Any) -> Any:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return value


Quantity = Annotated[
    str,
    BeforeValidator(_number_to_str),
    StringConstraints(pattern=_QUANTITY),
    WithJsonSchema({"anyOf": [{"type": "integer"}, {"type": "string", "pattern": _QUANTITY}]}),
]
"""A Kubernetes resource quantity such as `500m`, `2`, `1Gi`."""
Duration = Annotated[str, StringConstraints(pattern=_DURATION)]
"""A Go duration such as `30s`, `1h`, `1h30m`."""
GatewayDuration = Annotated[str, StringConstraints(pattern=_GATEWAY_DURATION)]
"""A Gateway API duration (GEP-2257) such as `10m`, `1h30m` or `500ms`; `0s` disables it."""
Port = Annotated[int, Field(ge=1, le=65535)]
AbsolutePath = Annotated[str, StringConstraints(pattern=r"^/[^\x00]*$")]
NonEmptyStr = Annotated[str, StringConstraints(min_length=1)]


def _qualified_name(value: str) -> str:
    prefix, _, name = value.rpartition("/")
    if not re.match(_QUALIFIED_NAME, value) or len(name) > 63 or len(prefix) > 253:
        raise PydanticCustomError(
            "qualified_name",
            "'{value}' is not a valid label or annotation key (an optional DNS subdomain prefix "
            "and '/', then at most 63 alphanumerics, '-', '_' or '.')",
            {"value": value},
        )
    return value


QualifiedName = Annotated[str, AfterValidator(_qualified_name)]
"""A label or annotation key: `[prefix/]name`."""

_SUFFIXES = {
    "n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"), "": Decimal(1),
    "k": Decimal("1e3"), "M": Decimal("1e6"), "G": Decimal("1e9"), "T": Decimal("1e12"),
    "P": Decimal("1e15"), "E": Decimal("1e18"),
    "Ki": Decimal(2**10), "Mi": Decimal(2**20), "Gi": Decimal(2**30), "Ti": Decimal(2**40),
    "Pi": Decimal(2**50), "Ei": Decimal(2**60),
}


def parse_quantity(value: str | int | float) -> Decimal:
    """The numeric value of a Kubernetes quantity (`500m` → 0.5, `1Gi` → 1073741824)."""
    text = str(value)
    match = re.match(r"^([+]?[0-9.]+(?:[eE][-+]?[0-9]+)?)([a-zA-Z]*)$", text)
    if not match or match.group(2) not in _SUFFIXES:
        raise ValueError(f"not a quantity: {text!r}")
    try:
        return Decimal(match.group(1)) * _SUFFIXES[match.group(2)]
    except InvalidOperation as err:
        raise ValueError(f"not a quantity: {text!r}") from err


class SecretKeyRef(StrictModel):
    """A key of an existing Secret. Only the reference is rendered, never the value."""

    name: DNS1123Subdomain
    key: Annotated[str, StringConstraints(pattern=r"^[-._a-zA-Z0-9]+$", max_length=253)]


class ConfigMapKeyRef(StrictModel):
    name: DNS1123Subdomain
    key: Annotated[str, StringConstraints(pattern=r"^[-._a-zA-Z0-9]+$", max_length=253)]


class LocalObjectReference(StrictModel):
    name: DNS1123Subdomain


EndpointHost = Annotated[str, StringConstraints(
    pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$", max_length=253)]
"""A domain, an IPv4 address or an in-cluster Service name (`<service>.<namespace>.svc`)."""


class Endpoint(StrictModel):
    """Where a backend listens, for egress: rendering reads no Secret, so the URL in the
    `urlSecretRef` cannot tell. A `host` (a domain, an IPv4 address, or `<service>.<namespace>.svc`
    for a Service) and port, or an in-cluster `namespace` and port."""

    host: EndpointHost | None = None
    namespace: DNS1123Label | None = None
    port: Annotated[int, Field(ge=1, le=65535)]

    @model_validator(mode="after")
    def _host_xor_namespace(self) -> Self:
        if (self.host is None) == (self.namespace is None):
            raise rule("host" if self.host is not None else "",
                       "set host (a domain, an IP address or <service>.<namespace>.svc) or "
                       "namespace (in-cluster), not both")
        return self


class ObjectMeta(StrictModel):
    name: DNS1123Label
    namespace: DNS1123Label | None = None
    labels: dict[QualifiedName, LabelValue] = Field(default_factory=dict)
    annotations: dict[QualifiedName, str] = Field(default_factory=dict)


KubeObject = dict[str, Any]
"""Pass-through Kubernetes structures (affinity, tolerations, …); each field of this type is
checked against its Kubernetes schema when loaded (agentctl.model.kubeschemas)."""
