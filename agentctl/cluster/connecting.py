"""Connecting to a cluster the way kubectl does, the cluster's identity, and one raw-JSON request
function for everything else.

- Configuration: `--kubeconfig`, else `$KUBECONFIG` (a list of files, merged as kubectl merges
  them), else `~/.kube/config`; the context is `--context`, else the environment's
  `spec.cluster.context`, else the kubeconfig's current context. With no kubeconfig at all,
  inside a pod, the pod's ServiceAccount (in-cluster config).
- Requests go through the official client's `param_serialize` + `call_api` and come back as
  bytes decoded with `json.loads`: no generated model classes on any path. urllib3's `Retry`
  (bounded, exponential backoff with jitter) retries 429 (honouring `Retry-After`), 5xx and
  connection errors; POST is never retried.
- Unreachable, TLS failures and a refused configuration are `ClusterError` (exit 3) with the
  reason; a status code is the caller's to judge (`Response.fail` turns 401, 403 and anything
  unexpected into a ClusterError with the server's message).

A `Client` is safe to share between threads (urllib3's pool is); it counts what it sends.
"""

from __future__ import annotations

import json
import os
import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError
from urllib3.util.retry import Retry

from agentctl.errors import ClusterError, Problem

JSON = "application/json"
APPLY_PATCH = "application/apply-patch+yaml"
_IN_CLUSTER_TOKEN = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")
_TIMEOUT = (10.0, 120.0)
"""Seconds to connect and to wait for an answer (a large LIST page takes a while)."""


def retries() -> Retry:
    """The retry policy of every request: bounded, jittered exponential backoff."""
    return Retry(total=5, connect=2, read=2, status=4, other=1,
                 backoff_factor=0.2, backoff_max=3.0, backoff_jitter=0.2,
                 status_forcelist=frozenset({429, 500, 502, 503, 504}),
                 allowed_methods=frozenset({"GET", "HEAD", "PUT", "PATCH", "DELETE"}),
                 respect_retry_after_header=True, raise_on_status=False,
                 raise_on_redirect=False)


@dataclass(frozen=True)
class Target:
    """Where to connect, as the user said it."""

    kubeconfig: Path | None = None
    context: str | None = None
    """--context: wins over the environment's."""
    env_context: str | None = None
    """The environment's `spec.cluster.context`."""


@dataclass
class Response:
    status: int
    body: Any
    warnings: list[str] = field(default_factory=list)
    date: str = ""
    """The server's `Date` header: its clock, to one second (leases are judged by it)."""

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def message(self) -> str:
        if isinstance(self.body, dict) and isinstance(self.body.get("message"), str):
            return str(self.body["message"])
        return f"HTTP {self.status}"

    @property
    def reason(self) -> str:
        return str(self.body.get("reason", "")) if isinstance(self.body, dict) else ""

    def fail(self, what: str, server: str) -> NoReturn:
        """Raise the ClusterError for an answer the run cannot go on without."""
        if self.status == 401:
            hint = "unauthorized: the credentials were refused"
        elif self.status == 403:
            hint = "forbidden"
        else:
            hint = f"HTTP {self.status}"
        raise ClusterError([Problem(message=f"{what}: {hint} by {server}: {self.message}")])


class Client:
    """Raw JSON requests to one cluster, shareable between threads."""

    def __init__(self, api: Any, server: str, context: str) -> None:
        self._api = api  # kubernetes.client.ApiClient
        self.server = server
        self.context = context
        self._lock = threading.Lock()
        self.sent: Counter[str] = Counter()
        """Requests sent, by `METHOD purpose` (`LIST`, `GET`, `PATCH dryRun`, …)."""
        self.warnings: set[str] = set()
        """`Warning` headers the server sent (deprecations, unknown fields)."""

    def request(self, method: str, path: str, *, query: list[tuple[str, str]] | None = None,
                body: Any = None, content_type: str = JSON, accept: str = JSON,
                purpose: str = "") -> Response:
        """Send one request; return the status and the decoded body (any status). Raise
        ClusterError when the server cannot be reached."""
        headers = {"Accept": accept, "Content-Type": content_type}
        try:
            _, url, hdrs, _, _ = self._api.param_serialize(
                method=method, resource_path=path, query_params=query or [],
                header_params=headers, auth_settings=["BearerToken"])
            # The client serialises a body to JSON itself, for `+yaml` types too (JSON is YAML).
            with self._lock:
                self.sent[purpose or method] += 1
            raw = self._api.call_api(method, url, header_params=hdrs, body=body,
                                     _request_timeout=_TIMEOUT)
            data = raw.read()
        except (HTTPError, ApiException, OSError) as err:  # ApiException: TLS failures
            raise ClusterError([Problem(message=(
                f"cannot reach {self.server} (context {self.context}): {_reason(err)}"))]) from err
        warnings: list[str] = raw.response.headers.getlist("Warning")
        if warnings:
            with self._lock:
                self.warnings.update(_warning_text(w) for w in warnings)
        try:
            decoded = json.loads(data) if data else None
        except ValueError:
            decoded = data.decode("utf-8", "replace")[:200]
        return Response(raw.status, decoded, warnings, str(raw.response.headers.get("Date") or ""))

    def close(self) -> None:
        self._api.close()


def _reason(err: BaseException) -> str:
    """The innermost reason of a connection failure, in one line."""
    reason: Any = getattr(err, "reason", None) or err
    while getattr(reason, "reason", None) is not None and reason.reason is not reason:
        reason = reason.reason
    text = str(reason).strip().splitlines()
    return text[-1] if text else type(err).__name__


def _warning_text(header: str) -> str:
    """`299 - "message"` → `message`."""
    parts = header.split(" ", 2)
    return parts[2].strip().strip('"') if len(parts) == 3 else header


def _kubeconfig_files(target: Target) -> str | None:
    if target.kubeconfig is not None:
        return str(target.kubeconfig)
    listed = os.environ.get("KUBECONFIG")
    if listed:
        return listed
    default = Path.home() / ".kube" / "config"
    return str(default) if default.is_file() else None


def connect(target: Target, pool: int = 16) -> Client:
    """A client for the cluster the target names (kubectl's rules; in-cluster when no
    kubeconfig exists and the process runs in a pod). Sends nothing."""
    from kubernetes import config as untyped
    from kubernetes.client import ApiClient, Configuration
    from kubernetes.config import ConfigException

    kube_config: Any = untyped.kube_config  # the client has no type hints
    incluster_config: Any = untyped.incluster_config

    configuration = Configuration()
    files = _kubeconfig_files(target)
    context = target.context or target.env_context
    try:
        if files is None and os.environ.get("KUBERNETES_SERVICE_HOST") \
                and _IN_CLUSTER_TOKEN.is_file():
            incluster_config.load_incluster_config(client_configuration=configuration)
            name = "in-cluster"
        elif files is None:
            raise ClusterError("no kubeconfig: set --kubeconfig or KUBECONFIG, or create "
                               "~/.kube/config (in a pod the ServiceAccount is used)")
        else:
            if target.kubeconfig is not None and not target.kubeconfig.is_file():
                raise ClusterError(f"kubeconfig {target.kubeconfig} does not exist")
            contexts, current = kube_config.list_kube_config_contexts(config_file=files)
            names = [c.get("name") for c in contexts]
            if context is not None and context not in names:
                source = "--context" if target.context else "the environment's cluster.context"
                raise ClusterError(f"context {context!r} ({source}) is not in the kubeconfig "
                                   f"({files}); it has: {', '.join(map(str, names)) or 'none'}")
            name = context or str((current or {}).get("name", ""))
            kube_config.load_kube_config(config_file=files, context=name,
                                         client_configuration=configuration,
                                         persist_config=False)
    except ConfigException as err:
        raise ClusterError(f"kubeconfig: {err}") from err
    configuration.retries = retries()
    configuration.connection_pool_maxsize = pool
    return Client(ApiClient(configuration), configuration.host, name)


def identity(client: Client) -> str:
    """The kube-system namespace's UID: the cluster's identity."""
    response = client.request("GET", "/api/v1/namespaces/kube-system", purpose="GET identity")
    if not response.ok:
        response.fail("reading the cluster's identity (namespace kube-system)", client.server)
    return str(response.body["metadata"]["uid"])


def check_identity(client: Client, env: str, expected: str | None) -> None:
    """Refuse a cluster whose kube-system UID is not the environment's `cluster.uid`, before
    any other request. Without one declared, nothing is read (credentials limited to the
    environment's namespaces need not read kube-system)."""
    if expected is None:
        return
    uid = identity(client)
    if uid != expected:
        raise ClusterError([Problem(message=(
            f"{client.server} (context {client.context}) is not environment {env}'s cluster: "
            f"its kube-system UID is {uid}, the environment declares cluster.uid {expected}"))])
