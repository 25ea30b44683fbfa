"""Splicing edits into a user's YAML: the changed lines and nothing else."""

from __future__ import annotations

import difflib
from typing import Any

import pytest

from agentctl.editing.splicing import EditError, delete, scalar, set_value
from agentctl.render import yamlparsing

TEXT = """\
# An environment, formatted by hand.
apiVersion: agentctl.inferensys.com/v1alpha1
kind: Environment
metadata: {name: prod}   # flow on purpose
spec:
  namespace: agents-prod
  agents:     # per-agent overrides
    bot: {replicas: 2, rollout: {canary: {weight: 5}}}
    other:
        replicas: 3   # odd indentation, kept

        list: [a, b]
  # a comment between keys
  prune: false
  anchored: &shared {cpu: 1}
  aliased: *shared
"""


def changed(before: str, after: str) -> list[str]:
    """The lines that differ, as `-old` / `+new`."""
    return [line.rstrip("\n") for line in difflib.unified_diff(
        before.splitlines(True), after.splitlines(True), n=0)
        if line[:1] in "+-" and not line.startswith(("+++", "---"))]


def data(text: str) -> Any:
    return yamlparsing.load_all(text)[0]


@pytest.mark.parametrize(("path", "value", "lines"), [
    (("spec", "agents", "bot", "rollout", "canary", "weight"), 50,
     ["-    bot: {replicas: 2, rollout: {canary: {weight: 5}}}",
      "+    bot: {replicas: 2, rollout: {canary: {weight: 50}}}"]),
    (("spec", "agents", "other", "replicas"), 4,
     ["-        replicas: 3   # odd indentation, kept",
      "+        replicas: 4   # odd indentation, kept"]),
    (("spec", "agents", "bot", "rollout", "canary", "patch"), {"runtime": {"image": "r:2"}},
     ["-    bot: {replicas: 2, rollout: {canary: {weight: 5}}}",
      '+    bot: {replicas: 2, rollout: {canary: {weight: 5, patch: {runtime: {image: "r:2"}}}}}']),
    (("spec", "agents", "other", "rollout", "canary", "weight"), 10,
     ["+        rollout:", "+          canary:", "+            weight: 10"]),
    (("spec", "agents", "new"), {"replicas": 1},
     ["+    new:", "+      replicas: 1"]),
    (("spec", "prune"), True, ["-  prune: false", "+  prune: true"]),
    (("metadata", "labels"), {"team": "ml"},
     ["-metadata: {name: prod}   # flow on purpose",
      "+metadata: {name: prod, labels: {team: ml}}   # flow on purpose"]),
    (("spec", "namespace"), "yes", ['-  namespace: agents-prod', '+  namespace: "yes"']),
])
def test_set_changes_only_the_lines_that_carry_the_change(
        path: tuple[str, ...], value: Any, lines: list[str]) -> None:
    after = set_value(TEXT, path, value)
    assert changed(TEXT, after) == lines
    node = data(after)
    for key in path:
        node = node[key]
    assert node == value


def test_delete_removes_the_key_and_only_it() -> None:
    assert changed(TEXT, delete(TEXT, ("spec", "agents", "other", "replicas"))) == [
        "-        replicas: 3   # odd indentation, kept"]
    assert changed(TEXT, delete(TEXT, ("spec", "agents", "bot", "rollout"))) == [
        "-    bot: {replicas: 2, rollout: {canary: {weight: 5}}}",
        "+    bot: {replicas: 2}"]
    assert delete(TEXT, ("spec", "agents", "missing")) == TEXT


def test_anchors_and_aliases_are_refused_naming_the_line() -> None:
    for path in (("spec", "anchored", "cpu"), ("spec", "aliased", "cpu"), ("spec", "anchored")):
        with pytest.raises(EditError) as caught:
            set_value(TEXT, path, 2)
        assert caught.value.line == 15
        assert "anchor" in str(caught.value)


def test_a_path_through_a_scalar_or_a_list_is_refused() -> None:
    with pytest.raises(EditError):
        set_value(TEXT, ("spec", "agents", "other", "list", "x"), 1)
    with pytest.raises(EditError):
        set_value("- a\n- b\n", ("a",), 1)


def test_scalars_read_back_as_themselves() -> None:
    for value in ("plain", "yes", "on", "010", "1e3", "a: b", "#c", "null", "", " x", "ünï",
                  "x:2", 3, 1.5, True, None, ["a", 1], {"k": "v:1"}):
        assert data(f"key: {scalar(value)}\n") == {"key": value}
        assert data(f"key: [{scalar(value, flow=True)}]\n") == {"key": [value]}


@pytest.mark.parametrize(("text", "path", "value", "expected"), [
    ("spec:\n  a:\n  b: 1\n", ("spec", "a", "x"), 1, "spec:\n  a:\n    x: 1\n  b: 1\n"),
    ("spec:\n  a:   # c\n  b: 1\n", ("spec", "a"), 5, "spec:\n  a: 5   # c\n  b: 1\n"),
    ("spec:\n  a: ~\n", ("spec", "a", "x"), 1, "spec:\n  a:\n    x: 1\n"),
    ("spec:\n  a: {}\n", ("spec", "a", "x"), 1, "spec:\n  a: {x: 1}\n"),
    ("spec:\n  a:\n    b: 1\n    c: 2\n", ("spec", "a"), 7, "spec:\n  a: 7\n"),
])
def test_empty_null_and_replaced_values(text: str, path: tuple[str, ...], value: Any,
                                        expected: str) -> None:
    assert set_value(text, path, value) == expected


@pytest.mark.parametrize("step", [2, 3, 4])
def test_new_nested_keys_take_the_files_own_indentation(step: int) -> None:
    pad = " " * step
    text = f"spec:\n{pad}agents:\n{pad * 2}bot:\n{pad * 3}replicas: 2   # kept\n"
    after = set_value(text, ("spec", "agents", "bot", "model", "source"), {"uri": "hf://o/m"})
    assert changed(text, after) == [f"+{pad * 3}model:", f"+{pad * 4}source:",
                                    f"+{pad * 5}uri: hf://o/m"]
    assert data(after)["spec"]["agents"]["bot"]["model"] == {"source": {"uri": "hf://o/m"}}
