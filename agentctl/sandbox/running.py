"""Start, inspect and stop a sandbox cluster: kwokctl `--runtime binary` with local binaries.

Inputs: a state directory (`root`, used as `KWOK_WORKDIR`), a cluster name, the binaries from
`building`, the fake nodes from `specs`. Outputs: a running cluster whose admin kubeconfig is
`root/kubeconfig`, described by a `Sandbox`; progress goes to the `log` callback, never to the
terminal.

Invariants:
- every component listens on 127.0.0.1 only, on ports kwokctl picks free, so clusters in
  different roots run side by side;
- `stop` always leaves no process behind: after `kwokctl delete cluster` it kills whatever still
  runs from the root (by pid file, then by working directory or command line naming the root);
- `start` either returns a ready cluster (nodes Ready, default ServiceAccount and StorageClass
  present) or stops what it started and raises `StartError` carrying the component logs;
- `running()` removes its temporary root on success, failure and Ctrl-C.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from agentctl.errors import ToolingError
from agentctl.sandbox import building, specs

Log = Callable[[str], None]
DEFAULT_NAME = "agentctl"
CONFIG_NAME = "sandbox.yaml"
KUBECONFIG_NAME = "kubeconfig"
_TIMED_OUT = 124  # the return code `_run` reports for a command it had to kill, as timeout(1)


def _quiet(_: str) -> None:
    pass


def state_root(name: str = DEFAULT_NAME) -> Path:
    """Where `agentctl sandbox up` keeps cluster `name`: `$XDG_STATE_HOME/agentctl/sandbox/<name>`
    (default `~/.local/state/…`)."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "agentctl" / "sandbox" / name


class StartError(ToolingError):
    """The cluster did not come up; `logs` holds the tails of kwokctl's and each component's
    log."""

    def __init__(self, message: str, logs: str) -> None:
        super().__init__(message)
        self.logs = logs


@dataclass(frozen=True)
class Sandbox:
    """A running cluster: where its state is and how to reach it."""

    name: str
    root: Path
    kubeconfig: Path

    @property
    def cluster_dir(self) -> Path:
        return self.root / "clusters" / self.name


@dataclass(frozen=True)
class Status:
    """What `status` saw: each component's process, and whether the API server answers."""

    name: str
    root: Path
    kubeconfig: Path
    exists: bool
    components: Mapping[str, bool]
    ready: bool
    detail: str = ""


def _env(root: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["KWOK_WORKDIR"] = str(root)
    env.pop("KUBECONFIG", None)
    return env


def _run(args: Sequence[str], root: Path, log_file: Path, timeout: float,
         stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    with log_file.open("a") as fh:
        fh.write(f"\n[{time.strftime('%H:%M:%S')}] $ {' '.join(args)}\n")
        fh.flush()
        try:
            started = time.monotonic()
            proc = subprocess.run(list(args), input=stdin, text=True, stdout=fh, stderr=fh,
                                  env=_env(root), cwd=root, timeout=timeout, check=False)
            fh.write(f"(exit {proc.returncode} after {time.monotonic() - started:.2f} s)\n")
            return proc
        except subprocess.TimeoutExpired:
            fh.write(f"timed out after {timeout:.0f} s\n")
            return subprocess.CompletedProcess(list(args), _TIMED_OUT)


def _spawn(args: Sequence[str], root: Path, log_file: Path) -> subprocess.Popen[str]:
    """Start `args` in the background, its output going to `log_file`."""
    with log_file.open("a") as fh:
        fh.write(f"\n[{time.strftime('%H:%M:%S')}] $ {' '.join(args)}\n")
        fh.flush()
        return subprocess.Popen(list(args), text=True, stdout=fh, stderr=fh,
                                stdin=subprocess.DEVNULL, env=_env(root), cwd=root)


def _tail(path: Path, lines: int) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(text[-lines:])


def collect_logs(name: str, root: Path, lines: int = 40) -> str:
    """The last `lines` of kwokctl's log and of each component's log, one section each."""
    sections = []
    logs = sorted((root / "clusters" / name / "logs").glob("*.log"))
    for path in [root / "kwokctl.log", root / "kubectl-wait.log", *logs]:
        text = _tail(path, lines)
        if text:
            sections.append(f"==> {path.name} <==\n{text}")
    return "\n".join(sections)


def _kubectl(binaries: Mapping[str, Path], kubeconfig: Path, *args: str) -> list[str]:
    return [str(binaries["kubectl"]), f"--kubeconfig={kubeconfig}", *args]


def start(root: Path, name: str = DEFAULT_NAME, *,
          nodes: Sequence[specs.FakeNode] = specs.DEFAULT_NODES,
          binaries: Mapping[str, Path] | None = None, log: Log = _quiet,
          timeout: float = 120.0) -> Sandbox:
    """Create cluster `name` under `root` and wait until it is usable.

    Raises ToolingError when binaries are missing and StartError (both exit 6) when the cluster
    does not come up, after stopping whatever had started.
    """
    bins = dict(binaries) if binaries is not None else building.ensure(log=log)
    stages, extra_objects = specs.load_kwok_stages(building.stage_root())
    root.mkdir(parents=True, exist_ok=True)
    sandbox = Sandbox(name, root, root / KUBECONFIG_NAME)
    config = root / CONFIG_NAME
    config.write_text(specs.dump([specs.kwokctl_configuration(bins), *stages,
                                  *specs.chaos_stages()]))
    log_file = root / "kwokctl.log"
    started = time.monotonic()
    try:
        log(f"starting sandbox cluster {name!r} in {root} …")
        proc = _run([str(bins["kwokctl"]), f"--config={config}", "create", "cluster",
                     f"--name={name}", "--runtime=binary", f"--kubeconfig={sandbox.kubeconfig}",
                     f"--wait={int(timeout)}s"], root, log_file, timeout + 5)
        if proc.returncode == _TIMED_OUT:
            raise _start_failed(sandbox, f"not ready within {timeout:.0f} s (see the logs; "
                                         f"a slow machine may need a longer timeout)")
        if proc.returncode != 0:
            raise _start_failed(sandbox, f"kwokctl create cluster exited {proc.returncode}")
        # The ServiceAccount controller starts on its own schedule: wait for it alongside the
        # node steps rather than after them.
        sa_wait = _spawn(_kubectl(bins, sandbox.kubeconfig, "wait", "--for=create",
                                  "serviceaccount/default", "-n", "default",
                                  f"--timeout={int(timeout)}s"), root, root / "kubectl-wait.log")
        try:
            objects = [*extra_objects, *(n.manifest() for n in nodes)]
            steps: list[tuple[str, list[str], str | None]] = [
                ("applying nodes and storage", ["apply", "--server-side",
                                                "--field-manager=agentctl-sandbox", "-f", "-"],
                 specs.dump(objects)),
                ("waiting for nodes", ["wait", "--for=condition=Ready", "node", "--all",
                                       f"--timeout={int(timeout)}s"], None),
            ]
            for what, args, stdin in steps:
                proc = _run(_kubectl(bins, sandbox.kubeconfig, *args), root, log_file,
                            timeout + 10, stdin)
                if proc.returncode != 0:
                    raise _start_failed(sandbox, f"{what} failed (kubectl exit "
                                                 f"{proc.returncode})")
            code = sa_wait.wait(timeout + 10)
            if code != 0:
                raise _start_failed(sandbox, "waiting for the default ServiceAccount failed "
                                             f"(kubectl exit {code})")
        finally:
            if sa_wait.poll() is None:
                sa_wait.kill()
                sa_wait.wait()
    except BaseException:
        stop(sandbox.root, name, log=log, binaries=bins, remove=False)
        raise
    log(f"sandbox cluster {name!r} ready in {time.monotonic() - started:.1f} s")
    return sandbox


def _start_failed(sandbox: Sandbox, message: str) -> StartError:
    logs = collect_logs(sandbox.name, sandbox.root)
    return StartError(f"the sandbox cluster did not start: {message}", logs)


# -- stopping ---------------------------------------------------------------------------------


def _pid_files(root: Path) -> list[Path]:
    return sorted(root.glob("clusters/*/pids/*.pid"))


def _argv(pid: int) -> list[str]:
    try:
        raw = (Path("/proc") / str(pid) / "cmdline").read_bytes()
    except OSError:
        return []
    return [a.decode(errors="replace") for a in raw.split(b"\0") if a]


def processes(root: Path) -> list[int]:
    """Live processes of the cluster(s) under `root` (Linux /proc): those started from it
    (kwokctl execs each component through a link in `root/clusters/<name>/bin/`) and those its
    pid files name, if their command line still names `root` (a pid may have been reused).

    A shell or editor that merely sits in `root` is not one of them."""
    prefixes = tuple({str(root.absolute()) + "/", str(root.resolve()) + "/"})
    from_files = set()
    for pid_file in _pid_files(root):
        with contextlib.suppress(OSError, ValueError):
            from_files.add(int(pid_file.read_text().strip()))
    found = []
    with contextlib.suppress(OSError):
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            pid = int(entry.name)
            argv = _argv(pid)
            started_here = bool(argv) and argv[0].startswith(prefixes)
            named = pid in from_files and any(p in a for a in argv for p in prefixes)
            if (started_here or named) and _alive(pid):
                found.append(pid)
    return sorted(found)


def _alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _kill_all(pids: Sequence[int], grace: float) -> None:
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and any(_alive(p) for p in pids):
            time.sleep(0.1)
        pids = [p for p in pids if _alive(p)]
        if not pids:
            return


def stop(root: Path, name: str = DEFAULT_NAME, *, log: Log = _quiet,
         binaries: Mapping[str, Path] | None = None, remove: bool = True) -> None:
    """Delete cluster `name` under `root`; kill any process still running from `root`; with
    `remove`, delete `root` itself. Never raises for a cluster that is already gone."""
    kwokctl: Path | None = None
    with contextlib.suppress(ToolingError):
        kwokctl = binaries["kwokctl"] if binaries else building.binary("kwokctl")
    if kwokctl is not None and (root / "clusters" / name).exists():
        log(f"stopping sandbox cluster {name!r} …")
        _run([str(kwokctl), "delete", "cluster", f"--name={name}",
              f"--kubeconfig={root / KUBECONFIG_NAME}"], root, root / "kwokctl.log", 60)
    left = processes(root)
    if left:
        log(f"killing {len(left)} leftover process(es) of {root}")
        _kill_all(left, grace=5.0)
    if remove:
        shutil.rmtree(root, ignore_errors=True)


def status(root: Path, name: str = DEFAULT_NAME) -> Status:
    """Which components run and whether the API server answers `/readyz`."""
    kubeconfig = root / KUBECONFIG_NAME
    cluster_dir = root / "clusters" / name
    components: dict[str, bool] = {}
    for pid_file in sorted((cluster_dir / "pids").glob("*.pid")):
        try:
            components[pid_file.stem] = _alive(int(pid_file.read_text().strip()))
        except (OSError, ValueError):
            components[pid_file.stem] = False
    ready, detail = False, ""
    if components and all(components.values()):
        try:
            kubectl = building.binary("kubectl")
        except ToolingError as err:
            detail = str(err)
        else:
            proc = subprocess.run([str(kubectl), f"--kubeconfig={kubeconfig}", "get", "--raw",
                                   "/readyz", "--request-timeout=5s"], capture_output=True,
                                  text=True, check=False, env=_env(root), timeout=30)
            ready = proc.returncode == 0 and proc.stdout.strip() == "ok"
            said = (proc.stdout or proc.stderr).strip().splitlines()
            detail = said[-1] if said else ""
    return Status(name, root, kubeconfig, cluster_dir.exists(), components, ready, detail)


@contextlib.contextmanager
def running(nodes: Sequence[specs.FakeNode] = specs.DEFAULT_NODES, *,
            binaries: Mapping[str, Path] | None = None, log: Log = _quiet,
            name: str = DEFAULT_NAME, timeout: float = 120.0) -> Iterator[Sandbox]:
    """A cluster in a fresh temporary root, torn down and removed however the block ends."""
    root = Path(tempfile.mkdtemp(prefix="agentctl-sandbox-"))
    try:
        yield start(root, name=name, nodes=nodes, binaries=binaries, log=log, timeout=timeout)
    finally:
        stop(root, name, log=log, binaries=binaries)
