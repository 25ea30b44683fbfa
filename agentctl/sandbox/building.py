"""Build (or reuse) the sandbox binaries from their Go modules.

Inputs: the pinned versions below, the `go` on PATH (run with `GOTOOLCHAIN=local` and the Go
client's own configured defaults; no registry setting is ever written), and the environment:

- `AGENTCTL_SANDBOX_BIN`: a directory of prebuilt binaries. A binary found there is used as is;
  when it is set, the cluster binaries are never built (a missing one is an error).
- `XDG_CACHE_HOME` (default `~/.cache`): binaries land in
  `$XDG_CACHE_HOME/agentctl/sandbox/<group>-<version>/`, one directory per pinned group, so a
  version bump builds only what changed and old builds never shadow new ones.

Outputs: the binaries, and `binary(name) -> Path`.

Invariants: idempotent (a warm cache runs no `go` command at all); a group directory appears
only complete (built in a sibling temporary directory, then renamed); concurrent builders
serialise on a file lock; the wrapper modules live in a throwaway directory and are never
`go mod tidy`-ed; `go` runs one build at a time (it already uses both cores).

Run `python -m agentctl.sandbox.building [--dev-tools]`: prints `name: path` per binary on stdout
and progress on stderr; exit 6 with a one-line reason when Go is missing or a build fails.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from agentctl.errors import ToolingError

KUBERNETES_VERSION = "v1.37.2"
ETCD_VERSION = "v3.7.3"
KWOK_VERSION = "v0.8.0"
ACTIONLINT_VERSION = "v1.7.12"
HELM_VERSION = "v4.3.1"
MIN_GO = (1, 26)
BIN_ENV = "AGENTCTL_SANDBOX_BIN"

Log = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


@dataclass(frozen=True)
class Group:
    """Binaries built together from one module version."""

    name: str
    version: str
    binaries: tuple[str, ...]
    dev: bool = False
    extras: tuple[str, ...] = ()  # other files or directories the group's build provides

    @property
    def dirname(self) -> str:
        return f"{self.name}-{self.version}"


KUBERNETES = Group("kubernetes", KUBERNETES_VERSION,
                   ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl"))
ETCD = Group("etcd", ETCD_VERSION, ("etcd",))
KWOK = Group("kwok", KWOK_VERSION, ("kwok", "kwokctl"), extras=("stages",))
ACTIONLINT = Group("actionlint", ACTIONLINT_VERSION, ("actionlint",), dev=True)
HELM = Group("helm", HELM_VERSION, ("helm",), dev=True)
GROUPS = (KUBERNETES, ETCD, KWOK, ACTIONLINT, HELM)
CLUSTER_BINARIES = tuple(b for g in GROUPS if not g.dev for b in g.binaries)


def cache_root() -> Path:
    """`$XDG_CACHE_HOME/agentctl/sandbox` (default `~/.cache/agentctl/sandbox`)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "agentctl" / "sandbox"


def _group_of(name: str) -> Group:
    for group in GROUPS:
        if name in group.binaries:
            return group
    known = ", ".join(b for g in GROUPS for b in g.binaries)
    raise ToolingError(f"unknown sandbox binary {name!r} (known: {known})")


def _prebuilt(name: str) -> Path | None:
    env = os.environ.get(BIN_ENV)
    if env:
        candidate = Path(env).expanduser() / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate.absolute()
    return None


def cached_path(name: str) -> Path:
    """Where the build puts binary `name` (it may not exist yet)."""
    group = _group_of(name)
    return cache_root() / group.dirname / name


def binary(name: str) -> Path:
    """The path of an existing binary `name`, from `$AGENTCTL_SANDBOX_BIN` or the build cache.

    Raises ToolingError (exit 6) naming the build command when it has not been built.
    """
    found = _prebuilt(name) or cached_path(name)
    if found.is_file():
        return found
    flag = " --dev-tools" if _group_of(name).dev else ""
    raise ToolingError(f"{name} is not built: run `python -m agentctl.sandbox.building{flag}` "
                       f"(needs Go ≥ {MIN_GO[0]}.{MIN_GO[1]}) or set {BIN_ENV} to a directory "
                       f"holding {name}")


def _complete(group: Group) -> bool:
    final = cache_root() / group.dirname
    return all((final / n).is_file() for n in group.binaries) and all(
        (final / e).exists() for e in group.extras)


def missing(dev_tools: bool = False) -> list[str]:
    """The binaries that `ensure(dev_tools)` would still have to build (or find)."""
    return [n for g in GROUPS if dev_tools or not g.dev for n in g.binaries
            if _prebuilt(n) is None and not _complete(g)]


def stage_root() -> Path:
    """kwok's stage YAML (`kustomize/stage` of the kwok module), as the build copied it next to
    kwokctl. With prebuilt binaries, `$AGENTCTL_SANDBOX_BIN/stages` or, when Go is there, the Go
    module cache."""
    candidates = [binary("kwokctl").parent / "stages", cache_root() / KWOK.dirname / "stages"]
    for candidate in candidates:
        if (candidate / "pod" / "fast").is_dir():
            return candidate
    go = shutil.which("go")
    if go is not None:
        proc = subprocess.run([go, "mod", "download", "-json", f"sigs.k8s.io/kwok@{KWOK_VERSION}"],
                              capture_output=True, text=True, env=_go_env(), check=False,
                              cwd=tempfile.gettempdir())
        if proc.returncode == 0:
            found = Path(json.loads(proc.stdout)["Dir"]) / "kustomize" / "stage"
            if found.is_dir():
                return found
    raise ToolingError(f"kwok's stage files are missing: put kwok {KWOK_VERSION}'s "
                       f"kustomize/stage directory at {candidates[0]} or install Go so they "
                       f"can be fetched")


def _copy_stages(module_dir: Path, out: Path) -> None:
    # Copy file by file: the module cache is read-only and copytree would keep that mode.
    src = module_dir / "kustomize" / "stage"
    for path in sorted(src.rglob("*.yaml")):
        rel = path.relative_to(src)
        if "testdata" in rel.parts:
            continue
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_bytes(path.read_bytes())


# -- building ---------------------------------------------------------------------------------


def _go_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(GOTOOLCHAIN="local", CGO_ENABLED="0", GOWORK="off", **extra)
    return env


def _check_go() -> str:
    go = shutil.which("go")
    hint = (f"install Go ≥ {MIN_GO[0]}.{MIN_GO[1]} (your package manager's or the official "
            f"distribution) or set {BIN_ENV} to a directory of prebuilt "
            f"{', '.join(CLUSTER_BINARIES)}")
    if go is None:
        raise ToolingError(f"Go is not on PATH: {hint}")
    out = subprocess.run([go, "env", "GOVERSION"], capture_output=True, text=True,
                         env=_go_env(), check=False).stdout.strip()
    try:
        major, minor = (int(p) for p in out.removeprefix("go").split(".")[:2])
    except ValueError:
        raise ToolingError(f"cannot read the Go version ({out!r}): {hint}") from None
    if (major, minor) < MIN_GO:
        raise ToolingError(f"Go {out} is too old: {hint}")
    return go


class _Runner:
    """Runs `go` commands, appending their output to one build log."""

    def __init__(self, go: str, log_path: Path) -> None:
        self.go, self.log_path = go, log_path

    def __call__(self, args: Sequence[str], cwd: Path, what: str, **env: str) -> str:
        with self.log_path.open("a") as fh:
            fh.write(f"\n$ (cd {cwd}) go {' '.join(args)}\n")
            fh.flush()
            proc = subprocess.run([self.go, *args], cwd=cwd, env=_go_env(**env), text=True,
                                  stdout=subprocess.PIPE, stderr=fh, check=False)
            fh.write(proc.stdout)
        if proc.returncode != 0:
            tail = _tail(self.log_path)
            raise BuildError(f"{what} failed (go exit {proc.returncode}); full log: "
                             f"{self.log_path}", self.log_path, tail)
        return proc.stdout


class BuildError(ToolingError):
    """A `go` command failed; `log` is the build log, `tail` its last lines."""

    def __init__(self, message: str, log: Path, tail: str) -> None:
        super().__init__(message)
        self.log, self.tail = log, tail


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _staging_version(kube: str) -> str:
    return "v0" + kube[kube.index("."):]


def _version_ldflags(version: str, commit: str) -> str:
    major, minor = version.lstrip("v").split(".")[:2]
    flags = ["-s", "-w"]
    for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        flags += [f"-X {pkg}.gitVersion={version}", f"-X {pkg}.gitMajor={major}",
                  f"-X {pkg}.gitMinor={minor}", f"-X {pkg}.gitTreeState=clean"]
        if commit:
            flags.append(f"-X {pkg}.gitCommit={commit}")
    return " ".join(flags)


def _build_kubernetes(run: _Runner, work: Path, out: Path) -> None:
    info = json.loads(run(["mod", "download", "-json", f"k8s.io/kubernetes@{KUBERNETES_VERSION}"],
                          work, "downloading k8s.io/kubernetes"))
    upstream = json.loads(run(["mod", "edit", "-json", info["GoMod"]], work,
                              "reading k8s.io/kubernetes' go.mod"))
    staging = sorted(r["Old"]["Path"] for r in upstream.get("Replace") or []
                     if r["New"]["Path"].startswith("./staging/"))
    if not staging:
        raise ToolingError("k8s.io/kubernetes' go.mod maps no module to ./staging: "
                           "the build recipe no longer matches upstream")
    edits = [f"-replace={m}={m}@{_staging_version(KUBERNETES_VERSION)}" for m in staging]
    edits += [f"-godebug={d['Key']}={d['Value']}" for d in upstream.get("Godebug") or []]
    (work / "go.mod").write_text(f"module agentctl-sandbox-build\n\ngo {upstream['Go']}\n")
    run(["mod", "edit", *edits], work, "writing the wrapper go.mod")
    cmds = [f"k8s.io/kubernetes/cmd/{b}" for b in KUBERNETES.binaries]
    run(["get", *(f"{c}@{KUBERNETES_VERSION}" for c in cmds)], work,
        f"resolving k8s.io/kubernetes {KUBERNETES_VERSION}")
    commit = str((info.get("Origin") or {}).get("Hash") or "")
    run(["build", "-trimpath", "-tags=selinux,notest,grpcnotrace",
         f"-ldflags={_version_ldflags(KUBERNETES_VERSION, commit)}", "-o", f"{out}/", *cmds],
        work, f"building {', '.join(KUBERNETES.binaries)}")


def _build_etcd(run: _Runner, work: Path, out: Path) -> None:
    pkg = "go.etcd.io/etcd/server/v3"
    (work / "go.mod").write_text("module agentctl-sandbox-build-etcd\n\ngo 1.26\n")
    run(["get", f"{pkg}@{ETCD_VERSION}"], work, f"resolving etcd {ETCD_VERSION}")
    run(["build", "-trimpath", "-ldflags=-s -w", "-o", str(out / "etcd"), pkg], work,
        "building etcd")


_INSTALLS = {
    "kwok": ["sigs.k8s.io/kwok/cmd/kwok", "sigs.k8s.io/kwok/cmd/kwokctl"],
    "actionlint": ["github.com/rhysd/actionlint/cmd/actionlint"],
    "helm": ["helm.sh/helm/v4/cmd/helm"],
}


def _go_install(group: Group) -> Callable[[_Runner, Path, Path], None]:
    def build(run: _Runner, work: Path, out: Path) -> None:
        pkgs = [f"{p}@{group.version}" for p in _INSTALLS[group.name]]
        # `go install pkg@version` builds the module exactly as published (its own go.mod).
        run(["install", "-trimpath", "-ldflags=-s -w", *pkgs], work,
            f"building {', '.join(group.binaries)}", GOBIN=str(out))
        if "stages" in group.extras:
            info = json.loads(run(["mod", "download", "-json",
                                   f"{_INSTALLS[group.name][0].rsplit('/cmd/', 1)[0]}@"
                                   f"{group.version}"], work, "locating the kwok module"))
            _copy_stages(Path(info["Dir"]), out / "stages")

    return build


_BUILDERS: dict[str, Callable[[_Runner, Path, Path], None]] = {
    "kubernetes": _build_kubernetes,
    "etcd": _build_etcd,
    "kwok": _go_install(KWOK),
    "actionlint": _go_install(ACTIONLINT),
    "helm": _go_install(HELM),
}


@contextmanager
def _locked(root: Path) -> Iterator[None]:
    root.mkdir(parents=True, exist_ok=True)
    with (root / ".lock").open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _build_group(group: Group, run: _Runner, root: Path) -> None:
    final = root / group.dirname
    with tempfile.TemporaryDirectory(prefix=f".{group.dirname}-", dir=root) as tmp:
        work, out = Path(tmp) / "work", Path(tmp) / "bin"
        work.mkdir()
        out.mkdir()
        _BUILDERS[group.name](run, work, out)
        for name in group.binaries:
            if not (out / name).is_file():
                raise ToolingError(f"building {group.dirname} produced no {name}")
        if final.exists():
            shutil.rmtree(final)
        out.rename(final)


def ensure(dev_tools: bool = False, log: Log = _quiet) -> dict[str, Path]:
    """Build every missing binary (cluster ones; with `dev_tools` also actionlint and helm).

    Returns name → path for each. Warm: runs no `go` command. Raises ToolingError (exit 6).
    """
    groups = [g for g in GROUPS if dev_tools or not g.dev]
    names = [b for g in groups for b in g.binaries]
    todo = missing(dev_tools)
    if todo and os.environ.get(BIN_ENV):
        cluster_missing = [n for n in todo if n in CLUSTER_BINARIES]
        if cluster_missing:
            raise ToolingError(f"{BIN_ENV}={os.environ[BIN_ENV]} lacks "
                               f"{', '.join(cluster_missing)}: add them there or unset {BIN_ENV} "
                               f"to build them with Go")
    if todo:
        go = _check_go()
        root = cache_root()
        with _locked(root):
            run = _Runner(go, root / "build.log")
            run.log_path.write_text(f"agentctl sandbox build log ({time.ctime()})\n")
            for group in groups:
                if not any(n in todo for n in group.binaries) or _complete(group):
                    continue
                started = time.monotonic()
                log(f"building {group.dirname} ({', '.join(group.binaries)}) …")
                _build_group(group, run, root)
                log(f"built {group.dirname} in {time.monotonic() - started:.0f} s")
    return {n: binary(n) for n in names}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m agentctl.sandbox.building",
        description="Build (or reuse) the sandbox binaries: kube-apiserver, "
        "kube-controller-manager, kube-scheduler, kubectl, etcd, kwok, kwokctl.")
    parser.add_argument("--dev-tools", action="store_true",
                        help="also build the test suite's tools: actionlint and helm")
    args = parser.parse_args(argv)

    def log(message: str) -> None:
        sys.stderr.write(message + "\n")
        sys.stderr.flush()

    started = time.monotonic()
    try:
        paths = ensure(dev_tools=args.dev_tools, log=log)
    except ToolingError as err:
        tail = getattr(err, "tail", "")
        if tail:
            log(tail)
        for problem in err.problems:
            log(f"error: {problem}")
        return int(err.exit_code)
    for name, path in paths.items():
        sys.stdout.write(f"{name}: {path}\n")
    log(f"sandbox binaries ready in {time.monotonic() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
