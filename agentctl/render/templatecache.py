"""Compiled blueprint templates, cached on disk between runs: a one-agent render that compiles
the built-in library takes one and a half to two times as long as one that loads it back.

The cache lives in `$XDG_CACHE_HOME/agentctl/templates/` (default `~/.cache`):

- one folder per *code generator*: Python's bytecode tag, Jinja's version and the source of the
  modules that configure the environment (`agentctl.render.rendering`: sandbox operators, `finalize`,
  whitespace options, filters; `agentctl.mergepatch`: the `merge` filter). The same template
  compiled under another configuration is different code (without `finalize`, a value could
  inject YAML), so a changed agentctl, Jinja or Python never loads another's output;
- in it, one folder per blueprint folder, with a `folder` file naming it. Whenever a new one is
  made, the folders of blueprints that no longer exist are removed, and so are other
  generators' folders not used for a week (two agentctl versions used in turn keep theirs).

Cache files are code that is run, so they are read only from the user's own folders: real
folders (no symlinks) owned by the user and writable by nobody else (agentctl removes group and
other write permission from its own), whose every ancestor is owned by the user or root and
writable by others only if sticky (`/tmp`). Otherwise there is no cache.

A cache is never a reason to fail: a folder that cannot be made or trusted, a file that cannot be
written (a full or read-only disk) or read back (missing, truncated, damaged) is a miss, and the
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
    """Jinja's file cache, where any file that cannot be read back or written is a miss."""

    def load_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        try:
            super().load_bytecode(bucket)
        except Exception:  # a damaged file of any kind: compile the template instead
            bucket.reset()

    def dump_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        with contextlib.suppress(OSError):
            super().dump_bytecode(bucket)

    def get_cache_key(self, name: str, filename: str | None = None) -> str:
        """Jinja's key, for any file name the system can hold (not only UTF-8 ones)."""
        digest = hashlib.sha1(os.fsencode(name), usedforsecurity=False)
        if filename is not None:
            digest.update(b"|" + os.fsencode(filename))
        return digest.hexdigest()


def generator_key(configuring: list[Path]) -> str:
    """Python's bytecode tag, Jinja's version and the bytes of the modules that configure the
    environment."""
    digest = hashlib.sha256(f"{sys.implementation.cache_tag}|{jinja2.__version__}".encode())
    for module in configuring:
        digest.update(b"|" + module.read_bytes())
    return digest.hexdigest()[:16]


def for_folder(folder: Path, configuring: list[Path]) -> jinja2.BytecodeCache | None:
    """The cache of one blueprint folder's templates, or None if it cannot be had safely."""
    try:
        base = _trusted_base()
        if base is None:
            return None
        templates = base / "agentctl" / "templates"
        generation = templates / generator_key(configuring)
        for made in (templates.parent, templates, generation):
            with contextlib.suppress(FileExistsError):
                made.mkdir(mode=0o700)
            if not _private(made):
                return None
        os.utime(generation)  # in use: other versions prune it only once it has gone unused
        place = generation / hashlib.sha256(os.fsencode(folder)).hexdigest()[:16]
        if not place.is_dir():
            _create(place, folder)
            _prune(generation)
        if not _private(place):
            return None
    except (OSError, ValueError, RuntimeError):  # RuntimeError: no home directory to be found
        return None
    return _Safe(str(place))


def _trusted_base() -> Path | None:
    """`$XDG_CACHE_HOME` (made if missing), resolved, if no one but the user and root can change
    what is in it or in any folder above it."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    base.mkdir(parents=True, exist_ok=True)
    base = Path(os.path.realpath(base))
    for folder in (base, *base.parents):
        info = folder.stat()
        if info.st_uid not in (os.geteuid(), 0) or (
                info.st_mode & (stat.S_IWGRP | stat.S_IWOTH) and not info.st_mode & stat.S_ISVTX):
            return None
    return base


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
        (staging / "folder").write_bytes(os.fsencode(folder))
        staging.rename(place)
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
        if not place.is_dir():
            raise


def _prune(generation: Path) -> None:
    """Remove what the cache holds for blueprint folders that are gone, leftovers of folders
    being made, and other generators' folders not used for a week."""
    now = time.time()
    for other in generation.parent.iterdir():
        if other != generation and _mtime(other) < now - 7 * 24 * 3600:
            shutil.rmtree(other, ignore_errors=True)
    for place in generation.iterdir():
        if place.name.startswith(".new-"):
            gone = _mtime(place) < now - 3600  # otherwise being made by another process
        else:
            try:
                gone = not Path(os.fsdecode(place.joinpath("folder").read_bytes())).is_dir()
            except OSError:
                gone = True
        if gone:
            shutil.rmtree(place, ignore_errors=True)


def _mtime(path: Path) -> float:
    try:
        return path.lstat().st_mtime
    except OSError:
        return 0.0
