"""The environment's lease on the sandbox cluster: a live holder is exit 5 naming it, two
reconciles started at once (one proceeds, the other exits 5), SIGTERM releases the lease,
SIGKILL leaves it to expire and the rerun takes it over and converges, renewal during a long
run, and a lease lost mid-run stops the run."""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from agentctl.cluster import leasing, reconciling
from agentctl.errors import LeaseHeldError
from agentctl.sandbox import specs

from . import projects, reconciles
from .kube import Cluster, Kube, wait_for
from .test_diff import run as diff_run

pytestmark = pytest.mark.cluster
PARENT = "agentctl-example-fleet-dev"


@pytest.fixture
def dev(cluster: Cluster, tmp_path: Path) -> Iterator[tuple[Path, str]]:
    with reconciles.dev_project(cluster, tmp_path) as found:
        yield found


def _lease(kube: Kube, ns: str) -> dict[str, Any]:
    answer = kube.get(f"/apis/coordination.k8s.io/v1/namespaces/{ns}/leases/{PARENT}")
    return dict(answer.body["spec"]) if answer.status == 200 else {}


def _holder(kube: Kube, ns: str) -> str:
    return str(_lease(kube, ns).get("holderIdentity") or "")


def _slow_rollout(cluster: Cluster, project: Path, ns: str) -> None:
    """After a first run: support-bot-green's next pods never become ready (the sandbox's
    chaos label, added by another field manager), and its image changes (in both slots: runs
    need --allow-in-place), so a run with a wait lasts until its --timeout."""
    assert reconciles.report(cluster, project, "--env", "dev", "--no-wait")[0] == 0
    answer = cluster.kube.apply(
        f"/apis/apps/v1/namespaces/{ns}/deployments/support-bot-green",
        {"apiVersion": "apps/v1", "kind": "Deployment",
         "metadata": {"name": "support-bot-green", "namespace": ns},
         "spec": {"template": {"metadata": {"labels": {specs.FAIL_LABEL: "unready"}}}}},
        manager="chaos-monkey")
    assert answer.status == 200, answer.body
    path = project / "agents" / "support-bot.yaml"
    doc = yaml.safe_load(path.read_text())
    doc["spec"]["runtime"]["image"] += "-next"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    projects.render_out(project)


def test_a_live_holder_is_exit_5_naming_it(cluster: Cluster, dev: tuple[Path, str]) -> None:
    project, ns = dev
    env = projects.desired(project, "dev")
    api = projects.client(cluster.kubeconfig, env)
    other = leasing.Lease(api, ns, PARENT, "dev", holder="ci-job-42")
    try:
        other.acquire()
        result = reconciles.invoke(cluster, project, "--env", "dev")
        assert result.exit_code == 5, result.output
        assert isinstance(result.exception, SystemExit)
        assert "ci-job-42" in result.output
        assert len(result.output.strip().splitlines()) == 1, result.output
        assert cluster.kube.get(f"/api/v1/namespaces/{ns}/configmaps/{PARENT}").status == 404
    finally:
        assert other.release() == ""
        api.close()
    assert _holder(cluster.kube, ns) == ""
    assert reconciles.invoke(cluster, project, "--env", "dev", "--no-wait").exit_code == 0


def test_two_reconciles_started_at_once_one_proceeds_the_other_exits_5(
        cluster: Cluster, dev: tuple[Path, str]) -> None:
    project, ns = dev
    _slow_rollout(cluster, project, ns)
    runs = [reconciles.spawn(cluster, project, "--env", "dev", "--timeout", "15s", "-o", "json",
                             "--allow-in-place") for _ in range(2)]
    outputs = [run.communicate(timeout=120) for run in runs]
    codes = [run.returncode for run in runs]
    assert sorted(codes) == [4, 5], (codes, outputs)
    ran = json.loads(outputs[codes.index(4)][0])
    holder = ran["environments"][0]["lease"]["holder"]
    refused = outputs[codes.index(5)]
    assert refused[0] == ""
    assert holder in refused[1], refused
    assert "Traceback" not in refused[1]
    assert _holder(cluster.kube, ns) == ""  # released by the run that held it


def test_sigterm_stops_the_run_and_releases_the_lease(cluster: Cluster,
                                                      dev: tuple[Path, str]) -> None:
    project, ns = dev
    _slow_rollout(cluster, project, ns)
    run = reconciles.spawn(cluster, project, "--env", "dev", "--timeout", "60s",
                           "--allow-in-place")
    try:
        holder = wait_for(lambda: _holder(cluster.kube, ns), "the run to take the lease")
        time.sleep(2)  # into the health wait
        run.send_signal(signal.SIGTERM)
        _, err = run.communicate(timeout=60)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    assert run.returncode == 128 + signal.SIGTERM, err
    assert "Traceback" not in err
    lease = _lease(cluster.kube, ns)
    assert "holderIdentity" not in lease, (holder, lease)


def test_sigkill_mid_run_then_rerun_converges_taking_the_expired_lease_over(
        cluster: Cluster, dev: tuple[Path, str]) -> None:
    project, ns = dev
    kube = cluster.kube
    run = reconciles.spawn(cluster, project, "--env", "dev")
    try:
        holder = wait_for(lambda: _holder(kube, ns), "the run to take the lease",
                          interval=0.05)
        wait_for(lambda: kube.get(f"/api/v1/namespaces/{ns}/configmaps/{PARENT}").status
                 == 200, "the ApplySet parent", interval=0.05)
        run.send_signal(signal.SIGKILL)
        run.wait(timeout=30)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    killed = time.monotonic()
    # the lease outlives its holder until it expires: a rerun now is refused, naming it
    result = reconciles.invoke(cluster, project, "--env", "dev")
    assert result.exit_code == 5, result.output
    assert holder in result.output
    time.sleep(max(0.0, leasing.DURATION + 2 - (time.monotonic() - killed)))
    code, document = reconciles.report(cluster, project, "--env", "dev")
    assert code == 0, document
    [env] = document["environments"]
    assert env["lease"]["tookOverFrom"] == holder, env["lease"]
    assert env["summary"]["failed"] == 0, env["summary"]
    assert env["converged"] is True
    assert diff_run(cluster, project, "--env", "dev").exit_code == 0
    assert _lease(kube, ns).get("leaseTransitions", 0) >= 1


def _in_thread(fn: Any) -> tuple[threading.Thread, list[Any]]:
    outcome: list[Any] = []

    def body() -> None:
        try:
            outcome.append(fn())
        except Exception as err:  # handed to the test
            outcome.append(err)

    thread = threading.Thread(target=body)
    thread.start()
    return thread, outcome


def test_the_lease_is_renewed_during_a_long_run_and_losing_it_stops_the_run(
        cluster: Cluster, dev: tuple[Path, str]) -> None:
    project, ns = dev
    kube = cluster.kube
    _slow_rollout(cluster, project, ns)
    env = projects.desired(project, "dev")
    options = reconciling.Options(timeout=40, lease_seconds=3, allow_in_place=True)
    thread, outcome = _in_thread(lambda: reconciling.reconcile(env, (), cluster.kubeconfig,
                                                               options=options))
    api = projects.client(cluster.kubeconfig, env)
    try:
        first = wait_for(lambda: _lease(kube, ns).get("renewTime"), "the lease")
        time.sleep(7)  # more than twice its duration: alive only because it is renewed
        assert _lease(kube, ns).get("renewTime") != first
        other = leasing.Lease(api, ns, PARENT, "dev", holder="someone-else")
        with pytest.raises(LeaseHeldError):
            other.acquire()
        # now someone takes it by force: the run notices and stops long before its timeout
        path = f"/apis/coordination.k8s.io/v1/namespaces/{ns}/leases/{PARENT}"
        lease = kube.get(path).body
        lease["spec"]["holderIdentity"] = "a-thief"
        assert kube.request("PUT", path, lease).status == 200
        started = time.monotonic()
        thread.join(timeout=60)
        assert not thread.is_alive()
        assert time.monotonic() - started < 15
    finally:
        thread.join(timeout=60)
        api.close()
    [error] = outcome
    assert isinstance(error, LeaseHeldError), error
    assert "a-thief" in str(error)
    assert _holder(kube, ns) == "a-thief"  # not released: it was not ours any more
