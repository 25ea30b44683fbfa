"""The on-disk cache of compiled templates: used across runs, never shared between differently
configured code generators, never a reason for a render to fail, pruned of blueprints that are
gone."""

from __future__ import annotations

import os
import shutil
import stat
import time
from pathlib import Path
from typing import Any

import jinja2
import pytest

from agentctl.render import pipeline, rendering, templatecache
from tests.hostile.projects import BLUEPRINT, CONFIG_MAP, blueprint, write_project

CONFIGURING = rendering.CONFIGURING


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    rendering.forget_templates()
    return tmp_path / "cache" / "agentctl" / "templates"


def _compiled(cache: Path) -> list[Path]:
    return sorted(cache.rglob("__jinja2_*.cache"))


def _render(root: Path) -> list[object]:
    rendering.forget_templates()  # as a new process would: templates come from disk or cache
    return [m.body["data"] for m in pipeline.render(root, ("dev",)).manifests]


def test_templates_compiled_once_are_loaded_by_the_next_run(
        cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = write_project(tmp_path, blueprint(CONFIG_MAP))
    assert _render(root) == [{"id": "gpt-4o"}]
    files = _compiled(cache)
    assert files, "nothing was cached"
    (place,) = {f.parent for f in files}
    assert (place / "folder").read_text() == str((root / BLUEPRINT).resolve())

    compiled: list[str] = []
    real = jinja2.Environment.compile

    def counting(self: jinja2.Environment, source: str, name: str | None = None,
                 filename: str | None = None, raw: bool = False,
                 defer_init: bool = False) -> Any:
        compiled.append(name or "")
        return real(self, source, name, filename, raw, defer_init)  # type: ignore[call-overload]

    monkeypatch.setattr(jinja2.Environment, "compile", counting)
    assert _render(root) == [{"id": "gpt-4o"}]
    assert compiled == []


def test_another_code_generator_never_loads_this_ones_templates(
        cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Compiled code depends on the environment's configuration (finalize, sandbox operators,
    whitespace): another Jinja, Python or agentctl gets a folder of its own. The one left
    behind stays while it is in use and goes after a week unused."""
    root = write_project(tmp_path, blueprint(CONFIG_MAP))
    _render(root)
    (before,) = [p.name for p in cache.iterdir()]
    assert before == templatecache.generator_key(CONFIGURING)
    monkeypatch.setattr(jinja2, "__version__", "0.0-another")
    _render(root)
    assert len(list(cache.iterdir())) == 2
    for changed in range(len(CONFIGURING)):  # another agentctl: rendering.py or mergepatch.py
        other = [tmp_path / f"{i}.py" for i in range(len(CONFIGURING))]
        for i, module in enumerate(CONFIGURING):
            other[i].write_bytes(module.read_bytes() + (b"\n# changed\n" if i == changed else b""))
        assert templatecache.generator_key(other) != templatecache.generator_key(CONFIGURING)

    week_and_a_day_ago = time.time() - 8 * 24 * 3600
    os.utime(cache / before, (week_and_a_day_ago, week_and_a_day_ago))
    (tmp_path / "new-blueprint").mkdir()
    assert templatecache.for_folder(tmp_path / "new-blueprint", CONFIGURING) is not None
    assert before not in [p.name for p in cache.iterdir()]


@pytest.mark.parametrize("keep", [2, 8, 20, -40], ids=["magic", "checksum", "code", "tail"])
def test_a_damaged_cache_file_is_a_miss_and_is_rewritten(cache: Path, tmp_path: Path,
                                                         keep: int) -> None:
    """Cut short anywhere (inside Jinja's header, the source checksum or the code), a cache file
    is compiled again, not an error, and the next run finds it whole."""
    root = write_project(tmp_path, blueprint(CONFIG_MAP))
    _render(root)
    files = _compiled(cache)
    assert files
    whole = {file: file.read_bytes() for file in files}
    for file, data in whole.items():
        file.write_bytes(data[:keep])
    assert _render(root) == [{"id": "gpt-4o"}]
    assert {file: file.read_bytes() for file in files} == whole


def test_a_blueprint_folder_whose_name_is_not_utf8_is_cached(cache: Path,
                                                             tmp_path: Path) -> None:
    folder = Path(os.fsdecode(bytes(tmp_path) + b"/bp-\xe9"))
    folder.mkdir()
    (folder / "main.yaml.j2").write_text("a: {{ 1 }}\n")
    env = rendering.build_environment(folder)
    assert env.get_template("main.yaml.j2").render() == "a: 1\n"
    assert _compiled(cache)


def test_a_cache_that_cannot_be_written_is_a_miss(cache: Path, tmp_path: Path) -> None:
    root = write_project(tmp_path, blueprint(CONFIG_MAP))
    folder = (root / BLUEPRINT).resolve()
    env = rendering.build_environment(folder)
    (place,) = list(cache.glob("*/*"))
    for file in place.iterdir():
        file.unlink()
    place.rmdir()  # gone between opening the cache and writing to it
    assert isinstance(env.get_template("main.yaml.j2"), jinja2.Template)  # compiled, no error
    assert not place.exists()
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the cache folder would be")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CACHE_HOME", str(blocked))
        assert templatecache.for_folder(folder, CONFIGURING) is None
        assert _render(root) == [{"id": "gpt-4o"}]


def test_folders_of_blueprints_that_are_gone_are_pruned(cache: Path, tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    assert templatecache.for_folder(first, CONFIGURING) is not None
    (generation,) = list(cache.iterdir())
    assert len(list(generation.iterdir())) == 1
    first.rmdir()
    assert templatecache.for_folder(second, CONFIGURING) is not None
    (kept,) = list(generation.iterdir())
    assert (kept / "folder").read_text() == str(second)


def test_a_folder_someone_else_could_write_to_is_not_trusted(cache: Path,
                                                              tmp_path: Path) -> None:
    """Cache files are code that runs outside the sandbox: they are read only from the user's
    own folders."""
    folder = tmp_path / "blueprint"
    folder.mkdir()
    cache.parent.mkdir(parents=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    cache.symlink_to(elsewhere)
    assert templatecache.for_folder(folder, CONFIGURING) is None
    cache.unlink()

    # A folder of the user's own that others could write to is made private, then used.
    cache.mkdir(mode=0o777)
    cache.chmod(0o777)
    assert templatecache.for_folder(folder, CONFIGURING) is not None
    assert stat.S_IMODE(cache.stat().st_mode) & 0o022 == 0

    # A blueprint's own cache folder that is a symlink is not followed.
    (place,) = list(cache.glob("*/*"))
    shutil.rmtree(place)
    place.symlink_to(elsewhere)
    assert templatecache.for_folder(folder, CONFIGURING) is None
    place.unlink()

    # A base folder, or a folder above it, that the group or anyone can write to (without the
    # sticky bit of /tmp) is refused: someone could swap the cache for their own.
    base = cache.parent.parent
    for mode in (0o777, 0o775):
        for changed in (base, base.parent):
            before = stat.S_IMODE(changed.stat().st_mode)
            changed.chmod(mode)
            try:
                assert templatecache.for_folder(folder, CONFIGURING) is None
            finally:
                changed.chmod(before)
    base.chmod(0o1777)  # sticky, as /tmp
    assert templatecache.for_folder(folder, CONFIGURING) is not None


def test_a_folder_owned_by_someone_else_is_not_trusted(cache: Path, tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("giving a folder to another user needs root")
    folder = tmp_path / "blueprint"
    folder.mkdir()
    cache.mkdir(parents=True)
    os.chown(cache, 4242, 4242)
    assert templatecache.for_folder(folder, CONFIGURING) is None


def test_a_generation_in_use_is_kept_and_leftovers_are_pruned(cache: Path,
                                                             tmp_path: Path) -> None:
    """Using a generation marks it used, so another version's pruning keeps it; a folder left
    half-made by a process that died goes after an hour."""
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    assert templatecache.for_folder(first, CONFIGURING) is not None
    (generation,) = list(cache.iterdir())
    long_ago = time.time() - 30 * 24 * 3600
    leftover = generation / ".new-abandoned"
    leftover.mkdir()
    os.utime(leftover, (long_ago, long_ago))
    fresh = generation / ".new-being-made"
    fresh.mkdir()
    os.utime(generation, (long_ago, long_ago))
    assert templatecache.for_folder(first, CONFIGURING) is not None
    assert generation.stat().st_mtime > time.time() - 3600
    assert templatecache.for_folder(second, CONFIGURING) is not None
    names = {p.name for p in generation.iterdir()}
    assert ".new-abandoned" not in names
    assert ".new-being-made" in names
