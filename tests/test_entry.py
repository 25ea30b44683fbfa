"""The `agentctl` command's process settings (`agentctl.__main__`): no cycle collection during
start-up, collection as usual once a command works, and none at exit."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO

PROBE = """
import gc, json, sys
from agentctl.render import pipeline

seen = {}
real = pipeline.render

def render(*args, **kwargs):
    seen["enabled"] = gc.isenabled()
    seen["frozen"] = gc.get_freeze_count()
    return real(*args, **kwargs)

pipeline.render = render
sys.argv = ["agentctl", "-C", sys.argv[1], "render", "--env", "dev"]
try:
    from agentctl.__main__ import main
    main()
finally:
    seen["frozen_at_exit"] = gc.get_freeze_count()
    print(json.dumps(seen), file=sys.stderr)
"""


def test_the_command_collects_cycles_while_it_works_and_not_at_start_or_exit() -> None:
    proc = subprocess.run([sys.executable, "-c", PROBE, str(REPO)], capture_output=True,
                          text=True, check=False, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("---\napiVersion:")
    seen = json.loads(proc.stderr.strip().splitlines()[-1])
    assert seen["enabled"] is True  # a failed render's reference cycles are collected
    assert seen["frozen"] > 10_000  # start-up's objects, never traced again
    assert seen["frozen_at_exit"] > seen["frozen"]  # and at exit all that the work kept too


def test_importing_the_cli_changes_nothing_about_the_process(tmp_path: Path) -> None:
    code = "import gc; import agentctl.cli; print(gc.isenabled(), gc.get_freeze_count())"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, cwd=tmp_path)
    assert proc.stdout.split() == ["True", "0"]
