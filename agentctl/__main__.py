"""The `agentctl` command (and `python -m agentctl`): process-wide settings, then the CLI.

Kept apart from `agentctl.cli` so that importing the CLI (as the tests do) changes nothing about
the importing process.
"""

import gc
import os


def main() -> None:
    """Console-script entry point."""
    # agentctl uses no pydantic plugins; looking for them (every installed package's entry
    # points) would be a twentieth of a small render. Set the variable to opt back in.
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    # Start-up (imports, model classes, validators, parsing the command line) builds objects
    # that all live until exit. The cycle collector would trace them again and again and find
    # nothing, and at exit trace and free them all once more: a fifth of a small render's CPU.
    # So it is off until the command starts its work (`agentctl.cli.handling.started` freezes
    # what exists and turns it back on), and at exit everything is frozen: the process ends
    # without a last collection.
    gc.disable()
    try:
        from agentctl.cli import main as cli

        cli()
    finally:
        gc.freeze()  # exit without a last collection of everything


if __name__ == "__main__":
    main()
