"""Agent objects and their status, offline: an environment that declares the Agent capability
renders one Agent object per agent (and only then), a committed tree holding them is accepted
only there, the status derived from live workloads follows its rules, a status that differs
only in its times is not significant, and the CRD prints phase and readiness."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from agentctl import schemas
from agentctl.cli import app
from agentctl.cluster import statuses
from agentctl.errors import InputError
from agentctl.manifests import ANNOTATION_DIGEST, LABEL_PART_OF, LABEL_TRACK, digest
from agentctl.render import pipeline, publishing

NOW = "2031-05-04T10:00:00Z"
LATER = "2031-05-04T10:05:00Z"


def _declare(project: Path, env: str) -> None:
    path = project / "environments" / f"{env}.yaml"
    doc = yaml.safe_load(path.read_text())
    doc["spec"].setdefault("capabilities", []).append(publishing.AGENT_CAPABILITY)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


def _agents(result: pipeline.RenderResult) -> dict[str, dict[str, Any]]:
    return {m.ref.name: m.body for m in result.manifests if m.ref.kind == "Agent"}


def test_an_environment_with_the_capability_renders_one_agent_object_per_agent(
        example: Path) -> None:
    _declare(example, "prod")
    prod = pipeline.render(example, ("prod",))
    dev = pipeline.render(example, ("dev",))
    assert _agents(dev) == {}  # no capability: no Agent object
    agents = _agents(prod)
    names = {m.agent for m in prod.manifests if m.ref.kind != "Agent"}
    assert set(agents) == names
    body = agents["support-bot"]
    assert body["apiVersion"] == "agent.inferensys.com/v1alpha1"
    assert body["metadata"]["namespace"] == prod.envs[0].namespace
    assert body["metadata"]["labels"][LABEL_PART_OF] == prod.envs[0].applyset
    assert body["metadata"]["annotations"][ANNOTATION_DIGEST] == digest(body)
    assert "status" not in body
    # the merged spec as written (environment defaults and overrides included), without
    # agentctl's defaults filled in
    source = yaml.safe_load((example / "agents" / "support-bot.yaml").read_text())["spec"]
    assert body["spec"]["runtime"]["image"] == source["runtime"]["image"]
    assert body["spec"]["rollout"]["strategy"] == "BlueGreen"
    assert "workload" not in body["spec"] or "workload" in source
    file = next(m.file for m in prod.manifests if m.ref.kind == "Agent"
                and m.ref.name == "support-bot")
    assert file.endswith("/agent-support-bot.yaml")


def test_the_agent_object_is_valid_against_the_crd_schema(example: Path) -> None:
    from jsonschema import Draft202012Validator

    _declare(example, "prod")
    schema = schemas.crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    spec_schema = _nullable_to_json_schema(schema["properties"]["spec"])
    for name, body in _agents(pipeline.render(example, ("prod",))).items():
        errors = list(Draft202012Validator(spec_schema).iter_errors(body["spec"]))
        assert errors == [], (name, [e.message for e in errors])


def _nullable_to_json_schema(node: Any) -> Any:
    """The CRD's OpenAPI dialect, as JSON Schema (nullable, preserve-unknown-fields)."""
    if isinstance(node, list):
        return [_nullable_to_json_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _nullable_to_json_schema(v) for k, v in node.items()
           if not k.startswith("x-kubernetes") and k != "nullable"}
    if node.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    if out.get("exclusiveMinimum") is True:
        out["exclusiveMinimum"] = out.pop("minimum")
    return out


def test_a_committed_agent_object_needs_the_capability(example: Path) -> None:
    _declare(example, "dev")
    pipeline.write(pipeline.plan(pipeline.render(example, ("dev",)), example / "rendered"))
    [env] = pipeline.desired(example, ("dev",)).envs
    assert sum(1 for m in env.manifests if m.ref.kind == "Agent") == 6
    path = example / "environments" / "dev.yaml"
    doc = yaml.safe_load(path.read_text())
    doc["spec"]["capabilities"].remove(publishing.AGENT_CAPABILITY)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    with pytest.raises(InputError) as caught:
        pipeline.desired(example, ("dev",))
    assert any("agent.inferensys.com/v1alpha1/Agent is neither a built-in kind nor a "
               "capability" in str(p) for p in caught.value.problems)


def _workload(name: str, track: str = "main", replicas: int = 2, available: int = 2,
              updated: int = 2, total: int | None = None, generation: int = 1,
              observed: int = 1, kind: str = "Deployment",
              conditions: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"kind": kind, "metadata": {"name": name, "generation": generation},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {
                "app.kubernetes.io/name": "bot", "agent.inferensys.com/track": track}}},
            "status": {"observedGeneration": observed, "replicas": available
                       if total is None else total, "updatedReplicas": updated,
                       "readyReplicas": available, "availableReplicas": available,
                       "conditions": conditions or []}}


def _agent(strategy: str = "RollingUpdate", generation: int = 4,
           status: dict[str, Any] | None = None, **rollout: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"metadata": {"name": "bot", "generation": generation},
                            "spec": {"rollout": {"strategy": strategy, **rollout}}}
    if status is not None:
        body["status"] = status
    return body


def _conditions(status: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}


def test_a_rolled_out_agent_is_ready() -> None:
    status = statuses.derive(statuses.Observed(_agent(), [_workload("bot")], digest="sha256:a"),
                             NOW)
    assert status["phase"] == "Ready"
    assert (status["replicas"], status["readyReplicas"], status["availableReplicas"]) == \
        (2, 2, 2)
    assert status["observedGeneration"] == 4
    assert _conditions(status) == {"Ready": ("True", "Available"),
                                   "Progressing": ("False", "Complete"),
                                   "Degraded": ("False", "NoFailure")}
    assert all(c["observedGeneration"] == 4 and c["lastTransitionTime"] == NOW
               for c in status["conditions"])
    assert (status["renderedDigest"], status["lastAppliedTime"]) == ("sha256:a", NOW)


@pytest.mark.parametrize(("workload", "why"), [
    (_workload("bot", generation=2, observed=1), "has not seen generation 2"),
    (_workload("bot", available=1, updated=1, total=3), "1/2 replicas available, 1 updated, "
                                                        "2 old"),
])
def test_a_rollout_in_progress_is_progressing_and_not_ready(workload: dict[str, Any],
                                                            why: str) -> None:
    status = statuses.derive(statuses.Observed(_agent(), [workload]), NOW)
    assert status["phase"] == "Progressing"
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["Ready"]["status"] == "False"
    assert conditions["Progressing"]["status"] == "True"
    assert why in conditions["Progressing"]["message"]


def test_a_failure_of_this_run_or_of_the_rollout_is_degraded_or_failed() -> None:
    failing = statuses.Observed(_agent(), [_workload("bot", available=1, updated=1, total=2)],
                                failures=["Deployment/ns/bot: pod bot-x container agent is in "
                                          "CrashLoopBackOff"])
    status = statuses.derive(failing, NOW)
    assert status["phase"] == "Degraded"  # the old replica still serves
    conditions = {c["type"]: c for c in status["conditions"]}
    assert (conditions["Degraded"]["status"], conditions["Degraded"]["reason"]) == \
        ("True", "ReconcileFailed")
    assert "CrashLoopBackOff" in conditions["Degraded"]["message"]
    assert conditions["Progressing"]["reason"] == "Failed"
    stuck = _workload("bot", available=0, updated=1, total=1, conditions=[
        {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
         "message": 'ReplicaSet "bot-1" has timed out progressing.'}])
    status = statuses.derive(statuses.Observed(_agent(), [stuck]), NOW)
    assert status["phase"] == "Failed"  # nothing available
    assert _conditions(status)["Degraded"] == ("True", "RolloutFailed")


def test_no_workload_yet_is_pending() -> None:
    status = statuses.derive(statuses.Observed(_agent(), []), NOW)
    assert status["phase"] == "Pending"
    assert _conditions(status)["Ready"] == ("False", "NoWorkload")


def test_blue_green_counts_the_slot_the_service_selects() -> None:
    workloads = [_workload("bot-blue", "blue", replicas=3, available=3, updated=3),
                 _workload("bot-green", "green", replicas=1, available=0, updated=1)]
    agent = _agent("BlueGreen", blueGreen={"activeSlot": "green"})
    # the commit flipped to green, but the Services still select blue (the flip did not happen)
    status = statuses.derive(statuses.Observed(agent, workloads, service_track="blue"), NOW)
    assert status["activeSlot"] == "blue"
    assert (status["replicas"], status["availableReplicas"]) == (3, 3)
    assert status["phase"] == "Progressing"  # the preview slot is still rolling out
    assert _conditions(status)["Ready"] == ("True", "Available")
    status = statuses.derive(statuses.Observed(agent, workloads), NOW)
    assert status["activeSlot"] == "green"  # no Service: as declared
    assert status["availableReplicas"] == 0


def test_canary_reports_its_weight_and_counts_both_tracks() -> None:
    workloads = [_workload("bot", replicas=3, available=3, updated=3),
                 _workload("bot-canary", "canary", replicas=1, available=1, updated=1)]
    status = statuses.derive(statuses.Observed(_agent("Canary", canary={"weight": 25}),
                                               workloads), NOW)
    assert (status["canaryWeight"], status["replicas"], status["phase"]) == (25, 4, "Ready")
    assert "activeSlot" not in status


def test_times_are_kept_while_what_they_date_stays_and_are_not_significant() -> None:
    first = statuses.derive(statuses.Observed(_agent(), [_workload("bot")], digest="sha256:a"),
                            NOW)
    again = statuses.derive(statuses.Observed(_agent(status=first), [_workload("bot")],
                                              digest="sha256:a"), LATER)
    assert again == first  # same times: nothing to write
    assert statuses.significant(again) == statuses.significant(first)
    moved = {**first, "lastAppliedTime": LATER,
             "conditions": [{**c, "lastTransitionTime": LATER} for c in first["conditions"]]}
    assert statuses.significant(moved) == statuses.significant(first)
    changed = statuses.derive(statuses.Observed(_agent(status=first), [_workload("bot")],
                                                digest="sha256:b"), LATER)
    assert changed["lastAppliedTime"] == LATER  # a new rendered state was applied
    assert statuses.significant(changed) != statuses.significant(first)
    rolling = statuses.derive(statuses.Observed(_agent(status=first), [_workload(
        "bot", generation=2)], digest="sha256:a"), LATER)
    ready = {c["type"]: c for c in rolling["conditions"]}["Ready"]
    assert (ready["status"], ready["lastTransitionTime"]) == ("False", LATER)
    assert {c["type"]: c for c in rolling["conditions"]}["Degraded"]["lastTransitionTime"] \
        == NOW  # unchanged condition keeps its time


def test_rendered_digest_does_not_depend_on_order() -> None:
    one = statuses.rendered_digest({"Deployment/ns/bot": "sha256:1", "Service/ns/bot": "sha256:2"})
    two = statuses.rendered_digest({"Service/ns/bot": "sha256:2", "Deployment/ns/bot": "sha256:1"})
    assert one == two
    assert one != statuses.rendered_digest({"Deployment/ns/bot": "sha256:1"})


def test_the_crd_prints_phase_and_readiness_and_its_status_schema_has_every_field() -> None:
    version = schemas.crd()["spec"]["versions"][0]
    columns = {c["name"]: c["jsonPath"] for c in version["additionalPrinterColumns"]}
    assert columns["Phase"] == ".status.phase"
    assert columns["Ready"] == '.status.conditions[?(@.type=="Ready")].status'
    assert columns["Available"] == ".status.availableReplicas"
    assert version["subresources"] == {"status": {}}
    status = version["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]
    written = statuses.derive(statuses.Observed(_agent("Canary", canary={"weight": 5}),
                                                [_workload("bot")], digest="sha256:a"), NOW)
    assert set(written) <= set(status), set(written) - set(status)
    assert set(written["conditions"][0]) <= set(status["conditions"]["items"]["properties"])


def test_status_refuses_an_environment_without_agent_objects(runner: CliRunner,
                                                             example: Path) -> None:
    result = runner.invoke(app, ["-C", str(example), "status", "--env", "dev",
                                 "--kubeconfig", str(example / "missing")])
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)
    assert "renders no Agent objects" in result.output
    assert publishing.AGENT_CAPABILITY in result.output


def test_status_document_shape() -> None:
    from agentctl.cli import status as status_cli
    from agentctl.cluster.inspecting import AgentState, EnvState, Track

    ready = statuses.derive(statuses.Observed(_agent(), [_workload("bot")], digest="sha256:a"),
                            NOW)
    state = EnvState("dev", "ns", "https://127.0.0.1:1", "ctx", NOW, "converged", [
        AgentState("bot", "ns", ready, [Track("bot", "Deployment", "main", ("img:1",), 2, 2,
                                              2)])])
    doc = json.loads(json.dumps(status_cli.document([state])))
    assert doc["kind"] == "StatusReport"
    [env] = doc["environments"]
    assert env["lastReconcileTime"] == NOW
    assert env["agents"][0]["status"]["phase"] == "Ready"
    assert env["agents"][0]["tracks"][0]["images"] == ["img:1"]
    text = status_cli.text([state])
    assert text.splitlines()[1].split() == ["AGENT", "PHASE", "READY", "SLOT/WEIGHT",
                                            "LAST", "APPLIED", "TRACKS"]
    assert text.splitlines()[2].split()[:4] == ["bot", "Ready", "2/2", "-"]


def test_status_shows_each_tracks_runtime_image_apart_from_its_sidecars() -> None:
    from agentctl.cli import status as status_cli
    from agentctl.cluster.inspecting import AgentState, EnvState, Track

    ready = statuses.derive(statuses.Observed(_agent(), [_workload("bot")], digest="sha256:a"),
                            NOW)
    blue = Track("bot-blue", "Deployment", "blue", ("reg/bot:3.4.0", "reg/fluent-bit:3.1"),
                 2, 2, 2, ("agent", "logs"))
    green = Track("bot-green", "Deployment", "green",  # a sidecar listed before the runtime
                  ("reg/fluent-bit:3.1", "reg/otel:0.9", "reg/bot:3.5.0"), 1, 0, 0,
                  ("logs", "otel", "agent"))
    state = EnvState("dev", "ns", "https://127.0.0.1:1", "ctx", NOW, "converged",
                     [AgentState("bot", "ns", ready, [blue, green])])
    doc = json.loads(json.dumps(status_cli.document([state])))
    tracks = doc["environments"][0]["agents"][0]["tracks"]
    assert [(t["track"], t["image"], t["sidecarImages"], t["readyReplicas"], t["replicas"])
            for t in tracks] == [
        ("blue", "reg/bot:3.4.0", ["reg/fluent-bit:3.1"], 2, 2),
        ("green", "reg/bot:3.5.0", ["reg/fluent-bit:3.1", "reg/otel:0.9"], 0, 1)]
    row = status_cli.text([state]).splitlines()[2]
    assert row.endswith("blue reg/bot:3.4.0 (+1 sidecar) 2/2, "
                        "green reg/bot:3.5.0 (+2 sidecars) 0/1")
    # a local blueprint that names its runtime's container otherwise: the first one is it
    assert Track("x", "Deployment", "main", ("a:1", "b:2"), 1, 1, 1, ("app", "logs")).image \
        == "a:1"


def test_a_tracks_native_sidecars_count_and_its_init_containers_do_not() -> None:
    from agentctl.cluster import inspecting
    from agentctl.cluster.discovering import Resource
    from agentctl.cluster.reading import Live

    pod = {"initContainers": [
               {"name": "model-download", "image": "reg/downloader:1"},  # runs to completion
               {"name": "logs", "image": "reg/fluent-bit:4", "restartPolicy": "Always"}],
           "containers": [{"name": "agent", "image": "reg/bot:3.5.0"}]}
    live = Live(Resource("apps", "v1", "Deployment", "deployments", True), {
        "metadata": {"name": "bot-green", "namespace": "ns"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {LABEL_TRACK: "green"}},
                 "template": {"spec": pod}},
        "status": {"readyReplicas": 1, "availableReplicas": 1}})
    track = inspecting._track(live)
    assert (track.track, track.image, track.sidecars, track.ready, track.replicas) == (
        "green", "reg/bot:3.5.0", ("reg/fluent-bit:4",), 1, 2)
