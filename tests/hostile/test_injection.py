"""YAML injection, through the CLI: payloads that would add keys, documents or objects if a
template interpolated them as text (newlines and `---`, `key: value`, template syntax, quotes, YAML
syntax, Unicode line separators, control characters, number and null look-alikes, very long
lines), in every free-text field of an agent, its annotations and an environment's defaults and
overrides.

Invariants: in a free-text field the project renders (and validates) with exit 0, to exactly the
objects a harmless value gives, with the payload verbatim as a string value, and YAML 1.1 and 1.2
readers see the same stream; in a field whose pattern forbids such text, exit 2 naming the field
at its `file:line:col`, and nothing rendered.
"""

from __future__ import annotations

import functools
import json
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from ruamel.yaml import YAML

from tests.hostile.projects import (
    AGENT_FILE,
    AT_AGENT,
    AT_ENV,
    ENV_FILE,
    agent,
    commands,
    env,
    invoke,
    write_project,
)

PAYLOADS: dict[str, str] = {
    "new-document": "x\n---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: pwned\n"
                    "  namespace: kube-system\n",
    "new-key": "ok\nevil: true\nkind: Secret\n",
    "template-text": "{{ agent.metadata.name }} {% if true %}x{% endif %} {# c #} ${HOME}",
    "quotes": "\"'\\\" ' \\n `$(id)` \"}, {\"name\": \"INJECTED\", \"value\": \"1",
    "line-separators": "line\u2028sep\u2029para\x85nel\r\nwin\rcr\vvt\x0cff",
    "yaml-syntax": "# no comment &anchor *alias !!python/object:os.system [a, {b: c}] | > - ? :",
    "whitespace": "  leading and trailing spaces  \t",
    "controls": "\x00\x07\x1b[31mred\x1b[0m\x7f",
    "scalar-lookalike": "null",
    "exponent": "1e3",
    "leading-zero": "08",
    "octal": "0o17",
    "long-line": "word " * 3000,
}
"""Values that would add keys, documents or objects if interpolated as text, or change type when
a YAML 1.1 or 1.2 reader (PyYAML, kubectl, Flux, ruamel) reads them back."""

BLANK = "plain"
"""The control value: the same project with a harmless string in the same field."""



def url_of(payload: str) -> str:
    """The payload made into a URL (which may hold no whitespace and at most 2048 characters)."""
    return "http://t/" + re.sub(r"\s", "", payload)[:1000]


FREE_TEXT: dict[str, Any] = {
    "description": lambda p: {AGENT_FILE: agent({"description": p})},
    "env-value": lambda p: {AGENT_FILE: agent({"runtime": {"env": [
        {"name": "GREETING", "value": p}]}})},
    "model-id": lambda p: {AGENT_FILE: agent({"model": {"id": p}})},
    "model-params": lambda p: {AGENT_FILE: agent({"model": {"params": {"style": p,
                                                                       "nested": [p]}}})},
    "system-message": lambda p: {AGENT_FILE: agent({"instructions": {"systemMessage": p}})},
    "annotation": lambda p: {AGENT_FILE: agent(metadata={"annotations": {
        "example.com/note": p}})},
    "service-account-annotation": lambda p: {AGENT_FILE: agent({"runtime": {"serviceAccount": {
        "create": True, "annotations": {"example.com/note": p}}}})},
    "command-and-args": lambda p: {AGENT_FILE: agent({"runtime": {"command": ["/agent", p],
                                                                  "args": [p]}})},
    "tool-names": lambda p: {AGENT_FILE: agent({"tools": [{
        "name": "t", "type": "http", "url": "http://t:80/", "toolNames": [p],
        "requireApproval": [p]}]})},
    "embedding-model": lambda p: {AGENT_FILE: agent({"memory": {"longTerm": {
        "backend": "redis", "urlSecretRef": {"name": "r", "key": "url"},
        "embeddingModel": p}}})},
    "defaults-description": lambda p: {AGENT_FILE: agent({"description": None}),
                                       ENV_FILE: env({"defaults": {"description": p}})},
    "override-env-value": lambda p: {ENV_FILE: env({"agents": {"x": {"runtime": {"env": [
        {"name": "GREETING", "value": p}]}}}})},
    "tool-url-no-whitespace": lambda p: {AGENT_FILE: agent({"tools": [{
        "name": "t", "type": "http", "url": url_of(p)}]})},
}
"""Fields that take any text: each must come out as an inert string."""

PATTERNED: dict[str, tuple[Any, str]] = {
    "image": (lambda p: {AGENT_FILE: agent({"runtime": {"image": p}})}, "spec.runtime.image"),
    "provider": (lambda p: {AGENT_FILE: agent({"model": {"provider": p}})},
                 "spec.model.provider"),
    "endpoint": (lambda p: {AGENT_FILE: agent({"model": {"endpoint": "http://m/" + p}})},
                 "spec.model.endpoint"),
    "tool-url": (lambda p: {AGENT_FILE: agent({"tools": [{
        "name": "t", "type": "http", "url": "http://t/" + p}]})}, "spec.tools[0].url"),
    "label-value": (lambda p: {AGENT_FILE: agent(metadata={"labels": {"team": p}})},
                    "metadata.labels.team"),
    "override-image": (lambda p: {ENV_FILE: env({"agents": {"x": {"runtime": {"image": p}}}})},
                       "spec.runtime.image"),
}
"""Fields whose pattern refuses text with whitespace or YAML syntax: exit 2 naming the field."""

REFUSED = [k for k, v in PAYLOADS.items() if re.search(r"[\s{}\"']", v)]


def strings(value: Any) -> Iterator[str]:
    """Every string in a document, and the strings inside values that hold JSON."""
    if isinstance(value, dict):
        for item in value.values():
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)
    elif isinstance(value, str):
        yield value
        try:
            decoded = json.loads(value)
        except ValueError:
            return
        if isinstance(decoded, dict | list):
            yield from strings(decoded)


def rendered(root: Path) -> tuple[set[tuple[str, str, str, str]], list[dict[str, Any]]]:
    result = invoke(root)
    assert result.exit_code == 0, result.output
    assert not isinstance(result.exception, Exception), result.exception  # SystemExit only
    docs = [d for d in yaml.safe_load_all(result.stdout) if d is not None]
    # kubectl and Flux read the files with other YAML parsers: all must see the same data.
    assert docs == [d for d in YAML(typ="safe", pure=True).load_all(result.stdout)
                    if d is not None]
    refs = {(d["apiVersion"], d["kind"], d["metadata"].get("namespace", ""),
             d["metadata"]["name"]) for d in docs}
    return refs, docs


@functools.cache
def control_refs(where: str) -> frozenset[tuple[str, str, str, str]]:
    """The objects of the project with a harmless value in the field, rendered once."""
    with tempfile.TemporaryDirectory() as tmp:
        refs, _ = rendered(write_project(Path(tmp), FREE_TEXT[where](BLANK)))
    return frozenset(refs)


@pytest.mark.parametrize("payload", list(PAYLOADS), ids=list(PAYLOADS))
@pytest.mark.parametrize("where", list(FREE_TEXT), ids=list(FREE_TEXT))
def test_injection_in_free_text_renders_inert(where: str, payload: str, tmp_path: Path) -> None:
    make = FREE_TEXT[where]
    text = PAYLOADS[payload]
    root = write_project(tmp_path, make(text))
    refs, docs = rendered(root)
    assert refs == control_refs(where)
    if where == "tool-url-no-whitespace":
        text = url_of(text)
    found = [s for d in docs for s in strings(d) if s == text]
    assert found, f"payload not rendered verbatim as a string value in {where}"
    for command in commands():
        if command == "render":
            continue
        result = invoke(root, command)
        assert result.exit_code == 0, f"{command}: {result.output}"


@pytest.mark.parametrize("payload", REFUSED, ids=REFUSED)
@pytest.mark.parametrize("where", list(PATTERNED), ids=list(PATTERNED))
def test_injection_in_patterned_field_is_refused(where: str, payload: str,
                                                 tmp_path: Path) -> None:
    make, path = PATTERNED[where]
    root = write_project(tmp_path, make(PAYLOADS[payload]))
    at = AT_ENV if where.startswith("override") else AT_AGENT
    for command in commands():
        result = invoke(root, command)
        assert result.exit_code == 2, f"{command}: {result.output}"
        assert not isinstance(result.exception, Exception), result.exception  # SystemExit only
        assert any(re.search(at, line) and path in line
                   for line in result.output.splitlines()), result.output
        assert "pwned" not in result.stdout
