"""Editing a user's YAML file in place: every byte that does not carry the change is kept.

ruamel.yaml's round-trip mode re-emits a whole document with one indentation setting, which
would rewrite a hand-formatted file. So a change is spliced into the original text at the
position of the node it touches (ruamel's composer gives each node's exact span), and the
result is parsed again and compared with what the change should produce before it is returned:
an edit is either exact or refused.

- `set_value(text, path, value)`: set a scalar or a collection at a key path, creating the
  missing maps on the way (block or flow, indented like their siblings);
- `delete(text, path)`: remove a key;
- a value under an anchor or an alias, a path through a list, or a document that is not one
  mapping cannot be edited safely: `EditError` naming the line.

Pure functions of text; nothing here reads or writes files.
"""

from __future__ import annotations

import copy
import io
import json
import re
from collections.abc import Sequence
from typing import Any

import yaml

from agentctl.render import yamlparsing

Path = Sequence[str]
_MAP = "tag:yaml.org,2002:map"
_SEQ = "tag:yaml.org,2002:seq"
_PLAIN = re.compile(r"[A-Za-z_/][A-Za-z0-9_./:@+-]*")
_RESERVED = re.compile(r"(?i:true|false|null|~|yes|no|on|off|y|n)")


class EditError(Exception):
    """A change that cannot be made exactly; `line` is 1-based (0: the whole file)."""

    def __init__(self, message: str, line: int = 0) -> None:
        super().__init__(message)
        self.line = line


def _compose(text: str) -> Any:
    from ruamel.yaml import YAML

    try:
        node = YAML().compose(io.StringIO(text))
    except Exception as err:  # ruamel raises many types for one cause: not YAML
        raise EditError(f"not valid YAML: {err}") from None
    if node is None or node.tag != _MAP:
        raise EditError("the file is not one YAML mapping")
    return node


def _data(text: str) -> Any:
    docs = yamlparsing.load_all(text)
    return docs[0] if docs else None


def scalar(value: Any, flow: bool = False) -> str:
    """`value` as one line of YAML that every YAML 1.1 and 1.2 reader reads back as itself:
    plain where that is unambiguous, else JSON (which is YAML); a collection in flow style.
    `flow`: for inside a flow collection, where a `:` in a plain scalar is not safe."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{scalar(str(k), True)}: {scalar(v, True)}"
                               for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(scalar(v, True) for v in value) + "]"
    if isinstance(value, str):
        if _PLAIN.fullmatch(value) and not _RESERVED.fullmatch(value) \
                and not (flow and ":" in value):
            return value
        return json.dumps(value, ensure_ascii=False)
    return json.dumps(value)


def _block(value: Any, indent: int, step: int) -> str:
    """A collection as block YAML lines, each indented by `indent` spaces and nested by `step`
    (ends with \\n)."""
    dumped = yaml.safe_dump(value, default_flow_style=False, sort_keys=False, width=1000,
                            allow_unicode=True, indent=step)
    return "".join(" " * indent + line for line in dumped.splitlines(keepends=True))


def _step(root: Any) -> int:
    """The file's indentation step: how far its first nested block mapping is indented under
    its key (2 when it has none), so new keys look like their neighbours."""
    todo = [root]
    while todo:
        node = todo.pop(0)
        for key_node, value_node in node.value:
            if value_node.tag == _MAP and value_node.value and not value_node.flow_style:
                step = int(value_node.value[0][0].start_mark.column) - int(
                    key_node.start_mark.column)
                if 2 <= step <= 9:  # PyYAML's range
                    return step
                todo.append(value_node)
    return 2


def _child(node: Any, key: str) -> tuple[Any, Any] | None:
    for key_node, value_node in node.value:
        if key_node.value == key:
            return key_node, value_node
    return None


def _guard(node: Any, where: str) -> None:
    if getattr(node, "anchor", None):
        raise EditError(f"{where} is an anchor or an alias: edit it by hand",
                        node.start_mark.line + 1)


def _line_end(text: str, index: int) -> int:
    """The index just past the newline that ends the line holding `index`."""
    newline = text.find("\n", index)
    return len(text) if newline < 0 else newline + 1


def _last_index(node: Any) -> int:
    """The end of the last scalar inside a node (a block collection's own end mark points past
    the comments and blank lines that follow it)."""
    while node.tag in (_MAP, _SEQ) and node.value \
            and not node.flow_style:
        last = node.value[-1]
        node = last[1] if isinstance(last, tuple) else last
    return int(node.end_mark.index)


def _insert(text: str, parent: Any, key: str, value: Any, step: int) -> str:
    """Add `key: value` to the mapping `parent`."""
    if parent.flow_style:
        close = parent.end_mark.index - 1  # the `}`
        piece = f"{key}: {scalar(value, True)}"
        body = text[parent.start_mark.index + 1:close]
        piece = (", " if body.strip() else "") + piece
        return text[:close].rstrip(" ") + piece + text[close:]
    if not parent.value:
        raise EditError("an empty mapping here: edit it by hand", parent.start_mark.line + 1)
    column = int(parent.value[0][0].start_mark.column)
    at = _line_end(text, _last_index(parent))
    if isinstance(value, (dict, list)) and value:
        piece = " " * column + f"{key}:\n" + _block(value, column + step, step)
    else:
        piece = " " * column + f"{key}: {scalar(value)}\n"
    prefix = text[:at] if text[:at].endswith("\n") or not at else text[:at] + "\n"
    return prefix + piece + text[at:]


def _replace(text: str, key_node: Any, node: Any, value: Any, step: int) -> str:
    """Put `value` where the value node `node` (of the key `key_node`) is."""
    start, end = node.start_mark.index, node.end_mark.index
    block = node.tag in (_MAP, _SEQ) and not node.flow_style
    if block:
        end = _last_index(node)
    colon = text.index(":", key_node.end_mark.index)
    if node.tag == "tag:yaml.org,2002:null" and not node.value:  # `key:` and nothing after
        start = end = colon + 1
    if isinstance(value, (dict, list)) and value and not getattr(node, "flow_style", False):
        column = int(key_node.start_mark.column)
        lines = _block(value, column + step, step).rstrip("\n")
        return text[:colon + 1] + "\n" + lines + text[end:]
    if block:
        return text[:colon + 1] + " " + scalar(value) + text[end:]
    spacer = " " if start == colon + 1 else ""
    return text[:start] + spacer + scalar(value, _in_flow(text, start)) + text[end:]


def _in_flow(text: str, index: int) -> bool:
    """Whether `index` is inside a flow collection (more `{[` than `}]` open before it on its
    line, which is how agentctl's and hand-written files nest flow style)."""
    line = text[text.rfind("\n", 0, index) + 1:index]
    return line.count("{") + line.count("[") > line.count("}") + line.count("]")


def set_value(text: str, path: Path, value: Any) -> str:
    """`text` with the value at `path` (map keys) set to `value`, every other byte kept."""
    if not path:
        raise EditError("an empty path")
    node = _compose(text)
    step = _step(node)
    expected = copy.deepcopy(_data(text))
    target = expected
    for key in path[:-1]:
        if target.get(key) is None:
            target[key] = {}
        target = target[key]
        if not isinstance(target, dict):
            break  # refused below, where the node's line is known
    else:
        target[path[-1]] = copy.deepcopy(value)
    for depth, key in enumerate(path):
        _guard(node, ".".join(path[:depth]) or "the document")
        if node.tag != _MAP:
            raise EditError(f"{'.'.join(path[:depth])} is not a mapping",
                            node.start_mark.line + 1)
        found = _child(node, key)
        rest = path[depth + 1:]
        if found is None:
            nested: Any = value
            for inner in reversed(rest):
                nested = {inner: nested}
            result = _insert(text, node, key, nested, step)
            break
        key_node, value_node = found
        if not rest:
            _guard(value_node, ".".join(path))
            result = _replace(text, key_node, value_node, value, step)
            break
        if value_node.tag != _MAP and not (
                value_node.tag == "tag:yaml.org,2002:null"):
            raise EditError(f"{'.'.join(path[:depth + 1])} is not a mapping",
                            value_node.start_mark.line + 1)
        if value_node.tag != _MAP or (value_node.flow_style and not value_node.value):
            nested = value
            for inner in reversed(rest):
                nested = {inner: nested}
            result = _replace(text, key_node, value_node, nested, step)
            break
        node = value_node
    return _checked(result, expected, path)


def delete(text: str, path: Path) -> str:
    """`text` without the key at `path` (unchanged when it is not there)."""
    node = _compose(text)
    expected = copy.deepcopy(_data(text))
    target = expected
    for key in path[:-1]:
        if not isinstance(target, dict) or key not in target:
            return text
        target = target[key]
    if not isinstance(target, dict) or path[-1] not in target:
        return text
    del target[path[-1]]
    for key in path[:-1]:
        _guard(node, key)
        found = _child(node, key)
        assert found is not None
        node = found[1]
    found = _child(node, path[-1])
    assert found is not None
    key_node, value_node = found
    _guard(value_node, ".".join(path))
    if node.flow_style:
        start, end = key_node.start_mark.index, value_node.end_mark.index
        after = text[end:]
        if after.lstrip().startswith(","):
            end += len(after) - len(after.lstrip()) + 1
            end += len(text[end:]) - len(text[end:].lstrip(" "))
        else:
            before = text[:start].rstrip()
            if before.endswith(","):
                start = len(before) - 1
        result = text[:start] + text[end:]
    else:
        start = text.rfind("\n", 0, key_node.start_mark.index) + 1
        end = _line_end(text, max(_last_index(value_node) - 1, key_node.start_mark.index))
        result = text[:start] + text[end:]
    return _checked(result, expected, path)


def _checked(result: str, expected: Any, path: Path) -> str:
    try:
        actual = _data(result)
    except yaml.YAMLError:
        actual = None
    if actual != expected:
        raise EditError(f"{'.'.join(path)}: this file's layout cannot be edited exactly here; "
                        "edit it by hand")
    return result
