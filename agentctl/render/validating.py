"""Stage 5 (offline), validate: every rendered object checked against the Kubernetes 1.37 JSON
schemas shipped by kubernetes-validate (strict: unknown fields are errors), with one validator
built per kind and reused. Kinds served by CRDs that have no schema here are reported as skipped,
never as passed. Also flags credential-looking literal env values (a warning; --strict fails).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

import jsonschema
from referencing import Registry, Resource

from agentctl.errors import Problem
from agentctl.manifests import Manifest
from agentctl.model.agent import Agent
from agentctl.render.sources import Source, attribute

KUBERNETES_VERSION = "1.37.0"
_SCHEMA_DIR = f"v{KUBERNETES_VERSION}-local-strict"


@dataclass
class Validation:
    passed: list[Manifest] = field(default_factory=list)
    skipped: list[Manifest] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


def _schema_root() -> Any:
    return resources.files("kubernetes_validate") / "kubernetes-json-schema" / _SCHEMA_DIR


@cache
def _registry() -> Registry[Any]:
    definitions = json.loads((_schema_root() / "_definitions.json").read_text())
    return Resource.from_contents(definitions) @ Registry()


@cache
def validator_for(api_version: str, kind: str) -> jsonschema.protocols.Validator | None:
    """The cached validator of one kind, or None when no schema ships for it (a CRD)."""
    short = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    path = _schema_root() / f"{kind.lower()}-{short}.json"
    if not path.is_file():
        return None
    schema = json.loads(path.read_text())
    cls = jsonschema.validators.Draft202012Validator
    validator: jsonschema.protocols.Validator = cls(schema, registry=_registry())
    return validator


def validate_objects(manifests: Iterable[Manifest]) -> Validation:
    result = Validation()
    for manifest in manifests:
        validator = validator_for(manifest.body["apiVersion"], manifest.body["kind"])
        if validator is None:
            result.skipped.append(manifest)
            continue
        errors = sorted(validator.iter_errors(manifest.body), key=lambda e: list(e.path))
        if not errors:
            result.passed.append(manifest)
            continue
        for error in errors:
            where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.path)
            result.problems.append(Problem(obj=str(manifest.ref), field=where.lstrip("."),
                                           message=_short(error.message)
                                           + f" ({manifest.template})"))
    return result


def _short(message: str) -> str:
    return message if len(message) <= 300 else message[:297] + "..."


_CREDENTIAL_NAME = re.compile(r"(PASSWORD|PASSWD|SECRET|TOKEN|API_?KEY|ACCESS_?KEY|PRIVATE_?KEY|"
                              r"CREDENTIAL)", re.IGNORECASE)
_CREDENTIAL_VALUE = re.compile(r"^(sk-[A-Za-z0-9_-]{16,}|ghp_[A-Za-z0-9]{20,}|xox[abp]-[A-Za-z0-9-]{10,}"  # noqa: E501
                               r"|AKIA[0-9A-Z]{16}|AIza[0-9A-Za-z_-]{30,}|eyJ[A-Za-z0-9_-]{20,}\..+)$")


def credential_warnings(agent: Agent, sources: list[Source]) -> list[Problem]:
    """Literal env values that look like credentials. The value itself is never repeated."""
    found: list[Problem] = []
    groups: list[tuple[tuple[str | int, ...], list[Any]]] = [(("runtime", "env"),
                                                              agent.spec.runtime.env)]
    for i, sidecar in enumerate(agent.spec.sidecars):
        groups.append((("sidecars", i, "env"), sidecar.env))
    for i, init in enumerate(agent.spec.lifecycle.init_containers):
        groups.append((("lifecycle", "initContainers", i, "env"), init.env))
    for loc, env in groups:
        for j, var in enumerate(env):
            if not var.value:
                continue
            if _CREDENTIAL_NAME.search(var.name) or _CREDENTIAL_VALUE.match(var.value):
                path = (*loc, j, "value")
                found.append(attribute(sources, path, (
                    f"{var.name} has a literal value that looks like a credential; reference a "
                    "Secret (valueFrom.secretKeyRef or spec.secrets.env) instead"),
                    "spec." + ".".join(str(p) if isinstance(p, str) else f"[{p}]"
                                       for p in path).replace(".[", "[")))
    return found
