"""Compiled blueprint templates, cached on disk between runs: compiling the built-in library
takes longer than all the rest of a one-agent render, loading it back a few milliseconds.

The cache lives in `$XDG_CACHE_HOME/agentctl/templates/` (default `~/.cache`):

- one folder per *code generator*: Jinja's version and the source of `agentctl.rendering`,
  which configures the environment (sandbox operators, `finalize`, whitespace options). The
  same template compiled under another configuration is different code (without `finalize`,
  a value could inject YAML), so a changed agentctl or Jinja never loads another's output;
- in it, one folder per blueprint folder, with a `folder` file naming it. When a new one is
  made, the folders of blueprints that no longer exist and the other generators' folders are
  removed, so the cache holds what the agentctl last run can use.

A cache is never a reason to fail: a folder that cannot be made, a file that cannot be written
(a full or read-only disk) or read back (missing, truncated, from another Python) is a miss,
and the template is compiled.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
from pathlib import Path

import jinja2
import jinja2.bccache


class _Safe(jinja2.FileSystemBytecodeCache):
    """Jinja's file cache, whose reads already treat a missing, foreign or truncated file as a
    miss; here a failed write is one too."""

    def dump_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        with contextlib.suppress(OSError):
            super().dump_bytecode(bucket)


def root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "agentctl" / "templates"


def generator_key(configuring: Path) -> str:
    """Jinja's version and the bytes of the module that configures the environment."""
    digest = hashlib.sha256(jinja2.__version__.encode())
    digest.update(configuring.read_bytes())
    return digest.hexdigest()[:16]


def for_folder(folder: Path, configuring: Path) -> jinja2.BytecodeCache | None:
    """The cache of one blueprint folder's templates, or None if it cannot be had."""
    try:
        generation = root() / generator_key(configuring)
        place = generation / hashlib.sha256(str(folder).encode()).hexdigest()[:16]
        if not place.is_dir():
            place.mkdir(mode=0o700, parents=True, exist_ok=True)
            (place / "folder").write_text(str(folder), encoding="utf-8")
            _prune(generation)
    except OSError:
        return None
    return _Safe(str(place))


def _prune(generation: Path) -> None:
    for other in generation.parent.iterdir():
        if other != generation:
            shutil.rmtree(other, ignore_errors=True)
    for place in generation.iterdir():
        try:
            gone = not Path(place.joinpath("folder").read_text(encoding="utf-8")).is_dir()
        except OSError:
            gone = True
        if gone:
            shutil.rmtree(place, ignore_errors=True)
