"""Loaded inputs: the project, its environments and its agent documents, each with its source."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentctl.errors import Problem
from agentctl.model.environment import Environment, Project
from agentctl.render.sources import Source


@dataclass
class AgentDoc:
    """One Agent document, validated as far as it can be before the environment merge."""

    name: str
    data: dict[str, Any]
    source: Source


@dataclass
class EnvironmentDoc:
    environment: Environment
    source: Source

    @property
    def name(self) -> str:
        return self.environment.metadata.name


@dataclass
class Inputs:
    root: Path
    project: Project
    agents: list[AgentDoc] = field(default_factory=list)
    environments: dict[str, EnvironmentDoc] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    """Everything that failed to load (left out of `agents` and `environments`)."""

    def path(self, name: str) -> Path:
        return self.root / name
