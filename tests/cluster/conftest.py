"""Fixtures for tests against the sandbox cluster (real etcd, kube-apiserver, controller-manager
and scheduler; kwok fake nodes).

- `cluster` (session): one cluster for the whole run, in a temporary root removed at the end.
  It never builds (the test command runs `python -m agentctl.sandbox.building` first, and a cold
  build would outlast the per-test timeout). When the cluster is unavailable the test fails
  under `CI=true`, with the build or start log in the failure, and is skipped otherwise.
- `namespace` (function): a fresh namespace with its default ServiceAccount, deleted in
  `finally`.
- `kube` (function): the cluster's `Kube` (tests/cluster/kube.py), raw JSON requests that return
  status codes and bodies exactly as the server sends them.

Mark cluster tests with `pytest.mark.cluster`.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any, NoReturn

import pytest
from kubernetes import config as k8s_config

from agentctl.errors import ToolingError
from agentctl.sandbox import building, running

from .kube import Cluster, Kube, wait_for


def _unavailable(reason: str, details: str) -> NoReturn:
    if os.environ.get("CI") == "true":
        pytest.fail(f"the sandbox cluster is unavailable: {reason}\n{details}", pytrace=False)
    pytest.skip(f"the sandbox cluster is unavailable: {reason}")


def _build_log() -> str:
    path = building.cache_root() / "build.log"
    if not path.is_file():
        return ""
    lines = path.read_text(errors="replace").splitlines()
    return f"==> {path} (last 60 lines) <==\n" + "\n".join(lines[-60:])


@pytest.fixture(scope="session")
def binaries() -> dict[str, Path]:
    """The cluster binaries, already built (or from `$AGENTCTL_SANDBOX_BIN`)."""
    failure: tuple[str, str] | None = None
    try:
        missing = building.missing()
        if missing:
            raise ToolingError(f"{', '.join(missing)} not built: run `python -m "
                               f"agentctl.sandbox.building` (or set {building.BIN_ENV})")
        found = building.ensure()
        building.stage_root()
    except ToolingError as err:
        failure = (str(err), _build_log())
    if failure:  # outside `except`, so the report is not a chained traceback
        _unavailable(*failure)
    return found


@pytest.fixture(scope="session")
def cluster(binaries: dict[str, Path]) -> Iterator[Cluster]:
    progress: list[str] = []
    with ExitStack() as stack:
        failure: tuple[str, str] | None = None
        try:
            sandbox = stack.enter_context(running.running(binaries=binaries,
                                                          log=progress.append))
        except ToolingError as err:  # StartError carries the component logs
            failure = (str(err), "\n".join([*progress, getattr(err, "logs", "")]))
        if failure:
            _unavailable(*failure)
        new_client: Any = k8s_config.new_client_from_config  # the client is untyped
        api = new_client(config_file=str(sandbox.kubeconfig))
        stack.callback(api.close)
        yield Cluster(sandbox, sandbox.kubeconfig, api, Kube(api))


def _namespace_name(test_name: str) -> str:
    stem = re.sub(r"[^a-z0-9-]+", "-", test_name.lower()).strip("-")[:40].strip("-")
    return f"t-{stem}-{uuid.uuid4().hex[:6]}"


@pytest.fixture
def namespace(cluster: Cluster, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace (with its default ServiceAccount), deleted afterwards."""
    name = _namespace_name(request.node.name)
    kube = cluster.kube
    created = kube.create("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                                 "metadata": {"name": name}})
    assert created.status == 201, created.body
    try:
        wait_for(lambda: kube.get(f"/api/v1/namespaces/{name}/serviceaccounts/default")
                 .status == 200, f"the default ServiceAccount in {name}")
        yield name
    finally:
        kube.delete(f"/api/v1/namespaces/{name}")


@pytest.fixture
def kube(cluster: Cluster) -> Kube:
    return cluster.kube
