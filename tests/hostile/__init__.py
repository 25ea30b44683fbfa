"""Hostile-input tests: project builders and the YAML-injection tests."""
