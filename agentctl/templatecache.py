"""Compiled blueprint templates, cached on disk between runs: a one-agent render that compiles
the built-in library takes one and a half to two times as long as one that loads it back.

The cache lives in `$XDG_CACHE_HOME/agentctl/templates/` (default `~/.cache`):

- one folder per *code generator*: Python's bytecode tag, Jinja's version and the source of
  `agentctl.rendering`, which configures the environment (sandbox operators, `finalize`,
  whitespace options). The same template compiled under another configuration is different
  code (without `finalize`, a value could inject YAML), so a changed agentctl, Jinja or Python
  never loads another's output;
- in it, one folder per blueprint folder, with a `folder` file naming it. When a new one is
  made, the folders of blueprints that no longer exist are removed, and so are other
  generators' folders unused for a week (two agentctl versions used in turn keep theirs).

Cache files are code that is run, so the folders must be the user's own: real folders (no
symlinks) owned by the user, which nobody else can write to (agentctl removes group and other
write permission from its own), in a base folder owned by the user or root that others can
write to only if it is sticky (`/tmp`). Otherwise there is no cache.

A cache is never a reason to fail: a folder that cannot be made or trusted, a file that cannot
be written (a full or read-only disk) or read back (missing, truncated) is a miss, and the
template is compiled.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import stat
import sys
import tempfile
import time
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
    """Python's bytecode tag, Jinja's version and the bytes of the module that configures the
    environment."""
    digest = hashlib.sha256(f"{sys.implementation.cache_tag}|{jinja2.__version__}|".encode())
    digest.update(configuring.read_bytes())
    return digest.hexdigest()[:16]


def for_folder(folder: Path, configuring: Path) -> jinja2.BytecodeCache | None:
    """The cache of one blueprint folder's templates, or None if it cannot be had safely."""
    try:
        templates = root()
        generation = templates / generator_key(configuring)
        place = generation / hashlib.sha256(str(folder).encode()).hexdigest()[:16]
        if not _private_path(templates.parent.parent, [templates.parent, templates, generation]):
            return None
        os.utime(generation)  # in use: other versions prune it only when it has gone unused
        if not place.is_dir():
            _create(place, folder)
            _prune(generation)
        if not _private(place):
            return None
    except (OSError, RuntimeError):  # RuntimeError: no home directory to be found
        return None
    return _Safe(str(place))


def _private_path(base: Path, folders: list[Path]) -> bool:
    """`base` is safe to keep private folders in, and each of `folders` (made if missing) is
    private. Loaded cache files are code: nobody else may be able to put one in place."""
    base.mkdir(parents=True, exist_ok=True)
    info = base.stat()
    if info.st_uid not in (os.geteuid(), 0) or (info.st_mode & stat.S_IWOTH
                                                 and not info.st_mode & stat.S_ISVTX):
        return False
    for folder in folders:
        with contextlib.suppress(FileExistsError):
            folder.mkdir(mode=0o700)
        if not _private(folder):
            return False
    return True


def _private(folder: Path) -> bool:
    """A real folder (no symlink) of this user that nobody else can write to; a folder of this
    user that others could write to is made private first."""
    info = os.lstat(folder)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid():
        return False
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        os.chmod(folder, stat.S_IMODE(info.st_mode) & ~(stat.S_IWGRP | stat.S_IWOTH))
    return True


def _create(place: Path, folder: Path) -> None:
    """`place`, with the `folder` file naming its blueprint folder already inside when it
    appears (a pruner never sees it without)."""
    staging = Path(tempfile.mkdtemp(prefix=".new-", dir=place.parent))
    try:
        (staging / "folder").write_text(str(folder), encoding="utf-8")
        staging.rename(place)
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
        if not place.is_dir():
            raise


def _prune(generation: Path) -> None:
    """Remove what the cache holds for blueprint folders that are gone, and other generators'
    folders that have gone unused for a week."""
    week_ago = time.time() - 7 * 24 * 3600
    for other in generation.parent.iterdir():
        if other != generation and _mtime(other) < week_ago:
            shutil.rmtree(other, ignore_errors=True)
    for place in generation.iterdir():
        if place.name.startswith(".new-") and _mtime(place) >= time.time() - 3600:
            continue  # being made by another process
        try:
            gone = not Path(place.joinpath("folder").read_text(encoding="utf-8")).is_dir()
        except OSError:
            gone = True
        if gone:
            shutil.rmtree(place, ignore_errors=True)


def _mtime(path: Path) -> float:
    try:
        return path.lstat().st_mtime
    except OSError:
        return 0.0
