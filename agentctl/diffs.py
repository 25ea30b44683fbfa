"""What changes, per object: the one vocabulary that the live diff, the PR diff (`--base`) and
reconcile share, and the pure functions that build it.

- `Outcome`: created | configured | unchanged | deleted | skipped | failed (AGENT_SPEC §7).
- `Change`: one object's outcome, its changed paths as JSON Pointers (computed with deepdiff),
  the other managers that own them, the reason of a skip or failure, and both sides,
  normalised and masked, for the unified diff.
- `normalise` drops what the server owns (managedFields, resourceVersion, uid, generation,
  creationTimestamp, status), so server bookkeeping is never a change.
- `mask` replaces every value of a Secret's `data` and `stringData`, and every
  `last-applied-configuration` copy, with a marker that says only whether it changed: no byte
  of a secret value reaches any output.

Invariants: pure and thread-safe; never prints; values are never part of a path or a reason.
"""

from __future__ import annotations

import copy
import difflib
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import yaml

from agentctl.manifests import ANNOTATION_DIGEST, ObjectRef

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
MASKED = "(masked)"
MASKED_BEFORE = "(masked: before)"
MASKED_AFTER = "(masked: after, changed)"
_SERVER_METADATA = ("managedFields", "resourceVersion", "uid", "generation", "creationTimestamp",
                    "selfLink")
_SECRET_FIELDS = ("data", "stringData")


class Outcome(StrEnum):
    CREATED = "created"
    CONFIGURED = "configured"
    UNCHANGED = "unchanged"
    DELETED = "deleted"
    SKIPPED = "skipped"
    FAILED = "failed"


CHANGING = frozenset({Outcome.CREATED, Outcome.CONFIGURED, Outcome.DELETED})
"""Outcomes that make a diff exit 1."""


@dataclass
class Change:
    """One object's outcome."""

    ref: ObjectRef
    api_version: str
    outcome: Outcome
    paths: list[str] = field(default_factory=list)
    """Changed paths as JSON Pointers (RFC 6901), into the object after the change."""
    managers: dict[str, list[str]] = field(default_factory=dict)
    """Path → the other field managers that own it now (drift, conflicts)."""
    reason: str = ""
    """Why it is skipped or failed; for a configured object, what else is worth saying."""
    before: dict[str, Any] | None = None
    """The live (or base) object, normalised and masked; None when it does not exist."""
    after: dict[str, Any] | None = None
    """The object as it would be, normalised and masked; None when it would be deleted."""

    def unified(self) -> str:
        """The unified diff of both sides as YAML (empty when they are equal)."""
        return unified(self.before, self.after, str(self.ref))


@dataclass
class EnvChanges:
    """One environment's change set, in apply order."""

    env: str
    namespace: str
    changes: list[Change] = field(default_factory=list)
    source: str = ""
    """Where the desired state came from: `committed`, `render`, or `REF..working tree`."""

    @property
    def summary(self) -> dict[str, int]:
        counted = Counter(c.outcome for c in self.changes)
        return {o.value: counted[o] for o in Outcome}

    @property
    def changed(self) -> bool:
        return any(c.outcome in CHANGING for c in self.changes)

    @property
    def failed(self) -> bool:
        return any(c.outcome == Outcome.FAILED for c in self.changes)


def normalise(body: dict[str, Any] | None) -> dict[str, Any] | None:
    """A copy without what the server owns and keeps changing."""
    if body is None:
        return None
    out = copy.deepcopy(body)
    out.pop("status", None)
    meta = out.get("metadata")
    if isinstance(meta, dict):
        for key in _SERVER_METADATA:
            meta.pop(key, None)
    return out


def _is_secret(body: dict[str, Any] | None) -> bool:
    return bool(body) and body.get("kind") == "Secret" and body.get("apiVersion") == "v1"  # type: ignore[union-attr]


def mask(before: dict[str, Any] | None,
         after: dict[str, Any] | None) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """Both sides with secret values replaced: per key of a Secret's `data` and `stringData`,
    and for a `last-applied-configuration` annotation on any object, `(masked)` on both sides
    when equal, `(masked: before)` / `(masked: after, changed)` when not. Copies; the inputs
    are left alone."""
    before, after = copy.deepcopy(before), copy.deepcopy(after)
    if _is_secret(before) or _is_secret(after):
        for name in _SECRET_FIELDS:
            _mask_map(before, after, (name,))
    _mask_map(before, after, ("metadata", "annotations"), only=LAST_APPLIED)
    return before, after


def _mask_map(before: dict[str, Any] | None, after: dict[str, Any] | None,
              path: tuple[str, ...], only: str | None = None) -> None:
    old, new = _at(before, path), _at(after, path)
    for key in set(old) | set(new):
        if only is not None and key != only:
            continue
        same = key in old and key in new and old[key] == new[key]
        if key in old:
            old[key] = MASKED if same else MASKED_BEFORE
        if key in new:
            new[key] = MASKED if same else MASKED_AFTER


def _at(body: dict[str, Any] | None, path: tuple[str, ...]) -> dict[str, Any]:
    node: Any = body or {}
    for key in path:
        node = node.get(key) if isinstance(node, dict) else None
    return node if isinstance(node, dict) else {}


def pointer(parts: Iterable[str | int]) -> str:
    """A JSON Pointer (RFC 6901) from path parts."""
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


DIGEST_POINTER = pointer(("metadata", "annotations", ANNOTATION_DIGEST))


def paths(before: dict[str, Any] | None, after: dict[str, Any] | None) -> list[str]:
    """The JSON Pointers where `before` and `after` differ (deepdiff), sorted. The digest
    annotation is left out when anything else changed: it changes with every change."""
    from deepdiff import DeepDiff  # only commands that diff pay for it

    if before == after:
        return []
    found = DeepDiff(before or {}, after or {}, view="tree", ignore_order=False)
    result = sorted({pointer(item.path(output_format="list"))
                     for items in found.values() for item in items})
    if len(result) > 1 and DIGEST_POINTER in result:
        result.remove(DIGEST_POINTER)
    return result


def _yaml(body: dict[str, Any] | None) -> list[str]:
    if body is None:
        return []
    return yaml.dump(body, Dumper=yaml.CSafeDumper, sort_keys=True, default_flow_style=False,
                     width=100).splitlines(keepends=True)


def unified(before: dict[str, Any] | None, after: dict[str, Any] | None, name: str) -> str:
    """A unified diff of two (masked) objects as YAML."""
    if before == after:
        return ""
    lines = difflib.unified_diff(_yaml(before), _yaml(after),
                                 f"a/{name}" if before is not None else "/dev/null",
                                 f"b/{name}" if after is not None else "/dev/null", n=3)
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)


def compare(ref: ObjectRef, api_version: str, before: dict[str, Any] | None,
            after: dict[str, Any] | None) -> Change:
    """The change from `before` to `after` (either may be None), normalised and masked."""
    before, after = mask(normalise(before), normalise(after))
    if before is None and after is None:
        raise ValueError("nothing to compare")
    if before is None:
        return Change(ref, api_version, Outcome.CREATED, [""], before=None, after=after)
    if after is None:
        return Change(ref, api_version, Outcome.DELETED, [""], before=before, after=None)
    changed = paths(before, after)
    return Change(ref, api_version, Outcome.CONFIGURED if changed else Outcome.UNCHANGED,
                  changed, before=before, after=after)
