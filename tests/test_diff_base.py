"""The PR diff (`agentctl diff --base REF`): on generated git repositories, the rendered
difference between a revision and the working tree is exactly the objects added, removed and
changed, no Secret value appears in it, bad revisions are one clear error, and the user's
checkout, index, HEAD, stash and worktree list are exactly as they were."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from agentctl import revisions, scaffolding
from agentctl.cli import app
from agentctl.diffs import EnvChanges, Outcome
from agentctl.errors import ExitCode, InputError, ToolingError
from agentctl.manifests import ObjectRef
from agentctl.render import pipeline
from tests.conftest import REPO, tree

IMAGE = "/spec/template/spec/containers/0/image"


@pytest.fixture(autouse=True)
def scratch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """git without the user's or the machine's configuration, finding no repository above
    tmp_path, and a temporary folder of its own (so that a leftover is seen)."""
    for name in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", os.devnull)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    for role in ("AUTHOR", "COMMITTER"):
        monkeypatch.setenv(f"GIT_{role}_NAME", "Reviewer")
        monkeypatch.setenv(f"GIT_{role}_EMAIL", "reviewer@example.com")
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def git(repo: Path, *args: str) -> str:
    result = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True,
                            check=False, env={**os.environ, "GIT_OPTIONAL_LOCKS": "0"})
    assert result.returncode == 0, result.stderr
    return result.stdout


def new_repo(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "--quiet", "--initial-branch=main")
    return path


def commit(repo: Path, message: str) -> str:
    git(repo, "add", "--all")
    git(repo, "commit", "--quiet", "--no-gpg-sign", "-m", message)
    return git(repo, "rev-parse", "HEAD").strip()


def copy_example(project: Path) -> Path:
    project.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "agentctl.yaml", project / "agentctl.yaml")
    shutil.copytree(REPO / "agents", project / "agents")
    shutil.copytree(REPO / "environments", project / "environments")
    return project


def checkout_state(repo: Path) -> dict[str, object]:
    """Everything a user would notice about their checkout (`write-tree` first: it stores the
    index's cache of trees, which changes the index file's bytes once)."""
    staged = git(repo, "write-tree")
    return {
        "staged": staged,
        "entries": git(repo, "ls-files", "--stage", "-z"),
        "head": git(repo, "rev-parse", "HEAD"),
        "branch": git(repo, "symbolic-ref", "HEAD"),
        "status": git(repo, "status", "--porcelain=v1", "--untracked-files=all", "--ignored"),
        "stash": git(repo, "stash", "list"),
        "worktrees": git(repo, "worktree", "list", "--porcelain"),
        "refs": git(repo, "for-each-ref"),
        "index": hashlib.sha256((repo / ".git" / "index").read_bytes()).hexdigest(),
        "files": {k: v for k, v in tree(repo).items() if not k.startswith(".git/")},
    }


def by_env(result: list[EnvChanges]) -> dict[str, EnvChanges]:
    return {e.env: e for e in result}


def outcomes(env: EnvChanges) -> dict[Outcome, set[ObjectRef]]:
    found: dict[Outcome, set[ObjectRef]] = {o: set() for o in Outcome}
    for change in env.changes:
        found[change.outcome].add(change.ref)
    return found


def refs_of(root: Path, agent: str) -> dict[str, set[ObjectRef]]:
    """The objects one agent renders to, per environment (the render itself is the oracle)."""
    result = pipeline.render(root, all_envs=True, agent=agent)
    return {e.env: {m.ref for m in e.manifests} for e in result.envs}


@pytest.mark.parametrize("prefix", ["", "ops/fleet"], ids=["top", "subfolder"])
def test_shows_exactly_the_added_removed_and_changed_objects(tmp_path: Path,
                                                            prefix: str) -> None:
    repo = new_repo(tmp_path / "repo")
    (repo / "README.md").write_text("a fleet\n")
    project = copy_example(repo / prefix)
    first = commit(repo, "the fleet")
    git(repo, "tag", "v1")
    pristine = copy_example(tmp_path / "pristine")
    removed = refs_of(pristine, "research-memory")

    # One change committed, one staged, one only in the working tree.
    (project / "agents" / "research-memory.yaml").unlink()
    commit(repo, "retire research-memory")
    chat = project / "agents" / "chat-assistant.yaml"
    text = chat.read_text()
    (project / "agents" / "new-bot.yaml").write_text(
        text.replace("name: chat-assistant", "name: new-bot"))
    git(repo, "add", str(project / "agents" / "new-bot.yaml"))
    chat.write_text(text.replace("chat-agent:1.2.0", "chat-agent:1.3.0"))
    added = refs_of(project, "new-bot")
    before = checkout_state(repo)

    result = revisions.diff_base(project, "v1", all_envs=True)

    assert checkout_state(repo) == before
    assert [e.env for e in result] == ["dev", "prod", "staging"]
    for env in result:
        assert env.source == "v1..working tree"
        assert env.namespace == f"agents-{env.env}"
        assert [c.ref for c in env.changes] == sorted(c.ref for c in env.changes)
        found = outcomes(env)
        assert found[Outcome.CREATED] == added[env.env]
        assert found[Outcome.DELETED] == removed[env.env]
        deployment = ObjectRef.of({"apiVersion": "apps/v1", "kind": "Deployment",
                                   "metadata": {"name": "chat-assistant",
                                                "namespace": env.namespace}})
        assert found[Outcome.CONFIGURED] == {deployment}
        assert found[Outcome.UNCHANGED], env.env
        changed = next(c for c in env.changes if c.ref == deployment)
        assert changed.paths == [IMAGE]
        assert "-        image: ghcr.io/inferensys/chat-agent:1.2.0" in changed.unified()
        assert "+        image: ghcr.io/inferensys/chat-agent:1.3.0" in changed.unified()
        for change in env.changes:
            if change.outcome in (Outcome.CREATED, Outcome.DELETED):
                assert change.paths == [""]
                assert (change.before is None) == (change.outcome == Outcome.CREATED)
    # the same revision by other names, and the committed state against itself
    for name in (first, first[:10], "main~1", "v1^{commit}"):
        assert by_env(revisions.diff_base(project, name, ("dev",)))["dev"].summary == \
            by_env(result)["dev"].summary
    (project / "agents" / "new-bot.yaml").unlink()
    chat.write_text(text)
    git(repo, "reset", "--quiet")
    quiet = revisions.diff_base(project, "HEAD", all_envs=True)
    assert not any(env.changed for env in quiet)
    assert all(c.outcome == Outcome.UNCHANGED and not c.unified() for e in quiet
               for c in e.changes)


def test_leaves_no_temporary_files(tmp_path: Path, scratch: Path) -> None:
    repo = new_repo(tmp_path / "repo")
    copy_example(repo)
    commit(repo, "fleet")
    revisions.diff_base(repo, "HEAD", ("dev",))
    (repo / "agents" / "chat-assistant.yaml").write_text("kind: Agent\n")
    commit(repo, "broken")
    with pytest.raises(InputError):
        revisions.diff_base(repo, "HEAD", ("dev",))
    assert list(scratch.iterdir()) == []


def test_environments_on_one_side_only(tmp_path: Path) -> None:
    repo = new_repo(tmp_path / "repo")
    copy_example(repo)
    commit(repo, "fleet")
    envs = repo / "environments"
    (envs / "qa.yaml").write_text((envs / "staging.yaml").read_text()
                                  .replace("name: staging", "name: qa")
                                  .replace("agents-staging", "agents-qa"))
    (envs / "dev.yaml").unlink()
    head = pipeline.render(repo, all_envs=True)
    qa_objects = {m.ref for e in head.envs if e.env == "qa" for m in e.manifests}

    result = by_env(revisions.diff_base(repo, "HEAD", all_envs=True))

    assert sorted(result) == ["dev", "prod", "qa", "staging"]
    assert {c.outcome for c in result["dev"].changes} == {Outcome.DELETED}
    assert result["dev"].namespace == "agents-dev"
    assert {c.outcome for c in result["qa"].changes} == {Outcome.CREATED}
    assert {c.ref for c in result["qa"].changes} == qa_objects
    assert not result["prod"].changed
    only = revisions.diff_base(repo, "HEAD", ("qa", "dev"))
    assert [e.env for e in only] == ["dev", "qa"]
    with pytest.raises(InputError, match="unknown environment 'nope' at both revisions"):
        revisions.diff_base(repo, "HEAD", ("nope",))
    with pytest.raises(InputError, match="choose an environment"):
        revisions.diff_base(repo, "HEAD")


def test_a_broken_environment_file_is_an_error_not_a_deletion(tmp_path: Path) -> None:
    repo = new_repo(tmp_path / "repo")
    copy_example(repo)
    commit(repo, "fleet")
    dev = repo / "environments" / "dev.yaml"
    dev.write_text(dev.read_text().replace("namespace: agents-dev", "namespace: Agents_Dev"))
    with pytest.raises(InputError) as caught:
        revisions.diff_base(repo, "HEAD", all_envs=True)
    assert any(p.file == "environments/dev.yaml" for p in caught.value.problems), caught.value


@pytest.mark.parametrize("prefix", ["", "deploy"])
def test_a_base_that_does_not_render_is_named_as_the_base(tmp_path: Path, prefix: str,
                                                         scratch: Path) -> None:
    repo = new_repo(tmp_path / "repo")
    project = copy_example(repo / prefix)
    agent = project / "agents" / "chat-assistant.yaml"
    good = agent.read_text()
    agent.write_text(good.replace("image: ghcr.io/inferensys/chat-agent:1.2.0",
                                  "image: [not, an, image]"))
    commit(repo, "broken agent")
    agent.write_text(good)
    with pytest.raises(InputError) as caught:
        revisions.diff_base(project, "main", ("dev",))
    lines = str(caught.value).splitlines()
    where = f"{prefix}/agents" if prefix else "agents"
    assert lines, caught.value
    assert all(line.startswith("main:") for line in lines), lines
    assert any(line.startswith(f"main:{where}/chat-assistant.yaml:") and "spec.runtime.image"
               in line for line in lines), lines
    assert str(scratch) not in str(caught.value)
    assert "agentctl-base-" not in str(caught.value)
    # and the working tree's own problems are not marked as the base's
    commit(repo, "fixed")
    agent.write_text(good.replace("image: ghcr.io/inferensys/chat-agent:1.2.0", "image: 7"))
    with pytest.raises(InputError) as caught:
        revisions.diff_base(project, "main", ("dev",))
    assert str(caught.value).startswith("agents/chat-assistant.yaml:"), caught.value


def test_a_project_missing_at_the_base(tmp_path: Path) -> None:
    repo = new_repo(tmp_path / "repo")
    (repo / "README.md").write_text("nothing yet\n")
    commit(repo, "empty")
    project = copy_example(repo / "fleet")
    commit(repo, "fleet")
    with pytest.raises(InputError, match=r"the project folder 'fleet' does not exist at "
                                         r"HEAD~1"):
        revisions.diff_base(project, "HEAD~1", all_envs=True)
    assert by_env(revisions.diff_base(project, "HEAD", ("dev",)))["dev"].changes


@pytest.mark.parametrize("ref", ["nope", "main~5", "v9", "HEAD:agents", "0" * 40,
                                 "main..HEAD", "@{upstream}"])
def test_an_unknown_revision_is_one_line(tmp_path: Path, ref: str) -> None:
    repo = new_repo(tmp_path / "repo")
    copy_example(repo)
    commit(repo, "fleet")
    before = checkout_state(repo)
    with pytest.raises(InputError) as caught:
        revisions.diff_base(repo, ref, all_envs=True)
    assert caught.value.exit_code == ExitCode.INVALID
    assert str(caught.value) == (f"--base: unknown revision {ref!r}: no commit of that name in "
                                 "this repository (in CI, fetch it: actions/checkout with "
                                 "fetch-depth: 0)")
    assert checkout_state(repo) == before


@pytest.mark.parametrize("ref", ["--output=/x", "-h", "--all", "-", "", "main\nHEAD",
                                 "main\x00"])
def test_a_revision_that_could_be_an_option_is_refused(tmp_path: Path, ref: str) -> None:
    repo = new_repo(tmp_path / "repo")
    copy_example(repo)
    commit(repo, "fleet")
    before = checkout_state(repo)
    with pytest.raises(InputError, match="is not a git revision"):
        revisions.diff_base(repo, ref.replace("/x", str(tmp_path / "x")), all_envs=True)
    assert not (tmp_path / "x").exists()
    assert checkout_state(repo) == before


def test_not_a_git_repository(tmp_path: Path) -> None:
    project = copy_example(tmp_path / "plain")
    with pytest.raises(InputError, match="is not in a git repository") as caught:
        revisions.diff_base(project, "main", all_envs=True)
    assert len(caught.value.problems) == 1


def test_without_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = new_repo(tmp_path / "repo")
    copy_example(repo)
    commit(repo, "fleet")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(ToolingError, match="git is not installed") as caught:
        revisions.diff_base(repo, "main", all_envs=True)
    assert caught.value.exit_code == ExitCode.TOOLING


def test_a_link_out_of_the_project_at_the_base_is_refused(tmp_path: Path) -> None:
    repo = new_repo(tmp_path / "repo")
    copy_example(repo)
    (repo / "agents" / "elsewhere.yaml").symlink_to("/etc/hostname")
    commit(repo, "a link out")
    (repo / "agents" / "elsewhere.yaml").unlink()
    with pytest.raises(InputError, match=re.escape("main:agents/elsewhere.yaml: is a link out "
                                                   "of the project")):
        revisions.diff_base(repo, "main", all_envs=True)


def test_a_link_inside_the_project_is_read_at_the_base(tmp_path: Path) -> None:
    repo = new_repo(tmp_path / "repo")
    project = copy_example(repo)
    shared = repo / "shared"
    shared.mkdir()
    (project / "agents" / "chat-assistant.yaml").rename(shared / "chat.yaml")
    (project / "agents" / "chat-assistant.yaml").symlink_to("../shared/chat.yaml")
    commit(repo, "a link inside")
    result = by_env(revisions.diff_base(project, "main", ("dev",)))
    assert not result["dev"].changed
    assert any(c.ref.name == "chat-assistant" for c in result["dev"].changes)


# -- Secrets -----------------------------------------------------------------------------------

OLD_SECRET = "canary-0ld-Zq9v7Lx2"
NEW_SECRET = "canary-n3w-Wp4k8Rt6"
KEPT_SECRET = "canary-kept-Hs5m1Jy3"
CANARIES = [OLD_SECRET, NEW_SECRET, KEPT_SECRET]

_VAULT_BLUEPRINT = """\
name: vault
description: A Secret and a ConfigMap carrying a copy of it, to prove that diffs mask both.
handles: [runtime, model]
"""

_VAULT_TEMPLATE = """\
apiVersion: v1
kind: Secret
metadata:
  name: {{ agent.metadata.name ~ "-token" }}
type: Opaque
stringData:
  token: {{ agent.spec.runtime.env[0].value }}
  kept: {{ agent.spec.runtime.env[2].value }}
data:
  encoded: {{ agent.spec.runtime.env[1].value }}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ agent.metadata.name ~ "-copy" }}
  annotations:
    kubectl.kubernetes.io/last-applied-configuration: {{ agent.spec.runtime.env[0].value }}
data:
  tier: {{ agent.spec.runtime.env[3].value }}
"""

_VAULT_AGENT = """\
apiVersion: agent.inferensys.com/v1alpha1
kind: Agent
metadata: {{name: vault}}
spec:
  blueprint: vault
  runtime:
    image: ghcr.io/example/vault:1.0.0
    env:
      - {{name: TOKEN, value: {token}}}
      - {{name: ENCODED, value: {encoded}}}
      - {{name: KEPT, value: {kept}}}
      - {{name: TIER, value: {tier}}}
  model: {{id: gpt-4o-mini}}
"""

_DEV = """\
apiVersion: agentctl.inferensys.com/v1alpha1
kind: Environment
metadata: {name: dev}
spec:
  namespace: agents-dev
"""


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def vault_agent(secret: str, tier: str) -> str:
    return _VAULT_AGENT.format(token=secret, encoded=b64(secret), kept=KEPT_SECRET, tier=tier)


def vault_repo(tmp_path: Path) -> Path:
    """A project whose local blueprint renders a Secret; committed with OLD_SECRET, and
    NEW_SECRET in the working tree."""
    repo = new_repo(tmp_path / "repo")
    (repo / "agentctl.yaml").write_text("apiVersion: agentctl.inferensys.com/v1alpha1\n"
                                        "kind: Project\nmetadata: {name: vault}\n")
    (repo / "environments").mkdir()
    (repo / "environments" / "dev.yaml").write_text(_DEV)
    (repo / "blueprints" / "vault").mkdir(parents=True)
    (repo / "blueprints" / "vault" / "blueprint.yaml").write_text(_VAULT_BLUEPRINT)
    (repo / "blueprints" / "vault" / "objects.yaml.j2").write_text(_VAULT_TEMPLATE)
    (repo / "agents").mkdir()
    (repo / "agents" / "vault.yaml").write_text(vault_agent(OLD_SECRET, "gold"))
    commit(repo, "vault")
    (repo / "agents" / "vault.yaml").write_text(vault_agent(NEW_SECRET, "silver"))
    return repo


def forbidden_texts() -> list[str]:
    found = []
    for canary in CANARIES:
        found += [canary, b64(canary), b64(b64(canary))]
    return found


def test_no_secret_value_from_either_side_appears(tmp_path: Path) -> None:
    repo = vault_repo(tmp_path)
    # the canaries are really in what renders, on both sides
    assert NEW_SECRET in pipeline.stream(pipeline.render(repo, ("dev",)))

    result = by_env(revisions.diff_base(repo, "main", ("dev",)))

    changes = {c.ref.kind: c for c in result["dev"].changes}
    secret, config = changes["Secret"], changes["ConfigMap"]
    assert secret.outcome == Outcome.CONFIGURED
    assert secret.paths == ["/data/encoded", "/stringData/token"]
    assert config.paths == ["/data/tier", "/metadata/annotations/"
                            "kubectl.kubernetes.io~1last-applied-configuration"]
    assert "(masked: after, changed)" in secret.unified()
    assert "-  tier: gold" in config.unified()
    shown = "\n".join([
        *(c.unified() for c in result["dev"].changes),
        json.dumps([asdict(c) for c in result["dev"].changes], default=str),
        repr(result), str(result["dev"].summary),
    ])
    for text in forbidden_texts():
        assert text not in shown, text


def test_a_secret_only_on_one_side_is_masked_too(tmp_path: Path) -> None:
    repo = vault_repo(tmp_path)
    (repo / "agents" / "vault.yaml").unlink()
    (repo / "agents" / "fresh.yaml").write_text(
        vault_agent(NEW_SECRET, "silver").replace("{name: vault}", "{name: fresh}"))
    result = by_env(revisions.diff_base(repo, "main", ("dev",)))
    kinds = {(c.ref.kind, c.ref.name): c.outcome for c in result["dev"].changes}
    assert kinds == {("Secret", "vault-token"): Outcome.DELETED,
                     ("Secret", "fresh-token"): Outcome.CREATED,
                     ("ConfigMap", "vault-copy"): Outcome.DELETED,
                     ("ConfigMap", "fresh-copy"): Outcome.CREATED}
    shown = "\n".join([*(c.unified() for c in result["dev"].changes),
                       json.dumps([asdict(c) for c in result["dev"].changes], default=str)])
    assert "token: '(masked" in shown
    for text in forbidden_texts():
        assert text not in shown, text



def test_imports_no_cli_terminal_or_cluster_library() -> None:
    """The PR diff is part of the offline half: no typer, rich, click, kubernetes or CLI."""
    code = ("import sys, agentctl.revisions; print(sorted(m for m in sys.modules "
            "if m.split('.')[0] in ('typer', 'rich', 'click', 'kubernetes') "
            "or m.startswith(('agentctl.cli', 'agentctl.console', 'agentctl.cluster'))))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=False, cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


# -- The pull-request workflow's comment script, run by node against a fake GitHub -------------

_HARNESS = """\
const fs = require('fs');
const script = fs.readFileSync(process.argv[2], 'utf8');
const scenario = JSON.parse(process.argv[3]);
const calls = [];
const refuse = () => {
  if (scenario.status) { const e = new Error('HttpError'); e.status = scenario.status; throw e; }
};
const github = {
  paginate: async (fn, params) => { calls.push(['list', params]); return scenario.comments; },
  rest: { issues: {
    listComments: async () => { throw new Error('not paginated'); },
    updateComment: async (p) => { calls.push(['update', p]); refuse(); },
    createComment: async (p) => { calls.push(['create', p]); refuse(); },
  } },
};
const parts = [];
const core = {
  summary: { addRaw(t) { parts.push(t); return this; },
             async write() { calls.push(['summary', parts.join('')]); return this; } },
  warning: (m) => calls.push(['warning', m]),
};
const context = { repo: { owner: 'o', repo: 'r' }, payload: { pull_request: { number: 7 } } };
const AsyncFunction = (async () => {}).constructor;
new AsyncFunction('require', 'github', 'context', 'core', script)(require, github, context, core)
  .then(() => console.log(JSON.stringify({ ok: true, calls })),
        (e) => console.log(JSON.stringify({ ok: false, error: String(e), calls })));
"""
MARKER = "<!-- agentctl-diff -->"
WORKFLOWS = {"repository": (REPO / ".github" / "workflows" / "diff.yaml").read_text(),
             "scaffold": scaffolding.contents("fleet")[".github/workflows/agentctl-diff.yaml"]}


def comment_script(workflow: str) -> str:
    steps = yaml.safe_load(workflow)["jobs"]["diff"]["steps"]
    found = [s for s in steps if str(s.get("uses", "")).startswith("actions/github-script@")]
    assert len(found) == 1, steps
    return str(found[0]["with"]["script"])


def run_comment_script(tmp_path: Path, workflow: str, diff: str, comments: Sequence[object],
                       status: int = 0) -> dict[str, Any]:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed (GitHub's runners have it)")
    (tmp_path / "diff.md").write_text(diff)
    (tmp_path / "script.js").write_text(comment_script(workflow))
    (tmp_path / "harness.js").write_text(_HARNESS)
    result = subprocess.run([node, "harness.js", "script.js", json.dumps(
        {"comments": comments, "status": status})], cwd=tmp_path, capture_output=True,
                            text=True, check=False)
    assert result.returncode == 0, result.stderr
    outcome: dict[str, Any] = json.loads(result.stdout)
    return outcome


@pytest.mark.parametrize("which", sorted(WORKFLOWS))
def test_the_comment_is_created_once_then_updated(tmp_path: Path, which: str) -> None:
    diff = "## dev\n\n| created | configured |\n|---|---|\n| 1 | 2 |\n"
    first = run_comment_script(tmp_path, WORKFLOWS[which], diff, [])
    assert first["ok"], first
    kinds = [c[0] for c in first["calls"]]
    assert kinds == ["summary", "list", "create"], kinds
    assert first["calls"][0][1] == diff
    assert first["calls"][1][1]["issue_number"] == 7
    assert first["calls"][2][1]["body"] == f"{MARKER}\n{diff}"

    others = [{"id": 1, "user": {"type": "User"}, "body": f"{MARKER}\nquoted by a person"},
              {"id": 2, "user": {"type": "Bot"}, "body": "another bot"},
              {"id": 3, "user": {"type": "Bot"}, "body": f"{MARKER}\nthe old diff"}]
    second = run_comment_script(tmp_path, WORKFLOWS[which], diff, others)
    assert second["ok"], second
    assert [c[0] for c in second["calls"]] == ["summary", "list", "update"]
    assert second["calls"][2][1]["comment_id"] == 3
    assert second["calls"][2][1]["body"] == f"{MARKER}\n{diff}"

    marked = f"{MARKER}\n## agentctl diff\n"  # agentctl's markdown starts with the marker
    third = run_comment_script(tmp_path, WORKFLOWS[which], marked, others)
    assert third["ok"], third
    assert third["calls"][2][1]["body"] == marked


@pytest.mark.parametrize("which", sorted(WORKFLOWS))
def test_a_token_that_cannot_comment_falls_back_to_the_job_summary(tmp_path: Path,
                                                                  which: str) -> None:
    forked = run_comment_script(tmp_path, WORKFLOWS[which], "## dev\n", [], status=403)
    assert forked["ok"], forked
    assert [c[0] for c in forked["calls"]] == ["summary", "list", "create", "warning"]
    assert forked["calls"][0][1] == "## dev\n"
    broken = run_comment_script(tmp_path, WORKFLOWS[which], "## dev\n", [], status=500)
    assert not broken["ok"], broken  # any other failure fails the job


def test_the_comment_stays_below_the_limit_and_the_summary_is_whole(tmp_path: Path) -> None:
    diff = "x" * 70_000
    result = run_comment_script(tmp_path, WORKFLOWS["repository"], diff, [])
    assert result["ok"], result
    assert result["calls"][0][1] == diff
    body = result["calls"][2][1]["body"]
    assert len(body) <= 65_536
    assert body.startswith(MARKER)
    assert "truncated" in body


# -- pre-commit hooks --------------------------------------------------------------------------

def test_pre_commit_hooks_run_agentctl_commands_that_exist(runner: CliRunner,
                                                           tmp_path: Path) -> None:
    hooks = {h["id"]: h for h in yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text())}
    assert sorted(hooks) == ["agentctl-render-check", "agentctl-schema-check",
                             "agentctl-validate"]
    assert hooks["agentctl-render-check"]["entry"] == "agentctl render --all-envs --check"
    assert hooks["agentctl-validate"]["entry"] == "agentctl validate"
    assert hooks["agentctl-schema-check"]["entry"] == "agentctl schema --check"
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    scaffolding.scaffold(tmp_path)
    result = runner.invoke(app, ["-C", str(tmp_path), "render", "--all-envs", "--out",
                                 str(tmp_path / "rendered")])
    assert result.exit_code == 0, result.output
    for hook in hooks.values():
        assert hook["language"] == "python"
        assert hook["pass_filenames"] is False
        program, *args = shlex.split(hook["entry"])
        assert program in scripts
        result = runner.invoke(app, [*args, "-C", str(tmp_path)])  # as `args:` would append
        assert result.exit_code == 0, (hook["id"], result.output)
        files = re.compile(hook["files"])
        inputs = (("schemas/agent.schema.json", ".pre-commit-config.yaml")
                  if hook["id"] == "agentctl-schema-check" else
                  ("agentctl.yaml", "agents/bot.yaml", "environments/dev.yaml",
                   "blueprints/agent/workloads.yaml.j2"))
        for path in inputs:
            assert files.search(path), (hook["id"], path)
        for path in ("README.md", "agentctl/cli/commands.py", "docs/agents/x.md"):
            assert not files.search(path), (hook["id"], path)
    assert re.search(hooks["agentctl-render-check"]["files"], "rendered/dev/provenance.json")
    (tmp_path / "agents" / "example.yaml").write_text(
        (tmp_path / "agents" / "example.yaml").read_text().replace("1.2.0", "1.3.0"))
    result = runner.invoke(app, ["render", "--all-envs", "--check", "-C", str(tmp_path)])
    assert result.exit_code == 1, result.output  # the hook fails a stale tree


def test_the_docs_name_what_ships() -> None:
    page = (REPO / "docs" / "diff.md").read_text()
    assert MARKER in page
    for workflow in WORKFLOWS.values():
        assert f"const marker = '{MARKER}';" in workflow
    assert ".github/workflows/agentctl-diff.yaml" in page
    assert ".github/workflows/agentctl-diff.yaml" in scaffolding.contents("fleet")
    words = " ".join(page.split())
    for hook in yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text()):
        assert f"`{hook['id']}` runs `{hook['entry']}`" in words, hook["id"]


# -- The command line: agentctl diff --base ----------------------------------------------------

def test_cli_exit_codes(runner: CliRunner, tmp_path: Path) -> None:
    repo = new_repo(tmp_path / "repo")
    copy_example(repo)
    commit(repo, "fleet")
    before = checkout_state(repo)
    result = runner.invoke(app, ["-C", str(repo), "diff", "--base", "HEAD", "--all-envs"])
    assert result.exit_code == 0, result.output
    for env in ("dev", "staging", "prod"):
        assert f"# {env} (namespace agents-{env}, HEAD..working tree)" in result.stdout
    assert checkout_state(repo) == before

    chat = repo / "agents" / "chat-assistant.yaml"
    chat.write_text(chat.read_text().replace("chat-agent:1.2.0", "chat-agent:1.3.0"))
    result = runner.invoke(app, ["diff", "--base", "main", "-e", "dev", "-C", str(repo)])
    assert result.exit_code == 1, result.output
    assert "configured Deployment/agents-dev/chat-assistant" in result.stdout
    assert IMAGE in result.stdout
    result = runner.invoke(app, ["-C", str(repo), "-o", "json", "diff", "--base", "main",
                                 "--all-envs"])
    assert result.exit_code == 1, result.output
    report = json.loads(result.stdout)
    changed = [(e["name"], o["kind"], o["name"], o["paths"]) for e in report["environments"]
               for o in e["objects"] if o["outcome"] != "unchanged"]
    assert changed == [(env, "Deployment", "chat-assistant", [IMAGE])
                       for env in ("dev", "prod", "staging")]


@pytest.mark.parametrize(("args", "message"), [
    (["--base", "no-such-branch", "--all-envs"], "--base: unknown revision 'no-such-branch'"),
    (["--base=--output=evil.tar", "-e", "dev"], "--base: '--output=evil.tar' is not a git "
                                                "revision"),
    (["--base", "main", "--env", "nope"], "unknown environment 'nope' at both revisions"),
    (["--base", "main", "--render", "--all-envs"], "--base: compares two renders without a "
                                                   "cluster"),
])
def test_cli_bad_input_is_exit_2_without_a_traceback(runner: CliRunner, tmp_path: Path,
                                                     args: list[str], message: str) -> None:
    repo = new_repo(tmp_path / "repo")
    copy_example(repo)
    commit(repo, "fleet")
    result = runner.invoke(app, ["-C", str(repo), "diff", *args])
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    assert message in result.output
    assert not (repo / "evil.tar").exists()


def test_cli_outside_a_repository(runner: CliRunner, tmp_path: Path) -> None:
    project = copy_example(tmp_path / "plain")
    result = runner.invoke(app, ["-C", str(project), "diff", "--base", "main", "--all-envs"])
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    assert result.output.strip() == (f"--base: {project} is not in a git repository: --base "
                                     "compares git revisions")


@pytest.mark.parametrize("fmt", ["text", "json", "yaml", "markdown"])
def test_cli_output_holds_no_secret_value(runner: CliRunner, tmp_path: Path, fmt: str) -> None:
    repo = vault_repo(tmp_path)
    result = runner.invoke(app, ["-C", str(repo), "-o", fmt, "--no-color", "diff", "--base",
                                 "main", "--env", "dev"])
    assert result.exit_code == 1, result.output
    assert "vault-token" in result.output
    for text in forbidden_texts():
        assert text not in result.output, text
    if fmt == "markdown":
        assert result.stdout.startswith(MARKER)
        assert "| dev | main..working tree | 0 | 2 | 0 | 0 | 0 | 0 |" in result.stdout


def test_cli_without_git_is_exit_6(runner: CliRunner, tmp_path: Path,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    repo = new_repo(tmp_path / "repo")
    copy_example(repo)
    commit(repo, "fleet")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    result = runner.invoke(app, ["-C", str(repo), "diff", "--base", "main", "--all-envs"])
    assert result.exit_code == ExitCode.TOOLING, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    assert "git is not installed" in result.output
