"""JSON Merge Patch (RFC 7386), the one merge agentctl uses: environment defaults and overrides
(merging.py) and the `merge` filter blueprints layer overrides with (rendering.py)."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

Path = tuple[str, ...]


def merge_patch(target: Any, patch: Any, leaves: Collection[Path] = ()) -> Any:
    """Maps merge, anything else replaces, `null` deletes a key. A map at one of the `leaves`
    (key paths) replaces the target's whole, its own `null`s kept (a patch held for later).
    Inputs are not modified; the result may share unchanged subtrees (and lists) with them, so
    treat it as read-only too."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        below = [leaf[1:] for leaf in leaves if leaf and leaf[0] == key]
        if value is None:
            result.pop(key, None)
        elif () in below:
            result[key] = value
        else:
            result[key] = merge_patch(result.get(key), value, below)
    return result
