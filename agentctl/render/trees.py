"""The tree under an output folder, opened the way every stage that touches it must: each step
relative to the folder above it, without following a symlink (`O_NOFOLLOW`), regular files
only (`O_NONBLOCK`, so a FIFO placed there cannot block a read), and at most `MAX_READ` bytes
read. Shared by writing (the rendered tree) and reading (a committed tree read back).
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

from agentctl.errors import Problem

PROVENANCE = "provenance.json"
MAX_READ = 64 * 1024 * 1024
"""Bytes of a file in the tree that agentctl reads (its own files are far smaller)."""
FILE = re.compile(r"(_cluster|[a-z0-9-]{1,63})/[a-z0-9]{1,63}(\.[a-z0-9.-]{1,253})?-"
                   r"[a-z0-9][-a-z0-9.:]{0,252}\.yaml")
"""Every name `file_names` can produce (what a provenance entry may name)."""


class Tree:
    """Folders under one root opened without following symlinks (one descriptor each, kept
    until `close`)."""

    def __init__(self, root: Path, create: bool) -> None:
        self.root = root
        self.create = create
        self._fds: dict[tuple[str, ...], int] = {}

    def folder(self, parts: tuple[str, ...]) -> int | None:
        """The folder `root/parts…`, or None if missing; OSError(ELOOP/ENOTDIR) if a step is a
        symlink or a file."""
        fd = self._fds.get(parts)
        if fd is not None:
            return fd
        if not parts:
            if self.create:
                self.root.mkdir(parents=True, exist_ok=True)
            try:
                fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY)
            except FileNotFoundError:
                return None
        else:
            parent = self.folder(parts[:-1])
            if parent is None:
                return None
            if self.create:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(parts[-1], 0o777, dir_fd=parent)
            try:
                fd = os.open(parts[-1], os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW,
                             dir_fd=parent)
            except FileNotFoundError:
                return None
        self._fds[parts] = fd
        return fd

    def read(self, parts: tuple[str, ...]) -> bytes | None:
        """A regular file's bytes, None if missing; OSError if a step is a symlink."""
        folder = self.folder(parts[:-1])
        if folder is None:
            return None
        try:  # O_NONBLOCK: a FIFO placed here must not block the open
            fd = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=folder)
        except FileNotFoundError:
            return None
        with os.fdopen(fd, "rb") as handle:
            info = os.fstat(handle.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise OSError(errno.EISDIR, "not a regular file")
            if info.st_size > MAX_READ:
                raise OSError(errno.EFBIG, f"larger than {MAX_READ} bytes")
            return handle.read(MAX_READ + 1)

    def write(self, parts: tuple[str, ...], data: bytes) -> None:
        folder = self.folder(parts[:-1])
        assert folder is not None
        temp = f".agentctl-{os.getpid()}-{threading.get_ident()}.tmp"
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644,
                     dir_fd=folder)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(temp, parts[-1], src_dir_fd=folder, dst_dir_fd=folder)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp, dir_fd=folder)
            raise

    def delete(self, parts: tuple[str, ...]) -> None:
        folder = self.folder(parts[:-1])
        assert folder is not None
        os.unlink(parts[-1], dir_fd=folder)
        for depth in range(len(parts) - 1, 1, -1):  # folders this emptied, up to DIR/<env>/
            with contextlib.suppress(OSError):  # not empty (or gone): stop there
                os.rmdir(parts[depth - 1], dir_fd=self.folder(parts[:depth - 1]))
                continue
            break

    def walk(self, parts: tuple[str, ...]) -> Iterator[tuple[str, ...]]:
        """Every entry below a folder that is not a folder (symlinks included), not following
        symlinks."""
        fd = self.folder(parts)
        if fd is None:
            return
        for entry in sorted(os.listdir(fd)):
            info = os.stat(entry, dir_fd=fd, follow_symlinks=False)
            if stat.S_ISDIR(info.st_mode):
                yield from self.walk((*parts, entry))
            else:
                yield (*parts, entry)

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()


def unsafe(tree: Tree, parts: tuple[str, ...], err: OSError) -> Problem:
    reason = ("a symlink (or a file) is in the way: agentctl never writes, reads or deletes "
              "through a symlink" if err.errno in (errno.ELOOP, errno.ENOTDIR)
              else err.strerror or str(err))
    return Problem(file=str(tree.root.joinpath(*parts)), message=reason)
