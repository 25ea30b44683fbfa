"""Diff benchmark: `agentctl diff` beside `kubectl diff --server-side` on the same objects of the
same cluster, in one run.

Setup (not timed): a sandbox cluster (real etcd, kube-apiserver, controller-manager, scheduler;
kwok nodes), the generated `--agents` fleet's dev environment rendered to a committed tree and
applied the way reconcile applies it (the ApplySet parent, then every object by server-side
apply as field manager `agentctl`).

Measured, each tool as a subprocess, taking turns (`--runs` rounds, the median printed):

- no drift: `agentctl diff` (the digest shortcut) vs `kubectl diff --server-side
  --field-manager=agentctl --force-conflicts -R -f <tree>` (one dry-run per object);
- 1 % drifted: the same after another manager changed 1 % of the objects;
- `agentctl diff --full` (a dry-run of every object) in the drifted state.

For each: wall time, requests sent (agentctl's own count from `-v`; kubectl's from its `-v=6`
request log), peak RSS (the child's own `VmHWM`, sampled: `os.wait4`'s would report this
script's size, which a child inherits until it execs), and the exit code (0 no changes,
1 changes). Target: kubectl's time at least 10× agentctl's with no drift. Nothing is asserted.

Run from the repository root: `python -m benchmarks.diff` (or `python benchmarks/diff.py`).
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import yaml

from agentctl.cluster import changes, connecting, discovering
from agentctl.cluster.connecting import APPLY_PATCH
from agentctl.manifests import DesiredEnv
from agentctl.render import pipeline
from agentctl.sandbox import building, running
from benchmarks import fleet
from benchmarks.render import Run, agentctl

SPEEDUP = 10.0
ENV = "dev"


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def prepare(root: Path, agents: int, kubeconfig: Path) -> DesiredEnv:
    """The fleet as a project aimed at the sandbox, its dev tree rendered and committed."""
    generated = fleet.generate(agents)
    fleet.write_project(generated, root)
    path = root / "environments" / f"{ENV}.yaml"
    doc = yaml.safe_load(path.read_text())
    doc["spec"]["cluster"] = {"context": yaml.safe_load(kubeconfig.read_text())[
        "current-context"]}
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    result = pipeline.render(root, (ENV,), workers=None)
    pipeline.write(pipeline.plan(result, root / "rendered"))
    [desired] = pipeline.desired(root, (ENV,)).envs
    return desired


def apply(kubeconfig: Path, desired: DesiredEnv, workers: int = 16) -> None:
    """The namespace, the ApplySet parent, then every object (server-side apply as agentctl),
    in apply order with a pool per kind."""
    client = connecting.connect(connecting.Target(kubeconfig, None, desired.context),
                                pool=workers)
    try:
        resources = discovering.discover(client)
        client.request("POST", "/api/v1/namespaces", body={
            "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": desired.namespace}})
        kinds = {changes.group_kind(m.ref.group, m.ref.kind) for m in desired.manifests}
        parent = changes.parent_body(desired, kinds, {m.ref.namespace for m in desired.manifests})

        def one(body: dict[str, Any]) -> None:
            meta = body["metadata"]
            resource = resources.require(body["apiVersion"], body["kind"])
            answer = client.request("PATCH", resource.path(meta.get("namespace", ""),
                                                           meta["name"]),
                                    query=[("fieldManager", "agentctl")], body=body,
                                    content_type=APPLY_PATCH)
            if not answer.ok:
                raise SystemExit(f"{body['kind']}/{meta['name']}: {answer.message}")

        one(parent)
        with ThreadPoolExecutor(workers) as pool:
            for rank in sorted({m.ref.rank for m in desired.manifests}):
                list(pool.map(one, [m.body for m in desired.manifests if m.ref.rank == rank]))
    finally:
        client.close()


def drift(kubeconfig: Path, desired: DesiredEnv, share: float) -> int:
    """Another manager changes a field agentctl applied on `share` of the ConfigMaps and
    Deployments (a ConfigMap value, a Deployment's replicas through the scale subresource, as
    kubectl scale does). Returns how many objects it changed."""
    client = connecting.connect(connecting.Target(kubeconfig, None, desired.context))
    targets = [m for m in desired.manifests if m.ref.kind in ("ConfigMap", "Deployment")
               and (m.ref.kind == "ConfigMap" or "replicas" in m.body["spec"])]
    count = max(1, round(len(desired.manifests) * share))
    step = max(1, len(targets) // count)
    chosen = targets[::step][:count]
    try:
        for manifest in chosen:
            ns, name = manifest.ref.namespace, manifest.ref.name
            if manifest.ref.kind == "ConfigMap":
                path = f"/api/v1/namespaces/{ns}/configmaps/{name}"
                first = list(manifest.body.get("data") or {})[:1]
                body: dict[str, Any] = {"data": dict.fromkeys(first, "drifted")}
            else:
                path = f"/apis/apps/v1/namespaces/{ns}/deployments/{name}/scale"
                body = {"spec": {"replicas": manifest.body["spec"]["replicas"] + 1}}
            answer = client.request("PATCH", path, query=[("fieldManager", "bench-drift")],
                                    body=body, content_type="application/merge-patch+json")
            if not answer.ok:
                raise SystemExit(f"drift {path}: {answer.message}")
    finally:
        client.close()
    return len(chosen)


def _requests_agentctl(stderr: str) -> int:
    """Requests from agentctl's `-v` summary line (`N LIST, N PATCH dryRun, …`)."""
    return sum(int(n) for n in re.findall(r"(\d+) (?:GET|LIST|PATCH|POST|DELETE|PUT)\b",
                                          stderr.rsplit("(context", 1)[-1]))


def _requests_kubectl(stderr: str) -> int:
    """Requests from kubectl's `-v=6` log (one `"Response" verb=… url=…` line each)."""
    return len(re.findall(r'"Response" verb="[A-Z]+"', stderr))


def measure(commands: dict[str, list[str]], runs: int,
            ok: tuple[int, ...] = (0, 1)) -> dict[str, tuple[Run, int]]:
    """Each command `runs` times, in turns; the median run and its request count."""
    from benchmarks.reconcile import run  # it builds on this module
    results: dict[str, list[Run]] = {name: [] for name in commands}
    for _ in range(runs):
        for name, command in commands.items():
            result = run(command, Path(os.devnull))
            if result.returncode not in ok:
                tail = "\n".join(result.stderr.strip().splitlines()[-8:])
                raise SystemExit(f"{name} failed (exit {result.returncode}):\n{tail}")
            results[name].append(result)
    out = {}
    for name, rs in results.items():
        middle = sorted(rs, key=lambda r: r.seconds)[len(rs) // 2]
        count = (_requests_kubectl if "kubectl" in name else _requests_agentctl)(middle.stderr)
        out[name] = (Run(statistics.median(r.seconds for r in rs), middle.cpu_seconds,
                         middle.kernel_seconds, max(r.max_rss_mb for r in rs),
                         middle.returncode, ""), count)
    return out


def table(rows: list[tuple[str, ...]]) -> str:
    header = ("measurement", "seconds", "requests", "peak RSS", "exit", "kubectl / agentctl")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
             for r in [header, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agents", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--drift", type=float, default=0.01, help="share of objects drifted")
    args = parser.parse_args(argv)
    exe, kubectl = agentctl(), str(building.binary("kubectl"))
    with tempfile.TemporaryDirectory(prefix="agentctl-bench-diff-") as tmp, \
            running.running(binaries=building.ensure(), log=_log) as sandbox:
        root, kubeconfig = Path(tmp) / "fleet", sandbox.kubeconfig
        desired = prepare(root, args.agents, kubeconfig)
        objects = len(desired.manifests)
        started = time.perf_counter()
        apply(kubeconfig, desired)
        _log(f"applied {objects} objects in {time.perf_counter() - started:.1f} s")
        time.sleep(5)  # let the controllers' first wave of ReplicaSets and pods pass
        ours = [exe, "-C", str(root), "diff", "--env", ENV, "--kubeconfig", str(kubeconfig),
                "-o", "json", "-v", "--force-conflicts"]
        theirs = [kubectl, "--kubeconfig", str(kubeconfig), "diff", "--server-side",
                  "--field-manager=agentctl", "--force-conflicts", "-R", "-v=6",
                  "-f", str(root / "rendered" / ENV / desired.namespace)]
        rows: list[tuple[str, ...]] = []
        _log(f"measuring with no drift (load {_load()})")
        clean = measure({"agentctl": ours, "kubectl": theirs}, args.runs)
        drifted_count = drift(kubeconfig, desired, args.drift)
        _log(f"drifted {drifted_count} objects; measuring (load {_load()})")
        dirty = measure({"agentctl": ours, "kubectl": theirs, "agentctl --full":
                         [*ours, "--full"]}, args.runs)
        for label, results in ((f"no drift, {objects} objects", clean),
                               (f"{drifted_count} objects drifted", dirty)):
            kube_run = results["kubectl"][0]
            for name, (result, count) in results.items():
                ratio = kube_run.seconds / result.seconds if name != "kubectl" else 1.0
                rows.append((f"{label}: {name}", f"{result.seconds:.2f}", str(count),
                             f"{result.max_rss_mb:.0f} MB", str(result.returncode),
                             f"{ratio:.1f}×" if name != "kubectl" else ""))
        print(f"agentctl diff vs kubectl diff --server-side; {objects} objects in one "
              f"namespace; {args.runs} runs each, median; {os.cpu_count()} CPUs; load "
              f"{_load()}; target: kubectl / agentctl >= {SPEEDUP:.0f}× with no drift")
        print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
