"""JSON Merge Patch (RFC 7386), the one merge agentctl uses: environment defaults and overrides
(merging.py) and the `merge` filter blueprints layer overrides with (rendering.py)."""

from __future__ import annotations

from typing import Any


def merge_patch(target: Any, patch: Any) -> Any:
    """Maps merge, anything else replaces, `null` deletes a key. Inputs are not modified; the
    result may share unchanged subtrees (and lists) with them, so treat it as read-only too."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result
