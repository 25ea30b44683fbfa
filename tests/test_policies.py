"""Pod Security Standards and QoS, evaluated offline on rendered pods, and enforced by render."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from agentctl.cli import app
from agentctl.render.policies import level_of, qos_class, violations


def _restricted_pod() -> dict[str, Any]:
    return {
        "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [{"name": "a", "image": "x", "securityContext": {
            "allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}}],
        "volumes": [{"name": "tmp", "emptyDir": {}}],
    }


def test_restricted_pod_is_restricted() -> None:
    assert level_of(_restricted_pod()) == "restricted"


@pytest.mark.parametrize(("change", "level"), [
    (lambda p: p["containers"][0]["securityContext"].update(allowPrivilegeEscalation=True),
     "baseline"),
    (lambda p: p["securityContext"].update(runAsNonRoot=False), "baseline"),
    (lambda p: p["containers"][0]["securityContext"]["capabilities"].update(add=["CHOWN"]),
     "baseline"),
    (lambda p: p["volumes"].append({"name": "n", "nfs": {"server": "s", "path": "/"}}),
     "baseline"),
    (lambda p: p["containers"][0]["securityContext"].update(privileged=True), "privileged"),
    (lambda p: p.update(hostNetwork=True), "privileged"),
    (lambda p: p["volumes"].append({"name": "h", "hostPath": {"path": "/"}}), "privileged"),
    (lambda p: p["containers"][0]["securityContext"]["capabilities"].update(add=["SYS_ADMIN"]),
     "privileged"),
    (lambda p: p["containers"][0].update(ports=[{"containerPort": 80, "hostPort": 80}]),
     "privileged"),
])
def test_violations_lower_the_level(change: Any, level: str) -> None:
    pod = _restricted_pod()
    change(pod)
    assert level_of(pod) == level


def test_qos_classes() -> None:
    pod = _restricted_pod()
    assert qos_class(pod) == "BestEffort"
    pod["containers"][0]["resources"] = {"requests": {"cpu": "1", "memory": "1Gi"},
                                         "limits": {"cpu": "1000m", "memory": "1024Mi"}}
    assert qos_class(pod) == "Guaranteed"
    pod["containers"][0]["resources"]["limits"]["cpu"] = "2"
    assert qos_class(pod) == "Burstable"


def test_render_refuses_a_pod_below_its_declared_level(runner: CliRunner, example: Path) -> None:
    agent = example / "agents" / "chat-assistant.yaml"
    agent.write_text(agent.read_text().replace(
        "  lifecycle:", "  security:\n    securityContext: {allowPrivilegeEscalation: true}\n"
        "  lifecycle:"))
    result = runner.invoke(app, ["-C", str(example), "render", "-e", "dev"])
    assert result.exit_code == 2, result.output
    assert "Deployment/agents-dev/chat-assistant" in result.output
    assert "allowPrivilegeEscalation: must be false" in result.output


def test_level_must_be_allowed_by_the_environment(runner: CliRunner, example: Path) -> None:
    agent = example / "agents" / "chat-assistant.yaml"
    agent.write_text(agent.read_text().replace(
        "  lifecycle:", "  security: {podSecurity: baseline}\n  lifecycle:"))
    dev = runner.invoke(app, ["-C", str(example), "render", "-e", "dev"])
    assert dev.exit_code == 0, dev.output  # dev allows baseline
    prod = runner.invoke(app, ["-C", str(example), "render", "-e", "prod"])
    assert prod.exit_code == 2
    assert "agents/chat-assistant.yaml:" in prod.output
    assert "podSecurity baseline is not allowed in environment prod" in prod.output


def test_asserted_qos_class_is_checked(runner: CliRunner, example: Path) -> None:
    agent = example / "agents" / "chat-assistant.yaml"
    agent.write_text(agent.read_text().replace(
        "  lifecycle:", "  resources: {qosClass: Guaranteed}\n  lifecycle:"))
    result = runner.invoke(app, ["-C", str(example), "render", "-e", "staging"])
    assert result.exit_code == 2
    assert ("qosClass Guaranteed was asserted but Deployment/agents-staging/chat-assistant "
            "renders Burstable pods") in result.output


def test_namespace_outside_policy_is_refused(runner: CliRunner, example: Path) -> None:
    agent = example / "agents" / "chat-assistant.yaml"
    agent.write_text(agent.read_text().replace("  labels:", "  namespace: kube-system\n  labels:"))
    result = runner.invoke(app, ["-C", str(example), "render", "-e", "dev"])
    assert result.exit_code == 2
    assert "namespace kube-system is outside the environment's policy.namespaces" in result.output


def _container(name: str) -> dict[str, Any]:
    return {"name": name, "image": "x", "securityContext": {
        "allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}}


_PLACES = {
    "pod": lambda p: p["securityContext"],
    "container": lambda p: p["containers"][0]["securityContext"],
    "initContainer": lambda p: p.setdefault("initContainers", [_container("i")])[0][
        "securityContext"],
    "ephemeralContainer": lambda p: p.setdefault("ephemeralContainers", [_container("e")])[0][
        "securityContext"],
}
_PATHS = {"pod": "securityContext", "container": "containers[0].securityContext",
          "initContainer": "initContainers[0].securityContext",
          "ephemeralContainer": "ephemeralContainers[0].securityContext"}


@pytest.mark.parametrize("place", list(_PLACES))
@pytest.mark.parametrize(("option", "value", "field"), [
    ("seLinuxOptions", {"type": "spc_t"}, "seLinuxOptions.type"),
    ("seLinuxOptions", {"user": "system_u"}, "seLinuxOptions.user"),
    ("seLinuxOptions", {"role": "sysadm_r"}, "seLinuxOptions.role"),
    ("appArmorProfile", {"type": "Unconfined"}, "appArmorProfile.type"),
    ("windowsOptions", {"hostProcess": True}, "windowsOptions.hostProcess"),
])
def test_selinux_apparmor_and_host_process_were_not_checked(
        place: str, option: str, value: dict[str, Any], field: str) -> None:
    """Baseline forbids custom SELinux types, users and roles, unconfined AppArmor and Windows
    HostProcess, in the pod securityContext and in every kind of container."""
    pod = _restricted_pod()
    _PLACES[place](pod)[option] = value
    assert level_of(pod) == "privileged"
    found = [v for v in violations(pod) if v.field == f"{_PATHS[place]}.{field}"]
    assert [v.level for v in found] == ["baseline"]


@pytest.mark.parametrize("place", list(_PLACES))
@pytest.mark.parametrize(("option", "value"), [
    ("seLinuxOptions", {"type": "container_t", "level": "s0:c123,c456"}),
    ("seLinuxOptions", {"type": "container_init_t", "user": "", "role": ""}),
    ("seLinuxOptions", {"type": "container_kvm_t"}),
    ("seLinuxOptions", {"type": "container_engine_t"}),
    ("appArmorProfile", {"type": "RuntimeDefault"}),
    ("appArmorProfile", {"type": "Localhost", "localhostProfile": "k8s-agent"}),
    ("windowsOptions", {"hostProcess": False, "runAsUserName": "agent"}),
])
def test_allowed_selinux_apparmor_and_windows_options_stay_restricted(
        place: str, option: str, value: dict[str, Any]) -> None:
    pod = _restricted_pod()
    _PLACES[place](pod)[option] = value
    assert level_of(pod) == "restricted", violations(pod)
