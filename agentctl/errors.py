"""The error tree and the exit-code contract.

Every error knows its exit code and carries one `Problem` per thing that went wrong; the CLI
catches `AgentctlError` in exactly one place, prints one line per problem and exits with the code.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum


class ExitCode(IntEnum):
    """Exit codes shared by every command (a contract users script against)."""

    OK = 0  # success; nothing to change (diff), fresh (render --check), converged (reconcile)
    CHANGES = 1  # changes found (diff) or stale output (render --check)
    INVALID = 2  # invalid input or usage: nothing was sent to a cluster
    CLUSTER = 3  # unreachable, unauthorized, forbidden, wrong cluster, missing capability
    FAILED = 4  # some objects failed: apply error, conflict, refused prune, unhealthy, timeout
    LOCKED = 5  # another reconcile holds the environment's lease
    TOOLING = 6  # local tooling missing or failed
    INTERNAL = 70  # a bug (EX_SOFTWARE): one line, the traceback only with --verbose; never 1


@dataclass(frozen=True, order=True)
class Problem:
    """One line of an error report.

    Input problems point at a position (`file:line:col: field: message`); cluster problems name
    an object (`Kind/namespace/name: message`).
    """

    file: str = ""
    line: int = 0
    col: int = 0
    field: str = ""
    message: str = ""
    obj: str = ""

    def __str__(self) -> str:
        where = ""
        if self.file:
            where = self.file
            if self.line:
                where += f":{self.line}:{self.col or 1}"
        elif self.obj:
            where = self.obj
        parts = [p for p in (where, self.field) if p]
        return ": ".join([*parts, self.message])


class AgentctlError(Exception):
    """Base of every error agentctl reports to the user."""

    exit_code: ExitCode = ExitCode.INVALID

    def __init__(self, problems: Iterable[Problem] | str) -> None:
        if isinstance(problems, str):
            problems = [Problem(message=problems)]
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class InputError(AgentctlError):
    """Invalid input or usage: files, fields, templates, options. Nothing reached a cluster."""

    exit_code = ExitCode.INVALID


class StaleOutputError(AgentctlError):
    """`render --check` found stale, missing or orphan files."""

    exit_code = ExitCode.CHANGES


class ClusterError(AgentctlError):
    """The cluster is unreachable, refuses us, is not the declared one or lacks a capability."""

    exit_code = ExitCode.CLUSTER


class ObjectsFailedError(AgentctlError):
    """Some objects failed to apply, prune or become healthy."""

    exit_code = ExitCode.FAILED


class LeaseHeldError(AgentctlError):
    """Another reconcile holds the environment's lease."""

    exit_code = ExitCode.LOCKED


class ToolingError(AgentctlError):
    """Local tooling (Go, a build, a local cluster) is missing or failed."""

    exit_code = ExitCode.TOOLING
