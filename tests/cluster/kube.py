"""A thin raw-JSON Kubernetes client for tests, on the `kubernetes` 37 client's
`ApiClient.param_serialize` + `call_api`: every call returns the HTTP status and the decoded
body, so a test asserts on exactly what the server said (409 bodies, 422 causes, 403 reasons)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from agentctl.sandbox import running

T = TypeVar("T")
Obj = dict[str, Any]

APPLY = "application/apply-patch+yaml"


@dataclass
class Response:
    status: int
    body: Any

    @property
    def message(self) -> str:
        return str(self.body.get("message", "")) if isinstance(self.body, dict) else ""


@dataclass
class Kube:
    """A thin raw-JSON client: every call returns the status code and the decoded body."""

    api: Any  # kubernetes.client.ApiClient
    headers: dict[str, str] = field(default_factory=dict)

    def request(self, method: str, path: str, body: Any = None,
                query: list[tuple[str, str]] | None = None,
                content_type: str = "application/json") -> Response:
        headers = {"Accept": "application/json", "Content-Type": content_type, **self.headers}
        _, url, hdrs, _, _ = self.api.param_serialize(
            method=method, resource_path=path, query_params=query or [],
            header_params=headers, auth_settings=["BearerToken"])
        # The client serialises dict bodies to JSON itself, for `application/json` and for
        # `+yaml` types alike (JSON is YAML).
        resp = self.api.call_api(method, url, header_params=hdrs, body=body,
                                 _request_timeout=30)
        resp.read()
        data = json.loads(resp.data) if resp.data else None
        return Response(resp.status, data)

    def get(self, path: str) -> Response:
        return self.request("GET", path)

    def create(self, path: str, body: Obj) -> Response:
        return self.request("POST", path, body)

    def delete(self, path: str) -> Response:
        return self.request("DELETE", path)

    def apply(self, path: str, body: Obj, manager: str = "agentctl-test", force: bool = False,
              dry_run: bool = False) -> Response:
        """Server-side apply `body` to the object at `path`."""
        query = [("fieldManager", manager)]
        if force:
            query.append(("force", "true"))
        if dry_run:
            query.append(("dryRun", "All"))
        return self.request("PATCH", path, body, query, content_type=APPLY)

    def as_user(self, user: str, *groups: str) -> Kube:
        """The same client, impersonating `user` (and `groups`)."""
        headers = {**self.headers, "Impersonate-User": user}
        if groups:
            headers["Impersonate-Group"] = ",".join(groups)
        return Kube(self.api, headers)


def wait_for(check: Callable[[], T | None], what: str, timeout: float = 60.0,
             interval: float = 0.2) -> T:
    """Poll `check` until it returns something truthy; fail naming `what` after `timeout`.

    The deadline is a liveness bound, not a performance assertion."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r})")




def poll(fetch: Callable[[], T], ok: Callable[[T], bool], what: str,
         timeout: float = 60.0) -> T:
    """Fetch until `ok(value)`; return that value, or fail naming `what` after `timeout`."""
    found: list[T] = []

    def check() -> bool:
        value = fetch()
        found[:] = [value]
        return ok(value)

    try:
        wait_for(check, what, timeout)
    except AssertionError as err:
        raise AssertionError(f"{err}; last value: {found[-1] if found else None!r}") from None
    return found[-1]


@dataclass(frozen=True)
class Cluster:
    """What the session `cluster` fixture yields."""

    sandbox: running.Sandbox
    kubeconfig: Path
    api: Any  # kubernetes.client.ApiClient
    kube: Kube
