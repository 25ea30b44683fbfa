"""Container ports are a list map keyed by (containerPort, protocol), the protocol defaulting to
TCP, as the API server keys them: 53/TCP beside 53/UDP is two ports, 53/TCP twice is refused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from agentctl.cli import app
from agentctl.manifests import ObjectRef
from agentctl.render.finishing import _list_map_duplicates

REF = ObjectRef(0, "apps", "Deployment", "agents-dev", "dns")


def _pod(ports: list[dict[str, Any]]) -> dict[str, Any]:
    return {"containers": [{"name": "dns", "image": "x", "ports": ports}]}


@pytest.mark.parametrize("ports", [
    [{"containerPort": 53, "protocol": "TCP"}, {"containerPort": 53, "protocol": "UDP"}],
    [{"containerPort": 53}, {"containerPort": 53, "protocol": "UDP"}],
    [{"containerPort": 53, "protocol": "SCTP"}, {"containerPort": 53, "protocol": "UDP"},
     {"containerPort": 53}],
])
def test_same_port_with_another_protocol_was_refused_as_a_duplicate(
        ports: list[dict[str, Any]]) -> None:
    assert _list_map_duplicates(REF, "spec.template.spec", _pod(ports)) == []


@pytest.mark.parametrize("ports", [
    [{"containerPort": 53, "protocol": "TCP"}, {"containerPort": 53, "protocol": "TCP"}],
    [{"containerPort": 53, "protocol": "TCP"}, {"containerPort": 53}],
    [{"containerPort": 53}, {"containerPort": 53}],
])
def test_same_port_and_protocol_is_still_refused(ports: list[dict[str, Any]]) -> None:
    problems = _list_map_duplicates(REF, "spec.template.spec", _pod(ports))
    assert [(p.field, p.message) for p in problems] == [
        ("spec.template.spec.containers[0].ports", "containerPort 53/TCP appears more than once")]


_SIDECAR = "    - {name: logs, preset: logShipper}\n"


def test_render_accepts_a_sidecar_serving_dns_over_tcp_and_udp(runner: CliRunner,
                                                                 example: Path) -> None:
    agent = example / "agents" / "support-bot.yaml"
    text = agent.read_text()
    assert _SIDECAR in text
    agent.write_text(text.replace(_SIDECAR, _SIDECAR + (
        "    - name: dns\n      image: ghcr.io/example/dns:1.0\n      ports:\n"
        "        - {name: dns-tcp, containerPort: 53}\n"
        "        - {name: dns-udp, containerPort: 53, protocol: UDP}\n")))
    result = runner.invoke(app, ["-C", str(example), "render", "-e", "dev"])
    assert result.exit_code == 0, result.output
    assert "protocol: UDP" in result.output
    twice = text.replace(_SIDECAR, _SIDECAR + (
        "    - name: dns\n      image: ghcr.io/example/dns:1.0\n      ports:\n"
        "        - {name: dns-a, containerPort: 53, protocol: TCP}\n"
        "        - {name: dns-b, containerPort: 53}\n"))
    agent.write_text(twice)
    refused = runner.invoke(app, ["-C", str(example), "render", "-e", "dev"])
    assert refused.exit_code == 2, refused.output
    assert "containerPort 53/TCP appears more than once" in refused.output
