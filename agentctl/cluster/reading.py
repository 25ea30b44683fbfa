"""Live state: the ApplySet's members, read with one paginated LIST per (kind, namespace) and the
`applyset.kubernetes.io/part-of=<id>` label selector, metadata only
(`as=PartialObjectMetadataList`) unless the bodies are needed, in a bounded pool of threads.
Never one GET per object.

Output: `Live` entries keyed by `(group, kind, namespace, name)`.
"""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from agentctl.cluster.connecting import Client
from agentctl.cluster.discovering import Resource
from agentctl.manifests import LABEL_PART_OF

METADATA = ("application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,"
            "application/json")
PAGE = 500
Key = tuple[str, str, str, str]
"""(group, kind, namespace, name)."""


@dataclass(frozen=True)
class Live:
    resource: Resource
    body: dict[str, Any]
    """The object (`metadata` only, for a metadata LIST)."""

    @property
    def meta(self) -> dict[str, Any]:
        meta = self.body.get("metadata")
        return meta if isinstance(meta, dict) else {}

    @property
    def key(self) -> Key:
        return (self.resource.group, self.resource.kind, str(self.meta.get("namespace") or ""),
                str(self.meta.get("name", "")))


def list_one(client: Client, resource: Resource, namespace: str, selector: str,
             metadata_only: bool = True) -> list[Live]:
    """Every object of one resource in one namespace ("" for cluster-scoped kinds) that the
    label selector matches, page by page."""
    items: list[Live] = []
    token = ""
    restarted = False
    path = resource.collection(namespace)
    while True:
        query = [("labelSelector", selector), ("limit", str(PAGE))]
        if token:
            query.append(("continue", token))
        response = client.request("GET", path, query=query,
                                  accept=METADATA if metadata_only else "application/json",
                                  purpose="LIST")
        if response.status == 410 and token and not restarted:  # continue token expired
            items, token, restarted = [], "", True
            continue
        if not response.ok:
            where = f" in namespace {namespace}" if namespace else ""
            response.fail(f"listing {resource.plural}.{resource.group or 'core'}{where}",
                          client.server)
        body = response.body if isinstance(response.body, dict) else {}
        items += [Live(resource, item) for item in body.get("items") or []
                  if isinstance(item, dict)]
        token = str((body.get("metadata") or {}).get("continue") or "")
        if not token:
            return items


def members(client: Client, scopes: Iterable[tuple[Resource, str]], applyset: str,
            metadata_only: bool = True, workers: int = 8) -> dict[Key, Live]:
    """The ApplySet's live members over every (resource, namespace) in `scopes`."""
    selector = f"{LABEL_PART_OF}={applyset}"
    wanted = sorted(set(scopes), key=lambda s: (s[0].group, s[0].kind, s[1]))
    found: dict[Key, Live] = {}
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(wanted)))) as pool:
        results = list(pool.map(lambda s: list_one(client, s[0], s[1], selector,
                                                   metadata_only), wanted))
    for lives in results:
        for live in lives:
            found[live.key] = live
    return found


def get(client: Client, resource: Resource, namespace: str, name: str) -> dict[str, Any] | None:
    """One object, or None when it does not exist."""
    response = client.request("GET", resource.path(namespace, name), purpose="GET")
    if response.status == 404:
        return None
    if not response.ok:
        response.fail(f"reading {resource.kind}/{namespace + '/' if namespace else ''}{name}",
                      client.server)
    return response.body if isinstance(response.body, dict) else None

