"""Pydantic models of agentctl's inputs: Agent, Environment, Project. Pure data, no I/O.

The model modules do without `from __future__ import annotations`: pydantic needs every field's
type at class creation anyway, and a string annotation would be compiled and evaluated first
(a few milliseconds of every command's start).
"""

from agentctl.model.agent import Agent, AgentSpec
from agentctl.model.environment import Environment, Project

__all__ = ["Agent", "AgentSpec", "Environment", "Project"]
