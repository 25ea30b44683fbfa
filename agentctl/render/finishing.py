"""Stage 3b, finish rendered objects: the environment's namespace, ownership and ApplySet
labels, the agent's own labels and annotations, the config hash on pod templates, the policy
checks (namespaces, Pod Security level, QoS class) and the digest annotation, in that order.

Input: each agent's raw manifests. Output: the same manifests, complete and checked, or
problems naming `Kind/namespace/name` and the agent's file.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from agentctl.errors import Problem
from agentctl.manifests import (
    ANNOTATION_CONFIG_HASH,
    ANNOTATION_DIGEST,
    LABEL_PART_OF,
    Manifest,
    ObjectRef,
    Origin,
    dig,
    digest,
    group_kind,
    known_scopes,
    ownership_labels,
    pod_spec_path,
    scope_of,
    sha256_json,
)
from agentctl.model.environment import Environment
from agentctl.render.policies import LEVELS, allows, level_of, qos_class, violations
from agentctl.render.sources import Source, attribute, field_path

if TYPE_CHECKING:
    from agentctl.model.agent import Agent


def finish(agent: Agent, environment: Environment, applyset: str, manifests: list[Manifest],
           sources: list[Source], scopes: Mapping[str, str] | None = None) -> list[Problem]:
    """Complete and check one agent's manifests in place; return the problems found. `scopes`:
    the project's declared scopes of custom kinds (agentctl.yaml `spec.scopes`)."""
    problems: list[Problem] = []
    env_name = environment.metadata.name
    labels = {**agent.metadata.labels,
              **ownership_labels(agent.metadata.name, env_name, applyset)}
    for manifest in manifests:
        meta = manifest.body.setdefault("metadata", {})
        api_version, kind = str(manifest.body.get("apiVersion", "")), manifest.body["kind"]
        namespaced = scope_of(api_version, kind, scopes)
        if namespaced is None:
            problems.append(Problem(obj=str(manifest.ref), message=(
                f"kind {api_version} {kind} has unknown scope: declare it in agentctl.yaml "
                f"spec.scopes as {api_version}/{kind}: Cluster or Namespaced (rendered by "
                f"{manifest.template} for agent {manifest.agent} in {manifest.source_file})")))
        elif namespaced and not meta.get("namespace"):
            meta["namespace"] = agent.metadata.namespace
        elif not namespaced and meta.get("namespace"):
            problems.append(Problem(obj=str(manifest.ref), field="metadata.namespace", message=(
                f"{kind} is cluster-scoped and cannot have a namespace ({manifest.template})")))
        meta["labels"] = {**(meta.get("labels") or {}), **labels}
        if agent.metadata.annotations:
            meta["annotations"] = {**agent.metadata.annotations, **(meta.get("annotations") or {})}
        manifest.refresh()
    _config_hashes(manifests)
    problems += _check_policy(agent, environment, manifests, sources)
    for manifest in manifests:
        meta = manifest.body["metadata"]
        annotations = meta.get("annotations") or {}
        annotations.pop(ANNOTATION_DIGEST, None)
        if annotations:
            meta["annotations"] = annotations
        else:
            meta.pop("annotations", None)
        value = digest(manifest.body)
        meta["annotations"] = {**annotations, ANNOTATION_DIGEST: value}
        manifest.digest = value
    return problems


def _config_hashes(manifests: list[Manifest]) -> None:
    """Annotate each pod template with a hash of the rendered ConfigMaps it consumes, so a
    config change rolls the pods."""
    config_maps = {(m.ref.namespace, m.ref.name): m.body.get("data") or {}
                   for m in manifests if m.ref.kind == "ConfigMap" and m.ref.group == ""}
    if not config_maps:
        return
    for manifest in manifests:
        path = pod_spec_path(manifest.body)
        pod = dig(manifest.body, path) if path else None
        if not isinstance(pod, dict):
            continue
        used = sorted(name for name in _config_map_names(pod)
                      if (manifest.ref.namespace, name) in config_maps)
        if not used:
            continue
        value = sha256_json({n: config_maps[(manifest.ref.namespace, n)] for n in used})
        template_meta = dig(manifest.body, (*path[:-1], "metadata")) if path else None
        if path and len(path) > 1 and isinstance(template_meta, dict):
            template_meta.setdefault("annotations", {})[ANNOTATION_CONFIG_HASH] = value


def _config_map_names(pod: dict[str, Any]) -> set[str]:
    names: set[str] = set()
    for volume in pod.get("volumes") or []:
        if "configMap" in volume:
            names.add(volume["configMap"].get("name", ""))
        for source in (volume.get("projected") or {}).get("sources") or []:
            if "configMap" in source:
                names.add(source["configMap"].get("name", ""))
    for group in ("initContainers", "containers"):
        for container in pod.get(group) or []:
            for env_from in container.get("envFrom") or []:
                if "configMapRef" in env_from:
                    names.add(env_from["configMapRef"].get("name", ""))
            for var in container.get("env") or []:
                ref = (var.get("valueFrom") or {}).get("configMapKeyRef")
                if ref:
                    names.add(ref.get("name", ""))
    return names


def _check_policy(agent: Agent, environment: Environment, manifests: list[Manifest],
                  sources: list[Source]) -> list[Problem]:
    problems: list[Problem] = []
    policy = environment.spec.policy
    allowed_namespaces = policy.namespaces or [environment.spec.namespace]
    level = agent.spec.security.pod_security
    if level not in policy.pod_security:
        problems.append(_at(sources, ("security", "podSecurity"),
                            f"podSecurity {level} is not allowed in environment "
                            f"{environment.metadata.name} (allowed: "
                            f"{', '.join(policy.pod_security)})"))
    for manifest in manifests:
        ref = manifest.ref
        if ref.namespace and ref.namespace not in allowed_namespaces:
            problems.append(Problem(obj=str(ref), message=(
                f"namespace {ref.namespace} is outside the environment's policy.namespaces "
                f"({', '.join(allowed_namespaces)}); agent {agent.metadata.name} in "
                f"{manifest.source_file}")))
        path = pod_spec_path(manifest.body)
        pod = dig(manifest.body, path) if path else None
        if not isinstance(pod, dict):
            continue
        prefix = ".".join(path or ())
        problems += _list_map_duplicates(ref, prefix, pod)
        if not allows(level_of(pod), level):
            for v in violations(pod):
                if allows(v.level, level) and v.level != level:
                    continue
                problems.append(Problem(obj=str(ref), field=f"{prefix}.{v.field}", message=(
                    f"{v.message}: the pod does not meet podSecurity {level} "
                    f"({manifest.template})")))
        wanted = agent.spec.resources.qos_class
        if wanted is not None:
            actual = qos_class(pod)
            if actual != wanted:
                problems.append(_at(sources, ("resources", "qosClass"),
                                    f"qosClass {wanted} was asserted but {ref} renders "
                                    f"{actual} pods"))
    return problems


def _list_map_duplicates(ref: ObjectRef, prefix: str, pod: dict[str, Any]) -> list[Problem]:
    """Server-side apply merges these lists by key; a repeated key is rejected by the API server,
    so say which one here instead."""
    problems: list[Problem] = []
    lists: list[tuple[str, list[Any], str]] = [
        ("volumes", pod.get("volumes") or [], "name"),
        ("containers", (pod.get("containers") or []) + (pod.get("initContainers") or []), "name"),
    ]
    for group in ("initContainers", "containers"):
        for i, container in enumerate(pod.get(group) or []):
            lists.append((f"{group}[{i}].env", container.get("env") or [], "name"))
            lists.append((f"{group}[{i}].volumeMounts", container.get("volumeMounts") or [],
                          "mountPath"))
            # keyed by (containerPort, protocol), the protocol defaulting to TCP: 53/TCP and
            # 53/UDP are two ports
            lists.append((f"{group}[{i}].ports", container.get("ports") or [], "containerPort"))
    for where, items, key in lists:
        seen: set[Any] = set()
        for item in items:
            value = item.get(key) if isinstance(item, dict) else None
            shown = repr(value)
            if key == "containerPort" and isinstance(item, dict):
                protocol = item.get("protocol") or "TCP"
                value, shown = (value, protocol), f"{value!r}/{protocol}"
            if value in seen:
                problems.append(Problem(obj=str(ref), field=f"{prefix}.{where}",
                                        message=f"{key} {shown} appears more than once"))
            seen.add(value)
    return problems


def _at(sources: list[Source], loc: tuple[str | int, ...], message: str) -> Problem:
    return attribute(sources, loc, message, field_path(("spec", *loc)))


def duplicates(origins: Iterable[Origin]) -> list[Problem]:
    """Two agents (or one agent twice) rendering the same object."""
    seen: dict[ObjectRef, Origin] = {}
    problems: list[Problem] = []
    for origin in origins:
        key = ObjectRef(0, origin.ref.group, origin.ref.kind, origin.ref.namespace,
                        origin.ref.name)
        other = seen.get(key)
        if other is not None:
            problems.append(Problem(obj=str(origin.ref), message=(
                f"rendered by agent {other.agent} ({other.source_file}) and by agent "
                f"{origin.agent} ({origin.source_file})")))
        else:
            seen[key] = origin
    return problems


def check_committed(environment: Environment, applyset: str, manifests: list[Manifest],
                    scopes: Mapping[str, str] | None = None) -> list[Problem]:
    """The environment's policy for objects read back from a committed tree (provenance.json
    proves they are the files that were committed, not that they are allowed): a known kind,
    built in or among the environment's capabilities; the namespaces of `policy.namespaces`;
    pods that meet the most permissive Pod Security level the policy allows; the environment's
    ApplySet label."""
    problems: list[Problem] = []
    policy = environment.spec.policy
    allowed_namespaces = policy.namespaces or [environment.spec.namespace]
    weakest = min(policy.pod_security, key=LEVELS.index)
    capabilities = set(environment.spec.capabilities)
    for manifest in manifests:
        ref, body = manifest.ref, manifest.body
        where = f"{ref} ({manifest.file})"
        api_version = manifest.api_version
        namespaced = scope_of(api_version, ref.kind, scopes)
        builtin = group_kind(api_version, ref.kind) in known_scopes()["builtin"]
        if namespaced is None or not (builtin or f"{api_version}/{ref.kind}" in capabilities):
            problems.append(Problem(obj=where, message=(
                f"{api_version}/{ref.kind} is neither a built-in kind nor a capability of "
                f"environment {environment.metadata.name}")))
            continue
        if namespaced and ref.namespace not in allowed_namespaces:
            problems.append(Problem(obj=where, field="metadata.namespace", message=(
                f"namespace {ref.namespace or '(none)'} is outside the environment's "
                f"policy.namespaces ({', '.join(allowed_namespaces)})")))
        labels = (body.get("metadata") or {}).get("labels") or {}
        if labels.get(LABEL_PART_OF) != applyset:
            problems.append(Problem(obj=where, field=f"metadata.labels.{LABEL_PART_OF}",
                                    message=f"must be {applyset}, the environment's ApplySet"))
        path = pod_spec_path(body)
        pod = dig(body, path) if path else None
        if isinstance(pod, dict) and not allows(level_of(pod), weakest):
            for v in violations(pod):
                if not allows(v.level, weakest) or v.level == weakest:
                    problems.append(Problem(obj=where, field=f"{'.'.join(path or ())}.{v.field}",
                                            message=f"{v.message}: the pod does not meet "
                                                    f"podSecurity {weakest}"))
    return problems
