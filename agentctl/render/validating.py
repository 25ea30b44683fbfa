"""Stage 5 (offline), validate: every rendered object checked against the Kubernetes 1.37 JSON
schemas shipped by kubernetes-validate (strict: unknown fields are errors), with one validator
built per kind and reused. Kinds served by CRDs that have no schema here are reported as skipped,
never as passed. Also flags credential-looking literals in the spec: env values, model params,
command and args items, URL userinfo (a warning; --strict fails).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import jsonschema

from agentctl.errors import Problem
from agentctl.manifests import Manifest
from agentctl.model import kubeschemas
from agentctl.model.agent import Agent
from agentctl.render.sources import Source, attribute, field_path


@dataclass
class Validation:
    passed: list[Manifest] = field(default_factory=list)
    skipped: list[Manifest] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


def validator_for(api_version: str, kind: str) -> jsonschema.protocols.Validator | None:
    """The cached validator of one kind, or None when no schema ships for it (a CRD)."""
    short = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    found: jsonschema.protocols.Validator | None = kubeschemas.validator(
        f"{kind.lower()}-{short}")
    return found


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
    """Literals that look like credentials: env values, model params, command and args items,
    and a password in the userinfo of any URL the spec carries. The value itself is never
    repeated."""
    found: dict[tuple[str | int, ...], Problem] = {}

    def warn(path: tuple[str | int, ...], message: str) -> None:
        if path not in found:
            found[path] = attribute(sources, path, message, field_path(("spec", *path)))

    spec = agent.spec
    containers: list[tuple[tuple[str | int, ...], Any]] = [(("runtime",), spec.runtime)]
    containers += [(("sidecars", i), c) for i, c in enumerate(spec.sidecars)]
    containers += [(("lifecycle", "initContainers", i), c)
                   for i, c in enumerate(spec.lifecycle.init_containers)]
    for loc, container in containers:
        for j, var in enumerate(container.env):
            if not var.value:
                continue
            if _CREDENTIAL_NAME.search(var.name) or _CREDENTIAL_VALUE.match(var.value):
                warn((*loc, "env", j, "value"), (
                    f"{var.name} has a literal value that looks like a credential; reference a "
                    "Secret (valueFrom.secretKeyRef or spec.secrets.env) instead"))
        for key in ("command", "args"):
            for j, message in _argument_credentials(getattr(container, key) or []):
                warn((*loc, key, j), message)
    _param_credentials(spec.model.params, ("model", "params"), warn)
    _url_credentials(spec.model_dump(mode="json", by_alias=True), (), warn)
    return list(found.values())


_SECRET_WORDS = frozenset({"password", "passwd", "passphrase", "secret", "token", "credential",
                           "credentials", "apikey", "accesskey", "privatekey", "secretkey"})
_SECRET_PAIRS = frozenset({("api", "key"), ("access", "key"), ("private", "key"),
                           ("secret", "key"), ("auth", "token"), ("client", "secret")})
_NOT_SECRET_LAST = frozenset({"file", "path", "dir", "name", "ref", "env", "var", "url",
                              "endpoint", "type", "limit", "count", "size", "length", "ttl"})
"""A name ending in one of these is about a credential, not one (`--token-file`,
`secretName`, `max_token_limit`)."""


def _credential_named(name: str) -> bool:
    """A key or flag named like a credential, word by word (`api_key`, `apiKey`, `--api-key`,
    `clientSecret`), so `max_tokens` or `tokenizer` is not one."""
    words = [w.lower() for w in re.findall(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+", name)]
    if not words or words[-1] in _NOT_SECRET_LAST:
        return False
    return (any(w in _SECRET_WORDS for w in words)
            or any(pair in _SECRET_PAIRS for pair in itertools.pairwise(words)))


_REFERENCE = re.compile(r"^\$(?:\([A-Za-z_][A-Za-z0-9_.-]*\)|\{[A-Za-z_][A-Za-z0-9_]*\}"
                        r"|[A-Za-z_][A-Za-z0-9_]*)$")
"""`$(VAR)` (Kubernetes expands it from the container's env), `${VAR}`, `$VAR`: not literals."""
_FLAG = re.compile(r"^(--?[A-Za-z][A-Za-z0-9_.-]*)(?:=(.*))?$", re.DOTALL)
_ARGUMENT_HINT = ("pass it from a Secret through an environment variable ($(VAR) in args) "
                  "instead")


def _literal(value: str) -> bool:
    return bool(value) and not _REFERENCE.match(value)


def _argument_credentials(items: list[str]) -> list[tuple[int, str]]:
    """(index, message), at most one per item, for command or args items carrying a
    credential: `--api-key=…`, a credential-named flag whose value is the next word or item, or
    a word that itself looks like a credential. An item is read word by word, so a shell line
    (`sh -c "… --token …"`) is checked too."""
    out: list[tuple[int, str]] = []
    pending: str | None = None  # a credential-named flag whose value is the next word
    for j, item in enumerate(items):
        for quoted in item.split():
            word = quoted.strip("'\"")
            flag, pending = pending, None
            match = _FLAG.match(word)
            if flag is not None and match is None:
                if _literal(word):
                    out.append((j, f"the value of {flag} is a literal that looks like a "
                                f"credential; {_ARGUMENT_HINT}"))
                    break
                continue
            if match is not None and match.group(2) is None:
                if _credential_named(match.group(1)):
                    pending = match.group(1)
                continue
            value = match.group(2) if match is not None else word
            if match is not None and _credential_named(match.group(1)) and _literal(value):
                out.append((j, f"the argument {match.group(1)} carries a literal that looks "
                            f"like a credential; {_ARGUMENT_HINT}"))
                break
            if _CREDENTIAL_VALUE.match(value):
                out.append((j, f"an argument looks like a credential; {_ARGUMENT_HINT}"))
                break
    return out


def _param_credentials(value: Any, loc: tuple[str | int, ...],
                       warn: Callable[[tuple[str | int, ...], str], None]) -> None:
    """Model params (nested maps and lists too) named like a credential with a literal string
    value, or with a value that looks like one."""
    items = value.items() if isinstance(value, dict) else enumerate(value) \
        if isinstance(value, list) else ()
    for key, item in items:
        if isinstance(item, dict | list):
            _param_credentials(item, (*loc, key), warn)
        elif isinstance(item, str) and item and (
                (isinstance(key, str) and _credential_named(key))
                or _CREDENTIAL_VALUE.match(item)):
            warn((*loc, key), f"model parameter {field_path((*loc[2:], key)) or key} has a "
                 "literal value that looks like a credential; reference a Secret "
                 "(model.apiKeySecretRef or spec.secrets.env) instead")


_USERINFO = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://([^/?#@\s]*)@")


def _url_credentials(value: Any, loc: tuple[str | int, ...],
                     warn: Callable[[tuple[str | int, ...], str], None]) -> None:
    """Every string of the spec holding a URL with a password (or a credential-looking user) in
    its userinfo: endpoints, tool URLs, model source URIs, and URLs inside env values, args,
    params or rollout patches."""
    if isinstance(value, dict):
        for key, item in value.items():
            _url_credentials(item, (*loc, key), warn)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _url_credentials(item, (*loc, i), warn)
    elif isinstance(value, str) and "@" in value:
        for match in _USERINFO.finditer(value):
            user, _, password = match.group(1).partition(":")
            if password or _CREDENTIAL_VALUE.match(user):
                warn(loc, "the URL carries credentials in its userinfo; reference a Secret "
                     "instead")
                return
