"""`agentctl sandbox up|down|status`: a local simulated cluster (real etcd, kube-apiserver,
controller-manager and scheduler; kwok fake nodes), kept under `$XDG_STATE_HOME/agentctl/sandbox`.

`up` builds the binaries if needed (or takes them from `$AGENTCTL_SANDBOX_BIN`), starts the
cluster and prints `export KUBECONFIG=<path>`; `down` stops it and removes its state; `status`
reports it and exits 3 when it is not running and ready. Missing Go, a failed build or a failed
start exit 6 with the reason (and the build or component logs)."""

from __future__ import annotations

from typing import Annotated

import typer

from agentctl.cli.handling import console_for, handled
from agentctl.errors import ClusterError, ExitCode


def _up(
    ctx: typer.Context,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the cluster to be ready.",
                                           min=5)] = 120.0,
) -> ExitCode:
    """Build (if needed) and start the sandbox; print `export KUBECONFIG=<path>`."""
    from agentctl.sandbox import building, running

    console = console_for(ctx)
    root = running.state_root()
    current = running.status(root)
    if current.ready:
        console.info(f"sandbox {current.name!r} is already running")
    else:
        if current.exists:
            running.stop(root, log=console.info)
        try:
            binaries = building.ensure(log=console.info)
            running.start(root, binaries=binaries, log=console.info, timeout=timeout)
        except building.BuildError as err:
            console.info(err.tail)
            raise
        except running.StartError as err:
            console.info(err.logs)
            raise
    kubeconfig = root / running.KUBECONFIG_NAME
    console.data({"name": running.DEFAULT_NAME, "kubeconfig": str(kubeconfig)},
                 text=f"export KUBECONFIG={kubeconfig}")
    return ExitCode.OK


def _down(ctx: typer.Context) -> ExitCode:
    """Stop the sandbox and remove its state (no process is left behind)."""
    from agentctl.sandbox import running

    console = console_for(ctx)
    root = running.state_root()
    if not root.exists():
        console.info("no sandbox to stop")
        return ExitCode.OK
    running.stop(root, log=console.info)
    console.info(f"sandbox {running.DEFAULT_NAME!r} stopped")
    return ExitCode.OK


def _status(ctx: typer.Context) -> ExitCode:
    """Show whether the sandbox runs; exit 3 unless it is running and ready."""
    from agentctl.sandbox import running

    console = console_for(ctx)
    st = running.status(running.state_root())
    state = "ready" if st.ready else "not ready" if st.exists else "not running"
    lines = [f"sandbox {st.name!r}: {state}"]
    if st.exists:
        lines.append(f"kubeconfig: {st.kubeconfig}")
        lines += [f"  {c}: {'running' if up else 'stopped'}" for c, up in st.components.items()]
        if st.detail and not st.ready:
            lines.append(f"  apiserver: {st.detail}")
    console.data({"name": st.name, "state": state, "kubeconfig": str(st.kubeconfig),
                  "components": dict(st.components)}, text="\n".join(lines))
    if not st.ready:
        raise ClusterError(f"sandbox {st.name!r} is {state}: run `agentctl sandbox up`")
    return ExitCode.OK


def register(app: typer.Typer) -> None:
    sandbox = typer.Typer(help="A local simulated cluster (real control plane, kwok fake nodes).",
                          no_args_is_help=True)
    sandbox.command("up")(handled(_up))
    sandbox.command("down")(handled(_down))
    sandbox.command("status")(handled(_status))
    app.add_typer(sandbox, name="sandbox")
