"""Pydantic models of agentctl's inputs: Agent (`agentctl.model.agent`), Environment and
Project (`agentctl.model.environment`). Pure data, no I/O. Each is imported where it is needed:
acting on a committed tree (diff, reconcile) never builds the Agent model.

The model modules do without `from __future__ import annotations`: pydantic needs every field's
type at class creation anyway, and a string annotation would be compiled and evaluated first
(a few milliseconds of every command's start).
"""
