"""The change set of one environment: what applying its desired objects would do to the cluster,
computed once; `agentctl diff` shows it and `agentctl reconcile` executes it.

Inputs: a `DesiredEnv` (the environment's rendered objects, in apply order, with their digests),
a `Client` and the cluster's `Resources`. Steps:

1. the ApplySet parent (one GET): its `contains-group-kinds` and `additional-namespaces`;
2. the live members: one metadata-only LIST per (kind, namespace) over (rendered kinds ∪ the
   parent's group-kinds) × (namespace ∪ rendered namespaces ∪ additional-namespaces);
3. the digest shortcut (`ownership.unchanged`): unchanged without another request;
4. every other object: a server-side apply with `dryRun=All` and field manager `agentctl`,
   exactly what reconcile sends, compared with the live object (normalised, secrets masked);
   without `dry_run_new` (reconcile), an object the set does not hold is created as rendered
   after one metadata LIST per (kind, namespace) found no object of its name; an object of a
   kind that a CustomResourceDefinition of the run defines and the cluster does not serve yet
   (`Resources.defining`) is created as rendered, with no request (reconcile applies it after
   the CRD stage);
5. members no longer rendered: deletions, or skipped with the guard that keeps them;
6. `slots.review`: an in-place change of a live active blue-green slot fails (unless
   allowed); the replicas conflict a flip resolves itself does not.

Outcomes use one vocabulary (`diffs.Outcome`). A conflict names the other manager and its
fields; an existing object that is not the ApplySet's is a refused takeover, never adopted.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from agentctl import __version__, diffs
from agentctl.cluster import ownership, reading, slots
from agentctl.cluster.connecting import APPLY_PATCH, Client, Response
from agentctl.cluster.discovering import Resource, Resources, missing
from agentctl.diffs import Change, EnvChanges, Outcome
from agentctl.errors import ClusterError, Problem
from agentctl.manifests import LABEL_PART_OF, DesiredEnv, Manifest, ObjectRef, kept_kind

ANNOTATION_PRUNE = "agent.inferensys.com/prune"
APPLYSET_ID = "applyset.kubernetes.io/id"
APPLYSET_TOOLING = "applyset.kubernetes.io/tooling"
APPLYSET_KINDS = "applyset.kubernetes.io/contains-group-kinds"
APPLYSET_NAMESPACES = "applyset.kubernetes.io/additional-namespaces"
NOT_SERVED_YET = ("a CustomResourceDefinition of this run defines its kind, which the cluster "
                  "does not serve yet: created after that CRD is Established, not dry-run")


@dataclass(frozen=True)
class Options:
    full: bool = False
    """Dry-run every object, without the digest shortcut."""
    force_conflicts: bool = False
    """Take fields over from other managers (reconcile's --force-conflicts)."""
    prune: bool | None = None
    """Overrides the environment's `prune`."""
    workers: int = 8
    allow_in_place: bool = False
    """Do not refuse a change of a live active slot's pod template."""
    dry_run_new: bool = True
    """Dry-run the objects the set does not hold yet too (diff shows them as the server would
    create them). Reconcile turns it off: one metadata LIST per (kind, namespace) without the
    label selector tells an existing object of that name (a refused takeover) from a new one,
    which its apply then creates and validates, so a first run sends one write per object."""


def group_kind(group: str, kind: str) -> str:
    """KEP-3659's `Kind.group` (just `Kind` for the core group)."""
    return f"{kind}.{group}" if group else kind


def _split(value: str) -> list[str]:
    return [part for part in (p.strip() for p in value.split(",")) if part]


@dataclass
class _Work:
    """One environment's computation: the desired objects resolved to resources."""

    client: Client
    resources: Resources
    desired: DesiredEnv
    options: Options
    resolved: dict[ObjectRef, Resource] = field(default_factory=dict)
    live: dict[reading.Key, reading.Live] = field(default_factory=dict)
    creating_namespaces: set[str] = field(default_factory=set)
    conflicts: dict[ObjectRef, dict[str, list[str]]] = field(default_factory=dict)


def compute(client: Client, resources: Resources, desired: DesiredEnv,
            options: Options | None = None) -> EnvChanges:
    """The environment's change set, in apply order (parent first, deletions last)."""
    work = _Work(client, resources, desired, options or Options())
    absent = []
    for manifest in desired.manifests:
        resource = resources.get(manifest.api_version, manifest.ref.kind)
        if resource is None:
            absent.append(Problem(obj=str(manifest.ref),
                                  message=missing(manifest.api_version, manifest.ref.kind)))
        else:
            work.resolved[manifest.ref] = resource
    if absent:
        raise ClusterError(absent)
    parent_resource = resources.require("v1", "ConfigMap")
    live_parent = reading.get(client, parent_resource, desired.namespace, desired.parent)
    work.live = reading.members(client, _scopes(work, live_parent), desired.applyset,
                                metadata_only=not work.options.full,
                                workers=work.options.workers)
    changes = [_parent_change(work, live_parent)]
    keys: dict[str, Any] = {}
    pending = []  # what the digest shortcut cannot call unchanged
    defined: dict[ObjectRef, Change] = {}  # of a kind a CRD of this run defines
    for manifest in desired.manifests:
        live = work.live.get(_key(manifest.ref))
        if work.resolved[manifest.ref].pending:
            defined[manifest.ref] = diffs.compare(manifest.ref, manifest.api_version, None,
                                                  manifest.body)
            defined[manifest.ref].reason = NOT_SERVED_YET
        elif (live is None or work.options.full
                or not ownership.unchanged(live.meta, manifest.body, manifest.digest, keys)):
            pending.append(manifest)
    work.creating_namespaces = {m.ref.name for m in desired.manifests
                                if m.ref.kind == "Namespace" and m.ref.group == ""
                                and _key(m.ref) not in work.live}
    new: dict[ObjectRef, Change] = {}
    if not work.options.dry_run_new and not work.options.full:
        new = _new(work, [m for m in pending if _key(m.ref) not in work.live])
        pending = [m for m in pending if m.ref not in new]
    with ThreadPoolExecutor(max_workers=max(1, work.options.workers)) as pool:
        dry_runs = dict(zip([m.ref for m in pending],
                            pool.map(lambda m: _dry_run(work, m), pending), strict=True))
    dry_runs.update(new)
    dry_runs.update(defined)
    for manifest in desired.manifests:
        if manifest.ref in dry_runs:
            changes.append(dry_runs[manifest.ref])
        else:
            changes.append(Change(manifest.ref, manifest.api_version, Outcome.UNCHANGED))
    slots.review(changes, desired.manifests, work.conflicts, work.options.allow_in_place)
    changes += _deletions(work)
    return EnvChanges(desired.env, desired.namespace, changes, source=desired.source)


def _key(ref: ObjectRef) -> reading.Key:
    return (ref.group, ref.kind, ref.namespace, ref.name)


def _new(work: _Work, manifests: list[Manifest]) -> dict[ObjectRef, Change]:
    """Objects the set does not hold, without a dry-run: created, or a refused takeover when
    an object of that name exists (one metadata LIST per (kind, namespace), any labels)."""
    if not manifests:
        return {}
    scopes = sorted({(work.resolved[m.ref], m.ref.namespace) for m in manifests},
                    key=lambda s: (s[0].group, s[0].kind, s[1]))
    with ThreadPoolExecutor(max_workers=max(1, min(work.options.workers, len(scopes)))) as pool:
        listed = list(pool.map(lambda s: reading.list_one(work.client, s[0], s[1], ""),
                               scopes))
    existing = {live.key for lives in listed for live in lives}
    return {m.ref: _takeover(work, m) if _key(m.ref) in existing
            else diffs.compare(m.ref, m.api_version, None, m.body) for m in manifests}


def _scopes(work: _Work, live_parent: dict[str, Any] | None) -> set[tuple[Resource, str]]:
    """(resource, namespace) pairs to LIST: every kind the set may hold in every namespace it
    may occupy."""
    annotations = ((live_parent or {}).get("metadata") or {}).get("annotations") or {}
    namespaces = {work.desired.namespace, *(r.namespace for r in work.resolved if r.namespace),
                  *_split(str(annotations.get(APPLYSET_NAMESPACES, "")))}
    kinds = {(r.group, r.kind): r for r in work.resolved.values()}
    for name in _split(str(annotations.get(APPLYSET_KINDS, ""))):
        kind, _, group = name.partition(".")
        if (group, kind) not in kinds:
            resource = work.resources.preferred(group, kind)
            if resource is not None:  # a kind no longer served holds no objects
                kinds[(group, kind)] = resource
    return {(resource, namespace if resource.namespaced else "")
            for resource in kinds.values() if not resource.pending for namespace in namespaces}


def parent_body(desired: DesiredEnv, group_kinds: set[str], namespaces: set[str]) -> dict[str, Any]:
    """The ApplySet parent ConfigMap as reconcile applies it."""
    annotations = {APPLYSET_TOOLING: f"agentctl/v{__version__}",
                   APPLYSET_KINDS: ",".join(sorted(group_kinds))}
    extra = sorted(namespaces - {desired.namespace, ""})
    if extra:
        annotations[APPLYSET_NAMESPACES] = ",".join(extra)
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": desired.parent, "namespace": desired.namespace,
                         "labels": {APPLYSET_ID: desired.applyset},
                         "annotations": annotations}}


def _parent_change(work: _Work, live: dict[str, Any] | None) -> Change:
    """The parent's labels and annotations, kept a superset of the live ones until a prune
    succeeds (reconcile narrows them then)."""
    meta = (live or {}).get("metadata") or {}
    annotations = meta.get("annotations") or {}
    kinds = {group_kind(r.group, r.kind) for r in work.resolved.values()}
    kinds |= set(_split(str(annotations.get(APPLYSET_KINDS, ""))))
    namespaces = {r.namespace for r in work.resolved}
    namespaces |= set(_split(str(annotations.get(APPLYSET_NAMESPACES, ""))))
    wanted = parent_body(work.desired, kinds, namespaces)
    ref = ObjectRef.of(wanted)
    if live is None:
        return diffs.compare(ref, "v1", None, wanted)
    labels = meta.get("labels") or {}
    other = labels.get(APPLYSET_ID)
    if other is not None and other != work.desired.applyset:
        return Change(ref, "v1", Outcome.FAILED, reason=(
            f"the ApplySet parent carries {APPLYSET_ID}={other}, not "
            f"{work.desired.applyset}: not adopted"))
    wanted_meta = wanted["metadata"]
    current = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {
        "name": wanted_meta["name"], "namespace": wanted_meta["namespace"],
        "labels": {k: v for k, v in labels.items() if k in wanted_meta["labels"]},
        "annotations": {k: v for k, v in annotations.items()
                        if k in (APPLYSET_TOOLING, APPLYSET_KINDS, APPLYSET_NAMESPACES)}}}
    return diffs.compare(ref, "v1", current, wanted)


def _apply(work: _Work, manifest: Manifest, force: bool) -> Response:
    resource = work.resolved[manifest.ref]
    query = [("fieldManager", ownership.MANAGER), ("dryRun", "All"),
             ("fieldValidation", "Strict")]
    if force:
        query.append(("force", "true"))
    return work.client.request("PATCH", resource.path(manifest.ref.namespace, manifest.ref.name),
                               query=query, body=manifest.body, content_type=APPLY_PATCH,
                               purpose="PATCH dryRun")


def _dry_run(work: _Work, manifest: Manifest) -> Change:
    """Dry-run one object's apply and say what it would change."""
    ref, api_version = manifest.ref, manifest.api_version
    response = _apply(work, manifest, work.options.force_conflicts)
    conflicts: dict[str, list[str]] = {}
    if response.status == 409:
        work.conflicts[ref] = conflicts = conflicting(response)
        response = _apply(work, manifest, True)  # what taking them over would change
    if not response.ok:
        return _failure(work, manifest, response)
    live = work.live.get(_key(ref))
    if live is None:
        if response.status == 201:
            return diffs.compare(ref, api_version, None, response.body)
        return _takeover(work, manifest)
    # The items of a LIST carry no apiVersion and kind: without them every object would
    # differ from its dry-run at /apiVersion and /kind.
    before = ({"apiVersion": live.resource.api_version, "kind": live.resource.kind,
               **live.body} if work.options.full else reading.get(
        work.client, work.resolved[ref], ref.namespace, ref.name))
    change = diffs.compare(ref, api_version, before, response.body)
    kept = [p for p in change.paths if ownership.applies(
        before or {}, response.body if isinstance(response.body, dict) else {}, api_version,
        _parts(p))]
    if kept != change.paths:  # what changed between the two reads is not the apply's
        change.paths = kept
        if not kept:
            change.outcome = Outcome.UNCHANGED
    managed = ((before or {}).get("metadata") or {}).get("managedFields") or []
    for path in change.paths:
        owners = ownership.owners(managed, before or {}, _parts(path))
        if owners:
            change.managers[path] = owners
    if conflicts and not work.options.force_conflicts:
        change.outcome = Outcome.FAILED
        change.reason = "conflict: " + "; ".join(
            f"{path} is owned by {', '.join(managers)}"
            for path, managers in sorted(conflicts.items())) + (
            " (--force-conflicts takes them over)")
    return change


def _parts(pointer: str) -> list[str]:
    return [p.replace("~1", "/").replace("~0", "~") for p in pointer.split("/")[1:]]


def conflicting(response: Response) -> dict[str, list[str]]:
    """Field (as the server names it: `.spec.replicas`) → the managers it conflicts with,
    from a 409's causes."""
    found: dict[str, list[str]] = {}
    causes = ((response.body or {}).get("details") or {}).get("causes") or [] \
        if isinstance(response.body, dict) else []
    for cause in causes:
        message = str(cause.get("message", ""))
        manager = message.split('"')[1] if message.count('"') >= 2 else message
        found.setdefault(str(cause.get("field", "")), []).append(manager)
    return {path: sorted(set(managers)) for path, managers in found.items()}


def apply_failure(manifest: Manifest, response: Response) -> str:
    """One line on why a server-side apply of `manifest` (dry-run or real) failed: a conflict
    names the other managers and their fields, an immutable field says the object must be
    replaced; no Secret value is quoted."""
    conflicts = conflicting(response) if response.status == 409 else {}
    if conflicts:
        return "conflict: " + "; ".join(
            f"{path} is owned by {', '.join(managers)}"
            for path, managers in sorted(conflicts.items())) + (
            " (--force-conflicts takes them over)")
    return _reason(manifest, response)


def _failure(work: _Work, manifest: Manifest, response: Response) -> Change:
    ref, api_version = manifest.ref, manifest.api_version
    if response.status == 404 and ref.namespace in work.creating_namespaces:
        # Its namespace is created by this run: no dry-run can see it yet.
        return diffs.compare(ref, api_version, None, manifest.body)
    return Change(ref, api_version, Outcome.FAILED, reason=_reason(manifest, response))


def _reason(manifest: Manifest, response: Response) -> str:
    body = response.body if isinstance(response.body, dict) else {}
    causes = (body.get("details") or {}).get("causes") or []
    secret = manifest.ref.kind == "Secret" and manifest.ref.group == ""
    if response.status == 422 and any("immutable" in str(c.get("message", "")) for c in causes):
        fields = sorted({str(c.get("field", "")) for c in causes
                         if "immutable" in str(c.get("message", ""))})
        return (f"immutable field {', '.join(fields)}: the change needs the object replaced "
                "(delete it, then reconcile re-creates it)")
    if secret:  # a server message may quote a value
        detail = ", ".join(sorted({f"{c.get('field', '')}: {c.get('reason', '')}"
                                   for c in causes})) or response.reason
    else:
        detail = response.message
    details = body.get("details") or {}
    if response.status == 404 and details.get("kind") == "namespaces":
        return (f"namespace {details.get('name')} does not exist (and no Namespace is rendered "
                "for it)")
    kind = {403: "forbidden", 404: "not found", 422: "invalid"}.get(response.status,
                                                                  f"HTTP {response.status}")
    return f"{kind}: {detail}"


def _takeover(work: _Work, manifest: Manifest) -> Change:
    """The object exists but is not the ApplySet's member: refused, naming what it carries."""
    ref = manifest.ref
    live = reading.get(work.client, work.resolved[ref], ref.namespace, ref.name) or {}
    labels = (live.get("metadata") or {}).get("labels") or {}
    other = labels.get(LABEL_PART_OF)
    why = (f"it belongs to ApplySet {other}" if other else
           f"it exists without the {LABEL_PART_OF} label")
    return Change(ref, manifest.api_version, Outcome.FAILED, reason=(
        f"takeover refused: {why}; agentctl does not adopt objects it did not create (delete "
        f"it, or label it {LABEL_PART_OF}={work.desired.applyset} to adopt it)"))


def _deletions(work: _Work) -> list[Change]:
    """Members no longer rendered, in reverse apply order, each deleted or kept by a guard."""
    wanted = {_key(m.ref) for m in work.desired.manifests}
    prune = work.desired.prune if work.options.prune is None else work.options.prune
    out = []
    for key, live in work.live.items():
        if key in wanted:
            continue
        ref = ObjectRef.of({"apiVersion": live.resource.api_version, "kind": key[1],
                            "metadata": {"namespace": key[2], "name": key[3]}})
        guard = _guard(live, prune, work.desired)
        before = diffs.normalise({"apiVersion": live.resource.api_version, "kind": key[1],
                                  "metadata": live.meta})
        out.append(Change(ref, live.resource.api_version,
                          Outcome.SKIPPED if guard else Outcome.DELETED,
                          [] if guard else [""], reason=guard, before=before))
    return sorted(out, key=lambda c: c.ref, reverse=True)


def _guard(live: reading.Live, prune: bool, desired: DesiredEnv) -> str:
    """Why a member that is no longer rendered is kept, or "" when it is deleted."""
    if not prune:
        return f"prune is off for environment {desired.env} (reconcile --prune overrides it)"
    return kept(live.meta, live.resource.group, live.resource.kind, desired.prune_kinds)


def kept(meta: dict[str, Any], group: str, kind: str, prune_kinds: frozenset[str]) -> str:
    """Why prune must not delete a member no longer rendered, or "": the annotation,
    ownerReferences, or a kept kind the environment has not opted in."""
    if (meta.get("annotations") or {}).get(ANNOTATION_PRUNE) == "disabled":
        return f"annotated {ANNOTATION_PRUNE}: disabled"
    owners = meta.get("ownerReferences") or []
    if owners:
        return "owned by " + ", ".join(f"{o.get('kind')}/{o.get('name')}" for o in owners)
    return kept_kind(group, kind, prune_kinds)

