"""Reading user YAML fast, with positions only when they are needed.

Agent and environment files are parsed with libyaml (PyYAML's C parser) under YAML 1.2 core
schema rules (`yes`, `on` and `010` are a string, a string and ten, as in ruamel.yaml), refusing
duplicate keys. Positions for error messages come from a round-trip parse with ruamel.yaml,
done lazily, only for a file that has a problem to report: a fleet of valid files never pays for
the pure-Python parser.
"""

from __future__ import annotations

import json
import re
from functools import cached_property
from typing import Any

import yaml

_Base: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

MAX_NODES = 100_000
"""Expanded YAML nodes per document; far above any real agent, far below an alias bomb."""
MAX_DEPTH = 200


class TooDeepError(Exception):
    pass


def expanded_size(node: Any, memo: dict[int, int] | None = None, depth: int = 0) -> int:
    """Nodes the document would have with every alias expanded, in linear time, at most
    MAX_NODES + 1 (a cycle, from a recursive alias, counts as that); raises TooDeepError past
    MAX_DEPTH levels."""
    if depth > MAX_DEPTH:
        raise TooDeepError
    memo = {} if memo is None else memo
    key = id(node)
    if key in memo:
        return memo[key]
    memo[key] = MAX_NODES + 1
    size = 1
    if isinstance(node, dict):
        for k, v in node.items():
            size += expanded_size(k, memo, depth + 1) + expanded_size(v, memo, depth + 1)
    elif isinstance(node, list):
        for v in node:
            size += expanded_size(v, memo, depth + 1)
    memo[key] = min(size, MAX_NODES + 1)
    return memo[key]


class _Resolver(yaml.resolver.Resolver):
    """YAML 1.2 core schema implicit types (PyYAML implements YAML 1.1)."""


_Resolver.yaml_implicit_resolvers = {}
for _tag, _pattern, _first in (
    ("tag:yaml.org,2002:bool", r"^(?:true|True|TRUE|false|False|FALSE)$", "tTfF"),
    ("tag:yaml.org,2002:int", r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$",
     "-+0123456789"),
    ("tag:yaml.org,2002:float",
     r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
     r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$", "-+0123456789."),
    ("tag:yaml.org,2002:null", r"^(?:~|null|Null|NULL|)$", ["~", "n", "N", ""]),
):
    _Resolver.add_implicit_resolver(_tag, re.compile(_pattern), list(_first))


class DuplicateKeyError(yaml.MarkedYAMLError):
    pass


class Loader(_Base, _Resolver):  # type: ignore[misc]
    """libyaml parser, YAML 1.2 core types, duplicate keys refused."""

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
            except TypeError:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping", node.start_mark, "found unhashable key",
                    key_node.start_mark) from None
            if duplicate:
                raise DuplicateKeyError("while constructing a mapping", node.start_mark,
                                        f"found duplicate key {key!r}", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)

    def construct_document(self, node: Any) -> Any:
        """Plain maps, lists and core-schema scalars are built here directly (shared nodes stay
        shared, duplicate keys are refused with the same error); anything else (explicit tags,
        merge keys, a recursive alias, a key that is not a scalar, deep nesting) takes PyYAML's
        general path. A document with aliases must not expand past MAX_NODES nodes (an alias
        bomb) or MAX_DEPTH levels, nor contain itself (a recursive alias)."""
        builder = _Builder(self)
        try:
            doc = builder.build(node)
        except _General:
            doc = super().construct_document(node)
        else:
            if not builder.shared:
                return doc  # no alias: nothing to expand
        try:
            too_big = expanded_size(doc) > MAX_NODES
        except TooDeepError:
            raise yaml.constructor.ConstructorError(
                None, None, f"nested deeper than {MAX_DEPTH} levels", node.start_mark) from None
        if too_big:
            raise yaml.constructor.ConstructorError(
                None, None, f"expands to more than {MAX_NODES} nodes (an alias bomb, or a "
                "recursive alias?)", node.start_mark)
        return doc

    def construct_yaml_int(self, node: Any) -> int:
        value = str(self.construct_scalar(node))
        if value.startswith("0o"):
            return int(value[2:], 8)
        if value.startswith("0x"):
            return int(value[2:], 16)
        return int(value, 10)


Loader.add_constructor("tag:yaml.org,2002:int", Loader.construct_yaml_int)


def load_all(text: str) -> list[Any]:
    """Every document of a stream (None for an empty one). Raises yaml.YAMLError."""
    return list(yaml.load_all(text, Loader=Loader))


_DEEPER_THAN_WRITTEN = re.compile(r"^ {400}", re.MULTILINE)


def load_written(text: str) -> dict[str, Any] | None:
    """The one mapping of a file agentctl wrote (an object of a committed tree), parsed by
    yaml-rs: a Rust YAML 1.2 parser that builds the objects natively, an order of magnitude
    faster than libyaml's Python-side construction on a large tree (benchmarks/README.md).
    Aliases expand to at most MAX_NODES events and duplicate keys are refused. None when it
    cannot say (not exactly one mapping, deeper nesting than agentctl writes, a parse error):
    the caller then uses `load_all`. Callers check the result against a digest, so a difference
    between the two parsers can only cost time, never change what is read."""
    if _DEEPER_THAN_WRITTEN.search(text):
        return None
    import yaml_rs  # only the cluster commands read committed trees

    try:
        value = yaml_rs.loads(text, parse_datetime=False,
                              alias_limits=yaml_rs.AliasLimits(
                                  max_total_replayed_events=MAX_NODES))
    except (yaml_rs.YAMLDecodeError, ValueError, RecursionError, OverflowError):
        return None
    return value if isinstance(value, dict) else None


class PositionTrees:
    """The round-trip node trees of one file's documents, parsed on first use."""

    def __init__(self, text: str) -> None:
        self.text = text

    @cached_property
    def documents(self) -> list[Any]:
        from ruamel.yaml import YAML  # the pure-Python parser: only for a file with a problem
        from ruamel.yaml.constructor import ConstructorError, RoundTripConstructor
        from ruamel.yaml.error import YAMLError

        class Constructor(RoundTripConstructor):
            """ruamel builds an anchor used inside itself as null, silently; refuse it."""

            def construct_object(self, node: Any, deep: bool = False) -> Any:
                if node not in self.constructed_objects and node in self.recursive_objects:
                    raise ConstructorError(None, None, "recursive alias", node.start_mark)
                return super().construct_object(node, deep)

        parser = YAML(typ="rt", pure=True)
        parser.Constructor = Constructor
        parser.allow_duplicate_keys = False
        try:
            return list(parser.load_all(self.text))
        except (YAMLError, RecursionError, ValueError):
            return []

    def document(self, index: int) -> Any:
        docs = self.documents
        return docs[index] if 0 <= index < len(docs) else None


# A line whose whole value is one JSON object or array: how blueprint output carries every
# `{{ … }}` (the finalize hook emits JSON). JSON is YAML, so parsing such a value with the C JSON
# decoder instead of PyYAML's Python constructor yields the same data, several times faster.
_JSON_LINE = re.compile(
    r'^(?P<prefix>[ ]*(?:- )*(?:(?:[A-Za-z0-9_./-]+|"(?:[^"\\\n]|\\.)*"): )?)(?P<json>[\[{].*)$',
    re.MULTILINE)
_PLACEHOLDER = "__agentctl_json_value_{}__"
_JSON_TAG = "tag:agentctl.inferensys.com,2026:json"


class _RenderedLoader(Loader):
    """Resolves a *plain* placeholder scalar to the JSON value it stands for (an implicit
    resolver never fires for quoted or block scalars, so text that merely looks like a
    placeholder stays text)."""

    values: list[Any]
    used: list[int]
    nesting: list[int]
    """Per value, a bound on how many levels of maps and lists it nests (its brackets)."""

    def construct_json(self, node: Any) -> Any:
        index = int(node.value[len("__agentctl_json_value_"):-2])
        self.used.append(index)
        return self.values[index]

    def json_nests_past(self, node: Any, depth: int) -> bool:
        """Whether the JSON value of this placeholder, at `depth`, holds a map or list deeper
        than MAX_DEPTH (which the YAML path refuses)."""
        index = int(node.value[len("__agentctl_json_value_"):-2])
        if depth + self.nesting[index] - 1 <= MAX_DEPTH:
            return False
        level = [self.values[index]]
        while level:
            level = [v for v in level if isinstance(v, dict | list)]
            if level and depth > MAX_DEPTH:
                return True
            level = [c for v in level for c in (v.values() if isinstance(v, dict) else v)]
            depth += 1
        return False


class _General(Exception):
    """The node needs PyYAML's general constructor."""


_STR = "tag:yaml.org,2002:str"
_MAP = "tag:yaml.org,2002:map"
_SEQ = "tag:yaml.org,2002:seq"
_SCALAR_TAGS = frozenset({"tag:yaml.org,2002:int", "tag:yaml.org,2002:float",
                          "tag:yaml.org,2002:bool", "tag:yaml.org,2002:null", _JSON_TAG})
_KEY_TAGS = (_SCALAR_TAGS | {_STR}) - {_JSON_TAG}
"""Keys built here: plain scalars (a JSON value could be a map, which is no key)."""


class _Builder:
    def __init__(self, loader: Loader) -> None:
        self.loader = loader
        self.built: dict[int, Any] = {}
        self.building: set[int] = set()
        self.shared = False
        """A node was reached twice (an alias)."""

    def build(self, node: Any, depth: int = 0) -> Any:
        tag = node.tag
        if tag == _STR:
            return node.value
        key = id(node)
        if key in self.built:
            self.shared = True
            return self.built[key]
        if tag in _SCALAR_TAGS:
            if tag == _JSON_TAG and self.loader.json_nests_past(node, depth):
                raise _General  # refused there, as the same text parsed as YAML is
            value = self.loader.yaml_constructors[tag](self.loader, node)
        elif depth > MAX_DEPTH:
            raise _General
        elif tag == _MAP:
            if key in self.building:
                raise _General  # a recursive alias: refused below
            self.building.add(key)
            value = {}
            for key_node, value_node in node.value:
                if key_node.tag not in _KEY_TAGS:
                    raise _General
                item = self.build(key_node, depth + 1)
                if item in value:
                    raise DuplicateKeyError("while constructing a mapping", node.start_mark,
                                            f"found duplicate key {item!r}",
                                            key_node.start_mark)
                value[item] = self.build(value_node, depth + 1)
            self.building.discard(key)
        elif tag == _SEQ:
            if key in self.building:
                raise _General
            self.building.add(key)
            value = [self.build(item, depth + 1) for item in node.value]
            self.building.discard(key)
        else:
            raise _General
        self.built[key] = value
        return value


_RenderedLoader.yaml_implicit_resolvers = {
    key: list(value) for key, value in Loader.yaml_implicit_resolvers.items()}
_RenderedLoader.add_implicit_resolver(_JSON_TAG, re.compile(r"^__agentctl_json_value_[0-9]+__$"),
                                      ["_"])
_RenderedLoader.add_constructor(_JSON_TAG, _RenderedLoader.construct_json)


# Where JSON and YAML read the same text differently, the line is left to the YAML parser, so
# both ways give one result: a duplicate key (JSON keeps the last, YAML refuses it), `NaN`,
# `Infinity` and `-Infinity` (JSON numbers, YAML core strings), a surrogate escape (JSON joins a
# pair, YAML refuses it) and any character outside printable ASCII and tab (the YAML reader
# refuses control characters and treats NEL and CR as line breaks).
_LIFTABLE = re.compile(r"[\t\x20-\x7e]*\Z")
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    value = dict(pairs)
    if len(value) != len(pairs):
        raise ValueError("duplicate key")
    return value


def _not_yaml_constant(name: str) -> Any:
    raise ValueError(f"{name} is a string in YAML")


def load_rendered(text: str) -> list[Any]:
    """The documents of a blueprint's output (YAML 1.2 core rules, duplicate keys refused),
    with one-line JSON values decoded by the JSON parser. Raises yaml.YAMLError."""
    if not text or text.isspace():  # a template with nothing to render for this agent
        return []
    if "__agentctl_json_value_" in text:  # cannot collide with our placeholders: parse plainly
        return load_all(text)
    values: list[Any] = []
    nesting: list[int] = []

    def lift(match: re.Match[str]) -> str:
        source = match.group("json")
        if not _LIFTABLE.match(source) or ("\\u" in source and _SURROGATE_ESCAPE.search(source)):
            return match.group(0)
        try:
            value = json.loads(source, object_pairs_hook=_unique_keys,
                               parse_constant=_not_yaml_constant)
        except (ValueError, RecursionError):
            return match.group(0)
        values.append(value)
        nesting.append(source.count("[") + source.count("{"))
        return match.group("prefix") + _PLACEHOLDER.format(len(values) - 1)

    skeleton = _JSON_LINE.sub(lift, text)
    if not values:
        return load_all(text)
    loader = _RenderedLoader(skeleton)  # type: ignore[call-arg]
    loader.values, loader.used, loader.nesting = values, [], nesting
    try:
        docs = []
        while loader.check_data():
            docs.append(loader.get_data())
    finally:
        loader.dispose()
    if sorted(loader.used) != list(range(len(values))):
        # A JSON-looking line was not a whole value (a line of a block scalar, say): the
        # placeholder landed inside text. Parse the original as it is.
        return load_all(text)
    return docs

