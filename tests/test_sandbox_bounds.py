"""A template's time and allocation are bounded in any thread, and memory before the C call:
CPython cannot interrupt one call such as `center(200000000)`, so each operation that can build
a large value is sized before it runs."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from agentctl.errors import InputError
from agentctl.render import pipeline, sandboxing
from tests.hostile.projects import blueprint, write_project

HUGE = [
    ('{{ "x" | center(200000000) }}', "center"),
    ('{{ "x".center(200000000) }}', "center"),
    ('{{ "x".ljust(200000000) }}', "ljust"),
    ('{{ "%200000000s" | format("x") }}', "format"),
    ('{{ "%*s" % (200000000, "x") }}', "%"),
    ('{{ "{:>200000000}".format("x") }}', "format"),
    ('{{ ("x" * 900000) | replace("x", "yyyyyyyyyy") }}', "replace"),
    ('{{ ("a\n" * 400000) | indent(300) }}', "indent"),
    ('{{ ("\t" * 900000).expandtabs(64) }}', "expandtabs"),
    ('{{ [1] | slice(200000000) | list }}', "slice"),
    ('{% set ns = namespace(s="x" * 1000) %}{% for i in range(30) %}'
     '{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s | length }}', "~"),
    ('{% set ns = namespace(s="x" * 1000) %}{% for i in range(30) %}'
     '{% set ns.s = ns.s + ns.s %}{% endfor %}{{ ns.s | length }}', "+"),
    ('{% set ns = namespace(l=[]) %}{% for i in range(100000) %}'
     '{% do ns.l.append("y" * 999990 ~ i) %}{% endfor %}', "built more than"),
    # one big value referenced many times: small to build, huge to write out or walk
    ('{{ (["x" * 999999] * 5000) | sha256 }}', "sha256"),
    ('{{ ["x" * 999999] * 300 }}', "writing out"),
    ('{{ (["x" * 999999] * 300) | tojson }}', "tojson"),
    ('{{ (["x" * 999999] * 300) | string }}', "string"),
    ('{{ (["x" * 999999] * 300) | pprint }}', "pprint"),
    ('{{ ([[1] * 999999] * 60) | sum(start=[]) | length }}', "sum"),
    ('{{ (["x" * 999999] * 20000) | unique | list | length }}', "unique"),
    ('{{ "{}".format(["x" * 999999] * 300) | length }}', "format"),
    ('{{ ("%s" % ((["x" * 999999] * 300),)) | length }}', "%"),
    ('{{ (["x" * 999999] * 300) | join(",") | length }}', "join"),
    ('{{ ["x" * 999999] * 3 ~ "y" }}', "~"),
]


def _template(expression: str) -> str:
    return ("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\ndata:\n"
            f"  v: {expression}\n")


@pytest.mark.parametrize(("expression", "named"), HUGE, ids=[h[1] for h in HUGE])
def test_a_huge_value_is_refused_before_it_is_built(tmp_path: Path, expression: str,
                                                     named: str) -> None:
    root = write_project(tmp_path, blueprint(_template(expression)))
    with pytest.raises(InputError) as raised:
        pipeline.render(root, ("dev",))
    text = "\n".join(str(p) for p in raised.value.problems)
    assert "blueprints/evil/main.yaml.j2" in text
    assert named in text, text


PROBE = """
import sys
from pathlib import Path
from agentctl.errors import InputError
from agentctl.render import pipeline
try:
    pipeline.render(Path(sys.argv[1]), ("dev",))
except InputError as err:
    print(err.problems[0].message, file=sys.stderr)
status = Path("/proc/self/status").read_text().splitlines()
print(next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) // 1024)
"""


def test_center_200000000_never_allocates_it(tmp_path: Path) -> None:
    """In a fresh process, so the peak (VmHWM: ru_maxrss would carry the parent's over the exec)
    is this render's: 818 MB were seen before the CPU limit stopped the old sandbox."""
    root = write_project(tmp_path, blueprint(_template('{{ "x" | center(200000000) }}')))
    proc = subprocess.run([sys.executable, "-c", PROBE, str(root)], capture_output=True,
                          text=True, check=True, cwd=Path(__file__).parent.parent)
    assert "center" in proc.stderr
    assert int(proc.stdout.split()[-1]) < 150, proc.stdout  # MB: the interpreter and the stack


def test_ordinary_values_still_render(tmp_path: Path) -> None:
    """The bounds leave room for what templates do: formatting numbers, padding, joining."""
    expression = ('{{ "%d-%s" | format(4294967296, "x") ~ ("a" * 10) | center(20) ~ '
                  '["p", "q"] | join(",") ~ "{}/{}".format(1, 2) ~ "b" | replace("b", "c") }}')
    root = write_project(tmp_path, blueprint(_template(expression)))
    result = pipeline.render(root, ("dev",))
    assert result.manifests[0].body["data"]["v"] == "4294967296-x     aaaaaaaaaa     p,q1/2c"


EMPTY_NESTED_LOOP = ("{% set items = range(100000) | list %}"
                     "{% for i in items %}{% for j in items %}{% endfor %}{% endfor %}")
"""No call, filter or operator inside the loops: only the loops themselves can see the time."""


def test_the_time_limit_holds_in_a_thread(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The old limit was a SIGPROF timer: main thread only. An empty nested loop calls nothing
    the sandbox sees, yet stops, in a worker thread, after the render's CPU time."""
    monkeypatch.setattr(sandboxing, "MAX_SECONDS", 0.5)
    root = write_project(tmp_path, blueprint(_template("{{ 1 }}" + EMPTY_NESTED_LOOP)))
    before = resource.getrusage(resource.RUSAGE_SELF)
    with ThreadPoolExecutor(max_workers=1) as pool, pytest.raises(InputError) as raised:
        pool.submit(pipeline.render, root, ("dev",)).result(timeout=60)
    used = resource.getrusage(resource.RUSAGE_SELF).ru_utime - before.ru_utime
    assert "took more than 0.5s of CPU time" in str(raised.value)
    assert used < 20


def test_two_threads_each_keep_their_own_budget(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """One runaway render in a thread does not fail a good one rendering beside it."""
    monkeypatch.setattr(sandboxing, "MAX_SECONDS", 0.5)
    bad = write_project(tmp_path / "bad", blueprint(_template("{{ 1 }}" + EMPTY_NESTED_LOOP)))
    good = write_project(tmp_path / "good", blueprint(_template("{{ 2 }}")))
    with ThreadPoolExecutor(max_workers=2) as pool:
        failing = pool.submit(pipeline.render, bad, ("dev",))
        fine = [pool.submit(pipeline.render, good, ("dev",)) for _ in range(20)]
        assert all(json.dumps(f.result().manifests[0].body["data"]) == '{"v": 2}' for f in fine)
        with pytest.raises(InputError):
            failing.result()
