"""Stage 4, format: deterministic YAML for rendered objects.

One pinned emitter (libyaml through PyYAML, fixed settings: sorted keys, 2-space indent, no line
wrapping, literal blocks for multi-line strings) makes the same objects the same bytes on any
machine; `Formatter` writes its block layout directly and asks it only for the text of each
distinct scalar, the same bytes several times faster. Writing the tree is `writing.py`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import yaml

from agentctl.manifests import Manifest

_BaseDumper: Any = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


class _Dumper(_BaseDumper):  # type: ignore[misc]
    pass


# Strings that YAML 1.1 (PyYAML) leaves plain but YAML 1.2 and Go's YAML (kubectl, Flux) read as
# numbers, such as 1e3, 08 or 0o17: quoted, so every reader sees the same string.
_NUMBER_LIKE = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?|0o[0-7]+")


def _str(dumper: Any, value: str) -> Any:
    if _NUMBER_LIKE.fullmatch(value):
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="'")
    style = "|" if "\n" in value and not _needs_quotes(value) else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


def _needs_quotes(value: str) -> bool:
    # libyaml cannot emit these in a literal block; it would fall back silently per scalar.
    return any(c in value for c in "\r\t\x85\u2028\u2029") or value != value.rstrip(" ")


_Dumper.add_representer(str, _str)


def libyaml_dump(body: Any) -> str:
    """One object through the pinned libyaml dumper: the reference for every byte `dump`
    writes."""
    text: str = yaml.dump(body, Dumper=_Dumper, sort_keys=True, default_flow_style=False,
                          allow_unicode=True, width=1_000_000, indent=2,
                          explicit_start=False, line_break="\n")
    return text


class _Whole(Exception):
    """This object needs the real dumper from the top."""


_RARE_BREAKS = ("\r", "\x85", "\u2028", "\u2029")
_LINE_BREAKS = ("\n", *_RARE_BREAKS)
_SIMPLE_KEY_LIMIT = 128
"""libyaml writes a key this long or longer as a complex `? key` (position-dependent)."""
_MEMO_LIMIT = 500_000
"""Formatted scalars kept per process; the memo starts again past this."""


class Formatter:
    """The block layout of the pinned dumper, written directly, with the text of every scalar
    and key formatted by the pinned dumper itself and remembered.

    With the fixed settings (block style, sorted keys, 2-space indent, no wrapping), libyaml
    writes a one-line scalar the same wherever it stands, and indents a literal block two
    columns past its key or dash, leaving empty lines empty. Anything else (keys that are not
    strings, longer than the simple-key limit or holding a line break; empty or nested
    collections inside a list; an object shared by two places, which libyaml would write as an
    anchor and alias; types other than JSON's) goes through the real dumper whole. A test holds
    the two to the same bytes over every golden, a generated fleet and generated objects."""

    def __init__(self) -> None:
        self._keys: dict[str, str] = {}
        self._values: dict[tuple[type, Any], str] = {}
        self._items: dict[tuple[type, Any], str] = {}
        self._open_ended = False
        """libyaml ends a document with `...` when its last literal block keeps its final line
        breaks (`|+`)."""

    def dump(self, body: Any) -> str:
        if type(body) is not dict or not body:
            return libyaml_dump(body)
        if len(self._values) + len(self._items) + len(self._keys) > _MEMO_LIMIT:
            for memo in (self._keys, self._values, self._items):
                memo.clear()
        out: list[str] = []
        self._open_ended = False
        try:
            self._mapping(body, "", out, "", set())
        except _Whole:
            return libyaml_dump(body)
        if self._open_ended:
            out.append("...\n")
        return "".join(out)

    def _key(self, key: Any) -> str:
        text = self._keys.get(key) if type(key) is str else None
        if text is None:
            if (type(key) is not str or len(key) >= _SIMPLE_KEY_LIMIT
                    or any(b in key for b in _LINE_BREAKS)):
                raise _Whole
            formatted = libyaml_dump({key: 0})
            if not formatted.endswith(": 0\n") or "\n" in formatted[:-1]:
                raise _Whole
            text = self._keys[key] = formatted[:-4]
        return text

    def _scalar(self, value: Any, pad: str, item: bool) -> str:
        kind = type(value)
        if kind not in _SCALARS:
            raise _Whole
        memo = self._items if item else self._values
        key = (kind, repr(value) if kind is float else value)
        text = memo.get(key)
        if text is None:
            if kind is str and any(b in value for b in _RARE_BREAKS):
                raise _Whole  # libyaml folds these inside quotes: position-dependent
            if item:
                text = libyaml_dump({"k": [value]})[len("k:\n- "):]
            else:
                text = libyaml_dump({"k": value})[len("k: "):]
            if "\n" in text[:-1]:
                if not text.startswith("|"):
                    raise _Whole  # a folded or wrapped flow scalar: position-dependent
                text = text.removesuffix("...\n")
                self._open_ended = _KEEP_HEADER.search(text.partition("\n")[0]) is not None
                return _reindent(text, pad)  # a literal block: not remembered (often large)
            memo[key] = text
        return text

    def _mapping(self, body: dict[str, Any], pad: str, out: list[str], first: str,
                 seen: set[int]) -> None:
        if id(body) in seen:
            raise _Whole
        seen.add(id(body))
        head = first
        try:
            keys = sorted(body)
        except TypeError:
            raise _Whole from None
        for key in keys:
            value = body[key]
            prefix = head + self._key(key) + ":"
            head = pad
            kind = type(value)
            if kind is dict:
                if value:
                    out.append(prefix + "\n")
                    self._mapping(value, pad + "  ", out, pad + "  ", seen)
                else:
                    out.append(prefix + " {}\n")
            elif kind is list:
                if value:
                    out.append(prefix + "\n")
                    self._sequence(value, pad, out, seen)
                else:
                    out.append(prefix + " []\n")
            else:
                out.append(prefix + " " + self._scalar(value, pad, item=False))

    def _sequence(self, items: list[Any], pad: str, out: list[str], seen: set[int]) -> None:
        if id(items) in seen:
            raise _Whole
        seen.add(id(items))
        dash = pad + "- "
        for value in items:
            kind = type(value)
            if kind is dict and value:
                self._mapping(value, pad + "  ", out, dash, seen)
            elif kind is dict or kind is list:
                raise _Whole
            else:
                out.append(dash + self._scalar(value, pad, item=True))


_KEEP_HEADER = re.compile(r"\|[1-9]?\+$")
_SCALARS = frozenset({str, int, float, bool, type(None)})


def _reindent(block: str, pad: str) -> str:
    """A literal block formatted at column 0, moved right by `pad` (empty lines stay empty)."""
    if not pad:
        return block
    header, _, body = block.partition("\n")
    lines = [pad + line if line else line for line in body.split("\n")]
    return header + "\n" + "\n".join(lines)


def dump(body: Any) -> str:
    """One object as YAML: exactly what the pinned libyaml dumper writes (`libyaml_dump`).
    Formatting many objects with one `Formatter` reuses the text of repeated scalars."""
    return Formatter().dump(body)


def texts(manifests: Iterable[Manifest]) -> list[str]:
    """Each object's YAML: the text formatted where it rendered, or formatted now."""
    formatter = Formatter()
    return [m.text if m.text is not None else formatter.dump(m.body) for m in manifests]


def stream(manifests: list[Manifest]) -> str:
    """A multi-document YAML stream, one `---` per object."""
    return "".join("---\n" + text for text in texts(manifests))


