"""The `agentctl` command (and `python -m agentctl`): process-wide settings, then the CLI.

Kept apart from `agentctl.cli` so that importing the CLI (as the tests do) changes nothing about
the importing process.
"""

import gc
import os
import sys


def main() -> None:
    """Console-script entry point."""
    # agentctl uses no pydantic plugins; looking for them reads every installed package's entry
    # points (benchmarks/README.md). Set the variable to opt back in.
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    # The objects start-up builds (modules, model classes, validators) live until exit: the
    # cycle collector is off while they are built, they are frozen out of its sight, and the
    # process ends without a last collection. Measured in benchmarks/README.md.
    gc.disable()
    try:
        from agentctl.cli import main as cli
    except Exception as err:
        print(f"agentctl: internal error: {type(err).__name__}: {err}", file=sys.stderr)
        raise SystemExit(70) from None
    gc.freeze()
    gc.enable()
    try:
        cli()
    finally:
        gc.freeze()


if __name__ == "__main__":
    main()
