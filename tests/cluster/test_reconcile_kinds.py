"""reconcile with kinds the example fleet does not render, from small test blueprints: a
CustomResourceDefinition (applied in the first stage and waited for until Established, kept by
the prune guard when its agent goes), and a Secret (no value of it in any output)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from . import projects, reconciles
from .kube import Cluster, Kube

pytestmark = pytest.mark.cluster

_CRD = """\
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: {{ agent.metadata.name ~ "s.reconcile.example.com" }}
spec:
  group: reconcile.example.com
  scope: Namespaced
  names:
    plural: {{ agent.metadata.name ~ "s" }}
    singular: {{ agent.metadata.name }}
    kind: {{ agent.metadata.name | capitalize }}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        x-kubernetes-preserve-unknown-fields: true
"""

_SECRET = """\
apiVersion: v1
kind: Secret
metadata:
  name: {{ agent.metadata.name ~ "-token" }}
type: Opaque
stringData:
  token: {{ agent.spec.runtime.image | replace("ghcr.io/example/vault:", "") }}
"""


def _project(root: Path, cluster: Cluster, namespace: str, blueprint: str, template: str,
             agents: tuple[str, ...], image: str = "ghcr.io/example/x:1") -> Path:
    for folder in ("agents", "environments", f"blueprints/{blueprint}"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    (root / "agentctl.yaml").write_text(
        "apiVersion: agentctl.inferensys.com/v1alpha1\nkind: Project\n"
        f"metadata: {{name: {blueprint}}}\n")
    (root / f"blueprints/{blueprint}/blueprint.yaml").write_text(
        f"name: {blueprint}\ndescription: test\nhandles: [runtime, model]\n")
    (root / f"blueprints/{blueprint}/main.yaml.j2").write_text(template)
    for path in (root / "agents").glob("*.yaml"):
        path.unlink()
    for name in agents:
        (root / "agents" / f"{name}.yaml").write_text(
            "apiVersion: agent.inferensys.com/v1alpha1\nkind: Agent\n"
            f"metadata: {{name: {name}}}\nspec:\n  blueprint: {blueprint}\n"
            f"  runtime: {{image: '{image}'}}\n  model: {{id: m, provider: openai}}\n")
    (root / "environments/dev.yaml").write_text(
        "apiVersion: agentctl.inferensys.com/v1alpha1\nkind: Environment\n"
        f"metadata: {{name: dev}}\nspec:\n  namespace: {namespace}\n"
        f"  cluster: {{context: {projects.context_of(cluster.kubeconfig)}}}\n")
    projects.render_out(root)
    return root


CRDS = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"


@pytest.fixture
def crd_names(kube: Kube) -> Iterator[list[str]]:
    names: list[str] = []
    try:
        yield names
    finally:
        for name in names:
            kube.delete(f"{CRDS}/{name}")


def test_crds_come_first_are_established_and_are_never_pruned(
        cluster: Cluster, tmp_path: Path, namespace: str, kube: Kube,
        crd_names: list[str]) -> None:
    agents = ("alpha", "beta")
    crd_names += [f"{a}s.reconcile.example.com" for a in agents]
    project = _project(tmp_path / "p", cluster, namespace, "crds", _CRD, agents)
    code, document = reconciles.report(cluster, project, "--env", "dev", "--no-wait")
    assert code == 0, document
    for name in crd_names:
        conditions = {c["type"]: c["status"] for c in
                      kube.get(f"{CRDS}/{name}").body["status"]["conditions"]}
        assert conditions["Established"] == "True", (name, conditions)  # before it returned
    # the kind is served at once: an object of it can be created
    made = kube.create(f"/apis/reconcile.example.com/v1/namespaces/{namespace}/alphas",
                       {"apiVersion": "reconcile.example.com/v1", "kind": "Alpha",
                        "metadata": {"name": "one"}})
    assert made.status == 201, made.body

    _project(tmp_path / "p", cluster, namespace, "crds", _CRD, ("alpha",))
    code, document = reconciles.report(cluster, project, "--env", "dev", "--no-wait")
    assert code == 0, document
    beta = reconciles.objects(document)["CustomResourceDefinition/betas.reconcile.example.com"]
    assert beta["outcome"] == "skipped", beta
    assert "spec.pruneKinds" in beta["reason"], beta
    live = kube.get(f"{CRDS}/betas.reconcile.example.com")
    assert live.status == 200
    assert "applyset.kubernetes.io/part-of" not in live.body["metadata"].get("labels", {})
    code, document = reconciles.report(cluster, project, "--env", "dev", "--no-wait")
    assert code == 0, document
    assert document["environments"][0]["summary"]["skipped"] == 0


def test_no_secret_value_reaches_the_report(cluster: Cluster, tmp_path: Path, namespace: str,
                                           kube: Kube) -> None:
    first, second = "first-canary-8d1c", "second-canary-3b7e"
    project = _project(tmp_path / "p", cluster, namespace, "vault", _SECRET, ("keeper",),
                       image=f"ghcr.io/example/vault:{first}")
    outputs = [reconciles.invoke(cluster, project, "--env", "dev", "--no-wait", *fmt)
               for fmt in ((), ("-o", "json"), ("-o", "yaml"), ("-v",))]
    # someone else edits the value, and the agent's value changes too
    path = f"/api/v1/namespaces/{namespace}/secrets/keeper-token"
    live = kube.get(path).body
    live["data"]["token"] = base64.b64encode(second.encode()).decode()
    assert kube.request("PUT", path, live, query=[("fieldManager", "kubectl-edit")]).status \
        == 200
    _project(tmp_path / "p", cluster, namespace, "vault", _SECRET, ("keeper",),
             image=f"ghcr.io/example/vault:{second}x")
    for args in ((), ("-o", "json"), ("--dry-run", "-v"), ("--force-conflicts",)):
        outputs.append(reconciles.invoke(cluster, project, "--env", "dev", "--no-wait", *args))
    assert [r.exit_code for r in outputs] == [0, 0, 0, 0, 0, 0, 0, 0], [
        r.output for r in outputs]
    forbidden = [v for value in (first, second, f"{second}x")
                 for v in (value, base64.b64encode(value.encode()).decode())]
    for result in outputs:
        for value in forbidden:
            assert value not in result.output, (value, result.output)
    assert f"configured Secret/{namespace}/keeper-token" in outputs[4].stdout
    document = json.loads(outputs[5].stdout)  # the run after it: nothing left to change
    assert reconciles.objects(document)["Secret/keeper-token"]["outcome"] == "unchanged"
    assert base64.b64decode(kube.get(path).body["data"]["token"]).decode() == f"{second}x"
