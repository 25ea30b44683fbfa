"""The CustomResourceDefinitions behind the capabilities an Environment can declare (AGENT_SPEC §4),
taken from the projects' own published manifests, for installing on the sandbox cluster.

Inputs: the pinned Go modules in `PUBLISHED` (module, version, path of the CRD file inside it).
A missing CRD is fetched once with `GOTOOLCHAIN=local go mod download -json <module>@<version>`
(the Go client's configured defaults; no registry is named here), and its one file is copied to
`$XDG_CACHE_HOME/agentctl/crds/<module>@<version>/<file>` (default `~/.cache`); later runs read
the copy and never call `go`.

Outputs: `crd_for(capability)` -> the CRD body for a capability `group/version/Kind`, checked to
define that kind and to serve that version; `STAND_INS` lists the capabilities no registry package
ships a CRD for, each replaced by a minimal structural CRD (`stand_in`).

Stand-ins: `opentelemetry.io/v1alpha1/Instrumentation`: the OpenTelemetry Operator's Go module is
not served by the module proxy reachable here (it refuses the module outright), and no other
registry package ships its CRD. The stand-in defines the kind with an open schema
(`x-kubernetes-preserve-unknown-fields`), so it proves the API exists, not that an object is valid.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

Obj = dict[str, Any]


class CrdUnavailable(Exception):
    """A published CRD could not be fetched (no Go, or the module download failed)."""


@dataclass(frozen=True)
class Published:
    """A CRD file inside a published Go module."""

    module: str
    version: str
    path: str

    @property
    def cached(self) -> Path:
        return cache_root() / f"{self.module}@{self.version}" / Path(self.path).name


PUBLISHED: dict[str, Published] = {
    "gateway.networking.k8s.io/v1/HTTPRoute": Published(
        "sigs.k8s.io/gateway-api", "v1.6.3",
        "config/crd/standard/gateway.networking.k8s.io_httproutes.yaml"),
    "monitoring.coreos.com/v1/ServiceMonitor": Published(
        "github.com/prometheus-operator/prometheus-operator", "v0.85.0",
        "example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml"),
    "monitoring.coreos.com/v1/PodMonitor": Published(
        "github.com/prometheus-operator/prometheus-operator", "v0.85.0",
        "example/prometheus-operator-crd/monitoring.coreos.com_podmonitors.yaml"),
    "monitoring.coreos.com/v1/PrometheusRule": Published(
        "github.com/prometheus-operator/prometheus-operator", "v0.85.0",
        "example/prometheus-operator-crd/monitoring.coreos.com_prometheusrules.yaml"),
    "keda.sh/v1alpha1/ScaledObject": Published(
        "github.com/kedacore/keda/v2", "v2.21.0", "config/crd/bases/keda.sh_scaledobjects.yaml"),
    "external-secrets.io/v1/ExternalSecret": Published(
        "github.com/external-secrets/external-secrets", "v0.16.2",
        "config/crds/bases/external-secrets.io_externalsecrets.yaml"),
    "cilium.io/v2/CiliumNetworkPolicy": Published(
        "github.com/cilium/cilium", "v1.20.2",
        "pkg/k8s/apis/cilium.io/client/crds/v2/ciliumnetworkpolicies.yaml"),
}

STAND_INS: dict[str, str] = {
    "opentelemetry.io/v1alpha1/Instrumentation": "instrumentations",
}


def cache_root() -> Path:
    """`$XDG_CACHE_HOME/agentctl/crds` (default `~/.cache/agentctl/crds`)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "agentctl" / "crds"


def _module_dir(source: Published) -> Path:
    go = shutil.which("go")
    if go is None:
        raise CrdUnavailable(f"`go` is not on PATH: it fetches {source.module}@{source.version} "
                             "for its published CRD")
    env = {**os.environ, "GOTOOLCHAIN": "local"}
    proc = subprocess.run([go, "mod", "download", "-json", f"{source.module}@{source.version}"],
                          capture_output=True, text=True, check=False, env=env, timeout=600,
                          cwd=tempfile.gettempdir())
    try:
        info = json.loads(proc.stdout)
    except json.JSONDecodeError:
        info = {}
    if proc.returncode != 0 or info.get("Error") or not info.get("Dir"):
        said = info.get("Error") or proc.stderr.strip() or proc.stdout.strip()
        raise CrdUnavailable(f"go mod download {source.module}@{source.version} failed: {said}")
    return Path(info["Dir"])


def fetch(source: Published) -> Path:
    """The cached copy of the CRD file, downloading the module the first time."""
    target = source.cached
    if target.is_file():
        return target
    found = _module_dir(source) / source.path
    if not found.is_file():
        raise CrdUnavailable(f"{source.module}@{source.version} has no {source.path}")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("wb", dir=target.parent, delete=False) as tmp:
        tmp.write(found.read_bytes())
    os.replace(tmp.name, target)  # whole or absent, even with two runs at once
    return target


def _split(capability: str) -> tuple[str, str, str]:
    group, version, kind = capability.split("/")
    return group, version, kind


def _check(crd: Obj, capability: str, origin: str) -> Obj:
    group, version, kind = _split(capability)
    spec = crd.get("spec") or {}
    served = {v["name"] for v in spec.get("versions", []) if v.get("served")}
    if (crd.get("kind") != "CustomResourceDefinition" or spec.get("group") != group
            or spec.get("names", {}).get("kind") != kind or version not in served):
        raise CrdUnavailable(f"{origin} does not define {capability} (group "
                             f"{spec.get('group')!r}, kind {spec.get('names', {}).get('kind')!r}, "
                             f"served versions {sorted(served)})")
    return crd


def stand_in(capability: str) -> Obj:
    """A minimal structural CRD for `capability`: namespaced, open schema, status subresource."""
    group, version, kind = _split(capability)
    plural = STAND_INS[capability]
    return {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}",
                     "annotations": {"agentctl.test/stand-in": "true"}},
        "spec": {
            "group": group, "scope": "Namespaced",
            "names": {"kind": kind, "listKind": f"{kind}List", "plural": plural,
                      "singular": kind.lower()},
            "versions": [{
                "name": version, "served": True, "storage": True,
                "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "properties": {"spec": {"type": "object",
                                            "x-kubernetes-preserve-unknown-fields": True},
                                   "status": {"type": "object",
                                              "x-kubernetes-preserve-unknown-fields": True}},
                }},
            }],
        },
    }


def crd_for(capability: str) -> Obj:
    """The CRD that serves `capability` (`group/version/Kind`): published, else the stand-in."""
    if capability in STAND_INS:
        return _check(stand_in(capability), capability, "the stand-in")
    source = PUBLISHED.get(capability)
    if source is None:
        raise CrdUnavailable(f"no published CRD or stand-in is known for {capability}")
    path = fetch(source)
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    if len(docs) != 1:
        raise CrdUnavailable(f"{source.path} in {source.module}@{source.version} holds "
                             f"{len(docs)} documents, expected one CRD")
    return _check(docs[0], capability, f"{source.module}@{source.version} {source.path}")


def known() -> list[str]:
    """Every capability this module can install, sorted."""
    return sorted([*PUBLISHED, *STAND_INS])
