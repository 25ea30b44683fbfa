"""Hostile input, through the CLI as a user meets it.

Input: small projects built in `tmp_path` from one minimal valid project (`agents/x.yaml`,
`environments/dev.yaml`), each with one thing wrong: YAML syntax, alias bombs, duplicate keys,
unknown fields, wrong types, bad names and label values, conflicting options, bad overrides and
defaults, and local blueprints that break, escape the sandbox, loop, flood or violate policy.

Invariants checked: `agentctl render` (and `validate`, once it exists) exits 2; one output line
names the file that introduced the problem, with `:line:col` where the problem is in a YAML file
(or the template's `:line` where it is in a template), and the field path; there is never a
traceback. YAML-injection payloads in every free-text field either render as inert strings (the
same objects as without the payload, the payload verbatim as a value) or, where a field's
pattern forbids them, exit 2 naming the field.
"""

from __future__ import annotations

import copy
import functools
import json
import re
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml
from ruamel.yaml import YAML
from typer.testing import CliRunner, Result

from agentctl.cli import app

AGENT_FILE = "agents/x.yaml"
ENV_FILE = "environments/dev.yaml"
AT_AGENT = r"agents/x\.yaml:\d+:\d+"
AT_ENV = r"environments/dev\.yaml:\d+:\d+"
BLUEPRINT = "blueprints/evil"


# -- building projects -----------------------------------------------------------------------


def merged(base: Any, patch: Any) -> Any:
    """RFC 7386 merge for building test inputs (`None` deletes a key, lists replace)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = copy.deepcopy(base) if isinstance(base, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merged(out.get(key), value)
    return out


class InputDumper(getattr(yaml, "CSafeDumper", yaml.SafeDumper)):  # type: ignore[misc]
    """Writes test input as a person would: strings that YAML 1.2 (agentctl's loader) reads as
    numbers are quoted, and libyaml escapes what the pure emitter would mangle (U+0085)."""


def _quoted_if_number_like(dumper: Any, value: str) -> Any:
    style = '"' if NUMBER_LIKE.fullmatch(value) else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


NUMBER_LIKE = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?"
                         r"|0o[0-7]+|0x[0-9a-fA-F]+")
InputDumper.add_representer(str, _quoted_if_number_like)


def dump(doc: Any) -> str:
    return yaml.dump(doc, Dumper=InputDumper, sort_keys=False, default_flow_style=False,
                     width=4096)


def agent_doc(spec: dict[str, Any] | None = None, name: str = "x",
              metadata: dict[str, Any] | None = None) -> dict[str, Any]:
    base_spec = {
        "description": "hello",
        "runtime": {"image": "ghcr.io/example/x:1.0"},
        "model": {"id": "gpt-4o"},
    }
    return {
        "apiVersion": "agent.inferensys.com/v1alpha1",
        "kind": "Agent",
        "metadata": merged({"name": name}, metadata or {}),
        "spec": merged(base_spec, spec or {}),
    }


def agent(spec: dict[str, Any] | None = None, name: str = "x",
          metadata: dict[str, Any] | None = None) -> str:
    return dump(agent_doc(spec, name, metadata))


def env(spec: dict[str, Any] | None = None, name: str = "dev") -> str:
    base_spec = {
        "namespace": "agents-dev",
        "defaults": {"observability": {"metrics": {"monitor": "annotations"}}},
    }
    return dump({
        "apiVersion": "agentctl.inferensys.com/v1alpha1",
        "kind": "Environment",
        "metadata": {"name": name},
        "spec": merged(base_spec, spec or {}),
    })


CONFIG_MAP = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ agent.metadata.name ~ "-cm" }}
data:
  id: {{ agent.spec.model.id }}
"""


def blueprint(template: str, handles: tuple[str, ...] = ("runtime", "model", "observability"),
              name: str = "main.yaml.j2") -> dict[str, str]:
    """A local blueprint `evil` with one template, and the agent using it."""
    meta = {"name": "evil", "description": "test", "handles": list(handles)}
    return {
        f"{BLUEPRINT}/blueprint.yaml": dump(meta),
        f"{BLUEPRINT}/{name}": template,
        AGENT_FILE: agent({"blueprint": "evil"}),
    }


def write_project(root: Path, files: Mapping[str, str | None]) -> Path:
    layout: dict[str, str | None] = {AGENT_FILE: agent(), ENV_FILE: env()}
    layout.update(files)
    for rel, text in layout.items():
        if text is None:
            continue
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


def commands() -> list[str]:
    """render, plus validate once the CLI has it."""
    names = typer.main.get_command(app).commands  # type: ignore[attr-defined]
    return [c for c in ("render", "validate") if c in names]


def invoke(root: Path, command: str = "render") -> Result:
    return CliRunner().invoke(app, ["-C", str(root), command, "--env", "dev"])


# -- the bad inputs --------------------------------------------------------------------------


@dataclass(frozen=True)
class Bad:
    id: str
    files: Mapping[str, str | None]
    where: str
    """Regex for the location on the problem's line: `file:line:col`, or a template file."""
    field: str = ""
    """Text the same line must contain: the field path (or another identifying word)."""
    also: tuple[str, ...] = ()
    """Further text the output must contain (e.g. the second file of a duplicate)."""
    marks: tuple[Any, ...] = ()


BILLION_LAUGHS = """\
apiVersion: agent.inferensys.com/v1alpha1
kind: Agent
metadata: {name: x}
spec:
  runtime: {image: "ghcr.io/example/x:1.0"}
  model: {id: gpt-4o}
  a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
  b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
  c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
  d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
  e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
  f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
  g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
  h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
  i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
"""

RECURSIVE_ALIAS = """\
apiVersion: agent.inferensys.com/v1alpha1
kind: Agent
metadata: {name: x}
spec: &spec
  runtime: {image: "ghcr.io/example/x:1.0"}
  model: {id: gpt-4o}
  self: *spec
"""

DUPLICATE_KEY = """\
apiVersion: agent.inferensys.com/v1alpha1
kind: Agent
metadata: {name: x}
spec:
  runtime: {image: "ghcr.io/example/x:1.0"}
  model: {id: gpt-4o}
  replicas: 1
  replicas: 2
"""

SYNTAX = """\
apiVersion: agent.inferensys.com/v1alpha1
kind: Agent
metadata: {name: x}
spec:
  runtime: {image: "ghcr.io/example/x:1.0"
  model: {id: gpt-4o}
"""

TAB_INDENT = """\
apiVersion: agent.inferensys.com/v1alpha1
kind: Agent
metadata: {name: x}
spec:
\truntime: {image: "ghcr.io/example/x:1.0"}
"""

PYTHON_TAG = """\
apiVersion: agent.inferensys.com/v1alpha1
kind: Agent
metadata: {name: x}
spec:
  description: !!python/object/apply:os.system ["echo pwned"]
  runtime: {image: "ghcr.io/example/x:1.0"}
  model: {id: gpt-4o}
"""

FIXED_NAME = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: shared
data:
  id: {{ agent.spec.model.id }}
"""

PRIVILEGED_POD = """\
apiVersion: v1
kind: Pod
metadata:
  name: {{ agent.metadata.name }}
spec:
  containers:
  - name: agent
    image: {{ agent.spec.runtime.image }}
    securityContext: {privileged: true}
"""

SECOND_AGENT = agent(name="x")

CASES: list[Bad] = [
    # YAML itself
    Bad("yaml-syntax", {AGENT_FILE: SYNTAX}, AT_AGENT, "invalid YAML"),
    Bad("yaml-tab-indent", {AGENT_FILE: TAB_INDENT}, AT_AGENT, "invalid YAML"),
    Bad("yaml-alias-bomb", {AGENT_FILE: BILLION_LAUGHS}, AT_AGENT, "alias bomb"),
    Bad("yaml-recursive-alias", {AGENT_FILE: RECURSIVE_ALIAS}, AT_AGENT, "alias"),
    Bad("yaml-duplicate-key", {AGENT_FILE: DUPLICATE_KEY}, AT_AGENT, "replicas"),
    Bad("yaml-deep-nesting", {AGENT_FILE: agent() + "  x: " + "[" * 500 + "]" * 500 + "\n"},
        r"agents/x\.yaml", "invalid YAML"),
    Bad("yaml-file-too-large", {AGENT_FILE: agent() + "  y: " + "x" * (5 << 20) + "\n"},
        r"agents/x\.yaml", "larger than"),
    Bad("yaml-duplicate-key-env", {ENV_FILE: env() + "prune: true\nprune: false\n"}, AT_ENV,
        "prune"),
    Bad("yaml-python-tag", {AGENT_FILE: PYTHON_TAG}, AT_AGENT, "could not determine a constructor"),
    Bad("yaml-not-a-mapping", {AGENT_FILE: "- just\n- a list\n"}, r"agents/x\.yaml:\d+:\d+",
        "mapping"),
    Bad("yaml-not-utf8", {AGENT_FILE: None}, r"agents/bin\.yaml",
        "cannot read"),
    # documents
    Bad("wrong-kind", {AGENT_FILE: agent().replace("kind: Agent", "kind: Agnet")}, AT_AGENT,
        "kind"),
    Bad("wrong-api-version", {AGENT_FILE: agent().replace("v1alpha1", "v1")}, AT_AGENT,
        "apiVersion"),
    Bad("unknown-top-level", {AGENT_FILE: agent() + "extra: 1\n"}, AT_AGENT, "extra"),
    Bad("status-by-hand", {AGENT_FILE: agent() + "status: {phase: Ready}\n"}, AT_AGENT,
        "status"),
    Bad("spec-missing", {AGENT_FILE: dump({**agent_doc(), "spec": None})}, AT_AGENT, "spec"),
    # unknown fields and wrong types
    Bad("unknown-nested", {AGENT_FILE: agent({"runtime": {"imag": "x"}})}, AT_AGENT,
        "spec.runtime.imag"),
    Bad("unknown-in-override", {ENV_FILE: env({"agents": {"x": {"runtime": {"portt": 1}}}})},
        AT_ENV, "spec.runtime.portt"),
    Bad("unknown-in-defaults", {ENV_FILE: env({"defaults": {"replica": 2}})}, AT_ENV,
        "spec.replica"),
    Bad("unknown-in-environment", {ENV_FILE: env({"namespce": "x"})}, AT_ENV, "spec.namespce"),
    Bad("wrong-type-replicas", {AGENT_FILE: agent({"replicas": "three"})}, AT_AGENT,
        "spec.replicas"),
    Bad("wrong-type-tools", {AGENT_FILE: agent({"tools": {"name": "t"}})}, AT_AGENT,
        "spec.tools"),
    Bad("wrong-type-port", {AGENT_FILE: agent({"runtime": {"port": "http"}})}, AT_AGENT,
        "spec.runtime.port"),
    Bad("port-out-of-range", {AGENT_FILE: agent({"runtime": {"port": 70000}})}, AT_AGENT,
        "spec.runtime.port"),
    Bad("missing-model", {AGENT_FILE: agent({"model": None})}, AT_AGENT, "spec.model"),
    Bad("empty-model-id", {AGENT_FILE: agent({"model": {"id": ""}})}, AT_AGENT,
        "spec.model.id"),
    Bad("bad-tool-url", {AGENT_FILE: agent({"tools": [{"name": "t", "type": "http",
                                                       "url": "not a url"}]})},
        AT_AGENT, "spec.tools[0].url"),
    Bad("bad-tool-type", {AGENT_FILE: agent({"tools": [{"name": "t", "type": "ftp",
                                                        "url": "http://t"}]})},
        AT_AGENT, "spec.tools[0].type"),
    # names, labels, quantities
    Bad("name-uppercase", {AGENT_FILE: agent(name="Research")}, AT_AGENT, "metadata.name"),
    Bad("name-too-long", {AGENT_FILE: agent(name="a" * 46)}, AT_AGENT, "metadata.name"),
    Bad("name-starts-with-digit", {AGENT_FILE: agent(name="1bot")}, AT_AGENT, "metadata.name"),
    Bad("name-underscore", {AGENT_FILE: agent(name="my_bot")}, AT_AGENT, "metadata.name"),
    Bad("namespace-invalid", {AGENT_FILE: agent(metadata={"namespace": "Prod!"})}, AT_AGENT,
        "metadata.namespace"),
    Bad("label-key", {AGENT_FILE: agent(metadata={"labels": {"bad key!": "v"}})}, AT_AGENT,
        "metadata.labels"),
    Bad("label-value", {AGENT_FILE: agent(metadata={"labels": {"team": "has spaces"}})},
        AT_AGENT, "metadata.labels.team"),
    Bad("label-value-too-long", {AGENT_FILE: agent(metadata={"labels": {"team": "a" * 64}})},
        AT_AGENT, "metadata.labels.team"),
    Bad("annotation-key", {AGENT_FILE: agent(metadata={"annotations": {"-x/": "v"}})},
        AT_AGENT, "metadata.annotations"),
    Bad("quantity-cpu", {AGENT_FILE: agent({"resources": {"requests": {"cpu": "lots"}}})},
        AT_AGENT, "spec.resources.requests.cpu"),
    Bad("quantity-memory", {AGENT_FILE: agent({"resources": {"limits": {"memory": "1GB"}}})},
        AT_AGENT, "spec.resources.limits.memory"),
    Bad("request-over-limit", {AGENT_FILE: agent({"resources": {"requests": {"cpu": "4"}}})},
        AT_AGENT, "spec.resources.requests.cpu"),
    Bad("env-var-name", {AGENT_FILE: agent({"runtime": {"env": [{"name": "1=X", "value": "v"}]}})},
        AT_AGENT, "spec.runtime.env[0].name"),
    Bad("env-var-set-by-agentctl", {AGENT_FILE: agent({"runtime": {"env": [
        {"name": "LOG_LEVEL", "value": "debug"}]}})}, AT_AGENT, "spec.runtime.env[0].name"),
    Bad("env-var-twice", {AGENT_FILE: agent({"runtime": {"env": [{"name": "A", "value": "1"},
                                                                 {"name": "A", "value": "2"}]}})},
        AT_AGENT, "spec.runtime.env[1].name"),
    # conflicting options
    Bad("replicas-and-scaling", {AGENT_FILE: agent({
        "replicas": 2, "memory": {"session": {"backend": "redis",
                                              "urlSecretRef": {"name": "r", "key": "url"}}},
        "scaling": {"maxReplicas": 4}})}, AT_AGENT, "spec.scaling"),
    Bad("in-memory-many-replicas", {AGENT_FILE: agent({"replicas": 3})}, AT_AGENT,
        "spec.memory.session.backend"),
    Bad("in-memory-autoscaled", {AGENT_FILE: agent({"scaling": {"maxReplicas": 3}})}, AT_AGENT,
        "spec.memory.session.backend"),
    Bad("approval-not-in-tool-names", {AGENT_FILE: agent({"tools": [{
        "name": "t", "type": "mcpServer", "url": "http://t:80/mcp", "toolNames": ["search"],
        "requireApproval": ["search", "fetch"]}]})}, AT_AGENT,
        "spec.tools[0].requireApproval[1]"),
    Bad("replica-ratio-canary-with-scaling", {AGENT_FILE: agent({
        "memory": {"session": {"backend": "redis", "urlSecretRef": {"name": "r", "key": "u"}}},
        "scaling": {"maxReplicas": 4},
        "rollout": {"strategy": "Canary", "canary": {"weight": 10}}})}, AT_AGENT,
        "spec.scaling"),
    Bad("grace-not-above-drain", {AGENT_FILE: agent({"lifecycle": {
        "preStop": {"drainSeconds": 60}, "terminationGracePeriodSeconds": 60}})}, AT_AGENT,
        "spec.lifecycle.terminationGracePeriodSeconds"),
    Bad("system-message-both", {AGENT_FILE: agent({"instructions": {
        "systemMessage": "hi", "systemMessageFrom": {
            "configMapKeyRef": {"name": "cm", "key": "k"}}}})}, AT_AGENT,
        "spec.instructions.systemMessageFrom"),
    Bad("service-account-name-and-create", {AGENT_FILE: agent({"runtime": {
        "serviceAccount": {"name": "sa", "create": True}}})}, AT_AGENT,
        "spec.runtime.serviceAccount.create"),
    Bad("sidecar-native-and-preset", {AGENT_FILE: agent({"sidecars": [{
        "name": "logs", "preset": "logShipper", "native": True}]})}, AT_AGENT,
        "spec.sidecars[0].native"),
    Bad("canary-without-strategy", {AGENT_FILE: agent({"rollout": {"canary": {"weight": 5}}})},
        AT_AGENT, "spec.rollout.canary"),
    # across files
    Bad("duplicate-agent", {"agents/y.yaml": SECOND_AGENT}, r"agents/y\.yaml:\d+:\d+",
        "metadata.name", also=("agents/x.yaml",)),
    Bad("unknown-field-set-to-null", {AGENT_FILE: agent() + "  scalling: null\n"}, AT_AGENT,
        "spec.scalling"),
    Bad("missing-field-not-blamed-on-override", {
        AGENT_FILE: agent({"model": None}), ENV_FILE: env({"agents": {"x": {"replicas": 1}}})},
        AT_AGENT, "spec.model"),
    Bad("override-unknown-agent", {ENV_FILE: env({"agents": {"ghost": {"replicas": 1}}})},
        AT_ENV, "spec.agents.ghost"),
    Bad("override-null-required", {ENV_FILE: env({"agents": {"x": {"runtime": {
        "image": None}}}}).replace("runtime: {}", "runtime: {image: null}")}, AT_ENV,
        "spec.runtime.image"),
    Bad("defaults-bad-value", {ENV_FILE: env({"defaults": {"replicas": -1}})}, AT_ENV,
        "spec.replicas"),
    Bad("env-name-not-file-name", {ENV_FILE: env(name="prod")}, AT_ENV, "metadata.name"),
    Bad("env-policy-namespaces", {ENV_FILE: env({"policy": {"namespaces": ["other"]}})},
        AT_ENV, "spec.policy.namespaces"),
    Bad("env-capability", {ENV_FILE: env({"capabilities": ["ServiceMonitor"]})}, AT_ENV,
        "spec.capabilities[0]"),
    Bad("project-unknown-field", {"agentctl.yaml": dump({
        "apiVersion": "agentctl.inferensys.com/v1alpha1", "kind": "Project",
        "metadata": {"name": "p"}, "spec": {"agentz": "agents"}})},
        r"agentctl\.yaml:\d+:\d+", "spec.agentz"),
    # blueprints
    Bad("blueprint-dotdot", {AGENT_FILE: agent({"blueprint": "../../etc"})}, AT_AGENT,
        "spec.blueprint"),
    Bad("blueprint-slash", {AGENT_FILE: agent({"blueprint": "agent/../agent"})}, AT_AGENT,
        "spec.blueprint"),
    Bad("blueprint-unknown", {AGENT_FILE: agent({"blueprint": "nosuch"})}, AT_AGENT,
        "spec.blueprint"),
    Bad("template-syntax", blueprint(CONFIG_MAP + "  bad: {{ agent.spec.model.id \n"),
        rf"{BLUEPRINT}/main\.yaml\.j2:\d+", "template syntax"),
    Bad("template-undefined", blueprint(CONFIG_MAP + "  bad: {{ agent.spec.nosuch }}\n"),
        rf"{BLUEPRINT}/main\.yaml\.j2:7:", "nosuch"),
    Bad("sandbox-mro", blueprint(CONFIG_MAP + "  x: {{ ''.__class__.__mro__[1]"
                                 ".__subclasses__() }}\n"),
        rf"{BLUEPRINT}/main\.yaml\.j2:7:", "__class__"),
    Bad("sandbox-cycler-globals", blueprint(CONFIG_MAP + "  x: {{ cycler.__init__"
                                            ".__globals__ }}\n"),
        rf"{BLUEPRINT}/main\.yaml\.j2:7:", "unsafe"),
    Bad("sandbox-format", blueprint(CONFIG_MAP + "  x: {{ '{0.__class__}'.format(1) }}\n"),
        rf"{BLUEPRINT}/main\.yaml\.j2:7:", "sandbox"),
    Bad("sandbox-include-outside", blueprint(CONFIG_MAP + "{% include '../../agents/x.yaml' %}\n"),
        rf"{BLUEPRINT}/main\.yaml\.j2:7:", "agents/x.yaml"),
    Bad("template-runaway-loop", blueprint(
        "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}\n"),
        rf"{BLUEPRINT}/main\.yaml\.j2", "longer than", marks=(pytest.mark.timeout(60),)),
    Bad("template-huge-output", blueprint(
        "{% for i in range(100000) %}# {{ 'x' * 100 }}\n{% endfor %}"),
        rf"{BLUEPRINT}/main\.yaml\.j2", "exceeds"),
    Bad("template-not-an-object", blueprint("- a\n- b\n"), rf"{BLUEPRINT}/main\.yaml\.j2",
        "apiVersion, kind and metadata.name"),
    Bad("template-fail", blueprint(CONFIG_MAP + "{% do fail('spec.model.id', 'no') %}\n"),
        AT_AGENT, "spec.model.id"),
    Bad("blueprint-unhandled-section", {**blueprint(CONFIG_MAP), AGENT_FILE: agent({
        "blueprint": "evil", "replicas": 1})}, AT_AGENT, "spec.replicas"),
    Bad("blueprint-yaml-without-handles", {**blueprint(CONFIG_MAP),
                                           f"{BLUEPRINT}/blueprint.yaml": "name: evil\n"},
        rf"{BLUEPRINT}/blueprint\.yaml", "handles"),
    Bad("two-agents-one-object", {**blueprint(FIXED_NAME), "agents/y.yaml": agent(
        {"blueprint": "evil"}, name="y")}, r"ConfigMap/agents-dev/shared", "agents/x.yaml",
        also=("agents/y.yaml",)),
    Bad("outside-policy-namespace", blueprint(CONFIG_MAP.replace(
        "metadata:\n", "metadata:\n  namespace: kube-system\n")), r"kube-system",
        "agents/x.yaml"),
    Bad("pod-security-not-allowed", {AGENT_FILE: agent({"security": {
        "podSecurity": "baseline"}})}, AT_AGENT, "spec.security.podSecurity"),
    Bad("privileged-claiming-restricted", {AGENT_FILE: agent({"security": {
        "securityContext": {"privileged": True}}})}, r"Deployment/agents-dev/x",
        "privileged"),
    Bad("template-privileged-pod", blueprint(PRIVILEGED_POD), r"Pod/agents-dev/x",
        "privileged"),
]


def _params() -> Iterator[Any]:
    for case in CASES:
        yield pytest.param(case, id=case.id, marks=case.marks)


@pytest.mark.parametrize("files", [{}, blueprint(CONFIG_MAP)], ids=["builtin", "local"])
def test_control_projects_render_cleanly(files: Mapping[str, str | None], tmp_path: Path) -> None:
    """The projects every case alters are valid, so each case fails for its one change."""
    root = write_project(tmp_path, files)
    for command in commands():
        result = invoke(root, command)
        assert result.exit_code == 0, f"{command}: {result.output}"
        assert "warning:" not in result.output, result.output


def test_cases_are_distinct_and_enough() -> None:
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids))
    inputs = {json.dumps(c.files, sort_keys=True) for c in CASES}
    assert len(inputs) == len(CASES)
    assert len(CASES) >= 40


@pytest.mark.parametrize("case", list(_params()))
def test_bad_input_exits_2_naming_file_line_and_field(case: Bad, tmp_path: Path) -> None:
    files = dict(case.files)
    if case.id == "yaml-not-utf8":
        (tmp_path / "agents").mkdir()
        (tmp_path / "agents" / "bin.yaml").write_bytes(b"kind: Agent\nname: \xff\xfe\n")
    root = write_project(tmp_path, files)
    for command in commands():
        result = invoke(root, command)
        assert result.exit_code == 2, f"{command}: {result.output}"
        assert "Traceback" not in result.output
        lines = [line for line in result.output.splitlines()
                 if re.search(case.where, line) and case.field in line]
        assert lines, (f"{command}: no line names {case.where!r} and {case.field!r}:\n"
                       f"{result.output}")
        for text in case.also:
            assert text in result.output, result.output


# -- YAML injection --------------------------------------------------------------------------

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
    assert "Traceback" not in result.output
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
        assert "Traceback" not in result.output
        assert any(re.search(at, line) and path in line
                   for line in result.output.splitlines()), result.output
        assert "pwned" not in result.stdout
