"""agentctl/scopes.json against a real API server: its built-in section is exactly what the
sandbox's kube-apiserver (the targeted Kubernetes version) serves, so the file cannot drift, and
its custom section agrees with the published CRDs of the capabilities."""

from __future__ import annotations

import json
from types import ModuleType
from typing import Any

import pytest

from agentctl.manifests import scope_of
from tests.conftest import REPO, load_script

from . import crds
from .kube import Kube

pytestmark = pytest.mark.cluster

DATA = REPO / "agentctl" / "scopes.json"


def _generator() -> ModuleType:
    return load_script("gen_scopes")


def test_builtin_scopes_match_the_api_servers_discovery(kube: Kube) -> None:
    def get(path: str) -> Any:
        response = kube.get(path)
        assert response.status == 200, (path, response.body)
        return response.body

    version, live = _generator().discover(get)
    data = json.loads(DATA.read_text(encoding="utf-8"))
    assert data["kubernetesVersion"] == version
    committed: dict[str, bool] = data["builtin"]
    missing = sorted(set(live) - set(committed))
    extra = sorted(set(committed) - set(live))
    wrong = sorted(k for k in set(live) & set(committed) if live[k] != committed[k])
    assert (missing, extra, wrong) == ([], [], []), (
        "agentctl/scopes.json differs from discovery; run `python scripts/gen_scopes.py` against "
        f"the sandbox. Not in the file: {missing}; not served: {extra}; other scope: {wrong}")
    assert not set(data["custom"]) & set(live), "a custom kind is built in"


@pytest.mark.parametrize("capability", crds.known())
def test_capability_kinds_have_their_crds_scope(capability: str) -> None:
    crd = crds.crd_for(capability)
    group, version, kind = capability.split("/")
    assert scope_of(f"{group}/{version}", kind) is (crd["spec"]["scope"] == "Namespaced")
