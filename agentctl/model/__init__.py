"""Pydantic models of agentctl's inputs: Agent, Environment, Project. Pure data, no I/O."""

from agentctl.model.agent import Agent, AgentSpec
from agentctl.model.environment import Environment, Project

__all__ = ["Agent", "AgentSpec", "Environment", "Project"]
