"""User files (`yamlparsing.load_all`) and blueprint output (`yamlparsing.load_rendered`, which
also sends one-line JSON values through the JSON decoder) are built directly from libyaml's nodes
for plain maps, lists and scalars. They must give exactly what PyYAML's general constructor gives
with the same YAML 1.2 core rules (duplicate keys refused), including for the odd cases handed
back to it; aliases must not expand into a bomb or contain themselves."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from agentctl.render import yamlparsing


class GeneralLoader(yamlparsing.Loader):
    """The same rules through PyYAML's general constructor only: the reference."""

    def construct_document(self, node: Any) -> Any:
        return yaml.constructor.BaseConstructor.construct_document(self, node)


def general(text: str) -> list[Any]:
    return list(yaml.load_all(text, Loader=GeneralLoader))

SAME = [
    "a: 1\nb: 1.5\nc: true\nd: null\ne: ~\nf: yes\ng: 010\nh: 0o17\ni: 0x1F\nj: '1'\nk: .inf\n",
    'labels: {"app": "x", "n": 1}\nports: [{"name": "http", "containerPort": 8080}]\n',
    "list:\n- a\n- {b: [1, 2, {c: d}]}\n- - nested\n  - list\nempty: {}\nnone: []\n",
    "text: |\n  line one\n  {\"not\": \"json\"}\nother: >-\n  folded\n  text\n",
    "base: &b {x: 1, y: [1, 2]}\nfirst: *b\nsecond: *b\n",
    "binary: !!binary aGVsbG8=\nstr: !!str 12\nset: !!set {a, b}\n",
    "1: int key\n'1': str key\n",
    "a: 1\n---\nb: 2\n---\n",
    'msg: "quoted # not a comment"\nurl: http://x:80/a#b\n',
]


@pytest.mark.parametrize("text", SAME)
def test_same_data_as_the_general_loader(text: str) -> None:
    assert yamlparsing.load_rendered(text) == general(text)
    assert yamlparsing.load_all(text) == general(text)


def test_aliases_stay_shared_not_copied() -> None:
    docs: Any = yamlparsing.load_rendered("base: &b {x: [1, 2]}\nfirst: *b\nsecond: *b\n")
    assert docs[0]["first"] is docs[0]["second"] is docs[0]["base"]


@pytest.mark.parametrize("text", [
    "a: 1\na: 2\n",
    'a: {"x": 1}\nb:\n  c: 1\n  c: 2\n',
    "list:\n- k: 1\n  k: 1\n",
])
def test_duplicate_keys_are_refused_with_the_same_error(text: str) -> None:
    with pytest.raises(yamlparsing.DuplicateKeyError) as fast:
        yamlparsing.load_rendered(text)
    with pytest.raises(yamlparsing.DuplicateKeyError) as reference:
        general(text)
    assert str(fast.value) == str(reference.value)


@pytest.mark.parametrize("text", [
    "? [complex, key]\n: value\n",  # a key that cannot be hashed
    "a: !!python/object:os.system {}\n",  # not a safe tag
    "a: 1\ntrue: 2\n1: 3\n",  # true and 1 are the same key to Python
])
def test_what_the_general_loader_refuses_is_refused(text: str) -> None:
    with pytest.raises(yaml.YAMLError) as fast:
        yamlparsing.load_rendered(text)
    with pytest.raises(yaml.YAMLError) as reference:
        general(text)
    assert type(fast.value) is type(reference.value)


BOMB = "".join(f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10) if i else 'x'}]\n"
               for i in range(9))


@pytest.mark.parametrize("text", [
    "a: &a [*a]\n", 'a: &a {"b": 1, c: *a}\n', "a: &a [*a]\nb: {\"j\": 1}\n",
    BOMB, BOMB + 'j: {"k": 1}\n', 'j: {"k": 1}\nd: !!binary aGk=\n' + BOMB,
])
def test_recursive_aliases_and_alias_bombs_are_refused(text: str) -> None:
    """Whichever way it is parsed (validation, the digest and the writer would expand them)."""
    with pytest.raises(yaml.constructor.ConstructorError, match="alias"):
        yamlparsing.load_rendered(text)
    with pytest.raises(yaml.constructor.ConstructorError, match="alias"):
        yamlparsing.load_all(text)


DEEP = 201  # one level past MAX_DEPTH


@pytest.mark.parametrize("text", [
    'a: {"x": 1, "x": 2}\n',
    'a: [{"x": 1}, {"y": {"z": 1, "z": 1}}]\n',
    '- {"name": "a", "name": "b"}\n',
    '{"x": 1, "x": 2}\n',
    'a: {"x": NaN}\n',
    "a: [Infinity, -Infinity, NaN]\n",
    'a: {"NaN": NaN, "inf": Infinity}\nb: [.nan, .inf, -.inf]\n',
    'a: ["\\ud83d\\ude00"]\n',  # a surrogate pair: JSON joins it, YAML refuses it
    'a: ["\\ud800"]\n',
    'a: ["\x7f"]\n',  # the YAML reader refuses control characters
    'a: ["x\x85y"]\n',  # NEL is a line break to YAML
    "a: " + "[" * DEEP + "]" * DEEP + "\n",
    "a:\n  b: " + "[" * (DEEP - 1) + "]" * (DEEP - 1) + "\n",
    "a: " + "[" * 1500 + "]" * 1500 + "\n",  # past the JSON decoder's recursion limit
])
def test_json_fast_path_read_duplicates_nan_infinity_and_odd_text_unlike_yaml(
        text: str) -> None:
    """A one-line JSON value gives what the YAML path gives for the same text: the same data
    (NaN, Infinity and -Infinity are strings to YAML 1.2 core, `.nan` and `.inf` floats), or
    the same error (a duplicate key is a yaml.YAMLError, so render reports invalid output)."""
    outcomes = []
    for parse in (yamlparsing.load_rendered, yamlparsing.load_all, general):
        try:
            outcomes.append(("data", repr(parse(text))))
        except yaml.YAMLError as err:
            outcomes.append((type(err).__name__, str(err)))
    assert outcomes[0] == outcomes[1]
    if "[" * 100 not in text:  # the reference loader has no depth limit
        assert outcomes[1] == outcomes[2]
