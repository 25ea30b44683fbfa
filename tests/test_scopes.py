"""Whether a rendered kind is namespaced comes from data: the built-in kinds of the targeted
Kubernetes version (generated from an API server's discovery), the custom kinds agentctl's
blueprints render, and the scopes a project declares in agentctl.yaml `spec.scopes`. Only
namespaced objects get the agent's namespace; an object of unknown scope, or a cluster-scoped one
with a namespace, is a problem."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml
from pydantic import ValidationError
from typer.testing import CliRunner

from agentctl.cli import app
from agentctl.manifests import Manifest, known_scopes, scope_of
from agentctl.model.agent import Agent
from agentctl.model.environment import Environment, Project
from agentctl.render.finishing import finish
from tests.conftest import REPO, load_script

DATA = REPO / "agentctl" / "scopes.json"


def _generator() -> ModuleType:
    return load_script("gen_scopes")


# -- the data and scope_of ---------------------------------------------------------------------

@pytest.mark.parametrize(("api_version", "kind", "namespaced"), [
    ("v1", "Namespace", False),
    ("v1", "Node", False),
    ("v1", "PersistentVolume", False),
    ("v1", "Pod", True),
    ("v1", "ConfigMap", True),
    ("apps/v1", "Deployment", True),
    ("autoscaling/v1", "HorizontalPodAutoscaler", True),
    ("autoscaling/v2", "HorizontalPodAutoscaler", True),
    ("rbac.authorization.k8s.io/v1", "ClusterRole", False),
    ("rbac.authorization.k8s.io/v1", "Role", True),
    ("networking.k8s.io/v1", "IngressClass", False),
    # Cluster-scoped kinds the fixed list used to miss (they got a namespace added):
    ("storage.k8s.io/v1", "CSIDriver", False),
    ("storage.k8s.io/v1", "CSINode", False),
    ("storage.k8s.io/v1", "VolumeAttachment", False),
    ("flowcontrol.apiserver.k8s.io/v1", "FlowSchema", False),
    ("flowcontrol.apiserver.k8s.io/v1", "PriorityLevelConfiguration", False),
    ("certificates.k8s.io/v1", "CertificateSigningRequest", False),
    ("apiregistration.k8s.io/v1", "APIService", False),
    ("authorization.k8s.io/v1", "SubjectAccessReview", False),
    ("authorization.k8s.io/v1", "LocalSubjectAccessReview", True),
])
def test_builtin_kinds(api_version: str, kind: str, namespaced: bool) -> None:
    assert scope_of(api_version, kind) is namespaced


@pytest.mark.parametrize(("api_version", "kind", "namespaced"), [
    ("monitoring.coreos.com/v1", "ServiceMonitor", True),
    ("monitoring.coreos.com/v1", "PodMonitor", True),
    ("external-secrets.io/v1", "ExternalSecret", True),
    ("external-secrets.io/v1", "SecretStore", True),
    ("external-secrets.io/v1", "ClusterSecretStore", False),
    ("external-secrets.io/v1beta1", "ClusterSecretStore", False),
    ("keda.sh/v1alpha1", "ScaledObject", True),
    ("gateway.networking.k8s.io/v1", "HTTPRoute", True),
    ("gateway.networking.k8s.io/v1", "GatewayClass", False),
    ("opentelemetry.io/v1alpha1", "Instrumentation", True),
    ("cilium.io/v2", "CiliumNetworkPolicy", True),
    ("cilium.io/v2", "CiliumClusterwideNetworkPolicy", False),
    ("agent.inferensys.com/v1alpha1", "Agent", True),
])
def test_custom_kinds_agentctl_renders(api_version: str, kind: str, namespaced: bool) -> None:
    assert scope_of(api_version, kind) is namespaced


def test_every_kind_of_the_old_fixed_list_is_still_cluster_scoped() -> None:
    old = {"Namespace", "CustomResourceDefinition", "PriorityClass", "StorageClass",
           "ClusterRole", "ClusterRoleBinding", "PersistentVolume", "ClusterSecretStore",
           "IngressClass", "GatewayClass", "ValidatingWebhookConfiguration",
           "MutatingWebhookConfiguration", "ValidatingAdmissionPolicy",
           "ValidatingAdmissionPolicyBinding", "RuntimeClass", "Node"}
    known = {**known_scopes()["builtin"], **known_scopes()["custom"]}
    found = {key.rpartition("/")[2]: value for key, value in known.items()
             if key.rpartition("/")[2] in old}
    assert found == dict.fromkeys(old, False)


def test_unknown_and_declared_kinds() -> None:
    assert scope_of("cert-manager.io/v1", "ClusterIssuer") is None
    assert scope_of("example.com/v1", "Widget") is None
    declared = {"cert-manager.io/v1/ClusterIssuer": "Cluster",
                "example.com/v1/Widget": "Namespaced"}
    assert scope_of("cert-manager.io/v1", "ClusterIssuer", declared) is False
    assert scope_of("example.com/v1", "Widget", declared) is True
    assert scope_of("example.com/v2beta1", "Widget", declared) is True  # any version
    assert scope_of("other.example.com/v1", "Widget", declared) is None  # not another group
    assert scope_of("v1", "Widget", declared) is None  # nor the core group
    # Built-in kinds are fixed by the API server.
    assert scope_of("v1", "Namespace", {"v1/Namespace": "Namespaced"}) is False


def test_data_file_is_generated_form() -> None:
    text = DATA.read_text(encoding="utf-8")
    data = json.loads(text)
    assert list(data) == ["kubernetesVersion", "builtin", "custom"]
    assert re.fullmatch(r"v1\.37\.\d+", data["kubernetesVersion"])
    assert text == _generator().render(data["kubernetesVersion"], data["builtin"],
                                       data["custom"])
    key = re.compile(r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*)?"
                     r"/[A-Z][A-Za-z0-9]*$")
    for section in ("builtin", "custom"):
        assert data[section], section
        for name, value in data[section].items():
            assert key.match(name), name
            assert isinstance(value, bool), name
    assert not set(data["builtin"]) & set(data["custom"])


def test_discovery_is_read_into_group_kinds() -> None:
    """The generator on a small discovery document: subresources, CRD kinds and aggregated
    groups are left out; every version of a group counts."""
    bodies: dict[str, Any] = {
        "/version": {"gitVersion": "v1.37.0"},
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions": {"items": [
            {"spec": {"group": "example.com", "names": {"kind": "Widget"}}}]},
        "/apis/apiregistration.k8s.io/v1/apiservices": {"items": [
            {"spec": {"group": "metrics.k8s.io", "version": "v1beta1",
                      "service": {"name": "metrics-server"}}},
            {"spec": {"group": "apps", "version": "v1"}}]},
        "/api": {"versions": ["v1"]},
        "/api/v1": {"resources": [
            {"name": "pods", "kind": "Pod", "namespaced": True},
            {"name": "pods/status", "kind": "Pod", "namespaced": True},
            {"name": "namespaces", "kind": "Namespace", "namespaced": False}]},
        "/apis": {"groups": [
            {"name": "apps", "versions": [{"groupVersion": "apps/v1", "version": "v1"}]},
            {"name": "storage.k8s.io", "versions": [
                {"groupVersion": "storage.k8s.io/v1", "version": "v1"},
                {"groupVersion": "storage.k8s.io/v1beta1", "version": "v1beta1"}]},
            {"name": "example.com", "versions": [
                {"groupVersion": "example.com/v1", "version": "v1"}]},
            {"name": "metrics.k8s.io", "versions": [
                {"groupVersion": "metrics.k8s.io/v1beta1", "version": "v1beta1"}]}]},
        "/apis/apps/v1": {"resources": [
            {"name": "deployments", "kind": "Deployment", "namespaced": True},
            {"name": "deployments/scale", "kind": "Scale", "namespaced": True}]},
        "/apis/storage.k8s.io/v1": {"resources": [
            {"name": "csidrivers", "kind": "CSIDriver", "namespaced": False}]},
        "/apis/storage.k8s.io/v1beta1": {"resources": [
            {"name": "volumeattributesclasses", "kind": "VolumeAttributesClass",
             "namespaced": False}]},
        "/apis/example.com/v1": {"resources": [
            {"name": "widgets", "kind": "Widget", "namespaced": True}]},
    }
    version, scopes = _generator().discover(bodies.__getitem__)
    assert version == "v1.37.0"
    assert scopes == {"/Namespace": False, "/Pod": True, "apps/Deployment": True,
                      "storage.k8s.io/CSIDriver": False,
                      "storage.k8s.io/VolumeAttributesClass": False}
    assert list(scopes) == sorted(scopes)


# -- the Project field -------------------------------------------------------------------------

def _project(scopes: Any) -> Project:
    return Project.model_validate({"spec": {"scopes": scopes}})


def test_project_declares_scopes() -> None:
    project = _project({"cert-manager.io/v1/ClusterIssuer": "Cluster",
                        "example.com/v1/Widget": "Namespaced",
                        "v1/Namespace": "Cluster"})  # agreeing with the API server is harmless
    assert project.spec.scopes["cert-manager.io/v1/ClusterIssuer"] == "Cluster"
    assert Project().spec.scopes == {}


@pytest.mark.parametrize(("scopes", "needle"), [
    ({"ClusterIssuer": "Cluster"}, "scopes"),
    ({"cert-manager.io/ClusterIssuer": "Cluster"}, "scopes"),
    ({"cert-manager.io/v1/clusterIssuer": "Cluster"}, "scopes"),
    ({"cert-manager.io/v1/ClusterIssuer": "cluster"}, "Cluster"),
    ({"cert-manager.io/v1/ClusterIssuer": "Namespace"}, "Namespaced"),
    ({"v1/Namespace": "Namespaced"}, "built-in Kubernetes kind whose scope is Cluster"),
    ({"example.com/v1/Widget": "Namespaced", "example.com/v2/Widget": "Cluster"},
     "scope does not depend on the version"),
])
def test_project_refuses_bad_scopes(scopes: dict[str, str], needle: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(needle)):
        _project(scopes)


# -- finish ------------------------------------------------------------------------------------

def _agent() -> Agent:
    return Agent.model_validate({
        "apiVersion": "agent.inferensys.com/v1alpha1", "kind": "Agent",
        "metadata": {"name": "issuer", "namespace": "agents-dev"},
        "spec": {"runtime": {"image": "ghcr.io/example/issuer:1.0.0"},
                 "model": {"id": "gpt-4o-mini", "provider": "openai"}}})


def _environment() -> Environment:
    return Environment.model_validate({
        "apiVersion": "agentctl.inferensys.com/v1alpha1", "kind": "Environment",
        "metadata": {"name": "dev"}, "spec": {"namespace": "agents-dev"}})


def _manifest(api_version: str, kind: str, name: str, namespace: str | None = None) -> Manifest:
    meta: dict[str, Any] = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    return Manifest({"apiVersion": api_version, "kind": kind, "metadata": meta}, "issuer",
                    "objects.yaml.j2", "agents/issuer.yaml")


def _finish(manifests: list[Manifest], scopes: dict[str, str] | None = None) -> list[str]:
    problems = finish(_agent(), _environment(), "applyset-x-v1", manifests, [], scopes=scopes)
    return [str(p) for p in problems]


def test_finish_files_a_declared_cluster_kind_under_cluster() -> None:
    issuer = _manifest("cert-manager.io/v1", "ClusterIssuer", "letsencrypt")
    widget = _manifest("example.com/v1", "Widget", "w")
    config = _manifest("v1", "ConfigMap", "c")
    problems = _finish([issuer, widget, config], {"cert-manager.io/v1/ClusterIssuer": "Cluster",
                                                  "example.com/v1/Widget": "Namespaced"})
    assert problems == []
    assert "namespace" not in issuer.body["metadata"]
    assert str(issuer.ref) == "ClusterIssuer/letsencrypt"  # so written under _cluster/
    assert issuer.ref.namespace == ""
    assert widget.body["metadata"]["namespace"] == "agents-dev"
    assert widget.ref.namespace == config.ref.namespace == "agents-dev"
    for manifest in (issuer, widget, config):  # still labelled and digested
        assert manifest.body["metadata"]["labels"]["agent.inferensys.com/agent"] == "issuer"
        assert manifest.body["metadata"]["annotations"]["agent.inferensys.com/digest"]


def test_finish_recognises_builtin_cluster_kinds_the_old_list_missed() -> None:
    driver = _manifest("storage.k8s.io/v1", "CSIDriver", "csi.example.com")
    schema = _manifest("flowcontrol.apiserver.k8s.io/v1", "FlowSchema", "agents")
    store = _manifest("external-secrets.io/v1", "ClusterSecretStore", "vault")
    assert _finish([driver, schema, store]) == []
    for manifest in (driver, schema, store):
        assert "namespace" not in manifest.body["metadata"]
        assert manifest.ref.namespace == ""


def test_finish_refuses_a_kind_of_unknown_scope() -> None:
    issuer = _manifest("cert-manager.io/v1", "ClusterIssuer", "letsencrypt")
    problems = _finish([issuer, _manifest("v1", "ConfigMap", "c")])
    assert len(problems) == 1
    assert problems[0].startswith("ClusterIssuer/letsencrypt: kind cert-manager.io/v1 "
                                  "ClusterIssuer has unknown scope: declare it in agentctl.yaml "
                                  "spec.scopes")
    assert "cert-manager.io/v1/ClusterIssuer: Cluster or Namespaced" in problems[0]
    assert "agents/issuer.yaml" in problems[0]
    # A declaration of another kind does not help.
    assert len(_finish([_manifest("cert-manager.io/v1", "ClusterIssuer", "x")],
                       {"cert-manager.io/v1/Issuer": "Namespaced"})) == 1


def test_finish_refuses_a_namespace_on_a_cluster_scoped_kind() -> None:
    problems = _finish([_manifest("rbac.authorization.k8s.io/v1", "ClusterRole", "reader",
                                  namespace="agents-dev")])
    assert problems == ["ClusterRole/agents-dev/reader: metadata.namespace: ClusterRole is "
                        "cluster-scoped and cannot have a namespace (objects.yaml.j2)"]


# -- through the CLI ---------------------------------------------------------------------------

_AGENT = """\
apiVersion: agent.inferensys.com/v1alpha1
kind: Agent
metadata: {name: issuer}
spec:
  blueprint: issuer
  runtime: {image: ghcr.io/example/issuer:1.0.0}
  model: {id: gpt-4o-mini, provider: openai}
"""

_BLUEPRINT = """\
name: issuer
description: A cert-manager ClusterIssuer and a ConfigMap.
handles: [runtime, model]
"""

_ISSUER = """\
apiVersion: cert-manager.io/v1
kind: ClusterIssuer
metadata:
  name: {{ agent.metadata.name }}
spec:
  selfSigned: {}
"""

_CSI_DRIVER = """\
apiVersion: storage.k8s.io/v1
kind: CSIDriver
metadata:
  name: {{ agent.metadata.name ~ ".csi.example.com" }}
spec:
  attachRequired: false
"""

_CONFIG_MAP = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ agent.metadata.name }}
data:
  image: {{ agent.spec.runtime.image }}
"""

_ENVIRONMENT = """\
apiVersion: agentctl.inferensys.com/v1alpha1
kind: Environment
metadata: {name: dev}
spec:
  namespace: agents-dev
"""


def _issuer_project(tmp_path: Path, write: Callable[[Path, str], Path], project: str,
                    first: str = _ISSUER) -> Path:
    root = tmp_path / "project"
    write(root / "agentctl.yaml", project)
    write(root / "agents" / "issuer.yaml", _AGENT)
    write(root / "blueprints" / "issuer" / "blueprint.yaml", _BLUEPRINT)
    write(root / "blueprints" / "issuer" / "objects.yaml.j2", f"{first}---\n{_CONFIG_MAP}")
    write(root / "environments" / "dev.yaml", _ENVIRONMENT)
    return root


def test_builtin_cluster_kind_is_written_under_cluster(
        runner: CliRunner, tmp_path: Path, write: Callable[[Path, str], Path]) -> None:
    root = _issuer_project(tmp_path, write, "apiVersion: agentctl.inferensys.com/v1alpha1\n"
                                            "kind: Project\nmetadata: {name: certs}\n",
                           first=_CSI_DRIVER)
    result = runner.invoke(app, ["-C", str(root), "render", "-e", "dev",
                                 "--out", str(root / "out")])
    assert result.exit_code == 0, result.output
    driver = yaml.safe_load(
        (root / "out" / "dev" / "_cluster" / "csidriver-issuer.csi.example.com.yaml").read_text())
    assert "namespace" not in driver["metadata"]
    assert (root / "out" / "dev" / "agents-dev" / "configmap-issuer.yaml").is_file()


def test_undeclared_custom_kind_is_refused_naming_it(
        runner: CliRunner, tmp_path: Path, write: Callable[[Path, str], Path]) -> None:
    root = _issuer_project(tmp_path, write, "apiVersion: agentctl.inferensys.com/v1alpha1\n"
                                            "kind: Project\nmetadata: {name: certs}\n")
    result = runner.invoke(app, ["-C", str(root), "render", "-e", "dev",
                                 "--out", str(root / "out")])
    assert result.exit_code == 2, result.output
    assert ("ClusterIssuer/issuer: kind cert-manager.io/v1 ClusterIssuer has unknown scope"
            in result.output)
    assert not (root / "out").exists()


def test_project_declared_scope_reaches_rendered_output(
        runner: CliRunner, tmp_path: Path, write: Callable[[Path, str], Path]) -> None:
    root = _issuer_project(tmp_path, write, """\
apiVersion: agentctl.inferensys.com/v1alpha1
kind: Project
metadata: {name: certs}
spec:
  scopes:
    cert-manager.io/v1/ClusterIssuer: Cluster
""")
    result = runner.invoke(app, ["-C", str(root), "render", "-e", "dev",
                                 "--out", str(root / "out")])
    assert result.exit_code == 0, result.output
    issuer = yaml.safe_load((root / "out" / "dev" / "_cluster" / "clusterissuer-issuer.yaml")
                            .read_text())
    assert "namespace" not in issuer["metadata"]
    config = yaml.safe_load((root / "out" / "dev" / "agents-dev" / "configmap-issuer.yaml")
                            .read_text())
    assert config["metadata"]["namespace"] == "agents-dev"


def test_project_scopes_errors_point_at_agentctl_yaml(
        runner: CliRunner, tmp_path: Path, write: Callable[[Path, str], Path]) -> None:
    root = _issuer_project(tmp_path, write, """\
apiVersion: agentctl.inferensys.com/v1alpha1
kind: Project
metadata: {name: certs}
spec:
  scopes:
    cert-manager.io/v1/ClusterIssuer: cluster
""")
    result = runner.invoke(app, ["-C", str(root), "render", "-e", "dev"])
    assert result.exit_code == 2, result.output
    assert "agentctl.yaml:6:" in result.output
