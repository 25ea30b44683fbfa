"""What `spec.network` renders, through the CLI on small projects: HTTPRoute timeouts.

Input: the minimal valid project of tests/hostile/projects.py, altered per case. Bad input exits 2
with one line per problem at the file, line and column of the field.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from typer.testing import Result

from tests.hostile.projects import AGENT_FILE, AT_AGENT, ENV_FILE, agent, env, invoke, write_project

ROUTE = {"parentRefs": [{"name": "internal", "namespace": "gateways"}]}
GATEWAY = {"capabilities": ["gateway.networking.k8s.io/v1/HTTPRoute"]}


def rendered(result: Result) -> list[dict[str, Any]]:
    assert result.exit_code == 0, result.output
    return [doc for doc in yaml.safe_load_all(result.output) if doc]


def one(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    [found] = [d for d in docs if d["kind"] == kind]
    return found


def test_the_route_outlasts_a_long_generation_by_default(tmp_path: Path) -> None:
    root = write_project(tmp_path, {AGENT_FILE: agent({"network": {"httpRoute": ROUTE}}),
                                    ENV_FILE: env(GATEWAY)})
    route = one(rendered(invoke(root)), "HTTPRoute")
    [rule] = route["spec"]["rules"]
    assert rule["timeouts"] == {"request": "10m", "backendRequest": "10m"}


def test_route_timeouts_are_set_per_agent(tmp_path: Path) -> None:
    timeouts = {"request": "1h", "backendRequest": "30m"}
    root = write_project(tmp_path, {
        AGENT_FILE: agent({"network": {"httpRoute": {**ROUTE, "timeouts": timeouts}}}),
        ENV_FILE: env(GATEWAY)})
    [rule] = one(rendered(invoke(root)), "HTTPRoute")["spec"]["rules"]
    assert rule["timeouts"] == timeouts


def test_a_backend_timeout_beyond_the_request_timeout_is_refused(tmp_path: Path) -> None:
    timeouts = {"request": "5m", "backendRequest": "1h"}
    root = write_project(tmp_path, {
        AGENT_FILE: agent({"network": {"httpRoute": {**ROUTE, "timeouts": timeouts}}}),
        ENV_FILE: env(GATEWAY)})
    result = invoke(root)
    assert result.exit_code == 2, result.output
    assert re.search(AT_AGENT + r": spec\.network\.httpRoute\.timeouts\.backendRequest: "
                     r"backendRequest \(1h\) must not exceed request \(5m\)", result.output)
    assert "Traceback" not in result.output


def test_a_route_timeout_takes_the_gateway_api_duration_format(tmp_path: Path) -> None:
    timeouts = {"request": "1.5h"}
    root = write_project(tmp_path, {
        AGENT_FILE: agent({"network": {"httpRoute": {**ROUTE, "timeouts": timeouts}}}),
        ENV_FILE: env(GATEWAY)})
    result = invoke(root)
    assert result.exit_code == 2, result.output
    assert re.search(AT_AGENT + r": spec\.network\.httpRoute\.timeouts\.request: '1\.5h' is "
                     "invalid: must be a Gateway API duration", result.output), result.output
