"""`render --out DIR` touches only what it wrote: files the previous provenance.json lists,
reached without a symlink, unchanged since, and no longer rendered. Everything else under
`DIR/<env>/` is foreign and survives; names built from data never leave `DIR`; provenance.json
itself is untrusted input. Each test fails when its guard is removed."""

from __future__ import annotations

import json
import os
from pathlib import Path

import yaml
from typer.testing import CliRunner, Result

from agentctl.cli import app
from agentctl.manifests import digest
from tests.hostile.projects import BLUEPRINT, CONFIG_MAP, blueprint, write_project


def render_out(root: Path, out: Path, *extra: str) -> Result:
    return CliRunner().invoke(app, ["-C", str(root), "render", "--env", "dev", "--out", str(out),
                                    *extra])


def ok(result: Result) -> None:
    assert result.exit_code == 0, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def refused(result: Result) -> None:
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit), result.exception


def project(tmp_path: Path, template: str = CONFIG_MAP) -> Path:
    return write_project(tmp_path / "project", blueprint(template))


def test_foreign_files_under_the_environment_folder_survive(tmp_path: Path) -> None:
    """A folder or file under DIR/<env>/ that render did not write is never deleted (the old
    writer removed `DIR/dev/myproject/main.c` as an orphan)."""
    root, out = project(tmp_path), tmp_path / "out"
    foreign = out / "dev" / "myproject" / "main.c"
    foreign.parent.mkdir(parents=True)
    foreign.write_text("int main;\n")
    readme = out / "dev" / "README.md"
    readme.write_text("# mine\n")
    result = render_out(root, out)
    ok(result)
    assert foreign.read_text() == "int main;\n"
    assert readme.read_text() == "# mine\n"
    assert "main.c: foreign file" in result.output
    assert "README.md: foreign file" in result.output
    assert (out / "dev" / "agents-dev" / "configmap-x-cm.yaml").is_file()
    ok(render_out(root, out))  # and on every later render
    assert foreign.is_file()


def test_out_to_a_home_folder_keeps_what_is_there(tmp_path: Path) -> None:
    """`--out ~` with an environment named dev never wipes `~/dev`."""
    root, home = project(tmp_path), tmp_path / "home"
    mine = home / "dev" / "notes" / "todo.txt"
    mine.parent.mkdir(parents=True)
    mine.write_text("keep\n")
    ok(render_out(root, home))
    assert mine.read_text() == "keep\n"


def _provenance(out: Path) -> dict[str, object]:
    data: dict[str, object] = json.loads((out / "dev" / "provenance.json").read_text())
    return data


def _add_entry(out: Path, file: str, body: dict[str, object]) -> None:
    provenance = _provenance(out)
    objects = provenance["objects"]
    assert isinstance(objects, list)
    objects.append({"apiVersion": "v1", "kind": "ConfigMap", "namespace": "agents-dev",
                    "name": "victim", "file": file, "digest": digest(body)})
    (out / "dev" / "provenance.json").write_text(json.dumps(provenance))


VICTIM: dict[str, object] = {"apiVersion": "v1", "kind": "ConfigMap",
                             "metadata": {"name": "victim"}}


def test_a_hostile_previous_provenance_deletes_nothing_outside_dir(tmp_path: Path) -> None:
    """provenance.json is a file in the user's tree: an entry naming `../../…` or an absolute
    path, even with the right digest, deletes nothing."""
    root, out = project(tmp_path), tmp_path / "repo" / "rendered"
    ok(render_out(root, out))
    victims = [tmp_path / "repo" / ".github" / "workflows" / "ci.yaml", tmp_path / "abs.yaml"]
    for victim in victims:
        victim.parent.mkdir(parents=True, exist_ok=True)
        victim.write_text(yaml.safe_dump(VICTIM))
    _add_entry(out, "../../.github/workflows/ci.yaml", VICTIM)
    _add_entry(out, str(victims[1]), VICTIM)
    _add_entry(out, "agents-dev/../../../abs.yaml", VICTIM)
    ok(render_out(root, out))
    for victim in victims:
        assert yaml.safe_load(victim.read_text()) == VICTIM


def test_a_file_the_previous_render_wrote_is_deleted_only_while_unchanged(tmp_path: Path) -> None:
    root, out = project(tmp_path), tmp_path / "out"
    ok(render_out(root, out))
    folder = out / "dev" / "agents-dev"
    for name in ("configmap-old.yaml", "configmap-edited.yaml"):
        body = {**VICTIM, "metadata": {"name": name.removesuffix(".yaml")}}
        _add_entry(out, f"agents-dev/{name}", body)
        (folder / name).write_text(yaml.safe_dump(body))
    (folder / "configmap-edited.yaml").write_text(yaml.safe_dump(VICTIM) + "data: {a: b}\n")
    result = render_out(root, out)
    ok(result)
    assert not (folder / "configmap-old.yaml").exists()  # written by agentctl, unchanged
    assert (folder / "configmap-edited.yaml").is_file()  # changed by someone since
    assert "configmap-edited.yaml: changed since agentctl wrote it" in result.output
    assert "configmap-x-cm.yaml" in _provenance(out)["objects"][0]["file"]  # type: ignore[index]


def test_a_symlinked_file_listed_in_provenance_is_not_deleted_through(tmp_path: Path) -> None:
    root, out = project(tmp_path), tmp_path / "out"
    ok(render_out(root, out))
    target = tmp_path / "precious.yaml"
    target.write_text(yaml.safe_dump(VICTIM))
    link = out / "dev" / "agents-dev" / "configmap-victim.yaml"
    link.symlink_to(target)
    _add_entry(out, "agents-dev/configmap-victim.yaml", VICTIM)
    result = render_out(root, out)
    ok(result)
    assert link.is_symlink()  # read through, its target matches the digest: it would go
    assert target.read_text() == yaml.safe_dump(VICTIM)
    assert "configmap-victim.yaml: foreign file" in result.output


def test_provenance_json_is_not_written_through_a_symlink(tmp_path: Path) -> None:
    root, out = project(tmp_path), tmp_path / "out"
    target = tmp_path / "elsewhere.txt"
    target.write_text("mine\n")
    (out / "dev").mkdir(parents=True)
    (out / "dev" / "provenance.json").symlink_to(target)
    result = render_out(root, out)
    refused(result)
    assert "provenance.json: a symlink" in result.output
    assert target.read_text() == "mine\n"
    assert not (out / "dev" / "agents-dev").exists()  # nothing written


def test_a_symlinked_folder_in_the_output_tree_is_not_followed(tmp_path: Path) -> None:
    root, out = project(tmp_path), tmp_path / "out"
    outside = tmp_path / "outside"
    outside.mkdir()
    (out / "dev").mkdir(parents=True)
    (out / "dev" / "agents-dev").symlink_to(outside)
    refused(render_out(root, out))
    assert list(outside.iterdir()) == []
    os.unlink(out / "dev" / "agents-dev")
    (out / "dev").rmdir()
    (out / "dev").symlink_to(outside)  # the environment folder itself
    refused(render_out(root, out))
    assert list(outside.iterdir()) == []


NAMED = """\
apiVersion: v1
kind: {kind}
metadata:
  name: {name}
"""


def test_names_that_would_leave_the_output_folder_are_refused(tmp_path: Path) -> None:
    """A rendered name or kind with `/` or `..` used to write outside `--out`."""
    for i, (kind, name) in enumerate([("ConfigMap", '"../../../escaped"'),
                                      ("ConfigMap", '"a/b"'), ('"../Escape"', "fine"),
                                      ("ConfigMap", '".."')]):
        root = write_project(tmp_path / f"p{i}", blueprint(NAMED.format(kind=kind, name=name)))
        out = tmp_path / f"out{i}"
        result = render_out(root, out)
        refused(result)
        assert "cannot name a file" in result.output
        assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(("p", "out"))) == []


TWO_GROUPS = """\
apiVersion: example.com/v1
kind: Widget
metadata:
  name: same
---
apiVersion: other.example.org/v1
kind: Widget
metadata:
  name: same
"""


def test_the_same_kind_and_name_in_two_groups_get_two_files(tmp_path: Path) -> None:
    root = write_project(tmp_path / "project", {
        **blueprint(TWO_GROUPS),
        "agentctl.yaml": yaml.safe_dump({
            "apiVersion": "agentctl.inferensys.com/v1alpha1", "kind": "Project",
            "metadata": {"name": "p"},
            "spec": {"scopes": {"example.com/v1/Widget": "Namespaced",
                                "other.example.org/v1/Widget": "Namespaced"}}}),
    })
    out = tmp_path / "out"
    ok(render_out(root, out))
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*.yaml"))
    assert files == ["dev/agents-dev/widget.example.com-same.yaml",
                     "dev/agents-dev/widget.other.example.org-same.yaml"]
    entries = _provenance(out)["objects"]
    assert isinstance(entries, list)
    assert sorted(e["file"] for e in entries) == [f[len("dev/"):] for f in files]


def test_render_check_reports_and_changes_nothing(tmp_path: Path) -> None:
    root, out = project(tmp_path), tmp_path / "out"
    ok(render_out(root, out))
    path = out / "dev" / "agents-dev" / "configmap-x-cm.yaml"
    path.write_text("edited\n")
    result = render_out(root, out, "--check")
    assert result.exit_code == 1, result.output
    assert "configmap-x-cm.yaml: stale" in result.output
    assert path.read_text() == "edited\n"


def test_symlinked_blueprint_files_are_refused(tmp_path: Path) -> None:
    """A blueprint reads only its own files: `{% include %}` of a symlink (here to a file
    outside, standing in for /proc/self/environ), a symlinked template and a symlinked
    blueprint folder are each an error, and the file's content is never printed."""
    secret = tmp_path / "secret.txt"
    secret.write_text("TOKEN=hunter2\n")
    include = CONFIG_MAP + "  leak: {{ '' }}{% include 'partial.txt' %}\n"
    root = write_project(tmp_path / "a", blueprint(include))
    (root / BLUEPRINT / "partial.txt").symlink_to(secret)
    result = CliRunner().invoke(app, ["-C", str(root), "render", "--env", "dev"])
    refused(result)
    assert "hunter2" not in result.output
    assert "partial.txt" in result.output

    root = write_project(tmp_path / "b", blueprint(CONFIG_MAP))
    (root / BLUEPRINT / "linked.yaml.j2").symlink_to(root / BLUEPRINT / "main.yaml.j2")
    result = CliRunner().invoke(app, ["-C", str(root), "render", "--env", "dev"])
    refused(result)
    assert "linked.yaml.j2: is a symlink" in result.output

    root = write_project(tmp_path / "c", blueprint(CONFIG_MAP))
    (root / BLUEPRINT).rename(tmp_path / "real-blueprint")
    (root / BLUEPRINT).symlink_to(tmp_path / "real-blueprint")
    result = CliRunner().invoke(app, ["-C", str(root), "render", "--env", "dev"])
    refused(result)
    assert "blueprints/evil: is a symlink" in result.output


CASE_KINDS = """\
apiVersion: example.com/v1
kind: Widget
metadata:
  name: same
---
apiVersion: example.com/v1
kind: WIDGET
metadata:
  name: same
"""

CORE_AND_CORE = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: same
---
apiVersion: core/v1
kind: ConfigMap
metadata:
  name: same
"""


def test_two_objects_never_share_one_file(tmp_path: Path) -> None:
    """Kinds that differ only in case, or the core group beside a group named `core`, would
    name the same file: one object would be lost, silently."""
    scopes = {"example.com/v1/Widget": "Namespaced", "example.com/v1/WIDGET": "Namespaced",
              "core/v1/ConfigMap": "Namespaced"}
    for i, template in enumerate((CASE_KINDS, CORE_AND_CORE)):
        root = write_project(tmp_path / f"p{i}", {
            **blueprint(template),
            "agentctl.yaml": yaml.safe_dump({
                "apiVersion": "agentctl.inferensys.com/v1alpha1", "kind": "Project",
                "metadata": {"name": "p"}, "spec": {"scopes": scopes}})})
        out = tmp_path / f"out{i}"
        result = render_out(root, out)
        refused(result)
        assert "would be written to dev/agents-dev/" in result.output
        assert not out.exists()


def test_a_fifo_in_the_tree_does_not_block_the_render(tmp_path: Path) -> None:
    root, out = project(tmp_path), tmp_path / "out"
    (out / "dev" / "agents-dev").mkdir(parents=True)
    os.mkfifo(out / "dev" / "agents-dev" / "configmap-x-cm.yaml")
    result = render_out(root, out)  # blocked forever in open() before
    refused(result)
    assert "configmap-x-cm.yaml: not a regular file" in result.output


def test_an_alias_bomb_listed_in_provenance_is_not_expanded(tmp_path: Path) -> None:
    """Whether a listed file still holds what agentctl wrote is read with the loader that
    refuses alias bombs: `--check` (read-only) took gigabytes before."""
    root, out = project(tmp_path), tmp_path / "out"
    ok(render_out(root, out))
    bomb = "".join(f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10) if i else 'x'}]\n"
                   for i in range(9))
    (out / "dev" / "agents-dev" / "configmap-bomb.yaml").write_text(bomb)
    _add_entry(out, "agents-dev/configmap-bomb.yaml", VICTIM)
    result = render_out(root, out, "--check")
    assert result.exit_code == 1, result.output  # provenance.json was edited: stale
    assert "configmap-bomb.yaml: changed since agentctl wrote it" in result.output
    assert (out / "dev" / "agents-dev" / "configmap-bomb.yaml").read_text() == bomb


def test_a_name_too_long_for_a_file_is_refused_before_anything_is_written(
        tmp_path: Path) -> None:
    name = ".".join(["a" * 60] * 4)  # a valid DNS-1123 subdomain of 243 characters
    template = NAMED.format(kind="ConfigMap", name=name) + "---\n" + CONFIG_MAP
    root = write_project(tmp_path / "p", blueprint(template))
    out = tmp_path / "out"
    result = render_out(root, out)
    refused(result)
    assert "would be longer than 250 bytes" in result.output
    assert not out.exists()


def test_a_symlinked_blueprints_folder_is_refused(tmp_path: Path) -> None:
    root = write_project(tmp_path / "p", blueprint(CONFIG_MAP))
    (root / "blueprints").rename(tmp_path / "elsewhere")
    (root / "blueprints").symlink_to(tmp_path / "elsewhere")
    result = CliRunner().invoke(app, ["-C", str(root), "render", "--env", "dev"])
    refused(result)
    assert "blueprints: is a symlink" in result.output
