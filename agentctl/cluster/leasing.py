"""The environment's lease: one `coordination.k8s.io/v1` Lease beside the ApplySet parent (same
name, same namespace), so two reconciles of one environment never run at once.

- Taken with a create, or an update carrying the lease's resourceVersion (a precondition: of two
  runs racing for one lease exactly one wins, the other re-reads it and sees a live holder).
- Expiry is judged by the API server's clock: a lease is free when it has no holder, or when
  the `Date` of the response that returned it is past its renewTime plus leaseDurationSeconds.
  renewTime is written from the server's clock too (the last `Date` seen plus the monotonic
  time since), so the local clock is never compared with the server's.
- Renewed every third of its duration by a thread owned by the `Lease`; a renewal that finds
  another holder, or cannot reach the server before the lease would expire, marks it lost, and
  `check` raises from then on (the run stops before its next stage and never prunes).
- `confirm` renews synchronously before the prune: the prune runs only while the lease is ours.
- `release` stops the renewal and empties the holder (again with a precondition); the CLI calls
  it on every exit path, SIGTERM included. A run killed with SIGKILL leaves the lease to expire,
  and the next run takes it over then.

A live holder is `LeaseHeldError` (exit 5) naming it. With `dry_run`, the lease is read and its
take-over is sent with `dryRun=All`: a held lease still exits 5, nothing is written.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

from agentctl.cluster.connecting import Client, Response
from agentctl.errors import AgentctlError, ClusterError, LeaseHeldError, Problem
from agentctl.manifests import MANAGED_BY

DURATION = 30
"""Seconds a lease lives without renewal."""
_JOIN = 150.0
"""Seconds to wait for a renewal in flight when releasing (a request's own timeout is less)."""
_PATH = "/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"


def holder_identity() -> str:
    """This run: host, process and a random part (two runs never share it)."""
    return f"agentctl@{socket.gethostname()}/pid-{os.getpid()}/{uuid.uuid4().hex[:8]}"


def _micro(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


class Lease:
    """One run's hold on an environment's lease."""

    def __init__(self, client: Client, namespace: str, name: str, env: str,
                 duration: int = DURATION, dry_run: bool = False,
                 holder: str | None = None) -> None:
        self.client = client
        self.namespace, self.name, self.env = namespace, name, env
        self.duration = duration
        self.dry_run = dry_run
        self.holder = holder or holder_identity()
        self._lock = threading.Lock()
        self._renewing = threading.Lock()
        """One renewal at a time (the thread's and `confirm`'s share one resourceVersion)."""
        self._body: dict[str, Any] | None = None
        self._clock: tuple[datetime, float] | None = None
        self._lost: AgentctlError | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.took_over = ""
        """The holder whose expired lease this run took over (empty when it was free)."""

    # -- the server's clock ---------------------------------------------------------------
    def _saw(self, response: Response) -> datetime | None:
        try:
            moment = parsedate_to_datetime(response.date) if response.date else None
        except (TypeError, ValueError):
            moment = None
        if moment is not None:
            with self._lock:
                self._clock = (moment, time.monotonic())
        return moment

    def server_now(self) -> datetime:
        """The API server's time: its last `Date` plus the monotonic time since."""
        with self._lock:
            clock = self._clock
        if clock is None:
            raise ClusterError(f"{self.client.server} sends no Date header: the lease's expiry "
                               "cannot be judged by the server's clock")
        return clock[0] + timedelta(seconds=time.monotonic() - clock[1])

    # -- requests --------------------------------------------------------------------------
    @property
    def _collection(self) -> str:
        return _PATH.format(namespace=self.namespace)

    def _query(self) -> list[tuple[str, str]]:
        return [("fieldManager", MANAGED_BY)] + ([("dryRun", "All")] if self.dry_run else [])

    def _get(self) -> Response:
        response = self.client.request("GET", f"{self._collection}/{self.name}",
                                       purpose="GET lease")
        self._saw(response)
        return response

    def _spec(self, previous: dict[str, Any], holder: str | None) -> dict[str, Any]:
        now = _micro(self.server_now())
        spec = dict(previous)
        if holder is None:
            spec.pop("holderIdentity", None)
        else:
            if previous.get("holderIdentity") != holder:
                spec["acquireTime"] = now
                spec["leaseTransitions"] = int(previous.get("leaseTransitions", 0)) + (
                    1 if previous else 0)
            spec["holderIdentity"] = holder
        spec["leaseDurationSeconds"] = self.duration
        spec["renewTime"] = now
        return spec

    def _put(self, body: dict[str, Any], spec: dict[str, Any], purpose: str) -> Response:
        updated = {**body, "spec": spec}
        response = self.client.request("PUT", f"{self._collection}/{self.name}",
                                       query=self._query(), body=updated, purpose=purpose)
        self._saw(response)
        return response

    # -- the protocol ----------------------------------------------------------------------
    def acquire(self) -> None:
        """Take the lease, or raise LeaseHeldError naming its live holder."""
        for _ in range(4):
            response = self._get()
            if response.status == 404:
                new = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                       "metadata": {"name": self.name, "namespace": self.namespace,
                                    "labels": {"app.kubernetes.io/managed-by": MANAGED_BY}},
                       "spec": self._spec({}, self.holder)}
                created = self.client.request("POST", self._collection, query=self._query(),
                                              body=new, purpose="POST lease")
                self._saw(created)
                if created.status == 409:
                    continue  # another run created it first: read it again
                if created.status == 404:
                    raise ClusterError([Problem(obj=str(self), message=(
                        f"namespace {self.namespace} does not exist: environment {self.env}'s "
                        "lease and ApplySet parent live there; create it first"))])
                if not created.ok:
                    created.fail(f"taking the lease {self}", self.client.server)
                self._taken(created)
                return
            if not response.ok or not isinstance(response.body, dict):
                response.fail(f"reading the lease {self}", self.client.server)
            body = response.body
            spec = body.get("spec") or {}
            holder = spec.get("holderIdentity")
            if holder and holder != self.holder and not self._expired(spec, response):
                raise LeaseHeldError([Problem(obj=str(self), message=self._held(spec))])
            updated = self._put(body, self._spec(spec, self.holder), "PUT lease")
            if updated.status == 409:
                continue  # taken or renewed meanwhile: judge it again
            if not updated.ok:
                updated.fail(f"taking the lease {self}", self.client.server)
            self.took_over = str(holder or "")
            self._taken(updated)
            return
        raise LeaseHeldError([Problem(obj=str(self), message=(
            "other runs keep taking it at the same time; try again"))])

    def _expired(self, spec: dict[str, Any], response: Response) -> bool:
        renewed = _parse(spec.get("renewTime")) or _parse(spec.get("acquireTime"))
        now = self._saw(response)
        if renewed is None or now is None:
            return renewed is None
        return now > renewed + timedelta(seconds=int(spec.get("leaseDurationSeconds") or 0))

    def _held(self, spec: dict[str, Any]) -> str:
        return (f"environment {self.env} is being reconciled by {spec.get('holderIdentity')} "
                f"(lease renewed at {spec.get('renewTime')}, for "
                f"{spec.get('leaseDurationSeconds')} s by the API server's clock); wait for it "
                "to finish, or for the lease to expire if that run died")

    def _taken(self, response: Response) -> None:
        with self._lock:
            self._body = response.body if isinstance(response.body, dict) else None
        if not self.dry_run:
            self._thread = threading.Thread(target=self._renew_loop, daemon=True,
                                            name=f"lease-{self.name}")
            self._thread.start()

    def renew(self) -> None:
        """Renew once (a precondition on the resourceVersion we hold); raise when lost."""
        self.check()
        if self.dry_run:
            return
        with self._renewing:
            with self._lock:
                body = self._body
            if body is None:
                raise self._lose(f"the lease {self} is not held")
            response = self._put(body, self._spec(body.get("spec") or {}, self.holder),
                                 "PUT lease")
            if response.ok and isinstance(response.body, dict):
                with self._lock:
                    self._body = response.body
                return
        if response.status in (404, 409):
            current = self._get()
            spec = (current.body or {}).get("spec") or {} if current.ok else {}
            other = spec.get("holderIdentity") or "nobody"
            raise self._lose(f"the lease was lost to {other} (it was not renewed in time, or "
                             "was taken over); this run stops and prunes nothing",
                             held=True)
        response.fail(f"renewing the lease {self}", self.client.server)

    def _lose(self, message: str, held: bool = False) -> AgentctlError:
        error: AgentctlError = (LeaseHeldError if held else ClusterError)(
            [Problem(obj=str(self), message=message)])
        with self._lock:
            self._lost = self._lost or error
        return error

    def _renew_loop(self) -> None:
        interval = max(1.0, self.duration / 3)
        last = time.monotonic()
        while not self._stop.wait(interval):
            try:
                self.renew()
                last = time.monotonic()
            except LeaseHeldError:
                return
            except AgentctlError as err:  # unreachable: try again until it would expire
                if time.monotonic() - last > self.duration * 0.8:
                    self._lose(f"the lease could not be renewed in time: {err}")
                    return

    def check(self) -> None:
        """Raise when the lease was lost."""
        with self._lock:
            lost = self._lost
        if lost is not None:
            raise lost

    def confirm(self) -> None:
        """Before the prune: the lease is still ours, renewed just now."""
        self.renew()

    def release(self) -> str:
        """Stop renewing and give the lease up; a warning (or "") for the caller to show."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=_JOIN)
        with self._lock:
            body, lost = self._body, self._lost
        if body is None or lost is not None or self.dry_run:
            return ""
        try:
            response = self._put(body, self._spec(body.get("spec") or {}, None),
                                 "PUT lease release")
        except AgentctlError as err:
            return f"the lease {self} was not released ({err}); it expires by itself"
        if not response.ok and response.status != 409:
            return f"the lease {self} was not released ({response.message}); it expires"
        with self._lock:
            self._body = None
        return ""

    def __str__(self) -> str:
        return f"Lease/{self.namespace}/{self.name}"
