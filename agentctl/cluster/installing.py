"""`reconcile --install-crd`: the Agent CustomResourceDefinition of this agentctl version
(`agentctl schema --crd`) on the cluster, Established and served, before the preflight.

Inputs: a `Client` and the cluster's `Resources`. Steps: one GET of the CRD; when it carries
this version's digest annotation and agentctl's Apply entry still owns every field of it, no
write at all (a run every few minutes stays write-free); else one server-side apply (field
manager `agentctl`, `dryRun=All` with --dry-run), then a GET every half second until it is
Established and discovery serves the Agent kind. The CRD is not a member of any ApplySet (one
CRD serves every environment of the cluster) and is never deleted by agentctl.

Output: the `Resources` to go on with (discovered again when the CRD was written). Failures
are `ClusterError` (exit 3) naming the CRD and the reason.
"""

from __future__ import annotations

import time
from typing import Any

from agentctl import schemas
from agentctl.cluster import discovering, ownership, reading, waiting
from agentctl.cluster.connecting import APPLY_PATCH, Client
from agentctl.cluster.discovering import Resources
from agentctl.errors import ClusterError, Problem
from agentctl.manifests import ANNOTATION_DIGEST, digest

CRD_API = ("apiextensions.k8s.io/v1", "CustomResourceDefinition")
AGENT_API = (f"{schemas.GROUP}/{schemas.VERSION}", "Agent")


def body() -> dict[str, Any]:
    """The Agent CRD as applied: `schemas.crd()` with its digest annotation."""
    crd = schemas.crd()
    crd["metadata"].setdefault("annotations", {})[ANNOTATION_DIGEST] = digest(crd)
    return crd


def install(client: Client, resources: Resources, dry_run: bool = False,
            force_conflicts: bool = False, timeout: float = 60.0) -> Resources:
    """Make the cluster serve this version's Agent CRD; return the resources to use."""
    crd = body()
    name = crd["metadata"]["name"]
    where = f"CustomResourceDefinition/{name}"
    resource = resources.require(*CRD_API)
    current = reading.get(client, resource, "", name)
    annotations = crd["metadata"]["annotations"]
    if current is not None and ownership.unchanged(
            current.get("metadata") or {}, crd, annotations[ANNOTATION_DIGEST]) \
            and waiting.judge("CustomResourceDefinition", current, []).done \
            and resources.get(*AGENT_API) is not None:
        return resources
    query = [("fieldManager", ownership.MANAGER), ("fieldValidation", "Strict")]
    if force_conflicts:
        query.append(("force", "true"))
    if dry_run:
        query.append(("dryRun", "All"))
    answer = client.request("PATCH", resource.path("", name), query=query, body=crd,
                            content_type=APPLY_PATCH,
                            purpose="PATCH dryRun" if dry_run else "PATCH crd")
    if answer.status == 409:
        raise ClusterError([Problem(obj=where, message=(
            f"conflict: {answer.message} (--force-conflicts takes the fields over)"))])
    if not answer.ok:
        answer.fail(f"installing {where}", client.server)
    if dry_run:
        return resources
    deadline = time.monotonic() + timeout
    while True:
        live = reading.get(client, resource, "", name) or {}
        verdict = waiting.judge("CustomResourceDefinition", live, [])
        if verdict.done:
            found = discovering.discover(client)
            if found.get(*AGENT_API) is not None:
                return found
        for condition in (live.get("status") or {}).get("conditions") or []:
            if condition.get("type") == "NamesAccepted" and condition.get("status") == "False":
                raise ClusterError([Problem(obj=where, message=(
                    f"names not accepted: {condition.get('message', '')}"))])
        if time.monotonic() >= deadline:
            raise ClusterError([Problem(obj=where, message=(
                f"not Established and served after {timeout:.0f} s"))])
        time.sleep(0.5)
