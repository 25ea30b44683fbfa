"""reconcile with kinds the example fleet does not render, from small test blueprints: a
CustomResourceDefinition (applied in the first stage and waited for until Established, kept by
the prune guard when its agent goes), a CRD and an object of its kind in one run, and a Secret
(no value of it in any output)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agentctl.cli import app

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

_CRD_AND_OBJECT = _CRD + """\
---
apiVersion: reconcile.example.com/v1
kind: {{ agent.metadata.name | capitalize }}
metadata:
  name: {{ agent.metadata.name }}
spec:
  size: 3
"""
"""The CRD of the kind named after the agent, and an object of that kind."""

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
             agents: tuple[str, ...], image: str = "ghcr.io/example/x:1",
             capability: str = "") -> Path:
    for folder in ("agents", "environments", f"blueprints/{blueprint}"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    (root / "agentctl.yaml").write_text(
        "apiVersion: agentctl.inferensys.com/v1alpha1\nkind: Project\n"
        f"metadata: {{name: {blueprint}}}\n"
        + (f"spec:\n  scopes: {{{capability}: Namespaced}}\n" if capability else ""))
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
        + (f"  capabilities: [{capability}]\n" if capability else "")
        + f"  cluster: {{context: {projects.context_of(cluster.kubeconfig)}}}\n")
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


def test_a_crd_and_objects_of_its_kind_are_created_in_one_run(
        cluster: Cluster, tmp_path: Path, namespace: str, kube: Kube,
        crd_names: list[str]) -> None:
    """The preflight takes a kind a rendered CRD defines as served; diff and --dry-run show
    its objects created (nothing of a kind that does not exist yet can be dry-run); the run
    creates the CRD, waits until it is Established, then creates the object."""
    crd_names.append("gadgets.reconcile.example.com")
    project = _project(tmp_path / "p", cluster, namespace, "gadgets", _CRD_AND_OBJECT,
                       ("gadget",), capability="reconcile.example.com/v1/Gadget")
    gadget = f"/apis/reconcile.example.com/v1/namespaces/{namespace}/gadgets/gadget"
    diff = CliRunner().invoke(app, ["-C", str(project), "diff", "--kubeconfig",
                                    str(cluster.kubeconfig), "-o", "json", "--env", "dev"])
    assert diff.exit_code == 1, (diff.output, diff.exception)
    planned = reconciles.objects(json.loads(diff.stdout))
    assert planned["Gadget/gadget"]["outcome"] == "created", planned["Gadget/gadget"]
    assert "not dry-run" in planned["Gadget/gadget"]["reason"], planned["Gadget/gadget"]
    assert planned["CustomResourceDefinition/gadgets.reconcile.example.com"]["outcome"] \
        == "created"

    code, document = reconciles.report(cluster, project, "--env", "dev", "--no-wait",
                                       "--dry-run")
    assert code == 0, document
    assert reconciles.objects(document)["Gadget/gadget"]["outcome"] == "created", document
    assert kube.get(f"{CRDS}/gadgets.reconcile.example.com").status == 404  # only dry-run

    code, document = reconciles.report(cluster, project, "--env", "dev", "--no-wait")
    assert code == 0, document
    created = reconciles.objects(document)["Gadget/gadget"]
    assert created["outcome"] == "created", document
    assert created["reason"] == "", created  # the plan's "not dry-run" no longer holds
    live = kube.get(gadget)
    assert live.status == 200, live.body
    assert live.body["spec"] == {"size": 3}
    assert live.body["metadata"]["labels"]["applyset.kubernetes.io/part-of"]

    code, document = reconciles.report(cluster, project, "--env", "dev", "--no-wait")
    assert code == 0, document
    summary = document["environments"][0]["summary"]
    assert summary["unchanged"] == 3, summary  # the parent, the CRD and the Gadget
    assert summary["created"] + summary["configured"] == 0, summary


def test_objects_of_a_kind_whose_crd_is_refused_are_not_sent(
        cluster: Cluster, tmp_path: Path, namespace: str, kube: Kube,
        crd_names: list[str]) -> None:
    """The API server refuses the CRD (no storage version): its objects fail naming it, with
    --dry-run and without, and nothing of either exists afterwards."""
    # a CRD of its own: the other test's may still be terminating
    crd_names.append("widgets.reconcile.example.com")
    refused = _CRD_AND_OBJECT.replace("storage: true", "storage: false")
    project = _project(tmp_path / "p", cluster, namespace, "widgets", refused, ("widget",),
                       capability="reconcile.example.com/v1/Widget")
    for args in (("--dry-run",), ()):
        code, document = reconciles.report(cluster, project, "--env", "dev", "--no-wait",
                                           *args)
        assert code == 4, document
        found = reconciles.objects(document)
        assert found["CustomResourceDefinition/widgets.reconcile.example.com"]["outcome"] \
            == "failed", found
        widget = found["Widget/widget"]
        assert widget["outcome"] == "failed", widget
        assert "CustomResourceDefinition/widgets.reconcile.example.com" in widget["reason"], \
            widget
        assert "not applied" in widget["reason"], widget
    assert kube.get(f"{CRDS}/widgets.reconcile.example.com").status == 404


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
