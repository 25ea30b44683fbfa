"""A sketch, measured against `agentctl.writing.dump`: the same bytes for rendered objects with
each distinct scalar formatted once by the real pinned dumper and the block structure written
directly. Not used by agentctl; it backs a suggestion with numbers.

Why it can be byte-identical: with agentctl's fixed settings (block style, sorted keys, indent 2,
no wrapping) libyaml formats a single-line scalar the same wherever it stands, so the text of a
key or value can be cached. Objects holding anything whose formatting depends on its position
(a string with a line break of any kind, a key longer than libyaml's 128-character simple-key
limit, an empty or nested collection inside a list) are dumped by the real dumper whole.

Run `python -m benchmarks.emitting [--agents N]`: renders a generated fleet in process, dumps
every object both ways, prints CPU seconds and how many objects differ (expected: 0).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from benchmarks import fleet

LINE_BREAKS = ("\n", "\r", "\x85", "\u2028", "\u2029")


class _Fallback(Exception):
    """The object needs the real dumper."""


class Emitter:
    """Caches the formatting of keys and scalars produced by `dump`, an object → YAML function
    with agentctl's settings."""

    def __init__(self, dump: Callable[[Any], str]) -> None:
        self._dump = dump
        self._keys: dict[str, str] = {}
        self._values: dict[tuple[type, Any], str] = {}
        self._items: dict[tuple[type, Any], str] = {}
        self.fallbacks = 0

    def dump(self, body: dict[str, Any]) -> str:
        out: list[str] = []
        try:
            self._mapping(body, 0, out, None)
        except _Fallback:
            self.fallbacks += 1
            return self._dump(body)
        return "".join(out)

    def _key(self, key: str) -> str:
        text = self._keys.get(key)
        if text is None:
            if len(key) >= 128 or any(b in key for b in LINE_BREAKS):
                raise _Fallback
            out = self._dump({key: 0})
            text = self._keys[key] = out[: -len(": 0\n")]
        return text

    def _scalar(self, value: Any, item: bool) -> str:
        memo = self._items if item else self._values
        text = memo.get((type(value), value))
        if text is None:
            if isinstance(value, str) and any(b in value for b in LINE_BREAKS):
                raise _Fallback
            out = self._dump({"k": [value]} if item else {"k": value})
            text = out[len("k:\n- "):-1] if item else out[len("k: "):-1]
            if "\n" in text:
                raise _Fallback
            memo[(type(value), value)] = text
        return text

    def _mapping(self, body: dict[str, Any], indent: int, out: list[str],
                 first: str | None) -> None:
        pad = " " * indent
        for i, key in enumerate(sorted(body)):
            head = (first if i == 0 and first is not None else pad) + self._key(key) + ":"
            value = body[key]
            if isinstance(value, dict):
                out.append(head + (" {}\n" if not value else "\n"))
                if value:
                    self._mapping(value, indent + 2, out, None)
            elif isinstance(value, list):
                out.append(head + (" []\n" if not value else "\n"))
                if value:
                    self._sequence(value, indent, out)
            else:
                out.append(f"{head} {self._scalar(value, item=False)}\n")

    def _sequence(self, items: list[Any], indent: int, out: list[str]) -> None:
        pad = " " * indent
        for value in items:
            if isinstance(value, dict) and value:
                self._mapping(value, indent + 2, out, pad + "- ")
            elif isinstance(value, dict | list):
                raise _Fallback
            else:
                out.append(f"{pad}- {self._scalar(value, item=True)}\n")


def compare(bodies: Sequence[dict[str, Any]],
            dump: Callable[[Any], str]) -> tuple[float, float, int, int]:
    """CPU seconds of `dump` and of the sketch over `bodies`, how many results differ, and how
    many objects the sketch handed to `dump` whole."""
    started = time.process_time()
    reference = [dump(b) for b in bodies]
    slow = time.process_time() - started
    emitter = Emitter(dump)
    started = time.process_time()
    sketched = [emitter.dump(b) for b in bodies]
    fast = time.process_time() - started
    different = sum(a != b for a, b in zip(reference, sketched, strict=True))
    return slow, fast, different, emitter.fallbacks


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.emitting", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--agents", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)

    from agentctl import pipeline, writing

    with tempfile.TemporaryDirectory(prefix="agentctl-emit-") as tmp:
        project = fleet.write_project(fleet.generate(args.agents, args.seed), Path(tmp))
        bodies = [m.body for m in pipeline.render(project, all_envs=True).manifests]
    slow, fast, different, fallbacks = compare(bodies, writing.dump)
    print(f"{len(bodies)} objects: agentctl.writing.dump {slow:.2f} s CPU, cached-scalar "
          f"sketch {fast:.2f} s CPU ({slow / max(fast, 1e-9):.1f}×; {fallbacks} objects "
          f"dumped whole); byte-different: {different}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
