"""Compiled templates come back from Jinja's `FileSystemBytecodeCache`, in one folder per
configuration of the environment (Python, Jinja, and agentctl's sandbox and filters are compiled
into the code), only from a folder of the user's that nobody else can write to, and a damaged
file is a miss, never a failure."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from agentctl.render import pipeline, sandboxing
from tests.hostile.projects import CONFIG_MAP, blueprint, write_project


@pytest.fixture
def cache_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "cache"
    home.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_CACHE_HOME", str(home))
    sandboxing._configuration_key.cache_clear()
    return home


def _cached(home: Path) -> list[Path]:
    return sorted(p for p in (home / "agentctl" / "templates").rglob("*.cache"))


def _render(root: Path) -> dict[str, str]:
    data: dict[str, str] = pipeline.render(root, ("dev",)).manifests[0].body["data"]
    return data


def test_compiled_templates_are_kept_per_configuration(cache_home: Path, tmp_path: Path) -> None:
    root = write_project(tmp_path / "p", blueprint(CONFIG_MAP))
    assert _render(root) == {"id": "gpt-4o"}
    files = _cached(cache_home)
    assert len(files) == 1
    assert files[0].parent.name == sandboxing._configuration_key()
    before = files[0].stat().st_mtime_ns
    assert _render(root) == {"id": "gpt-4o"}  # loaded back, not written again
    assert files[0].stat().st_mtime_ns == before


def test_a_damaged_cache_file_is_a_miss(cache_home: Path, tmp_path: Path) -> None:
    root = write_project(tmp_path / "p", blueprint(CONFIG_MAP))
    _render(root)
    (cached,) = _cached(cache_home)
    data = cached.read_bytes()
    for damaged in (data[: len(data) // 2], data[:-8] + b"\xff" * 8, b"", b"garbage"):
        cached.write_bytes(damaged)
        assert _render(root) == {"id": "gpt-4o"}


def test_a_cache_others_can_write_to_is_not_used(cache_home: Path, tmp_path: Path) -> None:
    root = write_project(tmp_path / "p", blueprint(CONFIG_MAP))
    _render(root)
    folder = cache_home / "agentctl" / "templates"
    os.chmod(folder, 0o777)
    assert sandboxing._bytecode_cache() is None
    os.chmod(folder, 0o700)
    assert sandboxing._bytecode_cache() is not None
    link = tmp_path / "elsewhere"
    link.mkdir(mode=0o700)
    generation = folder / sandboxing._configuration_key()
    for old in generation.iterdir():
        old.unlink()
    generation.rmdir()
    generation.symlink_to(link)
    assert sandboxing._bytecode_cache() is None


def test_a_cache_that_cannot_be_written_is_not_an_error(
        cache_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A full disk (here: every temporary file refused) compiles every run."""
    import tempfile

    def full(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(tempfile, "NamedTemporaryFile", full)  # what Jinja's cache writes with
    root = write_project(tmp_path / "p", blueprint(CONFIG_MAP))
    assert _render(root) == {"id": "gpt-4o"}
    assert _cached(cache_home) == []


def test_a_blueprint_path_that_is_not_utf8_is_cached(cache_home: Path, tmp_path: Path) -> None:
    root = write_project(Path(os.fsdecode(bytes(tmp_path) + b"/proj\xff")),
                         blueprint(CONFIG_MAP))
    assert _render(root) == {"id": "gpt-4o"}
    assert len(_cached(cache_home)) == 1
