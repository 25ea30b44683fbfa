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
    # A command is one short process. Its start builds only objects that live until exit
    # (modules, model classes, validators, templates), and its work makes data that reference
    # counting frees: the cycle collector would trace the first again and again and find
    # nothing, and at exit it would trace and free everything once more. Render workers inherit
    # this; a command that runs long (waiting on a cluster) turns it back on with `gc.enable()`.
    gc.disable()
    try:
        from agentctl.cli import main as cli

        cli()
    finally:
        gc.freeze()  # exit without a last collection of everything


if __name__ == "__main__":
    main()
