"""Running reconcile for real, on the sandbox cluster: `agentctl init --cronjob` writes a
manifest the API server accepts as is (server-side apply, strict validation); the CronJob's
ServiceAccount, with a token of its own against the real RBAC, runs a full reconcile of the
example fleet (the Agent CRD, status, the kube-system identity check included) and a second one
that changes nothing, and `kubectl agentctl diff` agrees; impersonating it, the API server
denies every kind outside its list and its own namespace; the CronJob's pod passes the
restricted Pod Security admission of that namespace, where a privileged pod does not."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from agentctl.cli import app
from agentctl.render import publishing
from agentctl.sandbox import building

from . import projects, reconciles
from .kube import Cluster, Kube, wait_for

pytestmark = pytest.mark.cluster

ROOT = Path(__file__).resolve().parents[2]


def _prepare(project: Path, uid: str) -> None:
    """dev with the Agent capability and the sandbox's identity."""
    path = project / "environments" / "dev.yaml"
    doc = yaml.safe_load(path.read_text())
    doc["spec"].setdefault("capabilities", []).append(publishing.AGENT_CAPABILITY)
    doc["spec"]["cluster"]["uid"] = uid
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    projects.render_out(project)


def _token_kubeconfig(cluster: Cluster, namespace: str, account: str, dest: Path) -> Path:
    """A kubeconfig holding a fresh token of the ServiceAccount (TokenRequest), the sandbox's
    server and CA, and a context of the name the environment selects."""
    answer = cluster.kube.create(
        f"/api/v1/namespaces/{namespace}/serviceaccounts/{account}/token",
        {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
         "spec": {"expirationSeconds": 3600}})
    assert answer.status == 201, answer.body
    admin = yaml.safe_load(cluster.kubeconfig.read_text())
    name = admin["current-context"]
    context = next(c for c in admin["contexts"] if c["name"] == name)["context"]
    server = next(c for c in admin["clusters"] if c["name"] == context["cluster"])["cluster"]
    dest.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": name,
        "clusters": [{"name": "sandbox", "cluster": server}],
        "users": [{"name": account, "user": {"token": answer.body["status"]["token"]}}],
        "contexts": [{"name": name, "context": {"cluster": "sandbox", "user": account}}]}))
    dest.chmod(0o600)
    return dest


def _kubectl(cluster: Cluster, *args: str, path: str | None = None) -> subprocess.CompletedProcess[
        str]:
    env = {**os.environ, "PATH": f"{path}:/usr/bin:/bin"} if path else None
    return subprocess.run([str(building.binary("kubectl")), "--kubeconfig",
                           str(cluster.kubeconfig), *args], capture_output=True, text=True,
                          timeout=120, check=False, env=env)


def _denied(kube: Kube, path: str, body: dict[str, Any]) -> None:
    answer = kube.apply(path, body, manager="agentctl", dry_run=True)
    assert answer.status == 403, (path, answer.status, answer.body)


def test_the_cronjobs_serviceaccount_reconciles_the_fleet_and_nothing_else(
        cluster: Cluster, tmp_path: Path) -> None:
    kube = cluster.kube
    home = f"t-agentctl-{uuid.uuid4().hex[:6]}"  # the reconciler's own namespace
    uid = kube.get("/api/v1/namespaces/kube-system").body["metadata"]["uid"]
    account = "agentctl-example-fleet-dev"
    with reconciles.dev_project(cluster, tmp_path) as (project, ns):
        try:
            _prepare(project, uid)
            written = CliRunner().invoke(app, [
                "init", str(project), "--cronjob", "dev", "--install-crd", "--namespace", home,
                "--repo", "https://git.example.com/acme/agents.git"])
            assert written.exit_code == 0, written.output
            manifest = project / "deploy" / "dev" / "reconciler.yaml"
            applied = _kubectl(cluster, "apply", "--server-side", "--field-manager=platform",
                               "-f", str(manifest))
            assert applied.returncode == 0, applied.stderr
            assert f"cronjob.batch/{account} serverside-applied" in applied.stdout

            # a full reconcile of the example fleet as the ServiceAccount: CRD, objects,
            # health, Agent status, the kube-system identity check
            config = _token_kubeconfig(cluster, home, account, tmp_path / "sa.kubeconfig")
            result = reconciles.invoke(cluster, project, "--env", "dev", "--install-crd",
                                       "-o", "json", kubeconfig=config)
            assert result.exit_code == 0, result.output
            document = yaml.safe_load(result.stdout[result.stdout.find("{"):])
            [env] = document["environments"]
            assert env["converged"] is True
            assert env["summary"]["failed"] == 0
            assert env["summary"]["created"] == len(projects.desired(project, "dev").manifests)+1
            assert {a["phase"] for a in env["agents"]} == {"Ready"}
            assert all(a["statusWritten"] for a in env["agents"])
            again = reconciles.invoke(cluster, project, "--env", "dev", "--install-crd", "-o",
                                      "json", kubeconfig=config)
            assert again.exit_code == 0, again.output
            [env] = yaml.safe_load(again.stdout[again.stdout.find("{"):])["environments"]
            assert env["summary"]["unchanged"] == len(env["objects"]), env["summary"]
            assert "PATCH apply" not in env["requests"], env["requests"]

            # kubectl runs agentctl as a plugin; the ServiceAccount can diff too
            plugin = tmp_path / "plugins"
            plugin.mkdir()
            shim = plugin / "kubectl-agentctl"
            shim.write_text(f"#!{sys.executable}\nimport sys\nsys.path.insert(0, {str(ROOT)!r})\n"
                            "from agentctl.__main__ import main\nsys.exit(main())\n")
            shim.chmod(0o755)
            diff = subprocess.run([str(building.binary("kubectl")), "agentctl", "-C",
                                   str(project), "diff", "--env", "dev", "--kubeconfig",
                                   str(config)], capture_output=True, text=True, timeout=120,
                                  check=False,
                                  env={**os.environ, "PATH": f"{plugin}:/usr/bin:/bin"})
            assert diff.returncode == 0, diff.stdout + diff.stderr

            # impersonated, the API server denies what is not on its list
            who = f"system:serviceaccount:{home}:{account}"
            sa = kube.as_user(who, "system:serviceaccounts", f"system:serviceaccounts:{home}",
                              "system:authenticated")
            allowed = sa.apply(f"/api/v1/namespaces/{ns}/configmaps/probe", {
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "probe", "namespace": ns}}, manager="agentctl",
                dry_run=True)
            assert allowed.status == 201, allowed.body  # impersonation itself works
            _denied(sa, f"/api/v1/namespaces/{ns}/secrets/probe", {
                "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "probe",
                                                                   "namespace": ns}})
            _denied(sa, f"/apis/batch/v1/namespaces/{ns}/cronjobs/probe", {
                "apiVersion": "batch/v1", "kind": "CronJob",
                "metadata": {"name": "probe", "namespace": ns},
                "spec": {"schedule": "* * * * *", "jobTemplate": {"spec": {"template": {
                    "spec": {"restartPolicy": "Never",
                             "containers": [{"name": "x", "image": "busybox"}]}}}}}})
            _denied(sa, f"/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/roles/probe", {
                "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                "metadata": {"name": "probe", "namespace": ns}, "rules": []})
            _denied(sa, "/apis/rbac.authorization.k8s.io/v1/clusterroles/probe", {
                "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                "metadata": {"name": "probe"}, "rules": []})
            _denied(sa, "/api/v1/namespaces/default/configmaps/probe", {
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "probe", "namespace": "default"}})
            _denied(sa, f"/api/v1/namespaces/{home}/configmaps/probe", {
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "probe", "namespace": home}})
            assert sa.get("/apis/apiextensions.k8s.io/v1/customresourcedefinitions/"
                          "widgets.example.com").status == 403  # only the Agent CRD
            for verb, what in (("create", "pods"), ("get", "secrets"), ("delete", "namespaces"),
                               ("create", "pods/exec")):
                can = _kubectl(cluster, "auth", "can-i", verb, what, "-n", ns, f"--as={who}")
                assert can.stdout.strip() == "no", (verb, what, can.stdout, can.stderr)

            # the CronJob's pod is admitted under restricted Pod Security in its namespace
            run = _kubectl(cluster, "-n", home, "create", "job", "--from",
                           f"cronjob/{account}", "run-now")
            assert run.returncode == 0, run.stderr
            wait_for(lambda: bool(kube.get(f"/api/v1/namespaces/{home}/pods?labelSelector="
                                           "job-name=run-now").body["items"]),
                     "the CronJob's pod to be admitted")
            privileged = kube.create(f"/api/v1/namespaces/{home}/pods", {
                "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "privileged"},
                "spec": {"containers": [{"name": "x", "image": "busybox",
                                         "securityContext": {"privileged": True}}]}})
            assert privileged.status == 403, privileged.body  # the namespace enforces it
            assert "restricted" in privileged.message
        finally:
            kube.delete(f"/api/v1/namespaces/{home}")
            for kind in ("clusterroles", "clusterrolebindings"):
                kube.delete(f"/apis/rbac.authorization.k8s.io/v1/{kind}/{account}")


def test_the_token_is_not_in_the_report(cluster: Cluster, tmp_path: Path) -> None:
    """The CI mode's token Secret: applied, it gets a token; the identity file and a report
    of reconcile carry none of it (base64 or not)."""
    kube = cluster.kube
    home = f"t-agentctl-{uuid.uuid4().hex[:6]}"
    with reconciles.dev_project(cluster, tmp_path) as (project, _):
        try:
            written = CliRunner().invoke(app, ["init", str(project), "--ci", "dev",
                                               "--namespace", home])
            assert written.exit_code == 0, written.output
            manifest = project / "deploy" / "dev" / "reconciler.yaml"
            applied = _kubectl(cluster, "apply", "--server-side", "-f", str(manifest))
            assert applied.returncode == 0, applied.stderr
            path = f"/api/v1/namespaces/{home}/secrets/agentctl-example-fleet-dev-token"
            wait_for(lambda: bool((kube.get(path).body.get("data") or {}).get("token")),
                     "the token controller to fill the Secret")
            token = base64.b64decode(kube.get(path).body["data"]["token"]).decode()
            config = tmp_path / "ci.kubeconfig"
            admin = yaml.safe_load(cluster.kubeconfig.read_text())
            name = admin["current-context"]
            context = next(c for c in admin["contexts"] if c["name"] == name)["context"]
            server = next(c for c in admin["clusters"]
                          if c["name"] == context["cluster"])["cluster"]
            config.write_text(yaml.safe_dump({
                "apiVersion": "v1", "kind": "Config", "current-context": name,
                "clusters": [{"name": "sandbox", "cluster": server}],
                "users": [{"name": "ci", "user": {"token": token}}],
                "contexts": [{"name": name, "context": {"cluster": "sandbox", "user": "ci"}}]}))
            result = reconciles.invoke(cluster, project, "--env", "dev", "--no-wait", "-v",
                                       kubeconfig=config)
            assert result.exit_code == 0, result.output
            for text in (result.output, manifest.read_text()):
                assert token not in text
                assert base64.b64encode(token.encode()).decode()[:40] not in text
        finally:
            kube.delete(f"/api/v1/namespaces/{home}")
