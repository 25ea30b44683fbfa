"""`agentctl sandbox up|down|status`: a local simulated cluster."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    sandbox = typer.Typer(help="A local simulated cluster (real control plane, kwok fake nodes).",
                          no_args_is_help=True)
    app.add_typer(sandbox, name="sandbox")
