"""The on-disk cache of compiled templates: used across runs, never shared between differently
configured code generators, never a reason for a render to fail, pruned of blueprints that are
gone."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path
from typing import Any

import jinja2
import pytest

from agentctl import pipeline, rendering, templatecache
from tests.hostile.projects import BLUEPRINT, CONFIG_MAP, blueprint, write_project

CONFIGURING = Path(rendering.__file__)


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
    assert before == templatecache.generator_key(CONFIGURING)  # keyed on rendering.py
    monkeypatch.setattr(jinja2, "__version__", "0.0-another")
    _render(root)
    assert len(list(cache.iterdir())) == 2
    other_source = tmp_path / "rendering.py"
    other_source.write_bytes(CONFIGURING.read_bytes() + b"\n# another agentctl\n")
    assert templatecache.generator_key(other_source) != templatecache.generator_key(CONFIGURING)

    week_and_a_day_ago = time.time() - 8 * 24 * 3600
    os.utime(cache / before, (week_and_a_day_ago, week_and_a_day_ago))
    (tmp_path / "new-blueprint").mkdir()
    assert templatecache.for_folder(tmp_path / "new-blueprint", CONFIGURING) is not None
    assert before not in [p.name for p in cache.iterdir()]


def test_a_truncated_cache_file_is_a_miss(cache: Path, tmp_path: Path) -> None:
    root = write_project(tmp_path, blueprint(CONFIG_MAP))
    _render(root)
    files = _compiled(cache)
    assert files
    for file in files:
        data = file.read_bytes()
        file.write_bytes(data[: len(data) * 2 // 3])  # header intact, code cut short
    assert _render(root) == [{"id": "gpt-4o"}]


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

    # A base folder anyone can write to, without the sticky bit of /tmp, is refused.
    base = cache.parent.parent
    base.chmod(0o777)
    try:
        assert templatecache.for_folder(folder, CONFIGURING) is None
    finally:
        base.chmod(0o755)


def test_a_folder_owned_by_someone_else_is_not_trusted(cache: Path, tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("giving a folder to another user needs root")
    folder = tmp_path / "blueprint"
    folder.mkdir()
    cache.mkdir(parents=True)
    os.chown(cache, 4242, 4242)
    assert templatecache.for_folder(folder, CONFIGURING) is None
