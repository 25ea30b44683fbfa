"""What a reconcile reports while it runs, for a progress display: the cluster half calls a
`Progress`, the CLI decides whether and how to show it (the cluster half never prints).

Events, per environment: `phase` starts a phase with the number of objects it expects
(`changes`: the change set is computed, a number not known; `apply`: the objects to apply;
`flip`: the blue-green flips and canary steps; `wait`: the objects waited for until healthy;
`prune`: the members to delete); `stage` names the current stage (a kind); `advance` counts
objects done; `waiting` reports a health-wait round: how many are healthy of how many, and the
object furthest from healthy.

`advance` is called from the worker threads of a stage's pool, so an implementation must be
thread-safe. The default, `Silent`, does nothing and holds no state.
"""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    def phase(self, name: str, total: int | None) -> None:
        """A phase starts; `total` objects are expected (None: not known yet)."""

    def stage(self, label: str) -> None:
        """The current stage within the phase (a kind, or what is awaited)."""

    def advance(self, count: int = 1) -> None:
        """`count` more objects are done. Called from worker threads."""

    def waiting(self, healthy: int, total: int, slowest: str) -> None:
        """A health-wait round: `healthy` of `total` are; `slowest` is the one furthest from
        it (empty when none is pending)."""


class Silent:
    """No display: every event is ignored."""

    def phase(self, name: str, total: int | None) -> None:
        return None

    def stage(self, label: str) -> None:
        return None

    def advance(self, count: int = 1) -> None:
        return None

    def waiting(self, healthy: int, total: int, slowest: str) -> None:
        return None
