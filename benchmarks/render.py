"""Render benchmark: agentctl beside `helm template` of the equivalent chart, in one run.

Prints one table (targets beside the measured numbers; nothing is asserted):

- cold start: `agentctl render --env dev` of a one-agent project, as a subprocess, median wall
  time of `--runs` runs (target: within 0.10 s of the floor); helm template of the same agent
  beside it, and as the floor a Python that only imports the libraries agentctl is built on
  (typer, pydantic, Jinja2, PyYAML). The three take turns, so a change in the machine's speed
  hits all alike. Beside it, the first run after installing (or changing) agentctl, which
  compiles the blueprint templates that later runs load from Jinja's bytecode cache;
- fleet: `agentctl render --all-envs --out` of a generated `--agents` × 3-environment fleet
  beside `helm template` of `benchmarks/chart` for the 3 environments (target: helm's time at
  least 2× agentctl's, the ratio printed);
- validate: `agentctl validate` of the same fleet, "n/a" if the command is absent;
- peak RSS of each subprocess (`os.wait4`; target ≤ 400 MB for the agentctl render);
- floors: `json.dumps` (and libyaml's `yaml.dump`) of the same objects, in process.

It also checks that both tools produced the same kind/namespace/name set, so the comparison is
of equal work. `--profile` adds a cProfile of the fleet render (in process) with its top entries.

Run from the repository root: `python -m benchmarks.render` (or `python benchmarks/render.py`).
"""

from __future__ import annotations

import argparse
import compileall
import cProfile
import importlib.util
import io
import json
import os
import platform
import pstats
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import yaml

from benchmarks import fleet, helm

COLD_OVER_FLOOR_S = 0.10
FLEET_SPEEDUP = 2.0
RSS_TARGET_MB = 400.0
STACK_IMPORTS = ("import gc; gc.disable(); import jinja2.sandbox, typer, yaml; "
                 "from pydantic import BaseModel; gc.freeze()")
"""The cold start's floor: the libraries every agentctl command loads, imported and unused,
with the collector off during start-up and at exit as `agentctl` has it."""


@dataclass(frozen=True)
class Run:
    seconds: float
    cpu_seconds: float
    """User and kernel time."""
    kernel_seconds: float
    max_rss_mb: float
    returncode: int
    stderr: str


def run(command: Sequence[str], stdout: Path | None = None,
        env: dict[str, str] | None = None) -> Run:
    """Run one subprocess; wall time from spawn to exit, CPU and kernel time, the child's own
    peak RSS.

    Dirty pages are flushed first (`sync`), so no run pays for the writeback of the files an
    earlier step wrote. Creating files is kernel time that depends on the filesystem's state
    (on ext4 without a journal, allocating inodes slows down for a while after many files were
    deleted), which is why the kernel share is printed apart."""
    os.sync()
    err_fd, err_path = tempfile.mkstemp(prefix="bench-stderr-")
    out_target = stdout.open("wb") if stdout is not None else open(os.devnull, "wb")  # noqa: SIM115
    try:
        with out_target, os.fdopen(err_fd, "wb") as err:
            started = time.perf_counter()
            proc = subprocess.Popen(list(command), stdout=out_target, stderr=err,
                                    stdin=subprocess.DEVNULL,
                                    env=None if env is None else {**os.environ, **env})
            _, status, usage = os.wait4(proc.pid, 0)
            seconds = time.perf_counter() - started
            proc.returncode = os.waitstatus_to_exitcode(status)
        text = Path(err_path).read_text(errors="replace")
    finally:
        os.unlink(err_path)
    return Run(seconds, usage.ru_utime + usage.ru_stime, usage.ru_stime,
               usage.ru_maxrss / 1024, proc.returncode, text)


def checked(result: Run, what: str) -> Run:
    if result.returncode != 0:
        tail = "\n".join(result.stderr.strip().splitlines()[-10:])
        raise SystemExit(f"{what} failed (exit {result.returncode}):\n{tail}")
    return result


def agentctl() -> str:
    found = shutil.which("agentctl", path=str(Path(sys.executable).parent)) or shutil.which(
        "agentctl")
    if found is None:
        raise SystemExit("agentctl is not installed in this Python environment")
    return found


def has_validate(exe: str) -> bool:
    return run([exe, "validate", "--help"]).returncode == 0


def median_runs(commands: Sequence[tuple[Sequence[str], str]], runs: int) -> list[Run]:
    """Each command `runs` times, taking turns (so a change in the machine's speed during the
    measurement affects all of them alike); the median run of each."""
    results: list[list[Run]] = [[] for _ in commands]
    for _ in range(runs):
        for (command, what), own in zip(commands, results, strict=True):
            own.append(checked(run(command), what))
    return [Run(statistics.median(r.seconds for r in rs),
                statistics.median(r.cpu_seconds for r in rs),
                statistics.median(r.kernel_seconds for r in rs),
                max(r.max_rss_mb for r in rs), 0, "") for rs in results]


def floors(bodies: list[dict[str, Any]]) -> tuple[float, float, float]:
    """Seconds to serialise the objects with json.dumps, with libyaml's yaml.dump, and with
    agentctl's writer (libyaml's bytes, see `agentctl.render.formatting.dump`), in this process."""
    from agentctl.render import formatting

    dumper: Any = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    started = time.perf_counter()
    for body in bodies:
        json.dumps(body, sort_keys=True)
    json_s = time.perf_counter() - started
    started = time.perf_counter()
    for body in bodies:
        yaml.dump(body, Dumper=dumper, sort_keys=True, default_flow_style=False, width=1_000_000)
    yaml_s = time.perf_counter() - started
    started = time.perf_counter()
    formatter = formatting.Formatter()
    for body in bodies:
        formatter.dump(body)
    return json_s, yaml_s, time.perf_counter() - started


def profile(project: Path, out: Path, top: int) -> str:
    """cProfile of the fleet render and write, in process; the top entries by own time and
    by cumulative time."""
    from agentctl.render import pipeline

    profiler = cProfile.Profile()
    profiler.enable()
    # as `agentctl render --all-envs --out` does
    pipeline.write(pipeline.plan(pipeline.render(project, all_envs=True, workers=None), out))
    profiler.disable()
    text = io.StringIO()
    stats = pstats.Stats(profiler, stream=text)
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)
    return text.getvalue()


def total(runs: Sequence[Run]) -> Run:
    """Several sequential runs as one: summed times, the largest peak RSS."""
    return Run(sum(r.seconds for r in runs), sum(r.cpu_seconds for r in runs),
               sum(r.kernel_seconds for r in runs), max(r.max_rss_mb for r in runs), 0, "")


def _t(result: Run | None) -> str:
    if result is None:
        return "-"
    return (f"{result.seconds:.2f} s (cpu {result.cpu_seconds:.2f}, kernel "
            f"{result.kernel_seconds:.2f})")


def _mb(result: Run | None) -> str:
    return "-" if result is None else f"{result.max_rss_mb:.0f} MB"


def _verdict(value: float | None, target: float) -> str:
    if value is None:
        return ""
    return "ok" if value <= target else "over"


Row = tuple[str, str, str, str, str, str]


def table(rows: list[Row]) -> str:
    header: Row = ("measurement", "agentctl", "helm", "floor", "target", "")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(6)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
             for r in [header, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths if w))
    return "\n".join(lines)


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def bench(args: argparse.Namespace, work: Path) -> tuple[str, list[Row]]:
    """Run every measurement; return a summary line and the table rows."""
    exe = agentctl()
    helm_exe = helm.find_helm()
    _log(f"generating {args.agents} agents × 3 environments in {work}")
    generated = fleet.generate(args.agents, args.seed)
    project = fleet.write_project(generated, work / "fleet")
    values = fleet.write_chart_values(generated, work / "fleet-helm")
    one = fleet.generate(1, args.seed)
    one_project = fleet.write_project(one, work / "one")
    one_values = fleet.write_chart_values(one, work / "one-helm")

    # An installed package has its bytecode compiled by pip; an editable one in an environment
    # with PYTHONDONTWRITEBYTECODE would compile every module at every start instead.
    spec = importlib.util.find_spec("agentctl")
    if spec is not None and spec.origin is not None:
        compileall.compile_dir(Path(spec.origin).parent, quiet=1)
    _log(f"cold start: agentctl render of one agent, {args.runs} runs")
    cold_commands = [([exe, "-C", str(one_project), "render", "--env", "dev"],
                      "agentctl render (one agent)"),
                     ([sys.executable, "-c", STACK_IMPORTS], "the stack's imports")]
    if helm_exe:
        cold_commands.append((helm.template_command(helm_exe, one_values["dev"]),
                              "helm template (one agent)"))
    cold, stack, *cold_helm_runs = median_runs(cold_commands, args.runs)
    cold_helm = cold_helm_runs[0] if cold_helm_runs else None
    _log("first run: the same render with an empty template cache, 3 runs")
    first = [checked(run(cold_commands[0][0], env={"XDG_CACHE_HOME": str(work / f"cache-{i}")}),
                     "agentctl render (one agent, empty cache)") for i in range(3)]
    first_run = sorted(first, key=lambda r: r.seconds)[1]

    _log(f"fleet: agentctl render --all-envs --out, {args.fleet_runs} run(s)")
    runs = []
    for i in range(args.fleet_runs):  # a new tree each time: deleting one slows the next
        out = work / f"rendered-{i}"
        runs.append(checked(run([exe, "-C", str(project), "render", "--all-envs", "--out",
                                 str(out)]), "agentctl render (fleet)"))
    ours = sorted(runs, key=lambda r: r.seconds)[len(runs) // 2]
    bodies = helm.load_tree(out)
    _log("fleet: agentctl render --all-envs, one stream to a file (as helm writes)")
    streamed = checked(run([exe, "-C", str(project), "render", "--all-envs"],
                           stdout=work / "stream.yaml"), "agentctl render (fleet, stream)")

    theirs: Run | None = None
    same = "helm not found: run `python -m agentctl.sandbox.building --dev-tools`"
    if helm_exe is not None:
        _log("fleet: helm template of the chart, once per environment")
        helm_runs, mismatched = [], []
        for env, files in values.items():
            stream = work / f"helm-{env}.yaml"
            helm_runs.append(checked(run(helm.template_command(helm_exe, files), stdout=stream),
                                     f"helm template ({env})"))
            if (helm.identities(helm.load_stream(stream.read_text()))
                    != helm.identities(helm.load_tree(out / env))):
                mismatched.append(env)
        theirs = total(helm_runs)
        same = ("yes" if not mismatched else f"NO in {', '.join(mismatched)}: the chart no "
                "longer matches the blueprint, so the timings compare different work")

    validate: Run | None = None
    if has_validate(exe):
        _log("validate: agentctl validate of the fleet")
        validate = checked(run([exe, "-C", str(project), "validate"]), "agentctl validate")
    else:
        _log("validate: n/a (validate not available in this agentctl)")

    json_s, yaml_s, ours_s = floors(bodies)
    def speedup(ours_run: Run) -> tuple[str, str]:
        if theirs is None:
            return "", ""
        ratio = theirs.seconds / ours_run.seconds
        return f"helm/agentctl {ratio:.1f}× (≥ {FLEET_SPEEDUP:g}×)", _verdict(
            FLEET_SPEEDUP, ratio)

    over_floor = cold.seconds - stack.seconds
    rows: list[Row] = [
        ("cold start, 1 agent (median)", _t(cold), _t(cold_helm),
         f"{stack.seconds:.2f} s imports",
         f"+{over_floor:.2f} s (≤ +{COLD_OVER_FLOOR_S:.2f} s)",
         _verdict(over_floor, COLD_OVER_FLOOR_S)),
        ("  first run (templates compiled)", _t(first_run), "", "", "", ""),
        (f"{args.agents} agents × 3 envs, --out", _t(ours), _t(theirs), f"{json_s:.2f} s json",
         *speedup(ours)),
        ("  same, one stream", _t(streamed), _t(theirs), "", *speedup(streamed)),
        ("  serialise only", f"{ours_s:.2f} s writer", "", f"{yaml_s:.2f} s yaml.dump", "",
         ""),
        ("validate, same fleet", _t(validate) if validate else "n/a (validate not available)",
         "-", "-", "", ""),
        ("peak RSS, fleet render", _mb(ours), _mb(theirs), "-", f"≤ {RSS_TARGET_MB:.0f} MB",
         _verdict(ours.max_rss_mb, RSS_TARGET_MB)),
    ]
    if validate:
        rows.append(("peak RSS, validate", _mb(validate), "-", "-", "", ""))
    summary = (f"{len(bodies)} objects in {len(values)} environments; same kind/namespace/name "
               f"set as helm: {same}\nhelm: {helm_exe or 'not found'}")
    if args.profile:
        _log("profiling the fleet render in process")
        summary += "\n\n" + profile(project, work / "profiled", args.top)
    return summary, rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.render", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--agents", type=int, default=1000, help="fleet size (default 1000)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--runs", type=int, default=11, help="cold-start runs (median)")
    parser.add_argument("--fleet-runs", type=int, default=3, help="fleet render runs (median)")
    parser.add_argument("--keep", type=Path, help="work in this directory and keep it")
    parser.add_argument("--profile", action="store_true", help="also cProfile the fleet render")
    parser.add_argument("--top", type=int, default=25, help="profile entries to print")
    args = parser.parse_args(argv)

    work = args.keep or Path(tempfile.mkdtemp(prefix="agentctl-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    load_before = _load()
    try:
        summary, rows = bench(args, work)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    print(f"agentctl render benchmark: {platform.python_implementation()} "
          f"{platform.python_version()}, {os.cpu_count()} cores, load average {load_before} "
          f"before and {_load()} after (wall times suffer from other load; cpu times less)")
    print(table(rows))
    print(summary)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
