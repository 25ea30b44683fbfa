"""Reconcile benchmark: `agentctl reconcile --no-wait` beside `kubectl apply --server-side` of the
same tree, with a bare threaded server-side-apply loop as the floor, on one fresh sandbox
cluster, in one run.

Setup (not timed): a sandbox cluster (real etcd, kube-apiserver, controller-manager, scheduler;
kwok nodes); the generated `--agents` fleet's dev environment rendered three times, into three
namespaces (environments `dev`, `kubectl` and `floor`: the same objects but for the namespace
and the environment's labels), each namespace created beforehand.

Measured, each as a subprocess, once (the machine is shared: the load average is printed):

- first run, every object created: the floor (this script's `--floor`: read the tree, then one
  PATCH `application/apply-patch+yaml` per object from `--workers` threads, no reads, no
  order), `agentctl reconcile --env dev --no-wait`, `kubectl apply --server-side -R -f <tree>`;
- no-op run, nothing changed: `agentctl reconcile --env dev --no-wait` again, and the same
  kubectl command again.

For each: wall time, requests (agentctl's report; kubectl's `-v=6` log; the floor's count),
peak RSS (the child's own `VmHWM`, sampled every 20 ms: `os.wait4`'s would report this
script's size, which a child inherits until it execs), and the CPU time the API server and
etcd spent meanwhile (their processes' utime + stime from /proc, by the sandbox's pid files: on
two shared cores the server may be what limits a run). Between runs the cluster settles: the
controllers create a ReplicaSet and pods for every Deployment after a first run, so the next
run waits until the API server uses less than a fifth of a core over five seconds (at most
five minutes). Targets:
kubectl / agentctl ≥ 2× on the first run with agentctl / floor ≤ 1.2×, and kubectl / agentctl ≥
20× on the no-op run. Nothing is asserted.

Run from the repository root: `python -m benchmarks.reconcile` (or `python
benchmarks/reconcile.py`).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import yaml

from agentctl.cluster import connecting, discovering
from agentctl.cluster.connecting import APPLY_PATCH
from agentctl.render import pipeline
from agentctl.sandbox import building, running
from benchmarks import fleet
from benchmarks.diff import _load, _requests_kubectl
from benchmarks.render import Run, agentctl

ENVS = ("dev", "kubectl", "floor")
FIRST, NOOP, FLOOR = 2.0, 20.0, 1.2
_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def prepare(root: Path, agents: int, kubeconfig: Path) -> dict[str, str]:
    """The fleet aimed at the sandbox, with `kubectl` and `floor` copies of dev in namespaces
    of their own, each rendered into `rendered/<env>`. Returns env → namespace."""
    fleet.write_project(fleet.generate(agents), root)
    context = yaml.safe_load(kubeconfig.read_text())["current-context"]
    source = yaml.safe_load((root / "environments" / "dev.yaml").read_text())
    namespaces = {}
    for env in ENVS:
        doc = json.loads(json.dumps(source))
        doc["metadata"]["name"] = env
        doc["spec"]["cluster"] = {"context": context}
        doc["spec"]["namespace"] = namespaces[env] = f"bench-{env}"
        (root / "environments" / f"{env}.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    for env in ("staging", "prod"):
        (root / "environments" / f"{env}.yaml").unlink()
    result = pipeline.render(root, ENVS, workers=None)
    pipeline.write(pipeline.plan(result, root / "rendered"))
    return namespaces


def _process_cpu(pid_file: Path) -> float:
    """A process's user + system CPU seconds so far."""
    pid = pid_file.read_text().strip()
    fields = (Path("/proc") / pid / "stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Server:
    pids: Path

    def cpu(self) -> tuple[float, float]:
        """(kube-apiserver, etcd) CPU seconds so far."""
        return (_process_cpu(self.pids / "kube-apiserver.pid"),
                _process_cpu(self.pids / "etcd.pid"))

    def settle(self, idle: float = 0.2, window: float = 5.0, limit: float = 300.0) -> float:
        """Wait until the API server uses less than `idle` of a core over `window` seconds;
        the seconds waited."""
        started = time.monotonic()
        while time.monotonic() - started < limit:
            before = self.cpu()[0]
            time.sleep(window)
            if (self.cpu()[0] - before) / window < idle:
                break
        return time.monotonic() - started


@dataclass
class Measured:
    name: str
    run: Run
    requests: int
    apiserver: float
    etcd: float


def _hwm_mb(pid: int) -> float:
    try:
        status = (Path("/proc") / str(pid) / "status").read_text()
    except OSError:
        return 0.0
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def run(command: list[str], stdout: Path) -> Run:
    """One subprocess: wall time, CPU time, and its own peak RSS (VmHWM, sampled)."""
    os.sync()
    peak = [0.0]
    with stdout.open("wb") as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen(command, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        done = threading.Event()

        def sample() -> None:
            while not done.wait(0.02):
                peak[0] = max(peak[0], _hwm_mb(proc.pid))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - started
        done.set()
        sampler.join()
        err.seek(0)
        text = err.read().decode(errors="replace")
    return Run(seconds, usage.ru_utime + usage.ru_stime, usage.ru_stime, peak[0],
               os.waitstatus_to_exitcode(status), text)


def measure(server: Server, name: str, command: list[str], output: Path,
            requests: Any) -> Measured:
    waited = server.settle()
    _log(f"{name}: settled for {waited:.0f} s; running (load {_load()})")
    before = server.cpu()
    result = run(command, output)
    after = server.cpu()
    if result.returncode != 0:
        tail = "\n".join(result.stderr.strip().splitlines()[-8:])
        raise SystemExit(f"{name} failed (exit {result.returncode}):\n{tail}")
    return Measured(name, result, requests(output.read_text(), result.stderr),
                    after[0] - before[0], after[1] - before[1])


def _agentctl_requests(stdout: str, stderr: str) -> int:
    [env] = json.loads(stdout[stdout.find("{"):])["environments"]
    return sum(int(n) for n in env["requests"].values())


def _floor_requests(stdout: str, stderr: str) -> int:
    return int(stdout.split(maxsplit=1)[0])


def floor(tree: Path, kubeconfig: Path, workers: int) -> int:
    """The bare loop: read every object of `tree`, then PATCH each with server-side apply from
    `workers` threads. Prints the requests sent."""
    bodies = [doc for path in sorted(tree.rglob("*.yaml"))
              for doc in yaml.load_all(path.read_text(), Loader=_LOADER) if doc]
    context = yaml.safe_load(kubeconfig.read_text())["current-context"]
    client = connecting.connect(connecting.Target(kubeconfig, context), pool=workers * 2)
    try:
        resources = discovering.discover(client)

        def one(body: dict[str, Any]) -> int:
            meta = body["metadata"]
            resource = resources.require(body["apiVersion"], body["kind"])
            answer = client.request("PATCH", resource.path(meta.get("namespace", ""),
                                                           meta["name"]),
                                    query=[("fieldManager", "floor")], body=body,
                                    content_type=APPLY_PATCH)
            return 0 if answer.ok else 1

        with ThreadPoolExecutor(workers) as pool:
            failed = sum(pool.map(one, bodies))
    finally:
        client.close()
    print(sum(client.sent.values()))
    return 1 if failed else 0


def table(rows: list[tuple[str, ...]]) -> str:
    header = ("run", "seconds", "requests", "peak RSS", "apiserver CPU s", "etcd CPU s",
              "ratio")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
             for r in [header, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _row(label: str, m: Measured, ratio: str = "") -> tuple[str, ...]:
    return (label, f"{m.run.seconds:.2f}", str(m.requests), f"{m.run.max_rss_mb:.0f} MB",
            f"{m.apiserver:.1f}", f"{m.etcd:.1f}", ratio)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agents", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=8,
                        help="the floor's threads (reconcile's default pool is 8)")
    parser.add_argument("--floor", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--kubeconfig", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.floor is not None:
        return floor(args.floor, args.kubeconfig, args.workers)
    exe, kubectl = agentctl(), str(building.binary("kubectl"))
    with tempfile.TemporaryDirectory(prefix="agentctl-bench-reconcile-") as tmp, \
            running.running(binaries=building.ensure(), log=_log) as sandbox:
        root, kubeconfig, out = Path(tmp) / "fleet", sandbox.kubeconfig, Path(tmp) / "out"
        started = time.perf_counter()
        namespaces = prepare(root, args.agents, kubeconfig)
        objects = len(pipeline.desired(root, ("dev",)).envs[0].manifests)
        _log(f"rendered {objects} objects × {len(ENVS)} in {time.perf_counter() - started:.0f} s")
        for namespace in namespaces.values():
            created = run([kubectl, "--kubeconfig", str(kubeconfig), "create", "namespace",
                           namespace], out)
            if created.returncode != 0:
                raise SystemExit(created.stderr)
        server = Server(sandbox.cluster_dir / "pids")
        ours = [exe, "-C", str(root), "reconcile", "--env", "dev", "--no-wait",
                "--kubeconfig", str(kubeconfig), "-o", "json"]
        theirs = [kubectl, "--kubeconfig", str(kubeconfig), "apply", "--server-side",
                  "--field-manager=kubectl-bench", "-R", "-v=6",
                  "-f", str(root / "rendered" / "kubectl" / namespaces["kubectl"])]
        bare = [sys.executable, "-m", "benchmarks.reconcile", "--floor",
                str(root / "rendered" / "floor" / namespaces["floor"]), "--kubeconfig",
                str(kubeconfig), "--workers", str(args.workers)]
        kube = lambda _out, err: _requests_kubectl(err)  # noqa: E731
        first_floor = measure(server, "floor", bare, out, _floor_requests)
        first_ours = measure(server, "agentctl reconcile", ours, out, _agentctl_requests)
        first_theirs = measure(server, "kubectl apply", theirs, out, kube)
        noop_ours = measure(server, "agentctl reconcile, no-op", ours, out, _agentctl_requests)
        noop_theirs = measure(server, "kubectl apply, no-op", theirs, out, kube)
        rows = [
            _row("first: floor (bare SSA loop)", first_floor),
            _row("first: agentctl reconcile --no-wait", first_ours,
                 f"{first_ours.run.seconds / first_floor.run.seconds:.2f}× the floor"),
            _row("first: kubectl apply --server-side", first_theirs,
                 f"{first_theirs.run.seconds / first_ours.run.seconds:.1f}× agentctl"),
            _row("no-op: agentctl reconcile --no-wait", noop_ours),
            _row("no-op: kubectl apply --server-side", noop_theirs,
                 f"{noop_theirs.run.seconds / noop_ours.run.seconds:.1f}× agentctl")]
        print(f"agentctl reconcile vs kubectl apply --server-side; {objects} objects (the "
              f"{args.agents}-agent fleet's dev) per namespace, one fresh sandbox; each run "
              f"once; {os.cpu_count()} CPUs; load {_load()}; floor: {args.workers} threads; "
              f"targets: first kubectl / agentctl >= {FIRST:.0f}× and agentctl / floor <= "
              f"{FLOOR}×, no-op kubectl / agentctl >= {NOOP:.0f}×")
        print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
