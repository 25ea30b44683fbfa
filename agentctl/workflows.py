"""The CI mode's GitHub Actions workflow: `agentctl reconcile --verify` on every push to main,
one environment after the other (dev before staging before prod, in the order given), each job
in the GitHub Environment `agentctl-<env>` whose secret KUBECONFIG holds the least-privilege
kubeconfig (the token of `deploy/<env>/reconciler.yaml`'s ServiceAccount).

Safety: the workflow reads contents only; the kubeconfig is written with umask 077 to the
runner's temporary folder and removed when the step ends; no expression is expanded into a
shell; each environment's job is its own concurrency group that never cancels a run in
progress (reconcile's Lease would refuse a second run anyway). Only main can use the
Environment when its deployment branch policy says so (documented: GitHub stores that setting,
not the workflow). The workflow runs only when the repository variable AGENTCTL_RECONCILE is
`true`, so a scaffold does not fail its first push before a cluster exists. Pure text: no I/O.
"""

from __future__ import annotations

from agentctl import __version__

_HEAD = """\
# Runs `agentctl reconcile` on every push to main, one environment after the other. Each job
# uses the GitHub Environment agentctl-<env>, whose secret KUBECONFIG holds the kubeconfig of
# the ServiceAccount in deploy/<env>/reconciler.yaml (least privilege: see docs/running.md).
# In Settings → Environments, give every agentctl-<env> the deployment branch rule "main"
# only, so no other branch or pull request can read its secret. Turn the workflow on with the
# repository variable AGENTCTL_RECONCILE=true.
name: @NAME@

on:
  push:
    branches: [main]
  workflow_dispatch:

permissions:
  contents: read

jobs:
"""

_JOB = """\
  @ENV@:
@NEEDS@    if: github.ref == 'refs/heads/main' && vars.AGENTCTL_RECONCILE == 'true'
    runs-on: ubuntu-latest
    timeout-minutes: 30
    environment: agentctl-@ENV@
    concurrency:
      group: agentctl-reconcile-@ENV@
      cancel-in-progress: false
@ENVBLOCK@    steps:
      - uses: actions/checkout@v6
        with:
          persist-credentials: false

      - uses: actions/setup-python@v6
        with:
          python-version: "3.11"

      - name: Install agentctl
@INSTALL@
      - name: Reconcile @ENV@
        env:
          KUBECONFIG_DATA: ${{ secrets.KUBECONFIG }}
        run: |
          umask 077
          kubeconfig="$RUNNER_TEMP/kubeconfig"
          trap 'rm -f "$kubeconfig"' EXIT
          printf '%s\\n' "$KUBECONFIG_DATA" > "$kubeconfig"
          agentctl reconcile --env @ENV@ --verify --kubeconfig "$kubeconfig"
"""

_REQUIREMENT_ENV = """\
    env:
      # Where to install agentctl @VERSION@ from (a wheel or git URL, or a package name on your
      # index): set the repository variable AGENTCTL_REQUIREMENT.
      AGENTCTL_REQUIREMENT: ${{ vars.AGENTCTL_REQUIREMENT }}
"""

_REQUIREMENT_INSTALL = """\
        run: |
          if [ -z "$AGENTCTL_REQUIREMENT" ]; then
            echo "::error::set the repository variable AGENTCTL_REQUIREMENT (agentctl @VERSION@)"
            exit 1
          fi
          python -m pip install "$AGENTCTL_REQUIREMENT"
"""

_CHECKOUT_INSTALL = """\
        run: python -m pip install .
"""


def reconcile_workflow(envs: list[str], name: str = "agentctl reconcile",
                       from_checkout: bool = False) -> str:
    """The workflow text for `envs`, in order. `from_checkout`: install agentctl from the
    repository itself (agentctl's own repository) instead of AGENTCTL_REQUIREMENT."""
    jobs = []
    for i, env in enumerate(envs):
        job = _JOB.replace("@NEEDS@", f"    needs: {envs[i - 1]}\n" if i else "")
        job = job.replace("@ENVBLOCK@", "" if from_checkout else _REQUIREMENT_ENV)
        job = job.replace("@INSTALL@", _CHECKOUT_INSTALL if from_checkout
                          else _REQUIREMENT_INSTALL)
        jobs.append(job.replace("@ENV@", env))
    text = _HEAD.replace("@NAME@", name) + "\n".join(jobs)
    return text.replace("@VERSION@", __version__)
