"""The parts of the change-set engine that are pure functions: field ownership (the digest
shortcut's soundness), the prune guards, Secret masking, the report formats, and the committed
tree refused before any request (a kubeconfig pointing at a closed port: any request would be
exit 3, so exit 2 proves nothing was sent)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from agentctl import diffs, reports
from agentctl.cli import app
from agentctl.cluster import changes, ownership, reading
from agentctl.cluster.discovering import Resource
from agentctl.diffs import Change, EnvChanges, Outcome
from agentctl.manifests import ANNOTATION_DIGEST, DesiredEnv, ObjectRef, digest
from agentctl.render import pipeline

ROOT = Path(__file__).resolve().parents[1]

DESIRED = {"apiVersion": "apps/v1", "kind": "Deployment",
           "metadata": {"name": "bot", "namespace": "ns", "labels": {"a": "1"},
                        "annotations": {ANNOTATION_DIGEST: "sha256:x"}},
           "spec": {"replicas": 2, "selector": {"matchLabels": {"a": "1"}},
                    "template": {"spec": {"containers": [
                        {"name": "agent", "image": "i:1", "args": ["--x"],
                         "ports": [{"containerPort": 8080, "name": "http"}]}]}}}}

APPLIED = {"f:metadata": {"f:labels": {"f:a": {}}, "f:annotations": {f"f:{ANNOTATION_DIGEST}": {}}},
           "f:spec": {"f:replicas": {}, "f:selector": {},  # atomic: owned whole
                      "f:template": {"f:spec": {"f:containers": {
                          'k:{"name":"agent"}': {".": {}, "f:name": {}, "f:image": {},
                                                 "f:args": {},
                                                 "f:ports": {
                                                     'k:{"containerPort":8080,"protocol":"TCP"}':
                                                         {".": {}, "f:containerPort": {},
                                                          "f:name": {}}}}}}}}}


def meta(fields: dict[str, Any], manager: str = "agentctl", operation: str = "Apply",
         digest_value: str = "sha256:x") -> dict[str, Any]:
    return {"annotations": {ANNOTATION_DIGEST: digest_value},
            "managedFields": [{"manager": manager, "operation": operation,
                               "apiVersion": "apps/v1", "fieldsType": "FieldsV1",
                               "fieldsV1": fields}]}


def without(fields: dict[str, Any], *path: str) -> dict[str, Any]:
    """`fields` after another manager took the field at `path`: as the API server records it,
    a parent left without children is gone too (an empty node is a leaf)."""
    copied: dict[str, Any] = json.loads(json.dumps(fields))
    nodes = [copied]
    for key in path[:-1]:
        nodes.append(nodes[-1][key])
    del nodes[-1][path[-1]]
    for parent, key in zip(reversed(nodes[:-1]), reversed(path[:-1]), strict=True):
        if any(k != "." for k in parent[key]):
            break
        del parent[key]
    return copied


def test_the_shortcut_holds_while_agentctl_owns_every_applied_field() -> None:
    assert ownership.unchanged(meta(APPLIED), DESIRED, "sha256:x")


@pytest.mark.parametrize("taken", [
    ("f:spec", "f:replicas"),  # kubectl scale
    ("f:spec", "f:template", "f:spec", "f:containers", 'k:{"name":"agent"}', "f:image"),
    ("f:metadata", "f:labels", "f:a"),  # kubectl label --overwrite
    ("f:spec", "f:template", "f:spec", "f:containers", 'k:{"name":"agent"}', "f:ports"),
])
def test_the_shortcut_fails_when_any_applied_field_moved_to_another_manager(
        taken: tuple[str, ...]) -> None:
    assert not ownership.unchanged(meta(without(APPLIED, *taken)), DESIRED, "sha256:x")


def test_the_shortcut_needs_the_digest_and_agentctls_own_apply_entry() -> None:
    assert not ownership.unchanged(meta(APPLIED, digest_value="sha256:y"), DESIRED, "sha256:x")
    assert not ownership.unchanged(meta(APPLIED, manager="kubectl"), DESIRED, "sha256:x")
    assert not ownership.unchanged(meta(APPLIED, operation="Update"), DESIRED, "sha256:x")


def test_an_element_node_holding_only_itself_does_not_own_its_fields() -> None:
    hollow = json.loads(json.dumps(APPLIED))
    hollow["f:spec"]["f:template"]["f:spec"]["f:containers"]['k:{"name":"agent"}'] = {".": {}}
    assert not ownership.unchanged(meta(hollow), DESIRED, "sha256:x")


def test_a_secret_with_write_only_string_data_never_takes_the_shortcut() -> None:
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
              "stringData": {"k": "v"}}
    fields: dict[str, Any] = {"f:stringData": {"f:k": {}}}
    entry = {"annotations": {ANNOTATION_DIGEST: "d"}, "managedFields": [
        {"manager": "agentctl", "operation": "Apply", "apiVersion": "v1", "fieldsV1": fields}]}
    assert not ownership.unchanged(entry, secret, "d")
    assert ownership.covers(fields, {"stringData": {"k": "v"}})


def test_set_members_and_owners_of_a_path() -> None:
    assert ownership.element({"v:\"a\"": {}}, "a") == {}
    assert ownership.element({"v:\"a\"": {}}, "b") is None
    live = {"spec": {"replicas": 3, "template": {"spec": {"containers": [
        {"name": "agent", "image": "x"}]}}}}
    managed = [{"manager": "kubectl", "operation": "Update", "subresource": "scale",
                "fieldsV1": {"f:spec": {"f:replicas": {}}}},
               {"manager": "kubectl-set", "operation": "Update", "fieldsV1": {"f:spec": {
                   "f:template": {"f:spec": {"f:containers": {
                       'k:{"name":"agent"}': {"f:image": {}}}}}}}},
               {"manager": "agentctl", "operation": "Apply",
                "fieldsV1": {"f:spec": {"f:replicas": {}}}}]
    assert ownership.owners(managed, live, ["spec", "replicas"]) == ["kubectl (scale)"]
    assert ownership.owners(managed, live, ["spec", "template", "spec", "containers", "0",
                                            "image"]) == ["kubectl-set"]
    assert ownership.owners(managed, live, ["spec", "template", "spec", "containers", "5"]) == []


def _live(kind: str, group: str = "", **metadata: Any) -> reading.Live:
    resource = Resource(group, "v1", kind, kind.lower() + "s", True)
    return reading.Live(resource, {"metadata": {"name": "x", "namespace": "ns", **metadata}})


@pytest.mark.parametrize(("live", "prune", "kept_by"), [
    (_live("ConfigMap"), True, ""),
    (_live("ConfigMap"), False, "prune is off"),
    (_live("ConfigMap", annotations={changes.ANNOTATION_PRUNE: "disabled"}), True,
     "prune: disabled"),
    (_live("ConfigMap", ownerReferences=[{"kind": "Agent", "name": "a"}]), True, "owned by"),
    (_live("PersistentVolumeClaim"), True, "spec.pruneKinds"),
    (_live("Namespace"), True, "spec.pruneKinds"),
    (_live("CustomResourceDefinition", "apiextensions.k8s.io"), True, "spec.pruneKinds"),
])
def test_each_prune_guard_keeps_what_it_guards(live: reading.Live, prune: bool,
                                               kept_by: str) -> None:
    reason = changes._guard(live, prune, DesiredEnv("dev", "ns", "applyset-x", "p", []))
    assert (kept_by in reason) if kept_by else reason == ""


def test_masking_says_only_whether_each_secret_value_changed() -> None:
    before = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "annotations": {
        diffs.LAST_APPLIED: '{"data":{"a":"c2VjcmV0"}}'}}, "data": {"a": "c2VjcmV0", "b": "eA=="}}
    after = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
             "data": {"a": "b3RoZXI=", "b": "eA=="}, "stringData": {"c": "plain"}}
    change = diffs.compare(ObjectRef.of(after), "v1", before, after)
    shown = json.dumps([change.before, change.after]) + change.unified()
    for value in ("c2VjcmV0", "b3RoZXI=", "eA==", "plain", "secret"):
        assert value not in shown
    assert change.before is not None
    assert change.after is not None
    assert change.before["data"] == {"a": diffs.MASKED_BEFORE, "b": diffs.MASKED}
    assert change.after["data"] == {"a": diffs.MASKED_AFTER, "b": diffs.MASKED}
    assert "/data/a" in change.paths
    assert "/data/b" not in change.paths
    assert before["data"] == {"a": "c2VjcmV0", "b": "eA=="}  # the inputs are left alone


def _env(changes_: list[Change]) -> EnvChanges:
    return EnvChanges("dev", "agents-dev", changes_, source="committed")


def test_markdown_stays_under_the_comment_limit_and_fences_any_content() -> None:
    many = []
    for i in range(400):
        ref = ObjectRef(0, "", "ConfigMap", "ns", f"c{i:03d}")
        many.append(diffs.compare(ref, "v1", {"apiVersion": "v1", "kind": "ConfigMap",
                                              "data": {"k": "```\n" + "x" * 300}},
                                  {"apiVersion": "v1", "kind": "ConfigMap",
                                   "data": {"k": "y" * 300}}))
    text = reports.markdown([_env(many)])
    assert len(text) < reports.COMMENT_LIMIT
    assert text.startswith(reports.MARKER)
    assert "more objects not shown" in text
    assert "````diff" in text  # longer than the backticks inside
    small = reports.markdown([_env(many[:2])])
    assert "not shown" not in small
    assert small.count("<details>") == 2


def test_the_document_names_every_object_with_its_outcome_and_paths() -> None:
    ref = ObjectRef(0, "apps", "Deployment", "ns", "bot")
    change = Change(ref, "apps/v1", Outcome.FAILED, ["/spec/replicas"],
                    {"/spec/replicas": ["kubectl (scale)"]}, "conflict: …")
    document = reports.document([_env([change])])
    assert document["kind"] == "DiffReport"
    assert document["environments"][0]["objects"] == [{
        "apiVersion": "apps/v1", "kind": "Deployment", "namespace": "ns", "name": "bot",
        "outcome": "failed", "paths": ["/spec/replicas"],
        "managers": {"/spec/replicas": ["kubectl (scale)"]}, "reason": "conflict: …"}]
    assert reports.summary(_env([change])) == "1 failed"


# -- the committed tree, refused before any request -------------------------------------------


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    root.mkdir()
    for name in ("agentctl.yaml", "agents", "environments"):
        source = ROOT / name
        (shutil.copytree if source.is_dir() else shutil.copy)(source, root / name)
    result = pipeline.render(root, ("dev",))
    pipeline.write(pipeline.plan(result, root / "rendered"))
    closed = {"apiVersion": "v1", "kind": "Config", "current-context": "c",
              "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:9"}}],
              "users": [{"name": "u", "user": {"token": "t"}}],
              "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}]}
    (tmp_path / "kubeconfig").write_text(yaml.safe_dump(closed))
    return root


def diff(project: Path, *args: str) -> Any:
    result = CliRunner().invoke(app, ["-C", str(project), "diff", "--env", "dev", "--kubeconfig",
                                      str(project.parent / "kubeconfig"), "--context", "c",
                                      *args])
    assert isinstance(result.exception, SystemExit), result.exception
    return result


def _deployment(project: Path) -> Path:
    return next((project / "rendered" / "dev").glob("*/deployment-chat-assistant.yaml"))


def test_reaching_the_closed_port_is_exit_3(project: Path) -> None:
    result = diff(project)
    assert result.exit_code == 3, result.output
    assert "cannot reach https://127.0.0.1:9" in result.output


def test_an_edited_committed_file_is_exit_2_naming_it(project: Path) -> None:
    path = _deployment(project)
    path.write_text(path.read_text().replace("replicas: 1", "replicas: 5"))
    result = diff(project)
    assert result.exit_code == 2, result.output
    assert str(path) in result.output
    assert "digest" in result.output


def test_a_missing_listed_file_or_provenance_is_exit_2(project: Path) -> None:
    path = _deployment(project)
    path.unlink()
    result = diff(project)
    assert result.exit_code == 2
    assert f"{path}: listed in provenance.json but missing" in result.output
    (project / "rendered" / "dev" / "provenance.json").unlink()
    result = diff(project)
    assert result.exit_code == 2
    assert "provenance.json: missing" in result.output


def test_a_symlink_in_the_committed_tree_is_exit_2(project: Path, tmp_path: Path) -> None:
    path = _deployment(project)
    outside = tmp_path / "outside.yaml"
    outside.write_text(path.read_text())
    path.unlink()
    os.symlink(outside, path)
    result = diff(project)
    assert result.exit_code == 2, result.output
    assert "symlink" in result.output


def _reseal(project: Path, edit: Any) -> Path:
    """Edit the committed Deployment and re-seal its digest and provenance.json, as someone
    who bypasses render would: integrity holds, so only the policy can refuse it."""
    path = _deployment(project)
    body = yaml.safe_load(path.read_text())
    edit(body)
    body["metadata"]["annotations"].pop(ANNOTATION_DIGEST)
    value = digest(body)
    body["metadata"]["annotations"][ANNOTATION_DIGEST] = value
    path.write_text(yaml.safe_dump(body))
    provenance_path = project / "rendered" / "dev" / "provenance.json"
    provenance = json.loads(provenance_path.read_text())
    for entry in provenance["objects"]:
        if entry["file"].endswith("deployment-chat-assistant.yaml"):
            entry["digest"] = value
    provenance_path.write_text(json.dumps(provenance))
    return path


def test_a_resealed_object_that_breaks_the_policy_is_exit_2(project: Path) -> None:
    def privileged(body: dict[str, Any]) -> None:
        body["spec"]["template"]["spec"]["containers"][0]["securityContext"] = {
            "privileged": True}

    _reseal(project, privileged)
    result = diff(project)
    assert result.exit_code == 2, result.output
    assert "Deployment/" in result.output
    assert "privileged" in result.output


def test_a_resealed_object_in_another_namespace_or_set_is_exit_2(project: Path) -> None:
    def moved(body: dict[str, Any]) -> None:
        body["metadata"]["namespace"] = "kube-system"
        body["metadata"]["labels"]["applyset.kubernetes.io/part-of"] = "applyset-other-v1"

    _reseal(project, moved)
    result = diff(project)
    assert result.exit_code == 2, result.output
    assert "outside the environment's policy.namespaces" in result.output
    assert "the environment's ApplySet" in result.output


def test_verify_refuses_a_committed_tree_that_differs_from_a_fresh_render(
        project: Path) -> None:
    agent = project / "agents" / "chat-assistant.yaml"
    agent.write_text(agent.read_text().replace("chat-agent:1.2.0", "chat-agent:1.3.0"))
    result = diff(project, "--verify")
    assert result.exit_code == 2, result.output
    assert "--verify" in result.output
    assert diff(project).exit_code == 3  # the committed tree itself is intact


# -- reading a committed tree fast, and only as fast as it is safe ------------------------------


def test_the_fast_reader_reads_every_committed_file_as_the_general_loader_does() -> None:
    from agentctl.render import yamlparsing

    files = sorted((ROOT / "rendered").glob("*/*/*.yaml"))
    assert len(files) > 50
    for path in files:
        text = path.read_text()
        fast = yamlparsing.load_written(text)
        assert fast is not None, path
        assert [fast] == yamlparsing.load_all(text), path


@pytest.mark.parametrize("text", [
    "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 10)}]\n"
        for i in range(7)),  # an alias bomb of 10^8 nodes
    "a: 1\na: 2\n",  # a duplicate key
    "".join(" " * i + "k:\n" for i in range(500)),  # deeper than agentctl writes
    "- a\n",  # not a mapping
    "a: 1\n---\nb: 2\n",  # two documents
])
def test_the_fast_reader_declines_what_the_general_loader_must_judge(text: str) -> None:
    from agentctl.render import yamlparsing

    assert yamlparsing.load_written(text) is None


def test_a_committed_alias_bomb_is_refused_as_changed(project: Path) -> None:
    path = _deployment(project)
    path.write_text("a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 10)}]\n"
        for i in range(7)))
    result = diff(project)
    assert result.exit_code == 2, result.output
    assert "changed since it was rendered" in result.output


def test_only_fields_the_apply_owns_count_as_its_changes() -> None:
    """The live object is read before the dry-run: a controller's write in between (the
    Deployment revision annotation) is not a change the apply makes."""
    agentctl = {"manager": "agentctl", "operation": "Apply", "apiVersion": "apps/v1",
                "fieldsV1": {"f:metadata": {"f:annotations": {"f:a": {}}},
                             "f:spec": {"f:replicas": {}}}}
    controller = {"manager": "kube-controller-manager", "operation": "Update",
                  "apiVersion": "apps/v1", "fieldsV1": {"f:metadata": {"f:annotations": {
                      "f:deployment.kubernetes.io/revision": {}}}}}
    live = {"metadata": {"annotations": {"a": "1"}, "managedFields": [agentctl]},
            "spec": {"replicas": 1}}
    answer = {"metadata": {"annotations": {"a": "1", "deployment.kubernetes.io/revision": "1"},
                           "managedFields": [agentctl, controller]},
              "spec": {"replicas": 2}}
    assert ownership.applies(live, answer, "apps/v1", ["spec", "replicas"])
    assert not ownership.applies(live, answer, "apps/v1",
                                 ["metadata", "annotations", "deployment.kubernetes.io/revision"])
