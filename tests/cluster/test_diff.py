"""`agentctl diff` against the sandbox cluster: no noise after an apply, drift by every kind of
other manager caught with its path and manager, the digest shortcut sound and cheap, edits,
removals and refused takeovers, and no secret value in any output."""

from __future__ import annotations

import base64
import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from agentctl import diffs
from agentctl.cli import app
from agentctl.cluster import planning
from agentctl.errors import ClusterError
from agentctl.manifests import LABEL_PART_OF
from agentctl.sandbox import building

from . import projects
from .kube import Cluster, Kube, poll
from .test_blueprints_on_cluster import capability_crds  # noqa: F401 - a fixture

pytestmark = pytest.mark.cluster


def run(cluster: Cluster, project: Path, *args: str) -> Any:
    result = CliRunner().invoke(app, ["-C", str(project), "diff",
                                      "--kubeconfig", str(cluster.kubeconfig), *args])
    assert not isinstance(result.exception, Exception) or isinstance(result.exception,
                                                                     SystemExit), result.output
    return result


def report(cluster: Cluster, project: Path, *args: str) -> tuple[int, dict[str, Any]]:
    result = run(cluster, project, "-o", "json", *args)
    return result.exit_code, json.loads(result.stdout)


def by_name(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f"{o['kind']}/{o['name']}": o for env in document["environments"]
            for o in env["objects"]}


def kubectl(cluster: Cluster, *args: str) -> str:
    done = subprocess.run([str(building.binary("kubectl")), "--kubeconfig",
                           str(cluster.kubeconfig), *args], capture_output=True, text=True,
                          check=False, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def dry_run_patches(cluster: Cluster) -> float:
    """PATCH requests with dryRun=All the API server has served (its own metrics)."""
    _, url, headers, _, _ = cluster.api.param_serialize(
        method="GET", resource_path="/metrics", header_params={"Accept": "text/plain"},
        auth_settings=["BearerToken"])
    answer = cluster.api.call_api("GET", url, header_params=headers, _request_timeout=30)
    answer.read()
    total = 0.0
    for line in answer.data.decode().splitlines():
        if line.startswith("apiserver_request_total{") and 'dry_run="All"' in line \
                and 'verb="PATCH"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


@pytest.fixture
def dev(cluster: Cluster, tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """The example project's dev environment, applied as reconcile applies it."""
    project = tmp_path / "project"
    [namespace] = projects.example_copy(project, cluster.kubeconfig).values()
    kube = cluster.kube
    created = kube.create("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                                 "metadata": {"name": namespace}})
    assert created.status == 201, created.body
    try:
        projects.apply_env(cluster.kubeconfig, projects.desired(project, "dev"))
        yield project, namespace
    finally:
        kube.delete(f"/api/v1/namespaces/{namespace}")


def test_applied_example_fleet_has_no_changes_in_any_environment(
        cluster: Cluster, tmp_path: Path, capability_crds: Any) -> None:  # noqa: F811
    project = tmp_path / "project"
    envs = ("dev", "staging", "prod")
    namespaces = projects.example_copy(project, cluster.kubeconfig, envs)
    kube = cluster.kube
    try:
        for env, namespace in namespaces.items():
            assert kube.create("/api/v1/namespaces", {
                "apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": namespace}}).status == 201
            projects.apply_env(cluster.kubeconfig, projects.desired(project, env))
        before = dry_run_patches(cluster)
        code, document = report(cluster, project, "--all-envs")
        assert code == 0, document
        assert dry_run_patches(cluster) == before
        for env in document["environments"]:
            assert env["summary"]["unchanged"] == len(env["objects"]) > 10, env["summary"]
        text = run(cluster, project, "--all-envs")
        assert text.exit_code == 0
        for env in envs:
            assert re.search(rf"^{env}: \d+ unchanged$", text.stdout, re.M), text.stdout
    finally:
        for namespace in namespaces.values():
            kube.delete(f"/api/v1/namespaces/{namespace}")


def test_a_no_drift_diff_sends_one_list_per_kind_and_namespace_and_no_dry_run(
        cluster: Cluster, dev: tuple[Path, str]) -> None:
    project, _ = dev
    env = projects.desired(project, "dev")
    kinds = {(m.ref.group, m.ref.kind) for m in env.manifests}
    planned = planning.plan(env, cluster.kubeconfig)
    assert planned.sent == {"GET discovery": 2, "GET": 1, "LIST": len(kinds)}, planned.sent
    assert {c.outcome.value for c in planned.changes.changes} == {"unchanged"}


def test_drift_by_other_managers_is_caught_with_path_and_manager(
        cluster: Cluster, dev: tuple[Path, str]) -> None:
    """kubectl edit, scale, set image, a JSON patch and another manager's forced apply, each
    on a field agentctl owns: none survives the digest shortcut."""
    project, ns = dev
    kube = cluster.kube
    # kubectl edit: an update (PUT) of the whole object by manager kubectl-edit
    path = f"/api/v1/namespaces/{ns}/services/support-bot-preview"
    service = kube.get(path).body
    service["spec"]["selector"]["agent.inferensys.com/track"] = "blue"
    edited = kube.request("PUT", path, service, query=[("fieldManager", "kubectl-edit")])
    assert edited.status == 200, edited.body
    kubectl(cluster, "-n", ns, "scale", "deployment/chat-assistant", "--replicas=3")
    kubectl(cluster, "-n", ns, "set", "image", "deployment/code-review", "agent=example/x:2")
    kubectl(cluster, "-n", ns, "patch", "configmap/support-bot-config", "--type=json",
            "-p", '[{"op": "remove", "path": "/data"}]')
    forced = kube.apply(f"/apis/policy/v1/namespaces/{ns}/poddisruptionbudgets/code-review",
                        {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
                         "metadata": {"name": "code-review", "namespace": ns},
                         "spec": {"maxUnavailable": 3}}, manager="platform-team", force=True)
    assert forced.status == 200, forced.body

    code, document = report(cluster, project, "--env", "dev")
    objects = by_name(document)
    assert code == 4, document  # conflicts: reconcile would fail without --force-conflicts
    expected = {
        "Service/support-bot-preview": ("/spec/selector/agent.inferensys.com~1track",
                                        "kubectl-edit"),
        "Deployment/chat-assistant": ("/spec/replicas", "kubectl (scale)"),
        "Deployment/code-review": ("/spec/template/spec/containers/0/image", "kubectl-set"),
        "PodDisruptionBudget/code-review": ("/spec/maxUnavailable", "platform-team"),
    }
    for name, (pointer, manager) in expected.items():
        found = objects[name]
        assert found["outcome"] == "failed", found
        assert "conflict" in found["reason"], found
        assert pointer in found["paths"], found
        assert manager in found["managers"][pointer], found
        assert manager.split(" ")[0] in found["reason"], found
    patched = objects["ConfigMap/support-bot-config"]
    assert patched["outcome"] == "configured", patched
    assert patched["paths"] == ["/data"], patched
    changed = set(expected) | {"ConfigMap/support-bot-config"}
    assert {n for n, o in objects.items() if o["outcome"] != "unchanged"} == changed

    code, document = report(cluster, project, "--env", "dev", "--force-conflicts")
    assert code == 1
    assert {o["outcome"] for n, o in by_name(document).items() if n in changed} == {"configured"}
    text = run(cluster, project, "--env", "dev").stdout
    assert "/spec/replicas  (changed by kubectl (scale))" in text
    assert "-  replicas: 3\n+  replicas: 1" in text


def test_autoscaled_bound_and_rolled_out_objects_stay_unchanged_without_a_dry_run(
        cluster: Cluster, dev: tuple[Path, str]) -> None:
    project, ns = dev
    kube = cluster.kube
    # The HPA's controller writes replicas through the scale subresource of a Deployment whose
    # rendered spec leaves them out.
    scale = f"/apis/apps/v1/namespaces/{ns}/deployments/ticket-triage/scale"
    answer = kube.request("PATCH", scale, {"spec": {"replicas": 4}},
                          query=[("fieldManager", "horizontal-pod-autoscaler")],
                          content_type="application/merge-patch+json")
    assert answer.status == 200, answer.body
    poll(lambda: kube.get(f"/api/v1/namespaces/{ns}/persistentvolumeclaims/"
                          "gpu-inference-model-cache").body,
         lambda b: b.get("status", {}).get("phase") == "Bound", "the model cache to bind")
    poll(lambda: kube.get(f"/apis/apps/v1/namespaces/{ns}/deployments/chat-assistant").body,
         lambda b: "deployment.kubernetes.io/revision" in b["metadata"].get("annotations", {})
         and b.get("status", {}).get("observedGeneration") == b["metadata"]["generation"],
         "chat-assistant to roll out")
    planned = planning.plan(projects.desired(project, "dev"), cluster.kubeconfig)
    assert "PATCH dryRun" not in planned.sent, planned.sent
    assert {c.outcome.value for c in planned.changes.changes} == {"unchanged"}


def _edit_agent(project: Path, name: str, edit: Any) -> None:
    path = project / "agents" / f"{name}.yaml"
    doc = yaml.safe_load(path.read_text())
    edit(doc)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    projects.render_out(project)


def test_an_edited_agent_is_configured_with_exact_paths(
        cluster: Cluster, dev: tuple[Path, str]) -> None:
    """The live diff of an edit equals the rendered difference, path for path."""
    project, _ = dev
    before = {m.ref: m.body for m in projects.desired(project, "dev").manifests}

    def two_replicas(doc: dict[str, Any]) -> None:
        doc["spec"]["replicas"] = 2

    _edit_agent(project, "chat-assistant", two_replicas)
    after = {m.ref: m for m in projects.desired(project, "dev").manifests}
    rendered = {f"{ref.kind}/{ref.name}": diffs.compare(ref, m.api_version, before.get(ref),
                                                         m.body)
                for ref, m in after.items() if before.get(ref) != m.body}
    code, document = report(cluster, project, "--env", "dev")
    assert code == 1
    changed = {n: o for n, o in by_name(document).items() if o["outcome"] != "unchanged"}
    assert set(changed) == set(rendered) >= {"Deployment/chat-assistant",
                                            "PodDisruptionBudget/chat-assistant"}
    for name, change in rendered.items():
        assert changed[name]["outcome"] == change.outcome.value, name
        assert changed[name]["paths"] == change.paths, name
    assert "/spec/replicas" in changed["Deployment/chat-assistant"]["paths"]


def test_a_removed_agent_shows_its_objects_as_planned_prunes(
        cluster: Cluster, dev: tuple[Path, str]) -> None:
    project, _ = dev
    live = {f"{m.ref.kind}/{m.ref.name}" for m in projects.desired(project, "dev").manifests
            if m.agent == "gpu-inference"}
    (project / "agents" / "gpu-inference.yaml").unlink()
    projects.render_out(project)
    code, document = report(cluster, project, "--env", "dev")
    assert code == 1
    objects = by_name(document)
    deleted = {n for n, o in objects.items() if o["outcome"] == "deleted"}
    skipped = {n: o["reason"] for n, o in objects.items() if o["outcome"] == "skipped"}
    assert deleted | set(skipped) == live
    assert set(skipped) == {"PersistentVolumeClaim/gpu-inference-model-cache"}, skipped
    assert "never pruned unless the environment lists it in spec.pruneKinds" in skipped[
        "PersistentVolumeClaim/gpu-inference-model-cache"]
    assert all(o["outcome"] == "unchanged" for n, o in objects.items()
               if n not in live and n != "ConfigMap/agentctl-example-fleet-dev"), objects
    text = run(cluster, project, "--env", "dev").stdout
    assert re.search(r"^dev: .*\b\d+ to prune\b", text, re.M), text


def test_a_foreign_object_is_a_refused_takeover_and_objects_outside_the_set_never_appear(
        cluster: Cluster, dev: tuple[Path, str]) -> None:
    project, ns = dev
    kube = cluster.kube
    configmaps = f"/api/v1/namespaces/{ns}/configmaps"
    # Someone else's object under a name agentctl renders, without the ApplySet label.
    assert kube.delete(f"{configmaps}/chat-assistant-config").status == 200
    for name in ("chat-assistant-config", "unrelated"):
        made = kube.create(configmaps, {"apiVersion": "v1", "kind": "ConfigMap",
                                        "metadata": {"name": name, "namespace": ns},
                                        "data": {"owner": "someone else"}})
        assert made.status == 201, made.body
    # A member moved to another ApplySet.
    kubectl(cluster, "-n", ns, "label", "--overwrite", "configmap/code-review-config",
            f"{LABEL_PART_OF}=applyset-other-v1")
    code, document = report(cluster, project, "--env", "dev")
    objects = by_name(document)
    assert code == 4, document
    assert "ConfigMap/unrelated" not in objects
    foreign = objects["ConfigMap/chat-assistant-config"]
    assert foreign["outcome"] == "failed", foreign
    assert "takeover refused" in foreign["reason"]
    assert "without the" in foreign["reason"]
    moved = objects["ConfigMap/code-review-config"]
    assert moved["outcome"] == "failed", moved
    assert "takeover refused" in moved["reason"]
    assert "applyset-other-v1" in moved["reason"]
    assert kube.get(f"{configmaps}/chat-assistant-config").body["data"] == {
        "owner": "someone else"}


_SECRET_BLUEPRINT = """\
apiVersion: v1
kind: Secret
metadata:
  name: {{ agent.metadata.name ~ "-token" }}
type: Opaque
stringData:
  token: {{ agent.spec.runtime.image | replace("ghcr.io/example/vault:", "") }}
  static: unchanged-value
"""


def test_no_secret_value_reaches_any_output(cluster: Cluster, tmp_path: Path,
                                           namespace: str, kube: Kube) -> None:
    desired_value, live_value = "desired-canary-4f1e9a", "live-canary-7c2d0b"
    project = tmp_path / "project"
    for folder in ("agents", "environments", "blueprints/vault"):
        (project / folder).mkdir(parents=True)
    (project / "agentctl.yaml").write_text(
        "apiVersion: agentctl.inferensys.com/v1alpha1\nkind: Project\n"
        "metadata: {name: secrets}\n")
    (project / "blueprints/vault/blueprint.yaml").write_text(
        "name: vault\ndescription: A Secret.\nhandles: [runtime, model]\n")
    (project / "blueprints/vault/secret.yaml.j2").write_text(_SECRET_BLUEPRINT)
    (project / "agents/keeper.yaml").write_text(
        "apiVersion: agent.inferensys.com/v1alpha1\nkind: Agent\nmetadata: {name: keeper}\n"
        "spec:\n  blueprint: vault\n"
        f"  runtime: {{image: 'ghcr.io/example/vault:{desired_value}'}}\n"
        "  model: {id: m, provider: openai}\n")
    (project / "environments/dev.yaml").write_text(
        "apiVersion: agentctl.inferensys.com/v1alpha1\nkind: Environment\nmetadata: {name: dev}\n"
        f"spec:\n  namespace: {namespace}\n"
        f"  cluster: {{context: {projects.context_of(cluster.kubeconfig)}}}\n")
    projects.render_out(project)
    env = projects.desired(project, "dev")
    projects.apply_env(cluster.kubeconfig, env)
    # The live Secret now holds another value, and kubectl's client-side copy of it.
    path = f"/api/v1/namespaces/{namespace}/secrets/keeper-token"
    live = kube.get(path).body
    live["data"]["token"] = base64.b64encode(live_value.encode()).decode()
    live["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"] = \
        json.dumps({"stringData": {"token": live_value}})
    assert kube.request("PUT", path, live, query=[("fieldManager", "kubectl-edit")]).status == 200

    outputs = [run(cluster, project, "--env", "dev", *fmt) for fmt in
               ((), ("-o", "json"), ("-o", "yaml"), ("-o", "markdown"), ("--full",),
                ("--force-conflicts",), ("-v",))]
    forbidden = [v for value in (desired_value, live_value, "unchanged-value")
                 for v in (value, base64.b64encode(value.encode()).decode())]
    for result in outputs:
        assert result.exit_code in (1, 4), result.output
        for value in forbidden:
            assert value not in result.output, (value, result.output)
    document = json.loads(outputs[1].stdout)
    token = by_name(document)["Secret/keeper-token"]
    assert "/data/token" in token["paths"], token
    assert "/data/static" not in token["paths"], token
    assert "(masked: after, changed)" in outputs[0].stdout


def test_the_wrong_cluster_is_refused_after_one_request(cluster: Cluster,
                                                       dev: tuple[Path, str]) -> None:
    project, _ = dev
    env = projects.desired(project, "dev")
    env.uid = "00000000-0000-0000-0000-000000000000"
    api = projects.client(cluster.kubeconfig, env)
    try:
        with pytest.raises(ClusterError) as caught:
            planning.plan(env, client=api)
        assert "00000000-0000-0000-0000-000000000000" in str(caught.value)
        assert dict(api.sent) == {"GET identity": 1}
    finally:
        api.close()
    doc = yaml.safe_load((project / "environments" / "dev.yaml").read_text())
    doc["spec"]["cluster"]["uid"] = "00000000-0000-0000-0000-000000000000"
    (project / "environments" / "dev.yaml").write_text(yaml.safe_dump(doc))
    result = run(cluster, project, "--env", "dev")
    assert result.exit_code == 3
    assert isinstance(result.exception, SystemExit)
    assert "kube-system UID" in result.output
    assert len(result.output.splitlines()) == 1


def test_unreachable_wrong_context_and_forbidden_exit_3_in_one_line(
        cluster: Cluster, dev: tuple[Path, str], tmp_path: Path, kube: Kube) -> None:
    project, ns = dev
    config = yaml.safe_load(cluster.kubeconfig.read_text())
    # unreachable: the same credentials against a closed port
    closed = json.loads(json.dumps(config))
    closed["clusters"][0]["cluster"]["server"] = "https://127.0.0.1:9"
    (tmp_path / "closed").write_text(yaml.safe_dump(closed))
    # forbidden: a ServiceAccount's token, with no rights at all
    made = kube.create(f"/api/v1/namespaces/{ns}/serviceaccounts",
                       {"apiVersion": "v1", "kind": "ServiceAccount",
                        "metadata": {"name": "nobody"}})
    assert made.status == 201, made.body
    token = kube.create(f"/api/v1/namespaces/{ns}/serviceaccounts/nobody/token",
                        {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                         "spec": {"expirationSeconds": 600}})
    assert token.status == 201, token.body
    nobody = json.loads(json.dumps(config))
    nobody["users"][0]["user"] = {"token": token.body["status"]["token"]}
    (tmp_path / "nobody").write_text(yaml.safe_dump(nobody))
    cases = {"closed": ["--kubeconfig", str(tmp_path / "closed")],
             "context": ["--context", "no-such-context"],
             "nobody": ["--kubeconfig", str(tmp_path / "nobody")]}
    messages = {}
    for name, args in cases.items():
        result = CliRunner().invoke(app, ["-C", str(project), "diff", "--env", "dev", *args]
                                    + ([] if "--kubeconfig" in args
                                       else ["--kubeconfig", str(cluster.kubeconfig)]))
        assert result.exit_code == 3, (name, result.output)
        assert isinstance(result.exception, SystemExit), (name, result.exception)
        assert len(result.output.strip().splitlines()) == 1, (name, result.output)
        messages[name] = result.output
    assert "cannot reach https://127.0.0.1:9" in messages["closed"]
    assert "no-such-context" in messages["context"]
    assert "--context" in messages["context"]
    assert "forbidden" in messages["nobody"], messages["nobody"]


def test_a_kind_the_cluster_does_not_serve_exits_3_naming_the_capability(
        cluster: Cluster, tmp_path: Path, namespace: str) -> None:
    project = tmp_path / "project"
    for folder in ("agents", "environments", "blueprints/widget"):
        (project / folder).mkdir(parents=True)
    (project / "agentctl.yaml").write_text(
        "apiVersion: agentctl.inferensys.com/v1alpha1\nkind: Project\n"
        "metadata: {name: widgets}\nspec:\n  scopes: {example.com/v1/Widget: Namespaced}\n")
    (project / "blueprints/widget/blueprint.yaml").write_text(
        "name: widget\ndescription: A Widget.\nhandles: [runtime, model]\n")
    (project / "blueprints/widget/widget.yaml.j2").write_text(
        "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: {{ agent.metadata.name }}\n"
        "spec: {size: 1}\n")
    (project / "agents/w.yaml").write_text(
        "apiVersion: agent.inferensys.com/v1alpha1\nkind: Agent\nmetadata: {name: w}\n"
        "spec:\n  blueprint: widget\n  runtime: {image: 'ghcr.io/example/w:1'}\n"
        "  model: {id: m, provider: openai}\n")
    (project / "environments/dev.yaml").write_text(
        "apiVersion: agentctl.inferensys.com/v1alpha1\nkind: Environment\nmetadata: {name: dev}\n"
        f"spec:\n  namespace: {namespace}\n  capabilities: [example.com/v1/Widget]\n"
        f"  cluster: {{context: {projects.context_of(cluster.kubeconfig)}}}\n")
    projects.render_out(project)
    result = run(cluster, project, "--env", "dev")
    assert result.exit_code == 3, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    assert "example.com/v1/Widget" in result.output
    assert "Widget/" in result.output


def test_a_foreign_file_in_the_committed_tree_only_warns(cluster: Cluster,
                                                        dev: tuple[Path, str]) -> None:
    project, _ = dev
    readme = project / "rendered" / "dev" / "README.md"
    readme.write_text("# What this folder is\n")
    result = run(cluster, project, "--env", "dev")
    assert result.exit_code == 0, result.output
    assert f"{readme}: foreign file (not in provenance.json): never applied" in result.output
