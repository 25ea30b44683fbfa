"""Hostile input, through the CLI as a user meets it.

Input: small projects built in `tmp_path` from one minimal valid project (hostile/projects.py),
each with one thing wrong: YAML syntax, alias bombs, recursion, duplicate keys, unknown fields,
wrong types, bad names and label values, conflicting options, bad overrides and defaults, and local
blueprints that break, escape the sandbox, loop, flood or violate the environment's policy.

Invariants checked: `agentctl render` (and `validate`, once it exists) exits 2; one output line
names the file that introduced the problem, with `:line:col` where the problem is in a YAML file
(or the template's `:line` where it is in a template; `Kind/namespace/name` for a rendered
object), and the field path; there is never a traceback. YAML injection is covered in
tests/hostile/test_injection.py.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.hostile.projects import (
    AGENT_FILE,
    AT_AGENT,
    AT_ENV,
    BLUEPRINT,
    CONFIG_MAP,
    ENV_FILE,
    agent,
    agent_doc,
    blueprint,
    commands,
    dump,
    env,
    invoke,
    write_project,
)

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
    Bad("yaml-unhashable-key", {AGENT_FILE: agent() + "? [a, b]\n: c\n"}, AT_AGENT,
        "unhashable key"),
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
    Bad("in-memory-many-replicas", {AGENT_FILE: agent({
        "replicas": 3, "memory": {"session": {"backend": "inMemory"}}})}, AT_AGENT,
        "spec.memory.session.backend"),
    Bad("in-memory-autoscaled", {AGENT_FILE: agent({
        "scaling": {"maxReplicas": 3}, "memory": {"session": {"backend": "inMemory"}}})},
        AT_AGENT, "spec.memory.session.backend"),
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
    Bad("env-prune-namespace-not-claims", {ENV_FILE: env({"pruneKinds": ["Namespace"]})},
        AT_ENV, "spec.pruneKinds"),
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
        rf"{BLUEPRINT}/main\.yaml\.j2", "CPU time", marks=(pytest.mark.timeout(60),)),
    Bad("template-huge-output", blueprint(
        "{% for i in range(100000) %}# {{ 'x' * 100 }}\n{% endfor %}"),
        rf"{BLUEPRINT}/main\.yaml\.j2", "exceeds"),
    Bad("template-string-bomb", blueprint(CONFIG_MAP + "{% set s = 'x' * 10**10 %}\n"),
        rf"{BLUEPRINT}/main\.yaml\.j2:7:", "at most 1000000"),
    Bad("template-power-bomb", blueprint(CONFIG_MAP + "{% set n = 2 ** 10000000 %}\n"),
        rf"{BLUEPRINT}/main\.yaml\.j2:7:", "100000 bits"),
    Bad("template-output-recursive-alias", blueprint(CONFIG_MAP + "extra: &e [*e]\n"),
        rf"{BLUEPRINT}/main\.yaml\.j2", "recursive alias"),
    Bad("template-output-alias-bomb", blueprint(CONFIG_MAP + "".join(
        f"  l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10) if i else '{{ 1 }}'}]\n"
        for i in range(9))), rf"{BLUEPRINT}/main\.yaml\.j2", "alias bomb"),
    Bad("template-output-unhashable-key", blueprint(CONFIG_MAP + "  ? [a, b]\n  : v\n"),
        rf"{BLUEPRINT}/main\.yaml\.j2", "unhashable key"),
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
        assert not isinstance(result.exception, Exception), result.exception  # SystemExit only
        lines = [line for line in result.output.splitlines()
                 if re.search(case.where, line) and case.field in line]
        assert lines, (f"{command}: no line names {case.where!r} and {case.field!r}:\n"
                       f"{result.output}")
        for text in case.also:
            assert text in result.output, result.output


def test_an_object_clash_between_chunks_names_both_files(tmp_path: Path) -> None:
    """Agents render in chunks (here one agent each, in two processes): two agents rendering the
    same object are still found, naming both files."""
    from agentctl.errors import InputError
    from agentctl.render import pipeline

    case = next(c for c in CASES if c.id == "two-agents-one-object")
    root = write_project(tmp_path, case.files)
    with pytest.raises(InputError) as raised:
        pipeline.render(root, ("dev",), workers=2, chunk=1)
    text = "\n".join(str(p) for p in raised.value.problems)
    assert "ConfigMap/agents-dev/shared" in text
    assert "agents/x.yaml" in text
    assert "agents/y.yaml" in text
