"""`formatting.Formatter` writes the block layout itself and asks the pinned libyaml dumper only
for the text of each scalar and key; these tests hold it to exactly the bytes of the real dumper
(`formatting.libyaml_dump`) over every committed golden, a generated fleet and generated objects
full of the strings that change YAML formatting. One formatter serves each test, as one serves
a render, so the text it remembers from earlier objects is tested too."""

from __future__ import annotations

import string
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentctl.render import formatting, pipeline
from tests.conftest import REPO

GOLDEN_FILES = sorted([*(REPO / "rendered").rglob("*.yaml"),
                       *(REPO / "tests" / "goldens").rglob("*.yaml")])


def same_as_libyaml(body: Any, formatter: formatting.Formatter | None = None) -> None:
    formatter = formatter or formatting.Formatter()
    try:
        expected = formatting.libyaml_dump(body)
    except yaml.YAMLError as err:  # the real dumper refuses it: so must the fast one
        with pytest.raises(type(err)):
            formatter.dump(body)
        return
    assert formatter.dump(body) == expected


def test_every_golden_object_is_written_byte_for_byte() -> None:
    rendered = [p for p in GOLDEN_FILES if "/rendered/" in str(p)]
    assert len(rendered) > 100
    for path in rendered:
        body = yaml.load(path.read_text(), Loader=yaml.CSafeLoader)
        assert formatting.dump(body) == path.read_text(), path
        same_as_libyaml(body)


def test_a_generated_fleet_is_written_byte_for_byte(tmp_path: Path) -> None:
    from benchmarks import fleet

    project = fleet.write_project(fleet.generate(40, seed=3), tmp_path / "fleet")
    bodies = [m.body for m in pipeline.render(project, all_envs=True).manifests]
    assert len(bodies) > 400
    formatter = formatting.Formatter()
    for body in bodies:
        same_as_libyaml(body, formatter)


def test_what_the_fast_path_hands_to_the_real_dumper() -> None:
    shared = {"a": "b"}
    cases: list[Any] = [
        {"k": [[1, 2], [3]]}, {"k": [{}, []]}, {"x" * 130: 1}, {"a\nb": 1}, {1: "int key"},
        {"s": shared, "t": shared}, {"k": (1, 2)}, {"k": "x" * 2_000_000 + "\n" + "y"},
        {"k": 1.5e300, "m": -0.0, "n": 0.0, "o": float("inf"), "p": float("nan")},
        {"lit": " leading space\nsecond\n\n", "nested": {"deeper": ["one\ntwo", "x\n"]}},
        {"quoted": "trailing \nspace", "tab": "a\tb\nc", "cr": "a\rb"}, [1, 2], "scalar", {},
        {"a": {"b": "\u2028"}, "c": ["\x85"]},  # line breaks libyaml folds inside quotes
        {"data": {"block": "line1\nline2\n", "lead": "  lead", "trail": "trail ", "colon": "x: y",
                  "doc": "---\nkind: Secret", "number": "1e3", "bool": "yes", "empty": "",
                  "tab": "a\tb", "hash": "#c", "unicode": "ünïcödé", "keep": "a\n\n"},
         "list": ["a\nb\n", "x: y", 1, 2.5, True, None, "null", "08", "-"]},
        {"a": "kept\n\n", "b": "plain"}, {"a": "kept\n\n", "b": "clipped\n"},  # `...` or not
    ]
    for body in cases:
        same_as_libyaml(body)


_SPECIAL = [*"\n\r\t\x85\u2028\u2029 #:-?[]{},&*!|>'\"%@`~",
    "yes", "no", "on", "off", "null", "true", "False", "~", "1e3", "08", "0o17", "0x1F", ".5",
    "-", "---", "...", "- x", "a: b", "#c", " ", "é", "日本", "\U0001f600", "\x00", "\ufeff"]
_text = st.lists(st.one_of(st.sampled_from(_SPECIAL),
                           st.text(alphabet=string.printable, max_size=6),
                           st.text(st.characters(codec="utf-8"), max_size=4)),
                 max_size=6).map("".join)
_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), _text)
_values = st.recursive(_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(_text, inner, max_size=4)), max_leaves=25)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(_text, _values, min_size=1, max_size=6))
def test_generated_objects_are_written_byte_for_byte(body: dict[str, Any]) -> None:
    same_as_libyaml(body)
