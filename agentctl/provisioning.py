"""The files that run reconcile for real, for a project: `deploy/<env>/reconciler.yaml` (the
reconciler's namespace, ServiceAccount and RBAC, and its CronJob or, for CI, its token Secret)
and `.github/workflows/agentctl-reconcile.yaml` (the CI mode).

Inputs: the environment (its namespace, policy namespaces, capabilities and cluster.uid), the
kinds its committed tree holds (when there is one) and the options of `agentctl init`. Output:
relative path → text; `scaffolding.write` writes them (never over an existing file without
--force). Reads the project's files only; never a cluster.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from agentctl import permissions, reconcilers, workflows
from agentctl.errors import InputError, Problem
from agentctl.manifests import applyset_parent_name
from agentctl.model.environment import Environment

WORKFLOW = ".github/workflows/agentctl-reconcile.yaml"


@dataclass(frozen=True)
class Options:
    repo: str = ""
    ref: str = "main"
    path: str = ""
    schedule: str = reconcilers.SCHEDULE
    install_crd: bool = False
    image: str = reconcilers.IMAGE
    git_sync_image: str = reconcilers.GIT_SYNC_IMAGE
    git_secret: str = ""
    namespace: str = reconcilers.NAMESPACE


def deploy_file(env: str) -> str:
    return f"deploy/{env}/reconciler.yaml"


def access_for(environment: Environment, project: str, rendered: Iterable[tuple[str, str]] = (),
               scopes: dict[str, str] | None = None,
               install_crd: bool = False) -> permissions.Access:
    spec = environment.spec
    return permissions.Access(
        env=environment.metadata.name, namespace=spec.namespace,
        namespaces=tuple(spec.policy.namespaces or [spec.namespace]),
        lease=applyset_parent_name(project, environment.metadata.name),
        kinds=permissions.kinds_of(spec.capabilities, rendered), scopes=dict(scopes or {}),
        identity=spec.cluster.uid is not None, install_crd=install_crd,
        prune_kinds=frozenset(spec.prune_kinds))


def runner(access: permissions.Access, project: str, options: Options) -> reconcilers.Runner:
    return reconcilers.Runner(access, project, options.namespace, options.repo
                              or "https://github.com/OWNER/REPOSITORY.git", options.ref,
                              options.path, options.schedule, options.image,
                              options.git_sync_image, options.git_secret)


def for_environments(environments: list[Environment], project: str, options: Options,
                     cronjob: Iterable[str], ci: Iterable[str],
                     rendered: dict[str, set[tuple[str, str]]] | None = None,
                     scopes: dict[str, str] | None = None) -> dict[str, str]:
    """The files for the environments of `cronjob` (CronJob mode) and `ci` (CI mode: their
    token Secrets, and the workflow reconciling them in the order given)."""
    by_name = {e.metadata.name: e for e in environments}
    cronjob, ci = list(dict.fromkeys(cronjob)), list(dict.fromkeys(ci))
    both = sorted(set(cronjob) & set(ci))
    if both:
        raise InputError([Problem(field="--ci", message=(
            f"{', '.join(both)}: choose --cronjob or --ci for an environment, not both"))])
    unknown = [e for e in [*cronjob, *ci] if e not in by_name]
    if unknown:
        raise InputError([Problem(message=f"unknown environment {e!r} (known: "
                                  f"{', '.join(sorted(by_name))})") for e in unknown])
    files: dict[str, str] = {}
    for mode, names in (("cronjob", cronjob), ("ci", ci)):
        for name in names:
            access = access_for(by_name[name], project, (rendered or {}).get(name, set()),
                                scopes, options.install_crd)
            files[deploy_file(name)] = reconcilers.document(runner(access, project, options),
                                                            mode)
    if ci:
        files[WORKFLOW] = workflows.reconcile_workflow(ci)
    return files


def for_project(root: Path, cronjob: Iterable[str], ci: Iterable[str],
                options: Options) -> tuple[dict[str, str], list[Problem]]:
    """The files for an existing project's environments, with the kinds each one's committed
    tree holds; warnings for an environment without a committed tree."""
    from agentctl.render import loading, pipeline

    inputs = loading.load(root, agents=False)
    if inputs.problems:
        raise InputError(sorted(set(inputs.problems)))
    warnings: list[Problem] = []
    rendered: dict[str, set[tuple[str, str]]] = {}
    for name in dict.fromkeys([*cronjob, *ci]):
        if name not in inputs.environments:
            continue
        try:
            [desired] = pipeline.desired(root, (name,)).envs
        except InputError as err:
            warnings.append(Problem(obj=f"environment {name}", message=(
                "its committed tree cannot be read, so only the built-in blueprint's kinds "
                f"and the capabilities are allowed ({err.problems[0]})")))
            continue
        rendered[name] = {(m.api_version, m.ref.kind) for m in desired.manifests}
    environments = [doc.environment for doc in inputs.environments.values()]
    files = for_environments(environments, inputs.project.metadata.name, options, cronjob, ci,
                             rendered, dict(inputs.project.spec.scopes))
    return files, warnings
