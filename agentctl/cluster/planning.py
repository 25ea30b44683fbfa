"""Chains the cluster stages for one environment, in the order a run must keep: connect → the
cluster's identity (before any other request) → discovery → the change set. Never prints.

Input: one environment's desired state (already loaded and checked: nothing reaches here from
invalid input). Output: its `EnvChanges`, and the client's request counts and warnings.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from agentctl.cluster import changes, connecting, discovering
from agentctl.diffs import EnvChanges
from agentctl.manifests import DesiredEnv


@dataclass
class Planned:
    changes: EnvChanges
    server: str
    context: str
    sent: Counter[str] = field(default_factory=Counter)
    """Requests sent, by purpose (`LIST`, `GET`, `PATCH dryRun`, …)."""
    warnings: list[str] = field(default_factory=list)
    """What the API server warned about (`Warning` headers)."""


def plan(desired: DesiredEnv, kubeconfig: Path | None = None, context: str | None = None,
         options: changes.Options | None = None,
         client: connecting.Client | None = None) -> Planned:
    """The environment's change set against its cluster (`context` overrides the
    environment's own; a given `client` is used as is, and left open)."""
    options = options or changes.Options()
    own = client is None
    if client is None:
        target = connecting.Target(kubeconfig, context, desired.context)
        client = connecting.connect(target, pool=options.workers * 2)
    try:
        connecting.check_identity(client, desired.env, desired.uid)
        resources = discovering.discover(client).defining(desired.manifests)
        result = changes.compute(client, resources, desired, options)
        return Planned(result, client.server, client.context, Counter(client.sent),
                       sorted(client.warnings))
    finally:
        if own:
            client.close()
