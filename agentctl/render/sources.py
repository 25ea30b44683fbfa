"""Where input came from: a document's file and its parsed YAML nodes, so any field path can be
turned back into `file:line:col`, and pydantic errors into one `Problem` per field.

Shared by loading and merging (which are stages and do not import each other).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from agentctl.errors import Problem
from agentctl.model.common import PATTERN_HINTS

Loc = tuple[str | int, ...]

_TYPE_TAG = re.compile(
    r"^(int|str|float|bool|list|dict|none|json-or-python\[.*|constrained-\w+|function-\w+\[.*\]"
    r"|lax-or-strict\[.*\]|literal\[.*\]|tagged-union\[.*\]|union\[.*\]|[a-z-]+\[.*\])$"
)


@dataclass(frozen=True)
class Source:
    """One YAML document of one file. `root` is the round-trip node tree (positions), `at` the
    path of this source's data inside it (e.g. an environment's `spec.agents.<name>`)."""

    file: str
    root: Any
    """The document's round-trip node tree, or a function returning it (parsed on demand)."""
    at: Loc = ()
    primary: bool = False
    """Blamed for a field that no source sets (the agent file, not an override of it)."""

    def locate(self, loc: Loc, value: bool = False) -> tuple[int, int, int]:
        """(line, col, depth): the 1-based position of the deepest node of `at + loc` present in
        the file (of its key, or of its value with `value`), and how many segments of `loc` were
        found (-1: not even `at` is there)."""
        from ruamel.yaml.comments import CommentedMap, CommentedSeq  # only to report a problem

        node = self.root() if callable(self.root) else self.root
        line, col = _node_pos(node)
        depth = -1
        for i, key in enumerate((*self.at, *loc)):
            if i == len(self.at):
                depth = 0
            if isinstance(node, CommentedMap) and key in node:
                line, col = node.lc.value(key) if value else node.lc.key(key)
            elif (isinstance(node, CommentedSeq) and isinstance(key, int)
                  and 0 <= key < len(node)):
                line, col = node.lc.item(key)
            else:
                return line + 1, col + 1, depth
            node = node[key]
        return line + 1, col + 1, len(loc)

    def problem(self, loc: Loc, message: str, field: str | None = None,
                value: bool = False) -> Problem:
        line, col, _ = self.locate(loc, value)
        return Problem(file=self.file, line=line, col=col,
                       field=field if field is not None else field_path(loc), message=message)


def _node_pos(node: Any) -> tuple[int, int]:
    lc = getattr(node, "lc", None)
    if lc is not None and lc.line is not None:
        return int(lc.line), int(lc.col)
    return 0, 0


def field_path(loc: Sequence[str | int]) -> str:
    """`('spec', 'tools', 0, 'url')` → `spec.tools[0].url`."""
    out = ""
    for key in loc:
        if isinstance(key, int):
            out += f"[{key}]"
        else:
            out += ("." if out else "") + key
    return out


def clean_loc(error: Any, data: Any) -> Loc:
    """The field path of a pydantic error: union tags dropped, a rule's `at` (dotted, or a
    tuple of keys) appended."""
    loc: list[str | int] = []
    node = data
    for key in error["loc"]:
        present = (isinstance(node, dict) and key in node) or (
            isinstance(node, list) and isinstance(key, int) and 0 <= key < len(node))
        if not present and isinstance(key, str) and _TYPE_TAG.match(key):
            continue
        loc.append(key)
        node = node[key] if present else None
    at = (error.get("ctx") or {}).get("at") if error["type"] == "agentctl_rule" else None
    if isinstance(at, tuple | list):
        loc.extend(at)
    elif at:
        loc.extend(int(p) if p.isdigit() else p for p in str(at).split("."))
    return tuple(loc)


def message_of(error: Any, model: type[BaseModel] | None = None, loc: Loc = ()) -> str:
    kind = error["type"]
    if kind == "missing":
        return "required field is missing"
    if kind == "extra_forbidden":
        return unknown_field(model, loc)
    if kind == "string_pattern_mismatch":
        pattern = (error.get("ctx") or {}).get("pattern", "")
        hint = PATTERN_HINTS.get(pattern, f"must match {pattern}")
        return f"{error['input']!r} is invalid: {hint}"
    if kind == "literal_error":
        return f"{error['input']!r} is not one of {error['ctx']['expected']}"
    message = str(error["msg"])
    return message.removeprefix("Value error, ")


def _did_you_mean(model: type[BaseModel] | None, loc: Loc, name: str) -> str | None:
    fields = _fields_at(model, loc)
    close = difflib.get_close_matches(name, fields, n=1, cutoff=0.6)
    return close[0] if close else None


def _fields_at(model: Any, loc: Loc) -> list[str]:
    for key in loc:
        if isinstance(key, int) or model is None:
            continue
        info = getattr(model, "model_fields", {})
        match = next((f for n, f in info.items() if (f.alias or n) == key), None)
        model = _model_in(match.annotation) if match is not None else None
    if model is None or not hasattr(model, "model_fields"):
        return []
    return [f.alias or n for n, f in model.model_fields.items()]


def _model_in(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def problems_from(err: ValidationError, data: Any, sources: Iterable[Source],
                  model: type[BaseModel] | None = None, prefix: Loc = ()) -> list[Problem]:
    """One problem per pydantic error, each pointed at the source that introduced the value:
    the source where the field path reaches deepest, earlier sources winning ties."""
    candidates = list(sources)
    problems: list[Problem] = []
    for error in err.errors():
        loc = clean_loc(error, data)
        message = message_of(error, model, loc)
        at_value = error["type"] == "agentctl_rule" and bool(
            (error.get("ctx") or {}).get("at_value"))
        problems.append(attribute(candidates, loc, message, field_path((*prefix, *loc)),
                                  at_value))
    return problems


def attribute(sources: Sequence[Source], loc: Loc, message: str, field: str,
              value: bool = False) -> Problem:
    """A problem about `loc`, placed in the source that introduced it: the one where the path
    reaches deepest, earlier sources winning ties (overrides, then the agent, then defaults);
    when no source reaches the field itself, the primary source (the agent file) wins ties.
    Placed at the value of `loc` with `value`, else at its key."""

    def rank(item: tuple[int, Source]) -> tuple[int, int, int]:
        index, source = item
        depth = source.locate(loc)[2]
        return (depth, int(source.primary and depth < len(loc)), -index)

    best = max(enumerate(sources), key=rank)[1]
    return best.problem(loc, message, field, value)


def unknown_field(model: type[BaseModel] | None, loc: Loc) -> str:
    """`unknown field 'x' (did you mean 'y'?)` for the last segment of `loc`."""
    name = str(loc[-1]) if loc else ""
    hint = _did_you_mean(model, loc[:-1], name)
    return f"unknown field {name!r}" + (f" (did you mean {hint!r}?)" if hint else "")


def null_unknowns(data: Any, model: type[BaseModel], loc: Loc = ()) -> list[Loc]:
    """Paths of keys set to null that name no field. A merge patch deletes null keys before
    validation could see them, so a misspelt key meant to remove a default is caught here."""
    if not isinstance(data, dict):
        return []
    fields = {(f.alias or n): f for n, f in model.model_fields.items()}
    found: list[Loc] = []
    for key, value in data.items():
        info = fields.get(key)
        if info is None:
            if value is None:
                found.append((*loc, key))
            continue
        inner = _model_in(info.annotation)
        if inner is not None and isinstance(value, dict):
            found += null_unknowns(value, inner, (*loc, key))
    return found
