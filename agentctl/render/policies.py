"""Checks of rendered pods: the Kubernetes Pod Security Standards (baseline, restricted) and the
QoS class, evaluated exactly as the API server's admission and the kubelet would, but offline.

`violations(pod_spec)` lists every rule a pod spec breaks with the level the rule belongs to;
`qos_class(pod_spec)` is the class Kubernetes would assign.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from agentctl.model.common import parse_quantity

LEVELS = ("privileged", "baseline", "restricted")
_BASELINE_CAPS = frozenset({
    "AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD",
    "NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT",
})
_SAFE_SYSCTLS = frozenset({
    "kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies", "net.ipv4.ping_group_range", "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
})
_RESTRICTED_VOLUMES = frozenset({
    "configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim",
    "projected", "secret",
})


@dataclass(frozen=True)
class Violation:
    level: str  # the lowest level that forbids it: "baseline" or "restricted"
    field: str
    message: str


def level_of(pod_spec: dict[str, Any]) -> str:
    """The strictest Pod Security Standard level the pod spec meets."""
    broken = {v.level for v in violations(pod_spec)}
    if "baseline" in broken:
        return "privileged"
    if "restricted" in broken:
        return "baseline"
    return "restricted"


def allows(level: str, required: str) -> bool:
    """Whether a pod at `level` satisfies `required` (restricted satisfies everything)."""
    return LEVELS.index(level) >= LEVELS.index(required)


def _containers(pod: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for group in ("initContainers", "containers", "ephemeralContainers"):
        for i, container in enumerate(pod.get(group) or []):
            yield f"{group}[{i}]", container


def violations(pod: dict[str, Any]) -> list[Violation]:
    out: list[Violation] = []
    psc = pod.get("securityContext") or {}
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(key):
            out.append(Violation("baseline", key, f"{key} must not be true"))
    for i, volume in enumerate(pod.get("volumes") or []):
        kinds = [k for k in volume if k != "name"]
        if "hostPath" in kinds:
            out.append(Violation("baseline", f"volumes[{i}].hostPath", "hostPath volumes are "
                                 "forbidden"))
        elif kinds and kinds[0] not in _RESTRICTED_VOLUMES:
            out.append(Violation("restricted", f"volumes[{i}]", f"volume type {kinds[0]} is "
                                 "not allowed"))
    for j, sysctl in enumerate(psc.get("sysctls") or []):
        if sysctl.get("name") not in _SAFE_SYSCTLS:
            out.append(Violation("baseline", f"securityContext.sysctls[{j}]",
                                 f"sysctl {sysctl.get('name')} is not safe"))
    out += _seccomp(psc, "securityContext", None)
    out += _baseline_options(psc, "securityContext")
    pod_non_root = psc.get("runAsNonRoot") is True
    if psc.get("runAsUser") == 0:
        out.append(Violation("restricted", "securityContext.runAsUser", "must not be 0"))
    for where, container in _containers(pod):
        sc = container.get("securityContext") or {}
        if sc.get("privileged"):
            out.append(Violation("baseline", f"{where}.securityContext.privileged",
                                 "privileged containers are forbidden"))
        caps = sc.get("capabilities") or {}
        for cap in caps.get("add") or []:
            if cap not in _BASELINE_CAPS:
                out.append(Violation("baseline", f"{where}.securityContext.capabilities.add",
                                     f"capability {cap} is forbidden"))
            elif cap != "NET_BIND_SERVICE":
                out.append(Violation("restricted", f"{where}.securityContext.capabilities.add",
                                     f"capability {cap} is forbidden (only NET_BIND_SERVICE)"))
        if "ALL" not in (caps.get("drop") or []):
            out.append(Violation("restricted", f"{where}.securityContext.capabilities.drop",
                                 "must drop ALL capabilities"))
        for k, port in enumerate(container.get("ports") or []):
            if port.get("hostPort"):
                out.append(Violation("baseline", f"{where}.ports[{k}].hostPort",
                                     "host ports are forbidden"))
        if sc.get("procMount") not in (None, "Default"):
            out.append(Violation("baseline", f"{where}.securityContext.procMount",
                                 "must be Default"))
        if sc.get("allowPrivilegeEscalation") is not False:
            out.append(Violation("restricted", f"{where}.securityContext.allowPrivilegeEscalation",
                                 "must be false"))
        non_root = sc.get("runAsNonRoot")
        if non_root is False or (non_root is None and not pod_non_root):
            out.append(Violation("restricted", f"{where}.securityContext.runAsNonRoot",
                                 "must be true (here or in the pod securityContext)"))
        if sc.get("runAsUser") == 0:
            out.append(Violation("restricted", f"{where}.securityContext.runAsUser",
                                 "must not be 0"))
        out += _seccomp(sc, f"{where}.securityContext", psc)
        out += _baseline_options(sc, f"{where}.securityContext")
    return out


_SELINUX_TYPES = frozenset({"", "container_t", "container_init_t", "container_kvm_t",
                            "container_engine_t"})


def _baseline_options(sc: dict[str, Any], where: str) -> list[Violation]:
    """SELinux options, the AppArmor profile and Windows HostProcess: the baseline rules that
    apply alike to the pod's securityContext and to each container's."""
    out: list[Violation] = []
    selinux = sc.get("seLinuxOptions") or {}
    if selinux.get("type") is not None and selinux.get("type") not in _SELINUX_TYPES:
        out.append(Violation("baseline", f"{where}.seLinuxOptions.type",
                             f"SELinux type {selinux.get('type')} is forbidden (only "
                             "container_t, container_init_t, container_kvm_t, "
                             "container_engine_t)"))
    for key in ("user", "role"):
        if selinux.get(key) not in (None, ""):
            out.append(Violation("baseline", f"{where}.seLinuxOptions.{key}",
                                 f"a custom SELinux {key} is forbidden"))
    apparmor = (sc.get("appArmorProfile") or {}).get("type")
    if apparmor not in (None, "RuntimeDefault", "Localhost"):
        out.append(Violation("baseline", f"{where}.appArmorProfile.type",
                             f"AppArmor profile {apparmor} is forbidden (only RuntimeDefault "
                             "or Localhost)"))
    if (sc.get("windowsOptions") or {}).get("hostProcess") not in (None, False):
        out.append(Violation("baseline", f"{where}.windowsOptions.hostProcess",
                             "Windows HostProcess containers are forbidden"))
    return out


def _seccomp(sc: dict[str, Any], where: str, pod_sc: dict[str, Any] | None) -> list[Violation]:
    kind = (sc.get("seccompProfile") or {}).get("type")
    if kind == "Unconfined":
        return [Violation("baseline", f"{where}.seccompProfile.type", "must not be Unconfined")]
    if pod_sc is not None and kind is None:
        pod_kind = (pod_sc.get("seccompProfile") or {}).get("type")
        if pod_kind not in ("RuntimeDefault", "Localhost"):
            return [Violation("restricted", f"{where}.seccompProfile.type",
                              "must be RuntimeDefault or Localhost (here or in the pod)")]
    return []


def qos_class(pod: dict[str, Any]) -> str:
    """Guaranteed, Burstable or BestEffort, as the kubelet computes it."""
    containers = list(pod.get("containers") or []) + list(pod.get("initContainers") or [])
    any_set = False
    guaranteed = True
    for container in containers:
        resources = container.get("resources") or {}
        requests = resources.get("requests") or {}
        limits = resources.get("limits") or {}
        for name in ("cpu", "memory"):
            req, lim = requests.get(name, limits.get(name)), limits.get(name)
            if req is not None or lim is not None:
                any_set = True
            if lim is None or req is None or parse_quantity(req) != parse_quantity(lim):
                guaranteed = False
    if not any_set:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"
