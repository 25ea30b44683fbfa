"""Running reconcile for real, offline: the RBAC covers exactly what the environment may render
and what reconcile needs besides; the CronJob's guards and restricted pods; `agentctl init
--cronjob/--ci` in an existing project; the CI workflow (actionlint, main only, the
repository's own copy); the Dockerfile; and `kubectl agentctl` as a kubectl plugin."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from agentctl import permissions, provisioning, reconcilers, scaffolding, workflows
from agentctl.cli import app
from agentctl.errors import InputError
from agentctl.render import pipeline
from agentctl.render.policies import level_of
from agentctl.sandbox import building
from tests.conftest import REPO


def _access(**changes: Any) -> permissions.Access:
    base: dict[str, Any] = {
        "env": "prod", "namespace": "agents-prod", "namespaces": ("agents-prod",),
        "lease": "agentctl-fleet-prod",
        "kinds": permissions.kinds_of(["monitoring.coreos.com/v1/ServiceMonitor",
                                       "agent.inferensys.com/v1alpha1/Agent"])}
    return permissions.Access(**{**base, **changes})


def _rules(objects: list[dict[str, Any]], kind: str, namespace: str = "") -> list[dict[str, Any]]:
    return [r for o in objects if o["kind"] == kind
            and o["metadata"].get("namespace", "") == namespace for r in o["rules"]]


def _grants(rules: list[dict[str, Any]]) -> set[tuple[str, str, str, str]]:
    return {(group, resource, verb, name) for r in rules for group in r["apiGroups"]
            for resource in r["resources"] for verb in r["verbs"]
            for name in r.get("resourceNames") or ["*"]}


def test_the_role_grants_exactly_the_renderable_kinds_and_what_reconcile_needs() -> None:
    objects = permissions.objects(_access(), "agentctl-fleet-prod", "agentctl-system")
    assert [o["kind"] for o in objects] == ["Role", "RoleBinding"]  # nothing cluster-wide
    grants = _grants(_rules(objects, "Role", "agents-prod"))
    members = {("", "configmaps"), ("", "services"), ("", "serviceaccounts"),
               ("", "persistentvolumeclaims"), ("apps", "deployments"),
               ("apps", "statefulsets"), ("autoscaling", "horizontalpodautoscalers"),
               ("policy", "poddisruptionbudgets"), ("networking.k8s.io", "networkpolicies"),
               ("monitoring.coreos.com", "servicemonitors"), ("agent.inferensys.com", "agents")}
    expected = {(g, r, v, "*") for g, r in members
                for v in ("get", "list", "create", "patch", "delete")}
    expected.remove(("", "persistentvolumeclaims", "delete", "*"))  # agent memory: no opt-in
    expected |= {("", "pods", "list", "*"), ("apps", "replicasets", "list", "*"),
                 ("coordination.k8s.io", "leases", "create", "*"),
                 ("coordination.k8s.io", "leases", "get", "agentctl-fleet-prod"),
                 ("coordination.k8s.io", "leases", "update", "agentctl-fleet-prod"),
                 ("", "events", "create", "*"),
                 ("agent.inferensys.com", "agents/status", "patch", "*")}
    assert grants == expected
    assert not any("*" in (g, r, v) for g, r, v, _ in grants)
    assert not any(r in ("secrets", "pods/exec", "roles", "rolebindings") for _, r, _, _ in grants)
    [binding] = [o for o in objects if o["kind"] == "RoleBinding"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "agentctl-fleet-prod",
                                    "namespace": "agentctl-system"}]


def test_delete_of_a_kept_kind_is_granted_only_with_the_environments_opt_in() -> None:
    kinds = permissions.kinds_of([], [("v1", "Namespace"),
                                      ("apiextensions.k8s.io/v1", "CustomResourceDefinition")])
    kept = {("", "persistentvolumeclaims"), ("", "namespaces"),
            ("apiextensions.k8s.io", "customresourcedefinitions")}

    def deletable(access: permissions.Access) -> set[tuple[str, str]]:
        objects = permissions.objects(access, "agentctl-fleet-prod", "agentctl-system")
        grants = _grants(_rules(objects, "Role", "agents-prod")) | _grants(
            _rules(objects, "ClusterRole"))
        return {(g, r) for g, r, v, _ in grants if v == "delete"} & kept

    assert deletable(_access(kinds=kinds)) == set()
    opted = _access(kinds=kinds, prune_kinds=frozenset({"PersistentVolumeClaim", "Namespace"}))
    assert deletable(opted) == {("", "persistentvolumeclaims"), ("", "namespaces")}
    # kept kinds still get every other member verb (apply, and the release patch)
    objects = permissions.objects(_access(kinds=kinds), "agentctl-fleet-prod", "agentctl-system")
    grants = _grants(_rules(objects, "ClusterRole"))
    assert {v for g, r, v, _ in grants if r == "namespaces"} == {"get", "list", "create",
                                                                  "patch"}


def test_cluster_rules_only_for_the_identity_check_and_the_crd() -> None:
    objects = permissions.objects(_access(identity=True, install_crd=True,
                                          namespaces=("agents-prod", "shared")),
                                  "agentctl-fleet-prod", "agentctl-system")
    roles = {o["metadata"].get("namespace") for o in objects if o["kind"] == "Role"}
    assert roles == {"agents-prod", "shared"}
    shared = _grants(_rules(objects, "Role", "shared"))
    assert not any(r in ("leases", "events") for _, r, _, _ in shared)  # those: its own only
    assert _grants(_rules(objects, "ClusterRole")) == {
        ("", "namespaces", "get", "kube-system"),
        ("apiextensions.k8s.io", "customresourcedefinitions", "get", permissions.AGENT_CRD),
        ("apiextensions.k8s.io", "customresourcedefinitions", "create", permissions.AGENT_CRD),
        ("apiextensions.k8s.io", "customresourcedefinitions", "patch", permissions.AGENT_CRD)}


@pytest.mark.parametrize(("kind", "resource"), [
    ("NetworkPolicy", "networkpolicies"), ("Ingress", "ingresses"), ("Endpoints", "endpoints"),
    ("Gateway", "gateways"), ("PodMonitor", "podmonitors")])
def test_resource_names_are_kubectls_guess(kind: str, resource: str) -> None:
    assert permissions.resource_of(kind) == resource


def _runner(**changes: Any) -> reconcilers.Runner:
    return reconcilers.Runner(_access(), "fleet", repo="https://git.example.com/fleet.git",
                              **changes)


def test_the_cronjob_never_overlaps_gives_up_and_runs_restricted() -> None:
    job = reconcilers.cronjob(_runner(git_secret="git-credentials"))
    spec = job["spec"]
    assert (spec["concurrencyPolicy"], spec["startingDeadlineSeconds"]) == ("Forbid", 120)
    job_spec = spec["jobTemplate"]["spec"]
    assert job_spec["activeDeadlineSeconds"] > reconcilers.TIMEOUT_SECONDS
    assert job_spec["backoffLimit"] == 0
    pod = job_spec["template"]["spec"]
    assert level_of(pod) == "restricted"
    assert pod["serviceAccountName"] == "agentctl-fleet-prod"
    for container in pod["initContainers"] + pod["containers"]:
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert "limits" in container["resources"]
    [sync] = pod["initContainers"]
    assert sync["image"] == reconcilers.GIT_SYNC_IMAGE
    assert ":v4." in sync["image"]  # pinned, never latest
    assert "--one-time" in sync["args"]
    assert "--repo=https://git.example.com/fleet.git" in sync["args"]
    assert {e["name"] for e in sync["env"]} == {"HOME", "GITSYNC_USERNAME", "GITSYNC_PASSWORD"}
    [run] = pod["containers"]
    assert run["args"][:4] == ["-C", "/repo/current", "reconcile", "--env"]
    assert {"name": "repo", "mountPath": "/repo", "readOnly": True} in run["volumeMounts"]


def test_the_reconciler_never_lives_where_the_environment_deploys() -> None:
    with pytest.raises(InputError) as caught:
        reconcilers.document(_runner(namespace="agents-prod"), "cronjob")
    assert "agents-prod is a namespace environment prod deploys into" in str(caught.value)


def test_init_cronjob_in_an_existing_project(runner: CliRunner, example: Path) -> None:
    pipeline.write(pipeline.plan(pipeline.render(example, ("prod",)), example / "rendered"))
    result = runner.invoke(app, ["init", str(example), "--cronjob", "prod", "--repo",
                                 "https://git.example.com/fleet.git", "--install-crd"])
    assert result.exit_code == 0, result.output
    written = sorted(str(p.relative_to(example)) for p in example.rglob("*")
                     if "deploy" in p.parts and p.is_file())
    assert written == ["deploy/prod/reconciler.yaml"]
    docs = list(yaml.safe_load_all((example / "deploy/prod/reconciler.yaml").read_text()))
    kinds = [d["kind"] for d in docs]
    assert kinds == ["Namespace", "ServiceAccount", "Role", "RoleBinding", "ClusterRole",
                     "ClusterRoleBinding", "CronJob"]
    resources = {r for rule in _rules(docs, "Role", "agents-prod") for r in rule["resources"]}
    # prod's capabilities and committed kinds: ServiceMonitor, PrometheusRule, ExternalSecret,
    # ScaledObject, HTTPRoute, CiliumNetworkPolicy
    assert {"servicemonitors", "prometheusrules", "externalsecrets", "scaledobjects",
            "httproutes", "ciliumnetworkpolicies"} <= resources
    assert "podmonitors" not in resources  # not a capability of prod
    assert "--install-crd" in docs[-1]["spec"]["jobTemplate"]["spec"]["template"]["spec"][
        "containers"][0]["args"]
    again = runner.invoke(app, ["init", str(example), "--cronjob", "prod"])
    assert again.exit_code == 2, again.output
    assert isinstance(again.exception, SystemExit)
    assert "already exists; use --force" in again.output
    unknown = runner.invoke(app, ["init", str(example), "--cronjob", "nope"])
    assert unknown.exit_code == 2
    assert "unknown environment 'nope'" in unknown.output


def test_init_ci_writes_the_token_identity_and_the_workflow(runner: CliRunner,
                                                            example: Path) -> None:
    result = runner.invoke(app, ["init", str(example), "--ci", "dev", "--ci", "prod"])
    assert result.exit_code == 0, result.output
    assert "committed tree cannot be read" in result.output  # none rendered: a warning
    docs = list(yaml.safe_load_all((example / "deploy/dev/reconciler.yaml").read_text()))
    assert docs[-1]["kind"] == "Secret"
    assert docs[-1]["type"] == "kubernetes.io/service-account-token"
    assert "CronJob" not in {d["kind"] for d in docs}
    workflow = yaml.safe_load((example / provisioning.WORKFLOW).read_text())
    assert list(workflow["jobs"]) == ["dev", "prod"]
    assert workflow["jobs"]["prod"]["needs"] == "dev"
    assert workflow[True] == {"push": {"branches": ["main"]}, "workflow_dispatch": None}
    assert workflow["permissions"] == {"contents": "read"}
    for env, job in workflow["jobs"].items():
        assert job["environment"] == f"agentctl-{env}"
        assert job["concurrency"]["cancel-in-progress"] is False
        assert "refs/heads/main" in job["if"]
        step = job["steps"][-1]
        assert step["env"] == {"KUBECONFIG_DATA": "${{ secrets.KUBECONFIG }}"}
        assert "${{" not in step["run"]
        assert "umask 077" in step["run"]
        assert f"agentctl reconcile --env {env} --verify" in step["run"]
    both = runner.invoke(app, ["init", str(example), "--ci", "dev", "--cronjob", "dev",
                               "--force"])
    assert both.exit_code == 2, both.output


def test_the_workflows_pass_actionlint(tmp_path: Path) -> None:
    actionlint = building.binary("actionlint")
    folder = tmp_path / ".github" / "workflows"
    folder.mkdir(parents=True)
    (folder / "agentctl-reconcile.yaml").write_text(workflows.reconcile_workflow(
        ["dev", "staging", "prod"]))
    for path in (folder / "agentctl-reconcile.yaml", REPO / ".github/workflows/reconcile.yaml"):
        result = subprocess.run([str(actionlint), "-no-color", str(path)], cwd=tmp_path,
                                capture_output=True, text=True, check=False)
        assert result.returncode == 0, result.stdout + result.stderr


def test_the_repositorys_reconcile_workflow_is_the_generated_one_installing_from_the_checkout(
        ) -> None:
    ours = (REPO / ".github/workflows/reconcile.yaml").read_text()
    assert ours == workflows.reconcile_workflow(["dev", "staging", "prod"], name="reconcile",
                                                from_checkout=True)


def test_a_new_project_gets_a_cronjob_per_environment() -> None:
    files = scaffolding.contents("fleet")
    for env in scaffolding.ENVIRONMENTS:
        docs = list(yaml.safe_load_all(files[provisioning.deploy_file(env)]))
        assert docs[-1]["kind"] == "CronJob"
        roles = {d["metadata"]["namespace"] for d in docs if d["kind"] == "Role"}
        assert roles == {f"fleet-{env}"}


def test_the_dockerfile_runs_unprivileged_with_agentctl_as_entrypoint() -> None:
    text = (REPO / "Dockerfile").read_text()
    assert "USER 65532:65532" in text
    assert 'ENTRYPOINT ["agentctl"]' in text
    assert ":latest" not in text


def test_kubectl_finds_the_plugin(tmp_path: Path) -> None:
    """`kubectl-agentctl` is a console script of the package, and kubectl runs it as `kubectl
    agentctl` (a shim written the way an installer writes console scripts)."""
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["kubectl-agentctl"] == scripts["agentctl"]
    module, _, function = scripts["kubectl-agentctl"].partition(":")
    shim = tmp_path / "kubectl-agentctl"
    shim.write_text(f"#!{sys.executable}\nimport sys\nsys.path.insert(0, {str(REPO)!r})\n"
                    f"from {module} import {function}\nsys.exit({function}())\n")
    shim.chmod(0o755)
    kubectl = building.binary("kubectl")
    result = subprocess.run([str(kubectl), "agentctl", "-C", str(REPO), "render", "--env", "dev",
                             "--agent", "chat-assistant"], capture_output=True, text=True,
                            check=False, env={**os.environ, "PATH": f"{tmp_path}:/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    assert {d["kind"] for d in yaml.safe_load_all(result.stdout) if d} >= {"Deployment"}
    listed = subprocess.run([str(kubectl), "plugin", "list"], capture_output=True, text=True,
                            check=False, env={**os.environ, "PATH": f"{tmp_path}:/usr/bin:/bin"})
    assert "kubectl-agentctl" in listed.stdout, listed.stdout + listed.stderr
