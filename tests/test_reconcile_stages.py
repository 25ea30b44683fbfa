"""reconcile's pure parts, offline: the apply stages, the health verdicts, the prune limits and
refusals, and the lease's expiry judged by the API server's `Date` rather than the local
clock."""

from __future__ import annotations

from typing import Any, cast

import pytest

from agentctl.cluster import applying, changes, discovering, leasing, pruning, waiting
from agentctl.cluster.connecting import Client, Response
from agentctl.cluster.discovering import Resource, Resources
from agentctl.diffs import Change, Outcome
from agentctl.errors import ObjectsFailedError
from agentctl.manifests import DesiredEnv, Manifest, ObjectRef


def ref(kind: str, group: str = "", namespace: str = "ns", name: str = "x") -> ObjectRef:
    api = f"{group}/v1" if group else "v1"
    return ObjectRef.of({"apiVersion": api, "kind": kind,
                         "metadata": {"name": name, "namespace": namespace}})


def test_stages_put_crds_namespaces_and_cluster_rbac_first_then_the_kind_order() -> None:
    order = [ref("Deployment", "apps"), ref("ServiceAccount"), ref("Namespace", namespace=""),
             ref("ClusterRole", "rbac.authorization.k8s.io", namespace=""),
             ref("CustomResourceDefinition", "apiextensions.k8s.io", namespace=""),
             ref("ConfigMap"), ref("HorizontalPodAutoscaler", "autoscaling"), ref("Widget")]
    staged = sorted(order, key=applying.stage)
    assert [r.kind for r in staged] == [
        "CustomResourceDefinition", "Namespace", "ClusterRole", "ServiceAccount", "ConfigMap",
        "Deployment", "HorizontalPodAutoscaler", "Widget"]


def crd(group: str, kind: str, *versions: tuple[str, bool], scope: str = "Namespaced"
        ) -> Manifest:
    return Manifest({"apiVersion": "apiextensions.k8s.io/v1",
                     "kind": "CustomResourceDefinition",
                     "metadata": {"name": f"{kind.lower()}s.{group}"},
                     "spec": {"group": group, "scope": scope,
                              "names": {"plural": f"{kind.lower()}s", "kind": kind},
                              "versions": [{"name": v, "served": served}
                                           for v, served in versions]}}, "a", "", "")


def test_a_rendered_crd_defines_its_served_versions_as_pending_kinds() -> None:
    served = Resource("old.example.com", "v1", "Old", "olds", True)
    resources = Resources([served]).defining([
        crd("new.example.com", "Gadget", ("v1", True), ("v2", False)),
        crd("new.example.com", "Global", ("v1beta1", True), scope="Cluster"),
        crd("old.example.com", "Old", ("v2", True)),  # served already: its objects are listed
    ])
    assert resources.get("new.example.com/v1", "Gadget") == Resource(
        "new.example.com", "v1", "Gadget", "gadgets", True, pending=True)
    assert resources.get("new.example.com/v2", "Gadget") is None  # not served
    cluster_scoped = resources.get("new.example.com/v1beta1", "Global")
    assert cluster_scoped is not None
    assert not cluster_scoped.namespaced
    assert cluster_scoped.path("", "one") == "/apis/new.example.com/v1beta1/globals/one"
    assert resources.get("old.example.com/v2", "Old") is None
    assert resources.get("old.example.com/v1", "Old") == served
    assert Resources([served]).defining([]).get("new.example.com/v1", "Gadget") is None


@pytest.mark.parametrize("spec", [
    {"group": "g.example.com", "names": {"plural": "as", "kind": "A"}, "versions": 1},
    {"group": "g.example.com", "names": {"kind": "A"}, "versions": [{"name": "v1",
                                                                   "served": True}]},
    {"group": "g.example.com", "names": ["A"], "versions": [{"name": "v1", "served": True}]},
    {"group": "g.example.com", "names": {"plural": "as", "kind": "A"},
     "versions": [{"served": True}, "v1"]},
    "spec",
])
def test_a_malformed_crd_defines_nothing_and_raises_nothing(spec: Any) -> None:
    """The API server refuses such a CRD at its apply, with a clean reason."""
    manifest = crd("g.example.com", "A")
    manifest.body["spec"] = spec
    assert discovering.defined(manifest) == []
    assert Resources([]).defining([manifest]).get("g.example.com/v1", "A") is None


def deployment(replicas: int = 2, **status: Any) -> dict[str, Any]:
    return {"metadata": {"generation": 3}, "spec": {"replicas": replicas},
            "status": {"observedGeneration": 3, **status}}


def test_a_deployment_is_healthy_only_when_rolled_out() -> None:
    done = deployment(replicas=2)
    done["status"].update(replicas=2, updatedReplicas=2, availableReplicas=2)
    assert waiting.judge("Deployment", done, []).done
    old_left = deployment()
    old_left["status"].update(replicas=3, updatedReplicas=2, availableReplicas=2)
    assert not waiting.judge("Deployment", old_left, []).done
    stale = deployment()
    stale["status"].update(observedGeneration=2, replicas=2, updatedReplicas=2,
                           availableReplicas=2)
    verdict = waiting.judge("Deployment", stale, [])
    assert not verdict.done
    assert not verdict.failure


def test_progress_deadline_and_crashing_pods_fail_fast_with_the_reason() -> None:
    stuck = deployment()
    stuck["status"]["conditions"] = [{"type": "Progressing", "status": "False",
                                      "reason": "ProgressDeadlineExceeded",
                                      "message": 'ReplicaSet "x-1" has timed out progressing.'}]
    assert "ProgressDeadlineExceeded" in waiting.judge("Deployment", stuck, []).failure
    pod = {"metadata": {"name": "x-1-abc"}, "status": {"containerStatuses": [
        {"name": "agent", "state": {"waiting": {"reason": "ImagePullBackOff",
                                                "message": "Back-off pulling image"}}}]}}
    verdict = waiting.judge("Deployment", deployment(), [pod])
    assert verdict.failure.startswith("pod x-1-abc container agent is in ImagePullBackOff")
    crash = {"metadata": {"name": "x-0"}, "status": {"initContainerStatuses": [
        {"name": "model", "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}}
    assert "CrashLoopBackOff" in waiting.judge("StatefulSet", deployment(), [crash]).failure
    benign = {"metadata": {"name": "x-2"}, "status": {"containerStatuses": [
        {"name": "agent", "state": {"waiting": {"reason": "ContainerCreating"}}}]}}
    assert not waiting.judge("Deployment", deployment(), [benign]).failure


def test_statefulsets_claims_jobs_and_crds() -> None:
    sts = deployment(replicas=2)
    sts["status"].update(readyReplicas=2, updatedReplicas=2, currentRevision="a",
                         updateRevision="b")
    assert not waiting.judge("StatefulSet", sts, []).done
    sts["status"]["currentRevision"] = "b"
    assert waiting.judge("StatefulSet", sts, []).done
    assert waiting.judge("PersistentVolumeClaim", {"status": {"phase": "Bound"}}, []).done
    assert not waiting.judge("PersistentVolumeClaim", {"status": {"phase": "Pending"}}, []).done
    assert "Lost" in waiting.judge("PersistentVolumeClaim",
                                   {"status": {"phase": "Lost"}}, []).failure
    failed = {"status": {"conditions": [{"type": "Failed", "status": "True",
                                         "reason": "BackoffLimitExceeded"}]}}
    assert "BackoffLimitExceeded" in waiting.judge("Job", failed, []).failure
    crd = {"status": {"conditions": [{"type": "Established", "status": "True"}]}}
    assert waiting.judge("CustomResourceDefinition", crd, []).done
    assert waiting.judge("ConfigMap", {}, []).done


def desired() -> DesiredEnv:
    return DesiredEnv("dev", "ns", "applyset-x-v1", "agentctl-p-dev", [])


def planned(members: int, deleting: int) -> list[Change]:
    out = [Change(ref("ConfigMap", name="agentctl-p-dev"), "v1", Outcome.UNCHANGED)]
    out += [Change(ref("ConfigMap", name=f"keep-{i}"), "v1", Outcome.UNCHANGED)
            for i in range(members - deleting)]
    out += [Change(ref("ConfigMap", name=f"gone-{i}"), "v1", Outcome.DELETED, [""],
                   before={"kind": "ConfigMap"}) for i in range(deleting)]
    return out


@pytest.mark.parametrize(("members", "given", "allowed"),
                         [(5, None, 10), (100, None, 10), (250, None, 25), (1000, None, 100),
                          (1000, 3, 3), (10, 0, 0)])
def test_the_deletion_limit(members: int, given: int | None, allowed: int) -> None:
    assert pruning.limit(members, given) == allowed


def test_more_deletions_than_the_limit_are_refused() -> None:
    env = desired()
    pruning.refuse_mass(planned(200, 20), env, pruning.Options())  # 10 % of 200
    with pytest.raises(ObjectsFailedError) as refused:
        pruning.refuse_mass(planned(200, 21), env, pruning.Options())
    assert "would delete 21 of its 200 members, more than 20" in str(refused.value)
    with pytest.raises(ObjectsFailedError):
        pruning.refuse_mass(planned(200, 4), env, pruning.Options(max_deletions=3))
    pruning.refuse_mass(planned(200, 40), env, pruning.Options(max_deletions=40))


def test_an_empty_render_is_refused_only_when_it_would_prune() -> None:
    with pytest.raises(ObjectsFailedError):
        pruning.refuse_empty(desired(), True, pruning.Options())
    pruning.refuse_empty(desired(), False, pruning.Options())
    pruning.refuse_empty(desired(), True, pruning.Options(allow_empty=True))


def test_kept_kinds_and_marks() -> None:
    none: frozenset[str] = frozenset()
    for group, kind in (("", "PersistentVolumeClaim"), ("", "Namespace"),
                        ("apiextensions.k8s.io", "CustomResourceDefinition")):
        assert "spec.pruneKinds" in changes.kept({}, group, kind, none)
        assert changes.kept({}, group, kind, frozenset({kind})) == ""
    # an opt-in of one kind does not open another, and the other guards still hold
    assert changes.kept({}, "", "Namespace", frozenset({"PersistentVolumeClaim"}))
    assert "owned by StatefulSet/s" in changes.kept(
        {"ownerReferences": [{"kind": "StatefulSet", "name": "s"}]}, "",
        "PersistentVolumeClaim", frozenset({"PersistentVolumeClaim"}))
    assert "owned by ReplicaSet/r" in changes.kept(
        {"ownerReferences": [{"kind": "ReplicaSet", "name": "r"}]}, "apps", "Deployment", none)
    assert "disabled" in changes.kept(
        {"annotations": {"agent.inferensys.com/prune": "disabled"}}, "", "ConfigMap", none)
    assert changes.kept({"annotations": {"agent.inferensys.com/prune": "enabled"}}, "",
                        "ConfigMap", none) == ""


def _lease() -> leasing.Lease:
    return leasing.Lease(cast(Client, None), "ns", "agentctl-p-dev", "dev")


@pytest.mark.parametrize(("date", "expired"), [
    ("Wed, 01 Jan 2020 00:00:20 GMT", False),
    ("Wed, 01 Jan 2020 00:00:30 GMT", False),
    ("Wed, 01 Jan 2020 00:00:31 GMT", True),
])
def test_expiry_is_judged_by_the_servers_date_not_the_local_clock(date: str,
                                                                  expired: bool) -> None:
    """The renewTime is years behind the local clock; only the server's Date decides."""
    spec = {"holderIdentity": "other", "renewTime": "2020-01-01T00:00:00.000000Z",
            "leaseDurationSeconds": 30}
    assert _lease()._expired(spec, Response(200, {}, [], date)) is expired


def test_the_renew_time_written_is_the_servers_clock() -> None:
    lease = _lease()
    lease._saw(Response(200, {}, [], "Wed, 01 Jan 2020 00:00:20 GMT"))
    spec = lease._spec({}, lease.holder)
    assert spec["renewTime"].startswith("2020-01-01T00:00:2")
    assert spec["holderIdentity"] == lease.holder
    assert spec["leaseDurationSeconds"] == leasing.DURATION
    released = lease._spec(spec, None)
    assert "holderIdentity" not in released


def test_two_runs_never_share_a_holder_identity() -> None:
    assert leasing.holder_identity() != leasing.holder_identity()
