"""What a cluster needs to run `agentctl reconcile` for real, as plain objects: a namespace of
its own, a ServiceAccount there, its least-privilege RBAC (`permissions.py`), and either a
CronJob (the repository delivered by a pinned git-sync init container) or, for CI, a token
Secret to build a kubeconfig from; and the GitHub Actions workflow of the CI mode.

Invariants: the reconciler's namespace is never one the environment deploys into (whoever can
create pods in a namespace can run as any of its ServiceAccounts); every container runs under
the restricted Pod Security level with a read-only root; the CronJob never runs two jobs at
once (`concurrencyPolicy: Forbid`, and reconcile's own Lease besides), gives up on a start
missed by more than `startingDeadlineSeconds`, and kills a job after `activeDeadlineSeconds`
(reconcile's SIGTERM handling releases the Lease). Pure: no I/O.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from typing import Any

import yaml

from agentctl import __version__
from agentctl.errors import InputError, Problem
from agentctl.manifests import MANAGED_BY
from agentctl.permissions import Access, objects

NAMESPACE = "agentctl-system"
IMAGE = f"ghcr.io/inferensys/agentctl:{__version__}"
"""The agentctl image the Dockerfile builds (push it to a registry of yours: --image)."""
GIT_SYNC_IMAGE = "registry.k8s.io/git-sync/git-sync:v4.4.0"
SCHEDULE = "*/5 * * * *"
TIMEOUT_SECONDS = 600
"""reconcile's --timeout in the CronJob; the job's deadline leaves room for the rest."""
_UID = 65532
_TMP = "/tmp"  # noqa: S108 - inside the container: an emptyDir of its own


def _restricted() -> dict[str, Any]:
    return {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
            "runAsNonRoot": True, "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"}}


class _Dumper(yaml.SafeDumper):
    """Block style, but a list of scalars on one line (`verbs: [get, list]`); no aliases."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _list(dumper: yaml.SafeDumper, value: list[Any]) -> yaml.Node:
    flow = all(not isinstance(item, (dict, list)) for item in value)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", value, flow_style=flow)


_Dumper.add_representer(list, _list)


@dataclass(frozen=True)
class Runner:
    """How reconcile runs for one environment."""

    access: Access
    project: str
    namespace: str = NAMESPACE
    """The reconciler's own namespace."""
    repo: str = ""
    """The git repository git-sync clones (the CronJob mode)."""
    ref: str = "main"
    path: str = ""
    """The project's folder inside the repository ("" for its top)."""
    schedule: str = SCHEDULE
    image: str = IMAGE
    git_sync_image: str = GIT_SYNC_IMAGE
    git_secret: str = ""
    """A Secret in the reconciler's namespace with `username` and `password` (a token) for a
    private repository over HTTPS."""

    @property
    def name(self) -> str:
        return f"agentctl-{self.project}-{self.access.env}"


def check(runner: Runner) -> None:
    """InputError when the reconciler's namespace is one the environment deploys into."""
    if runner.namespace in {runner.access.namespace, *runner.access.namespaces}:
        raise InputError([Problem(field="--namespace", message=(
            f"{runner.namespace} is a namespace environment {runner.access.env} deploys into; "
            "the reconciler needs one of its own (anyone who can create pods there could run "
            "as its ServiceAccount)"))])


def _labels(runner: Runner) -> dict[str, str]:
    return {"app.kubernetes.io/name": "agentctl", "app.kubernetes.io/instance": runner.name,
            "app.kubernetes.io/managed-by": MANAGED_BY,
            "agent.inferensys.com/environment": runner.access.env}


def _meta(runner: Runner, namespaced: bool = True) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": runner.name}
    if namespaced:
        meta["namespace"] = runner.namespace
    meta["labels"] = _labels(runner)
    return meta


def identity(runner: Runner) -> list[dict[str, Any]]:
    """The namespace (restricted Pod Security enforced), the ServiceAccount and its RBAC."""
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {
        "name": runner.namespace, "labels": {
            "app.kubernetes.io/managed-by": MANAGED_BY,
            "pod-security.kubernetes.io/enforce": "restricted",
            "pod-security.kubernetes.io/warn": "restricted"}}}
    account = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(runner),
               "automountServiceAccountToken": False}
    return [namespace, account, *objects(runner.access, runner.name, runner.namespace)]


def _git_sync(runner: Runner) -> dict[str, Any]:
    args = [f"--repo={runner.repo}", f"--ref={runner.ref}", "--root=/repo", "--link=current",
            "--one-time", "--depth=1"]
    container: dict[str, Any] = {
        "name": "git-sync", "image": runner.git_sync_image, "args": args,
        "env": [{"name": "HOME", "value": _TMP}],
        "securityContext": _restricted(),
        "resources": {"requests": {"cpu": "50m", "memory": "64Mi"},
                      "limits": {"memory": "256Mi"}},
        "volumeMounts": [{"name": "repo", "mountPath": "/repo"},
                         {"name": "tmp", "mountPath": _TMP}]}
    if runner.git_secret:
        container["env"] += [
            {"name": "GITSYNC_USERNAME", "valueFrom": {"secretKeyRef": {
                "name": runner.git_secret, "key": "username"}}},
            {"name": "GITSYNC_PASSWORD", "valueFrom": {"secretKeyRef": {
                "name": runner.git_secret, "key": "password"}}}]
    return container


def cronjob(runner: Runner) -> dict[str, Any]:
    """The CronJob that runs reconcile on `schedule`, in-cluster as the ServiceAccount."""
    project = "/repo/current" + (f"/{runner.path.strip('/')}" if runner.path.strip("/") else "")
    args = ["-C", project, "reconcile", "--env", runner.access.env,
            "--timeout", f"{TIMEOUT_SECONDS}s"]
    if runner.access.install_crd:
        args.append("--install-crd")
    pod = {
        "serviceAccountName": runner.name,
        "automountServiceAccountToken": True,
        "restartPolicy": "Never",
        "enableServiceLinks": False,
        "securityContext": {"runAsNonRoot": True, "runAsUser": _UID, "runAsGroup": _UID,
                            "fsGroup": _UID, "seccompProfile": {"type": "RuntimeDefault"}},
        "initContainers": [_git_sync(runner)],
        "containers": [{
            "name": "reconcile", "image": runner.image, "args": args,
            "env": [{"name": "HOME", "value": _TMP}, {"name": "NO_COLOR", "value": "1"}],
            "securityContext": _restricted(),
            "resources": {"requests": {"cpu": "100m", "memory": "256Mi"},
                          "limits": {"memory": "1Gi"}},
            "volumeMounts": [{"name": "repo", "mountPath": "/repo", "readOnly": True},
                             {"name": "tmp", "mountPath": _TMP}]}],
        "volumes": [{"name": "repo", "emptyDir": {"sizeLimit": "1Gi"}},
                    {"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}}]}
    return {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": _meta(runner), "spec": {
        "schedule": runner.schedule, "timeZone": "Etc/UTC",
        "concurrencyPolicy": "Forbid", "startingDeadlineSeconds": 120,
        "successfulJobsHistoryLimit": 3, "failedJobsHistoryLimit": 3,
        "jobTemplate": {"metadata": {"labels": _labels(runner)}, "spec": {
            "backoffLimit": 0, "activeDeadlineSeconds": TIMEOUT_SECONDS + 300,
            "ttlSecondsAfterFinished": 86400,
            "template": {"metadata": {"labels": _labels(runner)}, "spec": pod}}}}}


def token_secret(runner: Runner) -> dict[str, Any]:
    """A long-lived token of the ServiceAccount, for the kubeconfig CI reconciles with."""
    meta = {**_meta(runner), "name": f"{runner.name}-token"}
    meta["annotations"] = {"kubernetes.io/service-account.name": runner.name}
    return {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/service-account-token",
            "metadata": meta}


def document(runner: Runner, mode: str) -> str:
    """deploy/<env>/reconciler.yaml: `mode` "cronjob" or "ci"."""
    check(runner)
    docs = identity(runner)
    env = runner.access.env
    if mode == "cronjob":
        docs.append(cronjob(runner))
        how = (f"as a CronJob in namespace {runner.namespace} ({runner.schedule}, UTC), on "
               f"{runner.repo} at {runner.ref}")
    else:
        docs.append(token_secret(runner))
        how = ("from CI, with a kubeconfig built from the token in Secret "
               f"{runner.namespace}/{runner.name}-token")
    kinds = ", ".join(f"{v}/{k}" for v, k in sorted(runner.access.kinds))
    text = (f"agentctl reconcile of environment {env}, {how}. Written by `agentctl init --{mode} "
            f"{env}`: write it again after changing the environment's capabilities or policy. "
            f"The ServiceAccount may manage these kinds and no other: {kinds}.")
    head = textwrap.fill(text, width=98, initial_indent="# ", subsequent_indent="# ",
                         break_on_hyphens=False)
    head += (f"\n# Apply it with: kubectl apply --server-side -f deploy/{env}/reconciler.yaml\n")
    body = yaml.dump_all(docs, Dumper=_Dumper, sort_keys=False, width=100,
                         default_flow_style=False)
    return head + body
