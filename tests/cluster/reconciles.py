"""Helpers of the reconcile tests: running `agentctl reconcile` through the CLI (in-process and
as a separate process), the example project's dev environment in a fresh namespace, and the
API server's own count of writes (its `apiserver_request_total` metric)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from typer.testing import CliRunner, Result

from agentctl.cli import app

from . import projects
from .kube import Cluster

ROOT = Path(__file__).resolve().parents[2]
WRITES = frozenset({"POST", "PUT", "PATCH", "APPLY", "DELETE", "DELETECOLLECTION"})
MANAGED = frozenset({"configmaps", "services", "serviceaccounts", "deployments",
                     "statefulsets", "persistentvolumeclaims", "poddisruptionbudgets",
                     "horizontalpodautoscalers", "networkpolicies"})
"""The resources the example fleet's members (and its ApplySet parent) are."""


def invoke(cluster: Cluster, project: Path, *args: str, kubeconfig: Path | None = None) -> Result:
    """`agentctl -C project reconcile --kubeconfig … args`; never a traceback."""
    result = CliRunner().invoke(app, ["-C", str(project), "reconcile", "--kubeconfig",
                                      str(kubeconfig or cluster.kubeconfig), *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        result.output, result.exception)
    assert result.exit_code != 70, result.output  # an internal error is a bug
    return result


def report(cluster: Cluster, project: Path, *args: str) -> tuple[int, dict[str, Any]]:
    """The exit code and the JSON report (an empty document when the run printed none)."""
    result = invoke(cluster, project, "-o", "json", *args)
    start = result.stdout.find("{")
    return result.exit_code, json.loads(result.stdout[start:]) if start >= 0 else {}


def objects(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f"{o['kind']}/{o['name']}": o for env in document.get("environments", [])
            for o in env["objects"]}


def spawn(cluster: Cluster, project: Path, *args: str) -> subprocess.Popen[str]:
    """`agentctl reconcile` as a process of its own (to run two at once, or to kill one)."""
    return subprocess.Popen(
        [sys.executable, "-m", "agentctl", "-C", str(project), "reconcile", "--kubeconfig",
         str(cluster.kubeconfig), *args], cwd=ROOT, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, env={**os.environ, "NO_COLOR": "1"})


def metric_writes(cluster: Cluster) -> dict[str, float]:
    """Writes the API server has served to the managed resources, by `verb resource` (its
    own metrics, so requests of any client count)."""
    _, url, headers, _, _ = cluster.api.param_serialize(
        method="GET", resource_path="/metrics", header_params={"Accept": "text/plain"},
        auth_settings=["BearerToken"])
    answer = cluster.api.call_api("GET", url, header_params=headers, _request_timeout=30)
    answer.read()
    found: dict[str, float] = {}
    for line in answer.data.decode().splitlines():
        if not line.startswith("apiserver_request_total{"):
            continue
        labels = dict(part.split("=", 1) for part in
                      line[line.index("{") + 1:line.rindex("}")].split(",") if "=" in part)
        labels = {k: v.strip('"') for k, v in labels.items()}
        if labels.get("verb") in WRITES and labels.get("resource") in MANAGED \
                and not labels.get("subresource"):
            key = f"{labels['verb']} {labels['resource']}"
            found[key] = found.get(key, 0.0) + float(line.rsplit(" ", 1)[1])
    return found


@contextmanager
def dev_project(cluster: Cluster, tmp_path: Path,
                agents: tuple[str, ...] | None = None) -> Iterator[tuple[Path, str]]:
    """The example project's dev environment in a fresh namespace (created here, deleted
    afterwards), not yet applied."""
    project = tmp_path / "project"
    [namespace] = projects.example_copy(project, cluster.kubeconfig, agents=agents).values()
    kube = cluster.kube
    created = kube.create("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                                 "metadata": {"name": namespace}})
    assert created.status == 201, created.body
    try:
        yield project, namespace
    finally:
        kube.delete(f"/api/v1/namespaces/{namespace}")
