"""Standard agent telemetry: where the environment has PrometheusRule, a rule per agent with
recording rules and alerts on the OpenTelemetry GenAI metrics, thresholds set per agent, series
selected by the agent label the ServiceMonitor or PodMonitor puts on them.

Input: the minimal valid project of tests/hostile/projects.py, altered per case.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import Result

from tests.hostile.projects import AGENT_FILE, AT_ENV, ENV_FILE, agent, env, invoke, write_project

RULES = "monitoring.coreos.com/v1/PrometheusRule"
MONITORS = {"serviceMonitor": "monitoring.coreos.com/v1/ServiceMonitor",
            "podMonitor": "monitoring.coreos.com/v1/PodMonitor"}


def rendered(result: Result) -> list[dict[str, Any]]:
    assert result.exit_code == 0, result.output
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def project(tmp_path: Path, monitor: str, spec: dict[str, Any] | None = None,
            capabilities: tuple[str, ...] = (RULES,)) -> Result:
    environment = {"capabilities": [*capabilities, *MONITORS.values()],
                   "defaults": {"observability": {"metrics": {"monitor": monitor}}}}
    return invoke(write_project(tmp_path, {AGENT_FILE: agent(spec or {}),
                                           ENV_FILE: env(environment)}))


def prometheus_label(name: str) -> str:
    """A Kubernetes label as Prometheus names it on a target (every invalid character `_`)."""
    return re.sub(r"[^a-zA-Z0-9_]", "_", name)


@pytest.mark.parametrize("monitor", ["serviceMonitor", "podMonitor"])
def test_each_agent_gets_recording_rules_and_alerts(tmp_path: Path, monitor: str) -> None:
    docs = rendered(project(tmp_path, monitor))
    [rule] = [d for d in docs if d["kind"] == "PrometheusRule"]
    [scrape] = [d for d in docs if d["kind"] == monitor[0].upper() + monitor[1:]]
    [target_label] = scrape["spec"]["podTargetLabels"]
    [group] = rule["spec"]["groups"]
    assert group["name"] == "agent-x"
    names = [r.get("record") or r.get("alert") for r in group["rules"]]
    assert names == ["agent:gen_ai_client_token_usage:rate5m",
                     "agent:gen_ai_client_operation_duration_seconds:p95_5m",
                     "agent:gen_ai_tool_call_error_ratio:rate5m",
                     "AgentGenAIOperationSlow", "AgentGenAIToolCallErrors"]
    selector = f'namespace="agents-dev", {prometheus_label(target_label)}="x"'
    for item in group["rules"]:
        expr = item["expr"]
        assert selector in expr, expr  # every series is this agent's, as the scrape labels it
        assert expr.count("(") == expr.count(")")
        assert expr.count("{") == expr.count("}")
    by_name = {r.get("record") or r.get("alert"): r for r in group["rules"]}
    assert by_name["AgentGenAIOperationSlow"]["expr"].endswith("> 30")
    assert by_name["AgentGenAIToolCallErrors"]["expr"].endswith("> 0.1")
    assert "gen_ai_client_operation_duration_seconds_bucket" in by_name[
        "agent:gen_ai_client_operation_duration_seconds:p95_5m"]["expr"]


def test_thresholds_are_the_agents(tmp_path: Path) -> None:
    alerts = {"operationP95Seconds": 90, "toolErrorRatio": 0.25, "tokensPerHour": 500000}
    docs = rendered(project(tmp_path, "serviceMonitor",
                            {"observability": {"alerts": alerts}}))
    [rule] = [d for d in docs if d["kind"] == "PrometheusRule"]
    alert_rules = {r["alert"]: r for r in rule["spec"]["groups"][0]["rules"] if "alert" in r}
    assert alert_rules["AgentGenAIOperationSlow"]["expr"].endswith("> 90")
    assert alert_rules["AgentGenAIToolCallErrors"]["expr"].endswith("> 0.25")
    assert alert_rules["AgentGenAITokenUsageHigh"]["expr"].endswith("* 3600 > 500000")


def test_without_the_capability_there_is_no_rule(tmp_path: Path) -> None:
    result = project(tmp_path, "serviceMonitor", capabilities=())
    assert not [d for d in rendered(result) if d["kind"] == "PrometheusRule"]
    assert "warning" not in result.output


def test_without_a_monitor_that_labels_the_series_there_is_a_warning(tmp_path: Path) -> None:
    result = project(tmp_path, "annotations")
    assert not [d for d in rendered(result) if d["kind"] == "PrometheusRule"]
    # the monitor came from the environment's defaults: the warning points there
    assert re.search("warning: " + AT_ENV + r": spec\.observability\.metrics\.monitor: no "
                     r"PrometheusRule for this agent in environment dev", result.output), (
        result.output)
