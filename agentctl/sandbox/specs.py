"""What a sandbox cluster looks like, as plain data: the kwokctl configuration, the kwok stages,
the fake nodes and the storage objects.

Inputs: binary paths (from `building`) and the kwok stage YAML shipped in the kwok module
(`kustomize/stage/…`, copied next to kwokctl by the build). Outputs: lists of dicts ready to dump
as YAML. No I/O besides reading the stage files; nothing here starts a process.

Invariants:
- every server binds 127.0.0.1 (`options.bindAddress`), and the service range is a /16 for both
  kube-apiserver and kube-controller-manager, so 1,000 Services fit;
- naming any Stage replaces kwok's defaults, so the node and pod stages are always included;
- a pod labelled `sandbox.agentctl.dev/fail: unready` runs but never becomes Ready; `crash` runs
  in CrashLoopBackOff. kwok's own pod-ready and pod-complete stages skip labelled pods, so exactly
  one stage matches any pod (no weighted coin toss).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

Obj = dict[str, Any]

FAIL_LABEL = "sandbox.agentctl.dev/fail"
GPU_LABEL = "sandbox.agentctl.dev/gpu"
GPU_RESOURCE = "nvidia.com/gpu"
STORAGE_CLASS = "kwok-volume"
SERVICE_CIDR = "10.96.0.0/16"
BIND_ADDRESS = "127.0.0.1"

# Stage directories of the kwok module (kustomize/stage/<dir>), in the order kwokctl uses.
STAGE_DIRS = ("node/fast", "node/heartbeat-with-lease", "pod/fast", "volume/fast", "volume/rbac")


@dataclass(frozen=True)
class FakeNode:
    """A Node that kwok plays the kubelet for. Capacity is what the scheduler sees."""

    name: str
    cpu: str = "32"
    memory: str = "128Gi"
    pods: str = "250"
    gpus: int = 0
    labels: Mapping[str, str] = field(default_factory=dict)

    def manifest(self) -> Obj:
        capacity = {"cpu": self.cpu, "memory": self.memory, "pods": self.pods,
                    "ephemeral-storage": "1Ti"}
        labels = {"kubernetes.io/hostname": self.name, "kubernetes.io/os": "linux",
                  "kubernetes.io/arch": "amd64", "type": "kwok", **self.labels}
        if self.gpus:
            capacity[GPU_RESOURCE] = str(self.gpus)
            labels |= {GPU_LABEL: "true", "nvidia.com/gpu.present": "true"}
        return {
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": self.name, "labels": labels,
                         "annotations": {"kwok.x-k8s.io/node": "fake",
                                         "node.alpha.kubernetes.io/ttl": "0"}},
            "spec": {},
            "status": {"capacity": capacity, "allocatable": dict(capacity)},
        }


DEFAULT_NODES: tuple[FakeNode, ...] = (
    FakeNode("sandbox-worker-0"),
    FakeNode("sandbox-worker-1"),
    FakeNode("sandbox-worker-2"),
    FakeNode("sandbox-worker-3"),
    FakeNode("sandbox-gpu-0", cpu="64", memory="512Gi", gpus=8),
)


def kwokctl_configuration(binaries: Mapping[str, Path]) -> Obj:
    """The `KwokctlConfiguration` document passed to `kwokctl --config`."""
    # Appended, not `override: true`: kwokctl sets no service range itself, and an override of
    # a flag that is not there is dropped with a warning.
    service_range = [{"key": "service-cluster-ip-range", "value": SERVICE_CIDR}]
    return {
        "apiVersion": "config.kwok.x-k8s.io/v1alpha1",
        "kind": "KwokctlConfiguration",
        "options": {
            "runtime": "binary",
            "bindAddress": BIND_ADDRESS,
            "kubeAuthorization": True,
            "kubeAdmission": True,
            "etcdBinary": str(binaries["etcd"]),
            "kubeApiserverBinary": str(binaries["kube-apiserver"]),
            "kubeControllerManagerBinary": str(binaries["kube-controller-manager"]),
            "kubeSchedulerBinary": str(binaries["kube-scheduler"]),
            "kubectlBinary": str(binaries["kubectl"]),
            "kwokControllerBinary": str(binaries["kwok"]),
        },
        "componentsPatches": [
            {"name": "kube-apiserver", "extraArgs": service_range},
            {"name": "kube-controller-manager", "extraArgs": service_range},
        ],
    }


def _not_labelled() -> Obj:
    return {"key": f'.metadata.labels["{FAIL_LABEL}"]', "operator": "DoesNotExist"}


def _labelled(value: str) -> list[Obj]:
    return [
        {"key": f'.metadata.labels["{FAIL_LABEL}"]', "operator": "In", "values": [value]},
        {"key": ".metadata.deletionTimestamp", "operator": "DoesNotExist"},
        {"key": ".status.phase", "operator": "In", "values": ["Pending"]},
    ]


_IPS = """\
{{ with NodeIPWith .spec.nodeName }}
hostIP: {{ . | Quote }}
{{ end }}
{{ with PodIPWith .spec.nodeName ( or .spec.hostNetwork false ) ( or .metadata.uid "" ) \
( or .metadata.name "" ) ( or .metadata.namespace "" ) }}
podIP: {{ . | Quote }}
{{ end }}
"""

def _failing_status(value: str, container: str) -> str:
    """A kwok status template: a Running pod that is not Ready, its containers as `container`
    (lines indented under `- image: …`) describes them."""
    return """\
{{ $now := Now }}
conditions:
- {lastTransitionTime: {{ $now | Quote }}, status: "True", type: Initialized}
- {lastTransitionTime: {{ $now | Quote }}, status: "False", type: Ready, \
reason: ContainersNotReady, message: "sandbox.agentctl.dev/fail=""" + value + """"}
- {lastTransitionTime: {{ $now | Quote }}, status: "False", type: ContainersReady, \
reason: ContainersNotReady}
containerStatuses:
{{ range .spec.containers }}
- image: {{ .image | Quote }}
  name: {{ .name | Quote }}
  ready: false
""" + container + """\
{{ end }}
""" + _IPS + """\
phase: Running
startTime: {{ $now | Quote }}
"""


_UNREADY = _failing_status("unready", """\
  started: true
  restartCount: 0
  state:
    running:
      startedAt: {{ $now | Quote }}
""")

_CRASH = _failing_status("crash", """\
  started: false
  restartCount: 3
  lastState:
    terminated:
      exitCode: 1
      reason: Error
      startedAt: {{ $now | Quote }}
      finishedAt: {{ $now | Quote }}
  state:
    waiting:
      reason: CrashLoopBackOff
      message: "back-off restarting failed container (sandbox.agentctl.dev/fail=crash)"
""")


def chaos_stages() -> list[Obj]:
    """Stages for pods labelled `sandbox.agentctl.dev/fail: unready|crash`."""
    return [
        {"apiVersion": "kwok.x-k8s.io/v1alpha1", "kind": "Stage",
         "metadata": {"name": f"agentctl-pod-{value}"},
         "spec": {"resourceRef": {"apiGroup": "v1", "kind": "Pod"},
                  "selector": {"matchExpressions": _labelled(value)},
                  "next": {"statusTemplate": template}}}
        for value, template in (("unready", _UNREADY), ("crash", _CRASH))
    ]


def load_kwok_stages(stage_root: Path) -> tuple[list[Obj], list[Obj]]:
    """Read kwok's stage YAML under `stage_root` (its `kustomize/stage`).

    Returns (stages, other objects: the StorageClass and RBAC to apply to the cluster). kwok's
    pod-ready and pod-complete stages are narrowed to pods without the chaos label.
    """
    stages: list[Obj] = []
    others: list[Obj] = []
    for sub in STAGE_DIRS:
        directory = stage_root / sub
        files = sorted(p for p in directory.glob("*.yaml") if p.name != "kustomization.yaml")
        if not files:
            raise FileNotFoundError(f"no kwok stage files in {directory}")
        for path in files:
            for doc in yaml.safe_load_all(path.read_text()):
                if not doc:
                    continue
                if doc.get("kind") == "Stage":
                    if doc["metadata"]["name"] in ("pod-ready", "pod-complete"):
                        doc["spec"]["selector"]["matchExpressions"].append(_not_labelled())
                    stages.append(doc)
                else:
                    others.append(doc)
    return stages, others


def dump(docs: Sequence[Obj]) -> str:
    """A multi-document YAML stream."""
    return yaml.safe_dump_all(docs, sort_keys=False)
