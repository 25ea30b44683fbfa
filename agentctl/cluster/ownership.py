"""Field ownership from `metadata.managedFields` (server-side apply's `FieldsV1` sets).

Server-side apply moves a field to whichever manager last changed its value: `kubectl edit`,
`kubectl scale` (through the scale subresource), `kubectl set image`, a JSON patch, another
manager's forced apply. So "every field agentctl applied is still owned by agentctl's Apply
entry" means nobody has changed any of them since, which is what makes the digest shortcut
sound: an object whose live digest annotation equals the desired one and whose applied fields
are all still agentctl's is unchanged without a dry-run. Fields agentctl never applied (an HPA's
replicas, a PVC's bound volume, a Deployment's revision annotation) are not looked at. A
Secret's `stringData` is write-only (stored as `data`), so a Secret that sets it never takes the
shortcut.

A FieldsV1 set is a tree: `f:<field>` for a map key, `k:<json>` for an element of a list keyed
by merge keys, `v:<json>` for an element of a set, `.` for the element itself; an empty
node (`{}`) owns everything below it (atomic maps and lists).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from agentctl.manifests import ANNOTATION_DIGEST

MANAGER = "agentctl"
_IDENTITY = ("apiVersion", "kind")
_IDENTITY_META = ("name", "namespace")


def applied_fields(meta: dict[str, Any], api_version: str,
                   manager: str = MANAGER) -> dict[str, Any] | None:
    """The FieldsV1 of `manager`'s Apply entry for the object itself (not a subresource), or
    None when it has none for this apiVersion."""
    for entry in meta.get("managedFields") or []:
        if (entry.get("manager") == manager and entry.get("operation") == "Apply"
                and not entry.get("subresource") and entry.get("apiVersion") == api_version):
            fields = entry.get("fieldsV1")
            return fields if isinstance(fields, dict) else None
    return None


def unchanged(meta: dict[str, Any], desired: dict[str, Any], digest: str,
              keys: dict[str, Any] | None = None) -> bool:
    """The digest shortcut: the live object carries the desired digest and agentctl's Apply
    entry still owns every field of the desired object. `keys`: a memo of parsed `k:` keys,
    shared by the calls of one run (they repeat from object to object)."""
    annotations = meta.get("annotations") or {}
    if annotations.get(ANNOTATION_DIGEST) != digest:
        return False
    if desired.get("kind") == "Secret" and "stringData" in desired:
        # Write-only: the server moves it into `data`, so agentctl keeps owning `stringData`
        # while anyone may change the values it wrote.
        return False
    fields = applied_fields(meta, str(desired.get("apiVersion", "")))
    if fields is None:
        return False
    body = {k: v for k, v in desired.items() if k not in _IDENTITY}
    body["metadata"] = {k: v for k, v in (desired.get("metadata") or {}).items()
                        if k not in _IDENTITY_META}
    if not body["metadata"]:
        del body["metadata"]
    return covers(fields, body, {} if keys is None else keys)


def covers(fields: Any, value: Any, keys: dict[str, Any] | None = None) -> bool:
    """Whether the FieldsV1 node `fields` owns every leaf of `value`."""
    keys = {} if keys is None else keys
    if not isinstance(fields, dict):
        return False
    if not fields:  # a leaf, or an atomic map or list: owned whole
        return True
    if isinstance(value, dict):
        for key, item in value.items():
            node = fields.get(f"f:{key}")
            if node is None:
                return False
            if isinstance(item, (dict, list)) and not covers(node, item, keys):
                return False  # (a scalar is owned when its node is there)
        return True
    if isinstance(value, list):
        for item in value:
            node = element(fields, item, keys)
            if node is None or (isinstance(item, (dict, list)) and not covers(node, item, keys)):
                return False
        return True
    return True


def element(fields: dict[str, Any], item: Any,
            keys: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """The node of list element `item`: `v:<json>` for a set member, the `k:<json>` entry whose
    keys agree with the item's (a key the item lacks was defaulted by the server, such as a
    port's protocol), or None. `keys` memoises parsed `k:` keys."""
    if not isinstance(item, dict):
        node = fields.get("v:" + json.dumps(item, separators=(",", ":"), ensure_ascii=False))
        return node if isinstance(node, dict) else None
    if "name" in item:  # most keyed lists are keyed by name alone: no parsing
        node = fields.get('k:{"name":' + json.dumps(item["name"], ensure_ascii=False) + "}")
        if isinstance(node, dict):
            return node
    keys = {} if keys is None else keys
    best: dict[str, Any] | None = None
    for key, node in fields.items():
        if not key.startswith("k:") or not isinstance(node, dict):
            continue
        parsed = keys.get(key)
        if parsed is None:
            try:
                parsed = json.loads(key[2:])
            except ValueError:
                parsed = {}
            keys[key] = parsed = parsed if isinstance(parsed, dict) else {}
        shared = [k for k in parsed if k in item]
        if shared and all(item[k] == parsed[k] for k in shared):
            if len(shared) == len(parsed):
                return node
            best = best or node
    return best


def applies(live: dict[str, Any], answer: dict[str, Any], api_version: str,
            parts: Sequence[str | int]) -> bool:
    """Whether agentctl's apply owns the field at `parts`, in the live object or in the
    dry-run's answer: only such a field can be changed by applying. Any other difference
    between the two reads (the live GET or LIST came first) is someone else's write in between,
    such as the Deployment controller's revision annotation on a new object."""
    also, shape = None, {}
    if parts and parts[0] == "data" and answer.get("kind") == "Secret":
        # write-only: applied as stringData, stored as data
        also = ["stringData", *parts[1:2]]
        shape = {"stringData": {str(p): "" for p in parts[1:2]}}
    for body in (live, answer):
        fields = applied_fields(body.get("metadata") or {}, api_version)
        if fields is None:
            continue
        if _owns(fields, body, parts) or (also is not None and _owns(fields, shape, also)):
            return True
    return False


def owners(managed_fields: Iterable[dict[str, Any]], obj: dict[str, Any],
           parts: Sequence[str | int], exclude: str = MANAGER) -> list[str]:
    """The managers (other than `exclude`) owning the field at `parts` of the live object
    `obj`, or a field above it (an atomic map or list), as `manager` or
    `manager (subresource)`."""
    found = []
    for entry in managed_fields:
        name = str(entry.get("manager", ""))
        if name == exclude or not isinstance(entry.get("fieldsV1"), dict):
            continue
        if _owns(entry["fieldsV1"], obj, parts):
            sub = entry.get("subresource")
            found.append(f"{name} ({sub})" if sub else name)
    return sorted(set(found))


def _owns(fields: dict[str, Any], obj: Any, parts: Sequence[str | int]) -> bool:
    node: Any = fields
    value = obj
    for part in parts:
        if not isinstance(node, dict):
            return False
        if not node:
            return True  # a leaf or an atomic value above the path
        if isinstance(value, list):
            index = int(part) if str(part).isdigit() else -1
            if not 0 <= index < len(value):
                return False
            value = value[index]
            node = element(node, value)
        elif isinstance(value, dict):
            node = node.get(f"f:{part}")
            value = value.get(str(part))
        else:
            return False
        if node is None:
            return False
    return isinstance(node, dict)
