"""`agentctl init`: the files of a new, working GitOps repository.

Input: a target directory (its name, made a DNS-1123 label, becomes the project name) and
whether existing files may be overwritten. Output: the files written, in a fixed order.

Invariants: the scaffold loads, renders every environment and validates with `--strict` without
edits (tests prove it); every agentctl file starts with a yaml-language-server modeline whose
relative path reaches its kind's schema in `schemas/`, written alongside; existing files are
never overwritten without `force` — the whole scaffold is refused, listing every file in the
way, before anything is written. Pure file I/O: no terminal, no cluster.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

import yaml

from agentctl import __version__, provisioning, schemas
from agentctl.errors import InputError, Problem
from agentctl.model.environment import Environment

ENVIRONMENTS = ("dev", "staging", "prod")
MAX_PROJECT_NAME = 63 - len("-staging")
"""The project name plus `-<env>` must still be a DNS-1123 label (the namespaces)."""
FALLBACK_NAME = "agents"
# The scaffolded CI installs agentctl from a repository variable, never by guessing a name: the
# `agentctl` name on the public package index belongs to an unrelated project.

_PROJECT = "@PROJECT@"
_INSTALL = "@INSTALL@"

_AGENTCTL_YAML = """\
# The agentctl project: where agents, blueprints, environments and rendered output live.
# metadata.name is part of every environment's ApplySet identity: keep it unique per repository.
apiVersion: agentctl.inferensys.com/v1alpha1
kind: Project
metadata:
  name: @PROJECT@
spec:
  agents: agents
  blueprints: blueprints
  environments: environments
  output: rendered
"""

_EXAMPLE_AGENT = """\
# An Agent: one chat agent rendered by the built-in `agent` blueprint into a Deployment, a
# Service, a ServiceAccount and a ConfigMap. Environments (environments/*.yaml) add defaults and
# per-agent overrides.
apiVersion: agent.inferensys.com/v1alpha1
kind: Agent
metadata:
  name: assistant
  labels:
    team: platform
spec:
  description: A chat assistant answering questions in plain language
  runtime:
    image: ghcr.io/inferensys/chat-agent:1.2.0   # your agent's image
    port: 8080
    env:
      - {name: MAX_TURNS, value: "20"}
  model:
    id: gpt-4o-mini
    provider: openai
    # An existing Secret holding the API key; agentctl renders only the reference.
    apiKeySecretRef: {name: llm-credentials, key: openai-api-key}
    params: {temperature: 0.2}
  instructions:
    systemMessage: |
      You are a concise, friendly assistant.
      Answer in plain language and say so when you do not know.
  # tools:
  #   - name: docs-search
  #     type: mcpServer
  #     url: http://mcp-docs.tools.svc:8080/mcp
  #     toolNames: [search, fetch]
  #     requireApproval: [fetch]
  resources:
    requests: {cpu: 100m, memory: 384Mi}
    limits: {cpu: "1", memory: 1Gi}
  lifecycle:
    preStop: {drainSeconds: 15}
    terminationGracePeriodSeconds: 45
"""

_DEV = """\
# dev: a development cluster. Everything here is merged under every agent's spec.
apiVersion: agentctl.inferensys.com/v1alpha1
kind: Environment
metadata:
  name: dev
spec:
  cluster: {}                  # context: my-dev-cluster (kubeconfig context; --context overrides)
  namespace: @PROJECT@-dev
  # APIs this cluster serves, e.g. monitoring.coreos.com/v1/ServiceMonitor
  capabilities: []
  defaults:
    observability:
      logging: {level: debug}
      metrics: {monitor: annotations}   # prometheus.io/* pod annotations; no operator needed
  policy:
    podSecurity: [restricted, baseline]
  prune: true
"""

_STAGING = """\
# staging: production-like. Declare the APIs the cluster serves under capabilities.
apiVersion: agentctl.inferensys.com/v1alpha1
kind: Environment
metadata:
  name: staging
spec:
  cluster: {}                  # context: my-staging-cluster
  namespace: @PROJECT@-staging
  capabilities: []
  defaults:
    observability:
      metrics: {monitor: annotations}
  policy:
    podSecurity: [restricted]
  prune: true
"""

_PROD = """\
# prod: restricted pods only, objects only in the prod namespace, and nothing is deleted
# automatically (run reconcile with --prune to delete objects that are no longer rendered).
apiVersion: agentctl.inferensys.com/v1alpha1
kind: Environment
metadata:
  name: prod
spec:
  cluster: {}                  # context: my-prod-cluster; uid: <kube-system namespace UID>
  namespace: @PROJECT@-prod
  capabilities: []
  defaults:
    observability:
      metrics: {monitor: annotations}
      logging: {level: info}
  agents:
    assistant:                 # per-agent overrides, merged last
      resources:
        requests: {cpu: 250m, memory: 512Mi}
        limits: {cpu: "2", memory: 2Gi}
  policy:
    podSecurity: [restricted]
    namespaces: [@PROJECT@-prod]
  prune: false
"""

_WORKFLOW = """\
# Checks on every push and pull request that the agents are valid and that the committed
# rendered/ tree is exactly what they render to (run `agentctl render --all-envs --out rendered`
# and commit the result after changing agents or environments).
name: agentctl

on:
  push:
    branches: [main]
  pull_request:

permissions:
  contents: read

jobs:
  render:
    runs-on: ubuntu-latest
    env:
      # Where to install agentctl @INSTALL@ from (a wheel or git URL, or a package name on your
      # index): set the repository variable AGENTCTL_REQUIREMENT.
      AGENTCTL_REQUIREMENT: ${{ vars.AGENTCTL_REQUIREMENT }}
    steps:
      - uses: actions/checkout@v6
      - uses: actions/setup-python@v6
        with:
          python-version: "3.11"
      - name: Install agentctl
        run: |
          if [ -z "$AGENTCTL_REQUIREMENT" ]; then
            echo "::error::set the repository variable AGENTCTL_REQUIREMENT (agentctl @INSTALL@)"
            exit 1
          fi
          python -m pip install "$AGENTCTL_REQUIREMENT"
      - name: Validate
        run: agentctl validate --strict
      - name: Rendered manifests are up to date
        run: agentctl render --all-envs --check
      - name: Editor schemas are up to date
        run: agentctl schema --check
"""

_DIFF_WORKFLOW = """\
# On every pull request: the rendered tree must be fresh, and one comment on the pull request
# shows what the change does to the rendered objects of every environment (`agentctl diff
# --base`: no cluster), updated on every push. The diff is also in the job summary, which is
# where a pull request from a fork finds it: its read-only token cannot comment.
name: agentctl diff

on:
  pull_request:

permissions:
  contents: read
  pull-requests: write

concurrency:
  group: diff-${{ github.event.pull_request.number }}
  cancel-in-progress: true

jobs:
  diff:
    runs-on: ubuntu-latest
    timeout-minutes: 20
    env:
      # Where to install agentctl @INSTALL@ from (a wheel or git URL, or a package name on your
      # index): set the repository variable AGENTCTL_REQUIREMENT.
      AGENTCTL_REQUIREMENT: ${{ vars.AGENTCTL_REQUIREMENT }}
    steps:
      - uses: actions/checkout@v6
        with:
          fetch-depth: 0  # the base branch's history: --base renders it
          persist-credentials: false

      - uses: actions/setup-python@v6
        with:
          python-version: "3.11"

      - name: Install agentctl
        run: |
          if [ -z "$AGENTCTL_REQUIREMENT" ]; then
            echo "::error::set the repository variable AGENTCTL_REQUIREMENT (agentctl @INSTALL@)"
            exit 1
          fi
          python -m pip install "$AGENTCTL_REQUIREMENT"

      - name: Rendered manifests are up to date
        run: agentctl render --all-envs --check

      - name: Diff against the base branch
        env:
          BASE_REF: ${{ github.base_ref }}
        # exit 1 means "changes": that is the diff's answer, not a failure; 2 or more is one
        run: |
          code=0
          agentctl diff --base "origin/$BASE_REF" --all-envs -o markdown > diff.md || code=$?
          if [ "$code" -gt 1 ]; then exit "$code"; fi

      - name: Comment on the pull request
        uses: actions/github-script@v8
        with:
          script: |
            const fs = require('fs');
            const marker = '<!-- agentctl-diff -->';
            const limit = 65536;
            const diff = fs.readFileSync('diff.md', 'utf8');
            await core.summary.addRaw(diff).write();
            // agentctl's markdown starts with the marker; anything else gets it
            let body = diff.startsWith(marker) ? diff : `${marker}\\n${diff}`;
            if (body.length > limit) {
              body = body.slice(0, limit - 100)
                + '\\n\\n…truncated: the whole diff is in the job summary.\\n';
            }
            const { owner, repo } = context.repo;
            const issue_number = context.payload.pull_request.number;
            try {
              const comments = await github.paginate(github.rest.issues.listComments,
                { owner, repo, issue_number, per_page: 100 });
              const previous = comments.find(
                (c) => c.user && c.user.type === 'Bot' && (c.body || '').startsWith(marker));
              if (previous) {
                await github.rest.issues.updateComment(
                  { owner, repo, comment_id: previous.id, body });
              } else {
                await github.rest.issues.createComment({ owner, repo, issue_number, body });
              }
            } catch (error) {
              if (error.status !== 403) throw error;
              core.warning('This token cannot comment on the pull request (a fork?): '
                + 'the diff is in the job summary.');
            }
"""

_GITIGNORE = """\
.venv/
__pycache__/
*.py[cod]
*.tmp
.DS_Store
"""

_README = """\
# @PROJECT@

AI agents on Kubernetes, managed with agentctl:
agent specs in `agents/`, one file per environment in `environments/`, and the plain Kubernetes
manifests they render to in `rendered/`, committed and reviewed like code.

```sh
agentctl render --env dev                    # print dev's manifests
agentctl validate --strict                   # check everything, offline
agentctl render --all-envs --out rendered    # write rendered/<env>/…; commit it
```

CI (`.github/workflows/agentctl.yaml`) fails when `rendered/` is not what the agents render to.
`deploy/<env>/reconciler.yaml` runs `agentctl reconcile` in the cluster as a CronJob: write it
again with your repository (`agentctl init --cronjob dev --repo URL --force`) and apply it with
`kubectl apply --server-side -f`; or reconcile from CI: `agentctl init --ci dev --force`.
On every pull request, `.github/workflows/agentctl-diff.yaml` posts one comment (updated on each
push) with what the change does to the rendered objects of every environment
(`agentctl diff --base origin/main --all-envs -o markdown`); a pull request from a fork finds it in
the job summary.

Editors that use yaml-language-server (VS Code's YAML extension, Neovim, Helix, …) complete and
check agents, environments (overrides included) and `agentctl.yaml` as you type: each file's first
line points at its schema in `schemas/`. After upgrading agentctl, run `agentctl schema --write`
(CI runs `agentctl schema --check`).

| Path | What |
|---|---|
| `agentctl.yaml` | the project: its name and folders |
| `agents/` | Agent specs, one or more per file |
| `environments/` | dev, staging, prod: namespace, capabilities, defaults, overrides, policy |
| `blueprints/` | optional local blueprints (override the built-in ones of the same name) |
| `rendered/` | output of `agentctl render --all-envs --out rendered` |
| `schemas/` | JSON Schemas of these files for editors (`agentctl schema --write` refreshes them) |
| `deploy/` | what runs `agentctl reconcile` in each environment's cluster |
"""


def _files() -> dict[str, str]:
    return {
        "agentctl.yaml": _AGENTCTL_YAML,
        "agents/example.yaml": _EXAMPLE_AGENT,
        "environments/dev.yaml": _DEV,
        "environments/staging.yaml": _STAGING,
        "environments/prod.yaml": _PROD,
        ".github/workflows/agentctl.yaml": _WORKFLOW,
        ".github/workflows/agentctl-diff.yaml": _DIFF_WORKFLOW,
        ".gitignore": _GITIGNORE,
        "README.md": _README,
    }


def project_name(directory: Path) -> str:
    """The project name for `directory`: its name in lower case without accents, every run of
    other characters than ASCII letters and digits turned into one '-', at most MAX_PROJECT_NAME
    characters, trimmed of '-' at both ends; FALLBACK_NAME if nothing is left."""
    ascii_name = unicodedata.normalize("NFKD", directory.resolve().name).encode(
        "ascii", "ignore").decode()
    name = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower())
    name = name.strip("-")[:MAX_PROJECT_NAME].strip("-")
    return name or FALLBACK_NAME


def contents(project: str,
             options: provisioning.Options | None = None) -> dict[str, str]:
    """Relative path → text of every scaffolded file, for the project named `project`: with
    the JSON Schemas in `schemas/` and each environment's `deploy/<env>/reconciler.yaml` (the
    CronJob mode)."""
    kinds: dict[str, schemas.Kind] = {"agentctl.yaml": "project",
                                      "agents/example.yaml": "agent"}
    kinds.update({f"environments/{e}.yaml": "environment" for e in ENVIRONMENTS})
    files = {path: (schemas.modeline(kinds[path], path) + "\n" if path in kinds else "")
             + text.replace(_PROJECT, project).replace(_INSTALL, __version__)
             for path, text in _files().items()}
    files.update({rel: schemas.text(kind) for kind, rel in schemas.FILES.items()})
    environments = [Environment.model_validate(yaml.safe_load(files[f"environments/{e}.yaml"]))
                    for e in ENVIRONMENTS]
    files.update(provisioning.for_environments(
        environments, project, options or provisioning.Options(), ENVIRONMENTS, ()))
    return files


def scaffold(directory: Path, force: bool = False,
             options: provisioning.Options | None = None) -> list[Path]:
    """Write the scaffold into `directory` (created if missing); return the files written.

    Raises InputError (exit 2) naming every scaffold path that already exists, before writing
    anything, unless `force`.
    """
    return write(directory, contents(project_name(directory), options), force)


def write(directory: Path, files: dict[str, str], force: bool = False) -> list[Path]:
    """Write `files` (relative path → text) under `directory`, all or none: any that exists
    (unless `force`), is a directory or lies in a symlinked folder is an InputError naming
    each, before anything is written. A symlink where a file goes is replaced, never written
    through."""
    if directory.exists() and not directory.is_dir():
        raise InputError([Problem(file=str(directory), message="exists and is not a directory")])
    problems: list[Problem] = []
    for rel in files:
        path = directory / rel
        linked = next((p for p in reversed(path.relative_to(directory).parents[:-1])
                       if (directory / p).is_symlink()), None)
        if linked is not None:
            problems.append(Problem(file=str(directory / linked), message="is a symlink; "
                                    "agentctl never writes through one"))
        elif path.is_dir() and not path.is_symlink():
            problems.append(Problem(file=str(path), message="is a directory; cannot write a "
                                    "file there"))
        elif not force and (path.exists() or path.is_symlink()):
            problems.append(Problem(file=str(path),
                                    message="already exists; use --force to overwrite"))
    if problems:
        raise InputError(list(dict.fromkeys(problems)))
    written: list[Path] = []
    for rel, text in files.items():
        path = directory / rel
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            if path.is_symlink():
                path.unlink()  # replace the link itself; never write through it
            path.write_text(text, encoding="utf-8")
        except OSError as err:
            raise InputError([Problem(file=str(path), message=f"cannot write: "
                                      f"{err.strerror or err}")]) from err
        written.append(path)
    return written
