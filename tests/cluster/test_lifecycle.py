"""The sandbox's own promises: loopback only, and no process or directory left behind after a
clean stop, a failed start or a broken component."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from agentctl.sandbox import running, specs

from .kube import Cluster, wait_for

pytestmark = pytest.mark.cluster

COMPONENTS = {"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler",
              "kwok-controller"}


def _under(root: Path) -> list[psutil.Process]:
    """Every live process whose working directory or command line names `root` (psutil's
    view, independent of the module's own /proc scan)."""
    needle = str(root.resolve())
    found = []
    for proc in psutil.process_iter(["cmdline", "cwd", "status"]):
        info = proc.info
        if info["status"] == psutil.STATUS_ZOMBIE:
            continue
        cwd = info["cwd"] or ""
        cmdline = " ".join(info["cmdline"] or [])
        if cwd == needle or cwd.startswith(needle + "/") or needle in cmdline:
            found.append(proc)
    return found


def _names(procs: list[psutil.Process]) -> set[str]:
    return {Path(p.info["cmdline"][0]).name for p in procs if p.info["cmdline"]}


def test_every_listening_socket_is_on_loopback(cluster: Cluster) -> None:
    pids = set(running.processes(cluster.sandbox.root))
    assert _names(_under(cluster.sandbox.root)) >= COMPONENTS
    listening = [c for c in psutil.net_connections(kind="inet")
                 if c.status == psutil.CONN_LISTEN and c.pid in pids]
    assert listening, "found no listening socket of the sandbox at all"
    owners = {psutil.Process(c.pid).name() for c in listening if c.pid}
    assert {"etcd", "kube-apiserver"} <= owners
    addresses = [(c.laddr.ip, c.laddr.port, c.pid) for c in listening if c.laddr]
    exposed = [a for a in addresses if a[0] != "127.0.0.1"]
    assert exposed == []


def test_stop_leaves_no_process_and_no_directory(binaries: dict[str, Path]) -> None:
    with running.running(binaries=binaries, name="teardown",
                         nodes=specs.DEFAULT_NODES[:1]) as sandbox:
        root = sandbox.root
        procs = _under(root)
        assert _names(procs) >= COMPONENTS
        # A shell that merely sits in the directory is not the sandbox's to kill.
        bystander = subprocess.Popen(["sleep", "120"], cwd=root)
    try:
        assert not root.exists()
        assert [p for p in _under(root) if p.pid != bystander.pid] == []
        _gone, alive = psutil.wait_procs(procs, timeout=5)
        assert alive == []
        assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()


def test_failed_start_stops_what_it_started(binaries: dict[str, Path], tmp_path: Path) -> None:
    root = tmp_path / "sandbox"
    # An invalid node name: the control plane comes up, then applying the nodes fails.
    with pytest.raises(running.StartError) as caught:
        running.start(root, name="broken", binaries=binaries,
                      nodes=[specs.FakeNode("Not_A_Valid_Name")])
    assert "applying nodes" in str(caught.value)
    assert "Not_A_Valid_Name" in caught.value.logs
    assert "==> kube-apiserver.log <==" in caught.value.logs
    assert _under(root) == []
    assert running.processes(root) == []
    running.stop(root, "broken", binaries=binaries)
    assert not root.exists()


def test_broken_component_fails_start_with_its_log(binaries: dict[str, Path],
                                                   tmp_path: Path) -> None:
    fake = tmp_path / "bin" / "kube-apiserver"
    fake.parent.mkdir()
    fake.write_text('#!/bin/sh\n'
                    'if [ "$1" = "--version" ]; then echo "Kubernetes v1.37.2"; exit 0; fi\n'
                    'echo "simulated apiserver failure" >&2\nexit 1\n')
    fake.chmod(0o755)
    root = tmp_path / "sandbox"
    with pytest.raises(running.StartError) as caught:
        running.start(root, name="no-apiserver", binaries={**binaries, "kube-apiserver": fake},
                      timeout=10)
    assert "simulated apiserver failure" in caught.value.logs
    assert _under(root) == []
    running.stop(root, "no-apiserver", binaries=binaries)
    assert not root.exists()


_HOLDER = """
import sys, time
from pathlib import Path
from agentctl.sandbox import running
root = Path(sys.argv[1])
try:
    sandbox = running.start(root, name="held", log=lambda m: print(m, flush=True))
    print("READY", flush=True)
    time.sleep(600)
finally:
    running.stop(root, "held")
    print("STOPPED", flush=True)
"""


@pytest.mark.parametrize("when", ["starting", "READY"])
def test_ctrl_c_tears_everything_down(binaries: dict[str, Path], tmp_path: Path,
                                      when: str) -> None:
    root = tmp_path / "sandbox"
    proc = subprocess.Popen([sys.executable, "-c", _HOLDER, str(root)], text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert proc.stdout is not None
    seen = []
    try:
        for line in proc.stdout:
            seen.append(line)
            if line.startswith(when):
                break
        if when == "READY":
            assert _names(_under(root)) >= COMPONENTS
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=120)
    finally:
        proc.kill()
    seen.append(out)
    assert "STOPPED" in out, "".join(seen)
    assert proc.returncode != 0
    # A killed process leaves the table a moment after its parent returned (a liveness bound).
    wait_for(lambda: not _under(root), f"every process under {root} to exit", timeout=30)
    assert not root.exists()
